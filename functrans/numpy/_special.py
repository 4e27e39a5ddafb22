"""A numerically stable logsumexp (shared by functrans.scipy.special and functrans.nn)."""
from __future__ import annotations

import numpy as np

from ..core import get_aval, is_float
from ..lax import lax
from ._base import as_operand, canonical_axes, cast, promote, result_type
from . import _reductions as R
from . import _ufuncs as U


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """log(sum(b * exp(a))) over axis (all axes by default), computed without overflow, with
    JAX's special values: the max is subtracted first (0 in its place where it is not finite),
    so all -inf gives -inf, a +inf entry gives +inf and a NaN entry gives NaN; entries whose
    weight ``b`` is 0 are dropped (as if -inf); a negative sum gives NaN, or with
    ``return_sign=True`` the pair (log|sum|, sign(sum)). ``where`` (broadcastable to a) keeps
    only the entries where it is True."""
    a = as_operand(a)
    dt = get_aval(a).dtype
    dt = dt if is_float(dt) else np.dtype(np.float64)
    a = cast(a, dt)
    if where is not None:    # masked-out entries get no gradient, even where they are NaN
        a = U.where(where, a, 0.0)
    if b is not None:
        a, b = promote(result_type(a, b), a, b)
        a = U.where(U.not_equal(b, 0), a, -np.inf)
    axes = canonical_axes(axis, get_aval(a).ndim)
    amax = R.max(a, axis=axes, keepdims=True, where=where, initial=-np.inf)
    amax = lax.stop_gradient(U.where(U.isfinite(amax), amax, 0.0))
    e = U.exp(U.subtract(a, amax))
    if b is not None:
        e = U.multiply(e, b)
    s = R.sum(e, axis=axes, keepdims=True, where=where)
    sign = U.sign(s)
    out = U.add(U.log(U.abs(s)), amax)
    if not keepdims:
        out, sign = lax.squeeze(out, axes), lax.squeeze(sign, axes)
    if return_sign:
        return out, sign
    if b is not None:
        out = U.where(U.less(sign, 0), np.nan, out)
    return out
