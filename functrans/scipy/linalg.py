"""functrans.scipy.linalg: SciPy's linear algebra on the lax.linalg primitives (leading batch axes
allowed), with SciPy's signatures; overwrite_* and check_finite are accepted and ignored (arrays
are immutable; no finiteness check is made). Real and complex input (complex: trans 2/'C' is the
conjugate transpose; Cholesky factors satisfy a = L L^H)."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import control_flow as CF
from ..lax import lax
from ..lax import linalg as L
from ..lax.slicing import argsort as _argsort
from ..lax.slicing import concatenate as _concatenate
from ..lax.slicing import pad as _pad
from ..lax.slicing import slice as _slice
from ..numpy import linalg as NL
from ..numpy import _reductions as R
from ..numpy import _ufuncs as U
from ..numpy._base import as_operand, cast

__all__ = ["block_diag", "cho_factor", "cho_solve", "cholesky", "det", "eigh", "expm", "inv",
           "lu", "lu_factor", "lu_solve", "qr", "solve", "solve_triangular", "svd", "LinAlgError"]

LinAlgError = np.linalg.LinAlgError


def _as_columns(b, n, name):
    """(b as (..., n, k), a function restoring b's own shape on a result of that form)."""
    shape = get_aval(b).shape
    if len(shape) == 1:
        if shape[0] != n:
            raise ValueError(f"{name}: shapes of a ({n}, {n}) and b {shape} are incompatible"
                             f"{core.where()}")
        return lax.reshape(b, (n, 1)), lambda x: lax.reshape(x, (n,))
    if shape[-2] != n:
        raise ValueError(f"{name}: shapes of a (..., {n}, {n}) and b {shape} are incompatible"
                         f"{core.where()}")
    return b, lambda x: x


def _operands(name, a, b):
    """a (a square float stack) and b (a vector or stack of matrices) in one dtype, b as columns
    with one batch shape: (a, b, restore)."""
    a = NL._matrix(a, name.split(".")[-1], square=True)
    b = NL._float(b, name.split(".")[-1])
    dt = np.result_type(get_aval(a).dtype, get_aval(b).dtype)
    a, b = cast(a, dt), cast(b, dt)
    b, restore = _as_columns(b, get_aval(a).shape[-1], name)
    a, b = NL._broadcast_batch(a, b)
    return a, b, restore


def _trans_flags(trans):
    """(transpose, conjugate) for SciPy's trans: 0/'N', 1/'T', 2/'C'."""
    if trans in (0, "N", "n"):
        return False, False
    if trans in (1, "T", "t"):
        return True, False
    if trans in (2, "C", "c"):
        return True, True
    raise ValueError(f"invalid trans {trans!r} (0/'N', 1/'T' or 2/'C'){core.where()}")


def solve_triangular(a, b, trans=0, lower=False, unit_diagonal=False, overwrite_b=False,
                     check_finite=True):
    """x with op(a) x = b for triangular a (the lower or upper triangle of a is read; with
    unit_diagonal its diagonal is taken to be ones); op is identity for trans 0/'N', transpose
    for 1/'T', conjugate transpose for 2/'C'. b is (n,) or (..., n, k)."""
    a, b, restore = _operands("solve_triangular", a, b)
    tr, cj = _trans_flags(trans)
    return restore(L.triangular_solve(a, b, left_side=True, lower=lower, transpose_a=tr,
                                      conjugate_a=cj, unit_diagonal=unit_diagonal))


def cholesky(a, lower=False, overwrite_a=False, check_finite=True):
    """The Cholesky factor of each Hermitian positive-definite matrix of a: upper (a = U^H U)
    by default, lower with lower=True; NaNs where a is not positive definite (as JAX)."""
    return NL.cholesky(a, upper=not lower)


def cho_factor(a, lower=False, overwrite_a=False, check_finite=True):
    """(c, lower): a's Cholesky factor in the lower (or upper) triangle of c, the other triangle
    zero (SciPy leaves it unspecified), for cho_solve."""
    return cholesky(a, lower=lower), lower


def cho_solve(c_and_lower, b, overwrite_b=False, check_finite=True):
    """x with a x = b, from cho_factor's (c, lower) of a."""
    c, lower = c_and_lower
    c, b, restore = _operands("cho_solve", c, b)
    # a = L L^H = U^H U: two triangular solves, one with the conjugate transpose
    y = L.triangular_solve(c, b, left_side=True, lower=lower, transpose_a=not lower,
                           conjugate_a=not lower)
    return restore(L.triangular_solve(c, y, left_side=True, lower=lower, transpose_a=lower,
                                      conjugate_a=lower))


def _l_and_u(lu_):
    """The unit-lower L (m x k) and upper U (k x n) held in lu (m x n), k = min(m, n)."""
    shape = get_aval(lu_).shape
    m, n = shape[-2:]
    k = min(m, n)
    batch = shape[:-2]
    lower = _slice(lu_, (0,) * len(shape), batch + (m, k))
    upper = _slice(lu_, (0,) * len(shape), batch + (k, n))
    return lax.add(L.tril(lower, -1), L.eye_like(lu_, m, k)), L.triu(upper)


def lu(a, permute_l=False, overwrite_a=False, check_finite=True, p_indices=False):
    """(p, l, u) with a = p @ l @ u (p a permutation matrix, l unit lower m x k, u upper k x n);
    with p_indices, p as row indices (a = l[p] @ u); with permute_l, (p @ l, u)."""
    a = NL._matrix(a, "lu")
    lu_, _, perm = L.lu(a)
    low, up = _l_and_u(lu_)
    inv_perm = _argsort(perm, -1)
    if permute_l:
        return L.permute_rows(low, inv_perm), up
    if p_indices:
        return cast(inv_perm, np.int32), low, up
    m = get_aval(a).shape[-2]
    shape = get_aval(perm).shape + (m,)
    nd = len(shape)
    cols = lax.broadcasted_iota(np.int32, shape, nd - 1)
    rows = lax.broadcast_in_dim(perm, shape, tuple(range(nd - 1)))
    p = L.matrix_transpose(cast(lax.eq(rows, cols), get_aval(a).dtype))   # p[perm[i], i] = 1
    return p, low, up


def lu_factor(a, overwrite_a=False, check_finite=True):
    """(lu, piv): L (unit diagonal, below) and U (on and above) in one matrix, and LAPACK's
    0-based row swaps piv (int32), for lu_solve."""
    a = NL._matrix(a, "lu_factor")
    lu_, piv, _ = L.lu(a)
    return lu_, piv


def lu_solve(lu_and_piv, b, trans=0, overwrite_b=False, check_finite=True):
    """x with a x = b (trans 0), a^T x = b (trans 1) or a^H x = b (trans 2), from lu_factor's
    (lu, piv) of a."""
    lu_, piv = lu_and_piv
    lu_, b, restore = _operands("lu_solve", lu_, b)
    perm = L.lu_pivots_to_permutation(piv, get_aval(lu_).shape[-1])
    perm = lax.broadcast_in_dim(perm, get_aval(lu_).shape[:-1],
                                tuple(range(len(get_aval(lu_).shape) - 1 - get_aval(perm).ndim,
                                            len(get_aval(lu_).shape) - 1)))
    tr, cj = _trans_flags(trans)
    return restore(NL._lu_solve(lu_, perm, b, trans=tr, conj=cj))


def inv(a, overwrite_a=False, check_finite=True):
    """The inverse of each square matrix of a (LinAlgError eagerly if singular, inf/nan under
    jit)."""
    return NL.inv(a)


def solve(a, b, lower=False, overwrite_a=False, overwrite_b=False, check_finite=True,
          assume_a=None, transposed=False):
    """x with a x = b (a^T x = b with transposed) for square a; b (n,) or (..., n, k). assume_a
    'pos' (or 'positive definite') solves through the Cholesky factor, 'sym'/'gen' through LU."""
    if assume_a in ("pos", "positive definite"):
        c = cholesky(a, lower=True)
        return cho_solve((c, True), b)
    a = NL._matrix(a, "solve", square=True)
    return NL.solve(L.matrix_transpose(a) if transposed else a, b)


def det(a, overwrite_a=False, check_finite=True):
    """The determinant of each square matrix of a."""
    return NL.det(a)


def svd(a, full_matrices=True, compute_uv=True, overwrite_a=False, check_finite=True,
        lapack_driver="gesdd"):
    """(U, s, Vh) with a = U diag(s) Vh, s descending; s alone when compute_uv=False."""
    out = NL.svd(a, full_matrices=full_matrices, compute_uv=compute_uv)
    return out if not compute_uv else (out.U, out.S, out.Vh)


def qr(a, overwrite_a=False, lwork=None, mode="full", pivoting=False, check_finite=True):
    """(Q, R) with a = Q R: mode 'full' (Q m x m) or 'economic' (Q m x k); mode 'r' gives the
    one-tuple (R,) as SciPy. pivoting and mode 'raw' are not supported."""
    if pivoting:
        raise NotImplementedError(f"scipy.linalg.qr: pivoting=True is not supported"
                                  f"{core.where()}")
    if mode not in ("full", "economic", "r"):
        raise ValueError(f"scipy.linalg.qr: mode must be 'full', 'economic' or 'r', got {mode!r}"
                         f"{core.where()}")
    q, r = L.qr(NL._matrix(a, "qr"), full_matrices=mode != "economic")
    return (r,) if mode == "r" else (q, r)


def eigh(a, b=None, *, lower=True, eigvals_only=False, overwrite_a=False, overwrite_b=False,
         type=1, check_finite=True, subset_by_index=None, subset_by_value=None, driver=None):
    """(w ascending, v) of each symmetric matrix of a, reading its lower (or upper) triangle;
    w alone with eigvals_only. The generalized problem (b) and subsets are not supported."""
    if b is not None or subset_by_index is not None or subset_by_value is not None:
        raise NotImplementedError(f"scipy.linalg.eigh: the generalized problem (b) and subsets "
                                  f"are not supported{core.where()}")
    w, v = NL.eigh(a, UPLO="L" if lower else "U", symmetrize_input=False)
    return w if eigvals_only else (w, v)


def block_diag(*arrs):
    """The block-diagonal matrix with the given blocks (scalars and 1-d arrays are rows)."""
    if not arrs:
        return lax.full((1, 0), 0, np.float64)
    blocks = []
    for x in arrs:
        x = as_operand(x)
        nd = get_aval(x).ndim
        if nd > 2:
            raise ValueError(f"block_diag: arguments must have dimension <= 2, got {nd}"
                             f"{core.where()}")
        blocks.append(lax.reshape(x, (1,) * (2 - nd) + get_aval(x).shape))
    dt = np.result_type(*[get_aval(x).dtype for x in blocks])
    cols = sum(get_aval(x).shape[1] for x in blocks)
    rows, left = [], 0
    for x in blocks:
        r, c = get_aval(x).shape
        rows.append(_pad(cast(x, dt), 0, ((0, 0, 0), (left, cols - left - c, 0))))
        left += c
    return _concatenate(rows, 0)


# ---------------------------------------------------------------------------------------------
# expm: Pade approximant of degree 13 with scaling and squaring (Higham 2005), written in
# traceable ops so that every transform, derivatives included, comes from its parts

_PADE13 = (64764752532480000., 32382376266240000., 7771770303897600., 1187353796428800.,
           129060195264000., 10559470521600., 670442572800., 33522128640., 1323241920.,
           40840800., 960960., 16380., 182., 1.)
_THETA13 = 5.371920351148152


def _scaled(x, c):
    return lax.mul(x, lax.full(get_aval(x).shape, c, get_aval(x).dtype))


def _pade13(a):
    """(U, V): the odd and even parts of the degree-13 Pade approximant's numerator at a."""
    b = _PADE13
    eye = L.eye_like(a)
    a2 = L.matmul(a, a)
    a4 = L.matmul(a2, a2)
    a6 = L.matmul(a4, a2)

    def comb(c6, c4, c2, c0=None):
        out = lax.add(lax.add(_scaled(a6, c6), _scaled(a4, c4)), _scaled(a2, c2))
        return out if c0 is None else lax.add(out, _scaled(eye, c0))
    u_in = lax.add(L.matmul(a6, comb(b[13], b[11], b[9])), comb(b[7], b[5], b[3], b[1]))
    v = lax.add(L.matmul(a6, comb(b[12], b[10], b[8])), comb(b[6], b[4], b[2], b[0]))
    return L.matmul(a, u_in), v


def expm(A, *, upper_triangular=False, max_squarings=16):
    """The matrix exponential of each square matrix of A: the Pade approximant of degree 13
    of A / 2^s, squared s times, s = max(0, ceil(log2(|A|_1 / 5.37))) capped at max_squarings
    (as SciPy and JAX). Differentiable to any order through its traceable parts."""
    A = NL._matrix(A, "expm", square=True)
    norm1 = R.max(R.sum(U.abs(A), axis=-2), axis=-1)
    with np.errstate(divide="ignore"):
        s = U.ceil(U.log2(U.divide(lax.stop_gradient(norm1), _THETA13)))
    s = U.minimum(U.maximum(s, 0.0), float(max_squarings))
    scale = U.exp2(U.negative(s))
    a = U.multiply(A, lax.broadcast_in_dim(scale, get_aval(A).shape,
                                           tuple(range(get_aval(A).ndim - 2))))
    u, v = _pade13(a)
    r = NL._solve(lax.sub(v, u), lax.add(v, u))
    s_full = lax.broadcast_in_dim(s, get_aval(A).shape, tuple(range(get_aval(A).ndim - 2)))

    def square(r, i):
        more = U.less(i, s_full)
        return lax.select(more, L.matmul(r, r), r), None
    r, _ = CF.scan(square, r, lax.iota(get_aval(s).dtype, max_squarings))
    return r
