"""functrans.scipy: the traced subset of SciPy (special, stats)."""
from . import special, stats  # noqa: F401
