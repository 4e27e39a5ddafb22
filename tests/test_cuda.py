"""jit(backend="cuda") without a GPU.

* The simulator checks (tests/cuda_sim_checks.py) run once, in ONE subprocess with
  NUMBA_ENABLE_CUDASIM=1 (the flag must be set before numba is imported); each check is
  reported as its own test here.
* In this process: the RuntimeError raised when CUDA cannot run, and (when NVVM is installed)
  compiling the generated kernels to PTX, which type-checks what the simulator cannot."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp
from functrans import lax

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHECK_NAMES = ["unary_float", "binary_float", "integer_ops", "bool_select_convert", "index_maps",
               "reductions", "argminmax_cumulative", "dot_general", "pad_concat_slices",
               "gather_scatter", "sort", "control_flow", "custom_rules_and_checkpoint",
               "mlp_training_step", "vmap_grad", "hvp_and_hessian", "eager_fallback_float16",
               "unsupported_primitive_message", "matmul_precision", "device_resident",
               "memory_pool", "loops_on_device", "gpu_arrays_follow_data",
               "gpu_jit_backend_cuda_returns_device_arrays", "gpu_device_mismatch_is_an_error",
               "cuda_graphs_replay", "special_functions", "windowed_reductions",
               "host_callbacks", "conv_general_dilated",
               "complex_programs", "fft_step", "collective_host_step", "conv_gemm_step"]


def _sim_env():
    return dict(os.environ, NUMBA_ENABLE_CUDASIM="1",
                PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))


@pytest.fixture(scope="module")
def gpu_check_run():
    """benchmarks/gpu_check.py --sim, started in the background (it overlaps the checks)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--sim",
                             "--skip-checks"], env=_sim_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def sim_results(gpu_check_run):
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "cuda_sim_checks.py")],
                          env=_sim_env(), capture_output=True, text=True, timeout=600)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("CUDA_SIM_RESULTS ")), None)
    assert line is not None, f"simulator run failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(line[len("CUDA_SIM_RESULTS "):])


def test_every_check_ran(sim_results):
    assert sorted(sim_results) == sorted(CHECK_NAMES)


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_simulator(sim_results, name):
    assert sim_results[name] == "ok", sim_results[name]


# ---------------------------------------------------------------------------------------------
# No GPU: a clear RuntimeError

def _no_sim(monkeypatch):
    from numba import config
    monkeypatch.setattr(config, "ENABLE_CUDASIM", 0)


def test_missing_numba_cuda_message(monkeypatch):
    from functrans.backends import numba_cuda
    _no_sim(monkeypatch)
    monkeypatch.setitem(sys.modules, "numba.cuda", None)     # import numba.cuda -> ImportError
    with pytest.raises(RuntimeError, match=r"numba-cuda|functrans\[cuda\]"):
        numba_cuda.check_available()


def test_no_gpu_message(monkeypatch):
    from numba import cuda

    from functrans.backends import numba_cuda
    _no_sim(monkeypatch)
    monkeypatch.setattr(cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError) as info:
        ft.jit(lambda x: x * 2, backend="cuda")(np.ones(3, np.float32))
    msg = str(info.value)
    assert "backend='cuda'" in msg and "NUMBA_ENABLE_CUDASIM" in msg
    assert "GPU" in msg or "driver" in msg
    del numba_cuda


def test_this_machine_reports_what_is_missing():
    from numba import config, cuda

    from functrans.backends import numba_cuda
    if config.ENABLE_CUDASIM:
        assert numba_cuda.check_available() == "simulator"
    elif cuda.is_available():
        assert numba_cuda.check_available() == "gpu"
    else:
        with pytest.raises(RuntimeError, match="cannot run: (no CUDA driver|no CUDA GPU|the CUDA driver)"):
            numba_cuda.check_available()


# ---------------------------------------------------------------------------------------------
# PTX: the generated kernels type-check and compile for sm_90 (needs NVVM, not a GPU)

def _nvvm_available():
    try:
        from numba.cuda.cudadrv import nvvm
        return nvvm.is_available()
    except Exception:
        return False


def _ptx_cases():
    rng = np.random.default_rng(1)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    params = [(f32(6, 16), f32(16)), (f32(16, 3), f32(3))]

    def loss(p, x, y):
        h = fnp.tanh(x @ p[0][0] + p[0][1])
        return fnp.mean((h @ p[1][0] + p[1][1] - y) ** 2)

    def unary(x):
        outs = [getattr(lax, n)(x) for n in ("neg", "sign", "floor", "ceil", "round", "exp",
                                              "exp2", "log", "log1p", "expm1", "tanh",
                                              "logistic", "sin", "asinh", "sqrt", "rsqrt",
                                              "cbrt", "erf")]
        return outs + [lax.is_finite(x), lax.integer_pow(x, -3), lax.atan2(x, x),
                       lax.rem(x, x), lax.pow(x, x), lax.max(x, x)]

    def ints(a, b):
        return [lax.div(a, b), lax.rem(a, b), lax.shift_left(a, b), lax.shift_right_logical(a, b),
                lax.bitwise_xor(a, b), lax.sign(a), lax.convert_element_type(a, np.bool_)]

    idx = np.array([[0], [2], [2]], np.int32)
    per_example = ft.vmap(ft.grad(loss), in_axes=(None, 0, 0))   # outer products: fused loops
    return [
        (ft.grad(loss), (params, f32(8, 6), f32(8, 3))),
        (per_example, (params, f32(8, 1, 6), f32(8, 1, 3))),
        (lambda x: [lax.reduce_sum(x, (0,)), lax.reduce_max(x, (1,)), lax.reduce_prod(x, (0, 1))],
         (f32(300, 40),)),
        (lambda x: lax.reduce_sum(x.astype(np.int64), (0,)), (f32(5000),)),
        (unary, (f32(4, 5),)),
        (unary, (f32(4, 5).astype(np.float64),)),
        (ints, (rng.integers(-9, 9, 7).astype(np.int32), rng.integers(-9, 9, 7).astype(np.int32))),
        (lambda b: [lax.bitwise_and(b, ~b), lax.reduce_max(b, (0,))], (rng.random(6) < 0.5,)),
        (lambda a, b: lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,)))), (f32(2, 5, 3), f32(2, 3, 4))),
        (lambda x, i, u: [lax.gather(x, i, (0,)), lax.scatter_add(x, i, u, (0,)),
                          lax.scatter(x, i, u, (0,)), lax.scatter_mul(x, i, u, (0,))],
         (f32(4, 3), idx, f32(3, 3))),
        (lambda x: [lax.cumsum(x, 1, True), lax.cummax(x, 0), lax.argmax(x, 1), lax.sort(x, dimension=0),
                    lax.pad(x, np.float32(0), [(1, -1, 1), (0, 2, 0)]),
                    lax.concatenate([x, x], 1), lax.rev(lax.transpose(x, (1, 0)), (0,))],
         (f32(4, 3),)),
        (lambda x, s: [lax.dynamic_slice(x, (s, s), (2, 2)),
                       lax.dynamic_update_slice(x, x[:2, :2], (s, s))], (f32(4, 3), np.int32(1))),
        # unrolled elementwise loop and block reduction (>= unroll_min elements)
        (lambda x: [fnp.sum(fnp.tanh(x) * fnp.sin(x) + fnp.exp(-x * x)), fnp.tanh(x) * 2],
         (f32(1 << 17),)),
        # column reductions (bias gradients), float with atomics and int64
        (lambda x: [lax.reduce_sum(x, (0,)), lax.reduce_max(x, (0,)),
                    lax.reduce_min(x.astype(np.int64), (0,))], (f32(300, 64),)),
        # control flow bodies and literals
        (lambda x: lax.scan(lambda c, xi: (c * 0.5 + xi, c - xi), x[0], x), (f32(6, 5),)),
    ]


def _all_launches(program):
    for run in program.steps:
        yield from getattr(run, "launches", [])
    for sub, _ in program._subs.values():
        yield from _all_launches(sub)


@pytest.mark.skipif(not _nvvm_available(), reason="no cuda toolkit (NVVM) on this machine")
def test_generated_kernels_compile_to_ptx():
    import numba
    from numba import config, cuda

    from functrans.backends import numba_cuda
    assert not config.ENABLE_CUDASIM
    n, names = 0, set()
    for f, args in _ptx_cases():
        closed = ft.make_jaxpr(f)(*args)
        for ln in _all_launches(numba_cuda.lower(closed).program):
            kernel = numba_cuda._load(ln)
            sig = numba.void(*[numba.from_dtype(np.dtype(v.aval.dtype))[::1]
                               for v in ln.reads + ln.writes])
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
            assert ".entry" in ptx
            names.add(ln.name)
            n += 1
    assert n >= 15
    assert {"reduce", "reduce_columns", "reduce_serial", "fused", "dot_general"} <= names, names
    from functrans.backends import cuda_memory
    fill = cuda_memory._fill_kernel()
    for dt in (np.float32, np.float64, np.int64, np.uint8, np.bool_):
        t = numba.from_dtype(np.dtype(dt))
        ptx, _ = cuda.compile_ptx(fill.py_func, numba.void(t[::1], t), cc=(9, 0))
        assert ".entry" in ptx


COMPLEX_UNARY = ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin",
                 "acos", "atan", "asinh", "acosh", "atanh", "expm1", "log1p", "exp2", "sign",
                 "rsqrt", "logistic", "abs", "neg", "real", "imag", "conj"]


def _complex_ptx_cases():
    """Every complex scalar rule in complex64 (float32 typing is where numba's casts bite),
    a few in complex128, and the kernels with complex shared memory or accumulators."""
    rng = np.random.default_rng(2)

    def unary(names):
        def f(v):
            return ([getattr(lax, n)(v) for n in names]
                    + [lax.integer_pow(v, -3), lax.pow(v, v), lax.div(v, v),
                       lax.complex(lax.real(v), lax.imag(v)), v.astype(np.float32),
                       v.astype(np.bool_), lax.eq(v, v)])
        return f

    def kernels(a, i):
        return [lax.reduce_sum(a, (0,)), lax.reduce_prod(a, (1,)), lax.cumprod(a, 0),
                a @ a.T, fnp.sum(a), lax.gather(a, i, (0,)), lax.scatter_add(a, i, a[:2], (0,)),
                lax.select_n(lax.real(a) > 0, a, a * 1j)]
    z = rng.standard_normal((3, 40)) + 1j * rng.standard_normal((3, 40))
    idx = np.array([[1], [2]])
    def to_complex(r, i, b, u):
        return [lax.convert_element_type(r, np.complex64), lax.conj(r),
                lax.convert_element_type(i, np.complex128),
                lax.convert_element_type(b, np.complex64),
                lax.convert_element_type(u, np.complex64), (r * 2).astype(np.complex128) * 1j]
    reals = (np.ones(3, np.float32), np.ones(3, np.int32), np.ones(3, bool), np.ones(3, np.uint64))
    return [(unary(COMPLEX_UNARY), (z.astype(np.complex64),)), (to_complex, reals),
            (unary(["sign", "expm1", "log1p", "exp2", "logistic", "abs", "conj"]), (z,)),
            (kernels, (np.tile(z, (20, 1)).astype(np.complex64), idx)),
            (kernels, (np.tile(z, (20, 1)), idx))]


@pytest.mark.skipif(not _nvvm_available(), reason="no cuda toolkit (NVVM) on this machine")
def test_complex_kernels_compile_to_ptx(monkeypatch):
    """Every complex kernel (cmath calls, cuda_math's complex device functions, complex shared
    memory in reductions and the tiled GEMM) compiles for sm_90. Device functions are compiled
    for the current device's compute capability, so without a GPU a fake sm_90 device stands
    in for it."""
    import types

    import numba
    import numba.cuda.dispatcher
    from numba import config, cuda

    from functrans.backends import numba_cuda
    assert not config.ENABLE_CUDASIM
    monkeypatch.setattr(numba.cuda.dispatcher, "get_current_device",
                        lambda: types.SimpleNamespace(compute_capability=(9, 0)))
    names = set()
    for f, args in _complex_ptx_cases():
        closed = ft.make_jaxpr(f)(*args)
        for ln in _all_launches(numba_cuda.lower(closed).program):
            sig = numba.void(*[numba.from_dtype(np.dtype(v.aval.dtype))[::1]
                               for v in ln.reads + ln.writes])
            ptx, _ = cuda.compile_ptx(numba_cuda._load(ln).py_func, sig, cc=(9, 0))
            assert ".entry" in ptx and ".target sm_90" in ptx
            names.add(ln.name)
    assert {"fused", "reduce", "reduce_columns", "dot_general", "cumprod", "gather",
            "scatter_add"} <= names, names


# ---------------------------------------------------------------------------------------------
# Integer scalar rules, typed by numba's CPU compiler: the same type inference the GPU compiler
# runs (the simulator executes Python, so it cannot see a uint64 value unified with an int64
# literal into float64, which made int64 shift_right_logical wrong on a real GPU).

INT_OPS = ["add", "sub", "mul", "div", "rem", "max", "min", "and", "or", "xor", "shift_left",
           "shift_right_logical", "eq", "ne", "lt", "ge", "neg", "sign", "abs", "not"]
LAX_NAMES = {"and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
             "not": "bitwise_not"}


def _int_operands(dtype):
    info, bits = np.iinfo(dtype), 8 * np.dtype(dtype).itemsize
    x = [info.min, info.max, info.max - 2, info.min + 3, 0, 1, 5, -36 if info.min < 0 else 36,
         2 ** (bits - 3) + 5]
    y = [0, 1, bits - 1, bits, min(bits + 3, info.max), 100, 3, 0, 4]
    if info.min < 0:
        y[-3] = -1
        y[-2] = -3
    return np.array(x, dtype=object).astype(dtype), np.array(y, dtype=object).astype(dtype)


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "uint32", "uint64"])
def test_integer_scalar_rules_keep_integer_types(dtype):
    import numba

    from functrans.backends import cuda_codegen as cg
    dt = np.dtype(dtype)
    x, y = _int_operands(dt)
    np.seterr(all="ignore")
    for op in INT_OPS:
        if op == "neg" and dt.kind == "u":
            continue
        unary = op in ("neg", "sign", "abs", "not")
        lax_fn = getattr(lax, LAX_NAMES.get(op, op))
        want = np.asarray(lax_fn(x) if unary else lax_fn(x, y))
        dout = want.dtype
        expr = cg.cast(cg.SCALAR_RULES[op](["a", "b"][:1 if unary else 2], dt, dout, {}), dout)
        src = f"def f(a, b):\n    return {expr}\n"
        ns = {"np": np}
        exec(src, ns)
        f = numba.njit(ns["f"])
        got = np.array([f(a, b) for a, b in zip(x, y)], dtype=dout)
        sig = f.signatures[0]
        assert f.nopython_signatures[0].return_type == numba.from_dtype(dout), (op, src, sig)
        np.testing.assert_array_equal(got, want, err_msg=f"{op} {dtype}: {src}")


def test_numpy_row_stack_guard(monkeypatch):
    from functrans.backends import cuda_compat
    monkeypatch.delattr(np, "row_stack", raising=False)
    assert cuda_compat.ensure_numpy_aliases() == ["row_stack"]
    assert np.row_stack is np.vstack
    assert cuda_compat.ensure_numpy_aliases() == []


# ---------------------------------------------------------------------------------------------
# cuBLAS GEMM plans (transpose flags, leading dimensions, batch strides), checked against a
# NumPy model of column-major gemmEx / gemmStridedBatchedEx on host memory: the GEMM itself
# needs a GPU, but which call a dot_general becomes does not.

def _colmajor(ptr, dtype, rows, cols, ld):
    import ctypes
    dtype = np.dtype(dtype)
    count = (cols - 1) * ld + rows
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)
    flat = np.frombuffer(raw, dtype, count)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (dtype.itemsize, ld * dtype.itemsize))


class _FakeCublas:
    CUBLAS_GEMM_DEFAULT = -1

    def __init__(self, dtype):
        self.dtype, self.calls, self.modes = np.dtype(dtype), [], {}

    def setPointerMode(self, handle, mode):
        self.modes["pointer"] = mode

    def setMathMode(self, handle, mode):
        self.modes["math"] = mode

    def setStream(self, handle, stream):
        self.modes["stream"] = stream

    def _op(self, ptr, trans, rows, cols, ld):
        return _colmajor(ptr, self.dtype, cols, rows, ld).T if trans else \
            _colmajor(ptr, self.dtype, rows, cols, ld)

    def gemmEx(self, h, ta, tb, m, n, k, alpha, A, at, lda, B, bt, ldb, beta, C, ct, ldc, comp, algo):
        self.calls.append(("gemmEx", ta, tb, comp, at))
        self._mm(ta, tb, m, n, k, A, lda, B, ldb, C, ldc)

    def gemmStridedBatchedEx(self, h, ta, tb, m, n, k, alpha, A, at, lda, sa, B, bt, ldb, sb,
                             beta, C, ct, ldc, sc, batch, comp, algo):
        self.calls.append(("strided", ta, tb, comp, at))
        it = self.dtype.itemsize
        for i in range(batch):
            self._mm(ta, tb, m, n, k, A + i * sa * it, lda, B + i * sb * it, ldb,
                     C + i * sc * it, ldc)

    def _mm(self, ta, tb, m, n, k, A, lda, B, ldb, C, ldc):
        c = _colmajor(C, self.dtype, m, n, ldc)
        c[...] = self._op(A, ta, m, k, lda) @ self._op(B, tb, k, n, ldb)


class _FakeCupy:
    def __init__(self, dtype):
        import types
        self.cuda = types.SimpleNamespace(cublas=_FakeCublas(dtype), runtime=types.SimpleNamespace(),
                                          device=types.SimpleNamespace(get_cublas_handle=lambda: 0))


GEMM_CASES = [((5, 7), (7, 3), (((1,), (0,)), ((), ()))),                 # x @ y
              ((7, 5), (7, 3), (((0,), (0,)), ((), ()))),                 # x.T @ y
              ((5, 7), (3, 7), (((1,), (1,)), ((), ()))),                 # x @ y.T
              ((7, 5), (3, 7), (((0,), (1,)), ((), ()))),                 # x.T @ y.T
              ((4, 5, 6), (4, 6, 3), (((2,), (1,)), ((0,), (0,)))),      # batched
              ((5, 4, 6), (6, 4, 3), (((2,), (0,)), ((1,), (1,)))),      # batch in the middle
              ((4, 6, 5), (4, 3, 6), (((1,), (2,)), ((0,), (0,)))),      # batched, transposed
              ((2, 3, 4, 5), (4, 5, 6), (((2, 3), (0, 1)), ((), ()))),   # two contracting dims
              ((8, 1, 5), (8, 5, 3), (((2,), (1,)), ((0,), (0,)))),      # per-example rows
              ((8, 5), (8, 3), (((), ()), ((0,), (0,)))),                # batched outer (K=1)
              ((6,), (6,), (((0,), (0,)), ((), ()))),                    # vector dot
              ((1, 6), (6, 1), (((1,), (0,)), ((), ())))]


@pytest.mark.parametrize("xs,ys,dn", GEMM_CASES)
@pytest.mark.parametrize("precision", [None, "highest"])
def test_gemm_plan_matches_dot_general(xs, ys, dn, precision):
    from functrans.backends import cuda_blas
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(xs), rng.standard_normal(ys)
    closed = ft.make_jaxpr(lambda a, b: lax.dot_general(a, b, dn, precision=precision))(x, y)
    plan = cuda_blas.gemm_plan(closed.jaxpr.eqns[0])
    assert plan is not None and plan.xm is not None and plan.ym is not None
    want = lax.dot_general(x, y, dn)
    out = np.zeros(want.size)
    fake = _FakeCupy(np.float64)
    plan._gemm(fake, plan.xm, x.ctypes.data, plan.ym, y.ctypes.data, out.ctypes.data, "64F")
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-12, atol=1e-12)
    assert plan.compute_type("default") == "64F"
    assert fake.cuda.cublas.modes["pointer"] == 0          # alpha/beta are host scalars
    assert fake.cuda.cublas.modes["stream"] == 0           # the null stream, as our kernels
    out32 = np.zeros(want.size, np.float32)
    fake32 = _FakeCupy(np.float32)
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    plan._gemm(fake32, plan.xm, x32.ctypes.data, plan.ym, y32.ctypes.data, out32.ctypes.data, "32F")
    np.testing.assert_allclose(out32.reshape(want.shape), want, rtol=1e-4, atol=1e-4)
    assert fake32.cuda.cublas.modes["math"] == 0           # full float32: default math mode


@pytest.mark.parametrize("xs,ys,dn", GEMM_CASES[:5])
def test_gemm_plan_complex_is_cgemm_zgemm_without_conjugation(xs, ys, dn):
    from functrans.backends import cuda_blas
    rng = np.random.default_rng(0)
    for dtype, compute, data, tol in ((np.complex128, "64F", 5, 1e-12),
                                      (np.complex64, "32F", 4, 1e-5)):
        x = (rng.standard_normal(xs) + 1j * rng.standard_normal(xs)).astype(dtype)
        y = (rng.standard_normal(ys) + 1j * rng.standard_normal(ys)).astype(dtype)
        closed = ft.make_jaxpr(lambda a, b: lax.dot_general(a, b, dn))(x, y)
        plan = cuda_blas.gemm_plan(closed.jaxpr.eqns[0])
        assert plan is not None and plan.compute_type("default") == (
            "64F" if dtype == np.complex128 else "32F_FAST_TF32")
        want = np.asarray(lax.dot_general(x, y, dn))
        out = np.zeros(want.size, dtype)
        fake = _FakeCupy(dtype)
        plan._gemm(fake, plan.xm, x.ctypes.data, plan.ym, y.ctypes.data, out.ctypes.data, compute)
        np.testing.assert_allclose(out.reshape(want.shape), want, rtol=tol, atol=tol)
        assert [c[-1] for c in fake.cuda.cublas.calls] == [data], fake.cuda.cublas.calls


def test_gemm_precision_selects_tf32_or_float32():
    from functrans.backends import cuda_blas
    x = np.ones((4, 4), np.float32)
    dn = (((1,), (0,)), ((), ()))

    def plan(prec):
        closed = ft.make_jaxpr(lambda a: lax.dot_general(a, a, dn, precision=prec))(x)
        return cuda_blas.gemm_plan(closed.jaxpr.eqns[0])
    assert plan(None).compute_type("default") == "32F_FAST_TF32"
    assert plan(None).compute_type("highest") == "32F"
    assert plan(lax.Precision.HIGHEST).compute_type("default") == "32F"
    assert plan(("default", "highest")).compute_type("default") == "32F"
    assert plan("high").compute_type("highest") == "32F_FAST_TF32"
    ints = ft.make_jaxpr(lambda a: lax.dot_general(a, a, dn))(x.astype(np.int32))
    assert cuda_blas.gemm_plan(ints.jaxpr.eqns[0]) is None


def test_gemm_plan_needs_a_copy_only_for_interleaved_layouts():
    from functrans.backends import cuda_blas
    # contracting dims (0, 2) of x are not one strided run: x is copied to (m, k) first
    x, y = np.ones((3, 4, 5)), np.ones((3, 5, 2))
    closed = ft.make_jaxpr(lambda a, b: lax.dot_general(a, b, (((0, 2), (0, 1)), ((), ()))))(x, y)
    plan = cuda_blas.gemm_plan(closed.jaxpr.eqns[0])
    assert plan.xm is None and plan.ym is not None


# ---------------------------------------------------------------------------------------------
# benchmarks/gpu_check.py (the one script run on the GPU machine) on the simulator, tiny sizes

def test_gpu_check_script_prints_the_table_on_the_simulator(gpu_check_run):
    out, err = gpu_check_run.communicate(timeout=300)
    assert gpu_check_run.returncode == 0, out[-3000:] + err[-3000:]
    assert "| workload | functrans | JAX | PyTorch |" in out, out[-3000:]
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "workload" not in ln]
    names = ["MLP SGD step", "per-example grads", "HVP", "fused sum", "scan RNN grad", "matmul"]
    assert [any(ln.startswith(f"| {n}") for ln in rows) for n in names] == [True] * len(names), rows
    assert not any("error:" in ln or "skipped" in ln for ln in rows), rows
    assert "steady state:" in out


def test_numpy_products_pass_precision_and_preferred_type():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    for f in (lambda x, y: fnp.matmul(x, y, precision="highest"),
              lambda x, y: fnp.dot(x, y, precision="highest"),
              lambda x, y: fnp.einsum("ij,jk->ik", x, y, precision="highest")):
        eqn = [e for e in ft.make_jaxpr(f)(a, b).jaxpr.eqns if e.primitive.name == "dot_general"][0]
        assert eqn.params["precision"] == (lax.Precision.HIGHEST,) * 2
    for f in (fnp.matmul, fnp.dot, lambda x, y: fnp.einsum("ij,jk->ik", x, y)):
        assert f(a, b).dtype == np.float32
    assert fnp.matmul(a, b, preferred_element_type=np.float64).dtype == np.float64
    assert fnp.einsum("ij,jk,kl->il", a, b, b.T, preferred_element_type=np.float64).dtype == np.float64
    assert "precision" not in ft.make_jaxpr(fnp.matmul)(a, b).jaxpr.eqns[0].params
