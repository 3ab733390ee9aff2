#!/usr/bin/python3
"""Reference fixtures for the bahdanau and luong attention modules.

Writes tests/fixtures/attention/bahdanau_<case>/ and luong_<case>/ (*.npy and meta.json) in the
format of scripts/make_attention_fixtures.py, computed with PyTorch as an independent
implementation (run with a python that has torch and numpy; --error-model-only: see
fixture_common.py):

    python3 scripts/make_additive_fixtures.py [--error-model-only]

Only the bahdanau_* and luong_* directories are rewritten; the rest of
tests/fixtures/attention belongs to other scripts.

The model (multi-head, on the projections of scaled dot-product attention):
    Q = x_q W_q^T + b_q   [B,Tq,H*D]    K = x_kv W_k^T + b_k,  V = x_kv W_v^T + b_v   [B,Tk,Hkv*D]
    head h reads kv head g = h // (H/Hkv); q_i, k_j are the head's D-dim rows
    score(i, j), from the papers:
      bahdanau (Bahdanau, Cho, Bengio 2014, appendix A.1.2, e_ij = v_a^T tanh(W_a s + U_a h_j)):
               v_h^T tanh(u_q[h] q_i + u_k[h] k_j)      u_q, u_k [H,D,D], v [H,D]
      luong (Luong, Pham, Manning 2015, section 3.1):
        dot      q_i^T k_j
        general  q_i^T w_a[h] k_j                      w_a [H,D,D]
        concat   v_h^T tanh(w_c[h] [q_i; k_j])         w_c [H,D,2D], v [H,D]
    no score scale; + ALiBi -m_h * |p - r| (= -m_h * (p - r) under a causal mask), masked -> -inf
    weights = softmax over keys; O_h = weights V_g; out = O W_o^T + b_o
Masks: causal (query at absolute position p = i + Tk - Tq sees keys r <= p), sliding window w
(causal: p - w < r <= p; otherwise |p - r| < w), key padding.

Per case:
  inputs (float32): x_q.npy, x_kv.npy (cross only), dout.npy, every parameter under its name in
    the module (w_q b_q w_k b_k w_v b_v w_o b_o, then u_q u_k v | w_a | w_c v), key_keep.npy
  references (float64, autograd in float64 from the float32 inputs): out, dx_q, dx_kv (cross),
    grad_<param> for every parameter
  meta.json: the config ("type", "score", "window", "positions"), torch_fp32_err (the max
    |torch float32 - torch float64| of every reference tensor) and fp32_err_model (the a-priori
    float32 error estimate of every reference tensor, the C++ test's bound).

Cross-checks of the reference (float64, to 1e-12): the additive score against a plain Python
loop over (b, h, i, j); luong concat with w_c = [u_q | u_k] against bahdanau with u_q, u_k;
luong general with w_a = I against dot; luong dot (no ALiBi) against torch's
F.multi_head_attention_forward with its 1/sqrt(D) undone in W_q, b_q.

Reruns are bit-identical: fixed seeds per case and one torch thread.
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture_common as fc  # noqa: E402
from fixture_common import PROJ_NAMES  # noqa: E402

PREFIXES = ("bahdanau_", "luong_")
SEED = 20240917
WEIGHT_STD = 0.3  # the shared projections, as make_attention_fixtures.py
SCORE_STD = {"u_q": 0.5, "u_k": 0.5, "w_a": 0.5, "w_c": 0.5, "v": 2.0}  # sharp, non-uniform weights


def case(name, type_, B, Tq, Tk, C, H, Hkv, causal, self_attn=True, padding=None, score=None,
         window=0, positions="none"):
    return dict(name=name, type=type_, B=B, Tq=Tq, Tk=Tk, C=C, H=H, Hkv=Hkv, causal=causal,
                self_attention=self_attn, padding=padding, score=score, window=window,
                positions=positions)


CASES = [
    case("bahdanau_causal_self", "bahdanau", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True),
    # row 0: keys 0 and 2 padded, row 1: the last two
    case("bahdanau_cross_padding", "bahdanau", B=2, Tq=5, Tk=8, C=16, H=4, Hkv=4, causal=False,
         self_attn=False, padding=[[0, 2], [6, 7]]),
    case("bahdanau_gqa_causal", "bahdanau", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=2, causal=True),
    case("bahdanau_alibi_window", "bahdanau", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=2, causal=True,
         window=4, positions="alibi"),
    case("luong_dot_causal_self", "luong", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True,
         score="dot"),
    case("luong_general_causal_self", "luong", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=True,
         score="general"),
    case("luong_concat_causal_gqa", "luong", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=2, causal=True,
         score="concat"),
    case("luong_dot_cross", "luong", B=2, Tq=5, Tk=9, C=16, H=4, Hkv=4, causal=False,
         self_attn=False, score="dot"),
    case("luong_general_cross", "luong", B=2, Tq=5, Tk=9, C=16, H=4, Hkv=2, causal=False,
         self_attn=False, score="general"),
    case("luong_concat_cross", "luong", B=2, Tq=5, Tk=9, C=16, H=4, Hkv=4, causal=False,
         self_attn=False, score="concat"),
    case("luong_general_window", "luong", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=4, causal=True,
         score="general", window=3),
    # symmetric band |p - r| < 3 plus key padding (no row loses its whole band)
    case("luong_concat_window_nomask", "luong", B=2, Tq=9, Tk=9, C=16, H=4, Hkv=2, causal=False,
         score="concat", window=3, padding=[[], [0, 8]]),
    # non-causal ALiBi: the symmetric -m_h |p - r|
    case("luong_general_alibi_nomask", "luong", B=2, Tq=7, Tk=7, C=16, H=4, Hkv=4, causal=False,
         score="general", positions="alibi"),
]


def score_param_names(cfg):
    if cfg["type"] == "bahdanau":
        return ["u_q", "u_k", "v"]
    return {"dot": [], "general": ["w_a"], "concat": ["w_c", "v"]}[cfg["score"]]


def allowed_mask(cfg, keep):
    """[B,1,Tq,Tk] bool, True = query may attend to key."""
    return fc.allowed_mask(cfg, keep, window=cfg["window"])


def alibi_bias(cfg, dtype):
    """[1,H,Tq,Tk]: -m_h * |p - r|."""
    Tq, Tk, H = cfg["Tq"], cfg["Tk"], cfg["H"]
    p = (torch.arange(Tq, dtype=dtype) + (Tk - Tq)).view(Tq, 1)
    r = torch.arange(Tk, dtype=dtype).view(1, Tk)
    m = torch.tensor(fc.alibi_slopes(H), dtype=dtype).view(1, H, 1, 1)
    return -m * (p - r).abs().view(1, 1, Tq, Tk)


def scores(q, k, p, cfg):
    """q [B,H,Tq,D], k [B,H,Tk,D] (kv heads repeated for their query heads) -> [B,H,Tq,Tk]."""
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    if cfg["type"] == "bahdanau":
        a = torch.einsum("hed,bhid->bhie", p["u_q"], q)  # u_q[h] q_i
        c = torch.einsum("hed,bhjd->bhje", p["u_k"], k)  # u_k[h] k_j
        t = torch.tanh(a.unsqueeze(3) + c.unsqueeze(2))  # [B,H,Tq,Tk,D]
        return torch.einsum("hd,bhijd->bhij", p["v"], t)
    if cfg["score"] == "dot":
        return q @ k.transpose(-1, -2)
    if cfg["score"] == "general":
        return torch.einsum("bhid,hde,bhje->bhij", q, p["w_a"], k)
    # concat: build [q_i; k_j] for every pair and apply W_c, as the paper writes it
    qq = q.unsqueeze(3).expand(B, H, Tq, Tk, D)
    kk = k.unsqueeze(2).expand(B, H, Tq, Tk, D)
    cat = torch.cat([qq, kk], dim=-1)  # [B,H,Tq,Tk,2D]
    t = torch.tanh(torch.einsum("hec,bhijc->bhije", p["w_c"], cat))
    return torch.einsum("hd,bhijd->bhij", p["v"], t)


def reference_attention(x_q, x_kv, p, cfg, keep, score_fn=scores):
    B, Tq, C = x_q.shape
    H, Hkv = cfg["H"], cfg["Hkv"]
    group = H // Hkv
    q, k, v = fc.project_heads(x_q, x_kv, p, H, Hkv)
    k = k.repeat_interleave(group, dim=1)  # kv head g serves query heads g*group .. (g+1)*group-1
    v = v.repeat_interleave(group, dim=1)
    s = score_fn(q, k, p, cfg)
    if cfg["positions"] == "alibi":
        s = s + alibi_bias(cfg, s.dtype)
    allowed = allowed_mask(cfg, keep)
    assert allowed.any(-1).all(), f"{cfg['name']}: a query row with no visible key"
    s = s.masked_fill(~allowed, float("-inf"))
    w = torch.softmax(s, dim=-1)
    o = (w @ v).transpose(1, 2).reshape(B, Tq, C)
    return o @ p["w_o"].T + p["b_o"]


def loop_scores(q, k, p, cfg):
    """The additive score entry by entry (cross-check of the einsum form)."""
    B, H, Tq, D = q.shape
    Tk = k.shape[2]
    if cfg["type"] == "bahdanau":
        A, Bm, v = p["u_q"], p["u_k"], p["v"]
    else:
        A, Bm, v = p["w_c"][:, :, :D], p["w_c"][:, :, D:], p["v"]
    rows = []
    for b in range(B):
        for h in range(H):
            for i in range(Tq):
                for j in range(Tk):
                    rows.append(v[h] @ torch.tanh(A[h] @ q[b, h, i] + Bm[h] @ k[b, h, j]))
    return torch.stack(rows).view(B, H, Tq, Tk)


def check_with_mha(x_q, x_kv, p, cfg, keep):
    """luong dot (no ALiBi) with torch's multi-head attention (fc.torch_mha), which scales by
    1/sqrt(D): undone by multiplying W_q, b_q by sqrt(D); GQA by expanding the K/V projections."""
    D = x_q.shape[2] // cfg["H"]
    allowed = allowed_mask(cfg, None)[0, 0]
    return fc.torch_mha(x_q, x_kv, p, cfg["H"], cfg["Hkv"], math.sqrt(D), ~allowed, keep)


def run_case(cfg, index):
    B, Tq, Tk, C, H, Hkv = (cfg[k] for k in ("B", "Tq", "Tk", "C", "H", "Hkv"))
    assert C % H == 0 and H % Hkv == 0
    D = C // H
    seed = SEED + 1000 * index
    shapes = {"u_q": (H, D, D), "u_k": (H, D, D), "v": (H, D), "w_a": (H, D, D),
              "w_c": (H, D, 2 * D)}
    snames = score_param_names(cfg)

    def score_params(randn):
        return {n: randn(*shapes[n], std=SCORE_STD[n]) for n in snames}

    inp = fc.make_inputs(cfg, seed, Ckv=Hkv * D, weight_std=WEIGHT_STD, extra_params=score_params)
    params = inp.params

    def forward_backward(dtype, c=cfg, prm=params, impl=reference_attention, **kw):
        return fc.forward_backward(inp, c, impl, dtype, params=prm, **kw)

    def agree(other, label, keys, mine=None):
        fc.agree(cfg["name"], other, ref if mine is None else mine, label, keys)

    ref = forward_backward(torch.float64)
    f32 = forward_backward(torch.float32)
    fc.check_finite(cfg["name"], ref)

    # cross-checks of the reference (float64)
    additive = cfg["type"] == "bahdanau" or cfg["score"] == "concat"
    if additive:
        agree(forward_backward(torch.float64, score_fn=loop_scores), "entrywise additive score",
              list(ref.keys()))
    if cfg["type"] == "bahdanau":
        # the same module as luong concat with w_c = [u_q | u_k]
        c2 = dict(cfg, type="luong", score="concat")
        p2 = {k: v for k, v in params.items() if k in PROJ_NAMES}
        p2["w_c"] = torch.cat([params["u_q"], params["u_k"]], dim=-1)
        p2["v"] = params["v"]
        other = forward_backward(torch.float64, c=c2, prm=p2)
        agree(other, "luong concat with w_c = [u_q | u_k]", [k for k in ref if k in other])
    if cfg["type"] == "luong" and cfg["score"] == "general":
        p2 = dict(params, w_a=torch.eye(D).repeat(H, 1, 1))
        eye = forward_backward(torch.float64, prm=p2)
        dot = forward_backward(torch.float64, c=dict(cfg, score="dot"),
                               prm={k: v for k, v in params.items() if k in PROJ_NAMES})
        agree(dot, "dot vs general with w_a = I", list(dot.keys()), mine=eye)
    if cfg["type"] == "luong" and cfg["score"] == "dot" and cfg["positions"] == "none":
        agree(forward_backward(torch.float64, impl=check_with_mha), "multi_head_attention_forward",
              list(ref.keys()))

    # how far from uniform the weights are (a fixture with near-uniform weights tests little)
    with torch.no_grad():
        p64 = {k: v.to(torch.float64) for k, v in params.items()}
        qh = (inp.x_q.double() @ p64["w_q"].T + p64["b_q"]).view(B, Tq, H, D).transpose(1, 2)
        kh = (inp.x_kv.double() @ p64["w_k"].T + p64["b_k"]).view(B, Tk, Hkv, D).transpose(1, 2)
        s = scores(qh, kh.repeat_interleave(H // Hkv, 1), p64, cfg)
        spread = s.std(dim=-1).mean().item()

    fp32_err = fc.fp32_errors(f32, ref)
    meta = fc.base_meta(cfg, seed, inp, ref, fp32_err, WEIGHT_STD)
    meta.update({
        "type": cfg["type"],
        "scale": "inv_sqrt_dk",  # the spec's default; these scores have no scale
        "scale_value": 1.0,
        "window": cfg["window"],
        "positions": cfg["positions"],
        "score_param_std": {n: SCORE_STD[n] for n in snames},
    })
    if cfg["type"] == "luong":
        meta["score"] = cfg["score"]
    meta["fp32_err_model"] = fc.error_model_meta(inp, cfg, reference_attention, ref)
    fc.write_case(fc.OUT_DIR, cfg, inp, ref, meta)
    name, err = fc.worst(fp32_err)
    print(f"{cfg['name']:<30} score std over keys {spread:.2f}; torch fp32 vs fp64: worst "
          f"{name} {err:.3e}")


def main():
    # only the bahdanau_* and luong_* directories: the rest belongs to other scripts
    return fc.run_all(CASES, run_case, lambda entry: entry.startswith(PREFIXES), seed=SEED)


if __name__ == "__main__":
    sys.exit(main())
