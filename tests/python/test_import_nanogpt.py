#!/usr/bin/env python3
"""scripts/import_nanogpt.py turns a nanoGPT ckpt.pt into a checkpoint attnlab runs identically.

nanoGPT's code is not used (nor copied): the test writes a ckpt.pt in its layout from a small GPT
defined here with plain torch ops (GPT-2 state_dict names under `transformer.`, learned positions,
pre-norm, exact erf GELU, c_attn holding q, k, v, the head tied to wte), with `model_args`,
`iter_num`, `config` and a character-level meta.pkl (stoi/itos), then:
  - imports it and checks `attnlab inspect --dump` logits against this GPT's forward
    (max |Δ| ≤ 1e-4 · max(1, max |logits|): fp32 on both sides, see test_torch_model.py),
  - checks that `attnlab sample` greedy output equals greedy decoding with this GPT,
  - repeats with bias=False and torch.compile's `_orig_mod.` prefix,
  - checks the errors: no meta.pkl (a BPE vocabulary) and a state_dict with a foreign tensor
    give exit 2 with one `error:` line, and nothing is written.

Usage: test_import_nanogpt.py ATTNLAB_BINARY SOURCE_DIR   (run with .venv/bin/python)
"""
import contextlib
import io
import math
import os
import pickle
import subprocess
import sys

import numpy as np
import torch

binary, source = sys.argv[1], sys.argv[2]
IMPORT = os.path.join(source, "scripts", "import_nanogpt.py")
sys.path.insert(0, os.path.join(source, "scripts"))
import import_nanogpt  # noqa: E402
TOL = 1e-4
failures = []


def check(ok, what):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


def make_gpt(n_layer, n_head, n_embd, block_size, vocab_size, bias, seed):
    """A state_dict with nanoGPT's names, weights N(0, 0.1²) (layernorm scales around 1)."""
    g = torch.Generator().manual_seed(seed)
    C = n_embd

    def rnd(*shape, std=0.1, mean=0.0):
        return torch.randn(*shape, generator=g) * std + mean

    sd = {"transformer.wte.weight": rnd(vocab_size, C, std=0.3), "transformer.wpe.weight": rnd(block_size, C)}
    for l in range(n_layer):
        p = f"transformer.h.{l}."
        sd[p + "ln_1.weight"] = rnd(C, mean=1.0)
        sd[p + "attn.c_attn.weight"] = rnd(3 * C, C, std=0.3)
        sd[p + "attn.c_proj.weight"] = rnd(C, C)
        sd[p + "ln_2.weight"] = rnd(C, mean=1.0)
        sd[p + "mlp.c_fc.weight"] = rnd(4 * C, C, std=0.2)
        sd[p + "mlp.c_proj.weight"] = rnd(C, 4 * C)
        if bias:
            for k, n in (("ln_1.bias", C), ("attn.c_attn.bias", 3 * C), ("attn.c_proj.bias", C), ("ln_2.bias", C),
                         ("mlp.c_fc.bias", 4 * C), ("mlp.c_proj.bias", C)):
                sd[p + k] = rnd(n)
    sd["transformer.ln_f.weight"] = rnd(C, mean=1.0)
    if bias:
        sd["transformer.ln_f.bias"] = rnd(C)
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, as nanoGPT's state_dict holds it
    return sd


def gpt_forward(sd, n_layer, n_head, ids):
    """logits [T, V] of ids [T], written out op by op."""
    def ln(x, name):
        w, b = sd[name + ".weight"], sd.get(name + ".bias")
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + 1e-5) * w
        return y + b if b is not None else y

    def lin(x, name):
        b = sd.get(name + ".bias")
        y = x @ sd[name + ".weight"].T
        return y + b if b is not None else y

    T = len(ids)
    x = sd["transformer.wte.weight"][ids] + sd["transformer.wpe.weight"][:T]
    C = x.shape[1]
    hs = C // n_head
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(n_layer):
        p = f"transformer.h.{l}."
        qkv = lin(ln(x, p + "ln_1"), p + "attn.c_attn")
        q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(T, n_head, hs).transpose(0, 1) for i in range(3))
        att = (q @ k.transpose(1, 2)) / math.sqrt(hs)
        att = torch.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        x = x + lin((att @ v).transpose(0, 1).reshape(T, C), p + "attn.c_proj")
        h = lin(ln(x, p + "ln_2"), p + "mlp.c_fc")
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
        x = x + lin(h, p + "mlp.c_proj")
    return ln(x, "transformer.ln_f") @ sd["lm_head.weight"].T


def write_nanogpt(dirname, sd, args, chars, prefix=""):
    os.makedirs(os.path.join(dirname, "data", "tiny"), exist_ok=True)
    ckpt = {"model": {prefix + k: v for k, v in sd.items()}, "optimizer": {}, "model_args": args,
            "iter_num": 250, "best_val_loss": torch.tensor(1.5), "config": {"dataset": "tiny"}}
    torch.save(ckpt, os.path.join(dirname, "ckpt.pt"))
    meta = {"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": {c: i for i, c in enumerate(chars)}}
    with open(os.path.join(dirname, "data", "tiny", "meta.pkl"), "wb") as f:
        pickle.dump(meta, f)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def run_import(args, in_process=True):
    """scripts/import_nanogpt.py ARGS: in this process (no second torch start-up) or as a command."""
    if not in_process:
        return run([sys.executable, IMPORT] + args)
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [IMPORT] + args
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            import_nanogpt.main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def case(name, bias, prefix, in_process):
    chars = sorted(set("\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    L, H, C, T = 2, 4, 32, 32
    args = dict(n_layer=L, n_head=H, n_embd=C, block_size=T, bias=bias, vocab_size=len(chars), dropout=0.0)
    sd = make_gpt(L, H, C, T, len(chars), bias, seed=7 if bias else 8)
    d = os.path.abspath(name)
    write_nanogpt(d, sd, args, chars, prefix)
    out = os.path.join(d, "imported.safetensors")
    p = run_import([os.path.join(d, "ckpt.pt"), "-o", out], in_process)  # meta.pkl found via config.dataset
    check(p.returncode == 0 and os.path.isfile(out), f"{name}: import ({p.stdout.strip()}{p.stderr.strip()})")
    if p.returncode != 0:
        return
    prompt = "ROMEO: But soft, what light"
    ids = [chars.index(c) for c in prompt]
    p = run([binary, "inspect", out, "--input", prompt, "--dump", os.path.join(d, "dump")])
    check(p.returncode == 0, f"{name}: attnlab inspect --dump ({p.stderr.strip()})")
    if p.returncode != 0:
        return
    want = gpt_forward(sd, L, H, torch.tensor(ids)).numpy()
    got = np.load(os.path.join(d, "dump", "logits.npy"))
    scale = max(1.0, float(np.abs(want).max()))
    rel = float(np.abs(got - want).max()) / scale if got.shape == want.shape else float("inf")
    check(rel <= TOL, f"{name}: logits {list(got.shape)} match the GPT's forward: rel diff {rel:.2e} "
                      f"(max |logits| {scale:.2f})")
    p = run([binary, "inspect", out])
    check(p.returncode == 0 and "activation" not in p.stderr, f"{name}: attnlab inspect CKPT")
    # greedy continuation: attnlab's cached decoding against this GPT's full forwards
    n_new = 12
    p = run([binary, "sample", out, "--prompt", prompt, "--temperature", "0", "--max-new-tokens", str(n_new)])
    seq = list(ids)
    for _ in range(n_new):
        seq.append(int(gpt_forward(sd, L, H, torch.tensor(seq[-T:]))[-1].argmax()))
    expect = "".join(chars[i] for i in seq)
    check(p.returncode == 0 and expect in p.stdout,
          f"{name}: attnlab sample greedy = the GPT's greedy {expect[len(prompt):]!r} (got {p.stdout.strip()!r})")


def errors():
    d = os.path.abspath("bad")
    chars = list("abc\n ")
    args = dict(n_layer=1, n_head=2, n_embd=8, block_size=8, bias=True, vocab_size=len(chars), dropout=0.0)
    sd = make_gpt(1, 2, 8, 8, len(chars), True, seed=1)
    write_nanogpt(d, sd, args, chars)
    os.remove(os.path.join(d, "data", "tiny", "meta.pkl"))
    out = os.path.join(d, "x.safetensors")
    p = run_import([os.path.join(d, "ckpt.pt"), "-o", out])
    check(p.returncode == 2 and p.stderr.startswith("error: ") and p.stderr.count("\n") == 1
          and "BPE" in p.stderr and not os.path.exists(out), f"no meta.pkl refused: {p.stderr.strip()}")
    write_nanogpt(d, dict(sd, **{"transformer.h.0.attn.rotary.inv_freq": torch.ones(4)}), args, chars)
    p = run_import([os.path.join(d, "ckpt.pt"), "-o", out])
    check(p.returncode == 2 and "rotary" in p.stderr and not os.path.exists(out),
          f"a tensor attnlab has no place for refused: {p.stderr.strip()}")


case("bias", True, "", in_process=False)  # the command itself once
case("nobias_compiled", False, "_orig_mod.", in_process=True)
errors()
if failures:
    sys.exit("FAIL: " + "; ".join(failures))
print("nanoGPT import: all checks passed")
