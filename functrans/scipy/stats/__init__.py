"""functrans.scipy.stats: JAX's distributions as modules of functions (``norm.logpdf(x, loc,
scale)``...), written in functrans.numpy and functrans.scipy.special so every transform
applies. Continuous distributions are location-scale families built by one helper from their
standardised functions; ``bernoulli`` and ``poisson`` are discrete; ``multivariate_normal``
takes a mean vector and a covariance matrix. The CDFs of ``gamma``, ``chi2``, ``beta`` and
``poisson`` are the regularised incomplete gamma and beta functions (``t`` has no cdf, as in
JAX)."""
from __future__ import annotations

import math
import sys
import types

from ... import numpy as jnp
from ...nn import softplus
from .. import special as sp

_LOG_2PI = math.log(2 * math.pi)

# ---------------------------------------------------------------------------------------------
# Standardised functions of each continuous family: f(z, *shape_params) on z = (x - loc) / scale


def _norm_logpdf(z):
    return -0.5 * jnp.square(z) - 0.5 * _LOG_2PI


def _outside(z, lo, hi, value, inside):
    """inside, but value where z < lo or z > hi."""
    return jnp.where((z < lo) | (z > hi), value, inside)


def _expon_logcdf(z):
    zpos = jnp.maximum(z, 1e-300)
    return jnp.where(z < 0, -jnp.inf, jnp.log(-jnp.expm1(-zpos)))


def _laplace_cdf(z):
    half = 0.5 * jnp.exp(-jnp.abs(z))
    return jnp.where(z < 0, half, 1 - half)


def _t_logpdf(z, df):
    return (sp.gammaln((df + 1) / 2) - sp.gammaln(df / 2) - 0.5 * jnp.log(df * math.pi)
            - (df + 1) / 2 * jnp.log1p(jnp.square(z) / df))


def _gamma_logpdf(z, a):
    return jnp.where(z < 0, -jnp.inf, sp.xlogy(a - 1, z) - z - sp.gammaln(a))


def _beta_logpdf(z, a, b):
    inside = sp.xlogy(a - 1, z) + sp.xlog1py(b - 1, -z) - sp.betaln(a, b)
    return _outside(z, 0, 1, -jnp.inf, inside)


def _chi2_logpdf(z, df):
    half = df / 2
    return jnp.where(z < 0, -jnp.inf,
                     sp.xlogy(half - 1, z) - z / 2 - sp.gammaln(half) - half * math.log(2))


def _cdfs(cdf, sf):
    """cdf, sf and their logs, the log taken of each (as JAX does)."""
    return {"cdf": cdf, "logcdf": lambda *args: jnp.log(cdf(*args)),
            "sf": sf, "logsf": lambda *args: jnp.log(sf(*args))}


def _cauchy_ppf(q):
    """tan(pi (q - 1/2)), exactly -inf at 0 and inf at 1, nan outside [0, 1]."""
    inner = jnp.tan(math.pi * (q - 0.5))
    return _prob_checked(q, jnp.where(q == 0, -jnp.inf, jnp.where(q == 1, jnp.inf, inner)))


def _prob_checked(q, value):
    """value where 0 <= q <= 1, nan elsewhere."""
    return _outside(q, 0, 1, jnp.nan, value)


# family name -> (number of shape parameters, {function name: standardised function});
# "logpdf" is needed; "cdf", "sf", "ppf", "isf", "logcdf", "logsf" where the family has them
_FAMILIES = {
    "norm": (0, {"logpdf": _norm_logpdf, "cdf": sp.ndtr, "logcdf": sp.log_ndtr,
                 "sf": lambda z: sp.ndtr(-z), "logsf": lambda z: sp.log_ndtr(-z),
                 "ppf": sp.ndtri, "isf": lambda q: -sp.ndtri(q)}),
    "uniform": (0, {"logpdf": lambda z: _outside(z, 0, 1, -jnp.inf, jnp.zeros_like(z)),
                    "cdf": lambda z: jnp.clip(z, 0, 1),
                    "ppf": lambda q: _prob_checked(q, q)}),
    "expon": (0, {"logpdf": lambda z: jnp.where(z < 0, -jnp.inf, -z),
                  "cdf": lambda z: jnp.where(z < 0, 0.0, -jnp.expm1(-jnp.maximum(z, 0))),
                  "logcdf": _expon_logcdf,
                  "sf": lambda z: jnp.where(z < 0, 1.0, jnp.exp(-jnp.maximum(z, 0))),
                  "logsf": lambda z: jnp.where(z < 0, 0.0, -z),
                  "ppf": lambda q: _prob_checked(q, -jnp.log1p(-q))}),
    "logistic": (0, {"logpdf": lambda z: -z - 2 * softplus(-z), "cdf": sp.expit,
                     "sf": lambda z: sp.expit(-z), "ppf": sp.logit,
                     "isf": lambda q: -sp.logit(q)}),
    "laplace": (0, {"logpdf": lambda z: -jnp.abs(z) - math.log(2), "cdf": _laplace_cdf}),
    "cauchy": (0, {"logpdf": lambda z: -math.log(math.pi) - jnp.log1p(jnp.square(z)),
                   "cdf": lambda z: 0.5 + jnp.arctan(z) / math.pi,
                   "logcdf": lambda z: jnp.log(0.5 + jnp.arctan(z) / math.pi),
                   "sf": lambda z: 0.5 - jnp.arctan(z) / math.pi,
                   "logsf": lambda z: jnp.log(0.5 - jnp.arctan(z) / math.pi),
                   "ppf": lambda q: _cauchy_ppf(q), "isf": lambda q: -_cauchy_ppf(q)}),
    "t": (1, {"logpdf": _t_logpdf}),
    "gamma": (1, {"logpdf": _gamma_logpdf,
                  **_cdfs(lambda z, a: sp.gammainc(a, jnp.maximum(z, 0)),
                          lambda z, a: sp.gammaincc(a, jnp.maximum(z, 0)))}),
    "chi2": (1, {"logpdf": _chi2_logpdf,
                 **_cdfs(lambda z, df: sp.gammainc(df / 2, jnp.maximum(z, 0) / 2),
                         lambda z, df: sp.gammaincc(df / 2, jnp.maximum(z, 0) / 2))}),
    "beta": (2, {"logpdf": _beta_logpdf,
                 **_cdfs(lambda z, a, b: sp.betainc(a, b, jnp.clip(z, 0, 1)),
                         lambda z, a, b: sp.betainc(b, a, 1 - jnp.clip(z, 0, 1)))}),
}

_DOCS = {
    "logpdf": "The log of the probability density at x.",
    "pdf": "The probability density at x.",
    "cdf": "The cumulative distribution function at x.",
    "logcdf": "The log of the cumulative distribution function at x.",
    "sf": "The survival function 1 - cdf at x.",
    "logsf": "The log of the survival function at x.",
    "ppf": "The quantile function (inverse cdf) at q (nan outside [0, 1]).",
    "isf": "The inverse survival function at q (nan outside [0, 1]).",
}


def _loc_scale(family, name, n_shape, std):
    """The location-scale function ``f(x, *shape_params, loc=0, scale=1)`` of a standardised
    one (loc and scale may also be passed positionally, after the shape parameters)."""
    def f(x, *args, **kwargs):
        if len(args) < n_shape:
            raise TypeError(f"{family}.{name} takes {n_shape} shape parameter(s) after x")
        shape, rest = args[:n_shape], dict(zip(("loc", "scale"), args[n_shape:]))
        loc, scale = kwargs.get("loc", rest.get("loc", 0)), kwargs.get("scale", rest.get("scale", 1))
        x, loc, scale, *shape = sp._inexact(x, loc, scale, *shape)
        if name in ("ppf", "isf"):
            return loc + scale * std(x, *shape)
        out = std((x - loc) / scale, *shape)
        return out - jnp.log(scale) if name == "logpdf" else out
    sig = "".join(f", p{i}" for i in range(n_shape))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"{family}.{name}(x{sig}, loc=0, scale=1): {_DOCS[name]}"
    return f


def _module(name, doc, funcs):
    """A submodule functrans.scipy.stats.<name> holding funcs (importable by name)."""
    mod = types.ModuleType(f"{__name__}.{name}", doc)
    for fname, fn in funcs.items():
        fn.__module__ = mod.__name__
        setattr(mod, fname, fn)
    mod.__all__ = sorted(funcs)
    sys.modules[mod.__name__] = mod
    globals()[name] = mod
    return mod


for _family, (_n, _std) in _FAMILIES.items():
    _funcs = {k: _loc_scale(_family, k, _n, v) for k, v in _std.items()}
    _funcs["pdf"] = (lambda lp: lambda *a, **k: jnp.exp(lp(*a, **k)))(_funcs["logpdf"])
    _funcs["pdf"].__doc__ = f"{_family}.pdf: {_DOCS['pdf']}"
    _module(_family, f"The {_family} distribution (as scipy.stats.{_family}).", _funcs)


# ---------------------------------------------------------------------------------------------
# Discrete distributions

def _bernoulli_logpmf(k, p, loc=0):
    """The log of the Bernoulli(p) probability of k (shifted by loc): -inf off {0, 1}."""
    k, p, loc = sp._inexact(k, p, loc)
    k = k - loc
    inside = sp.xlogy(k, p) + sp.xlog1py(1 - k, -p)
    return jnp.where((k == 0) | (k == 1), inside, -jnp.inf)


def _bernoulli_cdf(k, p, loc=0):
    """The Bernoulli(p) cumulative distribution at k (shifted by loc)."""
    k, p, loc = sp._inexact(k, p, loc)
    k = k - loc
    return jnp.where(k < 0, 0.0, jnp.where(k < 1, 1 - p, 1.0))


def _bernoulli_ppf(q, p):
    """The Bernoulli(p) quantile: 1 where q > 1 - p, else 0 (nan for q or p outside [0, 1])."""
    q, p = sp._inexact(q, p)
    bad = jnp.isnan(q) | jnp.isnan(p) | (p < 0) | (p > 1) | (q < 0) | (q > 1)
    return jnp.where(bad, jnp.nan, jnp.where(q > 1 - p, 1.0, 0.0))


def _poisson_logpmf(k, mu, loc=0):
    """The log of the Poisson(mu) probability of k (shifted by loc): -inf off the naturals."""
    k, mu, loc = sp._inexact(k, mu, loc)
    k = k - loc
    inside = sp.xlogy(k, mu) - sp.gammaln(k + 1) - mu
    return jnp.where((k < 0) | (k != jnp.round(k)), -jnp.inf, inside)


def _poisson_cdf(k, mu, loc=0):
    """The Poisson(mu) cumulative distribution at k (shifted by loc): Q(floor(k) + 1, mu), and 0
    for k < 0."""
    k, mu, loc = sp._inexact(k, mu, loc)
    k = k - loc
    return jnp.where(k < 0, 0.0, sp.gammaincc(jnp.floor(k + 1), mu))


def _pmf(logpmf):
    def pmf(k, *args, **kwargs):
        return jnp.exp(logpmf(k, *args, **kwargs))
    pmf.__doc__ = logpmf.__doc__.replace("The log of the", "The")
    return pmf


_module("bernoulli", "The Bernoulli distribution (as scipy.stats.bernoulli).",
        {"logpmf": _bernoulli_logpmf, "pmf": _pmf(_bernoulli_logpmf), "cdf": _bernoulli_cdf,
         "ppf": _bernoulli_ppf})
_module("poisson", "The Poisson distribution (as scipy.stats.poisson).",
        {"logpmf": _poisson_logpmf, "pmf": _pmf(_poisson_logpmf), "cdf": _poisson_cdf})


# ---------------------------------------------------------------------------------------------
# multivariate_normal

def _cholesky(a):
    """The lower Cholesky factor of a small (d, d) matrix, unrolled (differentiable)."""
    d = a.shape[-1]
    cols = []
    for j in range(d):
        row_j = jnp.stack([c[j] for c in cols]) if cols else None
        prev = jnp.stack([c for c in cols], axis=1) if cols else None
        diag = a[j, j] - (jnp.sum(jnp.square(row_j)) if cols else 0.0)
        ljj = jnp.sqrt(diag)
        below = a[:, j] - (prev @ row_j if cols else 0.0)
        col = jnp.where(jnp.arange(d) > j, below / ljj, jnp.where(jnp.arange(d) == j, ljj, 0.0))
        cols.append(col)
    return jnp.stack(cols, axis=1)


def _mvn_logpdf(x, mean, cov, allow_singular=None):
    """The log density of N(mean, cov) at x (last axis the event; x and mean broadcast; cov a
    (d, d) positive-definite matrix, or a scalar variance for every coordinate)."""
    dt = jnp.result_type(x, mean, cov, 1.0)
    x, mean, cov = (jnp.asarray(v).astype(dt) for v in (x, mean, cov))
    d = x.shape[-1] if x.ndim else 1
    if cov.ndim < 2:
        cov = cov * jnp.eye(d, dtype=dt)
    chol = _cholesky(cov)
    r = x - mean
    ys = []
    for i in range(d):              # forward substitution chol @ y = r along the last axis
        acc = r[..., i]
        for j in range(i):
            acc = acc - chol[i, j] * ys[j]
        ys.append(acc / chol[i, i])
    maha = sum(jnp.square(y) for y in ys)
    log_det = sum(jnp.log(chol[i, i]) for i in range(d))
    return -0.5 * maha - log_det - 0.5 * d * _LOG_2PI


def _mvn_pdf(x, mean, cov, allow_singular=None):
    """The density of N(mean, cov) at x."""
    return jnp.exp(_mvn_logpdf(x, mean, cov))


_module("multivariate_normal", "The multivariate normal distribution.",
        {"logpdf": _mvn_logpdf, "pdf": _mvn_pdf})
