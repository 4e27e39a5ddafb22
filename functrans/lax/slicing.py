"""Slicing-family primitives: slice, pad, concatenate, dynamic_slice, dynamic_update_slice,
gather, scatter_add, scatter, scatter_mul and sort. Each with all its rules beside it.

gather/scatter use one simple index convention (a subset of XLA's): ``idx`` has shape
(*B, len(axes)); row idx[b] gives coordinates along ``axes`` of x; every other dim of x is kept
whole. The gathered (or scattered-in) block has shape (*B, *[x.shape[d] for d not in axes]).
Gather clamps out-of-range indices; the scatters drop them (JAX's defaults)."""
from __future__ import annotations

import builtins

import numpy as np

from .. import core
from ..core import ShapedArray, get_aval
from ..interpreters.ad import UndefPrimal, Zero, deflinear, instantiate_zeros, jvp_rules, transpose_rules
from ..interpreters.batching import (batch_rules, bdim_at_front, broadcast_batch, moveaxis,
                                     not_mapped)
from ..util import safe_map, safe_zip
from . import lax
from .lax import (add, bitwise_and, broadcast_in_dim, broadcasted_iota, convert_element_type, div,
                  eq, full, ge, lt, mul, primitive, reduce_min, reduce_sum, reshape, select, sub)

map, zip = safe_map, safe_zip


# ---------------------------------------------------------------------------------------------
# slice

def _slice_aval(x, *, start_indices, limit_indices, strides):
    if not (len(start_indices) == len(limit_indices) == len(strides) == x.ndim):
        raise TypeError(f"slice: indices {start_indices}, {limit_indices} do not match the rank "
                        f"of shape {x.shape}")
    for s, l, d, st in zip(start_indices, limit_indices, x.shape, strides):
        if not 0 <= s <= l <= d or st < 1:
            raise ValueError(f"slice: start {start_indices} / limit {limit_indices} / strides "
                             f"{strides} out of bounds for shape {x.shape}")
    shape = tuple(max(0, -(-(l - s) // st)) for s, l, st in zip(start_indices, limit_indices, strides))
    return ShapedArray(shape, x.dtype)


def _slice_impl(x, *, start_indices, limit_indices, strides):
    return x[tuple(builtins.slice(s, l, st) for s, l, st in zip(start_indices, limit_indices, strides))]


slice_p = primitive("slice", _slice_impl, _slice_aval)


def slice(x, start_indices, limit_indices, strides=None):  # noqa: A001
    """x[start:limit:stride] along every axis (static bounds)."""
    nd = get_aval(x).ndim
    strides = (1,) * nd if strides is None else tuple(int(s) for s in strides)
    start = tuple(int(s) for s in start_indices)
    limit = tuple(int(s) for s in limit_indices)
    if start == (0,) * nd and limit == get_aval(x).shape and strides == (1,) * nd:
        return core.to_output(x)
    return slice_p.bind(x, start_indices=start, limit_indices=limit, strides=strides)


def _slice_transpose(ct, x, *, start_indices, limit_indices, strides):
    shape = x.aval.shape
    out_shape = get_aval(ct).shape
    cfg = []
    for s, l, st, d, n in zip(start_indices, limit_indices, strides, shape, out_shape):
        real_limit = s + (n - 1) * st + 1 if n else s
        cfg.append((s, d - real_limit, st - 1) if n else (s, d - s, 0))
    zero = np.zeros((), x.aval.dtype)
    if any(n == 0 for n in out_shape):
        return [full(shape, 0, x.aval.dtype)]
    return [pad(ct, zero, cfg)]


def _slice_batch(vals, dims, *, start_indices, limit_indices, strides):
    (x,), (d,) = vals, dims
    size = get_aval(x).shape[d]
    ins = lambda t, v: t[:d] + (v,) + t[d:]  # noqa: E731
    return slice_p.bind(x, start_indices=ins(start_indices, 0), limit_indices=ins(limit_indices, size),
                        strides=ins(strides, 1)), d


deflinear(slice_p, _slice_transpose)
batch_rules[slice_p] = _slice_batch


# ---------------------------------------------------------------------------------------------
# pad (lo and hi may be negative; interior >= 0)

def _pad_aval(x, padding_value, *, padding_config):
    if padding_value.shape != () or padding_value.dtype != x.dtype:
        raise TypeError(f"pad: padding value must be a scalar of dtype {x.dtype}, got "
                        f"{padding_value}")
    if len(padding_config) != x.ndim:
        raise TypeError(f"pad: padding config {padding_config} does not match shape {x.shape}")
    shape = []
    for d, (lo, hi, interior) in zip(x.shape, padding_config):
        if interior < 0:
            raise ValueError(f"pad: interior padding must be >= 0, got {padding_config}")
        n = lo + hi + d + max(0, d - 1) * interior
        if n < 0:
            raise ValueError(f"pad: padding config {padding_config} gives a negative dimension "
                             f"for shape {x.shape}")
        shape.append(n)
    return ShapedArray(tuple(shape), x.dtype)


def _pad_impl(x, padding_value, *, padding_config):
    shape = _pad_aval(get_aval(x), get_aval(padding_value), padding_config=padding_config).shape
    full_shape = tuple(max(0, lo) + max(0, hi) + d + max(0, d - 1) * it
                       for d, (lo, hi, it) in zip(x.shape, padding_config))
    out = np.full(full_shape, padding_value, dtype=x.dtype)
    out[tuple(np.s_[max(0, lo):max(0, lo) + (d - 1) * (it + 1) + 1:it + 1] if d else np.s_[0:0]
              for d, (lo, hi, it) in zip(x.shape, padding_config))] = x
    crop = tuple(np.s_[max(0, -lo):max(0, -lo) + n] for (lo, hi, it), n in zip(padding_config, shape))
    return np.array(out[crop])


pad_p = primitive("pad", _pad_impl, _pad_aval)


def pad(x, padding_value, padding_config):
    """x padded with padding_value: padding_config[i] = (low, high, interior) for axis i."""
    cfg = tuple((int(lo), int(hi), int(it)) for lo, hi, it in padding_config)
    x = _array(x)
    if isinstance(padding_value, (bool, int, float)):  # Python scalars are weakly typed
        padding_value = np.asarray(padding_value, get_aval(x).dtype)
    return pad_p.bind(x, _array(padding_value), padding_config=cfg)


def _pad_transpose(ct, x, padding_value, *, padding_config):
    out = [None, None]
    if isinstance(x, UndefPrimal):
        lo, hi, it = zip(*padding_config) if padding_config else ((), (), ())
        unpadded = pad(ct, np.zeros((), get_aval(ct).dtype),
                       [(-a, -b, 0) for a, b in zip(lo, hi)])
        shape = get_aval(unpadded).shape
        t_x = slice(unpadded, (0,) * len(shape), shape, tuple(i + 1 for i in it))
        out[0] = t_x
    if isinstance(padding_value, UndefPrimal):
        total = reduce_sum(ct, tuple(range(get_aval(ct).ndim)))
        inner = reduce_sum(out[0], tuple(range(get_aval(out[0]).ndim))) if out[0] is not None \
            else reduce_sum(_pad_transpose(ct, UndefPrimal(x if isinstance(x, ShapedArray) else get_aval(x)),
                                           np.zeros((), get_aval(ct).dtype),
                                           padding_config=padding_config)[0],
                            tuple(range(len(padding_config))))
        out[1] = sub(total, inner)
    return out


def _pad_batch(vals, dims, *, padding_config):
    (x, v), (dx, dv) = vals, dims
    if dv is not not_mapped:
        # a batched padding value: pad with zeros, then add the value where padding landed
        size = get_aval(v).shape[dv]
        x = moveaxis(x, dx, 0) if dx is not not_mapped else broadcast_batch(x, size, 0)
        cfg = ((0, 0, 0),) + tuple(padding_config)
        zero = np.zeros((), get_aval(x).dtype)
        padded = pad_p.bind(x, zero, padding_config=cfg)
        mask = pad_p.bind(np.ones(get_aval(x).shape, np.bool_), np.zeros((), np.bool_), padding_config=cfg)
        from .lax import select, broadcast_in_dim
        vb = broadcast_in_dim(moveaxis(v, dv, 0), get_aval(padded).shape, (0,))
        return select(mask, padded, vb), 0
    cfg = tuple(padding_config[:dx]) + ((0, 0, 0),) + tuple(padding_config[dx:])
    return pad_p.bind(x, v, padding_config=cfg), dx


deflinear(pad_p, _pad_transpose)
batch_rules[pad_p] = _pad_batch


# ---------------------------------------------------------------------------------------------
# concatenate

def _concatenate_aval(*xs, dimension):
    x0 = xs[0]
    for x in xs[1:]:
        if x.ndim != x0.ndim or x.dtype != x0.dtype or any(
                a != b for i, (a, b) in enumerate(zip(x.shape, x0.shape)) if i != dimension):
            raise TypeError("concatenate: all input arrays must have the same dtype and the same "
                            "shape except along the concatenation axis, got "
                            + ", ".join(str(y) for y in xs))
    if not 0 <= dimension < x0.ndim:
        raise ValueError(f"concatenate: dimension {dimension} out of range for shape {x0.shape}")
    shape = list(x0.shape)
    shape[dimension] = sum(x.shape[dimension] for x in xs)
    return ShapedArray(tuple(shape), x0.dtype)


concatenate_p = primitive("concatenate", lambda *xs, dimension: np.concatenate(xs, dimension),
                          _concatenate_aval)


def concatenate(xs, dimension):
    """The arrays xs joined along ``dimension``."""
    xs = [_array(x) for x in xs]
    if not xs:
        raise ValueError("concatenate needs at least one array")
    dimension = _canonical_axes((dimension,), get_aval(xs[0]).ndim, "concatenate")[0]
    if len(xs) == 1:
        return core.to_output(xs[0])
    return concatenate_p.bind(*xs, dimension=dimension)


def _concatenate_transpose(ct, *xs, dimension):
    shape = get_aval(ct).shape
    out, start = [], 0
    for x in xs:
        n = (x.aval if isinstance(x, UndefPrimal) else get_aval(x)).shape[dimension]
        if isinstance(x, UndefPrimal):
            lo = [0] * len(shape)
            hi = list(shape)
            lo[dimension], hi[dimension] = start, start + n
            out.append(slice(ct, lo, hi))
        else:
            out.append(None)
        start += n
    return out


def _concatenate_batch(vals, dims, *, dimension):
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not not_mapped)
    vals = [broadcast_batch(v, size, 0) if d is not_mapped else moveaxis(v, d, 0)
            for v, d in zip(vals, dims)]
    return concatenate_p.bind(*vals, dimension=dimension + 1), 0


deflinear(concatenate_p, _concatenate_transpose)
batch_rules[concatenate_p] = _concatenate_batch


# ---------------------------------------------------------------------------------------------
# Shared helpers for the index-driven primitives

def _array(v):
    """v as an array (tracers pass through; lists and scalars become NumPy arrays)."""
    return v if isinstance(v, (np.ndarray, core.Array)) or hasattr(v, "_trace") else np.asarray(v)


def _canonical_axes(axes, ndim, name):
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < ndim:
            raise ValueError(f"{name}: axis {a} is out of range for an operand of rank {ndim}")
        out.append(a % ndim)
    return tuple(out)


def _linear_jvp(prim, linear_argnums):
    """Register the jvp of a primitive that is jointly linear in the operands linear_argnums
    (the others are integer indices): the primitive applied to their tangents."""
    def jvp(primals, tangents, **params):
        out = prim.bind(*primals, **params)
        lin = [i in linear_argnums for i in range(len(primals))]
        if all(type(t) is Zero for t, li in zip(tangents, lin) if li):
            return out, Zero(get_aval(out))
        args = [instantiate_zeros(t) if li else p for p, t, li in zip(primals, tangents, lin)]
        return out, prim.bind(*args, **params)
    jvp_rules[prim] = jvp


def _zeros(aval):
    return full(aval.shape, 0, aval.dtype)


def _aval(x):
    return x.aval if isinstance(x, UndefPrimal) else get_aval(x)


# ---------------------------------------------------------------------------------------------
# gather / scatter: index checks, NumPy coordinates, traced masks

def _block_shape(name, x, idx, axes):
    """Shape of the block that idx addresses in x: (*B, *non-indexed dims of x)."""
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{name}: indices must have an integer dtype, got {idx.str_short()}")
    if idx.ndim < 1 or idx.shape[-1] != len(axes):
        raise TypeError(f"{name}: indices of shape {idx.shape} must have a last dimension of "
                        f"size len(axes) = {len(axes)} (axes={axes})")
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise ValueError(f"{name}: axes {axes} must be distinct dimensions of the operand of "
                         f"shape {x.shape}")
    return idx.shape[:-1] + tuple(n for d, n in enumerate(x.shape) if d not in axes)


def _np_coords(x_shape, idx, axes, clamp=False):
    """One int64 array per dim of x, broadcastable to the block shape: the coordinate in x of
    every block element (out-of-range indices clamped if ``clamp``). Also returns the block
    shape."""
    batch = idx.shape[:-1]
    rest = [d for d in range(len(x_shape)) if d not in axes]
    block = batch + tuple(x_shape[d] for d in rest)
    nb, nr = len(batch), len(rest)
    idx = np.asarray(idx).astype(np.int64)
    coords = [None] * len(x_shape)
    if clamp:
        idx = np.clip(idx, 0, np.array([builtins.max(x_shape[a] - 1, 0) for a in axes], np.int64))
    for j, a in enumerate(axes):
        coords[a] = idx[..., j].reshape(batch + (1,) * nr)
    for r, d in enumerate(rest):
        shape = [1] * (nb + nr)
        shape[nb + r] = x_shape[d]
        coords[d] = np.arange(x_shape[d]).reshape(shape)
    return coords, block


def _as_int64(idx):
    return convert_element_type(idx, np.int64)


def _axis_sizes(idx, x_shape, axes, offset=0):
    """x.shape[axes[j]] + offset laid along the last dim of idx (int64, idx's shape)."""
    a = get_aval(idx)
    sizes = np.array([x_shape[ax] + offset for ax in axes], np.int64)
    return broadcast_in_dim(sizes, a.shape, (a.ndim - 1,))


def _clamp_indices(idx, x_shape, axes):
    """idx (as int64) clamped into x along every indexed axis: what gather actually reads."""
    idx = _as_int64(idx)
    hi = lax.min(idx, _axis_sizes(idx, x_shape, axes, -1))
    return lax.max(hi, _zeros(get_aval(hi)))


def _rows_in_range(idx, x_shape, axes):
    """bool (*B,): the rows of idx inside x along every indexed axis (the ones scatters keep)."""
    idx = _as_int64(idx)
    a = get_aval(idx)
    if not axes:
        return full(a.shape[:-1], True, np.bool_)
    ok = bitwise_and(ge(idx, _zeros(a)), lt(idx, _axis_sizes(idx, x_shape, axes)))
    return reduce_min(ok, (a.ndim - 1,))


def _mask_rows(rows, v):
    """v (of a block shape (*B, ...)) with the rows where rows (shape (*B,)) is False zeroed."""
    a = get_aval(v)
    keep = broadcast_in_dim(rows, a.shape, tuple(range(get_aval(rows).ndim)))
    return select(keep, v, _zeros(a))


def _winning_rows(idx, x_shape, axes):
    """bool (*B,): rows that are in range and are the last writer of their target (the rows
    whose updates survive a set-scatter when indices repeat)."""
    batch = get_aval(idx).shape[:-1]
    n = int(np.prod(batch, dtype=np.int64))
    ids = reshape(add(lax.iota(np.int64, n), full((n,), 1, np.int64)), batch)
    own = tuple(range(len(axes)))
    target = full(tuple(x_shape[a] for a in axes), 0, np.int64)
    written = gather(scatter(target, idx, ids, own), idx, own)
    return bitwise_and(eq(written, ids), _rows_in_range(idx, x_shape, axes))


def _with_batch_column(idx):
    """idx (batch dim at 0, shape (N, *B, k)) with the batch position prepended as column 0."""
    a = get_aval(idx)
    if a.shape[0] - 1 > np.iinfo(a.dtype).max:
        idx = _as_int64(idx)
        a = get_aval(idx)
    col = broadcasted_iota(a.dtype, a.shape[:-1] + (1,), 0)
    return concatenate([col, idx], a.ndim - 1)


def _shift_axes(axes):
    return (0,) + tuple(a + 1 for a in axes)


# ---------------------------------------------------------------------------------------------
# gather

def _gather_aval(x, idx, *, axes):
    block = _block_shape("gather", x, idx, axes)
    if any(x.shape[a] == 0 for a in axes) and int(np.prod(idx.shape[:-1], dtype=np.int64)):
        raise ValueError(f"gather: cannot index an axis of size 0 (operand shape {x.shape}, "
                         f"axes {axes}, indices shape {idx.shape})")
    return ShapedArray(block, x.dtype)


def _gather_impl(x, idx, *, axes):
    block = _gather_aval(get_aval(x), get_aval(idx), axes=axes).shape
    coords, _ = _np_coords(x.shape, idx, axes, clamp=True)
    return np.array(np.broadcast_to(x[tuple(coords)], block))


gather_p = primitive("gather", _gather_impl, _gather_aval)


def gather(x, idx, axes):
    """x read at integer coordinates: idx has shape (*B, len(axes)); the result has shape
    (*B, *[x.shape[d] for d not in axes]) and result[b, ...] = x at coordinates idx[b] along
    ``axes`` (other dims whole, in order). Out-of-range indices are clamped."""
    x, idx = _array(x), _array(idx)
    axes = _canonical_axes(axes, get_aval(x).ndim, "gather")
    return gather_p.bind(x, idx, axes=axes)


def _gather_transpose(ct, x, idx, *, axes):
    shape = x.aval.shape
    return [scatter_add(_zeros(x.aval), _clamp_indices(idx, shape, axes), ct, axes), None]


def _gather_batch(vals, dims, *, axes):
    (x, idx), (dx, di) = vals, dims
    if di is not_mapped:
        axes = tuple(a + (a >= dx) for a in axes)
        rest = [d for d in range(get_aval(x).ndim) if d not in axes]
        return gather_p.bind(x, idx, axes=axes), get_aval(idx).ndim - 1 + rest.index(dx)
    idx = moveaxis(idx, di, 0)
    if dx is not_mapped:
        return gather_p.bind(x, idx, axes=axes), 0
    x = moveaxis(x, dx, 0)
    return gather_p.bind(x, _with_batch_column(idx), axes=_shift_axes(axes)), 0


_linear_jvp(gather_p, {0})
transpose_rules[gather_p] = _gather_transpose
batch_rules[gather_p] = _gather_batch


# ---------------------------------------------------------------------------------------------
# scatter_add, scatter (set), scatter_mul: one implementation, per-kind rules

def _scatter_aval_rule(name):
    def rule(x, idx, updates, *, axes):
        block = _block_shape(name, x, idx, axes)
        if updates.shape != block or updates.dtype != x.dtype:
            raise TypeError(f"{name}: updates must have shape {block} and dtype {x.dtype.name} "
                            f"for operand {x} and indices of shape {idx.shape} (axes={axes}), "
                            f"got {updates}")
        return x
    return rule


def _np_set(out, where, values):
    out[where] = values  # repeated targets: the last write wins (numpy assignment order)


def _scatter_impl_rule(name, combine):
    def impl(x, idx, updates, *, axes):
        _scatter_aval_rule(name)(get_aval(x), get_aval(idx), get_aval(updates), axes=axes)
        coords, block = _np_coords(x.shape, idx, axes)
        coords = [np.broadcast_to(c, block) for c in coords]
        keep = np.ones(block, np.bool_)
        flat = np.zeros(block, np.int64)
        for c, n in zip(coords, x.shape):
            keep &= (c >= 0) & (c < n)
            flat = flat * n + c
        out = np.array(x).reshape(-1)
        combine(out, flat[keep], np.asarray(updates)[keep])
        return out.reshape(x.shape)
    return impl


def _scatter_primitive(name, combine):
    return primitive(name, _scatter_impl_rule(name, combine), _scatter_aval_rule(name))


scatter_add_p = _scatter_primitive("scatter_add", np.add.at)
scatter_p = _scatter_primitive("scatter", _np_set)
scatter_mul_p = _scatter_primitive("scatter_mul", np.multiply.at)


def _scatter_wrapper(prim, x, idx, updates, axes):
    x, idx, updates = _array(x), _array(idx), _array(updates)
    axes = _canonical_axes(axes, get_aval(x).ndim, prim.name)
    return prim.bind(x, idx, updates, axes=axes)


def scatter_add(x, idx, updates, axes):
    """x with updates added at the coordinates idx along axes (updates has gather's output
    shape); repeated indices accumulate and out-of-range indices are dropped (x.at[].add)."""
    return _scatter_wrapper(scatter_add_p, x, idx, updates, axes)


def scatter(x, idx, updates, axes):
    """x with the coordinates idx along axes set to updates (x.at[].set); with repeated
    indices the last update wins; out-of-range indices are dropped."""
    return _scatter_wrapper(scatter_p, x, idx, updates, axes)


def scatter_mul(x, idx, updates, axes):
    """x with the coordinates idx along axes multiplied by updates (x.at[].mul); repeated
    indices multiply together; out-of-range indices are dropped."""
    return _scatter_wrapper(scatter_mul_p, x, idx, updates, axes)


def _scatter_add_transpose(ct, x, idx, updates, *, axes):
    shape = _aval(x).shape
    ct_u = None
    if isinstance(updates, UndefPrimal):
        ct_u = _mask_rows(_rows_in_range(idx, shape, axes), gather(ct, idx, axes))
    return [ct if isinstance(x, UndefPrimal) else None, None, ct_u]


def _scatter_transpose(ct, x, idx, updates, *, axes):
    shape = _aval(x).shape
    ct_x = ct_u = None
    if isinstance(x, UndefPrimal):
        ct_x = scatter(ct, idx, _zeros(_aval(updates)), axes)
    if isinstance(updates, UndefPrimal):
        ct_u = _mask_rows(_winning_rows(idx, shape, axes), gather(ct, idx, axes))
    return [ct_x, None, ct_u]


def _scatter_mul_transpose(ct, x, idx, updates, *, axes):
    if isinstance(updates, UndefPrimal):
        raise NotImplementedError("Transpose rule for 'scatter_mul' with respect to its updates "
                                  "is not implemented: scatter_mul is linear only in the operand")
    return [scatter_mul(ct, idx, updates, axes), None, None]


def _product_of_others(x, idx, u, axes):
    """For every update element, the product of the OTHER updates landing on the same element
    of x. Zeros are counted rather than divided by, so this is exact when updates are zero."""
    shape, ua = get_aval(x).shape, get_aval(u)
    base = full(shape, 0, ua.dtype)
    is_zero = eq(u, _zeros(ua))
    safe_u = select(is_zero, full(ua.shape, 1, ua.dtype), u)
    prod_nonzero = gather(scatter_mul(add(base, full(shape, 1, ua.dtype)), idx, safe_u, axes),
                          idx, axes)
    zero_count = gather(scatter_add(base, idx, convert_element_type(is_zero, ua.dtype), axes),
                        idx, axes)
    others_zero = sub(zero_count, convert_element_type(is_zero, ua.dtype))
    return select(eq(others_zero, _zeros(ua)), div(prod_nonzero, safe_u), _zeros(ua))


def _scatter_mul_jvp(primals, tangents, *, axes):
    (x, idx, u), (tx, _, tu) = primals, tangents
    out = scatter_mul_p.bind(x, idx, u, axes=axes)
    t_out = Zero(get_aval(out))
    if type(tx) is not Zero:
        t_out = scatter_mul_p.bind(tx, idx, u, axes=axes)
    if type(tu) is not Zero:
        spread = scatter_add(_zeros(get_aval(x)), idx, mul(tu, _product_of_others(x, idx, u, axes)),
                             axes)
        t_u = mul(x, spread)
        t_out = t_u if type(t_out) is Zero else add(t_out, t_u)
    return out, t_out


def _scatter_batch_rule(prim):
    def rule(vals, dims, *, axes):
        (x, idx, u), (dx, di, du) = vals, dims
        size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not not_mapped)
        x = bdim_at_front(x, dx, size)
        if di is not_mapped:
            # the batch dim becomes the first non-indexed dim of x: block dim len(B) of updates
            nb = get_aval(idx).ndim - 1
            u = broadcast_batch(u, size, nb) if du is not_mapped else moveaxis(u, du, nb)
            return prim.bind(x, idx, u, axes=tuple(a + 1 for a in axes)), 0
        idx = _with_batch_column(moveaxis(idx, di, 0))
        u = bdim_at_front(u, du, size)
        return prim.bind(x, idx, u, axes=_shift_axes(axes)), 0
    batch_rules[prim] = rule


_linear_jvp(scatter_add_p, {0, 2})
transpose_rules[scatter_add_p] = _scatter_add_transpose
_linear_jvp(scatter_p, {0, 2})  # the winners depend on the indices only
transpose_rules[scatter_p] = _scatter_transpose
jvp_rules[scatter_mul_p] = _scatter_mul_jvp
transpose_rules[scatter_mul_p] = _scatter_mul_transpose
for _p in (scatter_add_p, scatter_p, scatter_mul_p):
    _scatter_batch_rule(_p)


# ---------------------------------------------------------------------------------------------
# dynamic_slice and dynamic_update_slice (starts are scalar integer operands, clamped so the
# window lies inside the operand, as in JAX)

def _check_starts(name, x, starts):
    if len(starts) != x.ndim:
        raise TypeError(f"{name}: got {len(starts)} start indices for an operand of shape "
                        f"{x.shape}; need one per dimension")
    for s in starts:
        if s.shape != () or s.dtype.kind not in "iu":
            raise TypeError(f"{name}: start indices must be scalar integers, got "
                            f"{', '.join(str(t) for t in starts)}")


def _check_window(name, shape, sizes):
    if len(sizes) != len(shape) or any(not 0 <= k <= n for k, n in zip(sizes, shape)):
        raise ValueError(f"{name}: window of shape {tuple(sizes)} does not fit in an operand of "
                         f"shape {tuple(shape)}")


def _np_window(starts, shape, sizes):
    """The clamped window as a tuple of Python slices."""
    return tuple(builtins.slice(s, s + k) for s, k in
                 ((builtins.min(builtins.max(int(s), 0), n - k), k)
                  for s, n, k in zip(starts, shape, sizes)))


def _clamp_start(s, n, k):
    """A start index (as int64, any shape) clamped into [0, n - k]."""
    s = _as_int64(s)
    shape = get_aval(s).shape
    return lax.max(lax.min(s, full(shape, n - k, np.int64)), full(shape, 0, np.int64))


def _window_indices(starts, dims, size, shape, sizes):
    """int64 coordinates (N, *sizes, ndim) of the clamped windows for starts batched at 0 (or
    unbatched): the loop-free form of a batch of dynamic slices."""
    block = (size,) + tuple(sizes)
    cols = []
    for d, (s, sd, n, k) in enumerate(zip(starts, dims, shape, sizes)):
        s = _clamp_start(bdim_at_front(s, sd, size), n, k)
        col = add(broadcast_in_dim(s, block, (0,)), broadcasted_iota(np.int64, block, d + 1))
        cols.append(reshape(col, block + (1,)))
    return concatenate(cols, len(block))


def _dynamic_slice_aval(x, *starts, slice_sizes):
    _check_starts("dynamic_slice", x, starts)
    _check_window("dynamic_slice", x.shape, slice_sizes)
    return ShapedArray(slice_sizes, x.dtype)


def _dynamic_slice_impl(x, *starts, slice_sizes):
    _dynamic_slice_aval(get_aval(x), *map(get_aval, starts), slice_sizes=slice_sizes)
    return np.array(x[_np_window(starts, x.shape, slice_sizes)])


dynamic_slice_p = primitive("dynamic_slice", _dynamic_slice_impl, _dynamic_slice_aval)


def dynamic_slice(x, start_indices, slice_sizes):
    """The window of shape slice_sizes of x starting at start_indices (scalar integers, may be
    traced), with each start clamped so that the window lies inside x."""
    sizes = tuple(int(k) for k in slice_sizes)
    return dynamic_slice_p.bind(_array(x), *map(_array, start_indices), slice_sizes=sizes)


def _dynamic_slice_transpose(ct, x, *starts, slice_sizes):
    return [dynamic_update_slice(_zeros(x.aval), ct, starts)] + [None] * len(starts)


def _dynamic_slice_batch(vals, dims, *, slice_sizes):
    (x, *starts), (dx, *ds) = vals, dims
    shape = get_aval(x).shape
    if all(d is not_mapped for d in ds):
        starts.insert(dx, np.zeros((), np.int64))
        sizes = slice_sizes[:dx] + (shape[dx],) + slice_sizes[dx:]
        return dynamic_slice_p.bind(x, *starts, slice_sizes=sizes), dx
    size = next(get_aval(s).shape[d] for s, d in zip(starts, ds) if d is not not_mapped)
    axes = tuple(range(len(slice_sizes)))
    if dx is not_mapped:
        return gather_p.bind(x, _window_indices(starts, ds, size, shape, slice_sizes),
                             axes=axes), 0
    x = moveaxis(x, dx, 0)
    idx = _window_indices(starts, ds, size, get_aval(x).shape[1:], slice_sizes)
    return gather_p.bind(x, _with_batch_column(idx), axes=_shift_axes(axes)), 0


_linear_jvp(dynamic_slice_p, {0})
transpose_rules[dynamic_slice_p] = _dynamic_slice_transpose
batch_rules[dynamic_slice_p] = _dynamic_slice_batch


def _dynamic_update_slice_aval(x, update, *starts):
    _check_starts("dynamic_update_slice", x, starts)
    if update.dtype != x.dtype or update.ndim != x.ndim:
        raise TypeError(f"dynamic_update_slice: update {update} must have the dtype and rank of "
                        f"the operand {x}")
    _check_window("dynamic_update_slice", x.shape, update.shape)
    return x


def _dynamic_update_slice_impl(x, update, *starts):
    _dynamic_update_slice_aval(get_aval(x), get_aval(update), *map(get_aval, starts))
    out = np.array(x)
    out[_np_window(starts, x.shape, update.shape)] = update
    return out


dynamic_update_slice_p = primitive("dynamic_update_slice", _dynamic_update_slice_impl,
                                   _dynamic_update_slice_aval)


def dynamic_update_slice(x, update, start_indices):
    """x with the window at start_indices (scalar integers, may be traced; clamped so the
    window lies inside x) replaced by update."""
    return dynamic_update_slice_p.bind(_array(x), _array(update), *map(_array, start_indices))


def _dynamic_update_slice_transpose(ct, x, update, *starts):
    u_aval = _aval(update)
    ct_x = dynamic_update_slice(ct, _zeros(u_aval), starts) if isinstance(x, UndefPrimal) else None
    ct_u = dynamic_slice(ct, starts, u_aval.shape) if isinstance(update, UndefPrimal) else None
    return [ct_x, ct_u] + [None] * len(starts)


def _dynamic_update_slice_batch(vals, dims):
    (x, update, *starts), (dx, du, *ds) = vals, dims
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not not_mapped)
    x, update = bdim_at_front(x, dx, size), bdim_at_front(update, du, size)
    if all(d is not_mapped for d in ds):
        return dynamic_update_slice_p.bind(x, update, np.zeros((), np.int64), *starts), 0
    shape, u_shape = get_aval(x).shape[1:], get_aval(update).shape[1:]
    idx = _with_batch_column(_window_indices(starts, ds, size, shape, u_shape))
    return scatter_p.bind(x, idx, update, axes=_shift_axes(tuple(range(len(shape))))), 0


_linear_jvp(dynamic_update_slice_p, {0, 1})
transpose_rules[dynamic_update_slice_p] = _dynamic_update_slice_transpose
batch_rules[dynamic_update_slice_p] = _dynamic_update_slice_batch


# ---------------------------------------------------------------------------------------------
# sort (stable, NaNs last; operands sorted together by the first num_keys of them)

def _sort_aval(*operands, dimension, num_keys):
    if not operands:
        raise TypeError("sort needs at least one operand")
    shape = operands[0].shape
    if any(o.shape != shape for o in operands):
        raise TypeError("sort: all operands must have the same shape, got "
                        + ", ".join(str(o) for o in operands))
    if not 0 <= dimension < len(shape):
        raise ValueError(f"sort: dimension {dimension} is out of range for shape {shape}")
    if not 1 <= num_keys <= len(operands):
        raise ValueError(f"sort: num_keys={num_keys} must be between 1 and the number of "
                         f"operands ({len(operands)})")
    return list(operands)


def _sort_impl(*operands, dimension, num_keys):
    _sort_aval(*map(get_aval, operands), dimension=dimension, num_keys=num_keys)
    keys = operands[:num_keys]
    if num_keys == 1:
        perm = np.argsort(keys[0], axis=dimension, kind="stable")
    else:
        perm = np.lexsort(keys[::-1], axis=dimension)  # lexsort's primary key is the last
    return [np.take_along_axis(o, perm, dimension) for o in operands]


sort_p = primitive("sort", _sort_impl, _sort_aval, multiple_results=True)


def sort(*operands, dimension=-1, num_keys=1):
    """The operands sorted along ``dimension`` (stably, NaNs last) by the first num_keys of
    them (lexicographically). One operand: returns the sorted array; several (or one list or
    tuple of them): returns a tuple of sorted arrays."""
    seq = len(operands) == 1 and isinstance(operands[0], (list, tuple))
    ops = [_array(o) for o in (operands[0] if seq else operands)]
    if not ops:
        raise TypeError("sort needs at least one operand")
    dimension = _canonical_axes((dimension,), get_aval(ops[0]).ndim, "sort")[0]
    out = sort_p.bind(*ops, dimension=dimension, num_keys=int(num_keys))
    return out[0] if len(ops) == 1 and not seq else tuple(out)


def argsort(x, axis=-1):
    """int64 indices that sort x stably along axis (NaNs last)."""
    x = _array(x)
    a = get_aval(x)
    axis = _canonical_axes((axis,), a.ndim, "argsort")[0]
    return sort_p.bind(x, broadcasted_iota(np.int64, a.shape, axis), dimension=axis, num_keys=1)[1]


def _take_along(t, perm, dimension):
    """t reordered along dimension by the int64 permutation array perm (t's shape)."""
    shape = get_aval(t).shape
    nd = len(shape)
    cols = [reshape(perm if d == dimension else broadcasted_iota(np.int64, shape, d), shape + (1,))
            for d in range(nd)]
    return gather(t, concatenate(cols, nd), tuple(range(nd)))


def _sort_jvp(primals, tangents, *, dimension, num_keys):
    shape = get_aval(primals[0]).shape
    iota = broadcasted_iota(np.int64, shape, dimension)
    *outs, perm = sort_p.bind(*primals, iota, dimension=dimension, num_keys=num_keys)
    return outs, [t if type(t) is Zero else _take_along(t, perm, dimension) for t in tangents]


def _sort_batch(vals, dims, *, dimension, num_keys):
    size = next(get_aval(v).shape[d] for v, d in zip(vals, dims) if d is not not_mapped)
    vals = [bdim_at_front(v, d, size) for v, d in zip(vals, dims)]
    return sort_p.bind(*vals, dimension=dimension + 1, num_keys=num_keys), [0] * len(vals)


jvp_rules[sort_p] = _sort_jvp
batch_rules[sort_p] = _sort_batch


# the primitives above whose every rule handles complex operands today (see core.complex_primitives)
core.complex_primitives.update([slice_p, pad_p, concatenate_p, gather_p, dynamic_slice_p,
                                dynamic_update_slice_p, scatter_add_p, scatter_p, scatter_mul_p])
