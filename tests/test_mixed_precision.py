"""Mixed precision (docs/mixed_precision.md): float16 and bfloat16 as dtypes, JAX's promotion
lattice (its documented table is the spec), every op computed in float32 and rounded, eagerly
and under grad/vmap/jit, the loss scalers, and the TypeErrors for ops without 16-bit support."""
import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import optim
from functrans.numpy._base import lattice_join

BF16, F16, F32 = np.dtype(jnp.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
NARROW = [BF16, F16]

# JAX's binary promotion table (docs.jax.dev "Type promotion semantics"), row by row in the
# order of COLS; i*, f*, c* are weak Python int, float and complex.
COLS = "b1 u1 u2 u4 u8 i1 i2 i4 i8 bf f2 f4 f8 c8 c16 i* f* c*".split()
TABLE = """
b1  b1  u1  u2  u4  u8  i1  i2  i4  i8  bf  f2  f4  f8  c8  c16 i*  f*  c*
u1  u1  u1  u2  u4  u8  i2  i2  i4  i8  bf  f2  f4  f8  c8  c16 u1  f*  c*
u2  u2  u2  u2  u4  u8  i4  i4  i4  i8  bf  f2  f4  f8  c8  c16 u2  f*  c*
u4  u4  u4  u4  u4  u8  i8  i8  i8  i8  bf  f2  f4  f8  c8  c16 u4  f*  c*
u8  u8  u8  u8  u8  u8  f*  f*  f*  f*  bf  f2  f4  f8  c8  c16 u8  f*  c*
i1  i1  i2  i4  i8  f*  i1  i2  i4  i8  bf  f2  f4  f8  c8  c16 i1  f*  c*
i2  i2  i2  i4  i8  f*  i2  i2  i4  i8  bf  f2  f4  f8  c8  c16 i2  f*  c*
i4  i4  i4  i4  i8  f*  i4  i4  i4  i8  bf  f2  f4  f8  c8  c16 i4  f*  c*
i8  i8  i8  i8  i8  f*  i8  i8  i8  i8  bf  f2  f4  f8  c8  c16 i8  f*  c*
bf  bf  bf  bf  bf  bf  bf  bf  bf  bf  bf  f4  f4  f8  c8  c16 bf  bf  c8
f2  f2  f2  f2  f2  f2  f2  f2  f2  f2  f4  f2  f4  f8  c8  c16 f2  f2  c8
f4  f4  f4  f4  f4  f4  f4  f4  f4  f4  f4  f4  f4  f8  c8  c16 f4  f4  c8
f8  f8  f8  f8  f8  f8  f8  f8  f8  f8  f8  f8  f8  f8  c16 c16 f8  f8  c16
c8  c8  c8  c8  c8  c8  c8  c8  c8  c8  c8  c8  c8  c16 c8  c16 c8  c8  c8
c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16 c16
i*  i*  u1  u2  u4  u8  i1  i2  i4  i8  bf  f2  f4  f8  c8  c16 i*  f*  c*
f*  f*  f*  f*  f*  f*  f*  f*  f*  f*  bf  f2  f4  f8  c8  c16 f*  f*  c*
c*  c*  c*  c*  c*  c*  c*  c*  c*  c*  c8  c8  c8  c16 c8  c16 c*  c*  c*
"""
ROWS = {r[0]: dict(zip(COLS, r[1:])) for r in map(str.split, TABLE.strip().splitlines())}
DTYPE = {"b1": np.bool_, "u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64,
         "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64, "bf": BF16,
         "f2": np.float16, "f4": np.float32, "f8": np.float64, "c8": np.complex64,
         "c16": np.complex128, "i*": np.int64, "f*": np.float64, "c*": np.complex128}
WEAK = {"i*": int, "f*": float, "c*": complex}
WEAK_VALUE = {"i*": 3, "f*": 1.5, "c*": 1j}


def _key(name):
    return WEAK.get(name) or np.dtype(DTYPE[name])


@pytest.mark.parametrize("row", COLS)
def test_lattice_join_is_jax_table(row):
    for col in COLS:
        assert lattice_join((_key(row), _key(col))) == np.dtype(DTYPE[ROWS[row][col]]), (row, col)


@pytest.mark.parametrize("row", ["bf", "f2"])
def test_operators_and_result_type_promote_as_jax(row):
    x = jnp.ones(2, DTYPE[row])
    for col in COLS:
        want = np.dtype(DTYPE[ROWS[row][col]])
        other = WEAK_VALUE[col] if col in WEAK else jnp.ones(2, DTYPE[col])
        assert (x + other).dtype == want, (row, col)
        assert (other * x).dtype == want, (row, col)
        assert jnp.result_type(x, other) == want, (row, col)
        if col not in WEAK:
            assert jnp.promote_types(DTYPE[row], DTYPE[col]) == want, (row, col)


def test_dtype_basics():
    assert jnp.finfo(jnp.bfloat16).eps == 2.0 ** -7 and jnp.finfo(jnp.float16).eps == 2.0 ** -10
    assert jnp.issubdtype(jnp.bfloat16, jnp.floating) and not jnp.issubdtype(jnp.int8, jnp.floating)
    for dt in NARROW:
        assert jnp.zeros((2, 3), dt).dtype == dt and jnp.ones(3, dt).dtype == dt
        assert jnp.full(2, 1.5, dt).dtype == dt and jnp.arange(4, dtype=dt).dtype == dt
        a = jnp.asarray(np.float32([1.0, 1.00390625, 3.0]))
        np.testing.assert_array_equal(np.asarray(a.astype(dt)),
                                      np.float32([1.0, 1.00390625, 3.0]).astype(dt))
        assert jnp.asarray(np.zeros(2, dt)).dtype == dt
        assert jax.random.normal(jax.random.PRNGKey(0), (3,), dt).dtype == dt
        u = jax.random.uniform(jax.random.PRNGKey(1), (500,), dt)
        assert u.dtype == dt and 0 <= float(u.min()) and float(u.max()) < 1
    assert str(jax.make_jaxpr(lambda x: x * 2)(jnp.ones(2, BF16))).count("bf16[2]") >= 2


RNG = np.random.default_rng(0)
X32 = RNG.uniform(0.1, 2.0, size=(3, 4)).astype(np.float32)
Y32 = RNG.uniform(0.1, 2.0, size=(3, 4)).astype(np.float32)
UNARY = [(jnp.sin, np.sin), (jnp.exp, np.exp), (jnp.tanh, np.tanh), (jnp.log1p, np.log1p),
         (jnp.sqrt, np.sqrt), (jnp.negative, np.negative),
         (jax.nn.relu, lambda a: np.maximum(a, 0)),
         (lambda a: jnp.sum(a, axis=0), lambda a: np.sum(a, axis=0)),
         (jnp.mean, np.mean), (lambda a: jnp.max(a, 1), lambda a: np.max(a, 1)),
         (lambda a: a @ a.T, lambda a: a @ a.T), (jnp.cumsum, lambda a: np.cumsum(a))]
BINARY = [(jnp.add, np.add), (jnp.multiply, np.multiply), (jnp.divide, np.divide),
          (jnp.maximum, np.maximum), (jnp.arctan2, np.arctan2), (jnp.power, np.power)]


@pytest.mark.parametrize("dt", NARROW, ids=str)
def test_ops_are_float32_rounded(dt):
    """Each op's result is its float32 value on the (exactly widened) narrow inputs, rounded
    once to the narrow dtype: what XLA gives on the CPU."""
    x, y = X32.astype(dt), Y32.astype(dt)
    for f, ref in UNARY:
        got = f(jnp.asarray(x))
        want = np.asarray(ref(x.astype(F32))).astype(dt)
        assert got.dtype == dt
        np.testing.assert_array_equal(np.asarray(got).view(np.uint16), want.view(np.uint16))
    for f, ref in BINARY:
        got = f(jnp.asarray(x), jnp.asarray(y))
        want = ref(x.astype(F32), y.astype(F32)).astype(dt)
        assert got.dtype == dt
        np.testing.assert_array_equal(np.asarray(got).view(np.uint16), want.view(np.uint16))


def _mlp_loss(w, x):
    return jnp.mean(jnp.tanh(x @ w) ** 2) + jnp.sum(jax.nn.log_softmax(x @ w))


def _small(w, x):
    return jnp.tanh(x @ w), jnp.exp(w - 20.0) * 3.0    # tiny exps: float16's subnormals


_jit_small = jax.jit(_small)


@pytest.mark.parametrize("dt", NARROW, ids=str)
def test_grad_vmap_jit(dt):
    w, x = jnp.asarray(X32.T[:, :2].astype(dt)), jnp.asarray(Y32.astype(dt))
    loss, g = jax.value_and_grad(_mlp_loss)(w, x)
    assert loss.dtype == dt and g.dtype == dt      # tangents have the primal dtype
    g32 = jax.grad(_mlp_loss)(w.astype(F32), x.astype(F32))
    np.testing.assert_allclose(np.asarray(g, F32), np.asarray(g32), rtol=0.05, atol=0.05)
    _, t = jax.jvp(jnp.sin, (w,), (jnp.ones_like(w),))
    assert t.dtype == dt
    rows = jax.vmap(lambda r: jnp.tanh(r @ w))(x)
    loop = np.stack([np.asarray(jnp.tanh(r @ w)) for r in x])
    assert rows.dtype == dt
    np.testing.assert_array_equal(np.asarray(rows).view(np.uint16), loop.view(np.uint16))
    # jit: compiled in float32, rounded per operation; bit for bit the eager values here
    # (docs/mixed_precision.md says where kernels' float32 exp/tanh/sums may differ by an ulp)
    for got, want in zip(_jit_small(w, x), _small(w, x)):
        assert got.dtype == dt
        np.testing.assert_array_equal(np.asarray(got).view(np.uint16),
                                      np.asarray(want).view(np.uint16))


def _edges(x, y, w):
    return x * y + x, -x, (w * 1.0).astype(BF16), jnp.maximum(x, y), w.astype(BF16) * y


_jit_edges = jax.jit(_edges)
# bfloat16 bits: a quiet NaN, a NaN with a payload (negative), the infinities, the largest
# finite value (doubled: overflows), the smallest subnormal, -0 and 1
_EDGE_BITS = np.array([0x7FC0, 0xFF81, 0x7F80, 0xFF80, 0x7F7F, 0x0001, 0x8000, 0x3F80], np.uint16)
# float32 values halfway between bfloat16 neighbours (ties to even, either way, either sign),
# rounding up past the largest finite value, a NaN whose payload lies in the dropped half,
# and subnormal ties
_TIES = np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800001,
                  0x00008000, 0x80018000], np.uint32).view(F32)


def test_bfloat16_jit_rounds_nan_inf_and_ties_as_eager():
    """bfloat16 arguments enter the kernel as uint16 bits and results leave as bits rounded in
    integer ops (narrow.py): bit for bit the eager values (ml_dtypes' conversions)."""
    x, y = _EDGE_BITS.view(BF16), np.array([2, 2, 0.5, 2, 2, 2, 1, 3], BF16)
    with np.errstate(over="ignore", invalid="ignore"):      # inf - inf, NaN casts: meant
        got, want = _jit_edges(x, y, _TIES), _edges(jnp.asarray(x), jnp.asarray(y), _TIES)
        ties = _TIES.astype(BF16)
    for g, w in zip(got, want):
        assert g.dtype == BF16
        np.testing.assert_array_equal(np.asarray(g).view(np.uint16), np.asarray(w).view(np.uint16))
    np.testing.assert_array_equal(np.asarray(got[2]).view(np.uint16),
                                  ties.view(np.uint16))
    from functrans.backends import narrow
    widened = narrow.widen(jax.make_jaxpr(_edges)(x, y, _TIES))[0].jaxpr
    assert [v.aval.dtype.name for v in widened.invars] == ["uint16", "uint16", "float32"]
    assert {v.aval.dtype.name for v in widened.outvars} == {"uint16"}


def test_master_weights_get_float32_grads():
    w = jnp.asarray(X32.T[:, :2])
    g = jax.grad(lambda w: jnp.sum((jnp.asarray(Y32).astype(BF16) @ w.astype(BF16)) ** 2)
                 .astype(F32))(w)
    assert g.dtype == F32


def test_bfloat16_errors_name_the_op():
    a = jnp.eye(2, dtype=BF16)
    with pytest.raises(TypeError, match="inv.*bfloat16"):
        jnp.linalg.inv(a)
    with pytest.raises(TypeError, match="fft.*bfloat16"):
        jnp.fft.fft(jnp.ones(4, BF16))
    with pytest.raises(TypeError, match="bitwise_and"):
        jnp.bitwise_and(a, a)


def test_dynamic_loss_scale():
    ls = optim.DynamicLossScale(2.0 ** 4, period=3, min_loss_scale=4.0)
    seen = []
    for finite in [True, True, True, False, False, False, True]:
        ls = ls.adjust(finite)
        seen.append((float(ls.loss_scale), int(ls.counter)))
    assert seen == [(16, 1), (16, 2), (32, 0), (16, 0), (8, 0), (4, 0), (4, 1)]
    g = {"w": jnp.ones(2, BF16), "b": jnp.full(3, 0.5, F32)}
    scaled = ls.scale(g)
    assert scaled["w"].dtype == BF16 and float(scaled["w"][0]) == 4.0
    back = ls.unscale(scaled)
    assert back["w"].dtype == BF16 and float(back["b"][0]) == 0.5
    with np.errstate(over="ignore"):
        huge = optim.DynamicLossScale(np.finfo(np.float32).max, period=1).adjust(True)
    assert np.isfinite(float(huge.loss_scale))
    with pytest.raises(ValueError, match="period"):
        optim.DynamicLossScale(1.0, period=0)


def test_loss_scale_skips_non_finite_steps_under_jit():
    @jax.jit
    def step(params, ls, grads):
        grads = ls.unscale(grads)
        ok = optim.all_finite(grads)
        new = jax.tree_util.tree_map(lambda p, g: p - g, params, grads)
        return optim.select_tree(ok, new, params), ls.adjust(ok)

    params = {"w": jnp.ones(2, F32)}
    ls = optim.DynamicLossScale(8.0)
    p1, ls1 = step(params, ls, {"w": jnp.asarray([8.0, 16.0], F32)})
    np.testing.assert_array_equal(np.asarray(p1["w"]), [0.0, -1.0])
    assert float(ls1.loss_scale) == 8.0 and int(ls1.counter) == 1
    p2, ls2 = step(p1, ls1, {"w": jnp.asarray([np.inf, 1.0], F32)})
    np.testing.assert_array_equal(np.asarray(p2["w"]), [0.0, -1.0])
    assert float(ls2.loss_scale) == 4.0 and int(ls2.counter) == 0
    assert not bool(optim.all_finite({"a": jnp.asarray([np.nan], BF16)}))
    static = optim.StaticLossScale(2.0)
    assert float(static.scale(jnp.asarray(3.0)) ) == 6.0 and static.adjust(False) is static
    assert optim.NoOpLossScale().scale(g := {"a": 1.0}) is g


def test_control_flow_and_special_functions_keep_bfloat16():
    b = jnp.asarray([3.0, 1.0, 2.0], BF16)
    assert jax.lax.cond(True, lambda x: x * 2, lambda x: x, b).dtype == BF16
    carry, ys = jax.lax.scan(lambda c, x: (c + x, x * c), b[0], b)
    np.testing.assert_array_equal(np.asarray(ys, F32), [9.0, 6.0, 14.0])
    assert carry.dtype == BF16 and ys.dtype == BF16
    e = jax.scipy.special.erf(b)
    assert e.dtype == BF16
    np.testing.assert_array_equal(np.asarray(e), np.asarray(jax.scipy.special.erf(
        b.astype(F32))).astype(BF16))
    assert jax.grad(lambda x: jnp.sum(jax.scipy.special.erf(x)))(b).dtype == BF16


def test_reduce_precision_is_rounding_to_the_narrow_types():
    x = np.float32([1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, -3.0e38, 7e-39, np.nan, -0.0, 70000.0,
                    1e-6])
    bf = np.asarray(jax.lax.reduce_precision(x, 8, 7))
    ok = ~np.isnan(x)
    np.testing.assert_array_equal(bf[ok].view(np.uint32),
                                  x[ok].astype(BF16).astype(F32).view(np.uint32))
    assert np.isnan(bf[4])
    h = np.asarray(jax.lax.reduce_precision(x, 5, 10))
    assert h[6] == np.inf and h[7] == 0.0       # XLA's: past float16's range inf, below it 0
    np.testing.assert_array_equal(h[:2], x[:2].astype(F16).astype(F32))
    _, t = jax.jvp(lambda v: jax.lax.reduce_precision(v, 8, 7), (x[:2],), (x[:2],))
    np.testing.assert_array_equal(np.asarray(t), bf[:2])      # straight-through, as JAX
    with pytest.raises(TypeError, match="reduce_precision"):
        jax.lax.reduce_precision(np.int32(3), 8, 7)
