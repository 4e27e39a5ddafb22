"""The incomplete gamma and beta functions: lax.igamma, igammac, igamma_grad_a,
random_gamma_grad and betainc, and functrans.scipy.special's gammainc, gammaincc and betainc.
Values against scipy.special (eager and jitted, hypothesis-drawn and on an edge grid), the a-
derivatives against finite differences of SciPy's values, derivatives by check_grads (forward
and reverse: order 2 in x, order 1 in a, the orders JAX's rules allow), the derivatives JAX
refuses, vmap against a loop, and the stats CDFs built on them under jit and vmap."""
import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as ss
from hypothesis import given, settings, strategies as st

import functrans as jax
from functrans import lax
from functrans.scipy import special as S
from functrans.scipy import stats
from functrans.test_util import check_grads, check_vmap

INF, NAN = np.inf, np.nan
EDGE_A = np.array([0.0, 1e-300, 1e-3, 0.5, 1.0, 2.5, 10.0, 60.0, INF, NAN, -1.0])
EDGE_X = np.array([0.0, 1e-300, 1e-3, 0.3, 1.0, 3.0, 11.0, 80.0, INF, NAN, -1.0])
EDGE_P = np.array([0.0, 1e-300, 1e-3, 0.3, 0.5, 0.97, 1.0, NAN, -0.1, 1.1])

# primitive -> (lax function, its scipy reference); the references of the two a-derivatives
# are finite differences of scipy.special.gammainc (checked below for themselves)
GAMMA_FUNCS = {"igamma": (lax.igamma, sc.gammainc), "igammac": (lax.igammac, sc.gammaincc)}
# jitted once per function at module level: hypothesis examples reuse the compiled kernels
JITTED = {name: jax.jit(f) for name, (f, _) in GAMMA_FUNCS.items()}
JIT_BETAINC = jax.jit(lax.betainc)
JIT_GRAD_A = jax.jit(lambda a, x: (lax.igamma_grad_a(a, x), lax.random_gamma_grad(a, x)))


def _close(got, want, rtol=1e-12):
    got = np.asarray(got)
    assert got.shape == np.shape(want) and got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300, equal_nan=True)


def _grid(*axes):
    """The outer product of 1-d arrays, each raveled."""
    return [g.ravel() for g in np.meshgrid(*axes, indexing="ij")]


def _dp_da(a, x):
    """dP(a, x)/da by a 5-point central difference of scipy's gammainc, or of -gammaincc where
    P > 1/2 (so the differenced function is never near 1): error ~1e-10."""
    h = 1e-4 * np.minimum(a, 1.0)
    upper = sc.gammainc(a, x) > 0.5
    p = [np.where(upper, -sc.gammaincc(a + k * h, x), sc.gammainc(a + k * h, x))
         for k in (-2, -1, 1, 2)]
    return (p[0] - 8 * p[1] + 8 * p[2] - p[3]) / (12 * h)


# a log-uniform on [1e-3, 100] and x = a * exp(u), u in [-4, 4] (both tails and the switch
# between the series and the continued fraction at x = a + 1)
log_a = st.floats(np.log(1e-3), np.log(100.0))
ratio = st.floats(-4.0, 4.0)
pairs = st.lists(st.tuples(log_a, ratio), min_size=6, max_size=6)
# no subnormal x: scipy's betainc loses accuracy there (x^a from pow), ours does not
unit = st.one_of(st.just(0.0), st.floats(1e-300, 1.0))


def _ax(draw):
    a = np.exp(np.array([p[0] for p in draw]))
    return a, a * np.exp(np.array([p[1] for p in draw]))


@settings(max_examples=15, deadline=None)
@given(pairs)
def test_incomplete_gamma_matches_scipy_eager_and_jitted(draw):
    a, x = _ax(draw)
    for name, (f, ref) in GAMMA_FUNCS.items():
        want = ref(a, x)
        _close(f(a, x), want)
        _close(JITTED[name](a, x), want)
    _close(S.gammainc(a, x), sc.gammainc(a, x))
    _close(S.gammaincc(a, x), sc.gammaincc(a, x))


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.floats(np.log(1e-3), np.log(200.0)),
                          st.floats(np.log(1e-3), np.log(200.0)),
                          unit), min_size=6, max_size=6))
def test_betainc_matches_scipy_eager_and_jitted(draw):
    a, b = (np.exp(np.array([d[i] for d in draw])) for i in (0, 1))
    x = np.array([d[2] for d in draw])
    want = sc.betainc(a, b, x)
    _close(lax.betainc(a, b, x), want)
    _close(JIT_BETAINC(a, b, x), want, rtol=2e-12)
    _close(S.betainc(a, b, x), want)


def test_edge_values_match_scipy():
    a, x = _grid(EDGE_A, EDGE_X)
    with np.errstate(all="ignore"):
        for name, (f, ref) in GAMMA_FUNCS.items():
            _close(f(a, x), ref(a, x))
            _close(JITTED[name](a, x), ref(a, x))
        a3, b3, p3 = _grid(EDGE_A, EDGE_A, EDGE_P)
        _close(JIT_BETAINC(a3, b3, p3), sc.betainc(a3, b3, p3))
        _close(lax.betainc(a3, b3, p3), sc.betainc(a3, b3, p3))
    grad_a, sample = JIT_GRAD_A(a, x)
    _close(lax.igamma_grad_a(a, x), grad_a, rtol=0)       # one kernel, eager and jitted
    _close(lax.random_gamma_grad(a, x), sample, rtol=0)
    bad = ~(a > 0) | ~(x >= 0)                  # a <= 0, x < 0 or nan: nan
    assert np.isnan(grad_a[bad]).all() and np.isnan(sample[bad]).all()
    at_zero = (a > 0) & (x == 0)
    assert (grad_a[at_zero] == 0).all() and (sample[at_zero] == 0).all()


def test_large_parameters_and_float32():
    # large a: both ours and SciPy's are ~1e-11 accurate here (SciPy's uniform asymptotics)
    a = np.array([150.0, 900.0, 2500.0, 1e4])
    x = np.array([0.8, 1.05, 0.97, 1.01]) * a
    for name, (f, ref) in GAMMA_FUNCS.items():
        _close(JITTED[name](a, x), ref(a, x), rtol=3e-11)
    b = np.array([800.0, 3.0, 2e3, 0.05])
    y = np.array([0.1, 0.99, 0.5, 0.9])
    _close(JIT_BETAINC(a, b, y), sc.betainc(a, b, y), rtol=1e-11)
    a32, x32 = np.float32([0.5, 2.5, 30.0]), np.float32([0.2, 3.0, 25.0])
    got = JITTED["igamma"](a32, x32)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, sc.gammainc(a32.astype(float), x32.astype(float)), rtol=2e-6)
    assert lax.igamma(a32, x32).dtype == np.float32


@settings(max_examples=10, deadline=None)
@given(pairs)
def test_a_derivatives_match_finite_differences(draw):
    a, x = _ax(draw)
    dp = _dp_da(a, x)
    grad_a, sample = JIT_GRAD_A(a, x)
    _close(grad_a, dp, rtol=1e-7)
    _close(lax.igamma_grad_a(a, x), grad_a, rtol=1e-15)
    # implicit reparameterization: dx/da = -(dP/da) / pdf(x); where the pdf underflows the
    # reference cannot be formed, but the kernel never forms the pdf: still finite
    pdf = ss.gamma.pdf(x, a)
    seen = pdf > 1e-250
    _close(sample[seen], -dp[seen] / pdf[seen], rtol=1e-7)
    assert np.isfinite(sample).all()
    _close(lax.random_gamma_grad(a, x), sample, rtol=1e-15)


POINTS_A = np.array([0.4, 1.5, 6.0, 30.0])
POINTS_X = np.array([0.3, 2.5, 4.0, 33.0])      # both sides of x = a + 1


@pytest.mark.parametrize("name", ["igamma", "igammac", "gammainc", "gammaincc"])
def test_incomplete_gamma_grads(name):
    f = getattr(lax, name, None) or getattr(S, name)
    check_grads(lambda x: f(POINTS_A, x), (POINTS_X,), order=2, modes=("fwd", "rev"))
    check_grads(f, (POINTS_A, POINTS_X), order=1, modes=("fwd", "rev"))


def test_betainc_grads_in_x_and_refusals_in_a_and_b():
    a, b, x = np.array([0.7, 2.0, 15.0]), np.array([3.0, 0.8, 12.0]), np.array([0.2, 0.6, 0.5])
    for f in (lax.betainc, S.betainc):
        check_grads(lambda x: f(a, b, x), (x,), order=2, modes=("fwd", "rev"))
    for argnum in (0, 1):
        with pytest.raises(ValueError, match="with respect to a and b not supported"):
            jax.grad(lambda *v: S.betainc(*v).sum(), argnums=argnum)(a, b, x)


def test_second_derivative_in_a_is_refused_as_in_jax():
    with pytest.raises(NotImplementedError, match="'igamma_grad_a'"):
        jax.grad(jax.grad(lambda a: S.gammainc(a, 2.0)))(1.5)
    with pytest.raises(NotImplementedError, match="'random_gamma_grad'"):
        jax.grad(lambda a: lax.random_gamma_grad(a, 2.0))(1.5)
    # the mixed derivative through dP/dx (x^(a-1) e^-x / Gamma(a)) exists
    check_grads(lambda a: jax.grad(S.gammainc, argnums=1)(a, 2.0), (1.5,), order=1)


def test_vmap_matches_a_loop():
    a = np.array([[0.5, 3.0], [7.0, 1.2], [2.0, 40.0]])
    x = np.array([[0.2, 4.0], [6.5, 1.0], [0.1, 45.0]])
    for f in (lax.igamma, lax.igammac, lax.igamma_grad_a, lax.random_gamma_grad):
        check_vmap(f, (a, x.T), (0, 1))
        check_vmap(f, (a, x[0]), (0, None))
    check_vmap(lax.betainc, (a, x[0], np.array([[0.1, 0.5, 0.9], [0.3, 0.4, 1.0]])), (0, None, 1))


def test_operands_are_checked():
    with pytest.raises(TypeError, match="same dtypes, got float32, float64"):
        lax.igamma(np.float32(1.0), np.float64(2.0))
    with pytest.raises(TypeError, match="incompatible shapes"):
        lax.betainc(np.ones(2), np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="does not accept dtype int64"):
        jax.make_jaxpr(lax.igamma)(np.int64(1), np.int64(2))
    assert S.gammainc(2, 3).dtype == np.float64               # scipy.special promotes
    _close(S.gammainc(np.array([1.0, 2.0]), 3.0), sc.gammainc([1.0, 2.0], 3.0))


def test_stats_cdfs_jitted_and_vmapped():
    x = np.array([-0.5, 0.3, 1.7, 6.0])
    f = jax.jit(lambda x, a: (stats.gamma.cdf(x, a, scale=2.0), stats.chi2.logsf(x, a),
                              stats.beta.sf(x / 7, a, 1.5), stats.poisson.cdf(x, a)))
    got = f(x, 2.5)
    want = (ss.gamma.cdf(x, 2.5, scale=2.0), ss.chi2.logsf(x, 2.5), ss.beta.sf(x / 7, 2.5, 1.5),
            ss.poisson.cdf(x, 2.5))
    for g, w in zip(got, want):
        _close(g, w, rtol=1e-11)
    shapes = np.array([0.5, 2.0, 9.0])
    out = jax.vmap(lambda a: stats.gamma.logcdf(x, a))(shapes)
    _close(out, ss.gamma.logcdf(x[None], shapes[:, None]), rtol=1e-11)
    # the gamma cdf is differentiable in its shape parameter (once, as in JAX)
    check_grads(lambda a: stats.gamma.cdf(x[1:], a, scale=1.3), (2.5,), order=1)
