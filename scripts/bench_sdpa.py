#!/usr/bin/env python3
"""PyTorch's scaled_dot_product_attention on the shapes of attnlab_cuda_bench's CSV, side by side.

Reads the CSV that `attnlab_cuda_bench --csv FILE` wrote (scripts/gpu_check.sh), times
torch.nn.functional.scaled_dot_product_attention on the same GPU with the same B, H, n, D, dtype
and mask (median of --iters runs after one warm-up, CUDA events), and prints both with the ratio
ours / torch. FLOPs are counted as in attnlab_cuda_bench: fwd 4·B·H·n²·D (halved when causal),
fwd+bwd 3.5 × fwd. Ends with the target line: bf16, n = 4096, D = 64, fwd+bwd within 2× of SDPA.
"""
import argparse
import csv
import sys

import torch
import torch.nn.functional as F


def median_ms(fn, iters):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def time_sdpa(B, H, n, D, dtype, causal, iters):
    dt = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v, dout = (torch.rand(B, H, n, D, device="cuda", generator=g, dtype=torch.float32)
                     .mul_(2).sub_(1).to(dt) for _ in range(4))
    q.requires_grad_(True)
    k.requires_grad_(True)
    v.requires_grad_(True)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    def fwd_bwd():
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out.backward(dout)
        q.grad = k.grad = v.grad = None

    return median_ms(fwd, iters), median_ms(fwd_bwd, iters)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", required=True, help="CSV written by attnlab_cuda_bench --csv")
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("torch: no CUDA device", file=sys.stderr)
        return 1
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    print(f"{'n':>7} {'B':>4} {'dtype':>5} {'mask':>7} | {'sdpa fwd ms':>11} {'TFLOP/s':>8} {'ours/sdpa':>9} | "
          f"{'sdpa f+b ms':>11} {'TFLOP/s':>8} {'ours/sdpa':>9}")
    target = None
    with open(args.ours) as f:
        for row in csv.DictReader(f):
            n, B, H, D = int(row["n"]), int(row["B"]), int(row["H"]), int(row["D"])
            dtype, mask = row["dtype"], row["mask"]
            causal = mask == "causal"
            flops = 4.0 * B * H * n * n * D * (0.5 if causal else 1.0)
            try:
                fwd, fb = time_sdpa(B, H, n, D, dtype, causal, args.iters)
            except torch.cuda.OutOfMemoryError:
                print(f"{n:7d} {B:4d} {dtype:>5} {mask:>7} | out of memory")
                torch.cuda.empty_cache()
                continue
            r_fwd = float(row["fwd_ms"]) / fwd
            r_fb = float(row["fwd_bwd_ms"]) / fb
            print(f"{n:7d} {B:4d} {dtype:>5} {mask:>7} | {fwd:11.3f} {flops / fwd / 1e9:8.2f} {r_fwd:9.2f} | "
                  f"{fb:11.3f} {3.5 * flops / fb / 1e9:8.2f} {r_fb:9.2f}")
            if dtype == "bf16" and n == 4096 and D == 64 and not causal:
                target = r_fb
    if target is not None:
        verdict = "met" if target <= 2.0 else "NOT met"
        print(f"\ntarget (bf16, n=4096, D=64, no mask, fwd+bwd within 2x of SDPA): ours/sdpa = {target:.2f}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
