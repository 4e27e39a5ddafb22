"""Windowed and general reductions: ``lax.reduce``, ``lax.reduce_window`` and their primitives.

* ``reduce_window_sum``, ``reduce_window_max``, ``reduce_window_min`` (JAX's names): one operand,
  the padding implicitly filled with the monoid's identity. Params (all tuples, one entry per
  operand dimension): ``window_dimensions``, ``window_strides``, ``padding`` ((lo, hi) pairs, may
  be negative), ``base_dilation``, ``window_dilation``. Output element o reduces the window
  ``xp[o * stride + w * window_dilation]`` over every window offset w, where xp is the operand
  dilated by base_dilation (base_dilation - 1 identity elements between neighbours) and padded.
* ``reduce_window(*operands, *init_values; jaxpr, <window params>)``: the general form, a
  ClosedJaxpr ``jaxpr`` of 2n scalars -> n scalars folded over each window (in row-major window
  order, starting from the init values, the padding filled with them).
* ``reduce(*operands, *init_values; jaxpr, dimensions)``: the general reduction over
  ``dimensions`` (a fold in row-major order from the init values). Monoid computations with
  their identity as init never reach it: ``lax.reduce`` lowers them to reduce_sum/max/...

Derivatives: reduce_window_sum is linear (its transpose is a reduce_window_sum of the dilated,
padded cotangent: the pattern of a convolution's input gradient). For max/min the tangent of
each output is the tangent at the first position of its window (row-major order) that holds
the output value: what JAX's select_and_gather_add and select_and_scatter_add compute, so grad
of a max pool sends the whole cotangent to the first maximum of a window, as JAX does. The
general reduce and reduce_window differentiate the same fold written as a lax.scan over the
window offsets (or the reduced elements), so their derivatives are exact for any computation."""
from __future__ import annotations

import itertools
import math

import numpy as np

from .. import core
from ..core import ClosedJaxpr, ShapedArray, get_aval
from ..interpreters import ad, batching
from ..interpreters.ad import Zero, deflinear, jvp_rules
from ..interpreters.batching import batch_rules, bdim_at_front, not_mapped
from ..tree_util import tree_flatten, tree_unflatten
from ..util import safe_map, safe_zip, split_list
from . import lax, slicing
from .lax import _check_kind, _num, primitive

map, zip = safe_map, safe_zip

__all__ = ["reduce", "reduce_window", "padtype_to_pads", "reduce_window_shape_tuple",
           "reduce_window_sum_p", "reduce_window_max_p", "reduce_window_min_p",
           "reduce_window_p", "reduce_p"]

_WINDOW_PARAMS = ("window_dimensions", "window_strides", "padding", "base_dilation",
                  "window_dilation")


# ---------------------------------------------------------------------------------------------
# Window geometry

def _dilate_shape(shape, dilation):
    """The extent of each dim after putting dilation - 1 holes between neighbours."""
    return tuple(0 if d == 0 else 1 + r * (d - 1) for d, r in zip(shape, dilation))


def padtype_to_pads(in_shape, window_shape, window_strides, padding):
    """The explicit (lo, hi) pairs of a padding given as 'VALID', 'SAME' or 'SAME_LOWER' (as
    JAX: SAME pads so that out = ceil(in / stride), the odd element going high; SAME_LOWER
    low), or the pairs themselves."""
    if not isinstance(padding, str):
        return [(int(lo), int(hi)) for lo, hi in padding]
    kind = padding.upper()
    if kind == "VALID":
        return [(0, 0)] * len(in_shape)
    if kind not in ("SAME", "SAME_LOWER"):
        raise ValueError(f"unknown padding {padding!r}: expected 'VALID', 'SAME', 'SAME_LOWER' "
                         "or a sequence of (low, high) pairs")
    pads = []
    for n, w, s in zip(in_shape, window_shape, window_strides):
        total = max(0, (-(-n // s) - 1) * s + w - n)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if kind == "SAME" else (big, small))
    return pads


def reduce_window_shape_tuple(operand_shape, window_dimensions, window_strides, padding,
                              base_dilation=None, window_dilation=None):
    """The output shape of a windowed reduction (padding as explicit (lo, hi) pairs)."""
    nd = len(operand_shape)
    base = _dilate_shape(operand_shape, base_dilation or (1,) * nd)
    window = _dilate_shape(window_dimensions, window_dilation or (1,) * nd)
    return tuple(max(0, (b + lo + hi - w) // s + 1) if b + lo + hi >= w else 0
                 for b, w, s, (lo, hi) in zip(base, window, window_strides, padding))


def _canonical_window(name, shape, window_dimensions, window_strides, padding,
                      base_dilation=None, window_dilation=None):
    """The window params as a dict of int tuples, checked against the operand shape."""
    nd = len(shape)
    params = {"window_dimensions": window_dimensions, "window_strides": window_strides,
              "base_dilation": (1,) * nd if base_dilation is None else base_dilation,
              "window_dilation": (1,) * nd if window_dilation is None else window_dilation}
    params = {k: tuple(int(v) for v in vs) for k, vs in params.items()}
    if isinstance(padding, str):
        window = _dilate_shape(params["window_dimensions"], params["window_dilation"])
        padding = padtype_to_pads(_dilate_shape(shape, params["base_dilation"]), window,
                                  params["window_strides"], padding)
    params["padding"] = tuple((int(lo), int(hi)) for lo, hi in padding)
    _check_window(name, shape, **params)
    return params


def _check_window(name, shape, *, window_dimensions, window_strides, padding, base_dilation,
                  window_dilation):
    for what, vals in [("window_dimensions", window_dimensions), ("window_strides", window_strides),
                       ("padding", padding), ("base_dilation", base_dilation),
                       ("window_dilation", window_dilation)]:
        if len(vals) != len(shape):
            raise TypeError(f"{name}: {what} {vals} must have one entry per dimension of the "
                            f"operand of shape {tuple(shape)}")
        if what != "padding" and any(v < 1 for v in vals):
            raise ValueError(f"{name}: {what} must be positive, got {vals}")


def _window_aval(name, x, params):
    _check_window(name, x.shape, **params)
    return ShapedArray(reduce_window_shape_tuple(x.shape, **params), x.dtype)


def _pad_config(params):
    """The lax.pad config that dilates and pads an operand into the window's coordinates."""
    return [(lo, hi, b - 1) for (lo, hi), b in zip(params["padding"], params["base_dilation"])]


def _window_slices(padded_shape, out_shape, params):
    """For every window offset (row-major order): (start, limit, strides) of the strided slice
    of the padded operand holding that offset's element of every window."""
    out = []
    for w in itertools.product(*map(range, params["window_dimensions"])):
        start = [min(k * r, n) for k, r, n in zip(w, params["window_dilation"], padded_shape)]
        limit = [s + (m - 1) * st + 1 if m else s
                 for s, m, st in zip(start, out_shape, params["window_strides"])]
        out.append((start, limit, params["window_strides"]))
    return out


def _np_patches(x, fill, params):
    """The window offsets' strided views (NumPy) of x dilated and padded with fill."""
    xp = slicing._pad_impl(np.asarray(x), np.asarray(fill, x.dtype), padding_config=_pad_config(params))
    out_shape = reduce_window_shape_tuple(x.shape, **params)
    return [xp[tuple(slice(s, l, st) for s, l, st in zip(*sl))]
            for sl in _window_slices(xp.shape, out_shape, params)]


def _patches(x, fill, params):
    """_np_patches written in lax (pad and strided slices: linear in x, transposable)."""
    xp = slicing.pad(x, fill, _pad_config(params))
    out_shape = reduce_window_shape_tuple(get_aval(x).shape, **params)
    return [slicing.slice(xp, *sl) for sl in _window_slices(get_aval(xp).shape, out_shape, params)]


def _batch_window(params, d):
    """The window params of an operand with a new (batch) dimension at d: a window of one."""
    ins = lambda t, v: tuple(t[:d]) + (v,) + tuple(t[d:])  # noqa: E731
    return {"window_dimensions": ins(params["window_dimensions"], 1),
            "window_strides": ins(params["window_strides"], 1),
            "padding": ins(params["padding"], (0, 0)),
            "base_dilation": ins(params["base_dilation"], 1),
            "window_dilation": ins(params["window_dilation"], 1)}


def _split_params(params):
    window = {k: params[k] for k in _WINDOW_PARAMS}
    return window, {k: v for k, v in params.items() if k not in window}


# ---------------------------------------------------------------------------------------------
# Monoid identities

def max_identity(dtype):
    """The identity of max for dtype: -inf, the smallest integer, or False."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    return np.iinfo(dtype).min if dtype.kind in "iu" else False


def min_identity(dtype):
    """The identity of min for dtype: +inf, the largest integer, or True."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.inf
    return np.iinfo(dtype).max if dtype.kind in "iu" else True


# ---------------------------------------------------------------------------------------------
# reduce_window_sum / max / min

def _monoid_window_primitive(name, ufunc, identity, kinds):
    def impl(x, **params):
        ident = identity(x.dtype)
        out = np.full(reduce_window_shape_tuple(x.shape, **params), ident, x.dtype)
        for patch in _np_patches(x, ident, params):
            ufunc(out, patch, out=out)
        return out

    def aval(x, **params):
        _check_kind(name, x, kinds)
        return _window_aval(name, x, params)

    p = primitive(name, impl, aval)

    def batch(vals, dims, **params):
        (x,), (d,) = vals, dims
        return p.bind(x, **_batch_window(params, d)), d
    batch_rules[p] = batch
    _IDENTITIES[p] = identity
    return p


_IDENTITIES = {}   # monoid window primitive -> its identity(dtype)


reduce_window_sum_p = _monoid_window_primitive("reduce_window_sum", np.add, lambda dt: 0, _num)
reduce_window_max_p = _monoid_window_primitive("reduce_window_max", np.maximum, max_identity,
                                               _num + "b")
reduce_window_min_p = _monoid_window_primitive("reduce_window_min", np.minimum, min_identity,
                                               _num + "b")


def _reduce_window_sum_transpose(ct, x, **params):
    """ct_x[i] sums ct[o] over the windows o whose offset w lands on i: a window sum, with the
    window's dilation and a stride of the base dilation, over ct dilated by the strides and
    padded so that the flipped window lines up (all-ones windows need no flip)."""
    shape = x.aval.shape
    ct_shape = get_aval(ct).shape
    if 0 in ct_shape:
        return [lax.full(shape, 0, x.aval.dtype)]
    window = _dilate_shape(params["window_dimensions"], params["window_dilation"])
    base = _dilate_shape(shape, params["base_dilation"])
    out = _dilate_shape(ct_shape, params["window_strides"])
    cfg = []
    for (lo, _), w, b, o, s in zip(params["padding"], window, base, out, params["window_strides"]):
        before = w - 1 - lo
        cfg.append((before, b + w - 1 - o - before, s - 1))
    padded = slicing.pad(ct, np.zeros((), get_aval(ct).dtype), cfg)
    ones = (1,) * len(shape)
    return [reduce_window_sum_p.bind(padded, window_dimensions=params["window_dimensions"],
                                     window_strides=params["base_dilation"],
                                     padding=((0, 0),) * len(shape), base_dilation=ones,
                                     window_dilation=params["window_dilation"])]


deflinear(reduce_window_sum_p, _reduce_window_sum_transpose)


def _chooser_jvp(p):
    """The tangent at the first position (row-major window order) holding each window's
    result; padding positions hold the identity with a zero tangent."""
    def jvp(primals, tangents, **params):
        (x,), (t,) = primals, tangents
        out = p.bind(x, **params)
        if type(t) is Zero:
            return out, Zero(get_aval(out))
        a = get_aval(x)
        xs = _patches(x, np.asarray(_IDENTITIES[p](a.dtype), a.dtype), params)
        ts = _patches(t, np.zeros((), a.dtype), params)
        chosen = ts[-1]
        for xk, tk in zip(xs[-2::-1], ts[-2::-1]):   # last to first: the first match wins
            chosen = lax.select(lax.eq(xk, out), tk, chosen)
        return out, chosen
    jvp_rules[p] = jvp


_chooser_jvp(reduce_window_max_p)
_chooser_jvp(reduce_window_min_p)


# ---------------------------------------------------------------------------------------------
# The computation of a general reduction: a ClosedJaxpr on scalars, applied elementwise

def _reduction_jaxpr(name, computation, init_leaves, init_tree):
    """(ClosedJaxpr of the computation on 2n scalars -> n scalars, output treedef)."""
    avals = [ShapedArray((), get_aval(v).dtype) for v in init_leaves]
    trees = []

    def flat(*args):
        a, b = tree_unflatten(init_tree, args[:len(avals)]), tree_unflatten(init_tree, args[len(avals):])
        leaves, tree = tree_flatten(computation(a, b))
        trees.append(tree)
        return [core.as_array(v) for v in leaves]

    jaxpr, consts = core.trace_to_jaxpr(flat, avals + avals)
    if any(isinstance(c, core.Tracer) for c in consts):
        raise TypeError(f"{name}: the computation closes over a traced value; pass it as an "
                        f"operand instead{core.where()}")
    closed = ClosedJaxpr(jaxpr, list(consts))
    if trees[-1] != init_tree or closed.out_avals != avals:
        raise TypeError(f"{name}: the computation must return values of the structure and "
                        f"types of the init values ({init_tree}, {avals}), got {trees[-1]}, "
                        f"{closed.out_avals}{core.where()}")
    return closed, trees[-1]


def _apply_elementwise(jaxpr, args):
    """The scalar computation applied elementwise to equal-shaped arrays (a vmap over their
    flattened elements): a list of arrays of that shape."""
    shape = get_aval(args[0]).shape
    size = math.prod(shape)
    flat = [lax.reshape(a, (size,)) for a in args]
    outs = batching.vmap_flat(core.jaxpr_as_fun(jaxpr), size, [0] * len(flat),
                              [0] * len(jaxpr.out_avals), flat)
    return [lax.reshape(o, shape) for o in outs]


def _fold_from_init(jaxpr, inits, rows):
    """The sequential fold acc = computation(acc, row) from the init values over the rows
    (arrays of shape (K, ...)), written as a lax.scan: the traceable twin of the impls, exact
    for every computation, associative or not."""
    from .control_flow import scan
    shape = get_aval(rows[0]).shape[1:]
    acc = [lax.broadcast_in_dim(i, shape, ()) for i in inits]
    if get_aval(rows[0]).shape[0] == 0 or math.prod(shape) == 0:
        return acc

    def step(carry, row):
        return _apply_elementwise(jaxpr, list(carry) + list(row)), None
    return list(scan(step, acc, rows)[0])


def _np_fold(jaxpr, inits, steps, shape):
    """The sequential fold (NumPy arrays in and out): acc = computation(acc, step) from the
    init values broadcast to shape, over steps (lists of arrays of that shape)."""
    acc = [np.full(shape, i, np.asarray(i).dtype) for i in inits]
    if math.prod(shape) == 0:
        return acc
    for step in steps:
        acc = [np.asarray(a) for a in _apply_elementwise(jaxpr, acc + [np.asarray(s) for s in step])]
    return acc


def _init_avals(name, operands, inits):
    for o, i in zip(operands, inits):
        if i.shape != () or i.dtype != o.dtype:
            raise TypeError(f"{name}: init values must be scalars of the operands' dtypes, got "
                            f"operands {list(map(str, operands))} and init values "
                            f"{list(map(str, inits))}")
    if any(o.shape != operands[0].shape for o in operands):
        raise TypeError(f"{name}: operands must have equal shapes, got "
                        f"{list(map(str, operands))}")


def _check_unbatched_inits(name, dims):
    if any(d is not not_mapped for d in dims):
        raise NotImplementedError(f"batching rule for '{name}' with batched init values is not "
                                  "implemented (as in JAX): make the init values constants")


# ---------------------------------------------------------------------------------------------
# reduce_window (general)

def _reduce_window_impl(*args, jaxpr, **params):
    operands, inits = split_list(args, [len(args) // 2])
    steps = zip(*[_np_patches(x, i, params) for x, i in zip(operands, inits)])
    return _np_fold(jaxpr, inits, steps, reduce_window_shape_tuple(operands[0].shape, **params))


def _reduce_window_aval(*avals, jaxpr, **params):
    operands, inits = split_list(avals, [len(avals) // 2])
    _init_avals("reduce_window", operands, inits)
    return [_window_aval("reduce_window", o, params) for o in operands]


reduce_window_p = primitive("reduce_window", _reduce_window_impl, _reduce_window_aval,
                            multiple_results=True)


def _stacked_patches(x, fill, params):
    """(K, *out_shape): the window offsets' patches stacked along a new leading axis."""
    ps = _patches(x, fill, params)
    shape = get_aval(ps[0]).shape
    return slicing.concatenate([lax.reshape(p, (1,) + shape) for p in ps], 0)


def _reduce_window_traceable(jaxpr, params, n):
    def f(*args):
        operands, inits = args[:n], args[n:]
        rows = [_stacked_patches(x, i, params) for x, i in zip(operands, inits)]
        return _fold_from_init(jaxpr, inits, rows)
    return f


def _reduce_window_jvp(primals, tangents, *, jaxpr, **params):
    n = len(primals) // 2
    out = reduce_window_p.bind(*primals, jaxpr=jaxpr, **params)
    _, t_out = ad.jvp_flat(_reduce_window_traceable(jaxpr, params, n), primals, tangents)
    return out, t_out


def _reduce_window_batch(vals, dims, *, jaxpr, **params):
    n = len(vals) // 2
    _check_unbatched_inits("reduce_window", dims[n:])
    size = batching.axis_size_of(vals, dims)
    operands = [bdim_at_front(x, d, size) for x, d in zip(vals[:n], dims[:n])]
    outs = reduce_window_p.bind(*operands, *vals[n:], jaxpr=jaxpr, **_batch_window(params, 0))
    return outs, [0] * n


jvp_rules[reduce_window_p] = _reduce_window_jvp
batch_rules[reduce_window_p] = _reduce_window_batch


# ---------------------------------------------------------------------------------------------
# reduce (general)

def _to_rows(x, dimensions):
    """x (NumPy or traced) with the reduced dims moved to the front and flattened: (K, *kept)."""
    a = get_aval(x)
    kept = [d for d in range(a.ndim) if d not in dimensions]
    k = math.prod(a.shape[d] for d in dimensions)
    moved = lax.transpose(x, tuple(dimensions) + tuple(kept))
    return lax.reshape(moved, (k,) + tuple(a.shape[d] for d in kept))


def _reduce_impl(*args, jaxpr, dimensions):
    operands, inits = split_list(args, [len(args) // 2])
    rows = [np.asarray(_to_rows(x, dimensions)) for x in operands]
    shape = rows[0].shape[1:]
    return _np_fold(jaxpr, inits, zip(*rows), shape)


def _reduce_aval(*avals, jaxpr, dimensions):
    operands, inits = split_list(avals, [len(avals) // 2])
    _init_avals("reduce", operands, inits)
    nd = operands[0].ndim
    if len(set(dimensions)) != len(dimensions) or any(not 0 <= d < nd for d in dimensions):
        raise ValueError(f"reduce: dimensions {dimensions} must be distinct axes of the operand "
                         f"of shape {operands[0].shape}")
    shape = tuple(s for d, s in enumerate(operands[0].shape) if d not in dimensions)
    return [ShapedArray(shape, o.dtype) for o in operands]


reduce_p = primitive("reduce", _reduce_impl, _reduce_aval, multiple_results=True)


def _reduce_jvp(primals, tangents, *, jaxpr, dimensions):
    n = len(primals) // 2
    out = reduce_p.bind(*primals, jaxpr=jaxpr, dimensions=dimensions)

    def f(*args):
        return _fold_from_init(jaxpr, args[n:], [_to_rows(x, dimensions) for x in args[:n]])
    _, t_out = ad.jvp_flat(f, primals, tangents)
    return out, t_out


def _reduce_batch(vals, dims, *, jaxpr, dimensions):
    n = len(vals) // 2
    _check_unbatched_inits("reduce", dims[n:])
    size = batching.axis_size_of(vals, dims)
    operands = [bdim_at_front(x, d, size) for x, d in zip(vals[:n], dims[:n])]
    outs = reduce_p.bind(*operands, *vals[n:], jaxpr=jaxpr,
                         dimensions=tuple(d + 1 for d in dimensions))
    return outs, [0] * n


jvp_rules[reduce_p] = _reduce_jvp
batch_rules[reduce_p] = _reduce_batch


# ---------------------------------------------------------------------------------------------
# The user-facing functions: monoids go to the dedicated primitives

def _monoid(jaxpr, init):
    """'sum', 'prod', 'max' or 'min' when the computation is one monoid primitive of its two
    arguments and init (a concrete scalar) its identity; else None."""
    eqns = jaxpr.jaxpr.eqns
    if len(eqns) != 1 or jaxpr.consts or jaxpr.jaxpr.outvars != eqns[0].out_binders:
        return None
    eqn = eqns[0]
    if set(map(id, eqn.inputs)) != set(map(id, jaxpr.jaxpr.invars)) or len(eqn.inputs) != 2:
        return None
    value = core.concrete_or_none(init)
    if value is None:
        return None
    value = np.asarray(value)
    dtype = value.dtype
    table = {"add": ("sum", 0), "mul": ("prod", 1), "max": ("max", max_identity(dtype)),
             "min": ("min", min_identity(dtype))}
    if dtype == np.bool_:   # on bools, or is max and and is min
        table.update({"or": ("max", False), "and": ("min", True)})
    name, ident = table.get(eqn.primitive.name, (None, None))
    return name if name is not None and value == ident else None


def _flat_operands(name, operands, init_values):
    ops, tree = tree_flatten(operands)
    inits, init_tree = tree_flatten(init_values)
    if tree != init_tree:
        raise ValueError(f"{name}: operands and init_values must have the same tree structure, "
                         f"got {tree} and {init_tree}")
    if not ops:
        raise ValueError(f"{name} needs at least one operand")
    ops = [slicing._array(o) for o in ops]
    inits = [np.asarray(i, get_aval(o).dtype) if isinstance(i, (bool, int, float))
             else slicing._array(i) for i, o in zip(inits, ops)]
    return ops, inits, tree


def reduce(operands, init_values, computation, dimensions):  # noqa: A001
    """The reduction of operands (an array or a pytree of equal-shaped arrays) over
    ``dimensions`` with ``computation``, a function of two values of init_values' structure
    (the accumulator, then an element) returning one, starting from init_values (scalars).
    Returns the reduced array(s), of the structure of operands. add/mul/max/min (and and/or
    on bools) with their identity as init become reduce_sum/prod/max/min."""
    ops, inits, tree = _flat_operands("reduce", operands, init_values)
    nd = get_aval(ops[0]).ndim
    dims = tuple(sorted(slicing._canonical_axes(dimensions, nd, "reduce")))
    jaxpr, out_tree = _reduction_jaxpr("reduce", computation, inits, tree)
    kind = _monoid(jaxpr, inits[0]) if len(ops) == 1 else None
    if kind is not None:
        out = getattr(lax, f"reduce_{kind}")(ops[0], dims)
        return tree_unflatten(out_tree, [out])
    outs = reduce_p.bind(*ops, *inits, jaxpr=jaxpr, dimensions=dims)
    return tree_unflatten(out_tree, outs)


_WINDOW_PRIMITIVES = {"sum": reduce_window_sum_p, "max": reduce_window_max_p,
                      "min": reduce_window_min_p}


def reduce_window(operand, init_value, computation, window_dimensions, window_strides,
                  padding, base_dilation=None, window_dilation=None):
    """The reduction of every window of operand (an array or a pytree of equal-shaped arrays)
    with ``computation`` (a function of two values of init_value's structure) from init_value.
    padding is 'VALID', 'SAME', 'SAME_LOWER' or one (low, high) pair per dimension (padded
    elements are init_value); base_dilation spreads the operand (holes are init_value) and
    window_dilation the window. Returns the array(s) of output windows, operand's structure.
    add with 0 and max/min with their identity become reduce_window_sum/max/min."""
    ops, inits, tree = _flat_operands("reduce_window", operand, init_value)
    params = _canonical_window("reduce_window", get_aval(ops[0]).shape, window_dimensions,
                               window_strides, padding, base_dilation, window_dilation)
    jaxpr, out_tree = _reduction_jaxpr("reduce_window", computation, inits, tree)
    kind = _monoid(jaxpr, inits[0]) if len(ops) == 1 else None
    if kind in _WINDOW_PRIMITIVES:
        return tree_unflatten(out_tree, [_WINDOW_PRIMITIVES[kind].bind(ops[0], **params)])
    outs = reduce_window_p.bind(*ops, *inits, jaxpr=jaxpr, **params)
    return tree_unflatten(out_tree, outs)


def _window_function(p, what):
    def f(operand, window_dimensions, window_strides, padding, base_dilation=None,
          window_dilation=None):
        x = slicing._array(operand)
        params = _canonical_window(p.name, get_aval(x).shape, window_dimensions, window_strides,
                                   padding, base_dilation, window_dilation)
        return p.bind(x, **params)
    f.__name__ = f.__qualname__ = p.name
    f.__doc__ = (f"The {what} of every window of operand (padding 'VALID', 'SAME' or (low, high) "
                 f"pairs; padded and dilation holes are the identity): the lax primitive "
                 f"'{p.name}'.")
    return f


reduce_window_sum = _window_function(reduce_window_sum_p, "sum")
reduce_window_max = _window_function(reduce_window_max_p, "maximum")
reduce_window_min = _window_function(reduce_window_min_p, "minimum")
__all__ += ["reduce_window_sum", "reduce_window_max", "reduce_window_min", "max_identity",
            "min_identity"]
