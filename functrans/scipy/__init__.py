"""functrans.scipy: the traced subset of SciPy (special.logsumexp)."""
from . import special  # noqa: F401
