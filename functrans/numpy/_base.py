"""Shared helpers of functrans.numpy: argument conversion, NumPy 2 (NEP 50) dtype promotion with
weak Python scalars, and broadcasting. NumPy itself is the dtype oracle: the result dtype of an
operation is what NumPy's ufunc gives on empty arrays of the operand dtypes."""
from __future__ import annotations

import builtins
import functools
import warnings

import numpy as np

from .. import core
from ..core import Array, Tracer, get_aval
from ..lax import lax

PY_SCALARS = (bool, int, float, complex)


def is_weak(x):
    """True for Python scalars (they adapt to the other operand's dtype, as NumPy 2 does)."""
    return type(x) in PY_SCALARS


_OPERAND_TYPES = frozenset((Array, np.ndarray) + PY_SCALARS)


def is_arraylike(x):
    """True for values functrans.numpy accepts as array operands."""
    return type(x) in _OPERAND_TYPES or isinstance(x, (Tracer, np.ndarray, np.generic))


def as_operand(x, what="argument"):
    """x as an Array, tracer or NumPy array (Python scalars, sequences and objects with
    __array__ become NumPy arrays)."""
    if type(x) is Array or isinstance(x, (Tracer, np.ndarray)):
        return x
    if isinstance(x, (np.generic,) + PY_SCALARS):
        return core.scalar_array(x)
    if isinstance(x, (list, tuple)):
        from ._creation import array
        return array(x)
    if hasattr(x, "__array__") and not isinstance(x, type):
        return np.asarray(x)
    raise TypeError(f"{what}: {x!r} of type {type(x).__name__} is not a valid functrans.numpy "
                    f"array{core.where()}")


def dtype_of(x):
    """The dtype of an operand (Python scalars: NumPy's default for their type)."""
    if type(x) is Array or isinstance(x, (Tracer, np.ndarray, np.generic)):
        return x.dtype
    return get_aval(as_operand(x)).dtype


def shape_of(x):
    """The shape of an operand."""
    if type(x) is Array or isinstance(x, (Tracer, np.ndarray, np.generic)):
        return x.shape
    return get_aval(as_operand(x)).shape


def _probe_key(x):
    t = type(x)
    if t in PY_SCALARS:
        return t
    if t is Array:
        return x.aval.dtype
    if t is np.ndarray:
        return x.dtype
    if isinstance(x, Tracer):
        return x.aval.dtype
    return dtype_of(x)


def array_aval(x):
    """The aval of an Array, tracer or NumPy array operand; None for anything else (Python
    scalars)."""
    if type(x) is Array or isinstance(x, Tracer):
        return x.aval
    if type(x) is np.ndarray:
        return get_aval(x)
    return None


def binary_operands(fn, x1, x2):
    """(result dtype, x1, x2 promoted to it and broadcast together) for NumPy's ``fn``. The
    common case, two arrays of the result dtype and one shape, costs two dict lookups."""
    # array_aval(x1), array_aval(x2), inline for Arrays and tracers
    a1 = x1.aval if type(x1) is Array or isinstance(x1, Tracer) else array_aval(x1)
    a2 = x2.aval if type(x2) is Array or isinstance(x2, Tracer) else array_aval(x2)
    k1 = type(x1) if a1 is None else a1.dtype
    k2 = type(x2) if a2 is None else a2.dtype
    dt = oracle_memo.get((fn, (k1, k2)))
    if dt is None:
        dt = oracle_dtype(fn, x1, x2)
    if a1 is not None and a1.dtype == dt:
        if a2 is not None:
            if a2.dtype == dt and a1.shape == a2.shape:
                return dt, x1, x2
        elif not a1.shape and type(x2) in PY_SCALARS:
            return dt, x1, weak_constant(x2, dt)
    elif a2 is not None and a2.dtype == dt and not a2.shape and type(x1) in PY_SCALARS:
        return dt, weak_constant(x1, dt), x2
    return (dt, *promote(dt, x1, x2))


_weak_constants = {}


def weak_constant(x, dtype):
    """The Python scalar x as a read-only 0-d array of dtype, memoised (for 3.0 * x)."""
    key = (type(x), x, dtype)
    c = _weak_constants.get(key)
    if c is None or x == 0:   # 0.0 == -0.0 as keys: never share a zero
        c = np.asarray(core.check_int64(x), dtype)
        if x != 0 and x == x:
            if len(_weak_constants) > 1024:
                _weak_constants.clear()
            c.flags.writeable = False
            _weak_constants[key] = c
    return c


def _probe(key):
    if isinstance(key, type):
        return key(0)
    return np.empty((0,), key)


@functools.lru_cache(maxsize=None)
def _oracle(fn, keys, kwargs):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(fn(*map(_probe, keys), **dict(kwargs))).dtype


oracle_memo = {}  # (fn, keys) -> dtype: the common no-kwargs case without lru_cache's cost


def oracle_dtype(fn, *args, **kwargs):
    """The dtype NumPy's ``fn`` returns for operands like args (weak Python scalars kept weak).
    Raises TypeError (with the user's location) where NumPy rejects the dtypes."""
    try:
        keys = tuple(map(_probe_key, args))
    except TypeError:
        raise _bad_operand(fn, args) from None
    if not kwargs:
        dt = oracle_memo.get((fn, keys))
        if dt is not None:
            return dt
    kw = tuple(sorted((k, np.dtype(v) if k == "dtype" and v is not None else v)
                      for k, v in kwargs.items()))
    try:
        dt = _narrow_oracle(fn, keys, kw) if _is_narrow_call(keys, kw) else _oracle(fn, keys, kw)
    except (TypeError, ValueError) as e:
        names = ", ".join(k.__name__ if isinstance(k, type) else k.name for k in keys)
        raise TypeError(f"{getattr(fn, '__name__', fn)} does not support operand dtypes "
                        f"({names}): {e}{core.where()}") from None
    if not kwargs:
        oracle_memo[fn, keys] = dt
    return dt


# ---------------------------------------------------------------------------------------------
# JAX's promotion lattice, which functrans follows wherever a 16-bit float is involved (NumPy
# widens int32 + float16 to float64 and has no bfloat16 rules of its own). Each node lists the
# nodes just above it; i*, f*, c* are the weak Python scalars (docs/mixed_precision.md).

_LATTICE = {"b1": ("i*",), "u1": ("u2", "i2"), "u2": ("i4", "u4"), "u4": ("u8", "i8"),
            "u8": ("f*",), "i*": ("u1", "i1"), "i1": ("i2",), "i2": ("i4",), "i4": ("i8",),
            "i8": ("f*",), "f*": ("c*", "f2", "bf"), "bf": ("f4",), "f2": ("f4",),
            "f4": ("c8", "f8"), "f8": ("c16",), "c*": ("c8",), "c8": ("c16",), "c16": ()}
_NODE_DTYPES = {"b1": np.bool_, "u1": np.uint8, "u2": np.uint16, "u4": np.uint32,
                "u8": np.uint64, "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64,
                "bf": core.bfloat16, "f2": np.float16, "f4": np.float32, "f8": np.float64,
                "c8": np.complex64, "c16": np.complex128,
                "i*": np.int64, "f*": np.float64, "c*": np.complex128}
_NODE_OF_DTYPE = {np.dtype(d): n for n, d in _NODE_DTYPES.items() if not n.endswith("*")}
_NODE_OF_DTYPE[np.dtype(np.longdouble)] = "f8"
_NODE_OF_TYPE = {bool: "b1", int: "i*", float: "f*", complex: "c*"}


def _upper_set(node, memo={}):
    """node and every node above it in the lattice."""
    if node not in memo:
        memo[node] = frozenset({node}).union(*(_upper_set(n) for n in _LATTICE[node]))
    return memo[node]


def lattice_node(key):
    """The lattice node of a dtype or a Python scalar type (a weak value)."""
    return _NODE_OF_TYPE[key] if isinstance(key, type) and key in _NODE_OF_TYPE \
        else _NODE_OF_DTYPE[np.dtype(key)]


def lattice_join(keys):
    """JAX's promotion of dtypes and Python scalar types (weak): the least upper bound of their
    nodes, as a dtype (a weak result as NumPy's default for its kind)."""
    common = frozenset.intersection(*(_upper_set(lattice_node(k)) for k in keys))
    least = next(n for n in common if _upper_set(n) == common)
    return np.dtype(_NODE_DTYPES[least])


def _is_narrow(key):
    return not isinstance(key, type) and np.dtype(key) in core.NARROW_FLOATS


def _is_narrow_call(keys, kw):
    dt = dict(kw).get("dtype")
    return any(map(_is_narrow, keys)) or (dt is not None and dt in core.NARROW_FLOATS)


def _narrow_oracle(fn, keys, kw):
    """The dtype of fn on operands with a 16-bit float among them: they are promoted on JAX's
    lattice, and fn's dtype for that type is NumPy's for float32 with float32 read as the
    16-bit type (ml_dtypes' matmul of bfloat16 returns float32; JAX keeps bfloat16)."""
    asked = dict(kw).get("dtype")
    if asked is not None and asked in core.NARROW_FLOATS:
        return asked
    joined = lattice_join(keys)
    narrow = joined in core.NARROW_FLOATS
    probe = np.dtype(np.float32) if narrow else joined
    try:
        dt = _oracle(fn, (probe,) * len(keys), kw)
    except (TypeError, ValueError):
        _oracle(fn, keys, kw)      # NumPy's own error, naming the operands' dtypes
        raise
    return joined if narrow and asked is None and dt == np.float32 else dt


def _bad_operand(fn, args):
    """The TypeError naming the position and type of the first operand that is no array."""
    for i, a in enumerate(args):
        if not is_arraylike(a) and not isinstance(a, (list, tuple)) and \
                not hasattr(a, "__array__"):
            return TypeError(f"{getattr(fn, '__name__', fn)}: the operand at position {i} is a "
                             f"{type(a).__name__} ({a!r:.60}), not an array{core.where()}")
    return TypeError(f"{getattr(fn, '__name__', fn)}: operands of types "
                     f"{', '.join(type(a).__name__ for a in args)} are not arrays{core.where()}")


# the Python scalar types stand for weak values of their kind, as in JAX's result_type
_WEAK_OF_TYPE = {bool: False, int: 0, float: 0.0, complex: 0j}


def _as_dtype_or_weak(x):
    """A dtype or type operand of result_type as NumPy's promotion takes it (the Python scalar
    types as weak values); anything else as it is."""
    if isinstance(x, type) and x in _WEAK_OF_TYPE:
        return _WEAK_OF_TYPE[x]
    if isinstance(x, np.dtype) or (isinstance(x, type) and issubclass(x, np.generic)):
        return np.dtype(x)
    return x


def _result_key(x):
    """x as a key of lattice_join: a Python scalar type for weak values, else a dtype."""
    if is_weak(x):
        return type(x)
    if isinstance(x, type) and x in _WEAK_OF_TYPE:
        return x
    if isinstance(x, (np.dtype, str)) or (isinstance(x, type) and issubclass(x, np.generic)):
        return np.dtype(x)
    return dtype_of(x)


def result_type(*args):
    """NumPy 2's promotion of the operands' dtypes, JAX's where a 16-bit float is among them;
    operands may be arrays, values, dtypes or scalar types (Python scalars, and the types
    bool, int, float and complex, are weak)."""
    keys = [_result_key(x) for x in args]
    if any(map(_is_narrow, keys)):
        return core.canonicalize_dtype(lattice_join(keys))
    try:
        return core.canonicalize_dtype(
            np.result_type(*[x if is_weak(x) else dtype_of(x) for x in args]))
    except TypeError:
        if not any(isinstance(x, (type, np.dtype)) for x in args):
            raise
    try:
        return core.canonicalize_dtype(np.result_type(
            *[y if is_weak(y) or isinstance(y, np.dtype) else dtype_of(y)
              for y in map(_as_dtype_or_weak, args)]))
    except TypeError as e:
        raise TypeError(f"{e}{core.where()}") from None


def broadcast_shapes(*shapes):
    """The broadcast shape; ValueError naming all shapes (and the user's line) if none."""
    # NumPy's rule, written out: np.broadcast_shapes costs ~4 us per call
    nd = builtins.max(map(len, shapes), default=0)
    out = [1] * nd
    for s in shapes:
        off = nd - len(s)
        for i, d in enumerate(s):
            o = out[off + i]
            if o == 1:
                out[off + i] = d
            elif d != 1 and d != o:
                raise ValueError("operands could not be broadcast together with shapes "
                                 f"{' '.join(str(tuple(s)) for s in shapes)}{core.where()}")
    return tuple(map(int, out))


def cast(x, dtype):
    """x (operand or Python scalar) converted to dtype."""
    if (type(x) is Array or isinstance(x, (Tracer, np.ndarray))) and x.dtype == dtype:
        return x
    dtype = core.canonicalize_dtype(dtype)
    if is_weak(x) or isinstance(x, np.generic):
        return np.asarray(core.check_int64(x), dtype)
    x = as_operand(x)
    return lax.convert_element_type(x, dtype)


def broadcast_to_shape(x, shape):
    """x broadcast (NumPy rules, leading dims added) to shape."""
    shape = tuple(shape)
    a = get_aval(x)
    if a.shape == shape:
        return x
    if len(a.shape) > len(shape) or any(d not in (1, s) for d, s in
                                        zip(a.shape[::-1], shape[::-1])):
        raise ValueError(f"cannot broadcast an array of shape {a.shape} to shape {shape}"
                         f"{core.where()}")
    nd = len(shape)
    return lax.broadcast_in_dim(x, shape, tuple(range(nd - a.ndim, nd)))


def promote(dtype, *args):
    """args converted to dtype and broadcast together."""
    ops = [cast(x, dtype) for x in args]
    shapes = [o.shape for o in ops]
    if all(s == shapes[0] for s in shapes):
        return ops
    shape = broadcast_shapes(*shapes)
    return [broadcast_to_shape(o, shape) for o in ops]


def canonical_axis(axis, ndim):
    """A non-negative axis; numpy.exceptions.AxisError (a ValueError/IndexError) otherwise."""
    try:
        axis = int(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, got {axis!r}{core.where()}") from None
    if not -ndim <= axis < ndim:
        raise np.exceptions.AxisError(f"axis {axis} is out of bounds for array of dimension "
                                      f"{ndim}{core.where()}")
    return axis % ndim


def canonical_axes(axis, ndim):
    """A tuple of distinct non-negative axes; None means all."""
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, (tuple, list)):
        axis = (axis,)
    out = tuple(canonical_axis(a, ndim) for a in axis)
    if len(set(out)) != len(out):
        raise ValueError(f"duplicate value in 'axis': {tuple(axis)}{core.where()}")
    return out


def concrete(x, what):
    """The concrete NumPy value of x, or ConcretizationTypeError naming ``what``."""
    if isinstance(x, Tracer):
        return np.asarray(x._concrete(what))
    return np.asarray(x)
