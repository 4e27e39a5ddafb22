"""Scalar math names used by the generated CUDA kernels (``from ...cuda_math import *``).

On a real GPU (and for ``cuda.compile_ptx``) the names are CUDA-typable functions: ``math.*``
and per-dtype libdevice calls. Under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) kernels run as
Python, where ``math.log(0.0)`` or ``math.exp(1e4)`` raise, so the same names are NumPy ufuncs
(IEEE results, float32 stays float32). Complex functions: ``cm_c<name>`` is numba.cuda's
``cmath.<name>`` on a GPU and NumPy's ufunc on the simulator; ``cm_<name>_c64/_c128`` are
formulas written here (NumPy's, where cmath has none or differs), device functions on a GPU and
plain Python on the simulator (so the simulator checks them). numba freezes globals into
compiled kernels, so this file's hash is part of every kernel's cache key (see
``cuda_codegen.salt``)."""
import cmath
import math

import numpy as np
from numba import config

from . import cuda_compat  # noqa: F401  (NumPy 2.5 guard, before numba.cuda compiles)

SIMULATED = bool(config.ENABLE_CUDASIM)
CACHE = not SIMULATED      # cuda.jit(cache=True): the simulator has no machine code to cache

# name -> (real CUDA callable, simulator callable); names ending _f32/_f64 are per-dtype
_MATH = ["exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "asin", "acos", "atan",
         "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "erf", "atan2", "fmod", "isfinite",
         "erfc", "lgamma", "hypot"]
_NP_NAME = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
            "acosh": "arccosh", "atanh": "arctanh", "atan2": "arctan2"}
# libdevice name stems for functions Python's math module lacks or types as integers
_LIBDEVICE = {"floor": "floor", "ceil": "ceil", "rint": "rint", "cbrt": "cbrt", "exp2": "exp2"}
# complex functions numba.cuda's cmath implements (CPython's algorithms: branch cuts, signed
# zeros and overflow handled); the simulator uses NumPy's ufuncs
_CMATH = ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos",
          "atan", "asinh", "acosh", "atanh"]


def _sim_math(f):
    """A math-module function as a NumPy-style callable for the simulator (keeps the dtype)."""
    vec = np.vectorize(f, otypes=[np.float64])
    return lambda x: type(x)(vec(x)) if isinstance(x, np.floating) else vec(x)


def _sim_lgamma(x):
    return math.inf if x == -math.inf or (x <= 0 and x == math.floor(x)) else math.lgamma(x)


def _table():
    names = {}
    if SIMULATED:
        for n in _CMATH:
            names["cm_c" + n] = getattr(np, _NP_NAME.get(n, n))
        for n in _MATH:
            scalar = {"erf": math.erf, "erfc": math.erfc, "lgamma": _sim_lgamma}.get(n)
            names["cm_" + n] = _sim_math(scalar) if scalar else getattr(np, _NP_NAME.get(n, n))
        for n in _LIBDEVICE:
            for suffix in ("f32", "f64"):
                names[f"cm_{n}_{suffix}"] = getattr(np, n)
        return names
    from numba.cuda import libdevice
    for n in _CMATH:
        names["cm_c" + n] = getattr(cmath, n)
    for n in _MATH:
        names["cm_" + n] = getattr(math, n)
    for n, stem in _LIBDEVICE.items():
        names[f"cm_{n}_f32"] = getattr(libdevice, stem + "f")
        names[f"cm_{n}_f64"] = getattr(libdevice, stem)
    return names


globals().update(_table())


# ---------------------------------------------------------------------------------------------
# Complex functions cmath lacks, or where NumPy's formula differs from cmath's: written once
# on the real helpers above, per float type F (constants typed as F, so complex64 math stays
# float32). The simulator runs them as Python on NumPy scalars, so it checks these formulas;
# on a GPU they are device functions. Names end in _c64 / _c128.

def _complex_helpers(F, floor, jit):
    zero, one, two, half, nan = F(0), F(1), F(2), F(0.5), F(np.nan)
    ln2 = F(math.log(2.0))

    @jit
    def cdiv(a, b):
        """a / b by NumPy's algorithm (Smith's, scaled by the larger part of b); a zero b
        gives NumPy's inf/nan parts instead of numba's ZeroDivisionError."""
        ar, ai, br, bi = a.real, a.imag, b.real, b.imag
        abr, abi = abs(br), abs(bi)
        if abr >= abi:
            if abr == zero and abi == zero:
                return complex(ar / abr, ai / abr)
            rat = bi / br
            scl = one / (br + bi * rat)
            return complex((ar + ai * rat) * scl, (ai - ar * rat) * scl)
        rat = br / bi
        scl = one / (bi + br * rat)
        return complex((ar * rat + ai) * scl, (ai * rat - ar) * scl)

    @jit
    def crecip(b):
        return cdiv(complex(one, zero), b)

    @jit
    def cexpm1(z):
        """NumPy's: the real part as expm1(x) cos(y) - 2 sin(y/2)**2 (no cancellation)."""
        x, y = z.real, z.imag
        s = cm_sin(y * half)
        return complex(cm_expm1(x) * cm_cos(y) - two * s * s, cm_exp(x) * cm_sin(y))

    @jit
    def clog1p(z):
        """NumPy's: log|1 + z| + i arg(1 + z). |1 + z| is taken in float64 and rounded, as
        glibc's hypotf does: near z = 0 the log magnifies any ulp of it (CUDA's hypotf is
        within 3 ulp, not correctly rounded)."""
        xp = z.real + one
        r = F(cm_hypot(np.float64(xp), np.float64(z.imag)))
        return complex(cm_log(r), cm_atan2(z.imag, xp))

    @jit
    def cexp2(z):
        return cm_cexp(complex(z.real * ln2, z.imag * ln2))

    @jit
    def csign(z):
        """z / |z| with NumPy's special values: 0 at 0; when |z| is infinite, the unit along
        the infinite part (nan when both are), even beside a nan part; else nan for nan."""
        x, y = z.real, z.imag
        r = cm_hypot(x, y)
        if r != r:
            return complex(nan, nan)
        if r - r != zero:
            x_inf, y_inf = x - x != zero and x == x, y - y != zero and y == y
            if x_inf and y_inf:
                return complex(nan, nan)
            if x_inf:
                return complex(one if x > zero else -one, zero)
            return complex(zero, one if y > zero else -one)
        if r == zero:
            return complex(zero, zero)
        return complex(x / r, y / r)

    @jit
    def cpow(a, b):
        """a ** b as NumPy: 1 for b == 0, 0 or nan for a == 0, repeated squaring for an
        integral real b with |b| < 100, else exp(b log a)."""
        br, bi = b.real, b.imag
        if br == zero and bi == zero:
            return complex(one, zero)
        if a.real == zero and a.imag == zero:
            if br > zero and bi == zero:
                return complex(zero, zero)
            return complex(nan, nan)
        if bi == zero and floor(br) == br and abs(br) < F(100):
            m = int(abs(br))
            r = complex(one, zero)
            p = a
            while m:
                if m & 1:
                    r = r * p
                p = p * p
                m >>= 1
            if br < zero:
                r = cdiv(complex(one, zero), r)
            return r
        return cm_cexp(b * cm_clog(a))

    return {"cdiv": cdiv, "crecip": crecip, "cexpm1": cexpm1, "clog1p": clog1p,
            "cexp2": cexp2, "csign": csign, "cpow": cpow}


def _complex_table():
    if SIMULATED:
        jit = lambda f: f  # noqa: E731
    else:
        from numba import cuda
        jit = cuda.jit(device=True)
    names = {}
    for F, suffix in ((np.float32, "c64"), (np.float64, "c128")):
        floor = globals()["cm_floor_" + ("f32" if F is np.float32 else "f64")]
        for n, f in _complex_helpers(F, floor, jit).items():
            names[f"cm_{n}_{suffix}"] = f
    return names


globals().update(_complex_table())
__all__ = ["CACHE"] + [n for n in globals() if n.startswith("cm_")]
