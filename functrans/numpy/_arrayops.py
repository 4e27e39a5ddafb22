"""Array manipulation beyond _shape: append, atleast_3d, dsplit, rollaxis, rot90, diag, diagflat,
tril/triu, kron, cross, diff, gradient, partition/argpartition. All are lax compositions."""
from __future__ import annotations

import builtins
import operator

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax
from ._base import as_operand, broadcast_to_shape, canonical_axis, cast, is_weak, result_type
from ._shape import (_slice_axis, concatenate, flip, moveaxis, ravel, reshape, stack,
                     split_with_min_ndim, transpose)
from ._ufuncs import _const_like, multiply, not_equal, subtract, true_divide, where


def _ndim(a):
    return get_aval(a).ndim


def append(arr, values, axis=None):
    """arr with values appended: both flattened when axis is None, else joined along axis."""
    arr, values = as_operand(arr), as_operand(values)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], 0)
    return concatenate([arr, values], axis)


def atleast_3d(*arys):
    """Each array with at least three dimensions: (N,) becomes (1, N, 1), (M, N) (M, N, 1)."""
    def f(a):
        a = as_operand(a)
        s = get_aval(a).shape
        new = {0: (1, 1, 1), 1: (1,) + s + (1,), 2: s + (1,)}.get(len(s))
        return a if new is None else reshape(a, new)
    out = [f(a) for a in arys]
    return out[0] if len(out) == 1 else out


def dsplit(ary, indices_or_sections):
    """split along axis 2 (of an array of at least 3 dimensions)."""
    return split_with_min_ndim("dsplit", ary, indices_or_sections, 3, lambda nd: 2)


def rollaxis(a, axis, start=0):
    """a with axis moved to lie before position start (NumPy's older moveaxis)."""
    a = as_operand(a)
    n = _ndim(a)
    axis = canonical_axis(axis, n)
    start = operator.index(start)
    if not -n <= start <= n:
        raise np.exceptions.AxisError(f"rollaxis: start {start} is out of bounds for array of "
                                      f"dimension {n}{core.where()}")
    start = start + n if start < 0 else start
    if axis < start:
        start -= 1
    return a if axis == start else moveaxis(a, axis, start)


def rot90(m, k=1, axes=(0, 1)):
    """m rotated by k quarter turns in the plane of axes, from the first axis towards the
    second."""
    m = as_operand(m)
    n = _ndim(m)
    axes = tuple(axes)
    if len(axes) != 2:
        raise ValueError(f"rot90: len(axes) must be 2, got {axes}{core.where()}")
    if axes[0] == axes[1] or builtins.abs(axes[0] - axes[1]) == n:
        raise ValueError(f"rot90: axes must be different, got {axes}{core.where()}")
    if not (-n <= axes[0] < n and -n <= axes[1] < n):
        raise ValueError(f"Axes={axes} out of range for array of ndim={n}{core.where()}")
    k = operator.index(k) % 4
    if k == 0:
        return m
    if k == 2:
        return flip(flip(m, axes[0]), axes[1])
    perm = list(range(n))
    i, j = axes[0] % n, axes[1] % n
    perm[i], perm[j] = perm[j], perm[i]
    if k == 1:
        return transpose(flip(m, axes[1]), perm)
    return flip(transpose(m, perm), axes[1])


def _offset_mask(shape, k, lower):
    """A bool array of shape (n, m): True where col - row <= k (lower) or >= k (upper)."""
    rows = lax.broadcasted_iota(np.int64, shape, 0)
    cols = lax.broadcasted_iota(np.int64, shape, 1)
    d = lax.sub(cols, rows)
    kk = lax.full(shape, int(k), np.int64)
    return lax.le(d, kk) if lower else lax.ge(d, kk)


def diag(v, k=0):
    """The k-th diagonal of a 2-d v, or a square 2-d array with the 1-d v on its k-th diagonal."""
    from ._linalg import diagonal
    v = as_operand(v)
    k = operator.index(k)
    if _ndim(v) == 2:
        return diagonal(v, k)
    if _ndim(v) != 1:
        raise ValueError(f"diag: input must be 1- or 2-d, got shape {get_aval(v).shape}"
                         f"{core.where()}")
    length = get_aval(v).shape[0]
    n = length + builtins.abs(k)
    from ..lax import slicing
    padded = slicing.pad(v, lax.full((), 0, get_aval(v).dtype), [(0, builtins.abs(k), 0)])
    # out[i, i + k] = v[i] for k >= 0: the row picks the element; for k < 0 the column does
    along = 0 if k >= 0 else 1
    spread = lax.broadcast_in_dim(padded, (n, n), (along,))
    on_diagonal = lax.eq(lax.sub(lax.broadcasted_iota(np.int64, (n, n), 1),
                                 lax.broadcasted_iota(np.int64, (n, n), 0)),
                         lax.full((n, n), k, np.int64))
    return lax.select(on_diagonal, spread, lax.full((n, n), 0, get_aval(v).dtype))


def diagflat(v, k=0):
    """A 2-d array with the flattened v on its k-th diagonal."""
    return diag(ravel(as_operand(v)), k)


def _triangle(m, k, lower):
    m = as_operand(m)
    s = get_aval(m).shape
    if not s:
        raise ValueError(f"{'tril' if lower else 'triu'}: input must be at least 1-d"
                         f"{core.where()}")
    n, mm = (s[-1], s[-1]) if len(s) == 1 else s[-2:]
    mask = _offset_mask((n, mm), operator.index(k), lower)
    return where(mask, m, lax.full((), 0, get_aval(m).dtype))


def tril(m, k=0):
    """m with the elements above the k-th diagonal of its last two axes zeroed (a 1-d m is
    taken as every row of a square matrix, as NumPy)."""
    return _triangle(m, k, lower=True)


def triu(m, k=0):
    """m with the elements below the k-th diagonal of its last two axes zeroed."""
    return _triangle(m, k, lower=False)


def kron(a, b):
    """The Kronecker product: blocks a[i, j, ...] * b (the operand with fewer dimensions gets
    leading 1s)."""
    a, b = as_operand(a), as_operand(b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    nd = builtins.max(len(sa), len(sb))
    sa, sb = (1,) * (nd - len(sa)) + sa, (1,) * (nd - len(sb)) + sb
    a_spread = reshape(a, tuple(d for x in sa for d in (x, 1)))
    b_spread = reshape(b, tuple(d for x in sb for d in (1, x)))
    return reshape(multiply(a_spread, b_spread), tuple(x * y for x, y in zip(sa, sb)))


def _component(x, i):
    """x[..., i] (None past the end: the zero third component of a 2-vector)."""
    n = get_aval(x).shape[-1]
    if i >= n:
        return None
    return lax.squeeze(_slice_axis(x, _ndim(x) - 1, i, i + 1), (_ndim(x) - 1,))


def _product_difference(a, b, c, d):
    """a*b - c*d where a missing (None) factor makes its product vanish."""
    p = None if a is None or b is None else multiply(a, b)
    q = None if c is None or d is None else multiply(c, d)
    if q is None:
        return p
    return subtract(_const_like(q, 0), q) if p is None else subtract(p, q)


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """The cross product of the 2- or 3-vectors along axisa of a and axisb of b (broadcast over
    the other axes); the vectors of the result lie along axisc. Two 2-vectors give the z
    component only. ``axis`` sets all three axes."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = as_operand(a), as_operand(b)
    a = moveaxis(a, canonical_axis(axisa, _ndim(a)), -1)
    b = moveaxis(b, canonical_axis(axisb, _ndim(b)), -1)
    na, nb = get_aval(a).shape[-1], get_aval(b).shape[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(f"incompatible dimensions for cross product (dimension must be 2 or 3),"
                         f" got {na} and {nb}{core.where()}")
    dt = result_type(a, b)
    a, b = cast(a, dt), cast(b, dt)
    a0, a1, a2 = (_component(a, i) for i in range(3))
    b0, b1, b2 = (_component(b, i) for i in range(3))
    z = _product_difference(a0, b1, a1, b0)
    if na == 2 and nb == 2:
        return z
    x = _product_difference(a1, b2, a2, b1)
    y = _product_difference(a2, b0, a0, b2)
    out = stack([x, y, z], -1)
    return moveaxis(out, -1, canonical_axis(axisc, _ndim(out)))


_NO_VALUE = object()


def _edge_values(v, a, ax):
    """prepend/append values as an array like a with size 1 along ax (scalars broadcast)."""
    v = v if is_weak(v) else as_operand(v)
    if is_weak(v) or _ndim(as_operand(v)) == 0:
        shape = list(get_aval(a).shape)
        shape[ax] = 1
        return broadcast_to_shape(as_operand(v), tuple(shape))
    return v


def diff(a, n=1, axis=-1, prepend=_NO_VALUE, append=_NO_VALUE):
    """The n-th discrete difference along axis (out[i] = a[i+1] - a[i], n times; != for bools),
    after prepending/appending the given values."""
    a = as_operand(a)
    n = operator.index(n)
    if n == 0:
        return a
    if n < 0:
        raise ValueError(f"diff: order must be non-negative but got {n}{core.where()}")
    if _ndim(a) == 0:
        raise ValueError(f"diff requires input that is at least one dimensional{core.where()}")
    ax = canonical_axis(axis, _ndim(a))
    parts = [a]
    if prepend is not _NO_VALUE:
        parts.insert(0, _edge_values(prepend, a, ax))
    if append is not _NO_VALUE:
        parts.append(_edge_values(append, a, ax))
    if len(parts) > 1:
        a = concatenate(parts, ax)
    step = not_equal if get_aval(a).dtype.kind == "b" else subtract
    for _ in range(n):
        length = get_aval(a).shape[ax]
        if length == 0:
            break
        a = step(_slice_axis(a, ax, 1, length), _slice_axis(a, ax, 0, length - 1))
    return a


def _spacings(varargs, f, axes):
    """One spacing per axis: a Python/NumPy scalar, or a 1-d coordinate array (any length-n
    operand) whose differences are used."""
    if not varargs:
        return [1.0] * len(axes)
    if len(varargs) == 1 and np.ndim(varargs[0]) == 0:
        return [varargs[0]] * len(axes)
    if len(varargs) != len(axes):
        raise TypeError(f"gradient: invalid number of arguments ({len(varargs)} spacings for "
                        f"{len(axes)} axes){core.where()}")
    out = []
    for h, ax in zip(varargs, axes):
        if np.ndim(h) == 0:
            out.append(h)
            continue
        h = as_operand(h)
        if _ndim(h) != 1:
            raise ValueError(f"gradient: distances must be either scalars or 1d{core.where()}")
        if get_aval(h).shape[0] != get_aval(f).shape[ax]:
            raise ValueError(f"gradient: when 1d, distances must match the length of the "
                             f"corresponding dimension{core.where()}")
        if get_aval(h).dtype.kind in "biu":
            h = cast(h, np.float64)
        out.append(diff(h))
    return out


def _along(x, ax, nd):
    """The 1-d x shaped to broadcast along axis ax of an nd-dimensional array."""
    shape = [1] * nd
    shape[ax] = get_aval(x).shape[0]
    return reshape(x, tuple(shape))


def _gradient_axis(f, h, ax, edge_order):
    """The derivative of f along ax: central differences inside, one-sided (first or second
    order) at the two ends; h is a scalar spacing or the 1-d array of coordinate differences."""
    n = get_aval(f).shape[ax]
    nd = _ndim(f)

    def at(lo, hi):
        return _slice_axis(f, ax, lo, hi)

    def dx(lo, hi):
        return _along(_slice_axis(h, 0, lo, hi), ax, nd)

    scalar = np.ndim(h) == 0
    if scalar:
        inner = true_divide(subtract(at(2, n), at(0, n - 2)), 2.0 * h)
    else:
        d1, d2 = dx(0, n - 2), dx(1, n - 1)
        inner = _weighted([at(0, n - 2), at(1, n - 1), at(2, n)],
                          [_neg(true_divide(d2, multiply(d1, d1 + d2))),
                           true_divide(subtract(d2, d1), multiply(d1, d2)),
                           true_divide(d1, multiply(d2, d1 + d2))])
    if edge_order == 1:
        first = true_divide(subtract(at(1, 2), at(0, 1)), h if scalar else dx(0, 1))
        last = true_divide(subtract(at(n - 1, n), at(n - 2, n - 1)),
                           h if scalar else dx(n - 2, n - 1))
    elif scalar:
        first = _weighted([at(0, 1), at(1, 2), at(2, 3)], [-1.5 / h, 2.0 / h, -0.5 / h])
        last = _weighted([at(n - 3, n - 2), at(n - 2, n - 1), at(n - 1, n)],
                         [0.5 / h, -2.0 / h, 1.5 / h])
    else:
        d1, d2 = dx(0, 1), dx(1, 2)
        first = _weighted([at(0, 1), at(1, 2), at(2, 3)],
                          [_neg(true_divide(2.0 * d1 + d2, multiply(d1, d1 + d2))),
                           true_divide(d1 + d2, multiply(d1, d2)),
                           _neg(true_divide(d1, multiply(d2, d1 + d2)))])
        d1, d2 = dx(n - 3, n - 2), dx(n - 2, n - 1)
        last = _weighted([at(n - 3, n - 2), at(n - 2, n - 1), at(n - 1, n)],
                         [true_divide(d2, multiply(d1, d1 + d2)),
                          _neg(true_divide(d2 + d1, multiply(d1, d2))),
                          true_divide(2.0 * d2 + d1, multiply(d2, d1 + d2))])
    return concatenate([first, inner, last], ax)


def _neg(x):
    from ._ufuncs import negative
    return negative(x)


def _weighted(values, weights):
    """sum(w * v), in NumPy's order (left to right)."""
    out = multiply(weights[0], values[0])
    for w, v in zip(weights[1:], values[1:]):
        out = out + multiply(w, v)
    return out


def gradient(f, *varargs, axis=None, edge_order=1):
    """The gradient of f sampled on a grid: second-order central differences inside, first- or
    second-order (edge_order) one-sided differences at the boundaries. varargs: one spacing for
    all axes, or one per axis (a scalar or the 1-d coordinates). One array for a single axis,
    else a tuple of them (as NumPy 2)."""
    f = as_operand(f)
    nd = _ndim(f)
    axes = list(range(nd)) if axis is None else [
        canonical_axis(a, nd) for a in (axis if isinstance(axis, (tuple, list)) else (axis,))]
    if len(set(axes)) != len(axes):
        raise ValueError(f"gradient: duplicate value in 'axis'{core.where()}")
    edge_order = operator.index(edge_order)
    if edge_order > 2:
        raise ValueError(f"'edge_order' greater than 2 not supported{core.where()}")
    if edge_order < 1:
        raise ValueError(f"gradient: 'edge_order' must be 1 or 2, got {edge_order}{core.where()}")
    spacings = _spacings(varargs, f, axes)
    dt = get_aval(f).dtype
    if dt.kind == "b":
        raise TypeError(f"gradient: boolean arrays cannot be differenced (NumPy's boolean "
                        f"subtract is not supported){core.where()}")
    if dt.kind in "iu":
        f, dt = cast(f, np.float64), np.dtype(np.float64)
    out = []
    for h, ax in zip(spacings, axes):
        if get_aval(f).shape[ax] < edge_order + 1:
            raise ValueError("Shape of the array too small to calculate a numerical gradient, at "
                             f"least (edge_order + 1) elements are required.{core.where()}")
        out.append(cast(_gradient_axis(f, h, ax, edge_order), dt))
    return out[0] if len(axes) == 1 else tuple(out)


def _kth_checked(a, kth, axis):
    from ._base import concrete
    a = as_operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    ax = canonical_axis(axis, _ndim(a))
    n = get_aval(a).shape[ax]
    for k in np.atleast_1d(concrete(kth, "partition's kth")).tolist():
        if not -n <= int(k) < n:
            raise ValueError(f"kth(={k}) out of bounds ({n}){core.where()}")
    return a, ax


def partition(a, kth, axis=-1):
    """a rearranged along axis so that the element at each kth position is the one a sort would
    put there, smaller ones before it and larger ones after (here: a full stable sort, which
    satisfies that guarantee)."""
    from ..lax import slicing
    a, ax = _kth_checked(a, kth, axis)
    return slicing.sort(a, dimension=ax)


def argpartition(a, kth, axis=-1):
    """int64 indices that partition a along axis (see partition: a stable argsort here)."""
    from ..lax import slicing
    a, ax = _kth_checked(a, kth, axis)
    return slicing.argsort(a, ax)


__all__ = ["append", "atleast_3d", "dsplit", "rollaxis", "rot90", "diag", "diagflat", "tril",
           "triu", "kron", "cross", "diff", "gradient", "partition", "argpartition"]
