"""functrans.numpy against NumPy itself: values and result dtypes, eagerly and staged into a
jaxpr (evaluated by eval_jaxpr, so every traced code path runs), over hypothesis shapes/dtypes."""
import os
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functrans
import functrans.numpy as jnp
import functrans.scipy.special
from functrans.test_util import check_grads

THIS_FILE = os.path.basename(__file__)

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]
SHAPES = [(), (0,), (1,), (3,), (2, 3), (1, 3), (3, 1), (2, 0), (2, 1, 3)]


def staged(f):
    """f run as a staged jaxpr (make_jaxpr, then eval_jaxpr): exercises the tracer paths."""
    def run(*args):
        # Python scalars stay Python scalars (weak), as they would in user code
        static = [type(a) in (bool, int, float) for a in args]
        dyn = [a for a, s in zip(args, static) if not s]

        def g(*d):
            it = iter(d)
            return f(*[a if s else next(it) for a, s in zip(args, static)])
        closed = functrans.make_jaxpr(g)(*dyn)
        outs = closed(*dyn)
        return outs[0] if len(outs) == 1 else tuple(outs)
    return run


def rand(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.asarray(rng.random(shape) < 0.5)
    if dtype.kind in "iu":
        return np.asarray(rng.integers(-5, 6, size=shape), dtype)
    return np.asarray(rng.standard_normal(shape) * 2, dtype)


def assert_same(got, want, exact=False):
    """Same shape and dtype as NumPy's result, and the same values (NaN matching NaN)."""
    got_arr, want_arr = np.asarray(got), np.asarray(want)
    assert got_arr.shape == want_arr.shape, (got_arr.shape, want_arr.shape)
    assert got_arr.dtype == want_arr.dtype, (got_arr.dtype, want_arr.dtype)
    if exact or want_arr.dtype.kind in "biu":
        np.testing.assert_array_equal(got_arr, want_arr)
    else:
        tol = 2e-6 if want_arr.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got_arr, want_arr, rtol=tol, atol=tol, equal_nan=True)


def check(np_fn, jnp_fn, *args, exact=False, stage=True):
    """jnp_fn(*args) equals np_fn(*args) eagerly and staged, or both raise."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            want = np_fn(*args)
        except (TypeError, ValueError, IndexError):
            with pytest.raises((TypeError, ValueError, IndexError)):
                jnp_fn(*args)
            return
        got = jnp_fn(*args)
        if isinstance(want, (tuple, list)):
            for g, w in zip(got, want):
                assert_same(g, w, exact)
        else:
            assert_same(got, want, exact)
        if stage:
            got_s = staged(jnp_fn)(*args)
            if isinstance(want, (tuple, list)):
                for g, w in zip(got_s, want):
                    assert_same(g, w, exact)
            else:
                assert_same(got_s, want, exact)


shape_st = st.sampled_from(SHAPES)
dtype_st = st.sampled_from(DTYPES)
seed_st = st.integers(0, 2**16)

# ---------------------------------------------------------------------------------------------
# Elementwise

UNARY = ["negative", "abs", "sign", "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt",
         "square", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
         "arcsinh", "arccosh", "arctanh", "floor", "ceil", "round", "reciprocal", "isnan",
         "isfinite", "isinf", "exp2", "cbrt", "logical_not", "trunc", "positive", "invert"]


@settings(max_examples=200)
@given(name=st.sampled_from(UNARY), shape=shape_st, dtype=dtype_st, seed=seed_st)
def test_unary(name, shape, dtype, seed):
    x = rand(np.random.default_rng(seed), shape, dtype)
    if name == "reciprocal" and np.dtype(dtype).kind in "iu":
        x = np.where(x == 0, 1, x).astype(dtype)  # NumPy's integer 1/0 is undefined behaviour
    check(getattr(np, name), getattr(jnp, name), x)


BINARY = ["add", "subtract", "multiply", "divide", "true_divide", "power", "maximum", "minimum",
          "arctan2", "logaddexp", "floor_divide", "remainder", "mod", "equal", "not_equal",
          "less", "less_equal", "greater", "greater_equal", "logical_and", "logical_or",
          "logical_xor", "bitwise_and", "bitwise_or", "bitwise_xor"]
BCAST_PAIRS = [((), ()), ((3,), ()), ((), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((0,), (1,)),
               ((2, 1, 3), (2, 3)), ((1,), (0,))]


@settings(max_examples=200)
@given(name=st.sampled_from(BINARY), shapes=st.sampled_from(BCAST_PAIRS), d1=dtype_st,
       d2=dtype_st, seed=seed_st)
def test_binary_arrays(name, shapes, d1, d2, seed):
    rng = np.random.default_rng(seed)
    x, y = rand(rng, shapes[0], d1), rand(rng, shapes[1], d2)
    if name in ("floor_divide", "remainder", "mod", "power") and np.result_type(d1, d2).kind in "iu":
        y = np.where(y == 0, 1, np.abs(y)).astype(d2)  # integer /0 and negative powers: UB / error
    check(getattr(np, name), getattr(jnp, name), x, y)


@settings(max_examples=200)
@given(name=st.sampled_from(BINARY), shape=shape_st, dtype=dtype_st,
       scalar=st.sampled_from([2, -3, 0.5, -1.5, True, 3]), left=st.booleans(), seed=seed_st)
def test_binary_weak_python_scalars(name, shape, dtype, scalar, left, seed):
    """Python scalars are weak: a Python float does not upcast float32, int + float -> float."""
    x = rand(np.random.default_rng(seed), shape, dtype)
    if name in ("floor_divide", "remainder", "mod") and np.dtype(dtype).kind in "iub":
        x = np.where(x == 0, 1, x).astype(dtype)
    if name == "power" and left is False and type(scalar) is int and scalar < 0:
        scalar = 2
    args = (scalar, x) if left else (x, scalar)
    check(getattr(np, name), getattr(jnp, name), *args)


def test_float32_plus_python_float_stays_float32():
    x = np.ones(3, np.float32)
    assert (jnp.add(x, 1.5)).dtype == np.float32
    assert staged(lambda x: x * 2.0 + 1)(x).dtype == np.float32
    assert jnp.true_divide(np.arange(3, dtype=np.int32), 2).dtype == np.float64
    assert jnp.add(np.arange(3, dtype=np.int32), 1.5).dtype == np.float64


@given(shape=shape_st, dtype=st.sampled_from([np.float32, np.float64, np.int32, np.int64]),
       seed=seed_st)
def test_clip_and_where(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, dtype)
    check(lambda x: np.clip(x, -1, 2), lambda x: jnp.clip(x, -1, 2), x)
    check(lambda x: np.clip(x, min=-1.5), lambda x: jnp.clip(x, min=-1.5), x)
    check(lambda x: np.clip(x, None, 0), lambda x: jnp.clip(x, a_max=0), x)
    check(lambda x: np.where(x > 0, x, 0.5), lambda x: jnp.where(x > 0, x, 0.5), x)
    y = rand(rng, shape[-1:], np.float32)
    check(lambda x, y: np.where(x < 1, y, x), lambda x, y: jnp.where(x < 1, y, x), x, y)


def test_round_decimals_and_floor_divide_edge_cases():
    x = np.array([1.2345, -2.5, 0.5, 1.5, 2.675, -0.05, 123.456])
    for d in [0, 1, 2, -1]:
        check(lambda x: np.round(x, d), lambda x: jnp.round(x, d), x, exact=True)
    a = np.array([1.0, -1.0, 7.5, -7.5, 0.0, -0.0, np.inf, 1.0])
    b = np.array([0.1, 0.1, -2.0, 2.0, -3.0, 3.0, 2.0, 0.0])
    check(np.floor_divide, jnp.floor_divide, a, b, exact=True)
    check(np.remainder, jnp.remainder, a, b, exact=True)
    i = np.array([7, -7, 7, -7, 0], np.int64)
    j = np.array([2, 2, -2, -2, 3], np.int64)
    check(np.floor_divide, jnp.floor_divide, i, j)
    check(np.remainder, jnp.remainder, i, j)
    check(np.power, jnp.power, i, np.array([3, 2, 0, 5, 1], np.int64))


# ---------------------------------------------------------------------------------------------
# Reductions

REDUCTIONS = ["sum", "mean", "var", "std", "prod", "max", "min", "argmax", "argmin", "all",
              "any", "cumsum", "cumprod"]
R_SHAPES = [(), (1,), (4,), (2, 3), (3, 1), (2, 0), (2, 1, 3)]


def _axes_for(ndim, draw):
    return draw(st.sampled_from([None] + list(range(-ndim, ndim)) +
                                ([(0, ndim - 1)] if ndim > 1 else [])))


@settings(max_examples=200)
@given(name=st.sampled_from(REDUCTIONS), shape=st.sampled_from(R_SHAPES), dtype=dtype_st,
       keepdims=st.booleans(), seed=seed_st, data=st.data())
def test_reductions(name, shape, dtype, keepdims, seed, data):
    x = rand(np.random.default_rng(seed), shape, dtype)
    axis = _axes_for(len(shape), data.draw)
    if name in ("argmax", "argmin", "cumsum", "cumprod") and isinstance(axis, tuple):
        axis = None
    kw = {"axis": axis}
    if name not in ("cumsum", "cumprod"):
        kw["keepdims"] = keepdims
    check(lambda x: getattr(np, name)(x, **kw), lambda x: getattr(jnp, name)(x, **kw), x)


@given(shape=st.sampled_from(R_SHAPES[1:]), dtype=dtype_st, ddof=st.sampled_from([0, 1]),
       out_dtype=st.sampled_from([None, np.float32, np.float64]), seed=seed_st)
def test_reduction_ddof_and_dtype(shape, dtype, ddof, out_dtype, seed):
    x = rand(np.random.default_rng(seed), shape, dtype)
    for name in ["var", "std"]:
        check(lambda x: getattr(np, name)(x, axis=0, ddof=ddof),
              lambda x: getattr(jnp, name)(x, axis=0, ddof=ddof), x)
    for name in ["sum", "mean", "prod", "cumsum"]:
        check(lambda x: getattr(np, name)(x, axis=-1, dtype=out_dtype),
              lambda x: getattr(jnp, name)(x, axis=-1, dtype=out_dtype), x)


def test_reduction_result_dtypes_match_numpy():
    i32 = np.arange(6, dtype=np.int32).reshape(2, 3)
    assert jnp.sum(i32).dtype == np.int64
    assert jnp.mean(i32).dtype == np.float64
    assert jnp.argmax(i32).dtype == np.int64
    assert jnp.sum(i32 > 2).dtype == np.int64
    assert jnp.mean(i32.astype(np.float32)).dtype == np.float32
    assert jnp.var(i32).dtype == np.float64


def test_methods_on_tracers():
    x = np.arange(24.0).reshape(2, 3, 4)

    def f(x):
        return (x.sum(), x.mean(axis=1), x.max(axis=(0, 2)), x.min(keepdims=True),
                x.reshape(6, 4), x.reshape((4, -1)), x.astype(np.int32), x.transpose(2, 0, 1),
                x.T, x.ravel(), x[:1].squeeze(0), x[0].dot(np.ones(4)), x.mT, x.var(ddof=1),
                x.argmax(axis=-1), x.cumsum(axis=1), x.swapaxes(0, 2), x.prod(axis=0),
                x.any(), x.all(axis=0), x.clip(2, 5), x.take(np.array([0, 3]), axis=2),
                x.ndim, x.shape, x.size, x.dtype)

    def g(x):
        return (x.sum(), x.mean(axis=1), x.max(axis=(0, 2)), x.min(keepdims=True),
                x.reshape(6, 4), x.reshape((4, -1)), x.astype(np.int32), x.transpose(2, 0, 1),
                x.T, x.ravel(), x[:1].squeeze(0), x[0].dot(np.ones(4)), np.swapaxes(x, -1, -2),
                x.var(ddof=1), x.argmax(axis=-1), x.cumsum(axis=1), x.swapaxes(0, 2),
                x.prod(axis=0), x.any(), x.all(axis=0), x.clip(2, 5),
                x.take(np.array([0, 3]), axis=2), x.ndim, x.shape, x.size, x.dtype)

    want = g(x)
    closed = functrans.make_jaxpr(lambda x: f(x)[:-4])(x)
    for got, w in zip(closed(x), want[:-4]):
        assert_same(got, w)
    probe = {}

    def record(x):
        probe["meta"] = f(x)[-4:]
        return x
    functrans.make_jaxpr(record)(x)
    assert probe["meta"] == want[-4:]


@given(shape=st.sampled_from([(), (3,), (2, 3)]), dtype=dtype_st, seed=seed_st,
       scalar=st.sampled_from([2, 1.5, True]))
def test_operators_on_tracers(shape, dtype, seed, scalar):
    rng = np.random.default_rng(seed)
    x, y = rand(rng, shape, dtype), rand(rng, shape, dtype)
    if np.dtype(dtype).kind in "iu":  # integer x / 0 is undefined and x ** -n raises in NumPy
        x = np.abs(x).astype(dtype)
        y = np.where(y == 0, 1, np.abs(y)).astype(dtype)
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
           lambda a, b: a // b, lambda a, b: a % b, lambda a, b: a ** b, lambda a, b: a == b,
           lambda a, b: a != b, lambda a, b: a < b, lambda a, b: a <= b, lambda a, b: a > b,
           lambda a, b: a >= b, lambda a, b: a & b, lambda a, b: a | b, lambda a, b: a ^ b,
           lambda a, b: -a, lambda a, b: abs(a), lambda a, b: ~a, lambda a, b: +a]
    for op in ops:
        check(op, staged(op), x, y, stage=False)
        check(lambda a: op(a, scalar), staged(lambda a: op(a, scalar)), x, stage=False)
        check(lambda a: op(scalar, a), staged(lambda a: op(scalar, a)), x, stage=False)
        check(lambda b: op(x, b), staged(lambda b: op(x, b)), y, stage=False)


# ---------------------------------------------------------------------------------------------
# Creation

def test_creation():
    check(lambda: np.zeros((2, 3)), lambda: jnp.zeros((2, 3)))
    check(lambda: np.ones(3, np.int32), lambda: jnp.ones(3, np.int32))
    check(lambda: np.full((2, 2), 7), lambda: jnp.full((2, 2), 7))
    check(lambda: np.full((2,), 1.5, np.float32), lambda: jnp.full((2,), 1.5, np.float32))
    check(lambda: np.arange(5), lambda: jnp.arange(5))
    check(lambda: np.arange(1, 2, 0.25), lambda: jnp.arange(1, 2, 0.25))
    check(lambda: np.arange(3, dtype=np.float32), lambda: jnp.arange(3, dtype=np.float32))
    check(lambda: np.linspace(0, 1, 7), lambda: jnp.linspace(0, 1, 7), exact=True)
    check(lambda: np.linspace(2, -1, 4, endpoint=False), lambda: jnp.linspace(2, -1, 4, endpoint=False))
    check(lambda: np.eye(3), lambda: jnp.eye(3))
    check(lambda: np.eye(2, 4, k=1, dtype=np.int32), lambda: jnp.eye(2, 4, k=1, dtype=np.int32))
    check(lambda: np.eye(4, 3, k=-2), lambda: jnp.eye(4, 3, k=-2))
    x = np.arange(6, dtype=np.int32).reshape(2, 3)
    for name in ["zeros_like", "ones_like"]:
        check(getattr(np, name), getattr(jnp, name), x)
        check(lambda x: getattr(np, name)(x, dtype=np.float32),
              lambda x: getattr(jnp, name)(x, dtype=np.float32), x)
    check(np.array, jnp.array, x)
    check(np.asarray, jnp.asarray, x)
    check(lambda: np.array([[1, 2], [3, 4.5]]), lambda: jnp.array([[1, 2], [3, 4.5]]))
    # a list holding tracers is stacked
    t = np.float64(2.0)
    check(lambda t: np.array([t, 1.0, t * 3]), lambda t: jnp.array([t, 1.0, t * 3]), t)
    # traced linspace bounds follow NumPy's formula
    check(lambda a, b: np.linspace(a, b, 5), lambda a, b: jnp.linspace(a, b, 5),
          np.float64(-1.0), np.float64(3.0))


# ---------------------------------------------------------------------------------------------
# Linear algebra

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((1, 2, 3), (4, 3, 2)), ((2, 0), (0, 3)), ((2, 1, 2, 3), (3, 3, 1))]


@given(shapes=st.sampled_from(MATMUL_SHAPES), d1=st.sampled_from(DTYPES[:4]),
       d2=st.sampled_from(DTYPES[:4]), seed=seed_st)
def test_matmul_dot_family(shapes, d1, d2, seed):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, shapes[0], d1), rand(rng, shapes[1], d2)
    check(np.matmul, jnp.matmul, a, b)
    check(lambda a, b: a @ b, staged(lambda a, b: a @ b), a, b, stage=False)
    check(np.dot, jnp.dot, a, b)
    if a.shape[-1:] == b.shape[-1:]:
        check(np.inner, jnp.inner, a, b)
    check(np.outer, jnp.outer, a, b)
    if a.size == b.size:
        check(np.vdot, jnp.vdot, a, b)


def test_tensordot_einsum_trace():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 3, 5))
    check(lambda a, b: np.tensordot(a, b, axes=([1, 2], [1, 0])),
          lambda a, b: jnp.tensordot(a, b, axes=([1, 2], [1, 0])), a, b)
    check(lambda a, b: np.tensordot(a, b, 1), lambda a, b: jnp.tensordot(a, b, 1), a, b)
    check(lambda a: np.tensordot(a, a, 0), lambda a: jnp.tensordot(a, a, 0), a[0])
    m = rng.standard_normal((4, 4))
    s = rng.standard_normal((3, 4, 5))
    cases = [("ij,jk->ik", m, m), ("ii->i", m), ("ii", m), ("ij->ji", m), ("ij->", m),
             ("bij,jk->bik", s.transpose(0, 2, 1), m), ("i,i->", m[0], m[1]), ("i,j->ij", m[0], m[1]),
             ("ijk,ljk->il", s, s), ("...ij,...jk->...ik", s.transpose(0, 2, 1), s),
             ("ij,jk,kl->il", m, m, m), ("ij,ij->i", m, m), ("ijk", s), ("iji->j", np.ones((2, 3, 2))),
             ("...i->...", s), ("ba", m), ("i,i", m[0], m[1])]
    for sub, *ops in cases:
        check(lambda *o: np.einsum(sub, *o), lambda *o: jnp.einsum(sub, *o), *ops)
    i32 = np.arange(12, dtype=np.int32).reshape(3, 4)
    check(lambda x: np.einsum("ij,kj->ik", x, x), lambda x: jnp.einsum("ij,kj->ik", x, x), i32)
    for off in [-2, -1, 0, 1, 3, 5]:
        check(lambda x: np.trace(x, off), lambda x: jnp.trace(x, off), i32)
        check(lambda x: np.diagonal(x, off), lambda x: jnp.diagonal(x, off), i32)
    check(lambda x: np.trace(x, 0, 0, 2), lambda x: jnp.trace(x, 0, 0, 2), s)


@given(shape=st.sampled_from([(3,), (2, 3), (1, 4), (2, 2, 3)]),
       ord_=st.sampled_from([None, 1, 2, np.inf, -np.inf, "fro", 0, 3]),
       dtype=st.sampled_from([np.float32, np.float64, np.int32]), keepdims=st.booleans(),
       seed=seed_st)
def test_linalg_norm(shape, ord_, dtype, keepdims, seed):
    x = rand(np.random.default_rng(seed), shape, dtype)
    axis = None if len(shape) <= 2 else (1, 2)
    if ord_ == 2 and len(shape) > 1:
        axis = -1  # the matrix 2-norm needs an SVD (not provided)
    if ord_ in ("fro",) and len(shape) == 1:
        ord_ = None
    if ord_ in (0, 3) and len(shape) > 1:
        axis = 0
    check(lambda x: np.linalg.norm(x, ord_, axis, keepdims),
          lambda x: jnp.linalg.norm(x, ord_, axis, keepdims), x)


# ---------------------------------------------------------------------------------------------
# Shape ops

def test_shape_ops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4))
    i = np.arange(6, dtype=np.int32).reshape(2, 3)
    cases = [
        (lambda np_, x: np_.reshape(x, (4, -1))), (lambda np_, x: np_.reshape(x, -1)),
        (lambda np_, x: np_.transpose(x)), (lambda np_, x: np_.transpose(x, (1, -1, 0))),
        (lambda np_, x: np_.swapaxes(x, 0, -1)), (lambda np_, x: np_.moveaxis(x, 0, -1)),
        (lambda np_, x: np_.moveaxis(x, (0, 1), (-1, 0))),
        (lambda np_, x: np_.squeeze(x[:, :1], 1)), (lambda np_, x: np_.squeeze(x[:1, :, :1])),
        (lambda np_, x: np_.expand_dims(x, (0, -1))), (lambda np_, x: np_.expand_dims(x, 1)),
        (lambda np_, x: np_.broadcast_to(x[:, :1], (5, 2, 3, 4))),
        (lambda np_, x: np_.broadcast_arrays(x, x[0, :, :1])),
        (lambda np_, x: np_.concatenate([x, x[:1]], axis=0)),
        (lambda np_, x: np_.concatenate([x, x], axis=None)),
        (lambda np_, x: np_.concatenate([x, x[:, :, :1]], axis=-1)),
        (lambda np_, x: np_.stack([x, x, x], axis=1)), (lambda np_, x: np_.stack([x[0], x[1]], -1)),
        (lambda np_, x: np_.hstack([x[0], x[1]])), (lambda np_, x: np_.vstack([x[0, 0], x[1, 1]])),
        (lambda np_, x: np_.hstack([x[0, 0], x[1, 1]])), (lambda np_, x: np_.vstack([x[0], x[1]])),
        (lambda np_, x: np_.split(x, 2)), (lambda np_, x: np_.split(x, [1, 3], axis=2)),
        (lambda np_, x: np_.split(x, [-1], axis=1)), (lambda np_, x: np_.array_split(x, 3, axis=2)),
        (lambda np_, x: np_.tile(x, 2)), (lambda np_, x: np_.tile(x[0], (2, 1, 2))),
        (lambda np_, x: np_.repeat(x, 2)), (lambda np_, x: np_.repeat(x, 3, axis=1)),
        (lambda np_, x: np_.repeat(x, np.array([1, 0, 2]), axis=1)),
        (lambda np_, x: np_.flip(x)), (lambda np_, x: np_.flip(x, 1)),
        (lambda np_, x: np_.flip(x, (0, 2))),
        (lambda np_, x: np_.roll(x, 2)), (lambda np_, x: np_.roll(x, -1, axis=1)),
        (lambda np_, x: np_.roll(x, (1, 5), axis=(0, 2))),
        (lambda np_, x: np_.pad(x, 1)), (lambda np_, x: np_.pad(x, ((0, 1), (2, 0), (1, 1)))),
        (lambda np_, x: np_.pad(x, 2, constant_values=-1.5)),
        (lambda np_, x: np_.pad(x, ((1, 2), (0, 1), (1, 0)), constant_values=((1, 2), (3, 4), (5, 6)))),
        (lambda np_, x: np_.pad(x, ((1, 2), (0, 0), (3, 1)), mode="edge")),
        (lambda np_, x: np_.pad(x, ((1, 2), (0, 0), (3, 1)), mode="reflect")),
        (lambda np_, x: np_.pad(x, ((1, 5), (0, 0), (3, 1)), mode="symmetric")),
        (lambda np_, x: np_.pad(x, ((1, 2), (2, 2), (5, 1)), mode="wrap")),
        (lambda np_, x: np_.ravel(x)),
        (lambda np_, x: np_.take(x, np.array([[0, 3], [1, 1]]))),
        (lambda np_, x: np_.take(x, np.array([2, -1]), axis=1)),
        (lambda np_, x: np_.take(x, 1, axis=2)),
        (lambda np_, x: np_.take_along_axis(x, np.array([[[2], [0], [1]]]), axis=1)),
        (lambda np_, x: np_.take_along_axis(x, np_.argsort(x, axis=1), axis=1)),
        (lambda np_, x: np_.sort(x, axis=0)), (lambda np_, x: np_.sort(x, axis=None)),
        (lambda np_, x: np_.argsort(x)),
        (lambda np_, x: np_.take_along_axis(x, np.array([[[0], [3], [1]]]), axis=2)),
        (lambda np_, x: np_.take_along_axis(x[0, 0], np.array([3, 0]), axis=None)),
    ]
    for f in cases:
        check(lambda x: f(np, x), lambda x: f(jnp, x), x)
    check(lambda x: np.concatenate([x, x.astype(np.float32)]),
          lambda x: jnp.concatenate([x, x.astype(np.float32)]), i)
    check(lambda x: np.stack([x, x > 2]), lambda x: jnp.stack([x, x > 2]), i)
    check(lambda x: np.tile(x, (2, 2)), lambda x: jnp.tile(x, (2, 2)), i)
    check(lambda x: np.pad(x, 1, constant_values=7), lambda x: jnp.pad(x, 1, constant_values=7), i)


# ---------------------------------------------------------------------------------------------
# Indexing

X4 = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
INDEX_CASES = [
    np.s_[0], np.s_[-1], np.s_[1, 2], np.s_[-1, 1:], np.s_[..., ::-2], np.s_[::-1, 5:0:-2],
    np.s_[None, 1, None, ::-1], np.s_[0, ..., None], np.s_[1:1], np.s_[:, :, -3:-1, ::2],
    np.s_[..., 0], np.s_[np.newaxis], np.s_[1, :, 2, ::-3], np.s_[np.int64(1), np.int32(-2)],
    np.s_[:, [0, 2]], np.s_[[0, 1], :, [1, 3]], np.s_[:, [0, 2], [1, 3]],
    np.s_[[[0], [1]], :, [1, 2, 3]], np.s_[1, :, [0, 1], None], np.s_[:, None, [0, 1], 2],
    np.s_[[1, 0], [2, 1], [3, 0], [4, 4]], np.s_[..., [-1, 0]], np.s_[np.array(1)],
    np.s_[[0, 1], None, [1, 2]], np.s_[[]], np.s_[:, [[0, 0], [2, 1]]], np.s_[1, [0, -1], :, 2],
    np.s_[X4[:, :, 0, 0] > 30], np.s_[:, :, np.array([True, False, True, True])],
    np.s_[X4 > 100], np.s_[X4[:, :, 0, 0] % 2 == 0, 1:], np.s_[np.array([False, False]), 0],
    np.s_[[0, 1], ::-1, [2, 3]],
]
INDEX_ERRORS = [np.s_[0, 0, 0, 0, 0], np.s_[..., ...], np.s_[np.array([True, False, True])],
                np.s_[[0, 1], [0, 1, 2]], np.s_[1.5]]
# out of range: NumPy raises, JAX (and functrans) clamp on retrieval
# (index, what retrieval clamps it to, the in-range part an update still writes)
OUT_OF_RANGE = [(np.s_[2], np.s_[1], None), (np.s_[:, [3]], np.s_[:, [2]], None),
                (np.s_[:, -4], np.s_[:, 0], None),
                (np.s_[np.array([5, -1])], np.s_[np.array([1, -1])], np.s_[-1])]


@pytest.mark.parametrize("idx", INDEX_CASES, ids=str)
def test_getitem_and_at(idx):
    check(lambda x: x[idx], lambda x: functrans.make_jaxpr(lambda y: y[idx])(x)(x)[0], X4,
          exact=True, stage=False)
    assert_same(jnp.asarray(X4)[idx], X4[idx], exact=True)
    want = X4[idx]
    v = np.random.default_rng(0).standard_normal(want.shape)
    for kind, ufunc in [("set", None), ("add", np.add), ("mul", np.multiply)]:
        expected = X4.copy()
        if ufunc is None:
            expected[idx] = v
        else:
            ufunc.at(expected, idx, v)
        got = staged(lambda x, v: getattr(x.at[idx], kind)(v))(X4, v)
        assert_same(got, expected)
    assert_same(staged(lambda x: x.at[idx].get())(X4), want, exact=True)
    # a scalar update broadcasts
    expected = X4.copy()
    expected[idx] = -1.0
    assert_same(staged(lambda x: x.at[idx].set(-1.0))(X4), expected, exact=True)


@pytest.mark.parametrize("idx", INDEX_ERRORS, ids=str)
def test_getitem_errors_like_numpy(idx):
    with pytest.raises((IndexError, TypeError, ValueError)):
        X4[idx]
    with pytest.raises((IndexError, TypeError, ValueError)):
        staged(lambda x: x[idx])(X4)


@pytest.mark.parametrize("idx,clamped,in_range", OUT_OF_RANGE, ids=str)
def test_out_of_range_indices_follow_jax(idx, clamped, in_range):
    want = X4[clamped]
    assert_same(staged(lambda x: x[idx])(X4), want, exact=True)
    static_int = all(isinstance(i, (int, slice)) for i in (idx if isinstance(idx, tuple) else (idx,)))
    if static_int:   # a static out-of-range integer on a concrete Array: IndexError, as JAX
        with pytest.raises(IndexError, match="out of bounds"):
            jnp.asarray(X4)[idx]
    else:            # integer arrays (gathers) clamp, concrete or traced
        assert_same(jnp.asarray(X4)[idx], want, exact=True)
    # updates at out-of-range indices are dropped, eagerly and under jit alike
    expected = X4.copy()
    if in_range is not None:
        expected[in_range] = 0.0
    assert_same(jnp.asarray(X4).at[idx].set(0.0), expected, exact=True)
    assert_same(staged(lambda x: x.at[idx].set(0.0))(X4), expected, exact=True)


def test_traced_out_of_range_update_indices_are_dropped():
    x = np.arange(5.0)
    upd = functrans.jit(lambda x, i: jnp.asarray(x).at[i].add(1.0))
    assert_same(upd(x, np.array([7, 1, -9, 3])), np.array([0.0, 2, 2, 4, 4]), exact=True)
    assert_same(upd(x, np.int64(-1)), np.array([0.0, 1, 2, 3, 5]), exact=True)
    assert_same(functrans.jit(lambda x, i: jnp.asarray(x).at[i].max(9.0))(x, np.int64(5)), x, exact=True)


def test_traced_scalar_and_array_indices():
    x = np.arange(12.0).reshape(3, 4)
    for i in [0, 2, -1, -3]:
        assert_same(staged(lambda x, i: x[i])(x, np.int64(i)), x[i], exact=True)
        assert_same(staged(lambda x, i: x[1:, i])(x, np.int32(i)), x[1:, i], exact=True)
        assert_same(staged(lambda x, i: x.at[i].add(1.0))(x, np.int64(i)),
                    np.where(np.arange(3)[:, None] == i % 3, x + 1, x), exact=True)
    idx = np.array([[0, -1], [2, 1]])
    assert_same(staged(lambda x, j: x[j, ::-1])(x, idx), x[idx, ::-1], exact=True)
    assert_same(staged(lambda x, j: jnp.take(x, j, axis=1))(x, idx), np.take(x, idx, axis=1),
                exact=True)
    # a traced boolean mask has no static result shape
    with pytest.raises(TypeError, match="mask"):
        staged(lambda x: x[x > 3])(x)
    # gradients flow through indexing
    g = functrans.grad(lambda x: jnp.sum(x[[0, 0, 2], 1:] ** 2))(x)
    want = np.zeros_like(x)
    np.add.at(want, (np.array([0, 0, 2]), np.s_[1:]), 2 * x[[0, 0, 2], 1:])
    np.testing.assert_allclose(g, want)


# ---------------------------------------------------------------------------------------------
# Errors name both shapes and the caller's file and line

def _raises_here(exc, fn, *shape_strs):
    with pytest.raises(exc) as info:
        fn()
    msg = str(info.value)
    for s in shape_strs:
        assert s in msg, msg
    assert THIS_FILE in msg, msg
    return msg


def test_shape_mismatch_errors_name_shapes_and_location():
    a, b = np.ones((2, 3)), np.ones((4, 5))
    _raises_here(ValueError, lambda: jnp.add(a, b), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: staged(lambda x, y: x + y)(a, b), "(2, 3)", "(4, 5)")
    # contraction mismatches are TypeErrors, as JAX's dot_general raises
    _raises_here(TypeError, lambda: jnp.matmul(a, b), "(2, 3)", "(4, 5)")
    _raises_here(TypeError, lambda: staged(lambda x, y: x @ y)(a, b), "(2, 3)", "(4, 5)")
    _raises_here(TypeError, lambda: jnp.dot(a, b), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: jnp.reshape(a, (4, 2)), "(2, 3)", "(4, 2)")
    _raises_here(ValueError, lambda: staged(lambda x: x.reshape(5, -1))(a), "(2, 3)", "(5, -1)")
    _raises_here(ValueError, lambda: jnp.concatenate([a, b]), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: jnp.stack([a, b]), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: jnp.einsum("ij,jk->ik", a, b), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: jnp.where(a > 0, a, b), "(2, 3)", "(4, 5)")
    _raises_here(ValueError, lambda: jnp.broadcast_to(a, (3, 3)), "(2, 3)", "(3, 3)")
    _raises_here(IndexError, lambda: jnp.take(a, np.array([9]), mode="raise"), "9")
    _raises_here(TypeError, lambda: jnp.subtract(a > 0, a > 1))
    _raises_here(ValueError, lambda: jnp.max(np.ones((0, 2)), axis=0), "(0, 2)")
    _raises_here(ValueError, lambda: staged(lambda x: x.at[0].set(np.ones(4)))(a), "(4,)", "(3,)")


# ---------------------------------------------------------------------------------------------
# Pinned jaxprs and the end-to-end MLP

def test_pinned_jaxprs():
    x, w, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.ones(4, np.float32)
    assert str(functrans.make_jaxpr(lambda x, w, b: jnp.tanh(x @ w + b))(x, w, b)) == """\
{ lambda ; a:f32[2,3] b:f32[3,4] c:f32[4]. let
    d:f32[2,4] = dot_general[dimension_numbers=(((1,), (0,)), ((), ())), preferred_element_type=None] a b
    e:f32[2,4] = broadcast_in_dim[shape=(2, 4), broadcast_dimensions=(1,)] c
    f:f32[2,4] = add d e
    g:f32[2,4] = tanh f
  in (g,) }"""
    assert str(functrans.make_jaxpr(lambda x: jnp.mean(x * 2.0, axis=0))(x)) == """\
{ lambda ; a:f32[2,3]. let
    b:f32[2,3] = broadcast_in_dim[shape=(2, 3), broadcast_dimensions=()] 2.0:f32[]
    c:f32[2,3] = mul a b
    d:f32[3] = reduce_sum[axes=(0,)] c
    e:f32[3] = broadcast_in_dim[shape=(3,), broadcast_dimensions=()] 2.0:f32[]
    f:f32[3] = div d e
  in (f,) }"""
    assert str(functrans.make_jaxpr(lambda x: x[::-1, 1])(x)) == """\
{ lambda ; a:f32[2,3]. let
    b:f32[2,1] = slice[start_indices=(0, 1), limit_indices=(2, 2), strides=(1, 1)] a
    c:f32[2,1] = rev[dimensions=(0,)] b
    d:f32[2] = reshape[new_sizes=(2,)] c
  in (d,) }"""


def _mlp_loss(np_, w1, b1, w2, b2, x, y):
    h = np_.tanh(x @ w1 + b1)
    logits = h @ w2 + b2
    m = np_.max(logits, axis=1, keepdims=True)
    logp = logits - m - np_.log(np_.sum(np_.exp(logits - m), axis=1, keepdims=True))
    return -np_.mean(np_.take_along_axis(logp, y[:, None], axis=1))


def test_mlp_softmax_cross_entropy_bit_exact():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 5)), rng.integers(0, 3, size=8)
    params = (rng.standard_normal((5, 16)), rng.standard_normal(16),
              rng.standard_normal((16, 3)), rng.standard_normal(3))
    want = _mlp_loss(np, *params, x, y)
    assert _mlp_loss(jnp, *params, x, y) == want
    closed = functrans.make_jaxpr(lambda *p: _mlp_loss(jnp, *p, x, y))(*params)
    assert closed(*params)[0] == want
    listing = str(closed)
    assert "dot_general" in listing and "tanh" in listing and "gather" in listing


def test_logsumexp_stable():
    lse = functrans.scipy.special.logsumexp
    x = np.array([[1e4, 1e4 - 1.0, -np.inf], [-np.inf, -np.inf, -np.inf]])
    from scipy.special import logsumexp as sp_lse
    for axis in [None, 1, (0, 1)]:
        check(lambda x: sp_lse(x, axis=axis), lambda x: lse(x, axis=axis), x)
    check(lambda x: sp_lse(x, axis=0, keepdims=True), lambda x: lse(x, axis=0, keepdims=True),
          np.arange(6.0).reshape(2, 3))


def test_concrete_results_are_arrays_with_jax_methods():
    import functrans as ft
    x = jnp.zeros(3).at[0].set(1.0)
    assert type(x) is ft.Array and not isinstance(x, np.ndarray)
    np.testing.assert_array_equal(x.at[1].add(2.0).block_until_ready(), [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(jnp.arange(4).at[jnp.array([0, 0])].add(1), [2, 1, 2, 3])
    assert repr(jnp.sum(jnp.arange(4))) == "Array(6, dtype=int64)"
    assert all(type(p) is ft.Array for p in jnp.split(jnp.arange(4), 2))
    # like jax.Array: isinstance holds for traced values, not for NumPy arrays
    assert not isinstance(np.ones(2), jnp.ndarray)
    assert ft.grad(lambda v: jnp.sum(v * 2.0) if isinstance(v, ft.Array) else None)(np.ones(2)).tolist() == [2.0, 2.0]
    assert type(ft.lax.add(x, x)) is ft.Array


def test_at_min_max_divide_power_apply_match_numpy():
    import functrans as ft
    x = np.array([5.0, 5.0, 5.0, 5.0])
    i, v = np.array([1, 1, 2]), np.array([3.0, 1.0, 7.0])
    want_min, want_max = x.copy(), x.copy()
    np.minimum.at(want_min, i, v)
    np.maximum.at(want_max, i, v)
    np.testing.assert_array_equal(jnp.asarray(x).at[i].min(v), want_min)
    np.testing.assert_array_equal(jnp.asarray(x).at[i].max(v), want_max)
    m = np.arange(6).reshape(2, 3)
    want = m.copy()
    np.maximum.at(want, (slice(None), 1), np.array([9, 0]))
    np.testing.assert_array_equal(jnp.asarray(m).at[:, 1].max(np.array([9, 0])), want)
    # the winning update gets the cotangent; losers and untouched entries none
    np.testing.assert_array_equal(ft.grad(lambda u: jnp.sum(jnp.asarray(x).at[i].min(u)))(v), [0, 1, 0])
    np.testing.assert_array_equal(ft.jit(lambda u: jnp.asarray(x).at[i].max(u))(v), want_max)
    np.testing.assert_array_equal(jnp.asarray(x).at[1].divide(2.0), [5, 2.5, 5, 5])
    np.testing.assert_array_equal(jnp.asarray(x).at[1].power(2.0), [5, 25, 5, 5])
    np.testing.assert_allclose(jnp.asarray(x).at[1:3].apply(jnp.sqrt), [5, 5 ** 0.5, 5 ** 0.5, 5])


@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.float32])
def test_take_modes_follow_jax(dtype):
    a = np.arange(5).astype(dtype)
    i = np.array([7, -1, -7, 2])
    fill = np.nan if np.dtype(dtype).kind == "f" else np.iinfo(dtype).min
    want = {None: [fill, 4, fill, 2], "fill": [fill, 4, fill, 2], "clip": [4, 0, 0, 2],
            "wrap": [2, 4, 3, 2]}
    for mode, w in want.items():
        got = jnp.take(a, i, mode=mode)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.array(w, dtype=dtype))
        np.testing.assert_array_equal(staged(lambda a, i: jnp.take(a, i, mode=mode))(a, i), got)
    np.testing.assert_array_equal(jnp.take(a, i, fill_value=-3), np.array([-3, 4, -3, 2], dtype))
    np.testing.assert_array_equal(
        jnp.take_along_axis(np.arange(6).astype(dtype).reshape(2, 3), np.array([[5], [-1]]), axis=1),
        np.array([[fill], [5]], dtype))
    with pytest.raises(IndexError):
        jnp.take(a, i, mode="raise")


# ---------------------------------------------------------------------------------------------
# where= in reductions (NumPy's and JAX's semantics: only the selected elements count)

@pytest.mark.parametrize("name,kw", [("sum", {}), ("prod", {}), ("mean", {}), ("var", {}),
                                     ("var", {"ddof": 1}), ("std", {}), ("max", {"initial": -3}),
                                     ("min", {"initial": 3}), ("all", {}), ("any", {})])
@settings(max_examples=10)
@given(shape=st.sampled_from([(4,), (3, 4), (2, 3, 2)]), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.float64, np.float32, np.int32]))
def test_reductions_with_where(name, kw, shape, seed, dtype):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 3).astype(dtype)
    where = rng.random(shape[-1:]) > 0.3             # broadcast against x, as NumPy allows
    for axis in [None, 0, -1]:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = getattr(np, name)(x, axis=axis, where=where, **kw)
        got = getattr(jnp, name)(x, axis=axis, where=where, **kw)
        assert np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_max_with_where_needs_initial_as_numpy():
    with pytest.raises(ValueError, match="initial"):
        jnp.max(np.ones(3), where=np.array([True, False, True]))


def test_masked_reductions_differentiate():
    mask = np.array([[True, False, True], [False, True, True]])
    x = np.random.default_rng(0).normal(size=(2, 3))
    check_grads(lambda v: jnp.mean(v, axis=1, where=mask), (x,), order=2, modes=("fwd", "rev"))
    check_grads(lambda v: jnp.var(v, where=mask, ddof=1), (x,), order=2, modes=("fwd", "rev"))
    g = functrans.grad(lambda v: jnp.sum(v * v, where=mask))(x)
    np.testing.assert_array_equal(g, np.where(mask, 2 * x, 0))
