"""Shape operations: reshape, transpose, squeeze, stacking, splitting, tile/repeat, flip/roll, pad."""
from __future__ import annotations

import builtins

import numpy as np

from .. import core
from ..core import Tracer, get_aval
from ..lax import lax
from ..lax import slicing
from ._base import (as_operand, broadcast_shapes, broadcast_to_shape, canonical_axes,
                    canonical_axis, cast, concrete, result_type)


def reshape(a, shape=None, order="C", *, newshape=None):
    """a with a new shape of the same size (one dimension may be -1)."""
    if order != "C":
        raise NotImplementedError(f"reshape: only order='C' is supported{core.where()}")
    shape = newshape if shape is None else shape
    a = as_operand(a)
    aval = get_aval(a)
    shape = (int(shape),) if not isinstance(shape, (tuple, list)) else tuple(int(d) for d in shape)
    unknown = [i for i, d in enumerate(shape) if d == -1]
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    bad = len(unknown) > 1 or builtins.any(d < -1 for d in shape)
    if not bad and unknown:
        if known == 0 or aval.size % known:
            bad = True
        else:
            shape = tuple(aval.size // known if d == -1 else d for d in shape)
    if bad or int(np.prod(shape, dtype=np.int64)) != aval.size:
        raise ValueError(f"cannot reshape array of shape {aval.shape} (size {aval.size}) into "
                         f"shape {shape}{core.where()}")
    return lax.reshape(a, shape)


def ravel(a, order="C"):
    """a flattened to one dimension."""
    a = as_operand(a)
    return reshape(a, (get_aval(a).size,), order)


def transpose(a, axes=None):
    """a with its axes permuted (reversed when axes is None)."""
    a = as_operand(a)
    nd = get_aval(a).ndim
    if axes is None:
        perm = tuple(reversed(range(nd)))
    else:
        perm = canonical_axes(tuple(axes), nd)
        if len(perm) != nd:
            raise ValueError(f"axes {tuple(axes)} don't match array of shape {get_aval(a).shape}"
                             f"{core.where()}")
    return lax.transpose(a, perm)


def permute_dims(a, axes=None):
    """transpose(a, axes)."""
    return transpose(a, axes)


def swapaxes(a, axis1, axis2):
    """a with axes axis1 and axis2 interchanged."""
    a = as_operand(a)
    nd = get_aval(a).ndim
    i, j = canonical_axis(axis1, nd), canonical_axis(axis2, nd)
    perm = list(range(nd))
    perm[i], perm[j] = perm[j], perm[i]
    return lax.transpose(a, perm)


def moveaxis(a, source, destination):
    """a with the axes in source moved to the positions in destination."""
    a = as_operand(a)
    nd = get_aval(a).ndim
    src = canonical_axes(source, nd)
    dst = canonical_axes(destination, nd)
    if len(src) != len(dst):
        raise ValueError(f"moveaxis: source and destination must have the same number of "
                         f"elements{core.where()}")
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return lax.transpose(a, order)


def squeeze(a, axis=None):
    """a with size-1 dimensions removed (all of them, or those in axis)."""
    a = as_operand(a)
    aval = get_aval(a)
    if axis is None:
        axes = tuple(i for i, d in enumerate(aval.shape) if d == 1)
    else:
        axes = canonical_axes(axis, aval.ndim)
        for i in axes:
            if aval.shape[i] != 1:
                raise ValueError(f"cannot select an axis to squeeze out which has size not "
                                 f"equal to one (axis {i} of shape {aval.shape}){core.where()}")
    return lax.squeeze(a, axes)


def expand_dims(a, axis):
    """a with size-1 dimensions inserted at the positions in axis."""
    a = as_operand(a)
    aval = get_aval(a)
    axes = canonical_axes(axis, aval.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1))
    shape = list(aval.shape)
    for d in sorted(axes):
        shape.insert(d, 1)
    return lax.reshape(a, shape)


def broadcast_to(array, shape):
    """array broadcast to shape (NumPy's rules)."""
    shape = (int(shape),) if not isinstance(shape, (tuple, list)) else tuple(int(d) for d in shape)
    return broadcast_to_shape(as_operand(array), shape)


def broadcast_arrays(*args):
    """The arrays broadcast against each other (a list)."""
    ops = [as_operand(a) for a in args]
    shape = broadcast_shapes(*[get_aval(o).shape for o in ops])
    return [broadcast_to_shape(o, shape) for o in ops]


def atleast_1d(*arys):
    """Each array with at least one dimension."""
    out = [reshape(a, (1,)) if get_aval(as_operand(a)).ndim == 0 else as_operand(a) for a in arys]
    return out[0] if len(out) == 1 else out


def atleast_2d(*arys):
    """Each array with at least two dimensions (1-d arrays become rows)."""
    def f(a):
        a = as_operand(a)
        nd = get_aval(a).ndim
        return reshape(a, (1,) * (2 - nd) + get_aval(a).shape) if nd < 2 else a
    out = [f(a) for a in arys]
    return out[0] if len(out) == 1 else out


def _join_dtype(arrays, dtype):
    return np.dtype(dtype) if dtype is not None else result_type(*arrays)


def concatenate(arrays, axis=0, dtype=None):
    """The arrays joined along an existing axis (None: flattened first)."""
    arrays = [as_operand(a) for a in arrays]
    if not arrays:
        raise ValueError(f"need at least one array to concatenate{core.where()}")
    if axis is None:
        arrays = [ravel(a) for a in arrays]
        axis = 0
    dt = _join_dtype(arrays, dtype)
    shapes = [get_aval(a).shape for a in arrays]
    nd = len(shapes[0])
    if nd == 0:
        raise ValueError(f"zero-dimensional arrays cannot be concatenated{core.where()}")
    ax = canonical_axis(axis, nd)
    for s in shapes[1:]:
        if len(s) != nd or builtins.any(p != q for i, (p, q) in enumerate(zip(s, shapes[0]))
                                        if i != ax):
            raise ValueError("all the input array dimensions except for the concatenation axis "
                             f"must match exactly, got shapes {', '.join(map(str, shapes))}"
                             f"{core.where()}")
    return slicing.concatenate([cast(a, dt) for a in arrays], ax)


concat = concatenate


def stack(arrays, axis=0, dtype=None):
    """The arrays (all of one shape) joined along a new axis."""
    arrays = [as_operand(a) for a in arrays]
    if not arrays:
        raise ValueError(f"need at least one array to stack{core.where()}")
    shapes = [get_aval(a).shape for a in arrays]
    if builtins.any(s != shapes[0] for s in shapes):
        raise ValueError(f"all input arrays must have the same shape, got shapes "
                         f"{', '.join(map(str, shapes))}{core.where()}")
    ax = canonical_axis(axis, len(shapes[0]) + 1)
    return concatenate([expand_dims(a, ax) for a in arrays], ax, dtype)


def hstack(tup, dtype=None):
    """Arrays joined column-wise (along axis 1, or 0 for 1-d arrays)."""
    arrs = [atleast_1d(a) for a in tup]
    return concatenate(arrs, 0 if get_aval(arrs[0]).ndim == 1 else 1, dtype)


def vstack(tup, dtype=None):
    """Arrays joined row-wise (1-d arrays become rows)."""
    return concatenate([atleast_2d(a) for a in tup], 0, dtype)


row_stack = vstack


def dstack(tup, dtype=None):
    """Arrays joined along the third axis."""
    def f(a):
        a = atleast_2d(a)
        s = get_aval(a).shape
        return reshape(a, s + (1,)) if len(s) == 2 else a
    return concatenate([f(a) for a in tup], 2, dtype)


def column_stack(tup):
    """1-d arrays as columns of a 2-d array (2-d arrays as they are)."""
    def f(a):
        a = as_operand(a)
        return reshape(a, (-1, 1)) if get_aval(a).ndim < 2 else a
    return concatenate([f(a) for a in tup], 1)


def _slice_axis(a, axis, start, stop, step=1):
    aval = get_aval(a)
    lo = [0] * aval.ndim
    hi = list(aval.shape)
    st = [1] * aval.ndim
    lo[axis], hi[axis], st[axis] = start, stop, step
    return slicing.slice(a, lo, hi, st)


def _split(ary, indices_or_sections, axis, exact):
    a = as_operand(ary)
    aval = get_aval(a)
    ax = canonical_axis(axis, aval.ndim)
    n = aval.shape[ax]
    if isinstance(indices_or_sections, (int, np.integer)):
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"number sections must be larger than 0{core.where()}")
        if exact and n % k:
            raise ValueError(f"array split does not result in an equal division: axis of size "
                             f"{n} into {k} sections{core.where()}")
        q, r = divmod(n, k)
        sizes = [q + 1] * r + [q] * (k - r)
        bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    else:
        idx = [int(i) for i in concrete(np.asarray(indices_or_sections), "split indices")]
        bounds = [0] + idx + [n]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        lo = builtins.min(builtins.max(lo + n if lo < 0 else lo, 0), n)
        hi = builtins.min(builtins.max(hi + n if hi < 0 else hi, 0), n)
        out.append(_slice_axis(a, ax, lo, builtins.max(lo, hi)))
    return out


def split(ary, indices_or_sections, axis=0):
    """A list of sub-arrays: equal sections (must divide exactly) or split at the indices."""
    return _split(ary, indices_or_sections, axis, exact=True)


def array_split(ary, indices_or_sections, axis=0):
    """Like split, but sections need not divide the axis equally."""
    return _split(ary, indices_or_sections, axis, exact=False)


def split_with_min_ndim(name, ary, indices_or_sections, min_ndim, axis):
    """split along axis (a function of ndim) of an array of at least min_ndim dimensions, as
    NumPy's hsplit/vsplit/dsplit."""
    a = as_operand(ary)
    nd = get_aval(a).ndim
    if nd < min_ndim:
        raise ValueError(f"{name} only works on arrays of {min_ndim} or more dimensions"
                         f"{core.where()}")
    return split(a, indices_or_sections, axis(nd))


def hsplit(ary, indices_or_sections):
    """split along axis 1 (0 for 1-d arrays)."""
    return split_with_min_ndim("hsplit", ary, indices_or_sections, 1, lambda nd: 1 if nd > 1 else 0)


def vsplit(ary, indices_or_sections):
    """split along axis 0 (of an array of at least 2 dimensions)."""
    return split_with_min_ndim("vsplit", ary, indices_or_sections, 2, lambda nd: 0)


def tile(A, reps):
    """A repeated reps times along each axis."""
    a = as_operand(A)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    shape = get_aval(a).shape
    nd = builtins.max(len(shape), len(reps))
    shape = (1,) * (nd - len(shape)) + shape
    reps = (1,) * (nd - len(reps)) + reps
    a = lax.reshape(a, shape)
    big = tuple(v for r, d in zip(reps, shape) for v in (r, d))
    b = lax.broadcast_in_dim(a, big, tuple(range(1, 2 * nd, 2)))
    return lax.reshape(b, tuple(r * d for r, d in zip(reps, shape)))


def repeat(a, repeats, axis=None):
    """Each element of a repeated ``repeats`` times (an int, or a concrete array per element)."""
    a = as_operand(a)
    if axis is None:
        a = ravel(a)
        axis = 0
    aval = get_aval(a)
    ax = canonical_axis(axis, aval.ndim)
    reps = concrete(repeats, "repeats")
    if reps.ndim == 0 or reps.size == 1:
        r = int(reps.reshape(()))
        if r < 0:
            raise ValueError(f"repeat: negative repeats {r}{core.where()}")
        shape = aval.shape[:ax + 1] + (r,) + aval.shape[ax + 1:]
        dims = tuple(i for i in range(aval.ndim + 1) if i != ax + 1)
        b = lax.broadcast_in_dim(a, shape, dims)
        return lax.reshape(b, aval.shape[:ax] + (aval.shape[ax] * r,) + aval.shape[ax + 1:])
    from ._indexing import take
    idx = np.repeat(np.arange(aval.shape[ax]), reps)
    return take(a, idx, axis=ax)


def flip(m, axis=None):
    """m with the order of elements reversed along axis (all axes if None)."""
    m = as_operand(m)
    return lax.rev(m, canonical_axes(axis, get_aval(m).ndim))


def fliplr(m):
    """flip(m, 1)."""
    return flip(m, 1)


def flipud(m):
    """flip(m, 0)."""
    return flip(m, 0)


def roll(a, shift, axis=None):
    """a with elements shifted cyclically along axis (flattened if None); shifts are static."""
    a = as_operand(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), get_aval(a).shape)
    shifts = np.atleast_1d(concrete(shift, "roll shift")).tolist()
    axes = [canonical_axis(ax, get_aval(a).ndim) for ax in np.atleast_1d(axis).tolist()]
    shifts, axes = np.broadcast_arrays(np.asarray(shifts), np.asarray(axes))
    for s, ax in zip(shifts.tolist(), axes.tolist()):
        n = get_aval(a).shape[ax]
        if n == 0:
            continue
        s = s % n
        if s:
            a = slicing.concatenate([_slice_axis(a, ax, n - s, n), _slice_axis(a, ax, 0, n - s)], ax)
    return a


def _pad_widths(pad_width, nd):
    pw = np.asarray(concrete(pad_width, "pad widths")).astype(np.int64)
    return np.broadcast_to(pw, (nd, 2)).tolist() if pw.size else [[0, 0]] * nd


def pad(array, pad_width, mode="constant", **kwargs):
    """array padded by pad_width ((before, after) per axis); modes 'constant' (constant_values),
    'edge', 'reflect', 'symmetric', 'wrap'."""
    a = as_operand(array)
    aval = get_aval(a)
    widths = _pad_widths(pad_width, aval.ndim)
    if builtins.any(w < 0 for ww in widths for w in ww):
        raise ValueError(f"pad: index can't contain negative values{core.where()}")
    if mode == "constant":
        cv = kwargs.get("constant_values", 0)
        if isinstance(cv, Tracer) and get_aval(cv).ndim == 0 or np.ndim(cv) == 0 and not \
                isinstance(cv, (list, tuple)):
            return slicing.pad(a, cast(cv, aval.dtype), [(lo, hi, 0) for lo, hi in widths])
        cvs = np.broadcast_to(np.asarray(concrete(cv, "constant_values")), (aval.ndim, 2))
        for ax, (lo, hi) in enumerate(widths):
            cfg = [(0, 0, 0)] * aval.ndim
            cfg[ax] = (lo, 0, 0)
            a = slicing.pad(a, cast(cvs[ax, 0].item(), aval.dtype), cfg)
            cfg[ax] = (0, hi, 0)
            a = slicing.pad(a, cast(cvs[ax, 1].item(), aval.dtype), cfg)
        return a
    if mode not in ("edge", "reflect", "symmetric", "wrap"):
        raise NotImplementedError(f"pad: mode {mode!r} is not supported{core.where()}")
    from ._indexing import take
    for ax, (lo, hi) in enumerate(widths):
        if lo or hi:
            idx = np.pad(np.arange(aval.shape[ax]), (lo, hi), mode=mode)
            a = take(a, idx, axis=ax)
    return a
