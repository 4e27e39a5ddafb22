"""functrans.scipy.special: SciPy's special functions (JAX's subset), traced, so every transform
applies. Integer and bool inputs are promoted to float64, as in JAX with x64 enabled. The
functions are lax primitives (lax/special.py) or written in functrans.numpy on top of them."""
from __future__ import annotations

import math

import numpy as np

from .. import lax
from ..core import is_float
from ..custom_derivatives import custom_jvp
from ..numpy import _ufuncs as U
from ..numpy._base import promote, result_type
from ..numpy._special import logsumexp  # noqa: F401

__all__ = ["betainc", "betaln", "digamma", "entr", "erf", "erfc", "erfinv", "expit", "gammainc",
           "gammaincc", "gammaln", "log_ndtr", "logit", "logsumexp", "ndtr", "ndtri", "polygamma",
           "xlog1py", "xlogy"]


def _inexact(*args):
    """args promoted to their common float dtype (float64 for integers and bools), broadcast."""
    dt = result_type(*args)
    return promote(dt if is_float(dt) else np.dtype(np.float64), *args)


# name -> (lax function, docstring); each is applied elementwise after promotion to float
_UNARY = {
    "erf": (lax.erf, "The error function 2/sqrt(pi) int_0^x exp(-t^2) dt, elementwise."),
    "erfc": (lax.erfc, "The complementary error function 1 - erf(x), accurate in the tails."),
    "erfinv": (lax.erf_inv, "The inverse of erf: +-inf at +-1, nan outside [-1, 1]."),
    "expit": (lax.logistic, "The logistic sigmoid 1 / (1 + exp(-x)), without overflow."),
    "gammaln": (lax.lgamma, "log|Gamma(x)|, elementwise (+inf at 0, -1, -2, ... and +-inf)."),
    "digamma": (lax.digamma, "The digamma function d/dx gammaln(x) (nan at -1, -2, ...)."),
    "ndtri": (lax.ndtri, "The inverse of ndtr, the standard normal quantile function: -inf at "
                         "0, inf at 1, nan outside [0, 1]."),
}


def _unary(name):
    """The function applying _UNARY[name]'s lax function after promotion to float."""
    lax_fn, doc = _UNARY[name]

    def f(x):
        (x,) = _inexact(x)
        return lax_fn(x)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    return f


erf, erfc, erfinv, expit = _unary("erf"), _unary("erfc"), _unary("erfinv"), _unary("expit")
gammaln, digamma, ndtri = _unary("gammaln"), _unary("digamma"), _unary("ndtri")


def polygamma(n, x):
    """The n-th derivative of the digamma function at x; n a non-negative integer (a Python
    int or concrete array: the order is static here, unlike JAX, where it may be traced)."""
    (x,) = _inexact(x)
    orders = np.unique(np.asarray(n))
    if orders.size != 1 or orders[0] != int(orders[0]):
        raise ValueError(f"polygamma: n must be one non-negative integer, got {n!r}")
    return lax.polygamma(int(orders[0]), x)


def logit(x):
    """log(x / (1 - x)), the inverse of expit: -inf at 0, inf at 1, nan outside [0, 1]."""
    (x,) = _inexact(x)
    return U.log(U.divide(x, U.subtract(1.0, x)))


def _xlog_fn(log_fn, dlog_fn, name, doc):
    """x * log_fn(y) that is 0 where x == 0 (even where log_fn(y) is -inf or nan), with JAX's
    derivative rule: d/dx = log_fn(y) and d/dy = x * log_fn'(y)."""
    @custom_jvp
    def f(x, y):
        x, y = _inexact(x, y)
        return U.where(U.equal(x, 0.0), 0.0, U.multiply(x, log_fn(y)))

    def f_jvp(primals, tangents):
        x, y = _inexact(*primals)
        dx, dy = tangents
        out = f(x, y)
        return out, U.add(U.multiply(dx, log_fn(y)), U.multiply(dy, U.multiply(x, dlog_fn(y))))

    f.defjvp(f_jvp)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    return f


xlogy = _xlog_fn(U.log, lambda y: U.divide(1.0, y), "xlogy",
                 "x * log(y), and 0 where x == 0 (so 0 * log(0) = 0).")
xlog1py = _xlog_fn(U.log1p, lambda y: U.divide(1.0, U.add(y, 1.0)), "xlog1py",
                   "x * log1p(y), and 0 where x == 0 (so 0 * log1p(-1) = 0).")


def entr(x):
    """The elementwise entropy -x log(x): 0 at x = 0, -inf for x < 0, nan for nan."""
    (x,) = _inexact(x)
    return U.where(U.less(x, 0.0), -np.inf, U.negative(xlogy(x, x)))


def ndtr(x):
    """The standard normal CDF: the integral of the N(0, 1) density from -inf to x."""
    (x,) = _inexact(x)
    return U.multiply(0.5, lax.erfc(U.multiply(x, -1 / math.sqrt(2.0))))


# asymptotic series of log_ndtr below a threshold (where ndtr nears underflow: -20 in float64,
# -10 in float32): the terms (-1)^k (2k-1)!! / x^(2k)
_LOG_NDTR_LOW = {np.dtype(np.float64): -20.0, np.dtype(np.float32): -10.0}
_LOG_NDTR_HIGH, _LOG_NDTR_TERMS = 0.0, 6


def log_ndtr(x):
    """log(ndtr(x)), accurate in both tails: an asymptotic series below -20 (-10 for float32),
    log1p(-ndtr(-x)) above 0, log(ndtr(x)) between. Finite derivatives everywhere."""
    (x,) = _inexact(x)
    lo = _LOG_NDTR_LOW.get(np.dtype(x.dtype), -20.0)
    low = U.less(x, lo)
    high = U.greater(x, _LOG_NDTR_HIGH)
    # each branch sees only inputs inside its own range (so no branch makes a nan derivative)
    x_mid = U.clip(x, lo, _LOG_NDTR_HIGH)
    x_low = U.minimum(x, lo)
    x_high = U.maximum(x, _LOG_NDTR_HIGH)
    mid = U.log(ndtr(x_mid))
    upper = U.log1p(U.negative(ndtr(U.negative(x_high))))
    z = U.divide(1.0, U.multiply(x_low, x_low))
    series, coef, zk = 1.0, 1.0, 1.0
    for k in range(1, _LOG_NDTR_TERMS + 1):
        coef *= -(2 * k - 1)
        zk = U.multiply(zk, z)
        series = U.add(series, U.multiply(coef, zk))
    lower = U.subtract(U.subtract(U.multiply(-0.5, U.multiply(x_low, x_low)),
                                  U.log(U.negative(x_low))),
                       0.5 * math.log(2 * math.pi))
    lower = U.add(lower, U.log(series))
    return U.where(low, lower, U.where(high, upper, mid))


def betaln(a, b):
    """log|B(a, b)| = gammaln(a) + gammaln(b) - gammaln(a + b), elementwise, broadcast."""
    a, b = _inexact(a, b)
    return U.subtract(U.add(lax.lgamma(a), lax.lgamma(b)), lax.lgamma(U.add(a, b)))


def gammainc(a, x):
    """The regularized lower incomplete gamma function P(a, x) = gamma(a, x) / Gamma(a),
    elementwise, broadcast (nan for a < 0 or x < 0; differentiable in x, and once in a)."""
    return lax.igamma(*_inexact(a, x))


def gammaincc(a, x):
    """The regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x), elementwise,
    broadcast, accurate where it is small (differentiable in x, and once in a)."""
    return lax.igammac(*_inexact(a, x))


def betainc(a, b, x):
    """The regularized incomplete beta function I_x(a, b), elementwise, broadcast (nan for a or
    b < 0 or x outside [0, 1]; differentiable in x only, as in JAX)."""
    return lax.betainc(*_inexact(a, b, x))
