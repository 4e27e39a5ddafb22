"""The pytree API beyond flatten/unflatten: key paths, register_dataclass, keyed registration,
Partial, reductions, transposition, treedef methods and the functrans.tree namespace. The
doc_* tests are JAX's documentation examples, unchanged apart from the import line."""
import collections
import dataclasses
import functools
import operator
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pytest
from hypothesis import given, strategies as st

import functrans as jax
import functrans.numpy as jnp
from functrans import tree_util
from functrans.tree_util import (DictKey, FlattenedIndexKey, GetAttrKey, Partial, SequenceKey,
                                 keystr)


# --- JAX's documentation examples -------------------------------------------------------------

def test_doc_leaves_of_example_trees():
    example_trees = [
        [1, 'a', object()],
        (1, (2, 3), ()),
        [1, {'k1': 2, 'k2': (3, 4)}, 5],
        {'a': 2, 'b': (2, 3)},
        jnp.array([1, 2, 3]),
    ]
    counts = [len(jax.tree_util.tree_leaves(t)) for t in example_trees]
    assert counts == [3, 3, 5, 3, 1]


def test_doc_key_paths():
    ATuple = collections.namedtuple("ATuple", ('name'))
    tree = [1, {'k1': 2, 'k2': (3, 4)}, ATuple('foo')]
    flattened, _ = jax.tree_util.tree_flatten_with_path(tree)
    lines = [f'Value of tree{jax.tree_util.keystr(key_path)}: {value}'
             for key_path, value in flattened]
    assert lines == ["Value of tree[0]: 1", "Value of tree[1]['k1']: 2",
                     "Value of tree[1]['k2'][0]: 3", "Value of tree[1]['k2'][1]: 4",
                     "Value of tree[2].name: foo"]


def test_doc_register_pytree_with_keys_class():
    @jax.tree_util.register_pytree_with_keys_class
    class MyContainer:
        def __init__(self, name, a, b, c):
            self.name, self.a, self.b, self.c = name, a, b, c

        def tree_flatten_with_keys(self):
            return ((jax.tree_util.GetAttrKey('a'), self.a),
                    (jax.tree_util.GetAttrKey('b'), self.b),
                    (jax.tree_util.GetAttrKey('c'), self.c)), self.name

        @classmethod
        def tree_unflatten(cls, name, children):
            return cls(name, *children)

    tree = MyContainer('foo', 1, 2, 3)
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    assert [(keystr(p), v) for p, v in leaves] == [(".a", 1), (".b", 2), (".c", 3)]
    out = jax.tree_util.tree_map(lambda x: x + 1, tree)
    assert (out.name, out.a, out.b, out.c) == ("foo", 2, 3, 4)


def test_doc_register_dataclass_partial_and_jit():
    @partial(jax.tree_util.register_dataclass,
             data_fields=['x', 'y'],
             meta_fields=['op'])
    @dataclass
    class MyStruct:
        x: Any
        y: Any
        op: str

    m = MyStruct(x=jnp.ones(3), y=jnp.arange(3), op='add')
    assert len(jax.tree.leaves(m)) == 2

    @jax.jit
    def compiled_func(m):
        if m.op == 'add':
            return m.x + m.y
        else:
            raise ValueError(f"Invalid op value: {m.op}")

    np.testing.assert_allclose(compiled_func(m), [1., 2., 3.])
    with pytest.raises(ValueError, match="Invalid op value"):
        compiled_func(MyStruct(x=jnp.ones(3), y=jnp.arange(3), op='mul'))


def test_doc_register_dataclass_container():
    @dataclass
    class MyDataclassContainer(object):
        name: str
        a: Any
        b: Any
        c: Any

    jax.tree_util.register_dataclass(
        MyDataclassContainer,
        data_fields=['a', 'b', 'c'],
        meta_fields=['name'])
    tree = MyDataclassContainer('x', 1, 2, 3)
    assert jax.tree_util.tree_leaves([tree, tree]) == [1, 2, 3, 1, 2, 3]
    paths = [keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    assert paths == [".a", ".b", ".c"]


def test_doc_partial_through_jit():
    @jax.jit
    def call_func(f, *args):
        return f(*args)

    from functrans.tree_util import Partial
    assert float(call_func(Partial(jnp.add, 1), 2)) == 3.0


def test_doc_tree_namespace_examples():
    assert jax.tree.transpose(jax.tree.structure([0, 0]), jax.tree.structure((0, 0)),
                              [(1, 2), (3, 4)]) == ([1, 3], [2, 4])
    assert jax.tree.reduce(operator.add, [1, (2, 3), [4, 5, 6]]) == 21
    assert jax.tree.all([True, {'a': True, 'b': (True, True)}])
    assert not jax.tree.all([False, (True, False)])
    assert jax.tree.map_with_path(lambda path, x: x + path[0].idx, [1, 2]) == [1, 3]
    assert jax.tree.leaves_with_path([1, {'x': 5}]) == [((SequenceKey(idx=0),), 1),
                                                         ((SequenceKey(idx=1), DictKey(key='x')), 5)]
    pairs, td = jax.tree.flatten_with_path([1, {'x': 3}])
    assert pairs == [((SequenceKey(0),), 1), ((SequenceKey(1), DictKey('x')), 3)]
    assert td == jax.tree.structure([1, {'x': 3}])
    assert jax.tree.unflatten(td, [7, 8]) == [7, {'x': 8}]
    assert jax.tree.map(lambda x: x * 2, {'a': 1, 'b': (2,)}) == {'a': 2, 'b': (4,)}
    assert jax.tree.flatten({'b': 2, 'a': 1})[0] == [1, 2]


# --- key paths --------------------------------------------------------------------------------

def test_key_entries_repr_str_eq_hash():
    assert repr(SequenceKey(0)) == "SequenceKey(idx=0)" and str(SequenceKey(0)) == "[0]"
    assert repr(DictKey('a')) == "DictKey(key='a')" and str(DictKey('a')) == "['a']"
    assert repr(GetAttrKey('x')) == "GetAttrKey(name='x')" and str(GetAttrKey('x')) == ".x"
    assert str(FlattenedIndexKey(2)) == "[<flat index 2>]"
    assert SequenceKey(1) == SequenceKey(1) != FlattenedIndexKey(1)
    assert len({DictKey('a'), DictKey('a'), GetAttrKey('a')}) == 2
    with pytest.raises(AttributeError):
        SequenceKey(0).idx = 3
    path = (SequenceKey(0), DictKey('b'), GetAttrKey('x'))
    assert keystr(path) == "[0]['b'].x"
    assert keystr(path, simple=True, separator="/") == "0/b/x"


def test_unkeyed_node_gets_flattened_index_keys_and_none_is_empty():
    pairs, _ = tree_util.tree_flatten_with_path((None, Partial(jnp.add, 1.0, 2.0)))
    assert [p for p, _ in pairs] == [(SequenceKey(1), FlattenedIndexKey(0), SequenceKey(0)),
                                     (SequenceKey(1), FlattenedIndexKey(0), SequenceKey(1))]


def test_is_leaf_with_and_without_path():
    tree = {'a': (1, 2), 'b': [3]}
    pairs = tree_util.tree_leaves_with_path(tree, is_leaf=lambda x: isinstance(x, tuple))
    assert pairs == [((DictKey('a'),), (1, 2)), ((DictKey('b'), SequenceKey(0)), 3)]
    pairs = tree_util.tree_leaves_with_path(tree, is_leaf=lambda p, x: len(p) == 1,
                                            is_leaf_takes_path=True)
    assert pairs == [((DictKey('a'),), (1, 2)), ((DictKey('b'),), [3])]


def test_map_with_path_several_trees_and_mismatch():
    out = tree_util.tree_map_with_path(lambda p, x, y: (keystr(p), x + y),
                                       {'a': 1, 'b': [2]}, {'a': 10, 'b': [20]})
    assert out == {'a': ("['a']", 11), 'b': [("['b'][0]", 22)]}
    with pytest.raises(ValueError):
        tree_util.tree_map_with_path(lambda p, x, y: x, {'a': 1}, [1])


trees = st.recursive(st.integers(0, 9),
                     lambda c: st.lists(c, max_size=3) | st.tuples(c, c)
                     | st.dictionaries(st.sampled_from("abc"), c, max_size=3),
                     max_leaves=8)


@given(trees)
def test_paths_agree_with_flatten_and_index_the_tree(tree):
    pairs, td = tree_util.tree_flatten_with_path(tree)
    leaves, td2 = tree_util.tree_flatten(tree)
    assert td == td2 and [x for _, x in pairs] == leaves
    for path, leaf in pairs:
        node = tree
        for k in path:
            node = node[k.idx if isinstance(k, SequenceKey) else k.key]
        assert node == leaf


# --- registration -----------------------------------------------------------------------------

@tree_util.register_dataclass
@dataclass
class Params:
    w: Any
    b: Any
    name: str = dataclasses.field(default="p", metadata=dict(static=True))


def _loss(p, x):
    return jnp.sum(jnp.tanh(x @ p.w + p.b) ** 2)


def test_dataclass_inferred_fields_through_grad_jit_vmap():
    p = Params(np.array([[0.5, -1.0], [0.25, 2.0]]), np.array([0.1, -0.2]))
    x = np.array([[1.0, 2.0], [-1.0, 0.5], [0.3, 0.3]])
    assert tree_util.tree_structure(p).num_leaves == 2
    g = jax.grad(_loss)(p, x)
    assert isinstance(g, Params) and g.name == "p"
    eps = 1e-6
    dw = np.zeros((2, 2))
    for i in range(2):
        for j in range(2):
            e = np.zeros((2, 2))
            e[i, j] = eps
            dw[i, j] = (_loss(Params(p.w + e, p.b), x) - _loss(Params(p.w - e, p.b), x)) / (2 * eps)
    np.testing.assert_allclose(g.w, dw, rtol=1e-6)
    gj = jax.jit(jax.grad(_loss))(p, x)
    np.testing.assert_allclose(gj.w, g.w, rtol=1e-12)
    np.testing.assert_allclose(gj.b, g.b, rtol=1e-12)
    batched = Params(np.stack([p.w, 2 * p.w]), np.stack([p.b, p.b]))
    out = jax.vmap(_loss, in_axes=(Params(0, 0), None))(batched, x)
    np.testing.assert_allclose(out, [_loss(p, x), _loss(Params(2 * p.w, p.b), x)], rtol=1e-12)


def test_dataclass_meta_field_is_static_under_jit():
    calls = []

    @jax.jit
    def f(p):
        calls.append(p.name)
        return p.w * 2

    f(Params(1.0, 0.0, name="a"))
    f(Params(2.0, 0.0, name="a"))
    f(Params(1.0, 0.0, name="b"))
    assert calls == ["a", "b"]


def test_register_dataclass_errors():
    with pytest.raises(TypeError, match="not a dataclass"):
        tree_util.register_dataclass(type("NotDC", (), {}))

    @dataclass
    class C:
        x: Any
        n: int

    with pytest.raises(ValueError, match="Missing fields"):
        tree_util.register_dataclass(C, data_fields=['x'], meta_fields=[])
    tree_util.register_dataclass(C, data_fields=['x'], meta_fields=[], drop_fields=['n'])


def test_register_dataclass_on_plain_class():
    class Pair:
        def __init__(self, a, k):
            self.a, self.k = a, k

    tree_util.register_dataclass(Pair, data_fields=['a'], meta_fields=['k'])
    out = jax.tree.map(lambda v: v + 1, Pair(1, "s"))
    assert (out.a, out.k) == (2, "s")


def test_register_pytree_with_keys_function_form():
    class Box:
        def __init__(self, items):
            self.items = items

    tree_util.register_pytree_with_keys(
        Box, lambda b: ([(DictKey(k), v) for k, v in b.items], tuple(k for k, _ in b.items)),
        lambda keys, xs: Box(list(zip(keys, xs))))
    pairs = tree_util.tree_leaves_with_path(Box([("u", 1), ("v", 2)]))
    assert pairs == [((DictKey("u"),), 1), ((DictKey("v"),), 2)]
    assert tree_util.tree_leaves(Box([("u", 1), ("v", 2)])) == [1, 2]


# --- Partial ----------------------------------------------------------------------------------

def test_partial_is_a_pytree_through_grad_and_vmap():
    f = Partial(lambda a, x, scale=1.0: scale * jnp.sin(a * x), 2.0, scale=3.0)
    assert tree_util.tree_leaves(f) == [2.0, 3.0]
    assert float(f(0.5)) == pytest.approx(3 * np.sin(1.0))
    g = jax.grad(lambda p, x: p(x))(f, 0.5)
    assert isinstance(g, Partial)
    assert float(g.args[0]) == pytest.approx(3 * 0.5 * np.cos(1.0))
    assert float(g.keywords["scale"]) == pytest.approx(np.sin(1.0))
    out = jax.vmap(lambda p, x: p(x), in_axes=(None, 0))(f, np.array([0.1, 0.2]))
    np.testing.assert_allclose(out, 3 * np.sin(2 * np.array([0.1, 0.2])))
    nested = Partial(Partial(jnp.add), 1.0)
    assert nested.func is jnp.add and tree_util.tree_leaves(nested) == [1.0]
    ret = jax.jit(lambda a: Partial(jnp.multiply, a))(2.0)
    assert isinstance(ret, Partial) and float(ret(4.0)) == 8.0


# --- reductions, transpose, treedef methods ----------------------------------------------------

def test_tree_reduce_initializer_and_empty():
    assert tree_util.tree_reduce(operator.add, [], 5) == 5
    assert tree_util.tree_reduce(lambda a, b: a * b, {'a': 2, 'b': (3, 4)}) == 24
    with pytest.raises(TypeError):
        tree_util.tree_reduce(operator.add, [])
    assert tree_util.tree_all([]) and not tree_util.tree_all({'a': 1, 'b': 0})


def test_tree_transpose_infers_inner_and_checks_structure():
    tree = {'a': (1, 2), 'b': (3, 4)}
    outer = tree_util.tree_structure({'a': 0, 'b': 0})
    assert tree_util.tree_transpose(outer, None, tree) == ({'a': 1, 'b': 3}, {'a': 2, 'b': 4})
    with pytest.raises(TypeError, match="mismatch"):
        tree_util.tree_transpose(outer, tree_util.tree_structure((0, 0, 0)), tree)


def test_treedef_methods():
    td = tree_util.tree_structure({'a': (1, 2), 'b': None})
    assert td.num_leaves == 2 and td.num_nodes == 5
    assert td.children() == [tree_util.tree_structure((1, 2)), tree_util.tree_structure(None)]
    assert tree_util.treedef_children(td) == td.children()
    assert td.node_data() == (dict, ('a', 'b'))
    assert tree_util.tree_structure(1).node_data() is None
    assert td.unflatten([5, 6]) == {'a': (5, 6), 'b': None}
    assert td.flatten_up_to({'a': ([1], {'z': 2}), 'b': None}) == [[1], {'z': 2}]
    with pytest.raises(ValueError):
        td.flatten_up_to({'a': [1, 2], 'b': None})
    composed = tree_util.tree_structure([0, 0]).compose(tree_util.tree_structure((0, 0)))
    assert composed == tree_util.tree_structure([(1, 2), (3, 4)])
    assert tree_util.all_leaves([1, jnp.ones(2)]) and not tree_util.all_leaves([1, (2,)])
