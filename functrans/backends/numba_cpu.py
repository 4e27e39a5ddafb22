"""Code generation: a KernelPlan becomes the source of ONE Python module whose ``kernel`` is
compiled by ``numba.njit``.

The source is shape-erased: every dimension (and every literal) is read from run-time
arguments ``D`` (int64) and ``L_<dtype>``, so a new batch size reuses the compiled kernel.
Lowering rules for equations that are not fused live in ``lower_rules`` (primitive name ->
f(emitter, eqn)); fused elementwise ops are in ``SCALAR_RULES``. Large plans are cut into
several such modules by ``split_plan`` (see the end of this file)."""
from __future__ import annotations

import math
import os

import numpy as np

from .. import core
from ..core import Literal, Var
from . import plan as plan_mod
from .plan import Group, Op

_HEADER = '''import math
import numba
import numpy as np
from functrans.backends.vmath import (exp_f32, log_f32, tanh_f32, logistic_f32, logistic_f64,
                                      fsign, idiv, irem, fmax, fmin, hugepages,
                                      sin_f32, cos_f32, sin_f32_small, cos_f32_small)

'''

# vmath helpers imported only by the kernels calling them (the source, and so the cache key, of
# every other kernel stays as it was)
_OPTIONAL_HELPERS = ("cabs_c64", "reduce_precision_f32", "reduce_precision_f64", "bitcast_as",
                     "gemm_acc")

SUPPORTED_KINDS = "biufc"


def dtype_ctor(dtype):
    """The numba-callable constructor of a dtype, as source ('np.float32')."""
    dtype = np.dtype(dtype)
    return "np.bool_" if dtype == np.bool_ else f"np.{dtype.name}"


def dtype_supported(dtype):
    """True if numba can hold arrays of this dtype (no float16, no structured float0)."""
    dtype = np.dtype(dtype)
    return dtype.kind in SUPPORTED_KINDS and dtype != np.float16


# ---------------------------------------------------------------------------------------------
# Scalar rules for fused elementwise ops: f(args, dtype_in, dtype_out, params) -> expression

def _unary_float(f32=None, f64=None, generic=None):
    def rule(a, din, dout, p):
        if din == np.float32 and f32:
            return f"{f32}({a[0]})"
        if din == np.float64 and f64:
            return f"{f64}({a[0]})"
        return f"{generic}({a[0]})"
    return rule


def _binary(op):
    return lambda a, din, dout, p: f"({a[0]} {op} {a[1]})"


def _int_pow(a, din, dout, p):
    y = p["y"]
    if y == 0:
        return f"({a[0]} - {a[0]} + 1)"
    n, base, terms = abs(y), a[0], []
    # binary exponentiation spelled out: x**5 = x * (x*x)*(x*x)
    powers, k = [base], 1
    while 2 ** k <= n:
        powers.append(f"({powers[-1]} * {powers[-1]})")
        k += 1
    for bit, pw in enumerate(powers):
        if n >> bit & 1:
            terms.append(pw)
    prod = " * ".join(terms)
    if y < 0:
        return _reciprocal(f"({prod})", din)
    return f"({prod})"


def _reciprocal(expr, din):
    """1 / expr; numba's complex '/' raises ZeroDivisionError where NumPy gives inf/nan, its
    np.divide does not."""
    return f"np.divide(1, {expr})" if din.kind == "c" else f"(1 / {expr})"


def _div(a, din, dout, p):
    if din.kind == "c":
        return f"np.divide({a[0]}, {a[1]})"    # (see _reciprocal)
    return f"idiv({a[0]}, {a[1]})" if din.kind in "iu" else f"({a[0]} / {a[1]})"


def _rem(a, din, dout, p):
    return f"irem({a[0]}, {a[1]})" if din.kind in "iu" else f"np.fmod({a[0]}, {a[1]})"


def _shift_left(a, din, dout, p):
    bits = 8 * din.itemsize
    return f"(({a[0]} - {a[0]}) if ({a[1]} < 0 or {a[1]} >= {bits}) else ({a[0]} << {a[1]}))"


def _shift_right_logical(a, din, dout, p):
    bits, u = 8 * din.itemsize, f"np.uint{8 * din.itemsize}"
    return f"({u}(0) if ({a[1]} < 0 or {a[1]} >= {bits}) else ({u}({a[0]}) >> {u}({a[1]})))"


def _logical(op_int, op_bool):
    return lambda a, din, dout, p: f"({a[0]} {op_bool if din == np.bool_ else op_int} {a[1]})"


def _select_n(a, din, dout, p):
    return plan_mod.select_expr(a[0], a[1:])


def _convert(a, din, dout, p):
    if din.kind == "c" and dout.kind != "c":    # complex to real (bool too) keeps the real
        a = [f"({a[0]}).real"]                  # part, as lax's impl
    return f"({a[0]} != 0)" if dout == np.bool_ else a[0]


def _sign(a, din, dout, p):
    if din.kind == "u":
        return f"(1 if {a[0]} > 0 else 0)"
    return f"fsign({a[0]})"


def _not(a, din, dout, p):
    return f"(not {a[0]})" if din == np.bool_ else f"(~{a[0]})"


def _max_min(f, op_bool):
    def rule(a, din, dout, p):
        return f"({a[0]} {op_bool} {a[1]})" if din == np.bool_ else f"{f}({a[0]}, {a[1]})"
    return rule


def _mul(a, din, dout, p):
    return f"({a[0]} & {a[1]})" if din == np.bool_ else f"({a[0]} * {a[1]})"


SCALAR_RULES = {
    "neg": lambda a, din, dout, p: f"(-{a[0]})",
    "sign": _sign,
    "floor": _unary_float(generic="np.floor"),
    "ceil": _unary_float(generic="np.ceil"),
    "round": _unary_float(generic="np.rint"),
    "is_finite": _unary_float(generic="np.isfinite"),
    "abs": lambda a, din, dout, p: (f"cabs_c64({a[0]})" if din == np.complex64
                                    else f"abs({a[0]})"),
    "exp": _unary_float(f32="exp_f32", generic="math.exp"),
    "exp2": _unary_float(generic="np.exp2"),
    "log": _unary_float(f32="log_f32", generic="np.log"),
    "log1p": _unary_float(generic="np.log1p"),
    "expm1": _unary_float(generic="np.expm1"),
    "tanh": _unary_float(f32="tanh_f32", generic="math.tanh"),
    "logistic": _unary_float(f32="logistic_f32", f64="logistic_f64", generic="logistic_f64"),
    "sin": _unary_float(f32="sin_f32", generic="math.sin"),
    "cos": _unary_float(f32="cos_f32", generic="math.cos"),
    "tan": _unary_float(generic="math.tan"),
    "asin": _unary_float(generic="np.arcsin"),
    "acos": _unary_float(generic="np.arccos"),
    "atan": _unary_float(generic="math.atan"),
    "sinh": _unary_float(generic="np.sinh"),
    "cosh": _unary_float(generic="np.cosh"),
    "asinh": _unary_float(generic="np.arcsinh"),
    "acosh": _unary_float(generic="np.arccosh"),
    "atanh": _unary_float(generic="np.arctanh"),
    "sqrt": _unary_float(generic="np.sqrt"),
    "rsqrt": lambda a, din, dout, p: _reciprocal(f"np.sqrt({a[0]})", din),
    "cbrt": _unary_float(generic="np.cbrt"),
    "erf": _unary_float(generic="math.erf"),
    "not": _not,
    "stop_gradient": lambda a, din, dout, p: a[0],
    "integer_pow": _int_pow,
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _mul,
    "div": _div,
    "rem": _rem,
    "pow": _binary("**"),
    "max": _max_min("fmax", "|"),
    "min": _max_min("fmin", "&"),
    "atan2": lambda a, din, dout, p: f"math.atan2({a[0]}, {a[1]})",
    "and": _logical("&", "&"),
    "or": _logical("|", "|"),
    "xor": _logical("^", "!="),
    "shift_left": _shift_left,
    "shift_right_logical": _shift_right_logical,
    "eq": _binary("=="),
    "ne": _binary("!="),
    "lt": _binary("<"),
    "le": _binary("<="),
    "gt": _binary(">"),
    "ge": _binary(">="),
    "select_n": _select_n,
    "convert_element_type": _convert,
    "bitcast_convert_type": lambda a, din, dout, p: (
        a[0] if din == dout else f"bitcast_as({a[0]}, {dtype_ctor(dout)})"),
    "reduce_precision": lambda a, din, dout, p: (
        f"reduce_precision_{'f32' if din == np.float32 else 'f64'}"
        f"({a[0]}, {p['exponent_bits']}, {p['mantissa_bits']})"),
}


# Complex operands: numba's np.* ufuncs take complex scalars (math.* and the float32 helpers
# do not); these wrap the real-valued rules of the functions defined on the complex plane.
_COMPLEX_UFUNCS = {
    "exp": "np.exp", "exp2": "np.exp2", "log": "np.log", "log1p": "np.log1p",
    "expm1": "np.expm1", "tanh": "np.tanh", "sin": "np.sin", "cos": "np.cos", "tan": "np.tan",
    "asin": "np.arcsin", "acos": "np.arccos", "atan": "np.arctan", "sinh": "np.sinh",
    "cosh": "np.cosh", "asinh": "np.arcsinh", "acosh": "np.arccosh", "atanh": "np.arctanh",
    "sqrt": "np.sqrt", "sign": "np.sign"}


def _or_complex(rule, ufunc):
    def either(a, din, dout, p):
        return f"{ufunc}({a[0]})" if din.kind == "c" else rule(a, din, dout, p)
    return either


for _name, _ufunc in _COMPLEX_UFUNCS.items():
    SCALAR_RULES[_name] = _or_complex(SCALAR_RULES[_name], _ufunc)


def _logistic(a, din, dout, p):
    if din.kind == "c":
        return _reciprocal(f"(1 + np.exp(-{a[0]}))", din)
    return _unary_float(f32="logistic_f32", f64="logistic_f64", generic="logistic_f64")(
        a, din, dout, p)


SCALAR_RULES["logistic"] = _logistic
SCALAR_RULES.update({
    "real": lambda a, din, dout, p: f"({a[0]}).real",
    "imag": lambda a, din, dout, p: f"({a[0]}).imag",
    "conj": lambda a, din, dout, p: f"({a[0]}).conjugate()",
    "complex": lambda a, din, dout, p: f"complex({a[0]}, {a[1]})",
})


def _special(fname):
    """The rule calling a float64 helper of vmath.py on the operands (polygamma's order m goes
    first), cast back to the operands' dtype."""
    def rule(a, din, dout, p):
        args = ([str(p["m"])] if "m" in p else []) + list(a)
        return f"{dtype_ctor(dout)}({fname}({', '.join(args)}))"
    return rule


_HEADER += ("from functrans.backends.vmath import (digamma_f64, polygamma_f64, erfinv_f64, "
            "ndtri_f64, igamma_f64, igammac_f64, igamma_grad_a_f64, random_gamma_grad_f64, "
            "betainc_f64)\n")
SCALAR_RULES.update({
    "lgamma": _unary_float(generic="math.lgamma"),
    "erfc": _unary_float(generic="math.erfc"),
    "digamma": _special("digamma_f64"),
    "polygamma": _special("polygamma_f64"),
    "erf_inv": _special("erfinv_f64"),
    "ndtri": _special("ndtri_f64"),
    "igamma": _special("igamma_f64"),
    "igammac": _special("igammac_f64"),
    "igamma_grad_a": _special("igamma_grad_a_f64"),
    "random_gamma_grad": _special("random_gamma_grad_f64"),
    "regularized_incomplete_beta": _special("betainc_f64"),
})


# reductions: (combine(acc, v, dtype) -> expr, identity(dtype))
def _ident_max(dt):
    return -np.inf if dt.kind == "f" else (np.iinfo(dt).min if dt.kind in "iu" else False)


def _ident_min(dt):
    return np.inf if dt.kind == "f" else (np.iinfo(dt).max if dt.kind in "iu" else True)


REDUCE_RULES = {
    "reduce_sum": (lambda acc, v, dt: f"{acc} + {v}", lambda dt: 0),
    "reduce_prod": (lambda acc, v, dt: f"{acc} * {v}", lambda dt: 1),
    "reduce_max": (lambda acc, v, dt: f"fmax({acc}, {v})" if dt != np.bool_ else f"{acc} | {v}",
                   _ident_max),
    "reduce_min": (lambda acc, v, dt: f"fmin({acc}, {v})" if dt != np.bool_ else f"{acc} & {v}",
                   _ident_min),
}


def _tuple(items):
    items = list(items)
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _index(items):
    items = list(items)
    return ", ".join(items) if items else "()"


# ---------------------------------------------------------------------------------------------

class Emitter:
    """Accumulates the kernel source, the dims vector D and the literal vectors L_<dtype>."""

    def __init__(self, name="kernel"):
        self.name = name
        self.header, self.body = [], []
        self.dims = []                 # the run-time values of D
        self.lits = {}                 # dtype name -> list of values
        self.names, self.shapes = {}, {}
        self.counter = 0
        self.ind = 1
        self.const_args, self.const_vals = [], []   # constants of nested control-flow jaxprs

    def const_arg(self, value):
        """A kernel argument holding a constant array of a nested jaxpr."""
        name = f"k{len(self.const_args)}"
        self.const_args.append(name)
        self.const_vals.append(np.ascontiguousarray(value))
        return name

    # -- names, dims, literals
    def fresh(self, prefix):
        self.counter += 1
        return f"{prefix}{self.counter}"

    def dim(self, value):
        """A local holding the integer ``value`` read from D (shape erasure)."""
        k = len(self.dims)
        self.dims.append(int(value))
        name = f"d{k}"
        self.header.append(f"{name} = D[{k}]")
        return name

    def lit(self, value, dtype):
        """A typed local holding a literal read from L_<dtype>."""
        dtype = np.dtype(dtype)
        vals = self.lits.setdefault(dtype.name, [])
        name = self.fresh("c")
        self.header.append(f"{name} = L_{dtype.name}[{len(vals)}]")
        vals.append(np.asarray(value, dtype).item() if dtype.kind != "c" else complex(value))
        return name

    def new_shape(self, aval):
        return tuple(self.dim(d) for d in aval.shape)

    def line(self, text):
        self.body.append("    " * self.ind + text)

    def alloc(self, var):
        """Allocate the buffer of var; returns its name."""
        name = self.names[var] = self.fresh("v")
        self.line(f"{name} = hugepages(np.empty({_tuple(self.shapes[var])}, "
                  f"dtype={dtype_ctor(var.aval.dtype)}))")
        return name

    def array(self, v):
        """The array name of an input var (a Literal is put in a 0-d array)."""
        if type(v) is Literal:
            name = self.fresh("v")
            self.line(f"{name} = np.empty((), dtype={dtype_ctor(v.aval.dtype)})")
            self.line(f"{name}[()] = {self.lit(v.val, v.aval.dtype)}")
            return name
        return self.names[v]

    def shape_of(self, v):
        return () if type(v) is Literal else self.shapes[v]

    def cast(self, expr, dtype):
        return f"{dtype_ctor(dtype)}({expr})"


# ---------------------------------------------------------------------------------------------
# Shapes of new vars (structural where the primitive fixes them, else fresh D slots)

def _assign_shapes(em, eqn):
    name = eqn.primitive.name
    outs = eqn.out_binders
    arrays = [v for v in eqn.inputs if type(v) is Var]
    if plan_mod.is_elementwise(eqn):
        src = next((v for v in arrays if v.aval.shape == outs[0].aval.shape), None)
        em.shapes[outs[0]] = em.shapes[src] if src is not None else em.new_shape(outs[0].aval)
    elif name in plan_mod.REDUCTIONS:
        axes = eqn.params["axes"]
        sh = em.shape_of(eqn.inputs[0])
        em.shapes[outs[0]] = tuple(d for i, d in enumerate(sh) if i not in axes)
    elif name == "transpose":
        sh = em.shape_of(eqn.inputs[0])
        em.shapes[outs[0]] = tuple(sh[p] for p in eqn.params["permutation"])
    elif name == "rev":
        em.shapes[outs[0]] = em.shape_of(eqn.inputs[0])
    else:
        for o in outs:
            em.shapes[o] = em.new_shape(o.aval)


# ---------------------------------------------------------------------------------------------
# Fused groups

def _emit_group(em, g, materialized, in_place):
    """The loop nest of a group. ``in_place`` maps outputs to dead inputs of the same shape and
    dtype whose buffers they are written into (see in_place_outputs)."""
    shape = em.shapes[g.shape_var]
    r = len(shape)
    idx = [f"i{k}" for k in range(r)]
    pre = [[] for _ in range(r + 1)]     # lines before loop k opens (at depth k)
    post = [[] for _ in range(r + 1)]    # lines after loop k closes
    body = []
    scal = {}                            # var -> scalar local inside the loop body
    loaded = {}

    def read(v):
        if type(v) is Literal:
            return em.lit(v.val, v.aval.dtype)
        if v in scal:
            return scal[v]
        if v not in loaded:
            s = em.fresh("s")
            body.append(f"{s} = {em.names[v]}[{_index(idx)}]")
            loaded[v] = s
        return loaded[v]

    for eqn in g.eqns:   # buffers first: they must exist before the loop nest
        for o in eqn.out_binders:
            if o in in_place:
                em.names[o] = em.names[in_place[o]]
            elif o in materialized:
                em.alloc(o)
    for v in in_place.values():   # an element is read before the same element is overwritten
        read(v)

    trig_args = []                       # float32 sin/cos arguments (see _emit_nests)
    for eqn in g.eqns:
        name, out = eqn.primitive.name, eqn.out_binders[0]
        dout = out.aval.dtype
        if name in ("sin", "cos") and dout == np.float32:
            trig_args.append(read(eqn.inputs[0]))
        if name in plan_mod.REDUCTIONS:
            _emit_reduction(em, eqn, read(eqn.inputs[0]), idx, pre, post, body)
            continue
        if name in SCALAR_RULES:
            din = eqn.inputs[-1].aval.dtype if name == "select_n" else eqn.inputs[0].aval.dtype
            expr = SCALAR_RULES[name]([read(v) for v in eqn.inputs], din, dout, eqn.params)
        else:
            expr = _index_map_read(em, eqn, idx, read)
        s = em.fresh("s")
        body.append(f"{s} = {em.cast(expr, dout) if _needs_cast(eqn) else expr}")
        scal[out] = s
        if out in materialized:
            body.append(f"{em.names[out]}[{_index(idx)}] = {s}")

    if not trig_args and _transposes_minor_axes(g):
        _emit_tiled_nest(em, shape, idx, body)
    else:
        _emit_nests(em, shape, idx, pre, post, body, trig_args)


TILE = 32     # 32 x 32 float64 tiles: the read and write tiles of a transpose stay in L1


def _transposes_minor_axes(g):
    """True for a group without reductions reading an operand through a transpose that moves
    its last axis: its rows are read down a column, a cache line per element, and an array
    with a power-of-two row length maps a column onto a few cache sets (1024 x 1024 float64
    a + a.T: 8 ms row by row, 2 ms in tiles)."""
    return not any(e.primitive.name in plan_mod.REDUCTIONS for e in g.eqns) and any(
        e.primitive.name == "transpose" and e.params["permutation"][-1] != len(
            e.params["permutation"]) - 1 for e in g.eqns)


def _emit_tiled_nest(em, shape, idx, body):
    """The loop nest with its two innermost loops cut into TILE x TILE tiles."""
    r = len(shape)
    for k in range(r - 2):
        em.line(f"for {idx[k]} in range({shape[k]}):")
        em.ind += 1
    tiles = [em.fresh("t") for _ in range(2)]
    for t, n in zip(tiles, shape[r - 2:]):
        em.line(f"for {t} in range(0, {n}, {TILE}):")
        em.ind += 1
    for k, t in zip(range(r - 2, r), tiles):
        em.line(f"for {idx[k]} in range({t}, min({t} + {TILE}, {shape[k]})):")
        em.ind += 1
    for ln in body:
        em.line(ln)
    em.ind -= r + 2


def _emit_loop_nest(em, shape, idx, pre, post, body):
    r = len(shape)
    for k in range(r + 1):
        for ln in pre[k]:
            em.line(ln)
        if k < r:
            em.line(f"for {idx[k]} in range({shape[k]}):")
            em.ind += 1
    for ln in body:
        em.line(ln)
    for k in range(r, -1, -1):
        if k < r:
            em.ind -= 1
        for ln in post[k]:
            em.line(ln)


def _emit_nests(em, shape, idx, pre, post, body, trig_args):
    """The loop nest; with float32 sin/cos in it, twice: first with the inlined, vectorisable
    versions (valid for finite |x| < 2**23) and a flag raised by any other argument, then, only
    if the flag is up, again with the full ones (every output and accumulator is rewritten)."""
    if not trig_args:
        _emit_loop_nest(em, shape, idx, pre, post, body)
        return
    flag = em.fresh("far")
    fast = [ln.replace("sin_f32(", "sin_f32_small(").replace("cos_f32(", "cos_f32_small(")
            for ln in body]
    fast += [f"{flag} = {flag} | (not (abs({a}) < np.float32(8388608.0)))" for a in trig_args]
    em.line(f"{flag} = False")
    _emit_loop_nest(em, shape, idx, pre, post, fast)
    em.line(f"if {flag}:")
    em.ind += 1
    _emit_loop_nest(em, shape, idx, pre, post, body)
    em.ind -= 1


# float ops whose numba result already has the operands' dtype (smaller code, faster compiles)
_SAME_TYPE_FLOAT_OPS = {"add", "sub", "mul", "div", "neg", "max", "min", "select_n", "abs",
                        "stop_gradient", "integer_pow"}
_F32_HELPERS = {"exp", "log", "tanh", "logistic", "sin", "cos"}
_COMPARISONS = {"eq", "ne", "lt", "le", "gt", "ge"}


def _needs_cast(eqn):
    """False where the scalar expression provably has the output dtype already."""
    name, dout = eqn.primitive.name, eqn.out_binders[0].aval.dtype
    if name in plan_mod.INDEX_MAPS:
        return name == "iota" or any(type(v) is Literal for v in eqn.inputs)
    if name in _COMPARISONS:
        return dout != np.bool_
    if name == "bitcast_convert_type":     # bitcast_as returns dout's type
        return False
    if dout.kind != "f" or any(v.aval.dtype != dout for v in eqn.inputs[name == "select_n":]):
        return True
    if name in _SAME_TYPE_FLOAT_OPS:
        return name == "integer_pow" and eqn.params["y"] <= 0
    return not (dout == np.float32 and name in _F32_HELPERS)


def _emit_reduction(em, eqn, v, idx, pre, post, body):
    axes = tuple(eqn.params["axes"])
    out = eqn.out_binders[0]
    dt = out.aval.dtype
    combine, ident = REDUCE_RULES[eqn.primitive.name]
    r = len(idx)
    kept = [idx[i] for i in range(r) if i not in axes]
    buf = em.names[out]
    if not axes:
        body.append(f"{buf}[{_index(idx)}] = {v}")
        return
    if axes == tuple(range(r - len(axes), r)):   # trailing axes: a register accumulator
        k = r - len(axes)
        acc = em.fresh("acc")
        # float32 sums accumulate in float64 (numpy sums pairwise; a long f32 chain drifts)
        at = np.dtype(np.float64) if dt == np.float32 and eqn.primitive.name == "reduce_sum" else dt
        pre[k].append(f"{acc} = {em.cast(em.lit(ident(dt), dt), at)}")
        body.append(f"{acc} = {em.cast(combine(acc, v, at), at)}")
        post[k].append(f"{buf}[{_index(kept)}] = {em.cast(acc, dt)}")
    else:
        pre[0].append(f"{buf}.fill({em.lit(ident(dt), dt)})")
        cell = f"{buf}[{_index(kept)}]"
        body.append(f"{cell} = {em.cast(combine(cell, v, dt), dt)}")


def _index_map_read(em, eqn, idx, read):
    if eqn.primitive.name == "iota":
        return idx[eqn.params["dimension"]]
    x = eqn.inputs[0]
    if type(x) is Literal:
        return read(x)
    ins = plan_mod.index_map_indices(eqn, idx, size=lambda d: em.shapes[x][d], num=em.dim)
    return f"{em.names[x]}[{_index(ins)}]"


# ---------------------------------------------------------------------------------------------
# Non-fused lowering rules: name -> f(em, eqn); the output buffers are allocated by the rule

lower_rules = {}


def _copy_loops(em, shape, body_fn):
    """Nested loops over shape; body_fn(index names) returns the innermost lines."""
    idx = [em.fresh("j") for _ in shape]
    for k, n in enumerate(shape):
        em.line(f"for {idx[k]} in range({n}):")
        em.ind += 1
    for ln in body_fn(idx):
        em.line(ln)
    em.ind -= len(shape)


def _lower_bitcast(em, eqn):
    """bitcast_convert_type between widths: a view of the operand's bytes (equal widths are
    fused elementwise: SCALAR_RULES)."""
    out = eqn.out_binders[0]
    em.names[out] = em.fresh("v")
    em.line(f"{em.names[out]} = np.ascontiguousarray({em.array(eqn.inputs[0])}).ravel()"
            f".view({dtype_ctor(out.aval.dtype)}).reshape({_tuple(em.shapes[out])})")


def _lower_reshape(em, eqn):
    out = eqn.out_binders[0]
    em.names[out] = em.fresh("v")
    em.line(f"{em.names[out]} = {em.array(eqn.inputs[0])}.reshape({_tuple(em.shapes[out])})")


def _lower_dot_general(em, eqn):
    x, y = eqn.inputs
    _emit_dot(em, x, y, eqn.params["dimension_numbers"], eqn.out_binders[0],
              em.alloc(eqn.out_binders[0]))


def _lower_dot_accumulate(em, eqn):
    """acc + x . y (plan.accumulate_dots) into acc's buffer: acc's only reader is this eqn."""
    acc, x, y = eqn.inputs
    out = eqn.out_binders[0]
    em.names[out] = em.names[acc]
    _emit_dot(em, x, y, eqn.params["dimension_numbers"], out, em.names[out], "gemm_acc")


def _emit_dot(em, x, y, dimension_numbers, out, o, call="np.dot"):
    """The product of x and y into buffer o: a BLAS call (``call``: np.dot, or gemm_acc adding
    into o) per batch element for floats, plain loops for integers."""
    (lc, rc), (lb, rb) = dimension_numbers
    xa, ya = x.aval, y.aval
    lf = [i for i in range(xa.ndim) if i not in lc and i not in lb]
    rf = [i for i in range(ya.ndim) if i not in rc and i not in rb]
    prod = lambda sh, ax: int(np.prod([sh[i] for i in ax], dtype=np.int64))  # noqa: E731
    B, M, K, N = (em.dim(prod(xa.shape, lb)), em.dim(prod(xa.shape, lf)),
                  em.dim(prod(xa.shape, lc)), em.dim(prod(ya.shape, rf)))
    xn, yn = em.array(x), em.array(y)

    def operand(name, perm, dims3, swap_ok):
        """name as a 3-D (B, rows, cols) array; a 2-D swap becomes a free .T view."""
        nd = len(perm)
        if list(perm) == list(range(nd)):
            return f"{name}.reshape({_tuple(dims3)})", False
        if swap_ok and nd == 2 and list(perm) == [1, 0]:
            return f"{name}.reshape({_tuple((dims3[0], dims3[2], dims3[1]))})", True
        t = em.fresh("t")
        em.line(f"{t} = np.ascontiguousarray(np.transpose({name}, {_tuple(map(str, perm))}))")
        return f"{t}.reshape({_tuple(dims3)})", False

    blas = xa.dtype.kind in "fc" and not lb
    x3, xT = operand(xn, list(lb) + lf + list(lc), (B, M, K), blas)
    y3, yT = operand(yn, list(rb) + list(rc) + rf, (B, K, N), blas)
    xs, ys = em.fresh("x"), em.fresh("y")
    em.line(f"{xs} = {x3}")
    em.line(f"{ys} = {y3}")
    o3 = em.fresh("o")
    em.line(f"{o3} = {o}.reshape({_tuple((B, M, N))})")
    odt = out.aval.dtype
    if xa.dtype.kind in "fc" and xa.dtype == odt:
        em.line(f"for b in range({B}):")
        a_ = f"{xs}[b].T" if xT else f"{xs}[b]"
        b_ = f"{ys}[b].T" if yT else f"{ys}[b]"
        em.line(f"    {call}({a_}, {b_}, {o3}[b])")
        return
    assert call == "np.dot", "accumulated products are float or complex (plan.accumulate_dots)"
    # integer (or mixed-output) contraction: plain loops
    xi = (lambda b, m, k: f"{xs}[{b}, {k}, {m}]") if xT else (lambda b, m, k: f"{xs}[{b}, {m}, {k}]")
    yi = (lambda b, k, n: f"{ys}[{b}, {n}, {k}]") if yT else (lambda b, k, n: f"{ys}[{b}, {k}, {n}]")
    z = em.lit(0, odt)
    em.line(f"{o3}.fill({z})")
    em.line(f"for b in range({B}):")
    em.line(f"    for m in range({M}):")
    em.line(f"        for k in range({K}):")
    em.line(f"            xv = {em.cast(xi('b', 'm', 'k'), odt)}")
    em.line(f"            for n in range({N}):")
    em.line(f"                {o3}[b, m, n] = {em.cast(f'{o3}[b, m, n] + xv * ' + em.cast(yi('b', 'k', 'n'), odt), odt)}")


def _pqn(em, x, axis):
    sh = x.aval.shape
    P = em.dim(int(np.prod(sh[:axis], dtype=np.int64)))
    N = em.dim(sh[axis])
    Q = em.dim(int(np.prod(sh[axis + 1:], dtype=np.int64)))
    return P, N, Q


def _lower_cumulative(combine):
    def rule(em, eqn):
        x = eqn.inputs[0]
        out = eqn.out_binders[0]
        dt = out.aval.dtype
        P, N, Q = _pqn(em, x, eqn.params["axis"])
        o = em.alloc(out)
        x3, o3 = em.fresh("x"), em.fresh("o")
        em.line(f"{x3} = {em.array(x)}.reshape(({P}, {N}, {Q}))")
        em.line(f"{o3} = {o}.reshape(({P}, {N}, {Q}))")
        rng = f"range({N} - 1, -1, -1)" if eqn.params["reverse"] else f"range({N})"
        prev = "k + 1" if eqn.params["reverse"] else "k - 1"
        first = f"{N} - 1" if eqn.params["reverse"] else "0"
        em.line(f"for p in range({P}):")
        em.line(f"    for k in {rng}:")
        em.line(f"        for q in range({Q}):")
        em.line(f"            if k == {first}:")
        em.line(f"                {o3}[p, k, q] = {x3}[p, k, q]")
        em.line("            else:")
        em.line(f"                {o3}[p, k, q] = {em.cast(combine(f'{o3}[p, {prev}, q]', f'{x3}[p, k, q]', dt), dt)}")
    return rule


def _lower_argminmax(better):
    def rule(em, eqn):
        x = eqn.inputs[0]
        out = eqn.out_binders[0]
        (axis,) = eqn.params["axes"]
        if x.aval.shape[axis] == 0:
            raise ValueError(f"attempt to get {eqn.primitive.name} of an empty sequence")
        P, N, Q = _pqn(em, x, axis)
        o = em.alloc(out)
        x3, o2 = em.fresh("x"), em.fresh("o")
        em.line(f"{x3} = {em.array(x)}.reshape(({P}, {N}, {Q}))")
        em.line(f"{o2} = {o}.reshape(({P}, {Q}))")
        nan_first = x.aval.dtype.kind in "fc"
        em.line(f"for p in range({P}):")
        em.line(f"    for q in range({Q}):")
        em.line(f"        best = {x3}[p, 0, q]")
        em.line("        bi = 0")
        em.line(f"        for k in range(1, {N}):")
        em.line(f"            v = {x3}[p, k, q]")
        if nan_first:
            em.line("            if best != best:")
            em.line("                break")
            em.line(f"            if v != v or v {better} best:")
        else:
            em.line(f"            if v {better} best:")
        em.line("                best = v")
        em.line("                bi = k")
        em.line(f"        {o2}[p, q] = bi")
    return rule


def _lower_pad(em, eqn):
    x, pv = eqn.inputs
    out = eqn.out_binders[0]
    o = em.alloc(out)
    fill = em.lit(pv.val, pv.aval.dtype) if type(pv) is Literal else f"{em.array(pv)}[()]"
    # numba has no fill() for 0-d arrays (a 0-d pad is a copy: the fill is overwritten)
    em.line(f"{o}[()] = {fill}" if not em.shapes[out] else f"{o}.fill({fill})")
    xs, osh = em.shape_of(x), em.shapes[out]
    cfg = eqn.params["padding_config"]
    xn = em.array(x)

    def body(idx):
        pos, conds, lines = [em.fresh("p") for _ in cfg], [], []
        for k, (lo, hi, it) in enumerate(cfg):
            lines.append(f"{pos[k]} = {em.dim(lo)} + {idx[k]} * {em.dim(it + 1)}")
            conds.append(f"0 <= {pos[k]} < {osh[k]}")
        test = " and ".join(conds) or "True"
        lines.append(f"if {test}:")
        lines.append(f"    {o}[{_index(pos)}] = {xn}[{_index(idx)}]")
        return lines
    _copy_loops(em, xs, body)


def _lower_concatenate(em, eqn):
    out = eqn.out_binders[0]
    dim = eqn.params["dimension"]
    o = em.alloc(out)
    offset = 0
    for x in eqn.inputs:
        xn, off = em.array(x), em.dim(offset)
        em_idx = lambda idx: [f"{off} + {i}" if k == dim else i for k, i in enumerate(idx)]  # noqa: E731
        _copy_loops(em, em.shape_of(x), lambda idx: [f"{o}[{_index(em_idx(idx))}] = {xn}[{_index(idx)}]"])
        offset += x.aval.shape[dim]


lower_rules.update({
    "reshape": _lower_reshape,
    "bitcast_convert_type": _lower_bitcast,
    "dot_general": _lower_dot_general,
    "dot_accumulate": _lower_dot_accumulate,
    "cumsum": _lower_cumulative(lambda a, b, dt: f"{a} + {b}"),
    "cumprod": _lower_cumulative(lambda a, b, dt: f"{a} * {b}"),
    "cummax": _lower_cumulative(lambda a, b, dt: f"fmax({a}, {b})" if dt != np.bool_ else f"{a} | {b}"),
    "cummin": _lower_cumulative(lambda a, b, dt: f"fmin({a}, {b})" if dt != np.bool_ else f"{a} & {b}"),
    "argmax": _lower_argminmax(">"),
    "argmin": _lower_argminmax("<"),
    "pad": _lower_pad,
    "concatenate": _lower_concatenate,
})


def _clamped_starts(em, eqn, starts, x_shape, sizes):
    names = []
    for s, n, k in zip(starts, x_shape, sizes):
        v = em.lit(s.val, s.aval.dtype) if type(s) is Literal else f"{em.array(s)}[()]"
        c = em.fresh("st")
        em.line(f"{c} = min(max(np.int64({v}), 0), {em.dim(n - k)})")
        names.append(c)
    return names


def _lower_dynamic_slice(em, eqn):
    x, *starts = eqn.inputs
    out = eqn.out_binders[0]
    o, xn = em.alloc(out), em.array(x)
    st = _clamped_starts(em, eqn, starts, x.aval.shape, eqn.params["slice_sizes"])
    _copy_loops(em, em.shapes[out], lambda idx: [
        f"{o}[{_index(idx)}] = {xn}[{_index(f'{s} + {i}' for s, i in zip(st, idx))}]"])


def _lower_dynamic_update_slice(em, eqn):
    x, u, *starts = eqn.inputs
    out = eqn.out_binders[0]
    o = em.names[out] = em.fresh("v")
    em.line(f"{o} = {em.array(x)}.copy()")
    un = em.array(u)
    st = _clamped_starts(em, eqn, starts, x.aval.shape, u.aval.shape)
    _copy_loops(em, em.shape_of(u), lambda idx: [
        f"{o}[{_index(f'{s} + {i}' for s, i in zip(st, idx))}] = {un}[{_index(idx)}]"])


def _axes_first(em, x, axes):
    """(source of x as a contiguous (NI, R) array with the indexed axes first, perm, NI, R)."""
    nd = x.aval.ndim
    rest = [d for d in range(nd) if d not in axes]
    perm = list(axes) + rest
    sh = x.aval.shape
    NI = em.dim(int(np.prod([sh[a] for a in axes], dtype=np.int64)))
    R = em.dim(int(np.prod([sh[d] for d in rest], dtype=np.int64)))
    xn = em.array(x)
    src = xn if perm == list(range(nd)) else \
        f"np.ascontiguousarray(np.transpose({xn}, {_tuple(map(str, perm))}))"
    return src, perm, NI, R


def _flat_index_lines(em, ix, axes, x_shape, clamp):
    """Lines computing 'f' (flat index over the indexed axes) and 'ok' for row b of ix."""
    lines = ["f = 0", "ok = True"]
    for j, a in enumerate(axes):
        n = em.dim(x_shape[a])
        lines.append(f"c = np.int64({ix}[b, {j}])")
        if clamp:
            lines.append(f"c = min(max(c, 0), {n} - 1)")
        else:
            lines.append(f"ok = ok and 0 <= c < {n}")
        lines.append(f"f = f * {n} + c")
    return lines


def _lower_gather(em, eqn):
    x, idx = eqn.inputs
    out = eqn.out_binders[0]
    axes = eqn.params["axes"]
    o = em.alloc(out)
    src, perm, NI, R = _axes_first(em, x, axes)
    NB = em.dim(int(np.prod(idx.aval.shape[:-1], dtype=np.int64)))
    k = em.dim(len(axes))
    xt, ix, o2 = em.fresh("x"), em.fresh("ix"), em.fresh("o")
    em.line(f"{xt} = {src}.reshape(({NI}, {R}))")
    em.line(f"{ix} = {em.array(idx)}.reshape(({NB}, {k}))")
    em.line(f"{o2} = {o}.reshape(({NB}, {R}))")
    em.line(f"for b in range({NB}):")
    for ln in _flat_index_lines(em, ix, axes, x.aval.shape, clamp=True):
        em.line("    " + ln)
    em.line(f"    for r in range({R}):")
    em.line(f"        {o2}[b, r] = {xt}[f, r]")


def _lower_scatter(combine):
    def rule(em, eqn):
        x, idx, upd = eqn.inputs
        out = eqn.out_binders[0]
        axes = eqn.params["axes"]
        dt = out.aval.dtype
        src, perm, NI, R = _axes_first(em, x, axes)
        NB = em.dim(int(np.prod(idx.aval.shape[:-1], dtype=np.int64)))
        k = em.dim(len(axes))
        ot, ix, u2 = em.fresh("x"), em.fresh("ix"), em.fresh("u")
        em.line(f"{ot} = {src}.copy()" if src == em.array(x) else f"{ot} = {src}")
        em.line(f"{ix} = {em.array(idx)}.reshape(({NB}, {k}))")
        em.line(f"{u2} = {em.array(upd)}.reshape(({NB}, {R}))")
        o2 = em.fresh("o")
        em.line(f"{o2} = {ot}.reshape(({NI}, {R}))")
        em.line(f"for b in range({NB}):")
        for ln in _flat_index_lines(em, ix, axes, x.aval.shape, clamp=False):
            em.line("    " + ln)
        em.line("    if ok:")
        em.line(f"        for r in range({R}):")
        em.line(f"            {o2}[f, r] = {em.cast(combine(f'{o2}[f, r]', f'{u2}[b, r]'), dt)}")
        o = em.names[out] = em.fresh("v")
        if perm == list(range(len(perm))):
            em.line(f"{o} = {ot}")
        else:
            inv = tuple(int(i) for i in np.argsort(perm))
            em.line(f"{o} = np.ascontiguousarray(np.transpose({ot}, {_tuple(map(str, inv))}))")
    return rule


def _lower_sort(em, eqn):
    dim, nk = eqn.params["dimension"], eqn.params["num_keys"]
    x0 = eqn.inputs[0]
    P, N, Q = _pqn(em, x0, dim)
    ins = []
    for v in eqn.inputs:
        n = em.fresh("x")
        em.line(f"{n} = {em.array(v)}.reshape(({P}, {N}, {Q}))")
        ins.append(n)
    outs = []
    for o in eqn.out_binders:
        b = em.alloc(o)
        n = em.fresh("o")
        em.line(f"{n} = {b}.reshape(({P}, {N}, {Q}))")
        outs.append(n)
    em.line(f"for p in range({P}):")
    em.line(f"    for q in range({Q}):")
    em.line(f"        perm = np.arange({N})")
    for key in reversed(ins[:nk]):   # stable sorts from the last key: lexicographic order
        em.line(f"        perm = perm[np.argsort({key}[p, :, q][perm], kind='mergesort')]")
    for i_, o_ in zip(ins, outs):
        em.line(f"        {o_}[p, :, q] = {i_}[p, :, q][perm]")


# -- control flow: sub-jaxprs are emitted inline (native if / while / for)

def _emit_sub(em, closed, in_vars_or_names, in_shapes):
    """Emit a ClosedJaxpr's code at the current indentation; returns its output names."""
    kplan = plan_mod.make_plan(closed, rewrites=True, cpu_blas=True)
    nc = len(kplan.consts)
    for v, c in zip(kplan.inputs[:nc], kplan.consts):
        em.names[v] = em.const_arg(c)
        em.shapes[v] = tuple(f"{em.names[v]}.shape[{k}]" for k in range(v.aval.ndim))
    for v, n, sh in zip(kplan.inputs[nc:], in_vars_or_names, in_shapes):
        em.names[v], em.shapes[v] = n, sh
    return emit_plan(em, kplan)


def _names(em, vs):
    return [em.array(v) for v in vs], [em.shape_of(v) for v in vs]


def _bind_outs(em, eqn, names):
    for o in eqn.out_binders:
        if o not in em.names:
            em.names[o] = em.fresh("r")
    for o, n in zip(eqn.out_binders, names):
        em.line(f"{em.names[o]} = {n}")


def _lower_cond(em, eqn):
    index, *ops = eqn.inputs
    branches = eqn.params["branches"]
    names, shapes = _names(em, ops)
    iv = em.lit(index.val, index.aval.dtype) if type(index) is Literal else f"{em.array(index)}[()]"
    sel = em.fresh("br")
    em.line(f"{sel} = min(max(np.int64({iv}), 0), {len(branches) - 1})")
    for i, br in enumerate(branches):
        em.line(f"{'if' if i == 0 else 'elif' if i < len(branches) - 1 else 'else'}"
                + (f" {sel} == {i}:" if i < len(branches) - 1 else ":"))
        em.ind += 1
        _bind_outs(em, eqn, _emit_sub(em, br, names, shapes))
        em.ind -= 1


def _bind_fresh(em, prefix, exprs):
    """Fresh names (prefix + a counter), each bound to one of the expressions."""
    names = []
    for e in exprs:
        names.append(em.fresh(prefix))
        em.line(f"{names[-1]} = {e}")
    return names


def _init_carries(em, init):
    """Fresh loop-carried names bound to the initial values, and their shapes."""
    return _bind_fresh(em, "w", [em.array(v) for v in init]), [em.shape_of(v) for v in init]


def _lower_while(em, eqn):
    p = eqn.params
    cc, bc, init = plan_split(eqn.inputs, [p["cond_nconsts"], p["body_nconsts"]])
    cn, cs = _names(em, cc)
    bn, bs = _names(em, bc)
    carry, csh = _init_carries(em, init)
    em.line("while True:")
    em.ind += 1
    (pred,) = _emit_sub(em, p["cond_jaxpr"], cn + carry, cs + csh)
    em.line(f"if not {pred}[()]:")
    em.line("    break")
    new = _emit_sub(em, p["body_jaxpr"], bn + carry, bs + csh)
    if carry:  # one tuple assignment: new values may alias other carries
        em.line(f"{', '.join(carry)}, = {', '.join(new)},")
    em.ind -= 1
    for o, c in zip(eqn.out_binders, carry):
        em.names[o] = c


def _lower_scan(em, eqn):
    p = eqn.params
    consts, init, xs = plan_split(eqn.inputs, [p["num_consts"], p["num_carry"]])
    kn, ks = _names(em, consts)
    carry, csh = _init_carries(em, init)
    xn = [em.array(v) for v in xs]
    xsh = [em.shape_of(v)[1:] for v in xs]
    n_ys = len(eqn.out_binders) - len(init)
    ys = eqn.out_binders[len(init):]
    for y in ys:
        em.alloc(y)
    L = em.dim(p["length"])
    em.line(f"for it in range({L}):")
    em.ind += 1
    em.line(f"i = {L} - 1 - it" if p["reverse"] else "i = it")
    sl = []
    for n, v in zip(xn, xs):
        s = em.fresh("xi")
        em.line(f"{s} = {n}[i:i + 1].reshape(({', '.join(em.shape_of(v)[1:]) + (',' if v.aval.ndim == 2 else '')}))"
                if v.aval.ndim > 1 else f"{s} = {n}[i:i + 1].reshape(())")
        sl.append(s)
    outs = _emit_sub(em, p["jaxpr"], kn + carry + sl, ks + csh + xsh)
    # ys first and carries in one tuple assignment: outputs may alias the carry inputs
    for y, n in zip(ys, outs[len(carry):]):
        em.line(f"{em.names[y]}[i] = {n}" if y.aval.ndim > 1 else f"{em.names[y]}[i] = {n}[()]")
    if carry:
        em.line(f"{', '.join(carry)}, = {', '.join(outs[:len(carry)])},")
    em.ind -= 1
    assert n_ys == len(ys)
    for o, c in zip(eqn.out_binders, carry):
        em.names[o] = c


def plan_split(xs, sizes):
    xs, out = list(xs), []
    for n in sizes:
        out.append(xs[:n])
        xs = xs[n:]
    return out + [xs]


lower_rules.update({
    "dynamic_slice": _lower_dynamic_slice,
    "dynamic_update_slice": _lower_dynamic_update_slice,
    "gather": _lower_gather,
    "scatter_add": _lower_scatter(lambda a, b: f"{a} + {b}"),
    "scatter_mul": _lower_scatter(lambda a, b: f"{a} * {b}"),
    "scatter": _lower_scatter(lambda a, b: b),
    "sort": _lower_sort,
    "cond": _lower_cond,
    "while": _lower_while,
    "scan": _lower_scan,
})


# ---------------------------------------------------------------------------------------------
# conv_general_dilated: im2col per group into a column buffer covering the whole batch, then
# one matrix product with the group's kernel (np.dot, so BLAS for floats; loops for integers).
# Operands are brought to the (N, C, spatial...) / (O, I, spatial...) layouts and given leading
# spatial dims of size 1 up to three, so 1-, 2- and 3-d convolutions share one source (the real
# last dim stays the innermost loop). Only dims with an lhs dilation pay a division.

def _conv_canonical(em, v, spec):
    """v's array transposed to the layout spec lists (a contiguous copy only if it moves)."""
    name = em.array(v)
    if list(spec) == list(range(len(spec))):
        return name
    t = em.fresh("t")
    em.line(f"{t} = np.ascontiguousarray(np.transpose({name}, {_tuple(map(str, spec))}))")
    return t


def _emit_conv_run(em, u, read, write, outer_ok, n_run, first, step, size, ld, dilated, zero):
    """One run of im2col cells t < n_run reading the lhs at the dilated, padded position
    first + t * step of its last spatial dim (size entries, dilation ld). Undilated, the
    in-range cells are found once: a branch-free copy between two zero fills."""
    t = u + "t"
    if dilated:
        q, il = u + "q", u + "il"
        em.line(f"for {t} in range({n_run}):")
        em.line(f"    {q} = {first} + {t} * {step}")
        em.line(f"    {il} = {q} // {ld}")
        em.line(f"    if {outer_ok} and {q} >= 0 and {il} * {ld} == {q} and {il} < {size}:")
        em.line(f"        {write(t)} = {read(il)}")
        em.line("    else:")
        em.line(f"        {write(t)} = {zero}")
        return
    lo_, hi_ = u + "tlo", u + "thi"
    em.line(f"{lo_} = min(max(-(({first}) // {step}), 0), {n_run})")         # first + t*step >= 0
    em.line(f"{hi_} = max(min(-(({first} - {size}) // {step}), {n_run}), {lo_})")  # ... >= size
    em.line(f"if not {outer_ok}:")
    em.line(f"    {lo_} = {n_run}")
    em.line(f"    {hi_} = {n_run}")
    em.line(f"for {t} in range({lo_}):")
    em.line(f"    {write(t)} = {zero}")
    em.line(f"for {t} in range({lo_}, {hi_}):")
    em.line(f"    {write(t)} = {read(f'{first} + {t} * {step}')}")
    em.line(f"for {t} in range({hi_}, {n_run}):")
    em.line(f"    {write(t)} = {zero}")


def _lower_conv(em, eqn):
    x, w = eqn.inputs
    out = eqn.out_binders[0]
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    odt = out.aval.dtype
    xs = [x.aval.shape[i] for i in lhs_spec]
    ws = [w.aval.shape[i] for i in rhs_spec]
    os_ = [out.aval.shape[i] for i in out_spec]
    nsp = len(xs) - 2
    r = max(nsp, 3)
    fill = lambda v, f: [f] * (r - nsp) + list(v)   # noqa: E731  (innermost stays real)
    groups = max(p["feature_group_count"], p["batch_group_count"])
    bgc = p["batch_group_count"] > 1
    # runs go along the longer of the last kernel dim and the last output dim (a weight
    # gradient's "kernel" is the whole output): the column buffer is then stored transposed
    kernel_runs = fill(ws[2:], 1)[-1] > fill(os_[2:], 1)[-1]
    u = em.fresh("cv") + "_"
    S = [em.dim(d) for d in fill(xs[2:], 1)]
    K = [em.dim(d) for d in fill(ws[2:], 1)]
    P = [em.dim(d) for d in fill(os_[2:], 1)]
    st = [em.dim(d) for d in fill(p["window_strides"], 1)]
    ld = [em.dim(d) for d in fill(p["lhs_dilation"], 1)]
    dilated = [d > 1 for d in fill(p["lhs_dilation"], 1)]
    rd = [em.dim(d) for d in fill(p["rhs_dilation"], 1)]
    lo = [em.dim(d) for d, _ in fill(p["padding"], (0, 0))]
    NL, CL, N, G, Og, Cg = (em.dim(d) for d in (xs[0], xs[1], os_[0], groups, ws[0] // groups, ws[1]))
    PP, R = em.dim(math.prod(os_[2:])), em.dim(ws[1] * math.prod(ws[2:]))
    # a batch group's lhs entries are a block of the batch; a feature group's a block of features
    bstep, cstep = em.dim(os_[0] if bgc else 0), em.dim(0 if bgc else ws[1])
    xv, wv, ov, cols = u + "x", u + "w", u + "o", u + "cols"
    em.line(f"{xv} = {_conv_canonical(em, x, lhs_spec)}.reshape({_tuple([NL, CL] + S)})")
    wexpr = f"{_conv_canonical(em, w, rhs_spec)}.reshape(({G}, {Og}, {R}))"
    em.line(f"{wv} = {wexpr}" if w.aval.dtype == odt else f"{wv} = {wexpr}.astype({dtype_ctor(odt)})")
    NP = em.dim(os_[0] * math.prod(os_[2:]))
    prod = u + "prod"
    em.line(f"{ov} = np.empty(({N}, {G}, {Og}, {PP}), dtype={dtype_ctor(odt)})")
    em.line(f"{cols} = np.empty({_tuple((NP, R) if kernel_runs else (R, NP))}, dtype={dtype_ctor(odt)})")
    em.line(f"{prod} = np.empty(({Og}, {NP}), dtype={dtype_ctor(odt)})")
    cell = (lambda rr, pc: f"{cols}[{pc}, {rr}]") if kernel_runs else (lambda rr, pc: f"{cols}[{rr}, {pc}]")  # noqa: E731
    zero = em.lit(0, odt)
    n, g, nb, c0, c, row, col = (u + s for s in ("n", "g", "nb", "c0", "c", "row", "col"))
    k, i, ok = ([f"{u}{t}{j}" for j in range(r)] for t in ("k", "i", "ok"))
    pv = [f"{u}p{j}" for j in range(r)]
    # one matrix product per group over the whole batch (BLAS is slow on skinny products)
    em.line(f"for {g} in range({G}):")
    em.line(f"    for {n} in range({N}):")
    em.ind += 2
    em.line(f"{nb} = {n} + {g} * {bstep}")
    em.line(f"{c0} = {g} * {cstep}")
    em.line(f"{row} = 0")
    em.line(f"for {c} in range({Cg}):")
    em.ind += 1
    depth = 1
    for j in range(r if not kernel_runs else r - 1):
        em.line(f"for {k[j]} in range({K[j]}):")
        em.ind += 1
        depth += 1
    em.line(f"{col} = {n} * {PP}")
    for j in range(r - 1):
        em.line(f"for {pv[j]} in range({P[j]}):")
        em.ind += 1
        prev = f"{ok[j - 1]} and " if j else ""
        pos = f"{pv[j]} * {st[j]} + {k[j]} * {rd[j]} - {lo[j]}"
        if dilated[j]:
            em.line(f"{u}q{j} = {pos}")
            em.line(f"{i[j]} = {u}q{j} // {ld[j]}")
            em.line(f"{ok[j]} = {prev}{u}q{j} >= 0 and {i[j]} * {ld[j]} == {u}q{j} and {i[j]} < {S[j]}")
        else:   # no division on the common path
            em.line(f"{i[j]} = {pos}")
            em.line(f"{ok[j]} = {prev}{i[j]} >= 0 and {i[j]} < {S[j]}")

    def read(il):
        return em.cast(f"{xv}[{_index([nb, f'{c0} + {c}'] + i[:-1] + [il])}]", odt)
    run = dict(outer_ok=ok[r - 2], size=S[-1], ld=ld[-1], dilated=dilated[-1], zero=zero)
    if kernel_runs:
        em.line(f"for {pv[-1]} in range({P[-1]}):")
        em.ind += 1
        _emit_conv_run(em, u, read, lambda t: cell(f"{row} + {t}", col), n_run=K[-1],
                       first=f"{pv[-1]} * {st[-1]} - {lo[-1]}", step=rd[-1], **run)
        em.line(f"{col} += 1")
        em.ind -= r
        em.line(f"{row} += {K[-1]}")
    else:
        _emit_conv_run(em, u, read, lambda t: cell(row, f"{col} + {t}"), n_run=P[-1],
                       first=f"{k[-1]} * {rd[-1]} - {lo[-1]}", step=st[-1], **run)
        em.line(f"{col} += {P[-1]}")
        em.ind -= r - 1
        em.line(f"{row} += 1")
    em.ind -= depth + 1
    o_, rr, pc = u + "oo", u + "rr", u + "pc"
    if odt.kind in "fc":
        em.line(f"np.dot({wv}[{g}], {cols + '.T' if kernel_runs else cols}, {prod})")
    else:
        em.line(f"{prod}[:] = {zero}")
        em.line(f"for {o_} in range({Og}):")
        em.line(f"    for {rr} in range({R}):")
        em.line(f"        for {pc} in range({NP}):")
        em.line(f"            {prod}[{o_}, {pc}] += {wv}[{g}, {o_}, {rr}] * {cell(rr, pc)}")
    em.line(f"for {o_} in range({Og}):")
    em.line(f"    for {n} in range({N}):")
    em.line(f"        for {pc} in range({PP}):")
    em.line(f"            {ov}[{n}, {g}, {o_}, {pc}] = {prod}[{o_}, {n} * {PP} + {pc}]")
    em.ind -= 1
    canon = f"{ov}.reshape({_tuple([N, em.dim(os_[1])] + P[r - nsp:])})"
    res = em.names[out] = em.fresh("v")
    if list(out_spec) == list(range(len(out_spec))):
        em.line(f"{res} = {canon}")
    else:
        inv = [str(int(a)) for a in np.argsort(out_spec)]
        em.line(f"{res} = np.ascontiguousarray(np.transpose({canon}, {_tuple(inv)}))")


lower_rules["conv_general_dilated"] = _lower_conv


def lowerable_primitives():
    """Names of every primitive this backend lowers."""
    return (set(SCALAR_RULES) | set(REDUCE_RULES) | set(lower_rules) | plan_mod.INDEX_MAPS
            | set(plan_mod.CALLS) | plan_mod.ALIASES | {p.name for p in core.host_primitives}
            | plan_mod.HOST_IMPL_OPS)


# ---------------------------------------------------------------------------------------------

def check_lowerable(kplan):
    """Raise NotImplementedError naming the first primitive without a lowering."""
    for step in kplan.steps:
        if isinstance(step, Op) and step.eqn.primitive.name not in lower_rules:
            raise NotImplementedError(f"numba CPU lowering for primitive "
                                      f"'{step.eqn.primitive.name}' not implemented")


# Ops whose lowering (or numpy impl, for dot_general in split plans) writes the result into a
# buffer of its own (dot_accumulate: its accumulator's, which nothing else reads); every other
# Op's result may be its operand or a view of it
_FRESH_OPS = {"dot_general", "dot_accumulate", "pad", "concatenate", "cumsum", "cumprod",
              "cummax", "cummin", "argmax", "argmin", "gather", "dynamic_slice",
              "dynamic_update_slice", "sort", "conv_general_dilated"}


def owned_buffers(kplan):
    """The vars computed by the plan whose buffers nothing else can alias: the outputs of groups
    and of _FRESH_OPS, less every var an aliasing Op reads (reshape views its operand; a branch
    or loop body may hand an operand back)."""
    owned, aliased = set(), set()
    for step in kplan.steps:
        if isinstance(step, Group):
            owned.update(o for e in step.eqns for o in e.out_binders)
        elif step.eqn.primitive.name in _FRESH_OPS:
            owned.update(step.eqn.out_binders)
        else:
            aliased.update(v for v in step.eqn.inputs if type(v) is Var)
    return owned - aliased


def _reads_float32_trig(group):
    return any(e.primitive.name in ("sin", "cos") and e.out_binders[0].aval.dtype == np.float32
               for e in group.eqns)


def in_place_outputs(kplan):
    """One dict per step: {output: input} for each materialized elementwise output of a group
    that is written into the buffer of an input of the same shape and dtype that dies in that
    group. Such an input must be owned (owned_buffers) or donated, and read only at the loop
    index (no index map reads it). Groups calling float32 sin/cos get none: their second,
    exact pass reads the inputs again."""
    reads, _, dying = plan_mod.plan_liveness(kplan)
    free = owned_buffers(kplan) | kplan.donated
    out = []
    for step, rs, dead in zip(kplan.steps, reads, dying):
        pairs = {}
        if isinstance(step, Group) and not _reads_float32_trig(step):
            mapped = set(v for e in step.eqns if e.primitive.name in plan_mod.INDEX_MAPS
                         for v in e.inputs)
            spare = [v for v in dead if v in free and v in rs and v not in mapped]
            for e in step.eqns:
                o = e.out_binders[0]
                if e.primitive.name in plan_mod.REDUCTIONS or o not in kplan.materialized:
                    continue
                src = next((v for v in spare if v.aval.shape == o.aval.shape
                            and v.aval.dtype == o.aval.dtype), None)
                if src is not None:
                    spare.remove(src)
                    pairs[o] = src
        out.append(pairs)
    return out


def emit_plan(em, kplan):
    """Emit the steps of a plan whose input names/shapes are bound; returns output names."""
    check_lowerable(kplan)
    for step in kplan.steps:
        for e in plan_mod.step_eqns(step):
            _assign_shapes(em, e)
    for step, in_place in zip(kplan.steps, in_place_outputs(kplan)):
        if isinstance(step, Group):
            _emit_group(em, step, kplan.materialized, in_place)
        else:
            lower_rules[step.eqn.primitive.name](em, step.eqn)
    return [em.array(v) for v in kplan.outvars]


def generate(kplan, name="kernel"):
    """(source, dims, literal arrays by dtype name, extra const arrays) of the kernel module."""
    em = Emitter(name)
    args = []
    for i, v in enumerate(kplan.inputs):
        a = em.names[v] = f"a{i}"
        args.append(a)
        em.shapes[v] = tuple(f"{a}.shape[{k}]" for k in range(v.aval.ndim))
    outs = emit_plan(em, kplan)
    em.line(f"return {_tuple(outs)}")
    lit_names = sorted(em.lits)
    sig = ", ".join(["D"] + [f"L_{n}" for n in lit_names] + args + em.const_args)
    body = "\n".join(em.body)
    extra = "".join(f"from functrans.backends.vmath import {h}\n" for h in _OPTIONAL_HELPERS
                    if h + "(" in body)
    src = (_HEADER + extra
           + "\n@numba.njit(cache=True, error_model='numpy', fastmath={'reassoc'})\n"
           + f"def kernel({sig}):\n"
           + "".join("    " + h + "\n" for h in em.header)
           + body + "\n")
    lits = tuple(np.array(em.lits[n], dtype=n) for n in lit_names)
    return src, np.array(em.dims, dtype=np.int64), lits, em.const_vals


# ---------------------------------------------------------------------------------------------
# Large plans: several small kernels run by a Python driver (numba's compile time grows
# superlinearly with function size; small kernels are also cached, and shared, by content)

NUMPY_OPS = {"dot_general", "dot_accumulate"}   # run by their numpy impl between kernels
# sizes in compile-cost units (eqn_cost): most equations cost 1
SPLIT_EQNS = 24        # plans costing more than this are split
SEGMENT_EQNS = 16      # a kernel is closed once its steps cost this much
GROUP_COST_CAP = 24    # fused groups costing more are cut into pieces (plan.cut_group)
# float32 functions of vmath.py are inlined into the loop body by LLVM (numba compiles each
# once), which makes the loop body large; LLVM stops vectorising a loop body holding more than
# about two sins (measured: 1.4 ns an element and sin at two per loop, 6-9 ns at four to eight)
_INLINED_COST = {"sin": 10, "cos": 10, "exp": 4, "log": 4, "tanh": 4, "logistic": 4}


def eqn_cost(eqn):
    """The compile cost of an equation in units of a plain arithmetic one."""
    if eqn.out_binders and eqn.out_binders[0].aval.dtype == np.float32:
        return _INLINED_COST.get(eqn.primitive.name, 1)
    return 1


def group_cap():
    """The cost cap of one fused group (GROUP_COST_CAP), or None when group cutting is turned
    off (``FUNCTRANS_SPLIT_GROUPS=0``: one loop nest per group, however large)."""
    return None if os.environ.get("FUNCTRANS_SPLIT_GROUPS", "1") == "0" else GROUP_COST_CAP


def _step_cost(step):
    return sum(eqn_cost(e) for e in plan_mod.step_eqns(step))


def _reads(steps):
    out = []
    for st in steps:
        for e in plan_mod.step_eqns(st):
            out.extend(v for v in e.inputs if type(v) is Var)
    return out


def plan_cost(kplan):
    """The compile cost of a plan's equations (eqn_cost units)."""
    return sum(_step_cost(s) for s in kplan.steps)


def _host_step(step):
    return isinstance(step, Op) and plan_mod.needs_host(step.eqn)


def should_split(kplan):
    """True if the plan is big enough to be compiled as several kernels, or has a host step
    (a callback, or control flow holding one: run by its impl between kernels)."""
    return plan_cost(kplan) > SPLIT_EQNS or any(_host_step(s) for s in kplan.steps)


def split_plan(kplan):
    """The plan as a list of parts: ('numpy', eqn) for an equation run by its impl (numpy, or
    Python on the host for callbacks and control flow holding them), or ('kernel', KernelPlan)
    for a run of steps compiled together. Each sub-plan's inputs are the vars it reads from
    earlier parts and its outputs the vars later parts (or the result) read."""
    runs, cur, n = [], [], 0
    for step in kplan.steps:
        if isinstance(step, Op) and (step.eqn.primitive.name in NUMPY_OPS or _host_step(step)):
            if cur:
                runs.append(cur)
            runs.append(step)
            cur, n = [], 0
            continue
        cur.append(step)
        n += _step_cost(step)
        if n >= SEGMENT_EQNS:
            runs.append(cur)
            cur, n = [], 0
    if cur:
        runs.append(cur)
    live = set(v for v in kplan.outvars if type(v) is Var)
    owned = owned_buffers(kplan)
    parts = []
    for run in reversed(runs):
        steps = [run] if isinstance(run, Op) else run
        defs = set(o for st in steps for e in plan_mod.step_eqns(st) for o in e.out_binders)
        outs = [v for v in dict.fromkeys(o for st in steps for e in plan_mod.step_eqns(st)
                                         for o in e.out_binders) if v in live]
        reads = list(dict.fromkeys(v for v in _reads(steps) if v not in defs))
        donated = [v for v in reads if v in owned and v not in live]   # dead after this run
        live = (live - defs) | set(reads)
        if isinstance(run, Op):
            parts.append(("numpy", run.eqn))
        elif outs:
            # outs are read by a later step or returned, so already materialized (one shared
            # set: a copy per kernel made this quadratic in the number of kernels)
            sub = plan_mod.KernelPlan(reads, [], steps, outs, kplan.materialized, donated)
            parts.append(("kernel", sub))
    return parts[::-1]


# ---------------------------------------------------------------------------------------------
# Windowed and general reductions (lax/windowed.py): direct loops over the output elements and
# the window offsets (or the reduced elements); padding and dilation holes are skipped (the
# monoids) or read as the init values (the general forms, whose computation is emitted inline
# on 0-d buffers, as the bodies of control flow are)

def _scalar_of(em, v):
    """A scalar expression of the 0-d input v (a Literal or a 0-d array)."""
    return em.lit(v.val, v.aval.dtype) if type(v) is Literal else f"{em.array(v)}[()]"


def _open_loops(em, extents, prefix):
    idx = [em.fresh(prefix) for _ in extents]
    for i, n in zip(idx, extents):
        em.line(f"for {i} in range({n}):")
        em.ind += 1
    return idx


def _window_source(em, eqn, oi, wi, x_shape):
    """(source index names, in-range test) of window offset wi of output element oi."""
    p = eqn.params
    src, conds = [], []
    for k, (o, w) in enumerate(zip(oi, wi)):
        (lo, _), bd = p["padding"][k], p["base_dilation"][k]
        q = em.fresh("q")
        em.line(f"{q} = {o} * {em.dim(p['window_strides'][k])} + "
                f"{w} * {em.dim(p['window_dilation'][k])} - {em.dim(lo)}")
        if bd == 1:
            conds.append(f"0 <= {q} < {x_shape[k]}")
            src.append(q)
        else:
            b = em.dim(bd)
            conds.append(f"{q} >= 0 and {q} % {b} == 0 and {q} // {b} < {x_shape[k]}")
            src.append(f"{q} // {b}")
    return src, " and ".join(conds) or "True"


def _fold_step(em, jaxpr, accs, a_bufs, e_bufs, elems):
    """Lines of one step acc = computation(acc, elem) of a general reduction."""
    for ab, eb, acc, e in zip(a_bufs, e_bufs, accs, elems):
        em.line(f"{ab}[()] = {acc}")
        em.line(f"{eb}[()] = {e}")
    outs = _emit_sub(em, jaxpr, a_bufs + e_bufs, [()] * (len(a_bufs) + len(e_bufs)))
    for acc, r in zip(accs, outs):
        em.line(f"{acc} = {r}[()]")


def _scalar_buffers(em, vs):
    """A fresh 0-d buffer for each of the values vs."""
    return _bind_fresh(em, "sb", [f"np.empty((), dtype={dtype_ctor(v.aval.dtype)})" for v in vs])


def _lower_window_monoid(kind):
    combine, ident = REDUCE_RULES[f"reduce_{kind}"]

    def rule(em, eqn):
        x, out = eqn.inputs[0], eqn.out_binders[0]
        dt = out.aval.dtype
        xn, o = em.array(x), em.alloc(out)
        start = em.lit(ident(dt), dt)
        oi = _open_loops(em, em.shapes[out], "o")
        acc = em.fresh("acc")
        em.line(f"{acc} = {start}")
        wi = _open_loops(em, [em.dim(w) for w in eqn.params["window_dimensions"]], "w")
        src, inside = _window_source(em, eqn, oi, wi, em.shape_of(x))
        em.line(f"if {inside}:")
        em.line(f"    {acc} = {em.cast(combine(acc, f'{xn}[{_index(src)}]', dt), dt)}")
        em.ind -= len(wi)
        em.line(f"{o}[{_index(oi)}] = {acc}")
        em.ind -= len(oi)
    return rule


def _lower_reduce_window(em, eqn):
    n = len(eqn.inputs) // 2
    xs, inits = eqn.inputs[:n], eqn.inputs[n:]
    xn = [em.array(x) for x in xs]
    init_vals = [_scalar_of(em, v) for v in inits]
    outs = [em.alloc(o) for o in eqn.out_binders]
    a_bufs, e_bufs = _scalar_buffers(em, inits), _scalar_buffers(em, inits)
    oi = _open_loops(em, em.shapes[eqn.out_binders[0]], "o")
    accs = [em.fresh("acc") for _ in xs]
    for acc, iv in zip(accs, init_vals):
        em.line(f"{acc} = {iv}")
    wi = _open_loops(em, [em.dim(w) for w in eqn.params["window_dimensions"]], "w")
    src, inside = _window_source(em, eqn, oi, wi, em.shape_of(xs[0]))
    elems = [f"{x}[{_index(src)}] if {inside} else {iv}" for x, iv in zip(xn, init_vals)]
    _fold_step(em, eqn.params["jaxpr"], accs, a_bufs, e_bufs, elems)
    em.ind -= len(wi)
    for o, acc in zip(outs, accs):
        em.line(f"{o}[{_index(oi)}] = {acc}")
    em.ind -= len(oi)


def _lower_reduce(em, eqn):
    n = len(eqn.inputs) // 2
    xs, inits = eqn.inputs[:n], eqn.inputs[n:]
    dims = eqn.params["dimensions"]
    x_shape = em.shape_of(xs[0])
    xn = [em.array(x) for x in xs]
    init_vals = [_scalar_of(em, v) for v in inits]
    outs = [em.alloc(o) for o in eqn.out_binders]
    a_bufs, e_bufs = _scalar_buffers(em, inits), _scalar_buffers(em, inits)
    kept = [d for d in range(len(x_shape)) if d not in dims]
    oi = _open_loops(em, [x_shape[d] for d in kept], "o")
    accs = [em.fresh("acc") for _ in xs]
    for acc, iv in zip(accs, init_vals):
        em.line(f"{acc} = {iv}")
    ri = _open_loops(em, [x_shape[d] for d in dims], "r")
    full = [None] * len(x_shape)
    for d, i in zip(kept + list(dims), oi + ri):
        full[d] = i
    _fold_step(em, eqn.params["jaxpr"], accs, a_bufs, e_bufs,
               [f"{x}[{_index(full)}]" for x in xn])
    em.ind -= len(ri)
    for o, acc in zip(outs, accs):
        em.line(f"{o}[{_index(oi)}] = {acc}")
    em.ind -= len(oi)


lower_rules.update({
    "reduce_window_sum": _lower_window_monoid("sum"),
    "reduce_window_max": _lower_window_monoid("max"),
    "reduce_window_min": _lower_window_monoid("min"),
    "reduce_window": _lower_reduce_window,
    "reduce": _lower_reduce,
})
_FRESH_OPS.update(["reduce_window_sum", "reduce_window_max", "reduce_window_min",
                   "reduce_window", "reduce"])
