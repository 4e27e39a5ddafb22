"""functrans.Array (issue 12): Python/NumPy interop, repr, indexing, devices and bad inputs.

Expected reprs and indexing rules are JAX's (checked against jax with x64 enabled, since
functrans keeps NumPy's float64 default)."""
import copy
import itertools
import operator
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import functrans as jax
import functrans.core
import functrans.numpy as jnp
from functrans import lax, random
from functrans.tree_util import tree_leaves, tree_structure

Array = jax.Array

_jit_index = jax.jit(lambda x, i: x[i])
_jit_add = jax.jit(lambda x, y: x + y)
_jit_sin = jax.jit(lambda x: jnp.sin(x) * 2.0)
_jit_basic_slices = jax.jit(lambda v: v[1:, ::-1, None])
_jit_unpack = jax.jit(lambda v: (lambda p, q: p - q)(*v))


def _elements(dtype):
    if dtype.kind == "f":
        return st.floats(-1e3, 1e3, width=dtype.itemsize * 8)
    if dtype.kind == "i":
        return st.integers(-1000, 1000)
    return st.booleans()


@st.composite
def ndarrays(draw, min_dims=0, max_dims=3, min_side=0, dtypes=(np.float32, np.float64, np.int32,
                                                                  np.bool_)):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                                  max_side=3))
    return draw(hnp.arrays(dtype, shape, elements=_elements(dtype)))


def _flat_types(obj):
    if isinstance(obj, list):
        return [t for o in obj for t in _flat_types(o)]
    return [type(obj)]


# ---------------------------------------------------------------------------------------------
# Iteration, len, unpacking


@given(a=ndarrays(min_dims=1))
def test_iteration_yields_numpy_rows_and_stops(a):
    x = jnp.asarray(a)
    rows = list(itertools.islice(iter(x), a.shape[0] + 2))   # a non-stopping iterator fails here
    assert len(rows) == a.shape[0]
    for row, expect in zip(rows, a):
        assert type(row) is Array
        assert row.dtype == a.dtype and row.shape == expect.shape
        np.testing.assert_array_equal(np.asarray(row), expect)
    assert len(x) == a.shape[0]


def test_list_of_array_equals_numpy_rows():
    for shape in [(3,), (2, 3), (2, 2, 2)]:
        a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
        got = list(jnp.asarray(a))
        assert len(got) == shape[0]
        assert all(type(r) is Array for r in got)
        for r, e in zip(got, list(a)):
            np.testing.assert_array_equal(np.asarray(r), e)


def test_iteration_and_len_of_0d_raise_typeerror():
    x = jnp.array(1.0)
    with pytest.raises(TypeError):
        iter(x)
    with pytest.raises(TypeError):
        list(x)
    with pytest.raises(TypeError):
        len(x)
    with pytest.raises(TypeError):
        a, b = x


def test_for_loop_over_eye_yields_three_rows():
    rows = []
    for row in jnp.eye(3):
        rows.append(row)
    assert len(rows) == 3
    for i, r in enumerate(rows):
        assert type(r) is Array
        np.testing.assert_array_equal(np.asarray(r), np.eye(3)[i])


def test_unpacking_concrete_arrays():
    a, b, c = jnp.arange(3)
    assert (int(a), int(b), int(c)) == (0, 1, 2)
    assert all(type(v) is Array for v in (a, b, c))
    (r0, r1) = jnp.ones((2, 5))
    assert r0.shape == (5,) and r1.shape == (5,)
    with pytest.raises(ValueError):
        p, q = jnp.arange(3)


def test_split_key_unpacks_into_two_usable_keys():
    key = random.PRNGKey(0)
    k1, k2 = random.split(key)
    assert type(k1) is Array and type(k2) is Array
    assert k1.shape == key.shape and k1.dtype == key.dtype
    assert not np.array_equal(np.asarray(k1), np.asarray(k2))
    ks = list(random.split(key, 3))
    assert len(ks) == 3
    n1, n2 = random.normal(k1, (2,)), random.normal(k2, (2,))
    assert type(n1) is Array and not np.array_equal(np.asarray(n1), np.asarray(n2))


def test_traced_array_unpacks_like_jax():
    # JAX lets a tracer with a known leading dimension be iterated and unpacked.
    assert float(_jit_unpack(jnp.array([3.0, 1.0]))) == 2.0
    out = jax.vmap(lambda v: (lambda p, q: p * q)(*v))(np.array([[2.0, 3.0], [4.0, 5.0]]))
    np.testing.assert_array_equal(np.asarray(out), [6.0, 20.0])
    g = jax.grad(lambda v: sum(r * r for r in v))(np.array([1.0, 2.0]))
    np.testing.assert_array_equal(np.asarray(g), [2.0, 4.0])


# ---------------------------------------------------------------------------------------------
# Scalar conversions


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("value", [0.0, 2.5, -1.0])
def test_bool_of_size_one_arrays(shape, value):
    a = np.full(shape, value)
    assert bool(jnp.asarray(a)) is bool(a)
    assert bool(jnp.asarray(a.astype(np.int32))) is bool(a.astype(np.int32))


def test_bool_of_larger_array_raises_like_numpy():
    with pytest.raises(ValueError):
        bool(jnp.ones(2))
    with pytest.raises(ValueError):
        if jnp.arange(3) > 0:
            pass


def test_scalar_conversions_of_larger_arrays_raise_like_numpy():
    x = jnp.arange(3.0)
    with pytest.raises(ValueError):
        x.item()
    with pytest.raises(TypeError):
        int(x)
    with pytest.raises(TypeError):
        float(x)
    assert x.item(2) == 2.0


@given(a=ndarrays(max_dims=0))
def test_int_float_complex_item_of_0d(a):
    x = jnp.asarray(a)
    assert int(x) == int(a) and type(int(x)) is int
    assert float(x) == float(a) and type(float(x)) is float
    assert complex(x) == complex(a) and type(complex(x)) is complex
    assert x.item() == a.item() and type(x.item()) is type(a.item())


def test_complex_array_conversions_and_parts():
    z = jnp.array([1 + 2j, 3 - 4j], dtype=np.complex128)
    assert type(z.real) is Array and type(z.imag) is Array
    np.testing.assert_array_equal(np.asarray(z.real), [1.0, 3.0])
    np.testing.assert_array_equal(np.asarray(z.imag), [2.0, -4.0])
    assert complex(z[1]) == 3 - 4j
    r = jnp.array([1.5, -2.0])
    np.testing.assert_array_equal(np.asarray(r.real), [1.5, -2.0])
    np.testing.assert_array_equal(np.asarray(r.imag), [0.0, 0.0])
    assert type(r.imag) is Array and r.imag.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_operator_index_on_integer_arrays(dtype):
    i = jnp.array(2, dtype=dtype)
    assert operator.index(i) == 2 and type(operator.index(i)) is int
    assert [10, 20, 30][i] == 30
    assert list(range(i)) == [0, 1]
    assert "abc"[jnp.array(1, dtype=dtype):] == "bc"


@pytest.mark.parametrize("x", [jnp.array(2.0), jnp.array(True), jnp.array([1, 2])],
                         ids=["float", "bool", "1d"])
def test_operator_index_rejects_non_integer_or_non_scalar(x):
    with pytest.raises(TypeError):
        operator.index(x)
    with pytest.raises(TypeError):
        [10, 20, 30][x]


def test_format_of_0d_array_like_its_scalar():
    assert f"{jnp.array(1.23456):.2f}" == "1.23"
    assert format(jnp.array(7, dtype=np.int32), "03d") == "007"


# ---------------------------------------------------------------------------------------------
# Attributes and methods


@given(a=ndarrays())
def test_attributes_match_numpy(a):
    x = jnp.asarray(a)
    assert x.shape == a.shape and type(x.shape) is tuple
    assert all(type(d) is int for d in x.shape)
    assert isinstance(x.dtype, np.dtype) and x.dtype == a.dtype
    assert x.ndim == a.ndim and type(x.ndim) is int
    assert x.size == a.size and type(x.size) is int
    assert x.nbytes == a.nbytes
    assert x.itemsize == a.itemsize
    assert len(x) == len(a) if a.ndim else True


@given(a=ndarrays())
def test_tolist_str_and_item_match_numpy(a):
    x = jnp.asarray(a)
    assert x.tolist() == a.tolist()
    assert _flat_types(x.tolist()) == _flat_types(a.tolist())
    assert str(x) == str(a)
    if a.size:
        assert x.item(0) == a.item(0) and type(x.item(0)) is type(a.item(0))


@given(a=ndarrays(), dtype=st.sampled_from([np.float32, np.float64, np.int32, np.bool_]))
def test_copy_and_astype(a, dtype):
    x = jnp.asarray(a)
    c = x.copy()
    assert type(c) is Array and c is not x and c.dtype == a.dtype
    np.testing.assert_array_equal(np.asarray(c), a)
    t = x.astype(dtype)
    assert type(t) is Array and t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(t), a.astype(dtype))


@given(a=ndarrays(min_dims=2))
def test_transposes_match_numpy(a):
    x = jnp.asarray(a)
    assert type(x.T) is Array and type(x.mT) is Array
    np.testing.assert_array_equal(np.asarray(x.T), a.T)
    np.testing.assert_array_equal(np.asarray(x.mT), a.mT)


_M = np.array([[3.0, -1.5, 2.0], [0.25, 4.0, -2.0]])
_MI = np.array([[3, -1, 2], [7, 4, -2]], dtype=np.int32)

METHODS = {
    "sum": lambda x: x.sum(),
    "sum_axis": lambda x: x.sum(axis=0),
    "sum_keepdims": lambda x: x.sum(axis=1, keepdims=True),
    "reshape_tuple": lambda x: x.reshape((3, 2)),
    "reshape_varargs": lambda x: x.reshape(3, -1),
    "mean": lambda x: x.mean(),
    "mean_axis": lambda x: x.mean(axis=1),
    "max": lambda x: x.max(),
    "max_axis": lambda x: x.max(axis=0),
    "min": lambda x: x.min(axis=1),
    "argmax": lambda x: x.argmax(),
    "argmax_axis": lambda x: x.argmax(axis=1),
    "argmin": lambda x: x.argmin(axis=0),
    "clip": lambda x: x.clip(0, 2),
    "clip_kw": lambda x: x.clip(min=0.5),
    "round": lambda x: x.round(),
    "round_decimals": lambda x: x.round(1),
    "squeeze": lambda x: x[None].squeeze(),
    "squeeze_axis": lambda x: x[:, None].squeeze(axis=1),
    "flatten": lambda x: x.flatten(),
    "ravel": lambda x: x.ravel(),
    "dot": lambda x: x.dot(x.T),
    "transpose": lambda x: x.transpose(),
    "transpose_axes": lambda x: x.transpose(1, 0),
    "swapaxes": lambda x: x.swapaxes(0, 1),
    "std": lambda x: x.std(),
    "var": lambda x: x.var(axis=0),
    "prod": lambda x: x.prod(axis=1),
    "cumsum": lambda x: x.cumsum(axis=1),
    "any": lambda x: (x > 3).any(),
    "all": lambda x: (x > -3).all(axis=0),
    "conj": lambda x: x.conj(),
    "astype": lambda x: x.astype(np.int32),
}


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("operand", ["float", "int"])
def test_methods_match_numpy(name, operand):
    a = _M if operand == "float" else _MI
    out = METHODS[name](jnp.asarray(a))
    expect = np.asarray(METHODS[name](a))
    assert type(out) is Array
    assert out.shape == expect.shape
    if name not in ("mean", "mean_axis", "std", "var"):
        assert out.dtype == expect.dtype, (out.dtype, expect.dtype)
    np.testing.assert_allclose(np.asarray(out), expect, rtol=1e-12)


def test_methods_on_tracers_match_concrete():
    f = jax.jit(lambda x: (x.sum(axis=0), x.reshape(3, 2), x.T, x.mean(), x.max(axis=1),
                           x.argmax(axis=1), x.clip(0, 2), x.flatten(), x.dot(x.T)))
    traced = f(_M)
    eager = (lambda x: (x.sum(axis=0), x.reshape(3, 2), x.T, x.mean(), x.max(axis=1),
                        x.argmax(axis=1), x.clip(0, 2), x.flatten(), x.dot(x.T)))(jnp.asarray(_M))
    for t, e in zip(traced, eager):
        assert type(t) is Array and type(e) is Array
        np.testing.assert_allclose(np.asarray(t), np.asarray(e))


# ---------------------------------------------------------------------------------------------
# Mixing with NumPy


_BINOPS = ["add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "lt", "le", "eq",
           "ne", "gt", "ge"]


@pytest.mark.parametrize("op", _BINOPS)
def test_ndarray_op_array_returns_array(op):
    a = np.array([1.0, 2.0, 3.0])
    x = jnp.array([2.0, 2.0, 0.5])
    f = getattr(operator, op)
    for out in (f(a, x), f(x, a)):
        assert type(out) is Array, type(out)
    np.testing.assert_allclose(np.asarray(f(a, x)), f(a, np.asarray(x)))
    np.testing.assert_allclose(np.asarray(f(x, a)), f(np.asarray(x), a))


def test_python_and_numpy_scalars_on_either_side_return_array():
    x = jnp.arange(3.0)
    for out in (2 * x, x * 2, 1 - x, x - 1, 2.0 ** x, x ** 2, np.float32(2) * x, x / np.int64(2),
                -x, abs(x), +x):
        assert type(out) is Array, type(out)
    np.testing.assert_array_equal(np.asarray(1 - x), [1.0, 0.0, -1.0])


def test_numpy_ufunc_on_array_returns_ndarray():
    x = jnp.array([0.0, 0.5, 1.0])
    out = np.sin(x)
    assert type(out) is np.ndarray
    np.testing.assert_allclose(out, np.sin([0.0, 0.5, 1.0]))
    out2 = np.add(x, 1.0)
    assert type(out2) is np.ndarray
    np.testing.assert_array_equal(out2, [1.0, 1.5, 2.0])


def test_array_priority_is_above_ndarray():
    assert getattr(jnp.arange(2), "__array_priority__", -1.0) > np.zeros(2).__array_priority__


# ---------------------------------------------------------------------------------------------
# Pickle, copy, hash


@given(a=ndarrays())
def test_pickle_roundtrip(a):
    x = jnp.asarray(a)
    y = pickle.loads(pickle.dumps(x))
    assert type(y) is Array
    assert y.dtype == a.dtype and y.shape == a.shape
    np.testing.assert_array_equal(np.asarray(y), a)
    assert np.asarray(y).flags.writeable is False


def test_pickle_of_pytree_with_arrays():
    tree = {"w": jnp.ones((2, 2), dtype=np.float32), "b": [jnp.arange(3), jnp.array(True)]}
    back = pickle.loads(pickle.dumps(tree, protocol=pickle.HIGHEST_PROTOCOL))
    assert tree_structure(back) == tree_structure(tree)
    for l1, l2 in zip(tree_leaves(tree), tree_leaves(back)):
        assert type(l2) is Array and l2.dtype == l1.dtype
        np.testing.assert_array_equal(np.asarray(l2), np.asarray(l1))


@pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy], ids=["copy", "deepcopy"])
def test_copy_module(copier):
    x = jnp.arange(6, dtype=np.int32).reshape(2, 3)
    y = copier(x)
    assert type(y) is Array and y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(np.asarray(y), np.asarray(x))
    tree = copier({"a": x, "b": [x]})
    assert all(type(v) is Array for v in tree_leaves(tree))


def test_arrays_are_unhashable():
    x = jnp.arange(3)
    with pytest.raises(TypeError):
        hash(x)
    with pytest.raises(TypeError):
        {x}
    with pytest.raises(TypeError):
        hash(jnp.array(1.0))


# ---------------------------------------------------------------------------------------------
# repr / str / printoptions (expected strings are JAX's, with x64 enabled)


REPRS = [
    (lambda: jnp.array([1.0, 2.0], dtype=jnp.float32), "Array([1., 2.], dtype=float32)"),
    (lambda: jnp.arange(6.0).reshape(2, 3),
     "Array([[0., 1., 2.],\n       [3., 4., 5.]], dtype=float64)"),
    (lambda: jnp.arange(24).reshape(2, 3, 4),
     "Array([[[ 0,  1,  2,  3],\n        [ 4,  5,  6,  7],\n        [ 8,  9, 10, 11]],\n\n"
     "       [[12, 13, 14, 15],\n        [16, 17, 18, 19],\n        [20, 21, 22, 23]]],"
     " dtype=int64)"),
    (lambda: jnp.array(3.5), "Array(3.5, dtype=float64)"),
    (lambda: jnp.array(7, dtype=jnp.int32), "Array(7, dtype=int32)"),
    (lambda: jnp.array(True), "Array(True, dtype=bool)"),
    (lambda: jnp.array([True, False]), "Array([ True, False], dtype=bool)"),
    (lambda: jnp.arange(30, dtype=jnp.int32),
     "Array([ 0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14, 15, 16,\n"
     "       17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29], dtype=int32)"),
    (lambda: jnp.linspace(0.0, 1.0, 12),
     "Array([0.        , 0.09090909, 0.18181818, 0.27272727, 0.36363636,\n"
     "       0.45454545, 0.54545455, 0.63636364, 0.72727273, 0.81818182,\n"
     "       0.90909091, 1.        ], dtype=float64)"),
    (lambda: jnp.array([[1 + 2j, 3 - 1j]], dtype=jnp.complex64),
     "Array([[1.+2.j, 3.-1.j]], dtype=complex64)"),
]


@pytest.mark.parametrize("make,expect", REPRS, ids=[f"repr{i}" for i in range(len(REPRS))])
def test_repr_matches_jax(make, expect):
    assert repr(make()) == expect


def test_repr_of_empty_array_shows_shape_like_jax():
    assert repr(jnp.zeros((0, 3))) == "Array([], shape=(0, 3), dtype=float64)"


def test_repr_of_result_of_transform():
    assert repr(jax.grad(lambda x: x * x)(3.0)) == "Array(6., dtype=float64)"
    assert repr(_jit_add(np.ones(2, np.float32), np.ones(2, np.float32))) == \
        "Array([2., 2.], dtype=float32)"


def test_printoptions_context_manager_affects_repr():
    x = jnp.array([1 / 3, 2 / 3])
    with jnp.printoptions(precision=2):
        assert repr(x) == "Array([0.33, 0.67], dtype=float64)"
        assert str(x) == "[0.33 0.67]"
    assert repr(x) == "Array([0.33333333, 0.66666667], dtype=float64)"


# ---------------------------------------------------------------------------------------------
# Indexing


_A3 = np.arange(24.0).reshape(2, 3, 4)


@pytest.mark.parametrize("make,index", [
    (lambda: jnp.arange(3), 5),
    (lambda: jnp.arange(3), 3),
    (lambda: jnp.arange(3), -4),
    (lambda: jnp.zeros((2, 3)), (0, 7)),
    (lambda: jnp.zeros((2, 3)), (7, 0)),
    (lambda: jnp.zeros((2, 3)), (slice(None), 3)),
    (lambda: jnp.zeros((2, 3)), (Ellipsis, -4)),
], ids=["1d_5", "1d_3", "1d_neg4", "2d_0_7", "2d_7_0", "2d_slice_3", "2d_ellipsis_neg4"])
def test_static_out_of_range_int_index_raises_indexerror(make, index):
    with pytest.raises(IndexError):
        make()[index]


def test_traced_out_of_range_index_clamps_like_jax():
    x = jnp.arange(3)
    assert int(_jit_index(x, 5)) == 2
    assert int(_jit_index(x, -5)) == 0
    assert int(_jit_index(x, 1)) == 1
    assert int(_jit_index(x, -1)) == 2
    assert type(_jit_index(x, 5)) is Array


@given(data=st.data())
def test_basic_indexing_matches_numpy(data):
    a = data.draw(ndarrays(min_dims=0, max_dims=3, min_side=1))
    index = data.draw(hnp.basic_indices(a.shape, allow_newaxis=True, allow_ellipsis=True))
    out = jnp.asarray(a)[index]
    expect = a[index]
    assert type(out) is Array
    assert out.shape == expect.shape and out.dtype == a.dtype
    np.testing.assert_array_equal(np.asarray(out), expect)


@given(data=st.data())
def test_integer_array_indexing_matches_numpy(data):
    a = data.draw(ndarrays(min_dims=1, max_dims=3, min_side=1))
    index = data.draw(hnp.integer_array_indices(
        a.shape, result_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)))
    expect = a[index]
    for idx in (index, tuple(jnp.asarray(i) for i in index)):
        out = jnp.asarray(a)[idx]
        assert type(out) is Array
        assert out.shape == expect.shape and out.dtype == a.dtype
        np.testing.assert_array_equal(np.asarray(out), expect)


@given(data=st.data())
def test_boolean_mask_indexing_matches_numpy(data):
    a = data.draw(ndarrays(min_dims=1, max_dims=3))
    k = data.draw(st.integers(1, a.ndim))
    mask = data.draw(hnp.arrays(np.bool_, a.shape[:k]))
    expect = a[mask]
    for m in (mask, jnp.asarray(mask)):
        out = jnp.asarray(a)[m]
        assert type(out) is Array
        assert out.shape == expect.shape and out.dtype == a.dtype
        np.testing.assert_array_equal(np.asarray(out), expect)


MIXED_INDICES = {
    "int_slice_list": (0, slice(None), [0, 2]),
    "separated_advanced": ([0, 1], slice(None), [1, 3]),
    "adjacent_advanced": (slice(None), [0, 2], [1, 3]),
    "ellipsis_list": (Ellipsis, [1, 0]),
    "none_list_ellipsis": (None, [1, 0], Ellipsis),
    "mask_first": (np.array([True, False]),),
    "mask_then_int": (np.array([False, True]), 1),
    "slice_mask": (slice(None), np.array([True, False, True])),
    "reverse": (slice(None, None, -1),),
    "step_none_neg": (slice(1, None, 2), None, -1),
    "broadcast_index_arrays": ([[0], [1]], [[0, 1, 2]]),
    "negative_index_array": (np.array([-1, -2]),),
    "zero_d_array_int": (jnp.array(1),),
    "zero_d_array_pair": (jnp.array(1), jnp.array(-1)),
    "int_array_and_array": (slice(None), jnp.array([2, 0]), np.array([3, 3])),
    "empty_int_array": (np.array([], dtype=np.int64),),
}


@pytest.mark.parametrize("name", sorted(MIXED_INDICES))
def test_mixed_indexing_matches_numpy(name):
    index = MIXED_INDICES[name]
    np_index = tuple(np.asarray(i) if isinstance(i, Array) else i for i in index)
    expect = _A3[np_index]
    out = jnp.asarray(_A3)[index]
    assert type(out) is Array
    assert out.shape == expect.shape
    np.testing.assert_array_equal(np.asarray(out), expect)


def test_static_indexing_under_jit_matches_numpy():
    out = _jit_basic_slices(_A3)
    assert type(out) is Array
    np.testing.assert_array_equal(np.asarray(out), _A3[1:, ::-1, None])


# ---------------------------------------------------------------------------------------------
# Devices


def test_devices_default_cpu():
    devs = jax.devices()
    assert isinstance(devs, list) and len(devs) >= 1
    d = devs[0]
    assert d.platform == "cpu"
    assert d.id == 0
    assert repr(d) == "CpuDevice(id=0)"
    assert jax.local_devices()[0] == d
    assert jax.default_backend() == "cpu"
    assert jax.devices("cpu")[0] == d
    assert jax.devices() == jax.devices()   # stable objects
    assert hash(d) == hash(jax.devices()[0])


def test_array_device_and_devices():
    d = jax.devices()[0]
    for x in (jnp.ones(3), jax.device_put(np.ones(3)), jax.device_put(np.ones(3), d),
              _jit_sin(np.ones(2)), jax.grad(lambda v: v * v)(1.0)):
        assert x.device == d
        assert x.devices() == {d}


def test_device_put_tree_returns_arrays_with_same_structure():
    d = jax.devices()[0]
    tree = {"a": np.ones(2), "b": [1.0, np.int32(3), jnp.arange(2)], "c": (np.zeros((1, 2)),)}
    for out in (jax.device_put(tree), jax.device_put(tree, d)):
        assert tree_structure(out) == tree_structure(tree)
        for leaf, src in zip(tree_leaves(out), tree_leaves(tree)):
            assert type(leaf) is Array and leaf.device == d
            np.testing.assert_array_equal(np.asarray(leaf), np.asarray(src))


def test_device_get_returns_numpy_arrays():
    tree = {"w": jnp.ones((2, 2), dtype=np.float32), "b": [jnp.arange(3), jnp.array(2.0)]}
    out = jax.device_get(tree)
    assert tree_structure(out) == tree_structure(tree)
    for leaf, src in zip(tree_leaves(out), tree_leaves(tree)):
        assert isinstance(leaf, np.ndarray) and not isinstance(leaf, Array)
        assert leaf.dtype == src.dtype and leaf.shape == src.shape
        np.testing.assert_array_equal(leaf, np.asarray(src))
    single = jax.device_get(jnp.arange(3))
    assert isinstance(single, np.ndarray)
    np.testing.assert_array_equal(single, [0, 1, 2])


def test_block_until_ready():
    x = jnp.arange(3.0) * 2
    assert x.block_until_ready() is x
    tree = {"a": x, "b": [_jit_sin(np.ones(2))]}
    out = jax.block_until_ready(tree)
    assert tree_structure(out) == tree_structure(tree)
    assert all(o is i for o, i in zip(tree_leaves(out), tree_leaves(tree)))


def _cuda_usable():
    try:
        from numba import cuda
        return bool(cuda.is_available())
    except Exception:
        return False


def test_cuda_devices_without_gpu_raise_runtime_error_naming_what_is_missing():
    if _cuda_usable():
        devs = jax.devices("cuda")
        assert devs and all(d.platform == "gpu" for d in devs)
        return
    for name in ("cuda", "gpu"):
        with pytest.raises(RuntimeError) as info:
            jax.devices(name)
        msg = str(info.value).lower()
        assert "cuda" in msg or "gpu" in msg
        assert any(w in msg for w in ("driver", "numba", "not installed", "no gpu", "no cuda",
                                      "cannot be found", "not found", "missing")), msg
    # CPU use is unaffected afterwards
    assert jax.devices()[0].platform == "cpu"
    assert float(jnp.sum(jnp.ones(2))) == 2.0


@pytest.fixture
def two_cpus(monkeypatch):
    monkeypatch.setattr(functrans.core.config, "num_cpu_devices", 2)
    devs = jax.devices()
    assert len(devs) == 2
    return devs


def test_two_cpu_devices_are_listed(two_cpus):
    d0, d1 = two_cpus
    assert (d0.platform, d0.id) == ("cpu", 0)
    assert (d1.platform, d1.id) == ("cpu", 1)
    assert d0 != d1
    assert repr(d1) == "CpuDevice(id=1)"
    assert d0 == jax.devices()[0] and d1 == jax.devices()[1]
    assert len(jax.local_devices()) == 2


def test_device_put_commits_to_device(two_cpus):
    d0, d1 = two_cpus
    y = jax.device_put(np.arange(3.0), d1)
    assert type(y) is Array and y.device == d1 and y.devices() == {d1}
    back = jax.device_put(y, d0)
    assert back.device == d0 and y.device == d1
    np.testing.assert_array_equal(np.asarray(back), [0.0, 1.0, 2.0])
    tree = jax.device_put({"a": np.ones(2), "b": [2.0]}, d1)
    assert all(leaf.device == d1 for leaf in tree_leaves(tree))


COMPUTATIONS = {
    "add_scalar": lambda y: y + 1.0,
    "sin": lambda y: jnp.sin(y),
    "sum": lambda y: y.sum(),
    "index": lambda y: y[0],
    "fancy_index": lambda y: y[np.array([2, 0])],
    "reshape": lambda y: y.reshape(3, 1),
    "jit": lambda y: _jit_sin(y),
    "jit_add": lambda y: _jit_add(y, y),
    "grad": lambda y: jax.grad(lambda v: jnp.sum(v * v))(y),
    "vmap": lambda y: jax.vmap(lambda r: r * 2.0)(y),
    "cond": lambda y: lax.cond(True, lambda v: v * 2.0, lambda v: v, y),
    "cond_traced_pred": lambda y: lax.cond(y[0] < 1, lambda v: v * 2.0, lambda v: v, y),
    "switch": lambda y: lax.switch(1, [lambda v: v, lambda v: v * 2.0], y),
    "while_loop": lambda y: lax.while_loop(lambda c: c[0] < 2, lambda c: (c[0] + 1, c[1] * 2.0),
                                           (0, y))[1],
    "fori_loop": lambda y: lax.fori_loop(0, 2, lambda i, c: c * 2.0, y),
    "scan": lambda y: lax.scan(lambda c, r: (c + r, r * 2.0), 0.0, y),
    "map": lambda y: lax.map(lambda r: r * 2.0, y),
    "checkpoint": lambda y: jax.checkpoint(jnp.sin)(y),
    "jvp": lambda y: jax.jvp(jnp.sin, (y,), (y,)),
    "vjp_pullback": lambda y: jax.vjp(jnp.sin, y)[1](np.ones(3)),
    "jacfwd": lambda y: jax.jacfwd(jnp.sin)(y),
    "softmax": lambda y: jax.nn.softmax(y),
    "zeros_like": lambda y: jnp.zeros_like(y),
    "iter_rows": lambda y: list(y),
    "copy": lambda y: y.copy(),
    "astype": lambda y: y.astype(np.float32),
    "mask": lambda y: y[y > 0],
    "at_set": lambda y: y.at[0].set(5.0),
    "with_uncommitted": lambda y: y + jnp.ones(3),
    "uncommitted_first": lambda y: jnp.ones(3) * y,
    "with_ndarray": lambda y: np.ones(3) + y,
    "jit_with_uncommitted": lambda y: _jit_add(jnp.ones(3), y),
}


@pytest.mark.parametrize("name", sorted(COMPUTATIONS))
def test_computation_follows_data(two_cpus, name):
    d1 = two_cpus[1]
    y = jax.device_put(np.arange(3.0), d1)
    out = COMPUTATIONS[name](y)
    ref = COMPUTATIONS[name](jnp.arange(3.0))
    assert tree_structure(out) == tree_structure(ref)
    for leaf, expect in zip(tree_leaves(out), tree_leaves(ref)):
        assert type(leaf) is Array
        assert leaf.device == d1, f"{name}: result on {leaf.device}"
        np.testing.assert_allclose(np.asarray(leaf), np.asarray(expect))


def test_random_follows_committed_key(two_cpus):
    d1 = two_cpus[1]
    key = jax.device_put(random.PRNGKey(0), d1)
    for out in (random.normal(key, (2,)), random.uniform(key), *random.split(key),
                random.permutation(key, 4), random.bernoulli(key, 0.5, (2,))):
        assert type(out) is Array and out.device == d1


def test_committed_to_device0_stays_there_with_uncommitted(two_cpus):
    d0 = two_cpus[0]
    x = jax.device_put(np.ones(3), d0)
    assert (x + jnp.arange(3.0)).device == d0
    assert _jit_add(jnp.arange(3.0), x).device == d0


@pytest.mark.parametrize("how", ["eager_add", "jit_add", "concatenate", "stack", "where",
                                 "dot", "cond_operands", "vmap", "grad", "at_set",
                                 "index_array"])
def test_mixing_committed_devices_raises_valueerror_naming_both(two_cpus, how):
    d0, d1 = two_cpus
    a = jax.device_put(np.ones(3), d0)
    b = jax.device_put(np.arange(3.0), d1)
    f = {
        "eager_add": lambda: a + b,
        "jit_add": lambda: _jit_add(a, b),
        "concatenate": lambda: jnp.concatenate([a, b]),
        "stack": lambda: jnp.stack([b, a]),
        "where": lambda: jnp.where(a > 0, a, b),
        "dot": lambda: jnp.dot(a, b),
        "cond_operands": lambda: lax.cond(True, jnp.add, jnp.subtract, a, b),
        "vmap": lambda: jax.vmap(jnp.add)(a, b),
        "grad": lambda: jax.grad(lambda u, v: jnp.sum(u * v))(a, b),
        "at_set": lambda: a.at[0].set(b[0]),
        "index_array": lambda: a[b.astype(np.int32)],
    }[how]
    with pytest.raises(ValueError) as info:
        f()
    msg = str(info.value)
    assert "id=0" in msg and "id=1" in msg, msg


def test_env_var_sets_number_of_cpu_devices():
    code = ("import functrans as jax, numpy as np; d = jax.devices(); "
            "y = jax.device_put(np.ones(2), d[2]); "
            "print(len(d), [x.id for x in d], (y * 2).device)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(jax.__file__)))  # this checkout
    env = dict(os.environ, FUNCTRANS_NUM_CPU_DEVICES="3",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3 [0, 1, 2] CpuDevice(id=2)"


# ---------------------------------------------------------------------------------------------
# Inputs accepted everywhere


class ArrayLike:
    """Not an array, but convertible through __array__ (as NumPy's protocol)."""

    def __init__(self, value):
        self.value = np.asarray(value)

    def __array__(self, dtype=None, copy=None):
        return np.array(self.value, dtype=dtype, copy=True)


INPUT_KINDS = {
    "array": lambda v: jnp.asarray(v),
    "ndarray": lambda v: np.asarray(v),
    "numpy_scalar": lambda v: np.float64(v),
    "python_scalar": lambda v: float(v),
    "dunder_array": lambda v: ArrayLike(v),
}

CONSUMERS = {
    "jnp_sin": lambda x: jnp.sin(x),
    "jnp_add": lambda x: jnp.add(x, 1.0),
    "jnp_where": lambda x: jnp.where(True, x, 0.0),
    "lax_mul": lambda x: lax.mul(x, x),
    "jit": lambda x: _jit_sin(x),
    "grad": lambda x: jax.grad(lambda v: jnp.sin(v) * 2.0)(x),
    "value_and_grad": lambda x: jax.value_and_grad(lambda v: v * v)(x)[1],
    "jvp": lambda x: jax.jvp(jnp.sin, (x,), (x,))[1],
    "vjp": lambda x: jax.vjp(jnp.sin, x)[1](x)[0],
    "cond": lambda x: lax.cond(True, jnp.sin, jnp.cos, x),
    "device_put": lambda x: jax.device_put(x),
    "nn_relu": lambda x: jax.nn.relu(x),
}


def _reference(consumer, v):
    return np.asarray(CONSUMERS[consumer](jnp.asarray(v)))


@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
@pytest.mark.parametrize("kind", sorted(INPUT_KINDS))
def test_inputs_accepted_everywhere(kind, consumer):
    v = 0.75
    out = CONSUMERS[consumer](INPUT_KINDS[kind](v))
    assert type(out) is Array
    np.testing.assert_allclose(np.asarray(out), _reference(consumer, v))


@pytest.mark.parametrize("kind", ["array", "ndarray", "dunder_array"])
def test_vmap_accepts_array_like_inputs(kind):
    v = np.array([0.0, 0.5, 1.0])
    x = {"array": jnp.asarray, "ndarray": np.asarray, "dunder_array": ArrayLike}[kind](v)
    out = jax.vmap(jnp.sin)(x)
    assert type(out) is Array
    np.testing.assert_allclose(np.asarray(out), np.sin(v))


def test_random_accepts_ndarray_key_and_array_like_shapes():
    key = np.asarray(random.PRNGKey(1))
    out = random.uniform(key, (2,), minval=np.float64(0.0), maxval=ArrayLike(2.0))
    assert type(out) is Array and out.shape == (2,)
    assert np.all((np.asarray(out) >= 0.0) & (np.asarray(out) < 2.0))


# ---------------------------------------------------------------------------------------------
# Bad inputs


BAD_CALLS = {
    "jit_position": lambda: jax.jit(lambda x, y, bad_arg: x)(1.0, 2.0, object()),
    # grad, as JAX's, only looks at the arguments it differentiates (argnums)
    "grad_position": lambda: jax.grad(lambda x, y, bad_arg: x, argnums=(0, 2))(1.0, 2.0,
                                                                               object()),
    "vmap_position": lambda: jax.vmap(lambda x, y, bad_arg: x)(np.ones(2), np.ones(2),
                                                                object()),
    "jvp_position": lambda: jax.jvp(lambda x, y, bad_arg: x, (1.0, 2.0, object()),
                                    (1.0, 1.0, 1.0)),
    "vjp_position": lambda: jax.vjp(lambda x, y, bad_arg: x, 1.0, 2.0, object()),
    "jnp_sin": lambda: jnp.sin(object()),
    "jnp_add_second": lambda: jnp.add(1.0, object()),
    "jnp_asarray": lambda: jnp.asarray(object()),
    "lax_add": lambda: lax.add(1.0, object()),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_non_array_input_raises_typeerror_naming_type_and_position(name):
    with pytest.raises(TypeError) as info:
        BAD_CALLS[name]()
    msg = str(info.value)
    assert "object" in msg, msg
    if name.endswith("_position"):
        assert re.search(r"bad_arg|\[2\]|argument 2\b|position 2\b|\b2\b", msg), msg
    if name == "jnp_add_second":
        assert re.search(r"\[1\]|argument 1\b|position 1\b|\b1\b|x2|second", msg), msg


@pytest.mark.parametrize("transform", ["jit", "grad", "vmap"])
def test_non_array_leaf_in_pytree_raises_typeerror_naming_path(transform):
    params = {"weights": np.ones(2), "bad_leaf": object()}
    f = lambda p: jnp.sum(p["weights"])  # noqa: E731
    t = {"jit": jax.jit, "grad": jax.grad, "vmap": jax.vmap}[transform]
    with pytest.raises(TypeError) as info:
        t(f)(params)
    msg = str(info.value)
    assert "object" in msg and "bad_leaf" in msg, msg
