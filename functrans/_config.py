"""Global switches, read where they matter (one object, so a test can monkeypatch one place).
Public as ``functrans.config``; ``config.update(name, value)`` sets one, also under JAX's
``jax_``-prefixed name (``functrans.config.update("jax_debug_nans", True)``).

- ``check_jaxprs``: type-check every jaxpr built (on in the tests; ``FUNCTRANS_CHECK_JAXPRS=1``).
- ``num_cpu_devices``: how many CPU devices ``functrans.devices()`` lists
  (``FUNCTRANS_NUM_CPU_DEVICES``; as XLA's ``--xla_force_host_platform_device_count``).
- ``debug_nans``: raise FloatingPointError naming the primitive and the user's line that first
  produced a NaN, eagerly and under jit (``FUNCTRANS_DEBUG_NANS=1`` or ``JAX_DEBUG_NANS=1``;
  docs/nonfinite.md).
- ``disable_jit``: ``jit``-decorated functions run as plain Python, un-traced, so prints and
  breakpoints see concrete values (``FUNCTRANS_DISABLE_JIT=1`` or ``JAX_DISABLE_JIT=1``; also the
  ``functrans.disable_jit()`` context manager).
- ``enable_x64``: keep 64-bit values (True, the default: functrans follows NumPy's dtypes).
  False canonicalises every 64-bit value entering functrans, and every 64-bit dtype asked for,
  to 32 bits, as JAX does by default (``FUNCTRANS_ENABLE_X64=0`` or ``JAX_ENABLE_X64=0``).
- ``default_matmul_precision``: the precision of float32 matmuls that give no ``precision=``
  (None or ``"default"``: TF32 tensor cores on a GPU, as JAX; ``"highest"``/``"float32"``: full
  float32; JAX's names are accepted). The CPU always computes in full precision
  (``FUNCTRANS_DEFAULT_MATMUL_PRECISION`` or ``JAX_DEFAULT_MATMUL_PRECISION``; also the
  ``functrans.default_matmul_precision(name)`` context manager).
"""
import difflib
import os


def _env(*names, default=""):
    """The first of the environment variables ``names`` that is set, else default."""
    for n in names:
        if os.environ.get(n):
            return os.environ[n]
    return default


class _Config:
    __slots__ = ("check_jaxprs", "num_cpu_devices", "debug_nans", "disable_jit", "enable_x64",
                 "default_matmul_precision")

    def __init__(self):
        self.check_jaxprs = os.environ.get("FUNCTRANS_CHECK_JAXPRS", "") == "1"
        self.num_cpu_devices = int(os.environ.get("FUNCTRANS_NUM_CPU_DEVICES", "1") or 1)
        self.debug_nans = _env("FUNCTRANS_DEBUG_NANS", "JAX_DEBUG_NANS").lower() in ("1", "true")
        self.disable_jit = "1" in (os.environ.get("FUNCTRANS_DISABLE_JIT", ""),
                                   os.environ.get("JAX_DISABLE_JIT", ""))
        self.enable_x64 = _env("FUNCTRANS_ENABLE_X64", "JAX_ENABLE_X64", default="1").lower() \
            not in ("0", "false")
        self.default_matmul_precision = _env("FUNCTRANS_DEFAULT_MATMUL_PRECISION",
                                             "JAX_DEFAULT_MATMUL_PRECISION", default=None)

    def _name(self, name):
        key = name[4:] if name.startswith("jax_") else name
        if key not in self.__slots__:
            known = [n for k in self.__slots__ for n in (k, "jax_" + k)]
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise AttributeError(f"Unrecognized config option: {name!r}{hint}")
        return key

    def update(self, name, value):
        """Set the option ``name`` (``"debug_nans"`` or JAX's ``"jax_debug_nans"``) to value."""
        setattr(self, self._name(name), value)

    def __setattr__(self, key, value):
        check = _checks.get(key)
        object.__setattr__(self, key, value if check is None else check(value))

    def read(self, name):
        """The value of the option ``name`` (with or without JAX's ``jax_`` prefix)."""
        return getattr(self, self._name(name))

    def __getattr__(self, name):    # config.jax_debug_nans, as JAX spells it
        if name.startswith("jax_"):
            return self.read(name)
        raise AttributeError(name)


# option -> f(value) -> the value to store (raises for a bad one; may act on the change):
# registered by the modules that own the option (core for enable_x64, lax for the precision)
_checks = {}

config = _Config()
