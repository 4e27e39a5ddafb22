"""A numerically stable logsumexp (shared by functrans.scipy.special)."""
from __future__ import annotations

import numpy as np

from ..core import get_aval
from ..lax import lax
from ._base import as_operand, canonical_axes, cast
from . import _reductions as R
from . import _ufuncs as U


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over axis, computed without overflow (the max is subtracted first;
    all -inf gives -inf). With return_sign, (|result|, sign)."""
    a = as_operand(a)
    dt = get_aval(a).dtype
    a = cast(a, dt if dt.kind == "f" else np.float64)
    axes = canonical_axes(axis, get_aval(a).ndim)
    amax = lax.stop_gradient(R.max(a, axis=axes, keepdims=True))
    amax = U.where(U.isfinite(amax), amax, 0.0)
    e = U.exp(U.subtract(a, amax))
    if b is not None:
        e = U.multiply(e, b)
    s = R.sum(e, axis=axes, keepdims=True)
    sign = U.sign(s)
    out = U.add(U.log(U.abs(s)), amax)
    if not keepdims:
        out = lax.squeeze(out, axes)
        sign = lax.squeeze(sign, axes)
    if return_sign:
        return out, sign
    return out
