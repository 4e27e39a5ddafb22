"""functrans.scipy.sparse: the matrix-free solvers of scipy.sparse.linalg (cg, bicgstab,
gmres), as JAX's jax.scipy.sparse."""
from . import linalg  # noqa: F401
