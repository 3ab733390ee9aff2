#!/usr/bin/python3
"""Reference fixtures for the scaled_dot_product attention module.

Writes tests/fixtures/attention/<case>/*.npy and meta.json, computed with
PyTorch as an independent implementation (run with a python that has torch and
numpy; the committed fixtures were made with torch 1.13, see fixture_common.py
for --error-model-only):

    python3 scripts/make_attention_fixtures.py [--error-model-only]

Per case:
  inputs (float32, what the C++ test feeds to the module)
    x_q.npy [B,Tq,C]           x_kv.npy [B,Tk,C] (cross-attention only; self-attention uses x_q)
    dout.npy [B,Tq,C]          the upstream gradient (loss = sum(out * dout))
    w_q.npy b_q.npy w_k.npy b_k.npy w_v.npy b_v.npy w_o.npy b_o.npy   (our parameter names)
    key_keep.npy [B,Tk] int32  (1 = attend, 0 = padding; only for key-padding cases)
  references (float64, computed by autograd in float64 from the float32 inputs)
    out.npy, dx_q.npy, dx_kv.npy (cross only), grad_w_q.npy, grad_b_q.npy, ...
    For self-attention x_q and x_kv are one tensor, so dx_q.npy holds both paths.
  meta.json: the config, torch_fp32_err (the max |torch float32 - torch float64| of every
    reference tensor, for information) and fp32_err_model, the a-priori float32 error estimate
    of every reference tensor (fixture_error_model.py) that the C++ test's bound is made of.

The reference implementation below is written from torch primitives (no
nn.MultiheadAttention), and cross-checked in this script against
torch.nn.functional.scaled_dot_product_attention when it exists (torch >= 2.0)
and always against torch's own multi-head attention
(F.multi_head_attention_forward, the core of nn.MultiheadAttention; GQA via
expanded K/V projections, the softmax scale folded into W_q), on the output
and on every gradient.

Cases named sdpa_* exercise the options of the attention zoo on the same module (meta.json
adds "type", "window", "positions", "rope_base"); their reference writes each option from its
paper's definition (see rope_rotate_paper, alibi_bias, allowed_mask below; the slopes and
the masks are in fixture_common.py):
  window w (sliding window, as in Longformer / Mistral): query at absolute position p sees key r
    iff p - w < r <= p when causal, |p - r| < w when not (a symmetric band);
  rope (Su et al. 2021, RoFormer, eq. 34): every head's pairs (x_2i, x_2i+1) of a query / key at
    position m rotated by m*theta_i, theta_i = base^(-2i/D); cross-checked against the complex
    form (x_2i + i x_2i+1) * e^(i m theta_i);
  alibi (Press et al. 2022): score + (-m_h * (p - r)), slopes from the paper's recipe; for a
    non-causal slot the symmetric -m_h * |p - r|.
Queries are at absolute positions (Tk - Tq) + i, keys at j (aligned to the end).
Window and ALiBi are also cross-checked against F.multi_head_attention_forward with an
additive float mask.

Only the case directories this script owns are rewritten; other directories under
tests/fixtures/attention (other variants' fixtures) are left alone.

Reruns are bit-identical: fixed seeds per case and one torch thread.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402

SEED = 20240611
WEIGHT_STD = 0.3  # large enough that the softmax is far from uniform


def case(name, B, Tq, Tk, C, H, Hkv, causal, scale="inv_sqrt_dk", self_attn=True, padding=None,
         **options):
    """options (sdpa_* cases only): window, positions, rope_base; written to meta.json with
    "type": "scaled_dot_product"."""
    c = dict(name=name, B=B, Tq=Tq, Tk=Tk, C=C, H=H, Hkv=Hkv, causal=causal, scale=scale,
             self_attention=self_attn, padding=padding)
    for k in options:
        assert k in ("window", "positions", "rope_base"), k
    if options:
        c["options"] = dict(options)
    return c


def opt(cfg, key):
    defaults = {"window": 0, "positions": "none", "rope_base": 10000.0}
    return cfg.get("options", {}).get(key, defaults[key])


CASES = [
    case("causal_mha", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True),
    case("nomask_mha", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=False),
    case("gqa_causal", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=2, causal=True),
    case("mqa_causal", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=1, causal=True),
    case("cross_nomask", B=2, Tq=5, Tk=9, C=16, H=4, Hkv=4, causal=False, self_attn=False),
    # row 0: nothing padded, row 1: the last 3 keys padded, row 2: scattered padding
    case("key_padding", B=3, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=False,
         padding=[[], [4, 5, 6], [1, 3]]),
    case("scale_none", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True, scale="none"),
    # prefix continuation: 4 new queries over 9 keys (5 cached + 4 new), causal aligned to the end
    case("causal_prefix", B=2, Tq=4, Tk=9, C=16, H=4, Hkv=4, causal=True, self_attn=False),
    # everything at once: GQA cross-attention, causal prefix, key padding, a numeric scale
    case("gqa_cross_padding_scale", B=2, Tq=5, Tk=8, C=16, H=4, Hkv=2, causal=True, scale="0.35",
         self_attn=False, padding=[[0, 2], [6, 7]]),
    # ---- options of the attention zoo (sliding window, RoPE, ALiBi) ----
    case("sdpa_window_causal", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=4, causal=True, window=3),
    # symmetric band |p - r| < 3, with key padding on top (no row loses its whole band)
    case("sdpa_window_nomask_padding", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=2, causal=False, window=3,
         padding=[[], [0, 7, 8]]),
    case("sdpa_rope_causal_mha", B=2, Tq=8, Tk=8, C=16, H=2, Hkv=2, causal=True, positions="rope"),
    case("sdpa_rope_gqa", B=2, Tq=8, Tk=8, C=24, H=4, Hkv=2, causal=True, positions="rope",
         rope_base=100.0),
    # queries are the last 4 of 9 positions (a prefix continuation): rotated by 5..8
    case("sdpa_rope_prefix", B=2, Tq=4, Tk=9, C=24, H=4, Hkv=2, causal=True, self_attn=False,
         positions="rope"),
    # H = 6 is not a power of two: the paper's slope recipe
    case("sdpa_alibi_causal", B=2, Tq=8, Tk=8, C=24, H=6, Hkv=6, causal=True, positions="alibi"),
    case("sdpa_alibi_window", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=2, causal=True, window=4,
         positions="alibi"),
    case("sdpa_alibi_nomask", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=False, positions="alibi",
         padding=[[], [6]]),
]


def scale_value(scale, D):
    if scale == "inv_sqrt_dk":
        return 1.0 / math.sqrt(D)
    if scale == "none":
        return 1.0
    return float(np.float32(float(scale)))  # the C++ side parses the number as float


def allowed_mask(cfg, keep):
    """[B,1,Tq,Tk] bool, True = query may attend to key."""
    return fc.allowed_mask(cfg, keep, window=opt(cfg, "window"))


def query_positions(Tq, Tk):
    return torch.arange(Tq, dtype=torch.float64) + (Tk - Tq)


def rope_angles(T_pos, D, base):
    """[T, D/2] float64: m * theta_i, theta_i = base^(-2i/D), i = 0..D/2-1 (RoFormer eq. 15)."""
    theta = float(base) ** (-2.0 * torch.arange(D // 2, dtype=torch.float64) / D)
    return T_pos.view(-1, 1) * theta.view(1, -1)


def rope_rotate_paper(x, pos, base):
    """x [B, heads, T, D] at positions pos [T]. RoFormer eq. (34): R x = x * cos(m theta) +
    rot(x) * sin(m theta), with rot(x) = (-x2, x1, -x4, x3, ...) and each cos/sin repeated for
    the two entries of its pair."""
    D = x.shape[-1]
    ang = rope_angles(pos, D, base)
    cos = torch.cos(ang).repeat_interleave(2, dim=-1).to(x.dtype)  # [T, D]
    sin = torch.sin(ang).repeat_interleave(2, dim=-1).to(x.dtype)
    rot = torch.stack([-x[..., 1::2], x[..., 0::2]], dim=-1).reshape(x.shape)
    return x * cos + rot * sin


def rope_rotate_complex(x, pos, base):
    """The same rotation as a complex product: (x_2i + i x_2i+1) * e^(i m theta_i)."""
    D = x.shape[-1]
    ang = rope_angles(pos, D, base)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], D // 2, 2).contiguous())
    e = torch.polar(torch.ones_like(ang), ang).to(z.dtype)
    return torch.view_as_real(z * e).reshape(x.shape)


def alibi_bias(cfg, dtype):
    """[1,H,Tq,Tk]: -m_h * (p - r) for the causal mask (paper), -m_h * |p - r| otherwise."""
    H, Tq, Tk = cfg["H"], cfg["Tq"], cfg["Tk"]
    p = query_positions(Tq, Tk).view(Tq, 1)
    r = torch.arange(Tk, dtype=torch.float64).view(1, Tk)
    dist = (p - r) if cfg["causal"] else (p - r).abs()
    m = torch.tensor(fc.alibi_slopes(H), dtype=torch.float64).view(1, H, 1, 1)
    return (-m * dist.view(1, 1, Tq, Tk)).to(dtype)


def reference_attention(x_q, x_kv, p, cfg, keep, rope=rope_rotate_paper):
    """Multi-head attention from torch primitives (any dtype)."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    q, k, v = fc.project_heads(x_q, x_kv, p, H, Hkv)  # [B,H,Tq,D], [B,Hkv,Tk,D]
    if opt(cfg, "positions") == "rope":
        q = rope(q, query_positions(Tq, Tk), opt(cfg, "rope_base"))
        k = rope(k, torch.arange(Tk, dtype=torch.float64), opt(cfg, "rope_base"))
    # kv head g serves query heads g*group .. (g+1)*group-1
    k = k.repeat_interleave(group, dim=1)  # [B,H,Tk,D]
    v = v.repeat_interleave(group, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale_value(cfg["scale"], D)  # [B,H,Tq,Tk]
    if opt(cfg, "positions") == "alibi":
        s = s + alibi_bias(cfg, s.dtype)
    s = s.masked_fill(~allowed_mask(cfg, keep), float("-inf"))
    w = torch.softmax(s, dim=-1)
    o = (w @ v).transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def check_with_sdpa(x_q, x_kv, p, cfg, keep):
    """Same computation with F.scaled_dot_product_attention (torch >= 2.0)."""
    B, Tq, C = x_q.shape
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    s = scale_value(cfg["scale"], D)
    q, k, v = fc.project_heads(x_q, x_kv, p, H, Hkv)
    k = k.repeat_interleave(group, 1)
    v = v.repeat_interleave(group, 1)
    mask = allowed_mask(cfg, keep)  # SDPA: True = takes part in attention
    try:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=s)
    except TypeError:  # torch 2.0 has no scale argument: fold it into q
        o = F.scaled_dot_product_attention(q * (s * math.sqrt(D)), k, v, attn_mask=mask)
    o = o.transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def check_with_mha(x_q, x_kv, p, cfg, keep):
    """Same computation with torch's multi-head attention (fc.torch_mha): it scales by 1/sqrt(D)
    and has no GQA, so the K/V projections are expanded to H heads and our scale is folded into
    W_q, b_q."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H = cfg["H"]
    D = C // H
    fold = scale_value(cfg["scale"], D) * math.sqrt(D)
    attn_mask = None
    if cfg["causal"]:
        i = torch.arange(Tq).unsqueeze(1)
        j = torch.arange(Tk).unsqueeze(0)
        attn_mask = j > i + (Tk - Tq)  # MHA: True = not allowed
    if "options" in cfg:
        # window / ALiBi: an additive float mask [B*H, Tq, Tk] (-inf outside the band, the ALiBi
        # bias inside); the padding still goes through key_padding_mask
        band = allowed_mask(dict(cfg, B=1), None).view(1, 1, Tq, Tk)
        add = torch.zeros(1, H, Tq, Tk, dtype=x_q.dtype)
        if opt(cfg, "positions") == "alibi":
            add = add + alibi_bias(cfg, x_q.dtype)
        add = add.masked_fill(~band, float("-inf"))
        attn_mask = add.expand(B, H, Tq, Tk).reshape(B * H, Tq, Tk)
    return fc.torch_mha(x_q, x_kv, p, H, cfg["Hkv"], fold, attn_mask, keep)


def run_case(cfg, index):
    C, H, Hkv = cfg["C"], cfg["H"], cfg["Hkv"]
    assert C % H == 0 and H % Hkv == 0
    D = C // H
    seed = SEED + 1000 * index
    inp = fc.make_inputs(cfg, seed, Ckv=Hkv * D, weight_std=WEIGHT_STD)

    def forward_backward(dtype, impl=reference_attention):
        return fc.forward_backward(inp, cfg, impl, dtype)

    ref = forward_backward(torch.float64)
    f32 = forward_backward(torch.float32)
    fc.check_finite(cfg["name"], ref)

    # cross-checks of the reference implementation (float64: agreement to ~1e-12)
    if opt(cfg, "positions") == "rope":
        # torch's attention has no RoPE: check the rotation against its complex form instead
        def complex_rope(xq, xkv, p, cfg, keep):
            return reference_attention(xq, xkv, p, cfg, keep, rope=rope_rotate_complex)
        fc.agree(cfg["name"], forward_backward(torch.float64, complex_rope), ref, "complex RoPE")
    else:
        if hasattr(F, "scaled_dot_product_attention") and opt(cfg, "positions") == "none":
            fc.agree(cfg["name"], forward_backward(torch.float64, check_with_sdpa), ref,
                     "F.scaled_dot_product_attention")
        fc.agree(cfg["name"], forward_backward(torch.float64, check_with_mha), ref,
                 "multi_head_attention_forward")

    fp32_err = fc.fp32_errors(f32, ref)
    meta = fc.base_meta(cfg, seed, inp, ref, fp32_err, WEIGHT_STD)
    meta["scale"] = cfg["scale"]
    meta["scale_value"] = scale_value(cfg["scale"], D)
    if "options" in cfg:
        meta["type"] = "scaled_dot_product"
        meta["window"] = opt(cfg, "window")
        meta["positions"] = opt(cfg, "positions")
        meta["rope_base"] = opt(cfg, "rope_base")
    meta["fp32_err_model"] = fc.error_model_meta(inp, cfg, reference_attention, ref)
    fc.write_case(fc.OUT_DIR, cfg, inp, ref, meta)
    name, err = fc.worst(fp32_err)
    print(f"{cfg['name']:<26} torch fp32 vs fp64: worst {name} {err:.3e}")


def main():
    # only this script's case directories are replaced: other variants write theirs here too
    names = {c["name"] for c in CASES}
    return fc.run_all(CASES, run_case, lambda entry: entry in names, seed=SEED)


if __name__ == "__main__":
    sys.exit(main())
