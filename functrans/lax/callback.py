"""Host callbacks: ``debug_callback`` (a side effect, no results: debug.print, debug.callback)
and ``pure_callback`` (a pure host function with declared result shapes), each with its impl,
abstract eval, jvp and batching rules beside it. Neither is linear, so neither has a transpose
rule. Both are ``core.host_primitives``: the compiled backends run them as host steps between
kernels (backends/numba_cpu.split_plan, numba_cuda._Program._host). ``debug_callback`` is also
effectful: dead-code elimination keeps it, and everything holding it."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, abstract_eval_rules, impl_rules
from ..interpreters import ad, batching
from ..interpreters.batching import axis_size_of, broadcast_batch, moveaxis, not_mapped
from ..tree_util import tree_flatten, tree_leaves, tree_unflatten
from .lax import squeeze
from .slicing import slice as _slice

__all__ = ["debug_callback_p", "pure_callback_p", "FlatCallback", "split_callback_args",
           "VMAP_METHODS"]

debug_callback_p = Primitive("debug_callback", multiple_results=True)
pure_callback_p = Primitive("pure_callback", multiple_results=True)
core.effectful_primitives.add(debug_callback_p)
core.host_primitives.update((debug_callback_p, pure_callback_p))
core.complex_primitives.update((debug_callback_p, pure_callback_p))

VMAP_METHODS = ("sequential", "sequential_unrolled", "expand_dims", "broadcast_all",
                "legacy_vectorized", None)


# ---------------------------------------------------------------------------------------------
# The user's function behind a flat signature

def _is_dynamic(leaf):
    """True for the leaves passed to a callback as arrays (traced when transformed): arrays and
    numbers. Anything else (strings, None, objects) is static, handed over as it is."""
    return isinstance(leaf, (core.Array, np.ndarray, np.generic, bool, int, float, complex))


def split_callback_args(args, kwargs):
    """(the array leaves of (args, kwargs), the FlatCallback pieces: tree and static leaves)."""
    leaves, tree = tree_flatten((args, kwargs))
    dynamic = [x for x in leaves if _is_dynamic(x)]
    static = tuple((i, x) for i, x in enumerate(leaves) if not _is_dynamic(x))
    return dynamic, tree, static


class FlatCallback:
    """fn(*args, **kwargs) called with only the array leaves of (args, kwargs); the static
    leaves and the tree structure are kept here. With flat_out, returns fn's result's leaves."""
    __slots__ = ("fn", "tree", "static", "flat_out")

    def __init__(self, fn, tree, static, flat_out=False):
        self.fn, self.tree, self.static, self.flat_out = fn, tree, static, flat_out

    def __call__(self, *dynamic):
        leaves, it, static = [], iter(dynamic), dict(self.static)
        for i in range(len(dynamic) + len(static)):
            leaves.append(static[i] if i in static else next(it))
        args, kwargs = tree_unflatten(self.tree, leaves)
        out = self.fn(*args, **kwargs)
        return tree_leaves(out) if self.flat_out else out

    @property
    def __name__(self):       # the jaxpr printer shows the user's function
        return getattr(self.fn, "__name__", type(self.fn).__name__)


def _host_array(x):
    """A value handed to a callback: a functrans.Array over a private host copy."""
    return core.make_array(np.array(x))


def _take(x, i, dim):
    """x[..., i, ...] at axis dim (traceable)."""
    shape = core.get_aval(x).shape
    start = [0] * len(shape)
    limit = list(shape)
    start[dim], limit[dim] = i, i + 1
    return squeeze(_slice(x, start, limit), (dim,))


# ---------------------------------------------------------------------------------------------
# debug_callback: callback(*args) for its effect; no results

def _debug_callback_impl(*args, callback, ordered):
    callback(*[_host_array(x) for x in args])
    return []


def _debug_callback_jvp(primals, tangents, *, callback, ordered):
    # the callback sees the primal values; tangents pass through nothing
    debug_callback_p.bind(*primals, callback=callback, ordered=ordered)
    return [], []


def _debug_callback_batch(vals, dims, *, callback, ordered):
    # as JAX: unrolled over the batch, one call per element, in order
    for i in range(axis_size_of(vals, dims)):
        debug_callback_p.bind(*[x if d is not_mapped else _take(x, i, d)
                                for x, d in zip(vals, dims)], callback=callback, ordered=ordered)
    return [], []


impl_rules[debug_callback_p] = _debug_callback_impl
abstract_eval_rules[debug_callback_p] = lambda *avals, callback, ordered: []
ad.jvp_rules[debug_callback_p] = _debug_callback_jvp
batching.batch_rules[debug_callback_p] = _debug_callback_batch


# ---------------------------------------------------------------------------------------------
# pure_callback: results of declared shapes and dtypes from a pure host function

def check_results(outs, result_avals, callback):
    """The callback's results as NumPy arrays of result_avals; RuntimeError naming the callback
    and the first result of another count, shape or dtype (Python scalars take the declared
    dtype)."""
    name = getattr(callback, "__name__", "callback")
    outs = list(outs)
    if len(outs) != len(result_avals):
        raise RuntimeError(f"pure_callback: '{name}' returned {len(outs)} arrays, but "
                           f"result_shape_dtypes declares {len(result_avals)}")
    checked = []
    for i, (o, a) in enumerate(zip(outs, result_avals)):
        arr = np.array(o, dtype=a.dtype) if isinstance(o, (bool, int, float, complex)) else np.array(o)
        if arr.shape != a.shape:
            raise RuntimeError(f"pure_callback: incorrect output shape for return value #{i} of "
                               f"'{name}': expected {a.shape}, got {arr.shape}")
        if arr.dtype != a.dtype:
            raise RuntimeError(f"pure_callback: incorrect output dtype for return value #{i} of "
                               f"'{name}': expected {a.dtype.name}, got {arr.dtype.name}")
        checked.append(arr)
    return checked


def _pure_callback_impl(*args, callback, result_avals, vmap_method):
    return check_results(callback(*[_host_array(x) for x in args]), result_avals, callback)


def _pure_callback_jvp(primals, tangents, **params):
    raise ValueError("Pure callbacks do not support JVP. Please use `functrans.custom_jvp` to use "
                     f"callbacks while taking gradients{core.where()}.")


class _Sequential:
    """A batched callback calling ``callback`` once per batch element, in order (vmap_method
    "sequential"), each result checked against the unbatched result avals."""
    __slots__ = ("callback", "batched", "size", "result_avals")

    def __init__(self, callback, batched, size, result_avals):
        self.callback, self.batched, self.size = callback, batched, size
        self.result_avals = result_avals

    __name__ = property(lambda self: getattr(self.callback, "__name__", "callback"))

    def __call__(self, *args):
        results = [check_results(self.callback(*[x[i] if b else x
                                                 for x, b in zip(args, self.batched)]),
                                 self.result_avals, self.callback)
                   for i in range(self.size)]
        return [np.stack([r[k] for r in results]) if results else np.zeros((0,) + a.shape, a.dtype)
                for k, a in enumerate(self.result_avals)]


def _pure_callback_batch(vals, dims, *, callback, result_avals, vmap_method):
    size = axis_size_of(vals, dims)
    if vmap_method is None:
        raise NotImplementedError(
            "vmap is only supported for the pure_callback primitive when vmap_method is one of "
            "'sequential', 'sequential_unrolled', 'expand_dims', 'broadcast_all' or "
            f"'legacy_vectorized'{core.where()}")
    vals = [x if d is not_mapped else moveaxis(x, d, 0) for x, d in zip(vals, dims)]
    batched_avals = tuple(ShapedArray((size,) + a.shape, a.dtype) for a in result_avals)
    if vmap_method in ("sequential", "sequential_unrolled"):
        callback = _Sequential(callback, tuple(d is not not_mapped for d in dims), size,
                               result_avals)
    elif vmap_method in ("expand_dims", "broadcast_all"):
        n = size if vmap_method == "broadcast_all" else 1
        vals = [broadcast_batch(x, n, 0) if d is not_mapped else x for x, d in zip(vals, dims)]
    outs = pure_callback_p.bind(*vals, callback=callback, result_avals=batched_avals,
                                vmap_method=vmap_method)
    return outs, [0] * len(outs)


impl_rules[pure_callback_p] = _pure_callback_impl
abstract_eval_rules[pure_callback_p] = lambda *avals, callback, result_avals, vmap_method: \
    list(result_avals)
ad.jvp_rules[pure_callback_p] = _pure_callback_jvp
batching.batch_rules[pure_callback_p] = _pure_callback_batch
