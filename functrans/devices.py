"""Devices: where an Array's buffer lives and where computation on it runs (as jax.Device).

The CPU backend always exists: its devices share host memory, so several of them (``FUNCTRANS_NUM_CPU_DEVICES``, or
``functrans.core.config.num_cpu_devices``)
differ only in the label their Arrays carry, which is enough to test placement rules. The CUDA
backend's devices are looked up on demand through ``backend_probes`` (registered by
``functrans.backends``), so that importing functrans never imports numba.cuda.
"""
from __future__ import annotations

from ._config import config


class Device:
    """One device of a backend. ``platform`` is "cpu" or "gpu"; ``id`` counts from 0."""
    __slots__ = ("id", "platform", "device_kind", "process_index")

    def __init__(self, platform, id, device_kind):
        self.platform, self.id, self.device_kind, self.process_index = platform, id, device_kind, 0

    def __repr__(self):
        return f"{'CpuDevice' if self.platform == 'cpu' else 'CudaDevice'}(id={self.id})"

    __str__ = __repr__

    def __reduce__(self):   # unpickles to the same device object of this process
        return (_device_by_key, (self.platform, self.id))


_cpu_devices = []

# platform -> f() -> list of Devices, raising RuntimeError naming what is missing
backend_probes = {}
_ALIASES = {"cuda": "gpu", "gpu": "gpu", "cpu": "cpu"}


def cpu_devices():
    """The CPU devices (config.num_cpu_devices of them; objects are stable across calls)."""
    n = max(1, int(config.num_cpu_devices))
    while len(_cpu_devices) < n:
        _cpu_devices.append(Device("cpu", len(_cpu_devices), "cpu"))
    return _cpu_devices[:n]


def default_device():
    """The device new Arrays are placed on when nothing else decides: CPU 0."""
    return _cpu_devices[0] if _cpu_devices else cpu_devices()[0]


def devices(backend=None):
    """The devices of ``backend`` ("cpu", "cuda" or "gpu"; default: the default backend).
    RuntimeError naming what is missing when the backend cannot run here."""
    if backend is None:
        return cpu_devices()
    platform = _ALIASES.get(str(backend).lower())
    if platform is None:
        raise ValueError(f"unknown backend {backend!r}: expected 'cpu', 'cuda' or 'gpu'")
    if platform == "cpu":
        return cpu_devices()
    probe = backend_probes.get(platform)
    if probe is None:
        raise RuntimeError(f"backend {backend!r} is not available: functrans.backends did not "
                           "register it")
    return probe()


def local_devices(backend=None):
    """The devices of this process (all of them: functrans runs in one process)."""
    return devices(backend)


def default_backend():
    """The platform name of the default device: "cpu"."""
    return "cpu"


def _device_by_key(platform, id):
    devs = devices(platform)
    if id >= len(devs):
        raise ValueError(f"no {platform} device with id {id} in this process")
    return devs[id]
