"""functrans.numpy.linalg: NumPy's linear algebra (leading batch axes as NumPy), composed of the
lax.linalg primitives (cholesky, triangular_solve, lu, qr, eigh, svd, eig) and ordinary ops.
Signatures and defaults follow jax.numpy.linalg where it differs from NumPy (symmetrize_input,
pinv's and lstsq's default cutoffs). float32/float64/complex64/complex128 input (complex with
JAX's conventions: conjugate transposes, Hermitian symmetrization, real eigenvalues and singular
values); integers and bools are computed in float64."""
from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import core
from ..core import get_aval
from ..custom_derivatives import custom_jvp
from ..lax import lax
from ..lax import linalg as L
from ..lax.slicing import argsort as _argsort
from ._base import as_operand, broadcast_to_shape, canonical_axes, cast
from . import _reductions as R
from . import _ufuncs as U
from ._shape import expand_dims as _expand_dims

__all__ = ["LinAlgError", "cholesky", "cond", "det", "eig", "eigh", "eigvals", "eigvalsh", "inv",
           "lstsq", "matrix_power", "matrix_rank", "multi_dot", "norm", "pinv", "qr", "slogdet",
           "solve", "svd", "svdvals", "tensorinv", "tensorsolve", "matrix_transpose"]

LinAlgError = np.linalg.LinAlgError

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])


# ---------------------------------------------------------------------------------------------
# Operands

def _float(x, name="norm"):
    """x as an inexact array: float and complex kept, integers and bools as float64; TypeError
    naming name for any other dtype."""
    x = as_operand(x)
    dt = get_aval(x).dtype
    if dt.kind not in "fciub":
        hint = " (no bfloat16 factorisations: convert with .astype(jnp.float32))" \
            if dt == core.bfloat16 else ""
        raise TypeError(f"linalg.{name}: unsupported dtype {dt.name}{hint}{core.where()}")
    return cast(x, dt if dt.kind in "fc" else np.float64)


def _matrix(x, name, square=False):
    """x as an inexact stack of matrices (ndim >= 2; square if asked), NumPy's LinAlgError if
    not."""
    x = _float(x, name)
    shape = get_aval(x).shape
    if len(shape) < 2:
        raise LinAlgError(f"linalg.{name}: {len(shape)}-dimensional array given. Array must be at "
                          f"least two-dimensional{core.where()}")
    if square and shape[-1] != shape[-2]:
        raise LinAlgError(f"linalg.{name}: last 2 dimensions of the array must be square, got "
                          f"shape {shape}{core.where()}")
    return x


def _broadcast_batch(a, b):
    """a and b broadcast to one batch shape (all axes but the last two)."""
    sa, sb = get_aval(a).shape, get_aval(b).shape
    batch = np.broadcast_shapes(sa[:-2], sb[:-2])
    return broadcast_to_shape(a, batch + sa[-2:]), broadcast_to_shape(b, batch + sb[-2:])


def matrix_transpose(x, /):
    """x with its last two axes swapped."""
    x = as_operand(x)
    if get_aval(x).ndim < 2:
        raise ValueError(f"matrix_transpose requires at least 2 dimensions{core.where()}")
    return L.matrix_transpose(x)


def _symmetrize(a):
    """(a + a^H) / 2: the Hermitian (real: symmetric) part of a."""
    return lax.mul(lax.add(a, L.adjoint(a)), lax.full(get_aval(a).shape, 0.5, get_aval(a).dtype))


def _abs2(x):
    """|x|^2 elementwise, real (x * x for real x)."""
    if get_aval(x).dtype.kind != "c":
        return U.multiply(x, x)
    return U.add(U.square(lax.real(x)), U.square(lax.imag(x)))


# ---------------------------------------------------------------------------------------------
# Solving through the LU decomposition

def _lu_solve(lu, perm, b, trans=False, conj=False):
    """x with A x = b (trans: A^T x = b; trans and conj: A^H x = b) from A's factors lu, perm
    (lax.linalg.lu); b (..., n, k) with lu's batch shape."""
    if not trans:
        y = L.triangular_solve(lu, L.permute_rows(b, perm), left_side=True, lower=True,
                               unit_diagonal=True)
        return L.triangular_solve(lu, y, left_side=True, lower=False)
    # A^T = U^T L^T P: solve U^T y = b, L^T z = y, then x = P^T z
    y = L.triangular_solve(lu, b, left_side=True, lower=False, transpose_a=True, conjugate_a=conj)
    z = L.triangular_solve(lu, y, left_side=True, lower=True, transpose_a=True, conjugate_a=conj,
                           unit_diagonal=True)
    return L.permute_rows(z, _argsort(perm, -1))


@custom_jvp
def _solve(a, b):
    lu, _, perm = L.lu(a)
    return _lu_solve(lu, perm, b)


def _solve_jvp(primals, tangents):
    # d(A^-1 b) = A^-1 (db - dA x), reusing A's factors
    (a, b), (da, db) = primals, tangents
    lu, _, perm = L.lu(a)
    x = _lu_solve(lu, perm, b)
    return x, _lu_solve(lu, perm, lax.sub(db, L.matmul(da, x)))


_solve.defjvp(_solve_jvp)


def solve(a, b):
    """x with a @ x = b for square a (..., M, M); b is a vector (M,) or a stack of matrices
    (..., M, K), as NumPy 2. Singular a: LinAlgError eagerly, inf/nan under jit (as JAX)."""
    a = _matrix(a, "solve", square=True)
    b = _float(b, "solve")
    dt = np.result_type(get_aval(a).dtype, get_aval(b).dtype)
    a, b = cast(a, dt), cast(b, dt)
    if get_aval(b).ndim == 1:
        n = get_aval(b).shape[0]
        a, b2 = _broadcast_batch(a, lax.reshape(b, (n, 1)))
        x = _solve(a, b2)
        return lax.reshape(x, get_aval(x).shape[:-1])
    if get_aval(b).shape[-2] != get_aval(a).shape[-1]:
        raise ValueError(f"linalg.solve: a of shape {get_aval(a).shape} and b of shape "
                         f"{get_aval(b).shape} do not match{core.where()}")
    return _solve(*_broadcast_batch(a, b))


def inv(a):
    """The inverse of each square matrix of a. Singular a: LinAlgError eagerly, inf/nan under
    jit (as JAX)."""
    a = _matrix(a, "inv", square=True)
    return _inv(a)


@custom_jvp
def _inv(a):
    return _solve(a, L.eye_like(a))


def _inv_jvp(primals, tangents):
    # d(A^-1) = -A^-1 dA A^-1: two products with the inverse at hand (the transpose too),
    # where differentiating through the LU factors would take four triangular solves
    (a,), (da,) = primals, tangents
    ainv = _inv(a)
    return ainv, lax.neg(L.matmul(ainv, L.matmul(da, ainv)))


_inv.defjvp(_inv_jvp)


def _lu_parts(a):
    """(diagonal of U, the sign of the row permutation, lu) of a's LU decomposition."""
    lu, piv, _ = L.lu(a)
    swaps = U.not_equal(piv, lax.broadcasted_iota(np.int32, get_aval(piv).shape,
                                                  get_aval(piv).ndim - 1))
    odd = U.remainder(R.sum(cast(swaps, np.int32), axis=-1), 2)
    sign = U.subtract(1.0, U.multiply(2.0, cast(odd, get_aval(a).dtype)))
    return L.diagonal(lu), sign, lu


def _trace_of_solve(a, da):
    lu, _, perm = L.lu(a)
    return R.sum(L.diagonal(_lu_solve(lu, perm, da)), axis=-1)


@custom_jvp
def _det(a):
    d, sign, _ = _lu_parts(a)
    return U.multiply(sign, R.prod(d, axis=-1))


def _det_jvp(primals, tangents):
    # d det(A) = det(A) tr(A^-1 dA)
    (a,), (da,) = primals, tangents
    y = _det(a)
    return y, U.multiply(y, _trace_of_solve(a, da))


_det.defjvp(_det_jvp)


def det(a):
    """The determinant of each square matrix of a (through its LU decomposition). Its
    derivative det(a) tr(a^-1 da) needs a invertible."""
    return _det(_matrix(a, "det", square=True))


@custom_jvp
def _slogdet(a):
    d, sign, _ = _lu_parts(a)
    sign = U.multiply(sign, R.prod(U.sign(d), axis=-1))      # sign(z) = z / |z| for complex
    return sign, R.sum(U.log(U.abs(d)), axis=-1)


def _slogdet_jvp(primals, tangents):
    # d log det = tr(A^-1 dA): its real part moves logabsdet, its imaginary part turns the
    # complex sign (JAX's rule); a real sign is constant
    (a,), (da,) = primals, tangents
    sign, logdet = _slogdet(a)
    dlog = _trace_of_solve(a, da)
    if get_aval(a).dtype.kind != "c":
        return (sign, logdet), (lax.full(get_aval(sign).shape, 0, get_aval(sign).dtype), dlog)
    dlog_re = lax.real(dlog)
    dsign = U.multiply(U.subtract(dlog, cast(dlog_re, get_aval(dlog).dtype)), sign)
    return (sign, logdet), (dsign, dlog_re)


_slogdet.defjvp(_slogdet_jvp)


def slogdet(a):
    """SlogdetResult(sign, logabsdet) of each square matrix of a: det = sign * exp(logabsdet);
    sign is +-1 for real a and a unit complex number for complex a; sign 0 and logabsdet -inf
    for a singular matrix."""
    return SlogdetResult(*_slogdet(_matrix(a, "slogdet", square=True)))


# ---------------------------------------------------------------------------------------------
# Factorisations

def cholesky(a, /, *, upper=False, symmetrize_input=True):
    """The lower Cholesky factor L (a = L L^H), or the upper one L^H with upper=True. As JAX,
    a is symmetrized first ((a + a^H) / 2, so gradients are Hermitian) unless
    symmetrize_input=False (then its lower triangle is read), and a matrix that is not positive
    definite gives NaNs, eagerly and under jit."""
    a = _matrix(a, "cholesky", square=True)
    lo = L.cholesky(_symmetrize(a) if symmetrize_input else a)
    return L.adjoint(lo) if upper else lo


def eigh(a, UPLO=None, symmetrize_input=True):
    """EighResult(eigenvalues real ascending, eigenvectors as columns) of each Hermitian (real:
    symmetric) matrix of a.
    As JAX, a is symmetrized first unless symmetrize_input=False (then the UPLO triangle, 'L'
    by default, is read)."""
    a = _matrix(a, "eigh", square=True)
    lower = UPLO in (None, "L", "l")
    if UPLO not in (None, "L", "l", "U", "u"):
        raise ValueError(f"linalg.eigh: UPLO must be 'L' or 'U', got {UPLO!r}{core.where()}")
    v, w = L.eigh(_symmetrize(a) if symmetrize_input else a, lower=lower)
    return EighResult(w, v)


def eigvalsh(a, UPLO="L"):
    """The ascending eigenvalues of each symmetric matrix of a."""
    return eigh(a, UPLO).eigenvalues


def eig(a):
    """EigResult(eigenvalues, eigenvectors): complex eigenvalues and unit-norm right
    eigenvectors (columns) of each square matrix of a. Always complex (as JAX). The derivative
    of the eigenvalues is defined; that of the eigenvectors raises NotImplementedError, as JAX
    (opt in with lax.linalg.eig(a, enable_eigvec_derivs=True))."""
    w, v = L.eig(_matrix(a, "eig", square=True))
    return EigResult(w, v)


def eigvals(a):
    """The complex eigenvalues of each square matrix of a, differentiable (dw = diag(V^-1 dA V),
    for distinct eigenvalues)."""
    return L.eig(_matrix(a, "eigvals", square=True), compute_eigenvectors=False)[0]


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """SVDResult(U, S, Vh) with a = U diag(S) Vh and S real and descending (full_matrices: U is
    m x m and Vh n x n), or S alone when compute_uv=False. hermitian is accepted and ignored (the
    general algorithm is used)."""
    a = _matrix(a, "svd")
    if not compute_uv:
        return L.svd(a, full_matrices=False, compute_uv=False)[0]
    s, u, vt = L.svd(a, full_matrices=full_matrices)
    return SVDResult(u, s, vt)


def svdvals(x, /):
    """The singular values of each matrix of x, descending."""
    return svd(x, compute_uv=False)


def qr(a, mode="reduced"):
    """QRResult(Q, R) with a = Q R: mode 'reduced' (Q m x k, k = min(m, n)), 'complete'
    (Q m x m), or 'r' (R alone, k x n)."""
    a = _matrix(a, "qr")
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: unsupported mode {mode!r} (reduced, complete, r)"
                         f"{core.where()}")
    q, r = L.qr(a, full_matrices=mode == "complete")
    return r if mode == "r" else QRResult(q, r)


# ---------------------------------------------------------------------------------------------
# Through the SVD

def _cutoff_mask(s, rtol, default):
    """s > rtol * max(s) (rtol: default when None), per matrix."""
    rtol = default if rtol is None else rtol
    smax = R.max(s, axis=-1, keepdims=True)
    return U.greater(s, U.multiply(as_operand(rtol), smax))


def _eps_times_size(x):
    shape = get_aval(x).shape
    return max(shape[-2:]) * float(np.finfo(get_aval(x).dtype).eps)


def pinv(a, rtol=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse of each matrix of a, from its SVD: singular values up
    to rtol * max(s) are dropped (rtol defaults, as JAX, to 10 * max(m, n) * eps)."""
    a = _matrix(a, "pinv")
    s, u, vt = L.svd(a, full_matrices=False)
    keep = _cutoff_mask(s, rtol, 10 * _eps_times_size(a))
    s_inv = U.where(keep, U.divide(1.0, U.where(keep, s, 1.0)), 0.0)
    return L.matmul(L.adjoint(vt), U.multiply(_expand_dims(s_inv, -1), L.adjoint(u)))


def matrix_rank(M, rtol=None, *, tol=None):
    """The number of singular values of each matrix above tol (absolute) or rtol * max(s)
    (rtol defaults to max(m, n) * eps, as JAX); a vector's rank is 1 unless it is all zero."""
    M = _float(M, "matrix_rank")
    if get_aval(M).ndim < 2:
        return cast(R.any(U.not_equal(M, 0)), np.int64)
    s = svdvals(M)
    keep = (U.greater(s, as_operand(tol)) if tol is not None
            else _cutoff_mask(s, rtol, _eps_times_size(M)))
    return R.sum(cast(keep, np.int64), axis=-1)


def lstsq(a, b, rcond=None, *, numpy_resid=False):
    """(x, residuals, rank, s): the least-squares solution of a @ x = b (b: (M,) or (M, K)) from
    the SVD, dropping singular values up to rcond * max(s) (default max(m, n) * eps, as JAX).
    residuals are the squared 2-norms of b - a @ x per column (as JAX); with numpy_resid,
    NumPy's empty array where m <= n."""
    a = _matrix(a, "lstsq")
    b = _float(b, "lstsq")
    if get_aval(a).ndim != 2 or get_aval(b).ndim not in (1, 2):
        raise ValueError(f"linalg.lstsq: a must be 2-d and b 1-d or 2-d, got shapes "
                         f"{get_aval(a).shape} and {get_aval(b).shape}{core.where()}")
    m, n = get_aval(a).shape
    if get_aval(b).shape[0] != m:
        raise LinAlgError(f"linalg.lstsq: incompatible dimensions {get_aval(a).shape} and "
                          f"{get_aval(b).shape}{core.where()}")
    dt = np.result_type(get_aval(a).dtype, get_aval(b).dtype)
    a, b = cast(a, dt), cast(b, dt)
    vec = get_aval(b).ndim == 1
    b2 = lax.reshape(b, (m, 1)) if vec else b
    s, u, vt = L.svd(a, full_matrices=False)
    keep = _cutoff_mask(s, rcond, _eps_times_size(a))
    s_inv = U.where(keep, U.divide(1.0, U.where(keep, s, 1.0)), 0.0)
    ub = U.multiply(_expand_dims(s_inv, -1), L.matmul(L.adjoint(u), b2))
    x = L.matmul(L.adjoint(vt), ub)
    rank = R.sum(cast(keep, np.int64))
    r = U.subtract(b2, L.matmul(a, x))
    resid = R.sum(_abs2(r), axis=0)
    if vec:
        x, resid = lax.reshape(x, (n,)), lax.reshape(resid, ())
    if numpy_resid and m <= n:
        resid = lax.full((0,), 0, lax.real_dtype(dt))
    return x, resid, rank, s


def cond(x, p=None):
    """The condition number of each matrix of x in norm p (None or 2: s_max / s_min; -2:
    s_min / s_max; other matrix norms: norm(x, p) * norm(inv(x), p))."""
    x = _matrix(x, "cond")
    if p in (None, 2, -2):
        s = svdvals(x)
        hi, lo = R.max(s, axis=-1), R.min(s, axis=-1)
        return U.divide(lo, hi) if p == -2 else U.divide(hi, lo)
    return U.multiply(norm(x, p, axis=(-2, -1)), norm(inv(x), p, axis=(-2, -1)))


# ---------------------------------------------------------------------------------------------
# Products and tensor forms

def matrix_power(a, n):
    """a raised to the integer power n (n = 0: identity; n < 0: the inverse's power), by
    repeated squaring."""
    a = as_operand(a)
    if get_aval(a).ndim < 2 or get_aval(a).shape[-1] != get_aval(a).shape[-2]:
        raise LinAlgError(f"linalg.matrix_power: expected a stack of square matrices, got shape "
                          f"{get_aval(a).shape}{core.where()}")
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool):
        raise TypeError(f"linalg.matrix_power: exponent must be an integer, got {n!r}"
                        f"{core.where()}")
    n = int(n)
    if n == 0:
        return L.eye_like(a)
    if n < 0:
        a, n = inv(a), -n
    result, base = None, a
    while n:
        if n & 1:
            result = base if result is None else L.matmul(result, base)
        n >>= 1
        if n:
            base = L.matmul(base, base)
    return result


def _chain_order(shapes):
    """The optimal parenthesisation of a matrix chain (dynamic programming on the flop count):
    split[i][j] is where the product of matrices i..j is split."""
    dims = [shapes[0][0]] + [s[1] for s in shapes]
    n = len(shapes)
    cost = [[0] * n for _ in range(n)]
    split = [[0] * n for _ in range(n)]
    for length in range(1, n):
        for i in range(n - length):
            j = i + length
            cost[i][j] = None
            for k in range(i, j):
                c = cost[i][k] + cost[k + 1][j] + dims[i] * dims[k + 1] * dims[j + 1]
                if cost[i][j] is None or c < cost[i][j]:
                    cost[i][j], split[i][j] = c, k
    return split


def multi_dot(arrays, *, precision=None):
    """The product of a chain of matrices in the cheapest order (the first may be a vector,
    taken as a row; the last a vector, taken as a column), as NumPy."""
    from ._linalg import matmul
    arrays = [_float(x, "multi_dot") for x in arrays]
    if len(arrays) < 2:
        raise ValueError(f"linalg.multi_dot: expecting at least two arrays{core.where()}")
    first_vec, last_vec = get_aval(arrays[0]).ndim == 1, get_aval(arrays[-1]).ndim == 1
    if first_vec:
        arrays[0] = lax.reshape(arrays[0], (1,) + get_aval(arrays[0]).shape)
    if last_vec:
        arrays[-1] = lax.reshape(arrays[-1], get_aval(arrays[-1]).shape + (1,))
    shapes = [get_aval(x).shape for x in arrays]
    if any(len(s) != 2 for s in shapes):
        raise ValueError(f"linalg.multi_dot: arrays must be 2-d (the first and last may be 1-d),"
                         f" got shapes {shapes}{core.where()}")
    split = _chain_order(shapes)

    def product(i, j):
        if i == j:
            return arrays[i]
        k = split[i][j]
        return matmul(product(i, k), product(k + 1, j), precision=precision)
    out = product(0, len(arrays) - 1)
    shape = get_aval(out).shape
    keep = ([] if first_vec else [shape[0]]) + ([] if last_vec else [shape[1]])
    return lax.reshape(out, tuple(keep))


def tensorsolve(a, b, axes=None):
    """x with tensordot(a, x, x.ndim) = b; x has shape a.shape[b.ndim:] (axes of a listed in
    axes are first moved to the end)."""
    a, b = _float(a, "tensorsolve"), _float(b, "tensorsolve")
    nd = get_aval(a).ndim
    if axes is not None:
        from ._shape import moveaxis
        axes = canonical_axes(axes, nd)
        a = moveaxis(a, axes, tuple(range(nd - len(axes), nd)))
    bshape = get_aval(b).shape
    xshape = get_aval(a).shape[len(bshape):]
    rows, cols = int(np.prod(bshape)), int(np.prod(xshape))
    if rows != cols:
        raise LinAlgError(f"linalg.tensorsolve: a's leading dimensions {bshape} and trailing "
                          f"{xshape} do not give a square matrix{core.where()}")
    x = solve(lax.reshape(a, (rows, cols)), lax.reshape(b, (rows,)))
    return lax.reshape(x, xshape)


def tensorinv(a, ind=2):
    """The inverse of a with respect to tensordot(., ., ind): shape a.shape[ind:] + a.shape[:ind]."""
    a = _float(a, "tensorinv")
    if not isinstance(ind, (int, np.integer)) or ind <= 0:
        raise ValueError(f"linalg.tensorinv: ind must be a positive integer, got {ind!r}"
                         f"{core.where()}")
    shape = get_aval(a).shape
    outer, inner = shape[:ind], shape[ind:]
    rows, cols = int(np.prod(outer)), int(np.prod(inner))
    if rows != cols:
        raise LinAlgError(f"linalg.tensorinv: shape {shape} with ind={ind} is not square"
                          f"{core.where()}")
    return lax.reshape(inv(lax.reshape(a, (rows, cols))), inner + outer)


# ---------------------------------------------------------------------------------------------
# Norms

def _vector_norm(x, ord, axis, keepdims):
    a = U.abs(x)
    if ord is None or ord == 2:
        return U.sqrt(R.sum(_abs2(x), axis=axis, keepdims=keepdims))
    if ord == np.inf:
        return R.max(a, axis=axis, keepdims=keepdims)
    if ord == -np.inf:
        return R.min(a, axis=axis, keepdims=keepdims)
    if ord == 0:
        return cast(R.sum(U.not_equal(x, 0), axis=axis, keepdims=keepdims),
                    lax.real_dtype(get_aval(x).dtype))
    if ord == 1:
        return R.sum(a, axis=axis, keepdims=keepdims)
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order {ord!r} for vectors{core.where()}")
    p = float(ord)
    return U.power(R.sum(U.power(a, p), axis=axis, keepdims=keepdims), 1.0 / p)


def _matrix_norm(x, ord, axes, keepdims):
    r, c = axes
    if ord in (None, "fro", "f"):
        out = U.sqrt(R.sum(_abs2(x), axis=axes))
    elif ord in (1, -1, np.inf, -np.inf):
        inner, outer = (r, c) if ord in (1, -1) else (c, r)
        s = R.sum(U.abs(x), axis=inner)
        outer = outer - (inner < outer)
        out = (R.max if ord > 0 else R.min)(s, axis=outer)
    elif ord in (2, -2, "nuc"):
        from ._shape import moveaxis
        s = svdvals(moveaxis(x, (r, c), (-2, -1)))
        out = {2: R.max, -2: R.min, "nuc": R.sum}[ord](s, axis=-1)
    else:
        raise ValueError(f"Invalid norm order {ord!r} for matrices{core.where()}")
    if keepdims:
        shape = tuple(1 if i in axes else d for i, d in enumerate(get_aval(x).shape))
        out = lax.reshape(out, shape)
    return out


def norm(x, ord=None, axis=None, keepdims=False):
    """The vector norm (one axis, or a 1-d x) or matrix norm (two axes, or a 2-d x) of x: every
    ord NumPy has (matrix 2, -2 and 'nuc' through the singular values); with ord=None and
    axis=None, the 2-norm of x flattened."""
    x = _float(x, "norm")
    nd = get_aval(x).ndim
    if axis is None:
        if ord is None:
            out = U.sqrt(R.sum(_abs2(x)))
            return lax.reshape(out, (1,) * nd) if keepdims else out
        axes = tuple(range(nd))
    else:
        axes = canonical_axes(axis, nd)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes, keepdims)
    raise ValueError(f"Improper number of dimensions to norm (axes {axes}){core.where()}")
