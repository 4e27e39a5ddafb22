"""The NumPy functions of issue 16 part 4 (angle conversions, fabs, fmax/fmin, hypot,
logaddexp2, nan_to_num, sinc, select, append, atleast_3d, dsplit, rollaxis, rot90, diag,
diagflat, tril/triu, kron, cross, diff, gradient, partition, r_/c_, einsum's operand-list form
and zero-size operands, power's derivative at 0): values against NumPy eagerly and staged,
derivatives by finite differences, jit against eager, vmap against a loop, NumPy's errors."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functrans
import functrans.numpy as jnp
from functrans.test_util import check_grads, check_vmap
from test_numpy import assert_same, check, rand

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.bool_]
SHAPES = [(), (0,), (1,), (3,), (2, 3), (3, 1), (2, 0), (2, 1, 3)]
seed_st = st.integers(0, 2**16)


def _grads(f, *args):
    check_grads(f, args, order=2, modes=("fwd", "rev"))


# ---------------------------------------------------------------------------------------------
# Elementwise

UNARY = ["deg2rad", "radians", "rad2deg", "degrees", "fabs", "sinc", "nan_to_num"]
BINARY = ["fmax", "fmin", "hypot", "logaddexp2"]
SPECIAL = np.array([0.0, -0.0, 1.5, -2.0, np.inf, -np.inf, np.nan, 1e300, -1e-300, 1e-310])


@settings(max_examples=60)
@given(name=st.sampled_from(UNARY), shape=st.sampled_from(SHAPES),
       dtype=st.sampled_from(DTYPES), seed=seed_st)
def test_unary_values_and_dtypes(name, shape, dtype, seed):
    x = rand(np.random.default_rng(seed), shape, dtype)
    check(getattr(np, name), getattr(jnp, name), x)


@settings(max_examples=60)
@given(name=st.sampled_from(BINARY), shapes=st.sampled_from(
           [((), ()), ((3,), ()), ((2, 3), (3,)), ((2, 1), (1, 3)), ((0,), (1,))]),
       d1=st.sampled_from(DTYPES), d2=st.sampled_from(DTYPES), seed=seed_st)
def test_binary_values_and_dtypes(name, shapes, d1, d2, seed):
    rng = np.random.default_rng(seed)
    check(getattr(np, name), getattr(jnp, name), rand(rng, shapes[0], d1), rand(rng, shapes[1], d2))


@pytest.mark.parametrize("name", UNARY + BINARY)
def test_special_values(name):
    """NaN, infinities, signed zeros, huge and subnormal values as NumPy (hypot does not
    overflow, fmax/fmin skip NaN, hypot(inf, nan) is inf)."""
    if name in UNARY:
        check(getattr(np, name), getattr(jnp, name), SPECIAL)
    else:
        x, y = np.meshgrid(SPECIAL, SPECIAL)
        check(getattr(np, name), getattr(jnp, name), x, y)
        check(getattr(np, name), getattr(jnp, name), x[:, :-3].astype(np.float32), 3.0)


def test_nan_to_num_arguments():
    x = np.array([np.nan, np.inf, -np.inf, 2.0], np.float32)
    for kw in [{}, {"nan": 7.0}, {"posinf": 1e3, "neginf": -5}, {"nan": -1, "posinf": 2}]:
        check(lambda x: np.nan_to_num(x, **kw), lambda x: jnp.nan_to_num(x, **kw), x)
    check(np.nan_to_num, jnp.nan_to_num, np.array([1, 2], np.int32))


def test_select_values_and_dtypes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3))
    i = np.arange(3, dtype=np.int32)
    cases = [
        ([x > 0, x < -1], [x, -x], 0), ([x > 0], [x.astype(np.float32)], 0),
        ([i > 0, i > 1], [i, 2 * i], 0), ([x > 0], [np.array([True, False, True])], 0),
        ([x > 0, x > -1], [1.5, x], np.float32(9)), ([np.array(True)], [i], 7.5),
    ]
    for conds, choices, default in cases:
        check(lambda *a: np.select(conds, choices, default),
              lambda *a: jnp.select(conds, choices, default))
    check(lambda x: np.select([x > 0, x < 0.5], [x, x * 2], -1.0),
          lambda x: jnp.select([x > 0, x < 0.5], [x, x * 2], -1.0), x)


def test_power_derivative_at_zero():
    """As JAX: d/dx x**y at x = 0 is 0 for y > 1 and for integer exponents equal to 0 (arrays
    of them too: x**0 is constant), in every order and both modes; d/dy 0**y is 0. A float
    exponent 0.0 keeps JAX's y * x**(y - 1) = 0 * inf = NaN (docs/nonfinite.md)."""
    def grad_n(f, n):
        for _ in range(n):
            f = functrans.grad(f)
        return f
    for y in [2.0, 2.5, 3.0, 0.0, 1.0, np.array(0), np.array(2), np.int32(0), 0]:
        for n in (1, 2):
            g = grad_n(lambda x: jnp.power(x, y), n)(0.0)
            want = 2.0 if (n == 2 and float(y) == 2.0) else 1.0 if (n, y) == (1, 1.0) else 0.0
            assert float(g) == want, (y, n, g)
    assert float(functrans.jit(functrans.grad(lambda x, y: x ** y))(0.0, 0.0)) == 0.0
    for y in [0.5, 2.0, 0.0]:
        assert float(functrans.grad(lambda y: jnp.power(0.0, y))(y)) == 0.0
        assert float(grad_n(lambda y: jnp.power(0.0, y), 2)(y)) == 0.0
    xs = np.array([0.0, 0.0, 1.5, 0.0])
    ys = np.array([0, 2, 0, 3], np.int32)
    sum_pow = functrans.grad(lambda x: jnp.sum(jnp.power(x, ys)))
    np.testing.assert_array_equal(np.asarray(sum_pow(xs)), [0.0, 0.0, 0.0, 0.0])
    for jac in (functrans.jacfwd, functrans.jacrev):
        np.testing.assert_array_equal(np.asarray(jac(sum_pow)(xs)), np.diag([0.0, 2.0, 0.0, 0.0]))
    traced = functrans.grad(lambda x, y: jnp.sum(jnp.power(x, y)))(xs, ys)
    np.testing.assert_array_equal(np.asarray(traced), [0.0, 0.0, 0.0, 0.0])
    assert_same(jnp.power(np.float32([0, 2, np.nan]), np.int64([0, 3, 0])),
                np.power(np.float32([0, 2, np.nan]), np.int64([0, 3, 0])))
    _grads(lambda x, y: jnp.power(x, y), 1.3, 0.7)
    _grads(lambda x: jnp.power(x, np.array([0, 1, 3])), np.array([0.4, -1.2, 2.0]))


def test_elementwise_gradients():
    x = np.array([0.3, -1.2, 2.5])
    y = np.array([1.1, 0.4, -2.0])
    for f in [jnp.deg2rad, jnp.rad2deg, jnp.fabs, jnp.sinc, jnp.nan_to_num]:
        _grads(f, x)
    for f in [jnp.hypot, jnp.logaddexp2, jnp.fmax, jnp.fmin]:
        _grads(f, x, y)
    _grads(lambda x: jnp.select([x > 0, x < -1], [x ** 2, jnp.sin(x)], x * 3), x)
    # NaN-ignoring: the derivative follows the non-NaN operand
    fmax_sum = lambda a: jnp.sum(jnp.fmax(a, np.array([np.nan, 0.0])))  # noqa: E731
    g = functrans.grad(fmax_sum)(np.array([2.0, 1.0]))
    np.testing.assert_array_equal(np.asarray(g), [1.0, 1.0])


def test_sinc_derivatives_at_zero():
    """sinc'(0) = 0, sinc''(0) = -pi**2 / 3, sinc'''(0) = 0, sinc''''(0) = pi**4 / 5, and the
    finite-difference checks hold at 0 itself."""
    d = jnp.sinc
    want = [1.0, 0.0, -np.pi ** 2 / 3, 0.0, np.pi ** 4 / 5]
    for k, w in enumerate(want):
        np.testing.assert_allclose(float(d(0.0)), w, atol=1e-12)
        d = functrans.grad(d)
    _grads(jnp.sinc, np.array([0.0, 0.1, -1.5]))
    assert jnp.sinc(np.float32(0)).dtype == np.float32


def test_hypot_gradient_at_origin_is_finite():
    g = functrans.grad(jnp.hypot, argnums=(0, 1))(0.0, 0.0)
    assert np.all(np.isfinite(np.asarray(g)))
    np.testing.assert_allclose(np.asarray(functrans.grad(jnp.hypot)(3e200, 4e200)), 0.6)


# ---------------------------------------------------------------------------------------------
# Array manipulation

@settings(max_examples=40)
@given(shape=st.sampled_from([(3,), (2, 3), (2, 1, 3), (0, 2)]), seed=seed_st, data=st.data())
def test_append_rollaxis_rot90(shape, seed, data):
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, np.float32)
    nd = len(shape)
    check(lambda x: np.append(x, [1, 2]), lambda x: jnp.append(x, [1, 2]), x)
    axis = data.draw(st.integers(-nd, nd - 1))
    check(lambda x: np.append(x, x, axis), lambda x: jnp.append(x, x, axis), x)
    start = data.draw(st.integers(-nd, nd))
    check(lambda x: np.rollaxis(x, axis, start), lambda x: jnp.rollaxis(x, axis, start), x)
    if nd >= 2:
        k = data.draw(st.integers(-5, 5))
        axes = tuple(data.draw(st.permutations(range(-nd, nd)))[:2])
        check(lambda x: np.rot90(x, k, axes), lambda x: jnp.rot90(x, k, axes), x)


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4)])
def test_atleast_nd(shape):
    x = np.ones(shape)
    for name in ["atleast_1d", "atleast_2d", "atleast_3d"]:
        check(getattr(np, name), getattr(jnp, name), x)
        check(lambda a, b: getattr(np, name)(a, b), lambda a, b: getattr(jnp, name)(a, b), x, x)


def test_splits():
    x = np.arange(24.0).reshape(2, 3, 4)
    for name, arg in [("dsplit", 2), ("dsplit", [1, 3]), ("hsplit", 3), ("vsplit", [1]),
                      ("array_split", 3)]:
        check(lambda x: getattr(np, name)(x, arg), lambda x: getattr(jnp, name)(x, arg), x)
    with pytest.raises(ValueError):
        jnp.dsplit(np.ones((2, 4)), 2)
    with pytest.raises(ValueError):
        jnp.dsplit(x, 3)      # 4 does not split into 3 equal parts


@settings(max_examples=40)
@given(n=st.integers(0, 4), m=st.integers(0, 4), k=st.integers(-5, 5),
       dtype=st.sampled_from(DTYPES), seed=seed_st)
def test_diag_tril_triu(n, m, k, dtype, seed):
    rng = np.random.default_rng(seed)
    v = rand(rng, (n,), dtype)
    a = rand(rng, (n, m), dtype)
    b = rand(rng, (2, n, m), dtype)
    for np_f, f in [(np.diag, jnp.diag), (np.diagflat, jnp.diagflat)]:
        check(lambda v: np_f(v, k), lambda v: f(v, k), v, exact=True)
        check(lambda a: np_f(a, k), lambda a: f(a, k), a, exact=True)
    for np_f, f in [(np.tril, jnp.tril), (np.triu, jnp.triu)]:
        check(lambda a: np_f(a, k), lambda a: f(a, k), a, exact=True)
        check(lambda b: np_f(b, k), lambda b: f(b, k), b, exact=True)
        check(lambda v: np_f(v, k), lambda v: f(v, k), v, exact=True)


@settings(max_examples=30)
@given(sa=st.sampled_from([(), (2,), (2, 3), (1, 2, 2)]), sb=st.sampled_from([(), (3,), (2, 2)]),
       da=st.sampled_from(DTYPES), db=st.sampled_from(DTYPES), seed=seed_st)
def test_kron(sa, sb, da, db, seed):
    rng = np.random.default_rng(seed)
    check(np.kron, jnp.kron, rand(rng, sa, da), rand(rng, sb, db))


@settings(max_examples=40)
@given(na=st.sampled_from([2, 3]), nb=st.sampled_from([2, 3]),
       lead=st.sampled_from([((), ()), ((4,), ()), ((2, 1), (3,))]),
       dtype=st.sampled_from([np.float32, np.float64, np.int64]), seed=seed_st, data=st.data())
def test_cross(na, nb, lead, dtype, seed, data):
    rng = np.random.default_rng(seed)
    a, b = rand(rng, lead[0] + (na,), dtype), rand(rng, lead[1] + (nb,), dtype)
    ia = data.draw(st.integers(0, a.ndim - 1))
    ib = data.draw(st.integers(0, b.ndim - 1))
    a, b = np.moveaxis(a, -1, ia), np.moveaxis(b, -1, ib)
    out_nd = len(np.broadcast_shapes(lead[0], lead[1])) + 1
    ic = data.draw(st.integers(-out_nd, out_nd - 1))
    kw = dict(axisa=ia, axisb=ib, axisc=ic)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)   # NumPy 2 deprecates 2-vectors
        check(lambda a, b: np.cross(a, b, **kw), lambda a, b: jnp.cross(a, b, **kw), a, b)
    if a.ndim == b.ndim and ia == ib and (na, nb) == (3, 3) and a.shape == b.shape:
        check(lambda a, b: np.cross(a, b, axis=ia), lambda a, b: jnp.cross(a, b, axis=ia), a, b)


@settings(max_examples=50)
@given(shape=st.sampled_from([(4,), (2, 5), (3, 0), (1, 2, 3)]), n=st.integers(0, 5),
       dtype=st.sampled_from(DTYPES), edges=st.sampled_from([None, "scalar", "array"]),
       seed=seed_st, data=st.data())
def test_diff(shape, n, dtype, edges, seed, data):
    rng = np.random.default_rng(seed)
    x = rand(rng, shape, dtype)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    kw = {}
    if edges == "scalar":
        kw = dict(prepend=1, append=0)
    elif edges == "array":
        s = list(shape)
        s[axis] = 2
        kw = dict(append=rand(rng, tuple(s), dtype))
    check(lambda x: np.diff(x, n, axis, **kw), lambda x: jnp.diff(x, n, axis, **kw), x)


@settings(max_examples=40)
@given(shape=st.sampled_from([(3,), (5,), (3, 4), (4, 2, 3)]), edge_order=st.sampled_from([1, 2]),
       spacing=st.sampled_from(["none", "scalar", "coords", "mixed"]),
       dtype=st.sampled_from([np.float32, np.float64, np.int64]), seed=seed_st, data=st.data())
def test_gradient(shape, edge_order, spacing, dtype, seed, data):
    rng = np.random.default_rng(seed)
    f = rand(rng, shape, dtype)
    axis = data.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    axes = list(range(len(shape))) if axis is None else [axis]
    if edge_order == 2 and min(shape[a] for a in axes) < 3:
        return
    coords = [np.cumsum(rng.uniform(0.5, 2.0, shape[a])) for a in axes]
    args = {"none": (), "scalar": (0.7,), "coords": tuple(coords),
            "mixed": tuple(c if i % 2 else 1.5 for i, c in enumerate(coords))}[spacing]
    check(lambda f: np.gradient(f, *args, axis=axis, edge_order=edge_order),
          lambda f: jnp.gradient(f, *args, axis=axis, edge_order=edge_order), f)


def test_gradient_traced_coordinates():
    x = np.cumsum(np.array([0.5, 1.0, 0.7, 1.3, 0.9]))
    f = x ** 3
    def gradients(f, x, h):      # coordinates and a traced scalar spacing: one jit compile
        return [jnp.gradient(f, x, edge_order=eo) for eo in (1, 2)] + [jnp.gradient(f, h)]
    *both, scalar = functrans.jit(gradients)(f, x, 0.7)
    for eo, got in zip((1, 2), both):
        assert_same(got, np.gradient(f, x, edge_order=eo))
    assert_same(scalar, np.gradient(f, 0.7))
    _grads(lambda f, x: jnp.gradient(f, x, edge_order=2), f, x)
    _grads(lambda f, h: jnp.gradient(f, h, edge_order=2), f, 0.7)    # a traced scalar spacing


@settings(max_examples=40)
@given(shape=st.sampled_from([(5,), (3, 4), (2, 3, 2)]), dtype=st.sampled_from(DTYPES),
       seed=seed_st, data=st.data())
def test_partition(shape, dtype, seed, data):
    """The kth element is NumPy's, those before are the smaller ones, those after the larger."""
    x = rand(np.random.default_rng(seed), shape, dtype)
    axis = data.draw(st.sampled_from([None] + list(range(-len(shape), len(shape)))))
    n = x.size if axis is None else shape[axis]
    kth = data.draw(st.integers(-n, n - 1))
    want = np.moveaxis(np.partition(x, kth, axis), -1 if axis is None else axis, -1)
    got = np.moveaxis(np.asarray(jnp.partition(x, kth, axis)), -1 if axis is None else axis, -1)
    assert got.dtype == want.dtype and got.shape == want.shape
    k = kth % n
    np.testing.assert_array_equal(got[..., k], want[..., k])
    np.testing.assert_array_equal(np.sort(got[..., :k], -1), np.sort(want[..., :k], -1))
    np.testing.assert_array_equal(np.sort(got[..., k + 1:], -1), np.sort(want[..., k + 1:], -1))
    idx = np.asarray(jnp.argpartition(x, kth, axis))
    flat = x.reshape(-1) if axis is None else x
    taken = np.take_along_axis(flat, idx, -1 if axis is None else axis)
    np.testing.assert_array_equal(np.moveaxis(taken, -1 if axis is None else axis, -1)[..., k],
                                  want[..., k])


def test_shape_function_gradients():
    rng = np.random.default_rng(1)
    v, a = rng.standard_normal(3), rng.standard_normal((3, 4))
    b3 = rng.standard_normal((2, 3))
    _grads(lambda v: jnp.diag(v, -1), v)
    _grads(lambda a: jnp.diag(a, 1), a)
    _grads(lambda a: jnp.diagflat(a, 2), a[:2, :2])
    _grads(lambda a: jnp.tril(a, -1) + jnp.triu(a, 2), a)
    _grads(jnp.kron, v, a)
    _grads(jnp.cross, b3, b3[::-1])
    _grads(lambda a: jnp.cross(a, v[:2], axisa=0), a[:2])
    _grads(lambda a: jnp.diff(a, 2, axis=1, prepend=1.0), a)
    _grads(lambda a: jnp.gradient(a, 0.5, edge_order=2), a)
    _grads(lambda a: jnp.rot90(a, 3) * 1.0, a)
    _grads(lambda a: jnp.partition(a, 1, axis=1), a)
    _grads(lambda a, v: jnp.append(a, v), a, v)
    _grads(lambda a, v: jnp.r_[v, 0.5, a[0], 1:3], a, v)
    _grads(lambda a, b: jnp.einsum(a, [0, 1], b, [2, 0], [1, 2]), a, b3.T @ b3[:, :3])


# ---------------------------------------------------------------------------------------------
# r_ and c_

R_CASES = [
    lambda m, x: m.r_[0:5, 7], lambda m, x: m.r_[1:2:5j, 3, x[0]],
    lambda m, x: m.r_[x, x], lambda m, x: m.r_[-1, x[1], 0:3],
    lambda m, x: m.r_["0,2", x[0], x[1]], lambda m, x: m.r_["1,2", x, x],
    lambda m, x: m.r_["0,2,0", x[0], x[1]], lambda m, x: m.r_["1,3,-1", x, x],
    lambda m, x: m.r_["-1,2,1", x, x], lambda m, x: m.r_["0,3,1", x[0], x[1]],
    lambda m, x: m.r_[np.float32(2), x.astype(np.float32)],
    lambda m, x: m.r_[2.5, x.astype(np.float32)], lambda m, x: m.r_[x.astype(np.int32), 3],
    lambda m, x: m.c_[x[0], x[1]], lambda m, x: m.c_[x, x], lambda m, x: m.c_[x[0], 1:4],
    lambda m, x: m.c_[x[0], 0:9:3j], lambda m, x: m.r_["1", x, x],
    lambda m, x: m.asarray(m.r_["r", x[0], 5]), lambda m, x: m.asarray(m.r_["c", x[0], 5]),
    lambda m, x: m.r_[True, x[0] > 1],
]


@pytest.mark.parametrize("case", range(len(R_CASES)))
def test_r_c(case):
    x = np.arange(6.0).reshape(2, 3)
    f = R_CASES[case]
    check(lambda x: np.asarray(f(np, x)), lambda x: f(jnp, x), x)


def test_r_c_errors():
    with pytest.raises(ValueError, match="directive"):
        jnp.r_["x,y", [1]]
    with pytest.raises(ValueError, match="first"):
        jnp.r_[[1], "0"]
    assert len(jnp.r_) == 0


# ---------------------------------------------------------------------------------------------
# einsum

EINSUM_CASES = [
    ([(2, 3), [0, 1], (3, 4), [1, 2], [0, 2]]), ([(2, 3), [0, 1], (3, 4), [1, 2]]),
    ([(2, 3), [30, 0]]), ([(2, 3), [1, 0]]), ([(5, 2, 3), [Ellipsis, 0, 1], (3,), [1]]),
    ([(5, 2, 3), [Ellipsis, 0, 1], (3,), [1], [1, Ellipsis, 0]]), ([(3, 3), [4, 4], []]),
    ([(2, 3), [51, 0], (3,), [0], [51]]),
]


@pytest.mark.parametrize("case", range(len(EINSUM_CASES)))
def test_einsum_operand_lists(case):
    rng = np.random.default_rng(case)
    spec = list(EINSUM_CASES[case])
    ops = [rng.standard_normal(s) if isinstance(s, tuple) else s for s in spec]
    arrays = [o for o in ops if isinstance(o, np.ndarray)]

    def build(*xs):
        it = iter(xs)
        return [next(it) if isinstance(o, np.ndarray) else o for o in ops]
    check(lambda *xs: np.einsum(*build(*xs)), lambda *xs: jnp.einsum(*build(*xs)), *arrays)


@pytest.mark.parametrize("spec, shapes", [
    ("...ij,...jk", [(0, 2, 2), (0, 2, 2)]), ("...ij,...jk", [(0, 2, 2), (1, 2, 2)]),
    ("i...,i...", [(0, 2), (0, 2)]), ("ij,jk->ik", [(2, 0), (0, 3)]), ("ij->", [(0, 3)]),
    ("...ij,ij", [(0, 2, 2), (2, 2)]), ("Ab...", [(2, 3, 4)]), ("bA,Ac->bc", [(2, 3), (3, 4)]),
])
def test_einsum_zero_size_and_upper_case(spec, shapes):
    rng = np.random.default_rng(0)
    check(lambda *a: np.einsum(spec, *a), lambda *a: jnp.einsum(spec, *a),
          *[rng.standard_normal(s) for s in shapes])


def test_einsum_operand_list_errors():
    with pytest.raises(ValueError, match="range"):
        jnp.einsum(np.ones(2), [52])
    with pytest.raises(TypeError):
        jnp.einsum(np.ones(2), ["a"])


# ---------------------------------------------------------------------------------------------
# jit against eager (one compile for many functions), vmap against a loop

def _bundle(x, v, c):
    """Many of the new functions at once, so that one jit compile covers them."""
    return [jnp.deg2rad(x), jnp.rad2deg(x), jnp.fabs(x), jnp.fmax(x, c), jnp.fmin(x, c),
            jnp.hypot(x, c), jnp.logaddexp2(x, c), jnp.nan_to_num(jnp.log(x)), jnp.sinc(x),
            jnp.select([x > 0.5, x < -0.5], [x, 2 * x], 0.25), jnp.append(x, v),
            jnp.atleast_3d(v), jnp.rollaxis(x, 1), jnp.rot90(x), jnp.diag(v, 1), jnp.diag(x),
            jnp.diagflat(v), jnp.tril(x), jnp.triu(x, 1), jnp.kron(v, x),
            jnp.cross(x[:, :3], c[:, :3]), jnp.diff(x, 2), jnp.gradient(x, 0.3, edge_order=2)[1],
            jnp.partition(x, 2), jnp.argpartition(x, 1, axis=0), jnp.r_[v, 1.0, 0:2],
            jnp.c_[v, v], jnp.einsum(x, [0, 1], c, [0, 1], [1]), jnp.dsplit(x[None], 2)[1],
            jnp.power(x, 0.0), jnp.power(jnp.abs(x), c)]


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_jit_matches_eager():
    rng = np.random.default_rng(3)
    x, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    c[0, 0] = np.nan
    v = rng.standard_normal(3)
    eager = _bundle(x, v, c)
    jitted = functrans.jit(_bundle)(x, v, c)
    assert len(eager) == len(jitted)
    for e, j in zip(eager, jitted):
        assert_same(j, np.asarray(e))


@pytest.mark.filterwarnings("ignore:invalid value encountered in log")
def test_vmap_matches_loop():
    rng = np.random.default_rng(4)
    xs, cs = rng.standard_normal((3, 3, 4)), rng.standard_normal((3, 3, 4))
    vs = rng.standard_normal((3, 3))
    for f in [jnp.hypot, jnp.fmax, jnp.logaddexp2, lambda x, c: jnp.cross(x[:, :3], c[:, :3]),
              lambda x, c: jnp.select([x > 0], [c], x), lambda x, c: jnp.kron(x, c[0])]:
        check_vmap(f, (xs, cs))
    for f in [jnp.sinc, jnp.tril, lambda x: jnp.rot90(x, 1), lambda x: jnp.diff(x, 1, axis=0),
              lambda x: jnp.gradient(x, axis=1), lambda x: jnp.partition(x, 1),
              lambda x: jnp.nan_to_num(jnp.log(x)), lambda x: jnp.r_["0,2", x[0], x[1]]]:
        check_vmap(f, (xs,))
    for f in [jnp.diag, jnp.diagflat, lambda v: jnp.append(v, 1.0)]:
        check_vmap(f, (vs,))
    check_vmap(lambda x, v: jnp.gradient(x[:, 0], v, edge_order=2), (xs, vs))


# ---------------------------------------------------------------------------------------------
# Bad input: NumPy's error types

@pytest.mark.parametrize("call", [
    lambda m: m.rollaxis(np.ones((2, 3)), 2), lambda m: m.rollaxis(np.ones((2, 3)), 0, 3),
    lambda m: m.rot90(np.ones((2, 3)), axes=(0, 0)),
    lambda m: m.rot90(np.ones((2, 3)), axes=(0, 2)),
    lambda m: m.rot90(np.ones((2, 3)), axes=(0,)), lambda m: m.diag(np.ones((2, 2, 2))),
    lambda m: m.cross(np.ones(4), np.ones(3)), lambda m: m.cross(np.ones(3), np.ones(3), axisa=1),
    lambda m: m.cross(np.ones((2, 3)), np.ones((3, 3))),
    lambda m: m.diff(np.ones(3), -1), lambda m: m.diff(np.float64(1.0)),
    lambda m: m.diff(np.ones(3), axis=1), lambda m: m.gradient(np.ones(2), edge_order=2),
    lambda m: m.gradient(np.ones(3), edge_order=3), lambda m: m.gradient(np.ones(3), [1.0, 2.0]),
    lambda m: m.gradient(np.ones((3, 3)), 1.0, 2.0, 3.0), lambda m: m.gradient(np.ones(3), axis=1),
    lambda m: m.gradient(np.array([True, False, True])),
    lambda m: m.partition(np.ones(3), 3), lambda m: m.partition(np.ones(3), 0, axis=1),
    lambda m: m.select([np.ones(2)], [np.ones(2)]), lambda m: m.select([], []),
    lambda m: m.select([np.ones(2) > 0], [np.ones(2), np.ones(2)]),
    lambda m: m.append(np.ones((2, 2)), np.ones(3), axis=0), lambda m: m.dsplit(np.ones(3), 1),
    lambda m: m.hsplit(np.float64(1.0), 1), lambda m: m.vsplit(np.ones(4), 2),
    lambda m: m.fabs(np.ones(2, np.complex128)), lambda m: m.hypot(np.ones(2), np.ones(3)),
    lambda m: m.einsum(np.ones(2), [0], np.ones(3), [0]),
])
def test_errors_as_numpy(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as want:
            call(np)
    with pytest.raises(type(want.value)):
        call(jnp)
