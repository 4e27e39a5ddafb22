"""Hessian spectra without forming the Hessian: Lanczos, power iteration, Hutchinson's trace
estimator and stochastic Lanczos quadrature (SLQ), on any symmetric linear operator given as a
``matvec`` on flat vectors, and ``hessian_spectrum`` putting them together for a loss (the
features of PyHessian, for any functrans loss).

Design: the operator products (Hessian-vector products, jitted) are the expensive part; the Krylov
bookkeeping (a few hundred vectors at most, full reorthogonalisation, small tridiagonal
eigenproblems) runs in float64 NumPy on the host. So ``lanczos`` and friends are not themselves
jittable: their ``matvec`` is what gets compiled. See docs/second_order.md."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from . import random as _random
from .api import hvp as _hvp, jit as _jit
from .tree_util import tree_flatten, tree_unflatten

__all__ = ["Eigenpairs", "HessianOperator", "HessianSpectrum", "LanczosDecomposition",
           "SpectralDensity", "hessian_spectrum", "hutchinson_trace", "lanczos",
           "rademacher_probes", "spectral_density", "top_eigenpairs"]

_WHICH = {"LA": "largest algebraic", "LM": "largest magnitude", "SA": "smallest algebraic"}


# ---------------------------------------------------------------------------------------------
# Random probes


def _as_key(key):
    """A functrans PRNG key from a key or an integer seed."""
    if isinstance(key, (int, np.integer)):
        return _random.PRNGKey(int(key))
    return key


def rademacher_probes(key, num, dim):
    """``num`` Rademacher vectors (entries +1 or -1 with probability 1/2) of length ``dim``, as a
    float64 NumPy array of shape (num, dim); ``key`` is a functrans.random key or an int seed.
    The key seeds a NumPy PCG64 stream (128 bits drawn from it): eager Threefry over every
    element cost 5x an HVP per probe for a 100k-parameter model."""
    seed = np.asarray(_random.bits(_as_key(key), (4,)), np.uint32)
    signs = np.random.Generator(np.random.PCG64(seed)).integers(0, 2, (num, dim), np.int8)
    return 2.0 * signs - 1.0


def _unit_start(key, dim):
    v = rademacher_probes(key, 1, dim)[0]
    return v / np.linalg.norm(v)


def _apply(matvec, v):
    return np.asarray(matvec(v), dtype=np.float64).reshape(-1)


# ---------------------------------------------------------------------------------------------
# Lanczos with full reorthogonalisation


class LanczosDecomposition(NamedTuple):
    """``A V^T ~ V^T T``: ``basis`` V (m, n) has orthonormal rows, T is the symmetric
    tridiagonal matrix with diagonal ``alpha`` (m,) and off-diagonal ``beta`` (m-1,)."""
    alpha: np.ndarray
    beta: np.ndarray
    basis: np.ndarray

    def tridiagonal(self):
        """T as a dense (m, m) array."""
        return np.diag(self.alpha) + np.diag(self.beta, 1) + np.diag(self.beta, -1)


class _Krylov:
    """A growing Lanczos basis. On breakdown (an invariant subspace found) it either stops or,
    with ``restart_key``, continues from a fresh random vector orthogonal to the basis (beta = 0),
    so eigenvalues of multiplicity > 1 are found too."""

    def __init__(self, matvec, v0, max_dim, restart_key=None):
        n = v0.shape[0]
        self.matvec, self.restart_key = matvec, restart_key
        self.V = np.zeros((max_dim + 1, n))
        self.V[0] = v0 / np.linalg.norm(v0)
        self.alpha, self.beta = [], []
        self.matvecs = 0
        self.exhausted = False

    def __len__(self):
        return len(self.alpha)

    def _orthogonalize(self, w, m):
        # Classical Gram-Schmidt against the whole basis, repeated once when the first pass
        # cancelled most of w (the DGKS criterion: "twice is enough").
        norm = np.linalg.norm(w)
        w = w - self.V[:m].T @ (self.V[:m] @ w)
        if np.linalg.norm(w) < 0.7 * norm:
            w = w - self.V[:m].T @ (self.V[:m] @ w)
        return w

    def step(self):
        j = len(self.alpha)
        w = _apply(self.matvec, self.V[j])
        self.matvecs += 1
        a = float(self.V[j] @ w)
        self.alpha.append(a)
        w = w - a * self.V[j] - (self.beta[-1] * self.V[j - 1] if j else 0.0)
        w = self._orthogonalize(w, j + 1)
        b = float(np.linalg.norm(w))
        scale = max(abs(a), max(self.beta, default=0.0), np.finfo(float).tiny)
        n = self.V.shape[1]
        if b > 1e-10 * scale:
            self.V[j + 1], beta = w / b, b
        elif self.restart_key is None or j + 1 >= n:
            self.exhausted, beta = True, 0.0
        else:
            self.restart_key, sub = _random.split(self.restart_key)
            w = self._orthogonalize(_unit_start(sub, n), j + 1)
            self.V[j + 1], beta = w / np.linalg.norm(w), 0.0
        if j + 1 >= n:
            self.exhausted = True
        self.beta.append(beta)

    def decomposition(self, copy=True):
        m = len(self.alpha)
        basis = self.V[:m].copy() if copy else self.V[:m]
        return LanczosDecomposition(np.array(self.alpha), np.array(self.beta[:m - 1]), basis)

    def ritz(self):
        """Ritz values (ascending), the (m, m) eigenvectors of T, and the residual norms
        ``|A y - theta y|`` of the Ritz vectors (``|beta_m s_m|``)."""
        theta, S = np.linalg.eigh(self.decomposition(copy=False).tridiagonal())
        last_beta = 0.0 if self.exhausted else self.beta[-1]
        return theta, S, np.abs(last_beta * S[-1])


def lanczos(matvec: Callable, v0, num_iters: int) -> LanczosDecomposition:
    """``num_iters`` steps of the Lanczos process on the symmetric operator ``matvec`` (a function
    of a flat float64 vector returning one of the same length) from ``v0``, with full
    reorthogonalisation. Stops early when the Krylov space is invariant (then fewer rows).
    Costs ``num_iters`` matvecs and O(num_iters^2 n) flops. Returns a LanczosDecomposition."""
    v0 = np.asarray(v0, np.float64).reshape(-1)
    if num_iters < 1:
        raise ValueError(f"lanczos: num_iters must be >= 1, got {num_iters}")
    if not np.linalg.norm(v0) > 0:
        raise ValueError("lanczos: the start vector v0 is zero (or not finite)")
    kry = _Krylov(matvec, v0, num_iters)
    while len(kry) < num_iters and not kry.exhausted:
        kry.step()
    return kry.decomposition()


# ---------------------------------------------------------------------------------------------
# Top eigenpairs


class Eigenpairs(NamedTuple):
    """``values`` (k,), ``vectors`` (k, n) with orthonormal rows, the residual norms
    ``|A v - lambda v|``, whether all are below tol * scale, and the matvecs used."""
    values: np.ndarray
    vectors: np.ndarray
    residuals: np.ndarray
    converged: bool
    num_matvecs: int


def _pick(theta, k, which):
    """Indices of the k wanted values of theta, in the order they are reported."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")[:k]
    if which == "SA":
        return np.argsort(theta, kind="stable")[:k]
    return np.argsort(-np.abs(theta), kind="stable")[:k]


def _check_k(k, dim, what):
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{what}: k must be a positive integer, got {k!r}")
    if k > dim:
        raise ValueError(f"{what}: k={k} eigenpairs asked for, but the operator has only "
                         f"{dim} dimensions (parameters)")


def _check_which(which, method):
    if which not in _WHICH:
        raise ValueError(f"which must be one of {sorted(_WHICH)}, got {which!r}")
    if method not in ("lanczos", "power"):
        raise ValueError(f"method must be 'lanczos' or 'power', got {method!r}")


def top_eigenpairs(matvec: Callable, dim: int, k: int = 1, *, which: str = "LA",
                   method: str = "lanczos", tol: float = 1e-10, max_iters: int | None = None,
                   key=0) -> Eigenpairs:
    """The k extreme eigenpairs of the symmetric operator ``matvec`` on R^dim: ``which='LA'``
    largest algebraic (PyHessian's "top"), ``'LM'`` largest magnitude, ``'SA'`` smallest.

    ``method='lanczos'``: Lanczos with full reorthogonalisation from a random start, grown until
    every wanted Ritz pair has residual ``|A v - theta v| <= tol * max|theta|`` (at most
    ``max_iters`` steps, default ``min(dim, max(10 k, 100))``); a breakdown restarts from a new
    orthogonal vector, so exactly repeated eigenvalues are found (a single Krylov space holds
    one copy of each; the others appear only through such breakdowns). ``method='power'``:
    power iteration with deflation (one run per eigenpair, at most ``max_iters`` steps each,
    default 1000), shifted so that the dominant eigenvalue is the wanted one. Returns
    Eigenpairs (``converged``: whether tol was met; the values sorted as ``which`` ranks
    them)."""
    _check_k(k, dim, "top_eigenpairs")
    _check_which(which, method)
    key = _as_key(key)
    if method == "power":
        return _power_eigenpairs(matvec, dim, k, which, tol, max_iters or 1000, key)
    max_iters = min(dim, max_iters or max(10 * k, 100))
    if max_iters < k:
        raise ValueError(f"top_eigenpairs: max_iters={max_iters} is below k={k}")
    key, start = _random.split(key)
    kry = _Krylov(matvec, _unit_start(start, dim), max_iters, restart_key=key)
    while True:
        kry.step()
        m = len(kry)
        if m < k and not kry.exhausted:
            continue
        theta, S, res = kry.ritz()
        idx = _pick(theta, k, which)
        scale = max(np.max(np.abs(theta)), np.finfo(float).tiny)
        converged = bool(np.all(res[idx] <= tol * scale))
        if kry.beta[-1] == 0.0 and not kry.exhausted:
            continue    # just restarted after a breakdown: the new block may hold more copies
        if converged or kry.exhausted or m >= max_iters:
            vectors = S[:, idx].T @ kry.V[:m]
            return Eigenpairs(theta[idx], vectors, res[idx], converged, kry.matvecs)


def _power_eigenpairs(matvec, dim, k, which, tol, max_iters, key):
    """Power iteration with deflation against the eigenvectors already found. For 'LA'/'SA' the
    operator is shifted by the dominant eigenvalue's magnitude s (A + s I or A - s I), which
    makes the wanted end of the spectrum the dominant one."""
    count = [0]

    def counted(v):
        count[0] += 1
        return _apply(matvec, v)

    shift, found, residuals, ok = 0.0, [], [], True
    if which != "LM":
        key, sub = _random.split(key)
        lam, _, _, _ = _power_one(counted, dim, [], 0.0, tol, max_iters, sub)
        shift = abs(lam) if which == "LA" else -abs(lam)
    values = []
    for _ in range(k):
        key, sub = _random.split(key)
        lam, v, res, conv = _power_one(counted, dim, found, shift, tol, max_iters, sub)
        values.append(lam)
        found.append(v)
        residuals.append(res)
        ok &= conv
    return Eigenpairs(np.array(values), np.array(found), np.array(residuals), ok, count[0])


def _power_one(matvec, dim, found, shift, tol, max_iters, key):
    """One power iteration on (A + shift I) restricted to the complement of ``found``:
    (eigenvalue of A, unit vector, residual, converged)."""
    basis = np.array(found).reshape(len(found), dim)

    def deflate(w):
        return w - basis.T @ (basis @ w) if len(found) else w

    v = deflate(_unit_start(key, dim))
    v /= np.linalg.norm(v)
    lam, res = 0.0, np.inf
    for _ in range(max_iters):
        av = matvec(v)
        lam = float(v @ av)
        res = float(np.linalg.norm(deflate(av) - lam * v))
        if res <= tol * max(abs(lam), np.finfo(float).tiny):
            return lam, v, res, True
        w = deflate(av + shift * v)
        norm = np.linalg.norm(w)
        if norm == 0:
            return lam, v, res, False
        v = w / norm
    return lam, v, res, False


# ---------------------------------------------------------------------------------------------
# Trace and density


def hutchinson_trace(matvec: Callable, dim: int, num_probes: int = 100, *, key=0):
    """Hutchinson's estimate of tr(A): the mean of ``z^T A z`` over ``num_probes`` Rademacher
    probes z. Returns ``(trace, stderr)``, the standard error being the sample standard deviation
    over sqrt(num_probes) (nan for one probe). Unbiased; its variance is ``2 (||A||_F^2 -
    sum_i A_ii^2) / num_probes``, so it is exact for a diagonal A. Costs num_probes matvecs."""
    if num_probes < 1:
        raise ValueError(f"hutchinson_trace: num_probes must be >= 1, got {num_probes}")
    keys = _random.split(_as_key(key), num_probes)
    samples = np.array([z @ _apply(matvec, z)
                        for z in (rademacher_probes(kk, 1, dim)[0] for kk in keys)])
    stderr = samples.std(ddof=1) / np.sqrt(num_probes) if num_probes > 1 else np.nan
    return float(samples.mean()), float(stderr)


class SpectralDensity(NamedTuple):
    """The spectral density on ``grid`` (``values``, integrating to 1), and the quadrature it was
    broadened from: ``nodes`` (Ritz values) and ``weights`` of each probe, shape (probes, m),
    each probe's weights summing to 1; ``sigma`` the Gaussian width."""
    grid: np.ndarray
    values: np.ndarray
    nodes: np.ndarray
    weights: np.ndarray
    sigma: float

    def integral(self):
        """The trapezoid integral of ``values`` over ``grid`` (1 up to the grid's truncation)."""
        return float(np.trapezoid(self.values, self.grid)) if hasattr(np, "trapezoid") else \
            float(np.trapz(self.values, self.grid))


def spectral_density(matvec: Callable, dim: int, *, num_probes: int = 1, num_iters: int = 80,
                     num_points: int = 1000, sigma: float | None = None,
                     grid=None, key=0) -> SpectralDensity:
    """The eigenvalue density ``(1/dim) sum_i delta(t - lambda_i)`` estimated by stochastic
    Lanczos quadrature: for each of ``num_probes`` random unit vectors v, ``num_iters`` Lanczos
    steps give T = S diag(theta) S^T, and ``v^T delta(t - A) v ~ sum_j S_0j^2 delta(t -
    theta_j)``; the probes are averaged and each delta is broadened to a Gaussian of width
    ``sigma`` (default 1% of the spread of the nodes). ``grid`` defaults to ``num_points`` points
    spanning the nodes +- 5 sigma. Costs num_probes * num_iters matvecs."""
    if num_probes < 1:
        raise ValueError(f"spectral_density: num_probes must be >= 1, got {num_probes}")
    keys = _random.split(_as_key(key), num_probes)
    nodes, weights = [], []
    m = min(num_iters, dim)
    for kk in keys:
        dec = lanczos(matvec, rademacher_probes(kk, 1, dim)[0], m)
        theta, S = np.linalg.eigh(dec.tridiagonal())
        pad = m - len(theta)   # an early invariant subspace: pad with zero-weight nodes
        nodes.append(np.pad(theta, (0, pad), constant_values=theta[-1]))
        weights.append(np.pad(S[0] ** 2, (0, pad)))
    nodes, weights = np.array(nodes), np.array(weights)
    return _broaden(nodes, weights, sigma, grid, num_points)


def _broaden(nodes, weights, sigma, grid, num_points):
    lo, hi = float(nodes.min()), float(nodes.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else 0.01 * max(abs(hi), 1.0)
    if grid is None:
        grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, num_points)
    grid = np.asarray(grid, np.float64)
    z = (grid[:, None] - nodes.reshape(-1)[None, :]) / sigma
    gauss = np.exp(-0.5 * z * z) / (sigma * np.sqrt(2 * np.pi))
    values = gauss @ weights.reshape(-1) / nodes.shape[0]
    return SpectralDensity(grid, values, nodes, weights, float(sigma))


# ---------------------------------------------------------------------------------------------
# The Hessian of a loss as an operator on flat vectors


class HessianOperator:
    """The Hessian of ``loss(params, *batch)`` with respect to ``params`` as a linear operator on
    flat float64 vectors: ``op.matvec(v)`` is one jitted forward-over-reverse HVP (counted in
    ``op.num_matvecs``), ``op.dim`` the parameter count, ``op.ravel(tree)`` / ``op.unravel(v)``
    convert between parameter pytrees and flat vectors (in the parameters' dtypes)."""

    def __init__(self, loss, params, *batch):
        leaves, self._treedef = tree_flatten(params)
        arrays = [np.asarray(x) for x in leaves]
        for x in arrays:
            if x.dtype.kind != "f":
                raise TypeError(f"hessian: parameters must be floating point, got a "
                                f"{x.dtype} leaf of shape {x.shape}")
        self._shapes = [x.shape for x in arrays]
        self._dtypes = [x.dtype for x in arrays]
        self._splits = np.cumsum([x.size for x in arrays])[:-1]
        self.dim = int(sum(x.size for x in arrays))
        self.dtype = np.result_type(*self._dtypes) if arrays else np.dtype(np.float64)
        self.params, self.batch = params, batch
        self.num_matvecs = 0
        self._hvp = _jit(lambda p, v, *b: _hvp(lambda q: loss(q, *b), (p,), (v,)))

    def ravel(self, tree):
        """The leaves of a pytree like params, concatenated into one float64 vector."""
        leaves = tree_flatten(tree)[0]
        return np.concatenate([np.asarray(x, np.float64).reshape(-1) for x in leaves]) \
            if leaves else np.zeros(0)

    def unravel(self, v):
        """The flat vector v as a pytree like params (each leaf in its parameter's dtype)."""
        parts = np.split(np.asarray(v), self._splits)
        return tree_unflatten(self._treedef, [p.reshape(s).astype(d) for p, s, d in
                                              zip(parts, self._shapes, self._dtypes)])

    def matvec(self, v):
        """H v for a flat vector v (float64 result)."""
        self.num_matvecs += 1
        return self.ravel(self._hvp(self.params, self.unravel(v), *self.batch))

    __call__ = matvec


# ---------------------------------------------------------------------------------------------
# hessian_spectrum


class HessianSpectrum:
    """The result of ``hessian_spectrum``: ``eigenvalues`` (k,), ``eigenvectors`` (a list of k
    pytrees like params with NumPy leaves, unit norm together), ``residuals`` and ``converged`` of the eigenpairs,
    ``trace`` and ``trace_stderr`` (Hutchinson), ``density`` (a SpectralDensity or None),
    ``num_hvps`` (all HVPs used), ``dim`` (parameter count) and the settings used."""

    def __init__(self, **fields):
        self.__dict__.update(fields)

    def __repr__(self):
        vals = ", ".join(f"{v:.6g}" for v in self.eigenvalues)
        lines = [f"HessianSpectrum({self.dim} parameters, {self.num_hvps} HVPs)",
                 f"  top-{len(self.eigenvalues)} eigenvalues ({_WHICH[self.which]}, "
                 f"{self.method}{'' if self.converged else ', NOT converged'}): {vals}"]
        if self.trace is not None:
            lines.append(f"  trace: {self.trace:.6g} +- {self.trace_stderr:.2g} (Hutchinson, "
                         f"{self.trace_probes} Rademacher probes)")
        if self.density is not None:
            d = self.density
            lines.append(f"  density: SLQ, {d.nodes.shape[0]} probe(s) x {d.nodes.shape[1]} "
                         f"Lanczos steps, {len(d.grid)} points on [{d.grid[0]:.4g}, "
                         f"{d.grid[-1]:.4g}], sigma {d.sigma:.3g}")
        return "\n".join(lines)

    __str__ = __repr__

    def plot(self, ax=None, log=True):
        """Plots the spectral density (log scale with ``log``) with the top eigenvalues marked;
        returns the matplotlib Axes. Needs matplotlib (ImportError naming it otherwise)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("HessianSpectrum.plot needs matplotlib: pip install matplotlib") \
                from None
        if self.density is None:
            raise ValueError("HessianSpectrum.plot: no density was computed "
                             "(hessian_spectrum(..., density_probes=0))")
        if ax is None:
            ax = plt.figure().gca()
        d = self.density
        ax.plot(d.grid, d.values)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(max(d.values.max() * 1e-8, np.finfo(float).tiny), None)
        for v in self.eigenvalues:
            ax.axvline(v, color="C1", lw=0.8, ls="--")
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density")
        return ax


def hessian_spectrum(loss: Callable, params: Any, *batch, k: int = 5, method: str = "lanczos",
                     which: str = "LA", tol: float | None = None, max_iters: int | None = None,
                     trace_probes: int = 100, density_probes: int = 1, density_iters: int = 80,
                     density_points: int = 1000, sigma: float | None = None,
                     key=0) -> HessianSpectrum:
    """The spectrum of the Hessian of ``loss(params, *batch)`` with respect to ``params`` (any
    pytree of float arrays), from Hessian-vector products only (one jitted ``hvp`` each):

    * the top ``k`` eigenpairs (``which='LA'``: largest algebraic, PyHessian's "top";
      ``'LM'`` largest magnitude; ``'SA'`` smallest) by ``method='lanczos'`` or ``'power'``
      (see ``top_eigenpairs``; ``tol`` defaults to 1e-10 for float64 parameters, 1e-4 for
      float32 ones, relative to the largest eigenvalue found);
    * the trace by Hutchinson's estimator with ``trace_probes`` Rademacher probes (0: skip);
    * the spectral density by SLQ with ``density_probes`` probes of ``density_iters`` Lanczos
      steps on ``density_points`` grid points, Gaussian width ``sigma`` (0 probes: skip).

    ``key`` (a functrans.random key or int seed) draws every probe. ``k`` above the parameter
    count is a ValueError naming both. Returns a HessianSpectrum."""
    op = HessianOperator(loss, params, *batch)
    _check_k(k, op.dim, "hessian_spectrum")
    _check_which(which, method)
    if tol is None:
        tol = 1e-10 if op.dtype == np.float64 else 1e-4
    k_eig, k_trace, k_dens = _random.split(_as_key(key), 3)
    eig = top_eigenpairs(op.matvec, op.dim, k, which=which, method=method, tol=tol,
                         max_iters=max_iters, key=k_eig)
    trace = stderr = density = None
    if trace_probes:
        trace, stderr = hutchinson_trace(op.matvec, op.dim, trace_probes, key=k_trace)
    if density_probes:
        density = spectral_density(op.matvec, op.dim, num_probes=density_probes,
                                   num_iters=density_iters, num_points=density_points,
                                   sigma=sigma, key=k_dens)
    return HessianSpectrum(
        eigenvalues=eig.values, eigenvectors=[op.unravel(v) for v in eig.vectors],
        residuals=eig.residuals, converged=eig.converged, trace=trace, trace_stderr=stderr,
        trace_probes=trace_probes, density=density, num_hvps=op.num_matvecs, dim=op.dim,
        which=which, method=method)
