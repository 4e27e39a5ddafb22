"""Slicing-family primitives: slice, pad, concatenate (and, to come, dynamic_slice,
dynamic_update_slice, gather, scatter). Each with all its rules beside it."""
from __future__ import annotations

import numpy as np

from ..core import ShapedArray, get_aval
from ..interpreters.ad import UndefPrimal, Zero, deflinear, instantiate_zeros, jvp_rules, transpose_rules
from ..interpreters.batching import batch_rules, moveaxis, not_mapped, broadcast_batch
from ..util import safe_map, safe_zip
from .lax import primitive, reduce_sum, sub, mul, full, convert_element_type

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
    return x[tuple(slice(s, l, st) for s, l, st in zip(start_indices, limit_indices, strides))]


slice_p = primitive("slice", _slice_impl, _slice_aval)


def slice(x, start_indices, limit_indices, strides=None):  # noqa: A001
    """x[start:limit:stride] along every axis (static bounds)."""
    nd = get_aval(x).ndim
    strides = (1,) * nd if strides is None else tuple(int(s) for s in strides)
    start = tuple(int(s) for s in start_indices)
    limit = tuple(int(s) for s in limit_indices)
    if start == (0,) * nd and limit == get_aval(x).shape and strides == (1,) * nd:
        return x
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
    return pad_p.bind(x, padding_value, padding_config=cfg)


def _pad_transpose(ct, x, padding_value, *, padding_config):
    out = [None, None]
    if isinstance(x, UndefPrimal):
        lo, hi, it = zip(*padding_config)
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
    xs = list(xs)
    if len(xs) == 1:
        return xs[0]
    return concatenate_p.bind(*xs, dimension=int(dimension))


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
