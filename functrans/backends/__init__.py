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
from ..devices import Device, backend_probes
from ..util import gc_paused
from .plan import release_points

_stats = {"compiles": 0, "disk_loads": 0, "kernels_built": 0, "traces_lowered": 0,
          "helper_kernels": 0}
_executables = weakref.WeakKeyDictionary()   # ClosedJaxpr -> _Executable


def compile_count():
    """Number of numba compilations this process has done (disk-cache loads not counted)."""
    return _stats["compiles"]


def compile_stats():
    """A copy of the counters: numba compiles, kernels loaded from the disk cache, kernel
    modules imported, jaxprs lowered, and kernels handed to a helper process to compile."""
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
    from . import narrow, numba_cpu, plan
    if not _supported(closed) and narrow.holds_narrow(closed):
        closed = (narrow.widen(closed) or (closed,))[0]     # what executable() compiles
    kplan = plan.make_plan(closed, rewrites=True, cpu_blas=True, eqn_cost=numba_cpu.eqn_cost,
                           group_cap=numba_cpu.group_cap())
    _stats["traces_lowered"] += 1
    if numba_cpu.should_split(kplan):
        return SplitLowered(closed, kplan)
    src, dims, lits, extra = numba_cpu.generate(kplan)
    return Lowered(closed, kplan, src, dims, lits, extra)


class SplitLowered:
    """The lowered form of a large jaxpr: ``.parts``, a list of ('numpy', eqn) run by the numpy
    impl and ('kernel', Lowered) compiled kernels, run in order by a Python driver.
    ``.as_text()`` joins the kernel sources."""

    def __init__(self, closed, kplan):
        from . import numba_cpu
        self.jaxpr, self.plan = closed, kplan
        self.parts = []
        for kind, x in numba_cpu.split_plan(kplan):
            if kind == "kernel":
                src, dims, lits, extra = numba_cpu.generate(x)
                x = Lowered(None, x, src, dims, lits, extra)
            self.parts.append((kind, x))
        kernels = [x for k, x in self.parts if k == "kernel"]
        self.source = "\n".join(f"# ---- kernel {i}\n{x.source}" for i, x in enumerate(kernels))
        self.dims = np.concatenate([np.zeros(0, np.int64)] + [x.dims for x in kernels])

    def as_text(self):
        """The generated sources of all kernels, in order."""
        return self.source

    def __repr__(self):
        return self.source


def _normalize(a, dtype):
    if type(a) is np.ndarray and a.flags.c_contiguous and a.dtype == dtype:
        return a
    return np.asarray(a, dtype=dtype, order="C")   # keeps 0-d (ascontiguousarray makes 1-d)


class _Executable:
    """A compiled kernel bound to one signature's dims, literals and constants."""
    __slots__ = ("kernel", "prefix", "suffix", "dtypes", "name", "mod", "checked", "n_eqns",
                 "source", "in_avals", "helper")

    def __init__(self, lowered, name, helper=None):
        from . import cache
        # not the Lowered: it holds the ClosedJaxpr, which must not be kept alive by its own
        # entry in the weak-keyed _executables
        self.source = lowered.source
        self.name = name
        self.mod = cache.load_module(lowered.source)
        self.kernel = self.mod.kernel
        self.prefix, self.in_avals, self.suffix = _kernel_args(lowered)
        self.dtypes = [a.dtype for a in self.in_avals]
        self.n_eqns = kernel_size(lowered)
        self.checked = False
        # a precompile.Helper compiling this kernel in another process, if any
        self.helper = helper if helper is not None and helper.has(self.mod.__name__) else None
        _stats["kernels_built"] += 1

    def __call__(self, args):
        if not self.checked:
            return self._first_call(args)
        return self.kernel(*self.prefix, *[_normalize(a, d) for a, d in zip(args, self.dtypes)], *self.suffix)

    def _first_call(self, args):
        from . import cache
        if self.helper is not None:     # compiled in a helper process: wait, then load it
            self.helper.wait_for(self.mod.__name__)
            self.helper = None
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
            self.mod = cache.in_memory_module(self.source)
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


def _kernel_args(lowered):
    """(prefix args, avals of the run-time inputs, suffix args) of a lowered kernel: the dims
    vector, literal and constant arrays around the inputs. numba is not needed for them."""
    consts = [_normalize(np.asarray(c), np.asarray(c).dtype) for c in lowered.plan.consts]
    in_avals = [v.aval for v in lowered.plan.inputs[len(consts):]]
    return (lowered.dims, *lowered.lits, *consts), in_avals, tuple(lowered.extra_consts)


def kernel_size(lowered):
    """The number of equations a lowered kernel computes."""
    return sum(len(getattr(s, "eqns", [1])) for s in lowered.plan.steps)


def _arg_spec(lowered):
    """The kernel's argument types as (dtype, ndim, layout, readonly), for a helper process:
    what numba's typeof gives for the prefix and suffix arrays and for C-contiguous inputs."""
    prefix, in_avals, suffix = _kernel_args(lowered)

    def spec(a):
        return [a.dtype.str, a.ndim, "C", not a.flags.writeable]
    return ([spec(a) for a in prefix] + [[a.dtype.str, a.ndim, "C", False] for a in in_avals]
            + [spec(a) for a in suffix])


def _start_helper(kernels):
    """Write the kernels' sources and hand the last of the ones numba has not compiled yet to
    a helper process (precompile.py). Returns the Helper, or None."""
    from . import cache, precompile
    if not precompile.enabled():
        return None
    first_of_source = {}
    for low in kernels:
        first_of_source.setdefault(low.source, low)
    fresh = []
    for low in first_of_source.values():
        modname, path, new = cache.write_source(low.source)
        if new and path is not None:   # None: no disk cache to share
            fresh.append((modname, path, low))
    from .numba_cpu import plan_cost
    chosen = precompile.choose([precompile.cost(plan_cost(low.plan)) for _, _, low in fresh])
    if not chosen:
        return None
    jobs = [(fresh[i][0], fresh[i][1], _arg_spec(fresh[i][2])) for i in chosen]
    try:
        helper = precompile.Helper(jobs)
    except OSError as e:                # no helper: everything compiles here, as usual
        _log(f"no helper process for parallel compilation ({e})")
        return None
    _log(f"compiling {len(chosen)} of {len(fresh)} new kernels in a helper process")
    _stats["helper_kernels"] += len(chosen)
    return helper


class _Split:
    """Runs a SplitLowered: numpy impls and compiled kernels over a list of value slots."""
    __slots__ = ("program", "n_slots", "out_slots", "fixed", "name", "checked", "n_fixed_args",
                 "prefix", "suffix", "kernel")

    def __init__(self, low, name):
        slots = {}

        def slot(v):
            if v not in slots:
                slots[v] = len(slots)
            return slots[v]
        kplan = low.plan
        for v in kplan.inputs:
            slot(v)
        # before this process imports numba: the helper's start overlaps with ours
        helper = _start_helper([x for kind, x in low.parts if kind == "kernel"])
        self.fixed = []                       # (slot, value): constants and literals
        for v, c in zip(kplan.inputs, kplan.consts):
            self.fixed.append((slots[v], np.asarray(c)))
        self.n_fixed_args = len(kplan.consts)      # args fill the slots after the constants

        def in_slot(v):
            if type(v) is core.Literal:
                k = slot(object())            # a slot of its own
                self.fixed.append((k, np.asarray(v.val, dtype=v.aval.dtype)))
                return k
            return slot(v)
        self.program = []
        for kind, x in low.parts:
            if kind == "numpy":
                ins = [in_slot(v) for v in x.inputs]
                outs = [slot(o) for o in x.out_binders]
                self.program.append((False, core.host_impl(x.primitive), x.params, ins, outs))
            else:
                ins = [in_slot(v) for v in x.plan.inputs]
                outs = [slot(o) for o in x.plan.outvars]
                self.program.append((True, _Executable(x, name, helper), None, ins, outs))
        self.out_slots = [in_slot(v) for v in kplan.outvars]
        self.n_slots = len(slots)
        # each step drops the values it was the last to read: the driver's list of slots must
        # not keep every intermediate alive until the call returns
        drops = release_points([ins for _, _, _, ins, _ in self.program],
                               [outs for _, _, _, _, outs in self.program], set(self.out_slots))
        self.program = [step + (tuple(d),) for step, d in zip(self.program, drops)]
        self.name, self.checked = name, True
        self.prefix, self.suffix, self.kernel = (), (), self._run

    def _run(self, *args):
        vals = [None] * self.n_slots
        for k, c in self.fixed:
            vals[k] = c
        vals[self.n_fixed_args:self.n_fixed_args + len(args)] = args
        for compiled, f, params, ins, outs, drops in self.program:
            if compiled:
                res = f([vals[i] for i in ins])
            else:
                res = f(*[vals[i] for i in ins], **params)
                res = res if isinstance(res, (tuple, list)) else (res,)
            for o, r in zip(outs, res):
                vals[o] = r
            res = None
            for k in drops:
                vals[k] = None
        return tuple(np.asarray(vals[k]) for k in self.out_slots)

    def __call__(self, args):
        return self._run(*args)


class _Eager:
    """Fallback for jaxprs with dtypes numba cannot hold (float16, float0)."""
    __slots__ = ("jaxpr", "consts")

    def __init__(self, closed):
        self.jaxpr, self.consts = closed.jaxpr, closed.consts   # not closed: see _Executable

    def __call__(self, args):
        return core.eval_jaxpr(self.jaxpr, self.consts, *args)


def _widened(closed, name):
    """The executable of a float16/bfloat16 program computed in float32 kernels (narrow.py), or
    None where that does not apply (other dtypes numba cannot hold, control flow over them)."""
    from . import narrow
    if not narrow.holds_narrow(closed):
        return None
    widened = narrow.widen(closed)
    if widened is None or not _supported(widened[0]):
        return None
    _log(f"'{name}' holds 16-bit floats: compiled in float32, rounded per operation")
    return narrow.Widened(widened[0], executable(widened[0], name),
                          [v.aval.dtype for v in closed.jaxpr.invars], widened[1])


def executable(closed, name="fun"):
    """The callable (list of args -> tuple of outputs) running a ClosedJaxpr compiled."""
    ex = _executables.get(closed)
    if ex is None:
        if _supported(closed):
            with gc_paused():
                low = lower_for_backend(closed)
                ex = _Split(low, name) if isinstance(low, SplitLowered) else _Executable(low, name)
        else:
            ex = _widened(closed, name)
            if ex is None:
                _log(f"'{name}' uses a dtype numba cannot compile; evaluating it eagerly")
                ex = _Eager(closed)
        _executables[closed] = ex
    return ex


def run_cpu(closed, args, name):
    """jit_p's CPU executor: run the compiled kernel of closed on args; returns a list."""
    ex = _executables.get(closed) or executable(closed, name)
    return list(ex(args))


def _run_cuda_lazily(closed, args, name):
    """jit_p's "cuda" executor until numba_cuda is imported: import it (its import registers
    the real executor in place of this one) and run closed there."""
    from . import numba_cuda
    return numba_cuda.run_cuda(closed, args, name)


jit_primitive.backend_executors["cpu"] = run_cpu
jit_primitive.backend_executors["cuda"] = _run_cuda_lazily

_gpu_devices = []


def _cuda_devices():
    """The CUDA devices (functrans.devices("cuda")); RuntimeError naming what is missing."""
    if not _gpu_devices:
        from . import numba_cuda
        where = numba_cuda.check_available()
        from numba import cuda
        if where == "simulator":
            _gpu_devices.append(Device("gpu", 0, "CUDA simulator"))
        for i, g in enumerate(cuda.gpus if where == "gpu" else ()):
            name = g.name.decode() if isinstance(g.name, bytes) else str(g.name)
            _gpu_devices.append(Device("gpu", i, name))
        from . import cuda_arrays
        cuda_arrays.register()
    return list(_gpu_devices)


backend_probes["gpu"] = _cuda_devices
