#!/usr/bin/env python3
"""The alpha-beta cost model of data-parallel training (docs/distributed.md).

A step on p nodes takes  T(p) = T_c + T_ar(p),  where T_c is the measured compute time of one
node's share of the batch and T_ar the ring all-reduce of the n gradient bytes:

    T_ar(p) = 2 (p - 1) alpha + 2 (p - 1) / p * n / BW

(alpha: the latency of one message, BW: the link's bandwidth in bytes/s). attnlab does not overlap
the all-reduce with the backward pass, so the two add. Weak scaling: each node keeps the batch it
was measured with, so p nodes train on p times the tokens per step.

    scripts/cost_model.py --params 10.77e6 --compute-ms 1013 --tokens 2048 --name W1
    scripts/cost_model.py --check --params 10.77e6 --compute-ms 925 --tokens 1024 \
        --allreduce-ms 10.8 --measured-ms 1008
"""
import argparse

LINKS = [  # name, bytes/s, alpha (s): assumed, see docs/distributed.md
    ("25 Gb/s Ethernet (TCP)", 25e9 / 8, 20e-6),
    ("100 Gb/s InfiniBand (RDMA)", 100e9 / 8, 2e-6),
]


def allreduce_s(p, n_bytes, bw, alpha):
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n_bytes / bw if p > 1 else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=float, required=True, help="parameters (fp32 gradients: 4 bytes each)")
    ap.add_argument("--compute-ms", type=float, required=True, help="measured ms per step of one node's share")
    ap.add_argument("--tokens", type=float, required=True, help="tokens of one node's share per step")
    ap.add_argument("--name", default="model")
    ap.add_argument("--nodes", default="8,64")
    ap.add_argument("--check", action="store_true",
                    help="predict a measured run on one host instead: BW from --allreduce-ms of 2 ranks")
    ap.add_argument("--allreduce-ms", type=float, help="measured time of the all-reduce per step (--check)")
    ap.add_argument("--measured-ms", type=float, help="measured ms per step of the 2-rank run (--check)")
    a = ap.parse_args()
    n = 4 * a.params
    tc = a.compute_ms / 1e3
    if a.check:
        bw = 2 * (2 - 1) / 2 * n / (a.allreduce_ms / 1e3)  # alpha is negligible next to 43 MB
        pred = tc + allreduce_s(2, n, bw, 0.0)
        print(f"2 ranks on one host: effective all-reduce bandwidth {bw / 1e9:.2f} GB/s ({bw * 8 / 1e9:.1f} Gb/s)")
        print(f"predicted {pred * 1e3:.0f} ms/step = {a.compute_ms:.0f} compute + {a.allreduce_ms:.1f} all-reduce; "
              f"measured {a.measured_ms:.0f} ms/step; measured/predicted {a.measured_ms / 1e3 / pred:.3f}")
        return
    print(f"{a.name}: {a.params / 1e6:.2f} M parameters = {n / 1e6:.1f} MB of gradients; "
          f"{a.compute_ms:.0f} ms compute per step for {a.tokens:.0f} tokens per node")
    print(f"{'link':<28} {'nodes':>5} {'all-reduce ms':>13} {'step ms':>8} {'efficiency':>10} {'tokens/s':>10}")
    for name, bw, alpha in LINKS:
        for p in (int(x) for x in a.nodes.split(",")):
            t_ar = allreduce_s(p, n, bw, alpha)
            step = tc + t_ar
            print(f"{name:<28} {p:>5} {t_ar * 1e3:>13.1f} {step * 1e3:>8.0f} {tc / step:>10.1%} "
                  f"{p * a.tokens / step:>10.0f}")


if __name__ == "__main__":
    main()
