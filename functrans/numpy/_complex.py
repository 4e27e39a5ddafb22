"""Complex parts and predicates: real, imag, angle, iscomplex, iscomplexobj, isrealobj,
real_if_close (conj/conjugate are ufuncs, in _ufuncs.py). Written in lax's real/imag/complex
primitives, so they differentiate with JAX's conventions (docs/numerics.md)."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import Tracer, get_aval
from ..lax import lax
from ._base import as_operand, cast


def _is_complex(x):
    return get_aval(x).dtype.kind == "c"


def real(val, /):
    """The real part of val (val itself when it is real)."""
    x = as_operand(val)
    return lax.real(x) if _is_complex(x) else x


def imag(val, /):
    """The imaginary part of val (zeros of val's dtype when it is real)."""
    x = as_operand(val)
    return lax.imag(x) if _is_complex(x) else lax.zeros_like(x)


def angle(z, deg=False):
    """The counterclockwise angle of z from the positive real axis, in radians (degrees with
    ``deg``); a float array (float64 for integer z, as NumPy)."""
    x = as_operand(z)
    re, im = real(x), imag(x)
    if get_aval(re).dtype.kind != "f":
        re, im = cast(re, np.float64), cast(im, np.float64)
    out = lax.atan2(im, re)
    return lax.mul(out, lax.full_like(out, 180 / np.pi)) if deg else out


def iscomplex(x, /):
    """True where x has a nonzero imaginary part (all False for a real x)."""
    x = as_operand(x)
    if not _is_complex(x):
        return lax.full(get_aval(x).shape, False, np.bool_)
    im = lax.imag(x)
    return lax.ne(im, lax.zeros_like(im))


def iscomplexobj(x, /):
    """True if x has a complex dtype (whatever its values)."""
    return _is_complex(as_operand(x))


def isrealobj(x, /):
    """True if x does not have a complex dtype."""
    return not iscomplexobj(x)


def real_if_close(a, tol=100):
    """The real part of a if every imaginary part is within tol machine epsilons of zero (tol
    above 1 counts epsilons, as NumPy), else a. The result dtype depends on the values, so a
    must be concrete (ConcretizationTypeError under jit or vmap)."""
    x = as_operand(a)
    if not _is_complex(x):
        return x
    value = core.concrete_or_none(x) if isinstance(x, Tracer) else x
    if value is None or isinstance(value, Tracer):
        raise core.ConcretizationTypeError(
            f"real_if_close of a traced value ({get_aval(x).str_short()}): its result dtype "
            f"depends on the values{core.where()}")
    eps = np.finfo(lax.real_dtype(get_aval(x).dtype)).eps
    bound = tol * eps if tol > 1 else tol
    if np.all(np.abs(np.imag(np.asarray(value))) < bound):
        return lax.real(x)
    return x
