"""Pytrees: nested tuples, lists, dicts, namedtuples, None and registered classes."""

_registry = {}


class _Node:
    __slots__ = ("flatten", "unflatten")

    def __init__(self, flatten, unflatten):
        self.flatten, self.unflatten = flatten, unflatten


def register_pytree_node(nodetype, flatten_func, unflatten_func):
    """Register a container type: flatten(x) -> (children, aux); unflatten(aux, children) -> x."""
    _registry[nodetype] = _Node(flatten_func, unflatten_func)
    return nodetype


def register_pytree_node_class(cls):
    """Class decorator: the class defines tree_flatten() and classmethod tree_unflatten(aux, children)."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


register_pytree_node(tuple, lambda t: (list(t), None), lambda _, xs: tuple(xs))
register_pytree_node(list, lambda t: (list(t), None), lambda _, xs: list(xs))
register_pytree_node(dict, _dict_flatten, lambda keys, xs: dict(zip(keys, xs)))
register_pytree_node(type(None), lambda _: ([], None), lambda _, xs: None)


def _node_of(x):
    node = _registry.get(type(x))
    if node is None and isinstance(x, tuple) and hasattr(x, "_fields"):
        node = _Node(lambda t: (list(t), None), lambda _, xs, T=type(x): T(*xs))
    return node


class PyTreeDef:
    """The structure of a pytree: node type, auxiliary data and children structures."""
    __slots__ = ("nodetype", "aux", "children", "num_leaves", "_flat_tuple")

    def __init__(self, nodetype, aux, children):
        self.nodetype, self.aux, self.children = nodetype, aux, tuple(children)
        self.num_leaves = 1 if nodetype is None else sum(c.num_leaves for c in children)
        self._flat_tuple = nodetype is tuple and all(c.nodetype is None for c in self.children)

    def unflatten(self, leaves):
        """Rebuild the pytree of this structure from a flat list of leaves."""
        leaves = list(leaves)
        if len(leaves) != self.num_leaves:
            raise ValueError(f"{self} expects {self.num_leaves} leaves, got {len(leaves)}")
        if self.nodetype is None:
            return leaves[0]
        if self._flat_tuple:
            return tuple(leaves)          # a tuple of leaves: the common case of argument lists
        it = iter(leaves)
        return self._build(it)

    def _build(self, it):
        if self.nodetype is None:
            return next(it)
        node = _node_of_type(self.nodetype)
        return node.unflatten(self.aux, [c._build(it) for c in self.children])

    @property
    def num_nodes(self):
        return 1 + sum(c.num_nodes for c in self.children)

    def __eq__(self, other):
        return (isinstance(other, PyTreeDef) and self.nodetype is other.nodetype
                and _aux_eq(self.aux, other.aux) and self.children == other.children)

    def __hash__(self):
        return hash((self.nodetype, self.children))

    def __repr__(self):
        if self.nodetype is None:
            return "*"
        kids = ", ".join(map(repr, self.children))
        if self.nodetype is tuple:
            return f"({kids}{',' if len(self.children) == 1 else ''})"
        if self.nodetype is list:
            return f"[{kids}]"
        if self.nodetype is dict:
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.children)) + "}"
        if self.nodetype is type(None):
            return "None"
        return f"{self.nodetype.__name__}({kids})"


def _aux_eq(a, b):
    try:
        return bool(a == b)
    except Exception:
        return a is b


def _node_of_type(t):
    node = _registry.get(t)
    if node is None:  # namedtuple
        node = _Node(lambda x: (list(x), None), lambda _, xs: t(*xs))
    return node


_LEAF = PyTreeDef(None, None, ())   # every leaf's structure (PyTreeDefs are immutable)
# types that are always leaves (checked first: most leaves are arrays); functrans.core adds
# Array and its tracers
_LEAF_TYPES = {float, int, bool, complex}


def register_leaf_type(t):
    """Mark t as a leaf type for the flattening fast path (t must not be registered as a node)."""
    if t not in _registry:
        _LEAF_TYPES.add(t)


def tree_flatten(tree, is_leaf=None):
    """Returns (leaves, treedef). None is an empty node, as in JAX."""
    leaves = []
    return leaves, _flatten(tree, is_leaf, leaves)


def _flatten(x, is_leaf, leaves):
    # a module-level function, not a recursive closure: a closure that refers to itself is a
    # reference cycle, which would keep ``leaves`` (often tracers holding residual arrays) alive
    # until the cyclic garbage collector runs
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    t = type(x)
    if t in _LEAF_TYPES:
        leaves.append(x)
        return _LEAF
    if t is tuple and is_leaf is None and all(type(c) in _LEAF_TYPES for c in x):
        leaves.extend(x)          # a tuple of leaves (argument lists): one shared treedef
        return _leaf_tuple_def(len(x))
    node = _registry.get(t) or _node_of(x)
    if node is None:
        leaves.append(x)
        return _LEAF
    children, aux = node.flatten(x)
    return PyTreeDef(type(x), aux, [_flatten(c, is_leaf, leaves) for c in children])


_leaf_tuple_defs = {}   # n -> the PyTreeDef of a tuple of n leaves


def _leaf_tuple_def(n):
    d = _leaf_tuple_defs.get(n)
    if d is None:
        d = _leaf_tuple_defs[n] = PyTreeDef(tuple, None, [_LEAF] * n)
    return d


def tree_unflatten(treedef, leaves):
    """Rebuild a pytree from its structure and leaves."""
    return treedef.unflatten(leaves)


def tree_leaves(tree, is_leaf=None):
    """The leaves of a pytree, left to right."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None):
    """The PyTreeDef of a pytree."""
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f, tree, *rest, is_leaf=None):
    """Apply f leafwise to tree and the trees in rest (which must share tree's structure)."""
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = []
    for r in rest:
        rl, rd = tree_flatten(r, is_leaf)
        if rd != treedef:
            raise ValueError(f"tree_map: structures differ: {treedef} and {rd}")
        others.append(rl)
    return treedef.unflatten([f(*xs) for xs in zip(leaves, *others)])


def treedef_children(treedef):
    """The child structures of a treedef."""
    return list(treedef.children)


def tree_paths(treedef, prefix="args"):
    """A readable path for each leaf of treedef, e.g. "args[0]['w']"."""
    out = []

    def rec(td, path):
        if td.nodetype is None:
            out.append(path)
        elif td.nodetype is dict:
            for k, c in zip(td.aux, td.children):
                rec(c, f"{path}[{k!r}]")
        else:
            for i, c in enumerate(td.children):
                rec(c, f"{path}[{i}]")

    rec(treedef, prefix)
    return out
