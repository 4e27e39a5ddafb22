"""lax primitives: elementwise math, comparisons, select, reductions, cumulative ops, shape ops,
dot_general and conversions. Each primitive is defined once, with its impl, abstract eval,
jvp, transpose (if linear) and batching rules right beside it. lax ops take equal shapes and
equal dtypes; functrans.numpy does broadcasting and promotion on top."""
from __future__ import annotations

import enum
import functools
import math

import numpy as np

from .. import core
from ..core import Primitive, ShapedArray, abstract_eval_rules, get_aval, impl_rules
from ..interpreters import ad
from ..interpreters import ops as interpreter_ops
from ..interpreters.ad import (UndefPrimal, Zero, defbilinear, defjvp, defjvp2, defjvp_zero,
                               deflinear, instantiate_zeros, jvp_rules, transpose_rules)
from ..interpreters.batching import (batch_rules, defbroadcasting, defreducer, defvectorized,
                                     moveaxis, not_mapped)
from ..util import safe_map, safe_zip

map, zip = safe_map, safe_zip

_float, _int, _bool = "f", "iu", "b"
_num = _float + _int
_any = _num + _bool + "c"
_inexact = _float + "c"


def primitive(name, impl, abstract_eval, multiple_results=False):
    """A Primitive with its impl and abstract-eval rules registered."""
    p = Primitive(name, multiple_results)
    impl_rules[p] = impl
    abstract_eval_rules[p] = abstract_eval
    return p


def _with_dtype(out, dtype):
    """An impl's result (an ndarray or a NumPy scalar) converted to dtype, if it is not of it
    already (astype of a NumPy scalar costs as much as the operation itself)."""
    return out if out.dtype == dtype else out.astype(dtype)


def _const(x, v):
    """A 0-d array of value v with x's dtype, broadcast to x's shape (a traceable op)."""
    a = get_aval(x)
    return full(a.shape, v, a.dtype)


_canon = core.canonicalize_dtype


def _check_kind(name, aval, kinds):
    if core.dtype_kind(aval.dtype) not in kinds:
        raise TypeError(f"{name} does not accept dtype {aval.dtype.name}")


# ---------------------------------------------------------------------------------------------
# Elementwise unary

def _traceable(p, doc):
    """The thin user-facing wrapper of primitive p: f(*arrays) = p.bind(*arrays)."""
    def f(*args):
        return core._state.trace.process_primitive(p, args, {})  # p.bind(*args), inlined
    f.__name__ = f.__qualname__ = p.name
    f.__doc__ = doc
    return f


def unop(name, impl, kinds=_float, out_dtype=None):
    """An elementwise one-operand primitive (vectorised batching) and its wrapper."""
    def aval_rule(x):
        _check_kind(name, x, kinds)
        return x if out_dtype is None else x.update(dtype=out_dtype)
    p = primitive(name, impl, aval_rule)
    defvectorized(p)
    return p, _traceable(p, f"Elementwise {name}(x) (the lax primitive '{name}').")


def _logistic_impl(x):
    if x.dtype.kind == "c":     # no overflow-safe split by sign in the complex plane
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return _with_dtype(1 / (1 + np.exp(-x)), x.dtype)
    e = np.exp(-np.abs(x))
    one = x.dtype.type(1)
    return _with_dtype(np.where(x >= 0, one / (one + e), e / (one + e)), x.dtype)


def _erf_impl(x):
    from scipy.special import erf as _erf
    return _with_dtype(np.asarray(_erf(x)), x.dtype)


def _rsqrt_impl(x):
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_dtype(1 / np.sqrt(x), x.dtype)


neg_p, neg = unop("neg", np.negative, _num + "c")
sign_p, sign = unop("sign", np.sign, _num + "c")
floor_p, floor = unop("floor", np.floor)
ceil_p, ceil = unop("ceil", np.ceil)
round_p, round = unop("round", np.round)
is_finite_p, is_finite = unop("is_finite", np.isfinite, _float, out_dtype=np.bool_)


def _reduce_precision_impl(x, *, exponent_bits, mantissa_bits):
    """x rounded (to nearest even) to ``mantissa_bits`` fraction bits, then values beyond an
    ``exponent_bits`` exponent's range made inf (above) or a signed zero (below), as XLA's
    ReducePrecision; NaNs kept. Works on the bits, as an int64 copy."""
    x = np.asarray(x)
    info = np.finfo(x.dtype)
    signed = np.dtype(f"i{x.dtype.itemsize}")
    b = x.view(signed).astype(np.int64)
    nmant, nexp = info.nmant, info.nexp
    if mantissa_bits < nmant:
        shift = nmant - mantissa_bits
        b = (b + ((1 << (shift - 1)) - 1 + ((b >> shift) & 1))) & ~((1 << shift) - 1)
    if exponent_bits < nexp:
        sign = b & (np.int64(-1) << (nmant + nexp))     # the sign bit, sign-extended
        e = ((b >> nmant) & ((1 << nexp) - 1)) - ((1 << (nexp - 1)) - 1)
        emax = (1 << (exponent_bits - 1)) - 1
        b = np.where(e > emax, sign | (((1 << nexp) - 1) << nmant), b)
        b = np.where(e < 1 - emax, sign, b)
    out = b.astype(signed).view(x.dtype)
    return np.where(np.isnan(x), x, out)


def _reduce_precision_aval(x, *, exponent_bits, mantissa_bits):
    _check_kind("reduce_precision", x, _float)
    if exponent_bits < 1 or mantissa_bits < 0:
        raise ValueError(f"reduce_precision: exponent_bits must be >= 1 and mantissa_bits >= 0, "
                         f"got {exponent_bits} and {mantissa_bits}")
    return x


reduce_precision_p = primitive("reduce_precision", _reduce_precision_impl,
                               _reduce_precision_aval)
defvectorized(reduce_precision_p)
# the straight-through derivative, as JAX: the tangent is rounded alike
deflinear(reduce_precision_p, lambda ct, x, **params: [reduce_precision_p.bind(ct, **params)])


def reduce_precision(operand, exponent_bits, mantissa_bits):
    """operand (a float array) rounded to the precision of a float format with the given
    exponent and fraction bits, in operand's dtype (JAX's lax.reduce_precision):
    ``reduce_precision(x, 8, 7)`` on float32 is x rounded to bfloat16. Its derivative is the
    straight-through one (the tangent rounded alike), as JAX's."""
    _check_kind("reduce_precision", get_aval(operand), _float)
    return reduce_precision_p.bind(operand, exponent_bits=int(exponent_bits),
                                   mantissa_bits=int(mantissa_bits))


def real_dtype(dtype):
    """The real dtype of a complex dtype's parts (float32 for complex64); others unchanged."""
    dtype = np.dtype(dtype)
    return np.dtype(f"f{dtype.itemsize // 2}") if dtype.kind == "c" else dtype


def complex_dtype(dtype):
    """The complex dtype whose parts have the real dtype ``dtype`` (complex64 for float32)."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "c" else np.dtype(f"c{2 * dtype.itemsize}")


def _real_valued_unop(name, impl, kinds):
    """An elementwise primitive whose output is real: of the operand's real dtype."""
    def aval_rule(x):
        _check_kind(name, x, kinds)
        return x.update(dtype=real_dtype(x.dtype)) if x.dtype.kind == "c" else x
    p = primitive(name, impl, aval_rule)
    defvectorized(p)
    return p, _traceable(p, f"Elementwise {name}(x) (the lax primitive '{name}'); real-valued "
                            "for a complex x.")


abs_p, abs = _real_valued_unop("abs", np.abs, _num + "c")
real_p, real = _real_valued_unop("real", lambda x: np.real(x).copy(), "c")
imag_p, imag = _real_valued_unop("imag", lambda x: np.imag(x).copy(), "c")
conj_p, _conj = unop("conj", np.conjugate, "c")


def conj(x):
    """The complex conjugate of x (a real x becomes complex with a zero imaginary part, as
    JAX's lax.conj)."""
    if get_aval(x).dtype.kind != "c":
        return complex(x, zeros_like(x))
    return _conj(x)


def _complex_aval(x, y):
    _nary_aval("complex", _float)(x, y)
    return x.update(dtype=complex_dtype(x.dtype))


def _complex_impl(x, y):
    out = np.empty(np.shape(x), complex_dtype(x.dtype))
    out.real, out.imag = x, y
    return out


complex_p = primitive("complex", _complex_impl, _complex_aval)
defbroadcasting(complex_p)
exp_p, exp = unop("exp", np.exp, _inexact)
exp2_p, exp2 = unop("exp2", np.exp2, _inexact)
log_p, log = unop("log", np.log, _inexact)
log1p_p, log1p = unop("log1p", np.log1p, _inexact)
expm1_p, expm1 = unop("expm1", np.expm1, _inexact)
tanh_p, tanh = unop("tanh", np.tanh, _inexact)
logistic_p, logistic = unop("logistic", _logistic_impl, _inexact)
sin_p, sin = unop("sin", np.sin, _inexact)
cos_p, cos = unop("cos", np.cos, _inexact)
tan_p, tan = unop("tan", np.tan, _inexact)
asin_p, asin = unop("asin", np.arcsin, _inexact)
acos_p, acos = unop("acos", np.arccos, _inexact)
atan_p, atan = unop("atan", np.arctan, _inexact)
sinh_p, sinh = unop("sinh", np.sinh, _inexact)
cosh_p, cosh = unop("cosh", np.cosh, _inexact)
asinh_p, asinh = unop("asinh", np.arcsinh, _inexact)
acosh_p, acosh = unop("acosh", np.arccosh, _inexact)
atanh_p, atanh = unop("atanh", np.arctanh, _inexact)
sqrt_p, sqrt = unop("sqrt", np.sqrt, _inexact)
rsqrt_p, rsqrt = unop("rsqrt", _rsqrt_impl, _inexact)
cbrt_p, cbrt = unop("cbrt", np.cbrt)
erf_p, erf = unop("erf", _erf_impl)
not_p, bitwise_not = unop("not", np.invert, _int + _bool)
stop_gradient_p, _ = unop("stop_gradient", lambda x: x, _any)


def stop_gradient(x):
    """x, with a zero derivative (applied leafwise to pytrees)."""
    from ..tree_util import tree_map
    return tree_map(lambda v: stop_gradient_p.bind(core.as_array(v)), x)


def square(x):
    """x * x elementwise."""
    return integer_pow(x, 2)


def reciprocal(x):
    """1 / x elementwise."""
    return integer_pow(x, -1)


deflinear(neg_p, lambda ct, x: [neg(ct)])


def _sign_jvp(primals, tangents):
    """Zero for reals (piecewise constant). For complex z, sign(z) = z / |z| is smooth away from
    0: d sign = (g - s Re(conj(s) g)) / |z|, and 0 at z = 0. (JAX gives 0 here too; a zero
    would be a wrong number, see docs/numerics.md.)"""
    (x,), (g,) = primals, tangents
    s = sign(x)
    if get_aval(x).dtype.kind != "c":
        return s, Zero(get_aval(s))
    r = convert_element_type(abs(x), get_aval(x).dtype)
    radial = mul(s, convert_element_type(real(mul(_conj(s), g)), get_aval(x).dtype))
    return s, div(sub(g, radial), _replace_zero(r))


jvp_rules[sign_p] = _sign_jvp
defjvp_zero(floor_p)
defjvp_zero(ceil_p)
defjvp_zero(round_p)
defjvp_zero(is_finite_p)
defjvp_zero(not_p)
defjvp_zero(stop_gradient_p)


def _abs_jvp(g, ans, x):
    """abs'(0) = 1 for reals, as JAX; for complex x: Re(conj(x) g) / |x|, 0 at x = 0. The
    division is by the real |x| (JAX divides by |x| as a complex number): the same value, and
    the transpose is then a real division and one complex product, not a complex division."""
    if get_aval(x).dtype.kind != "c":
        return select(ge(x, _const(x, 0)), g, neg(g))
    return div(real(mul(g, _conj(x))), _replace_zero(ans))


defjvp2(abs_p, _abs_jvp)
deflinear(real_p, lambda ct, x: [complex(ct, zeros_like(ct))])
deflinear(imag_p, lambda ct, x: [complex(zeros_like(ct), neg(ct))])
deflinear(conj_p, lambda ct, x: [_conj(ct)])
defjvp2(exp_p, lambda g, ans, x: mul(g, ans))
defjvp2(exp2_p, lambda g, ans, x: mul(g, mul(ans, _const(x, math.log(2)))))
defjvp(log_p, lambda g, x: div(g, x))
defjvp(log1p_p, lambda g, x: div(g, add(x, _const(x, 1))))
defjvp2(expm1_p, lambda g, ans, x: mul(g, add(ans, _const(x, 1))))
defjvp2(tanh_p, lambda g, ans, x: mul(g, sub(_const(x, 1), mul(ans, ans))))
defjvp2(logistic_p, lambda g, ans, x: mul(g, mul(ans, sub(_const(x, 1), ans))))
defjvp(sin_p, lambda g, x: mul(g, cos(x)))
defjvp(cos_p, lambda g, x: neg(mul(g, sin(x))))
defjvp2(tan_p, lambda g, ans, x: mul(g, add(_const(x, 1), mul(ans, ans))))
defjvp(asin_p, lambda g, x: mul(g, rsqrt(sub(_const(x, 1), mul(x, x)))))
defjvp(acos_p, lambda g, x: neg(mul(g, rsqrt(sub(_const(x, 1), mul(x, x))))))
defjvp(atan_p, lambda g, x: div(g, add(_const(x, 1), mul(x, x))))
defjvp(sinh_p, lambda g, x: mul(g, cosh(x)))
defjvp(cosh_p, lambda g, x: mul(g, sinh(x)))
defjvp(asinh_p, lambda g, x: mul(g, rsqrt(add(mul(x, x), _const(x, 1)))))


def _acosh_jvp(g, x):
    """1 / sqrt(x^2 - 1); for complex x as 1/(sqrt(x - 1) sqrt(x + 1)), which (unlike the
    square root of the product) follows the branch of the principal arccosh everywhere."""
    xm, xp = sub(x, _const(x, 1)), add(x, _const(x, 1))
    if get_aval(x).dtype.kind == "c":
        return mul(g, mul(rsqrt(xm), rsqrt(xp)))
    return mul(g, rsqrt(mul(xm, xp)))


defjvp(acosh_p, _acosh_jvp)
defjvp(atanh_p, lambda g, x: div(g, sub(_const(x, 1), mul(x, x))))
defjvp2(sqrt_p, lambda g, ans, x: div(g, mul(_const(x, 2), ans)))  # sqrt'(0) = inf
defjvp2(rsqrt_p, lambda g, ans, x: mul(g, mul(_const(x, -0.5), div(ans, x))))
defjvp2(cbrt_p, lambda g, ans, x: mul(g, div(_const(x, 1 / 3), mul(ans, ans))))
defjvp(erf_p, lambda g, x: mul(g, mul(_const(x, 2 / math.sqrt(math.pi)), exp(neg(mul(x, x))))))


def _integer_pow_impl(x, *, y):
    if y == 0:
        return np.ones_like(x)
    if y < 0:
        with np.errstate(divide="ignore"):
            return _with_dtype(1 / np.power(x, -y), x.dtype)
    return _with_dtype(np.power(x, y), x.dtype)


def _integer_pow_aval(x, *, y):
    if y < 0 and core.dtype_kind(x.dtype) not in _inexact:
        raise TypeError(f"integer_pow with negative exponent {y} needs a float operand, got "
                        f"{x.dtype.name}")
    _check_kind("integer_pow", x, _num + "c")
    return x


integer_pow_p = primitive("integer_pow", _integer_pow_impl, _integer_pow_aval)
defvectorized(integer_pow_p)
defjvp(integer_pow_p, lambda g, x, *, y: _zeros(g) if y == 0 else
       mul(g, mul(_const(x, y), x if y == 2 else integer_pow(x, y - 1))))


def integer_pow(x, y):
    """x ** y for a static Python integer y."""
    return integer_pow_p.bind(x, y=int(y))


def _zeros(x):
    return _const(x, 0)


# ---------------------------------------------------------------------------------------------
# Elementwise binary

def _nary_aval(name, kinds, out_dtype=None):
    def rule(*avals):
        x = avals[0]
        for a in avals[1:]:
            if a.shape != x.shape:
                raise TypeError(f"{name} requires arguments of equal shapes, got "
                                f"{' and '.join(str(b.shape) for b in avals)}")
            if a.dtype != x.dtype:
                raise TypeError(f"{name} requires arguments of equal dtypes, got "
                                f"{' and '.join(b.dtype.name for b in avals)}")
        if core.dtype_kind(x.dtype) not in kinds:
            _check_kind(name, x, kinds)     # raises
        return x if out_dtype is None else x.update(dtype=out_dtype)
    return rule


def binop(name, impl, kinds=_any, out_dtype=None):
    """An elementwise two-operand primitive on equal shapes and dtypes (broadcasting batching),
    and its wrapper."""
    p = primitive(name, impl, _nary_aval(name, kinds, out_dtype))
    defbroadcasting(p)
    return p, _binary_traceable(p)


# lax binop -> the functrans.numpy function that promotes (named in dtype errors, as JAX does)
_PROMOTING = {"sub": "subtract", "mul": "multiply", "div": "divide", "rem": "remainder",
              "pow": "power", "max": "maximum", "min": "minimum", "atan2": "arctan2",
              "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor", "eq": "equal",
              "ne": "not_equal", "lt": "less", "le": "less_equal", "gt": "greater",
              "ge": "greater_equal", "shift_right_logical": "right_shift"}


def _binary_traceable(p):
    """The wrapper of binop p: operands of one dtype (TypeError otherwise, as JAX's lax), shapes
    broadcast as NumPy does (size-1 and missing leading dims), then p.bind."""
    name = p.name

    def f(x, y):
        ax, ay = getattr(x, "aval", None), getattr(y, "aval", None)
        if ax is None or ay is None or not ax == ay:
            x, y = _lax_operands(name, x, y)
        return core._state.trace.process_primitive(p, (x, y), {})
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Elementwise {name}(x, y) (the lax primitive '{name}'): x and y of one dtype "
                 "(Python scalars take the default dtype of their kind), shapes broadcast.")
    return f


def _operand(name, v):
    """v as an array value; TypeError naming the primitive for a non-numeric ndarray."""
    if isinstance(v, np.ndarray):
        return core.canonical_buffer(v, f"{name}: an operand")
    return core.as_array(v)


def _lax_operands(name, *args):
    """args as arrays broadcast to one shape (NumPy's rules); TypeError naming the dtypes (or
    shapes) if they differ. lax's n-ary wrappers call it (JAX's lax: one dtype, shapes
    broadcast)."""
    args = [_operand(name, v) for v in args]
    avals = [get_aval(v) for v in args]
    if len({a.dtype for a in avals}) > 1:
        tip = (f". (Tip: jnp.{_PROMOTING.get(name, name)} is a similar function that does "
               "automatic type promotion on inputs)" if len(args) == 2 else "")
        raise TypeError(f"lax.{name} requires arguments to have the same dtypes, got "
                        f"{', '.join(a.dtype.name for a in avals)}{tip}{core.where()}.")
    if len({a.shape for a in avals}) == 1:
        return args
    try:
        shape = np.broadcast_shapes(*(a.shape for a in avals))
    except ValueError:
        raise TypeError(f"{name} got incompatible shapes for broadcasting: "
                        f"{', '.join(str(a.shape) for a in avals)}{core.where()}.") from None
    return [v if a.shape == shape else
            broadcast_in_dim(v, shape, range(len(shape) - a.ndim, len(shape)))
            for v, a in zip(args, avals)]


def _div_impl(x, y):
    if x.dtype.kind in "iu":  # lax.div rounds towards zero for integers
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(y == 0, 0, np.floor_divide(x, np.where(y == 0, 1, y)))
            r = np.where(y == 0, 0, x - q * y)
            return _with_dtype(q + ((r != 0) & ((x < 0) != (y < 0))), x.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _with_dtype(np.true_divide(x, y), x.dtype)


def _rem_impl(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        if x.dtype.kind in "iu":
            return _with_dtype(np.where(y == 0, 0, np.fmod(x, np.where(y == 0, 1, y))), x.dtype)
        return np.fmod(x, y)


def _pow_impl(x, y):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.power(x, y)


def _shift_right_logical_impl(x, y):
    u = x.view(np.dtype(f"u{x.dtype.itemsize}"))
    bits = 8 * x.dtype.itemsize
    out = np.where(y.astype(np.int64) >= bits, 0, u >> np.minimum(y, bits - 1).astype(u.dtype))
    return out.astype(u.dtype).view(x.dtype)


def _shift_left_impl(x, y):
    bits = 8 * x.dtype.itemsize
    return np.where(y.astype(np.int64) >= bits, 0, x << np.minimum(y, bits - 1).astype(x.dtype)).astype(x.dtype)


add_p, add = binop("add", np.add, _num + "c")
sub_p, sub = binop("sub", np.subtract, _num + "c")
mul_p, mul = binop("mul", np.multiply, _num + "c" + _bool)
div_p, div = binop("div", _div_impl, _num + "c")
rem_p, rem = binop("rem", _rem_impl, _num)
pow_p, pow = binop("pow", _pow_impl, _float + "c")
max_p, max = binop("max", np.maximum, _num + _bool)
min_p, min = binop("min", np.minimum, _num + _bool)
atan2_p, atan2 = binop("atan2", np.arctan2, _float)
and_p, bitwise_and = binop("and", np.bitwise_and, _int + _bool)
or_p, bitwise_or = binop("or", np.bitwise_or, _int + _bool)
xor_p, bitwise_xor = binop("xor", np.bitwise_xor, _int + _bool)
shift_left_p, shift_left = binop("shift_left", _shift_left_impl, _int)
shift_right_logical_p, shift_right_logical = binop("shift_right_logical", _shift_right_logical_impl, _int)
eq_p, eq = binop("eq", np.equal, _any, np.bool_)
ne_p, ne = binop("ne", np.not_equal, _any, np.bool_)
lt_p, lt = binop("lt", np.less, _num + _bool, np.bool_)
le_p, le = binop("le", np.less_equal, _num + _bool, np.bool_)
gt_p, gt = binop("gt", np.greater, _num + _bool, np.bool_)
ge_p, ge = binop("ge", np.greater_equal, _num + _bool, np.bool_)
complex = _binary_traceable(complex_p)      # (the builtin is type(0j) in this module)
complex.__doc__ = ("x + 1j * y elementwise (the lax primitive 'complex'): x and y real of one "
                   "dtype, the result complex of twice its width.")


def _complex_transpose(ct, x, y):
    return [real(ct) if isinstance(x, UndefPrimal) else None,
            neg(imag(ct)) if isinstance(y, UndefPrimal) else None]


deflinear(complex_p, _complex_transpose)




def _add_jvp(primals, tangents):
    tx, ty = tangents
    return add(*primals), ad.add_tangents(tx, ty)


def _sub_jvp(primals, tangents):
    tx, ty = tangents
    out = sub(*primals)
    if type(ty) is Zero:
        return out, tx
    return out, neg(ty) if type(tx) is Zero else sub(tx, ty)


jvp_rules[add_p] = _add_jvp
transpose_rules[add_p] = lambda ct, x, y: [ct, ct]
jvp_rules[sub_p] = _sub_jvp
transpose_rules[sub_p] = lambda ct, x, y: [ct, neg(ct)]
defbilinear(mul_p, lambda ct, x, y: mul(ct, y), lambda ct, x, y: mul(x, ct))
defjvp(div_p, lambda g, x, y: div(g, y), lambda g, x, y: neg(div(mul(g, x), mul(y, y))))
transpose_rules[div_p] = lambda ct, x, y: [div(ct, y), None]  # linear in the numerator only
defjvp(rem_p, lambda g, x, y: g,
       lambda g, x, y: mul(neg(g), mul(sign(div(x, y)), floor(abs(div(x, y))))))


def _replace_zero(x):
    return select(eq(x, _zeros(x)), _const(x, 1), x)


def _pow_jvp_lhs(g, ans, x, y):
    """y * x ** (y - 1), and 0 where y = 0: x ** 0 is constant, so its derivative is 0 even at
    x = 0, where the formula is 0 * inf (JAX gives NaN there; NumPy users expect the limit).
    x is replaced by 1 there, not the result selected, so no higher derivative meets 0 * inf."""
    safe_x = select(eq(y, _zeros(y)), _const(x, 1), x)
    return mul(g, mul(y, pow(safe_x, sub(y, _const(y, 1)))))


defjvp2(pow_p, _pow_jvp_lhs, lambda g, ans, x, y: mul(g, mul(log(_replace_zero(x)), ans)))


def _balanced_eq(x, z, y):
    """1 where x == z != y, 0.5 where x == z == y, else 0: ties split the derivative."""
    return select(eq(x, z), select(eq(y, z), _const(x, 0.5), _const(x, 1)), _zeros(x))


defjvp2(max_p, lambda g, ans, x, y: mul(g, _balanced_eq(x, ans, y)),
        lambda g, ans, x, y: mul(g, _balanced_eq(y, ans, x)))
defjvp2(min_p, lambda g, ans, x, y: mul(g, _balanced_eq(x, ans, y)),
        lambda g, ans, x, y: mul(g, _balanced_eq(y, ans, x)))
defjvp(atan2_p, lambda g, x, y: mul(g, div(y, add(mul(x, x), mul(y, y)))),
       lambda g, x, y: mul(g, div(neg(x), add(mul(x, x), mul(y, y)))))
for _p in [and_p, or_p, xor_p, shift_left_p, shift_right_logical_p, eq_p, ne_p, lt_p, le_p,
           gt_p, ge_p]:
    defjvp_zero(_p)


# ---------------------------------------------------------------------------------------------
# select_n

def _is_zero_fill(x):
    """True for a broadcast (all strides 0) array of +0 bits: what broadcast_in_dim of a
    literal zero returns."""
    return x.ndim > 0 and not any(x.strides) and not x.reshape(-1)[:1].view(np.uint8).any()


def _bit_select(which, on_false, on_true):
    """select_n(which, on_false, on_true) for 4-byte dtypes as integer bit operations:
    bit-identical (NaN-safe) and branch-free. On 256x512 float32 here: 45 us, against
    np.where's 460 us (it branches on every element of a random mask)."""
    it = np.dtype(np.int32)
    if _is_zero_fill(on_false):         # x where which else 0: mask with all ones where which
        mask, x = np.multiply(which, it.type(-1), dtype=it), on_true
    elif _is_zero_fill(on_true):        # 0 where which else x: all ones where not which
        mask, x = np.subtract(which, it.type(1), dtype=it), on_false
    else:
        mask = np.multiply(which, it.type(-1), dtype=it)
        t = np.ascontiguousarray(on_true).view(it)
        f = np.ascontiguousarray(on_false).view(it)
        out = np.bitwise_xor(t, f)      # f ^ ((t ^ f) & mask)
        np.bitwise_and(out, mask, out=out)
        return np.bitwise_xor(out, f, out=out).view(on_false.dtype)
    x = np.ascontiguousarray(x).view(it)
    return np.bitwise_and(x, mask, out=mask).view(on_false.dtype)


def _select_n_impl(which, *cases):
    if len(cases) == 1:
        return cases[0]
    if len(cases) == 2:
        a, b = cases
        if a.dtype.itemsize == 4 and a.size >= 16384 and which.dtype == np.bool_:
            return _bit_select(np.asarray(which), np.asarray(a), np.asarray(b))
        return np.where(which, b, a)
    return np.choose(which, cases)


def _select_n_aval(which, *cases):
    if not cases:
        raise TypeError("select_n needs at least one case")
    if which.dtype.kind not in "bi" or (which.dtype.kind == "b" and len(cases) > 2):
        raise TypeError(f"select_n predicate must be bool (two cases) or int32, got {which.dtype}")
    _nary_aval("select_n", _any)(*cases)
    if which.shape != cases[0].shape:
        raise TypeError(f"select_n predicate shape {which.shape} must equal the case shape "
                        f"{cases[0].shape}")
    return cases[0]


select_n_p = primitive("select_n", _select_n_impl, _select_n_aval)
defbroadcasting(select_n_p)


def select_n(which, *cases):
    """cases[which] elementwise (which is bool for two cases, else int32)."""
    return select_n_p.bind(which, *cases)


def select(pred, on_true, on_false):
    """on_true where pred else on_false (lax.select)."""
    return select_n_p.bind(pred, on_false, on_true)


def _select_n_jvp(primals, tangents):
    which, *cases = primals
    out = select_n(which, *cases)
    ts = tangents[1:]
    if all(type(t) is Zero for t in ts):
        return out, Zero(get_aval(out))
    return out, select_n(which, *map(instantiate_zeros, ts))


def _select_n_transpose(ct, which, *cases):
    assert not isinstance(which, UndefPrimal)
    zeros = _zeros(ct)
    return [None] + [select_n(which, *[ct if j == i else zeros for j in range(len(cases))])
                     if isinstance(c, UndefPrimal) else None for i, c in enumerate(cases)]


jvp_rules[select_n_p] = _select_n_jvp
transpose_rules[select_n_p] = _select_n_transpose


# ---------------------------------------------------------------------------------------------
# Conversion

def _convert_aval(x, *, new_dtype):
    return x.update(dtype=new_dtype)


def _convert_impl(x, *, new_dtype):
    x = np.asarray(x)
    if x.dtype.kind == "c" and np.dtype(new_dtype).kind != "c":
        x = x.real      # the real part, as JAX (NumPy would warn that it drops the imaginary)
    return x.astype(new_dtype)


convert_element_type_p = primitive("convert_element_type", _convert_impl, _convert_aval)
defvectorized(convert_element_type_p)


def convert_element_type(x, new_dtype):
    """x cast to new_dtype (no-op if it already has it); 64-bit dtypes mean 32-bit ones when
    jax_enable_x64 is off. Complex to real keeps the real part, as JAX."""
    new_dtype = _canon(new_dtype)
    if get_aval(x).dtype == new_dtype:
        return core.to_output(x)
    return convert_element_type_p.bind(x, new_dtype=new_dtype)


def _convert_jvp(primals, tangents, *, new_dtype):
    """Between inexact dtypes the tangent is converted alike (real -> complex embeds it,
    complex -> real keeps its real part); to or from integers and bools it is zero."""
    (x,), (g,) = primals, tangents
    out = convert_element_type_p.bind(x, new_dtype=new_dtype)
    if type(g) is Zero or not core.has_tangent(new_dtype) \
            or not core.has_tangent(get_aval(x).dtype):
        return out, Zero(get_aval(out))
    return out, convert_element_type_p.bind(g, new_dtype=new_dtype)


jvp_rules[convert_element_type_p] = _convert_jvp
transpose_rules[convert_element_type_p] = lambda ct, x, *, new_dtype: [
    convert_element_type(ct, x.aval.dtype)]


def _bitcast_shape(x, new_dtype):
    """The shape of x's bits read as new_dtype (JAX's rule): x's shape for an equal width, an
    extra trailing axis of the width ratio for a narrower dtype, the last axis (which must be
    the ratio) consumed for a wider one."""
    old, new = x.dtype.itemsize, new_dtype.itemsize
    if old == new:
        return x.shape
    if new < old:
        return x.shape + (old // new,)
    if not x.shape or x.shape[-1] * old != new:
        raise TypeError(f"{x.dtype.name}{list(x.shape)} cannot be read "
                        f"as {new_dtype.name}: its last axis must hold {new // old} elements")
    return x.shape[:-1]


def _check_bitcast_dtypes(old, new):
    if old != new and (old.kind in "bc" or new.kind in "bc"):
        raise TypeError(f"{old.name} cannot be bitcast to {new.name} (bool and complex only "
                        "to themselves)")


def _bitcast_aval(x, *, new_dtype):
    _check_bitcast_dtypes(x.dtype, new_dtype)
    return ShapedArray(_bitcast_shape(x, new_dtype), new_dtype)


def _bitcast_impl(x, *, new_dtype):
    x = np.asarray(x)
    _check_bitcast_dtypes(x.dtype, new_dtype)
    shape = _bitcast_shape(x, new_dtype)
    if x.dtype.itemsize == new_dtype.itemsize:
        return x.view(new_dtype)
    return np.ascontiguousarray(x).reshape(-1).view(new_dtype).reshape(shape)


def _bitcast_batch(vals, dims, *, new_dtype):
    """An equal width maps elementwise; otherwise the last axis changes, so the batch axis
    moves to the front."""
    (x,), (d,) = vals, dims
    if get_aval(x).dtype.itemsize != new_dtype.itemsize:
        x, d = moveaxis(x, d, 0), 0
    return bitcast_convert_type_p.bind(x, new_dtype=new_dtype), d


bitcast_convert_type_p = primitive("bitcast_convert_type", _bitcast_impl, _bitcast_aval)
batch_rules[bitcast_convert_type_p] = _bitcast_batch
defjvp_zero(bitcast_convert_type_p)      # as JAX: no derivative through the bits
core.bit_primitives.add(bitcast_convert_type_p)


def bitcast_convert_type(operand, new_dtype):
    """operand's bits read as new_dtype (JAX's lax.bitcast_convert_type), a NumPy ``view``:
    same shape for an equal width, a new trailing axis for a narrower dtype (uint32 -> 4
    uint8), the last axis consumed for a wider one (2 uint16 -> uint32). Its derivative is
    zero, as JAX's."""
    new_dtype = _canon(new_dtype)
    if get_aval(operand).dtype == new_dtype:
        return core.to_output(operand)
    return bitcast_convert_type_p.bind(operand, new_dtype=new_dtype)


# ---------------------------------------------------------------------------------------------
# Creation

def _iota_impl(*, dtype, shape, dimension):
    r = np.arange(shape[dimension], dtype=dtype)
    r = r.reshape([shape[dimension] if i == dimension else 1 for i in range(len(shape))])
    return np.array(np.broadcast_to(r, shape))


iota_p = primitive("iota", _iota_impl, lambda *, dtype, shape, dimension: ShapedArray(shape, dtype))


def iota(dtype, size):
    """[0, 1, ..., size-1] of the given dtype."""
    return iota_p.bind(dtype=_canon(dtype), shape=(int(size),), dimension=0)


def broadcasted_iota(dtype, shape, dimension):
    """An array of the given shape whose values count along ``dimension``."""
    return iota_p.bind(dtype=_canon(dtype), shape=tuple(shape), dimension=int(dimension))


_PY_SCALARS = frozenset((bool, int, float, type(0j)))


def full(shape, fill_value, dtype):
    """An array of the given shape filled with fill_value (a broadcast of a scalar)."""
    dtype = _canon(dtype)
    if type(fill_value) in _PY_SCALARS and shape == () and not core.staging():
        return _scalar_array(fill_value, dtype)
    if type(fill_value) not in _PY_SCALARS and (
            isinstance(fill_value, core.Tracer)
            or (type(fill_value) is core.Array or isinstance(fill_value, np.ndarray))
            and fill_value.ndim):
        fill_value = convert_element_type(fill_value, dtype)
    else:
        fill_value = np.asarray(fill_value, dtype)
        if not core.staging():   # a constant whatever the transforms: skip their dispatch
            shape = tuple(map(int, shape))
            return core.make_array(_broadcast_in_dim_impl(fill_value, shape=shape,
                                                          broadcast_dimensions=())
                                   if shape else fill_value)
    return broadcast_in_dim(fill_value, tuple(shape), ())


_scalar_arrays = {}   # (type, value, dtype) -> 0-d Array: the constants of jvp rules, memoised


def _scalar_array(value, dtype):
    """The Python scalar value as a 0-d Array of dtype (Arrays are immutable: one is shared)."""
    key = (type(value), value, dtype)
    a = _scalar_arrays.get(key)
    if a is None:
        a = core.make_array(np.asarray(value, dtype))
        if value != 0 and value == value:    # 0.0 == -0.0 and nan != nan as keys: never shared
            if len(_scalar_arrays) > 1024:
                _scalar_arrays.clear()
            _scalar_arrays[key] = a
    return a


def full_like(x, fill_value):
    """An array like x filled with fill_value."""
    a = get_aval(x)
    return full(a.shape, fill_value, a.dtype)


def zeros_like(x):
    """Zeros like x."""
    return full_like(x, 0)


# ---------------------------------------------------------------------------------------------
# Reductions

def _reduce_aval(name, kinds=_any, out_dtype=None):
    def rule(x, *, axes):
        _check_kind(name, x, kinds)
        for a in axes:
            if not 0 <= a < x.ndim:
                raise ValueError(f"{name}: axis {a} out of range for shape {x.shape}")
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return ShapedArray(shape, out_dtype or x.dtype)
    return rule


def _np_reducer(f, empty_ok=True):
    def impl(x, *, axes):
        if not empty_ok and any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"zero-size array to reduction operation {f.__name__} which has no "
                             "identity")
        return np.asarray(f.reduce(x, axis=axes)).astype(x.dtype, copy=False)
    return impl


def reducer(name, impl, kinds=_any):
    """A reduction primitive over static ``axes`` (batching shifts the axes)."""
    p = primitive(name, impl, _reduce_aval(name, kinds))
    defreducer(p)
    return p


# ufunc.reduce is what np.sum/np.max run, without their Python wrapper
reduce_sum_p = reducer("reduce_sum", _np_reducer(np.add), _num + "c")
reduce_prod_p = reducer("reduce_prod", _np_reducer(np.multiply), _num + "c")
reduce_max_p = reducer("reduce_max", _np_reducer(np.maximum, False), _num + _bool)
reduce_min_p = reducer("reduce_min", _np_reducer(np.minimum, False), _num + _bool)


def reduce_sum(x, axes):
    """The sum of x over the given axes."""
    return reduce_sum_p.bind(x, axes=tuple(axes))


def reduce_prod(x, axes):
    """The product of x over the given axes."""
    return reduce_prod_p.bind(x, axes=tuple(axes))


def reduce_max(x, axes):
    """The maximum of x over the given axes (NaN propagates)."""
    return reduce_max_p.bind(x, axes=tuple(axes))


def reduce_min(x, axes):
    """The minimum of x over the given axes (NaN propagates)."""
    return reduce_min_p.bind(x, axes=tuple(axes))


def _reduce_sum_transpose(ct, x, *, axes):
    shape = x.aval.shape
    kept = tuple(i for i in range(len(shape)) if i not in axes)
    return [broadcast_in_dim(ct, shape, kept)]


deflinear(reduce_sum_p, _reduce_sum_transpose)


def _reduce_chooser_jvp(g, ans, x, *, axes):
    """max/min: the cotangent is split equally among the tied locations."""
    kept = tuple(i for i in range(get_aval(x).ndim) if i not in axes)
    loc = convert_element_type(eq(x, broadcast_in_dim(ans, get_aval(x).shape, kept)), get_aval(g).dtype)
    return div(reduce_sum(mul(g, loc), axes), reduce_sum(loc, axes))


defjvp2(reduce_max_p, _reduce_chooser_jvp)
defjvp2(reduce_min_p, _reduce_chooser_jvp)


def _reduce_prod_jvp(primals, tangents, *, axes):
    """d prod = sum_j g_j prod_{i != j} x_i, with exclusive prefix/suffix products (no division,
    so zeros are fine)."""
    (x,), (g,) = primals, tangents
    ans = reduce_prod(x, axes)
    a = get_aval(x)
    n = int(np.prod([a.shape[i] for i in axes], dtype=np.int64))
    if n == 0:
        return ans, Zero(get_aval(ans))
    kept = [i for i in range(a.ndim) if i not in axes]
    out_shape = tuple(a.shape[i] for i in kept)

    def flat(v):
        return reshape(transpose(v, tuple(kept) + tuple(axes)), out_shape + (n,))

    xf, gf = flat(x), flat(g)
    last = len(out_shape)
    before = cumprod(_shift_in_ones(xf, last, front=True), last)
    after = cumprod(_shift_in_ones(xf, last, front=False), last, reverse=True)
    return ans, reduce_sum(mul(gf, mul(before, after)), (last,))


def _shift_in_ones(x, axis, front):
    """x shifted by one along axis, with a one shifted in (front) or at the back."""
    from . import slicing
    a = get_aval(x)
    n = a.shape[axis]
    lo = [0] * a.ndim
    hi = list(a.shape)
    if front:
        hi[axis] = n - 1
    else:
        lo[axis] = 1
    cfg = [(0, 0, 0)] * a.ndim
    cfg[axis] = (1, 0, 0) if front else (0, 1, 0)
    return slicing.pad(slicing.slice(x, lo, hi), np.asarray(1, a.dtype), cfg)


jvp_rules[reduce_prod_p] = _reduce_prod_jvp


def _argminmax(name, f):
    def impl(x, *, axes, index_dtype):
        (axis,) = axes
        if x.shape[axis] == 0:
            raise ValueError(f"attempt to get {name} of an empty sequence")
        return np.asarray(f(x, axis=axis)).astype(index_dtype)

    def aval(x, *, axes, index_dtype):
        return _reduce_aval(name)(x, axes=axes).update(dtype=index_dtype)

    p = primitive(name, impl, aval)
    defjvp_zero(p)
    defreducer(p)
    return p


argmax_p = _argminmax("argmax", np.argmax)
argmin_p = _argminmax("argmin", np.argmin)


def argmax(x, axis, index_dtype=np.int64):
    """Index of the first maximum along axis (NaN counts as the maximum, as numpy)."""
    return argmax_p.bind(x, axes=(int(axis),), index_dtype=_canon(index_dtype))


def argmin(x, axis, index_dtype=np.int64):
    """Index of the first minimum along axis."""
    return argmin_p.bind(x, axes=(int(axis),), index_dtype=_canon(index_dtype))


# ---------------------------------------------------------------------------------------------
# Cumulative ops

def _cumulative(name, accumulate):
    def impl(x, *, axis, reverse):
        if reverse:
            x = np.flip(x, axis)
        out = accumulate(x, axis=axis, dtype=x.dtype) if accumulate in (np.cumsum, np.cumprod) \
            else accumulate(x, axis=axis)
        return np.flip(out, axis) if reverse else out

    def aval(x, *, axis, reverse):
        if not 0 <= axis < (x.ndim or 1):  # (max is lax.max in this module)
            raise ValueError(f"{name}: axis {axis} out of range for shape {x.shape}")
        return x

    p = primitive(name, impl, aval)

    def batch(vals, dims, *, axis, reverse):
        (x,), (d,) = vals, dims
        return p.bind(x, axis=axis + (axis >= d), reverse=reverse), d

    batch_rules[p] = batch
    return p


cumsum_p = _cumulative("cumsum", np.cumsum)
cumprod_p = _cumulative("cumprod", np.cumprod)
cummax_p = _cumulative("cummax", np.maximum.accumulate)
cummin_p = _cumulative("cummin", np.minimum.accumulate)


def _cumulative_wrapper(p, what):
    def f(x, axis=0, reverse=False):
        return p.bind(x, axis=int(axis), reverse=bool(reverse))
    f.__name__ = f.__qualname__ = p.name
    f.__doc__ = f"The running {what} of x along axis (from the end if reverse)."
    return f


cumsum = _cumulative_wrapper(cumsum_p, "sum")
cumprod = _cumulative_wrapper(cumprod_p, "product")
cummax = _cumulative_wrapper(cummax_p, "maximum")
cummin = _cumulative_wrapper(cummin_p, "minimum")


deflinear(cumsum_p, lambda ct, x, *, axis, reverse: [cumsum(ct, axis, not reverse)])


def _prefix_scan(op, x, axis, reverse):
    """Inclusive prefix scan of x with the commutative op by lax.associative_scan (the odd/even
    recursion of JAX's). Used only for differentiation: its jvp is the jvp of
    cumprod/cummax/cummin, so the derivative, NaN from 0 * inf included, is JAX's."""
    from .control_flow import associative_scan
    return associative_scan(op, x, reverse=reverse, axis=axis)


def _interleave(even, odd, axis):
    """even[0], odd[0], even[1], ... along axis (even has as many entries as odd, or one more),
    as the sum of the two padded with zeros between their entries."""
    from . import slicing
    a = get_aval(even)
    n_even, n_odd = a.shape[axis], get_aval(odd).shape[axis]
    zero = np.zeros((), a.dtype)

    def spread(v, lo, hi):
        cfg = [(0, 0, 0)] * a.ndim
        cfg[axis] = (lo, hi, 1)
        return slicing.pad(v, zero, cfg)
    combine = bitwise_or if a.dtype == np.bool_ else add
    return combine(spread(even, 0, n_odd - n_even + 1), spread(odd, 1, n_even - n_odd))


def _cumulative_jvp(op):
    def jvp(primals, tangents, *, axis, reverse):
        return ad.jvp_flat(lambda x: [_prefix_scan(op, x, axis, reverse)], primals, tangents)
    return jvp


def _cumulative_jvp_rule(op, p):
    def rule(primals, tangents, *, axis, reverse):
        out = p.bind(*primals, axis=axis, reverse=reverse)
        _, (t,) = _cumulative_jvp(op)(primals, tangents, axis=axis, reverse=reverse)
        return out, t
    jvp_rules[p] = rule


_cumulative_jvp_rule(mul, cumprod_p)
_cumulative_jvp_rule(max, cummax_p)
_cumulative_jvp_rule(min, cummin_p)


# ---------------------------------------------------------------------------------------------
# Shape ops

def _broadcast_in_dim_impl(x, *, shape, broadcast_dimensions):
    # a read-only view (arrays are immutable; impls copy before writing): filling a buffer
    # would cost a write pass, and for big ones the page faults of a fresh allocation
    x = np.asarray(x)
    strides = [0] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        if x.shape[i] != 1:
            strides[d] = x.strides[i]
    if x.flags.c_contiguous:   # np.broadcast_to's result, built directly (3x cheaper)
        out = np.ndarray(shape, x.dtype, buffer=x, strides=strides)
        out.flags.writeable = False
        return out
    expanded = [1] * len(shape)
    for i, d in enumerate(broadcast_dimensions):
        expanded[d] = x.shape[i]
    return np.broadcast_to(x.reshape(expanded), shape)


def _broadcast_in_dim_aval(x, *, shape, broadcast_dimensions):
    bd = broadcast_dimensions
    if len(bd) != x.ndim or any(not 0 <= d < len(shape) for d in bd) or \
            any(a >= b for a, b in zip(bd[:-1], bd[1:])):
        raise TypeError(f"broadcast_in_dim: broadcast_dimensions {bd} do not map operand shape "
                        f"{x.shape} into {shape}")
    for i, d in enumerate(bd):
        if x.shape[i] not in (1, shape[d]):
            raise TypeError(f"broadcast_in_dim: operand shape {x.shape} is incompatible with "
                            f"target shape {shape} (dimension {i} -> {d})")
    return ShapedArray(shape, x.dtype)


broadcast_in_dim_p = primitive("broadcast_in_dim", _broadcast_in_dim_impl, _broadcast_in_dim_aval)


def broadcast_in_dim(x, shape, broadcast_dimensions):
    """x placed in an array of ``shape``: operand dim i goes to dimension broadcast_dimensions[i]."""
    shape, bd = tuple(map(int, shape)), tuple(map(int, broadcast_dimensions))
    if get_aval(x).shape == shape and bd == tuple(range(len(shape))):
        return core.to_output(x)
    return broadcast_in_dim_p.bind(x, shape=shape, broadcast_dimensions=bd)


def _broadcast_in_dim_transpose(ct, x, *, shape, broadcast_dimensions):
    in_shape = x.aval.shape
    bd = broadcast_dimensions
    new_dims = tuple(i for i in range(len(shape)) if i not in bd)
    expanded = tuple(d for i, d in enumerate(bd) if in_shape[i] == 1 and shape[d] != 1)
    summed = reduce_sum(ct, new_dims + expanded) if new_dims + expanded else ct
    return [reshape(summed, in_shape)]


def _broadcast_in_dim_batch(vals, dims, *, shape, broadcast_dimensions):
    (x,), (d,) = vals, dims
    x = moveaxis(x, d, 0)
    size = get_aval(x).shape[0]
    return broadcast_in_dim(x, (size,) + shape, (0,) + tuple(b + 1 for b in broadcast_dimensions)), 0


deflinear(broadcast_in_dim_p, _broadcast_in_dim_transpose)
batch_rules[broadcast_in_dim_p] = _broadcast_in_dim_batch


def _reshape_aval(x, *, new_sizes):
    if int(np.prod(new_sizes, dtype=np.int64)) != x.size:
        raise TypeError(f"reshape: cannot reshape array of shape {x.shape} (size {x.size}) into "
                        f"shape {new_sizes}")
    return ShapedArray(new_sizes, x.dtype)


reshape_p = primitive("reshape", lambda x, *, new_sizes: np.asarray(x).reshape(new_sizes),
                      _reshape_aval)


def reshape(x, new_sizes):
    """x with a new shape of the same size (row-major order)."""
    new_sizes = tuple(map(int, new_sizes))
    if get_aval(x).shape == new_sizes:
        return core.to_output(x)
    return reshape_p.bind(x, new_sizes=new_sizes)


def _reshape_batch(vals, dims, *, new_sizes):
    (x,), (d,) = vals, dims
    x = moveaxis(x, d, 0)
    return reshape(x, (get_aval(x).shape[0],) + new_sizes), 0


deflinear(reshape_p, lambda ct, x, *, new_sizes: [reshape(ct, x.aval.shape)])
batch_rules[reshape_p] = _reshape_batch


def _transpose_aval(x, *, permutation):
    if sorted(permutation) != list(range(x.ndim)):
        raise TypeError(f"transpose permutation {permutation} is not a permutation of the "
                        f"{x.ndim} axes of shape {x.shape}")
    return ShapedArray(tuple(x.shape[p] for p in permutation), x.dtype)


transpose_p = primitive("transpose", lambda x, *, permutation: np.asarray(x).transpose(permutation),
                        _transpose_aval)


def transpose(x, permutation):
    """x with its axes permuted."""
    permutation = tuple(map(int, permutation))
    if permutation == tuple(range(len(permutation))):
        return core.to_output(x)
    return transpose_p.bind(x, permutation=permutation)


def _transpose_batch(vals, dims, *, permutation):
    (x,), (d,) = vals, dims
    perm = (d,) + tuple(p + (p >= d) for p in permutation)
    return transpose(x, perm), 0


deflinear(transpose_p, lambda ct, x, *, permutation: [transpose(ct, tuple(np.argsort(permutation)))])
batch_rules[transpose_p] = _transpose_batch

# the traceable ops the interpreters' helpers emit (they never import lax: see interpreters/ops.py)
interpreter_ops.register(add=add, broadcast_in_dim=broadcast_in_dim, full=full, transpose=transpose)


def _squeeze_aval(x, *, dimensions):
    for d in dimensions:
        if not 0 <= d < x.ndim or x.shape[d] != 1:
            raise ValueError(f"squeeze: cannot select axis {d} of shape {x.shape}: its size is "
                             "not one")
    return ShapedArray(tuple(s for i, s in enumerate(x.shape) if i not in dimensions), x.dtype)


squeeze_p = primitive("squeeze", lambda x, *, dimensions: np.asarray(x).squeeze(dimensions),
                      _squeeze_aval)


def squeeze(x, dimensions):
    """x with the given size-1 dimensions removed."""
    dimensions = tuple(sorted(int(d) for d in dimensions))
    return squeeze_p.bind(x, dimensions=dimensions) if dimensions else core.to_output(x)


def expand_dims(x, dimensions):
    """x with size-1 dimensions inserted at the given output positions."""
    a = get_aval(x)
    nd = a.ndim + len(dimensions)
    dims = sorted(d % nd for d in dimensions)
    shape = list(a.shape)
    for d in dims:
        shape.insert(d, 1)
    return reshape(x, shape)


deflinear(squeeze_p, lambda ct, x, *, dimensions: [reshape(ct, x.aval.shape)])
defreducer(squeeze_p, "dimensions")


rev_p = primitive("rev", lambda x, *, dimensions: np.flip(x, dimensions) if dimensions else x,
                  lambda x, *, dimensions: x)


def rev(x, dimensions):
    """x reversed along the given dimensions."""
    return rev_p.bind(x, dimensions=tuple(map(int, dimensions)))


deflinear(rev_p, lambda ct, x, *, dimensions: [rev(ct, dimensions)])


def _rev_batch(vals, dims, *, dimensions):
    (x,), (d,) = vals, dims
    return rev(x, tuple(a + (a >= d) for a in dimensions)), d


batch_rules[rev_p] = _rev_batch


# ---------------------------------------------------------------------------------------------
# dot_general

def _dot_dims(dimension_numbers):
    (lc, rc), (lb, rb) = dimension_numbers
    return tuple(lc), tuple(rc), tuple(lb), tuple(rb)


def _free(ndim, *used):
    used = set().union(*used)
    return [i for i in range(ndim) if i not in used]


class Precision(enum.Enum):
    """Matmul precision, as JAX's ``lax.Precision``. On a GPU a float32 dot_general runs on TF32
    tensor cores for DEFAULT and HIGH, and in full float32 for HIGHEST; the CPU backends always
    compute in full precision. ``Precision("highest")`` also parses JAX's strings."""
    DEFAULT = 0
    HIGH = 1
    HIGHEST = 2

    @classmethod
    def _missing_(cls, value):
        if isinstance(value, str):
            name = _PRECISION_NAMES.get(value.lower())
            if name is not None:
                return cls[name]
        return None

    def __repr__(self):
        return f"Precision.{self.name}"

    __str__ = __repr__


# JAX's precision strings (and the names of its jax_default_matmul_precision values)
_PRECISION_NAMES = {"default": "DEFAULT", "fastest": "DEFAULT", "bfloat16": "DEFAULT",
                    "high": "HIGH", "tensorfloat32": "HIGH", "bfloat16_3x": "HIGH",
                    "highest": "HIGHEST", "float32": "HIGHEST"}


def canonicalize_precision(precision):
    """None, or a pair (lhs, rhs) of Precision from None, one Precision or string, or a pair."""
    if precision is None:
        return None
    if isinstance(precision, (tuple, list)):
        if len(precision) != 2:
            raise ValueError(f"precision must be None, one Precision or a pair, got {precision!r}")
        if precision[0] is None and precision[1] is None:
            return None
        return tuple(Precision.DEFAULT if q is None else _one_precision(q) for q in precision)
    p = _one_precision(precision)
    return (p, p)


def _one_precision(q):
    try:
        return Precision(q)
    except ValueError:
        raise ValueError(f"unknown precision {q!r}: expected lax.Precision.DEFAULT/HIGH/HIGHEST "
                         "or 'default'/'high'/'highest'") from None


def _check_default_precision(value):
    """config's default_matmul_precision: None or one of JAX's names (ValueError otherwise)."""
    if value is not None and (not isinstance(value, str) or value.lower() not in _PRECISION_NAMES):
        raise ValueError(f"jax_default_matmul_precision must be None or one of "
                         f"{sorted(_PRECISION_NAMES)}, got {value!r}")
    return value if value is None else value.lower()


core._config_checks["default_matmul_precision"] = _check_default_precision
core.config.default_matmul_precision = core.config.default_matmul_precision   # check the env's


def _precision_params(precision):
    """dot_general's precision param: present only when set, so programs that never ask for
    a precision keep the equations (and printed jaxprs) they always had."""
    return {} if precision is None else {"precision": precision}


def _dot_general_aval(x, y, *, dimension_numbers, preferred_element_type, precision=None):
    return _dot_general_aval_memo(x, y, dimension_numbers, preferred_element_type)


@functools.lru_cache(maxsize=4096)
def _dot_general_aval_memo(x, y, dimension_numbers, preferred_element_type):
    lc, rc, lb, rb = _dot_dims(dimension_numbers)
    if x.dtype != y.dtype:
        raise TypeError(f"dot_general requires operands of equal dtypes, got {x.dtype.name} and "
                        f"{y.dtype.name}")
    if len(lc) != len(rc) or len(lb) != len(rb):
        raise TypeError(f"dot_general: bad dimension numbers {dimension_numbers}")
    for a, b, kind in [(lc, rc, "contracting"), (lb, rb, "batch")]:
        for i, j in zip(a, b):
            if not (0 <= i < x.ndim and 0 <= j < y.ndim) or x.shape[i] != y.shape[j]:
                raise TypeError(f"dot_general: {kind} dimensions do not match for shapes "
                                f"{x.shape} and {y.shape} (dimension numbers {dimension_numbers})")
    shape = tuple(x.shape[i] for i in lb) + tuple(x.shape[i] for i in _free(x.ndim, lc, lb)) + \
        tuple(y.shape[i] for i in _free(y.ndim, rc, rb))
    return ShapedArray(shape, preferred_element_type or x.dtype)


def _dot_general_impl(x, y, *, dimension_numbers, preferred_element_type, precision=None):
    lc, rc, lb, rb = _dot_dims(dimension_numbers)
    dtype = preferred_element_type or x.dtype
    if not lb and len(lc) == 1 and x.ndim <= 2 and y.ndim <= 2:
        # the common matrix cases: transposed views go to BLAS as flags, never copied
        xm = x.T if (x.ndim == 2 and lc[0] == 0) else x
        ym = y.T if (y.ndim == 2 and rc[0] == 1) else y
        return np.asarray(np.dot(xm, ym)).astype(dtype, copy=False)
    lf, rf = _free(x.ndim, lc, lb), _free(y.ndim, rc, rb)
    xs, ys = x.shape, y.shape
    b = int(np.prod([xs[i] for i in lb], dtype=np.int64))
    m = int(np.prod([xs[i] for i in lf], dtype=np.int64))
    k = int(np.prod([xs[i] for i in lc], dtype=np.int64))
    n = int(np.prod([ys[i] for i in rf], dtype=np.int64))
    x3 = np.transpose(x, list(lb) + lf + list(lc)).reshape(b, m, k)
    y3 = np.transpose(y, list(rb) + list(rc) + rf).reshape(b, k, n)
    out = np.matmul(x3, y3)
    shape = tuple(xs[i] for i in lb) + tuple(xs[i] for i in lf) + tuple(ys[i] for i in rf)
    return out.reshape(shape).astype(dtype, copy=False)


dot_general_p = primitive("dot_general", _dot_general_impl, _dot_general_aval)


def dot_general(x, y, dimension_numbers, precision=None, preferred_element_type=None):
    """Generalised tensor contraction: dimension_numbers = ((lhs_contract, rhs_contract),
    (lhs_batch, rhs_batch)); output dims are batch, lhs free, rhs free. ``precision`` (None,
    a ``Precision``, its string, or a pair) and ``preferred_element_type`` follow JAX; the
    precision selects TF32 tensor cores (DEFAULT/HIGH) or full float32 (HIGHEST) on a GPU."""
    (lc, rc), (lb, rb) = dimension_numbers
    dn = ((tuple(map(int, lc)), tuple(map(int, rc))),
          (tuple(map(int, lb)), tuple(map(int, rb))))
    pet = None if preferred_element_type is None else _canon(preferred_element_type)
    return dot_general_p.bind(x, y, dimension_numbers=dn, preferred_element_type=pet,
                              **_precision_params(canonicalize_precision(precision)))


def _ranges_like(*xs):
    start = 0
    for x in xs:
        yield list(range(start, start + len(x)))
        start += len(x)


def _dot_transpose_lhs(ct, x, y, *, dimension_numbers, preferred_element_type, precision=None,
                       swap_ans=False):
    dims, out_axes, swap = _dot_transpose_dims(dimension_numbers, x.aval.ndim,
                                               get_aval(y).ndim, swap_ans)
    if get_aval(ct).dtype != get_aval(y).dtype:    # ct of a wider preferred_element_type
        dt = np.result_type(get_aval(ct).dtype, get_aval(y).dtype)
        ct, y = convert_element_type(ct, dt), convert_element_type(y, dt)
    a, b = (y, ct) if swap else (ct, y)
    if swap and precision is not None:
        precision = precision[::-1]
    r = dot_general_p.bind(a, b, dimension_numbers=dims,
                           preferred_element_type=preferred_element_type,
                           **_precision_params(precision))
    return convert_element_type(transpose(r, out_axes), x.aval.dtype)


@functools.lru_cache(maxsize=1024)
def _dot_transpose_dims(dimension_numbers, x_nd, y_nd, swap_ans):
    """(dimension numbers, permutation back to x's layout, swap) for the lhs transpose: the
    cotangent of x is ct . y, or y . ct (swap) when that order lands in x's layout at once --
    as the weight gradient of ``h @ w`` does -- so no transpose follows the product."""
    lc, rc, lb, rb = _dot_dims(dimension_numbers)
    x_kept, y_kept = _free(x_nd, lc, lb), _free(y_nd, rc, rb)
    if swap_ans:
        ans_batch, ans_y, _ = _ranges_like(lb, y_kept, x_kept)
    else:
        ans_batch, _, ans_y = _ranges_like(lb, x_kept, y_kept)
    x_contract_sorted_by_y = [lc[i] for i in np.argsort(rc)]
    out_axes = tuple(map(int, np.argsort(list(lb) + x_kept + x_contract_sorted_by_y)))
    swapped_axes = tuple(map(int, np.argsort(list(lb) + x_contract_sorted_by_y + x_kept)))
    if out_axes != tuple(range(x_nd)) and swapped_axes == tuple(range(x_nd)):
        return ((tuple(y_kept), tuple(ans_y)), (tuple(rb), tuple(ans_batch))), swapped_axes, True
    return ((tuple(ans_y), tuple(y_kept)), (tuple(ans_batch), tuple(rb))), out_axes, False


def _dot_transpose_rhs(ct, x, y, *, dimension_numbers, preferred_element_type, precision=None):
    lc, rc, lb, rb = _dot_dims(dimension_numbers)
    swapped = precision if precision is None else precision[::-1]
    return _dot_transpose_lhs(ct, y, x, dimension_numbers=((rc, lc), (rb, lb)),
                              preferred_element_type=preferred_element_type,
                              precision=swapped, swap_ans=True)


defbilinear(dot_general_p, _dot_transpose_lhs, _dot_transpose_rhs)


def _dot_general_batch(vals, dims, *, dimension_numbers, preferred_element_type, precision=None):
    (x, y), (dx, dy) = vals, dims
    lc, rc, lb, rb = _dot_dims(dimension_numbers)
    params = dict(preferred_element_type=preferred_element_type, **_precision_params(precision))
    if dx is not not_mapped and dy is not not_mapped:
        x, y = moveaxis(x, dx, 0), moveaxis(y, dy, 0)
        sh = lambda t: tuple(i + 1 for i in t)  # noqa: E731
        dn = ((sh(lc), sh(rc)), ((0,) + sh(lb), (0,) + sh(rb)))
        return dot_general_p.bind(x, y, dimension_numbers=dn, **params), 0
    if dx is not not_mapped:
        sh = lambda t: tuple(i + (i >= dx) for i in t)  # noqa: E731
        lc2, lb2 = sh(lc), sh(lb)
        nd = get_aval(x).ndim
        out_d = len(lb) + _free(nd, lc2, lb2).index(dx)
        return dot_general_p.bind(x, y, dimension_numbers=((lc2, rc), (lb2, rb)), **params), out_d
    sh = lambda t: tuple(i + (i >= dy) for i in t)  # noqa: E731
    rc2, rb2 = sh(rc), sh(rb)
    nd = get_aval(y).ndim
    out_d = len(lb) + len(_free(get_aval(x).ndim, lc, lb)) + _free(nd, rc2, rb2).index(dy)
    return dot_general_p.bind(x, y, dimension_numbers=((lc, rc2), (lb, rb2)), **params), out_d


batch_rules[dot_general_p] = _dot_general_batch


# The primitives above whose every rule handles complex operands today (core.complex_primitives:
# any other raises TypeError naming itself on a complex operand).
core.complex_primitives.update([
    add_p, sub_p, mul_p, div_p, neg_p, eq_p, ne_p, select_n_p, reduce_sum_p, reduce_prod_p,
    dot_general_p, broadcast_in_dim_p, reshape_p, transpose_p, squeeze_p, rev_p, stop_gradient_p,
    sign_p, abs_p, exp_p, exp2_p, log_p, log1p_p, expm1_p, tanh_p, logistic_p, sin_p, cos_p,
    tan_p, asin_p, acos_p, atan_p, sinh_p, cosh_p, asinh_p, acosh_p, atanh_p, sqrt_p, rsqrt_p,
    integer_pow_p, pow_p, real_p, imag_p, conj_p, complex_p, convert_element_type_p, cumsum_p,
    cumprod_p])
