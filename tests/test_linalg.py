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


@pytest.mark.parametrize("name", ["inv", "solve", "det", "cholesky", "eigh", "svd", "qr", "eig",
                                  "norm"])
def test_complex_input_raises_typeerror_naming_function(name):
    f = getattr(jnp.linalg, name)
    args = (np.eye(2, dtype=complex),) + ((np.ones(2),) if name == "solve" else ())
    with pytest.raises(TypeError, match=name):
        f(*args)


def test_complex_operand_to_primitive_raises_typeerror():
    with pytest.raises(TypeError, match="cholesky"):
        L.cholesky(ft.numpy.asarray(np.eye(2, dtype=complex)))


def test_unsupported_derivatives_name_what_is_missing():
    with pytest.raises(NotImplementedError, match="eig"):
        ft.grad(lambda x: jnp.real(jnp.linalg.eigvals(x)[0]) if hasattr(jnp, "real")
                else jnp.linalg.eigvals(x)[0])(np.eye(2))
    with pytest.raises(NotImplementedError, match="full_matrices"):
        ft.jvp(lambda x: jnp.linalg.svd(x)[0], (A42,), (A42,))
    with pytest.raises(NotImplementedError, match="qr"):
        ft.jvp(lambda x: jnp.linalg.qr(x), (A24,), (A24,))


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
