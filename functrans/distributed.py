"""Data parallelism over MPI: the processes of an ``mpiexec`` job as a named axis.

``spmd(f, axis_name="data")`` runs f in every process on that process's arguments with the
name bound to the processes, so the collectives of functrans.lax (psum, pmean, all_gather, ...)
act across processes: the same primitives, with the same differentiation and batching rules,
as under ``vmap(axis_name=)`` (docs/distributed.md). Transport: mpi4py (``pip install
functrans[mpi]``), imported only when the process was started by ``mpiexec``; a plain
``python`` run is one process, and every function here works there without MPI.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys

import numpy as np

from . import _mpi, core
from .api import _check_axis_name, vjp
from .custom_derivatives import apply_traced_vjp, custom_vjp, traced_vjp
from .lax import parallel
from .tree_util import tree_flatten, tree_map, tree_unflatten

__all__ = ["initialize", "is_initialized", "process_index", "process_count", "spmd",
           "broadcast", "shard", "print0", "mpiexec", "CollectiveMismatchError"]

CollectiveMismatchError = _mpi.CollectiveMismatchError

# environment variables that MPI launchers set (MPICH/Hydra, Open MPI, PMIx)
_LAUNCHER_VARS = ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK")
_INSTALL_HINT = "pip install functrans[mpi]"


class _State:
    transport = None
    options = None          # the options of the first explicit initialize() call


_state = _State()


def _launched_by_mpi():
    return any(v in os.environ for v in _LAUNCHER_VARS)


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError("functrans.distributed: this process was started by an MPI launcher, "
                          "but mpi4py (or the MPI library it loads) is missing: "
                          f"{_INSTALL_HINT}") from e
    return MPI


def initialize(*, check_collectives=True):
    """Join the job this process belongs to, and return None. Under ``mpiexec -n N`` the job
    is MPI's COMM_WORLD (this imports mpi4py: ImportError naming ``pip install
    functrans[mpi]`` if it is missing) and an exception in any process then aborts the whole
    job; a process started without an MPI launcher is a job of one, with no MPI at all.

    check_collectives: every collective first compares the processes' operand shapes and
    dtypes (one small allgather), so a mismatch is a CollectiveMismatchError naming them rather
    than a hang or garbage. Idempotent; a second call with other options is a RuntimeError.
    The other functions here initialize with the defaults when needed."""
    options = {"check_collectives": bool(check_collectives)}
    if _state.options is not None and options != _state.options:
        raise RuntimeError(f"functrans.distributed.initialize() was already called with "
                           f"{_state.options}; it cannot be called again with {options}")
    _state.options = options
    if _state.transport is None:
        _state.transport = _join(options)
    _state.transport.checks = options["check_collectives"] and _state.transport.size > 1


def _join(options):
    if not _launched_by_mpi():
        return _mpi.LocalTransport()
    MPI = _import_mpi()
    transport = _mpi.MPITransport(MPI, MPI.COMM_WORLD, options["check_collectives"])
    if transport.size > 1:
        _mpi.install_abort_hook(transport)
    return transport


def is_initialized():
    """True once this process has joined its job (initialize, or any function here)."""
    return _state.transport is not None


def _transport():
    if _state.transport is None:
        _state.transport = _join({"check_collectives": True})
    return _state.transport


def process_index():
    """This process's index in the job, an int in [0, process_count())."""
    return _transport().rank


def process_count():
    """The number of processes in the job (1 without mpiexec)."""
    return _transport().size


# ---------------------------------------------------------------------------------------------
# spmd: the processes as a named axis

def _axis_flags(spec, n, what):
    """One flag per entry: True for None (replicated), False for 0 (this process's shard)."""
    specs = tuple(spec) if isinstance(spec, (tuple, list)) else (spec,) * n
    if len(specs) != n:
        raise ValueError(f"spmd {what} has {len(specs)} entries for {n} values")
    for s in specs:
        if s is not None and not (type(s) is int and s == 0):
            raise ValueError(f"spmd {what} entries must be 0 (this process's shard) or None "
                             f"(replicated: the same on every process), got {s!r}")
    return [s is None for s in specs]


def _out_flags(out_axes, out):
    """Per top-level output: replicated? (out_axes: one spec, or one per element of a tuple
    or list output)."""
    if isinstance(out_axes, (tuple, list)):
        if not isinstance(out, (tuple, list)):
            raise ValueError("spmd out_axes is a sequence but the function's output is not")
        return list(out), _axis_flags(out_axes, len(out), "out_axes")
    return [out], _axis_flags(out_axes, 1, "out_axes")


def _scaled_cotangent(ct, out_axes, n):
    """The cotangent each process feeds its own backward pass: a replicated output is one
    value of the global function, computed by all n processes, so each takes 1/n of its
    cotangent (the transposed collectives sum the n shares again)."""
    parts, replicated = _out_flags(out_axes, ct)
    scaled = [tree_map(lambda c: c / n if _is_float(c) else c, p) if r else p
              for p, r in zip(parts, replicated)]
    return type(ct)(scaled) if isinstance(out_axes, (tuple, list)) else scaled[0]


def _is_float(x):
    return core.get_aval(x).dtype.kind in "fc"


def _summed_cotangents(cts, replicated, axis_name):
    """The cotangents of the replicated arguments summed over the processes (a replicated
    argument is one value used by every process: its cotangent is the sum of their shares),
    in bucketed all-reduces: one psum of the pytree of all of them."""
    picked = [c for c, r in zip(cts, replicated) if r]
    leaves, tree = tree_flatten(picked)
    floats = [i for i, c in enumerate(leaves) if _is_float(c)]
    summed = parallel.psum([leaves[i] for i in floats], axis_name)
    for i, s in zip(floats, summed):
        leaves[i] = s
    it = iter(tree_unflatten(tree, leaves))
    return tuple(next(it) if r else c for c, r in zip(cts, replicated))


def spmd(f, axis_name="data", *, in_axes=0, out_axes=0):
    """f run by every process on its own arguments, with ``axis_name`` bound to the processes
    (as ``shard_map`` with one device per process): inside, ``lax.psum(x, axis_name)`` sums x
    over the processes, ``lax.axis_index(axis_name)`` is ``process_index()``, and so on.
    Returns the wrapped function (positional arguments only).

    in_axes / out_axes (one spec, or one per positional argument / per element of a tuple
    output) say how a value relates to the global computation, as vmap's do: 0, each
    process holds its own shard; None, replicated (the same on every process). They matter
    to differentiation from outside: ``grad`` of an spmd function sums the cotangents of
    replicated arguments over the processes, so ``grad(spmd(loss, in_axes=(None, 0, 0),
    out_axes=None))(params, x_shard, y_shard)``, with loss ending in ``lax.pmean``, is the
    data-parallel gradient (one bucketed all-reduce of the gradient). Differentiation inside
    f follows vmap's rules (docs/api_collectives.md). Works eagerly and under jit (a
    collective is a host step between compiled kernels); forward mode (jvp) from outside is
    not supported (it is a custom_vjp function)."""
    _check_axis_name(axis_name, "spmd axis_name")
    if axis_name is None:
        raise TypeError("spmd axis_name must be a name (a hashable value), not None")
    seq = isinstance(out_axes, (tuple, list))
    _axis_flags(out_axes, len(out_axes) if seq else 1, "out_axes")      # entries: 0 or None

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        if kwargs:
            raise TypeError(f"spmd function {getattr(f, '__name__', f)} takes positional "
                            f"arguments only, got keyword arguments {sorted(kwargs)}")
        runner = _runner(_transport())
        parallel.process_axes[axis_name] = runner
        call = calls.get(len(args))
        if call is None:          # one per argument count: the job and its axis are fixed
            frame = core.AxisFrame(axis_name, process_count(), runner)
            replicated = _axis_flags(in_axes, len(args), "in_axes")
            call = calls[len(args)] = _with_axis(f, frame, replicated, out_axes)
        if core.current_trace() is core.eval_trace:     # nothing to differentiate: just run
            return call.fun(*args)
        return call(*args)
    calls = {}
    return wrapped


def _runner(transport):
    r = getattr(transport, "runner", None)
    if r is None:
        r = transport.runner = _mpi.collective_runner(transport)
    return r


def _with_axis(f, frame, replicated, out_axes):
    """f with frame bound while it runs, as a custom_vjp function whose backward pass also
    runs with it bound (the transposed collectives are collectives over the processes too)."""
    def bound(*args):
        with core.extend_axis_env([frame]):
            return f(*args)

    call = custom_vjp(bound)

    def fwd(*args):
        with core.extend_axis_env([frame]):
            out, vjp_fn = vjp(f, *args)
            return out, traced_vjp(out, vjp_fn)

    def bwd(res, ct):
        with core.extend_axis_env([frame]):
            ct = _scaled_cotangent(ct, out_axes, frame.size)
            cts = apply_traced_vjp(res, ct, "spmd")
            return _summed_cotangents(cts, replicated, frame.name)

    call.defvjp(fwd, bwd)
    return call


# ---------------------------------------------------------------------------------------------
# Helpers for data-parallel programs

def _host_leaf(x, what):
    if isinstance(x, core.Tracer):
        raise TypeError(f"{what} takes concrete values, not traced ones (call it outside jit "
                        f"and other transforms){core.where()}")
    return np.asarray(x)


def broadcast(tree):
    """Process 0's value of tree (a pytree of arrays) on every process, as Arrays: for initial
    parameters, so that every process starts from the same ones. Every process must pass a
    tree of the same structure, shapes and dtypes."""
    t = _transport()
    leaves, tree_def = tree_flatten(tree)
    out = []
    for x in leaves:
        x = _host_leaf(x, "broadcast")
        t.check("broadcast", x)
        out.append(core.as_array(t.bcast(x)))
    return tree_unflatten(tree_def, out)


def shard(tree):
    """This process's share of each leaf of tree along its first axis: rows
    [i * n / P, (i + 1) * n / P) for process i of P, as Arrays. The first axis must divide
    evenly by process_count() (ValueError otherwise), so every process holds as many rows and
    the mean of the processes' means is the mean over all rows."""
    t = _transport()

    def leaf(x):
        x = _host_leaf(x, "shard")
        if x.ndim == 0 or x.shape[0] % t.size:
            raise ValueError(f"shard: an array of shape {x.shape} cannot be split evenly along "
                             f"its first axis over {t.size} processes{core.where()}; drop rows "
                             "so that the count divides evenly")
        k = x.shape[0] // t.size
        return core.as_array(np.array(x[t.rank * k:(t.rank + 1) * k]))
    return tree_map(leaf, tree)


def print0(*args, **kwargs):
    """print(*args, **kwargs) on process 0 only (flushed); returns None."""
    if process_index() == 0:
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def mpiexec():
    """The path of the mpiexec that starts jobs with the MPI library mpi4py uses: the one the
    mpich wheel installs beside this Python, else the first on PATH. ImportError naming
    ``pip install functrans[mpi]`` if mpi4py or mpiexec is missing."""
    try:
        import mpi4py  # noqa: F401
    except ImportError as e:
        raise ImportError(f"functrans.distributed needs mpi4py and an MPI library: {_INSTALL_HINT}"
                          ) from e
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    path = beside if os.path.exists(beside) else shutil.which("mpiexec")
    if path is None:
        raise ImportError(f"functrans.distributed: no mpiexec found: {_INSTALL_HINT}")
    return path
