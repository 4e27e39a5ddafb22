"""functrans.tree: the short names of functrans.tree_util (as jax.tree)."""
from .tree_util import tree_flatten as flatten, tree_leaves as leaves, tree_map as map  # noqa: F401,A004
from .tree_util import tree_structure as structure, tree_unflatten as unflatten  # noqa: F401
