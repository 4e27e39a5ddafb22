"""Device buffers of the CUDA executor.

Every buffer the executor allocates is a flat (1-D, C-contiguous) device array. On a real GPU
with CuPy it is a **CuPy array**, from CuPy's memory pool (``cupy.get_default_memory_pool()``):
once a step has run, the same sizes are served from the pool's cached blocks and the driver
sees no new allocation, and results need no conversion to be handed out as CuPy arrays. The
numba kernels take them through their raw pointers (numba_cuda's launcher), cuBLAS through
``data.ptr``. Without CuPy, or under the simulator, buffers are numba device arrays from
numba's allocator.

* ``empty``/``fill``/``to_device``: new buffers (flat).
* ``as_device(x, dtype)``: any array with ``__cuda_array_interface__`` (CuPy arrays, numba
  device arrays, torch tensors) as a flat buffer, zero-copy when it is C-contiguous with this
  dtype; host arrays are copied to the device.
* ``to_cupy(buf, shape)``: the buffer with this shape (a view, no copy), for results.
* ``ptr``, ``copy_into``, ``to_host``: what the executor does with a buffer of either kind.
* ``pool_stats()``: the pool's bytes held from the driver (``pool_total_bytes``) and in use, and
  how many buffers the executor asked for.
* Running out of device memory first releases the captured CUDA graphs that no live result
  holds and the pool's cached blocks (``free_all_blocks``) and tries again; if that fails too,
  ``DeviceOutOfMemoryError`` names the request (bytes, shape, dtype)."""
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
        cupy.empty(1, np.float32)        # CuPy can allocate here
    except Exception as e:  # noqa: BLE001  (not installed, no driver, wrong CUDA version...)
        return False, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return cupy, ""


def _describe(n, dtype, shape):
    shape = (n,) if shape is None else tuple(shape)
    return f"{n * dtype.itemsize} bytes (shape {shape}, dtype {dtype.name})"


def _out_of_memory(n, dtype, shape, err):
    _counts["oom_errors"] += 1
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
    dtype = np.dtype(dtype)
    n = int(n)
    _counts["allocations"] += 1
    _counts["bytes_allocated"] += n * dtype.itemsize
    try:
        return _allocate(n, dtype)
    except Exception as e:  # noqa: BLE001
        if not _is_oom(e):
            raise
        err = e
    from . import cuda_graphs
    if cuda_graphs.capture.stream is not None:
        raise _out_of_memory(n, dtype, shape, err)     # fails the capture; the run retries
    cuda_graphs.release()       # captured graphs hold memory; the free ones go now
    release_pool()
    try:
        return _allocate(n, dtype)      # once more, after the releases
    except Exception as e:  # noqa: BLE001
        if _is_oom(e):
            raise _out_of_memory(n, dtype, shape, err) from None
        raise


def _allocate(n, dtype):
    cp = cupy_module()
    if cp is not None:
        return cp.empty(n, dtype)
    from numba import cuda
    return cuda.device_array((n,), dtype)


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
    if cupy_module() is not None:
        buf.fill(value)
        return
    tpb = 32 if _simulated() else 256
    blocks = max(1, min(-(-buf.size // tpb), 2 if _simulated() else 1024))
    _fill_kernel()[blocks, tpb](buf, np.asarray(value, buf.dtype).reshape(1)[0])


def to_device(host):
    """A host array copied into a new flat device buffer."""
    host = np.ascontiguousarray(host).reshape(-1)
    buf = empty(host.size, host.dtype, host.shape)
    if host.size:
        copy_into(buf, host)
    return buf


def copy_into(dest, src):
    """Copy src (a buffer of the same size, or a host array) into the buffer dest."""
    if cupy_module() is not None:
        if isinstance(src, np.ndarray):
            dest.set(src.reshape(dest.shape))
        else:
            dest[...] = src
        return
    dest.copy_to_device(src)


def ptr(buf):
    """The device address of a buffer's first element."""
    data = getattr(buf, "data", None)
    if data is not None and hasattr(data, "ptr"):      # CuPy
        return int(data.ptr)
    return int(buf.device_ctypes_pointer.value or 0)   # numba


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
    cp = cupy_module()
    if cp is not None:
        c = x if isinstance(x, cp.ndarray) else cp.asarray(x)
        if c.dtype != dtype or not c.flags.c_contiguous:
            c = cp.ascontiguousarray(c, dtype=dtype)
        return c.reshape(-1) if c.ndim != 1 else c
    from numba import cuda
    d = x if hasattr(x, "__cuda_ndarray__") else cuda.as_cuda_array(x, sync=False)
    if d.dtype == dtype and (d.is_c_contiguous() or d.size <= 1):
        return d.reshape(d.size) if d.ndim != 1 else d
    return to_device(d.copy_to_host().astype(dtype))


def to_cupy(buf, shape):
    """The buffer with this shape (no copy): a CuPy array on a GPU with CuPy, else the numba
    array reshaped."""
    shape = tuple(shape)
    return buf if tuple(buf.shape) == shape else buf.reshape(shape)


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
