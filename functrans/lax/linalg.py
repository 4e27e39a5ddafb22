"""Linear-algebra primitives (as JAX's lax.linalg): cholesky, triangular_solve, lu, qr, eigh,
svd and eig. Every other linear-algebra function (functrans.numpy.linalg, functrans.scipy.linalg)
is composed of these and ordinary lax ops.

Each primitive works on float32/float64/complex64/complex128 matrices in the last two axes,
with any leading batch axes, and has beside it: its impl (NumPy/SciPy LAPACK, which loop over
the batch), abstract eval (non-square input to a square-only primitive raises NumPy's
LinAlgError), jvp from the standard matrix-calculus results (written in lax ops, so derivatives
of every order exist), transpose (triangular_solve, linear in b) and batching (the batch axis
moved to the front).

They are ``core.host_primitives``: compiled backends run them by their impl as host steps
between kernels (CPU: NumPy on the host arrays; CUDA: copied to the host and back). Eagerly the
impl raises NumPy's LinAlgError where NumPy does (a singular triangular factor, an eigensolver
that does not converge); compiled, the same failure gives NaN results, as JAX documents
(``core.host_impl_rules``). cholesky of a matrix that is not positive definite gives NaNs in both.
Complex matrices follow JAX's conventions: conjugate transposes where the real rules have
transposes, real eigenvalues (eigh) and singular values (svd), and JAX's linear (not
conjugate-linear) transposes.
"""
from __future__ import annotations


import numpy as np

from .. import core
from ..core import ShapedArray, get_aval
from ..interpreters import ad, batching
from ..interpreters.ad import NotLinearError, UndefPrimal, Zero
from ..interpreters.batching import axis_size_of, bdim_at_front
from . import lax
from .lax import _check_kind, _inexact, primitive
from .slicing import concatenate, gather
from .slicing import slice as _slice

__all__ = ["cholesky", "triangular_solve", "lu", "qr", "eigh", "svd", "eig",
           "lu_pivots_to_permutation", "cholesky_p", "triangular_solve_p", "lu_p", "qr_p",
           "eigh_p", "svd_p", "eig_p", "lu_pivots_to_permutation_p",
           "matmul", "matrix_transpose", "tril", "triu", "diagonal", "diag_embed", "eye_like",
           "permute_rows", "adjoint", "LinAlgError"]

LinAlgError = np.linalg.LinAlgError


# ---------------------------------------------------------------------------------------------
# Traceable helpers over the last two axes (batch axes leading), used by the rules here and by
# functrans.numpy.linalg / functrans.scipy.linalg

def matrix_transpose(x):
    """x with its last two axes swapped."""
    nd = get_aval(x).ndim
    return lax.transpose(x, tuple(range(nd - 2)) + (nd - 1, nd - 2))


def adjoint(x):
    """The conjugate transpose of x's matrices (the transpose for real x)."""
    t = matrix_transpose(x)
    return lax.conj(t) if get_aval(x).dtype.kind == "c" else t


def _real_part(x):
    """Re x (x itself when real), in x's dtype."""
    if get_aval(x).dtype.kind != "c":
        return x
    return lax.convert_element_type(lax.real(x), get_aval(x).dtype)


def _to_dtype_of(x, like):
    """x converted to like's dtype."""
    return lax.convert_element_type(x, get_aval(like).dtype)


def matmul(a, b):
    """a @ b for operands of equal rank >= 2 and equal leading (batch) shapes."""
    nd = get_aval(a).ndim
    batch = tuple(range(nd - 2))
    return lax.dot_general(a, b, (((nd - 1,), (nd - 2,)), (batch, batch)))


def _tri_mask(shape, k, lower):
    """Boolean mask (broadcast to shape) of the elements on or below (lower) / above diagonal k."""
    nd = len(shape)
    row = lax.broadcasted_iota(np.int64, shape, nd - 2)
    col = lax.broadcasted_iota(np.int64, shape, nd - 1)
    diff = lax.sub(col, row)
    kk = lax.full(shape, k, np.int64)
    return lax.le(diff, kk) if lower else lax.ge(diff, kk)


def tril(x, k=0):
    """x with the elements above diagonal k zeroed."""
    a = get_aval(x)
    return lax.select(_tri_mask(a.shape, k, True), x, lax.full(a.shape, 0, a.dtype))


def triu(x, k=0):
    """x with the elements below diagonal k zeroed."""
    a = get_aval(x)
    return lax.select(_tri_mask(a.shape, k, False), x, lax.full(a.shape, 0, a.dtype))


def eye_like(x, n=None, cols=None):
    """The n x cols identity (n: x's last axis, cols: n by default) in x's dtype, broadcast over
    x's batch shape."""
    a = get_aval(x)
    n = a.shape[-1] if n is None else n
    shape = a.shape[:-2] + (n, n if cols is None else cols)
    nd = len(shape)
    eq = lax.eq(lax.broadcasted_iota(np.int64, shape, nd - 2),
                lax.broadcasted_iota(np.int64, shape, nd - 1))
    return lax.convert_element_type(eq, a.dtype)


def diagonal(x):
    """The main diagonal of each matrix of x (shape (..., min(m, n)))."""
    a = get_aval(x)
    m, n = a.shape[-2:]
    k = min(m, n)
    if (m, n) != (k, k):
        x = _slice(x, (0,) * a.ndim, a.shape[:-2] + (k, k))
    return lax.reduce_sum(lax.mul(x, eye_like(x, k)), (a.ndim - 1,))


def diag_embed(v):
    """The diagonal matrices with diagonals v (shape (..., n) -> (..., n, n))."""
    a = get_aval(v)
    n = a.shape[-1]
    full = lax.broadcast_in_dim(v, a.shape + (n,), tuple(range(a.ndim - 1)) + (a.ndim,))
    return lax.mul(full, eye_like(full))


def permute_rows(x, perm):
    """x[..., perm, :] with perm of shape (..., m) sharing x's batch shape (a gather, so its
    transpose is a scatter-add)."""
    ps = get_aval(perm).shape
    nb = len(ps) - 1
    cols = [lax.broadcasted_iota(np.int64, ps + (1,), d) for d in range(nb)]
    cols.append(lax.reshape(lax.convert_element_type(perm, np.int64), ps + (1,)))
    idx = concatenate(cols, nb + 1) if nb else cols[0]
    return gather(x, idx, tuple(range(nb + 1)))


def _mul_scalar(x, c):
    a = get_aval(x)
    return lax.mul(x, lax.full(a.shape, c, a.dtype))


# ---------------------------------------------------------------------------------------------
# Shared rule machinery

def _check_matrix(name, x, square=False):
    _check_kind(name, x, _inexact)
    if x.ndim < 2:
        raise LinAlgError(f"{name}: {x.ndim}-dimensional array given. Array must be at least "
                          f"two-dimensional{core.where()}")
    if square and x.shape[-1] != x.shape[-2]:
        raise LinAlgError(f"{name}: last 2 dimensions of the array must be square, got shape "
                          f"{x.shape}{core.where()}")


def _nan_like(aval):
    if aval.dtype.kind in "fc":
        return np.full(aval.shape, np.nan, aval.dtype)
    return np.zeros(aval.shape, aval.dtype)


def _register(p, impl, aval, compiled_nan=True):
    """Registers p's batching rule (batch axis to the front: every impl takes leading batch
    axes), marks it a host primitive, and its compiled impl: NaN results where impl raises
    LinAlgError (JAX's convention under jit)."""
    def batch(vals, dims, **params):
        size = axis_size_of(vals, dims)
        out = p.bind(*[bdim_at_front(v, d, size) for v, d in zip(vals, dims)], **params)
        return out, ([0] * len(out) if p.multiple_results else 0)
    batching.batch_rules[p] = batch
    core.host_primitives.add(p)
    if compiled_nan:
        def compiled(*args, **params):
            try:
                return impl(*args, **params)
            except LinAlgError:
                out = aval(*[ShapedArray(np.shape(a), np.asarray(a).dtype) for a in args],
                           **params)
                return [_nan_like(o) for o in out] if p.multiple_results else _nan_like(out)
        core.host_impl_rules[p] = compiled


# ---------------------------------------------------------------------------------------------
# cholesky: the lower factor L of a = L L^H (NaNs where a is not positive definite)

def _cholesky_impl(a):
    """LAPACK's potrf on each matrix's transpose (a Fortran-ordered view, so no transposing
    copy): the upper factor U of a^T = U^H U is L^T, read from a's lower triangle. 2-3x faster
    than numpy.linalg.cholesky at n >= 256 here. NaNs where a is not positive definite."""
    if a.size == 0:
        return a.copy()
    potrf = _lapack("potrf", a.dtype)
    flat = a.reshape((-1,) + a.shape[-2:])
    out = np.empty_like(flat)
    for i, m in enumerate(flat):
        u, info = potrf(m.T, lower=0, clean=1)
        out[i] = u.T if info == 0 else np.nan
    return out.reshape(a.shape)


def _cholesky_aval(a):
    _check_matrix("cholesky", a, square=True)
    return a


cholesky_p = primitive("cholesky", _cholesky_impl, _cholesky_aval)
_register(cholesky_p, _cholesky_impl, _cholesky_aval, compiled_nan=False)


def cholesky(a):
    """The lower Cholesky factor L (a = L L^H) of each Hermitian (real: symmetric)
    positive-definite matrix of a, reading its lower triangle; NaNs where a is not positive
    definite (as JAX)."""
    return cholesky_p.bind(a)


def _phi(x):
    """The lower triangle of x with its diagonal halved."""
    return lax.sub(tril(x), _mul_scalar(lax.mul(x, eye_like(x)), 0.5))


def _cholesky_jvp(primals, tangents):
    # dL = L phi(L^-1 dA L^-H) for a Hermitian tangent dA
    (a,), (da,) = primals, tangents
    L = cholesky_p.bind(a)
    if type(da) is Zero:
        return L, Zero.like(L)
    tmp = triangular_solve(L, da, left_side=False, lower=True, transpose_a=True,
                           conjugate_a=True)
    inner = triangular_solve(L, tmp, left_side=True, lower=True)
    return L, matmul(L, _phi(inner))


ad.jvp_rules[cholesky_p] = _cholesky_jvp


# ---------------------------------------------------------------------------------------------
# triangular_solve: x with op(a) x = b (left_side) or x op(a) = b, op(a) = a, a^T, conj(a), a^H

def _lapack(name, dtype, _cache={}):
    """scipy's wrapper of LAPACK routine name for dtype (sgetrf, zpotrf, ...)."""
    f = _cache.get((name, dtype))
    if f is None:
        probe = np.empty((1, 1), dtype)
        f = _cache[name, dtype] = _scipy_linalg().lapack.get_lapack_funcs(name, (probe,))
    return f


def _scipy_linalg():
    """scipy.linalg, imported on first use (a warm process that never factors a matrix does
    not pay its import time: tests/test_jit.py)."""
    import scipy.linalg
    return scipy.linalg


def _solve_left(a, b, trans, lower, unit_diagonal):
    """x with op(a) x = b, op = identity, transpose (trans 1) or adjoint (trans 2). One
    matrix: LAPACK's trtrs directly (scipy's solve_triangular costs a quarter of a jitted
    solve at n = 256 in argument checks); stacks: scipy's, which broadcasts."""
    if a.ndim == 2 and a.size:
        x, info = _lapack("trtrs", a.dtype)(a, b, lower=int(lower), trans=trans,
                                            unitdiag=int(unit_diagonal))
        if info > 0:
            raise LinAlgError("Singular matrix")
        return x
    if not unit_diagonal and a.size and np.any(np.diagonal(a, axis1=-2, axis2=-1) == 0):
        raise LinAlgError("Singular matrix")
    return _scipy_linalg().solve_triangular(a, b, trans=trans, lower=lower,
                                            unit_diagonal=unit_diagonal, check_finite=False)


def _triangular_solve_impl(a, b, *, left_side, lower, transpose_a, conjugate_a,
                          unit_diagonal):
    if conjugate_a:
        a = np.conjugate(a)
    with np.errstate(all="ignore"):
        if left_side:
            x = _solve_left(a, b, int(transpose_a), lower, unit_diagonal)
        else:       # x op(a) = b  <=>  op(a)^T x^T = b^T
            bt = np.swapaxes(b, -1, -2)
            x = np.swapaxes(_solve_left(a, bt, int(not transpose_a), lower, unit_diagonal),
                            -1, -2)
    return np.asarray(x, dtype=b.dtype)


def _triangular_solve_aval(a, b, *, left_side, lower, transpose_a, conjugate_a,
                          unit_diagonal):
    _check_matrix("triangular_solve", a, square=True)
    _check_matrix("triangular_solve", b)
    if a.dtype != b.dtype:
        raise TypeError(f"triangular_solve: a and b must have one dtype, got {a.dtype.name} and "
                        f"{b.dtype.name}{core.where()}")
    n = a.shape[-1]
    k = b.shape[-2] if left_side else b.shape[-1]
    if a.shape[:-2] != b.shape[:-2] or k != n:
        raise ValueError(f"triangular_solve: shapes {a.shape} and {b.shape} do not match "
                         f"(left_side={left_side}){core.where()}")
    return b


triangular_solve_p = primitive("triangular_solve", _triangular_solve_impl, _triangular_solve_aval)
_register(triangular_solve_p, _triangular_solve_impl, _triangular_solve_aval)


def triangular_solve(a, b, *, left_side=False, lower=False, transpose_a=False,
                     conjugate_a=False, unit_diagonal=False):
    """x solving op(a) x = b (left_side) or x op(a) = b, where op(a) is a, a^T, conj(a) or a^H
    (transpose_a, conjugate_a) and a is triangular (lower or upper; with unit_diagonal its
    diagonal is taken to be ones). As JAX's lax.linalg.triangular_solve (left_side=False by
    default); conjugate_a does nothing for real a."""
    conjugate_a = bool(conjugate_a) and get_aval(a).dtype.kind == "c"
    return triangular_solve_p.bind(a, b, left_side=bool(left_side), lower=bool(lower),
                                   transpose_a=bool(transpose_a), conjugate_a=conjugate_a,
                                   unit_diagonal=bool(unit_diagonal))


def _used_triangle(da, lower, unit_diagonal):
    k = -1 if unit_diagonal else 0
    return tril(da, k) if lower else triu(da, -k)


def _triangular_solve_jvp_a(g, ans, a, b, *, left_side, lower, transpose_a, conjugate_a,
                          unit_diagonal):
    # op(a) x = b  =>  dx = -op(a)^-1 op(da) x   (x op(a) = b  =>  dx = -x op(da) op(a)^-1)
    dm = _used_triangle(g, lower, unit_diagonal)
    dm = matrix_transpose(dm) if transpose_a else dm
    dm = lax.conj(dm) if conjugate_a else dm
    rhs = matmul(dm, ans) if left_side else matmul(ans, dm)
    return lax.neg(triangular_solve_p.bind(a, rhs, left_side=left_side, lower=lower,
                                           transpose_a=transpose_a, conjugate_a=conjugate_a,
                                           unit_diagonal=unit_diagonal))


def _triangular_solve_jvp_b(g, ans, a, b, **params):
    return triangular_solve_p.bind(a, g, **params)


ad.defjvp2(triangular_solve_p, _triangular_solve_jvp_a, _triangular_solve_jvp_b)


def _triangular_solve_transpose(ct, a, b, *, left_side, lower, transpose_a, conjugate_a,
                          unit_diagonal):
    if isinstance(a, UndefPrimal):
        raise NotLinearError("triangular_solve is linear in b only, not in the matrix a")
    if type(ct) is Zero:
        return [None, None]
    # the linear (not conjugate-linear) transpose, as JAX: op(a)^-T
    return [None, triangular_solve_p.bind(a, ct, left_side=left_side, lower=lower,
                                          transpose_a=not transpose_a, conjugate_a=conjugate_a,
                                          unit_diagonal=unit_diagonal)]


ad.transpose_rules[triangular_solve_p] = _triangular_solve_transpose


# ---------------------------------------------------------------------------------------------
# lu: (lu, pivots, permutation) with a[..., permutation, :] = L U (partial pivoting)

def _permutation_from_pivots(piv, m):
    """The row swaps applied in order: LAPACK's laswp applied to the column 0..m-1 (a Python
    loop over the swaps costs 3x as much at m = 256, half the time of a whole solve)."""
    laswp = _scipy_linalg().lapack.dlaswp
    rows = np.arange(m, dtype=np.float64).reshape(m, 1)
    flat = piv.reshape(-1, piv.shape[-1])
    out = np.empty((flat.shape[0], m), np.int32)
    for i, p in enumerate(flat):
        out[i] = laswp(rows, p).ravel() if len(p) else rows.ravel()
    return out.reshape(piv.shape[:-1] + (m,))


def _lu_impl(a):
    m, n = a.shape[-2:]
    if a.size == 0:
        k = min(m, n)
        return [a.copy(), np.zeros(a.shape[:-2] + (k,), np.int32),
                np.broadcast_to(np.arange(m, dtype=np.int32), a.shape[:-2] + (m,)).copy()]
    getrf = _lapack("getrf", a.dtype)
    # info > 0: exactly singular (U has a zero pivot). LAPACK's Fortran-ordered factors are
    # kept so: a C-ordered copy would cost a transpose, and any copy the page faults of a
    # fresh buffer (half the time of the factorisation at n = 256)
    factors = [getrf(x)[:2] for x in a.reshape((-1, m, n))]
    lu_ = factors[0][0] if a.ndim == 2 else np.stack([f[0] for f in factors])
    piv = np.stack([f[1] for f in factors]).astype(np.int32, copy=False)
    piv = piv.reshape(a.shape[:-2] + piv.shape[-1:])
    return [lu_.reshape(a.shape), piv, _permutation_from_pivots(piv, m)]


def _lu_aval(a):
    _check_matrix("lu", a)
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    return [a, ShapedArray(batch + (min(m, n),), np.dtype(np.int32)),
            ShapedArray(batch + (m,), np.dtype(np.int32))]


lu_p = primitive("lu", _lu_impl, _lu_aval, multiple_results=True)
_register(lu_p, _lu_impl, _lu_aval, compiled_nan=False)


def lu(a):
    """(lu, pivots, permutation): the LU decomposition with partial pivoting of each matrix of
    a. lu holds L (unit diagonal, strictly below) and U (on and above); pivots[i] is the row
    swapped with row i (int32); a[permutation, :] = L @ U. As JAX's lax.linalg.lu."""
    return lu_p.bind(a)


def _block(x, rows, cols):
    """x[..., rows[0]:rows[1], cols[0]:cols[1]]."""
    shape = get_aval(x).shape
    batch = (0,) * (len(shape) - 2)
    return _slice(x, batch + (rows[0], cols[0]), shape[:-2] + (rows[1], cols[1]))


def _lu_square_tangent(lu_k, pda_k):
    """(dL, dU) of the square k x k leading factors, packed lu_k: P dA = dL U + L dU, so
    L^-1 P dA U^-1 = L^-1 dL + dU U^-1, a strictly lower plus an upper triangle."""
    la = triangular_solve(lu_k, pda_k, left_side=True, lower=True, unit_diagonal=True)
    f = triangular_solve(lu_k, la, left_side=False, lower=False)
    L = lax.add(tril(lu_k, -1), eye_like(lu_k))
    return matmul(L, tril(f, -1)), matmul(triu(f), triu(lu_k))


def _lu_jvp(primals, tangents):
    """The packed tangent of lu. A tall a (m > n) adds the rows of L below the square factors:
    dL2 = (P dA2 - L2 dU) U^-1; a wide one (m < n) the columns of U beside them:
    dU2 = L^-1 (P dA2 - dL U2)."""
    (a,), (da,) = primals, tangents
    out = lu_p.bind(a)
    lu_, _, perm = out
    zeros = [Zero.like(o) for o in out]
    if type(da) is Zero:
        return out, zeros
    m, n = get_aval(a).shape[-2:]
    k = min(m, n)
    pda = permute_rows(da, perm)
    lu_k = _block(lu_, (0, k), (0, k))
    dl, du = _lu_square_tangent(lu_k, _block(pda, (0, k), (0, k)))
    dlu = lax.add(dl, du)
    if m > n:
        rest = lax.sub(_block(pda, (k, m), (0, n)), matmul(_block(lu_, (k, m), (0, n)), du))
        dl2 = triangular_solve(lu_k, rest, left_side=False, lower=False)
        dlu = concatenate([dlu, dl2], len(get_aval(a).shape) - 2)
    elif m < n:
        rest = lax.sub(_block(pda, (0, m), (k, n)), matmul(dl, _block(lu_, (0, m), (k, n))))
        du2 = triangular_solve(lu_k, rest, left_side=True, lower=True, unit_diagonal=True)
        dlu = concatenate([dlu, du2], len(get_aval(a).shape) - 1)
    return out, [dlu, zeros[1], zeros[2]]


ad.jvp_rules[lu_p] = _lu_jvp


# ---------------------------------------------------------------------------------------------
# qr: (q, r) with a = q r, q orthonormal columns, r upper triangular

def _qr_impl(a, *, full_matrices):
    q, r = np.linalg.qr(a, mode="complete" if full_matrices else "reduced")
    return [np.asarray(q, a.dtype), np.asarray(r, a.dtype)]


def _qr_aval(a, *, full_matrices):
    _check_matrix("qr", a)
    m, n = a.shape[-2:]
    k = m if full_matrices else min(m, n)
    b = a.shape[:-2]
    return [ShapedArray(b + (m, k), a.dtype), ShapedArray(b + (k, n), a.dtype)]


qr_p = primitive("qr", _qr_impl, _qr_aval, multiple_results=True)
_register(qr_p, _qr_impl, _qr_aval)


def qr(a, *, full_matrices=True):
    """(q, r): the QR decomposition of each matrix of a (q: m x m with full_matrices, else
    m x min(m, n)). As JAX's lax.linalg.qr."""
    return qr_p.bind(a, full_matrices=bool(full_matrices))


def _qr_jvp(primals, tangents, *, full_matrices):
    (a,), (da,) = primals, tangents
    q, r = out = qr_p.bind(a, full_matrices=full_matrices)
    if type(da) is Zero:
        return out, [Zero.like(q), Zero.like(r)]
    m, n = get_aval(a).shape[-2:]
    if m < n or (full_matrices and m > n):
        raise NotImplementedError(f"jvp of qr needs m >= n and full_matrices=False when m > n "
                                  f"(as JAX), got shape {get_aval(a).shape}{core.where()}")
    # dA R^-1 = Q X with X = Q^H dA R^-1; dQ = Q (W - X) + dA R^-1, dR = (X - W) R, W the
    # skew-Hermitian matrix from X's strictly lower triangle and i Im(diag X) (keeping R's
    # diagonal real, as JAX)
    da_rinv = triangular_solve(r, da, left_side=False, lower=False)
    x = matmul(adjoint(q), da_rinv)
    low = tril(x, -1)
    w = lax.sub(low, adjoint(low))
    if get_aval(x).dtype.kind == "c":
        w = lax.add(w, lax.mul(eye_like(x), lax.sub(x, _real_part(x))))
    dq = lax.add(matmul(q, lax.sub(w, x)), da_rinv)
    dr = matmul(lax.sub(x, w), r)
    return out, [dq, dr]


ad.jvp_rules[qr_p] = _qr_jvp


# ---------------------------------------------------------------------------------------------
# eigh: (v, w), a = v diag(w) v^H, w real and ascending

def _eigh_impl(a, *, lower):
    w, v = np.linalg.eigh(a, UPLO="L" if lower else "U")
    return [np.asarray(v, a.dtype), np.asarray(w, lax.real_dtype(a.dtype))]


def _eigh_aval(a, *, lower):
    _check_matrix("eigh", a, square=True)
    return [a, ShapedArray(a.shape[:-1], lax.real_dtype(a.dtype))]


eigh_p = primitive("eigh", _eigh_impl, _eigh_aval, multiple_results=True)
_register(eigh_p, _eigh_impl, _eigh_aval)


def eigh(a, *, lower=True):
    """(v, w): the eigenvectors (columns of v) and real ascending eigenvalues w of each
    Hermitian (real: symmetric) matrix of a, reading its lower (or upper) triangle. As JAX's
    lax.linalg.eigh."""
    return eigh_p.bind(a, lower=bool(lower))


def _inverse_differences(w):
    """F[..., i, j] = 1 / (w_j - w_i), and 0 where w_j == w_i (the diagonal, and degenerate
    pairs: their eigenvectors are not unique, so the jvp leaves them unmixed)."""
    a = get_aval(w)
    shape = a.shape + (a.shape[-1],)
    nd = len(shape)
    wj = lax.broadcast_in_dim(w, shape, tuple(range(nd - 2)) + (nd - 1,))
    wi = lax.broadcast_in_dim(w, shape, tuple(range(nd - 2)) + (nd - 2,))
    diff = lax.sub(wj, wi)
    same = lax.eq(diff, lax.full(shape, 0, a.dtype))
    one = lax.full(shape, 1, a.dtype)
    return lax.select(same, lax.full(shape, 0, a.dtype), lax.div(one, lax.select(same, one, diff)))


def _eigh_jvp(primals, tangents, *, lower):
    (a,), (da,) = primals, tangents
    v, w = out = eigh_p.bind(a, lower=lower)
    if type(da) is Zero:
        return out, [Zero.like(v), Zero.like(w)]
    # for a Hermitian dA: dw = Re diag(V^H dA V), dV = V (F * V^H dA V)
    vdv = matmul(adjoint(v), matmul(da, v))
    dv = matmul(v, lax.mul(_to_dtype_of(_inverse_differences(w), v), vdv))
    return out, [dv, _to_dtype_of(diagonal(vdv), w)]


ad.jvp_rules[eigh_p] = _eigh_jvp


# ---------------------------------------------------------------------------------------------
# svd: (s, u, vt) or (s,), a = u diag(s) vt, s real and descending

def _svd_impl(a, *, full_matrices, compute_uv):
    if not compute_uv:
        return [np.asarray(np.linalg.svd(a, compute_uv=False), lax.real_dtype(a.dtype))]
    u, s, vt = np.linalg.svd(a, full_matrices=full_matrices)
    return [np.asarray(s, lax.real_dtype(a.dtype)), np.asarray(u, a.dtype),
            np.asarray(vt, a.dtype)]


def _svd_aval(a, *, full_matrices, compute_uv):
    _check_matrix("svd", a)
    m, n = a.shape[-2:]
    k = min(m, n)
    b = a.shape[:-2]
    s = ShapedArray(b + (k,), lax.real_dtype(a.dtype))
    if not compute_uv:
        return [s]
    ku, kv = (m, n) if full_matrices else (k, k)
    return [s, ShapedArray(b + (m, ku), a.dtype), ShapedArray(b + (kv, n), a.dtype)]


svd_p = primitive("svd", _svd_impl, _svd_aval, multiple_results=True)
_register(svd_p, _svd_impl, _svd_aval)


def svd(a, *, full_matrices=True, compute_uv=True):
    """[s, u, vt] (compute_uv) or [s]: the singular values (descending) and vectors of each
    matrix of a, a = u diag(s) vt. As JAX's lax.linalg.svd."""
    return svd_p.bind(a, full_matrices=bool(full_matrices), compute_uv=bool(compute_uv))


def _safe_reciprocal(x):
    """1/x, and 0 where x == 0."""
    a = get_aval(x)
    zero = lax.eq(x, lax.full(a.shape, 0, a.dtype))
    one = lax.full(a.shape, 1, a.dtype)
    return lax.select(zero, lax.full(a.shape, 0, a.dtype), lax.div(one, lax.select(zero, one, x)))


def _scale_columns(x, d):
    """x[..., i, j] * d[..., j]."""
    shape = get_aval(x).shape
    nd = len(shape)
    return lax.mul(x, lax.broadcast_in_dim(d, shape, tuple(range(nd - 2)) + (nd - 1,)))


def _svd_jvp(primals, tangents, *, full_matrices, compute_uv):
    (a,), (da,) = primals, tangents
    out = svd_p.bind(a, full_matrices=full_matrices, compute_uv=compute_uv)
    if type(da) is Zero:
        return out, [Zero.like(o) for o in out]
    m, n = get_aval(a).shape[-2:]
    if compute_uv and full_matrices and m != n:
        raise NotImplementedError(f"jvp of svd with full_matrices=True is implemented for square "
                                  f"matrices only (as JAX), got shape {get_aval(a).shape}"
                                  f"{core.where()}")
    s, u, vt = out if compute_uv else svd_p.bind(a, full_matrices=False, compute_uv=True)
    v = adjoint(vt)
    ds_mat = matmul(adjoint(u), matmul(da, v))                # U^H dA V, k x k
    ds = _to_dtype_of(diagonal(ds_mat), s)
    if not compute_uv:
        return out, [ds]
    sa = get_aval(s)
    k = sa.shape[-1]
    shape = sa.shape + (k,)
    nd = len(shape)
    s_col = lax.broadcast_in_dim(s, shape, tuple(range(nd - 2)) + (nd - 1,))   # s_j
    s_row = matrix_transpose(s_col)                                            # s_i
    # F[i, j] = 1 / (s_j^2 - s_i^2), 0 where equal
    f = _to_dtype_of(_safe_reciprocal(lax.mul(lax.add(s_col, s_row), lax.sub(s_col, s_row))), u)
    s_col, s_row = _to_dtype_of(s_col, u), _to_dtype_of(s_row, u)
    dss = lax.mul(ds_mat, s_col)                      # dS diag(s)
    sds = lax.mul(ds_mat, s_row)                      # diag(s) dS
    s_inv = _to_dtype_of(diag_embed(_safe_reciprocal(s)), u)
    # (dS - dS^H) / 2 on the diagonal: 0 for real input, i Im(dS_ii) for complex (JAX's choice
    # of the singular vectors' phase derivative)
    skew = _mul_scalar(lax.mul(lax.sub(ds_mat, adjoint(ds_mat)), s_inv), 0.5)
    du = matmul(u, lax.add(lax.mul(f, lax.add(dss, adjoint(dss))), skew))
    dv = matmul(v, lax.mul(f, lax.add(sds, adjoint(sds))))
    s_inv_row = _to_dtype_of(_safe_reciprocal(s), u)
    if m > n:      # the part of dA V outside the span of U
        dav = matmul(da, v)
        rest = lax.sub(dav, matmul(u, matmul(adjoint(u), dav)))
        du = lax.add(du, _scale_columns(rest, s_inv_row))
    if n > m:      # the part of dA^H U outside the span of V
        dau = matmul(adjoint(da), u)
        rest = lax.sub(dau, matmul(v, matmul(vt, dau)))
        dv = lax.add(dv, _scale_columns(rest, s_inv_row))
    return out, [ds, du, adjoint(dv)]


ad.jvp_rules[svd_p] = _svd_jvp


# ---------------------------------------------------------------------------------------------
# eig: (w, v) complex, a v = v diag(w), for real or complex a (no symmetry)

def _complex_of(dtype):
    return np.dtype(np.complex64 if dtype in (np.float32, np.complex64) else np.complex128)


def _eig_impl(a, *, compute_eigenvectors, enable_eigvec_derivs):
    ct = _complex_of(a.dtype)
    if not compute_eigenvectors:
        return [np.asarray(np.linalg.eigvals(a), ct)]
    w, v = np.linalg.eig(a)
    return [np.asarray(w, ct), np.asarray(v, ct)]


def _eig_aval(a, *, compute_eigenvectors, enable_eigvec_derivs):
    _check_matrix("eig", a, square=True)
    ct = _complex_of(a.dtype)
    w = ShapedArray(a.shape[:-1], ct)
    return [w, ShapedArray(a.shape, ct)] if compute_eigenvectors else [w]


eig_p = primitive("eig", _eig_impl, _eig_aval, multiple_results=True)
_register(eig_p, _eig_impl, _eig_aval)


def eig(a, *, compute_eigenvectors=True, enable_eigvec_derivs=False):
    """[w, v] (or [w]): the complex eigenvalues and right eigenvectors (unit-norm columns, the
    largest component of each real: LAPACK's geev) of each square matrix of a, a v = v diag(w).
    Eigenvalues are differentiable; eigenvectors only with enable_eigvec_derivs=True (as JAX:
    valid only for distinct eigenvalues, which cannot be checked)."""
    return eig_p.bind(a, compute_eigenvectors=bool(compute_eigenvectors),
                      enable_eigvec_derivs=bool(enable_eigvec_derivs))


def _solve_square(a, b):
    """x with a x = b for square a (..., n, n) and b (..., n, k), through a's LU factors."""
    lu_, _, perm = lu_p.bind(a)
    y = triangular_solve(lu_, permute_rows(b, perm), left_side=True, lower=True,
                         unit_diagonal=True)
    return triangular_solve(lu_, y, left_side=True, lower=False)


def _eigenvector_jvp(w, v, p):
    """dV for eigenvectors v normalised as LAPACK's geev (unit 2-norm, largest-magnitude
    component real), given P = V^-1 dA V: dv_j = u_j + c_j v_j with u = V (F * P) and c_j the
    multiple of v_j that keeps both normalisations (JAX's rule)."""
    u = matmul(v, lax.mul(_inverse_differences(w), p))
    shape = get_aval(v).shape
    nd = len(shape)
    k = lax.argmax(lax.abs(v), nd - 2, np.int32)
    rows = lax.broadcasted_iota(np.int32, shape, nd - 2)
    kb = lax.broadcast_in_dim(k, shape, tuple(range(nd - 2)) + (nd - 1,))
    mask = _to_dtype_of(lax.eq(rows, kb), v)
    along = (nd - 2,)
    re = lax.neg(lax.real(lax.reduce_sum(lax.mul(lax.conj(v), u), along)))
    im = lax.neg(lax.div(lax.imag(lax.reduce_sum(lax.mul(mask, u), along)),
                         lax.real(lax.reduce_sum(lax.mul(mask, v), along))))
    c = lax.complex(re, im)
    return lax.add(u, lax.mul(v, lax.broadcast_in_dim(c, shape, tuple(range(nd - 2)) + (nd - 1,))))


def _eig_jvp(primals, tangents, *, compute_eigenvectors, enable_eigvec_derivs):
    (a,), (da,) = primals, tangents
    params = dict(compute_eigenvectors=compute_eigenvectors,
                  enable_eigvec_derivs=enable_eigvec_derivs)
    if type(da) is Zero:
        out = eig_p.bind(a, **params)
        return out, [Zero.like(o) for o in out]
    if compute_eigenvectors and not enable_eigvec_derivs:
        raise NotImplementedError("jvp of eig's eigenvectors: they are differentiable only for "
                                  "distinct eigenvalues, which cannot be checked; pass "
                                  "enable_eigvec_derivs=True to lax.linalg.eig to opt in (as "
                                  f"JAX), or differentiate the eigenvalues alone{core.where()}")
    # the eigenvectors here differentiate (for higher orders) with the opt-in: dw is invariant
    # to their normalisation, so eigenvalue derivatives of every order are well defined
    w, v = eig_p.bind(a, compute_eigenvectors=True, enable_eigvec_derivs=True)
    # dw = diag(V^-1 dA V) (first-order perturbation of a simple eigenvalue)
    p = matmul(_solve_square(v, _to_dtype_of(da, v)), v)
    dw = diagonal(p)
    if not compute_eigenvectors:
        return [w], [dw]
    return [w, v], [dw, _eigenvector_jvp(w, v, p)]


ad.jvp_rules[eig_p] = _eig_jvp


# ---------------------------------------------------------------------------------------------
# lu_pivots_to_permutation: LAPACK's row swaps as a permutation (integers: zero derivative)

def _pivots_impl(pivots, *, permutation_size):
    pivots = np.asarray(pivots, np.int32)
    if pivots.size and (pivots.min() < 0 or pivots.max() >= permutation_size):
        raise ValueError(f"pivots must lie in [0, {permutation_size}),"
                         f" got values from {pivots.min()} to {pivots.max()}")
    return _permutation_from_pivots(pivots, permutation_size)


def _pivots_aval(pivots, *, permutation_size):
    if pivots.dtype.kind not in "iu" or pivots.ndim < 1:
        raise TypeError(f"lu_pivots_to_permutation: pivots must be an integer array of rank >= 1,"
                        f" got {pivots.dtype.name}{list(pivots.shape)}{core.where()}")
    if permutation_size < pivots.shape[-1]:
        raise ValueError(f"lu_pivots_to_permutation: permutation_size {permutation_size} is "
                         f"smaller than the number of pivots {pivots.shape[-1]}{core.where()}")
    return ShapedArray(pivots.shape[:-1] + (permutation_size,), np.dtype(np.int32))


lu_pivots_to_permutation_p = primitive("lu_pivots_to_permutation", _pivots_impl, _pivots_aval)
_register(lu_pivots_to_permutation_p, _pivots_impl, _pivots_aval, compiled_nan=False)
ad.defjvp_zero(lu_pivots_to_permutation_p)


def lu_pivots_to_permutation(pivots, permutation_size):
    """The permutation (int32, shape (..., permutation_size)) that LAPACK's row swaps pivots
    (row i swapped with row pivots[i], in order) apply to the rows."""
    return lu_pivots_to_permutation_p.bind(pivots, permutation_size=int(permutation_size))


# every rule above (impl, abstract eval, jvp, transpose, batching, the host steps that run the
# impl under jit on the CPU and CUDA) handles complex matrices
core.complex_primitives.update([cholesky_p, triangular_solve_p, lu_p, qr_p, eigh_p, svd_p, eig_p])
