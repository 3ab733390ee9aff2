"""Shared machinery of the attention fixture scripts (scripts/make_*_fixtures.py).

Each script keeps its variant's reference implementation and cross-checks; this module holds
what they all do the same way:
  - seeded float32 inputs and parameters (x_q, x_kv, the eight projection parameters, any extra
    parameters of the variant, dout) and the key-keep mask from cfg["padding"];
  - forward + backward with autograd in a given dtype (float64 reference, float32 error scale);
  - the finiteness check and the float64 agreement check of an independent formulation;
  - masks, head projections, ALiBi slopes and torch's multi-head attention as a cross-check;
  - writing <case>/*.npy and meta.json, and replacing only the script's own case directories;
  - the a-priori float32 error bound of every reference tensor (fixture_error_model.py), written
    to meta.json as "fp32_err_model", and the --error-model-only mode that adds only that field
    to the committed fixtures.

Modes (every script):  make_<variant>_fixtures.py [--error-model-only]
  default              rewrites the script's case directories: inputs, float64 references,
                       meta.json. Byte-identical with the torch that made the committed fixtures
                       (meta.json "torch_version"); another torch version's float64 kernels may
                       change the last bits of the references and its float32 run the recorded
                       torch_fp32_err.
  --error-model-only   leaves every .npy file and every other meta.json field as committed: it
                       regenerates the inputs, checks that they equal the committed ones byte for
                       byte and that this torch's float64 references agree with the committed
                       ones to 1e-10, and writes only "fp32_err_model" into meta.json.

The order of the random draws, the arithmetic and the bytes written are those of the scripts
before this module existed: the fixtures are byte-identical.
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

PROJ_NAMES = ["w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o"]

# --error-model-only: see the module docstring
ERROR_MODEL_ONLY = "--error-model-only" in sys.argv[1:]


# ---------------------------------------------------------------------------------------------
# inputs


class CaseInputs:
    """The float32 tensors of one case: x_q, x_kv (x_q itself for self-attention), params (a dict
    in draw order: the projections, then the variant's extras), dout, keep (int32 [B,Tk] or
    None)."""

    def __init__(self, x_q, x_kv, params, dout, keep):
        self.x_q, self.x_kv, self.params, self.dout, self.keep = x_q, x_kv, params, dout, keep


def key_keep(cfg):
    """[B,Tk] int32 (1 = attend, 0 = padding) from cfg["padding"], or None."""
    if cfg["padding"] is None:
        return None
    keep = torch.ones(cfg["B"], cfg["Tk"], dtype=torch.int32)
    for b, pads in enumerate(cfg["padding"]):
        for j in pads:
            keep[b, j] = 0
    return keep


def make_inputs(cfg, seed, Ckv, weight_std, extra_params=None):
    """Draws, from one generator seeded with `seed`: x_q [B,Tq,C], x_kv [B,Tk,C] (cross-attention
    only), w_q b_q w_k b_k w_v b_v w_o b_o (K/V of width Ckv), then extra_params(randn) -> dict
    (drawn in its insertion order), then dout [B,Tq,C]. randn(*shape, std=1.0, mean=None)."""
    B, Tq, Tk, C = cfg["B"], cfg["Tq"], cfg["Tk"], cfg["C"]
    if cfg["self_attention"]:
        assert Tq == Tk
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape, std=1.0, mean=None):
        t = torch.randn(*shape, generator=gen, dtype=torch.float32) * std
        if mean is not None:
            t = t + mean
        return t.to(torch.float32)

    # float32 values: what the C++ module sees; the float64 reference starts from the same values
    x_q = randn(B, Tq, C)
    x_kv = x_q if cfg["self_attention"] else randn(B, Tk, C)
    params = {}
    for name, shape in (("w_q", (C, C)), ("b_q", (C,)), ("w_k", (Ckv, C)), ("b_k", (Ckv,)),
                        ("w_v", (Ckv, C)), ("b_v", (Ckv,)), ("w_o", (C, C)), ("b_o", (C,))):
        params[name] = randn(*shape, std=weight_std)
    if extra_params is not None:
        params.update(extra_params(randn))
    dout = randn(B, Tq, C)
    return CaseInputs(x_q, x_kv, params, dout, key_keep(cfg))


# ---------------------------------------------------------------------------------------------
# autograd and checks


def forward_backward(inp, cfg, impl, dtype, params=None, **kw):
    """impl(xq, xkv, p, cfg, keep, **kw) in `dtype` from the float32 inputs; loss = sum(out *
    dout). Returns {"out", "dx_q", "dx_kv" (cross only), "grad_<param>"...} (detached). params
    replaces inp.params (same role, e.g. a cross-check with other parameters)."""
    prm = inp.params if params is None else params
    xq = inp.x_q.to(dtype).clone().requires_grad_(True)
    xkv = xq if cfg["self_attention"] else inp.x_kv.to(dtype).clone().requires_grad_(True)
    p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in prm.items()}
    out = impl(xq, xkv, p, cfg, inp.keep, **kw)
    (out * inp.dout.to(dtype)).sum().backward()
    res = {"out": out.detach(), "dx_q": xq.grad.detach()}
    if not cfg["self_attention"]:
        res["dx_kv"] = xkv.grad.detach()
    for k in prm:
        res["grad_" + k] = p[k].grad.detach()
    return res


def check_finite(name, ref):
    for k, v in ref.items():
        assert torch.isfinite(v).all(), f"{name}: non-finite reference {k}"


def agree(name, other, mine, label, keys=None, tol=1e-10):
    """Max |other - mine| < tol on every key (default: all of mine)."""
    for k in (list(mine.keys()) if keys is None else keys):
        err = (other[k] - mine[k]).abs().max().item()
        assert err < tol, f"{name}: {label} disagrees on {k}: {err}"


def fp32_errors(f32, ref):
    """Max |torch float32 - torch float64| per reference tensor (recorded for information; the
    C++ test's bound comes from fp32_err_model)."""
    return {k: (f32[k].to(torch.float64) - ref[k]).abs().max().item() for k in ref}


def worst(fp32_err):
    return max(fp32_err.items(), key=lambda kv: kv[1])


# ---------------------------------------------------------------------------------------------
# pieces of the attention computations shared by several variants


def allowed_mask(cfg, keep, window=0):
    """[B,1,Tq,Tk] bool, True = query may attend to key. Query i sits at the absolute position
    p = i + Tk - Tq; causal: key r <= p; window w: p - w < r (causal) or |p - r| < w (not)."""
    B, Tq, Tk = cfg["B"], cfg["Tq"], cfg["Tk"]
    p = (torch.arange(Tq) + (Tk - Tq)).view(Tq, 1)
    r = torch.arange(Tk).view(1, Tk)
    allowed = torch.ones(Tq, Tk, dtype=torch.bool)
    if cfg["causal"]:
        allowed &= r <= p
    if window > 0:
        allowed &= (p - r < window) if cfg["causal"] else ((p - r).abs() < window)
    allowed = allowed.view(1, 1, Tq, Tk).expand(B, 1, Tq, Tk)
    if keep is not None:
        allowed = allowed & keep.bool().view(B, 1, 1, Tk)
    return allowed


def project_heads(x_q, x_kv, p, H, Hkv):
    """Q [B,H,Tq,D], K and V [B,Hkv,Tk,D] (D = C / H), with the biases."""
    B, Tq, C = x_q.shape
    Tk = x_kv.shape[1]
    D = C // H
    q = (x_q @ p["w_q"].T + p["b_q"]).view(B, Tq, H, D).transpose(1, 2)
    k = (x_kv @ p["w_k"].T + p["b_k"]).view(B, Tk, Hkv, D).transpose(1, 2)
    v = (x_kv @ p["w_v"].T + p["b_v"]).view(B, Tk, Hkv, D).transpose(1, 2)
    return q, k, v


def alibi_slopes(H):
    """Press et al. 2022: for H a power of two, the geometric sequence 2^(-8/H), 2^(-16/H), ...;
    otherwise the slopes of the closest lower power of two P, then every other slope of 2P."""
    def pow2(n):
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    P = 2 ** int(math.floor(math.log2(H)))
    if P == H:
        return pow2(H)
    return pow2(P) + pow2(2 * P)[0::2][: H - P]


def torch_mha(x_q, x_kv, p, H, Hkv, fold, attn_mask, keep):
    """torch's multi-head attention, F.multi_head_attention_forward (what
    nn.MultiheadAttention.forward runs; called directly so that gradients reach our parameter
    tensors). It has no GQA: the K/V projections are expanded to H heads; W_q, b_q are multiplied
    by `fold` (differentiably) to turn its 1/sqrt(D) into the variant's scale. attn_mask as MHA
    takes it (bool True = not allowed, or an additive float mask); keep -> key_padding_mask."""
    B, Tq, C = x_q.shape
    D = C // H
    group = H // Hkv

    def expand_w(w):  # [Hkv*D, C] -> [H*D, C], kv head g repeated for query heads g*group..
        return w.view(Hkv, D, C).repeat_interleave(group, 0).reshape(C, C)

    def expand_b(b):
        return b.view(Hkv, D).repeat_interleave(group, 0).reshape(C)

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


# ---------------------------------------------------------------------------------------------
# output


def base_meta(cfg, seed, inp, ref, fp32_err, weight_std):
    """The meta.json fields every variant writes; the script adds its own."""
    return {
        "case": cfg["name"],
        "B": cfg["B"], "Tq": cfg["Tq"], "Tk": cfg["Tk"], "C": cfg["C"], "H": cfg["H"],
        "Hkv": cfg["Hkv"],
        "causal": cfg["causal"],
        "self_attention": cfg["self_attention"],
        "bias": True,
        "key_padding": inp.keep is not None,
        "seed": seed,
        "weight_std": weight_std,
        "torch_version": torch.__version__,
        "tensors": sorted(ref.keys()),
        "torch_fp32_err": fp32_err,
    }


def error_model_meta(inp, cfg, impl, ref, **kw):
    """meta.json's "fp32_err_model": the per-tensor error coefficients of fixture_error_model.py
    for the computation impl (which must compute ref), and the model's constants."""
    import fixture_error_model as fem
    return {
        "what": "max over the tensor's entries of the first-order float32 error estimate of "
                "scripts/fixture_error_model.py, in units of u = 2^-24",
        "k_func": fem.K_FUNC,
        "k_const": fem.K_CONST,
        "coef": fem.bound_coefficients(inp, cfg, impl, ref, **kw),
    }


def write_case(out_dir, cfg, inp, ref, meta):
    """<out_dir>/<case>/: the float32 inputs (x_q, x_kv for cross-attention, dout, every parameter,
    key_keep as int32), the float64 references, and meta.json. With --error-model-only: only
    meta.json's "fp32_err_model" (see update_error_model)."""
    d = os.path.join(out_dir, cfg["name"])
    if ERROR_MODEL_ONLY:
        return update_error_model(d, inp, ref, meta)
    os.makedirs(d)

    def save(name, t, dtype):
        np.save(os.path.join(d, name + ".npy"), t.detach().numpy().astype(dtype))

    save("x_q", inp.x_q, np.float32)
    if not cfg["self_attention"]:
        save("x_kv", inp.x_kv, np.float32)
    save("dout", inp.dout, np.float32)
    for k, v in inp.params.items():
        save(k, v, np.float32)
    if inp.keep is not None:
        save("key_keep", inp.keep, np.int32)
    for k, v in ref.items():
        save(k, v, np.float64)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)
        f.write("\n")


def update_error_model(d, inp, ref, meta):
    """--error-model-only: the committed inputs must be what this run drew (byte for byte) and
    the committed references what this torch computes (to 1e-10); then meta.json gets this run's
    "fp32_err_model" and keeps every other field."""
    def committed(name):
        return np.load(os.path.join(d, name + ".npy"))

    inputs = {"x_q": inp.x_q, "dout": inp.dout, **inp.params}
    if inp.x_kv is not inp.x_q:
        inputs["x_kv"] = inp.x_kv
    for k, t in inputs.items():
        assert committed(k).tobytes() == t.numpy().astype(np.float32).tobytes(), f"{d}: input {k} differs"
    if inp.keep is not None:
        assert (committed("key_keep") == inp.keep.numpy()).all(), f"{d}: key_keep differs"
    for k, t in ref.items():
        err = np.abs(committed(k) - t.numpy()).max()
        assert err < 1e-10, f"{d}: reference {k} differs from this torch's by {err}"
    with open(os.path.join(d, "meta.json")) as f:
        old = json.load(f)
    old["fp32_err_model"] = meta["fp32_err_model"]
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(old, f, indent=2, sort_keys=True)
        f.write("\n")


def run_all(cases, run_case, owns, out_dir=OUT_DIR, seed=None, label=""):
    """Removes the case directories under out_dir for which owns(entry) holds (other variants'
    fixtures live there too), then run_case(cfg, index) for every case. One torch thread: the
    float32 results (and so meta.json) do not depend on the machine's cores."""
    if seed is not None:
        torch.manual_seed(seed)
    torch.set_num_threads(1)
    os.makedirs(out_dir, exist_ok=True)
    for entry in sorted(os.listdir(out_dir)):
        if owns(entry) and os.path.isdir(os.path.join(out_dir, entry)) and not ERROR_MODEL_ONLY:
            shutil.rmtree(os.path.join(out_dir, entry))
    for i, cfg in enumerate(cases):
        run_case(cfg, i)
    total = sum(os.path.getsize(os.path.join(r, f))
                for c in cases for r, _, fs in os.walk(os.path.join(out_dir, c["name"])) for f in fs)
    what = "error models of" if ERROR_MODEL_ONLY else "wrote"
    print(f"{what} {len(cases)} cases to {os.path.relpath(out_dir, ROOT)}{label} "
          f"({total / 1024:.1f} KiB)")
    return 0
