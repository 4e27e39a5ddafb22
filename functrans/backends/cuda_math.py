"""Scalar math names used by the generated CUDA kernels (``from ...cuda_math import *``).

On a real GPU (and for ``cuda.compile_ptx``) the names are CUDA-typable functions: ``math.*``
and per-dtype libdevice calls. Under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1) kernels run as
Python, where ``math.log(0.0)`` or ``math.exp(1e4)`` raise, so the same names are NumPy ufuncs
(IEEE results, float32 stays float32). numba freezes globals into compiled kernels, so this
file's hash is part of every kernel's cache key (see ``cuda_codegen.salt``)."""
import math

import numpy as np
from numba import config

from . import cuda_compat  # noqa: F401  (NumPy 2.5 guard, before numba.cuda compiles)

SIMULATED = bool(config.ENABLE_CUDASIM)
CACHE = not SIMULATED      # cuda.jit(cache=True): the simulator has no machine code to cache

# name -> (real CUDA callable, simulator callable); names ending _f32/_f64 are per-dtype
_MATH = ["exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "asin", "acos", "atan",
         "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "erf", "atan2", "fmod", "isfinite",
         "erfc", "lgamma"]
_NP_NAME = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
            "acosh": "arccosh", "atanh": "arctanh", "atan2": "arctan2"}
# libdevice name stems for functions Python's math module lacks or types as integers
_LIBDEVICE = {"floor": "floor", "ceil": "ceil", "rint": "rint", "cbrt": "cbrt", "exp2": "exp2"}


def _sim_math(f):
    """A math-module function as a NumPy-style callable for the simulator (keeps the dtype)."""
    vec = np.vectorize(f, otypes=[np.float64])
    return lambda x: type(x)(vec(x)) if isinstance(x, np.floating) else vec(x)


def _sim_lgamma(x):
    return math.inf if x == -math.inf or (x <= 0 and x == math.floor(x)) else math.lgamma(x)


def _table():
    names = {}
    if SIMULATED:
        for n in _MATH:
            scalar = {"erf": math.erf, "erfc": math.erfc, "lgamma": _sim_lgamma}.get(n)
            names["cm_" + n] = _sim_math(scalar) if scalar else getattr(np, _NP_NAME.get(n, n))
        for n in _LIBDEVICE:
            for suffix in ("f32", "f64"):
                names[f"cm_{n}_{suffix}"] = getattr(np, n)
        return names
    from numba.cuda import libdevice
    for n in _MATH:
        names["cm_" + n] = getattr(math, n)
    for n, stem in _LIBDEVICE.items():
        names[f"cm_{n}_f32"] = getattr(libdevice, stem + "f")
        names[f"cm_{n}_f64"] = getattr(libdevice, stem)
    return names


globals().update(_table())
__all__ = ["CACHE"] + [n for n in globals() if n.startswith("cm_")]
