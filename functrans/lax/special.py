"""Special-function primitives: lgamma, digamma, polygamma, erfc, erf_inv and ndtri (each
elementwise on floats, with its impl (SciPy), abstract eval, jvp through the next function of
the family, so derivatives of every order exist, and vectorised batching beside it); and the
incomplete gamma and beta functions igamma, igammac, igamma_grad_a, random_gamma_grad and
betainc (several operands of one shape and dtype, broadcasting batching, JAX's jvps). The numba
CPU lowerings are in backends/numba_cpu.py (scalar helpers in backends/vmath.py and, for the
incomplete functions, lax/_special_kernels.py)."""
from __future__ import annotations

import math

import numpy as np
import scipy.special as _sc

from ..interpreters.ad import defjvp, defjvp2
from ..interpreters.batching import defbroadcasting, defvectorized
from .lax import (_check_kind, _const, _float, _lax_operands, _nary_aval, _with_dtype, add,
                  exp, log, log1p, mul, neg, primitive, sub, unop)

__all__ = ["lgamma", "digamma", "polygamma", "erfc", "erf_inv", "ndtri",
           "igamma", "igammac", "igamma_grad_a", "random_gamma_grad", "betainc",
           "lgamma_p", "digamma_p", "polygamma_p", "erfc_p", "erf_inv_p", "ndtri_p",
           "igamma_p", "igammac_p", "igamma_grad_a_p", "random_gamma_grad_p",
           "regularized_incomplete_beta_p"]


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


# ---------------------------------------------------------------------------------------------
# Incomplete gamma and beta functions: several operands of one shape and dtype

def _naryop(name, impl, doc, wrapper=None):
    """An elementwise float primitive of n operands (equal shapes and dtypes, broadcasting
    batching) and its user-facing wrapper, named wrapper or name (operands broadcast, then
    bound)."""
    wrapper = wrapper or name
    p = primitive(name, impl, _nary_aval(name, _float))
    defbroadcasting(p)

    def f(*args):
        return p.bind(*_lax_operands(wrapper, *args))
    f.__name__ = f.__qualname__ = wrapper
    f.__doc__ = doc
    return p, f


def _scipy_n(f):
    """An impl running scipy.special's f on float64 copies of the operands, in their dtype."""
    def impl(*args):
        with np.errstate(all="ignore"):
            out = np.asarray(f(*(np.asarray(v, np.float64) for v in args)))
        return _with_dtype(out, args[0].dtype)
    return impl


def _kernel_impl(sample):
    """The impl of igamma_grad_a (sample False) or random_gamma_grad (True): SciPy has neither,
    so the numba kernels of _special_kernels run (imported here: numba loads only when used)."""
    def impl(a, x):
        from . import _special_kernels
        flat = [np.ascontiguousarray(v, np.float64).ravel() for v in (a, x)]
        out = _special_kernels.igamma_da_array(*flat, sample).reshape(np.shape(a))
        return _with_dtype(out, a.dtype)
    return impl


igamma_p, igamma = _naryop(
    "igamma", _scipy_n(_sc.gammainc),
    "The regularized lower incomplete gamma function P(a, x) elementwise (nan for a < 0, x < 0 "
    "or a = x = 0; 1 for a = 0 < x).")
igammac_p, igammac = _naryop(
    "igammac", _scipy_n(_sc.gammaincc),
    "The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x) elementwise, "
    "accurate where it is small.")
igamma_grad_a_p, igamma_grad_a = _naryop(
    "igamma_grad_a", _kernel_impl(False),
    "dP(a, x)/da, the derivative of igamma in a, elementwise (nan for a <= 0 or x < 0).")
random_gamma_grad_p, random_gamma_grad = _naryop(
    "random_gamma_grad", _kernel_impl(True),
    "The derivative in a of a Gamma(a, 1) sample x at fixed quantile, -(dP/da) / (dP/dx), "
    "elementwise (implicit reparameterization of gamma sampling).")
regularized_incomplete_beta_p, betainc = _naryop(
    "regularized_incomplete_beta", _scipy_n(_sc.betainc),
    "The regularized incomplete beta function I_x(a, b) elementwise (nan for a or b < 0 or x "
    "outside [0, 1]).", wrapper="betainc")


def _igamma_dx(g, a, x):
    """g times dP/dx = x^(a-1) e^-x / Gamma(a), formed in log space."""
    return mul(g, exp(sub(sub(mul(sub(a, _const(a, 1)), log(x)), x), lgamma(a))))


def _betainc_dx(g, a, b, x):
    """g times dI/dx = x^(a-1) (1-x)^(b-1) / B(a, b), formed in log space."""
    one = _const(x, 1)
    log_beta = sub(add(lgamma(a), lgamma(b)), lgamma(add(a, b)))
    return mul(g, exp(sub(add(mul(sub(b, one), log1p(neg(x))), mul(sub(a, one), log(x))),
                          log_beta)))


def _no_derivative(name):
    """The jvp contribution of an operand JAX does not differentiate: NotImplementedError."""
    def rule(g, *args):
        raise NotImplementedError(f"Differentiation rule for '{name}' not implemented")
    return rule


def _betainc_ab(g, a, b, x):
    raise ValueError("Betainc gradient with respect to a and b not supported.")


defjvp(igamma_p, lambda g, a, x: mul(g, igamma_grad_a(a, x)), _igamma_dx)
defjvp(igammac_p, lambda g, a, x: neg(mul(g, igamma_grad_a(a, x))),
       lambda g, a, x: neg(_igamma_dx(g, a, x)))
defjvp(igamma_grad_a_p, _no_derivative("igamma_grad_a"), _no_derivative("igamma_grad_a"))
defjvp(random_gamma_grad_p, _no_derivative("random_gamma_grad"),
       _no_derivative("random_gamma_grad"))
defjvp(regularized_incomplete_beta_p, _betainc_ab, _betainc_ab, _betainc_dx)
