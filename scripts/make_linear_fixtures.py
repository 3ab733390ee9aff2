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
  meta.json: the config ("type": "linear"), torch_fp32_err (max |torch fp32 - torch fp64| per
    tensor) and fp32_err_model (the a-priori float32 error estimate per tensor, the C++ test's
    bound; see fixture_error_model.py).

The reference is the quadratic form: it materialises the Tq×Tk matrix φ(Q)φ(K)ᵀ, zeroes the
masked entries and normalises the rows, the opposite association of the C++ module (prefix sums
of φ(k)vᵀ, no Tq×Tk buffer). It is cross-checked here, in float64, against a third formulation,
the paper's linear form written with torch.cumsum over the outer products φ(k_j) v_jᵀ.

Run with a python that has torch + numpy:   python3 scripts/make_linear_fixtures.py
(--error-model-only: see fixture_common.py)
Only the linear_* case directories are replaced; reruns are bit-identical (fixed seeds, one
torch thread).
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

PREFIX = "linear_"
SEED = 20240923
WEIGHT_STD = 0.3
EPS = 1e-6  # LinearAttention::kEps


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
    return fc.allowed_mask(cfg, keep)


def project(x_q, x_kv, p, cfg):
    """Q [B,H,Tq,D], K and V [B,H,Tk,D] (kv head g repeated for query heads g*group..)."""
    group = cfg["H"] // cfg["Hkv"]
    q, k, v = fc.project_heads(x_q, x_kv, p, cfg["H"], cfg["Hkv"])
    return q, k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)


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
    C, H, Hkv = cfg["C"], cfg["H"], cfg["Hkv"]
    assert C % H == 0 and H % Hkv == 0
    seed = SEED + 1000 * index
    inp = fc.make_inputs(cfg, seed, Ckv=Hkv * (C // H), weight_std=WEIGHT_STD)

    ref = fc.forward_backward(inp, cfg, reference_linear_attention, torch.float64)
    f32 = fc.forward_backward(inp, cfg, reference_linear_attention, torch.float32)
    fc.check_finite(cfg["name"], ref)
    other = fc.forward_backward(inp, cfg, check_cumsum_form, torch.float64)
    fc.agree(cfg["name"], other, ref, "cumsum form")

    fp32_err = fc.fp32_errors(f32, ref)
    meta = fc.base_meta(cfg, seed, inp, ref, fp32_err, WEIGHT_STD)
    meta.update({
        "type": "linear",
        "feature_map": "elu+1",
        "eps": EPS,
        "scale": "inv_sqrt_dk",  # the spec's default; linear attention has no score scale
    })
    meta["fp32_err_model"] = fc.error_model_meta(inp, cfg, reference_linear_attention, ref)
    fc.write_case(fc.OUT_DIR, cfg, inp, ref, meta)
    name, err = fc.worst(fp32_err)
    print(f"{cfg['name']:<28} torch fp32 vs fp64: worst {name} {err:.3e}")


def main():
    return fc.run_all(CASES, run_case, lambda entry: entry.startswith(PREFIX), label=f"/{PREFIX}*")


if __name__ == "__main__":
    sys.exit(main())
