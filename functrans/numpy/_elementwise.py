"""More elementwise functions: angle conversions, fabs, fmax/fmin, hypot, logaddexp2, nan_to_num,
sinc and select, each composed of lax operations (so every transformation applies)."""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import core
from ..core import get_aval
from ..custom_derivatives import custom_jvp
from ..lax import lax
from ._base import as_operand, broadcast_shapes, broadcast_to_shape, cast, is_weak, result_type
from ._ufuncs import _binary, _const_like, _logaddexp, _unary


def _scaled(factor):
    return lambda x: lax.mul(x, _const_like(x, factor))


deg2rad = radians = _unary(np.deg2rad, _scaled(math.pi / 180), "deg2rad")
rad2deg = degrees = _unary(np.rad2deg, _scaled(180 / math.pi), "rad2deg")
radians.__doc__ = deg2rad.__doc__ = "Elementwise x in degrees converted to radians."
degrees.__doc__ = rad2deg.__doc__ = "Elementwise x in radians converted to degrees."
fabs = _unary(np.fabs, lax.abs)


def _nan_ignoring(lax_fn):
    """fmax/fmin: lax_fn of x and y, but the other operand where one of them is NaN."""
    def f(x, y):
        if get_aval(x).dtype.kind not in "fc":
            return lax_fn(x, y)
        out = lax.select(lax.ne(y, y), x, lax_fn(x, y))
        return lax.select(lax.ne(x, x), y, out)
    return f


fmax = _binary(np.fmax, _nan_ignoring(lax.max))
fmin = _binary(np.fmin, _nan_ignoring(lax.min))
fmax.__doc__ = "Elementwise maximum of x1 and x2 that ignores a NaN (NaN only if both are)."
fmin.__doc__ = "Elementwise minimum of x1 and x2 that ignores a NaN (NaN only if both are)."


def _hypot(x, y):
    """sqrt(x**2 + y**2) as big * sqrt(1 + (small / big)**2), which cannot overflow; inf if
    either is infinite (even with a NaN, as C's hypot)."""
    x, y = lax.abs(x), lax.abs(y)
    big, small = lax.max(x, y), lax.min(x, y)
    zero = lax.eq(big, _const_like(big, 0))
    # the divisor is 1 where big == 0, so neither the value nor its derivative is NaN there
    ratio = lax.div(small, lax.select(zero, _const_like(big, 1), big))
    out = lax.mul(big, lax.sqrt(lax.add(_const_like(big, 1), lax.mul(ratio, ratio))))
    inf = _const_like(big, math.inf)
    return lax.select(lax.bitwise_or(lax.eq(x, inf), lax.eq(y, inf)), inf, out)


hypot = _binary(np.hypot, _hypot)
hypot.__doc__ = "Elementwise sqrt(x1**2 + x2**2), without overflow or underflow on the way."


def _logaddexp2(x, y):
    ln2 = math.log(2)
    return lax.div(_logaddexp(_scaled(ln2)(x), _scaled(ln2)(y)), _const_like(x, ln2))


logaddexp2 = _binary(np.logaddexp2, _logaddexp2)
logaddexp2.__doc__ = "Elementwise log2(2**x1 + 2**x2), without overflow."


def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """x with NaN replaced by ``nan``, +inf by ``posinf`` and -inf by ``neginf`` (by default the
    largest and the most negative finite value of x's dtype); integer and bool x unchanged."""
    x = as_operand(x)
    dt = get_aval(x).dtype
    if dt.kind not in "fc":
        return x
    if dt.kind == "c":
        raise TypeError(f"nan_to_num: complex operands are not supported yet (got "
                        f"{get_aval(x).str_short()}){core.where()}")
    info = np.finfo(dt)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    out = lax.select(lax.ne(x, x), _const_like(x, nan), x)
    out = lax.select(lax.eq(x, _const_like(x, math.inf)), _const_like(x, posinf), out)
    return lax.select(lax.eq(x, _const_like(x, -math.inf)), _const_like(x, neginf), out)


@functools.lru_cache(maxsize=None)
def _sin_over_x_derivative(k):
    """The function x -> (k-th derivative of sin(x)/x at 0), constant in x, whose JVP is the
    (k+1)-th: so sinc(0) has derivatives of every order (0 for odd orders)."""
    value = 0.0 if k % 2 else (-1) ** (k // 2) / (k + 1)

    @custom_jvp
    def at_zero(x):
        return lax.add(lax.mul(x, _const_like(x, 0)), _const_like(x, value))

    @at_zero.defjvp
    def _jvp(primals, tangents):
        (x,), (t,) = primals, tangents
        return at_zero(x), lax.mul(t, _sin_over_x_derivative(k + 1)(x))
    return at_zero


def _sinc(x):
    zero = lax.eq(x, _const_like(x, 0))
    pi_x = lax.mul(_const_like(x, math.pi), x)
    safe = lax.select(zero, _const_like(x, 1), pi_x)
    return lax.select(zero, _sin_over_x_derivative(0)(pi_x), lax.div(lax.sin(safe), safe))


sinc = _unary(np.sinc, _sinc)
sinc.__doc__ = ("Elementwise sin(pi x) / (pi x), 1 at x = 0, where its derivatives of every "
                "order are the Taylor coefficients (sinc'(0) = 0).")


def select(condlist, choicelist, default=0):
    """choicelist[i] where condlist[i] is the first true condition, default where none is
    (everything broadcast together; the dtype promotes the choices and default)."""
    if len(condlist) != len(choicelist):
        raise ValueError(f"select: list of cases must be same length as list of conditions "
                         f"({len(condlist)} != {len(choicelist)}){core.where()}")
    if not condlist:
        raise ValueError(f"select with an empty condition list is not possible{core.where()}")
    conds = [as_operand(c) for c in condlist]
    for i, c in enumerate(conds):
        if get_aval(c).dtype.kind != "b":
            raise TypeError(f"select: invalid entry {i} in condlist: should be boolean ndarray, "
                            f"got {get_aval(c).dtype}{core.where()}")
    choices = [c if is_weak(c) else as_operand(c) for c in list(choicelist) + [default]]
    dt = result_type(*choices)     # Python scalars weak, as NumPy's select
    shape = broadcast_shapes(*[get_aval(as_operand(v)).shape for v in conds + choices])
    *choices, default = choices
    out = broadcast_to_shape(cast(default, dt), shape)
    for c, v in zip(reversed(conds), reversed(choices)):
        out = lax.select(broadcast_to_shape(c, shape), broadcast_to_shape(cast(v, dt), shape), out)
    return out


__all__ = ["deg2rad", "radians", "rad2deg", "degrees", "fabs", "fmax", "fmin", "hypot",
           "logaddexp2", "nan_to_num", "sinc", "select"]
