#!/usr/bin/python3
"""W1 of docs/performance.md in PyTorch: train gpt-char-small, the same model,
shapes and optimizer as configs/bench/gpt_char_small.yaml (6 layers, d_model 384,
6 heads, context 256, batch 8, vocab 65, pre-LN, GELU(tanh), learned positions,
tied embeddings, biases, no dropout, AdamW), fp32, on random token batches.

The PyTorch 2.x forms, chosen by --form (the model, data and seed are the same in each):
  written  (default) attention written out, materialised T×T scores and a T×T mask, as in
           the peers' figures; AdamW with PyTorch's default implementation
  sdpa     F.scaled_dot_product_attention(q, k, v, is_causal=True) instead
  compile  the sdpa model under torch.compile (default mode); the warm-up steps (at least 1)
           absorb the compile time, which is printed
  fused    the sdpa model with torch.optim.AdamW(fused=True)
  autocast the fused form with the forward and the loss under
           torch.autocast("cpu", dtype=torch.bfloat16): bf16 mixed precision, the peer of
           attnlab's train.precision: bf16 (fp32 weights and optimizer)
  autocast-compile  the autocast form under torch.compile
  all      every fp32 form above (written, sdpa, compile, fused), each in a fresh subprocess, one after the other; a comma list
           (e.g. sdpa,fused) runs just those forms the same way

    /usr/bin/python3 scripts/bench/w1_pytorch.py [--threads 2] [--steps 10] [--warmup 2]
        [--form written|sdpa|compile|fused|autocast|autocast-compile|all|FORM,FORM,...]

One form prints the versions, the median ms/step (`ms/step            median X  (min, max)`) and
tokens/s over the timed steps. Several forms print one line per form,
`form NAME ms/step X tokens/s Y  (...)`, then `peer fastest form: NAME` and, last, the only line
starting `ms/step`, whose third field is the fastest form's median. A form this PyTorch cannot
run (torch.compile without a working C compiler, fused AdamW without CPU support) prints
`form NAME unavailable: REASON` and no ms/step line, and exits 0.
"""
import argparse
import math
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

FORMS = ["written", "sdpa", "compile", "fused"]  # fp32: what --form all runs
BF16_FORMS = ["autocast", "autocast-compile"]


class Block(nn.Module):
    def __init__(self, d, h, sdpa):
        super().__init__()
        self.h, self.sdpa = h, sdpa
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def attn(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v))
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.h)
            mask = torch.ones(T, T, dtype=torch.bool).tril()
            s = s.masked_fill(~mask, float("-inf"))
            y = F.softmax(s, dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V=65, T=256, L=6, d=384, h=6, sdpa=False):
        super().__init__()
        self.tok = nn.Embedding(V, d)
        self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, h, sdpa) for _ in range(L))
        self.lnf = nn.LayerNorm(d)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.tok(idx) + self.pos(torch.arange(T))
        for b in self.blocks:
            x = b(x)
        logits = self.lnf(x) @ self.tok.weight.t()  # tied head
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def reason(e):
    """The first line of an exception, short enough for one output line."""
    lines = str(e).strip().splitlines()
    text = f"{type(e).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


def unavailable(form, e):
    print(f"form {form} unavailable: {reason(e)}", flush=True)
    sys.exit(0)


def run_one(form, args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    B, T, V = 8, 256, 65
    model = GPT(sdpa=form != "written")  # the same initial weights in every form (same seed, same order)
    n = sum(p.numel() for p in model.parameters())
    try:
        fused = form in ("fused", "autocast", "autocast-compile")
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, **({"fused": True} if fused else {}))
    except (RuntimeError, ValueError) as e:
        unavailable(form, e)
    step_model = model
    warmup = args.warmup
    compiled = form in ("compile", "autocast-compile")
    bf16 = form in BF16_FORMS
    if compiled:
        warmup = max(1, warmup)  # the first call compiles: never time it
        try:
            step_model = torch.compile(model)
        except Exception as e:  # noqa: BLE001 (whatever stops torch.compile makes the form unavailable)
            unavailable(form, e)
    times, first = [], None
    for s in range(warmup + args.steps):
        idx = torch.randint(0, V, (B, T))
        tgt = torch.randint(0, V, (B, T))
        t0 = time.perf_counter()
        try:
            opt.zero_grad(set_to_none=True)
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = step_model(idx, tgt)
            else:
                loss = step_model(idx, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        except Exception as e:  # noqa: BLE001
            if s == 0 and form != "written" and form != "sdpa":  # compile errors (no C compiler, ...) surface here
                unavailable(form, e)
            raise
        dt = time.perf_counter() - t0
        if s == 0:
            first = dt * 1e3
        if s >= warmup:
            times.append(dt * 1e3)
    med = statistics.median(times)
    print(f"pytorch {torch.__version__} | threads {torch.get_num_threads()} | {n / 1e6:.2f} M parameters | form {form}")
    if compiled:
        print(f"first step         {first:.1f} ms (compiles; warm-up, not timed)")
    print(f"ms/step            median {med:.1f}  (min {min(times):.1f}, max {max(times):.1f})")
    print(f"tokens/s           {B * T / (med / 1e3):.0f}")


def run_all(forms, args):
    """Each form in a fresh interpreter, one at a time; one line per form, the fastest last."""
    torch.set_num_threads(args.threads)
    print(f"pytorch {torch.__version__} | threads {torch.get_num_threads()} | forms {','.join(forms)}, "
          f"each in its own process, {args.steps} steps after {args.warmup} warm-up", flush=True)
    best = None
    for form in forms:
        cmd = [sys.executable, __file__, "--form", form, "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup)]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # stderr passes through
        got = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if line.startswith("ms/step"):
                got["ms"], got["range"] = float(f[2]), line.split("(", 1)[1].rstrip(")")
            elif line.startswith("tokens/s"):
                got["tps"] = f[1]
            elif line.startswith("first step"):
                got["first"] = f[2]
            elif line.startswith(f"form {form} unavailable:"):
                got["unavailable"] = line
        if "unavailable" in got:
            print(got["unavailable"], flush=True)
        elif r.returncode != 0 or "ms" not in got:
            print(f"form {form} failed: exit status {r.returncode}", flush=True)
        else:
            extra = f"; first step {got['first']} ms, compiling" if "first" in got else ""
            print(f"form {form} ms/step {got['ms']:.1f} tokens/s {got['tps']}  ({got['range']}{extra})", flush=True)
            if best is None or got["ms"] < best[1]:
                best = (form, got["ms"])
    if best is None:
        print("no form ran", file=sys.stderr)
        sys.exit(1)
    print(f"peer fastest form: {best[0]}  ({8 * 256 / (best[1] / 1e3):.0f} tokens/s)")
    print(f"ms/step            median {best[1]:.1f}  (fastest form: {best[0]})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--form", default="written",
                    help=f"{', '.join(FORMS + BF16_FORMS)}, all (the fp32 forms), or a comma list of forms "
                    "(default written)")
    args = ap.parse_args()
    forms = []
    for f in args.form.split(","):
        for g in (FORMS if f == "all" else [f]):
            if g not in FORMS + BF16_FORMS:
                ap.error(f"--form: unknown form {g!r} (choose from {', '.join(FORMS + BF16_FORMS)}, all)")
            if g not in forms:
                forms.append(g)
    if len(forms) == 1 and args.form != "all":
        run_one(forms[0], args)
    else:
        run_all(forms, args)


if __name__ == "__main__":
    main()
