"""Compiled backends for ``functrans.jit``. The CPU backend lowers a jaxpr to a kernel plan
(plan.py), generates one numba module (numba_cpu.py) and caches it on disk (cache.py).

Importing this package is cheap: numba is imported on the first compile."""
from __future__ import annotations

import os
import sys
import time
import weakref

import numpy as np

from .. import core
from .. import jit_primitive

_stats = {"compiles": 0, "disk_loads": 0, "kernels_built": 0, "traces_lowered": 0}
_executables = weakref.WeakKeyDictionary()   # ClosedJaxpr -> _Executable


def compile_count():
    """Number of numba compilations this process has done (disk-cache loads not counted)."""
    return _stats["compiles"]


def compile_stats():
    """A copy of the counters: numba compiles, kernels loaded from the disk cache, kernel
    modules imported, and jaxprs lowered."""
    return dict(_stats)


def _log(msg):
    if os.environ.get("FUNCTRANS_LOG_COMPILES", "") == "1":
        print(f"functrans: {msg}", file=sys.stderr, flush=True)


class Lowered:
    """The lowered form of a jitted function for one signature: ``.jaxpr``, ``.plan``,
    ``.as_text()`` (the generated source), ``.dims`` (the run-time dimension vector)."""

    def __init__(self, closed, kplan, source, dims, lits, extra_consts):
        self.jaxpr, self.plan, self.source, self.dims, self.lits = closed, kplan, source, dims, lits
        self.extra_consts = extra_consts

    def as_text(self):
        """The generated Python/numba source."""
        return self.source

    def __repr__(self):
        return self.source


def _supported(closed):
    from .numba_cpu import dtype_supported
    from .plan import inline_jit
    invars, consts, eqns, outs = inline_jit(closed)
    vs = invars + [v for v, _ in consts] + [o for e in eqns for o in e.out_binders]
    vs += [v for e in eqns for v in e.inputs]
    return all(dtype_supported(v.aval.dtype) for v in vs)


def lower_for_backend(closed, flat_args=None, backend="cpu"):
    """The Lowered object (jaxpr, plan, generated source) of a ClosedJaxpr."""
    if backend == "cuda":
        from . import numba_cuda
        return numba_cuda.lower(closed)
    if backend not in (None, "cpu"):
        raise NotImplementedError(f"jit backend {backend!r} has no lowering (use 'cpu' or 'cuda')")
    from . import numba_cpu, plan
    kplan = plan.make_plan(closed)
    src, dims, lits, extra = numba_cpu.generate(kplan)
    _stats["traces_lowered"] += 1
    return Lowered(closed, kplan, src, dims, lits, extra)


def _normalize(a, dtype):
    if type(a) is np.ndarray and a.flags.c_contiguous and a.dtype == dtype:
        return a
    return np.ascontiguousarray(a, dtype=dtype)


class _Executable:
    """A compiled kernel bound to one signature's dims, literals and constants."""
    __slots__ = ("kernel", "prefix", "suffix", "dtypes", "name", "mod", "checked", "n_eqns",
                 "lowered")

    def __init__(self, lowered, name):
        from . import cache
        self.lowered = lowered
        self.name = name
        self.mod = cache.load_module(lowered.source)
        self.kernel = self.mod.kernel
        consts = [_normalize(np.asarray(c), np.asarray(c).dtype) for c in lowered.plan.consts]
        self.prefix = (lowered.dims, *lowered.lits, *consts)
        self.dtypes = [v.aval.dtype for v in lowered.plan.inputs[len(consts):]]
        self.suffix = tuple(lowered.extra_consts)
        self.n_eqns = sum(len(getattr(s, "eqns", [1])) for s in lowered.plan.steps)
        self.checked = False
        _stats["kernels_built"] += 1

    def __call__(self, args):
        if not self.checked:
            return self._first_call(args)
        return self.kernel(*self.prefix, *[_normalize(a, d) for a, d in zip(args, self.dtypes)], *self.suffix)

    def _first_call(self, args):
        from . import cache
        k = self.kernel
        n_sig, hits = len(k.signatures), sum(k._cache_hits.values())
        t0 = time.perf_counter()
        try:
            out = k(*self.prefix, *[_normalize(a, d) for a, d in zip(args, self.dtypes)], *self.suffix)
        except Exception as e:  # a corrupt numba cache entry: drop it and compile in memory
            if type(e).__name__ in ("TypingError", "LoweringError", "UnsupportedError"):
                raise
            cache.drop_numba_cache(self.mod)
            cache._warn_once(f"loading cached kernel {self.mod.__name__} failed ({type(e).__name__}: {e})")
            self.mod = cache.in_memory_module(self.lowered.source)
            self.kernel = k = self.mod.kernel
            n_sig, hits = len(k.signatures), sum(k._cache_hits.values())
            out = k(*self.prefix, *[_normalize(a, d) for a, d in zip(args, self.dtypes)], *self.suffix)
        dt = time.perf_counter() - t0
        if len(k.signatures) > n_sig:
            if sum(k._cache_hits.values()) > hits:
                _stats["disk_loads"] += 1
                _log(f"loaded '{self.name}' ({self.mod.__name__}, {self.n_eqns} eqns) from the disk "
                     f"cache in {dt:.3f} s")
            else:
                _stats["compiles"] += 1
                _log(f"compiled '{self.name}' ({self.mod.__name__}, {self.n_eqns} eqns) in {dt:.3f} s: "
                     f"new kernel source or argument types {k.signatures[-1]}")
        else:
            _log(f"reused compiled kernel {self.mod.__name__} for '{self.name}' with new shapes "
                 "(no compile)")
        self.checked = True
        return out


class _Eager:
    """Fallback for jaxprs with dtypes numba cannot hold (float16, float0)."""
    __slots__ = ("closed",)

    def __init__(self, closed):
        self.closed = closed

    def __call__(self, args):
        return core.eval_jaxpr(self.closed.jaxpr, self.closed.consts, *args)


def executable(closed, name="fun"):
    """The callable (list of args -> tuple of outputs) running a ClosedJaxpr compiled."""
    ex = _executables.get(closed)
    if ex is None:
        if _supported(closed):
            ex = _Executable(lower_for_backend(closed), name)
        else:
            _log(f"'{name}' uses a dtype numba cannot compile; evaluating it eagerly")
            ex = _Eager(closed)
        _executables[closed] = ex
    return ex


def run_cpu(closed, args, name):
    """jit_p's CPU executor: run the compiled kernel of closed on args; returns a list."""
    ex = _executables.get(closed) or executable(closed, name)
    return list(ex(args))


jit_primitive.backend_executors["cpu"] = run_cpu
