"""Special-function primitives: lgamma, digamma, polygamma, erfc, erf_inv and ndtri. Each is
elementwise on floats, with its impl (SciPy), abstract eval, jvp (through the next function of
the family, so derivatives of every order exist) and vectorised batching beside it. The numba
CPU lowerings are in backends/numba_cpu.py (scalar helpers in backends/vmath.py)."""
from __future__ import annotations

import math

import numpy as np
import scipy.special as _sc

from ..interpreters.ad import defjvp, defjvp2
from ..interpreters.batching import defvectorized
from .lax import _check_kind, _const, _float, _with_dtype, exp, mul, neg, primitive, unop

__all__ = ["lgamma", "digamma", "polygamma", "erfc", "erf_inv", "ndtri",
           "lgamma_p", "digamma_p", "polygamma_p", "erfc_p", "erf_inv_p", "ndtri_p"]


def _scipy(f, fix=None):
    """An impl running scipy.special's f in the operand's dtype (fix(x, out) patches edges)."""
    def impl(x):
        with np.errstate(all="ignore"):
            out = np.asarray(f(x))
            if fix is not None:
                out = fix(x, out)
        return _with_dtype(out, x.dtype)
    return impl


# scipy's gammaln(-inf) is -inf; C's lgamma, JAX and our CPU kernels give +inf
lgamma_p, lgamma = unop("lgamma", _scipy(_sc.gammaln, lambda x, o: np.where(x == -np.inf, np.inf, o)))
digamma_p, digamma = unop("digamma", _scipy(_sc.digamma))
erfc_p, erfc = unop("erfc", _scipy(_sc.erfc))
erf_inv_p, erf_inv = unop("erf_inv", _scipy(_sc.erfinv))
ndtri_p, ndtri = unop("ndtri", _scipy(_sc.ndtri))

lgamma.__doc__ = "log|Gamma(x)| elementwise (+inf at the poles 0, -1, -2, ... and at +-inf)."
digamma.__doc__ = "digamma(x) = d/dx lgamma(x) elementwise (nan at negative integers)."
erfc.__doc__ = "The complementary error function 1 - erf(x) elementwise, accurate in the tails."
erf_inv.__doc__ = "The inverse error function elementwise: +-inf at +-1, nan outside [-1, 1]."
ndtri.__doc__ = ("The inverse of the standard normal CDF elementwise: -inf at 0, inf at 1, nan "
                 "outside [0, 1].")


def _polygamma_impl(x, *, m):
    with np.errstate(all="ignore"):
        return _with_dtype(np.asarray(_sc.polygamma(m, x)), x.dtype)


def _polygamma_aval(x, *, m):
    _check_kind("polygamma", x, _float)
    return x


polygamma_p = primitive("polygamma", _polygamma_impl, _polygamma_aval)
defvectorized(polygamma_p)


def polygamma(m, x):
    """The m-th derivative of digamma at x (m a non-negative Python int; m = 0 is digamma)."""
    m = int(m)
    if m < 0:
        raise ValueError(f"polygamma: order m must be non-negative, got {m}")
    return digamma(x) if m == 0 else polygamma_p.bind(x, m=m)


_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)

defjvp(lgamma_p, lambda g, x: mul(g, digamma(x)))
defjvp(digamma_p, lambda g, x: mul(g, polygamma_p.bind(x, m=1)))
defjvp(polygamma_p, lambda g, x, *, m: mul(g, polygamma_p.bind(x, m=m + 1)))
defjvp(erfc_p, lambda g, x: mul(g, mul(_const(x, -_TWO_OVER_SQRT_PI), exp(neg(mul(x, x))))))
# erf_inv' = sqrt(pi)/2 exp(y^2); ndtri' = sqrt(2 pi) exp(y^2 / 2), y the output
defjvp2(erf_inv_p, lambda g, y, x: mul(g, mul(_const(x, 1 / _TWO_OVER_SQRT_PI), exp(mul(y, y)))))
defjvp2(ndtri_p, lambda g, y, x: mul(g, mul(_const(x, math.sqrt(2 * math.pi)),
                                              exp(mul(_const(x, 0.5), mul(y, y))))))
