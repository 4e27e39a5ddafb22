"""functrans.numpy: the NumPy API written in lax, so it can be traced and transformed.

Dtypes follow NumPy 2 exactly (NEP 50: Python scalars are weak), broadcasting follows NumPy,
and this module also installs the operators and methods of traced arrays."""
from __future__ import annotations

import numpy as _np

from .. import core as _core
from ..lax import lax as _lax
from . import fft, linalg  # noqa: F401
from ._base import as_operand as _as_operand, is_arraylike as _is_arraylike
from ._base import broadcast_shapes, result_type  # noqa: F401
from ._complex import (angle, imag, iscomplex, iscomplexobj, isrealobj, real,  # noqa: F401
                       real_if_close)
from ._arrayops import (append, argpartition, atleast_3d, cross, diag, diagflat, diff,  # noqa: F401
                        dsplit, gradient, kron, partition, rollaxis, rot90, tril, triu)
from ._creation import (arange, array, asarray, empty, empty_like, eye, full, full_like,  # noqa: F401
                        identity, linspace, ones, ones_like, tri, zeros, zeros_like)
from ._einsum import einsum  # noqa: F401
from ._elementwise import (deg2rad, degrees, fabs, fmax, fmin, hypot, logaddexp2,  # noqa: F401
                           nan_to_num, rad2deg, radians, select, sinc)
from ._index_tricks import c_, r_  # noqa: F401
from ._indexing import at as _at, getitem as _getitem, take, take_along_axis  # noqa: F401
from ._linalg import diagonal, dot, inner, matmul, outer, tensordot, trace, vdot  # noqa: F401
from ._convolve import convolve, correlate  # noqa: F401
from ._reductions import (all, amax, amin, any, argmax, argmin, cumprod, cumsum, max, mean,  # noqa: F401,A004
                          min, prod, std, sum, var)
from ._shape import (array_split, atleast_1d, atleast_2d, broadcast_arrays, broadcast_to,  # noqa: F401
                     column_stack, concat, concatenate, dstack, expand_dims, flip, fliplr, flipud,
                     hsplit, hstack, moveaxis, pad, permute_dims, ravel, repeat, reshape, roll,
                     row_stack, split, squeeze, stack, swapaxes, tile, transpose, vsplit, vstack)
from ._special import logsumexp as _logsumexp  # noqa: F401
from ._ufuncs import (abs, absolute, add, arccos, arccosh, arcsin, arcsinh, arctan, arctan2,  # noqa: F401,A004
                      arctanh, around, bitwise_and, bitwise_not, bitwise_or, bitwise_xor, cbrt,
                      ceil, clip, conj, conjugate, cos, cosh, divide, equal, exp, exp2, expm1,
                      floor, floor_divide, greater, greater_equal, invert, isfinite, isinf, isnan,
                      less, less_equal, log, log1p, log2, log10, logaddexp, logical_and,
                      logical_not, logical_or, logical_xor, maximum, minimum, mod, multiply,
                      negative, not_equal, positive, power, reciprocal, remainder, rint, round,
                      sign, sin, sinh, sqrt, square, subtract, tan, tanh, true_divide, trunc,
                      where)

# dtypes and constants, as NumPy names them
from numpy import (bool_, complex64, complex128, dtype, float16, float32, float64, int8,  # noqa: F401
                   int16, int32, int64, uint8, uint16, uint32, uint64, inf, nan, pi, e,
                   newaxis, iinfo, finfo, integer, floating, inexact, number, generic)
from ml_dtypes import bfloat16  # noqa: F401
from ..core import Array as ndarray  # noqa: F401

bool = bool_  # noqa: A001
float_ = float64
int_ = int64


def shape(a):
    """The shape of a."""
    return _core.get_aval(_as_operand(a)).shape


def ndim(a):
    """The number of dimensions of a."""
    return _core.get_aval(_as_operand(a)).ndim


def size(a, axis=None):
    """The number of elements of a (along axis if given)."""
    s = shape(a)
    return int(_np.prod(s, dtype=_np.int64)) if axis is None else s[axis]


def copy(a):
    """a (arrays are immutable; NumPy inputs are copied)."""
    return array(a)


def isscalar(element):
    """True for Python/NumPy scalars (a 0-d array is not a scalar, as NumPy)."""
    return _np.isscalar(element)


def astype(x, dtype):
    """x converted to dtype."""
    return _lax.convert_element_type(_as_operand(x), _np.dtype(dtype))


def count_nonzero(a, axis=None, keepdims=False):
    """The number of nonzero elements along axis (int64)."""
    return sum(not_equal(a, 0), axis=axis, keepdims=keepdims)


def nonzero(a):
    """The indices of the nonzero elements (a must be concrete)."""
    from ._base import concrete
    return _np.nonzero(concrete(a, "nonzero"))


def allclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True if all elements of a and b are close (a bool array)."""
    return all(isclose(a, b, rtol, atol, equal_nan))


def isclose(a, b, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|a - b| <= atol + rtol * |b| elementwise (inf equal to same-sign inf)."""
    close = less_equal(abs(subtract(a, b)), add(atol, multiply(rtol, abs(b))))
    close = logical_or(close, equal(a, b))
    if equal_nan:
        close = logical_or(close, logical_and(isnan(a), isnan(b)))
    return close


def array_equal(a1, a2):
    """True if a1 and a2 have the same shape and elements."""
    if shape(a1) != shape(a2):
        return _np.bool_(False)
    return all(equal(a1, a2))


def _sort_operand(a, axis):
    from ._base import canonical_axis
    a = _as_operand(a)
    if axis is None:
        a, axis = ravel(a), 0
    return a, canonical_axis(axis, _core.get_aval(a).ndim)


def sort(a, axis=-1):
    """a sorted along axis (None: flattened), stably, NaNs last."""
    from ..lax import slicing
    a, ax = _sort_operand(a, axis)
    return slicing.sort(a, dimension=ax)


def argsort(a, axis=-1):
    """int64 indices that sort a stably along axis (None: flattened)."""
    from ..lax import slicing
    a, ax = _sort_operand(a, axis)
    return slicing.argsort(a, ax)


can_cast = _np.can_cast


def promote_types(type1, type2):
    """The dtype both dtypes promote to: NumPy's, or JAX's lattice where one is float16 or
    bfloat16 (bfloat16 with float16 gives float32, any integer with either keeps it)."""
    from ._base import _is_narrow, lattice_join
    d1, d2 = _np.dtype(type1), _np.dtype(type2)
    if _is_narrow(d1) or _is_narrow(d2):
        return lattice_join((d1, d2))
    return _np.promote_types(d1, d2)


def issubdtype(arg1, arg2):
    """numpy.issubdtype, with bfloat16 a floating type (ml_dtypes' type is not a subclass of
    numpy.floating)."""
    try:
        narrow_bf16 = _np.dtype(arg1) == bfloat16
    except TypeError:
        narrow_bf16 = False
    if narrow_bf16 and arg2 in (floating, inexact, number, generic):
        return True
    return _np.issubdtype(arg1, arg2)


# ---------------------------------------------------------------------------------------------
# Operators and methods of traced arrays


def _binop(f, reverse=False):
    def op(self, other):
        if not _is_arraylike(other):
            return NotImplemented
        return f(other, self) if reverse else f(self, other)
    return op


def _reshape_method(self, *shape, order="C"):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return reshape(self, shape, order)


def _transpose_method(self, *axes):
    if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
        axes = axes[0]
    return transpose(self, axes or None)


def _item(self, *args):
    v = self._concrete("item()")
    return _np.asarray(v).item(*args)


def _pow_method(self, other):
    if not _is_arraylike(other):
        return NotImplemented
    if type(other) in (int, float) and other == 2:
        return square(self)  # ndarray.__pow__'s fast path (bool ** 2 is int8 there)
    return power(self, other)


def _divmod(self, other):
    return floor_divide(self, other), remainder(self, other)


def _matrix_transpose(x):
    return swapaxes(x, -1, -2)


_methods = {
    "__add__": _binop(add), "__radd__": _binop(add, True),
    "__sub__": _binop(subtract), "__rsub__": _binop(subtract, True),
    "__mul__": _binop(multiply), "__rmul__": _binop(multiply, True),
    "__truediv__": _binop(true_divide), "__rtruediv__": _binop(true_divide, True),
    "__floordiv__": _binop(floor_divide), "__rfloordiv__": _binop(floor_divide, True),
    "__mod__": _binop(remainder), "__rmod__": _binop(remainder, True),
    "__pow__": _pow_method, "__rpow__": _binop(power, True),
    "__matmul__": _binop(matmul), "__rmatmul__": _binop(matmul, True),
    "__and__": _binop(bitwise_and), "__rand__": _binop(bitwise_and, True),
    "__or__": _binop(bitwise_or), "__ror__": _binop(bitwise_or, True),
    "__xor__": _binop(bitwise_xor), "__rxor__": _binop(bitwise_xor, True),
    "__eq__": _binop(equal), "__ne__": _binop(not_equal),
    "__lt__": _binop(less), "__le__": _binop(less_equal),
    "__gt__": _binop(greater), "__ge__": _binop(greater_equal),
    "__divmod__": _divmod,
    "__neg__": negative, "__pos__": positive, "__abs__": abs, "__invert__": invert,
    "__getitem__": _getitem,
    "T": transpose, "mT": _matrix_transpose, "at": _at, "real": real, "imag": imag,
    "sum": sum, "mean": mean, "max": max, "min": min, "prod": prod, "var": var, "std": std,
    "argmax": argmax, "argmin": argmin, "all": all, "any": any, "cumsum": cumsum,
    "cumprod": cumprod, "reshape": _reshape_method, "transpose": _transpose_method,
    "astype": astype, "dot": dot, "ravel": ravel, "flatten": ravel, "squeeze": squeeze,
    "swapaxes": swapaxes, "take": take, "repeat": repeat, "clip": clip, "round": round,
    "conj": conj, "conjugate": conj, "copy": lambda self: self, "item": _item,
    "diagonal": diagonal, "trace": trace, "nonzero": nonzero, "sort": sort,
    "argsort": argsort,
}
_core.install_array_methods(_methods)


# ---------------------------------------------------------------------------------------------
# Every public function returns functrans.Array. Primitives evaluated eagerly already do; this
# catches the rest (a function that returns its input, or a constant it built with NumPy), and
# copies a result that is the caller's own ndarray.

def _returns_arrays(f):
    def g(*args, **kwargs):
        out = f(*args, **kwargs)
        if type(out) is ndarray or isinstance(out, _core.Tracer):
            return out
        return _as_arrays(out)
    g.__name__, g.__qualname__, g.__doc__ = f.__name__, f.__qualname__, f.__doc__
    g.__module__, g.__wrapped__ = f.__module__, f
    return g


def _as_arrays(out):
    if type(out) in (tuple, list):
        return type(out)(_as_arrays(o) for o in out)
    if isinstance(out, (_np.ndarray, _np.generic)):
        return _core.to_output(out)
    return out      # Arrays, tracers, and Python values (None, ints) as the function gave them


def _wrap_public_functions(namespace, modules=("functrans.numpy",)):
    for name, f in list(namespace.items()):
        if (not name.startswith("_") and callable(f) and not isinstance(f, type)
                and getattr(f, "__module__", "").startswith(modules)
                and name not in _RETURNS_PYTHON):
            namespace[name] = _returns_arrays(f)


# functions whose results are Python values or NumPy metadata, as in NumPy and JAX
_RETURNS_PYTHON = {"shape", "broadcast_shapes", "ndim", "size", "isscalar", "result_type", "promote_types",
                   "can_cast", "iinfo", "finfo", "issubdtype", "dtype"}
printoptions, set_printoptions, get_printoptions = (_np.printoptions, _np.set_printoptions,
                                                    _np.get_printoptions)

_wrap_public_functions(globals())
_wrap_public_functions(linalg.__dict__, ("functrans.numpy.linalg", "functrans.numpy._linalg"))
_wrap_public_functions(fft.__dict__, ("functrans.numpy.fft",))
