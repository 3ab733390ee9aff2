#!/usr/bin/python3
"""Reference fixtures for the differential attention module.

Writes tests/fixtures/attention/differential_<case>/*.npy and meta.json in the
format of scripts/make_attention_fixtures.py (read there for the file list),
computed with PyTorch from the formulas of Ye et al. 2024, "Differential
Transformer" (arXiv 2410.05258), section 2.1:

    [Q1 Q2] = X W_q^T + b_q,  [K1 K2] = X W_k^T + b_k,  V = X W_v^T + b_v
    DiffAttn = (softmax(Q1 K1^T s) - lambda softmax(Q2 K2^T s)) V,  s = 1/sqrt(d)
    lambda   = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init
    lambda_init = 0.8 - 0.6 exp(-0.3 l)      (l = layer_index, from 0)
    head_h   = (1 - lambda_init) RMSNorm(DiffAttn_h)   (eps 1e-5, learned weight)
    out      = concat(heads) W_o^T + b_o

with d = C / (2 H) per half, H differential heads, kv head g = h / (H / Hkv)
holding [K1 | K2] and V_g of width 2d; the four lambda vectors [d] and the
RMSNorm weight [2d] are shared by the heads of the layer (as in the paper:
"lambda is shared between heads within the same layer", and its code). RoPE
rotates the interleaved pairs (2i, 2i+1) of every d-wide half by p * theta_i,
theta_i = base^(-2i/d), queries at positions Tk - Tq + i, keys at j.

Every case is computed twice in float64 by two independent formulations (the
reference, per-half tensors and complex-number RoPE; and a check in the
layout of the paper's code, 2H "half heads" softmaxed at once, with RoPE by
cos/sin of rotated pairs), which must agree to 1e-10 on the output and every
gradient.

Only the differential_* case directories are removed and rewritten; the
other variants' fixtures are left alone. Reruns are bit-identical (fixed seeds,
one torch thread).

meta.json adds fp32_err_model, the a-priori float32 error estimate of every
reference tensor (fixture_error_model.py), computed on the paper-layout
formulation: it rotates with real cos/sin, which the error model covers, where
the reference's complex RoPE has no error rules; the two agree to 1e-10.

    python3 scripts/make_differential_fixtures.py [--error-model-only]
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402
from fixture_common import PROJ_NAMES  # noqa: E402

PREFIX = "differential_"
SEED = 20241007
WEIGHT_STD = 0.3   # projections and biases: softmax far from uniform
LAMBDA_STD = 0.4   # lambda vectors: larger than the paper's 0.1 so that exp(lq.lk) is not ~1
NORM_STD = 0.3     # RMSNorm weight 1 + N(0, 0.3^2), so that its gradient is exercised
EPS = 1e-5


def case(name, B, Tq, Tk, C, H, Hkv, causal, self_attn=True, padding=None, layer_index=0,
         window=0, positions="none", rope_base=10000.0):
    return dict(name=PREFIX + name, B=B, Tq=Tq, Tk=Tk, C=C, H=H, Hkv=Hkv, causal=causal,
                self_attention=self_attn, padding=padding, layer_index=layer_index, window=window,
                positions=positions, rope_base=rope_base)


CASES = [
    case("causal_l0", B=2, Tq=7, Tk=7, C=16, H=2, Hkv=2, causal=True, layer_index=0),
    case("causal_l2", B=2, Tq=7, Tk=7, C=16, H=2, Hkv=2, causal=True, layer_index=2),
    # d = 32 / 8 = 4, two kv heads for four query heads
    case("gqa_causal", B=2, Tq=6, Tk=6, C=32, H=4, Hkv=2, causal=True, layer_index=1),
    # row 0: nothing padded, row 1: the last 3 keys, row 2: scattered
    case("cross_padding", B=3, Tq=5, Tk=7, C=16, H=2, Hkv=2, causal=False, self_attn=False,
         padding=[[], [4, 5, 6], [1, 3]], layer_index=3),
    case("window", B=2, Tq=8, Tk=8, C=16, H=2, Hkv=2, causal=True, window=3, layer_index=1),
    case("window_bidir", B=2, Tq=7, Tk=7, C=16, H=2, Hkv=1, causal=False, window=2),
    case("rope", B=2, Tq=7, Tk=7, C=16, H=2, Hkv=2, causal=True, positions="rope", layer_index=5),
]

LAMBDA_NAMES = ["lambda_q1", "lambda_k1", "lambda_q2", "lambda_k2"]
PARAM_NAMES = PROJ_NAMES + LAMBDA_NAMES + ["norm_w"]


def lambda_init(layer_index):
    return 0.8 - 0.6 * math.exp(-0.3 * layer_index)


def allowed_mask(cfg, keep):
    """[B,1,Tq,Tk] bool, True = query may attend to key. Query i sits at p = i + Tk - Tq."""
    return fc.allowed_mask(cfg, keep, window=cfg["window"])


def rope_complex(x, pos, base):
    """x [..., T, d] real; pairs (2i, 2i+1) as complex numbers times exp(i pos theta_i)."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)          # [d/2]
    ang = pos.to(torch.float64).unsqueeze(-1) * theta                          # [T, d/2]
    rot = torch.polar(torch.ones_like(ang), ang)                               # complex128
    xc = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
    out = torch.view_as_real(xc * rot.to(xc.dtype))
    return out.reshape(x.shape)


def reference(x_q, x_kv, p, cfg, keep):
    """Differential attention from the paper's formulas, one tensor per half."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    d = C // (2 * H)
    group = H // Hkv
    s = 1.0 / math.sqrt(d)
    q = (x_q @ p["w_q"].T + p["b_q"]).view(B, Tq, H, 2, d).permute(3, 0, 2, 1, 4)      # [2,B,H,Tq,d]
    k = (x_kv @ p["w_k"].T + p["b_k"]).view(B, Tk, Hkv, 2, d).permute(3, 0, 2, 1, 4)   # [2,B,Hkv,Tk,d]
    v = (x_kv @ p["w_v"].T + p["b_v"]).view(B, Tk, Hkv, 2 * d).transpose(1, 2)         # [B,Hkv,Tk,2d]
    if cfg["positions"] == "rope":
        q = rope_complex(q, torch.arange(Tq) + (Tk - Tq), cfg["rope_base"])
        k = rope_complex(k, torch.arange(Tk), cfg["rope_base"])
    k = k.repeat_interleave(group, dim=2)   # kv head g serves query heads g*group .. (g+1)*group-1
    v = v.repeat_interleave(group, dim=1)
    allowed = allowed_mask(cfg, keep)
    assert allowed.any(-1).all(), "the reference assumes no fully masked query row"
    A = [torch.softmax((q[c] @ k[c].transpose(-1, -2) * s).masked_fill(~allowed, float("-inf")), dim=-1)
         for c in range(2)]
    lam_init = lambda_init(cfg["layer_index"])
    lam = (torch.exp((p["lambda_q1"] * p["lambda_k1"]).sum())
           - torch.exp((p["lambda_q2"] * p["lambda_k2"]).sum()) + lam_init)
    o = (A[0] - lam * A[1]) @ v                                                         # [B,H,Tq,2d]
    o = o / torch.sqrt(o.pow(2).mean(-1, keepdim=True) + EPS) * p["norm_w"]
    o = (1.0 - lam_init) * o
    o = o.transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def check_paper_layout(x_q, x_kv, p, cfg, keep):
    """The same computation in the layout of the paper's code: Q as 2H heads of width d
    (half c of head h is head 2h+c), K as 2Hkv heads, both maps softmaxed in one call, then
    viewed as [B,H,2,Tq,Tk]; RoPE by the rotate-every-two formula x cos + rot(x) sin."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    d = C // (2 * H)
    group = H // Hkv
    q = (x_q @ p["w_q"].T + p["b_q"]).view(B, Tq, 2 * H, d)
    k = (x_kv @ p["w_k"].T + p["b_k"]).view(B, Tk, 2 * Hkv, d)
    v = (x_kv @ p["w_v"].T + p["b_v"]).view(B, Tk, Hkv, 2 * d)

    def rope(x, pos):
        theta = cfg["rope_base"] ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
        ang = (pos.to(torch.float64).view(-1, 1) * theta).repeat_interleave(2, dim=-1)   # [T,d]
        cos, sin = ang.cos().to(x.dtype).view(1, -1, 1, d), ang.sin().to(x.dtype).view(1, -1, 1, d)
        rot = torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).reshape(x.shape)
        return x * cos + rot * sin

    if cfg["positions"] == "rope":
        q = rope(q, torch.arange(Tq) + (Tk - Tq))
        k = rope(k, torch.arange(Tk))
    q = q.transpose(1, 2)                                  # [B,2H,Tq,d]
    # query half-head 2h+c reads key half-head 2g+c, g = h // group
    idx = torch.tensor([2 * (hh // 2 // group) + hh % 2 for hh in range(2 * H)])
    k = k.transpose(1, 2)[:, idx]                          # [B,2H,Tk,d]
    v = v.transpose(1, 2).repeat_interleave(group, dim=1)  # [B,H,Tk,2d]
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(~allowed_mask(cfg, keep), float("-inf"))
    w = torch.softmax(scores, dim=-1).view(B, H, 2, Tq, Tk)
    lam_init = lambda_init(cfg["layer_index"])
    lam1 = torch.exp(torch.dot(p["lambda_q1"], p["lambda_k1"]))
    lam2 = torch.exp(torch.dot(p["lambda_q2"], p["lambda_k2"]))
    w = w[:, :, 0] - (lam1 - lam2 + lam_init) * w[:, :, 1]
    o = w @ v
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + EPS) * p["norm_w"] * (1.0 - lam_init)
    return o.transpose(1, 2).reshape(B, Tq, C) @ p["w_o"].T + p["b_o"]


def run_case(cfg, index):
    C, H, Hkv = cfg["C"], cfg["H"], cfg["Hkv"]
    assert C % (2 * H) == 0 and H % Hkv == 0
    d = C // (2 * H)
    seed = SEED + 1000 * index

    def extra_params(randn):
        prm = {n: randn(d, std=LAMBDA_STD) for n in LAMBDA_NAMES}
        prm["norm_w"] = randn(2 * d, std=NORM_STD, mean=1.0)
        return prm

    inp = fc.make_inputs(cfg, seed, Ckv=Hkv * 2 * d, weight_std=WEIGHT_STD,
                         extra_params=extra_params)
    assert list(inp.params) == PARAM_NAMES

    ref = fc.forward_backward(inp, cfg, reference, torch.float64)
    f32 = fc.forward_backward(inp, cfg, reference, torch.float32)
    fc.check_finite(cfg["name"], ref)
    other = fc.forward_backward(inp, cfg, check_paper_layout, torch.float64)
    fc.agree(cfg["name"], other, ref, "the paper-layout check")

    params = inp.params
    fp32_err = fc.fp32_errors(f32, ref)
    lam = (math.exp(float(torch.dot(params["lambda_q1"].double(), params["lambda_k1"].double())))
           - math.exp(float(torch.dot(params["lambda_q2"].double(), params["lambda_k2"].double())))
           + lambda_init(cfg["layer_index"]))
    meta = fc.base_meta(cfg, seed, inp, ref, fp32_err, WEIGHT_STD)
    meta.update({
        "type": "differential",
        "scale": "inv_sqrt_dk",
        "scale_value": 1.0 / math.sqrt(d),
        "layer_index": cfg["layer_index"],
        "lambda_init": lambda_init(cfg["layer_index"]),
        "lambda": lam,
        "window": cfg["window"],
        "positions": cfg["positions"],
        "rope_base": cfg["rope_base"],
    })
    meta["fp32_err_model"] = fc.error_model_meta(inp, cfg, check_paper_layout, ref)
    fc.write_case(fc.OUT_DIR, cfg, inp, ref, meta)
    name, err = fc.worst(fp32_err)
    print(f"{cfg['name']:<34} lambda {lam:+.4f}  torch fp32 vs fp64: worst {name} {err:.3e}")


def main():
    return fc.run_all(CASES, run_case, lambda entry: entry.startswith(PREFIX), seed=SEED,
                      label=f"/{PREFIX}*")


if __name__ == "__main__":
    sys.exit(main())
