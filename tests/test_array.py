"""functrans.Array (issue 12): the class, what returns it, immutability and aliasing.

Written as a review of the new array model against the issue's spec and JAX's behaviour.
The interop half (Python/NumPy protocols, repr, indexing, devices, bad inputs) lives in
test_array_interop.py.

Cost: jitted functions used by several examples are built once at module level; arrays are tiny.
"""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import functrans as jax
import functrans.numpy as jnp
import functrans.scipy.special
from functrans import lax, nn, random
from functrans.tree_util import tree_leaves, tree_map, tree_structure

Array = jax.Array

# Small NumPy operands (module level, never mutated: the aliasing tests make their own).
X = np.arange(6.0).reshape(2, 3)
V = np.array([-1.0, -0.25, 0.5, 2.0])
IV = np.array([3, 0, 2, 1], dtype=np.int32)


def assert_all_arrays(tree, min_leaves=1):
    """Every leaf of tree is exactly a functrans.Array (not an ndarray, scalar or subclass)."""
    leaves = tree_leaves(tree)
    assert len(leaves) >= min_leaves, f"expected at least {min_leaves} leaves, got {tree!r}"
    for leaf in leaves:
        assert type(leaf) is Array, f"leaf of type {type(leaf).__name__}: {leaf!r}"


# Shared jitted functions (one trace/compile each for the whole module).
_jit_identity = jax.jit(lambda x: x)
_jit_poly = jax.jit(lambda x: x * 2.0 + 1.0)
_jit_pair = jax.jit(lambda x: (x, x.T))
_jit_const_float = jax.jit(lambda x: 1.0)
_jit_const_np32 = jax.jit(lambda x: np.float32(2.5))
_jit_with_int = jax.jit(lambda x: (x, 3))
_jit_control = jax.jit(lambda v: (
    lax.cond(v[0] > 0, lambda y: y + 1.0, lambda y: y - 1.0, v),
    lax.switch(1, [lambda y: y, lambda y: y * 2.0], v),
    lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0), (0, v)),
    lax.fori_loop(0, 3, lambda i, c: c + i, v),
    lax.scan(lambda c, r: (c + r, c * r), 0.0, v),
    lax.map(lambda r: r * 3.0, v),
))


# ---------------------------------------------------------------------------------------------
# The class


def test_array_is_not_an_ndarray_subclass():
    assert not issubclass(Array, np.ndarray)
    assert not isinstance(np.zeros(3), Array)
    assert not isinstance(np.float64(1.0), Array)
    assert not isinstance(1.0, Array)
    x = jnp.zeros(3)
    assert isinstance(x, Array)
    assert not isinstance(x, np.ndarray)


def test_jnp_ndarray_is_array():
    assert jnp.ndarray is Array
    assert isinstance(jnp.arange(3), jnp.ndarray)


@pytest.mark.parametrize("transform", [
    "jit", "grad", "vmap", "jvp", "vjp", "linearize", "jacfwd", "jacrev", "make_jaxpr",
    "checkpoint", "scan_body", "cond_branch",
])
def test_tracers_are_instances_of_array(transform):
    seen = []

    def f(x):
        seen.append((isinstance(x, Array), isinstance(x, jnp.ndarray), isinstance(x, np.ndarray)))
        return jnp.sum(x * x)

    v = np.array([1.0, 2.0])
    if transform == "jit":
        jax.jit(f)(v)
    elif transform == "grad":
        jax.grad(f)(v)
    elif transform == "vmap":
        jax.vmap(f)(np.ones((2, 2)))
    elif transform == "jvp":
        jax.jvp(f, (v,), (v,))
    elif transform == "vjp":
        jax.vjp(f, v)
    elif transform == "linearize":
        jax.linearize(f, v)
    elif transform == "jacfwd":
        jax.jacfwd(f)(v)
    elif transform == "jacrev":
        jax.jacrev(f)(v)
    elif transform == "make_jaxpr":
        jax.make_jaxpr(f)(v)
    elif transform == "checkpoint":
        jax.grad(jax.checkpoint(f))(v)
    elif transform == "scan_body":
        lax.scan(lambda c, r: (c + f(r), None), 0.0, np.ones((2, 2)))
    elif transform == "cond_branch":
        lax.cond(True, f, lambda x: jnp.sum(x), v)
    assert seen, "the function was never called"
    assert all(s == (True, True, False) for s in seen), seen


# ---------------------------------------------------------------------------------------------
# Every public function returns Array


def _key():
    return random.PRNGKey(0)


@jax.custom_jvp
def _cj_square(x):
    return x * x


@_cj_square.defjvp
def _cj_square_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return x * x, 2.0 * x * t


@jax.custom_vjp
def _cv_cube(x):
    return x * x * x


def _cv_cube_fwd(x):
    return x * x * x, x


def _cv_cube_bwd(x, ct):
    return (3.0 * x * x * ct,)


_cv_cube.defvjp(_cv_cube_fwd, _cv_cube_bwd)


def _sumsq(x):
    return jnp.sum(x * x)


RETURNS_ARRAY = {
    # creation
    "zeros": lambda: jnp.zeros((2, 3)),
    "ones": lambda: jnp.ones(3, dtype=np.int32),
    "full": lambda: jnp.full((2,), 3.0),
    "empty": lambda: jnp.empty((2,)),
    "arange_int": lambda: jnp.arange(5),
    "arange_float": lambda: jnp.arange(0.0, 1.0, 0.25),
    "linspace": lambda: jnp.linspace(0.0, 1.0, 5),
    "eye": lambda: jnp.eye(3),
    "identity": lambda: jnp.identity(2),
    "tri": lambda: jnp.tri(3),
    "array_list": lambda: jnp.array([1, 2, 3]),
    "array_ndarray": lambda: jnp.array(X),
    "array_scalar": lambda: jnp.array(2.5),
    "asarray_ndarray": lambda: jnp.asarray(X),
    "asarray_pyscalar": lambda: jnp.asarray(3),
    "asarray_npscalar": lambda: jnp.asarray(np.float32(3)),
    "asarray_array": lambda: jnp.asarray(jnp.ones(2)),
    "zeros_like": lambda: jnp.zeros_like(X),
    "ones_like": lambda: jnp.ones_like(V),
    "full_like": lambda: jnp.full_like(X, 2),
    "empty_like": lambda: jnp.empty_like(X),
    "copy": lambda: jnp.copy(X),
    "astype": lambda: jnp.astype(X, np.float32),
    # ufuncs
    "sin": lambda: jnp.sin(V),
    "sin_pyscalar": lambda: jnp.sin(1.0),
    "exp_npscalar": lambda: jnp.exp(np.float32(1.0)),
    "add": lambda: jnp.add(V, 1),
    "add_pyscalars": lambda: jnp.add(1, 2),
    "multiply_broadcast": lambda: jnp.multiply(X, np.array([1.0, 2.0, 3.0])),
    "maximum": lambda: jnp.maximum(V, 0.0),
    "where": lambda: jnp.where(V > 0, V, 0.0),
    "clip": lambda: jnp.clip(V, -0.5, 0.5),
    "round": lambda: jnp.round(V, 1),
    "isnan": lambda: jnp.isnan(V),
    "equal": lambda: jnp.equal(V, V),
    "logical_and": lambda: jnp.logical_and(V > 0, V < 1),
    "power": lambda: jnp.power(V, 2),
    "floor_divide": lambda: jnp.floor_divide(IV, 2),
    "arctan2": lambda: jnp.arctan2(V, 1.0),
    "bitwise_and": lambda: jnp.bitwise_and(IV, 1),
    "abs": lambda: jnp.abs(V),
    # reductions
    "sum": lambda: jnp.sum(X),
    "sum_axis": lambda: jnp.sum(X, axis=0),
    "sum_pyscalar": lambda: jnp.sum(3.0),
    "mean": lambda: jnp.mean(X),
    "max_axis": lambda: jnp.max(X, axis=1),
    "min": lambda: jnp.min(IV),
    "argmax": lambda: jnp.argmax(X),
    "argmin_axis": lambda: jnp.argmin(X, axis=0),
    "cumsum": lambda: jnp.cumsum(X, axis=1),
    "cumprod": lambda: jnp.cumprod(V),
    "std": lambda: jnp.std(X),
    "var": lambda: jnp.var(X, axis=0),
    "prod": lambda: jnp.prod(V),
    "all": lambda: jnp.all(X > 0),
    "any": lambda: jnp.any(X > 0),
    "count_nonzero": lambda: jnp.count_nonzero(X),
    "allclose": lambda: jnp.allclose(X, X),
    "isclose": lambda: jnp.isclose(X, X),
    "array_equal": lambda: jnp.array_equal(X, X),
    "array_equal_shape_mismatch": lambda: jnp.array_equal(X, V),
    # shape ops
    "reshape": lambda: jnp.reshape(X, (3, 2)),
    "transpose": lambda: jnp.transpose(X),
    "concatenate": lambda: jnp.concatenate([X, X]),
    "stack": lambda: jnp.stack([V, V]),
    "split": lambda: jnp.split(X, 3, axis=1),
    "array_split": lambda: jnp.array_split(V, 3),
    "squeeze": lambda: jnp.squeeze(X[None]),
    "expand_dims": lambda: jnp.expand_dims(X, 0),
    "broadcast_to": lambda: jnp.broadcast_to(V, (2, 4)),
    "broadcast_arrays": lambda: jnp.broadcast_arrays(V, 1.0),
    "flip": lambda: jnp.flip(X),
    "tile": lambda: jnp.tile(V, 2),
    "repeat": lambda: jnp.repeat(V, 2),
    "pad": lambda: jnp.pad(V, 1),
    "moveaxis": lambda: jnp.moveaxis(X, 0, 1),
    "swapaxes": lambda: jnp.swapaxes(X, 0, 1),
    "ravel": lambda: jnp.ravel(X),
    "atleast_2d": lambda: jnp.atleast_2d(V),
    "hstack": lambda: jnp.hstack([V, V]),
    "vstack": lambda: jnp.vstack([V, V]),
    "roll": lambda: jnp.roll(V, 1),
    # indexing and sorting
    "take": lambda: jnp.take(V, np.array([0, 2])),
    "take_along_axis": lambda: jnp.take_along_axis(X, np.array([[0], [1]]), axis=1),
    "nonzero": lambda: jnp.nonzero(V),
    "sort": lambda: jnp.sort(V),
    "argsort": lambda: jnp.argsort(V),
    "getitem_int": lambda: jnp.asarray(X)[0],
    "getitem_scalar": lambda: jnp.asarray(X)[1, 2],
    "getitem_slice": lambda: jnp.asarray(X)[1:],
    "getitem_newaxis": lambda: jnp.asarray(X)[None],
    "getitem_ellipsis": lambda: jnp.asarray(X)[..., 0],
    "getitem_intarray": lambda: jnp.asarray(X)[np.array([1, 0])],
    "getitem_mask": lambda: jnp.asarray(X)[X > 2],
    "at_set": lambda: jnp.asarray(X).at[0].set(1.0),
    "at_add": lambda: jnp.asarray(X).at[0, 1].add(2.0),
    "at_get": lambda: jnp.asarray(X).at[0].get(),
    # linear algebra
    "dot": lambda: jnp.dot(X, X.T),
    "dot_vectors": lambda: jnp.dot(V, V),
    "matmul": lambda: jnp.matmul(X, X.T),
    "matmul_operator": lambda: jnp.asarray(X) @ X.T,
    "einsum": lambda: jnp.einsum("ij,kj->ik", X, X),
    "einsum_trace": lambda: jnp.einsum("ii", np.eye(2)),
    "outer": lambda: jnp.outer(V, V),
    "inner": lambda: jnp.inner(V, V),
    "vdot": lambda: jnp.vdot(V, V),
    "tensordot": lambda: jnp.tensordot(X, X, axes=([1], [1])),
    "trace": lambda: jnp.trace(X),
    "diagonal": lambda: jnp.diagonal(X),
    "linalg_norm": lambda: jnp.linalg.norm(X),
    "linalg_norm_axis": lambda: jnp.linalg.norm(X, axis=0),
    "scipy_logsumexp": lambda: functrans.scipy.special.logsumexp(V),
    # lax
    "lax_add": lambda: lax.add(V, V),
    "lax_exp": lambda: lax.exp(V),
    "lax_sin": lambda: lax.sin(V),
    "lax_integer_pow": lambda: lax.integer_pow(V, 3),
    "lax_dot_general": lambda: lax.dot_general(X, X, (((1,), (1,)), ((), ()))),
    "lax_reduce_sum": lambda: lax.reduce_sum(X, (0,)),
    "lax_reduce_max": lambda: lax.reduce_max(X, (0, 1)),
    "lax_broadcast_in_dim": lambda: lax.broadcast_in_dim(V, (2, 4), (1,)),
    "lax_reshape": lambda: lax.reshape(X, (3, 2)),
    "lax_transpose": lambda: lax.transpose(X, (1, 0)),
    "lax_rev": lambda: lax.rev(V, (0,)),
    "lax_squeeze": lambda: lax.squeeze(X[None], (0,)),
    "lax_expand_dims": lambda: lax.expand_dims(V, (0,)),
    "lax_slice": lambda: lax.slice(X, (0, 0), (1, 2)),
    "lax_dynamic_slice": lambda: lax.dynamic_slice(X, (0, 1), (1, 2)),
    "lax_dynamic_update_slice": lambda: lax.dynamic_update_slice(X, np.zeros((1, 2)), (1, 1)),
    "lax_concatenate": lambda: lax.concatenate([V, V], 0),
    "lax_pad": lambda: lax.pad(V, 0.0, [(1, 1, 0)]),
    "lax_select": lambda: lax.select(V > 0, V, -V),
    "lax_convert_element_type": lambda: lax.convert_element_type(V, np.float32),
    "lax_iota": lambda: lax.iota(np.int32, 4),
    "lax_full": lambda: lax.full((2,), 1.0, np.float64),
    "lax_full_0d_int": lambda: lax.full((), 3, np.int32),
    "lax_full_like": lambda: lax.full_like(V, 2.0),
    "lax_zeros_like": lambda: lax.zeros_like(V),
    "lax_broadcasted_iota": lambda: lax.broadcasted_iota(np.int32, (2, 3), 1),
    # lax ops that are no-ops for these arguments still return Arrays
    "lax_slice_full": lambda: lax.slice(V, (0,), (4,)),
    "lax_reshape_same": lambda: lax.reshape(V, (4,)),
    "lax_transpose_identity": lambda: lax.transpose(X, (0, 1)),
    "lax_broadcast_in_dim_same": lambda: lax.broadcast_in_dim(V, (4,), (0,)),
    "lax_concatenate_one": lambda: lax.concatenate([V], 0),
    "lax_expand_dims_none": lambda: lax.expand_dims(V, ()),
    "lax_squeeze_none": lambda: lax.squeeze(V, ()),
    "lax_convert_same_dtype": lambda: lax.convert_element_type(V, np.float64),
    "lax_reduce_sum_no_axes": lambda: lax.reduce_sum(V, ()),
    "lax_rev_no_axes": lambda: lax.rev(V, ()),
    "lax_stop_gradient": lambda: lax.stop_gradient(V),
    "lax_sort": lambda: lax.sort(V),
    "lax_argmax": lambda: lax.argmax(V, 0, np.int32),
    "lax_cumsum": lambda: lax.cumsum(V),
    # control flow, eager
    "cond": lambda: lax.cond(True, lambda y: y + 1.0, lambda y: y - 1.0, V),
    "cond_array_pred": lambda: lax.cond(jnp.asarray(V)[0] > 0, lambda y: y, lambda y: -y, V),
    "cond_pytree": lambda: lax.cond(False, lambda a, b: (a, b), lambda a, b: (a * 2.0, b + a), 1.0, V),
    "switch": lambda: lax.switch(1, [lambda y: y, lambda y: y * 2.0], V),
    "while_loop": lambda: lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 2.0),
                                         (0, 1.0)),
    "fori_loop": lambda: lax.fori_loop(0, 3, lambda i, c: c + i, 0.0),
    "fori_loop_array": lambda: lax.fori_loop(0, 2, lambda i, c: c * 2.0, V),
    "scan": lambda: lax.scan(lambda c, r: (c + r, c * r), 0.0, V),
    "scan_no_xs": lambda: lax.scan(lambda c, _: (c + 1, c), 0, None, length=3),
    "map": lambda: lax.map(lambda r: r * 3.0, V),
    "jit_control_flow": lambda: _jit_control(V),
    # nn
    "relu": lambda: nn.relu(V),
    "relu_pyscalar": lambda: nn.relu(2.0),
    "relu_npscalar": lambda: nn.relu(np.float32(-1.0)),
    "relu6": lambda: nn.relu6(V),
    "sigmoid": lambda: nn.sigmoid(V),
    "softplus": lambda: nn.softplus(V),
    "log_sigmoid": lambda: nn.log_sigmoid(V),
    "gelu": lambda: nn.gelu(V),
    "silu": lambda: nn.silu(V),
    "elu": lambda: nn.elu(V),
    "leaky_relu": lambda: nn.leaky_relu(V),
    "nn_tanh": lambda: nn.tanh(V),
    "softmax": lambda: nn.softmax(X),
    "log_softmax": lambda: nn.log_softmax(X, axis=0),
    "logsumexp": lambda: nn.logsumexp(X),
    "one_hot": lambda: nn.one_hot(np.array([0, 2]), 3),
    # random
    "PRNGKey": lambda: random.PRNGKey(0),
    "key": lambda: random.key(0),
    "split": lambda: random.split(_key()),
    "split_3": lambda: random.split(_key(), 3),
    "fold_in": lambda: random.fold_in(_key(), 1),
    "normal": lambda: random.normal(_key(), (2,)),
    "normal_scalar": lambda: random.normal(_key()),
    "uniform": lambda: random.uniform(_key(), (3,)),
    "bernoulli": lambda: random.bernoulli(_key(), 0.5, (3,)),
    "randint": lambda: random.randint(_key(), (3,), 0, 5),
    "permutation_int": lambda: random.permutation(_key(), 5),
    "permutation_array": lambda: random.permutation(_key(), V),
    "choice": lambda: random.choice(_key(), 5, (2,)),
    "choice_no_replace": lambda: random.choice(_key(), V, (2,), replace=False),
    "bits": lambda: random.bits(_key(), (2,)),
    "normal_ndarray_key": lambda: random.normal(np.asarray(_key()), (2,)),
    # transforms
    "jit": lambda: _jit_poly(V),
    "jit_pair": lambda: _jit_pair(X),
    "grad": lambda: jax.grad(_sumsq)(V),
    "grad_pyscalar": lambda: jax.grad(lambda x: x * x)(3.0),
    "grad_argnums": lambda: jax.grad(lambda a, b: jnp.sum(a * b), argnums=(0, 1))(V, V),
    "grad_dict": lambda: jax.grad(lambda p: jnp.sum(p["w"] * p["b"]))({"w": V, "b": 2.0}),
    "grad_has_aux": lambda: jax.grad(lambda x: (_sumsq(x), x * 2.0), has_aux=True)(V),
    "value_and_grad": lambda: jax.value_and_grad(_sumsq)(V),
    "value_and_grad_aux": lambda: jax.value_and_grad(lambda x: (_sumsq(x), {"a": x}),
                                                     has_aux=True)(V),
    "vjp_out": lambda: jax.vjp(jnp.sin, V)[0],
    "vjp_pullback": lambda: jax.vjp(jnp.sin, V)[1](np.ones(4)),
    "vjp_pullback_two_args": lambda: jax.vjp(jnp.multiply, V, 2.0)[1](np.ones(4)),
    "jvp": lambda: jax.jvp(jnp.sin, (V,), (np.ones(4),)),
    "jvp_pyscalars": lambda: jax.jvp(lambda x: x * x, (2.0,), (1.0,)),
    "linearize_out": lambda: jax.linearize(jnp.sin, V)[0],
    "linearize_f_jvp": lambda: jax.linearize(jnp.sin, V)[1](np.ones(4)),
    "vmap": lambda: jax.vmap(jnp.sum)(X),
    "vmap_in_axes": lambda: jax.vmap(lambda a, b: a * b, in_axes=(0, None))(X, 2.0),
    "vmap_tuple_out": lambda: jax.vmap(lambda r: (r, jnp.sum(r)))(X),
    "vmap_out_axes": lambda: jax.vmap(lambda r: r * 2.0, out_axes=1)(X),
    "jacfwd": lambda: jax.jacfwd(jnp.sin)(V),
    "jacrev": lambda: jax.jacrev(jnp.sin)(V),
    "jacrev_scalar": lambda: jax.jacrev(lambda x: x * x)(2.0),
    "hessian": lambda: jax.hessian(_sumsq)(V),
    "hvp": lambda: jax.hvp(_sumsq, (V,), (np.ones(4),)),
    "custom_jvp_call": lambda: _cj_square(V),
    "custom_jvp_grad": lambda: jax.grad(lambda x: jnp.sum(_cj_square(x)))(V),
    "custom_jvp_jvp": lambda: jax.jvp(_cj_square, (V,), (np.ones(4),)),
    "custom_vjp_call": lambda: _cv_cube(V),
    "custom_vjp_grad": lambda: jax.grad(lambda x: jnp.sum(_cv_cube(x)))(V),
    "custom_vjp_vjp": lambda: jax.vjp(_cv_cube, V)[1](np.ones(4)),
    "checkpoint": lambda: jax.checkpoint(jnp.sin)(V),
    "checkpoint_grad": lambda: jax.grad(jax.checkpoint(_sumsq))(V),
    "remat": lambda: jax.remat(jnp.cos)(V),
    "device_put": lambda: jax.device_put(V),
    "device_put_device": lambda: jax.device_put(V, jax.devices()[0]),
    "device_put_tree": lambda: jax.device_put({"a": V, "b": [1.0, np.int32(3)]}),
}


@pytest.mark.parametrize("name", sorted(RETURNS_ARRAY))
def test_public_function_returns_array(name):
    out = RETURNS_ARRAY[name]()
    assert_all_arrays(out)
    for leaf in tree_leaves(out):   # immutable whatever made it
        assert np.asarray(leaf).flags.writeable is False


def test_returned_arrays_hold_numpy_values():
    # spot checks that the Array results hold the right values, not only the right type
    np.testing.assert_allclose(np.asarray(jnp.sin(V)), np.sin(V))
    np.testing.assert_array_equal(np.asarray(jnp.reshape(X, (3, 2))), X.reshape(3, 2))
    np.testing.assert_allclose(np.asarray(jax.grad(_sumsq)(V)), 2 * V)
    value, g = jax.value_and_grad(_sumsq)(V)
    assert float(value) == pytest.approx(float(np.sum(V * V)))
    np.testing.assert_allclose(np.asarray(g), 2 * V)
    np.testing.assert_allclose(np.asarray(_jit_poly(V)), V * 2 + 1)
    carry, ys = lax.scan(lambda c, r: (c + r, c * r), 0.0, V)
    np.testing.assert_allclose(float(carry), V.sum())
    np.testing.assert_allclose(np.asarray(ys), np.concatenate([[0.0], np.cumsum(V)[:-1]]) * V)
    assert [tuple(np.asarray(p).shape) for p in jnp.split(X, 3, axis=1)] == [(2, 1)] * 3


def test_python_scalar_from_jit_is_0d_array():
    out = _jit_const_float(V)
    assert type(out) is Array
    assert out.shape == () and out.dtype.kind == "f"
    assert float(out) == 1.0


def test_numpy_scalar_from_jit_keeps_its_dtype():
    out = _jit_const_np32(V)
    assert type(out) is Array
    assert out.shape == () and out.dtype == np.float32
    assert float(out) == 2.5


def test_python_int_in_jit_output_tuple_is_0d_array():
    x, three = _jit_with_int(V)
    assert type(x) is Array and type(three) is Array
    assert three.shape == () and three.dtype.kind == "i" and int(three) == 3


def test_vmap_unbatched_python_constant_is_broadcast():
    out = jax.vmap(lambda r: 2.0)(jnp.ones(3))
    assert type(out) is Array
    assert out.shape == (3,)
    np.testing.assert_array_equal(np.asarray(out), [2.0, 2.0, 2.0])


def test_vmap_unbatched_closed_over_ndarray_is_broadcast():
    c = np.array([1.0, 2.0])
    out = jax.vmap(lambda r: c)(np.ones(3))
    assert type(out) is Array
    np.testing.assert_array_equal(np.asarray(out), np.broadcast_to(c, (3, 2)))


def test_vmap_axis_size_with_unbatched_input_broadcasts():
    out = jax.vmap(lambda r: 2.0, in_axes=None, axis_size=3)(1.0)
    assert type(out) is Array
    np.testing.assert_array_equal(np.asarray(out), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("name", ["grad", "jvp", "vjp", "linearize", "jacfwd", "jacrev",
                                  "checkpoint", "cond", "fori_loop", "scan_carry"])
def test_python_scalar_outputs_of_transforms_become_0d_arrays(name):
    if name == "grad":
        outs = [jax.grad(lambda x: x * 2.0)(3.0)]
    elif name == "jvp":
        outs = list(jax.jvp(lambda x: 1.0, (2.0,), (1.0,)))
        assert float(outs[1]) == 0.0
    elif name == "vjp":
        y, pullback = jax.vjp(lambda x: 5.0, 1.0)
        outs = [y, *pullback(1.0)]
        assert float(outs[1]) == 0.0
    elif name == "linearize":
        y, f_jvp = jax.linearize(lambda x: 3.0, 1.0)
        outs = [y, f_jvp(1.0)]
    elif name == "jacfwd":
        outs = [jax.jacfwd(lambda x: 1.0)(2.0)]
    elif name == "jacrev":
        outs = [jax.jacrev(lambda x: x * 3.0)(2.0)]
    elif name == "checkpoint":
        outs = [jax.checkpoint(lambda x: 1.0)(V)]
    elif name == "cond":
        outs = [lax.cond(True, lambda _: 1.0, lambda _: 2.0, 0)]
        assert float(outs[0]) == 1.0
    elif name == "fori_loop":
        outs = [lax.fori_loop(0, 2, lambda i, c: c, 1)]
        assert int(outs[0]) == 1
    elif name == "scan_carry":
        outs = [lax.scan(lambda c, r: (1.0, r), 0.0, V)[0]]
        assert float(outs[0]) == 1.0
    for o in outs:
        assert type(o) is Array, type(o)
        assert o.shape == ()


_dtypes = st.sampled_from([np.float32, np.float64, np.int32, np.bool_])


@st.composite
def ndarrays(draw, min_dims=0, max_dims=3):
    dtype = np.dtype(draw(_dtypes))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=0, max_side=3))
    if dtype.kind == "f":
        elements = st.floats(-100, 100, width=dtype.itemsize * 8)
    elif dtype.kind == "i":
        elements = st.integers(-100, 100)
    else:
        elements = st.booleans()
    return draw(hnp.arrays(dtype, shape, elements=elements))


_vmap_identity = jax.vmap(lambda r: r)

_ROUNDTRIPS = {
    "jit": _jit_identity,
    "asarray": jnp.asarray,
    "array": jnp.array,
    "copy": jnp.copy,
    "device_put": jax.device_put,
    "ravel": jnp.ravel,
    "transpose": jnp.transpose,
    "vmap": lambda a: _vmap_identity(a) if a.ndim else jnp.asarray(a),
}


@given(a=ndarrays(), how=st.sampled_from(sorted(_ROUNDTRIPS)))
def test_roundtrip_returns_equal_unaliased_array(a, how):
    expect = {"ravel": np.ravel, "transpose": np.transpose}.get(how, lambda v: v)(a).copy()
    out = _ROUNDTRIPS[how](a)
    assert type(out) is Array
    assert out.dtype == a.dtype
    assert out.shape == expect.shape
    np.testing.assert_array_equal(np.asarray(out), expect)
    assert not np.shares_memory(np.asarray(out), a)
    a[...] = ~a if a.dtype == np.bool_ else a + 1   # the caller mutates its array
    np.testing.assert_array_equal(np.asarray(out), expect)


# ---------------------------------------------------------------------------------------------
# Immutability


def test_setitem_raises_typeerror_pointing_to_at():
    x = jnp.arange(4.0)
    for index in (0, slice(0, 2), Ellipsis, (np.array([0, 1]),)):
        with pytest.raises(TypeError, match=r"\.at"):
            x[index] = 1.0
    np.testing.assert_array_equal(np.asarray(x), [0.0, 1.0, 2.0, 3.0])


def test_setitem_on_tracer_raises_typeerror_pointing_to_at():
    def f(x):
        x[0] = 1.0
        return x

    with pytest.raises(TypeError, match=r"\.at"):
        jax.jit(f)(np.ones(3))
    with pytest.raises(TypeError, match=r"\.at"):
        jax.grad(lambda x: jnp.sum(f(x)))(np.ones(3))


def test_at_set_returns_new_array_and_leaves_original():
    x = jnp.arange(3.0)
    y = x.at[1].set(10.0)
    assert type(y) is Array and y is not x
    np.testing.assert_array_equal(np.asarray(y), [0.0, 10.0, 2.0])
    np.testing.assert_array_equal(np.asarray(x), [0.0, 1.0, 2.0])


def test_augmented_assignment_rebinds_and_leaves_other_references():
    x = jnp.arange(3.0)
    y = x
    x += 1
    x *= 2
    assert type(x) is Array and x is not y
    np.testing.assert_array_equal(np.asarray(x), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(np.asarray(y), [0.0, 1.0, 2.0])


@given(a=ndarrays(min_dims=1))
def test_np_asarray_is_read_only_zero_copy_view(a):
    x = jnp.asarray(a)
    v1 = np.asarray(x)
    v2 = np.asarray(x)
    assert type(v1) is np.ndarray
    assert v1.flags.writeable is False
    assert v1.dtype == a.dtype and v1.shape == a.shape
    if a.size:
        assert np.shares_memory(v1, v2)
        with pytest.raises(ValueError):
            v1[(0,) * v1.ndim] = v1[(0,) * v1.ndim]
    np.testing.assert_array_equal(v1, a)


def test_np_asarray_copy_false_is_the_same_read_only_buffer():
    x = jnp.arange(3.0)
    v = np.asarray(x, copy=False)
    assert v.flags.writeable is False
    assert np.shares_memory(v, np.asarray(x))


def test_np_asarray_copy_true_and_np_array_are_writable_copies():
    x = jnp.arange(3.0)
    for c in (np.asarray(x, copy=True), np.array(x)):
        assert type(c) is np.ndarray
        assert c.flags.writeable
        assert not np.shares_memory(c, np.asarray(x))
        c[0] = 42.0
    np.testing.assert_array_equal(np.asarray(x), [0.0, 1.0, 2.0])


def test_np_asarray_with_dtype_converts():
    x = jnp.array([1.5, 2.5], dtype=jnp.float32)
    c = np.asarray(x, dtype=np.float64)
    assert c.dtype == np.float64
    np.testing.assert_array_equal(c, [1.5, 2.5])
    i = np.asarray(x, dtype=np.int32)
    np.testing.assert_array_equal(i, [1, 2])
    assert x.dtype == np.float32   # x itself unchanged


def test_dunder_array_copy_false_with_dtype_change_raises_valueerror():
    x = jnp.array([1.0, 2.0], dtype=jnp.float32)
    with pytest.raises(ValueError):
        x.__array__(dtype=np.float64, copy=False)
    with pytest.raises(ValueError):
        np.asarray(x, dtype=np.float64, copy=False)
    same = x.__array__(dtype=np.float32, copy=False)
    assert same.dtype == np.float32 and not same.flags.writeable


def test_dunder_array_copy_true_is_writable():
    x = jnp.arange(3)
    c = x.__array__(copy=True)
    assert c.flags.writeable and not np.shares_memory(c, np.asarray(x))
    d = x.__array__(dtype=np.float64, copy=True)
    assert d.dtype == np.float64 and d.flags.writeable


# ---------------------------------------------------------------------------------------------
# No output aliases an input or a captured constant


@jax.custom_jvp
def _cj_identity(x):
    return x


_cj_identity.defjvp(lambda p, t: (p[0], t[0]))


@jax.custom_vjp
def _cv_identity(x):
    return x


_cv_identity.defvjp(lambda x: (x, None), lambda _, ct: (ct,))

_jit_row = jax.jit(lambda x: x[0])
_jit_reshape = jax.jit(lambda x: x.reshape(3, 2))
_jit_ravel = jax.jit(lambda x: x.ravel())
_jit_newaxis = jax.jit(lambda x: x[:, None])
_jit_identity_and_reshape = jax.jit(lambda x: (x, lax.reshape(x, (6,))))
_jit_cond_identity = jax.jit(lambda x: lax.cond(True, lambda y: y, lambda y: -y, x))
_ONES = np.ones((2, 3))

# name -> f(a): something computed from the writable float64[2, 3] ndarray a
ALIAS_CASES = {
    "jit_identity": lambda a: _jit_identity(a),
    "jit_pair": lambda a: _jit_pair(a),
    "jit_row": lambda a: _jit_row(a),
    "jit_reshape": lambda a: _jit_reshape(a),
    "jit_ravel": lambda a: _jit_ravel(a),
    "jit_newaxis": lambda a: _jit_newaxis(a),
    "jit_identity_and_reshape": lambda a: _jit_identity_and_reshape(a),
    "jit_cond_operand": lambda a: _jit_cond_identity(a),
    "jit_closure": lambda a: jax.jit(lambda x: a)(1.0),
    "jit_closure_pair": lambda a: jax.jit(lambda x: (x, a))(1.0),
    "vmap_identity": lambda a: _vmap_identity(a),
    "vmap_out_axes": lambda a: jax.vmap(lambda r: r, out_axes=1)(a),
    "vmap_closure": lambda a: jax.vmap(lambda r: a)(np.ones(2)),
    "vmap_closure_out_axes_none": lambda a: jax.vmap(lambda r: a, out_axes=None)(np.ones(2)),
    "vmap_unbatched_arg": lambda a: jax.vmap(lambda r, c: c, in_axes=(0, None))(np.ones(2), a),
    "grad_other_arg": lambda a: jax.grad(lambda x, y: jnp.sum(x * y))(_ONES, a),
    "grad_closure": lambda a: jax.grad(lambda x: jnp.sum(x * a))(_ONES),
    "value_and_grad_aux": lambda a: jax.value_and_grad(lambda x: (jnp.sum(x), x),
                                                       has_aux=True)(a),
    "grad_aux": lambda a: jax.grad(lambda x: (jnp.sum(x), x), has_aux=True)(a),
    "jvp_primal": lambda a: jax.jvp(lambda x: x, (a,), (_ONES,)),
    "jvp_tangent": lambda a: jax.jvp(lambda x: x, (_ONES,), (a,)),
    "vjp_primal": lambda a: jax.vjp(lambda x: x, a)[0],
    "vjp_cotangent": lambda a: jax.vjp(lambda x: x, _ONES)[1](a),
    "linearize_primal": lambda a: jax.linearize(lambda x: x, a)[0],
    "linearize_tangent": lambda a: jax.linearize(lambda x: x, _ONES)[1](a),
    "jnp_asarray": lambda a: jnp.asarray(a),
    "jnp_asarray_dtype": lambda a: jnp.asarray(a, dtype=np.float64),
    "jnp_array": lambda a: jnp.array(a),
    "jnp_copy": lambda a: jnp.copy(a),
    "jnp_astype_same": lambda a: jnp.astype(a, a.dtype),
    "jnp_reshape": lambda a: jnp.reshape(a, (3, 2)),
    "jnp_ravel": lambda a: jnp.ravel(a),
    "jnp_transpose": lambda a: jnp.transpose(a),
    "jnp_squeeze_view": lambda a: jnp.squeeze(a[None]),
    "jnp_expand_dims": lambda a: jnp.expand_dims(a, 0),
    "jnp_broadcast_to": lambda a: jnp.broadcast_to(a, (2, 2, 3)),
    "jnp_broadcast_arrays": lambda a: jnp.broadcast_arrays(a, 1.0),
    "jnp_atleast_1d": lambda a: jnp.atleast_1d(a),
    "jnp_moveaxis": lambda a: jnp.moveaxis(a, 0, 1),
    "jnp_swapaxes": lambda a: jnp.swapaxes(a, 0, 1),
    "jnp_split": lambda a: jnp.split(a, 3, axis=1),
    "jnp_flip": lambda a: jnp.flip(a),
    "jnp_concatenate_one": lambda a: jnp.concatenate([a]),
    "jnp_concatenate_one_axis1": lambda a: jnp.concatenate([a], axis=1),
    "jnp_hstack_one": lambda a: jnp.hstack([a]),
    "jnp_vstack_one": lambda a: jnp.vstack([a]),
    "jnp_reshape_same": lambda a: jnp.reshape(a, (2, 3)),
    "jnp_squeeze_noop": lambda a: jnp.squeeze(a),
    "jnp_broadcast_to_same": lambda a: jnp.broadcast_to(a, (2, 3)),
    "jnp_clip_no_bounds": lambda a: jnp.clip(a),
    "jnp_where_true": lambda a: jnp.where(True, a, 0.0),
    "jnp_diagonal": lambda a: jnp.diagonal(a),
    "jnp_row_view": lambda a: jnp.asarray(a[0]),
    "jnp_strided_view": lambda a: jnp.ravel(a[:, ::2]),
    "lax_slice": lambda a: lax.slice(a, (0, 0), (1, 3)),
    "lax_reshape": lambda a: lax.reshape(a, (6,)),
    "lax_transpose": lambda a: lax.transpose(a, (1, 0)),
    "lax_rev": lambda a: lax.rev(a, (0,)),
    "lax_squeeze": lambda a: lax.squeeze(a[None], (0,)),
    "lax_expand_dims": lambda a: lax.expand_dims(a, (0,)),
    "lax_broadcast_in_dim": lambda a: lax.broadcast_in_dim(a, (2, 2, 3), (1, 2)),
    "lax_dynamic_slice_full": lambda a: lax.dynamic_slice(a, (0, 0), (2, 3)),
    "lax_stop_gradient": lambda a: lax.stop_gradient(a),
    "lax_convert_same": lambda a: lax.convert_element_type(a, np.float64),
    "lax_slice_full": lambda a: lax.slice(a, (0, 0), (2, 3)),
    "lax_reshape_same": lambda a: lax.reshape(a, (2, 3)),
    "lax_transpose_identity": lambda a: lax.transpose(a, (0, 1)),
    "lax_broadcast_in_dim_same": lambda a: lax.broadcast_in_dim(a, (2, 3), (0, 1)),
    "lax_concatenate_one": lambda a: lax.concatenate([a], 0),
    "lax_expand_dims_none": lambda a: lax.expand_dims(a, ()),
    "lax_squeeze_none": lambda a: lax.squeeze(a, ()),
    "cond_operand": lambda a: lax.cond(True, lambda y: y, lambda y: -y, a),
    "cond_false_operand": lambda a: lax.cond(False, lambda y: -y, lambda y: y, a),
    "cond_closure": lambda a: lax.cond(True, lambda _: a, lambda _: a, 0),
    "switch_operand": lambda a: lax.switch(0, [lambda y: y, lambda y: -y], a),
    "while_zero_trips": lambda a: lax.while_loop(lambda c: False, lambda c: c, a),
    "fori_zero_trips": lambda a: lax.fori_loop(0, 0, lambda i, c: c, a),
    "scan_carry": lambda a: lax.scan(lambda c, r: (c, r), a, a),
    "map_identity": lambda a: lax.map(lambda r: r, a),
    "checkpoint_identity": lambda a: jax.checkpoint(lambda x: x)(a),
    "custom_jvp_identity": lambda a: _cj_identity(a),
    "custom_vjp_identity": lambda a: _cv_identity(a),
    "device_put": lambda a: jax.device_put(a),
    "device_put_device": lambda a: jax.device_put(a, jax.devices()[0]),
    "device_put_tree": lambda a: jax.device_put({"w": a, "ws": [a]}),
}


@pytest.mark.parametrize("name", sorted(ALIAS_CASES))
def test_outputs_never_alias_caller_memory(name):
    a = np.arange(6.0).reshape(2, 3) + 1.0
    out = ALIAS_CASES[name](a)
    assert_all_arrays(out)
    before = tree_map(lambda v: np.array(v, copy=True), out)
    for leaf in tree_leaves(out):
        assert not np.shares_memory(np.asarray(leaf), a)
        assert np.asarray(leaf).flags.writeable is False
    a[...] = -7.5
    after = tree_map(lambda v: np.array(v, copy=True), out)
    assert tree_structure(after) == tree_structure(before)
    for b, c in zip(tree_leaves(before), tree_leaves(after)):
        np.testing.assert_array_equal(c, b)


def test_array_from_ndarray_does_not_see_later_mutation_through_np_asarray():
    a = np.arange(3.0)
    x = jnp.asarray(a)
    view = np.asarray(x)
    a[:] = 9.0
    np.testing.assert_array_equal(view, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(x + 0), [0.0, 1.0, 2.0])


@pytest.mark.parametrize("name", ["jit", "jit_grad", "jit_vmap", "jit_cond", "jit_fori",
                                  "jit_scan", "jit_nested_jit"])
def test_closed_over_constants_are_fixed_at_trace_time(name):
    c = np.ones(3)
    x = np.arange(3.0)
    if name == "jit":
        f = jax.jit(lambda v: v + c)
    elif name == "jit_grad":
        f = jax.jit(jax.grad(lambda v: jnp.sum(v * v * c)))
    elif name == "jit_vmap":
        f = jax.jit(jax.vmap(lambda r: r * c))
        x = np.arange(6.0).reshape(2, 3)
    elif name == "jit_cond":
        f = jax.jit(lambda v: lax.cond(v[0] < 1, lambda y: y + c, lambda y: y, v))
    elif name == "jit_fori":
        f = jax.jit(lambda v: lax.fori_loop(0, 2, lambda i, y: y + c, v))
    elif name == "jit_scan":
        f = jax.jit(lambda v: lax.scan(lambda s, r: (s + r * c, None), v, np.ones((2, 3)))[0])
    elif name == "jit_nested_jit":
        g = jax.jit(lambda v: v * c)
        f = jax.jit(lambda v: g(v) + 1.0)
    first = np.array(f(x))
    c[:] = 7.0
    second = np.array(f(x))
    np.testing.assert_array_equal(second, first)
