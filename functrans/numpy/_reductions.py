"""Reductions (sum mean var std prod max min argmax argmin all any) and cumulative ops."""
from __future__ import annotations

import builtins

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax
from ._base import as_operand, canonical_axes, canonical_axis, cast, oracle_dtype


def _keep(x, out, axes, keepdims):
    """out with the reduced axes reinserted as size-1 dims when keepdims."""
    if not keepdims:
        return out
    shape = tuple(1 if i in axes else d for i, d in enumerate(get_aval(x).shape))
    return lax.reshape(out, shape)


def _mask(where, aval):
    """The where= mask as a bool array of aval's shape, or None for no mask (None or True)."""
    if where is None or where is True:
        return None
    from ._ufuncs import _to_bool
    from ._base import broadcast_to_shape
    return broadcast_to_shape(_to_bool(as_operand(where, "where")), aval.shape)


def _masked(x, mask, fill):
    """x where mask holds, else the constant fill (x unchanged without a mask)."""
    if mask is None:
        return x
    a = get_aval(x)
    return lax.select(mask, x, lax.full(a.shape, fill, a.dtype))


def _lowest(dtype, sign):
    """The identity of max (sign=-1) or min (sign=+1) for dtype: -+inf, the integer bounds."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return sign * np.inf
    if dtype.kind == "b":
        return sign > 0
    info = np.iinfo(dtype)
    return info.max if sign > 0 else info.min


_NONEMPTY = {}


def _nonempty(np_fn):
    """np_fn applied to a one-element array like its argument (for reductions with no
    identity, whose dtype cannot be probed on an empty array)."""
    if np_fn not in _NONEMPTY:
        _NONEMPTY[np_fn] = lambda x, **kw: np_fn(np.zeros((1,), x.dtype), **kw)
    return _NONEMPTY[np_fn]


def _reduction(name, np_fn, lax_reduce, empty_ok=True, identity=None):
    def f(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
        if out is not None:
            raise NotImplementedError(f"{name}: out= is not supported (arrays are immutable)")
        a = as_operand(a)
        kw = {"dtype": dtype} if dtype is not None else {}
        dt = oracle_dtype(np_fn if empty_ok else _nonempty(np_fn), a, **kw)
        aval = get_aval(a)
        axes = canonical_axes(axis, aval.ndim)
        mask = _mask(where, aval)
        if not empty_ok and initial is None and mask is not None:
            raise ValueError(f"reduction operation {name} does not have an identity, so to use "
                             f"a where mask one has to specify 'initial'{core.where()}")
        if not empty_ok and initial is None and builtins.any(aval.shape[i] == 0 for i in axes):
            raise ValueError(f"zero-size array to reduction operation {name} which has no "
                             f"identity (shape {aval.shape}){core.where()}")
        x = cast(a, dt)
        if mask is not None:
            x = _masked(x, mask, identity if empty_ok else _lowest(dt, 1 if name == "min" else -1))
        r = lax_reduce(x, axes)
        if initial is not None:
            from ._ufuncs import maximum, minimum, add, multiply
            comb = {"sum": add, "prod": multiply, "max": maximum, "min": minimum}[name]
            r = cast(comb(r, initial), dt)
        return _keep(a, r, axes, keepdims)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"The {name} of a over axis (None: all axes), keepdims as NumPy; NumPy's "
                 "result dtype.")
    return f


sum = _reduction("sum", np.sum, lax.reduce_sum, identity=0)  # noqa: A001
prod = _reduction("prod", np.prod, lax.reduce_prod, identity=1)
max = amax = _reduction("max", np.max, lax.reduce_max, empty_ok=False)  # noqa: A001
min = amin = _reduction("min", np.min, lax.reduce_min, empty_ok=False)  # noqa: A001


def _truth(a):
    from ._ufuncs import _to_bool
    return _to_bool(a)


def _bool_reduction(name, reduce, empty_value):
    def f(a, axis=None, out=None, keepdims=False, *, where=None):
        x = _truth(a)
        x = _masked(x, _mask(where, get_aval(x)), empty_value)
        axes = canonical_axes(axis, get_aval(x).ndim)
        if builtins.any(get_aval(x).shape[i] == 0 for i in axes):
            shape = tuple(d for i, d in enumerate(get_aval(x).shape) if i not in axes)
            return _keep(x, lax.full(shape, empty_value, np.bool_), axes, keepdims)
        return _keep(x, reduce(x, axes), axes, keepdims)
    f.__name__ = f.__qualname__ = name
    return f


all = _bool_reduction("all", lax.reduce_min, True)  # noqa: A001
all.__doc__ = """True where every element along axis is nonzero (bool)."""
any = _bool_reduction("any", lax.reduce_max, False)  # noqa: A001
any.__doc__ = """True where some element along axis is nonzero (bool)."""


def _count(aval, axes):
    return int(np.prod([aval.shape[i] for i in axes], dtype=np.int64))


def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """The arithmetic mean along axis (float64 for integer input, as NumPy); with ``where``,
    of the selected elements only (NaN where none is)."""
    a = as_operand(a)
    kw = {"dtype": dtype} if dtype is not None else {}
    dt = oracle_dtype(np.mean, a, **kw)
    axes = canonical_axes(axis, get_aval(a).ndim)
    mask = _mask(where, get_aval(a))
    s = lax.reduce_sum(_masked(cast(a, dt), mask, 0), axes)
    r = lax.div(s, _count_like(s, get_aval(a), axes, mask, dt))
    return _keep(a, r, axes, keepdims)


def _count_like(r, aval, axes, mask, dtype, ddof=0):
    """The number of elements reduced into each entry of r (minus ddof, at least 0), as dtype."""
    if mask is None:
        n = builtins.max(_count(aval, axes) - ddof, 0)
        return lax.full(get_aval(r).shape, n, dtype)
    n = lax.reduce_sum(lax.convert_element_type(mask, dtype), axes)
    if ddof:
        n = lax.max(lax.sub(n, lax.full(get_aval(n).shape, ddof, dtype)),
                    lax.full(get_aval(n).shape, 0, dtype))
    return n


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
        correction=None):
    """The variance along axis: mean of squared deviations, divided by n - ddof (n: the
    number of elements, or of selected ones with ``where``)."""
    if correction is not None:
        ddof = correction
    a = as_operand(a)
    kw = {"dtype": dtype} if dtype is not None else {}
    dt = oracle_dtype(np.var, a, **kw)
    aval = get_aval(a)
    axes = canonical_axes(axis, aval.ndim)
    mask = _mask(where, aval)
    cplx = aval.dtype.kind == "c"       # NumPy: the mean of |x - mean|^2, of the real dtype
    x = cast(a, lax.complex_dtype(dt) if cplx else dt)
    m = lax.reduce_sum(_masked(x, mask, 0), axes)
    m = lax.div(m, _count_like(m, aval, axes, mask, get_aval(x).dtype))
    kept = tuple(i for i in range(aval.ndim) if i not in axes)
    d = _masked(lax.sub(x, lax.broadcast_in_dim(m, aval.shape, kept)), mask, 0)
    sq = lax.add(lax.square(lax.real(d)), lax.square(lax.imag(d))) if cplx else lax.mul(d, d)
    s = lax.reduce_sum(sq, axes)
    r = lax.div(s, _count_like(s, aval, axes, mask, dt, ddof))
    return _keep(a, r, axes, keepdims)


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None,
        correction=None):
    """The standard deviation along axis: sqrt(var)."""
    return lax.sqrt(var(a, axis, dtype, out, ddof, keepdims, where=where, correction=correction))


def _arg(name, lax_fn):
    def f(a, axis=None, out=None, *, keepdims=False):
        a = as_operand(a)
        aval = get_aval(a)
        if axis is None:
            x = lax.reshape(a, (aval.size,))
            ax = 0
        else:
            x, ax = a, canonical_axis(axis, aval.ndim)
        if get_aval(x).shape[ax] == 0:
            raise ValueError(f"attempt to get {name} of an empty sequence{core.where()}")
        if get_aval(x).dtype.kind == "b":
            x = lax.convert_element_type(x, np.int8)
        r = lax_fn(x, ax, np.int64)
        if keepdims:
            shape = (1,) * aval.ndim if axis is None else tuple(
                1 if i == ax else d for i, d in enumerate(aval.shape))
            r = lax.reshape(r, shape)
        return r
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Index (int64) of the first {name[3:]}imum along axis (None: of the flattened a)."
    return f


argmax = _arg("argmax", lax.argmax)
argmin = _arg("argmin", lax.argmin)


def _cumulative(name, np_fn, lax_fn):
    def f(a, axis=None, dtype=None, out=None):
        a = as_operand(a)
        kw = {"dtype": dtype} if dtype is not None else {}
        dt = oracle_dtype(np_fn, a, **kw)
        if axis is None:
            a = lax.reshape(a, (get_aval(a).size,))
            axis = 0
        ax = canonical_axis(axis, get_aval(a).ndim)
        return lax_fn(cast(a, dt), ax)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"The cumulative {name[3:]} along axis (None: of the flattened a)."
    return f


cumsum = _cumulative("cumsum", np.cumsum, lax.cumsum)
cumprod = _cumulative("cumprod", np.cumprod, lax.cumprod)
