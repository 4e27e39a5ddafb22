"""Checks of jit(backend="cuda") on numba's CUDA simulator, run by tests/test_cuda.py in ONE
subprocess (NUMBA_ENABLE_CUDASIM must be set before numba is first imported).

Every check compares the CUDA result with the eager (NumPy) result of the same function, and
the model-level checks also with jit(backend="cpu"). Prints one JSON object:
{check name: "ok" or the failure text}. Shapes are tiny: the simulator runs each GPU thread as
a Python thread."""
import json
import os
import sys
import time
import traceback
import warnings

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" and "--gpu" not in sys.argv:
    sys.exit("run me with NUMBA_ENABLE_CUDASIM=1, or with --gpu on a machine with a GPU")

import numpy as np  # noqa: E402

import functrans as ft  # noqa: E402
import functrans.numpy as fnp  # noqa: E402
from functrans import lax  # noqa: E402
from functrans.backends import cuda_memory, numba_cuda  # noqa: E402

np.seterr(all="ignore")
warnings.simplefilter("ignore")
RNG = np.random.default_rng(0)
CHECKS = {}


def check(fn):
    CHECKS[fn.__name__] = fn
    return fn


def assert_same(got, want, rtol=1e-6, atol=0.0, what=""):
    got_l, want_l = ft.tree_util.tree_leaves(got), ft.tree_util.tree_leaves(want)
    assert len(got_l) == len(want_l), f"{what}: {len(got_l)} outputs, expected {len(want_l)}"
    for g, w in zip(got_l, want_l):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != {w.dtype}"
        if g.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def cuda_vs_eager(f, *args, rtol=1e-6, atol=0.0, what=""):
    """jit(f, backend='cuda')(*args) equals f(*args) evaluated eagerly."""
    assert_same(ft.jit(f, backend="cuda")(*args), f(*args), rtol, atol, what)


def assert_cuda_unsupported(name, f, *args):
    """jit(f, backend='cuda')(*args) raises NotImplementedError naming primitive name."""
    try:
        ft.jit(f, backend="cuda")(*args)
    except NotImplementedError as e:
        assert f"primitive '{name}'" in str(e), str(e)
    else:
        raise AssertionError(f"{name} did not raise NotImplementedError under CUDA")


def floats(shape, dtype=np.float32, lo=-3.0, hi=3.0):
    return RNG.uniform(lo, hi, shape).astype(dtype)


SPECIAL = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -2.5, np.inf, -np.inf, np.nan, 1e-30, 88.0])

UNARY = ["neg", "sign", "floor", "ceil", "round", "is_finite", "abs", "exp", "exp2", "log",
         "log1p", "expm1", "tanh", "logistic", "sin", "cos", "tan", "asin", "acos", "atan",
         "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt", "erf",
         "stop_gradient"]


@check
def unary_float():
    for dtype in (np.float32, np.float64):
        x = np.concatenate([floats((29,), dtype), SPECIAL.astype(dtype)]).reshape(5, 8)
        for name in UNARY:
            cuda_vs_eager(getattr(lax, name), x, rtol=2e-6, what=f"{name} {dtype.__name__}")
        for y in (0, 1, 3, -2):
            cuda_vs_eager(lambda v: lax.integer_pow(v, y), x, rtol=2e-6, what=f"integer_pow {y}")


BINARY_FLOAT = ["add", "sub", "mul", "div", "rem", "pow", "max", "min", "atan2", "eq", "ne", "lt",
                "le", "gt", "ge"]


@check
def binary_float():
    for dtype in (np.float32, np.float64):
        x = np.concatenate([floats((25,), dtype), SPECIAL.astype(dtype)[:7]])
        y = np.concatenate([floats((25,), dtype), SPECIAL.astype(dtype)[::-1][:7]])
        for name in BINARY_FLOAT:
            cuda_vs_eager(getattr(lax, name), x, y, rtol=2e-6, what=f"{name} {dtype.__name__}")


def run_all(cases):
    """Run every (what, thunk) case; raise one AssertionError listing every failure (a check
    that stops at its first mismatch hides the ones after it)."""
    failures = []
    for what, thunk in cases:
        try:
            thunk()
        except Exception as e:  # noqa: BLE001  (collect, report all)
            failures.append(f"{what}: {' '.join(str(e).split())[:300]}")
    assert not failures, f"{len(failures)} of {len(cases)} cases failed:\n" + "\n".join(failures)


INT_BINARY = ["add", "sub", "mul", "div", "rem", "max", "min", "bitwise_and", "bitwise_or",
              "bitwise_xor", "shift_left", "shift_right_logical", "eq", "ne", "lt", "le", "gt",
              "ge"]
INT_UNARY = ["neg", "sign", "abs", "bitwise_not"]


def int_operands(dtype):
    """(x, y) covering small values, the dtype's extremes, zero and -1 divisors, and shift
    counts 0, 1, width-1, width, width+3, 100 and negatives."""
    info, bits = np.iinfo(dtype), 8 * np.dtype(dtype).itemsize
    x = RNG.integers(max(info.min, -50), min(info.max, 50), 24, endpoint=True)
    x = np.concatenate([x, [info.min, info.max, info.max - 2, info.min + 3, 0, 1, 5]])
    y = RNG.integers(max(info.min, -7), 8, x.size - 7)
    y[:3] = 0
    if info.min < 0:
        y[3] = -1
    counts = [0, 1, bits - 1, bits, min(bits + 3, info.max), min(100, info.max), 3]
    y = np.concatenate([y, counts])
    if info.min < 0:
        y[-1] = -3
    return x.astype(dtype), y.astype(dtype)


def int_cases(dtype):
    x, y = int_operands(dtype)
    name_dt = np.dtype(dtype).name
    cases = [(f"{n} {name_dt}", (lambda n=n: cuda_vs_eager(getattr(lax, n), x, y,
                                                             what=f"{n} {name_dt}")))
             for n in INT_BINARY]
    cases += [(f"{n} {name_dt}", (lambda n=n: cuda_vs_eager(getattr(lax, n), x,
                                                              what=f"{n} {name_dt}")))
              for n in INT_UNARY if not (n == "neg" and np.iinfo(dtype).min == 0)]
    return cases


@check
def integer_ops():
    cases = []
    for dtype in (np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64):
        cases += int_cases(dtype)
    x, y = int_operands(np.int64)
    cases.append(("fused int64 chain", lambda: cuda_vs_eager(
        lambda a, b: lax.shift_right_logical(a, b & 63) + lax.div(a, b) * lax.sign(a), x, y,
        what="fused int64 chain")))
    u, v = int_operands(np.uint64)
    cases.append(("uint64 reductions", lambda: cuda_vs_eager(
        lambda a: (lax.reduce_max(a, (0,)), lax.reduce_min(a, (0,)), lax.reduce_sum(a, (0,))),
        u, what="uint64 reductions")))
    run_all(cases)


@check
def bool_select_convert():
    a, b = RNG.random(12) < 0.5, RNG.random(12) < 0.5
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor", "eq", "ne", "max", "min"):
        cuda_vs_eager(getattr(lax, name), a, b, what=name)
    cuda_vs_eager(lax.bitwise_not, a, what="not bool")
    x, y, z = floats((12,)), floats((12,)), floats((12,))
    cuda_vs_eager(lax.select, a, x, y, what="select")
    which = RNG.integers(0, 3, 12).astype(np.int32)
    cuda_vs_eager(lambda w, p, q, r: lax.select_n(w, p, q, r), which, x, y, z, what="select_n 3")
    src = np.array([0.0, -1.7, 2.5, 300.0, -0.0, 1.0], np.float64)
    for src_dt in (np.float64, np.int32, np.bool_):
        s = src.astype(src_dt) if src_dt is not np.bool_ else src != 0
        for dst in (np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_):
            if src_dt is np.float64 and dst is np.uint8:
                continue    # float -> uint8 of negatives is undefined in C
            cuda_vs_eager(lambda v: lax.convert_element_type(v, dst), s,
                          what=f"convert {np.dtype(src_dt).name}->{np.dtype(dst).name}")


@check
def index_maps():
    x = floats((2, 3, 4))
    cuda_vs_eager(lambda v: lax.broadcast_in_dim(v, (5, 2, 3, 4), (1, 2, 3)) * 2, x, what="bcast")
    cuda_vs_eager(lambda v: lax.broadcast_in_dim(v[:, :1], (2, 6, 4), (0, 1, 2)) + 1, x,
                  what="bcast size-1")
    cuda_vs_eager(lambda v: lax.transpose(v, (2, 0, 1)) - 1, x, what="transpose")
    cuda_vs_eager(lambda v: lax.rev(v, (0, 2)) * v, x, what="rev")
    cuda_vs_eager(lambda v: lax.slice(v, (0, 1, 0), (2, 3, 4), (1, 1, 3)) + 1, x, what="slice")
    cuda_vs_eager(lambda v: lax.squeeze(v[:1], (0,)) + 1, x, what="squeeze")
    cuda_vs_eager(lambda v: lax.reshape(v, (6, 4)) + lax.broadcasted_iota(np.float32, (6, 4), 1),
                  x, what="reshape+iota")
    cuda_vs_eager(lambda: lax.iota(np.int32, 7), what="iota alone")
    cuda_vs_eager(lambda v: v * np.float32(2), np.float32(3.0), what="0-d")
    cuda_vs_eager(lambda v: v + 1, np.zeros((0, 3), np.float32), what="size 0")


@check
def reductions():
    x = floats((3, 4, 5))
    for name in ("reduce_sum", "reduce_prod", "reduce_max", "reduce_min"):
        for axes in ((0,), (1,), (2,), (0, 2), (0, 1, 2), ()):
            cuda_vs_eager(lambda v: getattr(lax, name)(lax.exp(v), axes), x, rtol=1e-5,
                          what=f"{name} {axes}")
    big = floats((300,))                       # one output: several blocks + atomics
    cuda_vs_eager(lambda v: lax.reduce_sum(v * v, (0,)), big, rtol=1e-5, what="sum split")
    cuda_vs_eager(lambda v: lax.reduce_max(v, (0,)), big, what="max float (no atomics)")
    ints = RNG.integers(-100, 100, (2, 150)).astype(np.int32)
    for name in ("reduce_sum", "reduce_max", "reduce_min"):
        cuda_vs_eager(lambda v: getattr(lax, name)(v, (1,)), ints, what=f"{name} int split")
    m = RNG.random((4, 6)) < 0.5
    cuda_vs_eager(lambda v: (lax.reduce_max(v, (1,)), lax.reduce_min(v, (0,))), m, what="bool")
    nanx = x.copy()
    nanx[1, 2, 3] = np.nan
    cuda_vs_eager(lambda v: (lax.reduce_max(v, (2,)), lax.reduce_min(v, (0, 1))), nanx,
                  what="nan max/min")
    cuda_vs_eager(lambda v: lax.reduce_sum(v, (1,)), np.zeros((3, 0), np.float32), what="empty")
    long = floats((2000,))                     # unrolled per-thread loops, split + atomics
    cuda_vs_eager(lambda v: (lax.reduce_sum(lax.tanh(v) * v, (0,)), lax.reduce_max(v, (0,))),
                  long, rtol=1e-5, what="long sum unrolled")
    cols = floats((40, 6))                     # column sums: thread per output, atomics
    cuda_vs_eager(lambda v: (lax.reduce_sum(v * 2, (0,)), lax.reduce_max(v, (0,)), v * 2), cols,
                  rtol=1e-5, what="column reductions")
    icols = RNG.integers(-9, 9, (3, 30, 5)).astype(np.int64)
    cuda_vs_eager(lambda v: (lax.reduce_sum(v, (0, 1)), lax.reduce_min(v, (0, 1))), icols,
                  what="int column reductions")
    cuda_vs_eager(lambda v: lax.exp(v) * 2 + v, floats((7, 30)), rtol=2e-6, atol=1e-7,
                  what="unrolled map")     # GPU expf is within 2 ulp (measured on the H200)
    # a group with elementwise outputs and two reductions over different axes
    cuda_vs_eager(lambda v: (lax.tanh(v), lax.reduce_sum(lax.tanh(v), (0,)),
                             lax.reduce_max(lax.tanh(v), (1, 2))), x, rtol=1e-5, what="multi")


@check
def argminmax_cumulative():
    x = floats((3, 5, 4))
    x[0, 2, 1] = np.nan
    for axis in (0, 1, 2):
        cuda_vs_eager(lambda v: (lax.argmax(v, axis), lax.argmin(v, axis, np.int32)), x,
                      what=f"arg axis {axis}")
        for name in ("cumsum", "cumprod", "cummax", "cummin"):
            for rev in (False, True):
                cuda_vs_eager(lambda v: getattr(lax, name)(v, axis, rev), x, rtol=1e-5,
                              what=f"{name} {axis} {rev}")
    ints = RNG.integers(-5, 5, (4, 6)).astype(np.int32)
    cuda_vs_eager(lambda v: (lax.cumsum(v, 1), lax.argmax(v, 1)), ints, what="int cum/arg")


@check
def dot_general():
    cases = [((5, 7), (7, 3), (((1,), (0,)), ((), ()))),
             ((16, 16), (16, 16), (((1,), (0,)), ((), ()))),
             ((7, 5), (3, 7), (((0,), (1,)), ((), ()))),                # both transposed
             ((2, 4, 3), (2, 3, 5), (((2,), (1,)), ((0,), (0,)))),      # batched
             ((3, 2, 4, 2), (2, 4, 2, 5), (((1, 3), (0, 2)), ((2,), (1,)))),  # multi-dim
             ((6,), (6,), (((0,), (0,)), ((), ()))),                    # vector dot
             ((4, 0), (0, 3), (((1,), (0,)), ((), ())))]                # K == 0
    for xs, ys, dn in cases:
        for dt in (np.float32, np.float64):
            # summation order differs from BLAS: float32 rounding error scales with sum |a*b|
            # (up to ~150 here), not with the (possibly cancelled) result
            atol = 2e-5 if dt == np.float32 else 1e-12
            cuda_vs_eager(lambda a, b: lax.dot_general(a, b, dn), floats(xs, dt), floats(ys, dt),
                          rtol=1e-5, atol=atol, what=f"dot {xs}x{ys}")
    a, b = RNG.integers(-4, 4, (3, 5)).astype(np.int32), RNG.integers(-4, 4, (5, 2)).astype(np.int32)
    cuda_vs_eager(lambda p, q: lax.dot_general(p, q, (((1,), (0,)), ((), ()))), a, b, what="int")
    cuda_vs_eager(lambda p, q: lax.dot_general(p, q, (((1,), (0,)), ((), ())),
                                               preferred_element_type=np.float32),
                  a, b, what="preferred f32")
    x32 = floats((6, 5))
    cuda_vs_eager(lambda p: lax.dot_general(p, p, (((1,), (0,)), ((), ())), None, np.float64),
                  x32[:5], rtol=1e-5, what="preferred f64 of f32")
    layouts = [((7, 5), (7, 3), (((0,), (0,)), ((), ()))),                 # x.T @ y
               ((5, 7), (3, 7), (((1,), (1,)), ((), ()))),                 # x @ y.T
               ((5, 4, 6), (6, 4, 3), (((2,), (0,)), ((1,), (1,)))),      # batch in the middle
               ((4, 6, 5), (4, 3, 6), (((1,), (2,)), ((0,), (0,)))),      # batched, transposed
               ((3, 4, 5), (3, 5, 2), (((0, 2), (0, 1)), ((), ()))),     # interleaved: copied
               ((8, 5), (8, 3), (((), ()), ((0,), (0,))))]                # batched outer
    for xs, ys, dn in layouts:
        for dt in (np.float32, np.float64):
            atol = 2e-5 if dt == np.float32 else 1e-12
            cuda_vs_eager(lambda a, b: lax.dot_general(a, b, dn), floats(xs, dt), floats(ys, dt),
                          rtol=1e-5, atol=atol, what=f"dot layout {xs}x{ys} {dn}")


@check
def conv_general_dilated():
    """Strides, padding (negative too), both dilations, layouts, feature and batch groups,
    integers and a preferred output type: the CUDA kernel against the NumPy impl."""
    cases = [((1, 2, 3, 4), (2, 2, 2, 2), dict(window_strides=(1, 2), padding=[(1, 0), (-1, 1)],
                                               lhs_dilation=(2, 1), rhs_dilation=(1, 2))),
             ((1, 4, 3, 4), (2, 2, 2, 4), dict(window_strides=(1, 1), padding="SAME",
                                               dimension_numbers=("NHWC", "HWIO", "NCHW"),
                                               feature_group_count=2)),
             ((4, 2, 5), (4, 2, 2), dict(window_strides=(2,), padding=[(1, 1)],
                                         batch_group_count=2))]
    for xs, ws, kw in cases:
        cuda_vs_eager(lambda a, b: lax.conv_general_dilated(a, b, **kw), floats(xs), floats(ws),
                      rtol=1e-5, atol=1e-5, what=f"conv {xs} {ws} {kw}")
    a = RNG.integers(-3, 3, (2, 2, 5)).astype(np.int32)
    b = RNG.integers(-3, 3, (3, 2, 2)).astype(np.int32)
    cuda_vs_eager(lambda p, q: lax.conv(p, q, (1,), "VALID"), a, b, what="int conv")
    cuda_vs_eager(lambda p, q: lax.conv(p, q, (1,), "SAME", preferred_element_type=np.float64),
                  a, b, what="int conv to f64")
    za = (floats((1, 2, 3, 4)) + 1j * floats((1, 2, 3, 4))).astype(np.complex64)
    zb = (floats((2, 2, 2, 2)) + 1j * floats((2, 2, 2, 2))).astype(np.complex64)
    cuda_vs_eager(lambda p, q: lax.conv_general_dilated(p, q, **cases[0][2]), za, zb,
                  rtol=1e-5, atol=1e-5, what="complex64 conv")


def _built_with_stand_ins(closed, name, cupy, fft=None):
    """numba_cuda._Executable of closed, its steps built with cupy (and fft) standing in for
    CuPy (and cuFFT): the library steps' code runs under the simulator."""
    real = cuda_memory.cupy_module, numba_cuda._cufft_module
    cuda_memory.cupy_module = lambda: cupy
    if fft is not None:
        numba_cuda._cufft_module = lambda: fft
    try:
        return numba_cuda._Executable(closed, name)
    finally:
        cuda_memory.cupy_module, numba_cuda._cufft_module = real


class _HostArgs:
    """A module whose functions get their first argument as a NumPy array."""

    def __init__(self, module):
        self.module = module

    def __getattr__(self, name):
        fn = getattr(self.module, name)
        return lambda a, *args, **kw: fn(np.asarray(a), *args, **kw)


class _NumpyAsCupy:
    """Stands in for CuPy under the simulator (whose device arrays NumPy reads), so that the
    im2col + GEMM convolution step runs its CuPy code path; fail=True makes matmul raise."""

    def __init__(self, fail=False):
        self.fail = fail

    def asarray(self, a):
        return np.asarray(a)

    def concatenate(self, arrays):
        return np.concatenate([np.asarray(a) for a in arrays])

    def transpose(self, a, perm):
        return np.transpose(np.asarray(a), perm)

    def matmul(self, a, b):
        if self.fail:
            raise RuntimeError("cuBLAS unavailable (simulated)")
        return np.matmul(a, b)

    def __getattr__(self, name):
        return getattr(np, name)


@check
def conv_gemm_step():
    """Convolutions as im2col + cuBLAS GEMM steps (backends/cuda_conv.py): forward and
    gradient against eager. On a real GPU with CuPy they must run as such steps; under the
    simulator a NumPy stand-in for CuPy runs the same step code, then a failing matmul must
    turn cuBLAS off and fall back to the direct kernels with the same values."""
    x, w = floats((2, 3, 6, 5), np.float64), floats((4, 3, 3, 2), np.float64)
    f = lambda a, b: lax.conv_general_dilated(a, b, (1, 2), [(1, 1), (0, 1)],   # noqa: E731
                                              rhs_dilation=(2, 1))
    loss = lambda a, b: fnp.sum(fnp.tanh(f(a, b)))     # noqa: E731
    want = [f(x, w)] + list(ft.grad(loss, (0, 1))(x, w))
    calls = numba_cuda._stats["conv_gemm_calls"]
    if cuda_memory.cupy_module() is not None:
        got = [ft.jit(f, backend="cuda")(x, w)] + list(ft.jit(ft.grad(loss, (0, 1)),
                                                              backend="cuda")(x, w))
        for g, v in zip(got, want):
            assert_same(g, v, rtol=1e-9, atol=1e-9, what="conv via GEMM")
        assert numba_cuda._stats["conv_gemm_calls"] >= calls + 4, numba_cuda._stats
        return
    for fail in (False, True):
        closed = ft.make_jaxpr(lambda a, b: (f(a, b),) + tuple(ft.grad(loss, (0, 1))(a, b)))(x, w)
        ex = _built_with_stand_ins(closed, "conv", _NumpyAsCupy(fail))
        try:
            for g, v in zip(ex([x, w]), want):
                assert_same(g, v, rtol=1e-9, atol=1e-9, what=f"conv steps (cuBLAS fails: {fail})")
            assert numba_cuda._gemm_state["enabled"] is not fail, numba_cuda._gemm_state
        finally:
            numba_cuda._gemm_state.update(enabled=True, reason="")
    assert numba_cuda._stats["conv_gemm_calls"] == calls + 4, numba_cuda._stats


@check
def pad_concat_slices():
    x = floats((3, 4))
    cuda_vs_eager(lambda v: lax.pad(v, np.float32(-1), [(1, 2, 0), (-1, 1, 2)]), x, what="pad")
    cuda_vs_eager(lambda v, p: lax.pad(v, p, [(0, 0, 1), (2, -2, 0)]), x, np.float32(7),
                  what="pad traced value")
    cuda_vs_eager(lambda a, b: lax.concatenate([a, b, a], 1), x, floats((3, 2)), what="concat")
    cuda_vs_eager(lambda a: lax.concatenate([a, np.zeros((0, 4), np.float32), a], 0), x,
                  what="concat empty")
    for s in ((0, 0), (2, 3), (-5, 9), (1, 0)):
        cuda_vs_eager(lambda v, i, j: lax.dynamic_slice(v, (i, j), (2, 2)), x,
                      np.int32(s[0]), np.int64(s[1]), what=f"dynamic_slice {s}")
        cuda_vs_eager(lambda v, u, i, j: lax.dynamic_update_slice(v, u, (i, j)), x,
                      floats((2, 3)), np.int32(s[0]), np.int32(s[1]), what=f"dus {s}")


@check
def gather_scatter():
    x = floats((5, 3, 4))
    idx = np.array([[0, 2], [4, 0], [9, -3], [2, 2], [0, 2]], np.int32)   # repeats, out of range
    cuda_vs_eager(lambda v, i: lax.gather(v, i, (0, 2)), x, idx, what="gather")
    cuda_vs_eager(lambda v, i: lax.gather(v, i, (1,)), x, idx[:, :1] % 3, what="gather 1 axis")
    upd = floats((5, 3))
    for name in ("scatter_add", "scatter", "scatter_mul"):
        cuda_vs_eager(lambda v, i, u: getattr(lax, name)(v, i, u, (0, 2)), x, idx, upd,
                      rtol=1e-6, what=name)
    xi = RNG.integers(-3, 3, (6, 2)).astype(np.int32)
    ii = np.array([[1], [1], [5], [7]], np.int64)
    ui = RNG.integers(-3, 3, (4, 2)).astype(np.int32)
    for name in ("scatter_add", "scatter", "scatter_mul"):
        cuda_vs_eager(lambda v, i, u: getattr(lax, name)(v, i, u, (0,)), xi, ii, ui,
                      what=f"{name} int")
    x8 = RNG.integers(0, 5, 6).astype(np.int8)    # no atomics for int8: the ordered kernel
    cuda_vs_eager(lambda v, i, u: lax.scatter_add(v, i, u, (0,)), x8, ii,
                  np.ones(4, np.int8), what="scatter_add int8")


@check
def sort():
    x = floats((4, 6))
    x[1, 2] = np.nan
    x[2, :3] = 1.0                                  # ties: stability
    cuda_vs_eager(lambda v: lax.sort(v, dimension=1), x, what="sort")
    cuda_vs_eager(lambda v: lax.sort(v, dimension=0), x, what="sort dim0")
    k2 = RNG.integers(0, 2, (4, 6)).astype(np.int32)
    cuda_vs_eager(lambda a, b, c: lax.sort(a, b, c, dimension=1, num_keys=2), k2, x,
                  floats((4, 6)), what="sort 2 keys")
    cuda_vs_eager(lambda v: lax.argsort(v, 1), x, what="argsort")


@check
def control_flow():
    x = floats((4,))
    f = lambda p, v: lax.cond(p, lambda a: a * 2, lambda a: lax.sin(a), v)  # noqa: E731
    for p in (True, False):
        cuda_vs_eager(f, np.bool_(p), x, what=f"cond {p}")
    sw = lambda i, v: lax.switch(i, [lambda a: a + 1, lambda a: a * a, lambda a: -a], v)  # noqa: E731
    for i in (-1, 1, 5):
        cuda_vs_eager(sw, np.int32(i), x, what=f"switch {i}")
    cuda_vs_eager(lambda v: lax.fori_loop(0, 5, lambda i, c: c * 1.5 + lax.convert_element_type(i, np.float32), v), x,
                  what="fori")
    cuda_vs_eager(lambda v: lax.while_loop(lambda c: c[1] < 4, lambda c: (c[0] * 2, c[1] + 1),
                                           (v, 0)), x, what="while")

    def body(c, xi):
        return c + xi, c * xi
    xs = floats((5, 3))
    for rev in (False, True):
        cuda_vs_eager(lambda c, s: lax.scan(body, c, s, reverse=rev), floats((3,)), xs,
                      rtol=1e-5, what=f"scan {rev}")
    nested = lambda v: lax.fori_loop(  # noqa: E731
        0, 3, lambda i, c: lax.cond(i % 2 == 0, lambda a: a + 1, lambda a: a * 2, c), v)
    cuda_vs_eager(nested, x, what="nested")


@check
def custom_rules_and_checkpoint():
    @ft.custom_jvp
    def softplus(v):
        return fnp.log1p(fnp.exp(v))
    softplus.defjvp(lambda p, t: (softplus(p[0]), t[0] * lax.logistic(p[0])))
    x = floats((6,))
    cuda_vs_eager(softplus, x, rtol=1e-6, what="custom_jvp")
    cuda_vs_eager(ft.grad(lambda v: fnp.sum(softplus(v))), x, rtol=1e-6, what="grad custom_jvp")
    g = ft.grad(lambda v: fnp.sum(ft.checkpoint(lambda a: fnp.sin(fnp.sin(a)))(v)))
    cuda_vs_eager(g, x, rtol=1e-6, what="checkpoint")
    from functrans.ad_checkpoint import checkpoint_name

    def named(a):
        return fnp.sin(checkpoint_name(fnp.sin(a) * 2, "s"))
    policy = ft.checkpoint_policies.save_only_these_names("s")
    g = ft.grad(lambda v: fnp.sum(ft.checkpoint(named, policy=policy)(v)))
    cuda_vs_eager(named, x, rtol=1e-6, what="checkpoint_name")
    cuda_vs_eager(g, x, rtol=1e-6, what="checkpoint policy")


# --- model-level checks: CUDA against eager and against the CPU backend

def mlp_params(sizes, dtype=np.float32):
    return [(floats((m, n), dtype, -0.5, 0.5), floats((n,), dtype, -0.1, 0.1))
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp(params, x):
    for w, b in params[:-1]:
        x = fnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def loss(params, x, y):
    return fnp.mean((mlp(params, x) - y) ** 2)


def sgd_step(params, x, y):
    grads = ft.grad(loss)(params, x, y)
    return [(w - 0.1 * gw, b - 0.1 * gb) for (w, b), (gw, gb) in zip(params, grads)]


def three_ways(f, *args, rtol=1e-5, atol=1e-6, what=""):
    got = ft.jit(f, backend="cuda")(*args)
    assert_same(got, f(*args), rtol, atol, what + " vs eager")
    assert_same(got, ft.jit(f, backend="cpu")(*args), rtol, atol, what + " vs cpu")


@check
def mlp_training_step():
    params = mlp_params([6, 16, 8, 3])
    x, y = floats((8, 6)), floats((8, 3))
    three_ways(sgd_step, params, x, y, what="sgd step")
    cuda_step = ft.jit(sgd_step, backend="cuda")
    p = params
    for _ in range(3):
        p = cuda_step(p, x, y)
    assert float(ft.jit(loss, backend="cuda")(p, x, y)) < float(loss(params, x, y))


@check
def vmap_grad():
    params = mlp_params([5, 8, 2])
    x, y = floats((6, 5)), floats((6, 2))
    per_example = ft.vmap(ft.grad(loss), in_axes=(None, 0, 0))
    three_ways(per_example, params, x[:, None], y[:, None], what="vmap(grad)")
    three_ways(ft.jit(per_example, backend="cuda"), params, x[:, None], y[:, None],
               what="vmap(grad) nested jit")


@check
def hvp_and_hessian():
    def f(v):
        return fnp.sum(fnp.sin(v) * v ** 2) + fnp.sum(fnp.outer(v, v) @ v)
    x, t = floats((5,), np.float64), floats((5,), np.float64)
    three_ways(lambda a, b: ft.hvp(f, (a,), (b,)), x, t, rtol=1e-10, atol=1e-12, what="hvp")
    three_ways(ft.hessian(f), x, rtol=1e-10, atol=1e-12, what="hessian")
    # grad of a cuda-jitted function (jit_p's jvp/partial-eval/transpose rules on the device)
    assert_same(ft.grad(ft.jit(f, backend="cuda"))(x), ft.grad(f)(x), 1e-10, 1e-12, "grad(jit)")


@check
def eager_fallback_float16():
    x = np.arange(4, dtype=np.float16)
    cuda_vs_eager(lambda v: v * v + 1, x, what="float16 runs eagerly")
    cuda_vs_eager(lambda v: v * v + 1, x.astype(fnp.bfloat16), what="bfloat16 runs eagerly")


@check
def unsupported_primitive_message():
    from functrans.core import Primitive, impl_rules, abstract_eval_rules
    p = Primitive("made_up_op")
    impl_rules[p] = lambda x: x
    abstract_eval_rules[p] = lambda x: x
    for args in ((np.ones(3, np.float32),), (np.ones((2, 2), np.float64),)):
        try:
            ft.jit(lambda v: p.bind(v) + 1, backend="cuda")(*args)
        except NotImplementedError as e:
            assert "made_up_op" in str(e) and "CUDA" in str(e), str(e)
        else:
            raise AssertionError(f"expected NotImplementedError for {args[0].dtype}")


@check
def matmul_precision():
    x, y = floats((64, 32), lo=-1, hi=1), floats((32, 48), lo=-1, hi=1)
    want = x.astype(np.float64) @ y.astype(np.float64)
    before = numba_cuda.stats()["gemm_calls"]
    ft.config.default_matmul_precision = "default"
    try:
        tf32 = ft.jit(lambda a, b: a @ b, backend="cuda")(x, y)
        high = ft.jit(lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ())),
                                                   precision="highest"), backend="cuda")(x, y)
    finally:
        ft.config.default_matmul_precision = "highest"
    np.testing.assert_allclose(high, want, rtol=1e-5, atol=1e-5, err_msg="HIGHEST")
    np.testing.assert_allclose(tf32, want, rtol=0, atol=0.05, err_msg="DEFAULT (TF32)")
    if _on_gpu_with_cupy():     # both products were cuBLAS calls
        assert numba_cuda.stats()["gemm_calls"] >= before + 2, numba_cuda.stats()


def _on_gpu_with_cupy():
    from functrans.backends import cuda_memory
    return numba_cuda.check_available() == "gpu" and cuda_memory.cupy_module() is not None


@check
def device_resident():
    from functrans.backends import cuda_memory
    x, w = floats((4, 3)), floats((3, 5))

    def f(a, b):
        return fnp.tanh(a @ b), fnp.sum(a), a
    closed = ft.make_jaxpr(f)(x, w)
    outs = numba_cuda.run_device(closed, [x, w], "f")
    assert all(cuda_memory.is_device_array(o) for o in outs), [type(o) for o in outs]
    assert [tuple(o.shape) for o in outs] == [(4, 5), (), (4, 3)]
    assert_same([numba_cuda.to_host(o) for o in outs], f(x, w), 1e-5, 1e-6, "run_device")
    again = numba_cuda.run_device(closed, [outs[2], cuda_memory.to_cupy(cuda_memory.to_device(w),
                                                                        (3, 5))], "f")
    assert_same([numba_cuda.to_host(o) for o in again], f(x, w), 1e-5, 1e-6, "device inputs")
    # results of one run survive the next (intermediates are reused, never outputs)
    def g(a):
        t = fnp.tanh(a) * 2
        return (lax.reshape(t, (12,)), lax.cond(True, lambda b: b, lambda b: b * 2, fnp.exp(a)),
                fnp.sum(t))
    closed_g = ft.make_jaxpr(g)(x)
    first = numba_cuda.run_device(closed_g, [x])
    numba_cuda.run_device(closed_g, [x + 1])
    assert_same([numba_cuda.to_host(o) for o in first], g(x), 1e-5, 1e-6, "first results kept")
    if _on_gpu_with_cupy():
        import cupy
        assert all(isinstance(o, cupy.ndarray) for o in outs)
        y = cupy.asarray(x)
        back = numba_cuda.run_device(ft.make_jaxpr(lambda a: a)(x), [y])[0]
        assert int(back.data.ptr) == int(y.data.ptr), "a device input is used in place"


@check
def memory_pool():
    from functrans.backends import cuda_memory
    x = floats((16, 8))
    step = ft.jit(lambda a: fnp.sum(fnp.tanh(a @ a.T) * 2.0), backend="cuda")
    step(x)
    before = numba_cuda.memory_stats()
    for _ in range(3):
        step(x)
    after = numba_cuda.memory_stats()
    assert after["allocations"] > before["allocations"]
    if after["pool"] == "cupy":
        assert after["pool_total_bytes"] == before["pool_total_bytes"], (before, after)
    try:
        cuda_memory.empty(2 ** 50, np.float32, (2 ** 25, 2 ** 25))
    except cuda_memory.DeviceOutOfMemoryError as e:
        assert str(2 ** 52) in str(e) and "(33554432, 33554432)" in str(e) and "float32" in str(e)
    else:
        raise AssertionError("a 4 PiB buffer was allocated")


@check
def loops_on_device():
    reads = numba_cuda.stats()["host_reads"]

    def body(c, xi):
        return c * 0.5 + xi, c - xi
    xs = floats((12, 3))
    cuda_vs_eager(lambda c, s: lax.scan(body, c, s), floats((3,)), xs, rtol=1e-5, what="scan")
    cuda_vs_eager(lambda v: lax.fori_loop(0, 9, lambda i, c: c + i.astype(np.float32), v), floats((3,)),
                  what="fori")
    assert numba_cuda.stats()["host_reads"] == reads, "scan/fori read device memory back"
    cuda_vs_eager(lambda v: lax.while_loop(lambda c: c[1] < 5, lambda c: (c[0] * 2, c[1] + 1),
                                           (v, 0)), floats((3,)), what="while")
    assert numba_cuda.stats()["host_reads"] == reads + 6, "while: one scalar per test"


@check
def cuda_graphs_replay():
    """Programs of several kernels replay a captured CUDA graph from their second call on (a
    real GPU with CuPy; never on the simulator). Every result equals the run without graphs,
    and outputs still held by the caller are never overwritten by a later replay."""
    from functrans.backends import cuda_graphs
    before = numba_cuda.stats()
    params = mlp_params([6, 16, 8, 3])
    x, y = floats((8, 6)), floats((8, 3))
    want, p = [], params
    for _ in range(5):
        p = ft.jit(sgd_step, backend="cpu")(p, x, y)
        want.append(p)
    step = ft.jit(sgd_step, backend="cuda")
    p, kept = params, []
    for i in range(5):          # outputs feed the next call: two instances alternate
        p = step(p, x, y)
        kept.append(p)
    for i, (got, w) in enumerate(zip(kept, want)):      # every kept result is still intact
        assert_same(got, w, 1e-5, 1e-6, f"sgd step {i + 1}")
    def h(a):
        g = a @ a.T
        return fnp.tanh(a) * 2.0 + 1.0, fnp.sum(fnp.sin(a) ** 2), g, fnp.max(fnp.exp(g - 9.0), axis=0), g @ a

    def h_numpy(a):
        g = a @ a.T
        return np.tanh(a) * 2 + 1, np.sum(np.sin(a) ** 2), g, np.max(np.exp(g - 9.0), axis=0), g @ a
    f = ft.jit(h, backend="cuda")
    outs = [f(x + k) for k in range(4)]   # all held: the 2nd and 3rd capture, the 4th runs as is
    for k, o in enumerate(outs):
        assert_same(o, h_numpy(x + k), 1e-4, 1e-4, f"held output {k}")
    del outs, o
    assert_same(f(x), h_numpy(x), 1e-4, 1e-4, "replayed into a released instance")
    rnn = ft.grad(lambda w, xs: fnp.sum(lax.scan(lambda h, xi: (fnp.tanh(h @ w + xi), None),
                                                 fnp.zeros(3, np.float32), xs)[0] ** 2))
    w, xs = floats((3, 3), lo=-0.5, hi=0.5), floats((5, 3))
    jr = ft.jit(rnn, backend="cuda")
    for _ in range(3):
        assert_same(jr(w, xs), rnn(w, xs), 1e-5, 1e-6, "scan grad")
    # which programs qualify
    prog = lambda f, *a: numba_cuda.executable(ft.make_jaxpr(f)(*a)).program  # noqa: E731
    assert cuda_graphs.launch_count(prog(sgd_step, params, x, y)) >= cuda_graphs.MIN_LAUNCHES
    assert cuda_graphs.launch_count(prog(h, x)) >= cuda_graphs.MIN_LAUNCHES
    scan_prog = prog(rnn, w, xs)
    assert cuda_graphs.host_free(scan_prog) and cuda_graphs.launch_count(scan_prog) >= 5
    with_cond = prog(lambda a: lax.cond(a[0] > 0, lambda v: v * 2, lambda v: v - 1, a) * 3, x[0])
    assert not cuda_graphs.host_free(with_cond)
    after = numba_cuda.stats()
    if _on_gpu_with_cupy() and cuda_graphs.ENABLED:
        assert after["graph_capture_failures"] == before["graph_capture_failures"], after
        # sgd (all 5 results kept): a plain first run, 2 captures and replays, 2 runs without;
        # h: a plain first run, 2 captures and replays, 1 run without, 1 replay after the del;
        # the scan: a plain first run, 1 capture, 2 replays
        grew = {k: after["graph_" + k] - before["graph_" + k]
                for k in ("captures", "replays", "fallback_runs")}
        assert grew == {"captures": 5, "replays": 7, "fallback_runs": 3}, grew
        assert numba_cuda.memory_stats()["graph_pool_bytes"] > 0
    else:
        assert after["graph_captures"] == before["graph_captures"] == 0, after


def run_checks(names=None, stream=None):
    """Run the named checks (all by default); returns ({name: "ok" or failure text},
    {name: seconds}). With a stream, one line per check is written as it finishes:
    ``CUDA_CHECK <name> <seconds> ok|FAIL``. GEMMs run in full float32 meanwhile (the checks
    compare with float32 NumPy; the GPU default is TF32, which matmul_precision checks)."""
    results, seconds = {}, {}
    saved = ft.config.default_matmul_precision
    ft.config.default_matmul_precision = "highest"
    try:
        for name in names or CHECKS:
            t0 = time.perf_counter()
            try:
                CHECKS[name]()
                results[name] = "ok"
            except Exception:  # report every failure, keep going
                results[name] = traceback.format_exc(limit=6)[-3000:]
            seconds[name] = round(time.perf_counter() - t0, 2)
            if stream is not None:
                verdict = "ok" if results[name] == "ok" else "FAIL"
                print(f"CUDA_CHECK {name} {seconds[name]} {verdict}", file=stream, flush=True)
    finally:
        ft.config.default_matmul_precision = saved
    return results, seconds


# ---------------------------------------------------------------------------------------------
# Arrays on the device: device_put, computation follows data, transfers only on request

def _gpu():
    return ft.devices("cuda")[0]


def _on_gpu(x):
    from functrans.backends.numba_cuda import is_device_array
    return x.device.platform == "gpu" and is_device_array(x._value)


@check
def gpu_arrays_follow_data():
    gpu = _gpu()
    x = floats((4, 3))
    w = floats((3, 2))
    xg, wg = ft.device_put(x, gpu), ft.device_put(w, gpu)
    assert _on_gpu(xg) and xg.device == gpu and xg.devices() == {gpu}
    assert_same(np.asarray(xg), x, what="round trip")
    assert_same(ft.device_get(xg), x, what="device_get")
    y = fnp.tanh(xg @ wg) + 1.0                      # eager ops: per-primitive kernels
    assert _on_gpu(y), "eager result left the device"
    # tanh(s) + 1 cancels for s << 0: an absolute tolerance (on the H200: 0 against 6e-8)
    assert_same(y, np.tanh(x @ w) + 1.0, rtol=1e-5, atol=1e-6, what="eager on gpu")
    f = ft.jit(lambda a, b: fnp.sum(fnp.tanh(a @ b) ** 2))
    out = f(xg, wg)
    assert _on_gpu(out), "jit result left the device"
    assert_same(out, f(x, w), rtol=1e-5, atol=1e-6, what="jit on gpu")
    g = ft.grad(lambda b: fnp.sum(fnp.tanh(xg @ b) ** 2))(wg)
    assert _on_gpu(g), "grad result left the device"
    assert_same(g, ft.grad(lambda b: fnp.sum(fnp.tanh(x @ b) ** 2))(w), rtol=1e-5, atol=1e-5, what="grad")
    v = ft.vmap(lambda r: r * 2.0)(xg)
    assert _on_gpu(v) and ft.block_until_ready(v) is v
    back = ft.device_put(y, ft.devices("cpu")[0])
    assert back.device.platform == "cpu" and isinstance(back._value, np.ndarray)
    # more of functrans.numpy, unchanged CPU code on GPU Arrays
    for what, f in [("slice", lambda a: a[1:3]), ("gather", lambda a: a[fnp.array([0, 2])]),
                    ("where", lambda a: fnp.where(a > 0, a, -a)), ("max", lambda a: a.max(axis=0)),
                    ("concat", lambda a: fnp.concatenate([a, a])), ("rows", lambda a: list(a)[1]),
                    ("cond", lambda a: lax.cond(True, lambda v: v * 2.0, lambda v: v, a)),
                    ("sort", lambda a: fnp.sort(a, axis=0))]:
        got = f(xg)
        assert _on_gpu(got), f"{what} left the device"
        assert_same(got, f(x), rtol=1e-6, atol=1e-7, what=what)


@check
def gpu_jit_backend_cuda_returns_device_arrays():
    x = floats((5,))
    out = ft.jit(lambda a: a * 3.0, backend="cuda")(x)       # host input, put on the device
    assert _on_gpu(out)
    assert_same(out, x * 3.0, what="backend=cuda")


@check
def gpu_device_mismatch_is_an_error():
    gpu = _gpu()
    a = ft.device_put(floats((3,)), gpu)
    b = ft.device_put(floats((3,)), ft.devices("cpu")[0])
    for f in (lambda: a + b, lambda: ft.jit(lambda p, q: p + q)(a, b)):
        try:
            f()
        except ValueError as e:
            assert "CudaDevice(id=0)" in str(e) and "CpuDevice(id=0)" in str(e), str(e)
        else:
            raise AssertionError("mixing a GPU and a committed CPU Array did not raise")



COMPLEX_UNARY = ["neg", "exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                 "asin", "acos", "atan", "asinh", "acosh", "atanh", "expm1", "log1p", "exp2",
                 "sign", "rsqrt", "logistic", "abs", "real", "imag", "conj", "stop_gradient"]
# the branch cuts from both sides (signed zeros), both axes, small |z| (expm1, log1p), larger
COMPLEX_POINTS = [0.5 + 0.3j, -1.5 - 0.7j, complex(2.0, 0.0), complex(2.0, -0.0),
                  complex(-2.0, 0.0), complex(-2.0, -0.0), complex(-0.5, 0.0), complex(-0.5, -0.0),
                  complex(0.0, 1.5), complex(-0.0, -1.5), 1e-4 + 2e-4j, 0.1 - 1e-3j, 3.0 - 4.0j,
                  -2.5 + 1.25j]
# where the formulas of cuda_math take their special branches: zero divisors, infinite and
# nan parts, zero
COMPLEX_SPECIAL = [complex(np.inf, 1.0), complex(-np.inf, np.nan), complex(np.nan, -np.inf),
                   complex(np.inf, -np.inf), complex(np.nan, 1.0), 0j, complex(-0.0, 0.0),
                   1.0 - 2.0j]


def complex_tols(dtype):
    """(rtol, atol) of complex results: relative to |want| (numpy's assert_allclose compares
    complex magnitudes), ~ a few ulp of the dtype (cmath on the GPU works in float64 for
    much of complex64); atol only for results that are 0 (the test points give results of
    magnitude 1e-4 and up, and a cancelling formula is off by more than rtol there)."""
    return (2e-6, 1e-12) if np.dtype(dtype) == np.complex64 else (1e-13, 1e-20)


def assert_named(names, got, want, rtol, atol):
    """Each output (named) of a list-valued program equals the eager one."""
    assert len(got) == len(want) == len(names)
    failures = []
    for n, g, w in zip(names, got, want):
        try:
            assert_same(g, w, rtol, atol, n)
        except AssertionError as e:
            failures.append(f"{n}: {' '.join(str(e).split())[:400]}")
    assert not failures, "\n".join(failures)


def assert_parts_equal(got, want, what):
    """Complex results with inf/nan parts: the real and imaginary parts match one by one."""
    g, w = np.asarray(got), np.asarray(want)
    assert g.dtype == w.dtype, f"{what}: dtype {g.dtype} != {w.dtype}"
    for part in ("real", "imag"):
        np.testing.assert_allclose(getattr(g, part), getattr(w, part), rtol=1e-6, atol=0,
                                   equal_nan=True, err_msg=f"{what} ({part} part)")


def complex_operands(dtype, shape=None):
    z = RNG.uniform(-2, 2, 12) + 1j * RNG.uniform(-2, 2, 12)
    z = z if shape is None else z[:int(np.prod(shape))].reshape(shape)
    return z.astype(dtype)


@check
def complex_programs():
    """complex64/complex128 programs run as CUDA kernels (no host fallback: stats()'s
    host_programs stays put, kernels launch) and match eager NumPy: every elementwise
    primitive of core.complex_primitives, the complex parts, conversions, reductions,
    cumulative ops, select_n, index maps, gather/scatter, dynamic slices, dot_general,
    control flow carrying complex values, and grad of real losses of complex values."""
    before = numba_cuda.stats()
    cases = []
    for dtype in (np.complex64, np.complex128):
        cases += complex_elementwise_cases(dtype) + complex_structure_cases(dtype)
    cases += complex_grad_cases()
    run_all(cases)
    after = numba_cuda.stats()
    assert after["host_programs"] == before["host_programs"], "a complex program ran on the host"
    assert after["launches"] > before["launches"] + len(cases), (before, after)
    if _on_gpu_with_cupy():     # complex dot_generals are cgemm/zgemm calls
        assert after["gemm_calls"] >= before["gemm_calls"] + 8, after


def complex_elementwise_cases(dtype):
    name = np.dtype(dtype).name
    rtol, atol = complex_tols(dtype)
    z = np.array(COMPLEX_POINTS, dtype)
    w = np.roll(z, 3) * np.asarray(1.5 - 0.5j, dtype)

    def unary(v):
        return [getattr(lax, n)(v) for n in COMPLEX_UNARY]

    def binary(a, b):
        return ([lax.add(a, b), lax.sub(a, b), lax.mul(a, b), lax.div(a, b), lax.pow(a, b),
                 lax.eq(a, b), lax.ne(a, a), lax.complex(lax.real(a), lax.imag(b))]
                + [lax.integer_pow(a, y) for y in (0, 1, 2, 3, 5, -1, -2)])
    bin_names = ["add", "sub", "mul", "div", "pow", "eq", "ne", "complex"] + [
        f"integer_pow {y}" for y in (0, 1, 2, 3, 5, -1, -2)]
    special = np.array(COMPLEX_SPECIAL, dtype)
    zero = np.zeros_like(special)
    real_dt = np.float32 if np.dtype(dtype) == np.complex64 else np.float64
    x = RNG.uniform(-3, 3, 6).astype(real_dt)
    ints = np.array([-3, 0, 2, 7, -1, 5], np.int32)
    ct = lax.convert_element_type

    def converts(v, r, i, b):
        c = v[:6]
        return [ct(r, dtype), ct(i, dtype), ct(b, dtype), ct(c, real_dt), ct(c, np.int32),
                ct(c, np.bool_), ct(c, np.complex64), ct(c, np.complex128), lax.conj(r)]
    conv_names = ["float->c", "int32->c", "bool->c", "c->float", "c->int32", "c->bool",
                  "c->complex64", "c->complex128", "conj of real"]
    jit = lambda f: ft.jit(f, backend="cuda")  # noqa: E731
    return [
        (f"unary {name}", lambda: assert_named(COMPLEX_UNARY, jit(unary)(z), unary(z), rtol, atol)),
        (f"binary {name}", lambda: assert_named(bin_names, jit(binary)(z, w), binary(z, w),
                                                rtol, atol)),
        (f"conversions {name}", lambda: assert_named(
            conv_names, jit(converts)(z, x, ints, ints > 0), converts(z, x, ints, ints > 0),
            rtol, atol)),
        (f"special values {name}", lambda: [
            assert_parts_equal(g, e, f"{n} {name}") for n, g, e in zip(
                ["div by zero", "div by special", "special / x", "sign", "abs", "mul"],
                jit(special_ops)(special, zero), special_ops(special, zero))]),
        (f"fused chain {name}", lambda: cuda_vs_eager(
            lambda v: lax.exp(v * 1j) / (v + 2) - fnp.conj(v) * fnp.sqrt(v) + 0.5, z,
            rtol=rtol * 4, atol=atol, what="fused chain")),
    ]


def special_ops(s, zero):
    return [lax.div(s, zero), lax.div(s[::-1], s), lax.div(s, s[::-1] * 0 + 1.5 - 2j),
            lax.sign(s), lax.abs(s), lax.mul(s, s[::-1] * 0 + 2)]


def complex_structure_cases(dtype):
    name = np.dtype(dtype).name
    rtol, _ = complex_tols(dtype)
    rtol *= 10      # sums and products: rounding grows with the terms, and a sum of O(1)
    atol = rtol     # terms may cancel: an absolute tolerance of the terms' size too
    z3 = complex_operands(dtype, (2, 3, 2))
    z23 = complex_operands(dtype, (2, 3))
    idx = np.array([[0, 2], [1, 0], [5, -3], [1, 0]], np.int32)   # repeats, out of range
    upd = complex_operands(dtype, (4, 2))
    big = (RNG.uniform(-1, 1, 300) + 1j * RNG.uniform(-1, 1, 300)).astype(dtype)
    cols = (complex_operands(dtype, (1, 12)).repeat(40, 0)
            * np.linspace(0.5, 1, 40)[:, None].astype(dtype))

    def reductions(v):
        return [lax.reduce_sum(v, (0,)), lax.reduce_sum(v, (1, 2)), lax.reduce_sum(v, (0, 1, 2)),
                lax.reduce_prod(v, (1,)), lax.reduce_prod(v, (0, 2)), fnp.mean(v, axis=1),
                lax.cumsum(v, 1), lax.cumsum(v, 0, True), lax.cumprod(v, 2),
                lax.cumprod(v, 1, True)]
    red_names = ["sum 0", "sum 12", "sum all", "prod 1", "prod 02", "mean", "cumsum",
                 "cumsum rev", "cumprod", "cumprod rev"]

    def indexing(v, i, u):
        return [lax.gather(v, i, (0, 1)), lax.scatter_add(v, i, u, (0, 1)),
                lax.scatter(v, i, u, (0, 1)), lax.scatter_mul(v, i, u, (0, 1)),
                lax.dynamic_slice(v, (np.int32(1), np.int32(1), np.int32(0)), (1, 2, 2)),
                lax.dynamic_update_slice(v, u[:1, None, :1] * 2,
                                         (np.int32(1), np.int32(2), np.int32(0))),
                lax.select_n(lax.real(v) > 0, v, v * 1j),
                lax.select_n(lax.full(v.shape, 1, np.int32), v, v + 1j, v * 2),
                lax.broadcast_in_dim(v[0], (3, 3, 2), (1, 2)) * 1j, lax.transpose(v, (2, 0, 1)),
                lax.reshape(v, (3, 4)) + 1, lax.rev(v, (1,)), v[:, 1:, ::-1],
                lax.pad(v, np.asarray(1 + 1j, dtype), [(1, 0, 1), (0, 1, 0), (0, 0, 0)]),
                lax.concatenate([v, v * 2j], 2)]
    idx_names = ["gather", "scatter_add", "scatter", "scatter_mul", "dynamic_slice", "dus",
                 "select_n", "select_n 3 cases", "broadcast", "transpose", "reshape", "rev",
                 "slice", "pad", "concatenate"]
    dots = [((2, 3), (3, 4), (((1,), (0,)), ((), ()))),
            ((3, 2), (4, 3), (((0,), (1,)), ((), ()))),              # both transposed
            ((2, 2, 3), (2, 3, 2), (((2,), (1,)), ((0,), (0,)))),    # batched
            ((3, 2, 2), (2, 3, 2), (((0, 2), (1, 0)), ((), ()))),    # interleaved: copied
            ((17, 5), (5, 18), (((1,), (0,)), ((), ())))]           # several tiles

    def dot_cases():
        for xs, ys, dn in dots:
            a, b = complex_operands(dtype, xs) if np.prod(xs) <= 12 else _cplx(dtype, xs), \
                complex_operands(dtype, ys) if np.prod(ys) <= 12 else _cplx(dtype, ys)
            cuda_vs_eager(lambda p, q: lax.dot_general(p, q, dn), a, b, rtol=rtol, atol=atol,
                          what=f"dot {xs}x{ys}")
        cuda_vs_eager(lambda p, q: fnp.vdot(p, q), z23, z23 * 1j, rtol=rtol, atol=atol,
                      what="vdot")

    def scan_body(c, xi):
        c = c * xi + 1j
        return c, lax.real(c) * xi
    jit = lambda f: ft.jit(f, backend="cuda")  # noqa: E731
    return [
        (f"reductions {name}", lambda: assert_named(red_names, jit(reductions)(z3), reductions(z3),
                                                    rtol, atol)),
        (f"long reductions {name}", lambda: cuda_vs_eager(
            lambda v, c: (fnp.sum(v * v), fnp.prod(v[:40] * 0.2 + 1), lax.reduce_sum(c, (0,))),
            big, cols, rtol=rtol, atol=atol * 10, what="block and column reductions")),
        (f"indexing {name}", lambda: assert_named(idx_names, jit(indexing)(z3, idx, upd),
                                                  indexing(z3, idx, upd), rtol, atol)),
        (f"dot_general {name}", dot_cases),
        (f"control flow {name}", lambda: [
            cuda_vs_eager(lambda c, s: lax.scan(scan_body, c, s), z23[0], z3.reshape(4, 3),
                          rtol=rtol, atol=atol, what="scan"),
            cuda_vs_eager(lambda p, v: lax.cond(p, lambda a: a * 1j, lambda a: fnp.exp(a), v),
                          np.bool_(False), z23, rtol=rtol, atol=atol, what="cond"),
            cuda_vs_eager(lambda v: lax.while_loop(lambda c: fnp.abs(c[0][0]) < 50,
                                                   lambda c: (c[0] * (1.5 + 0.5j), c[1] + 1),
                                                   (v, 0)), z23[0], rtol=rtol, atol=atol,
                          what="while"),
            cuda_vs_eager(lambda v: lax.fori_loop(0, 4, lambda i, c: c * c * 0.5 + 1j, v), z23,
                          rtol=rtol, atol=atol, what="fori")]),
    ]


def _cplx(dtype, shape):
    return (RNG.uniform(-1, 1, shape) + 1j * RNG.uniform(-1, 1, shape)).astype(dtype)


def complex_grad_cases():
    """grad of real losses through complex intermediates (real inputs) and of complex inputs
    (JAX's convention: df/dx - i df/dy), jitted for CUDA, against eager."""
    x = RNG.uniform(-1, 1, 4)
    z = complex_operands(np.complex128, (4,))

    def through(v):
        e = fnp.exp(1j * v) * v
        return fnp.sum(fnp.real(e * fnp.conj(e + 1)) + fnp.imag(fnp.log1p(e * 0.5)))

    def of_complex(u):
        return fnp.sum(fnp.abs(fnp.sin(u) * u) ** 2 + fnp.real(u @ u.T / (u + 3)))

    def vjp_holomorphic(u):
        return ft.vjp(lambda a: fnp.tanh(a) * fnp.sqrt(a + 4), u)[1](u * 0 + (1 - 1j))[0]
    jit = lambda f: ft.jit(f, backend="cuda")  # noqa: E731
    return [
        ("grad through complex intermediates",
         lambda: assert_same(jit(ft.grad(through))(x), ft.grad(through)(x), 1e-12, 1e-14,
                             "grad real->complex->real")),
        ("grad of complex inputs",
         lambda: assert_same(jit(ft.grad(of_complex))(z), ft.grad(of_complex)(z), 1e-12, 1e-14,
                             "grad complex->real")),
        ("vjp holomorphic", lambda: assert_same(jit(vjp_holomorphic)(z), vjp_holomorphic(z),
                                                1e-12, 1e-14, "vjp")),
        ("complex64 grad", lambda: assert_same(
            jit(ft.grad(of_complex))(z.astype(np.complex64)),
            ft.grad(of_complex)(z.astype(np.complex64)), 2e-5, 1e-6, "grad complex64")),
    ]


@check
def special_functions():
    """lgamma and erfc lower to CUDA math; digamma, polygamma, erf_inv, ndtri and the
    incomplete gamma/beta primitives raise NotImplementedError naming the primitive."""
    for dtype in (np.float32, np.float64):
        x = np.concatenate([floats((21,), dtype, 0.1, 6.0), SPECIAL.astype(dtype)])
        cuda_vs_eager(lambda v: (lax.lgamma(v), lax.erfc(v)), x, rtol=2e-6, atol=1e-6,
                      what=f"lgamma/erfc {dtype.__name__}")
    for name, f in [("digamma", lax.digamma), ("polygamma", lambda v: lax.polygamma(1, v)),
                    ("erf_inv", lax.erf_inv), ("ndtri", lax.ndtri),
                    ("igamma", lambda v: lax.igamma(v, v)), ("igammac", lambda v: lax.igammac(v, v)),
                    ("igamma_grad_a", lambda v: lax.igamma_grad_a(v, v)),
                    ("random_gamma_grad", lambda v: lax.random_gamma_grad(v, v)),
                    ("regularized_incomplete_beta", lambda v: lax.betainc(v, v, v))]:
        assert_cuda_unsupported(name, f, np.full(3, 0.5))

@check
def windowed_reductions():
    """reduce_window_sum/max/min lower to CUDA (padding, strides and both dilations); the
    general reduce and reduce_window raise NotImplementedError naming the primitive."""
    x = floats((4, 5))
    xi = RNG.integers(-9, 9, (4, 5)).astype(np.int32)
    for v in (x, xi):
        cuda_vs_eager(lambda u: (lax.reduce_window_sum(u, (2, 3), (1, 2), ((1, 0), (2, 1)), (2, 1), (1, 2)),
                                 lax.reduce_window_max(u, (3, 2), (2, 1), "SAME"),
                                 lax.reduce_window_min(u, (2, 2), (1, 1), "VALID", None, (2, 1))),
                      v, rtol=2e-6, what=f"reduce_window {v.dtype}")
    for name, f in [("reduce", lambda u: lax.reduce(u, np.float32(1), lambda a, b: a * b + 1, (0,))),
                    ("reduce_window", lambda u: lax.reduce_window(u, np.float32(1), lax.mul, (2, 2),
                                                                  (1, 1), "VALID"))]:
        assert_cuda_unsupported(name, f, x)


@check
def host_callbacks():
    """debug.print and pure_callback under jit(backend="cuda"): host steps that see the device
    values, print in program order (inside a scan too), and keep the program off CUDA graphs."""
    import contextlib
    import io

    from functrans.backends import cuda_graphs

    def f(x):
        y = fnp.sin(x)
        ft.debug.print("y={}", y)
        z = ft.pure_callback(np.cos, ft.ShapeDtypeStruct(y.shape, y.dtype), y)

        def body(c, xi):
            ft.debug.print("c={} xi={}", c, xi)
            return c + xi, c * xi
        c, ys = lax.scan(body, np.float32(0), x)
        return z * 2 + ys + c

    x = floats((3,))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        want = f(x)
    with contextlib.redirect_stdout(io.StringIO()) as got_buf:
        got = ft.jit(f, backend="cuda")(x)
    assert_same(got, want, rtol=1e-6, what="callbacks")
    assert got_buf.getvalue() == buf.getvalue(), (got_buf.getvalue(), buf.getvalue())
    closed = ft.make_jaxpr(f)(x)
    program = numba_cuda.executable(closed, "f").program
    assert not cuda_graphs.host_free(program)


@check
def fft_step():
    """lax.fft in a CUDA program, also between kernels: cuFFT (through CuPy) on a real GPU,
    scipy.fft on the host under the simulator; its program is never captured as a CUDA graph."""
    from functrans.backends import cuda_graphs
    x = floats((3, 8), np.float64)
    calls = numba_cuda._stats["cufft_calls"]
    closed = ft.make_jaxpr(lambda a: lax.fft(a * 2.0 + 1.0, "rfft", (8,)))(x)
    ex = numba_cuda._Executable(closed, "fft")
    assert_same(ex([x])[0], np.fft.rfft(x * 2 + 1), rtol=1e-12, atol=1e-12, what="rfft step")
    assert not cuda_graphs.host_free(ex.program)
    on_gpu = cuda_memory.cupy_module() is not None
    assert (numba_cuda._stats["cufft_calls"] > calls) == on_gpu, "cuFFT used iff CuPy is"
    z = (floats((2, 4, 6), np.float32) + 1j * floats((2, 4, 6), np.float32)).astype(np.complex64)
    cuda_vs_eager(lambda a: fnp.fft.irfft2(fnp.fft.rfft2(a)), x, rtol=1e-12, atol=1e-12,
                  what="rfft2/irfft2")
    cuda_vs_eager(lambda a: fnp.fft.ifftn(fnp.fft.fftn(a) * 2.0), z, rtol=1e-5, atol=1e-5,
                  what="fftn/ifftn complex64")
    cuda_vs_eager(lambda a: fnp.fft.rfft(a, n=10)[..., :0], x, rtol=0, atol=0,
                  what="empty slice of rfft")
    if not on_gpu:      # the cuFFT step's code, with scipy.fft standing in for cuFFT
        import scipy.fft
        closed = ft.make_jaxpr(lambda a: fnp.fft.irfft(fnp.fft.rfft(a * 2.0) * 1j, n=8))(x)
        ex = _built_with_stand_ins(closed, "fft", _NumpyAsCupy(), _HostArgs(scipy.fft))
        assert_same(ex([x])[0], np.fft.irfft(np.fft.rfft(x * 2) * 1j, n=8), rtol=1e-12,
                    atol=1e-12, what="cuFFT steps (scipy.fft standing in)")
        assert numba_cuda._stats["cufft_calls"] == calls + 2, numba_cuda._stats


@check
def collective_host_step():
    """A collective over an axis with a runner (functrans.distributed's process axis) is a
    host step of a CUDA program: the operand staged to the host, the runner's result back to
    the device, between kernels. The runner stands in for two processes that agree."""
    from functrans import core

    def runner(prim, vals, params):
        return np.asarray(vals[0]) * 2 if prim.name == "psum" else np.asarray(vals[0])
    x = floats((5,))
    f = lambda a: lax.psum(fnp.sin(a) * 3.0, "p") + fnp.cos(a)      # noqa: E731
    with core.extend_axis_env([core.AxisFrame("p", 2, runner)]):
        got = ft.jit(f, backend="cuda")(x)
    assert_same(got, np.sin(x) * 6 + np.cos(x), rtol=1e-6, what="psum host step")
    distributed_psum = ft.distributed.spmd(lambda a: lax.pmean(a * 2.0, "data"))
    assert_same(ft.jit(distributed_psum, backend="cuda")(x), x * 2, what="spmd on the GPU")


def main(names):
    results, seconds = run_checks(names, sys.stdout)
    print("CUDA_SIM_SECONDS " + json.dumps(seconds))
    print("CUDA_SIM_RESULTS " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main([a for a in sys.argv[1:] if not a.startswith("--")])
