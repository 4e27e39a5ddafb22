"""Argument checks shared by the transforms (api.py) and the control-flow functions (lax): below
both, so that lax never imports the API layer."""
import numpy as np

from . import core
from .core import as_array
from .tree_util import tree_flatten, tree_paths


def check_callable(fun, name):
    """TypeError naming ``name`` unless fun is callable."""
    if not callable(fun):
        raise TypeError(f"{name} must be callable, got {fun!r}")


def flat_leaves(tree, what, roots=None):
    """(leaves as arrays, treedef). TypeError naming ``what``, the leaf's pytree path and its
    type for leaves that are not arrays, or its dtype for arrays that are not numeric;
    OverflowError naming the path for Python ints outside int64. Paths start at ``roots`` (one
    name per top-level child, e.g. the argnums' ``args[2]``); an (args, kwargs) pair names
    args[i] / kwargs[k]."""
    leaves, treedef = tree_flatten(tree)
    try:
        leaves = [as_array(x) for x in leaves]
    except (TypeError, OverflowError):
        pair = (type(tree) is tuple and len(tree) == 2 and type(tree[0]) is tuple
                and type(tree[1]) is dict)
        if roots is None:
            roots = ("args", "kwargs") if pair else None
        paths = (tree_paths(treedef, "args") if roots is None else
                 [p for child, root in zip(treedef.children(), roots)
                  for p in tree_paths(child, root)])
        for x, path in zip(leaves, paths):
            _check_leaf(x, f"{what}: {path}")
        raise
    return leaves, treedef


def _check_leaf(x, where_):
    """Raise what as_array(x) raises, naming the leaf (``where_``) and the user's line."""
    if isinstance(x, (np.ndarray, np.generic)) and not isinstance(x, type):
        core.canonical_buffer(np.asarray(x), where_)
    try:
        as_array(x)
    except OverflowError as e:
        raise OverflowError(f"{where_}: {e}{core.where()}") from None
    except TypeError:
        raise TypeError(f"{where_} is a value of type {type(x).__name__} ({x!r:.80}), which is "
                        "not an array: pass Arrays, NumPy arrays, NumPy or Python scalars, or "
                        f"pytrees of them{core.where()}") from None
