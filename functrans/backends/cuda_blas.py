"""dot_general as cuBLAS GEMMs (CuPy's cuBLAS bindings, raw device pointers: no copies).

A dot_general is out[b, m, n] = sum_k x[b, m, k] * y[b, k, n], where b, m, k, n each stand
for a group of dims (batch, lhs free, contracting, rhs free). ``gemm_plan`` checks that every
group of each operand is one strided run in the operand's C-order buffer and that each
operand's matrix has a unit-stride side; then the product is one ``gemmEx`` (or
``gemmStridedBatchedEx`` for b > 1) with transpose flags and leading dimensions read off the
strides. So ``x.T @ y``, ``x @ y.T``, batch dims in any position, and the layouts that
transposition and batching rules produce (per-example gradients, HVPs) need no transpose
copies. An operand that is not such a strided matrix is first copied to (b, m, k) order by
CuPy. Shapes are row-major; cuBLAS is column-major, so the call computes out^T = y^T x^T.

complex64 and complex128 are the same calls with complex data types (``CUDA_C_32F``,
``CUDA_C_64F``: cgemm/zgemm; transposes, never conjugates, as dot_general).

Precision (float32, complex64): DEFAULT and HIGH use TF32 tensor cores
(``CUBLAS_COMPUTE_32F_FAST_TF32``, JAX's GPU default), HIGHEST full float32
(``CUBLAS_COMPUTE_32F``). float64 and complex128 are always full. Other dtypes, and a
preferred_element_type different from the operands', are not GEMMs here (the executor runs
its own kernel)."""
from __future__ import annotations

import numpy as np

from ..lax.lax import Precision, canonicalize_precision
from . import cuda_graphs

GEMM_DTYPES = tuple(np.dtype(t) for t in (np.float32, np.float64, np.complex64, np.complex128))
_INT32_MAX = 2 ** 31 - 1
# cuBLAS / CUDA enum values (stable across CUDA 11-13), used where CuPy lacks the name
_OP_N, _OP_T = 0, 1
_COMPUTE = {"32F": ("CUBLAS_COMPUTE_32F", 68), "32F_FAST_TF32": ("CUBLAS_COMPUTE_32F_FAST_TF32", 77),
            "64F": ("CUBLAS_COMPUTE_64F", 70)}
_DATA = {np.dtype(np.float32): ("CUDA_R_32F", 0), np.dtype(np.float64): ("CUDA_R_64F", 1),
         np.dtype(np.complex64): ("CUDA_C_32F", 4), np.dtype(np.complex128): ("CUDA_C_64F", 5)}


def _strides(shape):
    """C-order strides of shape, in elements."""
    out, acc = [], 1
    for n in reversed(shape):
        out.append(acc)
        acc *= n
    return out[::-1]


def group_run(shape, dims):
    """(extent, stride) of dims (in this order) read as one strided run of a C-order buffer,
    or None when they are not one run. Size-1 dims are skipped; an extent of 1 has stride 1."""
    st = _strides(shape)
    live = [d for d in dims if shape[d] != 1]
    extent = int(np.prod([shape[d] for d in live], dtype=np.int64))
    if not live:
        return 1, 1
    for a, b in zip(live, live[1:]):
        if st[a] != st[b] * shape[b]:
            return None
    return extent, st[live[-1]]


class _Matrix:
    """One operand as a strided batch of (rows x cols) matrices: batch stride, and either
    unit-stride columns (row-major, ld = row stride) or unit-stride rows (ld = column stride)."""
    __slots__ = ("batch_stride", "row_major", "ld")

    def __init__(self, batch_stride, row_major, ld):
        self.batch_stride, self.row_major, self.ld = batch_stride, row_major, ld


def _matrix(shape, batch, rows, cols):
    runs = [group_run(shape, g) for g in (batch, rows, cols)]
    if any(r is None for r in runs):
        return None
    (_, bs), (nr, rs), (nc, cs) = runs
    if cs == 1 and (rs >= nc or nr == 1):
        return _Matrix(bs, True, max(rs if nr > 1 else nc, 1))
    if rs == 1 and (cs >= nr or nc == 1):
        return _Matrix(bs, False, max(cs if nc > 1 else nr, 1))
    return None


class GemmPlan:
    """The cuBLAS call computing one dot_general equation (see the module docstring)."""

    def __init__(self, eqn):
        (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
        x, y = eqn.inputs
        xs, ys = tuple(x.aval.shape), tuple(y.aval.shape)
        lf = [d for d in range(len(xs)) if d not in lc and d not in lb]
        rf = [d for d in range(len(ys)) if d not in rc and d not in rb]
        size = lambda sh, g: int(np.prod([sh[d] for d in g], dtype=np.int64))  # noqa: E731
        self.B, self.M = size(xs, lb), size(xs, lf)
        self.K, self.N = size(xs, lc), size(ys, rf)
        self.dtype = np.dtype(x.aval.dtype)
        self.precision = canonicalize_precision(eqn.params.get("precision"))
        self.x_shape, self.x_perm = xs, list(lb) + lf + list(lc)
        self.y_shape, self.y_perm = ys, list(rb) + list(rc) + rf
        self.xm = _matrix(xs, lb, lf, lc)        # x as (B, M, K)
        self.ym = _matrix(ys, rb, rc, rf)        # y as (B, K, N)
        self._calls = {}                         # (compute, layouts) -> static call args

    def compute_type(self, default_precision):
        """The cuBLAS compute type name for this product ('32F', '32F_FAST_TF32', '64F');
        complex64 follows float32's precision rule, complex128 float64's."""
        if self.dtype in (np.float64, np.complex128):
            return "64F"
        prec = self.precision or canonicalize_precision(default_precision)
        return "32F" if Precision.HIGHEST in prec else "32F_FAST_TF32"

    def __call__(self, x, y, out, compute="32F"):
        """out (flat, B*M*N) = the product of the flat device buffers x and y, with the cuBLAS
        compute type ``compute`` (see ``compute_type``)."""
        from . import cuda_memory
        cp = cuda_memory.cupy_module()
        if self.B * self.M * self.N == 0:
            return
        if self.K == 0:
            cuda_memory.to_cupy(out, (out.size,)).fill(0)
            return
        keep = []                                # canonical copies live until the call is queued
        xm, xp = self._operand(cp, x, self.xm, self.x_shape, self.x_perm, (self.M, self.K), keep)
        ym, yp = self._operand(cp, y, self.ym, self.y_shape, self.y_perm, (self.K, self.N), keep)
        self._gemm(cp, xm, xp, ym, yp, _ptr(out), compute)

    def _operand(self, cp, buf, m, shape, perm, mat_shape, keep):
        if m is not None:
            return m, _ptr(buf)
        from . import cuda_memory
        c = cp.ascontiguousarray(cuda_memory.to_cupy(buf, shape).transpose(perm))
        keep.append(c)
        return _Matrix(mat_shape[0] * mat_shape[1], True, max(mat_shape[1], 1)), int(c.data.ptr)

    def _gemm(self, cp, xm, x_ptr, ym, y_ptr, out_ptr, compute):
        blas = _blas(cp)
        key = (blas, compute, xm is self.xm, ym is self.ym)
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = self._static_args(cp, blas, xm, ym, compute)
        fn, head, (a, b), mid, tail = call
        handle = blas.prepare(cuda_graphs.stream_ptr(), compute)
        fn(handle, *head, y_ptr, *a, x_ptr, *b, *mid, out_ptr, *tail)

    def _static_args(self, cp, blas, xm, ym, compute):
        """(function, args before A, (args after A), (after B), args before C, after C) of the
        cuBLAS call: everything but the three pointers, fixed per layout and compute type."""
        M, N, K, B = self.M, self.N, self.K, self.B
        if max(M, N, K, B, xm.ld, ym.ld) > _INT32_MAX:
            raise ValueError("GEMM dimension over 2**31-1")
        # column-major: C'(N x M) = op(A')(N x K) . op(B')(K x M); A' is y, B' is x
        op_a = _OP_N if ym.row_major else _OP_T
        op_b = _OP_N if xm.row_major else _OP_T
        dt = _enum(cp.cuda.runtime, *_DATA[self.dtype])
        ct = _enum(blas.enums, *_COMPUTE[compute])
        alpha, beta = _scalars(self.dtype)
        algo = getattr(blas.enums, "CUBLAS_GEMM_DEFAULT", -1)
        head = (op_a, op_b, N, M, K, alpha.ctypes.data)
        if B == 1:
            return (blas.gemmEx, head, ((dt, ym.ld), (dt, xm.ld)), (beta.ctypes.data,),
                    (dt, N, ct, algo))
        return (blas.gemmStridedBatchedEx, head,
                ((dt, ym.ld, ym.batch_stride), (dt, xm.ld, xm.batch_stride)),
                (beta.ctypes.data,), (dt, N, M * N, B, ct, algo))


_BLAS = {}      # cupy module -> its _Blas


def _blas(cp):
    """The cuBLAS entry points GEMMs use with this CuPy: our own handle through ctypes on the
    libcublas CuPy loaded (capturable in CUDA graphs), else CuPy's bindings on CuPy's handle
    (CuPy refuses any cuBLAS call while a stream is being captured)."""
    blas = _BLAS.get(cp)
    if blas is None:
        blas = None
        if getattr(cp, "__name__", "") == "cupy":
            try:
                blas = _CtypesBlas(cp)
            except Exception as e:  # noqa: BLE001  (no libcublas found, missing symbol)
                from . import cuda_memory
                cuda_memory._log(f"cuBLAS through ctypes unavailable ({type(e).__name__}: {e}); "
                                 "using CuPy's bindings (no GEMMs in CUDA graphs)")
        blas = _BLAS[cp] = blas or _CupyBlas(cp)
    return blas


class _CupyBlas:
    """CuPy's cuBLAS bindings on CuPy's shared handle (modes set before each call, as other
    users of the handle may change them)."""

    def __init__(self, cp):
        self.cp = cp
        self.enums = cp.cuda.cublas
        self.gemmEx = self.enums.gemmEx
        self.gemmStridedBatchedEx = self.enums.gemmStridedBatchedEx

    def prepare(self, stream, compute):
        """The handle to call with, bound to stream, host scalars, full float32 math unless
        the compute type asks for TF32."""
        cublas = self.enums
        handle = self.cp.cuda.device.get_cublas_handle()
        cublas.setStream(handle, stream)
        cublas.setPointerMode(handle, getattr(cublas, "CUBLAS_POINTER_MODE_HOST", 0))
        if compute == "32F":
            cublas.setMathMode(handle, getattr(cublas, "CUBLAS_DEFAULT_MATH", 0))
        return handle


class _CtypesBlas:
    """libcublas through ctypes with a handle of our own: default math and host pointer
    modes that nobody else changes, and no check against stream capture (cuBLAS GEMMs can be
    captured; CuPy's bindings refuse)."""

    def __init__(self, cp):
        import ctypes
        cp.cuda.cublas          # CuPy loads libcublas here
        lib = ctypes.CDLL(_libcublas_path())
        vp, i32, i64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_longlong
        self.enums = cp.cuda.cublas

        def fn(name, *argtypes):
            f = getattr(lib, name)
            f.argtypes, f.restype = list(argtypes), i32
            return _checked(name, f)
        create = fn("cublasCreate_v2", ctypes.POINTER(vp))
        self._set_stream = fn("cublasSetStream_v2", vp, vp)
        self.gemmEx = fn("cublasGemmEx", vp, i32, i32, i32, i32, i32, vp, vp, i32, i32, vp, i32,
                         i32, vp, vp, i32, i32, i32, i32)
        self.gemmStridedBatchedEx = fn(
            "cublasGemmStridedBatchedEx", vp, i32, i32, i32, i32, i32, vp, vp, i32, i32, i64, vp,
            i32, i32, i64, vp, vp, i32, i32, i64, i32, i32, i32)
        handle = vp()
        create(ctypes.byref(handle))
        self.handle, self.stream = handle.value, None
        self._lib = lib

    def prepare(self, stream, compute):
        if stream != self.stream:
            self._set_stream(self.handle, stream)
            self.stream = stream
        return self.handle


def _checked(name, f):
    def call(*args):
        status = f(*args)
        if status:
            raise RuntimeError(f"{name} failed with cuBLAS status {status}")
    return call


def _libcublas_path():
    """The path of the libcublas this process loaded (read from /proc/self/maps), else the
    library the linker finds."""
    import ctypes.util
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                if "/libcublas.so" in path:
                    return path
    except OSError:
        pass
    found = ctypes.util.find_library("cublas")
    if found is None:
        raise OSError("libcublas not found")
    return found


_SCALARS = {}


def _scalars(dtype):
    """Host (alpha=1, beta=0) of dtype, kept alive for cuBLAS to read."""
    if dtype not in _SCALARS:
        _SCALARS[dtype] = (np.ones(1, dtype), np.zeros(1, dtype))
    return _SCALARS[dtype]


def _enum(module, name, value):
    return getattr(module, name, value)


def _ptr(buf):
    from . import cuda_memory
    return cuda_memory.ptr(buf)


def gemm_plan(eqn):
    """The GemmPlan of a dot_general equation, or None when it is not a cuBLAS GEMM here
    (dtype other than float32/float64/complex64/complex128, a different preferred_element_type, or a literal
    operand)."""
    from ..core import Literal
    x, y = eqn.inputs
    dt = np.dtype(x.aval.dtype)
    if type(x) is Literal or type(y) is Literal or dt not in GEMM_DTYPES:
        return None
    if np.dtype(y.aval.dtype) != dt or np.dtype(eqn.out_binders[0].aval.dtype) != dt:
        return None
    return GemmPlan(eqn)
