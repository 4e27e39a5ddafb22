"""functrans.scipy.special and the special-function primitives of lax/special.py: values against
scipy.special (eager and jitted, float64 and float32, edge values), derivatives by check_grads
(first and second order, forward and reverse), vmap. Doc examples run unchanged."""
import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, strategies as st

import functrans as jax
import functrans.numpy as jnp
from functrans import lax
from functrans.scipy import special as S
from functrans.test_util import check_grads

EDGES = [0.0, -0.0, 1.0, -1.0, -2.0, -2.5, np.inf, -np.inf, np.nan, 1e-300, 1e-8, 0.5]
WIDE = np.concatenate([np.linspace(-12.3, 25.7, 97), EDGES])
UNIT = np.concatenate([np.linspace(-0.999, 0.999, 41), [0.0, 1.0, -1.0, 1.5, -1.5, np.nan,
                                                       1e-20, 0.9999999999]])
PROB = np.concatenate([np.linspace(0.001, 0.999, 41), [0.0, 1.0, 1.5, -0.1, np.nan, 1e-300,
                                                       1e-20, 0.25, 0.75, 1 - 1e-12]])

# name -> (our function, scipy's, inputs, points for check_grads)
UNARY = {
    "erf": (S.erf, sp.erf, WIDE, [-1.3, 0.2, 2.0]),
    "erfc": (S.erfc, sp.erfc, WIDE, [-1.3, 0.2, 2.0]),
    "erfinv": (S.erfinv, sp.erfinv, UNIT, [-0.7, 0.1, 0.9]),
    "expit": (S.expit, sp.expit, WIDE, [-3.0, 0.2, 2.0]),
    "logit": (S.logit, sp.logit, PROB, [0.1, 0.5, 0.8]),
    "gammaln": (S.gammaln, lambda x: np.where(x == -np.inf, np.inf, sp.gammaln(x)), WIDE,
                [-2.5, 0.3, 4.0]),
    "digamma": (S.digamma, sp.digamma, WIDE, [-2.5, 0.3, 4.0]),
    "polygamma1": (lambda x: S.polygamma(1, x), lambda x: sp.polygamma(1, x), WIDE,
                   [-2.5, 0.3, 4.0]),
    "polygamma3": (lambda x: S.polygamma(3, x), lambda x: sp.polygamma(3, x), WIDE, [0.3, 4.0]),
    "entr": (S.entr, sp.entr, np.concatenate([np.abs(WIDE), [-1.0, 0.0]]), [0.3, 2.0]),
    "ndtr": (S.ndtr, sp.ndtr, WIDE, [-3.0, 0.2, 2.0]),
    "ndtri": (S.ndtri, sp.ndtri, PROB, [0.1, 0.4, 0.85]),
    "log_ndtr": (S.log_ndtr, sp.log_ndtr, np.concatenate([WIDE, [-40.0, -21.0, -19.0, 7.9, 8.1,
                                                                  30.0]]),
                 [-30.0, -3.0, 0.5, 10.0]),
}


def _compare(got, want, rtol):
    got = np.asarray(got)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-300 if rtol < 1e-9 else 1e-6,
                               equal_nan=True)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_values_eager_match_scipy(name):
    f, ref, xs, _ = UNARY[name]
    with np.errstate(all="ignore"):
        want = ref(xs)
    # digamma's root near -0.5 / polygamma's near poles are relative-error hard: atol there
    _compare(f(xs), want, 1e-10)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_grads(name):
    f, _, _, pts = UNARY[name]
    check_grads(f, (np.array(pts),), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(UNARY))
def test_jitted_kernels_match_scipy_float64_and_float32(name):
    # one small kernel per function (a single kernel of all of them compiles very slowly)
    f, ref, xs, _ = UNARY[name]
    jf = jax.jit(f)
    with np.errstate(all="ignore"):
        _compare(jf(xs), ref(xs), 1e-10)
        x32 = xs.astype(np.float32)
        got = jf(x32)
        want = ref(x32.astype(np.float64))
    assert got.dtype == np.float32
    finite = np.isfinite(want) & (np.abs(want) < 1e30) & (np.abs(want) > 1e-30)
    np.testing.assert_allclose(np.asarray(got)[finite], want[finite], rtol=2e-5, atol=1e-5)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))


def test_binary_functions_values_and_grads():
    x = np.array([0.0, 0.0, 0.5, 2.0, -1.0, 3.0])
    y = np.array([0.0, -1.0, 0.3, 4.0, 2.0, np.inf])
    with np.errstate(all="ignore"):
        _compare(S.xlogy(x, y), sp.xlogy(x, y), 1e-13)
        _compare(S.xlog1py(x, y), sp.xlog1py(x, y), 1e-13)
    a = np.array([0.3, 2.0, 7.5, 40.0])
    b = np.array([1.5, 0.2, 3.0, 12.0])
    _compare(S.betaln(a, b), sp.betaln(a, b), 1e-11)
    _compare(S.betaln(2, 3), sp.betaln(2, 3), 1e-13)          # integers promote to float64
    for f in (S.xlogy, S.xlog1py, S.betaln):
        check_grads(f, (a, b), order=2)
    # JAX's rule at x = 0: d/dx xlogy = log(y), d/dy = x / y = 0
    gx, gy = jax.grad(S.xlogy, argnums=(0, 1))(0.0, 2.0)
    assert float(gx) == pytest.approx(np.log(2.0)) and float(gy) == 0.0


def test_logsumexp_and_doc_examples():
    # from JAX's docs for jax.scipy.special.logsumexp and expit/logit
    x = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(S.logsumexp(x), sp.logsumexp([1.0, 2.0, 3.0]), rtol=1e-14)
    np.testing.assert_allclose(S.logit(S.expit(x)), x, rtol=1e-12)
    np.testing.assert_allclose(S.logsumexp(x, b=jnp.array([1.0, 0.5, 2.0])),
                               sp.logsumexp([1.0, 2.0, 3.0], b=[1.0, 0.5, 2.0]), rtol=1e-14)


def test_polygamma_order_checks_and_zero_is_digamma():
    np.testing.assert_allclose(S.polygamma(0, 2.5), sp.digamma(2.5), rtol=1e-14)
    np.testing.assert_allclose(S.polygamma(np.array(2), 2.5), sp.polygamma(2, 2.5), rtol=1e-13)
    with pytest.raises(ValueError, match="non-negative"):
        lax.polygamma(-1, 2.0)
    with pytest.raises(ValueError, match="one non-negative integer"):
        S.polygamma(np.array([1, 2]), 2.0)


def test_vmap_and_jvp_of_primitives_batch_elementwise():
    xs = np.array([[0.3, 1.7], [2.2, 5.0]])
    for f in (lax.lgamma, lax.digamma, lambda v: lax.polygamma(2, v), lax.erfc):
        np.testing.assert_allclose(jax.vmap(f)(xs), f(xs), rtol=1e-14)
        np.testing.assert_allclose(jax.vmap(jax.grad(f))(xs[0]),
                                   [jax.grad(f)(v) for v in xs[0]], rtol=1e-14)
    for f in (lax.erf_inv, lax.ndtri):
        np.testing.assert_allclose(jax.vmap(f, in_axes=1)(xs / 6), f(xs / 6).T, rtol=1e-14)


def test_primitive_derivatives_are_the_next_family_member():
    x = 1.7
    assert float(jax.grad(lax.lgamma)(x)) == pytest.approx(sp.digamma(x), rel=1e-13)
    assert float(jax.grad(jax.grad(lax.lgamma))(x)) == pytest.approx(sp.polygamma(1, x), rel=1e-13)
    assert float(jax.grad(lax.erf_inv)(0.3)) == pytest.approx(
        np.sqrt(np.pi) / 2 * np.exp(sp.erfinv(0.3) ** 2), rel=1e-13)
    assert float(jax.grad(lax.ndtri)(0.3)) == pytest.approx(
        1 / (np.exp(-sp.ndtri(0.3) ** 2 / 2) / np.sqrt(2 * np.pi)), rel=1e-12)
    with pytest.raises(TypeError, match="lgamma does not accept dtype int64"):
        jax.make_jaxpr(lax.lgamma)(np.arange(3))


@given(st.floats(-30, 30, allow_nan=False).filter(lambda v: v != np.round(v) or v > 0))
def test_digamma_and_gammaln_hypothesis(v):
    np.testing.assert_allclose(S.digamma(v), sp.digamma(v), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(S.gammaln(v), sp.gammaln(v), rtol=1e-11, atol=1e-13)


@given(st.floats(0, 1, allow_nan=False))
def test_ndtri_inverts_ndtr_hypothesis(p):
    np.testing.assert_allclose(S.ndtri(p), sp.ndtri(p), rtol=1e-10, atol=1e-300)
