"""jit on the numba CPU backend: every lowered primitive against its eager impl, transform
compositions, shape-erased compilation (compile counter), the disk cache across processes and
recovery from a corrupt cache. Kernels are grouped so that the suite compiles few of them."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans
import functrans.numpy as fnp
from functrans import backends, lax
from functrans.backends import numba_cpu
from functrans.interpreters import batching
from functrans.lax import control_flow as cf
from functrans.lax import slicing as sl
from functrans.tree_util import tree_leaves

SPECIALS = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-30, -1e30, 3.5, -2.25, 88.0, -100.0]


def _close(got, want, rtol, atol=0.0):
    for i, (g, w) in enumerate(zip(tree_leaves(got), tree_leaves(want))):
        g, w = np.asarray(g), np.asarray(w)
        assert g.dtype == w.dtype, (i, g.dtype, w.dtype)
        assert g.shape == w.shape, (i, g.shape, w.shape)
        if g.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"output {i}")
        else:
            np.testing.assert_array_equal(g, w, err_msg=f"output {i}")


def _float_arrays(dtype, max_dims=2):
    def build(shape_vals):
        shape, vals = shape_vals
        n = int(np.prod(shape))
        return np.resize(np.asarray(vals, dtype), n).reshape(shape) if n else np.zeros(shape, dtype)
    shapes = st.lists(st.integers(0, 4), min_size=max_dims, max_size=max_dims).map(tuple)
    vals = st.lists(st.one_of(st.sampled_from(SPECIALS),
                              st.floats(-50, 50, width=32)), min_size=1, max_size=20)
    return st.tuples(shapes, vals).map(build)


# ---------------------------------------------------------------------------------------------
# Coverage: every primitive with an impl has a lowering

def test_every_primitive_lowers():
    names = {p.name for p in functrans.core.impl_rules}
    # collectives never reach a backend: the vmap binding their axis rewrites them into other
    # primitives, and an unbound name fails at trace time (tests/test_collectives.py)
    collectives = {p.name for p in batching.collective_axes}
    missing = sorted(names - numba_cpu.lowerable_primitives() - collectives
                     - {"custom_lin"})  # custom_lin's impl always raises (jvp of custom_vjp)
    assert not missing, f"primitives without a numba lowering: {missing}"


def test_missing_lowering_names_primitive():
    from functrans.core import Primitive, abstract_eval_rules, impl_rules
    p = Primitive("mystery_op")
    impl_rules[p] = lambda x: x
    abstract_eval_rules[p] = lambda x: x
    try:
        with pytest.raises(NotImplementedError, match="mystery_op"):
            functrans.jit(lambda x: p.bind(x)).lower(np.ones(3))
    finally:
        del impl_rules[p], abstract_eval_rules[p]


# ---------------------------------------------------------------------------------------------
# Elementwise float ops (one kernel per dtype)

UNARY = ["neg", "sign", "floor", "ceil", "round", "is_finite", "abs", "exp", "exp2", "log",
         "log1p", "expm1", "tanh", "logistic", "sin", "cos", "tan", "asin", "acos", "atan",
         "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt", "erf"]
BINARY = ["add", "sub", "mul", "div", "rem", "pow", "max", "min", "atan2", "eq", "ne", "lt",
          "le", "gt", "ge"]


def _float_ops(x, y):
    outs = [getattr(lax, n if n not in ("round", "abs", "max", "min", "pow") else n)(x)
            for n in UNARY if n not in ("is_finite",)]
    outs.append(lax.is_finite(x))
    outs += [getattr(lax, n)(x, y) for n in BINARY]
    outs += [lax.integer_pow(x, 3), lax.integer_pow(x, -2), lax.square(x),
             lax.select(lax.gt(x, y), x, y), lax.convert_element_type(x, np.int32),
             lax.convert_element_type(x, np.bool_), lax.stop_gradient(x)]
    return outs


_jit_float_ops = functrans.jit(_float_ops)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@given(data=st.data())
@settings(max_examples=8)
def test_float_elementwise(dtype, data):
    x = data.draw(_float_arrays(dtype))
    y = data.draw(_float_arrays(dtype).filter(lambda a: True)).ravel()
    y = np.resize(y if y.size else np.ones(1, dtype), x.size).reshape(x.shape).astype(dtype)
    with np.errstate(all="ignore"):
        want = _float_ops(x, y)
        got = _jit_float_ops(x, y)
    finite_int = [i for i, w in enumerate(want) if w.dtype == np.int32]
    for i in finite_int:  # float -> int of nan/inf/out of range is undefined in C and numpy
        ok = np.isfinite(x) & (np.abs(x) < 2 ** 31)
        got[i], want[i] = np.where(ok, got[i], 0), np.where(ok, want[i], 0)
    _close(got, want, rtol=2e-5 if dtype == np.float32 else 1e-12, atol=1e-30)


# ---------------------------------------------------------------------------------------------
# Integer ops: wrap-around, division towards zero, x / 0 == 0, shifts

def _int_ops(x, y):
    return [lax.add(x, y), lax.sub(x, y), lax.mul(x, y), lax.div(x, y), lax.rem(x, y),
            lax.max(x, y), lax.min(x, y), lax.bitwise_and(x, y), lax.bitwise_or(x, y),
            lax.bitwise_xor(x, y), lax.neg(x), lax.abs(x), lax.sign(x), lax.bitwise_not(x),
            lax.integer_pow(x, 3), lax.eq(x, y), lax.lt(x, y), lax.ge(x, y),
            lax.shift_left(x, lax.rem(lax.abs(y), lax.full(y.shape, 9, y.dtype))),
            lax.shift_right_logical(x, lax.rem(lax.abs(y), lax.full(y.shape, 9, y.dtype))),
            lax.reduce_sum(x, (0,)), lax.reduce_prod(x, (0,)), lax.reduce_max(x, (0,)),
            lax.convert_element_type(x, np.float32)]


_jit_int_ops = functrans.jit(_int_ops)


@pytest.mark.parametrize("dtype", [np.int8, np.int64])
@given(data=st.data())
@settings(max_examples=8)
def test_int_elementwise(dtype, data):
    info = np.iinfo(dtype)
    vals = st.one_of(st.sampled_from([info.min, info.max, 0, -1, 1, -7, 7]),
                     st.integers(info.min, info.max))
    n = data.draw(st.integers(1, 6))
    x = np.array(data.draw(st.lists(vals, min_size=n * 2, max_size=n * 2)), dtype).reshape(n, 2)
    y = np.array(data.draw(st.lists(vals, min_size=n * 2, max_size=n * 2)), dtype).reshape(n, 2)
    with np.errstate(all="ignore"):
        want = _int_ops(x, y)
    got = _jit_int_ops(x, y)
    _close(got, want, rtol=0)


# ---------------------------------------------------------------------------------------------
# Reductions, shape ops, dot_general, cumulative ops (float32 and int32)

def _structural(x, m):
    # x: (a, b), m: (b, c)
    a, b = x.shape
    bx = lax.broadcast_in_dim(x, (3, a, b), (1, 2))
    return [
        lax.reduce_sum(x, (0,)), lax.reduce_sum(x, (1,)), lax.reduce_sum(x, (0, 1)),
        lax.reduce_max(bx, (0, 2)), lax.reduce_min(x, (1,)), lax.reduce_prod(x, (1,)),
        lax.argmax(x, 1, np.int32), lax.argmin(x, 0, np.int64),
        lax.cumsum(x, 1), lax.cumprod(x, 0, reverse=True), lax.cummax(x, 1), lax.cummin(x, 0),
        lax.transpose(x, (1, 0)), lax.rev(x, (0,)), lax.reshape(x, (b, a)),
        lax.squeeze(lax.reshape(x, (1, a, b)), (0,)), lax.expand_dims(x, (1,)),
        sl.slice(x, (0, 1), (a, b), (2, 1)), sl.pad(x, np.array(7, x.dtype), ((1, -1, 1), (0, 2, 0))),
        sl.concatenate([x, lax.neg(x)], 1),
        lax.broadcasted_iota(x.dtype, (a, 3), 0),
        lax.dot_general(x, m, (((1,), (0,)), ((), ()))),
        lax.dot_general(m, x, (((0,), (1,)), ((), ()))),
        lax.dot_general(bx, bx, (((2,), (2,)), ((0,), (0,)))),
        lax.add(lax.reduce_sum(bx, (0,)), x),
    ]


_jit_structural = functrans.jit(_structural)


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
@given(a=st.integers(1, 4), b=st.integers(2, 5), c=st.integers(0, 3), seed=st.integers(0, 99))
@settings(max_examples=6)
def test_structural_ops(dtype, a, b, c, seed):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(a, b)) * 3).astype(dtype)
    m = (rng.normal(size=(b, c)) * 3).astype(dtype)
    with np.errstate(all="ignore"):
        want = _structural(x, m)
    _close(_jit_structural(x, m), want, rtol=1e-5, atol=1e-5)


def test_reductions_propagate_nan_and_size_zero():
    f = functrans.jit(lambda x: [lax.reduce_max(x, (1,)), lax.reduce_sum(x, (1,)),
                                 lax.argmax(x, 1, np.int32), lax.reduce_min(x, (1,))])
    x = np.array([[1.0, np.nan, 3.0], [-0.0, 0.0, -1.0]], np.float32)
    _close(f(x), [np.max(x, 1), np.sum(x, 1), np.argmax(x, 1).astype(np.int32), np.min(x, 1)], 0)
    g = functrans.jit(lambda x: [lax.reduce_sum(x, (0,)), lax.tanh(x)])
    z = np.zeros((0, 3), np.float32)
    _close(g(z), [np.zeros(3, np.float32), z], 0)


def test_pad_of_a_scalar():
    """A 0-d pad (an empty padding config) is a copy; numba has no fill() for 0-d arrays, which
    the lowering used (found by tests/test_fuzz.py: ``lax_pad(v0, config=[])``)."""
    f = functrans.jit(lambda x, v: [sl.pad(x, np.float32(0), []), sl.pad(x, v, [])])
    x, v = np.float32(0.5), np.float32(2.0)
    _close(f(x, v), [np.float32(0.5), np.float32(0.5)], 0)


# ---------------------------------------------------------------------------------------------
# Slicing family and control flow

def _indexing_and_control(x, i):
    def body(c, xi):
        c2 = c + xi * xi
        return c2, fnp.tanh(c2)
    c, ys = cf.scan(body, fnp.zeros((x.shape[1],), x.dtype), x)
    _, ys_r = cf.scan(body, c, x, reverse=True)
    w = cf.while_loop(lambda v: v[0] < 10, lambda v: (v[0] + 1, v[1] * 1.1), (0, c))
    r = cf.cond(i > 0, lambda a: fnp.exp(a), lambda a: -a, c)
    idx = np.array([[1], [0], [7], [-3]], np.int64)
    return [ys, ys_r, w, r, sl.gather(x, idx, (0,)),
            sl.scatter_add(x, np.array([[1], [1], [9]]), np.ones((3, 3), x.dtype), (0,)),
            sl.scatter(x, np.array([[0], [0]]), np.full((2, 3), 5, x.dtype), (0,)),
            sl.scatter_mul(x, np.array([[1, 2]]), np.full((1,), 3, x.dtype), (0, 1)),
            sl.dynamic_slice(x, (i, 1), (2, 2)),
            sl.dynamic_update_slice(x, np.zeros((2, 2), x.dtype), (i, 5)),
            sl.sort(x, dimension=0), sl.sort(x, x * 2, dimension=1, num_keys=1)]


_jit_indexing = functrans.jit(_indexing_and_control)


@pytest.mark.parametrize("i", [-2, 0, 1, 3])
def test_indexing_and_control_flow(i):
    x = np.random.default_rng(i + 5).normal(size=(4, 3)).astype(np.float32)
    x[1, 1] = np.nan
    _close(_jit_indexing(x, i), _indexing_and_control(x, i), rtol=1e-5, atol=1e-6)


def test_nested_jit_is_inlined():
    inner = functrans.jit(lambda x: fnp.sin(x) * 2)
    outer = functrans.jit(lambda x: inner(x) + inner(x * 3))
    x = np.linspace(-1, 1, 7).astype(np.float32)
    np.testing.assert_allclose(outer(x), np.sin(x) * 2 + np.sin(3 * x) * 2, rtol=1e-6)
    src = outer.lower(x).as_text()
    assert "kernel(" in src and src.count("def ") == 1


# ---------------------------------------------------------------------------------------------
# Transform matrix on small random programs

OPS1 = [fnp.tanh, fnp.sin, fnp.exp, lambda v: v * v, lambda v: fnp.log1p(v * v),
        lambda v: fnp.maximum(v, 0.1 * v), lambda v: v / (1 + v * v)]


@given(prog=st.lists(st.integers(0, len(OPS1) - 1), min_size=1, max_size=3),
       n=st.integers(1, 4), seed=st.integers(0, 9))
@settings(max_examples=4)
def test_transform_matrix(prog, n, seed):
    def f(x):
        for k in prog:
            x = OPS1[k](x)
        return fnp.sum(x * x)
    x = np.random.default_rng(seed).normal(size=(n, 3))
    _close(functrans.jit(f)(x), f(x), 1e-10)
    _close(functrans.jit(functrans.grad(f))(x), functrans.grad(f)(x), 1e-9, 1e-12)
    _close(functrans.grad(functrans.jit(f))(x), functrans.grad(f)(x), 1e-9, 1e-12)
    _close(functrans.vmap(functrans.jit(f))(x), functrans.vmap(f)(x), 1e-10)


def test_mlp_step_matches_eager():
    def loss(params, x, y):
        (w1, b1), (w2, b2) = params
        h = fnp.maximum(x @ w1 + b1, 0)
        logits = h @ w2 + b2
        logits = logits - fnp.max(logits, axis=1, keepdims=True)
        logp = logits - fnp.log(fnp.sum(fnp.exp(logits), axis=1, keepdims=True))
        return -fnp.mean(fnp.sum(logp * y, axis=1))
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(6, 5)).astype(np.float32) * 0.3, np.zeros(5, np.float32)),
              (rng.normal(size=(5, 3)).astype(np.float32) * 0.3, np.zeros(3, np.float32))]
    x = rng.normal(size=(4, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 2, 1, 0]]
    g = functrans.jit(functrans.value_and_grad(loss))
    _close(g(params, x, y), functrans.value_and_grad(loss)(params, x, y), 1e-5, 1e-6)


# ---------------------------------------------------------------------------------------------
# Shape-erased compilation and the compile counter

def test_compile_counter_shape_erasure():
    f = functrans.jit(lambda x, w: fnp.tanh(x @ w) * 2.5 + fnp.sum(x, axis=-1, keepdims=True))
    w = np.ones((3, 2), np.float64) * 0.1
    f(np.ones((5, 3)), w)  # may compile or load from the disk cache
    c = backends.compile_count()
    f(np.ones((5, 3)), w)
    assert backends.compile_count() == c                     # same signature
    out = f(np.ones((9, 3)), w)                              # new batch size: retrace only
    assert backends.compile_count() == c and f.trace_count == 2
    np.testing.assert_allclose(out, np.tanh(np.ones((9, 3)) @ w) * 2.5 + 3)
    s0 = backends.compile_stats()
    f(np.ones((5, 3), np.float32), w.astype(np.float32))     # new dtype: one compile or disk load
    f(np.ones((2, 5, 3), np.float32), w.astype(np.float32))  # new rank: one more
    s1 = backends.compile_stats()
    assert (s1["compiles"] + s1["disk_loads"]) - (s0["compiles"] + s0["disk_loads"]) == 2
    low5, low9 = f.lower(np.ones((5, 3)), w), f.lower(np.ones((9, 3)), w)
    assert low5.as_text() == low9.as_text()          # shape-erased: sizes live in .dims
    assert list(low5.dims) != list(low9.dims)


# ---------------------------------------------------------------------------------------------
# The disk cache across processes; corrupt and unwritable caches

_SCRIPT = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {root!r})
    import numpy as np, functrans, functrans.numpy as fnp
    from functrans import backends
    f = functrans.jit(lambda x: fnp.sum(fnp.tanh(x) * {k} + fnp.exp(-x * x)))
    v = f(np.linspace(-2, 2, 100).astype(np.float32))
    print(backends.compile_stats()["compiles"], backends.compile_stats()["disk_loads"], float(v))
""")


def _run(tmp_path, k, cache):
    env = dict(os.environ, FUNCTRANS_CACHE_DIR=str(cache), FUNCTRANS_LOG_COMPILES="1")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", _SCRIPT.format(root=root, k=k)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    compiles, loads, val = p.stdout.split()
    return int(compiles), int(loads), float(val), p.stderr


def test_second_process_uses_disk_cache(tmp_path):
    cache = tmp_path / "cache"
    c1, l1, v1, _ = _run(tmp_path, 3, cache)
    c2, l2, v2, log = _run(tmp_path, 3, cache)
    assert (c1, l1) == (1, 0) and (c2, l2) == (0, 1) and v1 == v2
    assert "from the disk cache" in log
    # corrupt every cached file: the next process recovers (recompiles) and gives the same value
    for root, _, files in os.walk(cache):
        for fn in files:
            with open(os.path.join(root, fn), "wb") as fh:
                fh.write(b"\x00garbage")
    c3, l3, v3, _ = _run(tmp_path, 3, cache)
    assert v3 == v1 and c3 + l3 == 1
    c4, l4, v4, _ = _run(tmp_path, 3, cache)        # the recompile repaired the entries
    assert (c4, l4, v4) == (0, 1, v1)


def test_unwritable_cache_dir_warns_once(tmp_path, monkeypatch):
    from functrans.backends import cache
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FUNCTRANS_CACHE_DIR", str(blocker / "sub"))
    monkeypatch.setattr(cache, "_warned", False)
    f = functrans.jit(lambda x: fnp.cos(x) * 3.25 - 1)
    with pytest.warns(RuntimeWarning, match="not writable"):
        out = f(np.arange(4.0))
    np.testing.assert_allclose(out, np.cos(np.arange(4.0)) * 3.25 - 1)


# ---------------------------------------------------------------------------------------------
# Vectorisable float32 transcendentals over the whole float range

def _all_f32_sample():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2 ** 32, size=200_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    extra = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1.17549435e-38,
                      3.4028235e38, -3.4028235e38, 88.72, 88.73, -87.33, -103.9, -104.0, 1.0,
                      0.625, -0.625, 9.0, -9.0], np.float32)
    return np.concatenate([x, extra, np.linspace(-20, 20, 20001, dtype=np.float32)])


@np.errstate(invalid="ignore")  # NaN and Inf entries are compared on purpose
def _ulp_err(got, want):
    got, want = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(got) & np.isnan(want)
    same = (got == want) | both_nan
    spacing = np.spacing(np.abs(want).astype(np.float32)).astype(np.float64)
    err = np.where(same, 0, np.abs(got - want) / spacing)
    return np.where(np.isnan(err), np.inf, err)


@pytest.mark.parametrize("name,ref,max_ulp", [
    ("exp", np.exp, 2), ("log", np.log, 2), ("tanh", np.tanh, 4), ("logistic", None, 4),
    ("sin", np.sin, 1), ("cos", np.cos, 1)])
def test_vmath_f32_accuracy(name, ref, max_ulp):
    from functrans.backends import vmath
    import numba
    fn = getattr(vmath, f"{name}_f32")

    @numba.njit
    def kern(a, out):
        for i in range(a.size):
            out[i] = fn(a[i])
    x = _all_f32_sample()
    if name in ("sin", "cos"):   # near multiples of pi/2, huge arguments (table reduction path)
        k = np.arange(-3000, 3000, dtype=np.float64)
        x = np.concatenate([x, (k * np.pi / 2).astype(np.float32),
                            np.float32(8388608.0) * np.arange(1, 200, dtype=np.float32)])
    out = np.empty_like(x)
    kern(x, out)
    if name == "sin":
        assert np.signbit(out[x == 0]).tolist() == np.signbit(x[x == 0]).tolist()
    with np.errstate(all="ignore"):
        want = (1 / (1 + np.exp(-x.astype(np.float64)))).astype(np.float32) if ref is None \
            else ref(x.astype(np.float64)).astype(np.float32)
    tiny = np.abs(want) < 1.2e-38   # denormal results: absolute error
    with np.errstate(invalid="ignore"):
        err = np.where(tiny, np.abs(out.astype(np.float64) - want) / 1.4e-45 / 4, _ulp_err(out, want))
    worst = int(np.argmax(err))
    assert err.max() <= max_ulp, f"{name}({x[worst]!r}) = {out[worst]!r}, want {want[worst]!r}"


@pytest.mark.parametrize("name", ["sin", "cos"])
def test_table_free_trig_is_bit_identical_below_2_23(name):
    from functrans.backends import vmath
    import numba
    full, small = getattr(vmath, f"{name}_f32"), getattr(vmath, f"{name}_f32_small")

    @numba.njit
    def kern(a, o1, o2):
        for i in range(a.size):
            o1[i], o2[i] = full(a[i]), small(a[i])
    x = _all_f32_sample()
    x = x[np.abs(x) < 8388608.0]
    k = np.arange(-3000, 3000, dtype=np.float64)
    x = np.concatenate([x, (k * np.pi / 2).astype(np.float32), np.float32([8388607.5, -0.0])])
    o1, o2 = np.empty_like(x), np.empty_like(x)
    kern(x, o1, o2)
    assert np.array_equal(o1.view(np.uint32), o2.view(np.uint32))


@pytest.mark.parametrize("far", [None, 8388608.0, 3e38, np.inf, -np.inf, np.nan])
def test_trig_loops_rerun_when_an_argument_is_far(far):
    # a fused loop with float32 sin/cos runs table-free first and reruns in full when any
    # argument is non-finite or |x| >= 2**23: both passes must give the eager result
    x = np.random.default_rng(0).normal(size=300).astype(np.float32) * 4
    if far is not None:
        x[17] = far
    f = functrans.jit(lambda v: (fnp.sum(fnp.sin(v) * fnp.cos(2 * v)), fnp.sin(v) + 1))
    low = f.lower(x).as_text()
    assert "sin_f32_small(" in low and "sin_f32(" in low
    with np.errstate(all="ignore"):
        want = (np.sum(np.sin(x) * np.cos(2 * x), dtype=np.float64), np.sin(x) + 1)
    got = f(x)
    np.testing.assert_allclose(got[1], want[1], rtol=2e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(float(got[0]), want[0], rtol=1e-5, atol=1e-4, equal_nan=True)


# ---------------------------------------------------------------------------------------------
# CPU plan rewrites and split (multi-kernel) execution

def _per_example_setup():
    rng = np.random.default_rng(5)
    params = [(rng.normal(size=(6, 5)).astype(np.float32), np.zeros(5, np.float32)),
              (rng.normal(size=(5, 3)).astype(np.float32), np.zeros(3, np.float32))]
    x = rng.normal(size=(4, 6)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[[0, 2, 1, 0]]

    def loss(params, xi, yi):
        h = xi[None]
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i == 0:
                h = fnp.maximum(h, 0)
        logp = h - fnp.log(fnp.sum(fnp.exp(h), axis=1, keepdims=True))
        return -fnp.sum(logp * yi[None])
    return functrans.vmap(functrans.grad(loss), in_axes=(None, 0, 0)), params, x, y


def test_per_example_grads_fuse_outer_products_and_split():
    from functrans.backends import SplitLowered
    pe, params, x, y = _per_example_setup()
    f = functrans.jit(pe)
    _close(f(params, x, y), pe(params, x, y), rtol=2e-5, atol=1e-6)
    low = f.lower(params, x, y)
    assert isinstance(low, SplitLowered)        # big enough to be split into several kernels
    kernels = [p for k, p in low.parts if k == "kernel"]
    numpy_ops = [p.primitive.name for k, p in low.parts if k == "numpy"]
    assert len(kernels) >= 2 and set(numpy_ops) == {"dot_general"}
    # the per-example weight gradients (outer products, K=1) are fused loops, not dot_generals
    from functrans.backends.plan import _outer_dims
    assert not any(e.primitive.name == "dot_general" and _outer_dims(e) is not None
                   for k, e in low.parts if k == "numpy")
    assert "kernel 1" in low.as_text() and len(low.dims) > 0


def test_outer_product_with_transpose_folded():
    from functrans.backends import plan
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    y = np.arange(8.0, dtype=np.float32).reshape(2, 4)

    def f(x, y):   # batched outer product, then transposed: one fused loop writes (b, j, i)
        o = lax.dot_general(x[:, None, :], y[:, None, :], (((1,), (1,)), ((0,), (0,))))
        return fnp.transpose(o, (0, 2, 1)) * 2.0
    want = np.einsum("bi,bj->bji", x, y) * 2
    jf = functrans.jit(f)
    _close(jf(x, y), want, rtol=1e-6)
    kplan = plan.make_plan(functrans.make_jaxpr(f)(x, y), rewrites=True)
    names = [e.primitive.name for s in kplan.steps for e in getattr(s, "eqns", [getattr(s, "eqn", None)])]
    assert "dot_general" not in names and "transpose" not in names


def test_splats_fold_into_loops_and_materialize_where_needed():
    from functrans.backends import plan

    def f(x):
        z = fnp.zeros_like(x) + 2.5            # a splat read by a reduction and returned
        return x * z - 1.0, fnp.sum(z, axis=1), z
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    got = functrans.jit(f)(x)
    _close(got, (x * 2.5 - 1, np.full(2, 7.5, np.float32), np.full((2, 3), 2.5, np.float32)), 1e-6)
    closed = functrans.make_jaxpr(f)(x)
    kplan = plan.make_plan(closed, rewrites=True)
    n_rewritten = sum(len(getattr(s, "eqns", [1])) for s in kplan.steps)
    assert n_rewritten < len(closed.jaxpr.eqns)


def test_split_kernels_are_shared_by_content(monkeypatch):
    """A deep stack of identical layers: the repeated segments compile once (shape-erased
    sources are equal), and the result equals eager."""
    from functrans.backends import numba_cpu
    monkeypatch.setattr(numba_cpu, "SEGMENT_EQNS", 3)
    monkeypatch.setattr(numba_cpu, "SPLIT_EQNS", 8)

    def f(ws, x):
        for w in ws:
            x = fnp.tanh(x @ w) * 0.5 + x
        return fnp.sum(x * x)
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(4, 4)).astype(np.float32) for _ in range(6)]
    x = rng.normal(size=(3, 4)).astype(np.float32)
    jf = functrans.jit(f)
    low = jf.lower(ws, x)
    srcs = [p.source for k, p in low.parts if k == "kernel"]
    assert len(set(srcs)) < len(srcs)
    _close(jf(ws, x), f(ws, x), rtol=1e-5)
    g = functrans.jit(functrans.grad(f))(ws, x)
    _close(g, functrans.grad(f)(ws, x), rtol=1e-4, atol=1e-6)


def test_large_buffers_stay_correct():
    x = np.linspace(-1, 1, 1 << 21, dtype=np.float32)     # 8 MB buffers
    out = functrans.jit(lambda x: fnp.sin(x) * 2 + x)(x)
    np.testing.assert_allclose(out, np.sin(x) * 2 + x, rtol=2e-6, atol=1e-7)


# ---------------------------------------------------------------------------------------------
# Parallel compilation of split plans (backends/precompile.py)

def test_helper_gets_the_suffix_that_finishes_first():
    from functrans.backends import precompile as pc
    assert pc.choose([]) == [] and pc.choose([pc.cost(5)]) == []
    assert pc.choose([pc.cost(3), pc.cost(3)]) == []           # a helper would not pay off
    costs = [pc.cost(n) for n in (4, 18, 2, 12)]
    chosen = pc.choose(costs)
    assert chosen and chosen == list(range(chosen[0], 4))      # a suffix
    assert pc._finish_time(costs, chosen[0]) < pc._finish_time(costs, 4)   # beats serial
    assert all(pc._finish_time(costs, chosen[0]) <= pc._finish_time(costs, i)
               for i in range(1, 5))


_SPLIT_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    import numpy as np, functrans, functrans.numpy as fnp
    from functrans import backends, nn
    if {fail}:   # a helper that starts and fails at once
        import functrans.backends.precompile as pc
        pc.sys = type("FakeSys", (), {{"executable": "/bin/false"}})

    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = nn.relu(h @ w + b)
        w, b = params[-1]
        return -fnp.mean(fnp.sum(y * nn.log_softmax(h @ w + b), axis=-1))

    def step(params, x, y):
        g = functrans.grad(loss)(params, x, y)
        return [(w - 0.1 * gw, b - 0.1 * gb) for (w, b), (gw, gb) in zip(params, g)]

    rng = np.random.default_rng(0)
    sizes = [12, 10, 8, 4]
    params = [(rng.normal(size=(m, n)), rng.normal(size=n)) for m, n in zip(sizes, sizes[1:])]
    x, y = rng.normal(size=(6, 12)), np.eye(4)[rng.integers(0, 4, 6)]
    got, want = functrans.jit(step)(params, x, y), step(params, x, y)
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(functrans.tree_util.tree_leaves(got),
                                                           functrans.tree_util.tree_leaves(want)))
    s = backends.compile_stats()
    print(s["compiles"], s["disk_loads"], s["helper_kernels"], err,
          "scipy.linalg" in sys.modules)
""")


def _run_split(cache, fail=False, **env_extra):
    env = dict(os.environ, FUNCTRANS_CACHE_DIR=str(cache), **env_extra)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, "-c", _SPLIT_SCRIPT.format(root=root, fail=fail)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    c, loads, helped, err, scipy_linalg = p.stdout.split()
    return int(c), int(loads), int(helped), float(err), scipy_linalg == "True"


@pytest.mark.slow
def test_split_plan_compiles_in_a_helper_then_loads_warm(tmp_path):
    cache = tmp_path / "cache"
    c1, l1, h1, e1, _ = _run_split(cache, FUNCTRANS_PARALLEL_COMPILE="1")
    assert e1 < 1e-12
    assert h1 >= 1 and l1 >= 1            # the helper's kernels were loaded from the cache
    c2, l2, h2, e2, scipy_linalg = _run_split(cache)
    assert (c2, h2) == (0, 0) and l2 == c1 + l1 and e2 == e1
    # the dots run as numpy calls between kernels, so a warm process never imports scipy.linalg
    # (numba's import-time BLAS probe is answered without it: vmath.py)
    assert not scipy_linalg


@pytest.mark.slow
def test_a_failing_helper_changes_nothing_but_time(tmp_path):
    cache = tmp_path / "cache"
    c, loads, helped, err, _ = _run_split(cache, fail=True, FUNCTRANS_PARALLEL_COMPILE="1")
    assert err < 1e-12 and helped >= 1 and loads == 0    # all compiled here instead
