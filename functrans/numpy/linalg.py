"""functrans.numpy.linalg: norm (vector and matrix norms as NumPy computes them)."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax
from ._base import as_operand, canonical_axes, cast
from . import _reductions as R
from . import _ufuncs as U


def _float(x):
    x = as_operand(x)
    dt = get_aval(x).dtype
    return cast(x, dt if dt.kind == "f" else np.float64)


def _vector_norm(x, ord, axis, keepdims):
    a = U.abs(x)
    if ord is None or ord == 2:
        return U.sqrt(R.sum(U.multiply(x, x), axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return R.max(a, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return R.min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return cast(R.sum(U.not_equal(x, 0), axis=axis, keepdims=keepdims), get_aval(x).dtype)
    if ord == 1:
        return R.sum(a, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order {ord!r} for vectors{core.where()}")
    p = float(ord)
    return U.power(R.sum(U.power(a, p), axis=axis, keepdims=keepdims), 1.0 / p)


def _matrix_norm(x, ord, axes, keepdims):
    r, c = axes
    if ord in (None, "fro", "f"):
        out = U.sqrt(R.sum(U.multiply(x, x), axis=axes))
    elif ord in (1, -1, np.inf, -np.inf):
        inner, outer = (r, c) if ord in (1, -1) else (c, r)
        s = R.sum(U.abs(x), axis=inner)
        outer = outer - (inner < outer)
        out = (R.max if ord > 0 else R.min)(s, axis=outer)
    else:
        raise NotImplementedError(f"linalg.norm: matrix norm ord={ord!r} (needs a singular value "
                                  f"decomposition) is not supported{core.where()}")
    if keepdims:
        shape = tuple(1 if i in axes else d for i, d in enumerate(get_aval(x).shape))
        out = lax.reshape(out, shape)
    return out


def norm(x, ord=None, axis=None, keepdims=False):
    """The vector norm (one axis, or a 1-d x) or matrix norm (two axes, or a 2-d x) of x; with
    ord=None and axis=None, the 2-norm of x flattened."""
    x = _float(x)
    nd = get_aval(x).ndim
    if axis is None:
        if ord is None:
            out = U.sqrt(R.sum(U.multiply(x, x)))
            return lax.reshape(out, (1,) * nd) if keepdims else out
        axes = tuple(range(nd))
    else:
        axes = canonical_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"Improper number of dimensions to norm (axes {axes}){core.where()}")
