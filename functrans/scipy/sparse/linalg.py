"""functrans.scipy.sparse.linalg: matrix-free Krylov solvers with JAX's signatures.

``cg``, ``bicgstab`` and ``gmres`` take ``A`` as a square matrix or a function x -> A x on
pytrees of arrays, and return ``(x, info)``. Each loop is a ``lax.while_loop`` (so the solvers
jit and vmap), and each solve is wrapped in ``lax.custom_linear_solve``: derivatives of x are
one more solve (implicit differentiation), never a differentiation through the iterations.

Where we differ from JAX (docs/solvers.md): JAX returns ``info=None`` (``gmres``: 0, or -1 on
NaN); here ``info`` is an int32 array: 0 converged; k > 0 the tolerance was not met within
maxiter (k iterations, for gmres restart cycles); -1 a non-finite value appeared, the iteration
stopped there and x is NaN everywhere; -10 / -11 a bicgstab breakdown (rho == 0 / omega or
alpha == 0), x being the last iterate, as SciPy.
"""
from __future__ import annotations

import functools
import operator

import numpy as np

from ... import core
from ... import numpy as jnp
from ...lax import control_flow as cf
from ...lax import slicing as lax_slicing
from ...lax.linear_solve import custom_linear_solve
from ...tree_util import tree_leaves, tree_map, tree_structure

__all__ = ["cg", "bicgstab", "gmres"]

NONFINITE = -1


# ---------------------------------------------------------------------------------------------
# Vector helpers on pytrees

def _vdot(x, y):
    """sum over leaves of vdot(x, y) (x conjugated)."""
    return functools.reduce(operator.add, [jnp.vdot(a, b) for a, b in
                                           zip(tree_leaves(x), tree_leaves(y))])


def _vdot_real(x, y):
    """The real part of _vdot(x, y), a real scalar."""
    return jnp.real(_vdot(x, y))


def _norm(x):
    return jnp.sqrt(_vdot_real(x, x))


def _axpy(a, x, y):
    """a * x + y on pytrees (a a scalar)."""
    return tree_map(lambda u, v: a * u + v, x, y)


def _sub(x, y):
    return tree_map(operator.sub, x, y)


def _all_finite(x):
    return functools.reduce(jnp.logical_and, [jnp.all(jnp.isfinite(v)) for v in tree_leaves(x)])


def _nan_where(bad, x):
    """x, or NaN everywhere when bad."""
    return tree_map(lambda v: jnp.where(bad, jnp.full_like(v, np.nan), v), x)


def _identity(x):
    return x


def _as_operator(A, name):
    """A as a function x -> A x: a callable as it is, a square 2-d array as a matrix product."""
    if callable(A) and not hasattr(A, "shape"):
        return A
    if hasattr(A, "shape") or isinstance(A, (list, tuple)):
        A = core.as_array(A)
        shape = core.get_aval(A).shape
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"{name}: linear operator must be a square matrix, but has shape "
                             f"{shape}{core.where()}")
        return functools.partial(jnp.matmul, A)
    raise TypeError(f"{name}: linear operator must be either a function or ndarray, got "
                    f"{type(A).__name__}{core.where()}")


def _shapes(tree):
    return [np.shape(v) for v in tree_leaves(tree)]


def _setup(name, A, b, x0, maxiter, M):
    """Checked (A, b, x0, maxiter, M)."""
    A = _as_operator(A, name)
    M = _identity if M is None else _as_operator(M, f"{name} (M)")
    b = tree_map(core.as_array, b)
    if not tree_leaves(b):
        raise ValueError(f"{name}: b has no arrays{core.where()}")
    x0 = tree_map(jnp.zeros_like, b) if x0 is None else tree_map(core.as_array, x0)
    if tree_structure(x0) != tree_structure(b):
        raise ValueError(f"{name}: x0 and b must have matching tree structure: "
                         f"{tree_structure(x0)} vs {tree_structure(b)}{core.where()}")
    if _shapes(x0) != _shapes(b):
        raise ValueError(f"{name}: arrays in x0 and b must have matching shapes: "
                         f"{_shapes(x0)} vs {_shapes(b)}{core.where()}")
    if maxiter is None:
        maxiter = 10 * sum(int(np.prod(s)) for s in _shapes(b))     # as SciPy
    return A, b, x0, int(maxiter), M


def _tolerance2(b, tol, atol):
    """The squared stopping threshold max(tol^2 |b|^2, atol^2)."""
    return jnp.maximum(jnp.square(tol) * _vdot_real(b, b), jnp.square(atol))


def _info(bad, converged, k):
    """The int32 info: -1 when bad, 0 when converged, else k."""
    return jnp.where(bad, NONFINITE, jnp.where(converged, 0, k)).astype(np.int32)


def _solve(name, solver, A, b, x0, tol, atol, maxiter, M, symmetric):
    A, b, x0, maxiter, M = _setup(name, A, b, x0, maxiter, M)

    def solve(matvec, rhs):
        return solver(matvec, rhs, x0, tol=tol, atol=atol, maxiter=maxiter, M=M)
    return custom_linear_solve(A, b, solve, transpose_solve=solve, symmetric=symmetric,
                               has_aux=True)


def _real_valued(b):
    return all(not np.issubdtype(np.dtype(core.get_aval(v).dtype), np.complexfloating)
               for v in tree_leaves(b))


# ---------------------------------------------------------------------------------------------
# Conjugate gradients

def _cg(A, b, x0, *, tol, atol, maxiter, M):
    """(x, info) of preconditioned CG from x0."""
    tol2 = _tolerance2(b, tol, atol)
    plain = M is _identity

    def residual2(r, gamma):
        return jnp.real(gamma) if plain else _vdot_real(r, r)

    def going(state):
        _, r, gamma, _, k = state
        rs = residual2(r, gamma)
        return (rs > tol2) & (k < maxiter) & jnp.isfinite(rs)

    def step(state):
        x, r, gamma, p, k = state
        ap = A(p)
        alpha = gamma / _vdot_real(p, ap).astype(gamma.dtype)
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, ap, r)
        z = M(r)
        gamma_new = _vdot_real(r, z).astype(gamma.dtype)
        p = _axpy(gamma_new / gamma, p, z)
        return x, r, gamma_new, p, k + 1

    r0 = _sub(b, A(x0))
    z0 = M(r0)
    dtype = jnp.result_type(*tree_leaves(z0))
    gamma0 = _vdot_real(r0, z0).astype(dtype)
    x, r, gamma, _, k = cf.while_loop(going, step, (x0, r0, gamma0, z0, jnp.int32(0)))
    rs = residual2(r, gamma)
    bad = ~(jnp.isfinite(rs) & _all_finite(x))
    return _nan_where(bad, x), _info(bad, rs <= tol2, k)


def cg(A, b, x0=None, *, tol=1e-5, atol=0.0, maxiter=None, M=None):
    """Solve A x = b by (preconditioned) conjugate gradients, A Hermitian positive definite
    (not checked, as JAX: a non-symmetric A gives a wrong x, maybe with info 0).

    A: a square matrix or a function x -> A x on pytrees like b; b: an array or pytree of
    arrays; x0: the starting guess (zeros); stops when |r| <= max(tol |b|, atol) or after
    maxiter iterations (10 * size of b); M: a preconditioner approximating A^-1 (matrix or
    function). Returns (x, info): info 0 converged, k > 0 not converged in k iterations, -1 a
    non-finite value appeared (x is then NaN). Derivatives of x solve again with cg."""
    return _solve("cg", _cg, A, b, x0, tol, atol, maxiter, M, symmetric=_real_valued(b))


# ---------------------------------------------------------------------------------------------
# BiCGSTAB

RHO_BREAKDOWN, OMEGA_BREAKDOWN = -10, -11


def _bicgstab(A, b, x0, *, tol, atol, maxiter, M):
    """(x, info) of preconditioned BiCGSTAB from x0 (SciPy's and JAX's recurrences)."""
    tol2 = _tolerance2(b, tol, atol)

    def going(state):
        _, r, *_, k = state
        rs = _vdot_real(r, r)
        return (rs > tol2) & (k < maxiter) & (k >= 0) & jnp.isfinite(rs)

    def step(state):
        x, r, rhat, alpha, omega, rho, p, q, k = state
        rho_new = _vdot(rhat, r)
        beta = rho_new / rho * alpha / omega
        p = tree_map(lambda r_, p_, q_: r_ + beta * (p_ - omega * q_), r, p, q)
        phat = M(p)
        q = A(phat)
        alpha = rho_new / _vdot(rhat, q)
        s = _axpy(-alpha, q, r)
        done = _vdot_real(s, s) < tol2
        shat = M(s)
        t = A(shat)
        omega = _vdot(t, s) / _vdot(t, t)
        x_half = _axpy(alpha, phat, x)
        x = tree_map(lambda h, u: jnp.where(done, h, h + omega * u), x_half, shat)
        r = tree_map(lambda s_, t_: jnp.where(done, s_, s_ - omega * t_), s, t)
        k = jnp.where((omega == 0) | (alpha == 0), OMEGA_BREAKDOWN, k + 1)
        k = jnp.where(rho_new == 0, RHO_BREAKDOWN, k).astype(np.int32)
        return x, r, rhat, alpha, omega, rho_new, p, q, k

    r0 = _sub(b, A(x0))
    one = jnp.ones((), jnp.result_type(*tree_leaves(b)))
    x, r, *_, k = cf.while_loop(going, step, (x0, r0, r0, one, one, one, r0, r0, jnp.int32(0)))
    rs = _vdot_real(r, r)
    bad = ~(jnp.isfinite(rs) & _all_finite(x))
    info = jnp.where(k < 0, k, _info(bad, rs <= tol2, k)).astype(np.int32)
    return _nan_where(bad, x), jnp.where(bad, NONFINITE, info).astype(np.int32)


def bicgstab(A, b, x0=None, *, tol=1e-5, atol=0.0, maxiter=None, M=None):
    """Solve A x = b (A any square linear operator) by preconditioned BiCGSTAB. Arguments as
    ``cg``. Returns (x, info): info 0 converged, k > 0 not converged in k iterations, -1 a
    non-finite value appeared (x is then NaN), -10 / -11 breakdown (rho / omega == 0; x is
    the last iterate). Derivatives of x solve the transposed system with bicgstab."""
    return _solve("bicgstab", _bicgstab, A, b, x0, tol, atol, maxiter, M, symmetric=False)


# ---------------------------------------------------------------------------------------------
# GMRES: restarted, with the Krylov basis stored as a trailing axis of each leaf

def _normalize(x, floor=0.0):
    """(x / |x|, |x|), or (0, 0) when |x| <= floor."""
    n = _norm(x)
    ok = n > floor
    return tree_map(lambda v: jnp.where(ok, v / n.astype(v.dtype), jnp.zeros_like(v)), x), \
        jnp.where(ok, n, jnp.zeros_like(n))


def _i32(i):
    return jnp.asarray(i, np.int32)


def _window(v, start, size):
    """v[..., start:start + size] along the last axis (start may be traced)."""
    starts = [_i32(0)] * (v.ndim - 1) + [_i32(start)]
    return lax_slicing.dynamic_slice(v, starts, v.shape[:-1] + (size,))


def _entry(v, i):
    """v[..., i] (i may be traced)."""
    return jnp.reshape(_window(v, i, 1), v.shape[:-1])


def _put(v, i, u):
    """v with v[..., i:i + len] replaced by u (u has v's leading axes)."""
    starts = [_i32(0)] * (v.ndim - 1) + [_i32(i)]
    return lax_slicing.dynamic_update_slice(v, u.astype(v.dtype), starts)


def _column(V, k):
    return tree_map(lambda v: _entry(v, k), V)


def _project(V, w):
    """V^H w: the overlaps of w with every basis column (a vector of restart + 1)."""
    return functools.reduce(operator.add, [
        jnp.einsum("...n,...->n", jnp.conj(v), u) for v, u in zip(tree_leaves(V), tree_leaves(w))])


def _combine(V, h):
    """V h: the combination of the basis columns with coefficients h."""
    return tree_map(lambda v: jnp.einsum("...n,n->...", v, h), V)


def _arnoldi_step(k, A, M, V):
    """Extend the orthonormal basis V by column k + 1 (classical Gram-Schmidt, twice).
    Returns (V, h, breakdown): h the new Hessenberg column (length restart + 1)."""
    w = M(A(_column(V, k)))
    w_norm0 = _norm(w)
    h = _project(V, w)
    w = _sub(w, _combine(V, h))
    h2 = _project(V, w)
    w = _sub(w, _combine(V, h2))
    eps = jnp.finfo(w_norm0.dtype).eps
    unit, w_norm = _normalize(w, floor=eps * w_norm0)
    V = tree_map(lambda v, u: _put(v, k + 1, u[..., None]), V, unit)
    h = _put(h + h2, k + 1, jnp.reshape(w_norm, (1,)))
    return V, h, w_norm == 0


def _givens(a, b):
    """(c, s) with the rotation [[c*, -s*], [s, c]] taking (a, b) to (r, 0)."""
    b_zero = jnp.abs(b) == 0
    a_lt_b = jnp.abs(a) < jnp.abs(b)
    t = -jnp.where(a_lt_b, a, b) / jnp.where(a_lt_b, b, jnp.where(b_zero, 1, a))
    r = (1 / jnp.sqrt(1 + jnp.abs(t) ** 2)).astype(t.dtype)
    c = jnp.where(b_zero, 1, jnp.where(a_lt_b, r * t, r))
    s = jnp.where(b_zero, 0, jnp.where(a_lt_b, r, r * t))
    return c, s


def _rotate(v, i, c, s):
    """v with entries (i, i + 1) rotated by (c, s)."""
    pair = _window(v, i, 2)
    x, y = pair[0], pair[1]
    return _put(v, i, jnp.stack([jnp.conj(c) * x - jnp.conj(s) * y, s * x + c * y]))


def _triangularize(h, cs, sn, k):
    """Apply the k earlier rotations (cs, sn) to column h, then a new one zeroing h[k + 1].
    Returns (h, cs, sn)."""
    h = cf.fori_loop(0, k, lambda i, v: _rotate(v, i, _entry(cs, i), _entry(sn, i)), h)
    c, s = _givens(_entry(h, k), _entry(h, k + 1))
    return _rotate(h, k, c, s), _put(cs, k, c[None]), _put(sn, k, s[None])


def _back_substitute(R, beta):
    """y with U y = beta for U = R[:, :-1]^T upper triangular (R holds U's columns as rows)."""
    n = R.shape[0]

    def row(j, y):
        i = n - 1 - j
        col = jnp.reshape(_window(R, i, 1), (n,))
        return _put(y, i, ((_entry(beta, i) - jnp.dot(col, y)) / _entry(col, i))[None])
    return cf.fori_loop(0, n, row, jnp.zeros(n, beta.dtype))


def _gmres_cycle(A, M, b, x, unit_r, r_norm, ptol, restart, early_exit):
    """One restart cycle: Arnoldi with Givens rotations; with early_exit the cycle stops as
    soon as the rotated residual estimate meets ptol. Returns (x, unit residual, |residual|)."""
    V = tree_map(lambda v: jnp.pad(v[..., None], [(0, 0)] * v.ndim + [(0, restart)]), unit_r)
    dtype = jnp.result_type(*tree_leaves(b))
    R = jnp.eye(restart, restart + 1, dtype=dtype)
    cs = sn = jnp.zeros(restart, dtype)
    beta = _put(jnp.zeros(restart + 1, dtype), 0, jnp.reshape(r_norm, (1,)))

    def going(state):
        k, err, broke, *_ = state
        more = (k < restart) & ~broke
        return (more & (err > ptol)) if early_exit else more

    def step(state):
        k, _, _, V, R, beta, cs, sn = state
        V, h, broke = _arnoldi_step(k, A, M, V)
        h, cs, sn = _triangularize(h, cs, sn, k)
        R = lax_slicing.dynamic_update_slice(R, h[None], [k, _i32(0)])
        beta = _rotate(beta, k, _entry(cs, k), _entry(sn, k))
        return k + 1, jnp.abs(_entry(beta, k + 1)), broke, V, R, beta, cs, sn

    state = (_i32(0), r_norm, jnp.bool_(False), V, R, beta, cs, sn)
    _, _, _, V, R, beta, _, _ = cf.while_loop(going, step, state)
    y = _back_substitute(R, beta)
    x = tree_map(lambda u, v: u + jnp.einsum("...n,n->...", v[..., :-1], y), x, V)
    unit_r, r_norm = _normalize(M(_sub(b, A(x))))
    return x, unit_r, r_norm


def _gmres(A, b, x0, *, tol, atol, maxiter, M, restart, early_exit):
    """(x, info) of restarted GMRES, left-preconditioned by M (residuals are M (b - A x))."""
    b_norm = _norm(b)
    tol_abs = jnp.maximum(tol * b_norm, atol)
    ptol = _norm(M(b)) * jnp.minimum(1.0, tol_abs / jnp.where(b_norm > 0, b_norm, 1))
    unit_r, r_norm = _normalize(M(_sub(b, A(x0))))

    def going(state):
        _, k, _, r_norm = state
        return (k < maxiter) & (r_norm > ptol) & jnp.isfinite(r_norm)

    def step(state):
        x, k, unit_r, r_norm = state
        x, unit_r, r_norm = _gmres_cycle(A, M, b, x, unit_r, r_norm, ptol, restart, early_exit)
        return x, k + 1, unit_r, r_norm

    x, k, _, r_norm = cf.while_loop(going, step, (x0, jnp.int32(0), unit_r, r_norm))
    bad = ~(jnp.isfinite(r_norm) & _all_finite(x))
    return _nan_where(bad, x), _info(bad, r_norm <= ptol, k)


def gmres(A, b, x0=None, *, tol=1e-5, atol=0.0, restart=20, maxiter=None, M=None,
          solve_method="batched"):
    """Solve A x = b (A any square linear operator) by restarted GMRES: ``restart`` Krylov
    vectors per cycle, at most ``maxiter`` cycles (10 * size of b). ``solve_method``:
    'incremental' ends a cycle as soon as the Givens residual estimate meets the tolerance;
    'batched' always builds the whole Krylov space of a cycle (stopping only on breakdown).
    Other arguments as ``cg``; the preconditioner is applied on the left and the tolerance to
    the preconditioned residual, as JAX. Returns (x, info): info 0 converged, k > 0 not
    converged in k cycles, -1 a non-finite value appeared (x is then NaN). Derivatives of x
    solve the transposed system with gmres."""
    if solve_method not in ("incremental", "batched"):
        raise ValueError(f"gmres: invalid solve_method {solve_method!r}, must be either "
                         f"'incremental' or 'batched'{core.where()}")
    size = sum(int(np.prod(s)) for s in _shapes(b))
    restart = min(int(restart), size)
    if restart < 1:
        raise ValueError(f"gmres: restart must be positive, got {restart}{core.where()}")
    solver = functools.partial(_gmres, restart=restart, early_exit=solve_method == "incremental")
    return _solve("gmres", solver, A, b, x0, tol, atol, maxiter, M, symmetric=False)
