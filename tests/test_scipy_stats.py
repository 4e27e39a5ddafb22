"""functrans.scipy.stats: values against scipy.stats (loc/scale, support edges), derivatives by
check_grads, and the functions under vmap and jit."""
import numpy as np
import pytest
import scipy.stats as ss

import functrans as jax
from functrans.scipy import stats
from functrans.test_util import check_grads

X = np.array([-3.0, -0.7, 0.0, 0.2, 0.9, 1.5, 4.0])
Q = np.array([0.0, 0.01, 0.3, 0.5, 0.8, 0.999, 1.0])

# family -> (shape parameters, loc, scale, x values inside the support for check_grads)
CONT = {
    "norm": ((), 0.5, 2.0, [-1.0, 0.3, 2.0]),
    "uniform": ((), -0.5, 2.0, [-0.2, 0.4, 1.1]),
    "expon": ((), -0.5, 1.5, [0.1, 0.9, 3.0]),
    "logistic": ((), 0.3, 0.7, [-1.0, 0.3, 2.0]),
    "laplace": ((), 0.3, 0.7, [-1.0, 0.1, 2.0]),
    "cauchy": ((), 0.3, 0.7, [-1.0, 0.2, 2.0]),
    "t": ((3.5,), 0.3, 1.3, [-1.0, 0.2, 2.0]),
    "gamma": ((2.5,), -0.5, 1.5, [0.2, 1.0, 3.0]),
    "beta": ((2.5, 1.5), -0.5, 2.0, [-0.3, 0.5, 1.2]),
    "chi2": ((3.5,), -0.5, 1.5, [0.2, 1.0, 3.0]),
}
FUNCS = ["logpdf", "pdf", "cdf", "logcdf", "sf", "logsf", "ppf", "isf"]


@pytest.mark.parametrize("family", sorted(CONT))
def test_continuous_values_match_scipy(family):
    shape, loc, scale, _ = CONT[family]
    mod, ref = getattr(stats, family), getattr(ss, family)
    names = [f for f in FUNCS if hasattr(mod, f)]
    assert {"logpdf", "pdf"} <= set(names)
    for name in names:
        arg = Q if name in ("ppf", "isf") else X
        want = getattr(ref, name)(arg, *shape, loc=loc, scale=scale)
        got = getattr(mod, name)(arg, *shape, loc=loc, scale=scale)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-300, err_msg=name)
        positional = getattr(mod, name)(arg, *shape, loc, scale)
        np.testing.assert_allclose(positional, want, rtol=1e-10, atol=1e-300, err_msg=name)
    np.testing.assert_allclose(mod.logpdf(X, *shape), ref.logpdf(X, *shape), rtol=1e-10)


@pytest.mark.parametrize("family", sorted(CONT))
def test_continuous_grads(family):
    shape, loc, scale, pts = CONT[family]
    mod = getattr(stats, family)
    check_grads(lambda x, l, s, *sh: mod.logpdf(x, *sh, loc=l, scale=s),
                (np.array(pts), loc, scale) + shape, order=2)
    if hasattr(mod, "cdf"):
        check_grads(lambda x, l, s: mod.cdf(x, *shape, loc=l, scale=s),
                    (np.array(pts), loc, scale), order=2)
    if hasattr(mod, "ppf"):
        check_grads(lambda q: mod.ppf(q, *shape, loc=loc, scale=scale),
                    (np.array([0.2, 0.6]),), order=2)


def test_discrete_values_and_grads():
    k = np.array([-1.0, 0.0, 1.0, 2.0, 3.0, 1.5])
    for p in (0.3, 0.0, 1.0):
        np.testing.assert_allclose(stats.bernoulli.logpmf(k, p), ss.bernoulli.logpmf(k, p))
        np.testing.assert_allclose(stats.bernoulli.pmf(k, p), ss.bernoulli.pmf(k, p))
        np.testing.assert_allclose(stats.bernoulli.cdf(k, p), ss.bernoulli.cdf(k, p))
    np.testing.assert_allclose(stats.bernoulli.logpmf(k, 0.3, loc=1), ss.bernoulli.logpmf(k, 0.3, loc=1))
    np.testing.assert_allclose(stats.bernoulli.ppf(Q[1:], 0.3), ss.bernoulli.ppf(Q[1:], 0.3))
    assert float(stats.bernoulli.ppf(0.0, 0.3)) == 0.0      # JAX's value (scipy's is -1)
    np.testing.assert_allclose(stats.poisson.logpmf(k, 2.5), ss.poisson.logpmf(k, 2.5), rtol=1e-12)
    np.testing.assert_allclose(stats.poisson.pmf(k, 2.5, loc=1), ss.poisson.pmf(k, 2.5, loc=1),
                               rtol=1e-12)
    for mu, loc in ((2.5, 0), (0.3, 1), (40.0, -2)):
        np.testing.assert_allclose(stats.poisson.cdf(k, mu, loc), ss.poisson.cdf(k, mu, loc),
                                   rtol=1e-12)
    check_grads(lambda mu: stats.poisson.cdf(np.array([0.0, 2.0, 5.0]), mu), (2.5,), order=2)
    check_grads(lambda p: stats.bernoulli.logpmf(np.array([0.0, 1.0]), p), (0.3,), order=2)
    check_grads(lambda mu: stats.poisson.logpmf(np.array([0.0, 2.0, 5.0]), mu), (2.5,), order=2)


def test_multivariate_normal():
    cov = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]])
    mean = np.array([0.1, -0.2, 0.3])
    x = np.random.RandomState(0).randn(4, 3)
    np.testing.assert_allclose(stats.multivariate_normal.logpdf(x, mean, cov),
                               ss.multivariate_normal.logpdf(x, mean, cov), rtol=1e-12)
    np.testing.assert_allclose(stats.multivariate_normal.pdf(x[0], mean, cov),
                               ss.multivariate_normal.pdf(x[0], mean, cov), rtol=1e-12)
    np.testing.assert_allclose(stats.multivariate_normal.logpdf(x, mean, 0.7),
                               ss.multivariate_normal.logpdf(x, mean, 0.7), rtol=1e-12)
    check_grads(lambda x, m, c: stats.multivariate_normal.logpdf(x, m, c @ c.T),
                (x[:2], mean, np.linalg.cholesky(cov)), order=2)


def test_under_vmap_and_jit():
    locs = np.array([0.0, 1.0, -1.0])
    out = jax.vmap(lambda l: stats.norm.logcdf(X, loc=l))(locs)
    np.testing.assert_allclose(out, ss.norm.logcdf(X[None], loc=locs[:, None]), rtol=1e-10)
    f = jax.jit(lambda x, a: stats.gamma.logpdf(x, a, scale=2.0) + stats.t.logpdf(x, a))
    np.testing.assert_allclose(f(np.abs(X) + 0.1, 2.5),
                               ss.gamma.logpdf(np.abs(X) + 0.1, 2.5, scale=2.0)
                               + ss.t.logpdf(np.abs(X) + 0.1, 2.5), rtol=1e-10)


def test_submodules_import_like_jax():
    from functrans.scipy.stats import norm
    import functrans.scipy.stats.multivariate_normal as mvn
    assert norm is stats.norm and mvn is stats.multivariate_normal
    assert "density" in norm.pdf.__doc__ and norm.logpdf.__module__ == "functrans.scipy.stats.norm"
    with pytest.raises(TypeError, match="shape parameter"):
        stats.gamma.logpdf(1.0)
