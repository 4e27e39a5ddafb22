"""Array creation: array, asarray, zeros, ones, full, *_like, arange, linspace, eye."""
from __future__ import annotations

import builtins

import numpy as np

from .. import core
from ..core import Tracer, get_aval
from ..lax import lax
from ._base import PY_SCALARS, as_operand, cast, concrete


def _contains_tracer(obj):
    if isinstance(obj, Tracer):
        return True
    if isinstance(obj, (list, tuple)):
        return builtins.any(_contains_tracer(o) for o in obj)
    return False


def _host_copy(obj, dtype):
    """A private ndarray copy of obj; without a dtype, OverflowError (as JAX) for a Python int
    outside int64 (NumPy would make it uint64 or an object array)."""
    v = np.array(obj, dtype=dtype, copy=True)
    if dtype is None and (v.dtype.kind in "Ou" or (   # [1, 2**63] becomes float64 in NumPy
            v.dtype.itemsize >= 4 and v.dtype.kind == "f" and v.size
            and np.max(np.abs(v)) >= 2.0 ** 63)):
        _check_python_ints(obj)
    return v


def _check_python_ints(obj):
    if isinstance(obj, (list, tuple)):
        for o in obj:
            _check_python_ints(o)
    elif isinstance(obj, int):
        core.scalar_array(obj)


def array(object, dtype=None, copy=True, order="K", ndmin=0, *, device=None):  # noqa: A002
    """An Array from object (array, scalar or nested sequence, possibly holding tracers), on
    ``device`` if given. (Arrays are immutable: ``copy`` and ``order`` change nothing.)"""
    if isinstance(object, Tracer):
        out = object if dtype is None else cast(object, dtype)
    elif isinstance(object, (list, tuple)) and _contains_tracer(object):
        from ._shape import stack
        from ._base import result_type
        items = [array(o) if isinstance(o, (list, tuple)) else o for o in object]
        dt = np.dtype(dtype) if dtype is not None else result_type(*items)
        out = stack([cast(o, dt) for o in items])
    elif type(object) is core.Array:
        out = object if dtype is None else cast(object, dtype)
    elif isinstance(object, (np.ndarray, np.generic, list, tuple) + PY_SCALARS) or \
            hasattr(object, "__array__"):
        out = core.make_array(_host_copy(object, dtype))
    else:
        raise TypeError(f"array: cannot make an array from {type(object).__name__}"
                        f"{core.where()}")
    nd = get_aval(out).ndim
    if ndmin > nd:
        out = lax.reshape(out, (1,) * (ndmin - nd) + get_aval(out).shape)
    return out if device is None else core.put(out, device)


def asarray(a, dtype=None, order=None, *, copy=None, device=None):
    """a as an Array (an Array of the right dtype is returned as it is unless copy=True; NumPy
    arrays are copied, so that the result never shares the caller's writable memory), on
    ``device`` if given."""
    if type(a) is core.Array and (dtype is None or a.dtype == np.dtype(dtype)) and not copy:
        out = a
    else:
        out = array(a, dtype)
    return out if device is None else core.put(out, device)


def _shape_tuple(shape):
    if isinstance(shape, (int, np.integer)) or hasattr(shape, "__index__"):
        return (int(shape),)
    out = tuple(int(d) for d in shape)
    if builtins.any(d < 0 for d in out):
        raise ValueError(f"negative dimensions are not allowed: {out}{core.where()}")
    return out


def full(shape, fill_value, dtype=None):
    """An array of the given shape filled with fill_value."""
    shape = _shape_tuple(shape)
    fill = as_operand(fill_value)
    dt = np.dtype(dtype) if dtype is not None else get_aval(fill).dtype
    from ._base import broadcast_to_shape
    return broadcast_to_shape(cast(fill, dt), shape)


def zeros(shape, dtype=None):
    """An array of zeros (float64 by default)."""
    return full(shape, 0, np.float64 if dtype is None else dtype)


def ones(shape, dtype=None):
    """An array of ones (float64 by default)."""
    return full(shape, 1, np.float64 if dtype is None else dtype)


def empty(shape, dtype=None):
    """zeros(shape, dtype) (functional arrays have no uninitialised memory)."""
    return zeros(shape, dtype)


def _like(a, dtype, shape):
    a = get_aval(as_operand(a))
    return (a.shape if shape is None else shape), (a.dtype if dtype is None else dtype)


def full_like(a, fill_value, dtype=None, shape=None):
    """An array shaped like a (dtype of a unless given) filled with fill_value, on the device a
    is committed to (as JAX)."""
    s, d = _like(a, dtype, shape)
    out = full(s, fill_value, d)
    if type(a) is core.Array and a.committed:
        return core.put(out, a.device)
    return out


def zeros_like(a, dtype=None, shape=None):
    """Zeros shaped like a."""
    return full_like(a, 0, dtype, shape)


def ones_like(a, dtype=None, shape=None):
    """Ones shaped like a."""
    return full_like(a, 1, dtype, shape)


def empty_like(a, dtype=None, shape=None):
    """zeros_like(a)."""
    return zeros_like(a, dtype, shape)


def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in [start, stop) (bounds must be concrete; NumPy's values)."""
    args = [concrete(v, "an arange bound").item() for v in (start, stop, step) if v is not None]
    if stop is None and step is not None:
        args = [0] + args
    return np.arange(*args, dtype=dtype)


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """num evenly spaced samples over [start, stop] (NumPy's formula, traceable bounds)."""
    num = int(num)
    if num < 0:
        raise ValueError(f"Number of samples, {num}, must be non-negative{core.where()}")
    if not isinstance(start, Tracer) and not isinstance(stop, Tracer):
        out = np.linspace(start, stop, num, endpoint, retstep, dtype, axis)
        return out
    from . import _ufuncs as U
    from ._shape import moveaxis
    start, stop = as_operand(start), as_operand(stop)
    dt = np.result_type(get_aval(start).dtype, get_aval(stop).dtype, float)
    div = (num - 1) if endpoint else num
    delta = U.subtract(cast(stop, dt), cast(start, dt))
    bshape = np.broadcast_shapes(get_aval(start).shape, get_aval(stop).shape)
    nb = len(bshape)
    steps = lax.broadcasted_iota(dt, (num,) + tuple(bshape), 0)
    from ._base import broadcast_to_shape
    start_b = broadcast_to_shape(cast(start, dt), (num,) + tuple(bshape))
    delta_b = broadcast_to_shape(delta, (num,) + tuple(bshape))
    if div > 0:
        step = U.divide(delta_b, float(div))
        y = U.add(U.multiply(steps, step), start_b)
        if endpoint and num > 1:
            last = lax.broadcasted_iota(np.int64, (num,) + tuple(bshape), 0) == num - 1
            y = lax.select(last, broadcast_to_shape(cast(stop, dt), (num,) + tuple(bshape)), y)
    else:
        step = np.asarray(np.nan, dt)
        y = U.add(U.multiply(steps, delta_b), start_b)
    y = moveaxis(y, 0, axis) if nb else y
    if dtype is not None:
        y = cast(y, dtype)
    return (y, step) if retstep else y


def eye(N, M=None, k=0, dtype=float):
    """A 2-d array with ones on the k-th diagonal."""
    N = int(N)
    M = N if M is None else int(M)
    rows = lax.broadcasted_iota(np.int64, (N, M), 0)
    cols = lax.broadcasted_iota(np.int64, (N, M), 1)
    on = lax.eq(lax.add(rows, np.full((N, M), int(k), np.int64)) if k else rows, cols)
    return lax.convert_element_type(on, np.dtype(dtype))


def identity(n, dtype=None):
    """eye(n)."""
    return eye(n, dtype=float if dtype is None else dtype)


def tri(N, M=None, k=0, dtype=float):
    """Ones at and below the k-th diagonal."""
    M = N if M is None else M
    rows = lax.broadcasted_iota(np.int64, (N, M), 0)
    cols = lax.broadcasted_iota(np.int64, (N, M), 1)
    return lax.convert_element_type(lax.le(cols, lax.add(rows, np.full((N, M), int(k), np.int64))),
                                    np.dtype(dtype))
