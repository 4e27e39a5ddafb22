"""functrans.numpy.linalg, functrans.scipy.linalg and the lax.linalg primitives: values against
NumPy/SciPy on hypothesis-drawn well-conditioned matrices (Q diag(s) Q^T with s spread apart),
derivatives (check_grads, order 2, fwd and rev, float64) for every function, vmap against a
Python loop, jit against eager (one jitted program holding every function: numba compiles are
slow), leading batch axes, and the errors."""
import numpy as np
import pytest
import scipy.linalg as sl
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as jnp
import functrans.scipy.linalg as fsl
from functrans.lax import linalg as L
from functrans.test_util import check_grads, check_vmap

# ---------------------------------------------------------------------------------------------
# Well-conditioned matrices

def _orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


def _spectrum(rng, k):
    """k values in [1, 3], at least 0.3 apart (distinct eigen/singular values for the jvps)."""
    return 1.0 + np.sort(rng.permutation(np.arange(7))[:k])[::-1] * 0.33


def spd(rng, n, batch=()):
    """Symmetric positive definite Q diag(s) Q^T, eigenvalues distinct in [1, 3]."""
    return np.stack([(lambda q: q @ np.diag(_spectrum(rng, n)) @ q.T)(_orthogonal(rng, n))
                     for _ in range(int(np.prod(batch)))]).reshape(batch + (n, n))


def general(rng, m, n, batch=()):
    """U diag(s) V^T of shape (m, n), singular values distinct in [1, 3]."""
    k = min(m, n)
    out = [_orthogonal(rng, m)[:, :k] @ np.diag(_spectrum(rng, k)) @ _orthogonal(rng, n)[:k]
           for _ in range(int(np.prod(batch)))]
    return np.stack(out).reshape(batch + (m, n))


sizes = st.integers(1, 4)
seeds = st.integers(0, 2 ** 31)
SMALL = settings(max_examples=6, deadline=None)

# ---------------------------------------------------------------------------------------------
# Values against NumPy / SciPy


@SMALL
@given(seeds, sizes, st.sampled_from([(), (2,)]))
def test_square_functions_match_numpy(seed, n, batch):
    rng = np.random.default_rng(seed)
    a, p = general(rng, n, n, batch), spd(rng, n, batch)
    b = rng.normal(size=batch + (n, 2))
    np.testing.assert_allclose(jnp.linalg.inv(a), np.linalg.inv(a), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.solve(a, b), np.linalg.solve(a, b), rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.det(a), np.linalg.det(a), rtol=1e-10)
    for got, want in zip(jnp.linalg.slogdet(a), np.linalg.slogdet(a)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.cholesky(p), np.linalg.cholesky(p), rtol=1e-10)
    np.testing.assert_allclose(jnp.linalg.cholesky(p, upper=True),
                               np.linalg.cholesky(p, upper=True), rtol=1e-10)
    np.testing.assert_allclose(jnp.linalg.eigvalsh(p), np.linalg.eigvalsh(p), rtol=1e-10)
    w, v = jnp.linalg.eigh(p)
    np.testing.assert_allclose(v @ (w[..., None] * np.swapaxes(v, -1, -2)), p, atol=1e-10)
    np.testing.assert_allclose(np.sort_complex(np.asarray(jnp.linalg.eigvals(a))),
                               np.sort_complex(np.linalg.eigvals(a).astype(complex)), atol=1e-10)
    np.testing.assert_allclose(jnp.linalg.matrix_power(a, 3), np.linalg.matrix_power(a, 3),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jnp.linalg.matrix_power(a, -2), np.linalg.matrix_power(a, -2),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fsl.expm(a), sl.expm(a), rtol=1e-10, atol=1e-12)
    for ord_ in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf):
        np.testing.assert_allclose(jnp.linalg.norm(a, ord_, axis=(-2, -1)),
                                   np.linalg.norm(a, ord_, axis=(-2, -1)), rtol=1e-10)
        np.testing.assert_allclose(jnp.linalg.cond(a, ord_), np.linalg.cond(a, ord_), rtol=1e-8)


@SMALL
@given(seeds, sizes, sizes)
def test_rectangular_functions_match_numpy(seed, m, n):
    rng = np.random.default_rng(seed)
    a = general(rng, m, n)
    b = rng.normal(size=(m, 2))
    for full in (True, False):
        u, s, vt = jnp.linalg.svd(a, full_matrices=full)
        nu, ns, nvt = np.linalg.svd(a, full_matrices=full)
        assert u.shape == nu.shape and vt.shape == nvt.shape
        np.testing.assert_allclose(s, ns, rtol=1e-10)
        k = min(m, n)
        np.testing.assert_allclose(u[:, :k] * s @ vt[:k], a, atol=1e-10)
    np.testing.assert_allclose(jnp.linalg.svdvals(a), np.linalg.svd(a, compute_uv=False))
    for mode in ("reduced", "complete"):
        q, r = jnp.linalg.qr(a, mode=mode)
        nq, nr = np.linalg.qr(a, mode=mode)
        np.testing.assert_allclose(np.abs(r), np.abs(nr), atol=1e-10)
        np.testing.assert_allclose(q @ r, a, atol=1e-10)
    np.testing.assert_allclose(np.abs(jnp.linalg.qr(a, mode="r")),
                               np.abs(np.linalg.qr(a, mode="r")), atol=1e-10)
    np.testing.assert_allclose(jnp.linalg.pinv(a), np.linalg.pinv(a), atol=1e-10)
    for got, want in zip(jnp.linalg.lstsq(a, b, numpy_resid=True), np.linalg.lstsq(a, b)):
        np.testing.assert_allclose(got, want, atol=1e-10)
    assert int(jnp.linalg.matrix_rank(a)) == np.linalg.matrix_rank(a)
    for got, want in zip(fsl.lu(a), sl.lu(a)):
        np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_array_equal(fsl.lu(a, p_indices=True)[0], sl.lu(a, p_indices=True)[0])


@SMALL
@given(seeds, sizes)
def test_scipy_solvers_match_scipy(seed, n):
    rng = np.random.default_rng(seed)
    a, p = general(rng, n, n), spd(rng, n)
    b = rng.normal(size=(n, 3))
    for trans in (0, 1, "T"):
        for lower in (True, False):
            for unit in (True, False):
                np.testing.assert_allclose(
                    fsl.solve_triangular(p, b, trans=trans, lower=lower, unit_diagonal=unit),
                    sl.solve_triangular(p, b, trans=trans, lower=lower, unit_diagonal=unit),
                    rtol=1e-10, atol=1e-12)
    for trans in (0, 1):
        np.testing.assert_allclose(fsl.lu_solve(fsl.lu_factor(a), b[:, 0], trans=trans),
                                   sl.lu_solve(sl.lu_factor(a), b[:, 0], trans=trans), rtol=1e-9,
                                   atol=1e-12)
    for got, want in zip(fsl.lu_factor(a), sl.lu_factor(a)):
        np.testing.assert_allclose(got, want, atol=1e-12)
    for lower in (True, False):
        np.testing.assert_allclose(fsl.cho_solve(fsl.cho_factor(p, lower=lower), b),
                                   sl.cho_solve(sl.cho_factor(p, lower=lower), b), rtol=1e-10)
    np.testing.assert_allclose(fsl.cholesky(p), sl.cholesky(p), rtol=1e-10)
    np.testing.assert_allclose(fsl.solve(p, b, assume_a="pos"), sl.solve(p, b), rtol=1e-10)
    np.testing.assert_allclose(fsl.solve(a, b, transposed=True), sl.solve(a, b, transposed=True),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fsl.inv(a), sl.inv(a), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fsl.det(a), sl.det(a), rtol=1e-10)
    np.testing.assert_allclose(fsl.eigh(p, eigvals_only=True), sl.eigh(p, eigvals_only=True))
    np.testing.assert_allclose(fsl.svd(a, compute_uv=False), sl.svd(a, compute_uv=False))
    np.testing.assert_allclose(np.abs(fsl.qr(a, mode="r")[0]), np.abs(sl.qr(a, mode="r")[0]),
                               atol=1e-10)


def test_expm_scaling_branches_and_batches():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 4, 4)) * np.array([0.01, 1.0, 40.0])[:, None, None]
    np.testing.assert_allclose(fsl.expm(a), sl.expm(a), rtol=1e-9)


def test_block_diag_multi_dot_tensor_forms():
    np.testing.assert_array_equal(fsl.block_diag(1, [2, 3], [[4, 5], [6, 7]]),
                                  sl.block_diag(1, [2, 3], [[4, 5], [6, 7]]))
    rng = np.random.default_rng(1)
    ms = [rng.normal(size=s) for s in [(3,), (3, 5), (5, 2), (2, 6), (6,)]]
    np.testing.assert_allclose(jnp.linalg.multi_dot(ms), np.linalg.multi_dot(ms))
    t, b = rng.normal(size=(6, 2, 3)), rng.normal(size=6)
    np.testing.assert_allclose(jnp.linalg.tensorsolve(t, b), np.linalg.tensorsolve(t, b))
    t4 = rng.normal(size=(4, 6, 8, 3))
    np.testing.assert_allclose(jnp.linalg.tensorinv(t4), np.linalg.tensorinv(t4))
    assert jnp.linalg.LinAlgError is np.linalg.LinAlgError


def test_vector_solve_broadcast_and_lu_permutation():
    rng = np.random.default_rng(2)
    a, b = general(rng, 3, 3, (2, 2)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(jnp.linalg.solve(a, b), np.linalg.solve(a, b), rtol=1e-10)
    np.testing.assert_allclose(jnp.linalg.solve(a, b[:, 0]), np.linalg.solve(a, b[:, 0]))
    lu, piv, perm = L.lu(a)
    low = np.tril(lu, -1) + np.eye(3)
    np.testing.assert_allclose(np.take_along_axis(a, np.asarray(perm)[..., None], -2),
                               low @ np.triu(lu), atol=1e-12)
    np.testing.assert_array_equal(L.lu_pivots_to_permutation(piv, 3), perm)


# ---------------------------------------------------------------------------------------------
# Derivatives: order 2, forward and reverse, float64. Eigenvector and singular-vector outputs
# enter gauge-invariant losses (projectors, |v_i|^2 weighted), as JAX's tests do.

def _sym(x):
    return (x + x.T) / 2


def _eigh_loss(x):
    w, v = jnp.linalg.eigh(x)
    return w, (v * v) @ jnp.arange(1.0, x.shape[0] + 1)     # invariant to each column's sign


def _svd_loss(x, full=False):
    u, s, vt = jnp.linalg.svd(x, full_matrices=full)
    k = s.shape[0]
    return s, u[:, :k] @ u[:, :k].T, vt[:k].T @ vt[:k], (u[:, :k] * s) @ vt[:k]


def _qr_loss(x):
    q, r = jnp.linalg.qr(x)
    return q, r


rng0 = np.random.default_rng(7)
A3, P3, B32 = general(rng0, 3, 3), spd(rng0, 3), rng0.normal(size=(3, 2))
A42, A24, B42 = general(rng0, 4, 2), general(rng0, 2, 4), rng0.normal(size=(4, 2))

GRADS = {
    "inv": (jnp.linalg.inv, (A3,)),
    "solve": (jnp.linalg.solve, (A3, B32)),
    "solve_vector": (jnp.linalg.solve, (A3, B32[:, 0])),
    "det": (jnp.linalg.det, (A3,)),
    "slogdet": (lambda x: jnp.linalg.slogdet(x)[1], (A3,)),
    "cholesky": (jnp.linalg.cholesky, (P3,)),
    "eigh": (_eigh_loss, (P3,)),
    "eigvalsh": (jnp.linalg.eigvalsh, (A3,)),
    "svd_square": (_svd_loss, (A3,)),
    "svd_square_full": (lambda x: _svd_loss(x, True), (A3,)),
    "svd_tall": (_svd_loss, (A42,)),
    "svd_wide": (_svd_loss, (A24,)),
    "svdvals": (jnp.linalg.svdvals, (A42,)),
    "qr_square": (_qr_loss, (A3,)),
    "qr_tall": (_qr_loss, (A42,)),
    "pinv": (jnp.linalg.pinv, (A42,)),
    "lstsq": (lambda a, b: jnp.linalg.lstsq(a, b)[0], (A42, B42)),
    "matrix_power": (lambda x: jnp.linalg.matrix_power(x, -3), (A3,)),
    "norm_2": (lambda x: jnp.linalg.norm(x, 2), (A3,)),
    "norm_nuc": (lambda x: jnp.linalg.norm(x, "nuc"), (A42,)),
    "cond": (jnp.linalg.cond, (A3,)),
    "multi_dot": (lambda x, y: jnp.linalg.multi_dot([x, y, x]), (A3, P3)),
    "tensorinv": (lambda x: jnp.linalg.tensorinv(x.reshape(3, 3), ind=1), (A3,)),
    "tensorsolve": (lambda x, b: jnp.linalg.tensorsolve(x, b), (A3, B32[:, 0])),
    "solve_triangular": (lambda a, b: fsl.solve_triangular(a, b, lower=True), (P3, B32)),
    "solve_triangular_T_unit": (lambda a, b: fsl.solve_triangular(a, b, trans=1,
                                                                 unit_diagonal=True), (P3, B32)),
    "cho_solve": (lambda a, b: fsl.cho_solve(fsl.cho_factor(a), b), (P3, B32)),
    "lu": (lambda x: fsl.lu(x)[1:], (A3,)),
    "lu_tall": (lambda x: L.lu(x)[0], (A42,)),
    "lu_wide": (lambda x: L.lu(x)[0], (A42.T,)),
    "lu_solve": (lambda a, b: fsl.lu_solve(fsl.lu_factor(a), b, trans=1), (A3, B32)),
    "expm": (fsl.expm, (A3 * 0.7,)),
    "expm_squared": (fsl.expm, (A3 * 4.0,)),
    "scipy_eigh": (lambda x: fsl.eigh(_sym(x), eigvals_only=True), (A3,)),
    "block_diag": (lambda x, y: fsl.block_diag(x, y), (A3, B32)),
}


@pytest.mark.parametrize("name", sorted(GRADS))
def test_derivatives(name):
    f, args = GRADS[name]
    check_grads(f, args, order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_eigh_degenerate_eigenvalues_give_finite_derivatives():
    # repeated eigenvalue 2: F is 0 for that pair (as documented), eigenvalue derivatives exact
    q = _orthogonal(np.random.default_rng(3), 3)
    a = q @ np.diag([1.0, 2.0, 2.0]) @ q.T
    g = ft.grad(lambda x: jnp.sum(jnp.linalg.eigh(x)[1] ** 2 @ jnp.arange(3.0)))(a)
    assert np.all(np.isfinite(g))
    check_grads(lambda x: jnp.linalg.eigvalsh(x)[0], (a,), order=2)     # the simple one


def test_svd_zero_singular_values_give_finite_derivatives():
    a = np.diag([3.0, 1.0, 0.0])
    g = ft.grad(lambda x: jnp.sum(jnp.linalg.svd(x)[0]))(a)
    assert np.all(np.isfinite(g))


# ---------------------------------------------------------------------------------------------
# vmap against a loop, batch axes, jit against eager

VMAPS = {
    "inv": (jnp.linalg.inv, 0),
    "solve": (jnp.linalg.solve, (0, None)),
    "solve_b": (jnp.linalg.solve, (None, 0)),
    "det": (jnp.linalg.det, 0),
    "slogdet": (jnp.linalg.slogdet, 0),
    "cholesky": (jnp.linalg.cholesky, 0),
    "eigh": (jnp.linalg.eigh, 0),
    "svd": (lambda x: jnp.linalg.svd(x, full_matrices=False), 0),
    "qr": (jnp.linalg.qr, 0),
    "eig": (jnp.linalg.eigvals, 0),
    "triangular": (lambda a, b: fsl.solve_triangular(a, b, lower=True), (0, 0)),
    "triangular_a": (lambda a, b: fsl.solve_triangular(a, b), (0, None)),
    "lu": (lambda x: L.lu(x), 0),
    "expm": (fsl.expm, 0),
}


@pytest.mark.parametrize("name", sorted(VMAPS))
def test_vmap_matches_loop(name):
    f, axes = VMAPS[name]
    rng = np.random.default_rng(4)
    a, b = spd(rng, 3, (2,)), rng.normal(size=(2, 3, 2))
    nargs = 1 if isinstance(axes, int) else len(axes)
    args = (a, b)[:nargs]
    if not isinstance(axes, int):
        args = tuple(x if ax is not None else x[0] for x, ax in zip(args, axes))
    check_vmap(f, args, in_axes=axes, atol=1e-10)


def test_vmap_of_grad_of_solve():
    rng = np.random.default_rng(5)
    a, b = general(rng, 3, 3, (2,)), rng.normal(size=(2, 3))
    check_vmap(ft.grad(lambda x, y: jnp.sum(jnp.linalg.solve(x, y) ** 2)), (a, b), atol=1e-10)


def _everything(a, p, b):
    w, v = jnp.linalg.eigh(p)
    u, s, vt = jnp.linalg.svd(a)
    q, r = jnp.linalg.qr(a)
    sign, logdet = jnp.linalg.slogdet(a)
    grad_inv = ft.grad(lambda x: jnp.sum(jnp.linalg.inv(x) ** 2))(a)
    return (jnp.linalg.inv(a), jnp.linalg.solve(a, b), jnp.linalg.det(a), sign, logdet,
            jnp.linalg.cholesky(p), w, v, u, s, vt, q, r, jnp.linalg.pinv(a), fsl.expm(a),
            fsl.lu_solve(fsl.lu_factor(a), b), jnp.linalg.eigvals(a), grad_inv,
            fsl.solve_triangular(p, b, lower=True))


def test_jit_matches_eager():
    rng = np.random.default_rng(6)
    a, p, b = general(rng, 3, 3, (2,)), spd(rng, 3, (2,)), rng.normal(size=(2, 3, 2))
    for got, want in zip(ft.jit(_everything)(a, p, b), _everything(a, p, b)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors and the conventions for bad matrices

def test_singular_matrix_eagerly_raises_linalgerror_and_is_nan_under_jit():
    a = np.array([[1.0, 2.0], [2.0, 4.0]])
    for f in (jnp.linalg.inv, lambda x: jnp.linalg.solve(x, np.ones(2)), fsl.inv):
        with pytest.raises(np.linalg.LinAlgError, match="Singular"):
            f(a)
        assert not np.all(np.isfinite(ft.jit(f)(a)))
    assert float(jnp.linalg.det(a)) == 0.0
    assert tuple(map(float, jnp.linalg.slogdet(a))) == (0.0, -np.inf)


def test_cholesky_of_non_positive_definite_is_nan():
    a = np.array([[[1.0, 2.0], [2.0, 1.0]], [[2.0, 0.0], [0.0, 3.0]]])
    out = np.asarray(jnp.linalg.cholesky(a))
    assert np.all(np.isnan(out[0])) and np.allclose(out[1], np.linalg.cholesky(a[1]))


@pytest.mark.parametrize("f", [jnp.linalg.inv, jnp.linalg.det, jnp.linalg.cholesky,
                               jnp.linalg.eigh, jnp.linalg.eigvals, jnp.linalg.slogdet, fsl.expm])
def test_non_square_raises_linalgerror(f):
    with pytest.raises(np.linalg.LinAlgError, match="square"):
        f(np.ones((2, 3)))


def test_vector_input_raises_linalgerror():
    with pytest.raises(np.linalg.LinAlgError, match="two-dimensional"):
        jnp.linalg.svd(np.ones(3))


def test_unsupported_derivatives_name_what_is_missing():
    with pytest.raises(NotImplementedError, match="enable_eigvec_derivs"):
        ft.jvp(lambda x: jnp.linalg.eig(x)[1], (A3,), (A3,))
    with pytest.raises(NotImplementedError, match="full_matrices"):
        ft.jvp(lambda x: jnp.linalg.svd(x)[0], (A42,), (A42,))
    with pytest.raises(NotImplementedError, match="qr"):
        ft.jvp(lambda x: jnp.linalg.qr(x), (A24,), (A24,))


def test_non_numeric_input_raises_typeerror_naming_function():
    with pytest.raises(TypeError, match="inv"):
        jnp.linalg.inv(np.array([["a", "b"], ["c", "d"]]))


def test_triangular_solve_is_linear_in_b_only():
    check_grads(lambda b: L.triangular_solve(P3, b, left_side=True, lower=True), (B32,), 1)
    with pytest.raises(TypeError, match="linear in b only"):
        ft.linear_transpose(lambda a: L.triangular_solve(a, B32, left_side=True), P3)(B32)


def test_float32_stays_float32():
    a = spd(np.random.default_rng(8), 3).astype(np.float32)
    for out in (jnp.linalg.inv(a), jnp.linalg.cholesky(a), jnp.linalg.eigh(a)[0],
                jnp.linalg.svd(a)[1], jnp.linalg.det(a), fsl.expm(a)):
        assert out.dtype == np.float32
    assert jnp.linalg.eigvals(a).dtype == np.complex64


# ---------------------------------------------------------------------------------------------
# Complex matrices (JAX's conventions): values against NumPy/SciPy, derivatives along real and
# imaginary directions (check_grads perturbs both), vmap, jit

def _unitary(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))
    return q * (np.diag(r) / np.abs(np.diag(r)))


def hpd(rng, n, batch=()):
    """Hermitian positive definite Q diag(s) Q^H, eigenvalues distinct in [1, 3]."""
    return np.stack([(lambda q: q @ np.diag(_spectrum(rng, n)) @ q.conj().T)(_unitary(rng, n))
                     for _ in range(int(np.prod(batch)))]).reshape(batch + (n, n))


def cgeneral(rng, m, n, batch=()):
    """Complex U diag(s) V^H of shape (m, n), singular values distinct in [1, 3]."""
    k = min(m, n)
    out = [_unitary(rng, m)[:, :k] @ np.diag(_spectrum(rng, k)) @ _unitary(rng, n)[:k]
           for _ in range(int(np.prod(batch)))]
    return np.stack(out).reshape(batch + (m, n))


def _close(got, want, tol=1e-10):
    np.testing.assert_allclose(np.asarray(got), want, rtol=tol, atol=tol)


@SMALL
@given(seeds, sizes, st.sampled_from([(), (2,)]))
def test_complex_square_functions_match_numpy(seed, n, batch):
    rng = np.random.default_rng(seed)
    a, p = cgeneral(rng, n, n, batch), hpd(rng, n, batch)
    b = rng.normal(size=batch + (n, 2)) + 1j * rng.normal(size=batch + (n, 2))
    _close(jnp.linalg.inv(a), np.linalg.inv(a))
    _close(jnp.linalg.solve(a, b), np.linalg.solve(a, b))
    _close(jnp.linalg.det(a), np.linalg.det(a))
    for got, want in zip(jnp.linalg.slogdet(a), np.linalg.slogdet(a)):
        _close(got, want)
    _close(jnp.linalg.cholesky(p), np.linalg.cholesky(p))
    _close(jnp.linalg.cholesky(p, upper=True), np.linalg.cholesky(p, upper=True))
    w, v = jnp.linalg.eigh(p)
    assert w.dtype == np.float64
    _close(w, np.linalg.eigvalsh(p))
    _close(v @ (w[..., None] * np.conj(np.swapaxes(v, -1, -2))), p)
    u, s, vh = jnp.linalg.svd(a)
    _close(s, np.linalg.svd(a, compute_uv=False))
    _close((u * s[..., None, :]) @ vh, a)
    q, r = jnp.linalg.qr(a)
    _close(q @ r, a)
    _close(np.conj(np.swapaxes(q, -1, -2)) @ q, np.broadcast_to(np.eye(n), a.shape))
    _close(np.sort_complex(np.asarray(jnp.linalg.eigvals(a)).ravel()),
           np.sort_complex(np.linalg.eigvals(a).ravel()))
    wc, vc = jnp.linalg.eig(a)
    _close(a @ vc, vc * wc[..., None, :])
    _close(jnp.linalg.pinv(a), np.linalg.pinv(a))
    _close(jnp.linalg.cond(a), np.linalg.cond(a))
    _close(jnp.linalg.matrix_rank(a), np.linalg.matrix_rank(a))
    _close(jnp.linalg.matrix_power(a, -2), np.linalg.matrix_power(a, -2), 1e-9)
    _close(fsl.expm(a), sl.expm(a) if not batch else np.stack([sl.expm(x) for x in a]), 1e-9)
    for ord_ in (None, "fro", "nuc", 1, -1, 2, -2, np.inf, -np.inf):
        _close(jnp.linalg.norm(a, ord_, axis=(-2, -1)), np.linalg.norm(a, ord_, axis=(-2, -1)))
    for ord_ in (None, 0, 1, 2, 3, np.inf, -np.inf):
        _close(jnp.linalg.norm(b, ord_, axis=-2), np.linalg.norm(b, ord_, axis=-2))


@SMALL
@given(seeds, sizes, sizes)
def test_complex_rectangular_and_scipy_functions_match(seed, m, n):
    rng = np.random.default_rng(seed)
    a, p = cgeneral(rng, m, n), hpd(rng, m)
    b = rng.normal(size=(m, 2)) + 1j * rng.normal(size=(m, 2))
    x, resid, rank, s = jnp.linalg.lstsq(a, b)
    xw, residw, rankw, sw = np.linalg.lstsq(a, b)
    _close(x, xw)
    _close(s, sw)
    assert int(rank) == rankw
    if m > n:
        _close(resid, residw)
    _close(jnp.linalg.pinv(a), np.linalg.pinv(a))
    for trans in (0, 1, 2):
        for lower in (True, False):
            _close(fsl.solve_triangular(p, b, trans=trans, lower=lower),
                   sl.solve_triangular(p, b, trans=trans, lower=lower))
        _close(fsl.lu_solve(fsl.lu_factor(p), b, trans=trans),
               sl.lu_solve(sl.lu_factor(p), b, trans=trans))
    for lower in (True, False):
        _close(fsl.cho_solve(fsl.cho_factor(p, lower=lower), b), np.linalg.solve(p, b))
    pm, lo, up = fsl.lu(a)
    _close(np.asarray(pm) @ np.asarray(lo) @ np.asarray(up), a)


def _ceigh_loss(x):
    w, v = jnp.linalg.eigh(x)
    return w, jnp.abs(v) ** 2 @ jnp.arange(1.0, x.shape[0] + 1)     # invariant to column phases


def _csvd_loss(x, full=False):
    u, s, vh = jnp.linalg.svd(x, full_matrices=full)
    k = s.shape[0]
    uk, vk = u[:, :k], vh[:k]
    return s, uk @ jnp.conj(uk.T), jnp.conj(vk.T) @ vk, (uk * s) @ vk


def _cqr_loss(x):
    q, r = jnp.linalg.qr(x)
    return q, r


rng1 = np.random.default_rng(11)
C3, H3 = cgeneral(rng1, 3, 3), hpd(rng1, 3)
C42, C24 = cgeneral(rng1, 4, 2), cgeneral(rng1, 2, 4)
CB32 = rng1.normal(size=(3, 2)) + 1j * rng1.normal(size=(3, 2))
CB42 = rng1.normal(size=(4, 2)) + 1j * rng1.normal(size=(4, 2))

COMPLEX_GRADS = {
    "inv": (jnp.linalg.inv, (C3,)),
    "solve": (jnp.linalg.solve, (C3, CB32)),
    "det": (jnp.linalg.det, (C3,)),
    "slogdet": (lambda x: tuple(jnp.linalg.slogdet(x)), (C3,)),
    "cholesky": (jnp.linalg.cholesky, (H3,)),
    "cholesky_upper": (lambda x: jnp.linalg.cholesky(x, upper=True), (H3,)),
    "lu": (lambda x: fsl.lu(x)[1:], (C3,)),
    "lu_wide": (lambda x: L.lu(x)[0], (CB42.T,)),
    "solve_triangular_C": (lambda a, b: fsl.solve_triangular(a, b, trans=2, lower=True),
                           (H3, CB32)),
    "solve_triangular_T_unit": (lambda a, b: fsl.solve_triangular(a, b, trans=1,
                                                                 unit_diagonal=True), (H3, CB32)),
    "triangular_right_conj": (lambda a, b: L.triangular_solve(a, b, conjugate_a=True),
                              (H3, CB32.T)),
    "cho_solve": (lambda a, b: fsl.cho_solve(fsl.cho_factor(a), b), (H3, CB32)),
    "lu_solve_C": (lambda a, b: fsl.lu_solve(fsl.lu_factor(a), b, trans=2), (C3, CB32)),
    "eigh": (_ceigh_loss, (H3,)),
    "eigvalsh": (jnp.linalg.eigvalsh, (C3,)),
    "svd_square": (_csvd_loss, (C3,)),
    "svd_square_full": (lambda x: _csvd_loss(x, True), (C3,)),
    "svd_tall": (_csvd_loss, (C42,)),
    "svd_wide": (_csvd_loss, (C24,)),
    "qr_square": (_cqr_loss, (C3,)),
    "qr_tall": (_cqr_loss, (C42,)),
    "eigvals": (jnp.linalg.eigvals, (C3,)),
    "eigvals_of_real": (jnp.linalg.eigvals, (A3,)),
    "eig_vectors": (lambda x: L.eig(x, enable_eigvec_derivs=True), (C3,)),
    "eig_vectors_of_real": (lambda x: L.eig(x, enable_eigvec_derivs=True), (A3,)),
    "pinv": (jnp.linalg.pinv, (C42,)),
    "lstsq": (lambda a, b: jnp.linalg.lstsq(a, b)[0], (C42, CB42)),
    "norm_fro": (jnp.linalg.norm, (C3,)),
    "norm_2": (lambda x: jnp.linalg.norm(x, 2), (C3,)),
    "norm_nuc": (lambda x: jnp.linalg.norm(x, "nuc"), (C42,)),
    "cond": (jnp.linalg.cond, (C3,)),
    "matrix_power": (lambda x: jnp.linalg.matrix_power(x, -2), (C3,)),
    "expm": (fsl.expm, (C3 * 0.7,)),
}


@pytest.mark.parametrize("name", sorted(COMPLEX_GRADS))
def test_complex_derivatives(name):
    f, args = COMPLEX_GRADS[name]
    check_grads(f, args, order=2, modes=("fwd", "rev"), atol=1e-5, rtol=1e-5)


def test_eigvals_derivative_is_first_order_perturbation():
    # dw_i = (V^-1 dA V)_ii, checked against the closed form at a diagonalisable matrix
    rng = np.random.default_rng(12)
    v = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    a = v @ np.diag([1.0, 2.0 + 1j, -1.5j]) @ np.linalg.inv(v)
    da = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    w, dw = ft.jvp(jnp.linalg.eigvals, (a,), (da,))
    want = np.diag(np.linalg.solve(v, da @ v))
    order = [int(np.argmin(np.abs(np.asarray(w) - x))) for x in (1.0, 2.0 + 1j, -1.5j)]
    _close(np.asarray(dw)[order], want, 1e-8)


CVMAPS = {
    "inv": (jnp.linalg.inv, 0),
    "slogdet": (jnp.linalg.slogdet, 0),
    "cholesky": (jnp.linalg.cholesky, 0),
    "eigh": (jnp.linalg.eigvalsh, 0),
    "svd": (jnp.linalg.svdvals, 0),
    "qr": (jnp.linalg.qr, 0),
    "eigvals": (jnp.linalg.eigvals, 0),
    "triangular": (lambda a, b: fsl.solve_triangular(a, b, trans=2, lower=True), (0, 0)),
    "eig_jvp": (lambda x: ft.jvp(lambda y: L.eig(y, enable_eigvec_derivs=True), (x,),
                                 (x * 1j,))[1], 0),
    "grad_slogdet": (ft.grad(lambda x: jnp.linalg.slogdet(x)[1]), 0),
    "svd_jvp": (lambda x: ft.jvp(lambda y: jnp.linalg.svd(y)[0] @ jnp.linalg.svd(y)[2], (x,),
                                 (x * 1j,))[1], 0),
}


@pytest.mark.parametrize("name", sorted(CVMAPS))
def test_complex_vmap_matches_loop(name):
    f, axes = CVMAPS[name]
    rng = np.random.default_rng(13)
    a, b = hpd(rng, 3, (2,)), rng.normal(size=(2, 3, 2)) + 1j * rng.normal(size=(2, 3, 2))
    args = (a,) if isinstance(axes, int) else (a, b)
    check_vmap(f, args, in_axes=axes, atol=1e-10)


def _complex_everything(a, p, b):
    w, v = jnp.linalg.eigh(p)
    u, s, vh = jnp.linalg.svd(a)
    q, r = jnp.linalg.qr(a)
    sign, logdet = jnp.linalg.slogdet(a)
    grad_inv = ft.grad(lambda x: jnp.sum(jnp.abs(jnp.linalg.inv(x)) ** 2))(a)
    return (jnp.linalg.inv(a), jnp.linalg.solve(a, b), jnp.linalg.det(a), sign, logdet,
            jnp.linalg.cholesky(p), w, v, u, s, vh, q, r, jnp.linalg.pinv(a),
            jnp.linalg.eigvals(a), grad_inv, fsl.solve_triangular(p, b, trans=2, lower=True),
            jnp.linalg.norm(a, "nuc", axis=(-2, -1)))


def test_complex_jit_matches_eager():
    rng = np.random.default_rng(14)
    a, p = cgeneral(rng, 3, 3, (2,)), hpd(rng, 3, (2,))
    b = rng.normal(size=(2, 3, 2)) + 1j * rng.normal(size=(2, 3, 2))
    for got, want in zip(ft.jit(_complex_everything)(a, p, b), _complex_everything(a, p, b)):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_complex64_stays_complex64():
    p = hpd(np.random.default_rng(15), 3).astype(np.complex64)
    for out in (jnp.linalg.inv(p), jnp.linalg.cholesky(p), jnp.linalg.eigh(p)[1],
                jnp.linalg.svd(p)[0], jnp.linalg.det(p), jnp.linalg.eigvals(p)):
        assert out.dtype == np.complex64
    for out in (jnp.linalg.eigh(p)[0], jnp.linalg.svd(p)[1], jnp.linalg.norm(p),
                jnp.linalg.slogdet(p)[1]):
        assert out.dtype == np.float32
