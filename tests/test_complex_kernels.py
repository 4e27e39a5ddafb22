"""The fast complex paths: abs of complex64 in CPU kernels (vmath.cabs_c64) and the complex abs
derivative dividing by the real |z| (lax._abs_jvp)."""
import numpy as np

import functrans as jax
import functrans.numpy as jnp
from functrans.test_util import check_grads

EDGES = np.array([complex(np.inf, np.nan), complex(np.nan, -np.inf), complex(-np.inf, 1.0),
                  complex(np.nan, 1.0), 3 + 4j, 0j, -0.0 - 0.0j, 1e-30 + 1e-30j,
                  3e38 + 3e38j, 1e-45 + 0j, complex(0.0, -2.5e38)], np.complex64)


def test_jit_abs_complex64_matches_numpy_at_the_edges():
    got = np.asarray(jax.jit(jnp.abs)(EDGES))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.abs(EDGES))


def test_jit_abs_complex64_is_correctly_rounded_on_random_values():
    rng = np.random.default_rng(0)
    z = (rng.normal(size=4096) * 10.0 ** rng.integers(-30, 30, 4096)
         + 1j * rng.normal(size=4096) * 10.0 ** rng.integers(-30, 30, 4096)).astype(np.complex64)
    exact = np.abs(z.astype(np.complex128))
    got = np.asarray(jax.jit(jnp.abs)(z))
    np.testing.assert_allclose(got, exact, rtol=1e-7)    # float32 rounding of the exact value


def test_abs_grad_of_complex_divides_by_the_real_modulus():
    z = np.array([1.5 - 0.5j, 0j, 3 + 4j], np.complex64)
    want = np.where(z == 0, 0, np.conj(z) / np.where(z == 0, 1, np.abs(z)))
    for f in (jax.grad(lambda v: jnp.sum(jnp.abs(v))),
              jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(v))))):
        got = np.asarray(f(z))
        assert got.dtype == np.complex64
        np.testing.assert_allclose(got, want, rtol=1e-6)
    sq = jax.jit(jax.grad(lambda v: jnp.sum(jnp.abs(v) ** 2)))(z)
    np.testing.assert_allclose(sq, 2 * np.conj(z), rtol=1e-6)


def test_abs_of_complex_derivatives_by_finite_differences():
    z = np.array([0.7 - 1.2j, -2.0 + 0.3j], np.complex128)
    check_grads(lambda v: jnp.abs(v), (z,), order=2, modes=("fwd", "rev"))
    check_grads(lambda v: jnp.abs(v) ** 2 * jnp.real(v), (z,), order=2, modes=("fwd", "rev"))
