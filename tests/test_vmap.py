"""vmap against a Python loop over slices: functrans.numpy functions and lax primitives over
hypothesis shapes and batch-dim placements; in_axes/out_axes as ints, None, negative ints and
pytree prefixes; nested vmap; axis_size; kwargs; compositions with jvp/grad; per-example
gradients; jacfwd/jacrev/hessian with pytrees; error messages."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import lax
from functrans.lax import lax as L
from functrans.lax import slicing as S

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# A reference vmap: an independent, loop-based reading of the in_axes/out_axes semantics

def _is_leaf(x):
    return not isinstance(x, (tuple, list, dict))


def _expand(prefix, tree):
    """prefix (int/None leaves) broadcast to tree's structure."""
    if prefix is None or isinstance(prefix, int):
        return _map(lambda _: prefix, tree)
    if isinstance(tree, dict):
        return {k: _expand(prefix[k], tree[k]) for k in tree}
    return type(tree)(_expand(p, t) for p, t in zip(prefix, tree))


def _map(f, tree, *rest):
    if _is_leaf(tree):
        return f(tree, *rest)
    if isinstance(tree, dict):
        return {k: _map(f, tree[k], *(r[k] for r in rest)) for k in tree}
    return type(tree)(_map(f, t, *r) for t, *r in zip(tree, *rest))


def _leaves(tree):
    if _is_leaf(tree):
        return [tree]
    items = [tree[k] for k in sorted(tree)] if isinstance(tree, dict) else tree
    return [leaf for t in items for leaf in _leaves(t)]


def loop_vmap(f, in_axes=0, out_axes=0, axis_size=None):
    """vmap by a Python loop over slices, stacking the results with NumPy."""
    def run(*args):
        axes = _expand(in_axes if not isinstance(in_axes, list) else tuple(in_axes), tuple(args))
        sizes = {np.shape(x)[a] for x, a in zip(_leaves(args), _leaves(axes)) if a is not None}
        (n,) = sizes or {axis_size}
        outs = [f(*_map(lambda x, a: x if a is None else np.take(x, i, axis=a), tuple(args), axes))
                for i in range(n)]
        oax = _expand(out_axes, outs[0])

        def stack(a, *leaves):
            if a is None:
                return leaves[0]
            return np.stack([np.asarray(x) for x in leaves], axis=a)
        return _map(stack, oax, *outs)
    return run


def assert_trees_close(got, want, rtol=1e-12, atol=1e-12):
    g, w = _leaves(got), _leaves(want)
    assert len(g) == len(w), (got, want)
    for a, b in zip(g, w):
        a, b = np.asarray(a), np.asarray(b)
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, a.dtype, b.shape, b.dtype)
        if b.dtype.kind in "fc":
            np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        else:
            np.testing.assert_array_equal(a, b)


def check(f, args, in_axes=0, out_axes=0, **kw):
    """vmap(f) equals the loop reference."""
    want = loop_vmap(f, in_axes, out_axes)(*args)
    got = ft.vmap(f, in_axes, out_axes)(*args)
    assert_trees_close(got, want, **kw)


# ---------------------------------------------------------------------------------------------
# Example data for a table of functions

def _gen(kind, shape, rng):
    kind = kind.rstrip("!")  # "!": the argument is always mapped (a traced array)
    if kind == "f":
        return rng.standard_normal(shape)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    if kind == "i":
        return rng.integers(-5, 6, shape).astype(np.int64)
    if kind == "idx":
        return rng.integers(0, 2, shape).astype(np.int64)
    if kind == "b":
        return rng.random(shape) < 0.5
    raise ValueError(kind)


def _stack_examples(specs, size, axes, rng):
    """Per-argument batched arrays: examples stacked along each axis (unmapped: one example)."""
    out = []
    for (kind, shape), ax in zip(specs, axes):
        if ax is None:
            out.append(_gen(kind, shape, rng))
        else:
            out.append(np.stack([_gen(kind, shape, rng) for _ in range(size)], axis=ax))
    return out


def _axes_strategy(specs):
    """One batch-dim placement per argument (None or a possibly negative int), at least one
    mapped."""
    per_arg = [st.integers(-(len(s) + 1), len(s)) if k.endswith("!") else
               st.one_of(st.none(), st.integers(-(len(s) + 1), len(s))) for k, s in specs]
    return st.tuples(*per_arg).filter(lambda t: any(a is not None for a in t))


def _run_table_case(data, specs, f, rtol=1e-12):
    axes = data.draw(_axes_strategy(specs), label="in_axes")
    size = data.draw(st.integers(1, 3), label="size")
    out_axis = data.draw(st.sampled_from([0, -1]), label="out_axes")
    args = _stack_examples(specs, size, axes, np.random.default_rng(data.draw(st.integers(0, 99))))
    check(f, args, axes, out_axis, rtol=rtol, atol=1e-12)


shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)
shapes_nd = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)


# ---------------------------------------------------------------------------------------------
# functrans.numpy functions: (name, builder(shape, data) -> (f, specs)); shape drawn by hypothesis

def _elementwise(fn, *kinds):
    return lambda s, data: (fn, [(k, s) for k in kinds])


def _axis_fn(fn, **kw):
    """fn(x, axis=<drawn>, keepdims=<drawn>) on one float array of rank >= 1."""
    def build(s, data):
        axis = data.draw(st.one_of(st.none(), st.integers(-len(s), len(s) - 1)), label="axis")
        keep = data.draw(st.booleans(), label="keepdims") if kw.get("keepdims", True) else None
        args = {} if keep is None else {"keepdims": keep}
        return (lambda x: fn(x, axis=axis, **args)), [(kw.get("kind", "f"), s)]
    return build


class _Lazy:
    """functrans.numpy.<path>, looked up when called (the table is built at import time)."""

    def __init__(self, path=()):
        self._path = path

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Lazy(self._path + (name,))

    def __call__(self, *args, **kwargs):
        obj = jnp
        for name in self._path:
            obj = getattr(obj, name)
        return obj(*args, **kwargs)


J = _Lazy()


def _at(x):
    """x.at for a traced or a concrete (NumPy) array."""
    from functrans.numpy import _indexing
    return _indexing.at(x)


def _grow(s):
    """s with its first dimension at least 2, so that the index arrays (values 0, 1) fit."""
    return (s[0] + 1,) + s[1:]


def _axis(s, data):
    return data.draw(st.integers(-len(s), len(s) - 1), label="axis")


def _perm(s, data):
    return tuple(data.draw(st.permutations(range(len(s))), label="perm"))


def _fixed(fn, *specs):
    return lambda s, data: (fn, list(specs))


NUMPY_CASES = {
    "add": _elementwise(J.add, "f", "f"),
    "subtract": _elementwise(J.subtract, "f", "f"),
    "multiply": _elementwise(J.multiply, "f", "f"),
    "divide": _elementwise(J.divide, "f", "pos"),
    "power": _elementwise(J.power, "pos", "f"),
    "maximum": _elementwise(J.maximum, "f", "f"),
    "minimum": _elementwise(J.minimum, "f", "f"),
    "arctan2": _elementwise(J.arctan2, "f", "f"),
    "logaddexp": _elementwise(J.logaddexp, "f", "f"),
    "negative": _elementwise(J.negative, "f"),
    "abs": _elementwise(J.abs, "f"),
    "sign": _elementwise(J.sign, "f"),
    "exp": _elementwise(J.exp, "f"),
    "expm1": _elementwise(J.expm1, "f"),
    "log": _elementwise(J.log, "pos"),
    "log1p": _elementwise(J.log1p, "pos"),
    "log2": _elementwise(J.log2, "pos"),
    "log10": _elementwise(J.log10, "pos"),
    "sqrt": _elementwise(J.sqrt, "pos"),
    "square": _elementwise(J.square, "f"),
    "reciprocal": _elementwise(J.reciprocal, "pos"),
    "sin": _elementwise(J.sin, "f"),
    "cos": _elementwise(J.cos, "f"),
    "tan": _elementwise(J.tan, "unit"),
    "arcsin": _elementwise(J.arcsin, "unit"),
    "arccos": _elementwise(J.arccos, "unit"),
    "arctan": _elementwise(J.arctan, "f"),
    "sinh": _elementwise(J.sinh, "f"),
    "cosh": _elementwise(J.cosh, "f"),
    "tanh": _elementwise(J.tanh, "f"),
    "arcsinh": _elementwise(J.arcsinh, "f"),
    "arccosh": _elementwise(lambda x: J.arccosh(x + 1.0), "pos"),
    "arctanh": _elementwise(J.arctanh, "unit"),
    "floor": _elementwise(J.floor, "f"),
    "ceil": _elementwise(J.ceil, "f"),
    "round": _elementwise(J.round, "f"),
    "clip": _elementwise(lambda x, lo: J.clip(x, lo, lo + 1.0), "f", "f"),
    "where": _elementwise(J.where, "b", "f", "f"),
    "less": _elementwise(J.less, "f", "f"),
    "equal": _elementwise(J.equal, "i", "i"),
    "logical_and": _elementwise(J.logical_and, "b", "b"),
    "int_float_mix": _elementwise(lambda i, x: i * x + 1, "i", "f"),
    "broadcast_add": lambda s, data: (J.add, [("f", s), ("f", s[-1:])]),
    "sum": _axis_fn(J.sum),
    "mean": _axis_fn(J.mean),
    "var": _axis_fn(J.var),
    "std": _axis_fn(J.std, kind="pos"),
    "prod": _axis_fn(J.prod),
    "max": _axis_fn(J.max),
    "min": _axis_fn(J.min),
    "all": _axis_fn(J.all, kind="b"),
    "any": _axis_fn(J.any, kind="b"),
    "argmax": lambda s, data: ((lambda x, a=_axis(s, data): J.argmax(x, axis=a)),
                               [("f", s)]),
    "argmin": lambda s, data: ((lambda x, a=_axis(s, data): J.argmin(x, axis=a)),
                               [("f", s)]),
    "cumsum": lambda s, data: ((lambda x, a=_axis(s, data): J.cumsum(x, axis=a)),
                               [("f", s)]),
    "cumprod": lambda s, data: ((lambda x, a=_axis(s, data): J.cumprod(x, axis=a)),
                                [("f", s)]),
    "transpose": lambda s, data: ((lambda x, p=_perm(s, data): J.transpose(x, p)), [("f", s)]),
    ".T": _elementwise(lambda x: x.T, "f"),
    "reshape": lambda s, data: ((lambda x: J.reshape(x, (-1,) + s[:0])), [("f", s)]),
    "reshape_method": lambda s, data: ((lambda x: x.reshape(s[::-1])), [("f", s)]),
    "ravel": _elementwise(J.ravel, "f"),
    "swapaxes": lambda s, data: ((lambda x: J.swapaxes(x, 0, -1)), [("f", s)]),
    "moveaxis": lambda s, data: ((lambda x: J.moveaxis(x, 0, -1)), [("f", s)]),
    "expand_dims": lambda s, data: ((lambda x: J.expand_dims(x, -1)), [("f", s)]),
    "squeeze": lambda s, data: (J.squeeze, [("f", s + (1,))]),
    "broadcast_to": lambda s, data: ((lambda x: J.broadcast_to(x, (2,) + s)), [("f", s)]),
    "flip": lambda s, data: ((lambda x: J.flip(x, 0)), [("f", s)]),
    "roll": lambda s, data: ((lambda x: J.roll(x, 1, axis=-1)), [("f", s)]),
    "tile": lambda s, data: ((lambda x: J.tile(x, 2)), [("f", s)]),
    "repeat": lambda s, data: ((lambda x: J.repeat(x, 2, axis=0)), [("f", s)]),
    "pad": lambda s, data: ((lambda x: J.pad(x, 1)), [("f", s)]),
    "concatenate": lambda s, data: ((lambda x, y: J.concatenate([x, y], axis=-1)), [("f", s), ("f", s)]),
    "stack": lambda s, data: ((lambda x, y: J.stack([x, y], axis=1)), [("f", s), ("f", s)]),
    "hstack": lambda s, data: ((lambda x, y: J.hstack([x, y])), [("f", s), ("f", s)]),
    "vstack": lambda s, data: ((lambda x, y: J.vstack([x, y])), [("f", s), ("f", s)]),
    "split": lambda s, data: ((lambda x: J.split(x, 2, axis=0)), [("f", (4,) + s[1:])]),
    "slice_index": lambda s, data: ((lambda x: x[1:, ..., ::-1]), [("f", _grow(s) + (2,))]),
    "int_index": lambda s, data: ((lambda x: x[-1]), [("f", s)]),
    "array_index": lambda s, data: ((lambda x, i: x[i]), [("f!", _grow(s)), ("idx", (3,))]),
    "bool_const_index": lambda s, data: ((lambda x: x[np.arange(s[0]) % 2 == 0]), [("f", s)]),
    "take": lambda s, data: ((lambda x, i: J.take(x, i, axis=0)), [("f", _grow(s)), ("idx", (2, 2))]),
    "take_along_axis": lambda s, data: ((lambda x, i: J.take_along_axis(x, i, axis=0)),
                                        [("f", _grow(s)), ("idx", (3,) + s[1:])]),
    "at_set": lambda s, data: ((lambda x, v: _at(x)[0].set(v)), [("f!", s), ("f", s[1:])]),
    "at_add_array_idx": lambda s, data: ((lambda x, i, v: _at(x)[i].add(v)),
                                         [("f!", _grow(s)), ("idx", (2,)), ("f", (2,) + s[1:])]),
    "at_mul": lambda s, data: ((lambda x: _at(x)[..., 0].mul(3.0)), [("f!", s)]),
    "dot": _fixed(J.dot, ("f", (3, 2)), ("f", (2, 4))),
    "matmul_op": _fixed(lambda a, b: a @ b, ("f", (2, 3, 2)), ("f", (2, 2))),
    "matmul_vec": _fixed(J.matmul, ("f", (3,)), ("f", (3, 2))),
    "vdot": _fixed(J.vdot, ("f", (2, 2)), ("f", (2, 2))),
    "inner": _fixed(J.inner, ("f", (2, 3)), ("f", (3,))),
    "outer": _fixed(J.outer, ("f", (2,)), ("f", (3,))),
    "tensordot_int": _fixed(lambda a, b: J.tensordot(a, b, axes=1), ("f", (2, 3)), ("f", (3, 2))),
    "tensordot": _fixed(lambda a, b: J.tensordot(a, b, axes=([0, 1], [1, 0])), ("f", (2, 3)), ("f", (3, 2))),
    "einsum": _fixed(lambda a, b: J.einsum("ij,jk->ki", a, b), ("f", (2, 3)), ("f", (3, 2))),
    "einsum_trace": _fixed(lambda a: J.einsum("ii->", a), ("f", (3, 3))),
    "trace": _fixed(J.trace, ("f", (3, 3))),
    "norm": _elementwise(J.linalg.norm, "f"),
    "astype": _elementwise(lambda x: x.astype(np.int32), "f"),
    "zeros_like_plus": _elementwise(lambda x: J.zeros_like(x) + J.ones(x.shape) * x, "f"),
    "arange_plus": lambda s, data: ((lambda x: x + J.arange(s[-1])), [("f", s)]),
    "eye_dot": _fixed(lambda x: J.eye(3) @ x, ("f", (3,))),
    "linspace": _fixed(lambda x: x * J.linspace(0.0, 1.0, 4), ("f", (4,))),
    "full": _fixed(lambda x: J.full((2,), 3.0) * x, ("f", ())),
}


@pytest.mark.parametrize("name", sorted(NUMPY_CASES))
@given(data=st.data())
def test_numpy_function_vmap_equals_loop(name, data):
    s = data.draw(shapes_nd, label="shape")
    f, specs = NUMPY_CASES[name](s, data)
    _run_table_case(data, specs, f, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# lax primitives over hypothesis shapes (test_lax_rules.py checks every primitive at one shape
# for every placement; here shapes, ranks and negative axes vary)

def _reduce(fn):
    def build(s, data):
        axes = tuple(sorted(data.draw(st.sets(st.integers(0, max(len(s) - 1, 0)), max_size=len(s)))))
        return (lambda x: fn(x, axes if s else ())), [("f", s)]
    return build


def _dot_general(s, data):
    m, k = s[0], s[-1]
    return (lambda x, y: lax.dot_general(x, y, (((1,), (0,)), ((), ())))), [("f", (m, k)), ("f", (k, m))]


def _batched_dot_general(s, data):
    return ((lambda x, y: lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,))))),
            [("f", (2,) + s[:1] + (3,)), ("f", (2, 3, 2))])


LAX_CASES = {
    "exp": _elementwise(L.exp, "f"),
    "log": _elementwise(L.log, "pos"),
    "erf": _elementwise(L.erf, "f"),
    "integer_pow": _elementwise(lambda x: L.integer_pow(x, 3), "f"),
    "add": _elementwise(L.add, "f", "f"),
    "atan2": _elementwise(L.atan2, "f", "f"),
    "rem": _elementwise(L.rem, "i", "i"),
    "and": _elementwise(L.bitwise_and, "b", "b"),
    "lt": _elementwise(L.lt, "f", "f"),
    "select_n": _elementwise(lambda p, a, b: L.select_n(p, a, b), "b", "f", "f"),
    "convert_element_type": _elementwise(lambda x: L.convert_element_type(x, np.float32), "f"),
    "reduce_sum": _reduce(L.reduce_sum),
    "reduce_max": _reduce(L.reduce_max),
    "argmax": lambda s, data: ((lambda x, a=_axis(s, data) % len(s): L.argmax(x, a)), [("f", s)]),
    "cumsum": lambda s, data: ((lambda x: L.cumsum(x, len(s) - 1, reverse=True)), [("f", s)]),
    "cummax": lambda s, data: ((lambda x: L.cummax(x, 0)), [("f", s)]),
    "broadcast_in_dim": lambda s, data: ((lambda x: L.broadcast_in_dim(x, s + (2,), tuple(range(len(s))))),
                                         [("f", s)]),
    "reshape": lambda s, data: ((lambda x: L.reshape(x, s[::-1])), [("f", s)]),
    "transpose": lambda s, data: ((lambda x, p=_perm(s, data): L.transpose(x, p)), [("f", s)]),
    "squeeze": lambda s, data: ((lambda x: L.squeeze(x, (0,))), [("f", (1,) + s)]),
    "rev": lambda s, data: ((lambda x: L.rev(x, (len(s) - 1,))), [("f", s)]),
    "dot_general": _dot_general,
    "dot_general_batched": _batched_dot_general,
    "slice": lambda s, data: ((lambda x: S.slice(x, (0,) * len(s), s, (2,) * len(s))), [("f", s)]),
    "pad": lambda s, data: ((lambda x, v: S.pad(x, v, [(1, 0, 1)] * len(s))), [("f", s), ("f", ())]),
    "concatenate": lambda s, data: ((lambda x, y: S.concatenate([x, y], len(s) - 1)), [("f", s), ("f", s)]),
    "iota_mixed": lambda s, data: ((lambda x: L.add(x, L.broadcasted_iota(np.float64, s, len(s) - 1))),
                                   [("f", s)]),
}


@pytest.mark.parametrize("name", sorted(LAX_CASES))
@given(data=st.data())
def test_lax_primitive_vmap_equals_loop(name, data):
    s = data.draw(shapes_nd, label="shape")
    f, specs = LAX_CASES[name](s, data)
    _run_table_case(data, specs, f)


# ---------------------------------------------------------------------------------------------
# in_axes / out_axes semantics

def _f_tree(d, t):
    return {"sum": d["a"] + t[0], "prod": d["b"] * t[1].sum()}


X23, Y3 = RNG.standard_normal((2, 3)), RNG.standard_normal(3)


@pytest.mark.parametrize("in_axes", [0, 1, -1, -2, (0, None), (1, 0), [None, 0], (-1, -1)])
def test_in_axes_int_none_negative(in_axes):
    f = lambda x, y: jnp.sin(x) * y + 1.0  # noqa: E731
    args = (RNG.standard_normal((3, 3)), RNG.standard_normal((3, 3)))
    check(f, args, in_axes)


def _arrays(*shapes):
    return [RNG.standard_normal(sh) for sh in shapes]


@pytest.mark.parametrize("in_axes,shapes", [
    (({"a": 0, "b": 1}, [None, 0]), [(4, 3), (2, 4), (3,), (4, 2)]),
    (({"a": None, "b": -1}, [0, 0]), [(3,), (3, 4), (4, 3), (4, 2)]),
    ((0, [None, -1]), [(4, 3), (4, 3), (3,), (2, 4)]),
    (({"a": 1, "b": 1}, None), [(3, 4), (2, 4), (3,), (2,)]),
    ([{"a": -1, "b": None}, -1], [(3, 4), (2,), (3, 4), (2, 4)]),
])
def test_in_axes_pytree_prefixes(in_axes, shapes):
    a, b, t0, t1 = _arrays(*shapes)
    check(_f_tree, ({"a": a, "b": b}, [t0, t1]), in_axes)


@pytest.mark.parametrize("out_axes", [0, -1, {"sum": 1, "prod": 0}, {"sum": 1, "prod": None},
                                      {"sum": -1, "prod": -1}])
def test_out_axes(out_axes):
    # 'prod' depends only on unmapped inputs, so out_axes may leave it unmapped (None)
    d = {"a": RNG.standard_normal((4, 3)), "b": np.float64(2.0)}
    t = (RNG.standard_normal((4, 3)), RNG.standard_normal(2))
    check(_f_tree, (d, t), ({"a": 0, "b": None}, (0, None)), out_axes)


def test_out_axes_none_for_mapped_output_raises():
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(lambda x: x * 2, out_axes=None)(np.ones(3))


def test_out_axes_tuple_prefix_and_unmapped_broadcast():
    f = lambda x, y: (x * 2, (y + 1.0, jnp.ones(2)))  # noqa: E731
    x, y = RNG.standard_normal((3, 2)), RNG.standard_normal(2)
    got = ft.vmap(f, in_axes=(0, None), out_axes=(1, (None, 0)))(x, y)
    np.testing.assert_allclose(got[0], (x * 2).T)
    np.testing.assert_allclose(got[1][0], y + 1)
    np.testing.assert_allclose(got[1][1], np.ones((3, 2)))


def test_nested_vmap_over_several_axes():
    x = RNG.standard_normal((2, 3, 4))
    y = RNG.standard_normal((4, 3))
    f = lambda a, b: jnp.dot(a, b)  # noqa: E731  a: (4,), b: (4,)
    inner = ft.vmap(f, in_axes=(0, 1))           # over the 3-axis
    outer = ft.vmap(inner, in_axes=(0, None))    # over the 2-axis
    want = np.einsum("ijk,kj->ij", x, y)
    np.testing.assert_allclose(outer(x, y), want, rtol=1e-12)
    # the same via mapping the middle axis first, results on a different out axis
    g = ft.vmap(ft.vmap(f, in_axes=(0, None), out_axes=0), in_axes=(1, 1), out_axes=1)
    np.testing.assert_allclose(g(x, y), want, rtol=1e-12)
    # three levels
    h = ft.vmap(ft.vmap(ft.vmap(lambda a: a ** 2 + 1.0)))
    np.testing.assert_allclose(h(x), x ** 2 + 1.0)


def test_axis_size_without_mapped_argument():
    out = ft.vmap(lambda x: x * 2.0, in_axes=None, axis_size=3)(np.arange(2.0))
    np.testing.assert_allclose(out, np.tile(np.arange(2.0) * 2, (3, 1)))
    out = ft.vmap(lambda: jnp.ones(2), in_axes=(), axis_size=4)()
    assert out.shape == (4, 2)
    with pytest.raises(ValueError, match="axis_size"):
        ft.vmap(lambda x: x, in_axes=None)(np.ones(2))
    with pytest.raises(ValueError, match="axis_size"):
        ft.vmap(lambda x: x, axis_size=5)(np.ones(2))


def test_kwargs_are_mapped_along_axis_0():
    f = lambda x, scale: x * scale  # noqa: E731
    x, s = RNG.standard_normal((3, 2)), RNG.standard_normal((3, 1))
    out = ft.vmap(f, in_axes=(1,))(x.T, scale=s)
    np.testing.assert_allclose(out, x * s)


def test_unbatched_function_of_batched_input_and_python_if():
    # an output that does not depend on the mapped input gets broadcast
    out = ft.vmap(lambda x: jnp.ones(2))(np.ones((3, 5)))
    assert out.shape == (3, 2)
    # a Python `if` on an unbatched value works; on a batched value it raises
    out = ft.vmap(lambda x, c: x * 2 if c > 0 else x, in_axes=(0, None))(np.ones(3), np.float64(1.0))
    np.testing.assert_allclose(out, 2 * np.ones(3))
    with pytest.raises(TypeError, match="vmap"):
        ft.vmap(lambda x: x if x > 0 else -x)(np.ones(3))


# ---------------------------------------------------------------------------------------------
# Compositions

def _mlp_params(rng, sizes=(4, 5, 3)):
    return [{"w": rng.standard_normal((m, n)) * 0.5, "b": rng.standard_normal(n) * 0.1}
            for m, n in zip(sizes[:-1], sizes[1:])]


def _mlp_loss(params, x, y):
    h = x
    for i, layer in enumerate(params):
        h = h @ layer["w"] + layer["b"]
        if i < len(params) - 1:
            h = jnp.tanh(h)
    logits = h - jnp.max(h)
    logp = logits - jnp.log(jnp.sum(jnp.exp(logits)))
    return -jnp.sum(logp * y)


def test_per_example_grads_of_mlp_equal_stacked_grads():
    rng = np.random.default_rng(1)
    params = _mlp_params(rng)
    xs = rng.standard_normal((6, 4))
    ys = np.eye(3)[rng.integers(0, 3, 6)]
    per_ex = ft.vmap(ft.grad(_mlp_loss), in_axes=(None, 0, 0))(params, xs, ys)
    stacked = [ft.grad(_mlp_loss)(params, x, y) for x, y in zip(xs, ys)]
    want = _map(lambda *gs: np.stack(gs), *stacked)
    assert_trees_close(per_ex, want, rtol=1e-10)
    # the mean of per-example grads is the grad of the mean loss
    mean_loss = lambda p: sum(_mlp_loss(p, x, y) for x, y in zip(xs, ys)) / len(xs)  # noqa: E731
    assert_trees_close(_map(lambda g: g.mean(0), per_ex), ft.grad(mean_loss)(params), rtol=1e-10)


def _g(x, y):
    return jnp.sin(x) * y ** 2 + jnp.exp(x * y)


def test_vmap_of_jvp_and_jvp_of_vmap():
    x, y, tx, ty = (RNG.standard_normal((4, 3)) for _ in range(4))
    f_jvp = lambda a, b, ta, tb: ft.jvp(_g, (a, b), (ta, tb))  # noqa: E731
    check(f_jvp, (x, y.T, tx, ty.T), (0, 1, 0, 1), rtol=1e-12)
    out, tan = ft.jvp(ft.vmap(_g, in_axes=(0, 1)), (x, y.T), (tx, ty.T))
    want = loop_vmap(f_jvp, (0, 0, 0, 0))(x, y, tx, ty)
    np.testing.assert_allclose(out, want[0], rtol=1e-12)
    np.testing.assert_allclose(tan, want[1], rtol=1e-12)


def test_grad_of_vmap_and_vmap_of_vmap_of_grad():
    x, y = RNG.standard_normal((4, 3)), RNG.standard_normal(3)
    loss = lambda a: jnp.sum(ft.vmap(_g, in_axes=(0, None))(a, y))  # noqa: E731
    gx = ft.grad(loss)(x)
    want = np.stack([ft.grad(lambda r: jnp.sum(_g(r, y)))(r) for r in x])
    np.testing.assert_allclose(gx, want, rtol=1e-12)
    scalar = lambda a, b: _g(a, b)  # noqa: E731
    vv = ft.vmap(ft.vmap(ft.grad(scalar), in_axes=(0, None)), in_axes=(1, None), out_axes=1)
    got = vv(x, np.float64(0.7))
    want = np.array([[ft.grad(scalar)(x[i, j], np.float64(0.7)) for j in range(3)] for i in range(4)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_vmap_of_value_and_grad_with_aux():
    def f(w, x):
        pred = jnp.dot(x, w)
        return pred ** 2, {"pred": pred}
    w, xs = RNG.standard_normal(3), RNG.standard_normal((5, 3))
    (vals, aux), grads = ft.vmap(ft.value_and_grad(f, has_aux=True), in_axes=(None, 0))(w, xs)
    np.testing.assert_allclose(vals, (xs @ w) ** 2)
    np.testing.assert_allclose(aux["pred"], xs @ w)
    np.testing.assert_allclose(grads, 2 * (xs @ w)[:, None] * xs)


# ---------------------------------------------------------------------------------------------
# Jacobians and Hessians with pytrees

def _vec_fn(p):
    """A vector-valued function of a dict of arrays, returning a tuple."""
    a, b = p["a"], p["b"]
    return (jnp.sin(a) * b[0], {"q": jnp.outer(a, b) ** 2, "s": jnp.sum(a * a) * b})


def _fd_jacobian(f, p, eps=1e-6):
    """Central finite differences of f at the dict p, nested as output-leaf -> input-leaf."""
    out0 = f(p)
    res = _map(lambda o: {k: np.zeros(np.shape(o) + np.shape(v)) for k, v in p.items()}, out0)
    for k, v in p.items():
        for idx in np.ndindex(v.shape):
            dp = {kk: vv.copy() for kk, vv in p.items()}
            dm = {kk: vv.copy() for kk, vv in p.items()}
            dp[k][idx] += eps
            dm[k][idx] -= eps
            diff = _map(lambda a, b: (np.asarray(a) - np.asarray(b)) / (2 * eps), f(dp), f(dm))
            for r, d in zip(_leaves_outer(res), _leaves(diff)):
                r[k][(Ellipsis,) + idx] = d
    return res


def _leaves_outer(tree):
    """Leaves of a tree of {input-name: array} dicts (the dicts are the leaves)."""
    if isinstance(tree, dict) and all(isinstance(v, np.ndarray) for v in tree.values()) \
            and set(tree) == {"a", "b"}:
        return [tree]
    items = [tree[k] for k in sorted(tree)] if isinstance(tree, dict) else tree
    return [leaf for t in items for leaf in _leaves_outer(t)]


P = {"a": RNG.standard_normal(3), "b": RNG.standard_normal(2)}


@pytest.mark.parametrize("jac", [ft.jacfwd, ft.jacrev])
def test_jacobians_of_pytree_functions_match_finite_differences(jac):
    got = jac(_vec_fn)(P)
    want = _fd_jacobian(_vec_fn, P)
    assert_trees_close(got, want, rtol=1e-6, atol=1e-8)


def test_jacfwd_equals_jacrev_and_loop_of_vjps():
    fwd, rev = ft.jacfwd(_vec_fn)(P), ft.jacrev(_vec_fn)(P)
    assert_trees_close(fwd, rev, rtol=1e-12)
    # loop version for one output leaf: rows of the Jacobian are vjps of basis cotangents
    out, vjp_fn = ft.vjp(lambda a: _vec_fn({"a": a, "b": P["b"]})[1]["q"], P["a"])
    rows = [vjp_fn(e.reshape(out.shape))[0] for e in np.eye(out.size)]
    np.testing.assert_allclose(rev[1]["q"]["a"], np.stack(rows).reshape(out.shape + (3,)), rtol=1e-12)


def test_hessian_of_pytree_function():
    def f(p):
        return jnp.sum(jnp.sin(p["a"]) ** 2) * jnp.sum(p["b"] ** 3)
    h = ft.hessian(f)(P)
    grad_fd = _fd_jacobian(lambda p: ft.grad(f)(p), P)  # Jacobian of the gradient
    assert_trees_close(h, grad_fd, rtol=1e-6, atol=1e-8)
    hab = h["a"]["b"]
    np.testing.assert_allclose(hab, h["b"]["a"].T, rtol=1e-12)  # symmetry
    # against a loop of hvps
    rows = [ft.hvp(f, (P,), ({"a": e, "b": np.zeros(2)},))["b"] for e in np.eye(3)]
    np.testing.assert_allclose(np.stack(rows), hab, rtol=1e-12)


def test_vmap_of_jacobian():
    xs = RNG.standard_normal((4, 3))
    f = lambda x: jnp.tanh(x) * jnp.sum(x)  # noqa: E731
    check(ft.jacfwd(f), (xs,), 0, rtol=1e-12)
    check(ft.jacrev(f), (xs.T,), 1, out_axes=-1, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors

def test_inconsistent_sizes_name_each_argument_path_and_size():
    f = lambda x, d: x + d["y"]  # noqa: E731
    with pytest.raises(ValueError) as e:
        ft.vmap(f)(np.ones((3, 2)), {"y": np.ones((4, 2))})
    msg = str(e.value)
    assert "args[0]" in msg and "size 3" in msg
    assert "args[1]['y']" in msg and "size 4" in msg
    with pytest.raises(ValueError, match="kwargs"):
        ft.vmap(lambda x, z: x + z)(np.ones((3, 2)), z=np.ones((5, 2)))


def test_in_axes_structure_mismatch_shows_both_structures():
    with pytest.raises(ValueError) as e:
        ft.vmap(lambda d: d["a"], in_axes=({"a": 0, "c": 0},))({"a": np.ones(2), "b": np.ones(2)})
    msg = str(e.value)
    assert "'c'" in msg and "'b'" in msg
    with pytest.raises(ValueError, match="in_axes"):
        ft.vmap(lambda x, y: x, in_axes=(0, 0, 0))(np.ones(2), np.ones(2))
    with pytest.raises(ValueError) as e:
        ft.vmap(lambda t: t[0], in_axes=((0, 0),))((np.ones(2),))
    assert "length 2" in str(e.value) and "length 1" in str(e.value)
    with pytest.raises(ValueError, match="in_axes"):
        ft.vmap(lambda x: x, in_axes=0.5)(np.ones(2))
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(lambda x: (x, x), out_axes=(0, 0, 0))(np.ones(2))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match="axis 2"):
        ft.vmap(lambda x: x, in_axes=2)(np.ones((2, 2)))
    with pytest.raises(ValueError, match="axis -3"):
        ft.vmap(lambda x: x, in_axes=-3)(np.ones((2, 2)))
    with pytest.raises(ValueError, match="rank"):
        ft.vmap(lambda x: x)(np.float64(1.0))
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(lambda x: x, out_axes=2)(np.ones(3))
    with pytest.raises(ValueError, match="out_axes"):
        ft.vmap(lambda x: x, out_axes=-3)(np.ones(3))
