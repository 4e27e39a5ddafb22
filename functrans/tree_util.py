"""Pytrees: nested tuples, lists, dicts, namedtuples, None and registered classes."""

_registry = {}


class _Node:
    __slots__ = ("flatten", "unflatten", "keys")

    def __init__(self, flatten, unflatten, keys=None):
        # keys(x, n) -> the n key-path entries of x's children (None: FlattenedIndexKey(i))
        self.flatten, self.unflatten, self.keys = flatten, unflatten, keys


def register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys_func=None):
    """Register a container type: flatten(x) -> (children, aux); unflatten(aux, children) -> x.
    Returns nodetype. Without flatten_with_keys_func its children's key paths are
    FlattenedIndexKey(i)."""
    def keys(x, n):
        return [k for k, _ in flatten_with_keys_func(x)[0]]
    _registry[nodetype] = _Node(flatten_func, unflatten_func,
                                None if flatten_with_keys_func is None else keys)
    return nodetype


def register_pytree_node_class(cls):
    """Class decorator: the class defines tree_flatten() and classmethod tree_unflatten(aux, children)."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def _dict_flatten(d):
    keys = sorted(d)
    return [d[k] for k in keys], tuple(keys)


def _sequence_keys(x, n):
    return [SequenceKey(i) for i in range(n)]


register_pytree_node(tuple, lambda t: (list(t), None), lambda _, xs: tuple(xs))
register_pytree_node(list, lambda t: (list(t), None), lambda _, xs: list(xs))
register_pytree_node(dict, _dict_flatten, lambda keys, xs: dict(zip(keys, xs)))
register_pytree_node(type(None), lambda _: ([], None), lambda _, xs: None)
_registry[tuple].keys = _registry[list].keys = _sequence_keys
_registry[dict].keys = lambda d, n: [DictKey(k) for k in sorted(d)]


def _namedtuple_keys(x, n):
    return [GetAttrKey(f) for f in x._fields]


def _node_of(x):
    node = _registry.get(type(x))
    if node is None and isinstance(x, tuple) and hasattr(x, "_fields"):
        node = _Node(lambda t: (list(t), None), lambda _, xs, T=type(x): T(*xs), _namedtuple_keys)
    return node


def node_children(x):
    """(list of children, aux data) of a pytree node x; None if x is a leaf."""
    node = None if type(x) in _LEAF_TYPES else _node_of(x)
    if node is None:
        return None
    children, aux = node.flatten(x)
    return list(children), aux


class PyTreeDef:
    """The structure of a pytree: node type, auxiliary data and children structures."""
    __slots__ = ("nodetype", "aux", "child_defs", "num_leaves", "_flat_tuple")

    def __init__(self, nodetype, aux, children):
        self.nodetype, self.aux, self.child_defs = nodetype, aux, tuple(children)
        self.num_leaves = 1 if nodetype is None else sum(c.num_leaves for c in children)
        self._flat_tuple = nodetype is tuple and all(c.nodetype is None for c in self.child_defs)

    def children(self):
        """The list of the child structures of this node (empty for a leaf)."""
        return list(self.child_defs)

    def node_data(self):
        """(node type, auxiliary data) of this node; None for a leaf."""
        return None if self.nodetype is None else (self.nodetype, self.aux)

    def flatten_up_to(self, tree):
        """The subtrees of tree found where this structure has its leaves (tree must have this
        structure as a prefix; ValueError otherwise)."""
        out = []
        self._up_to(tree, out)
        return out

    def _up_to(self, x, out):
        if self.nodetype is None:
            out.append(x)
            return
        node = _node_of(x)
        if type(x) is not self.nodetype or node is None:
            raise ValueError(f"flatten_up_to: expected a {self.nodetype.__name__} node, got "
                             f"{type(x).__name__} ({x!r:.80})")
        children, aux = node.flatten(x)
        if len(children) != len(self.child_defs) or not _aux_eq(aux, self.aux):
            raise ValueError(f"flatten_up_to: node {x!r:.80} does not match {self}")
        for c, d in zip(children, self.child_defs):
            d._up_to(c, out)

    def compose(self, inner):
        """The structure of this structure with every leaf replaced by the structure inner."""
        if self.nodetype is None:
            return inner
        return PyTreeDef(self.nodetype, self.aux, [c.compose(inner) for c in self.child_defs])

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
        return node.unflatten(self.aux, [c._build(it) for c in self.child_defs])

    @property
    def num_nodes(self):
        return 1 + sum(c.num_nodes for c in self.child_defs)

    def __eq__(self, other):
        return (isinstance(other, PyTreeDef) and self.nodetype is other.nodetype
                and _aux_eq(self.aux, other.aux) and self.child_defs == other.child_defs)

    def __hash__(self):
        return hash((self.nodetype, self.child_defs))

    def __repr__(self):
        if self.nodetype is None:
            return "*"
        kids = ", ".join(map(repr, self.child_defs))
        if self.nodetype is tuple:
            return f"({kids}{',' if len(self.child_defs) == 1 else ''})"
        if self.nodetype is list:
            return f"[{kids}]"
        if self.nodetype is dict:
            return "{" + ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.aux, self.child_defs)) + "}"
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
    """The list of the child structures of a treedef."""
    return treedef.children()


def tree_paths(treedef, prefix="args"):
    """A readable path for each leaf of treedef, e.g. "args[0]['w']"."""
    out = []

    def rec(td, path):
        if td.nodetype is None:
            out.append(path)
        elif td.nodetype is dict:
            for k, c in zip(td.aux, td.child_defs):
                rec(c, f"{path}[{k!r}]")
        else:
            for i, c in enumerate(td.child_defs):
                rec(c, f"{path}[{i}]")

    rec(treedef, prefix)
    return out


# ---------------------------------------------------------------------------------------------
# Key paths: where each leaf sits in its pytree

class _KeyEntry:
    """One step of a key path (a frozen value object with JAX's repr and str)."""
    __slots__ = ()
    _field = ""

    def __init__(self, *args, **kwargs):
        (value,) = list(args) + [kwargs.pop(self._field)] if kwargs else args
        object.__setattr__(self, self._field, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _value(self):
        return getattr(self, self._field)

    def __eq__(self, other):
        return type(other) is type(self) and other._value() == self._value()

    def __hash__(self):
        return hash((type(self).__name__, self._value()))

    def __repr__(self):
        return f"{type(self).__name__}({self._field}={self._value()!r})"


class SequenceKey(_KeyEntry):
    """The key of a tuple or list element: ``SequenceKey(idx)``, printed ``[idx]``."""
    __slots__ = ("idx",)
    _field = "idx"

    def __str__(self):
        return f"[{self.idx!r}]"


class DictKey(_KeyEntry):
    """The key of a dict entry: ``DictKey(key)``, printed ``[key!r]``."""
    __slots__ = ("key",)
    _field = "key"

    def __str__(self):
        return f"[{self.key!r}]"


class GetAttrKey(_KeyEntry):
    """The key of an attribute (namedtuple field, dataclass field): printed ``.name``."""
    __slots__ = ("name",)
    _field = "name"

    def __str__(self):
        return f".{self.name}"


class FlattenedIndexKey(_KeyEntry):
    """The key of the i-th child of a node registered without keys."""
    __slots__ = ("key",)
    _field = "key"

    def __str__(self):
        return f"[<flat index {self.key}>]"


def keystr(keys, *, simple=False, separator=""):
    """The string of a key path: ``"[0]['w'].b"``; with simple=True the bare keys joined by
    separator (``keystr(path, simple=True, separator="/")`` gives ``"0/w/b"``)."""
    if not simple:
        return separator.join(map(str, keys))
    return separator.join(str(k._value()) for k in keys)


def _node_keys(node, x, n):
    return node.keys(x, n) if node.keys is not None else [FlattenedIndexKey(i) for i in range(n)]


def _leaf_test(is_leaf, is_leaf_takes_path):
    if is_leaf is None or is_leaf_takes_path:
        return is_leaf
    return lambda path, x: is_leaf(x)


def tree_flatten_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """Returns (list of (key path, leaf), treedef): each key path is a tuple of SequenceKey,
    DictKey, GetAttrKey or FlattenedIndexKey entries leading from the root to the leaf.
    is_leaf(x) (or is_leaf(path, x) with is_leaf_takes_path) stops the descent."""
    out = []
    test = _leaf_test(is_leaf, is_leaf_takes_path)
    return out, _flatten_path(tree, test, (), out)


def _flatten_path(x, is_leaf, path, out):
    if is_leaf is not None and is_leaf(path, x):
        out.append((path, x))
        return _LEAF
    node = None if type(x) in _LEAF_TYPES else _node_of(x)
    if node is None:
        out.append((path, x))
        return _LEAF
    children, aux = node.flatten(x)
    children = list(children)
    keys = _node_keys(node, x, len(children))
    return PyTreeDef(type(x), aux, [_flatten_path(c, is_leaf, path + (k,), out)
                                    for k, c in zip(keys, children)])


def tree_leaves_with_path(tree, is_leaf=None, is_leaf_takes_path=False):
    """The list of (key path, leaf) pairs of a pytree, left to right."""
    return tree_flatten_with_path(tree, is_leaf, is_leaf_takes_path)[0]


def tree_map_with_path(f, tree, *rest, is_leaf=None, is_leaf_takes_path=False):
    """Like tree_map, but f receives each leaf's key path first: f(path, leaf, *other_leaves).
    Returns a pytree of tree's structure."""
    pairs, treedef = tree_flatten_with_path(tree, is_leaf, is_leaf_takes_path)
    others = [treedef.flatten_up_to(r) for r in rest]
    return treedef.unflatten([f(p, x, *xs) for (p, x), *xs in zip(pairs, *others)])


def register_pytree_with_keys(nodetype, flatten_with_keys, unflatten_func, flatten_func=None):
    """Register a container type whose children have key paths: flatten_with_keys(x) ->
    (iterable of (key, child), aux); unflatten_func(aux, children) -> x; flatten_func (optional,
    faster) -> (children, aux). Returns nodetype."""
    if flatten_func is None:
        def flatten_func(x):
            pairs, aux = flatten_with_keys(x)
            return [c for _, c in pairs], aux
    return register_pytree_node(nodetype, flatten_func, unflatten_func, flatten_with_keys)


def register_pytree_with_keys_class(cls):
    """Class decorator: cls defines tree_flatten_with_keys() -> ((key, child) pairs, aux) and
    classmethod tree_unflatten(aux, children) (tree_flatten() optional). Returns cls."""
    flat = getattr(cls, "tree_flatten", None)
    register_pytree_with_keys(cls, lambda x: x.tree_flatten_with_keys(), cls.tree_unflatten,
                              None if flat is None else (lambda x: x.tree_flatten()))
    return cls


def register_dataclass(nodetype=None, data_fields=None, meta_fields=None, drop_fields=()):
    """Register a dataclass (or any class built from keyword fields) as a pytree node: the
    data_fields are children (key paths GetAttrKey(name)), the meta_fields are static auxiliary
    data (hashable; they take part in jit's cache key). For a dataclass, fields not named are
    inferred: meta if declared with ``field(metadata=dict(static=True))``, data otherwise.
    Usable as a decorator, bare or through functools.partial. Returns nodetype."""
    import dataclasses
    if nodetype is None:
        return lambda cls: register_dataclass(cls, data_fields, meta_fields, drop_fields)
    if data_fields is None or meta_fields is None:
        if not dataclasses.is_dataclass(nodetype):
            raise TypeError("register_dataclass: data_fields and meta_fields are required when "
                            f"nodetype is not a dataclass. Got nodetype={nodetype!r}.")
        if data_fields is not None or meta_fields is not None:
            raise TypeError("register_dataclass: give both data_fields and meta_fields, or "
                            "neither (to infer them)")
        fields = [f for f in dataclasses.fields(nodetype) if f.init and f.name not in drop_fields]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
        data_fields = [f.name for f in fields if not f.metadata.get("static", False)]
    elif dataclasses.is_dataclass(nodetype):
        init = {f.name for f in dataclasses.fields(nodetype) if f.init}
        given = set(data_fields) | set(meta_fields)
        if given != init - set(drop_fields):
            raise ValueError("data_fields and meta_fields must include all dataclass fields with "
                             f"``init=True`` and only them. Missing fields: "
                             f"{init - given - set(drop_fields)}; unknown fields: {given - init}. "
                             "Add them to drop_fields to suppress this error.")
    data_fields, meta_fields = tuple(data_fields), tuple(meta_fields)

    def flatten(x):
        return [getattr(x, n) for n in data_fields], tuple(getattr(x, n) for n in meta_fields)

    def unflatten(meta, data):
        kwargs = dict(zip(meta_fields, meta))
        kwargs.update(zip(data_fields, data))
        return nodetype(**kwargs)

    def flatten_with_keys(x):
        return [(GetAttrKey(n), getattr(x, n)) for n in data_fields], \
            tuple(getattr(x, n) for n in meta_fields)

    return register_pytree_node(nodetype, flatten, unflatten, flatten_with_keys)


# ---------------------------------------------------------------------------------------------
# Partial, reductions and transposition of pytrees

import functools as _functools  # noqa: E402


class Partial(_functools.partial):
    """functools.partial as a pytree: the bound positional and keyword arguments are the leaves,
    the function is static auxiliary data. So a Partial can be passed to jit, grad or vmap as an
    argument, and returned from a jitted function."""

    def __new__(cls, func, *args, **kw):
        # Partial(Partial(f, a), b) is one Partial of f with both arguments bound
        if isinstance(func, Partial):
            kw = {**func.keywords, **kw}
            args = func.args + args
            func = func.func
        return super().__new__(cls, func, *args, **kw)


register_pytree_node(Partial, lambda p: ((p.args, p.keywords), p.func),
                     lambda func, xs: Partial(func, *xs[0], **xs[1]))


class _Unspecified:
    def __repr__(self):
        return "<unspecified>"


_UNSPECIFIED = _Unspecified()


def tree_reduce(function, tree, initializer=_UNSPECIFIED, is_leaf=None):
    """functools.reduce(function, leaves[, initializer]) over the leaves of tree; TypeError for
    an empty tree without an initializer."""
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _UNSPECIFIED:
        return _functools.reduce(function, leaves)
    return _functools.reduce(function, leaves, initializer)


def tree_all(tree, *, is_leaf=None):
    """True if every leaf of tree is truthy (True for a tree without leaves)."""
    return all(tree_leaves(tree, is_leaf))


def tree_transpose(outer_treedef, inner_treedef, pytree_to_transpose):
    """Turn a pytree of structure outer(inner) into one of structure inner(outer). With
    inner_treedef None it is inferred from the first outer subtree. Returns the new pytree."""
    if inner_treedef is None:
        inner_treedef = tree_structure(outer_treedef.flatten_up_to(pytree_to_transpose)[0])
    leaves, treedef = tree_flatten(pytree_to_transpose)
    n_in, n_out = inner_treedef.num_leaves, outer_treedef.num_leaves
    if treedef.num_leaves != n_in * n_out or treedef != outer_treedef.compose(inner_treedef):
        raise TypeError(f"tree_transpose: tree structure mismatch: expected "
                        f"{outer_treedef.compose(inner_treedef)}, got {treedef}")
    columns = [outer_treedef.unflatten(leaves[i::n_in]) for i in range(n_in)]
    return inner_treedef.unflatten(columns)


def all_leaves(iterable, is_leaf=None):
    """True if every element of iterable is a leaf (a pytree with no children of its own)."""
    return all(tree_structure(x, is_leaf) == _LEAF for x in iterable)
