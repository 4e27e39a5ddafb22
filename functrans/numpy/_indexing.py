"""NumPy indexing on traced arrays: basic slicing (slice/rev/squeeze/reshape), integer-array and
constant boolean-mask indexing (gather, with NumPy's placement of the advanced-index dims),
x.at[idx] (get with JAX's out-of-range modes; set/add/subtract/multiply/divide/power/min/max/
apply as scatters), take and take_along_axis."""
from __future__ import annotations

import builtins
from functools import partial

import numpy as np

from .. import core
from ..core import Tracer, get_aval
from ..errors import NonConcreteBooleanIndexError
from ..lax import lax
from ..lax import slicing
from ._base import as_operand, broadcast_to_shape, canonical_axis, cast


# ---------------------------------------------------------------------------------------------
# Parsing an index into entries

class _Adv:
    """An advanced (integer-array or integer-scalar) index on one input dimension."""
    __slots__ = ("value", "mask_size")

    def __init__(self, value, mask_size=None):
        self.value, self.mask_size = value, mask_size


def _is_int_scalar(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _index_error(msg):
    return IndexError(f"{msg}{core.where()}")


def _concrete_mask(mask):
    """The value of a traced boolean mask; NonConcreteBooleanIndexError (an IndexError) if it
    is abstract, as in JAX."""
    v = mask.to_concrete_value()
    if v is None:
        raise NonConcreteBooleanIndexError(
            f"Array boolean indices must be concrete; got {mask.aval.str_short()}{core.where()}. "
            "The mask's true count would set the result's shape, which under jit must be known "
            "when tracing: use functrans.numpy.where(mask, x, fill) or a reduction with "
            "where=mask instead, or index with a concrete (NumPy) mask.")
    return v


def _as_index_array(i):
    """A list/array/tracer index as a NumPy array or tracer (bool masks kept as bool)."""
    if isinstance(i, Tracer):
        return i
    arr = np.asarray(i)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)
    return arr


def _expand(x_shape, idx):
    """The index as a list of entries: None, slice, int, or _Adv, with Ellipsis expanded and
    boolean masks replaced by their nonzero() integer arrays."""
    x_ndim = len(x_shape)
    if not isinstance(idx, tuple):
        idx = (idx,)
    entries = []
    for i in idx:
        if i is None or i is Ellipsis or isinstance(i, slice):
            entries.append(i)
        elif _is_int_scalar(i):
            entries.append(int(i))
        elif isinstance(i, (bool, np.bool_)):
            raise _index_error("functrans.numpy does not support a Python bool as an index")
        elif isinstance(i, (list, tuple, np.ndarray, core.Array)):
            arr = _as_index_array(i)
            kind = get_aval(arr).dtype.kind
            if kind == "b":
                if isinstance(arr, Tracer):
                    arr = np.asarray(_concrete_mask(arr))
                if arr.ndim == 0:
                    raise _index_error("functrans.numpy does not support a 0-d boolean index")
                entries.extend(_Adv(n, s) for n, s in zip(np.nonzero(arr), arr.shape))
            elif kind in "iu":
                entries.append(_Adv(arr))
            else:
                raise _index_error(f"arrays used as indices must be of integer (or boolean) "
                                   f"type, got {get_aval(arr).dtype}")
        else:
            raise _index_error(f"only integers, slices (`:`), ellipsis (`...`), None and "
                               f"integer or boolean arrays are valid indices, got {i!r}")
    entries = [e for e in entries if not isinstance(e, tuple)]
    n_used = builtins.sum(1 for e in entries if e is not None and e is not Ellipsis)
    n_ell = builtins.sum(1 for e in entries if e is Ellipsis)
    if n_ell > 1:
        raise _index_error("an index can only have a single ellipsis ('...')")
    if n_used > x_ndim:
        raise _index_error(f"too many indices for array: array is {x_ndim}-dimensional, but "
                           f"{n_used} were indexed")
    fill = [slice(None)] * (x_ndim - n_used)
    if n_ell:
        k = entries.index(Ellipsis)
        entries = entries[:k] + fill + entries[k + 1:]
    else:
        entries = entries + fill
    _check_mask_sizes(entries, x_shape)
    return entries


def _check_mask_sizes(entries, x_shape):
    d = 0
    for e in entries:
        if e is None:
            continue
        if isinstance(e, _Adv) and e.mask_size is not None and e.mask_size != x_shape[d]:
            raise _index_error(f"boolean index did not match indexed array along axis {d}; size "
                               f"of axis is {x_shape[d]} but size of corresponding boolean axis "
                               f"is {e.mask_size}")
        d += 1


def _slice_params(s, n):
    """(start, stop, step, count) of slice s on a dimension of size n."""
    start, stop, step = s.indices(n)
    return start, stop, step, len(range(start, stop, step))


class _Bounds:
    """What a concrete out-of-range index does when retrieving: clamp into range, as JAX
    documents (x[7] of a length-5 x is x[4]); take(mode="raise") sets ``clamp = False`` to get
    NumPy's IndexError. (x.at[...] updates drop such indices before they get here, unless
    mode="clip"; x.at[...].get(mode="fill") points them at a fill slot.)"""
    clamp = True


def _out_of_bounds(e, n, axis):
    """The clamped index, or IndexError under take(mode="raise") (see _Bounds)."""
    if not _Bounds.clamp or n == 0:
        raise _index_error(f"index {e} is out of bounds for axis {axis} with size {n}")
    return 0 if e < -n else n - 1


def _normalize_int_array(a, n, axis):
    """Concrete or traced integer index array with negative entries wrapped (concrete ones are
    bounds-checked as NumPy does)."""
    if isinstance(a, Tracer):
        a = cast(a, np.int64)
        zero = lax.full(get_aval(a).shape, 0, np.int64)
        return lax.select(lax.lt(a, zero), lax.add(a, lax.full(get_aval(a).shape, n, np.int64)), a)
    a = np.asarray(a, np.int64)
    if a.size and (a.max() >= n or a.min() < -n):
        bad = a[(a >= n) | (a < -n)].flat[0]
        _out_of_bounds(bad, n, axis)
        a = np.clip(a, -n, n - 1)
    return np.where(a < 0, a + n, a)


# ---------------------------------------------------------------------------------------------
# Basic indexing + gather

def _apply_slices(x, entries):
    """x with every slice entry applied (static slice + rev for negative steps)."""
    aval = get_aval(x)
    lo, hi, st, flip = [0] * aval.ndim, list(aval.shape), [1] * aval.ndim, []
    d = 0
    for e in entries:
        if e is None:
            continue
        if isinstance(e, slice):
            start, stop, step, count = _slice_params(e, aval.shape[d])
            if count == 0:
                lo[d] = hi[d] = 0
            elif step > 0:
                lo[d], hi[d], st[d] = start, start + (count - 1) * step + 1, step
            else:
                last = start + (count - 1) * step
                lo[d], hi[d], st[d] = last, start + 1, -step
                flip.append(d)
        d += 1
    x = slicing.slice(x, lo, hi, st)
    return lax.rev(x, flip) if flip else x


def _has_advanced(entries):
    return builtins.any(isinstance(e, _Adv) for e in entries)


def _int_to_adv(entries, shape):
    """Entries where Python ints count as advanced 0-d indices (when any advanced index is
    present, NumPy treats integer scalars as advanced) with bounds checks."""
    out, d = [], 0
    for e in entries:
        if e is None:
            out.append(e)
            continue
        if isinstance(e, int):
            if not -shape[d] <= e < shape[d]:
                e = _out_of_bounds(e, shape[d], d)
            e = e % shape[d] if shape[d] else e
        out.append(e)
        d += 1
    return out


def _broadcast_index_shapes(arrays):
    shapes = [get_aval(as_operand(a)).shape for a in arrays]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise _index_error("shape mismatch: indexing arrays could not be broadcast together "
                           f"with shapes {' '.join(map(str, shapes))}") from None


def _index_plan(x_shape, entries):
    """Analyse entries with advanced indices. Returns (adv_dims, adv_arrays (normalised),
    B shape, out layout) where the layout lists, in NumPy's output order, 'B' for the block of
    broadcast advanced dims, ('s', input dim) for sliced dims and 'n' for None."""
    adv_dims, arrays, d = [], [], 0
    positions = []
    for k, e in enumerate(entries):
        if e is None:
            continue
        if isinstance(e, _Adv) or isinstance(e, int):
            val = e.value if isinstance(e, _Adv) else np.asarray(e, np.int64)
            arrays.append(_normalize_int_array(val, x_shape[d], d))
            adv_dims.append(d)
            positions.append(k)
        d += 1
    B = _broadcast_index_shapes(arrays)
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    layout, placed = [], False
    if not adjacent:
        layout.append("B")
        placed = True
    d = 0
    for k, e in enumerate(entries):
        if e is None:
            layout.append("n")
            continue
        if k in positions:
            if not placed:
                layout.append("B")
                placed = True
        else:
            layout.append(("s", d))
        d += 1
    return adv_dims, arrays, B, layout


def _stack_indices(arrays, B):
    """The index arrays broadcast to B and stacked on a new last axis (int64)."""
    cols = [lax.reshape(broadcast_to_shape(cast(a, np.int64), B), B + (1,)) for a in arrays]
    return cols[0] if len(cols) == 1 else slicing.concatenate(cols, len(B))


def getitem(x, idx):
    """x[idx] with NumPy semantics (traced integer indices are clamped into range)."""
    x = as_operand(x)
    _check_index_devices(x, idx)
    return _getitem_entries(x, _expand(get_aval(x).shape, idx))


def _check_index_devices(x, idx):
    """ValueError naming both devices when x and a concrete index Array are committed to two
    (concrete index arrays are read on the host, so the primitives' own check never sees
    them)."""
    devices = {a.device for a in (x, *(idx if type(idx) is tuple else (idx,)))
               if type(a) is core.Array and a.committed}
    if len(devices) > 1:
        d1, d2 = sorted(devices, key=repr)[:2]
        raise core.device_mismatch_error("indexing", d1, d2)


def _getitem_entries(x, entries):
    if not _has_advanced(entries):
        return _basic_getitem(x, entries)
    entries = _int_to_adv(entries, get_aval(x).shape)
    x = _apply_slices(x, entries)
    aval = get_aval(x)
    adv_dims, arrays, B, layout = _index_plan(aval.shape, entries)
    rest = [d for d in range(aval.ndim) if d not in adv_dims]
    xt = lax.transpose(x, tuple(adv_dims) + tuple(rest))
    idx_arr = _stack_indices(arrays, B)
    g = slicing.gather(xt, idx_arr, tuple(range(len(adv_dims))))
    # g has shape B + rest; insert None dims and move the B block into place
    nb = len(B)
    rest_shape = [aval.shape[d] for d in rest]
    with_none, it, pos_b = [], iter(rest_shape), None
    for item in layout:
        if item == "B":
            pos_b = len(with_none)
        elif item == "n":
            with_none.append(1)
        else:
            with_none.append(next(it))
    g = lax.reshape(g, B + tuple(with_none))
    perm = list(range(nb, nb + pos_b)) + list(range(nb)) + list(range(nb + pos_b, nb + len(with_none)))
    return lax.transpose(g, perm)


def _basic_getitem(x, entries):
    aval = get_aval(x)
    ints, d, clamped = [], 0, []
    for e in entries:
        if e is not None and isinstance(e, int):
            n = aval.shape[d]
            if not -n <= e < n:
                e = _out_of_bounds(e, n, d)
            ints.append(d)
        clamped.append(e)
        d += e is not None
    entries = clamped
    sl = [slice(e % aval.shape[k], e % aval.shape[k] + 1) if isinstance(e, int) else e
          for k, e in enumerate(e for e in entries if e is not None)]
    it = iter(sl)
    x = _apply_slices(x, [None if e is None else next(it) for e in entries])
    shape, d = [], 0
    sliced = get_aval(x).shape
    for e in entries:
        if e is None:
            shape.append(1)
            continue
        if d not in ints:
            shape.append(sliced[d])
        d += 1
    return lax.reshape(x, tuple(shape))


# ---------------------------------------------------------------------------------------------
# x.at[idx]: JAX's out-of-range modes, gather with fill, and the scatter-based updates
#
#   mode                      get()                      set/add/subtract/.../apply
#   None, "promise_in_bounds" clamped (as x[idx])        dropped
#   "clip"                    clamped                    clamped
#   "drop", "fill"            fill_value                 dropped
#
# Negative indices are wrapped first; an index is out of range outside [-n, n).

_MODES = ("promise_in_bounds", "clip", "drop", "fill")


def _check_mode(mode, method):
    """mode, if it is one of JAX's out-of-range modes (or None); ValueError otherwise."""
    if mode is None or (isinstance(mode, str) and mode in _MODES):
        return mode
    raise ValueError(f"at[].{method}: mode must be None or one of "
                     f"{', '.join(repr(m) for m in _MODES)}, got {mode!r}{core.where()}")


def _scatter_indices(x_shape, idx, trim=True, drop_out_of_range=False):
    """(coordinates (*G, k), k): every element selected by idx as coordinates into the first k
    dims of x, where x[idx].shape == G + x_shape[k:] (trailing unindexed dims stay whole unless
    trim is False). The coordinates are x[idx] applied to iota grids, so they follow getitem's
    semantics exactly (out-of-range indices clamped). With drop_out_of_range, an index that is
    out of range (concrete or traced) yields an out-of-range coordinate instead, so scatter drops
    that update as JAX does: each grid gets one extra slot holding an out-of-range value, and
    such indices point there."""
    entries = _expand(tuple(x_shape), idx)
    k = len(x_shape)
    while (trim and entries and isinstance(entries[-1], slice) and entries[-1] == slice(None)
           and builtins.any(e is not None for e in entries[:-1])):
        entries = entries[:-1]
        k -= 1
    lead = tuple(x_shape[:k])
    padded = []
    if drop_out_of_range:
        entries, padded = _redirect_out_of_range(entries, lead)
    grids = [lax.broadcasted_iota(np.int64, lead, d) for d in range(k)]
    if padded:
        grids = [slicing.pad(g, np.int64(lead[d]), _pad_config(k, padded))
                 for d, g in enumerate(grids)]
    cols = [_getitem_entries(g, list(entries)) for g in grids]
    if not cols:
        return None, 0
    G = get_aval(cols[0]).shape
    cols = [lax.reshape(c, G + (1,)) for c in cols]
    return (cols[0] if k == 1 else slicing.concatenate(cols, len(G))), k


def _pad_config(ndim, dims):
    """pad's config adding one slot at the end of each of dims."""
    return [(0, 1 if d in dims else 0, 0) for d in range(ndim)]


def _redirect_out_of_range(entries, lead):
    """Entries whose out-of-range integer indices (concrete or traced) point one past the end,
    and the dims that need that extra slot."""
    out, padded, d = [], [], 0
    for e in entries:
        if e is None:
            out.append(e)
            continue
        if d < len(lead) and isinstance(e, (int, _Adv)):
            e, redirected = _redirect_entry(e, lead[d])
            if redirected:
                padded.append(d)
        out.append(e)
        d += 1
    return out, padded


def _redirect_entry(e, n):
    """(entry, whether it may point at the extra slot n) for an int or _Adv entry."""
    v = e.value if isinstance(e, _Adv) else e
    if isinstance(v, Tracer):
        a = cast(v, np.int64)

        def full(val):
            return lax.full(get_aval(a).shape, val, np.int64)
        a = lax.select(lax.lt(a, full(0)), lax.add(a, full(n)), a)
        valid = lax.bitwise_and(lax.ge(a, full(0)), lax.lt(a, full(n)))
        return _Adv(lax.select(valid, a, full(n))), True
    a = np.asarray(v, np.int64)
    a = np.where(a < 0, a + n, a)
    valid = (a >= 0) & (a < n)
    if valid.all():
        return e, False
    redirected = np.where(valid, a, n)
    return (_Adv(redirected) if isinstance(e, _Adv) else int(redirected)), True


def _update_indices(shape, idx, mode, trim=True):
    """_scatter_indices for x.at[] updates: out-of-range indices are clamped under
    mode="clip" and drop their updates otherwise (JAX)."""
    return _scatter_indices(shape, idx, trim, drop_out_of_range=mode != "clip")


def _gather(x, idx, mode, fill_value):
    """x.at[idx].get(mode=mode, fill_value=fill_value)."""
    if fill_value is not None and get_aval(as_operand(fill_value)).ndim != 0:
        raise ValueError(f"at[].get: fill_value must be a scalar, got shape "
                         f"{get_aval(as_operand(fill_value)).shape}{core.where()}")
    if mode not in ("drop", "fill"):
        return getitem(x, idx)
    x = as_operand(x)
    a = get_aval(x)
    entries, padded = _redirect_out_of_range(_expand(a.shape, idx), a.shape)
    if padded:  # out-of-range indices read an extra slot holding fill_value
        fill = cast(_fill_value(a.dtype, fill_value), a.dtype)
        x = slicing.pad(x, fill, _pad_config(a.ndim, padded))
    return _getitem_entries(x, entries)


def _updates_for(kind, x_aval, values, target):
    """values cast to x's dtype and broadcast to the indexed shape target."""
    v = as_operand(values)
    try:
        return broadcast_to_shape(cast(v, x_aval.dtype), target)
    except ValueError:
        raise ValueError(f"at[].{kind}: cannot broadcast update of shape {get_aval(v).shape} "
                         f"to the indexed shape {target}{core.where()}") from None


_SCATTERS = {"set": (slicing.scatter, lambda x, v: v), "add": (slicing.scatter_add, lax.add),
             "mul": (slicing.scatter_mul, lax.mul)}


def _scatter_update(kind, x, idx, values, mode=None, unique=False):
    """x with values combined into x[idx] by kind ('set', 'add' or 'mul'); repeated indices
    accumulate (set: the last update wins)."""
    x = as_operand(x)
    shape = get_aval(x).shape
    ind, k = _update_indices(shape, idx, mode)
    upd_shape = (get_aval(ind).shape[:-1] if k else ()) + shape[k:]
    vals = _updates_for(kind, get_aval(x), values, upd_shape)
    scatter_fn, whole = _SCATTERS[kind]
    if k == 0:  # the whole array
        return whole(x, vals)
    return scatter_fn(x, ind, vals, tuple(range(k)))


def _subtract(x, idx, values, mode=None, unique=False):
    """x.at[idx].subtract: add the negated values."""
    x = as_operand(x)
    dtype = get_aval(x).dtype
    if dtype == np.bool_:
        raise TypeError(f"at[].subtract: boolean subtraction is not supported (NumPy's "
                        f"rule); use logical_xor{core.where()}")
    return _scatter_update("add", x, idx, lax.neg(cast(as_operand(values), dtype)), mode)


def _scaled(op, x, idx, values, mode=None, unique=False):
    """x.at[idx].divide/power: the ufunc op of x and the product of the updates landing on each
    element (1 where none does)."""
    from . import _ufuncs
    x = as_operand(x)
    ones = lax.full(get_aval(x).shape, 1, get_aval(x).dtype)
    return getattr(_ufuncs, op)(x, _scatter_update("mul", ones, idx, values, mode))


def _neutral(dtype, kind):
    """The identity of minimum (kind 'min') or maximum ('max') for dtype."""
    if dtype.kind == "f":
        return np.inf if kind == "min" else -np.inf
    if dtype.kind == "b":
        return kind == "min"
    info = np.iinfo(dtype)
    return info.max if kind == "min" else info.min


def _scatter_extremum(kind, x, idx, values, mode=None, unique=False):
    """x.at[idx].min/max. Repeated indices reduce too: the updates are written (set semantics,
    the last write wins) in sorted order into a neutral array, so each target's extreme update
    is written last, and the result is combined with x elementwise. With unique indices the
    sort is skipped."""
    from ._ufuncs import maximum, minimum
    combine = minimum if kind == "min" else maximum
    x = as_operand(x)
    a = get_aval(x)
    ind, k = _update_indices(a.shape, idx, mode, trim=False)
    target = get_aval(ind).shape[:-1] if k else a.shape
    vals = _updates_for(kind, a, values, target)
    if k == 0:
        return combine(x, vals)
    n = int(np.prod(target, dtype=np.int64))
    ind, vals = lax.reshape(ind, (n, k)), lax.reshape(vals, (n,))
    if not unique:
        order = slicing.argsort(vals, 0)
        if kind == "min":
            order = lax.rev(order, (0,))
        order = lax.reshape(order, (n, 1))
        vals, ind = slicing.gather(vals, order, (0,)), slicing.gather(ind, order, (0,))
    neutral = lax.full(a.shape, _neutral(a.dtype, kind), a.dtype)
    return combine(x, slicing.scatter(neutral, ind, vals, tuple(range(k))))


def _is_traced_index(idx):
    parts = idx if isinstance(idx, tuple) else (idx,)
    return builtins.any(isinstance(i, Tracer) for i in parts)


def _scatter_apply(x, idx, func, mode=None, unique=False):
    """x.at[idx].apply(func): func applied to each selected element once per index entry that
    selects it (ufunc.at semantics). Each entry reads its element, applies func as many times
    as the element is selected, and writes the (equal) results back."""
    x = as_operand(x)
    a = get_aval(x)
    apply_once = lambda v: cast(func(v), a.dtype)  # noqa: E731
    ind, axes = _flat_update_indices(a.shape, idx, mode)
    if not axes:
        return apply_once(x)
    if get_aval(ind).shape[0] == 0:  # nothing selected
        return x
    vals = apply_once(slicing.gather(x, ind, axes))
    if not unique:
        counts = _selection_counts(a.shape, ind, axes)
        vals = _apply_again(apply_once, vals, counts, _max_count(a.shape, idx, mode))
    return slicing.scatter(x, ind, vals, axes)


def _flat_update_indices(shape, idx, mode):
    """(coordinates (n, ndim) of every element idx selects, the axes they index); (None, ())
    for a 0-d array."""
    ind, k = _update_indices(shape, idx, mode, trim=False)
    if k == 0:
        return None, ()
    n = int(np.prod(get_aval(ind).shape[:-1], dtype=np.int64))
    return lax.reshape(ind, (n, k)), tuple(range(k))


def _selection_counts(shape, ind, axes):
    """For each index row, how many rows select its element (out-of-range rows: dropped)."""
    n = get_aval(ind).shape[0]
    counts = slicing.scatter_add(lax.full(shape, 0, np.int64), ind, lax.full((n,), 1, np.int64),
                                 axes)
    return slicing.gather(counts, ind, axes)


def _max_count(shape, idx, mode):
    """The largest number of times idx selects one element of an array of this shape, as a
    Python int computed now (also while tracing) when idx holds no traced values, else None."""
    if _is_traced_index(idx):
        return None
    with core.set_current_trace(core.eval_trace):
        ind, axes = _flat_update_indices(shape, idx, mode)
        counts = np.asarray(_selection_counts(shape, ind, axes))
    return int(np.max(counts, initial=0))


def _apply_again(apply_once, vals, counts, max_count):
    """vals (func applied once) with func applied again where fewer than counts applications
    have been made: a Python loop when max_count is known, else a while_loop."""
    from ..lax.control_flow import while_loop

    def again(i, v):
        more = lax.gt(counts, lax.full(get_aval(counts).shape, i, np.int64))
        return lax.select(more, apply_once(v), v)

    if max_count is not None:
        for i in range(1, max_count):
            vals = again(i, vals)
        return vals
    top = lax.reduce_max(counts, (0,))
    _, vals = while_loop(lambda c: lax.lt(c[0], top), lambda c: (c[0] + 1, again(*c)),
                         (np.int64(1), vals))
    return vals


# kind -> f(x, idx, values, mode, unique)
_UPDATES = {"set": partial(_scatter_update, "set"), "add": partial(_scatter_update, "add"),
            "subtract": _subtract, "multiply": partial(_scatter_update, "mul"),
            "divide": partial(_scaled, "divide"), "power": partial(_scaled, "power"),
            "min": partial(_scatter_extremum, "min"), "max": partial(_scatter_extremum, "max")}


def _update_method(kind, doc):
    """An _IndexRef method computing x.at[idx].<kind>(values, ...) with JAX's keywords."""
    def method(self, values, *, indices_are_sorted=False, unique_indices=False, mode=None):
        return _UPDATES[kind](self.x, self.idx, values, _check_mode(mode, kind),
                              bool(unique_indices))
    method.__name__ = method.__qualname__ = kind
    method.__doc__ = (f"{doc}\n\n        Keywords as JAX: ``mode`` (None, 'promise_in_bounds' or "
                      f"'drop'/'fill': out-of-range indices drop their updates; 'clip': they are "
                      f"clamped), ``indices_are_sorted`` and ``unique_indices`` (hints; the "
                      f"result is undefined if unique_indices=True is not true).")
    return method


class _IndexRef:
    """x.at[idx]: functional updates of the elements x[idx] (JAX's interface)."""
    __slots__ = ("x", "idx")

    def __init__(self, x, idx):
        self.x, self.idx = x, idx

    def get(self, *, indices_are_sorted=False, unique_indices=False, mode=None, fill_value=None):
        """x[idx]. Out-of-range integer indices are clamped (mode None, 'promise_in_bounds' or
        'clip') or give fill_value (mode 'fill' or 'drop'; default NaN for inexact dtypes, the
        most negative signed integer, the largest unsigned one, True for bool)."""
        return _gather(self.x, self.idx, _check_mode(mode, "get"), fill_value)

    set = _update_method("set", "A copy of x with x[idx] = values (repeated indices: one of "
                                "the updates wins).")
    add = _update_method("add", "A copy of x with values added at idx (repeated indices "
                                "accumulate).")
    subtract = _update_method("subtract", "A copy of x with values subtracted at idx (repeated "
                                          "indices accumulate).")
    multiply = _update_method("multiply", "A copy of x with x[idx] multiplied by values "
                                          "(repeated indices accumulate).")
    mul = multiply
    divide = _update_method("divide", "x divided, at idx, by values (x / the product of the "
                                      "updates at each element; integer x gives floats).")
    power = _update_method("power", "x raised, at idx, to the power values (repeated indices: "
                                    "to the product of their values).")
    min = _update_method("min", "A copy of x with x[idx] = minimum(x[idx], values) (repeated "
                                "indices reduce).")
    max = _update_method("max", "A copy of x with x[idx] = maximum(x[idx], values) (repeated "
                                "indices reduce).")

    def apply(self, func, *, indices_are_sorted=False, unique_indices=False, mode=None):
        """A copy of x with the elementwise func applied at idx, once per index entry (as
        ``ufunc.at``: an element selected twice gets func(func(x)); results keep x's dtype).
        ``mode`` as for set; with unique_indices=True func is applied once per element."""
        return _scatter_apply(self.x, self.idx, func, _check_mode(mode, "apply"),
                              bool(unique_indices))


class _IndexHelper:
    __slots__ = ("x",)

    def __init__(self, x):
        self.x = x

    def __getitem__(self, idx):
        return _IndexRef(self.x, idx)


def at(x):
    """The x.at property."""
    return _IndexHelper(x)


# ---------------------------------------------------------------------------------------------
# take / take_along_axis

def _fill_value(dtype, fill_value):
    if fill_value is not None:
        return fill_value
    dtype = np.dtype(dtype)
    if dtype.kind in "fc":
        return np.nan
    if dtype.kind == "b":
        return True
    info = np.iinfo(dtype)
    return info.min if dtype.kind == "i" else info.max


def _index_mode(ind, n, mode):
    """(in-range index array, validity mask or None) for JAX's take modes: 'fill' (the default:
    out-of-range entries are masked), 'clip', 'wrap', or NumPy's 'raise' (concrete indices)."""
    from ._ufuncs import clip, logical_and, remainder, where
    mode = "fill" if mode is None else mode
    if mode == "raise":
        _Bounds.clamp = False
        try:
            return _normalize_int_array(ind, n, 0) if not isinstance(ind, Tracer) else ind, None
        finally:
            _Bounds.clamp = True
    if mode == "wrap":
        return remainder(ind, n), None
    if mode == "clip":
        return clip(ind, 0, n - 1), None
    if mode != "fill":
        raise ValueError(f"take: mode must be one of 'fill', 'clip', 'wrap', 'raise', got "
                         f"{mode!r}{core.where()}")
    valid = logical_and(ind >= -n, ind < n)
    return where(valid, where(ind < 0, ind + n, ind), 0), valid


def _masked(out, valid, ax, dtype, fill_value):
    """out with the positions of invalid indices (valid's dims sit at ax) set to fill_value."""
    if valid is None:
        return out
    from ._ufuncs import where
    nd_out, nd_v = get_aval(out).ndim, get_aval(valid).ndim
    valid = lax.reshape(valid, (1,) * ax + get_aval(valid).shape + (1,) * (nd_out - ax - nd_v))
    return where(valid, out, cast(_fill_value(dtype, fill_value), dtype))


def take(a, indices, axis=None, mode=None, fill_value=None):
    """Elements of a at indices along axis (None: of the flattened a). Out-of-range indices
    follow JAX's ``mode``: 'fill' (default; NaN, or the most negative integer), 'clip', 'wrap'."""
    a = as_operand(a)
    if axis is None:
        from ._shape import ravel
        a, axis = ravel(a), 0
    ax = canonical_axis(axis, get_aval(a).ndim)
    ind = _as_index_array(indices)
    if get_aval(ind).dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers, got {get_aval(ind).dtype}{core.where()}")
    ind, valid = _index_mode(ind, get_aval(a).shape[ax], mode)
    out = getitem(a, (slice(None),) * ax + (ind,))
    return _masked(out, valid, ax, get_aval(a).dtype, fill_value)


def take_along_axis(arr, indices, axis, mode=None, fill_value=None):
    """Elements of arr at indices along axis, the other dims matched (broadcast) with indices;
    out-of-range indices follow ``mode`` as in take."""
    a = as_operand(arr)
    ind = _as_index_array(indices)
    if axis is None:
        from ._shape import ravel
        a, axis = ravel(a), 0
        if get_aval(ind).ndim != 1:
            raise ValueError(f"take_along_axis: indices must be 1-d when axis=None{core.where()}")
    nd = get_aval(a).ndim
    if get_aval(ind).ndim != nd:
        raise ValueError(f"take_along_axis: indices (shape {get_aval(ind).shape}) and arr "
                         f"(shape {get_aval(a).shape}) must have the same number of dimensions"
                         f"{core.where()}")
    ax = canonical_axis(axis, nd)
    ind, valid = _index_mode(ind, get_aval(a).shape[ax], mode)
    full_idx = []
    for d in range(nd):
        if d == ax:
            full_idx.append(ind)
        else:
            shape = [1] * nd
            shape[d] = get_aval(a).shape[d]
            full_idx.append(np.arange(get_aval(a).shape[d]).reshape(shape))
    out = getitem(a, tuple(full_idx))
    if valid is None:
        return out
    from ._ufuncs import where
    return where(valid, out, cast(_fill_value(get_aval(a).dtype, fill_value), get_aval(a).dtype))
