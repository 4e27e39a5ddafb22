"""Device buffers of the CUDA executor.

Every buffer the executor allocates is a flat (1-D) numba device array. On a real GPU with CuPy
installed its memory comes from **CuPy's memory pool** (``cupy.cuda.alloc``, the default
``cupy.get_default_memory_pool()``), wrapped zero-copy through ``__cuda_array_interface__``:
once a step has run, the same sizes are served from the pool's cached blocks and the driver
sees no new allocation. Without CuPy, or under the simulator, numba's own allocator is used.

* ``empty``/``full``/``to_device``: new buffers (flat).
* ``as_device(x, dtype)``: any array with ``__cuda_array_interface__`` (CuPy arrays, numba
  device arrays, torch tensors) as a flat numba array, zero-copy when it is C-contiguous with
  this dtype; host arrays are copied to the device.
* ``to_cupy(buf, shape)``: a CuPy view (no copy) of a buffer, for results and cuBLAS.
* ``pool_stats()``: the pool's bytes held from the driver (``pool_total_bytes``) and in use, and
  how many buffers the executor asked for.
* Running out of device memory raises ``DeviceOutOfMemoryError`` naming the request (bytes,
  shape, dtype), after the pool's cached blocks are released (``free_all_blocks``)."""
from __future__ import annotations

import os
import sys

import numpy as np

from . import cuda_compat  # noqa: F401  (NumPy 2.5 guard, before numba.cuda is used)

_state = {"cupy": None, "reason": ""}    # cupy: the module, False (unusable) or None (unknown)
_counts = {"allocations": 0, "bytes_allocated": 0, "oom_errors": 0}


class DeviceOutOfMemoryError(MemoryError):
    """The GPU has no memory left for a buffer the executor needs (the message names it)."""


def _log(msg):
    if os.environ.get("FUNCTRANS_LOG_COMPILES", "") == "1":
        print(f"functrans[cuda]: {msg}", file=sys.stderr, flush=True)


def _simulated():
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def cupy_module():
    """The cupy module when it can allocate on this GPU (not under the simulator), else None.
    ``FUNCTRANS_CUDA_NO_CUPY=1`` turns it off (numba's allocator and GEMM kernel only)."""
    if _state["cupy"] is None:
        _state["cupy"], _state["reason"] = _probe_cupy()
        _log(f"CuPy {'in use' if _state['cupy'] else 'not used: ' + _state['reason']}")
    return _state["cupy"] or None


def cupy_status():
    """'in use' or why CuPy is not used."""
    return "in use" if cupy_module() is not None else _state["reason"]


def _probe_cupy():
    if os.environ.get("FUNCTRANS_CUDA_NO_CUPY", "") == "1":
        return False, "FUNCTRANS_CUDA_NO_CUPY=1"
    if _simulated():
        return False, "the CUDA simulator is on (CuPy needs a GPU)"
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return False, "CuPy sees no GPU"
        _wrap(cupy, cupy.cuda.alloc(8), 1, np.dtype(np.float64))   # the zero-copy hand-over works
    except Exception as e:  # noqa: BLE001  (not installed, no driver, wrong CUDA version...)
        return False, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return cupy, ""


def _wrap(cp, memptr, n, dtype):
    """A flat numba device array over CuPy memory (it holds the memory alive)."""
    from numba import cuda
    desc = {"shape": (n,), "strides": None, "typestr": dtype.str,
            "data": (int(memptr.ptr), False), "version": 3}
    return cuda.from_cuda_array_interface(desc, owner=memptr, sync=False)


def _describe(n, dtype, shape):
    shape = (n,) if shape is None else tuple(shape)
    return f"{n * dtype.itemsize} bytes (shape {shape}, dtype {dtype.name})"


def _out_of_memory(n, dtype, shape, err):
    _counts["oom_errors"] += 1
    release_pool()
    held = pool_stats()["pool_total_bytes"]
    pool = "" if held is None else f" (the pool still holds {held} bytes in live arrays)"
    return DeviceOutOfMemoryError(
        f"out of GPU memory allocating {_describe(n, dtype, shape)}; the memory pool's cached "
        f"blocks were released{pool}. Cause: {' '.join(str(err).split())[:200]}")


def _is_oom(err):
    if isinstance(err, MemoryError):
        return True
    text = f"{type(err).__name__} {err}".upper()
    return any(s in text for s in ("OUT_OF_MEMORY", "OUTOFMEMORY", "OUT OF MEMORY"))


def empty(n, dtype, shape=None):
    """A new flat device buffer of n elements (shape only names the request in errors)."""
    from numba import cuda
    dtype = np.dtype(dtype)
    n = int(n)
    _counts["allocations"] += 1
    _counts["bytes_allocated"] += n * dtype.itemsize
    cp = cupy_module()
    try:
        if cp is None or n == 0:
            return cuda.device_array((n,), dtype)
        return _wrap(cp, cp.cuda.alloc(n * dtype.itemsize), n, dtype)
    except Exception as e:  # noqa: BLE001
        if _is_oom(e):
            raise _out_of_memory(n, dtype, shape, e) from None
        raise


_FILL_SOURCE = """import numpy as np
from numba import cuda
from functrans.backends.cuda_math import CACHE


# fill: out[:] = value (grid-stride)
@cuda.jit(cache=CACHE)
def kernel(out, value):
    i = cuda.grid(1)
    while i < out.size:
        out[i] = value
        i += cuda.gridsize(1)
"""
_FILL = {}


def _fill_kernel():
    """A grid-stride kernel storing one value everywhere (a module in the kernel cache, so the
    simulator can swap its ``cuda`` global; compiled per dtype on first use)."""
    if "k" not in _FILL:
        from . import cache
        _FILL["k"] = cache.load_module(_FILL_SOURCE).kernel
    return _FILL["k"]


def fill(buf, value):
    """Store value in every element of a flat device buffer, on the device (no host copy)."""
    if buf.size == 0:
        return
    cp = cupy_module()
    if cp is not None:
        to_cupy(buf, (buf.size,)).fill(value)
        return
    tpb = 32 if _simulated() else 256
    blocks = max(1, min(-(-buf.size // tpb), 2 if _simulated() else 1024))
    _fill_kernel()[blocks, tpb](buf, np.asarray(value, buf.dtype).reshape(1)[0])


def to_device(host):
    """A host array copied into a new flat device buffer."""
    host = np.ascontiguousarray(host).reshape(-1)
    buf = empty(host.size, host.dtype, host.shape)
    if host.size:
        buf.copy_to_device(host)
    return buf


def is_device_array(x):
    """True for arrays in GPU memory: anything with ``__cuda_array_interface__``, and numba
    device arrays (also the simulator's)."""
    return hasattr(x, "__cuda_array_interface__") or hasattr(x, "__cuda_ndarray__")


def as_device(x, dtype):
    """x (host or device array) as a flat device buffer of dtype: zero-copy for a C-contiguous
    device array of that dtype, a device-side copy for other device arrays, a host-to-device
    copy for host values."""
    dtype = np.dtype(dtype)
    if not is_device_array(x):
        return to_device(np.asarray(x, dtype))
    from numba import cuda
    d = x if hasattr(x, "__cuda_ndarray__") else cuda.as_cuda_array(x, sync=False)
    if d.dtype == dtype and (d.is_c_contiguous() or d.size <= 1):
        return d.reshape(d.size) if d.ndim != 1 else d
    cp = cupy_module()
    if cp is None:
        return to_device(d.copy_to_host().astype(dtype))
    c = cp.ascontiguousarray(cp.asarray(x), dtype=dtype)
    return cuda.as_cuda_array(c.reshape(-1), sync=False)


def to_cupy(buf, shape):
    """A CuPy array of this shape viewing a flat buffer (no copy); under the simulator or
    without CuPy, the numba array reshaped."""
    cp = cupy_module()
    if cp is None:
        return buf.reshape(shape) if buf.shape != tuple(shape) else buf
    dtype = np.dtype(buf.dtype)
    nbytes = buf.size * dtype.itemsize
    ptr = buf.device_ctypes_pointer.value or 0
    mem = cp.cuda.UnownedMemory(ptr, nbytes, buf, device_id=cp.cuda.runtime.getDevice())
    return cp.ndarray(tuple(shape), dtype, cp.cuda.MemoryPointer(mem, 0))


def to_host(x):
    """A device array (CuPy or numba) or a host value as a NumPy array."""
    if hasattr(x, "copy_to_host"):
        return x.copy_to_host()
    if hasattr(x, "get") and is_device_array(x):
        return x.get()
    return np.asarray(x)


def synchronize():
    """Wait for every kernel and copy queued on the GPU."""
    from numba import cuda
    cuda.synchronize()


def release_pool():
    """Return the pool's cached (unused) blocks to the driver."""
    cp = cupy_module()
    if cp is not None:
        cp.get_default_memory_pool().free_all_blocks()


def pool_stats():
    """{'pool': 'cupy' or 'numba', 'pool_total_bytes': bytes the pool holds from the driver,
    'pool_used_bytes': bytes in live buffers, 'allocations': buffers the executor asked for,
    'bytes_allocated', 'oom_errors'}. A steady-state step whose ``pool_total_bytes`` does not
    grow made no driver allocation. Without CuPy the pool numbers are None."""
    cp = cupy_module()
    out = dict(_counts, pool="cupy" if cp is not None else "numba", pool_total_bytes=None,
               pool_used_bytes=None)
    if cp is not None:
        pool = cp.get_default_memory_pool()
        out.update(pool_total_bytes=int(pool.total_bytes()), pool_used_bytes=int(pool.used_bytes()))
    return out
