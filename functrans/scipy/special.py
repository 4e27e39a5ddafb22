"""functrans.scipy.special: logsumexp."""
from ..numpy._special import logsumexp  # noqa: F401
