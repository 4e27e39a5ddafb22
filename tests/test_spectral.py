"""functrans.spectral and hessian_spectrum: closed forms on quadratics 0.5 x^T A x with known
spectra, and the exact Hessian of a small MLP (functrans.hessian + numpy.linalg.eigh)."""
import importlib.util

import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import spectral

RNG = np.random.default_rng(0)
N = 12
Q = np.linalg.qr(RNG.normal(size=(N, N)))[0]
LAM = np.array([-7.0, -3.0, -1.0, -0.5, 0.1, 0.5, 1.0, 2.0, 3.0, 4.5, 6.0, 9.0])
A = (Q * LAM) @ Q.T


def matvec(v):
    return A @ v


def assert_same_directions(vectors, expected):
    """Rows of vectors equal rows of expected up to sign."""
    for v, e in zip(vectors, expected):
        np.testing.assert_allclose(abs(v @ e), 1.0, atol=1e-8)
        np.testing.assert_allclose(np.linalg.norm(v), 1.0, atol=1e-10)


@pytest.mark.parametrize("which, order", [("LA", [11, 10, 9]), ("SA", [0, 1, 2]),
                                          ("LM", [11, 0, 10])])
def test_lanczos_top_eigenpairs_are_exact_on_a_known_spectrum(which, order):
    r = spectral.top_eigenpairs(matvec, N, 3, which=which)
    np.testing.assert_allclose(r.values, LAM[order], atol=1e-8)
    assert_same_directions(r.vectors, Q.T[order])
    assert r.converged and r.num_matvecs <= N


def test_power_iteration_with_deflation_matches():
    r = spectral.top_eigenpairs(matvec, N, 2, method="power", tol=1e-10, max_iters=5000)
    assert r.converged
    np.testing.assert_allclose(r.values, [9.0, 6.0], atol=1e-8)
    assert_same_directions(r.vectors, Q.T[[11, 10]])


def test_repeated_eigenvalues_are_all_found():
    # one start vector only sees one copy of each eigenvalue; the restart finds the others
    d = np.array([5.0, 5.0, 5.0, 1.0, 0.0, -2.0])
    r = spectral.top_eigenpairs(lambda v: d * v, 6, 4)
    np.testing.assert_allclose(r.values, [5, 5, 5, 1], atol=1e-10)
    np.testing.assert_allclose(r.vectors[:3] @ r.vectors[:3].T, np.eye(3), atol=1e-10)


def test_lanczos_decomposition_is_orthonormal_and_tridiagonalises():
    dec = spectral.lanczos(matvec, np.ones(N), 6)
    V = dec.basis
    np.testing.assert_allclose(V @ V.T, np.eye(6), atol=1e-12)
    np.testing.assert_allclose(V @ A @ V.T, dec.tridiagonal(), atol=1e-10)
    np.testing.assert_allclose(V[0], np.ones(N) / np.sqrt(N))


def test_lanczos_stops_on_an_invariant_subspace():
    dec = spectral.lanczos(lambda v: np.array([2.0, 2.0, 3.0]) * v, np.ones(3), 3)
    assert len(dec.alpha) == 2     # two distinct eigenvalues: the Krylov space has dimension 2
    np.testing.assert_allclose(np.linalg.eigvalsh(dec.tridiagonal()), [2.0, 3.0])


def test_hutchinson_is_exact_on_a_diagonal_and_within_its_stderr_otherwise():
    d = np.arange(1.0, 9.0)
    tr, se = spectral.hutchinson_trace(lambda v: d * v, 8, 5, key=3)
    assert tr == pytest.approx(d.sum(), abs=1e-12) and se == pytest.approx(0.0, abs=1e-12)
    tr, se = spectral.hutchinson_trace(matvec, N, 200, key=1)
    assert se > 0 and abs(tr - LAM.sum()) < 4 * se
    assert spectral.hutchinson_trace(matvec, N, 200, key=1) == (tr, se)   # same key, same draw


def test_slq_density_integrates_to_one_and_peaks_at_the_eigenvalues():
    d = np.array([1.0] * 6 + [10.0] * 4)
    dens = spectral.spectral_density(lambda v: d * v, 10, num_probes=4, num_iters=10, sigma=0.2)
    assert dens.integral() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(dens.weights.sum(axis=1), 1.0)
    g, v = dens.grid, dens.values
    peaks = g[1:-1][(v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])]
    np.testing.assert_allclose(peaks, [1.0, 10.0], atol=g[1] - g[0])
    # the mass around each eigenvalue is its share of the spectrum (Rademacher probes: exact)
    mass_low = np.trapezoid(v[g < 5], g[g < 5]) if hasattr(np, "trapezoid") else \
        np.trapz(v[g < 5], g[g < 5])
    assert mass_low == pytest.approx(0.6, abs=1e-6)


def test_bad_input_names_the_numbers():
    with pytest.raises(ValueError, match="k=13.*12"):
        spectral.top_eigenpairs(matvec, N, 13)
    with pytest.raises(ValueError, match="which"):
        spectral.top_eigenpairs(matvec, N, 1, which="largest")
    with pytest.raises(ValueError, match="zero"):
        spectral.lanczos(matvec, np.zeros(N), 3)


# --- hessian_spectrum on a small MLP against the exact Hessian --------------------------------

X = RNG.normal(size=(16, 3))
Y = np.sin(X.sum(axis=1))
PARAMS = {"w1": RNG.normal(size=(3, 4)), "b1": RNG.normal(size=4) * 0.1,
          "w2": RNG.normal(size=(4,)), "b2": np.array(0.3)}


def mlp_loss(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"])
    return jnp.mean((h @ p["w2"] + p["b2"] - y) ** 2)


def flat_hessian():
    names = ["b1", "b2", "w1", "w2"]           # the pytree's (sorted) leaf order
    flat = np.concatenate([PARAMS[k].reshape(-1) for k in names])
    sizes = np.cumsum([PARAMS[k].size for k in names])[:-1]

    def loss_flat(v):
        parts = jnp.split(v, sizes)
        return mlp_loss({k: p.reshape(PARAMS[k].shape) for k, p in zip(names, parts)}, X, Y)
    return np.asarray(jax.hessian(loss_flat)(jnp.asarray(flat)))


@pytest.fixture(scope="module")
def mlp_spectrum():
    return jax.hessian_spectrum(mlp_loss, PARAMS, X, Y, k=4, trace_probes=300, key=7)


def test_hessian_spectrum_matches_eigh_of_the_exact_hessian(mlp_spectrum):
    H = flat_hessian()
    lam, U = np.linalg.eigh(H)
    s = mlp_spectrum
    np.testing.assert_allclose(s.eigenvalues, lam[::-1][:4], rtol=1e-8, atol=1e-9)
    assert s.converged and s.dim == 21
    op = spectral.HessianOperator(mlp_loss, PARAMS, X, Y)
    for vec, u in zip(s.eigenvectors, U.T[::-1]):
        assert set(vec) == set(PARAMS) and vec["w1"].shape == (3, 4)
        np.testing.assert_allclose(abs(op.ravel(vec) @ u), 1.0, atol=1e-7)
    assert abs(s.trace - np.trace(H)) < 4 * s.trace_stderr
    assert s.density.integral() == pytest.approx(1.0, abs=1e-6)
    assert s.num_hvps >= 300


def test_hessian_spectrum_repr_and_plot(mlp_spectrum):
    text = repr(mlp_spectrum)
    assert "21 parameters" in text and "top-4 eigenvalues (largest algebraic, lanczos)" in text
    assert "Hutchinson, 300 Rademacher probes" in text and "SLQ" in text
    if importlib.util.find_spec("matplotlib") is None:
        with pytest.raises(ImportError, match="matplotlib"):
            mlp_spectrum.plot()
    else:
        import matplotlib
        matplotlib.use("Agg")
        assert mlp_spectrum.plot() is not None


def test_hessian_spectrum_k_above_the_parameter_count():
    with pytest.raises(ValueError, match="k=22.*21"):
        jax.hessian_spectrum(mlp_loss, PARAMS, X, Y, k=22)


def test_hessian_spectrum_power_method_and_skipped_parts():
    s = jax.hessian_spectrum(mlp_loss, PARAMS, X, Y, k=2, method="power", which="LM",
                             tol=1e-9, max_iters=5000, trace_probes=0, density_probes=0)
    lam = np.linalg.eigvalsh(flat_hessian())
    np.testing.assert_allclose(s.eigenvalues, lam[::-1][:2], rtol=1e-9)
    assert s.converged and s.trace is None and s.density is None and "trace" not in repr(s)
