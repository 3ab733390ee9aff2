#!/usr/bin/python3
"""Reference fixtures for the scaled_dot_product attention module.

Writes tests/fixtures/attention/<case>/*.npy and meta.json, computed with
PyTorch as an independent implementation (run with the system python, which
has torch and numpy):

    /usr/bin/python3 scripts/make_attention_fixtures.py

Per case:
  inputs (float32, what the C++ test feeds to the module)
    x_q.npy [B,Tq,C]           x_kv.npy [B,Tk,C] (cross-attention only; self-attention uses x_q)
    dout.npy [B,Tq,C]          the upstream gradient (loss = sum(out * dout))
    w_q.npy b_q.npy w_k.npy b_k.npy w_v.npy b_v.npy w_o.npy b_o.npy   (our parameter names)
    key_keep.npy [B,Tk] int32  (1 = attend, 0 = padding; only for key-padding cases)
  references (float64, computed by autograd in float64 from the float32 inputs)
    out.npy, dx_q.npy, dx_kv.npy (cross only), grad_w_q.npy, grad_b_q.npy, ...
    For self-attention x_q and x_kv are one tensor, so dx_q.npy holds both paths.
  meta.json: the config plus torch_fp32_err, the max |torch float32 - torch float64|
    of every reference tensor, which the C++ test uses as its error scale.

The reference implementation below is written from torch primitives (no
nn.MultiheadAttention), and cross-checked in this script against
torch.nn.functional.scaled_dot_product_attention when it exists (torch >= 2.0)
and always against torch's own multi-head attention
(F.multi_head_attention_forward, the core of nn.MultiheadAttention; GQA via
expanded K/V projections, the softmax scale folded into W_q), on the output
and on every gradient.

Cases named sdpa_* exercise the options of the attention zoo on the same module (meta.json
adds "type", "window", "positions", "rope_base"); their reference writes each option from its
paper's definition (see rope_rotate_paper, alibi_slopes, allowed_mask below):
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
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "attention")
SEED = 20240611
WEIGHT_STD = 0.3  # large enough that the softmax is far from uniform

PARAM_NAMES = ["w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o"]


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
    B, Tq, Tk = cfg["B"], cfg["Tq"], cfg["Tk"]
    allowed = torch.ones(B, 1, Tq, Tk, dtype=torch.bool)
    if cfg["causal"]:
        i = torch.arange(Tq).unsqueeze(1)
        j = torch.arange(Tk).unsqueeze(0)
        allowed = allowed & (j <= i + (Tk - Tq)).view(1, 1, Tq, Tk)
    w = opt(cfg, "window")
    if w > 0:
        p = (torch.arange(Tq) + (Tk - Tq)).unsqueeze(1)  # absolute query positions
        r = torch.arange(Tk).unsqueeze(0)
        band = (p - r < w) if cfg["causal"] else ((p - r).abs() < w)
        allowed = allowed & band.view(1, 1, Tq, Tk)
    if keep is not None:
        allowed = allowed & keep.bool().view(B, 1, 1, Tk)
    return allowed


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


def alibi_slopes(H):
    """Press et al. 2022: a geometric sequence 2^(-8/n), 2^(-16/n), ... for n a power of two;
    otherwise the slopes of the closest lower power of two n, followed by every other slope of
    2n heads (the paper's recipe for other head counts)."""
    def power_of_2(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(H).is_integer():
        return power_of_2(H)
    n = 2 ** math.floor(math.log2(H))
    return power_of_2(n) + alibi_slopes(2 * n)[0::2][:H - n]


def alibi_bias(cfg, dtype):
    """[1,H,Tq,Tk]: -m_h * (p - r) for the causal mask (paper), -m_h * |p - r| otherwise."""
    H, Tq, Tk = cfg["H"], cfg["Tq"], cfg["Tk"]
    p = query_positions(Tq, Tk).view(Tq, 1)
    r = torch.arange(Tk, dtype=torch.float64).view(1, Tk)
    dist = (p - r) if cfg["causal"] else (p - r).abs()
    m = torch.tensor(alibi_slopes(H), dtype=torch.float64).view(1, H, 1, 1)
    return (-m * dist.view(1, 1, Tq, Tk)).to(dtype)


def reference_attention(x_q, x_kv, p, cfg, keep, rope=rope_rotate_paper):
    """Multi-head attention from torch primitives (any dtype)."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    q = x_q @ p["w_q"].T + p["b_q"]  # [B,Tq,H*D]
    k = x_kv @ p["w_k"].T + p["b_k"]  # [B,Tk,Hkv*D]
    v = x_kv @ p["w_v"].T + p["b_v"]
    q = q.view(B, Tq, H, D).transpose(1, 2)  # [B,H,Tq,D]
    k = k.view(B, Tk, Hkv, D).transpose(1, 2)  # [B,Hkv,Tk,D]
    v = v.view(B, Tk, Hkv, D).transpose(1, 2)
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
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    s = scale_value(cfg["scale"], D)
    q = (x_q @ p["w_q"].T + p["b_q"]).view(B, Tq, H, D).transpose(1, 2)
    k = (x_kv @ p["w_k"].T + p["b_k"]).view(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(group, 1)
    v = (x_kv @ p["w_v"].T + p["b_v"]).view(B, Tk, Hkv, D).transpose(1, 2).repeat_interleave(group, 1)
    mask = allowed_mask(cfg, keep)  # SDPA: True = takes part in attention
    try:
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=s)
    except TypeError:  # torch 2.0 has no scale argument: fold it into q
        o = F.scaled_dot_product_attention(q * (s * math.sqrt(D)), k, v, attn_mask=mask)
    o = o.transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def check_with_mha(x_q, x_kv, p, cfg, keep):
    """Same computation with torch's multi-head attention: F.multi_head_attention_forward, the
    function nn.MultiheadAttention.forward runs (called directly so that gradients flow back to
    our parameter tensors). It scales by 1/sqrt(D) and has no GQA, so the K/V projections are
    expanded to H heads and our scale is folded into W_q, b_q (both differentiable)."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    H, Hkv = cfg["H"], cfg["Hkv"]
    D = C // H
    group = H // Hkv
    fold = scale_value(cfg["scale"], D) * math.sqrt(D)

    def expand_w(w):  # [Hkv*D, C] -> [H*D, C], kv head g repeated for query heads g*group..
        return w.view(Hkv, D, C).repeat_interleave(group, 0).reshape(C, C)

    def expand_b(b):
        return b.view(Hkv, D).repeat_interleave(group, 0).reshape(C)

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
    kpm = None if keep is None else ~keep.bool()  # MHA: True = ignore this key
    out, _ = F.multi_head_attention_forward(
        x_q.transpose(0, 1), x_kv.transpose(0, 1), x_kv.transpose(0, 1),  # MHA wants [T,B,C]
        C, H,
        in_proj_weight=None,
        in_proj_bias=torch.cat([p["b_q"] * fold, expand_b(p["b_k"]), expand_b(p["b_v"])]),
        bias_k=None, bias_v=None, add_zero_attn=False, dropout_p=0.0,
        out_proj_weight=p["w_o"], out_proj_bias=p["b_o"], training=False,
        key_padding_mask=kpm, need_weights=False, attn_mask=attn_mask,
        use_separate_proj_weight=True,
        q_proj_weight=p["w_q"] * fold, k_proj_weight=expand_w(p["w_k"]),
        v_proj_weight=expand_w(p["w_v"]))
    return out.transpose(0, 1)


def run_case(cfg, index):
    B, Tq, Tk, C, H, Hkv = (cfg[k] for k in ("B", "Tq", "Tk", "C", "H", "Hkv"))
    assert C % H == 0 and H % Hkv == 0
    D = C // H
    Ckv = Hkv * D
    if cfg["self_attention"]:
        assert Tq == Tk
    gen = torch.Generator().manual_seed(SEED + 1000 * index)

    def randn(*shape, std=1.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float32) * std).to(torch.float32)

    # float32 values: what the C++ module sees; the float64 reference starts from the same values
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

    def forward_backward(dtype, impl=reference_attention):
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

    # cross-checks of the reference implementation (float64: agreement to ~1e-12)
    def agree(other, label, keys):
        for k in keys:
            err = (other[k] - ref[k]).abs().max().item()
            assert err < 1e-10, f"{cfg['name']}: {label} disagrees on {k}: {err}"

    if opt(cfg, "positions") == "rope":
        # torch's attention has no RoPE: check the rotation against its complex form instead
        def complex_rope(xq, xkv, p, cfg, keep):
            return reference_attention(xq, xkv, p, cfg, keep, rope=rope_rotate_complex)
        agree(forward_backward(torch.float64, complex_rope), "complex RoPE", list(ref.keys()))
    else:
        if hasattr(F, "scaled_dot_product_attention") and opt(cfg, "positions") == "none":
            agree(forward_backward(torch.float64, check_with_sdpa), "F.scaled_dot_product_attention",
                  list(ref.keys()))
        agree(forward_backward(torch.float64, check_with_mha), "multi_head_attention_forward",
              list(ref.keys()))

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
        "B": B, "Tq": Tq, "Tk": Tk, "C": C, "H": H, "Hkv": Hkv,
        "causal": cfg["causal"],
        "scale": cfg["scale"],
        "scale_value": scale_value(cfg["scale"], D),
        "self_attention": cfg["self_attention"],
        "bias": True,
        "key_padding": keep is not None,
        "seed": SEED + 1000 * index,
        "weight_std": WEIGHT_STD,
        "torch_version": torch.__version__,
        "tensors": sorted(ref.keys()),
        "torch_fp32_err": fp32_err,
    }
    if "options" in cfg:
        meta["type"] = "scaled_dot_product"
        meta["window"] = opt(cfg, "window")
        meta["positions"] = opt(cfg, "positions")
        meta["rope_base"] = opt(cfg, "rope_base")
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")
    worst = max(fp32_err.items(), key=lambda kv: kv[1])
    print(f"{cfg['name']:<26} torch fp32 vs fp64: worst {worst[0]} {worst[1]:.3e}")


def main():
    torch.manual_seed(SEED)
    torch.set_num_threads(1)  # fp32 results (and so meta.json) independent of the machine's cores
    # only this script's case directories are replaced: other variants write theirs here too
    os.makedirs(OUT_DIR, exist_ok=True)
    for cfg in CASES:
        d = os.path.join(OUT_DIR, cfg["name"])
        if os.path.isdir(d):
            shutil.rmtree(d)
    for i, cfg in enumerate(CASES):
        run_case(cfg, i)
    total = sum(os.path.getsize(os.path.join(OUT_DIR, c["name"], f)) for c in CASES
                for f in os.listdir(os.path.join(OUT_DIR, c["name"])))
    print(f"wrote {len(CASES)} cases to {os.path.relpath(OUT_DIR, ROOT)} ({total / 1024:.1f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
