"""Random programs for the fuzz suite (tests/test_fuzz.py; docs/testing.md).

A program is a list of steps over a growing list of values: its inputs, then one value per
step. Each step applies one row of the op table ``OPS`` to earlier values. A row is written
ONCE, against a namespace ``ns``: ``ns.np`` is ``functrans.numpy`` or ``numpy``, and the few
operations NumPy lacks (lax-only primitives, control flow, custom derivatives, checkpoint) are
methods with two implementations, ``FT`` (functrans) and ``NP`` (the NumPy reference). So the
NumPy reference of a program is the same program run with ``NP``.

Programs are generated while being evaluated with ``NP`` on concrete inputs, one evaluation
per member of a small batch (the vmap check maps over it; member 0 is the input of every other
check). A step is kept only when every member satisfies the row's *domain* (no log of
negatives, no ties or kinks within ``MARGIN`` of a jump, so that finite differences and
float32 rounding cannot land across one) and its results stay small and finite; otherwise it
is dropped. Each row also says which derivative modes are defined for it (``diff``).
"""
from __future__ import annotations

import operator
import string
import warnings

import numpy as np
import scipy.linalg
import scipy.special
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import lax

MARGIN = 0.05      # distance kept from kinks, jumps and ties
BOUND = 1e3        # largest float magnitude a kept step may produce
INT_BOUND = 2 ** 20
BATCH = 3          # members of the vmapped batch
MAX_SIZE = 64      # elements of a kept value
MAX_NDIM = 3
MODES = frozenset({"fwd", "rev"})


# ---------------------------------------------------------------------------------------------
# The two namespaces. Methods take and return arrays of their own kind.

class FT:
    """functrans: functrans.numpy plus lax, control flow and custom derivatives."""
    np = jnp
    scipy_linalg = ft.scipy.linalg
    name = "functrans"
    asarray = staticmethod(jnp.asarray)
    cond = staticmethod(lax.cond)
    switch = staticmethod(lax.switch)
    fori_loop = staticmethod(lax.fori_loop)
    while_loop = staticmethod(lax.while_loop)

    @staticmethod
    def scan(body, init, xs, reverse):
        return lax.scan(body, init, xs, reverse=reverse)

    checkpoint = staticmethod(ft.checkpoint)
    jit = staticmethod(ft.jit)
    sigmoid = staticmethod(ft.nn.sigmoid)
    erf = staticmethod(lax.erf)
    erfc = staticmethod(lax.erfc)
    lgamma = staticmethod(lax.lgamma)
    digamma = staticmethod(lax.digamma)
    erf_inv = staticmethod(lax.erf_inv)
    ndtri = staticmethod(lax.ndtri)

    @staticmethod
    def trigamma(x):
        return lax.polygamma(1, x)

    rsqrt = staticmethod(lax.rsqrt)
    stop_gradient = staticmethod(lax.stop_gradient)

    @staticmethod
    def cumulative(name, x, axis, reverse):
        return getattr(lax, name)(x, axis, reverse)

    @staticmethod
    def lax_pad(x, value, config):
        return lax.pad(x, value, config)

    @staticmethod
    def _same(x, y):
        """x and y broadcast to one shape and promoted to one dtype (lax is strict)."""
        x, y = jnp.broadcast_arrays(x, y)
        dt = jnp.result_type(x, y)
        return x.astype(dt), y.astype(dt)

    @classmethod
    def rem(cls, x, y):
        return lax.rem(*cls._same(x, y))

    @staticmethod
    def shift(name, x, s):
        return getattr(lax, name)(x, jnp.full_like(x, s))

    @staticmethod
    def bitcast(x, dtype):
        return lax.bitcast_convert_type(x, dtype)

    @staticmethod
    def to_bfloat16_grid(x):
        return lax.reduce_precision(x.astype(np.float32), 8, 7)

    @staticmethod
    def solve_diagonal(b, d):
        """b / d through custom_linear_solve (matvec: times d; solve: divide by d)."""
        return lax.custom_linear_solve(lambda v: v * d, b, lambda mv, r: r / d, symmetric=True)

    @staticmethod
    def select_n(which, *cases):
        return lax.select_n(which, *cases)

    @staticmethod
    def sort_by(keys, values, axis):
        return lax.sort(keys, values, dimension=axis, num_keys=1)[1]

    @staticmethod
    def argsort(x, axis):
        return jnp.argsort(x, axis)

    @staticmethod
    def dynamic_slice(x, starts, sizes):
        return lax.dynamic_slice(x, starts, sizes)

    @staticmethod
    def dynamic_update_slice(x, update, starts):
        return lax.dynamic_update_slice(x, update.astype(x.dtype), starts)

    @staticmethod
    def at(how, x, idx, y):
        return getattr(x.at[idx], how)(y)

    @staticmethod
    def softplus(x):
        return _softplus(x)

    @staticmethod
    def xtanh(x):
        return _xtanh(x)

    @staticmethod
    def reduce_window(how, x, window, strides, padding):
        if how == "prod":      # no monoid primitive: the general reduce_window
            return lax.reduce_window(x, x.dtype.type(1), lax.mul, window, strides, padding)
        return getattr(lax, f"reduce_window_{how}")(x, window, strides, padding)

    @staticmethod
    def reduce_max_from(x, axes, init):
        """max over axes starting from init (not max's identity: the general reduce)."""
        return lax.reduce(x, x.dtype.type(init), lax.max, axes)

    @staticmethod
    def checkpoint_name(x):
        return ft.checkpoint(lambda v: ft.ad_checkpoint.checkpoint_name(jnp.sin(v), "s") * v,
                             policy=ft.checkpoint_policies.save_only_these_names("s"))(x)

    @staticmethod
    def linear_solve(a, b):
        """a^-1 b by lax.custom_linear_solve (a symmetric: its own transpose solve)."""
        return lax.custom_linear_solve(lambda v: a @ v, b, lambda mv, r: jnp.linalg.solve(a, r),
                                       symmetric=True)

    @staticmethod
    def host_sin(x):
        return ft.pure_callback(np.sin, ft.ShapeDtypeStruct(x.shape, x.dtype), x,
                                vmap_method="sequential")

    @staticmethod
    def debug_identity(x):
        ft.debug.callback(lambda v: None, x)
        return x

    @staticmethod
    def incomplete(name, *args):
        return getattr(lax, name)(*args)

    @classmethod
    def complex_parts(cls, x, y):
        x, y = cls._same(x, y)
        z = lax.complex(x, y)
        return lax.real(z * z) + lax.imag(lax.conj(z) * x)

    @staticmethod
    def conv1d(x, w):
        return lax.conv_general_dilated(x[None, None], w[None, None], (1,), "VALID")[0, 0]


class NP:
    """The NumPy reference of every FT method."""
    np = np
    scipy_linalg = scipy.linalg
    name = "numpy"
    asarray = staticmethod(np.asarray)

    @staticmethod
    def cond(pred, true_fun, false_fun, *ops):
        return true_fun(*ops) if pred else false_fun(*ops)

    @staticmethod
    def switch(index, funs, *ops):
        return funs[int(np.clip(index, 0, len(funs) - 1))](*ops)

    @staticmethod
    def scan(body, init, xs, reverse):
        carry, ys = init, [None] * len(xs)
        for i in (reversed(range(len(xs))) if reverse else range(len(xs))):
            carry, ys[i] = body(carry, xs[i])
        return carry, np.stack(ys)

    @staticmethod
    def fori_loop(lo, hi, body, init):
        for i in range(lo, hi):
            init = body(i, init)
        return init

    @staticmethod
    def while_loop(cond_fun, body_fun, init):
        while cond_fun(init):
            init = body_fun(init)
        return init

    @staticmethod
    def checkpoint(f):
        return f

    jit = checkpoint

    @staticmethod
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    erf = staticmethod(scipy.special.erf)
    erfc = staticmethod(scipy.special.erfc)
    lgamma = staticmethod(scipy.special.gammaln)
    digamma = staticmethod(scipy.special.digamma)
    erf_inv = staticmethod(scipy.special.erfinv)
    ndtri = staticmethod(scipy.special.ndtri)

    @staticmethod
    def trigamma(x):
        return np.asarray(scipy.special.polygamma(1, x), np.asarray(x).dtype)  # keeps float32

    @staticmethod
    def rsqrt(x):
        return 1 / np.sqrt(x)

    @staticmethod
    def stop_gradient(x):
        return x

    @staticmethod
    def cumulative(name, x, axis, reverse):
        ufunc = {"cumsum": np.add, "cumprod": np.multiply, "cummax": np.maximum,
                 "cummin": np.minimum}[name]
        x = np.flip(x, axis) if reverse else x
        out = ufunc.accumulate(x, axis=axis, dtype=x.dtype)
        return np.flip(out, axis) if reverse else out

    @staticmethod
    def lax_pad(x, value, config):
        for ax, (lo, hi, interior) in enumerate(config):
            n = x.shape[ax]
            if interior and n > 1:
                shape = list(x.shape)
                shape[ax] = n + (n - 1) * interior
                dilated = np.full(shape, value, x.dtype)
                index = [slice(None)] * x.ndim
                index[ax] = slice(None, None, interior + 1)
                dilated[tuple(index)] = x
                x = dilated
            widths = [(0, 0)] * x.ndim
            widths[ax] = (max(lo, 0), max(hi, 0))
            x = np.pad(x, widths, constant_values=value)
            index = [slice(None)] * x.ndim
            index[ax] = slice(max(-lo, 0), x.shape[ax] - max(-hi, 0))
            x = x[tuple(index)]
        return x

    @staticmethod
    def rem(x, y):
        return np.fmod(x, y)

    @staticmethod
    def to_bfloat16_grid(x):
        return np.asarray(x, np.float32).astype(ft.numpy.bfloat16).astype(np.float32)

    @staticmethod
    def solve_diagonal(b, d):
        return b / d

    @staticmethod
    def bitcast(x, dtype):
        """JAX's shape rule on NumPy's view: a narrower dtype adds a trailing axis, a wider one
        consumes it."""
        x, dtype = np.array(x, order="C"), np.dtype(dtype)     # (ascontiguousarray makes 0-d 1-d)
        if dtype.itemsize < x.dtype.itemsize:
            return x[..., None].view(dtype)
        return x.view(dtype)[..., 0] if dtype.itemsize > x.dtype.itemsize else x.view(dtype)

    @staticmethod
    def shift(name, x, s):
        if name == "shift_left":
            return np.left_shift(x, s).astype(x.dtype)
        unsigned = np.dtype(f"uint{8 * x.dtype.itemsize}")
        return (x.astype(unsigned) >> unsigned.type(s)).astype(x.dtype)

    @staticmethod
    def select_n(which, *cases):
        return np.choose(which, cases)

    @staticmethod
    def sort_by(keys, values, axis):
        return np.take_along_axis(values, np.argsort(keys, axis, kind="stable"), axis)

    @staticmethod
    def argsort(x, axis):
        return np.argsort(x, axis, kind="stable")

    @staticmethod
    def dynamic_slice(x, starts, sizes):
        starts = [min(max(s, 0), n - k) for s, n, k in zip(starts, x.shape, sizes)]
        return x[tuple(slice(s, s + k) for s, k in zip(starts, sizes))]

    @classmethod
    def dynamic_update_slice(cls, x, update, starts):
        out = x.copy()
        starts = [min(max(s, 0), n - k) for s, n, k in zip(starts, x.shape, update.shape)]
        out[tuple(slice(s, s + k) for s, k in zip(starts, update.shape))] = update
        return out

    @staticmethod
    def at(how, x, idx, y):
        out = np.array(x, copy=True)
        if how == "set":
            out[idx] = y
        else:
            {"add": np.add, "mul": np.multiply, "min": np.minimum, "max": np.maximum}[how].at(
                out, idx, y)
        return out

    @staticmethod
    def softplus(x):
        return np.logaddexp(x, 0)

    @staticmethod
    def xtanh(x):
        return x * np.tanh(x)

    @staticmethod
    def reduce_window(how, x, window, strides, padding):
        ufunc = {"sum": np.add, "max": np.maximum, "min": np.minimum, "prod": np.multiply}[how]
        fill = {"sum": 0, "prod": 1, "max": -np.inf, "min": np.inf}[how]
        if x.dtype.kind != "f" and how in ("max", "min"):
            fill = (np.iinfo(x.dtype).min if how == "max" else np.iinfo(x.dtype).max)
        x = np.pad(x, padding, constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(x, window)
        win = win[tuple(slice(None, None, k) for k in strides)]
        axes = tuple(range(x.ndim, 2 * x.ndim))
        return ufunc.reduce(win, axis=axes, initial=fill).astype(x.dtype)

    @staticmethod
    def reduce_max_from(x, axes, init):
        return np.max(x, axis=axes, initial=init)

    @staticmethod
    def checkpoint_name(x):
        return np.sin(x) * x

    @staticmethod
    def linear_solve(a, b):
        return np.linalg.solve(a, b)

    host_sin = staticmethod(np.sin)

    @staticmethod
    def debug_identity(x):
        return x

    @staticmethod
    def complex_parts(x, y):
        z = x + 1j * y
        return np.real(z * z) + np.imag(np.conj(z) * x)

    @staticmethod
    def incomplete(name, *args):
        dt = np.result_type(*args)     # computed in float64 (finite differences), then cast
        return np.asarray(_SCIPY_INCOMPLETE[name](*[np.float64(a) for a in args]), dt)

    @staticmethod
    def conv1d(x, w):
        return np.correlate(x, w, "valid")


def _d_gammainc_da(a, x, h=1e-3):
    """dP(a, x)/da by a fourth-order central difference of scipy's gammainc (error ~1e-12)."""
    p = lambda d: scipy.special.gammainc(a + d, x)   # noqa: E731
    return (8 * (p(h) - p(-h)) - (p(2 * h) - p(-2 * h))) / (12 * h)


# the NumPy references of the incomplete gamma/beta rows (lax name -> f(*args))
_SCIPY_INCOMPLETE = {
    "igamma": scipy.special.gammainc, "igammac": scipy.special.gammaincc,
    "betainc": scipy.special.betainc, "igamma_grad_a": _d_gammainc_da,
    # d sample / d a of a gamma sample x = -(dP/da) / (dP/dx)
    "random_gamma_grad": lambda a, x: -_d_gammainc_da(a, x) / np.exp(
        (a - 1) * np.log(x) - x - scipy.special.gammaln(a)),
}


@ft.custom_jvp
def _softplus(x):
    """log(1 + e^x) with a hand-written jvp rule (custom_jvp_call)."""
    return jnp.logaddexp(x, 0)


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _softplus(x), t * ft.nn.sigmoid(x)


@ft.custom_vjp
def _xtanh(x):
    """x tanh(x) with a hand-written vjp (custom_vjp_call; forward mode is refused)."""
    return x * jnp.tanh(x)


def _xtanh_fwd(x):
    return _xtanh(x), x


def _xtanh_bwd(x, g):
    t = jnp.tanh(x)
    return (g * (t + x * (1 - t * t)),)


_xtanh.defvjp(_xtanh_fwd, _xtanh_bwd)


# ---------------------------------------------------------------------------------------------
# Domain helpers (on one member's NumPy values)

def _is_float(x):
    return np.asarray(x).dtype.kind == "f"


def _apart(x, y):
    """No float ties closer than MARGIN between x and y (integers may tie: exact)."""
    if not (_is_float(x) or _is_float(y)):
        return True
    d = np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))
    return bool(np.all((d == 0) | (d > MARGIN)))


def _sorted_gaps_ok(x, axes, ends=False):
    """Along the groups reduced over ``axes``: the float values are MARGIN apart (ends=False)
    or the two largest and two smallest are (ends=True: max/min/argmax are then stable)."""
    x = np.asarray(x)
    if not _is_float(x) or x.size == 0:
        return True
    axes = tuple(range(x.ndim)) if axes is None else tuple(np.atleast_1d(axes) % max(x.ndim, 1))
    rest = [a for a in range(x.ndim) if a not in axes]
    groups = np.sort(np.transpose(x, rest + list(axes)).reshape(
        int(np.prod([x.shape[a] for a in rest])), -1), axis=1)
    if groups.shape[1] < 2:
        return True
    gaps = np.diff(groups, axis=1)
    if ends:
        gaps = gaps[:, [0, -1]]
    return bool(np.all(gaps > MARGIN))


def _frac_away(x, points=(0.0,)):
    """The fractional parts of float x are MARGIN away from each of points (jumps of floor,
    round, int conversion...)."""
    if not _is_float(x):
        return True
    f = np.asarray(x, np.float64) % 1.0
    return all(bool(np.all(np.minimum(np.abs(f - p), 1 - np.abs(f - p)) > MARGIN))
               for p in points)


def _where(cond):
    """A domain from an elementwise predicate on the first argument, if it is a float."""
    def domain(x, *rest, **params):
        return not _is_float(x) or bool(np.all(cond(np.asarray(x, np.float64))))
    return domain


# ---------------------------------------------------------------------------------------------
# The op table

class Op:
    """One row: ``fn(ns, *args, **params)``; ``kinds[i]`` lists the dtype kinds argument i may
    have; ``accept(*avals)`` further restricts shapes; ``params(draw, *avals)`` draws the static
    parameters; ``domain(*args, **params)`` says whether one member's concrete arguments are
    safe; ``diff``: the derivative modes defined for it ("fwd", "rev"; empty: none that finite
    differences can check); ``long_only``: too slow for the CI profile (a numba compile)."""

    def __init__(self, name, fn, kinds, *, accept=None, params=None, domain=None, diff=MODES,
                 long_only=False):
        self.name, self.fn, self.kinds = name, fn, tuple(kinds)
        self.accept = accept or (lambda *avals: True)
        self.params = params or (lambda draw, *avals: {})
        self.domain = domain or (lambda *args, **params: True)
        self.diff, self.long_only = frozenset(diff), long_only

    @property
    def arity(self):
        return len(self.kinds)

    def __repr__(self):
        return self.name


OPS: dict[str, Op] = {}


def add_op(name, fn, kinds, **kw):
    """Register a row of the op table."""
    OPS[name] = Op(name, fn, kinds, **kw)


class Aval:
    """Shape and dtype of one value."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def kind(self):
        return self.dtype.kind

    def __repr__(self):
        return f"{self.dtype.name}{list(self.shape)}"


def _broadcastable(*avals):
    try:
        np.broadcast_shapes(*(a.shape for a in avals))
        return True
    except ValueError:
        return False


def _ndim_at_least(k):
    return lambda a, *rest: a.ndim >= k


def _axis(draw, a, none=True):
    """An axis of a (negative allowed), or None when ``none``."""
    choices = list(range(-a.ndim, a.ndim)) + ([None] if none else [])
    return draw(st.sampled_from(choices))


def _axes(draw, a):
    """None, one axis, or a tuple of distinct axes of a."""
    which = draw(st.sampled_from(["none", "one", "tuple"]))
    if which == "none" or a.ndim == 0:
        return None
    if which == "one":
        return _axis(draw, a, none=False)
    return tuple(sorted(draw(st.sets(st.integers(0, a.ndim - 1), min_size=1))))


# Functions with a restricted domain get their argument through a "prep" that maps every real
# into it (x*x + c, c*tanh(x)), so that they are not almost always refused on arrays with a
# value out of domain; the prep is part of the row's name.
def _square_plus(c):
    return f"x*x+{c}", lambda ns, x: x * x + c


def _tanh_times(c):
    return f"{c}*tanh(x)", lambda ns, x: ns.np.tanh(x) * c


# Elementwise unary ufuncs of functrans.numpy/numpy: name -> (kinds, domain, prep).
_apart_from_0 = _where(lambda x: np.abs(x) > MARGIN)
UNARY = {
    "sin": ("f", None, None), "cos": ("f", None, None), "tanh": ("f", None, None),
    "arctan": ("f", None, None), "arcsinh": ("f", None, None), "square": ("fi", None, None),
    "negative": ("fi", None, None), "exp": ("f", None, _tanh_times(4)),
    "expm1": ("f", None, _tanh_times(4)), "exp2": ("f", None, _tanh_times(5)),
    "sinh": ("f", None, _tanh_times(4)), "cosh": ("f", None, _tanh_times(4)),
    "log": ("f", None, _square_plus(0.2)), "log2": ("f", None, _square_plus(0.2)),
    "log10": ("f", None, _square_plus(0.2)), "log1p": ("f", None, _square_plus(-0.5)),
    "sqrt": ("f", None, _square_plus(0.1)), "cbrt": ("f", _where(lambda x: abs(x) > 0.1), None),
    "arcsin": ("f", None, _tanh_times(0.9)), "arccos": ("f", None, _tanh_times(0.9)),
    "arctanh": ("f", None, _tanh_times(0.9)), "arccosh": ("f", None, _square_plus(1.2)),
    "tan": ("f", None, _tanh_times(1.2)), "reciprocal": ("f", None, _square_plus(0.3)),
    "abs": ("fi", _apart_from_0, None), "sign": ("fi", _apart_from_0, None),
    "floor": ("f", _frac_away, None), "ceil": ("f", _frac_away, None),
    "trunc": ("f", _frac_away, None), "rint": ("f", lambda x: _frac_away(x, (0.5,)), None),
    "isfinite": ("f", None, None), "logical_not": ("fib", _apart_from_0, None),
    "invert": ("ib", None, None),
}


def _unary(ns, x, f, prep):
    """f(x), or f(prep(x))."""
    return f(x if prep is None else prep[1](ns, x))


def _unary_name(name, prep):
    return name if prep is None else f"{name}[{prep[0]}]"


for _name, (_kinds, _dom, _prep) in UNARY.items():
    add_op(_unary_name(_name, _prep), lambda ns, x, _n=_name, _p=_prep: _unary(ns, x, getattr(ns.np, _n), _p),
           [_kinds], domain=_dom)

# Unary lax-only functions, methods of the namespaces.
for _name, _prep, _diff in [("sigmoid", None, MODES), ("erf", None, MODES),
                            ("rsqrt", _square_plus(0.2), MODES), ("softplus", None, MODES),
                            ("xtanh", None, {"rev"}), ("stop_gradient", None, ()),
                            ("erfc", None, MODES), ("lgamma", _square_plus(0.2), MODES),
                            ("digamma", _square_plus(0.2), MODES),
                            ("trigamma", _square_plus(0.2), MODES),
                            ("erf_inv", _tanh_times(0.9), MODES),
                            ("ndtri", ("0.5+0.45*tanh(x)", lambda ns, x: 0.5 + 0.45 * ns.np.tanh(x)),
                             MODES)]:
    add_op(_unary_name(_name, _prep), lambda ns, x, _n=_name, _p=_prep: _unary(ns, x, getattr(ns, _n), _p),
           ["f"], diff=_diff)


def _binary_domain(cond):
    """A domain from a predicate on float64 (x, y) (only applied when one of them is float)."""
    def domain(x, y, **_):
        if not (_is_float(x) or _is_float(y)):
            return True
        return bool(np.all(cond(np.asarray(x, np.float64), np.asarray(y, np.float64))))
    return domain


def _int_divisor(x, y, **_):
    """No division by zero, and float quotients away from the jumps of floor and fmod."""
    y64 = np.asarray(y, np.float64)
    if not np.all(np.abs(y64) > 0.2):
        return False
    return _frac_away(np.asarray(x, np.float64) / y64) if (_is_float(x) or _is_float(y)) else True


# Elementwise binary ufuncs: name -> (kinds of both arguments, domain).
BINARY = {
    "add": ("fib", None), "subtract": ("fi", None), "multiply": ("fib", None),
    "divide": ("fi", _binary_domain(lambda x, y: np.abs(y) > 0.2)),
    "maximum": ("fib", _apart), "minimum": ("fib", _apart),
    "arctan2": ("f", _binary_domain(lambda x, y: (x * x + y * y > 0.1)
                                    & ~((np.abs(x) < MARGIN) & (y < 0)))),
    "logaddexp": ("f", None), "remainder": ("fi", _int_divisor),
    "floor_divide": ("fi", _int_divisor),
    "equal": ("fib", _apart), "not_equal": ("fib", _apart), "less": ("fib", _apart),
    "less_equal": ("fib", _apart), "greater": ("fib", _apart), "greater_equal": ("fib", _apart),
    "logical_and": ("ib", None), "logical_or": ("ib", None), "logical_xor": ("ib", None),
    "bitwise_and": ("ib", None), "bitwise_or": ("ib", None), "bitwise_xor": ("ib", None),
}
for _name, (_kinds, _dom) in BINARY.items():
    add_op(_name, lambda ns, x, y, _n=_name: getattr(ns.np, _n)(x, y), [_kinds, _kinds],
           accept=_broadcastable, domain=_dom)

add_op("rem", lambda ns, x, y: ns.rem(x, y), ["fi", "fi"], accept=_broadcastable,
       domain=_int_divisor)
# with their arguments prepared into the domain: a base > 0 and a bounded exponent; divisors
# of size >= 1 (y*y + 1 keeps integers integers)
add_op("power[x*x+0.2, 2*tanh(y)]",
       lambda ns, x, y: ns.np.power(x * x + 0.2, ns.np.tanh(y) * 2), ["f", "f"],
       accept=_broadcastable)
for _name in ["divide", "remainder", "floor_divide", "rem"]:
    add_op(f"{_name}[x, y*y+1]",
           lambda ns, x, y, _n=_name: OPS[_n].fn(ns, x, y * y + 1), ["fi", "fi"],
           accept=_broadcastable,
           domain=lambda x, y: _int_divisor(x, y * y + 1))
for _name in ["shift_left", "shift_right_logical"]:
    add_op(_name, lambda ns, x, s, _n=_name: ns.shift(_n, x, s), ["i"],
           params=lambda draw, a: {"s": draw(st.integers(0, 8))})


def _bitcast_roundtrip(ns, x, via):
    """x's bits through another dtype and back: x again (so that values computed in other
    ways by jit and eager differ only as x does), through an equal width or bytes."""
    via = f"int{8 * x.dtype.itemsize}" if via == "same" else "uint8"
    return ns.bitcast(ns.bitcast(x, via), x.dtype)


add_op("bitcast_roundtrip", _bitcast_roundtrip, ["fi"], diff=(),      # no derivative (JAX's)
       params=lambda draw, a: {"via": draw(st.sampled_from(["same", "bytes"]))})
# reduce_precision: rounded to bfloat16's grid (ml_dtypes' conversion is the reference); its
# straight-through derivative is not what finite differences see
add_op("reduce_precision", lambda ns, x: ns.to_bfloat16_grid(x), ["f"], diff=())
add_op("custom_linear_solve", lambda ns, b: ns.solve_diagonal(b, 1.5), ["f"])

# x (op) a Python scalar: weak typing, integer_pow, pow.
SCALAR_OPS = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "truediv": operator.truediv, "pow": operator.pow,
              "rsub": lambda x, c: c - x, "rtruediv": lambda x, c: c / x}


def _scalar_params(draw, a):
    name = draw(st.sampled_from(sorted(SCALAR_OPS)))
    if name == "pow":
        c = draw(st.sampled_from([2, 3] + ([-1, 0.5, -2.0] if a.kind == "f" else [])))
    else:
        c = draw(st.sampled_from([2, -3, 0.5, 1.5]))
    return {"name": name, "c": c}


def _scalar_domain(x, name, c):
    x64 = np.asarray(x, np.float64)
    if name == "rtruediv" or (name == "pow" and c < 0):
        return bool(np.all(np.abs(x64) > 0.2))
    if name == "pow" and c == 0.5:
        return bool(np.all(x64 > 0.05))
    return True


add_op("scalar", lambda ns, x, name, c: SCALAR_OPS[name](x, c), ["fi"], params=_scalar_params,
       domain=_scalar_domain)


def _astype_params(draw, a):
    """Any conversion but float64 -> float32 (which would spoil float64 finite differences)."""
    floats = ["float64"] if a.kind == "f" else ["float32", "float64"]
    return {"dtype": draw(st.sampled_from(["int32", "bool"] + floats))}


def _astype_domain(x, dtype):
    if dtype in ("int32", "bool") and _is_float(x):
        return _frac_away(x) and bool(np.all(np.abs(np.asarray(x, np.float64)) > MARGIN))
    return True


add_op("astype", lambda ns, x, dtype: x.astype(dtype), ["fib"], params=_astype_params,
       domain=_astype_domain)


add_op("where", lambda ns, c, x, y: ns.np.where(c, x, y), ["b", "fib", "fib"],
       accept=_broadcastable)
add_op("where_positive", lambda ns, x, y: ns.np.where(x > 0, x, y), ["fi", "fi"],
       accept=_broadcastable, domain=_where(lambda x: np.abs(x) > MARGIN))
add_op("clip", lambda ns, x: ns.np.clip(x, -1, 1.5), ["fi"],
       domain=_where(lambda x: (np.abs(x + 1) > MARGIN) & (np.abs(x - 1.5) > MARGIN)))


def _select_n(ns, w, x):
    which = ns.np.clip(w, 0, 2).astype(np.int32)
    return ns.select_n(which, x, 2 * x, x * x)


add_op("select_n", _select_n, ["i", "f"], accept=lambda w, x: w.shape == x.shape)
add_op("iota", lambda ns, x: x + ns.np.arange(x.shape[-1]), ["fi"], accept=_ndim_at_least(1))


# ---- shapes

def _reshape_params(draw, a):
    size = int(np.prod(a.shape, dtype=np.int64))
    cands = [(size,), (1,) + a.shape, a.shape + (1,), (-1,)]
    cands += [(k, size // k) for k in range(2, size) if size % k == 0]
    cands += [(-1, k) for k in range(2, size) if size % k == 0]
    return {"shape": draw(st.sampled_from(cands))}


add_op("reshape", lambda ns, x, shape: ns.np.reshape(x, shape), ["fib"], params=_reshape_params)
add_op("transpose", lambda ns, x, perm: ns.np.transpose(x, perm), ["fib"],
       params=lambda draw, a: {"perm": draw(st.permutations(range(a.ndim)))})
add_op("swapaxes", lambda ns, x, a, b: ns.np.swapaxes(x, a, b), ["fib"], accept=_ndim_at_least(1),
       params=lambda draw, v: {"a": _axis(draw, v, False), "b": _axis(draw, v, False)})
add_op("moveaxis", lambda ns, x, a, b: ns.np.moveaxis(x, a, b), ["fib"], accept=_ndim_at_least(1),
       params=lambda draw, v: {"a": _axis(draw, v, False), "b": _axis(draw, v, False)})
add_op("expand_dims", lambda ns, x, axis: ns.np.expand_dims(x, axis), ["fib"],
       params=lambda draw, a: {"axis": draw(st.integers(-a.ndim - 1, a.ndim))})
add_op("squeeze", lambda ns, x, axis: ns.np.squeeze(x, axis), ["fib"],
       accept=lambda a: 1 in a.shape,
       params=lambda draw, a: {"axis": draw(st.sampled_from(
           [None] + [i for i, n in enumerate(a.shape) if n == 1]))})
add_op("broadcast_to", lambda ns, x, shape: ns.np.broadcast_to(x, shape), ["fib"],
       params=lambda draw, a: {"shape": (draw(st.integers(1, 3)),)
                               + tuple(draw(st.sampled_from([1, 3])) if n == 1 else n
                                       for n in a.shape)})
add_op("flip", lambda ns, x, axis: ns.np.flip(x, axis), ["fib"],
       params=lambda draw, a: {"axis": _axis(draw, a)})
add_op("roll", lambda ns, x, shift, axis: ns.np.roll(x, shift, axis), ["fib"],
       params=lambda draw, a: {"shift": draw(st.integers(-3, 3)), "axis": _axis(draw, a)})
add_op("tile", lambda ns, x, reps: ns.np.tile(x, reps), ["fib"],
       params=lambda draw, a: {"reps": tuple(draw(st.lists(st.integers(1, 2), max_size=2)))})
add_op("repeat", lambda ns, x, r, axis: ns.np.repeat(x, r, axis), ["fib"],
       params=lambda draw, a: {"r": draw(st.integers(1, 2)), "axis": _axis(draw, a)})
add_op("pad", lambda ns, x, widths, mode: ns.np.pad(x, widths, mode=mode), ["fib"],
       params=lambda draw, a: {
           "widths": [tuple(draw(st.lists(st.integers(0, 2), min_size=2, max_size=2)))
                      for _ in a.shape],
           "mode": draw(st.sampled_from(["constant", "edge", "reflect", "symmetric", "wrap"]))},
       accept=lambda a: 0 not in a.shape)
add_op("lax_pad", lambda ns, x, config: ns.lax_pad(x, x.dtype.type(0), config), ["fi"],
       params=lambda draw, a: {"config": [
           (draw(st.integers(-1, 2)), draw(st.integers(-1, 2)), draw(st.integers(0, 2)))
           for _ in a.shape]},
       domain=lambda x, config: all(n + max(n - 1, 0) * it + lo + hi >= 0
                                    for n, (lo, hi, it) in zip(x.shape, config)))


def _window_reduce_params(draw, a):
    """A window of 1..3 (at most the padded size) per axis, strides 1..2, padding 0..1."""
    padding = [tuple(draw(st.integers(0, 1)) for _ in range(2)) for _ in a.shape]
    window = tuple(draw(st.integers(1, max(1, min(3, n + lo + hi))))
                   for n, (lo, hi) in zip(a.shape, padding))
    return {"window": window, "strides": tuple(draw(st.integers(1, 2)) for _ in a.shape),
            "padding": padding}


def _window_ok(x, window, strides, padding):
    return all(n + lo + hi >= k for n, k, (lo, hi) in zip(x.shape, window, padding))


for _how, _kinds in [("sum", "fi"), ("max", "fi"), ("min", "fi"), ("prod", "f")]:
    add_op(f"reduce_window_{_how}",
           lambda ns, x, window, strides, padding, _h=_how: ns.reduce_window(
               _h, x, window, strides, padding), [_kinds], params=_window_reduce_params,
           accept=lambda a: a.ndim >= 1,
           domain=(lambda x, **p: _window_ok(x, **p) and _sorted_gaps_ok(x, None))
           if _how in ("max", "min") else _window_ok)
add_op("reduce_max_from", lambda ns, x, axes, init: ns.reduce_max_from(x, axes, init), ["f"],
       accept=lambda a: a.ndim >= 1,
       params=lambda draw, a: {"axes": tuple(sorted(set(
           draw(st.lists(st.integers(0, a.ndim - 1), min_size=1, max_size=a.ndim))))),
           "init": draw(st.sampled_from([-0.5, 0.25]))},
       domain=lambda x, axes, init: _sorted_gaps_ok(np.append(np.ravel(x), init), None))
add_op("checkpoint_name", lambda ns, x: ns.checkpoint_name(x), ["f"])
add_op("host_sin", lambda ns, x: ns.host_sin(x), ["f"], diff=())   # pure_callback: no jvp
add_op("debug_identity", lambda ns, x: ns.debug_identity(x), ["fib"])
# incomplete gamma and beta with their arguments prepared into the domain (x > 0.1 for gamma,
# 0 < x < 1 for beta); the shape parameters are drawn constants where the row is
# differentiated (igamma's derivative in a, igamma_grad_a, has none of its own, and betainc has
# none in a and b, as in JAX), arrays in the forward-only rows of the a-derivatives
_shape_param = st.sampled_from([0.5, 1.0, 2.5, 7.0])
for _name in ["igamma", "igammac"]:
    add_op(f"{_name}[a, x*x+0.1]",
           lambda ns, x, a, _n=_name: ns.incomplete(_n, ns.np.full_like(x, a), x * x + 0.1),
           ["f"], params=lambda draw, _: {"a": draw(_shape_param)})
def _a_and_x(ns, x, y):
    """Moderate gamma parameters (a in [0.5, 2.5], x in [0.1, 2.1]) of one dtype and shape:
    where the density underflows, the finite-difference references lose all precision."""
    a, x = ns.np.broadcast_arrays(2 * ns.np.tanh(x) ** 2 + 0.5, 2 * ns.np.tanh(y) ** 2 + 0.1)
    dt = ns.np.result_type(a, x)
    return a.astype(dt), x.astype(dt)


for _name in ["igamma_grad_a", "random_gamma_grad"]:
    add_op(f"{_name}[2tanh(x)^2+0.5, 2tanh(y)^2+0.1]",
           lambda ns, x, y, _n=_name: ns.incomplete(_n, *_a_and_x(ns, x, y)), ["f", "f"],
           accept=_broadcastable, diff=())
add_op("betainc[a, b, sigmoid(x)]",
       lambda ns, x, a, b: ns.incomplete("betainc", ns.np.full_like(x, a), ns.np.full_like(x, b),
                                         ns.sigmoid(x)),
       ["f"], params=lambda draw, _: {"a": draw(_shape_param), "b": draw(_shape_param)})
add_op("complex_parts", lambda ns, x, y: ns.complex_parts(x, y), ["f", "f"],
       accept=lambda a, b: a.shape == b.shape)


# ---- linear algebra: square matrices made well conditioned (x x^T + n I, x + x^T)

def _square(a):
    return a.ndim >= 2 and a.shape[-1] == a.shape[-2] >= 1


def _spd(ns, x):
    n = x.shape[-1]
    return x @ ns.np.swapaxes(x, -1, -2) + n * ns.np.eye(n, dtype=x.dtype)


def _sym(ns, x):
    return x + ns.np.swapaxes(x, -1, -2)


def _spectrum_apart(values):
    """The float64 eigen/singular values of each matrix MARGIN apart (stable derivatives)."""
    return lambda x: _sorted_gaps_ok(values(np.asarray(x, np.float64)), -1)


add_op("cholesky[x x^T + nI]", lambda ns, x: ns.np.linalg.cholesky(_spd(ns, x)), ["f"],
       accept=_square)
add_op("inv[x x^T + nI]", lambda ns, x: ns.np.linalg.inv(_spd(ns, x)), ["f"], accept=_square)
add_op("lu_solve[x x^T + nI, y]",
       lambda ns, x, y: ns.scipy_linalg.lu_solve(ns.scipy_linalg.lu_factor(_spd(ns, x)), y),
       ["f", "f"], accept=lambda a, b: a.ndim == 2 and _square(a) and b.shape[:1] == a.shape[:1])
add_op("qr[x], R*R", lambda ns, x: (lambda r: r * r)(ns.np.linalg.qr(x)[1]), ["f"],
       accept=lambda a: a.ndim >= 2 and a.shape[-2] >= a.shape[-1] >= 1,
       domain=_spectrum_apart(lambda x: np.linalg.svd(x, compute_uv=False)
                              if x.size else x))
add_op("custom_linear_solve[x x^T + nI, y]", lambda ns, x, y: ns.linear_solve(_spd(ns, x), y),
       ["f", "f"], accept=lambda a, b: a.ndim == 2 and _square(a) and b.shape == a.shape[:1])
add_op("eigvalsh[x + x^T]", lambda ns, x: ns.np.linalg.eigvalsh(_sym(ns, x)), ["f"],
       accept=_square, domain=_spectrum_apart(lambda x: np.linalg.eigvalsh(x + np.swapaxes(x, -1, -2))))
add_op("svdvals[x]", lambda ns, x: ns.np.linalg.svd(x, compute_uv=False), ["f"],
       accept=lambda a: a.ndim >= 2 and min(a.shape[-2:]) >= 1,
       domain=_spectrum_apart(lambda x: np.concatenate(
           [np.linalg.svd(x, compute_uv=False), np.zeros(x.shape[:-2] + (1,))], -1)))
# eig's eigenvalue derivative diag(V^-1 dA V): real parts, sorted, eigenvalues apart
add_op("eigvals[x + x^T], real, sorted",
       lambda ns, x: ns.np.sort(ns.np.real(ns.np.linalg.eigvals(_sym(ns, x))), axis=-1), ["f"],
       accept=_square,
       domain=_spectrum_apart(lambda x: np.linalg.eigvalsh(x + np.swapaxes(x, -1, -2))))
add_op("|fft(x)|^2", lambda ns, x: ns.np.abs(ns.np.fft.fft(x)) ** 2, ["f"],
       accept=lambda a: a.ndim >= 1 and a.shape[-1] >= 1)
add_op("irfft(rfft(x) * x0)", lambda ns, x: ns.np.fft.irfft(ns.np.fft.rfft(x) * x[..., :1],
                                                            n=x.shape[-1]),
       ["f"], accept=lambda a: a.ndim >= 1 and a.shape[-1] >= 1)
add_op("conv1d", lambda ns, x, w: ns.conv1d(x, w), ["f", "f"],
       accept=lambda a, b: a.ndim == b.ndim == 1 and 1 <= b.shape[0] <= a.shape[0])


def _index_params(draw, a):
    """A basic index: per leading axis a slice (any start/stop/step sign), an integer or a
    newaxis, then maybe an Ellipsis."""
    index = []
    for n in a.shape[:draw(st.integers(0, a.ndim))]:
        kind = draw(st.sampled_from(["slice", "int", "newaxis"] if n else ["slice", "newaxis"]))
        if kind == "slice":
            index.append(slice(draw(st.none() | st.integers(-5, 5)),
                               draw(st.none() | st.integers(-5, 5)),
                               draw(st.sampled_from([None, 1, 2, -1, -2]))))
        elif kind == "int":
            index.append(draw(st.integers(-n, n - 1)))
        else:
            index.append(None)
    if draw(st.booleans()):
        index.insert(draw(st.integers(0, len(index))), Ellipsis)
    return {"index": tuple(index)}


add_op("getitem", lambda ns, x, index: x[index], ["fib"], params=_index_params)


def _concat_params(draw, a, b):
    axes = [i for i in range(a.ndim)
            if a.shape[:i] + a.shape[i + 1:] == b.shape[:i] + b.shape[i + 1:]]
    return {"axis": draw(st.sampled_from(axes))}


add_op("concatenate", lambda ns, x, y, axis: ns.np.concatenate([x, y], axis), ["fib", "fib"],
       accept=lambda a, b: a.ndim == b.ndim >= 1 and sum(
           p != q for p, q in zip(a.shape, b.shape)) <= 1, params=_concat_params)
add_op("stack", lambda ns, x, y, axis: ns.np.stack([x, y], axis), ["fib", "fib"],
       accept=lambda a, b: a.shape == b.shape,
       params=lambda draw, a, b: {"axis": draw(st.integers(-a.ndim - 1, a.ndim))})
add_op("array_split", lambda ns, x, n, k, axis: ns.np.array_split(x, n, axis)[k], ["fib"],
       accept=_ndim_at_least(1),
       params=lambda draw, a: {"n": (n := draw(st.integers(1, 3))),
                               "k": draw(st.integers(0, n - 1)),
                               "axis": _axis(draw, a, none=False)})


# ---- reductions and scans

def _reduction(name, kinds, ends=None, domain=None):
    """A reduction over drawn axes (keepdims drawn too); ``ends``: float maxima/minima must be
    MARGIN clear of the runner-up; ``domain(x, axis)``: a further condition."""
    def dom(x, axis, keepdims):
        if ends is not None and not _sorted_gaps_ok(x, axis, ends=True):
            return False
        return domain is None or domain(x, axis)
    add_op(name, lambda ns, x, axis, keepdims: getattr(ns.np, name)(x, axis=axis,
                                                                    keepdims=keepdims),
           [kinds], params=lambda draw, a: {"axis": _axes(draw, a),
                                            "keepdims": draw(st.booleans())}, domain=dom)


for _name, _kinds, _ends, _dom in [
        ("sum", "fib", None, None), ("prod", "fi", None, None), ("mean", "fi", None, None),
        ("max", "fib", True, None), ("min", "fib", True, None), ("all", "fib", None, None),
        ("any", "fib", None, None), ("var", "f", None, None),
        ("std", "f", None, lambda x, axis: bool(np.all(np.var(x, axis=axis) > MARGIN)))]:
    _reduction(_name, _kinds, _ends, _dom)


def _arg_reduction(name):
    add_op(name, lambda ns, x, axis: getattr(ns.np, name)(x, axis=axis), ["fib"],
           params=lambda draw, a: {"axis": _axis(draw, a)},
           domain=lambda x, axis: _sorted_gaps_ok(x, axis, ends=True))


_arg_reduction("argmax")
_arg_reduction("argmin")
add_op("cumsum", lambda ns, x, axis: ns.np.cumsum(x, axis), ["fib"],
       params=lambda draw, a: {"axis": _axis(draw, a)})
add_op("cumprod", lambda ns, x, axis: ns.np.cumprod(x, axis), ["fi"],
       params=lambda draw, a: {"axis": _axis(draw, a)})
for _name in ["cumsum", "cumprod", "cummax", "cummin"]:
    add_op(f"lax_{_name}", lambda ns, x, axis, reverse, _n=_name: ns.cumulative(_n, x, axis,
                                                                               reverse),
           ["fi"], accept=_ndim_at_least(1),
           params=lambda draw, a: {"axis": draw(st.integers(0, a.ndim - 1)),
                                   "reverse": draw(st.booleans())},
           domain=lambda x, axis, reverse: _sorted_gaps_ok(x, axis))
add_op("sort", lambda ns, x, axis: ns.np.sort(x, axis), ["fib"], accept=_ndim_at_least(1),
       params=lambda draw, a: {"axis": _axis(draw, a, none=False)},
       domain=lambda x, axis: _sorted_gaps_ok(x, axis))
add_op("argsort", lambda ns, x, axis: ns.argsort(x, axis), ["fib"], accept=_ndim_at_least(1),
       params=lambda draw, a: {"axis": _axis(draw, a, none=False)},
       domain=lambda x, axis: _sorted_gaps_ok(x, axis))
add_op("sort_by", lambda ns, k, v, axis: ns.sort_by(k, v, axis), ["fi", "f"],
       accept=lambda k, v: k.shape == v.shape and k.ndim >= 1,
       params=lambda draw, k, v: {"axis": draw(st.integers(0, k.ndim - 1))},
       domain=lambda k, v, axis: _sorted_gaps_ok(k, axis))


# ---- linear algebra

def _trial(f):
    """accept(a, b): f works on zero arrays of those shapes."""
    def accept(a, b):
        try:
            f(np.zeros(a.shape), np.zeros(b.shape))
            return True
        except ValueError:
            return False
    return accept


add_op("matmul", lambda ns, x, y: x @ y, ["fi", "fi"], accept=_trial(np.matmul))
add_op("dot", lambda ns, x, y: ns.np.dot(x, y), ["fi", "fi"], accept=_trial(np.dot))
add_op("outer", lambda ns, x, y: ns.np.outer(x, y), ["fi", "fi"])
add_op("inner", lambda ns, x, y: ns.np.inner(x, y), ["fi", "fi"], accept=_trial(np.inner))


def _tensordot_params(draw, a, b):
    pairs = [(i, j) for i in range(a.ndim) for j in range(b.ndim) if a.shape[i] == b.shape[j]]
    i, j = draw(st.sampled_from(pairs))
    return {"axes": ([i], [j])}


add_op("tensordot", lambda ns, x, y, axes: ns.np.tensordot(x, y, axes), ["fi", "fi"],
       accept=lambda a, b: any(p == q for p in a.shape for q in b.shape),
       params=_tensordot_params)


def _einsum_params(draw, *avals):
    """Subscripts for one or two operands: a dimension of the second operand reuses a letter
    of the first one of equal size or takes a new letter; the output is a drawn subset of the
    letters in a drawn order."""
    letters = iter(string.ascii_lowercase)
    first = [next(letters) for _ in avals[0].shape]
    terms = [first]
    if len(avals) == 2:
        second = []
        for n in avals[1].shape:
            same = [c for c, m in zip(first, avals[0].shape) if m == n and c not in second]
            second.append(draw(st.sampled_from(same + [next(letters)])))
        terms.append(second)
    used = sorted(set(c for t in terms for c in t))
    out = draw(st.permutations(used))[:draw(st.integers(0, len(used)))]
    return {"spec": ",".join("".join(t) for t in terms) + "->" + "".join(out)}


add_op("einsum1", lambda ns, x, spec: ns.np.einsum(spec, x), ["fi"], params=_einsum_params)
add_op("einsum2", lambda ns, x, y, spec: ns.np.einsum(spec, x, y), ["fi", "fi"],
       params=_einsum_params)


# ---- gather and scatter

def _indices(draw, n, k_max=3, lo=None, hi=None, unique=False):
    """k in-range (negative allowed) static indices into an axis of size n."""
    lo, hi = -n if lo is None else lo, n - 1 if hi is None else hi
    elems = st.integers(lo, hi)
    if unique:
        vals = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=min(k_max, n),
                             unique=True))
        return np.asarray([v - n if draw(st.booleans()) else v for v in vals])
    return np.asarray(draw(st.lists(elems, min_size=1, max_size=k_max)))


def _take_params(draw, a):
    axis = draw(st.integers(0, a.ndim - 1))
    clip = draw(st.booleans())
    n = a.shape[axis]
    idx = _indices(draw, n, lo=0 if clip else None, hi=n + 2 if clip else None)
    return {"idx": idx, "axis": axis, "mode": "clip" if clip else None}


def _take(ns, x, idx, axis, mode):
    if ns is NP:
        return np.take(x, idx, axis, mode=mode or "raise")
    return jnp.take(x, idx, axis, mode=mode)


_nonempty = lambda a: a.ndim >= 1 and 0 not in a.shape  # noqa: E731
add_op("take", _take, ["fib"], accept=_nonempty, params=_take_params)
add_op("index_array", lambda ns, x, idx, axis: x[(slice(None),) * axis + (idx,)], ["fib"],
       accept=_nonempty,
       params=lambda draw, a: {"axis": (ax := draw(st.integers(0, a.ndim - 1))),
                               "idx": _indices(draw, a.shape[ax]).reshape(
                                   draw(st.sampled_from([(-1,), (1, -1)])))})
add_op("index_mask", lambda ns, x, mask: x[mask], ["fib"], accept=_nonempty,
       params=lambda draw, a: {"mask": np.asarray(draw(st.lists(
           st.booleans(), min_size=a.shape[0], max_size=a.shape[0])))})
add_op("take_along_axis", lambda ns, x, idx, axis: ns.np.take_along_axis(x, idx, axis), ["fib"],
       accept=_nonempty,
       params=lambda draw, a: {"axis": (ax := draw(st.integers(0, a.ndim - 1))),
                               "idx": np.asarray(draw(st.lists(
                                   st.integers(-a.shape[ax], a.shape[ax] - 1),
                                   min_size=int(np.prod(a.shape)),
                                   max_size=int(np.prod(a.shape))))).reshape(a.shape)})


def _dynamic_index(ns, x, y):
    """x[i] with i traced: the flat argmax of y, wrapped into range."""
    return x[ns.np.argmax(y) % x.shape[0]]


add_op("dynamic_index", _dynamic_index, ["fib", "fib"],
       accept=lambda a, b: _nonempty(a) and 0 not in b.shape,
       domain=lambda x, y: _sorted_gaps_ok(y, None, ends=True))




def _at_accept(x, y):
    if not _nonempty(x) or x.kind == "b" or (x.kind == "i" and y.kind == "f"):
        return False
    return (y.ndim <= x.ndim - 1 and _broadcastable(Aval(x.shape[1:], x.dtype), y)
            and np.broadcast_shapes(x.shape[1:], y.shape) == x.shape[1:])


def _at_domain(x, y, idx):
    return _apart(x[idx], np.broadcast_to(y, x[idx].shape))


# x.at[idx].how(y); set: unique indices (which of repeated updates wins is unspecified)
for _how in ["set", "add", "mul", "min", "max"]:
    add_op(f"at_{_how}", lambda ns, x, y, idx, _h=_how: ns.at(_h, x, idx, y), ["fi", "fib"],
           accept=_at_accept,
           params=lambda draw, x, y, _h=_how: {"idx": _indices(draw, x.shape[0],
                                                               unique=_h == "set")},
           domain=_at_domain if _how in ("min", "max") else None)


def _window_params(draw, a, b=None):
    sizes = b.shape if b is not None else tuple(draw(st.integers(0, n)) for n in a.shape)
    return {"starts": [draw(st.integers(-1, n + 1)) for n in a.shape], "sizes": sizes}


add_op("dynamic_slice", lambda ns, x, starts, sizes: ns.dynamic_slice(x, starts, sizes), ["fib"],
       params=_window_params)
add_op("dynamic_update_slice",
       lambda ns, x, y, starts, sizes: ns.dynamic_update_slice(x, y, starts), ["fi", "fi"],
       accept=lambda a, b: a.ndim == b.ndim and all(q <= p for p, q in zip(a.shape, b.shape)),
       params=_window_params)


# ---- control flow, custom derivatives, checkpoint, nested jit

BODIES = {
    "sin": lambda ns, a: ns.np.sin(a),
    "square": lambda ns, a: a * a / (1 + a * a) - 0.5,   # bounded: iterates stay tame
    "tanh": lambda ns, a: ns.np.tanh(2 * a),
    "cos_tanh": lambda ns, a: ns.np.cos(a) * ns.np.tanh(a),
}


def _body(draw):
    return draw(st.sampled_from(sorted(BODIES)))


def _cond(ns, x, y, t, f):
    """cond on the sign of sum(y); the branches use x."""
    pred = ns.np.sum(y) > 0
    return ns.cond(pred, lambda a: BODIES[t](ns, a), lambda a: BODIES[f](ns, a), x)


add_op("cond", _cond, ["f", "fib"], params=lambda draw, a, b: {"t": _body(draw), "f": _body(draw)},
       domain=lambda x, y, t, f: not _is_float(y) or abs(float(np.sum(y))) > MARGIN)


def _switch(ns, x, y, bodies):
    """switch on the number of positive elements of y minus one (clamped: may be -1 or > 2)."""
    index = ns.np.sum(y > 0) - 1
    return ns.switch(index, [lambda a, _b=b: BODIES[_b](ns, a) for b in bodies], x)


add_op("switch", _switch, ["f", "fi"],
       params=lambda draw, a, b: {"bodies": [_body(draw) for _ in range(3)]},
       domain=lambda x, y, bodies: not _is_float(y) or bool(np.all(np.abs(y) > MARGIN)))


def _scan(ns, x, y, body, reverse):
    """A scan over x's leading axis closing over a scalar of y; ys + the final carry."""
    w = ns.np.tanh(ns.np.sum(y)).astype(x.dtype)

    def step(c, xt):
        c = BODIES[body](ns, c) * 0.5 + xt * w
        return c, c * xt

    carry, ys = ns.scan(step, ns.np.zeros_like(x[0]), x, reverse)
    return ys + carry


add_op("scan", _scan, ["f", "f"], accept=lambda a, b: _nonempty(a),
       params=lambda draw, a, b: {"body": _body(draw), "reverse": draw(st.booleans())})


def _fori(ns, x, n, body):
    def step(i, c):
        return BODIES[body](ns, c) * 0.5 + ns.np.asarray(i).astype(c.dtype) * 0.25
    return ns.fori_loop(0, n, step, x)


add_op("fori_loop", _fori, ["f"],
       params=lambda draw, a: {"n": draw(st.integers(0, 3)), "body": _body(draw)})


def _while(ns, x, n, body):
    def step(state):
        i, c = state
        return i + 1, BODIES[body](ns, c) * 0.5 + c * 0.5
    return ns.while_loop(lambda s: s[0] < n, step, (0, x))[1]


add_op("while_loop", _while, ["f"], diff={"fwd"},
       params=lambda draw, a: {"n": draw(st.integers(0, 3)), "body": _body(draw)})


def _while_batched(ns, x):
    """Trip count depending on x (a batched predicate under vmap): halve until sum(|c|) < 1."""
    def cond_fun(state):
        return (ns.np.sum(ns.np.abs(state[1])) >= 1) & (state[0] < 6)
    return ns.while_loop(cond_fun, lambda s: (s[0] + 1, s[1] * 0.5), (0, x))[1]


add_op("while_data", _while_batched, ["f"], diff=(),
       domain=lambda x: _frac_away(np.log2(max(float(np.sum(np.abs(x))), 1e-9))))
add_op("checkpoint", lambda ns, x, body: ns.checkpoint(lambda a: BODIES[body](ns, a) * a)(x),
       ["f"], params=lambda draw, a: {"body": _body(draw)})
add_op("nested_jit", lambda ns, x, body: ns.jit(lambda a: BODIES[body](ns, a))(x), ["f"],
       params=lambda draw, a: {"body": _body(draw)}, long_only=True)


# ---------------------------------------------------------------------------------------------
# Programs

class Step:
    """values.append(op.fn(ns, *values[args], **params))."""

    def __init__(self, op, args, params):
        self.op, self.args, self.params = op, tuple(args), params

    def __repr__(self):
        params = ", ".join(f"{k}={_short(v)}" for k, v in self.params.items())
        return f"{self.op.name}({', '.join(f'v{i}' for i in self.args)}{', ' if params else ''}{params})"


def _short(v):
    if isinstance(v, np.ndarray):
        return f"np.array({v.tolist()})"
    return repr(v)


class Program:
    """Inputs (avals, vmap in_axes, concrete batched values), steps, and output value ids."""

    def __init__(self, avals, in_axes, members, seed):
        self.in_avals, self.in_axes, self.seed = avals, in_axes, seed
        self.members = members          # per value: one NumPy array per batch member
        self.avals = list(avals)        # per value
        self.steps, self.outputs = [], []

    @property
    def n_inputs(self):
        return len(self.in_avals)

    def args(self):
        """Member 0 of every input."""
        return [m[0] for m in self.members[:self.n_inputs]]

    def batched_args(self):
        """The inputs stacked over the batch (in_axes 0) or member 0 (in_axes None)."""
        return [np.stack(m) if ax == 0 else m[0]
                for m, ax in zip(self.members[:self.n_inputs], self.in_axes)]

    def reference(self):
        """The NumPy outputs for member 0 (recorded while generating)."""
        return [self.members[i][0] for i in self.outputs]

    def least_float(self):
        """The least precise float dtype among all the program's values (tolerances follow
        it: a float32 step's rounding reaches float64 outputs computed from it)."""
        floats = [a.dtype for a in self.avals if a.kind == "f"]
        return min(floats, key=lambda d: d.itemsize) if floats else np.dtype(np.float64)

    def modes(self):
        """Derivative modes every step defines."""
        return frozenset.intersection(MODES, *(s.op.diff for s in self.steps))

    def __call__(self, ns, *args):
        vals = [ns.asarray(a) for a in args]   # so that x[i], x.at, x + 1 are ns's own
        for s in self.steps:
            vals.append(s.op.fn(ns, *[vals[i] for i in s.args], **s.params))
        return tuple(vals[i] for i in self.outputs)

    def __repr__(self):
        lines = [f"Program(seed={self.seed}):"]
        lines += [f"  v{i}: {a} (vmap in_axes {ax})"
                  for i, (a, ax) in enumerate(zip(self.in_avals, self.in_axes))]
        lines += [f"  v{self.n_inputs + k} = {s}  -> {self.avals[self.n_inputs + k]}"
                  for k, s in enumerate(self.steps)]
        lines.append(f"  return {', '.join(f'v{i}' for i in self.outputs)}")
        lines += [f"  v{i} = np.asarray({np.asarray(a).tolist()!r}, {a.dtype.name!r})"
                  for i, a in enumerate(self.args())]
        return "\n".join(lines)


def _random_values(rng, aval, n):
    if aval.kind == "f":
        return rng.uniform(-2, 2, (n,) + aval.shape).astype(aval.dtype)
    if aval.kind == "i":
        return rng.integers(-5, 6, (n,) + aval.shape).astype(aval.dtype)
    return rng.uniform(size=(n,) + aval.shape) < 0.5


def _ok_result(r):
    r = np.asarray(r)
    if r.ndim > MAX_NDIM or r.size > MAX_SIZE or r.dtype.kind not in "fib":
        return False
    if r.dtype.kind == "f":
        return bool(np.all(np.isfinite(r)) and np.all(np.abs(r) < BOUND))
    return r.dtype.kind == "b" or bool(np.all(np.abs(r.astype(np.int64)) < INT_BOUND))


def _shape(draw, max_dims=MAX_NDIM, empty=True):
    return tuple(draw(st.lists(st.integers(0 if empty else 1, 4), max_size=max_dims)))


def _related_shape(draw, shape):
    """The same shape, a broadcast-compatible one (trailing dims, some set to 1), or a new one."""
    how = draw(st.sampled_from(["same", "broadcast", "new"]))
    if how == "same":
        return shape
    if how == "broadcast":
        tail = shape[draw(st.integers(0, len(shape))):]
        return tuple(1 if draw(st.booleans()) else n for n in tail)
    return _shape(draw, empty=False)


@st.composite
def programs(draw, float_dtypes=("float32", "float64"), max_steps=8, diff=None, long=False,
             float_output=False, only=None):
    """Random programs. diff: None (any op), "any" (ops with some derivative mode, keeping at
    least one mode common to all steps) or "fwd" (forward mode defined for every step).
    long: include the long-only ops. float_output: some output is a float. only: the names of
    the ops to draw from (default: the whole table)."""
    fdt = np.dtype(draw(st.sampled_from(float_dtypes)))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    shape0 = _shape(draw, empty=draw(st.integers(0, 9)) == 0)
    avals = [Aval(shape0, fdt)]
    for _ in range(draw(st.integers(0, 2))):
        avals.append(Aval(_related_shape(draw, shape0),
                          draw(st.sampled_from([fdt, np.dtype(np.int32), np.dtype(np.bool_)]))))
    in_axes = [0] + [draw(st.sampled_from([0, None])) for _ in avals[1:]]
    members = []
    for a, ax in zip(avals, in_axes):
        vals = _random_values(rng, a, BATCH if ax == 0 else 1)
        members.append(list(vals) if ax == 0 else [vals[0]] * BATCH)
    prog = Program(avals, in_axes, members, seed)
    ops = [OPS[name] for name in only] if only else [
        op for op in OPS.values() if long or not op.long_only]
    if diff == "fwd":
        ops = [op for op in ops if "fwd" in op.diff]
    elif diff == "any":
        ops = [op for op in ops if op.diff]
    n_steps = draw(st.sampled_from(range(1, max_steps + 1)))  # uniform: no bias to 1 step
    for _ in range(3 * n_steps):     # a drawn step may be refused: retry, within bounds
        if len(prog.steps) == n_steps:
            break
        _add_step(draw, prog, ops, diff, rng)
    used = {i for s in prog.steps for i in s.args}
    prog.outputs = [i for i in range(prog.n_inputs, len(prog.avals)) if i not in used] or [0]
    if float_output and not any(prog.avals[i].kind == "f" for i in prog.outputs):
        prog.outputs.append(max(i for i, a in enumerate(prog.avals) if a.kind == "f"))
    return prog


def _candidates(op, avals):
    """Argument index tuples op accepts (dtype kinds and shapes)."""
    per_arg = [[i for i, a in enumerate(avals) if a.kind in kinds] for kinds in op.kinds]
    out = [()]
    for idxs in per_arg:
        out = [c + (i,) for c in out for i in idxs]
    return [c for c in out if op.accept(*(avals[i] for i in c))]


def _add_step(draw, prog, ops, diff, rng):
    """Draw an op, its arguments and parameters; append the step if every batch member is in
    its domain and its results are small and finite (else leave the program as it is). The
    drawn op index goes through a random permutation: hypothesis favours small indices, which
    would otherwise make the first rows of the table far more frequent than the others."""
    op = ops[rng.permutation(len(ops))[draw(st.integers(0, len(ops) - 1))]]
    if diff == "any" and not (prog.modes() & op.diff):
        return
    cands = _candidates(op, prog.avals)
    if not cands:
        return
    args = draw(st.sampled_from(cands))
    params = op.params(draw, *(prog.avals[i] for i in args))
    _append(prog, op, args, params)


def _append(prog, op, args, params):
    """Evaluate the step with NumPy on every member and keep it if it is safe."""
    results = []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for b in range(BATCH):
            vals = [prog.members[i][b] for i in args]
            if not op.domain(*vals, **params):
                return
            try:
                r = np.asarray(op.fn(NP, *vals, **params))
            except (ValueError, IndexError, TypeError, ZeroDivisionError):
                return      # NumPy refuses these arguments (shape mismatch, empty max...)
            if not _ok_result(r) or (results and (r.shape, r.dtype) != (results[0].shape,
                                                                        results[0].dtype)):
                return
            results.append(r)
    prog.steps.append(Step(op, args, params))
    prog.members.append(results)
    prog.avals.append(Aval(results[0].shape, results[0].dtype))
