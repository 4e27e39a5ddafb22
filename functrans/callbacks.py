"""``functrans.pure_callback``: a pure host function called with runtime values, its results
of declared shapes and dtypes (see docs/api_debug.md)."""
from __future__ import annotations

import numpy as np

from .core import ShapedArray
from .lax.callback import VMAP_METHODS, FlatCallback, pure_callback_p, split_callback_args
from .tree_util import tree_flatten, tree_unflatten

__all__ = ["pure_callback"]


def pure_callback(callback, result_shape_dtypes, *args, sharding=None, vmap_method=None,
                  **kwargs):
    """Call the pure host function ``callback(*args, **kwargs)`` (it gets functrans.Arrays and
    returns arrays) and return its results, a pytree of Arrays shaped like
    ``result_shape_dtypes`` (leaves with ``.shape`` and ``.dtype``, e.g. ShapeDtypeStruct).
    Works eagerly, under jit and vmap (``vmap_method``: "sequential" or "sequential_unrolled"
    call it once per batch element, "expand_dims" once with a leading batch axis (size 1 on
    unbatched arguments), "broadcast_all" once with every argument broadcast to the batch,
    "legacy_vectorized" once with unbatched arguments as they are; None raises under vmap).
    Not differentiable (wrap it in custom_jvp/custom_vjp). It may be removed when its result
    is unused. ``sharding`` is accepted for JAX's signature (one device)."""
    del sharding
    if vmap_method not in VMAP_METHODS:
        raise ValueError(f"vmap_method must be one of the allowed methods {list(VMAP_METHODS)}, "
                         f"but got: {vmap_method!r}")
    leaves, out_tree = tree_flatten(result_shape_dtypes)
    try:
        result_avals = tuple(ShapedArray(tuple(x.shape), np.dtype(x.dtype)) for x in leaves)
    except (AttributeError, TypeError) as e:
        raise TypeError("pure_callback: result_shape_dtypes must be a pytree of values with "
                        f"shape and dtype (e.g. functrans.ShapeDtypeStruct): {e}") from None
    dynamic, tree, static = split_callback_args(args, kwargs)
    outs = pure_callback_p.bind(*dynamic, callback=FlatCallback(callback, tree, static, True),
                                result_avals=result_avals, vmap_method=vmap_method)
    return tree_unflatten(out_tree, outs)
