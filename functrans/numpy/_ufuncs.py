"""Elementwise functions with NumPy 2 promotion and broadcasting, lowered to lax."""
from __future__ import annotations

import math

import numpy as np

from .. import core
from ..core import Array, Tracer, get_aval
from ..custom_derivatives import custom_jvp
from ..lax import lax
from ._base import (array_aval, as_operand, binary_operands, cast, is_weak, oracle_dtype,
                    oracle_memo, promote, result_type)


def _unary(ufunc, lax_fn, name=None, int_identity=False, real_of_complex=False):
    """A one-operand function: the operand is cast to NumPy's result dtype, then lax_fn.
    NumPy's real result dtype for a complex operand means the function is not defined on the
    complex plane (TypeError), unless ``real_of_complex``: lax_fn maps complex to real (abs)."""
    def f(x, /):
        a = array_aval(x)
        if a is not None:
            dt = oracle_memo.get((ufunc, (a.dtype,)))
            if dt is a.dtype and not (int_identity and dt.kind in "biu"):
                return lax_fn(x)
        x = x if is_weak(x) else as_operand(x)
        dt = oracle_dtype(ufunc, as_operand(x))
        if dt.kind != "c" and get_aval(as_operand(x)).dtype.kind == "c":
            if real_of_complex:
                return lax_fn(as_operand(x))
            raise TypeError(f"{f.__name__} is not defined for complex operands (got "
                            f"{get_aval(as_operand(x)).str_short()}){core.where()}")
        if int_identity and dt.kind in "biu":
            return cast(x, dt)
        return lax_fn(cast(x, dt))
    f.__name__ = f.__qualname__ = name or ufunc.__name__
    f.__doc__ = f"Elementwise {f.__name__} of x (NumPy's result dtype)."
    return f


def _binary(ufunc, lax_fn, name=None):
    """A two-operand function: operands promoted to NumPy's result dtype, broadcast, lax_fn."""
    def f(x1, x2, /):
        _, a, b = binary_operands(ufunc, x1, x2)
        return lax_fn(a, b)
    f.__name__ = f.__qualname__ = name or ufunc.__name__
    f.__doc__ = f"Elementwise {f.__name__} of x1 and x2, broadcast (NumPy's result dtype)."
    return f


def _add(x, y):
    return lax.bitwise_or(x, y) if get_aval(x).dtype.kind == "b" else lax.add(x, y)


def _sign(x):
    return lax.sign(x)


def _const_like(x, v):
    a = get_aval(x)
    return lax.full(a.shape, v, a.dtype)


def _log_base(base):
    def f(x):
        return lax.div(lax.log(x), _const_like(x, math.log(base)))
    return f


def _reciprocal(x):
    return lax.div(_const_like(x, 1), x)


def _square(x):   # integer_pow: one tangent product (2x * g) where mul(x, x) has two
    return lax.mul(x, x) if get_aval(x).dtype.kind == "b" else lax.square(x)


def _floor_divide(x, y):
    """NumPy's floor division: integers round to -inf (0 for a zero divisor); floats follow
    npy_divmod exactly (so 1 // 0.1 == 9, as NumPy)."""
    if get_aval(x).dtype.kind in "iu":
        q = lax.div(x, y)
        r = lax.rem(x, y)
        zero = _const_like(x, 0)
        fix = lax.bitwise_and(lax.ne(r, zero), lax.ne(lax.lt(r, zero), lax.lt(y, zero)))
        return lax.select(fix, lax.sub(q, _const_like(x, 1)), q)
    if get_aval(x).dtype.kind == "b":
        return lax.bitwise_and(x, y)
    zero = _const_like(x, 0)
    mod = lax.rem(x, y)
    div = lax.div(lax.sub(x, mod), y)
    adjust = lax.bitwise_and(lax.ne(mod, zero), lax.ne(lax.lt(y, zero), lax.lt(mod, zero)))
    div = lax.select(adjust, lax.sub(div, _const_like(x, 1)), div)
    fl = lax.floor(div)
    fl = lax.select(lax.gt(lax.sub(div, fl), _const_like(x, 0.5)), lax.add(fl, _const_like(x, 1)), fl)
    signed_zero = lax.mul(zero, lax.div(x, y))  # copysign(0, x / y)
    fl = lax.select(lax.ne(div, zero), fl, signed_zero)
    return lax.select(lax.eq(y, zero), lax.div(x, y), fl)


def _remainder(x, y):
    """NumPy's remainder: the sign follows the divisor."""
    if get_aval(x).dtype.kind == "b":
        return lax.bitwise_and(x, lax.bitwise_not(y))  # matches np.remainder on bools
    zero = _const_like(x, 0)
    r = lax.rem(x, y)
    fix = lax.bitwise_and(lax.ne(r, zero), lax.ne(lax.lt(r, zero), lax.lt(y, zero)))
    out = lax.select(fix, lax.add(r, y), r)
    if get_aval(x).dtype.kind == "f":
        signed_zero = lax.select(lax.lt(y, zero), _const_like(x, -0.0), zero)
        out = lax.select(lax.bitwise_and(lax.eq(r, zero), lax.ne(y, zero)), signed_zero, out)
    return out


def _int_pow(x, y):
    """x ** y for integer arrays by square-and-multiply over every bit of y (wraps as NumPy)."""
    bits = 8 * get_aval(y).dtype.itemsize
    one = _const_like(x, 1)
    acc, base, e = one, x, y
    for _ in range(bits):
        odd = lax.ne(lax.bitwise_and(e, one), _const_like(x, 0))
        acc = lax.select(odd, lax.mul(acc, base), acc)
        base = lax.mul(base, base)
        e = lax.shift_right_logical(e, one)
    return acc


def power(x1, x2, /):
    """Elementwise x1 ** x2 (NumPy's result dtype; static integer exponents use integer_pow)."""
    if type(x2) is int:    # x ** 3 on floats: the result dtype is x1's (a weak exponent)
        a = array_aval(x1)
        if a is not None and a.dtype.kind == "f":
            return lax.integer_pow(x1, x2) if x2 != 1 else x1
    dt = oracle_dtype(np.power, x1, x2)
    if type(x2) is int or (isinstance(x2, (np.ndarray, np.generic, Array)) and x2.ndim == 0
                           and x2.dtype.kind in "iu" and not isinstance(x2, Tracer)):
        n = int(x2)
        if dt.kind in "iu" and n < 0:
            raise ValueError(f"Integers to negative integer powers are not allowed{core.where()}")
        if dt.kind in "iuf":
            base = cast(as_operand(x1), dt)
            return lax.integer_pow(base, n) if n != 1 else base
    a, b = promote(dt, x1, x2)
    if dt.kind in "iu":
        if isinstance(b, (np.ndarray, Array)) and not isinstance(b, Tracer) and (np.asarray(b) < 0).any():
            raise ValueError(f"Integers to negative integer powers are not allowed{core.where()}")
        return _int_pow(a, b)
    if dt.kind == "b":
        return lax.bitwise_or(a, lax.bitwise_not(b))
    if array_aval(x2) is not None and array_aval(x2).dtype.kind in "iu":
        return _pow_integer_exponents(a, b)
    return lax.pow(a, b)


def _pow_integer_exponents(x, y):
    """x ** y for an array y of integer exponents (converted to x's dtype): as JAX, the
    derivative in x is 0 where y == 0, even at x = 0 (x ** 0 is constant there). The base is 1
    where y == 0, which changes no value (anything ** 0 is 1) and lets no 0 * inf NaN into
    either the forward or the backward pass."""
    y_is_0 = lax.eq(y, _const_like(y, 0))
    return lax.pow(lax.select(y_is_0, _const_like(x, 1), x), y)


def round(a, decimals=0):  # noqa: A001
    """a rounded to the given number of decimals (half to even, NumPy's algorithm)."""
    a = as_operand(a)
    dt = get_aval(a).dtype
    out_dt = oracle_dtype(np.round, a)
    if out_dt != dt:  # NumPy rounds bools in float16
        a, dt = cast(a, out_dt), out_dt
    if dt.kind in "biu":
        if decimals >= 0:
            return a
        return cast(round(cast(a, np.float64), decimals), dt)
    if decimals == 0:
        return lax.round(a)
    f = 10.0 ** abs(decimals)
    c = _const_like(a, f)
    if decimals > 0:
        return lax.div(lax.round(lax.mul(a, c)), c)
    return lax.mul(lax.round(lax.div(a, c)), c)


around = round


def _compare(lax_fn, name):
    def f(x1, x2, /):
        dt = result_type(x1, x2)
        return lax_fn(*promote(dt, x1, x2))
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise {name} comparison of x1 and x2 (bool)."
    return f


def _to_bool(x):
    x = as_operand(x)
    if get_aval(x).dtype.kind == "b":
        return x
    return lax.ne(x, lax.full(get_aval(x).shape, 0, get_aval(x).dtype))


def _logical(lax_fn, name):
    def f(x1, x2, /):
        a, b = promote(np.bool_, _to_bool(x1), _to_bool(x2))
        return lax_fn(a, b)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise {name} of the truth values of x1 and x2 (bool)."
    return f


def logical_not(x, /):
    """Elementwise not of the truth value of x (bool)."""
    return lax.bitwise_not(_to_bool(x))


def isnan(x, /):
    """True where x is NaN."""
    x = as_operand(x)
    if get_aval(x).dtype.kind in "biu":
        return lax.full(get_aval(x).shape, False, np.bool_)
    return lax.ne(x, x)


def isinf(x, /):
    """True where x is +-inf (for complex x: where either part is)."""
    x = as_operand(x)
    if get_aval(x).dtype.kind in "biu":
        return lax.full(get_aval(x).shape, False, np.bool_)
    if get_aval(x).dtype.kind == "c":
        return lax.bitwise_or(isinf(lax.real(x)), isinf(lax.imag(x)))
    return lax.eq(lax.abs(x), _const_like(x, np.inf))


def isfinite(x, /):
    """True where x is neither inf nor NaN (for complex x: where both parts are finite)."""
    x = as_operand(x)
    if get_aval(x).dtype.kind in "biu":
        return lax.full(get_aval(x).shape, True, np.bool_)
    if get_aval(x).dtype.kind == "c":
        return lax.bitwise_and(lax.is_finite(lax.real(x)), lax.is_finite(lax.imag(x)))
    return lax.is_finite(x)


@custom_jvp
def _logaddexp(x, y):
    """log(exp(x) + exp(y)) without overflow (as JAX): NaN propagates, and infinities of the
    same sign (where x - y is NaN) give x + y."""
    delta = lax.sub(x, y)
    out = lax.add(lax.max(x, y), lax.log1p(lax.exp(lax.neg(lax.abs(delta)))))
    return lax.select(lax.ne(delta, delta), lax.add(x, y), out)


def _finite_or_zero_at_inf(x):
    """x with +inf replaced by 0 (so exp(x - out) is 1, not NaN, where x = out = +inf)."""
    return lax.select(lax.eq(x, _const_like(x, math.inf)), _const_like(x, 0), x)


@_logaddexp.defjvp
def _logaddexp_jvp(primals, tangents):
    """d out = tx exp(x - out) + ty exp(y - out): the weights are the softmax of (x, y), so a
    tie splits the tangent in halves, as JAX."""
    out = _logaddexp(*primals)
    o = _finite_or_zero_at_inf(out)
    terms = [lax.mul(t, lax.exp(lax.sub(_finite_or_zero_at_inf(v), o)))
             for v, t in zip(primals, tangents)]
    return out, lax.add(*terms)


def clip(a, a_min=None, a_max=None, *, min=None, max=None):  # noqa: A002
    """a limited to [min, max] (NumPy's a_min/a_max or min=/max=; None means unbounded)."""
    lo = a_min if min is None else min
    hi = a_max if max is None else max
    out = a
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return as_operand(out)


def where(condition, x=None, y=None, /):
    """x where condition else y, broadcast (NumPy's promotion of x and y). With one argument,
    the indices where condition is true (condition must be concrete)."""
    if x is None and y is None:
        from ._base import concrete
        return np.nonzero(concrete(condition, "the one-argument form of where"))
    if x is None or y is None:
        raise ValueError(f"where: either both or neither of x and y should be given{core.where()}")
    dt = result_type(x, y)
    a, b = promote(dt, x, y)
    cond = _to_bool(condition)
    from ._base import broadcast_shapes, broadcast_to_shape
    shape = broadcast_shapes(get_aval(cond).shape, get_aval(a).shape)
    return lax.select(broadcast_to_shape(cond, shape), broadcast_to_shape(a, shape),
                      broadcast_to_shape(b, shape))


def _conj(x):
    return lax.conj(x) if get_aval(x).dtype.kind == "c" else x


add = _binary(np.add, _add)
subtract = _binary(np.subtract, lax.sub)
multiply = _binary(np.multiply, lax.mul)
divide = true_divide = _binary(np.true_divide, lax.div, "divide")
floor_divide = _binary(np.floor_divide, _floor_divide)
remainder = mod = _binary(np.remainder, _remainder, "remainder")
maximum = _binary(np.maximum, lax.max)
minimum = _binary(np.minimum, lax.min)
arctan2 = _binary(np.arctan2, lax.atan2)
logaddexp = _binary(np.logaddexp, _logaddexp)
bitwise_and = _binary(np.bitwise_and, lax.bitwise_and)
bitwise_or = _binary(np.bitwise_or, lax.bitwise_or)
bitwise_xor = _binary(np.bitwise_xor, lax.bitwise_xor)

negative = _unary(np.negative, lax.neg)
positive = _unary(np.positive, lambda x: x)
abs = absolute = _unary(np.absolute, lambda x: x if get_aval(x).dtype.kind == "b" else lax.abs(x),
                        "abs", real_of_complex=True)
sign = _unary(np.sign, _sign)
exp = _unary(np.exp, lax.exp)
exp2 = _unary(np.exp2, lax.exp2)
expm1 = _unary(np.expm1, lax.expm1)
log = _unary(np.log, lax.log)
log1p = _unary(np.log1p, lax.log1p)
log2 = _unary(np.log2, _log_base(2))
log10 = _unary(np.log10, _log_base(10))
sqrt = _unary(np.sqrt, lax.sqrt)
cbrt = _unary(np.cbrt, lax.cbrt)
square = _unary(np.square, _square)
sin = _unary(np.sin, lax.sin)
cos = _unary(np.cos, lax.cos)
tan = _unary(np.tan, lax.tan)
arcsin = _unary(np.arcsin, lax.asin)
arccos = _unary(np.arccos, lax.acos)
arctan = _unary(np.arctan, lax.atan)
sinh = _unary(np.sinh, lax.sinh)
cosh = _unary(np.cosh, lax.cosh)
tanh = _unary(np.tanh, lax.tanh)
arcsinh = _unary(np.arcsinh, lax.asinh)
arccosh = _unary(np.arccosh, lax.acosh)
arctanh = _unary(np.arctanh, lax.atanh)
floor = _unary(np.floor, lax.floor, int_identity=True)
ceil = _unary(np.ceil, lax.ceil, int_identity=True)
trunc = _unary(np.trunc, lambda x: lax.select(lax.lt(x, _const_like(x, 0)), lax.ceil(x),
                                               lax.floor(x)), int_identity=True)
rint = _unary(np.rint, lax.round, int_identity=True)
reciprocal = _unary(np.reciprocal, _reciprocal)
invert = bitwise_not = _unary(np.invert, lax.bitwise_not, "invert")
conjugate = conj = _unary(np.conjugate, _conj, "conjugate")

equal = _compare(lax.eq, "equal")
not_equal = _compare(lax.ne, "not_equal")
less = _compare(lax.lt, "less")
less_equal = _compare(lax.le, "less_equal")
greater = _compare(lax.gt, "greater")
greater_equal = _compare(lax.ge, "greater_equal")
logical_and = _logical(lax.bitwise_and, "logical_and")
logical_or = _logical(lax.bitwise_or, "logical_or")
logical_xor = _logical(lax.bitwise_xor, "logical_xor")
