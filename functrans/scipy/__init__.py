"""functrans.scipy: the traced subset of SciPy (linalg, special, stats)."""
from . import linalg, special, stats  # noqa: F401
