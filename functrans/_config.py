"""Global switches, read where they matter (one object, so a test can monkeypatch one place).

- ``check_jaxprs``: type-check every jaxpr built (on in the tests; ``FUNCTRANS_CHECK_JAXPRS=1``).
- ``num_cpu_devices``: how many CPU devices ``functrans.devices()`` lists
  (``FUNCTRANS_NUM_CPU_DEVICES``; as XLA's ``--xla_force_host_platform_device_count``).
"""
import os


class _Config:
    __slots__ = ("check_jaxprs", "num_cpu_devices")

    def __init__(self):
        self.check_jaxprs = os.environ.get("FUNCTRANS_CHECK_JAXPRS", "") == "1"
        self.num_cpu_devices = int(os.environ.get("FUNCTRANS_NUM_CPU_DEVICES", "1") or 1)


config = _Config()
