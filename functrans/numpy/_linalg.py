"""Products and contractions: dot, matmul, vdot, inner, outer, tensordot, diagonal, trace."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax
from ._base import array_aval, as_operand, broadcast_to_shape, canonical_axis, cast, result_type


def _operands(fn, a, b):
    a1, a2 = array_aval(a), array_aval(b)
    if a1 is not None and a2 is not None and a1.dtype == a2.dtype:
        return a, b, a1.dtype
    dt = result_type(as_operand(a), as_operand(b))  # what NumPy's products return
    return cast(a, dt), cast(b, dt), dt


def _mismatch(name, a, b, detail):
    """A TypeError for operands whose contracted dimensions disagree (as JAX's dot_general)."""
    return TypeError(f"{name}: {detail} for shapes {get_aval(a).shape} and {get_aval(b).shape}"
                      f"{core.where()}")


def matmul(a, b, /, *, precision=None, preferred_element_type=None):
    """The matrix product a @ b with NumPy's rules (1-d promotion, broadcast batch dims).
    precision and preferred_element_type go to lax.dot_general (as in jax.numpy)."""
    a, b, _ = _operands(np.matmul, a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    kw = dict(precision=precision, preferred_element_type=preferred_element_type)
    if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0]:   # the common case, directly
        return lax.dot_general(a, b, (((1,), (0,)), ((), ())), **kw)
    if not sa or not sb:
        raise ValueError(f"matmul: input operand does not have enough dimensions (shapes {sa} "
                         f"and {sb}){core.where()}")
    x = lax.reshape(a, (1,) + sa) if len(sa) == 1 else a
    y = lax.reshape(b, sb + (1,)) if len(sb) == 1 else b
    xs, ys = get_aval(x).shape, get_aval(y).shape
    if xs[-1] != ys[-2]:
        raise _mismatch("matmul", a, b, f"contracted dimensions differ ({xs[-1]} != {ys[-2]})")
    try:
        batch = tuple(np.broadcast_shapes(xs[:-2], ys[:-2]))
    except ValueError:
        raise _mismatch("matmul", a, b, "batch dimensions do not broadcast") from None
    nb = len(batch)
    x = broadcast_to_shape(x, batch + xs[-2:])
    y = broadcast_to_shape(y, batch + ys[-2:])
    bd = tuple(range(nb))
    out = lax.dot_general(x, y, (((nb + 1,), (nb,)), (bd, bd)), **kw)
    shape = batch + ((xs[-2],) if len(sa) > 1 else ()) + ((ys[-1],) if len(sb) > 1 else ())
    return lax.reshape(out, shape)


def dot(a, b, *, precision=None, preferred_element_type=None):
    """NumPy's dot: a product for scalars, matmul for 2-d, and for N-d a sum over the last axis
    of a and the second-to-last of b. precision and preferred_element_type go to
    lax.dot_general (as in jax.numpy)."""
    a, b, _ = _operands(np.dot, a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if not sa or not sb:
        from ._ufuncs import multiply
        out = multiply(a, b)
        return out if preferred_element_type is None else cast(out, preferred_element_type)
    cb = 0 if len(sb) == 1 else len(sb) - 2
    if sa[-1] != sb[cb]:
        raise _mismatch("dot", a, b, f"shapes not aligned ({sa[-1]} != {sb[cb]})")
    return lax.dot_general(a, b, (((len(sa) - 1,), (cb,)), ((), ())), precision=precision,
                           preferred_element_type=preferred_element_type)


def vdot(a, b, /):
    """The dot product of a and b flattened, with a conjugated when complex (NumPy's vdot)."""
    a, b, dt = _operands(np.vdot, a, b)
    if get_aval(a).size != get_aval(b).size:
        raise _mismatch("vdot", a, b, "sizes differ")
    if dt.kind == "c":
        a = lax.conj(a)
    n = get_aval(a).size
    return lax.dot_general(lax.reshape(a, (n,)), lax.reshape(b, (n,)), (((0,), (0,)), ((), ())))


def inner(a, b, /):
    """The sum product over the last axes of a and b."""
    a, b, _ = _operands(np.inner, a, b)
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if not sa or not sb:
        from ._ufuncs import multiply
        return multiply(a, b)
    if sa[-1] != sb[-1]:
        raise _mismatch("inner", a, b, "last dimensions differ")
    return lax.dot_general(a, b, (((len(sa) - 1,), (len(sb) - 1,)), ((), ())))


def outer(a, b):
    """The outer product of a and b flattened: out[i, j] = a[i] * b[j]."""
    from ._ufuncs import multiply
    a, b = as_operand(a), as_operand(b)
    n, m = get_aval(a).size, get_aval(b).size
    return multiply(lax.reshape(a, (n, 1)), lax.reshape(b, (1, m)))


def tensordot(a, b, axes=2):
    """The sum product over the given axes (an int N: last N of a with first N of b)."""
    a, b, _ = _operands(np.tensordot, a, b)
    na, nb = get_aval(a).ndim, get_aval(b).ndim
    if isinstance(axes, (int, np.integer)):
        n = int(axes)
        ax_a, ax_b = list(range(na - n, na)), list(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = [ax_a] if isinstance(ax_a, (int, np.integer)) else list(ax_a)
        ax_b = [ax_b] if isinstance(ax_b, (int, np.integer)) else list(ax_b)
    if len(ax_a) != len(ax_b):
        raise _mismatch("tensordot", a, b, "axes lists have different lengths")
    ax_a = [canonical_axis(i, na) for i in ax_a]
    ax_b = [canonical_axis(i, nb) for i in ax_b]
    sa, sb = get_aval(a).shape, get_aval(b).shape
    if any(sa[i] != sb[j] for i, j in zip(ax_a, ax_b)):
        raise _mismatch("tensordot", a, b, f"shape-mismatch for sum over axes {ax_a} and {ax_b}")
    return lax.dot_general(a, b, ((tuple(ax_a), tuple(ax_b)), ((), ())))


def diagonal(a, offset=0, axis1=0, axis2=1):
    """The offset diagonal over axis1/axis2, as the last axis (a strided slice: no gather)."""
    from ._shape import moveaxis
    from ..lax import slicing
    a = as_operand(a)
    nd = get_aval(a).ndim
    if nd < 2:
        raise ValueError(f"diag requires an array of at least two dimensions{core.where()}")
    i, j = canonical_axis(axis1, nd), canonical_axis(axis2, nd)
    if i == j:
        raise ValueError(f"axis1 and axis2 cannot be the same{core.where()}")
    x = moveaxis(a, (i, j), (-2, -1))
    s = get_aval(x).shape
    n, m = s[-2], s[-1]
    offset = int(offset)
    k = max(0, min(n, m - offset) if offset >= 0 else min(n + offset, m))
    start = offset if offset >= 0 else -offset * m
    flat = lax.reshape(x, s[:-2] + (n * m,))
    if k == 0:
        return lax.full(s[:-2] + (0,), 0, get_aval(a).dtype)
    lo = [0] * (len(s) - 1)
    hi = list(s[:-2]) + [start + (k - 1) * (m + 1) + 1]
    lo[-1] = start
    st = [1] * (len(s) - 2) + [m + 1]
    return slicing.slice(flat, lo, hi, st)


def trace(a, offset=0, axis1=0, axis2=1, dtype=None):
    """The sum along the offset diagonal (NumPy's sum dtype)."""
    from ._reductions import sum as _sum
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1, dtype=dtype)
