#!/usr/bin/python3
"""Reference fixtures for the `linear` attention module (src/attention/linear.cpp).

Linear attention, Katharopoulos, Vyas, Pappas, Fleuret 2020, "Transformers are RNNs: Fast
Autoregressive Transformers with Linear Attention", eq. (4)-(7), with φ(x) = elu(x) + 1:

    out_i = Σ_j m_ij φ(q_i)ᵀφ(k_j) v_j / (Σ_j m_ij φ(q_i)ᵀφ(k_j) + ε),    ε = 1e-6

m_ij = 1 if query i may see key j (causal: j <= i + Tk - Tq; key padding: key j kept), else 0.

Writes tests/fixtures/attention/linear_<case>/ in the format of scripts/make_attention_fixtures.py
(the generic fixture test in tests/attention/test_attention.cpp reads every case directory):
  inputs (float32): x_q.npy [B,Tq,C], x_kv.npy [B,Tk,C] (cross only), dout.npy [B,Tq,C],
    w_q b_q w_k b_k w_v b_v w_o b_o .npy, key_keep.npy [B,Tk] int32 (padding cases only)
  references (float64, torch autograd in float64 from the float32 inputs):
    out, dx_q, dx_kv (cross only), grad_<param>
  meta.json: the config ("type": "linear") and torch_fp32_err, max |torch fp32 - torch fp64| per
    tensor, the error scale of the C++ test.

The reference is the quadratic form: it materialises the Tq×Tk matrix φ(Q)φ(K)ᵀ, zeroes the
masked entries and normalises the rows, the opposite association of the C++ module (prefix sums
of φ(k)vᵀ, no Tq×Tk buffer). It is cross-checked here, in float64, against a third formulation,
the paper's linear form written with torch.cumsum over the outer products φ(k_j) v_jᵀ.

Run with the system python (torch + numpy):   /usr/bin/python3 scripts/make_linear_fixtures.py
Only the linear_* case directories are replaced; reruns are bit-identical (fixed seeds, one
torch thread).
"""
import glob
import json
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "attention")
PREFIX = "linear_"
SEED = 20240923
WEIGHT_STD = 0.3
EPS = 1e-6  # LinearAttention::kEps

PARAM_NAMES = ["w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o"]


def case(name, B, Tq, Tk, C, H, Hkv, causal, self_attn=True, padding=None):
    return dict(name=PREFIX + name, B=B, Tq=Tq, Tk=Tk, C=C, H=H, Hkv=Hkv, causal=causal,
                self_attention=self_attn, padding=padding)


CASES = [
    case("causal_mha", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True),
    case("nomask_mha", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=False),
    case("gqa_causal", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=2, causal=True),
    # cross-attention, no causal mask; row 0 nothing padded, row 1 the last 3 keys, row 2 scattered
    case("cross_padding", B=3, Tq=5, Tk=8, C=16, H=4, Hkv=4, causal=False, self_attn=False,
         padding=[[], [5, 6, 7], [0, 3]]),
    # prefix continuation: 4 new queries over 9 keys, the causal mask aligned to the end
    case("causal_prefix", B=2, Tq=4, Tk=9, C=16, H=4, Hkv=4, causal=True, self_attn=False),
    # MQA self-attention, causal + key padding (row 1: query 0 sees only a padded key)
    case("mqa_causal_padding", B=2, Tq=6, Tk=6, C=16, H=4, Hkv=1, causal=True,
         padding=[[2], [0, 4]]),
]


def allowed_mask(cfg, keep):
    """[B,1,Tq,Tk] bool, True = query may see key."""
    B, Tq, Tk = cfg["B"], cfg["Tq"], cfg["Tk"]
    allowed = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if cfg["causal"]:
        i = torch.arange(Tq).unsqueeze(1)
        j = torch.arange(Tk).unsqueeze(0)
        allowed = allowed & (j <= i + (Tk - Tq)).view(1, 1, Tq, Tk)
    if keep is not None:
        allowed = allowed & keep.bool().view(B, 1, 1, Tk)
    return allowed


def project(x_q, x_kv, p, cfg):
    """Q [B,H,Tq,D], K and V [B,H,Tk,D] (kv head g repeated for query heads g*group..)."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    q = (x_q @ p["w_q"].T + p["b_q"]).view(B, Tq, H, D).transpose(1, 2)
    k = (x_kv @ p["w_k"].T + p["b_k"]).view(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(group, 1)
    v = (x_kv @ p["w_v"].T + p["b_v"]).view(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(group, 1)
    return q, k, v


def reference_linear_attention(x_q, x_kv, p, cfg, keep):
    """Quadratic form: A = mask ⊙ φ(Q)φ(K)ᵀ, O = A V / (rowsum(A) + ε)."""
    B, Tq, C = x_q.shape
    q, k, v = project(x_q, x_kv, p, cfg)
    fq = F.elu(q) + 1.0
    fk = F.elu(k) + 1.0
    a = fq @ fk.transpose(-1, -2)  # [B,H,Tq,Tk]
    a = a.masked_fill(~allowed_mask(cfg, keep), 0.0)
    o = (a @ v) / (a.sum(dim=-1, keepdim=True) + EPS)
    o = o.transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def check_cumsum_form(x_q, x_kv, p, cfg, keep):
    """The paper's linear form: S_j = Σ_{j'≤j} φ(k_j')v_j'ᵀ by cumsum, read at each query's last key."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    q, k, v = project(x_q, x_kv, p, cfg)
    fq = F.elu(q) + 1.0
    fk = F.elu(k) + 1.0
    if keep is not None:
        fk = fk * keep.to(fk.dtype).view(B, 1, Tk, 1)
    kv = torch.einsum("bhjd,bhje->bhjde", fk, v)
    # prepend a zero state so that "no visible key" reads index 0
    S = torch.cat([torch.zeros_like(kv[:, :, :1]), torch.cumsum(kv, dim=2)], dim=2)  # [B,H,Tk+1,D,D]
    z = torch.cat([torch.zeros_like(fk[:, :, :1]), torch.cumsum(fk, dim=2)], dim=2)  # [B,H,Tk+1,D]
    i = torch.arange(Tq)
    lim = (i + (Tk - Tq) + 1).clamp(0, Tk) if cfg["causal"] else torch.full((Tq,), Tk)
    S = S[:, :, lim]  # [B,H,Tq,D,D]
    z = z[:, :, lim]
    num = torch.einsum("bhid,bhide->bhie", fq, S)
    den = torch.einsum("bhid,bhid->bhi", fq, z).unsqueeze(-1) + EPS
    o = (num / den).transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def run_case(cfg, index):
    B, Tq, Tk, C, H, Hkv = (cfg[k] for k in ("B", "Tq", "Tk", "C", "H", "Hkv"))
    assert C % H == 0 and H % Hkv == 0
    D = C // H
    Ckv = Hkv * D
    if cfg["self_attention"]:
        assert Tq == Tk
    seed = SEED + 1000 * index
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * std).to(torch.float32)

    x_q = randn(B, Tq, C)
    x_kv = x_q if cfg["self_attention"] else randn(B, Tk, C)
    params = {
        "w_q": randn(C, C, std=WEIGHT_STD), "b_q": randn(C, std=WEIGHT_STD),
        "w_k": randn(Ckv, C, std=WEIGHT_STD), "b_k": randn(Ckv, std=WEIGHT_STD),
        "w_v": randn(Ckv, C, std=WEIGHT_STD), "b_v": randn(Ckv, std=WEIGHT_STD),
        "w_o": randn(C, C, std=WEIGHT_STD), "b_o": randn(C, std=WEIGHT_STD),
    }
    dout = randn(B, Tq, C)
    keep = None
    if cfg["padding"] is not None:
        keep = torch.ones(B, Tk, dtype=torch.int32)
        for b, pads in enumerate(cfg["padding"]):
            for j in pads:
                keep[b, j] = 0

    def forward_backward(dtype, impl=reference_linear_attention):
        xq = x_q.to(dtype).clone().requires_grad_(True)
        xkv = xq if cfg["self_attention"] else x_kv.to(dtype).clone().requires_grad_(True)
        p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params.items()}
        out = impl(xq, xkv, p, cfg, keep)
        (out * dout.to(dtype)).sum().backward()
        res = {"out": out.detach(), "dx_q": xq.grad.detach()}
        if not cfg["self_attention"]:
            res["dx_kv"] = xkv.grad.detach()
        for k in PARAM_NAMES:
            res["grad_" + k] = p[k].grad.detach()
        return res

    ref = forward_backward(torch.float64)
    f32 = forward_backward(torch.float32)
    for k, v in ref.items():
        assert torch.isfinite(v).all(), f"{cfg['name']}: non-finite reference {k}"
    other = forward_backward(torch.float64, check_cumsum_form)
    for k in ref:
        err = (other[k] - ref[k]).abs().max().item()
        assert err < 1e-10, f"{cfg['name']}: cumsum form disagrees on {k}: {err}"

    d = os.path.join(OUT_DIR, cfg["name"])
    os.makedirs(d)

    def save(name, t, dtype):
        np.save(os.path.join(d, name + ".npy"), t.detach().numpy().astype(dtype))

    save("x_q", x_q, np.float32)
    if not cfg["self_attention"]:
        save("x_kv", x_kv, np.float32)
    save("dout", dout, np.float32)
    for k in PARAM_NAMES:
        save(k, params[k], np.float32)
    if keep is not None:
        save("key_keep", keep, np.int32)
    for k, v in ref.items():
        save(k, v, np.float64)

    fp32_err = {k: (f32[k].to(torch.float64) - ref[k]).abs().max().item() for k in ref}
    meta = {
        "case": cfg["name"],
        "type": "linear",
        "feature_map": "elu+1",
        "eps": EPS,
        "B": B, "Tq": Tq, "Tk": Tk, "C": C, "H": H, "Hkv": Hkv,
        "causal": cfg["causal"],
        "scale": "inv_sqrt_dk",  # the spec's default; linear attention has no score scale
        "self_attention": cfg["self_attention"],
        "bias": True,
        "key_padding": keep is not None,
        "seed": seed,
        "weight_std": WEIGHT_STD,
        "torch_version": torch.__version__,
        "tensors": sorted(ref.keys()),
        "torch_fp32_err": fp32_err,
    }
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    worst = max(fp32_err.items(), key=lambda kv: kv[1])
    print(f"{cfg['name']:<28} torch fp32 vs fp64: worst {worst[0]} {worst[1]:.3e}")


def main():
    torch.set_num_threads(1)  # fp32 results (and so meta.json) independent of the machine's cores
    os.makedirs(OUT_DIR, exist_ok=True)
    for old in glob.glob(os.path.join(OUT_DIR, PREFIX + "*")):
        shutil.rmtree(old)
    for i, cfg in enumerate(CASES):
        run_case(cfg, i)
    total = sum(os.path.getsize(os.path.join(r, f))
                for c in CASES for r, _, fs in os.walk(os.path.join(OUT_DIR, c["name"])) for f in fs)
    print(f"wrote {len(CASES)} cases to {os.path.relpath(OUT_DIR, ROOT)}/{PREFIX}* ({total / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
