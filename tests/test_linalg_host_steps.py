"""The CPU jit's host-step path for linear algebra: one LAPACK svd for grad of the singular
values (plan.share_svd_values), and LU's permutation from its pivots."""
import numpy as np
import pytest
import scipy.linalg

import functrans as jax
import functrans.numpy as jnp
from functrans.backends import plan
from functrans.lax import linalg as lax_linalg


def _svd_steps(f, *args):
    kp = plan.make_plan(jax.make_jaxpr(f)(*args), rewrites=True)
    return [s.eqn for s in kp.steps if isinstance(s, plan.Op) and s.eqn.primitive.name == "svd"]


def test_grad_of_singular_values_makes_one_svd_call():
    a = np.random.default_rng(0).normal(size=(6, 4))
    loss = lambda x: jnp.sum(jnp.linalg.svd(x, compute_uv=False) ** 2)  # noqa: E731
    steps = _svd_steps(jax.grad(loss), a)
    assert len(steps) == 1 and steps[0].params["compute_uv"]
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(a), (u * 2 * s) @ vt, rtol=1e-10)
    np.testing.assert_allclose(jax.jit(jax.grad(loss))(a), jax.grad(loss)(a), rtol=1e-12)


def test_values_after_the_full_svd_and_of_other_operands():
    a = np.random.default_rng(1).normal(size=(5, 5))

    def f(x):
        u, s, vt = jnp.linalg.svd(x)
        return (jnp.sum(u[0] * vt[0]) + jnp.sum(jnp.linalg.svd(x, compute_uv=False) * s)
                + jnp.sum(jnp.linalg.svd(2 * x, compute_uv=False)))
    assert len(_svd_steps(f, a)) == 2           # the values of 2 * x still need their own call
    np.testing.assert_allclose(jax.jit(f)(a), f(a), rtol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(a), jax.grad(f)(a), rtol=1e-9)


def test_lu_permutation_from_pivots_matches_the_factors():
    rng = np.random.default_rng(2)
    for shape in [(1, 1), (6, 6), (7, 4), (4, 7), (2, 3, 5, 5)]:
        a = rng.normal(size=shape)
        lu, piv, perm = lax_linalg._lu_impl(a)
        assert perm.shape == shape[:-1] and perm.dtype == np.int32
        m, n = shape[-2:]
        k = min(m, n)
        for idx in np.ndindex(shape[:-2]):
            f = lu[idx]
            lower = np.tril(f, -1)[:, :k] + np.eye(m, k)
            np.testing.assert_allclose(a[idx][perm[idx]], lower @ np.triu(f)[:k], atol=1e-12)
            p_mat = scipy.linalg.lu(a[idx])[0]             # a = P L U: a[perm] = L U
            np.testing.assert_array_equal(perm[idx], np.argmax(p_mat, axis=0))
    swaps = np.array([[2, 2, 2], [1, 2, 2], [0, 1, 2]], np.int32)   # swaps in order, as LAPACK
    np.testing.assert_array_equal(np.asarray(lax_linalg.lu_pivots_to_permutation(swaps, 4)),
                                  [[2, 0, 1, 3], [1, 2, 0, 3], [0, 1, 2, 3]])
    with pytest.raises(ValueError, match=r"pivots must lie in \[0, 3\), got values from 0 to 5"):
        lax_linalg.lu_pivots_to_permutation(np.array([5, 0, 1], np.int32), 3)
