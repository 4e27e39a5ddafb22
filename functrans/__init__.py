"""functrans: JAX-style composable function transformations for NumPy code, compiled with numba."""
from . import core, tree, tree_util  # noqa: F401
from .core import Array  # noqa: F401
from ._config import config  # noqa: F401
from .lax import lax as _lax  # noqa: F401  (registers the primitives)
from .api import (ShapeDtypeStruct, block_until_ready, default_matmul_precision, device_get,  # noqa: F401
                  device_put, disable_jit, eval_shape, grad, hessian, hvp, jacfwd, jacrev, jit,
                  jvp, linear_transpose, linearize, make_jaxpr,
                  value_and_grad, vjp, vmap)
from .api import jacrev as jacobian  # noqa: F401  (JAX's alias)
from .devices import Device, default_backend, devices, local_devices  # noqa: F401
from . import jit_primitive as _jit_primitive  # noqa: F401
from . import backends as _backends  # noqa: F401  (registers the jit CPU executor; numba loads lazily)
from .custom_derivatives import custom_gradient, custom_jvp, custom_vjp  # noqa: F401
from .checkpoint import checkpoint, remat, saved_residuals  # noqa: F401
from . import ad_checkpoint  # noqa: F401
from .ad_checkpoint import checkpoint_policies  # noqa: F401
from .auto_checkpoint import auto_checkpoint  # noqa: F401
from . import lax  # noqa: F401
from . import random  # noqa: F401
from . import nn  # noqa: F401
from . import debug  # noqa: F401
from .callbacks import pure_callback  # noqa: F401

__version__ = "0.1.0"
from . import numpy  # noqa: F401,E402
from . import scipy  # noqa: F401,E402
from .curvature import fisher_vp, ggn_vp  # noqa: F401,E402
from . import example_libraries  # noqa: F401,E402
from . import optim  # noqa: F401,E402
from . import diagnostics  # noqa: F401,E402
from . import distributed  # noqa: F401,E402  (mpi4py is imported only under mpiexec)
from .distributed import process_count, process_index  # noqa: F401,E402
from . import spectral  # noqa: F401,E402
from .spectral import hessian_spectrum  # noqa: F401,E402
