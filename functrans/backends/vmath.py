"""Scalar math helpers called from generated kernels (numba njit; the float32 ones inlined by
LLVM into the kernels' loops, see _llvm_inlined).

float32 exp/log/tanh/logistic/sin/cos are branch-free range reduction + polynomial
(Cephes-style coefficients), so LLVM vectorises the loops that call them; libm would be called
once per element (about 15 ns for tanh against 0.2 ns here). float64 uses libm. Integer helpers give
lax semantics (division rounds towards zero, x / 0 == 0)."""
import math
import sys

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .cache import _guard_dispatchers, _install_locator


def _skip_import_time_blas_probe():
    """numba's CPU target imports numba.np.arraymath on its first compile or cache load, and
    that module's import calls ``ensure_blas()``, importing scipy.linalg (0.15-0.25 s here, a
    third of a warm process's first jit call) only to record that np.dot could be compiled.
    scipy is a dependency, so the answer is yes; numba's np.dot typing calls ensure_blas again
    (for real) when a kernel that uses it compiles. So arraymath is imported here with the probe
    answered, and the real function restored. Any surprise in numba's layout: do nothing."""
    if "numba.np.arraymath" in sys.modules:
        return
    try:
        from numba.np import linalg
        real = linalg.ensure_blas
    except (ImportError, AttributeError):
        return
    linalg.ensure_blas = lambda: None
    try:
        import numba.np.arraymath  # noqa: F401
    finally:
        linalg.ensure_blas = real


_skip_import_time_blas_probe()
_install_locator()      # numba keeps these functions' machine code in FUNCTRANS_CACHE_DIR

# inline="always": small helpers inlined into their callers' numba IR
_J = dict(cache=True, error_model="numpy", inline="always")
# the helpers kernels call through _llvm_inlined: compiled on their own, inlined by LLVM (as
# plain calls they would run per element: 8 ns for tanh, against 0.2 ns inlined and vectorised)
_K = dict(cache=True, error_model="numpy")


@intrinsic
def _f2i(typingctx, x):
    sig = types.int32(types.float32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return sig, codegen


@intrinsic
def _i2f(typingctx, i):
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return sig, codegen


@intrinsic
def _madvise(typingctx, addr, n, advice):
    sig = types.int32(types.int64, types.int64, types.int32)

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.IntType(32), [i8p, ir.IntType(64), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "madvise")
        return builder.call(fn, [builder.inttoptr(args[0], i8p), args[1], args[2]])
    return sig, codegen


_HUGE = 2 << 20
_MADV_HUGEPAGE = np.int32(14)   # Linux only; elsewhere hugepages() does nothing
_LINUX = sys.platform.startswith("linux")


@numba.njit(cache=True)
def hugepages(v):
    """Ask Linux for transparent huge pages on a fresh buffer of 4 MiB or more (as numpy's own
    allocator does): the first touch of a 100 MB buffer then costs 50 page faults, not 25000
    (45 ms against 7 ms for a 128x784x256 float32 outer product). Returns v."""
    n = v.size * v.itemsize
    if _LINUX and n >= 2 * _HUGE:
        a = v.ctypes.data
        start = (a + _HUGE - 1) & ~(_HUGE - 1)
        end = (a + n) & ~(_HUGE - 1)
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)
    return v


@intrinsic
def _gemm_beta1(typingctx, a, b, c):
    """c += a @ b by BLAS gemm with beta = 1 (numba's own np.dot calls the same helper with
    beta = 0). a, b: C-contiguous or transposed (F) 2-D views; c: C-contiguous."""
    if not all(isinstance(t, types.Array) and t.ndim == 2 for t in (a, b, c)):
        return None
    if a.dtype != c.dtype or b.dtype != c.dtype or a.layout not in "CF" or \
            b.layout not in "CF" or c.layout != "C":
        return None
    sig = types.none(a, b, c)

    def codegen(context, builder, signature, args):
        from numba.np.linalg import check_blas_return, get_blas_kind, make_constant_slot
        arrays = [context.make_array(t)(context, builder, v) for t, v in zip(signature.args, args)]
        shapes = [cgutils.unpack_tuple(builder, x.shape, 2) for x in arrays]
        (m, k), n = shapes[0], shapes[2][1]
        i8, vp = ir.IntType(8), ir.IntType(8).as_pointer()
        intp = context.get_value_type(types.intp)
        fnty = ir.FunctionType(ir.IntType(32), [i8, i8, i8, intp, intp, intp, vp, vp, intp,
                                                 vp, intp, vp, vp, intp])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "numba_xxgemm")
        dtype = signature.args[2].dtype
        one = builder.bitcast(make_constant_slot(context, builder, dtype, 1.0), vp)

        def operand(t, x, shape):        # (trans flag, leading dimension, data) in BLAS terms
            return (ir.Constant(i8, ord("n" if t.layout == "C" else "t")),
                    shape[1] if t.layout == "C" else shape[0], builder.bitcast(x.data, vp))
        # row-major c = a b is column-major c' = b' a'
        ta, lda, pa = operand(signature.args[1], arrays[1], shapes[1])
        tb, ldb, pb = operand(signature.args[0], arrays[0], shapes[0])
        kind = ir.Constant(i8, ord(get_blas_kind(dtype)))
        res = builder.call(fn, (kind, ta, tb, n, m, k, one, pa, lda, pb, ldb, one,
                                builder.bitcast(arrays[2].data, vp), n))
        check_blas_return(context, builder, res)
        return context.get_dummy_value()
    return sig, codegen


@numba.njit(cache=True)
def gemm_acc(a, b, c):
    """c += a @ b in place (2-D float or complex arrays of one dtype), by BLAS: the kernels'
    lowering of dot_accumulate, a product summed into another product's buffer."""
    if a.shape[0] and a.shape[1] and b.shape[1]:    # BLAS rejects a leading dimension of 0
        _gemm_beta1(a, b, c)


# ---------------------------------------------------------------------------------------------
# Helpers that LLVM inlines and numba types once

def _llvm_inlined(impl, sig=types.float32(types.float32), inline=True, consts=(), name=None):
    """A function of signature ``sig`` (float32 -> float32 by default) calling the njit
    ``impl`` (with the int64 ``consts`` as its last arguments) at the LLVM level with a
    call-site ``alwaysinline`` (a plain call if not ``inline``): impl is compiled once (then
    loaded from the on-disk cache, whose entries keep their bitcode for linking), and LLVM
    inlines it into each loop body (which it then vectorises, as before). Inlined as numba IR
    (inline="always") impl was typed and lowered again at every call site of every kernel:
    five times the compile time of a kernel with a few dozen sins, and the bulk of a large
    program's."""
    def typer(args):
        if any(a != t and not (isinstance(a, types.Integer) and isinstance(t, types.Integer))
               for a, t in zip(args, sig.args)):
            return None
        return sig, codegen

    full = sig.return_type(*sig.args, *[types.int64] * len(consts))

    def codegen(context, builder, signature, args):
        cres = impl.get_compile_result(full)
        context.add_linking_libs([cres.library])
        args = list(args) + [context.get_constant(types.int64, c) for c in consts]
        first = len(builder.block.instructions)
        _, out = context.call_internal_no_propagate(builder, cres.fndesc, full, args)
        for ins in builder.block.instructions[first:]:   # impl cannot raise: no status check
            if inline and isinstance(ins, ir.CallInstr):
                ins.attributes.add("alwaysinline")
        return out

    def unary(typingctx, x):
        return typer((x,))

    def binary(typingctx, x, y):
        return typer((x, y))
    fn = unary if len(sig.args) == 1 else binary    # intrinsics take no *args
    fn.__name__ = name or impl.__name__.lstrip("_")
    fn.__doc__ = impl.__doc__
    return intrinsic(fn)


_F = np.float32


@numba.njit(**_J)
def _pow2f(n):
    """2**n for int32 n in [-126, 127]."""
    return _i2f(np.int32((n + 127) << 23))


@numba.njit(**_K)
def _exp_f32(x):
    """exp(x) for float32 x, about 1 ulp; inf/nan/underflow as numpy."""
    xc = min(max(x, _F(-104.0)), _F(89.0))
    n = np.floor(xc * _F(1.44269504088896341) + _F(0.5))
    r = xc - n * _F(0.693359375)
    r = r - n * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    y = p * (r * r) + r + _F(1.0)
    ni = np.int32(n)
    n1 = ni >> 1
    y = y * _pow2f(n1) * _pow2f(ni - n1)
    return x if x != x else y


exp_f32 = _llvm_inlined(_exp_f32)


@numba.njit(**_K)
def _log_f32(x):
    """log(x) for float32 x, about 1 ulp; log(0) = -inf, log(<0) = nan, as numpy."""
    tiny = x < _F(1.17549435e-38)
    xs = x * _F(8388608.0) if tiny else x
    i = _f2i(xs)
    e = np.float32(((i >> 23) & 0xff) - 126) - (_F(23.0) if tiny else _F(0.0))
    m = _i2f((i & np.int32(-2139095041)) | np.int32(0x3f000000))  # mantissa in [0.5, 1)
    small = m < _F(0.707106781186547524)
    e = e - _F(1.0) if small else e
    m = (m + m - _F(1.0)) if small else (m - _F(1.0))
    z = m * m
    p = _F(7.0376836292e-2)
    p = p * m - _F(1.1514610310e-1)
    p = p * m + _F(1.1676998740e-1)
    p = p * m - _F(1.2420140846e-1)
    p = p * m + _F(1.4249322787e-1)
    p = p * m - _F(1.6668057665e-1)
    p = p * m + _F(2.0000714765e-1)
    p = p * m - _F(2.4999993993e-1)
    p = p * m + _F(3.3333331174e-1)
    y = m * z * p
    y = y + e * _F(-2.12194440e-4)
    y = y - _F(0.5) * z
    r = m + y + e * _F(0.693359375)
    r = _F(-np.inf) if x == _F(0.0) else r
    r = _F(np.nan) if x < _F(0.0) else r
    r = x if (x != x or x == _F(np.inf)) else r
    return r


@numba.njit(**_K)
def _tanh_f32(x):
    """tanh(x) for float32 x, a few ulp."""
    ax = abs(x)
    z = x * x
    small = ((((_F(-5.70498872745e-3) * z + _F(2.06390887954e-2)) * z - _F(5.37397155531e-2)) * z
              + _F(1.33314422036e-1)) * z - _F(3.33332819422e-1)) * z * x + x
    e = exp_f32(min(ax + ax, _F(40.0)))
    big = _F(1.0) - _F(2.0) / (e + _F(1.0))
    big = -big if x < _F(0.0) else big
    return small if ax < _F(0.625) else (x if x != x else big)


@numba.njit(**_K)
def _logistic_f32(x):
    """1 / (1 + exp(-x)) for float32 x without overflow."""
    e = exp_f32(-abs(x))
    d = _F(1.0) + e
    return (_F(1.0) / d) if x >= _F(0.0) else (x if x != x else e / d)


@numba.njit(**_J)
def logistic_f64(x):
    """1 / (1 + exp(-x)) for float64 x without overflow."""
    e = math.exp(-abs(x))
    d = 1.0 + e
    return (1.0 / d) if x >= 0.0 else (x if x != x else e / d)


def _bitcast(src, dst, llvm_type):
    """An intrinsic reinterpreting a src scalar's bits as a dst."""
    def cast(typingctx, x):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], llvm_type)
        return dst(src), codegen
    return intrinsic(cast)


_d2l = _bitcast(types.float64, types.int64, ir.IntType(64))


@intrinsic
def bitcast_as(typingctx, x, target):
    """x's bits read as the scalar type ``target`` (a NumPy type of x's width, as np.uint32):
    lax.bitcast_convert_type of one element."""
    out = target.instance_type

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(out))
    return out(x, target), codegen


_l2d = _bitcast(types.int64, types.float64, ir.DoubleType())


@numba.njit(**_J)
def _reduce_bits(b, nmant, nexp, ebits, mbits):
    """The bits b (int64) of a float with nmant fraction and nexp exponent bits, rounded to
    nearest even at mbits fraction bits, then past an ebits exponent's range made inf or a
    signed zero (lax.reduce_precision; the NumPy impl is its array form)."""
    if mbits < nmant:
        shift = nmant - mbits
        b = (b + ((1 << (shift - 1)) - 1 + ((b >> shift) & 1))) & ~((1 << shift) - 1)
    if ebits < nexp:
        sign = b & (np.int64(-1) << (nmant + nexp))     # the sign bit, sign-extended
        e = ((b >> nmant) & ((1 << nexp) - 1)) - ((1 << (nexp - 1)) - 1)
        emax = (1 << (ebits - 1)) - 1
        if e > emax:
            b = sign | (((1 << nexp) - 1) << nmant)
        elif e < 1 - emax:
            b = sign
    return b


@numba.njit(**_J)
def reduce_precision_f32(x, ebits, mbits):
    """lax.reduce_precision of a float32 (NaN kept); (8, 7) rounds it to bfloat16."""
    if x != x:
        return x
    return _i2f(np.int32(_reduce_bits(np.int64(_f2i(x)), 23, 8, ebits, mbits)))


@numba.njit(**_J)
def reduce_precision_f64(x, ebits, mbits):
    """lax.reduce_precision of a float64 (NaN kept)."""
    if x != x:
        return x
    return _l2d(_reduce_bits(_d2l(x), 52, 11, ebits, mbits))


@numba.njit(**_J)
def fsign(x):
    """numpy's sign for floats: nan stays nan, +-0 gives 0."""
    return x if x != x else (1 if x > 0 else (-1 if x < 0 else x - x))


@numba.njit(**_J)
def idiv(x, y):
    """Integer division rounding towards zero; x / 0 == 0 (lax.div)."""
    if y == 0:
        return x - x
    if y == -1:
        return -x
    q = x // y
    if q * y != x and (x < 0) != (y < 0):
        q += 1
    return q


@numba.njit(**_J)
def irem(x, y):
    """Integer remainder with the sign of x; x % 0 == 0 (lax.rem)."""
    if y == 0 or y == -1:
        return x - x
    return x - idiv(x, y) * y


@numba.njit(**_J)
def cabs_c64(z):
    """abs of a complex64 as float32: sqrt of the sum of squares in float64 (exact squares, no
    overflow or underflow in float64's range), inf if either part is infinite (as hypot, even
    with a nan). Branch-free, so LLVM vectorises the loop; numba's abs calls hypot per element
    (8 ns against 1 ns here)."""
    r = np.float64(z.real)
    i = np.float64(z.imag)
    s = math.sqrt(r * r + i * i)
    return np.float32(np.inf if (abs(r) == np.inf or abs(i) == np.inf) else s)


@numba.njit(**_J)
def fmax(a, b):
    """numpy.maximum on scalars (nan propagates)."""
    return a if (a >= b or a != a) else b


@numba.njit(**_J)
def fmin(a, b):
    """numpy.minimum on scalars (nan propagates)."""
    return a if (a <= b or a != a) else b


# -- float32 sin/cos: argument reduction and polynomials in float64 below 2**23, libm above ---

_N = 300     # fraction bits of the fixed-point pi below


def _pi_fixed(n=_N):
    """pi * 2**n as an integer (Machin's formula in integer arithmetic, 16 guard bits)."""
    g = n + 16

    def atan_inv(q):                            # atan(1/q) * 2**g
        s, term, k, sign = 0, (1 << g) // q, 1, 1
        while term:
            s += sign * (term // k)
            term //= q * q
            k += 2
            sign = -sign
        return s
    return (4 * (4 * atan_inv(5) - atan_inv(239))) >> 16


def _pio2_parts(bits=29):
    """pi/2 as three float64: two of `bits` significant bits (k * part exact for k < 2**24),
    then the rounded rest."""
    v = _pi_fixed() >> 1                        # pi/2 * 2**_N, in [1, 2) * 2**_N
    parts = []
    for p in range(2):
        shift = v.bit_length() - bits
        chunk = v >> shift
        parts.append(math.ldexp(chunk, shift - _N))
        v -= chunk << shift
    parts.append(math.ldexp(v >> (v.bit_length() - 60), v.bit_length() - 60 - _N))
    return parts


_PIO2_1, _PIO2_2, _PIO2_3 = _pio2_parts()


@numba.njit(**_K)
def _trig_small(x, q0):
    """sin(x + q0 * pi/2) for a finite float32 |x| < 2**23 and q0 in {0, 1} (<= 1 ulp;
    anything else gives garbage): Cody-Waite reduction in float64 (x = k pi/2 + r,
    |r| <= pi/4; its first steps are exact below 2**23), then the sin or cos polynomial of r
    picked by the quadrant with selects, so that loops calling it vectorise. Kernels use it in
    a first pass that also records whether any argument was outside that range, and rerun the
    loop with _trig_full if one was."""
    xd = np.float64(x)
    k = np.rint(xd * 0.6366197723675814)
    r = ((xd - k * _PIO2_1) - k * _PIO2_2) - k * _PIO2_3
    q = (np.int64(k) + q0) & 3
    z = r * r
    s = r + r * z * (-1.6666666666666666e-1 + z * (8.333333333333333e-3 + z * (
        -1.984126984126984e-4 + z * (2.7557319223985893e-6 + z * (
            -2.505210838544172e-8 + z * 1.6059043836821613e-10)))))
    c = 1.0 + z * (-0.5 + z * (4.1666666666666664e-2 + z * (-1.388888888888889e-3 + z * (
        2.48015873015873e-5 + z * (-2.755731922398589e-7 + z * 2.08767569878681e-9)))))
    y = _F((c if q & 1 else s) * np.float64(1 - (q & 2)))
    return x if q0 == 0 and abs(x) < _F(2.44140625e-4) else y    # sin: keeps -0 and tiny x


_trig = _llvm_inlined(_trig_small, types.float32(types.float32, types.int64))
_TWO_23 = _F(8388608.0)


@numba.njit(**_K)
def _trig_full(x, q0):
    """sin(x + q0 * pi/2) for any float32 x (<= 1 ulp): _trig_small below 2**23, libm's
    float64 sin or cos (Payne-Hanek reduced) above; sin/cos(+-inf) = nan, sin(-0) = -0."""
    if abs(x) < _TWO_23:
        return _trig(x, q0)
    xd = np.float64(x)
    return _F(math.cos(xd) if q0 & 1 else math.sin(xd))


_S32 = types.float32(types.float32)
sin_f32_small = _llvm_inlined(_trig_small, _S32, name="sin_f32_small", consts=(0,))
cos_f32_small = _llvm_inlined(_trig_small, _S32, name="cos_f32_small", consts=(1,))
# the full versions run only in the rare second pass: called, not inlined (smaller kernels)
sin_f32 = _llvm_inlined(_trig_full, _S32, False, name="sin_f32", consts=(0,))
cos_f32 = _llvm_inlined(_trig_full, _S32, False, name="cos_f32", consts=(1,))


log_f32, tanh_f32, logistic_f32 = map(_llvm_inlined, (_log_f32, _tanh_f32, _logistic_f32))


# ---------------------------------------------------------------------------------------------
# Special functions (float64; float32 callers cast the result). Each gives scipy.special's
# value at the edges: poles, +-inf and nan.

_SJ = dict(cache=True, error_model="numpy")
# digamma and the incomplete gamma/beta kernels live under lax (eager impls run them too)
from ..lax._special_kernels import (betainc_f64, digamma_f64, igamma_f64,  # noqa: E402,F401
                                    igamma_grad_a_f64, igammac_f64, random_gamma_grad_f64)

# B_2j / (2j)! (Hurwitz zeta's asymptotic series), j = 1..8
_ZETA_C = (1 / 12, -1 / 720, 1 / 30240, -1 / 1209600, 1 / 47900160, -691 / 1307674368000,
           1 / 74724249600, -3617 / 10670622842880000)


@numba.njit(**_SJ)
def polygamma_f64(m, x):
    """The m-th derivative of digamma, m >= 1: (-1)^(m+1) m! zeta(m + 1, x) by recurrence and
    the Euler-Maclaurin tail; +-inf (the sign of (-1)^(m+1)) at poles and -inf, 0 at +inf, nan
    below -2^31 (the recurrence would take that many steps)."""
    sign = 1.0 if m % 2 == 1 else -1.0
    if x != x:
        return x
    if x == math.inf:
        return 0.0 * sign
    if x <= 0.0 and np.floor(x) == x:   # the poles, -inf included
        return sign * math.inf
    if x < -2147483648.0:
        return math.nan
    s = m + 1
    acc = 0.0
    while x < 15.0 + m:
        acc += (1.0 / x) ** s
        x += 1.0
    xs = x ** (-s)
    acc += x * xs / m + 0.5 * xs
    rise, term = float(s), xs / x                   # s (s+1) ... (s+2j-2) x^(-s-2j+1)
    for j in range(8):
        acc += _ZETA_C[j] * rise * term
        rise *= (s + 2 * j + 1) * (s + 2 * j + 2)
        term /= x * x
    return sign * math.gamma(m + 1.0) * acc


@numba.njit(**_SJ)
def _erfinv_small(y):
    """erfinv(y) for |y| <= 0.5: series start, Newton steps on erf."""
    x = 0.886226925452758 * y * (1.0 + y * y * (0.2617993877991494 + y * y * 0.14393173084921979))
    for _ in range(4):
        x -= (math.erf(x) - y) * 0.886226925452758 * math.exp(x * x)
    return x


@numba.njit(**_SJ)
def _erfcinv_small(c):
    """The z > 0 with erfc(z) = c, for 0 < c <= 0.5: a rational start (Abramowitz & Stegun
    26.2.23), then Newton steps on erfc (exp(z^2) split in two so it does not overflow)."""
    t = math.sqrt(-2.0 * math.log(0.5 * c))
    z = (t - (2.515517 + t * (0.802853 + t * 0.010328))
         / (1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308)))) / math.sqrt(2.0)
    for _ in range(5):
        h = math.exp(0.5 * z * z)
        z += (math.erfc(z) - c) * 0.886226925452758 * h * h
    return z


@numba.njit(**_SJ)
def erfinv_f64(y):
    """The inverse of erf on [-1, 1]: +-inf at +-1, nan outside."""
    a = abs(y)
    if not a <= 1.0:
        return math.nan
    if a == 1.0:
        return math.copysign(math.inf, y)
    if a <= 0.5:
        return _erfinv_small(y)
    return math.copysign(_erfcinv_small(1.0 - a), y)


@numba.njit(**_SJ)
def ndtri_f64(p):
    """The inverse of the standard normal CDF on [0, 1]: -inf at 0, inf at 1, nan outside."""
    if not 0.0 <= p <= 1.0:
        return math.nan
    if p == 0.0 or p == 1.0:
        return -math.inf if p == 0.0 else math.inf
    if 0.25 <= p <= 0.75:
        return math.sqrt(2.0) * _erfinv_small(2.0 * p - 1.0)
    if p < 0.25:
        return -math.sqrt(2.0) * _erfcinv_small(2.0 * p)
    return math.sqrt(2.0) * _erfcinv_small(2.0 * (1.0 - p))


_guard_dispatchers(globals())     # a failing cache write costs a compile, never a run
