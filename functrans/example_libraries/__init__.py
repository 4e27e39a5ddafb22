"""functrans.example_libraries: JAX's small example libraries, ``optimizers`` and ``stax``."""
from . import optimizers, stax  # noqa: F401
