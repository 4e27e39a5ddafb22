"""CUDA code generation: steps of the backend-neutral KernelPlan (plan.py) become the sources of
``numba.cuda.jit`` kernels, each described by a ``Launch`` (source, grid, block, the vars it
reads and the vars it writes).

Conventions shared by every kernel:
* every array is passed FLAT (1-D, C order); the generated code computes flat offsets from
  shapes baked into the source as constants (cheap index arithmetic: nvcc turns division by a
  constant into multiplies). A new shape therefore means new kernel source, compiled once and
  then cached on disk by numba (cache=True) next to the content-hashed module.
* literals are emitted as typed constants (``np.float32(0.5)``) so float32 code stays float32.
* elementwise kernels use grid-stride loops; reductions are shared-memory tree reductions per
  block, combined across blocks with atomics when the output is small (sum, and max/min of
  integers); dot_general is a tiled shared-memory matmul batched over ``blockIdx.z``."""
from __future__ import annotations

import hashlib
import math

import numpy as np

from ..core import Literal
from . import plan as plan_mod
from .plan import Group

# Launch geometry. The simulator runs every thread as a Python thread (~0.2 ms each) while a
# grid-stride iteration costs ~10 us, so it gets few threads; every code path (grid-stride
# loops, multi-block atomics, tree reductions) is still exercised.
# serial_max: reductions over at most this many elements run one thread per output (a loop);
# longer ones are block-wide tree reductions.
# unroll: independent elements per thread and loop iteration in long elementwise loops and
# block reductions (loads in flight), used from unroll_min elements; fill_blocks: about the
# blocks that fill the device (132 SMs x 8 resident blocks of 256 threads on an H200), the
# target of reductions split across blocks; col_*: column reductions (see _red_columns).
GPU_CONFIG = dict(tpb=256, max_blocks=8192, tile=16, red_items=1024, max_split=1024,
                  serial_max=32, unroll=4, unroll_min=1 << 17, fill_blocks=1024,
                  col_min_outputs=32, col_min_chunk=32)
SIM_CONFIG = dict(tpb=32, max_blocks=2, tile=16, red_items=64, max_split=4, serial_max=16,
                  unroll=2, unroll_min=48, fill_blocks=4, col_min_outputs=4, col_min_chunk=4)

ATOMIC_DTYPES = {np.dtype(t) for t in ("int32", "int64", "uint32", "uint64", "float32", "float64")}


def _salt():
    from . import cuda_math
    with open(cuda_math.__file__, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


_HEADER = """import numpy as np
from numba import cuda
from functrans.backends.cuda_math import *  # noqa: F403  (helpers hash {salt})

"""


class Launch:
    """One kernel launch: ``source`` defines ``kernel(*arrays)``; ``reads``/``writes`` are the
    plan vars (or Literals) passed in order (writes after reads); ``fresh`` are the writes this
    launch allocates; ``fill`` maps some of them to the value they hold before the launch."""
    __slots__ = ("source", "grid", "block", "reads", "writes", "fresh", "fill", "name", "work")

    def __init__(self, name, body, reads, writes, grid, block, fresh=None, fill=None, work=1):
        self.name, self.work = name, work   # work == 0: nothing to compute, launch skipped
        self.reads, self.writes = list(reads), list(writes)
        self.fresh = list(writes) if fresh is None else list(fresh)
        self.grid, self.block, self.fill = grid, block, fill
        args = [f"a{i}" for i in range(len(self.reads))] + [f"w{i}" for i in range(len(self.writes))]
        self.source = (_HEADER.format(salt=_salt())
                       + f"# {name}\n@cuda.jit(cache=CACHE)\ndef kernel({', '.join(args)}):\n"
                       + "".join("    " + ln + "\n" for ln in body))

    def __repr__(self):
        return f"Launch({self.name}, grid={self.grid}, block={self.block})"


# ---------------------------------------------------------------------------------------------
# Scalars: dtype constructors, constants, casts

def ctor(dtype):
    """Source of the scalar constructor of a dtype ('np.float32')."""
    dtype = np.dtype(dtype)
    return "np.bool_" if dtype == np.bool_ else f"np.{dtype.name}"


def const(value, dtype):
    """A typed constant expression."""
    dtype = np.dtype(dtype)
    v = np.asarray(value, dtype).item()
    if dtype == np.bool_:
        return "True" if v else "False"
    if dtype.kind == "c":
        part = _real_dtype(dtype)
        return f"{ctor(dtype)}(complex({const(v.real, part)}, {const(v.imag, part)}))"
    if dtype.kind == "f":
        if math.isnan(v):
            return f"{ctor(dtype)}(np.nan)"
        if math.isinf(v):
            return f"{ctor(dtype)}({'-' if v < 0 else ''}np.inf)"
        return f"{ctor(dtype)}({float(v)!r})"
    return f"{ctor(dtype)}({int(v)})"


def cast(expr, dtype):
    """expr converted to dtype (bool: nonzero test)."""
    dtype = np.dtype(dtype)
    return f"({expr} != 0)" if dtype == np.bool_ else f"{ctor(dtype)}({expr})"


def _float_suffix(dtype):
    return "f32" if np.dtype(dtype) == np.float32 else "f64"


def _real_dtype(dtype):
    """The float dtype of a complex dtype's parts."""
    return np.dtype(np.float32) if np.dtype(dtype) == np.complex64 else np.dtype(np.float64)


def _complex_suffix(dtype):
    return "c64" if np.dtype(dtype) == np.complex64 else "c128"


# rules: f(args, dtype_in, dtype_out, params) -> expression (args are names or constants)
def _call(name):
    return lambda a, din, dout, p: f"cm_{name}({', '.join(a)})"


def _per_dtype(name):
    return lambda a, din, dout, p: f"cm_{name}_{_float_suffix(din)}({a[0]})"


def _op(symbol):
    return lambda a, din, dout, p: f"({a[0]} {symbol} {a[1]})"


def _bool_or(sym_bool, sym_int):
    return lambda a, din, dout, p: f"({a[0]} {sym_bool if din == np.bool_ else sym_int} {a[1]})"


def _maxmin(cmp, sym_bool):
    """nan-propagating max/min (numpy.maximum semantics); or/and on bools."""
    def rule(a, din, dout, p):
        if din == np.bool_:
            return f"({a[0]} {sym_bool} {a[1]})"
        return f"({a[0]} if ({a[0]} {cmp} {a[1]} or {a[0]} != {a[0]}) else {a[1]})"
    return rule


def _idiv_expr(x, y, din):
    """C-style (truncating) integer division, 0 for a zero divisor, -x for -1. Every constant is
    typed as din: in numba an int64 literal next to a uint64 value unifies to float64."""
    zero = const(0, din)
    if din.kind == "u":
        return f"({zero} if {y} == {zero} else {cast(f'{x} // {y}', din)})"
    q = f"({x} // {y})"
    neg = f"(({x} < {zero}) != ({y} < {zero}))"
    fix = f"({const(1, din)} if ({q} * {y} != {x} and {neg}) else {zero})"
    return (f"({zero} if {y} == {zero} else ({cast(f'-{x}', din)} if {y} == {const(-1, din)} "
            f"else {cast(f'{q} + {fix}', din)}))")


def _div(a, din, dout, p):
    return _idiv_expr(a[0], a[1], din) if din.kind in "iu" else f"({a[0]} / {a[1]})"


def _rem(a, din, dout, p):
    x, y = a
    zero = const(0, din)
    if din.kind == "u":
        return f"({zero} if {y} == {zero} else {cast(f'{x} % {y}', din)})"
    if din.kind == "i":
        q = _idiv_expr(x, y, din)
        return (f"({zero} if ({y} == {zero} or {y} == {const(-1, din)}) "
                f"else {cast(f'{x} - {q} * {y}', din)})")
    return f"cm_fmod({x}, {y})"


def _sign(a, din, dout, p):
    x = a[0]
    one, zero = const(1, din), const(0, din)
    if din.kind == "u":
        return f"({one} if {x} > {zero} else {zero})"
    if din.kind == "i":
        return f"({one} if {x} > {zero} else ({const(-1, din)} if {x} < {zero} else {zero}))"
    return f"({x} if {x} != {x} else ({one} if {x} > 0 else (-{one} if {x} < 0 else {zero})))"


def _int_pow(a, din, dout, p):
    y, x = p["y"], a[0]
    if y == 0:
        return const(1, din)
    terms, power, n = [], x, abs(y)
    while n:
        if n & 1:
            terms.append(power)
        n >>= 1
        if n:
            power = f"({power} * {power})"
    prod = " * ".join(terms)
    return f"({const(1, din)} / ({prod}))" if y < 0 else f"({prod})"


def _shift(kind):
    """lax shifts: computed on the unsigned type of the same width (no sign extension, no
    undefined C shifts), and 0 for a count that is negative or >= the bit width (where CUDA's
    shift instructions would clamp or wrap the count). Every constant is typed as the operand:
    an int64 literal beside a uint64 value would make numba unify both to float64."""
    def rule(a, din, dout, p):
        bits = 8 * din.itemsize
        x, y = a
        u = np.dtype(f"uint{bits}")
        op = "<<" if kind == "left" else ">>"
        shifted = cast(f"{cast(x, u)} {op} {cast(y, u)}", u)
        out_of_range = f"{y} >= {const(bits, din)}"
        if din.kind == "i":
            out_of_range = f"{y} < {const(0, din)} or " + out_of_range
        return f"({const(0, din)} if ({out_of_range}) else {cast(shifted, din)})"
    return rule


def _select_n(a, din, dout, p):
    return plan_mod.select_expr(a[0], a[1:])


def _logistic(a, din, dout, p):
    one = const(1, din)
    return f"({one} / ({one} + cm_exp(-{a[0]})))"


SCALAR_RULES = {
    "neg": lambda a, din, dout, p: f"(-{a[0]})",
    "sign": _sign,
    "floor": _per_dtype("floor"),
    "ceil": _per_dtype("ceil"),
    "round": _per_dtype("rint"),
    "cbrt": _per_dtype("cbrt"),
    "exp2": _per_dtype("exp2"),
    "is_finite": _call("isfinite"),
    "abs": lambda a, din, dout, p: f"abs({a[0]})",
    "logistic": _logistic,
    "rsqrt": lambda a, din, dout, p: f"({const(1, din)} / cm_sqrt({a[0]}))",
    "not": lambda a, din, dout, p: f"(not {a[0]})" if din == np.bool_ else f"(~{a[0]})",
    "stop_gradient": lambda a, din, dout, p: a[0],
    "integer_pow": _int_pow,
    "add": _bool_or("|", "+"),
    "sub": _op("-"),
    "mul": _bool_or("&", "*"),
    "div": _div,
    "rem": _rem,
    "pow": _op("**"),
    "max": _maxmin(">=", "|"),
    "min": _maxmin("<=", "&"),
    "and": _op("&"),
    "or": _op("|"),
    "xor": _bool_or("!=", "^"),
    "shift_left": _shift("left"),
    "shift_right_logical": _shift("right"),
    "eq": _op("=="),
    "ne": _op("!="),
    "lt": _op("<"),
    "le": _op("<="),
    "gt": _op(">"),
    "ge": _op(">="),
    "select_n": _select_n,
    "convert_element_type": lambda a, din, dout, p: a[0],
}
for _n in ["exp", "log", "log1p", "expm1", "tanh", "sin", "cos", "tan", "asin", "acos", "atan",
           "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "erf", "atan2"]:
    SCALAR_RULES[_n] = _call(_n)
SCALAR_RULES["lgamma"] = _call("lgamma")
SCALAR_RULES["erfc"] = _call("erfc")


def _no_cuda(name):
    def rule(a, din, dout, p):
        raise NotImplementedError(f"CUDA lowering for primitive '{name}' not implemented")
    return rule


for _n in ["digamma", "polygamma", "erf_inv", "ndtri", "igamma", "igammac", "igamma_grad_a",
           "random_gamma_grad", "regularized_incomplete_beta", "reduce_precision",
           "bitcast_convert_type"]:
    SCALAR_RULES[_n] = _no_cuda(_n)


# ---------------------------------------------------------------------------------------------
# Complex operands (the primitives of core.complex_primitives). +, -, *, ==, != and abs are
# numba.cuda's complex arithmetic; the functions are cuda_math's cm_c<name> (cmath) or its
# NumPy formulas cm_<name>_c64/_c128 (division: numba's raises on a zero divisor).

def _cm_formula(name):
    """The rule calling cuda_math's per-dtype complex formula cm_<name>_c64/_c128."""
    return lambda a, din, dout, p: f"cm_{name}_{_complex_suffix(din)}({', '.join(a)})"


def _complex_int_pow(a, din, dout, p):
    if p["y"] >= 0:
        return _int_pow(a, din, dout, p)
    return f"cm_crecip_{_complex_suffix(din)}({_int_pow(a, din, dout, dict(p, y=-p['y']))})"


def _complex_logistic(a, din, dout, p):
    return f"cm_crecip_{_complex_suffix(din)}({const(1, din)} + cm_cexp(-{a[0]}))"


def _complex_convert(a, din, dout, p):
    """Complex to a real dtype (bool too) keeps the real part, as lax's impl."""
    return f"({a[0]}).real" if dout.kind != "c" else a[0]


COMPLEX_RULES = {
    "div": _cm_formula("cdiv"),
    "pow": _cm_formula("cpow"),
    "integer_pow": _complex_int_pow,
    "sign": _cm_formula("csign"),
    "expm1": _cm_formula("cexpm1"),
    "log1p": _cm_formula("clog1p"),
    "exp2": _cm_formula("cexp2"),
    "logistic": _complex_logistic,
    "rsqrt": lambda a, din, dout, p: f"cm_crecip_{_complex_suffix(din)}(cm_csqrt({a[0]}))",
    "convert_element_type": _complex_convert,
    "conj": lambda a, din, dout, p: f"({a[0]}).conjugate()",
}
for _n in ["exp", "log", "sqrt", "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos",
           "atan", "asinh", "acosh", "atanh"]:
    COMPLEX_RULES[_n] = lambda a, din, dout, p, _n=_n: f"cm_c{_n}({a[0]})"


def _or_complex(name, real_rule):
    def rule(a, din, dout, p):
        return (COMPLEX_RULES[name] if din.kind == "c" else real_rule)(a, din, dout, p)
    return rule


for _n in COMPLEX_RULES:
    SCALAR_RULES[_n] = _or_complex(_n, SCALAR_RULES.get(_n, lambda a, din, dout, p: a[0]))
SCALAR_RULES.update({
    "real": lambda a, din, dout, p: f"({a[0]}).real",
    "imag": lambda a, din, dout, p: f"({a[0]}).imag",
    "complex": lambda a, din, dout, p: f"complex({a[0]}, {a[1]})",
})


def _ident(name, dtype):
    dtype = np.dtype(dtype)
    if name == "reduce_sum":
        return 0
    if name == "reduce_prod":
        return 1
    lo = name == "reduce_max"
    if dtype == np.bool_:
        return not lo
    if dtype.kind == "f":
        return -np.inf if lo else np.inf
    info = np.iinfo(dtype)
    return info.min if lo else info.max


def combine(name, dtype, a, b):
    """The reduction combine expression of two scalars."""
    rule = {"reduce_sum": "add", "reduce_prod": "mul", "reduce_max": "max", "reduce_min": "min"}
    return SCALAR_RULES[rule[name]]([a, b], np.dtype(dtype), np.dtype(dtype), {})


# ---------------------------------------------------------------------------------------------
# Index helpers (shapes are Python ints baked into the source)

def flat_index(idx, shape):
    """Flat C-order offset expression of a multi-index."""
    if not shape:
        return "0"
    expr = str(idx[0])
    for k in range(1, len(shape)):
        expr = f"({expr}) * {shape[k]} + {idx[k]}"
    return expr


def unravel(flat, names, shape):
    """Lines assigning names[k] the multi-index of the flat offset ``flat`` in shape."""
    if not shape:
        return []
    if len(shape) == 1:
        return [f"{names[0]} = {flat}"]
    lines = [f"rm_ = {flat}"]
    for k in range(len(shape) - 1, 0, -1):
        lines.append(f"{names[k]} = rm_ % {shape[k]}")
        lines.append(f"rm_ = rm_ // {shape[k]}")
    lines.append(f"{names[0]} = rm_")
    return lines


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _indent(lines, n=1):
    return ["    " * n + ln for ln in lines]


class Geometry:
    """Launch parameters (GPU or simulator); see GPU_CONFIG."""

    def __init__(self, cfg):
        self.tpb, self.max_blocks, self.tile = cfg["tpb"], cfg["max_blocks"], cfg["tile"]
        self.red_items, self.max_split = cfg["red_items"], cfg["max_split"]
        self.serial_max, self.unroll, self.unroll_min = cfg["serial_max"], cfg["unroll"], cfg["unroll_min"]
        self.fill_blocks = cfg["fill_blocks"]
        self.col_min_outputs, self.col_min_chunk = cfg["col_min_outputs"], cfg["col_min_chunk"]

    def unroll_for(self, n):
        """Elements per thread and iteration of an elementwise loop over n elements."""
        return self.unroll if n >= self.unroll_min else 1

    def stride_grid(self, n):
        return max(1, min(-(-n // self.tpb), self.max_blocks))


def grid_stride(geo, name, n, body, reads, writes, fresh=None, fill=None, pre=()):
    """A Launch looping ``f`` over range(n) with a grid-stride loop around ``body``."""
    lines = list(pre) + ["f = cuda.grid(1)", "st_ = cuda.gridsize(1)", f"while f < {n}:"]
    lines += _indent(list(body)) + ["    f += st_"]
    return Launch(name, lines, reads, writes, geo.stride_grid(n), geo.tpb, fresh, fill, work=n)


class Args:
    """Assigns kernel argument names to the vars a kernel reads and writes."""

    def __init__(self):
        self.reads, self.writes, self._names = [], [], {}

    def read(self, v):
        key = ("r", id(v))
        if key not in self._names:
            self._names[key] = f"a{len(self.reads)}"
            self.reads.append(v)
        return self._names[key]

    def write(self, v):
        key = ("w", id(v))
        if key not in self._names:
            self._names[key] = f"w{len(self.writes)}"
            self.writes.append(v)
        return self._names[key]


def scalar_read(args, v):
    """The scalar value of a 0-d (or literal) operand."""
    return const(v.val, v.aval.dtype) if type(v) is Literal else f"{args.read(v)}[0]"


# ---------------------------------------------------------------------------------------------
# Fused groups

class _Body:
    """Emits the scalar chain of a group at one iteration index. ``tag`` keeps the scalar names
    of unrolled copies apart; stores of elementwise outputs go to ``stores`` (emitted after
    every copy's loads, so the compiler may overlap the copies' loads: it cannot move a load
    above a store to a possibly aliasing array)."""

    def __init__(self, group, args, idx, flat, shape, materialized, tag=""):
        self.g, self.args, self.idx, self.flat, self.shape = group, args, idx, flat, shape
        self.materialized, self.tag = materialized, tag
        self.lines, self.stores, self.scal, self.n = [], [], {}, 0

    def fresh(self):
        self.n += 1
        return f"s{self.tag}{self.n}"

    def read(self, v):
        if type(v) is Literal:
            return const(v.val, v.aval.dtype)
        if v not in self.scal:      # an array computed before the group, same shape
            s = self.fresh()
            self.lines.append(f"{s} = {self.args.read(v)}[{self.flat}]")
            self.scal[v] = s
        return self.scal[v]

    def emit(self, write_outputs):
        """Lines of the chain; returns {reduction eqn: scalar name of its input}."""
        red_inputs = {}
        for eqn in self.g.eqns:
            name, out = eqn.primitive.name, eqn.out_binders[0]
            if name in plan_mod.REDUCTIONS:
                red_inputs[eqn] = self.read(eqn.inputs[0])
                if write_outputs and not eqn.params["axes"]:    # a reduction over no axes
                    self.stores.append(f"{self.args.write(out)}[{self.flat}] = "
                                       f"{cast(red_inputs[eqn], out.aval.dtype)}")
                continue
            if name in SCALAR_RULES:
                din = (eqn.inputs[-1] if name == "select_n" else eqn.inputs[0]).aval.dtype
                expr = SCALAR_RULES[name]([self.read(v) for v in eqn.inputs], np.dtype(din),
                                          np.dtype(out.aval.dtype), eqn.params)
            else:
                expr = self._index_map(eqn)
            s = self.fresh()
            self.lines.append(f"{s} = {cast(expr, out.aval.dtype)}")
            self.scal[out] = s
            if write_outputs and out in self.materialized:
                self.stores.append(f"{self.args.write(out)}[{self.flat}] = {s}")
        return red_inputs

    def _index_map(self, eqn):
        if eqn.primitive.name == "iota":
            return self.idx[eqn.params["dimension"]]
        x = eqn.inputs[0]
        if type(x) is Literal:
            return const(x.val, x.aval.dtype)
        xs = x.aval.shape
        ins = plan_mod.index_map_indices(eqn, self.idx, size=lambda d: str(xs[d]))
        return f"{self.args.read(x)}[{flat_index(ins, xs)}]"


def _atomic_ok(eqns):
    """True when every reduction combines across blocks with a CUDA atomic (sum, and max/min
    of integers: float max/min must propagate NaN, which atomics do not)."""
    for e in eqns:
        dt = np.dtype(e.out_binders[0].aval.dtype)
        name = e.primitive.name
        if dt not in ATOMIC_DTYPES or name == "reduce_prod" or (
                name in ("reduce_max", "reduce_min") and dt.kind == "f"):
            return False
    return True


def _red_split(eqns, geo, n_out, R):
    """Blocks along the reduced axis: >1 only when few outputs would leave the GPU idle and the
    combine has an atomic for this dtype; enough blocks to fill the device."""
    if n_out >= geo.max_blocks or not _atomic_ok(eqns):
        return 1
    return max(1, min(-(-R // geo.red_items), geo.max_split))


def group_launches(g, materialized, geo):
    """Launches of one fused group: one elementwise kernel, or one reduction kernel per set of
    reduced axes (the chain is recomputed in each; elementwise outputs written by the first)."""
    shape = tuple(g.shape_var.aval.shape)
    reds = [e for e in g.eqns if e.primitive.name in plan_mod.REDUCTIONS and e.params["axes"]]
    by_axes = {}
    for e in reds:
        by_axes.setdefault(tuple(sorted(e.params["axes"])), []).append(e)
    if not by_axes:
        return [_ew_launch(g, materialized, geo, shape)]
    return [_red_launch(g, materialized, geo, shape, axes, eqns, k == 0)
            for k, (axes, eqns) in enumerate(by_axes.items())]


def _ew_launch(g, materialized, geo, shape):
    """The elementwise kernel: a grid-stride loop, unrolled ``geo.unroll`` times for large
    arrays (independent elements per iteration: more loads in flight per thread)."""
    args = Args()
    idx = [f"i{k}" for k in range(len(shape))]
    n = _size(shape)

    def copy(flat, tag):
        body = _Body(g, args, idx, flat, shape, materialized, tag)
        body.emit(True)
        return unravel(flat, idx, shape) + body.lines, body.stores
    unroll = geo.unroll_for(n)
    if unroll == 1:
        lines, stores = copy("f", "")
        return grid_stride(geo, "fused", n, lines + stores, args.reads, args.writes)
    lines = ["f = cuda.grid(1)", "st_ = cuda.gridsize(1)"]
    lines += _unrolled("f", "st_", n, unroll, copy)
    grid = max(1, min(-(-n // (geo.tpb * unroll)), geo.max_blocks))
    return Launch("fused", lines, args.reads, args.writes, grid, geo.tpb, work=n)


def _unrolled(var, step, end, unroll, copy, extra=lambda u: []):
    """``while var < end`` over var, var + step, ...: first ``unroll`` indices per iteration
    (each copy's loads, then all stores), then the remainder one at a time. copy(flat, tag)
    -> (lines, stores); extra(u) -> lines after copy u (accumulates)."""
    body, stores = [], []
    for u in range(unroll):
        body.append(f"{var}{u}_ = {var} + {u} * {step}")
        ls, ss = copy(f"{var}{u}_", f"u{u}_")
        body += ls + extra(u)
        stores += ss
    out = [f"while {var} + {unroll - 1} * {step} < {end}:"]
    out += _indent(body + stores + [f"{var} += {unroll} * {step}"])
    ls, ss = copy(var, "")
    out += [f"while {var} < {end}:"] + _indent(ls + extra(None) + ss + [f"{var} += {step}"])
    return out


class _Reduction:
    """Shared pieces of the reduction kernels of one group over one set of axes."""

    def __init__(self, g, materialized, geo, shape, axes, eqns, write_outputs):
        self.g, self.materialized, self.geo, self.shape = g, materialized, geo, shape
        self.axes, self.eqns, self.write_outputs = axes, eqns, write_outputs
        self.kept = [d for d in range(len(shape)) if d not in axes]
        self.kshape, self.rshape = [shape[d] for d in self.kept], [shape[d] for d in axes]
        self.n_out, self.R = _size(self.kshape), _size(self.rshape)
        self.idx = [f"i{k}" for k in range(len(shape))]
        self.args = Args()
        self.outs = [self.args.write(e.out_binders[0]) for e in eqns]
        self.dts = [e.out_binders[0].aval.dtype for e in eqns]

    def acc(self, j, u=None):
        return f"acc{j}" if u is None else f"acc{j}u{u}"

    def init(self, u=None):
        return [f"{self.acc(j, u)} = {const(_ident(e.primitive.name, dt), dt)}"
                for j, (e, dt) in enumerate(zip(self.eqns, self.dts))]

    def chain(self, rvar, tag, flat=None):
        """(lines computing the chain at reduced index rvar, stores); the reduction inputs are
        left in self.red_in."""
        flat = flat or f"fl{tag}"
        body = _Body(self.g, self.args, self.idx, flat, self.shape, self.materialized, tag)
        self.red_in = body.emit(self.write_outputs)
        lines = unravel(rvar, [self.idx[d] for d in self.axes], self.rshape)
        lines.append(f"{flat} = {flat_index(self.idx, self.shape)}")
        return lines + body.lines, body.stores

    def accumulate(self, u=None):
        out = []
        for j, (e, dt) in enumerate(zip(self.eqns, self.dts)):
            c = combine(e.primitive.name, dt, self.acc(j, u), cast(self.red_in[e], dt))
            out.append(f"{self.acc(j, u)} = {cast(c, dt)}")
        return out

    def merge(self, unroll):
        """Fold the unrolled accumulators into acc<j>."""
        out = []
        for u in range(unroll):
            for j, (e, dt) in enumerate(zip(self.eqns, self.dts)):
                c = combine(e.primitive.name, dt, self.acc(j), self.acc(j, u))
                out.append(f"{self.acc(j)} = {cast(c, dt)}")
        return out

    def loop(self, rvar, start, step, end, unroll):
        """Lines accumulating the chain over rvar = start, start + step, ... < end."""
        lines = [f"{rvar} = {start}"]
        if unroll == 1:
            body, stores = self.chain(rvar, "")
            return lines + [f"while {rvar} < {end}:"] + _indent(
                body + self.accumulate() + stores + [f"{rvar} += {step}"])
        lines += [ln for u in range(unroll) for ln in self.init(u)]

        def copy(flat_r, tag):
            return self.chain(flat_r, tag)
        lines += _unrolled(rvar, step, end, unroll, copy,
                           extra=lambda u: self.accumulate(u))
        return lines + self.merge(unroll)

    def store(self, j, index, atomic):
        op = {"reduce_sum": "add", "reduce_max": "max", "reduce_min": "min"}
        e, dt = self.eqns[j], self.dts[j]
        if atomic:
            return f"cuda.atomic.{op[e.primitive.name]}({self.outs[j]}, {index}, {self.acc(j)})"
        return f"{self.outs[j]}[{index}] = {cast(self.acc(j), dt)}"

    def launch(self, name, lines, grid, block, atomic):
        launch = Launch(name, lines, self.args.reads, self.args.writes, grid, block,
                        list(self.args.writes), work=self.n_out)
        if atomic:      # atomics combine into outputs pre-filled with the identity
            launch.fill = {e.out_binders[0]: _ident(e.primitive.name, dt)
                           for e, dt in zip(self.eqns, self.dts)}
        return launch


def _red_launch(g, materialized, geo, shape, axes, eqns, write_outputs):
    red = _Reduction(g, materialized, geo, shape, axes, eqns, write_outputs)
    if red.R <= geo.serial_max:
        return _red_serial(red)
    if red.kept and red.kept == list(range(len(shape) - len(red.kept), len(shape))) \
            and red.n_out >= geo.col_min_outputs:
        return _red_columns(red)
    return _red_blocks(red)


def _red_serial(red):
    """Short reductions: one thread per output, a plain loop."""
    geo = red.geo
    body, stores = red.chain("r_", "")
    loop = body + red.accumulate() + stores
    lines = (unravel("f", [red.idx[d] for d in red.kept], red.kshape) + red.init()
             + [f"for r_ in range({red.R}):"] + _indent(loop)
             + [red.store(j, "f", False) for j in range(len(red.eqns))])
    return grid_stride(geo, "reduce_serial", red.n_out, lines, red.args.reads, red.args.writes)


def _red_columns(red):
    """Reductions over leading axes (the kept axes are innermost: column sums such as bias
    gradients): one thread per output, so a warp reads consecutive addresses; blockIdx.y
    splits the reduced range into chunks combined with atomics."""
    geo, tpb = red.geo, red.geo.tpb
    blocks_x = min(-(-red.n_out // tpb), geo.max_blocks)
    split = 1
    if _atomic_ok(red.eqns):
        want = -(-geo.fill_blocks // blocks_x)
        split = max(1, min(want, -(-red.R // geo.col_min_chunk), 65535))
    chunk = -(-red.R // split)
    lines = [f"f = cuda.blockIdx.x * {tpb} + cuda.threadIdx.x", f"while f < {red.n_out}:"]
    inner = unravel("f", [red.idx[d] for d in red.kept], red.kshape) + red.init()
    inner += ["r0c_ = cuda.blockIdx.y * " + str(chunk),
              f"rec_ = r0c_ + {chunk} if r0c_ + {chunk} < {red.R} else {red.R}"]
    inner += red.loop("r_", "r0c_", "1", "rec_", 1)
    inner += [red.store(j, "f", split > 1) for j in range(len(red.eqns))]
    inner.append(f"f += cuda.gridDim.x * {tpb}")
    lines += _indent(inner)
    return red.launch("reduce_columns", lines, (blocks_x, split), tpb, split > 1)


def _red_blocks(red):
    """Long reductions with the reduced axes innermost: a block per output (blockIdx.y
    splitting the reduced range when there are few outputs), each thread accumulating a
    strided slice (unrolled for long ones), then a shared-memory tree across the block."""
    geo, tpb, eqns = red.geo, red.geo.tpb, red.eqns
    split = _red_split(eqns, geo, red.n_out, red.R)
    sdt = [np.dtype(np.uint8) if np.dtype(dt) == np.bool_ else np.dtype(dt) for dt in red.dts]
    lines = [f"sm{j} = cuda.shared.array({tpb}, {ctor(sdt[j])})" for j in range(len(eqns))]
    lines += ["t_ = cuda.threadIdx.x", "o_ = cuda.blockIdx.x", f"while o_ < {red.n_out}:"]
    inner = unravel("o_", [red.idx[d] for d in red.kept], red.kshape) + red.init()
    per_thread = red.R // max(tpb * split, 1)
    unroll = geo.unroll if per_thread >= 2 * geo.unroll and red.R >= geo.unroll_min else 1
    inner += red.loop("r_", f"cuda.blockIdx.y * {tpb} + t_", f"{tpb} * cuda.gridDim.y", red.R,
                      unroll)
    inner += [f"sm{j}[t_] = {cast(red.acc(j), sdt[j])}" for j in range(len(eqns))]
    inner += ["cuda.syncthreads()", f"h_ = {tpb // 2}", "while h_ > 0:", "    if t_ < h_:"]
    for j, e in enumerate(eqns):
        c = combine(e.primitive.name, sdt[j], f"x{j}_", f"y{j}_")
        inner += [f"        x{j}_ = sm{j}[t_]", f"        y{j}_ = sm{j}[t_ + h_]",
                  f"        sm{j}[t_] = {cast(c, sdt[j])}"]
    inner += ["    cuda.syncthreads()", "    h_ //= 2", "if t_ == 0:"]
    for j in range(len(eqns)):
        inner.append("    " + red.store(j, "o_", split > 1).replace(red.acc(j), f"sm{j}[0]"))
    inner += ["cuda.syncthreads()", "o_ += cuda.gridDim.x"]
    lines += _indent(inner)
    grid = (max(1, min(red.n_out, geo.max_blocks)), split)
    return red.launch("reduce", lines, grid, tpb, split > 1)


__all__ = ["Launch", "Geometry", "GPU_CONFIG", "SIM_CONFIG", "group_launches", "grid_stride",
           "Args", "flat_index", "unravel", "const", "cast", "ctor", "scalar_read", "Group"]
