"""Complex numbers: values against NumPy, every complex derivative rule against finite
differences along real and imaginary directions (check_grads), JAX's derivative conventions
(grad of real-valued functions of complex inputs, holomorphic=True, vjp of complex outputs),
jit against eager, vmap against a loop, control flow, promotion, and the TypeErrors of the
functions defined for real numbers only."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as jax
import functrans.numpy as jnp
from functrans import core, lax
from functrans.test_util import check_grads, check_vmap

# ---------------------------------------------------------------------------------------------
# Inputs: complex values away from branch cuts and poles, so that finite differences of
# log, sqrt, arcsin, ... are meaningful (both parts in +-[0.2, 0.9], first quadrant-free of
# the real axis and of +-1, +-1j)

_part = st.floats(0.2, 0.9).flatmap(lambda v: st.sampled_from([v, -v]))


def _complex_arrays(shape=(3,)):
    return hnp.arrays(np.complex128, shape,
                      elements=st.builds(complex, _part, _part))


def _away_from_cuts(rng, shape=(3,)):
    """Values in the right half plane off the real axis: no branch cut of any function here."""
    re = rng.uniform(0.3, 0.8, shape)
    im = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 0.7, shape)
    return re + 1j * im


# name -> (functrans function, NumPy function)
UNARY = {
    "exp": (jnp.exp, np.exp), "exp2": (jnp.exp2, np.exp2), "log": (jnp.log, np.log),
    "log1p": (jnp.log1p, np.log1p), "expm1": (jnp.expm1, np.expm1), "tanh": (jnp.tanh, np.tanh),
    "sin": (jnp.sin, np.sin), "cos": (jnp.cos, np.cos), "tan": (jnp.tan, np.tan),
    "arcsin": (jnp.arcsin, np.arcsin), "arccos": (jnp.arccos, np.arccos),
    "arctan": (jnp.arctan, np.arctan), "sinh": (jnp.sinh, np.sinh), "cosh": (jnp.cosh, np.cosh),
    "arcsinh": (jnp.arcsinh, np.arcsinh), "arccosh": (jnp.arccosh, np.arccosh),
    "arctanh": (jnp.arctanh, np.arctanh), "sqrt": (jnp.sqrt, np.sqrt),
    "abs": (jnp.abs, np.abs), "sign": (jnp.sign, np.sign), "conj": (jnp.conj, np.conj),
    "real": (jnp.real, np.real), "imag": (jnp.imag, np.imag), "angle": (jnp.angle, np.angle),
    "square": (jnp.square, np.square), "reciprocal": (jnp.reciprocal, np.reciprocal),
    "negative": (jnp.negative, np.negative), "log10": (jnp.log10, np.log10),
    "cube": (lambda z: z ** 3, lambda z: z ** 3),
    "inverse_cube": (lambda z: z ** -3, lambda z: z ** -3.0),
    "logistic": (lax.logistic, lambda z: 1 / (1 + np.exp(-z))),
    "rsqrt": (lax.rsqrt, lambda z: 1 / np.sqrt(z)),
}

BINARY = {
    "add": (jnp.add, np.add), "subtract": (jnp.subtract, np.subtract),
    "multiply": (jnp.multiply, np.multiply), "divide": (jnp.divide, np.divide),
    "power": (jnp.power, np.power), "complex": (lambda x, y: lax.complex(x.real, y.imag),
                                               lambda x, y: x.real + 1j * y.imag),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@settings(max_examples=10, deadline=None)
@given(z=_complex_arrays())
def test_unary_values_match_numpy(name, z):
    f, ref = UNARY[name]
    got, want = f(z), ref(z)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", sorted(BINARY))
@settings(max_examples=10, deadline=None)
@given(z=_complex_arrays(), w=_complex_arrays())
def test_binary_values_match_numpy(name, z, w):
    f, ref = BINARY[name]
    got, want = f(z, w), ref(z, w)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# Every complex rule against finite differences: check_grads perturbs complex arguments along a
# real and then an imaginary direction, in forward and reverse mode, to second order

@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_derivatives_along_real_and_imaginary_directions(name):
    z = _away_from_cuts(np.random.default_rng(1))
    check_grads(UNARY[name][0], (z,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_derivatives_along_real_and_imaginary_directions(name):
    rng = np.random.default_rng(2)
    check_grads(BINARY[name][0], (_away_from_cuts(rng), _away_from_cuts(rng)), order=2)


REDUCTIONS_AND_PRODUCTS = {
    "sum": lambda z, w: jnp.sum(z * w), "mean": lambda z, w: jnp.mean(z, axis=0),
    "prod": lambda z, w: jnp.prod(z, axis=1), "cumsum": lambda z, w: jnp.cumsum(z, axis=1),
    "cumprod": lambda z, w: jnp.cumprod(w, axis=0), "var": lambda z, w: jnp.var(z),
    "matmul": lambda z, w: z @ w.T, "vdot": lambda z, w: jnp.vdot(z, w),
    "einsum": lambda z, w: jnp.einsum("ij,kj->ik", z, w),
    "index_at": lambda z, w: jnp.asarray(z).at[0, 1].set(w[1, 0]).at[1].add(w[0]) * z[:, ::-1],
    "convert": lambda z, w: jnp.asarray(z).astype(np.float64) + jnp.abs(w).astype(np.complex128) * z,
    "where": lambda z, w: jnp.where(jnp.real(z) > 0.5, z * w, jnp.conj(w)),
    "concat_pad": lambda z, w: jnp.pad(jnp.concatenate([z, w])[::2], 1) ** 2,
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS_AND_PRODUCTS))
def test_reductions_products_indexing_derivatives(name):
    rng = np.random.default_rng(3)
    z, w = jnp.asarray(_away_from_cuts(rng, (2, 3))), jnp.asarray(_away_from_cuts(rng, (2, 3)))
    f = REDUCTIONS_AND_PRODUCTS[name]
    want = f(z, w)
    np.testing.assert_allclose(jax.jit(f)(z, w), want, rtol=1e-13)
    check_grads(f, (z, w), order=2)


def test_reduction_and_product_values_match_numpy():
    rng = np.random.default_rng(4)
    z, w = _away_from_cuts(rng, (2, 3)), _away_from_cuts(rng, (2, 3))
    for got, want in [(jnp.sum(z), np.sum(z)), (jnp.mean(z, 0), np.mean(z, 0)),
                      (jnp.prod(z), np.prod(z)), (jnp.var(z), np.var(z)),
                      (jnp.std(z, 1), np.std(z, 1)), (z @ w.T, z @ w.T),
                      (jnp.vdot(z, w), np.vdot(z, w)), (jnp.dot(z, w.T), np.dot(z, w.T)),
                      (jnp.einsum("ij,ij->i", z, w), np.einsum("ij,ij->i", z, w)),
                      (jnp.cumprod(z, 1), np.cumprod(z, 1))]:
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-13)


# ---------------------------------------------------------------------------------------------
# JAX's conventions, against closed forms (and JAX's own outputs, recorded)

Z0 = 1.5 - 0.5j


@pytest.mark.parametrize("f, want", [
    (lambda z: jnp.abs(z) ** 2, 2 * np.conj(Z0)),             # JAX: (3+1j)
    (lambda z: jnp.real(z), 1 + 0j),
    (lambda z: jnp.imag(z), -1j),
    (lambda z: jnp.abs(z), np.conj(Z0) / abs(Z0)),
    (lambda z: jnp.real(jnp.exp(z)), np.exp(Z0)),             # grad Re f = f' for holomorphic f
    (lambda z: jnp.angle(z), -1j / Z0),                       # JAX: (0.2-0.6j)
    # f = Re(|z|^2 z) = x^3 + x y^2; JAX's grad is df/dx - i df/dy
    (lambda z: jnp.real(z * jnp.conj(z) * z),
     3 * Z0.real ** 2 + Z0.imag ** 2 - 2j * Z0.real * Z0.imag),
])
def test_grad_of_real_valued_function_of_complex_input_is_jaxs(f, want):
    np.testing.assert_allclose(jax.grad(f)(Z0), want, rtol=1e-13)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(Z0), want, rtol=1e-13)
    value, g = jax.value_and_grad(f)(Z0)
    np.testing.assert_allclose(value, f(Z0), rtol=1e-13)
    np.testing.assert_allclose(g, want, rtol=1e-13)


def test_vjp_of_complex_output_is_the_linear_transpose():
    out, vjp_fn = jax.vjp(lambda z: z * z, Z0)
    np.testing.assert_allclose(vjp_fn(1j)[0], 2 * Z0 * 1j)       # ct * f'(z), no conjugate
    out, vjp_fn = jax.vjp(lambda x: jnp.exp(1j * x), 0.3)        # real input: Re(ct f'(x))
    np.testing.assert_allclose(vjp_fn(1 + 2j)[0], np.real((1 + 2j) * 1j * np.exp(0.3j)))


@pytest.mark.parametrize("transform", [jax.jacfwd, jax.jacrev])
def test_holomorphic_jacobians_are_complex_derivatives(transform):
    z = _away_from_cuts(np.random.default_rng(5))
    jac = transform(lambda v: jnp.sin(v) * v, holomorphic=True)(z)
    np.testing.assert_allclose(jac, np.diag(np.cos(z) * z + np.sin(z)), rtol=1e-13)
    g = jax.grad(lambda v: jnp.sum(jnp.log(v) * v), holomorphic=True)(z)
    np.testing.assert_allclose(g, np.log(z) + 1, rtol=1e-13)
    with pytest.raises(TypeError, match="holomorphic=True requires outputs with complex dtype"):
        transform(lambda v: jnp.abs(v), holomorphic=True)(z)


def test_grad_requires_real_outputs_unless_holomorphic():
    with pytest.raises(TypeError, match=r"grad requires real-valued outputs \(output dtype that "
                                        r"is a sub-dtype of np.floating\), but got complex128\. "
                                        r"For holomorphic differentiation, pass holomorphic=True"):
        jax.grad(lambda z: z * z)(Z0)
    with pytest.raises(TypeError, match="jacrev requires real-valued outputs"):
        jax.jacrev(lambda z: z * z)(np.array([Z0]))
    with pytest.raises(TypeError, match="jacfwd requires real-valued inputs"):
        jax.jacfwd(lambda z: jnp.abs(z))(np.array([Z0]))
    with pytest.raises(TypeError, match="grad with holomorphic=True requires inputs with "
                                        "complex dtype"):
        jax.grad(jnp.sin, holomorphic=True)(0.5)


def test_real_input_with_complex_intermediates():
    # |exp(ix)|^2 = 1: derivative 0; Re(exp(ix) * x) = x cos x: derivative cos x - x sin x
    np.testing.assert_allclose(jax.grad(lambda x: jnp.abs(jnp.exp(1j * x)) ** 2)(0.3), 0.0,
                               atol=1e-15)
    f = lambda x: jnp.real(jnp.exp(1j * x) * x)  # noqa: E731
    for d in (jax.grad(f), jax.jit(jax.grad(f)), jax.jacfwd(f), jax.jacrev(f)):
        np.testing.assert_allclose(d(0.3), np.cos(0.3) - 0.3 * np.sin(0.3), rtol=1e-13)
    check_grads(lambda x: jnp.exp(1j * x) * x, (np.array([0.3, -1.2]),), order=2)


def test_integer_inputs_keep_float0_tangents():
    out, t = jax.jvp(lambda z, n: z * n, (np.array([Z0]), np.array([2])),
                     (np.array([1j]), np.zeros(1, core.float0)))
    np.testing.assert_allclose(t, [2j])
    _, vjp_fn = jax.vjp(lambda z, n: z * n, np.array([Z0]), np.array([2]))
    assert vjp_fn(np.array([1 + 0j]))[1].dtype == core.float0


# ---------------------------------------------------------------------------------------------
# jit, vmap, control flow

def test_jit_matches_eager_for_every_unary_function():
    z = _away_from_cuts(np.random.default_rng(6), (2, 2))
    funcs = [f for f, _ in UNARY.values()]
    funcs.append(lambda v: v / (v - v))      # complex division by zero: inf/nan, no exception
    both = jax.jit(lambda v: [f(v) for f in funcs])(z)   # one compile for all of them
    for f, got in zip(funcs, both):
        want = f(z)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-13, equal_nan=True)


def test_jit_complex64_keeps_its_precision():
    z = _away_from_cuts(np.random.default_rng(7)).astype(np.complex64)
    f = lambda v: jnp.sum(jnp.exp(v) * jnp.conj(v)) + jnp.abs(v)[0]  # noqa: E731
    got = jax.jit(f)(z)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, np.sum(np.exp(z) * np.conj(z)) + abs(z[0]), rtol=1e-5)


def test_vmap_matches_a_loop():
    rng = np.random.default_rng(8)
    z, w = _away_from_cuts(rng, (3, 2)), _away_from_cuts(rng, (3, 2))
    check_vmap(lambda a, b: jnp.sin(a) * jnp.conj(b) + jnp.abs(a) + jnp.vdot(a, b), (z, w))
    check_vmap(lambda a: lax.complex(jnp.real(a), jnp.imag(a) * 2), (z,), 1)
    check_vmap(jax.grad(lambda a: jnp.sum(jnp.abs(jnp.exp(a)))), (z,))


def test_control_flow_carries_complex():
    z = _away_from_cuts(np.random.default_rng(9))

    def scanned(v):
        carry, ys = lax.scan(lambda c, x: (c * x, jnp.conj(c)), 1 + 0j, v)
        return jnp.abs(carry) + jnp.sum(jnp.real(ys))

    def looped(v):
        c, total = 1 + 0j, 0.0
        for x in v:
            total = total + jnp.real(jnp.conj(c))
            c = c * x
        return jnp.abs(c) + total

    np.testing.assert_allclose(scanned(z), looped(z), rtol=1e-13)
    np.testing.assert_allclose(jax.grad(scanned)(z), jax.grad(looped)(z), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.grad(scanned))(z), jax.grad(looped)(z), rtol=1e-12)
    got = jax.jit(lambda v: lax.cond(jnp.real(v[0]) > 0, lambda u: u * 1j, jnp.conj, v))(z)
    np.testing.assert_allclose(got, z * 1j)
    n, zz = lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, s[1] * s[1]), (0, z))
    np.testing.assert_allclose(zz, z ** 8, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Creation, promotion, methods, predicates

def test_creation_promotion_and_methods():
    assert jnp.array(1 + 2j).dtype == np.complex128
    assert jnp.zeros(2, dtype=jnp.complex64).dtype == np.complex64
    c64 = jnp.ones(2, jnp.complex64)
    # NumPy 2 (NEP 50): Python scalars are weak, arrays are not
    for got, want in [(c64 + 1.0, np.complex64), (c64 * 2j, np.complex64),
                      (c64 + np.ones(2), np.complex128), (jnp.ones(2, jnp.float32) * 1j, np.complex64),
                      (jnp.ones(2, jnp.float32) * np.complex128(1j), np.complex128),
                      (jnp.ones(2, jnp.float32) + c64, np.complex64),
                      (jnp.arange(2) + 1j, np.complex128)]:
        assert got.dtype == want, (got.dtype, want)
    z = jnp.array([1 + 2j, -3j])
    np.testing.assert_array_equal(z.real, [1, 0])
    np.testing.assert_array_equal(z.imag, [2, -3])
    np.testing.assert_array_equal(z.conj(), [1 - 2j, 3j])
    np.testing.assert_array_equal(z[1], -3j)
    np.testing.assert_array_equal(z.at[0].multiply(1j), [-2 + 1j, -3j])


def test_complex_predicates_and_real_if_close():
    z = np.array([1 + 0j, 2 - 1j])
    np.testing.assert_array_equal(jnp.iscomplex(z), np.iscomplex(z))
    np.testing.assert_array_equal(jnp.iscomplex(np.ones(2)), [False, False])
    assert jnp.iscomplexobj(z) and not jnp.iscomplexobj(np.ones(2))
    assert jnp.isrealobj(np.ones(2)) and not jnp.isrealobj(z)
    close = jnp.real_if_close(np.array([1 + 1e-16j, 2.0 + 0j]))
    assert close.dtype == np.float64
    np.testing.assert_array_equal(close, [1.0, 2.0])
    assert jnp.real_if_close(z).dtype == np.complex128
    with pytest.raises(core.ConcretizationTypeError, match="real_if_close"):
        jax.jit(jnp.real_if_close)(z)
    np.testing.assert_allclose(jnp.angle(np.array([-1.0, 1j]), deg=True), [180.0, 90.0])
    np.testing.assert_array_equal(jnp.isfinite(np.array([1 + 1j, np.inf + 0j, 1j * np.nan])),
                                  [True, False, False])


def test_x64_off_makes_complex128_complex64():
    jax.config.update("jax_enable_x64", False)
    try:
        z = jnp.array([1 + 2j])
        assert z.dtype == np.complex64
        assert jnp.asarray(np.array([1j])).dtype == np.complex64
        assert (jnp.ones(1, np.float32) * 1j).dtype == np.complex64
        assert jax.grad(lambda v: jnp.abs(v) ** 2)(np.complex128(1 + 1j)).dtype == np.complex64
    finally:
        jax.config.update("jax_enable_x64", True)


# ---------------------------------------------------------------------------------------------
# Functions defined for real numbers only: TypeError naming them

@pytest.mark.parametrize("name, f", [
    ("max", lambda z: lax.max(z, z)), ("lt", lambda z: lax.lt(z, z)), ("floor", lax.floor),
    ("atan2", lambda z: lax.atan2(z, z)), ("erf", lax.erf), ("rem", lambda z: lax.rem(z, z)),
    ("reduce_max", jnp.max), ("cummax", lambda z: lax.cummax(z)),
    ("argmax", lambda z: jnp.argmax(z)), ("sort", jnp.sort), ("round", lax.round),
])
def test_real_only_functions_refuse_complex_naming_themselves(name, f):
    z = np.array([1 + 2j, 3 - 1j])
    for g in (f, jax.jit(f)):
        with pytest.raises(TypeError, match=f"complex operands are not supported by '{name}'"):
            g(z)
