"""Version guards for the CUDA backend's dependencies, applied before ``numba.cuda`` compiles.

NumPy 2.5 removed ``np.row_stack`` (a deprecated alias of ``np.vstack``). numba-cuda 0.30
still registers an overload for it when its NumPy support module is first imported, which
happens on the first kernel compile, so every compile failed with ``AttributeError: module
'numpy' has no attribute 'row_stack'``. ``ensure_numpy_aliases()`` restores the alias, only
when it is missing, before anything in functrans touches ``numba.cuda``. The alias is the same
function NumPy always documented it as, so nothing else changes."""
from __future__ import annotations

import numpy as np

# removed NumPy name -> the NumPy function it aliased
_ALIASES = {"row_stack": "vstack"}


def ensure_numpy_aliases():
    """Add back the NumPy aliases numba-cuda still references (``np.row_stack``) where this
    NumPy removed them. Returns the names added (empty when nothing was missing)."""
    added = []
    for old, new in _ALIASES.items():
        if not hasattr(np, old):
            setattr(np, old, getattr(np, new))
            added.append(old)
    return added


ensure_numpy_aliases()
