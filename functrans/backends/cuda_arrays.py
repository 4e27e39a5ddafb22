"""GPU Arrays: the glue between functrans.Array and the CUDA backend (numba_cuda.py).

Registered when the first CUDA device is listed (``functrans.devices("cuda")``):
- ``core.device_transfers``: host <-> GPU copies for ``device_put`` (GPU <-> GPU: the same
  buffer, as there is one GPU per device object);
- ``core.device_impls["gpu"]``: eager evaluation on GPU buffers. ``jit`` runs its jaxpr with
  ``numba_cuda.run_device``; any other primitive runs as a one-equation jaxpr, compiled once per
  (primitive, operand types, params) and cached like any jitted program. Results stay on the
  device;
- ``core.device_sync["gpu"]``: ``block_until_ready`` waits for the device.

A buffer is whatever ``run_device`` returns: a CuPy array on a GPU (its memory pool), a numba
device array on the simulator. Both expose ``__cuda_array_interface__``, ``shape`` and
``dtype``, and ``core._host`` copies either back.
"""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import ClosedJaxpr, Jaxpr, JaxprEqn, Var

_one_eqn_programs = {}     # (prim, avals, params) -> ClosedJaxpr of that one equation
MAX_ONE_EQN_PROGRAMS = 1024   # emptied when full: eager ops on ever new shapes stay bounded


def to_device(value, device):
    """A host array's copy on the GPU: a CuPy array (from CuPy's memory pool) on a real GPU,
    a numba device array on the simulator or where CuPy is missing."""
    value = np.ascontiguousarray(value)
    cupy = _cupy()
    if cupy is not None:
        return cupy.asarray(value)
    from numba import cuda
    return cuda.to_device(value)


def _cupy():
    """CuPy where it can run (a real GPU), else None."""
    from numba import config
    if config.ENABLE_CUDASIM:
        return None
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def _aval(v):
    from .numba_cuda import is_device_array
    if isinstance(v, np.ndarray) or not is_device_array(v):
        return core.get_aval(v)
    return core._new_aval(v)


def one_equation(prim, avals, params):
    """The ClosedJaxpr applying prim once to inputs of these avals (memoised when the params
    are hashable, so its kernels compile once per signature)."""
    try:
        key = (prim, tuple(avals), tuple(sorted(params.items())))
        hash(key)
    except TypeError:
        key = None
    closed = _one_eqn_programs.get(key) if key is not None else None
    if closed is None:
        invars = [Var(a) for a in avals]
        outvars = [Var(a) for a in core.abstract_eval(prim, avals, params)]
        closed = ClosedJaxpr(Jaxpr([], invars, [JaxprEqn(prim, invars, params, outvars)],
                                   outvars), [])
        if key is not None:
            if len(_one_eqn_programs) >= MAX_ONE_EQN_PROGRAMS:
                _one_eqn_programs.clear()
            _one_eqn_programs[key] = closed
    return closed


def eval_on_gpu(prim, vals, params, device):
    """prim applied to vals (GPU buffers or host values) on the GPU; returns Array(s)
    committed to device."""
    from . import numba_cuda
    from ..jit_primitive import jit_p
    if prim is jit_p:
        outs = numba_cuda.run_device(params["jaxpr"], list(vals), params["name"])
    elif prim in _host_only:
        outs = _on_host(prim, vals, params)
    else:
        closed = one_equation(prim, [_aval(v) for v in vals], params)
        try:
            outs = numba_cuda.run_device(closed, list(vals), prim.name)
        except NotImplementedError as e:    # no CUDA lowering: eager code still runs
            numba_cuda._log(f"eager '{prim.name}' on GPU Arrays runs on the host ({e})")
            _host_only.add(prim)
            outs = _on_host(prim, vals, params)
    arrays = [core.make_array(o, device, True) for o in outs]
    return arrays if prim.multiple_results else arrays[0]


_host_only = set()      # primitives without a CUDA lowering, seen so far


def _on_host(prim, vals, params):
    """prim's NumPy impl on host copies of vals, the results copied back to the GPU."""
    from .numba_cuda import is_device_array
    out = core.impl_rules[prim](*[core._host(v) if is_device_array(v) else v for v in vals],
                                **params)
    outs = out if prim.multiple_results else [out]
    return [to_device(np.asarray(o), None) for o in outs]


def synchronize(buffer):
    """Wait until the GPU has finished the work queued so far."""
    from numba import cuda
    cuda.synchronize()


def register():
    """Install the GPU entries of core's tables (idempotent)."""
    core.device_transfers[("cpu", "gpu")] = to_device
    core.device_transfers[("gpu", "cpu")] = lambda v, device: core._host(v).copy()
    core.device_transfers[("gpu", "gpu")] = lambda v, device: v
    core.device_impls["gpu"] = eval_on_gpu
    core.device_sync["gpu"] = synchronize
