"""A-priori float32 error estimates for the attention fixtures (first-order, probabilistic).

The C++ fixture test compares a float32 implementation with float64 references. How far a
correct float32 implementation may land from them is estimated here, before anything runs in
float32, by carrying an error scale beside every value through the reference computation,
forward and backward (autograd's backward runs aten operations too, so it is covered the same
way; the analysed graph is torch's, the C++ module computes the same sums in its own order).

Every tensor in the analysed computation is an ErrT: its float64 value v and an elementwise error
scale e >= 0 in units of u = 2^-24 (the float32 unit roundoff). The fixture's inputs and
parameters are float32 numbers: they start with e = 0. The model is the probabilistic one of
Higham & Mary ("A new approach to probabilistic rounding error analysis", SIAM J. Sci. Comput.
41(5), 2019): every rounding has a relative error of at most u, roundings of different
operations are independent and mean zero, so independent contributions add in quadrature
(q(a, b) = sqrt(a^2 + b^2)); first order, products of two error terms (O(u^2)) are left out.

  sum of n terms t_i (a reduction, an entry of a matrix product, softmax's denominator):
      q(propagated errors of the t_i,  sqrt(n) * sum_i |t_i|)
    The sum rounds at most n times, each time by at most u times a partial sum, and every partial
    sum of ANY evaluation order (sequential, blocked, pairwise, with or without fused
    multiply-add) is at most sum|t_i| in magnitude: the estimate does not depend on the order.
  a * b:  q(|a| e(b), e(a) |b|, |ab|);   a / b: q(e(a)/|b|, |a| e(b)/b^2, |a/b|);
  a +- b: q(e(a), e(b), |a +- b|)
  f(x) for exp, tanh, elu, sqrt, rsqrt, pow:  q(|f'(x)| e(x), K_FUNC |f(x)|)   (K_FUNC ulps for
    vectorised transcendental functions)
  softmax, P = exp(x - m) / sum exp(x - m) over n entries, relative to P_j:
      q(e(x_j), |x_j - m|, P-weighted q of the same over the row, sqrt(2) K_FUNC, sqrt(n + 1))
    (the input's error, the rounding of x - m amplified by exp, exp, the sum, the division)
  softmax backward, dx = P (g - sum_k P_k g_k), composed from the rules above; tanh and elu
    backward likewise.
  a constant the reference computes in float64 (RoPE cos/sin, ALiBi bias, an inexact scale),
    which an implementation computes in float32 itself: 0 where float32 holds it exactly, else
    K_CONST (1 + |v|) (a few ulps of the value and of the angle or position it comes from).

Structural operations (views, transposes, expands, slices, concatenations, masking) move the
scales with the values. The fixture records, per reference tensor T, coef[T] = max over T's
entries of e_T; the C++ test checks max |ours - ref| <= C * u * coef[T] with a small C.

Why not the worst-case model (n u sum|t_i| per sum, contributions added linearly): it was tried
and comes out about 1000x above every float32 error measured, about 3e-4 of the tensors' scale,
too loose to tell a 1e-3 relative bug from rounding. Measured against this one (498 reference
tensors; PyTorch's float32 run and the C++ module with OpenBLAS and with Eigen GEMMs): the
largest max|error| / (u coef) is 0.66, the median 0.05; coef u is a median 1.1e-5 of the
tensors' max|ref|, at most 1.9e-4 (the lambda gradients of differential attention, long sums
with cancellation).
"""
import math

import numpy as np
import torch
from torch.utils._pytree import tree_map

U = 2.0 ** -24   # float32 unit roundoff
K_FUNC = 4.0     # ulps of exp / tanh / sqrt / rsqrt in float32 (vectorised approximations)
K_CONST = 4.0    # ulps of a constant the implementation computes itself


def _plain_const_err(t):
    """Bound (units of u) of a float64 constant the implementation computes in float32."""
    exact = t.to(torch.float32).to(torch.float64) == t
    return torch.where(exact | ~torch.isfinite(t), torch.zeros_like(t), K_CONST * (1.0 + t.abs()))


def _scalar_err(s):
    if isinstance(s, bool) or not isinstance(s, (int, float)):
        return 0.0
    if not math.isfinite(s) or float(np.float32(s)) == s:
        return 0.0
    return K_CONST * (1.0 + abs(s))


class ErrT(torch.Tensor):
    """A float64 value v with an elementwise float32 error bound e (units of u)."""

    @staticmethod
    def __new__(cls, v, e):
        r = torch.Tensor._make_wrapper_subclass(
            cls, v.size(), strides=v.stride(), storage_offset=v.storage_offset(), dtype=v.dtype,
            layout=v.layout, device=v.device, requires_grad=False)
        r.v = v
        r.e = e
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __repr__(self):
        return f"ErrT(v={self.v}, e={self.e})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _dispatch(func, args, kwargs or {})


def V(x):
    if isinstance(x, ErrT):
        return x.v
    return x


def E(x):
    """Bound of an operand: ErrT -> e; plain float tensor -> constant rule; scalar -> scalar rule."""
    if isinstance(x, ErrT):
        return x.e
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return _plain_const_err(x.to(torch.float64))
        return torch.zeros((), dtype=torch.float64)
    return _scalar_err(x)


def A(x):
    v = V(x)
    return v.abs() if isinstance(v, torch.Tensor) else abs(v)


def wrap(v, e):
    if isinstance(e, (int, float)):
        e = torch.full_like(v, float(e))
    return ErrT(v, e.expand_as(v).contiguous() if e.shape != v.shape else e)


def _pos(p, t):
    """p * t with 0 where p == 0 (t may be inf there: masked entries)."""
    return torch.where(p > 0, p * torch.nan_to_num(t, posinf=0.0), torch.zeros_like(p))


# aten ops that only move values: the same op applied to the bounds
STRUCTURAL = {
    "view", "_unsafe_view", "reshape", "transpose", "t", "permute", "expand", "unsqueeze",
    "squeeze", "select", "slice", "clone", "contiguous", "alias", "detach", "index_select", "cat",
    "stack", "unbind", "split", "split_with_sizes", "chunk", "repeat", "constant_pad_nd",
    "select_backward", "slice_backward", "_to_copy", "lift_fresh", "flip", "narrow", "as_strided",
    "_reshape_alias", "unfold", "movedim", "squeeze_copy", "view_copy", "expand_copy",
    "permute_copy", "transpose_copy", "unsqueeze_copy", "t_copy", "slice_copy", "select_copy",
    "_unsafe_index", "index", "gather", "flatten", "unflatten", "repeat_interleave", "roll",
    "diagonal", "diag_embed",
}
FACTORIES = {"empty_like", "zeros_like", "ones_like", "full_like", "new_zeros", "new_ones",
             "new_empty", "new_full", "empty", "zeros", "ones", "full", "scalar_tensor",
             "empty_strided", "new_empty_strided"}
META = {"is_same_size", "sym_size", "sym_stride", "sym_numel", "dim", "size", "stride", "numel",
        "_has_compatible_shallow_copy_type", "is_nonzero", "equal", "_local_scalar_dense",
        "sym_storage_offset"}


def q(*terms):
    """Root-sum-square of independent error terms (tensors broadcast, floats allowed)."""
    tot = 0.0
    for t in terms:
        tot = tot + t * t
    return torch.sqrt(tot) if isinstance(tot, torch.Tensor) else math.sqrt(tot)


def _reduced_count(v, dims):
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return v.numel()
    if isinstance(dims, int):
        dims = [dims]
    n = 1
    for d in dims:
        n *= v.shape[d]
    return n


def _dispatch(func, args, kwargs):
    name = func.overloadpacket.__name__
    inplace = name.endswith("_") and not name.startswith("_") and name not in ("copy_",)
    base = name[:-1] if inplace else name

    if base in META or name in META:
        return func(*tree_map(V, args), **tree_map(V, kwargs))

    if name == "copy_":
        dst, src = args[0], args[1]
        dst.v.copy_(V(src))
        e = E(src)
        dst.e = (e if isinstance(e, torch.Tensor) else torch.tensor(float(e))).expand_as(dst.v).clone()
        return dst

    if base in FACTORIES:
        v = func(*tree_map(V, args), **tree_map(V, kwargs))
        return wrap(v, 0.0) if v.is_floating_point() else v

    out = _rule(base, func if not inplace else None, args, kwargs)
    if inplace:
        self = args[0]
        self.v = out.v
        self.e = out.e
        return self
    return out


def _structural(base, func, args, kwargs):
    fn = func if func is not None else getattr(torch.ops.aten, base).default
    v = fn(*tree_map(V, args), **tree_map(V, kwargs))

    def err_of(x):
        if isinstance(x, ErrT):
            return x.e
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return _plain_const_err(x.to(torch.float64)).to(x.dtype)
        return x
    if base in ("view", "_unsafe_view", "_reshape_alias"):
        # the bound tensor may be laid out differently from the value: a view is a reshape
        e = err_of(args[0]).reshape(args[1])
    else:
        e = fn(*tree_map(err_of, args), **tree_map(err_of, kwargs))
    if isinstance(v, (list, tuple)):
        return type(v)(wrap(vi, ei) if vi.is_floating_point() else vi for vi, ei in zip(v, e))
    return wrap(v, e) if v.is_floating_point() else v


def _rule(base, func, args, kwargs):
    """The error rules (module docstring); every returned bound is a standard deviation in
    units of u, independent terms added in quadrature (q)."""
    a = args
    if base in STRUCTURAL:
        return _structural(base, func, args, kwargs)

    if base == "masked_fill":
        x, mask, value = a[0], a[1], a[2]
        v = V(x).masked_fill(V(mask), V(value))
        return wrap(v, E(x).expand_as(V(x)).masked_fill(V(mask), 0.0))
    if base == "where":
        c, x, y = V(a[0]), a[1], a[2]
        v = torch.where(c, V(x), V(y))
        return wrap(v, torch.where(c, torch.as_tensor(E(x), dtype=v.dtype),
                                   torch.as_tensor(E(y), dtype=v.dtype)))
    if base == "index_put":
        x, idx, val = a[0], a[1], a[2]
        acc = a[3] if len(a) > 3 else kwargs.get("accumulate", False)
        assert acc, "index_put: only the accumulating form (backward of indexing)"
        put = lambda t, w: torch.ops.aten.index_put.default(t, idx, w, True)
        v = put(V(x), V(val))
        var = put((E(x) ** 2).expand_as(V(x)).clone(), (E(val) ** 2).expand_as(V(val)))
        n = put(torch.zeros_like(V(x)), torch.ones_like(V(val))) + 1
        absum = put(V(x).abs(), V(val).abs())
        return wrap(v, q(torch.sqrt(var), torch.sqrt(n) * absum))

    if base in ("add", "sub", "rsub"):
        x, y = a[0], a[1]
        alpha = kwargs.get("alpha", a[2] if len(a) > 2 else 1)
        if base == "rsub":
            v = V(y) - alpha * V(x)
        elif base == "add":
            v = V(x) + alpha * V(y)
        else:
            v = V(x) - alpha * V(y)
        e = q(E(x), abs(alpha) * E(y), v.abs())
        if alpha not in (1, -1):
            e = q(e, abs(alpha) * A(y))
        return wrap(v, e)
    if base == "neg":
        return wrap(-V(a[0]), E(a[0]))
    if base == "mul":
        x, y = a[0], a[1]
        v = V(x) * V(y)
        return wrap(v, q(A(x) * E(y), E(x) * A(y), v.abs()))
    if base == "div":
        x, y = a[0], a[1]
        vy = V(y)
        v = V(x) / vy
        ay = vy.abs() if isinstance(vy, torch.Tensor) else abs(vy)
        return wrap(v, q(E(x) / ay, A(x) * E(y) / (ay * ay), v.abs()))
    if base == "reciprocal":
        x = V(a[0])
        v = 1.0 / x
        return wrap(v, q(E(a[0]) / (x * x), K_FUNC * v.abs()))
    if base == "exp":
        v = torch.exp(V(a[0]))
        return wrap(v, q(v * E(a[0]), K_FUNC * v))
    if base == "tanh":
        v = torch.tanh(V(a[0]))
        return wrap(v, q((1 - v * v) * E(a[0]), K_FUNC * v.abs()))
    if base == "tanh_backward":
        g, y = a[0], a[1]
        vg, vy = V(g), V(y)
        d = 1 - vy * vy
        v = vg * d
        # g (1 - y^2): y^2, 1 - y^2 and the product each round once
        return wrap(v, q(d.abs() * E(g), vg.abs() * 2 * vy.abs() * E(y), vg.abs() * vy * vy,
                         vg.abs() * d.abs(), v.abs()))
    if base == "elu":
        x = V(a[0])
        alpha = a[1] if len(a) > 1 else kwargs.get("alpha", 1.0)
        assert float(alpha) == 1.0 and len(a) <= 2, "elu: only alpha = 1, scale = 1"
        v = torch.nn.functional.elu(x)
        ex = torch.exp(torch.clamp(x, max=0.0))
        return wrap(v, torch.where(x > 0, E(a[0]) + 0 * x, q(ex * E(a[0]), K_FUNC * ex, v.abs())))
    if base == "elu_backward":
        g, alpha, scale, in_scale, is_result, sr = a[:6]
        assert float(alpha) == 1.0 and float(scale) == 1.0 and float(in_scale) == 1.0
        vg, vs = V(g), V(sr)
        if is_result:   # derivative = out + 1 for out <= 0
            d = torch.where(vs > 0, torch.ones_like(vs), vs + 1)
            dd = torch.where(vs > 0, torch.zeros_like(vs), q(E(sr), (vs + 1).abs()))
        else:           # derivative = exp(x) for x <= 0
            d = torch.where(vs > 0, torch.ones_like(vs), torch.exp(torch.clamp(vs, max=0.0)))
            dd = torch.where(vs > 0, torch.zeros_like(vs), q(d * E(sr), K_FUNC * d))
        v = vg * d
        return wrap(v, q(d.abs() * E(g), vg.abs() * dd, v.abs()))
    if base == "sqrt":
        v = torch.sqrt(V(a[0]))
        return wrap(v, q(E(a[0]) / (2 * v), K_FUNC * v))
    if base == "rsqrt":
        x = V(a[0])
        v = torch.rsqrt(x)
        return wrap(v, q(0.5 * v / x * E(a[0]), K_FUNC * v))
    if base == "pow":
        x, p = a[0], a[1]
        assert not isinstance(p, torch.Tensor), "pow: only a scalar exponent"
        vx = V(x)
        v = vx ** p
        if p == 2:
            return wrap(v, q(2 * vx.abs() * E(x), v.abs()))
        return wrap(v, q((p * vx ** (p - 1)).abs() * E(x), K_FUNC * v.abs()))

    if base in ("mm", "bmm", "dot", "mv"):
        x, y = a[0], a[1]
        fn = getattr(torch, base)
        n = V(x).shape[-1]
        vx, vy, ex, ey = V(x), V(y), E(x).expand_as(V(x)), E(y).expand_as(V(y))
        v = fn(vx, vy)
        prop = torch.sqrt(fn(vx * vx, ey * ey) + fn(ex * ex, vy * vy))
        return wrap(v, q(prop, math.sqrt(n) * fn(vx.abs(), vy.abs())))
    if base in ("addmm", "baddbmm"):
        c, x, y = a[0], a[1], a[2]
        assert kwargs.get("beta", 1) == 1 and kwargs.get("alpha", 1) == 1
        fn = torch.mm if base == "addmm" else torch.bmm
        n = V(x).shape[-1] + 1
        vx, vy, ex, ey = V(x), V(y), E(x).expand_as(V(x)), E(y).expand_as(V(y))
        v = V(c) + fn(vx, vy)
        prop = torch.sqrt(fn(vx * vx, ey * ey) + fn(ex * ex, vy * vy))
        return wrap(v, q(E(c), prop, math.sqrt(n) * (A(c) + fn(vx.abs(), vy.abs()))))
    if base in ("sum", "mean"):
        x = a[0]
        dims = a[1] if len(a) > 1 else kwargs.get("dim", None)
        keep = a[2] if len(a) > 2 else kwargs.get("keepdim", False)
        vx = V(x)
        n = _reduced_count(vx, dims)
        if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
            s = lambda t: t.sum()
        else:
            s = lambda t: t.sum(dim=dims, keepdim=keep)
        v = s(vx)
        ex = E(x).expand_as(vx)
        e = q(torch.sqrt(s(ex * ex)), math.sqrt(max(n - 1, 0)) * s(vx.abs()))
        if base == "mean":
            v = v / n
            e = q(e / n, v.abs())
        return wrap(v, e)
    if base == "_softmax":
        x, dim = a[0], a[1]
        vx = V(x)
        p = torch.softmax(vx, dim)
        n = vx.shape[dim]
        m = vx.amax(dim, keepdim=True)
        # relative variance of P_j: its input's error, the shared normaliser's, the rounding of
        # x - m (amplified by exp), exp itself, the n-term sum and the division
        sh2 = _pos(p, (vx - m) ** 2)
        ex2 = _pos(p, E(x).expand_as(vx) ** 2)
        rel2 = (ex2 + sh2) / torch.where(p > 0, p, torch.ones_like(p))
        rel2 = rel2 + (p * p * rel2).sum(dim, keepdim=True) + 2 * K_FUNC ** 2 + n + 1
        return wrap(p, p * torch.sqrt(rel2))
    if base == "_softmax_backward_data":
        g, y, dim = a[0], a[1], a[2]
        vg, vy = V(g), V(y)
        eg, ey = E(g).expand_as(vg), E(y).expand_as(vy)
        n = vy.shape[dim]
        pg = vy * vg
        r = pg.sum(dim, keepdim=True)
        er = q(torch.sqrt(((vy * eg) ** 2 + (ey * vg) ** 2).sum(dim, keepdim=True)),
               math.sqrt(n) * pg.abs().sum(dim, keepdim=True))
        t = vg - r
        et = q(eg, er, t.abs())
        v = vy * t
        return wrap(v, q(vy * et, ey * t.abs(), v.abs()))
    raise NotImplementedError(f"error model: no rule for aten.{base}")


def error_bounds(inp, cfg, impl, **kw):
    """Runs impl(xq, xkv, p, cfg, keep, **kw) forward and, through autograd, backward (loss =
    sum(out * dout)) on ErrT tensors; returns {reference tensor name: elementwise bound (float64
    tensor, units of u)} with the names of fixture_common.forward_backward."""
    def leaf(t):
        v = t.to(torch.float64).clone()
        return ErrT(v, torch.zeros_like(v)).requires_grad_(True)

    xq = leaf(inp.x_q)
    xkv = xq if cfg["self_attention"] else leaf(inp.x_kv)
    p = {k: leaf(v) for k, v in inp.params.items()}
    dout = ErrT(inp.dout.to(torch.float64), torch.zeros(inp.dout.shape, dtype=torch.float64))
    out = impl(xq, xkv, p, cfg, inp.keep, **kw)
    loss = (out * dout).sum()
    loss.backward(ErrT(torch.ones((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)))
    res = {"out": out, "dx_q": xq.grad}
    if not cfg["self_attention"]:
        res["dx_kv"] = xkv.grad
    for k in p:
        res["grad_" + k] = p[k].grad
    return {k: (t.v.detach().clone(), t.e.detach().clone()) for k, t in res.items()}


def round_up(m, digits=4):
    """m rounded up to `digits` significant digits."""
    if m <= 0.0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(m)) - (digits - 1))
    return float(f"{math.ceil(m / step * (1 - 1e-12)) * step:.{digits}g}")


def bound_coefficients(inp, cfg, impl, ref, **kw):
    """{tensor: max over its entries of the bound, in units of u}, rounded up to 4 significant
    digits (so that the written number does not depend on the last bits of a torch version's
    float64 arithmetic). The analysed computation's values must agree with ref (checked)."""
    b = error_bounds(inp, cfg, impl, **kw)
    coef = {}
    for k in ref:
        v, e = b[k]
        err = (v - ref[k]).abs().max().item()
        assert err < 1e-10, f"{cfg['name']}: error-model run disagrees with the reference on {k}: {err}"
        assert torch.isfinite(e).all(), f"{cfg['name']}: non-finite bound on {k}"
        coef[k] = round_up(e.max().item())
    return coef
