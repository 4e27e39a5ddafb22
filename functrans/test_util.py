"""Testing helpers (import explicitly: ``from functrans.test_util import check_grads``).

``check_grads`` compares forward-mode (jvp) and reverse-mode (vjp) derivatives of every order up
to ``order`` against central finite differences along a random direction, as JAX's
public_test_util does: order k is checked by differentiating the jvp (or vjp) function of
order k-1. The vjp is checked through the inner-product identity <J^T u, v> = <u, J v>, with
J v from finite differences. Complex arguments are perturbed along a random real direction
and then along a random imaginary one; for complex values the identity is JAX's:
Re<conj(vjp(conj u)), v> = Re<u, J v> with <a, b> = sum(conj(a) * b), which holds for JAX's
(linear, not conjugate-linear) transposes. ``check_vmap`` compares vmap against a Python loop.
"""
from __future__ import annotations

import numpy as np

from . import api
from .core import as_array, has_tangent
from .tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = ["check_grads", "check_jvp", "check_vjp", "check_vmap", "numerical_jvp"]

# Per dtype: finite-difference step, and the default atol = rtol for derivative comparisons.
_EPS = {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 2e-3, np.dtype(np.float64): 1e-4}
_TOL = {np.dtype(np.float16): 1e-1, np.dtype(np.float32): 2e-2, np.dtype(np.float64): 1e-5}


def _real_dtype(dtype):
    dtype = np.dtype(dtype)
    return np.dtype(f"f{dtype.itemsize // 2}") if dtype.kind == "c" else dtype


def _lowest_float(arrays):
    """The least precise float dtype among arrays, complex ones counted by the dtype of their
    parts (float64 if there are none)."""
    dts = [_real_dtype(a.dtype) for a in arrays if has_tangent(a.dtype)]
    return min(dts, key=lambda d: d.itemsize) if dts else np.dtype(np.float64)


def _leaves(tree):
    return [np.asarray(x) for x in tree_flatten(tree)[0]]


# ---------------------------------------------------------------------------------------------
# Flat, float-only views of a function

class _FlatFun:
    """f viewed as a function of its float and complex leaves only (other leaves are held
    fixed), returning its float and complex output leaves as a list. Every derivative check
    works on this view."""

    def __init__(self, f, args):
        leaves, self.treedef = tree_flatten(tuple(args))
        self.leaves = [as_array(x) for x in leaves]
        self.mask = [has_tangent(x.dtype) for x in self.leaves]
        self.f = f

    def float_args(self):
        """The float leaves of the arguments, in order."""
        return [x for x, m in zip(self.leaves, self.mask) if m]

    def __call__(self, *float_leaves):
        it = iter(float_leaves)
        full = [next(it) if m else x for x, m in zip(self.leaves, self.mask)]
        out = self.f(*tree_unflatten(self.treedef, full))
        outs = [as_array(o) for o in tree_flatten(out)[0]]
        return [o for o in outs if has_tangent(o.dtype)]


# ---------------------------------------------------------------------------------------------
# Comparison

def _check_close(got, expected, atol, rtol, what):
    """assert_allclose over lists of arrays, reporting the worst mismatch."""
    got, expected = list(got), list(expected)
    if len(got) != len(expected):
        raise AssertionError(f"{what}: got {len(got)} outputs, expected {len(expected)}")
    worst = None
    for i, (g, e) in enumerate(zip(got, expected)):
        g, e = np.asarray(g), np.asarray(e)
        if g.shape != e.shape:
            raise AssertionError(f"{what}: output {i} has shape {g.shape}, expected {e.shape}")
        wide = np.complex128 if np.iscomplexobj(g) or np.iscomplexobj(e) else np.float64
        g64, e64 = g.astype(wide), e.astype(wide)
        with np.errstate(invalid="ignore"):
            err = np.abs(g64 - e64)
            err = np.where((g64 == e64) | (np.isnan(g64) & np.isnan(e64)), 0.0, err)
            err = np.where(np.isnan(err), np.inf, err)
            excess = err - (atol + rtol * np.abs(e64))
        if excess.size and np.max(excess) > 0:
            j = np.unravel_index(np.argmax(excess), excess.shape)
            if worst is None or excess[j] > worst[0]:
                worst = (excess[j], i, j, g64[j], e64[j], err[j])
    if worst is not None:
        _, i, j, g, e, err = worst
        raise AssertionError(
            f"{what}: not close (atol={atol:g}, rtol={rtol:g}). Worst mismatch at output {i}, "
            f"index {tuple(int(k) for k in j)}: got {_scalar(g)!r}, expected {_scalar(e)!r} (abs err {err:.3g}, "
            f"rel err {err / max(abs(e), 1e-300):.3g})")


def _scalar(v):
    return complex(v) if np.iscomplexobj(v) else float(v)


def _inner(xs, ys):
    """Re sum(conj(x) * y) over the pairs: the real inner product of real and complex values."""
    return sum(float(np.real(np.sum(np.conj(np.asarray(x, np.complex128))
                                    * np.asarray(y, np.complex128))))
               for x, y in zip(xs, ys))


def _random_like(rng, xs, direction=1):
    """Standard normal values shaped like xs; for complex xs times ``direction`` (1: along the
    real axis, 1j: along the imaginary axis)."""
    out = []
    for x in xs:
        dt = np.asarray(x).dtype
        r = rng.standard_normal(np.shape(x))
        out.append((r * direction if dt.kind == "c" else r).astype(dt))
    return out


def _directions(args):
    """The tangent directions to check: the real one, and the imaginary one too when an
    argument is complex."""
    return (1, 1j) if any(np.asarray(a).dtype.kind == "c" for a in args) else (1,)


def numerical_jvp(f, args, tangents, eps):
    """Central finite difference (f(x + eps t) - f(x - eps t)) / (2 eps), for flat f and lists."""
    def at(sign):
        return f(*[np.asarray(x + sign * eps * t).astype(np.asarray(x).dtype)
                   for x, t in zip(args, tangents)])
    plus, minus = at(1), at(-1)
    return [(np.asarray(p) - np.asarray(m)) / (2 * eps) for p, m in zip(plus, minus)]


def _resolve(args, atol, rtol, eps):
    dt = _lowest_float(args)
    return (_TOL[dt] if atol is None else atol, _TOL[dt] if rtol is None else rtol,
            _EPS[dt] if eps is None else eps)


# ---------------------------------------------------------------------------------------------
# One order

def check_jvp(f, f_jvp, args, atol=None, rtol=None, eps=None, err_msg="JVP"):
    """Check f_jvp(args, tangents) -> (outs, tangent outs) of a flat f against f and finite
    differences. Returns None; raises AssertionError."""
    atol, rtol, eps = _resolve(args, atol, rtol, eps)
    rng = np.random.RandomState(0)
    expected = _leaves(f(*args))
    for direction in _directions(args):
        tangents = _random_like(rng, args, direction)
        outs, t_outs = f_jvp(list(args), tangents)
        outs, t_outs = _leaves(outs), _leaves(t_outs)
        _check_close(outs, expected, atol, rtol, f"{err_msg}: primal output")
        for t, o in zip(t_outs, outs):
            if t.dtype != o.dtype:
                raise AssertionError(f"{err_msg}: tangent dtype {t.dtype} differs from the "
                                     f"output dtype {o.dtype}")
        _check_close(t_outs, numerical_jvp(f, args, tangents, eps), atol, rtol,
                     f"{err_msg}: tangent (direction {direction}) vs finite differences")


def check_vjp(f, f_vjp, args, atol=None, rtol=None, eps=None, err_msg="VJP"):
    """Check f_vjp(*args) -> (outs, vjp_fn) of a flat f by <vjp_fn(u), v> == <u, J v>, with
    J v from finite differences. Returns None; raises AssertionError."""
    atol, rtol, eps = _resolve(args, atol, rtol, eps)
    rng = np.random.RandomState(0)
    outs, vjp_fn = f_vjp(*args)
    outs = _leaves(outs)
    _check_close(outs, _leaves(f(*args)), atol, rtol, f"{err_msg}: primal output")
    for direction in _directions(list(args) + outs):
        tangents = _random_like(rng, args, direction)
        t_outs = numerical_jvp(f, args, tangents, eps)
        cotangents = _random_like(rng, outs, direction)
        ct_ins = _leaves(vjp_fn([np.conj(c) for c in cotangents]))
        for c, a in zip(ct_ins, args):
            if c.dtype != np.asarray(a).dtype or c.shape != np.shape(a):
                raise AssertionError(f"{err_msg}: cotangent {c.dtype}{c.shape} does not match "
                                     f"its primal {np.asarray(a).dtype}{np.shape(a)}")
        _check_close([_inner([np.conj(c) for c in ct_ins], tangents)],
                     [_inner(t_outs, cotangents)], atol, rtol,
                     f"{err_msg}: <vjp(u), v> vs <u, J v> by finite differences (direction "
                     f"{direction})")


# ---------------------------------------------------------------------------------------------
# All orders

def check_grads(f, args, order, modes=("fwd", "rev"), atol=None, rtol=None, eps=None):
    """Check the derivatives of f at args (a tuple of arguments, pytrees allowed) of every order
    up to ``order``, in forward ("fwd") and/or reverse ("rev") mode, against central finite
    differences. Integer and bool arguments are held fixed; only float and complex outputs
    are checked; complex arguments are perturbed along real and imaginary directions.
    Returns None; raises AssertionError describing the worst mismatch."""
    if isinstance(modes, str):
        modes = (modes,)
    bad = set(modes) - {"fwd", "rev"}
    if bad:
        raise ValueError(f"check_grads modes must be 'fwd' and/or 'rev', got {sorted(bad)}")
    flat = _FlatFun(f, tuple(args))
    x = flat.float_args()
    if not x:
        raise ValueError("check_grads: no floating-point or complex arguments to differentiate")
    # tolerances and steps are fixed by the arguments' dtype at the top level
    atol, rtol, eps = _resolve(x, atol, rtol, eps)

    def rec(fn, xs, k, msg):
        if "fwd" in modes:
            m = f"JVP of {msg}" if msg else "JVP"
            check_jvp(fn, lambda p, t: api.jvp(fn, p, t), xs, atol, rtol, eps, m)
            if k > 1:
                n = len(xs)

                def fn_jvp(*pt):
                    o, t = api.jvp(fn, list(pt[:n]), list(pt[n:]))
                    return list(o) + list(t)
                rec(fn_jvp, list(xs) + list(xs), k - 1, m)
        if "rev" in modes:
            m = f"VJP of {msg}" if msg else "VJP"
            check_vjp(fn, lambda *p: api.vjp(fn, *p), xs, atol, rtol, eps, m)
            if k > 1:
                def fn_vjp(*p):
                    o, vjp_fn = api.vjp(fn, *p)
                    return list(vjp_fn(o))
                rec(fn_vjp, xs, k - 1, m)

    rec(flat, x, order, "")


# ---------------------------------------------------------------------------------------------
# vmap

def check_vmap(f, args, in_axes=0, out_axes=0, atol=0.0, rtol=None):
    """Check vmap(f, in_axes, out_axes)(*args) against stacking f over slices of the mapped
    arguments in a Python loop. in_axes is an int/None or one int/None per positional argument
    (applied to every leaf of that argument). Returns None; raises AssertionError."""
    args = tuple(args)
    axes = in_axes if isinstance(in_axes, (tuple, list)) else (in_axes,) * len(args)
    sizes = {np.shape(leaf)[ax] for a, ax in zip(args, axes) if ax is not None
             for leaf in _leaves(a)}
    if len(sizes) != 1:
        raise ValueError(f"check_vmap: mapped axes have sizes {sorted(sizes)}")
    (n,) = sizes

    def take(a, ax, i):
        if ax is None:
            return a
        return tree_map(lambda leaf: np.take(np.asarray(leaf), i, axis=ax), a)

    per = [_leaves(f(*[take(a, ax, i) for a, ax in zip(args, axes)])) for i in range(n)]
    expected = [np.stack([p[j] for p in per], axis=out_axes) for j in range(len(per[0]))]
    got = _leaves(api.vmap(f, in_axes=tuple(axes), out_axes=out_axes)(*args))
    for g, e in zip(got, expected):
        if g.dtype != e.dtype:
            raise AssertionError(f"vmap: output dtype {g.dtype}, loop gives {e.dtype}")
        if e.dtype.kind not in "fc":
            if g.shape != e.shape or not np.array_equal(g, e):
                raise AssertionError(f"vmap: output {g!r} differs from the loop's {e!r}")
    floats = [(g, e) for g, e in zip(got, expected) if e.dtype.kind in "fc"]
    if rtol is None:
        rtol = 1e-5 if any(e.dtype == np.float32 for _, e in floats) else 1e-12
    _check_close([g for g, _ in floats], [e for _, e in floats], atol, rtol, "vmap vs loop")
