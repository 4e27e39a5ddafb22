"""functrans.scipy: the traced subset of SciPy (linalg, sparse.linalg, special, stats)."""
from . import linalg, sparse, special, stats  # noqa: F401
