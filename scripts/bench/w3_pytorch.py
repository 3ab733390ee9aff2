#!/usr/bin/python3
"""W3 of docs/performance.md in PyTorch: one causal attention layer, forward + backward,
batch 1, 8 heads, head dim 64, fp32 (or bf16: --dtype), CPU; naive (materialised n×n scores) or
F.scaled_dot_product_attention.

The forms, chosen by --form:
  core        the bare attention core, naive, q, k, v [B,H,n,D] given (what the peer figures
              of W3 in docs/performance.md time):  O = softmax(mask(q kᵀ/√D)) v
  sdpa        the same core by F.scaled_dot_product_attention(q, k, v, is_causal=True)
              (whichever CPU kernel PyTorch picks; with --no-causal, no mask)
  layer       the whole module `attnlab bench attention` times: x [B,n,C] -> Q/K/V projections
              (biases) -> the naive core -> output projection, C = H·D
  layer-sdpa  the same module with the sdpa core
  both        each length as core and layer (the old default)
  all         (default) each length in all four forms; or a comma list of forms

    /usr/bin/python3 scripts/bench/w3_pytorch.py [--lengths 256,1024] [--form all] [--no-backward]
        [--repeats 3] [--warmup 1] [--threads 2] [--dtype f32|bf16] [--csv FILE]

Peak extra memory as attnlab measures it: after the inputs are made (and touched), freed heap
is handed back (malloc_trim) and the RSS high-water mark reset (/proc/self/clear_refs "5");
the first call's VmHWM minus the RSS before it. Times: median of the timed calls after warm-up.
"""
import argparse
import ctypes
import math
import statistics
import time

import torch

LIBC = ctypes.CDLL("libc.so.6")
FORMS = ["core", "sdpa", "layer", "layer-sdpa"]


def status_kb(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def reset_hwm():
    LIBC.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def core(q, k, v, causal):
    n, D = q.shape[-2], q.shape[-1]
    s = (q @ k.transpose(-2, -1)) / math.sqrt(D)
    if causal:
        mask = torch.ones(n, n, dtype=torch.bool).tril()
        s = s.masked_fill(~mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def core_sdpa(q, k, v, causal):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


class Layer(torch.nn.Module):
    def __init__(self, H, D, causal, sdpa=False):
        super().__init__()
        C = H * D
        self.H, self.D, self.causal = H, D, causal
        self.core = core_sdpa if sdpa else core
        self.wq, self.wk, self.wv, self.wo = (torch.nn.Linear(C, C) for _ in range(4))

    def forward(self, x):
        B, n, C = x.shape
        q, k, v = (w(x).view(B, n, self.H, self.D).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        o = self.core(q, k, v, self.causal)
        return self.wo(o.transpose(1, 2).reshape(B, n, C))


def bench(form, n, a):
    B, H, D = a.batch, a.heads, a.head_dim
    g = torch.Generator().manual_seed(1)
    if form in ("core", "sdpa"):
        q, k, v = (torch.randn(B, H, n, D, generator=g).to(a.torch_dtype).requires_grad_(a.backward)
                   for _ in range(3))
        dout = torch.randn(B, H, n, D, generator=g).to(a.torch_dtype)
        fn = core_sdpa if form == "sdpa" else core

        def call():
            out = fn(q, k, v, a.causal)
            if a.backward:
                out.backward(dout)
                q.grad = k.grad = v.grad = None
    else:
        layer = Layer(H, D, a.causal, sdpa=form == "layer-sdpa").to(a.torch_dtype)
        x = torch.randn(B, n, H * D, generator=g).to(a.torch_dtype).requires_grad_(a.backward)
        dout = torch.randn(B, n, H * D, generator=g).to(a.torch_dtype)

        def call():
            out = layer(x)
            if a.backward:
                out.backward(dout)
                x.grad = None
                layer.zero_grad(set_to_none=True)

    probe = reset_hwm()
    base = status_kb("VmRSS")
    call()  # first call: measures memory
    extra = (status_kb("VmHWM") - base) / 1024 if probe else float("nan")
    for _ in range(a.warmup - 1):
        call()
    ms = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        call()
        ms.append((time.perf_counter() - t0) * 1e3)
    C = H * D
    flop = 4.0 * B * H * n * n * D + (4 * 2.0 * B * n * C * C if form.startswith("layer") else 0.0)
    if a.backward:
        flop *= 3
    return statistics.median(ms), min(ms), flop / 1e9, extra


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="256,1024,2048,4096")
    ap.add_argument("--form", default="all",
                    help=f"{', '.join(FORMS)}, both (core,layer), all, or a comma list (default all)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--no-causal", dest="causal", action="store_false")
    ap.add_argument("--no-backward", dest="backward", action="store_false")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="f32, or bf16 q, k, v, dout (and layer weights): PyTorch's own bf16 kernels")
    ap.add_argument("--csv")
    a = ap.parse_args()
    a.warmup = max(1, a.warmup)
    a.torch_dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.set_num_threads(a.threads)
    forms = []
    for f in a.form.split(","):
        for g in {"all": FORMS, "both": ["core", "layer"]}.get(f, [f]):
            if g not in FORMS:
                ap.error(f"--form: unknown form {g!r} (choose from {', '.join(FORMS)}, both, all)")
            if g not in forms:
                forms.append(g)
    print(f"pytorch {torch.__version__} | threads {torch.get_num_threads()} | batch {a.batch}, {a.heads} heads × "
          f"{a.head_dim}, {a.dtype}, {'causal' if a.causal else 'no mask'}, {'forward + backward' if a.backward else 'forward'}, "
          f"core/layer naive, sdpa/layer-sdpa F.scaled_dot_product_attention; {a.repeats} repeat(s) after "
          f"{a.warmup} warm-up\n")
    print(f"{'form':<10} {'n':>6} {'ms median':>10} {'ms min':>10} {'GFLOP':>9} {'GFLOP/s':>9} {'peak extra MB':>14}")
    rows = []
    with torch.no_grad() if not a.backward else torch.enable_grad():
        for n in (int(s) for s in a.lengths.split(",")):
            for form in forms:
                med, mn, gflop, extra = bench(form, n, a)
                print(f"{form:<10} {n:>6} {med:>10.2f} {mn:>10.2f} {gflop:>9.2f} {gflop / (med / 1e3):>9.1f} "
                      f"{extra:>14.1f}", flush=True)
                rows.append((form, n, med, mn, gflop, gflop / (med / 1e3), extra))
    if a.csv:
        with open(a.csv, "w") as f:
            f.write("form,n,threads,backward,ms_median,ms_min,gflop,gflops,peak_extra_mb\n")
            for form, n, med, mn, gflop, gfs, extra in rows:
                f.write(f"{form},{n},{a.threads},{int(a.backward)},{med:.3f},{mn:.3f},{gflop:.3f},{gfs:.2f},{extra:.1f}\n")


if __name__ == "__main__":
    main()
