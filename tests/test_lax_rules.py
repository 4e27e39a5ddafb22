"""Rule coverage and closure of the lax primitive rule tables, and an op table driving
derivative checks (check_grads, order 2, forward and reverse), forward values against NumPy,
and vmap against a Python loop for every batch-dimension placement."""
import itertools

import numpy as np
import pytest
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as ft
from functrans import core, lax
from functrans.interpreters import ad, batching
from functrans.lax import lax as L
from functrans.lax import slicing as S
from functrans.test_util import check_grads, check_vmap

# ---------------------------------------------------------------------------------------------
# Classification of primitives (by name, so primitives other modules register later can be
# listed before they exist).

# Linear in (some of) their array inputs: reverse mode needs a transpose rule for them.
LINEAR = {
    "neg", "add", "sub", "convert_element_type", "reduce_sum", "cumsum", "broadcast_in_dim",
    "reshape", "transpose", "squeeze", "rev", "slice", "pad", "concatenate",
    "mul", "dot_general",      # bilinear: linear in each operand with the other fixed
    "real", "imag", "conj", "complex",   # complex parts (R-linear; tests/test_complex.py)
    "div",                     # linear in the numerator
    "select_n",                # linear in the cases, the predicate is fixed
    "reduce_precision",        # straight-through, as JAX (tests/test_mixed_precision.py)
    "jit", "checkpoint", "remat", "cond", "scan",  # higher-order: they transpose their jaxpr
    "while",                   # its transpose rule raises: reverse mode of while_loop is undefined
    # registered by other modules (checked once they exist)
    "dynamic_slice", "dynamic_update_slice", "gather", "scatter_add", "copy", "copy_p",
    "scatter",                 # linear in (operand, updates) jointly
    "scatter_mul",             # linear in the operand, the factors fixed
    "reduce_window_sum", "custom_lin", "symbolic_zeros", "pjit",
    "triangular_solve",        # linear in b, the matrix fixed (lax/linalg.py)
    # collectives over named axes (lax/parallel.py)
    "psum", "all_gather", "psum_scatter", "ppermute", "all_to_all",
    "conv_general_dilated",    # bilinear in (lhs, rhs)
    "fft",                     # linear (lax/fft.py)
    "custom_linear_solve",     # linear in b, the matvec and solve consts fixed (lax/linear_solve.py)
}

# No jvp rule is required: primitives without array inputs (nothing to differentiate), and
# custom_lin, the linear stand-in for a custom_vjp function's derivative, which lives only in
# linearized jaxprs and is transposed (to the user's bwd), never pushed forward: forward mode of
# a custom_vjp function is refused with a TypeError, as in JAX. Every other primitive -- including piecewise-constant and integer/bool ones, whose tangent is
# a symbolic zero -- must register a jvp rule, so that differentiating code that merely *uses*
# them (comparisons, argmax, sign) works.
NULLARY = {"iota", "rng_bit_generator", "axis_index"}  # no operands: nothing to batch or differentiate
NO_JVP_NEEDED = NULLARY | {"custom_lin"}

# Piecewise constant or integer/bool valued: their jvp gives a zero tangent.
ZERO_DERIVATIVE = {
    "sign", "floor", "ceil", "round", "is_finite", "not", "stop_gradient", "and", "or", "xor",
    "shift_left", "shift_right_logical", "eq", "ne", "lt", "le", "gt", "ge", "argmax", "argmin",
    "bitcast_convert_type",
}


def _nullary(prim):
    return prim.name in NULLARY


def test_every_registered_primitive_has_the_rules_it_needs():
    missing = []
    for prim in list(core.impl_rules) + list(core.abstract_eval_rules):
        if prim not in core.impl_rules:
            missing.append(f"{prim.name}: impl")
        if prim not in core.abstract_eval_rules:
            missing.append(f"{prim.name}: abstract eval")
        if _nullary(prim):
            continue
        if prim not in batching.batch_rules:
            missing.append(f"{prim.name}: batching (vmap)")
        if prim not in ad.jvp_rules and prim.name not in NO_JVP_NEEDED:
            missing.append(f"{prim.name}: jvp")
        if prim.name in LINEAR and prim not in ad.transpose_rules:
            missing.append(f"{prim.name}: transpose (it is linear)")
    assert not missing, "primitives lacking rules:\n  " + "\n  ".join(sorted(set(missing)))


def test_transpose_rules_only_for_linear_primitives():
    """A transpose rule on a primitive not listed as linear means the list above is stale."""
    extra = sorted(p.name for p in ad.transpose_rules if p.name not in LINEAR)
    assert not extra, f"primitives with transpose rules missing from LINEAR: {extra}"


# ---------------------------------------------------------------------------------------------
# The op table. Each entry builds, from a shape and a NumPy Generator, (f, reference, args):
# f uses lax only, reference uses NumPy, args are float64 arrays drawn from f's domain (away
# from kinks and jumps, so that central finite differences are meaningful).

def _u(lo, hi):
    return lambda rng, s: rng.uniform(lo, hi, s)


real = _u(-2.0, 2.0)


def spread(rng, s):
    """Distinct values 0.1 apart in random order: finite differences never straddle a tie of
    max/min (a kink, where the reference itself would be wrong)."""
    n = int(np.prod(s, dtype=np.int64))
    return (rng.permutation(n).reshape(s) - n / 2) * 0.1
pos = _u(0.5, 3.0)
unit = _u(-0.9, 0.9)
gt1 = _u(1.2, 3.0)


def nonzero(rng, s):
    return rng.choice([-1.0, 1.0], s) * rng.uniform(0.3, 2.0, s)


def divisor(rng, s):
    """Away from 0 enough for second-order central differences of 1/y and x/y at eps=1e-4
    (their truncation error grows as 1/|y|**5: near 0.3 it passes the 1e-5 tolerance)."""
    return rng.choice([-1.0, 1.0], s) * rng.uniform(0.7, 2.0, s)


def off_integer(rng, s):
    """Values k + (0.1..0.4): away from the jumps of floor, ceil and round."""
    return rng.integers(-3, 3, s) + rng.uniform(0.1, 0.4, s)


class Op:
    """One op-table row: a label, the primitive it exercises, and its builder."""

    def __init__(self, label, prim, build, rtol=1e-12):
        self.label, self.prim, self.build, self.rtol = label, prim, build, rtol


def unop(name, fn, ref, dom=real, prim=None):
    return Op(name, prim or name, lambda shape, rng: (fn, ref, (dom(rng, shape),)))


def binop(name, fn, ref, dom=(real, real)):
    return Op(name, name, lambda shape, rng: (fn, ref, (dom[0](rng, shape), dom[1](rng, shape))))


def _apart(rng, s):
    """(x, y) with |x - y| >= 0.2: no ties for max/min."""
    x = real(rng, s)
    return x, x + nonzero(rng, s) * 0.5 + rng.choice([-0.2, 0.2], s)


def _rem_args(rng, s):
    y = nonzero(rng, s)
    return y * (rng.integers(-2, 3, s) + rng.uniform(0.1, 0.9, s)), y


def _paired(name, fn, ref, gen):
    return Op(name, name, lambda shape, rng: (fn, ref, gen(rng, shape)))


def _reduce_axes(shape):
    return tuple(range(0, len(shape), 2))


def _reducer(name, fn, ref, values=real):
    def build(shape, rng):
        axes = _reduce_axes(shape)
        return (lambda x: fn(x, axes), lambda x: ref(x, axis=axes), (values(rng, shape),))
    return Op(name, name, build)


def _cumulative(name, fn, ref, reverse, values=real):
    def build(shape, rng):
        shape = shape or (3,)
        ax = len(shape) - 1

        def r(x):
            x = np.flip(x, ax) if reverse else x
            out = ref(x, axis=ax)
            return np.flip(out, ax) if reverse else out
        return (lambda x: fn(x, ax, reverse), r, (values(rng, shape),))
    return Op(f"{name}{'_rev' if reverse else ''}", name, build)


def _select2(shape, rng):
    pred = rng.uniform(size=shape) < 0.5
    return (lambda p, a, b: lax.select(p, a, b), lambda p, a, b: np.where(p, a, b),
            (pred, real(rng, shape), real(rng, shape)))


def _select3(shape, rng):
    which = rng.integers(0, 3, shape).astype(np.int32)
    return (lambda w, a, b, c: lax.select_n(w, a, b, c), lambda w, a, b, c: np.choose(w, [a, b, c]),
            (which, real(rng, shape), real(rng, shape), real(rng, shape)))


def _broadcast(shape, rng):
    out_shape = (2,) + shape + (3,)
    dims = tuple(range(1, len(shape) + 1))
    return (lambda x: lax.broadcast_in_dim(x, out_shape, dims),
            lambda x: np.broadcast_to(x[None, ..., None], out_shape), (real(rng, shape),))


def _broadcast_expand(shape, rng):
    """Size-1 operand dimensions expanded (the transpose must sum over them)."""
    out_shape = (3,) + shape
    ones = (1,) * len(shape)
    return (lambda x: lax.broadcast_in_dim(x, out_shape, tuple(range(len(shape) + 1))),
            lambda x: np.broadcast_to(x, out_shape), (real(rng, (1,) + ones),))


def _reshape(shape, rng):
    n = int(np.prod(shape))
    return (lambda x: lax.reshape(x, (n, 1)), lambda x: np.reshape(x, (n, 1)), (real(rng, shape),))


def _transpose(shape, rng):
    perm = tuple(reversed(range(len(shape))))
    if len(shape) >= 3:
        perm = (1, 2, 0) + tuple(range(3, len(shape)))
    return (lambda x: L.transpose_p.bind(x, permutation=perm), lambda x: np.transpose(x, perm),
            (real(rng, shape),))


def _squeeze(shape, rng):
    d = min(1, len(shape))
    s = shape[:d] + (1,) + shape[d:]
    return (lambda x: lax.squeeze(x, (d,)), lambda x: np.squeeze(x, d), (real(rng, s),))


def _rev(shape, rng):
    dims = tuple(range(len(shape)))[::2]
    return (lambda x: lax.rev(x, dims), lambda x: np.flip(x, dims) if dims else x,
            (real(rng, shape),))


def _dot(kind):
    def build(shape, rng):
        m, k, n = (tuple(shape) + (2, 3, 2))[:3]
        if kind == "matmul":
            xs, ys, dn = (m, k), (k, n), (((1,), (0,)), ((), ()))
            ref = np.matmul
        elif kind == "batch":
            xs, ys, dn = (m, n, k), (m, k, 2), (((2,), (1,)), ((0,), (0,)))
            ref = np.matmul
        elif kind == "outer":
            xs, ys, dn = (m,), (n, k), (((), ()), ((), ()))
            ref = lambda x, y: np.multiply.outer(x, y)  # noqa: E731
        else:  # contract the leading dims, free dims in odd places
            xs, ys, dn = (k, m), (n, k), (((0,), (1,)), ((), ()))
            ref = lambda x, y: x.T @ y.T  # noqa: E731
        return (lambda x, y: lax.dot_general(x, y, dn), ref, (real(rng, xs), real(rng, ys)))
    return Op(f"dot_general_{kind}", "dot_general", build)


def _slice(shape, rng):
    s = tuple(d + 2 for d in shape)
    start, limit = (1,) * len(s), tuple(d for d in s)
    strides = tuple(1 + (i % 2) for i in range(len(s)))
    return (lambda x: lax.slice(x, start, limit, strides),
            lambda x: x[tuple(slice(a, b, c) for a, b, c in zip(start, limit, strides))],
            (real(rng, s),))


def _pad(shape, rng):
    cfg = [(1, 2, 1), (-1, 1, 0), (0, -1, 2)][: len(shape)]
    cfg = [(lo, hi, it) if d > 1 or lo >= 0 and hi >= 0 else (1, 0, 0) for (lo, hi, it), d
           in zip(cfg, shape)]

    def ref(x, v):
        from functrans.lax.slicing import _pad_impl
        return _pad_impl(x, v, padding_config=tuple(cfg))
    return (lambda x, v: lax.pad(x, v, cfg), ref, (real(rng, shape), real(rng, ())))


def _concatenate(shape, rng):
    shape = shape or (2,)
    s2 = (shape[0] + 1,) + shape[1:]
    return (lambda x, y: lax.concatenate([x, y, x], 0),
            lambda x, y: np.concatenate([x, y, x], 0), (real(rng, shape), real(rng, s2)))


def _gather_setup(shape, rng):
    """x with a leading axis of size n, and 4 row indices into it (repeats allowed)."""
    shape = shape or (3,)
    idx = rng.integers(0, shape[0], (4, 1))
    return shape, idx


def _gather(shape, rng):
    shape, idx = _gather_setup(shape, rng)
    idx[0, 0] = shape[0] + 2  # out of range: clamped
    return (lambda x, i: S.gather(x, i, (0,)),
            lambda x, i: x[np.clip(i[:, 0], 0, shape[0] - 1)], (real(rng, shape), idx))


def _scatter(kind):
    def ref(x, i, u):
        out = x.copy()
        for row, upd in zip(i[:, 0], u):
            if 0 <= row < x.shape[0]:
                out[row] = {"scatter_add": out[row] + upd, "scatter": upd,
                            "scatter_mul": out[row] * upd}[kind]
        return out

    def build(shape, rng):
        shape, idx = _gather_setup(shape, rng)
        idx[0, 0] = -1  # out of range: dropped
        f = getattr(S, kind)
        return (lambda x, i, u: f(x, i, u, (0,)), ref,
                (real(rng, shape), idx, real(rng, (4,) + shape[1:])))
    return build


def _dynamic_slice(shape, rng):
    shape = shape or (3,)
    sizes = tuple(max(1, d - 1) for d in shape)
    starts = [np.int64(rng.integers(0, 3)) for _ in shape]
    starts[0] = np.int64(5)  # out of range: clamped so the window fits

    def ref(x, *st):
        st = [min(max(int(s), 0), d - k) for s, d, k in zip(st, shape, sizes)]
        return x[tuple(slice(s, s + k) for s, k in zip(st, sizes))]
    return (lambda x, *st: S.dynamic_slice(x, st, sizes), ref, (real(rng, shape), *starts))


def _dynamic_update_slice(shape, rng):
    shape = shape or (3,)
    sizes = tuple(max(1, d - 1) for d in shape)
    starts = [np.int64(rng.integers(-1, 3)) for _ in shape]

    def ref(x, u, *st):
        st = [min(max(int(s), 0), d - k) for s, d, k in zip(st, shape, sizes)]
        out = x.copy()
        out[tuple(slice(s, s + k) for s, k in zip(st, sizes))] = u
        return out
    return (lambda x, u, *st: S.dynamic_update_slice(x, u, st), ref,
            (real(rng, shape), real(rng, sizes), *starts))


def _sort(n_operands):
    def build(shape, rng):
        shape = shape or (3,)
        if n_operands == 1:
            return (lambda x: S.sort(x, dimension=-1), lambda x: np.sort(x, -1),
                    (real(rng, shape),))

        def ref(k, v):
            order = np.argsort(k, axis=0, kind="stable")
            return (np.take_along_axis(k, order, 0), np.take_along_axis(v, order, 0))
        return (lambda k, v: S.sort(k, v, dimension=0), ref, (real(rng, shape), real(rng, shape)))
    return build


def _integer_pow(y, dom=real):
    return unop(f"integer_pow_{y}", lambda x: lax.integer_pow(x, y),
                lambda x: x ** float(y), dom, prim="integer_pow")


def _convert(shape, rng):
    return (lambda x: L.convert_element_type_p.bind(x, new_dtype=np.dtype(np.float64)),
            lambda x: x, (real(rng, shape),))


def _complex_parts(part):
    """real -> real functions through lax.complex and one complex-part primitive (every
    complex rule is checked with complex arguments in tests/test_complex.py)."""
    fns = {"complex": (lambda x, y: L.real(L.mul(L.complex(x, y), L.complex(y, x))),
                       lambda x, y: np.real((x + 1j * y) * (y + 1j * x))),
           "real": (lambda x, y: L.real(L.mul(L.complex(x, y), L.complex(x, x))),
                    lambda x, y: np.real((x + 1j * y) * (x + 1j * x))),
           "imag": (lambda x, y: L.imag(L.mul(L.complex(x, y), L.complex(x, y))),
                    lambda x, y: np.imag((x + 1j * y) ** 2)),
           "conj": (lambda x, y: L.imag(L.mul(L.conj(L.complex(x, y)), L.complex(y, x))),
                    lambda x, y: np.imag(np.conj(x + 1j * y) * (y + 1j * x)))}
    f, ref = fns[part]
    return Op(part, part, lambda shape, rng: (f, ref, (real(rng, shape), real(rng, shape))))


OPS = [
    *[_complex_parts(p) for p in ("complex", "real", "imag", "conj")],
    unop("neg", L.neg, np.negative),
    unop("sign", L.sign, np.sign, nonzero),
    unop("floor", L.floor, np.floor, off_integer),
    unop("ceil", L.ceil, np.ceil, off_integer),
    unop("round", L.round, np.round, off_integer),
    unop("abs", L.abs, np.abs, nonzero),
    unop("exp", L.exp, np.exp),
    unop("exp2", L.exp2, np.exp2),
    unop("log", L.log, np.log, pos),
    unop("log1p", L.log1p, np.log1p, _u(-0.5, 2.0)),
    unop("expm1", L.expm1, np.expm1),
    unop("tanh", L.tanh, np.tanh),
    unop("logistic", L.logistic, scipy.special.expit),
    unop("sin", L.sin, np.sin),
    unop("cos", L.cos, np.cos),
    unop("tan", L.tan, np.tan, _u(-1.2, 1.2)),
    unop("asin", L.asin, np.arcsin, unit),
    unop("acos", L.acos, np.arccos, unit),
    unop("atan", L.atan, np.arctan),
    unop("sinh", L.sinh, np.sinh),
    unop("cosh", L.cosh, np.cosh),
    unop("asinh", L.asinh, np.arcsinh),
    unop("acosh", L.acosh, np.arccosh, gt1),
    unop("atanh", L.atanh, np.arctanh, _u(-0.8, 0.8)),  # atanh''' grows fast near +-1
    unop("sqrt", L.sqrt, np.sqrt, pos),
    unop("rsqrt", L.rsqrt, lambda x: 1 / np.sqrt(x), pos),
    unop("cbrt", L.cbrt, np.cbrt, nonzero),
    unop("erf", L.erf, scipy.special.erf),
    _integer_pow(0), _integer_pow(1), _integer_pow(2), _integer_pow(3),
    _integer_pow(-1, divisor), _integer_pow(-2, divisor),
    binop("add", L.add, np.add),
    binop("sub", L.sub, np.subtract),
    binop("mul", L.mul, np.multiply),
    binop("div", L.div, np.divide, (real, divisor)),
    _paired("rem", L.rem, np.fmod, _rem_args),
    binop("pow", L.pow, np.power, (pos, real)),
    _paired("max", L.max, np.maximum, _apart),
    _paired("min", L.min, np.minimum, _apart),
    binop("atan2", L.atan2, np.arctan2, (real, divisor)),
    Op("select_n_bool", "select_n", _select2),
    Op("select_n_int", "select_n", _select3),
    Op("convert_element_type", "convert_element_type", _convert),
    _reducer("reduce_sum", lax.reduce_sum, np.sum),
    _reducer("reduce_prod", lax.reduce_prod, np.prod),
    _reducer("reduce_max", lax.reduce_max, np.max, spread),
    _reducer("reduce_min", lax.reduce_min, np.min, spread),
    _cumulative("cumsum", lax.cumsum, np.cumsum, False),
    _cumulative("cumsum", lax.cumsum, np.cumsum, True),
    _cumulative("cumprod", lax.cumprod, np.cumprod, False),
    _cumulative("cumprod", lax.cumprod, np.cumprod, True),
    _cumulative("cummax", lax.cummax, np.maximum.accumulate, False, spread),
    _cumulative("cummax", lax.cummax, np.maximum.accumulate, True, spread),
    _cumulative("cummin", lax.cummin, np.minimum.accumulate, False, spread),
    Op("broadcast_in_dim", "broadcast_in_dim", _broadcast),
    Op("broadcast_in_dim_expand", "broadcast_in_dim", _broadcast_expand),
    Op("reshape", "reshape", _reshape),
    Op("transpose", "transpose", _transpose),
    Op("squeeze", "squeeze", _squeeze),
    Op("rev", "rev", _rev),
    _dot("matmul"), _dot("batch"), _dot("outer"), _dot("odd"),
    Op("slice", "slice", _slice),
    Op("pad", "pad", _pad),
    Op("concatenate", "concatenate", _concatenate),
    Op("dynamic_slice", "dynamic_slice", _dynamic_slice),
    Op("dynamic_update_slice", "dynamic_update_slice", _dynamic_update_slice),
    Op("sort", "sort", _sort(1)),
    Op("sort_key_value", "sort", _sort(2)),
    Op("gather", "gather", _gather),
    Op("scatter_add", "scatter_add", _scatter("scatter_add")),
    Op("scatter", "scatter", _scatter("scatter")),
    Op("scatter_mul", "scatter_mul", _scatter("scatter_mul")),
]
OP_NAMES = [op.label for op in OPS]
OP_TABLE = {op.label: (op.build, op.rtol) for op in OPS}

# Non-differentiable primitives of lax.py: integer/bool outputs, stop_gradient (finite
# differences see the identity) or no array operand. Their zero tangents are checked below.
NOT_IN_GRAD_TABLE = {"stop_gradient", "is_finite", "not", "and", "or", "xor", "shift_left", "shift_right_logical",
                     "eq", "ne", "lt", "le", "gt", "ge", "argmax", "argmin", "iota",
                     "reduce_precision",   # straight-through (finite differences see steps)
                     "bitcast_convert_type"}


def test_op_table_covers_every_lax_primitive():
    """Every primitive defined in lax/lax.py and lax/slicing.py is checked by the op table (or
    listed as non-differentiable above)."""
    prims = {v.name for mod in (L, S) for v in vars(mod).values() if isinstance(v, core.Primitive)}
    covered = {op.prim for op in OPS}
    missing = sorted(p for p in prims if p not in covered and p not in NOT_IN_GRAD_TABLE)
    assert not missing, f"lax primitives missing from the op table: {missing}"


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)


@pytest.mark.parametrize("name", OP_NAMES)
@settings(max_examples=8)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_op_grads_and_values(name, shape, seed):
    build, rtol = OP_TABLE[name]
    f, ref, args = build(shape, np.random.default_rng(seed))
    got, want = ft.tree_util.tree_leaves(f(*args)), ft.tree_util.tree_leaves(ref(*args))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-14)
    check_grads(f, args, order=2, modes=("fwd", "rev"))


def _nondiff_cases():
    """prim name -> (f, example operand) for the non-differentiable lax primitives."""
    ints = np.array([1, 2, 3], np.int32)
    cases = {"is_finite": (L.is_finite, None), "argmax": (lambda v: lax.argmax(v, 0), None),
             "argmin": (lambda v: lax.argmin(v, 0), None),
             "not": (L.bitwise_not, np.array([True, False, True])),
             "bitcast_convert_type": (lambda v: L.bitcast_convert_type(v, np.int64), None)}
    for c in ["eq", "ne", "lt", "le", "gt", "ge"]:
        cases[c] = ((lambda c: lambda v: getattr(L, c)(v, L.add(v, v)))(c), None)
    for c, fn in [("and", L.bitwise_and), ("or", L.bitwise_or), ("xor", L.bitwise_xor),
                  ("shift_left", L.shift_left), ("shift_right_logical", L.shift_right_logical)]:
        cases[c] = ((lambda fn: lambda a: fn(a, np.ones(3, np.int32)))(fn), ints)
    return cases


def test_stop_gradient_has_zero_derivatives_of_every_order():
    x = np.array([0.5, -1.0, 2.0])
    f = lambda v: L.mul(v, lax.stop_gradient(L.sin(v)))  # noqa: E731
    out, t = ft.jvp(f, (x,), (np.ones(3),))
    np.testing.assert_allclose(t, np.sin(x))
    np.testing.assert_allclose(ft.grad(lambda v: L.reduce_sum(f(v), (0,)))(x), np.sin(x))
    h = ft.hessian(lambda v: L.reduce_sum(L.mul(v, lax.stop_gradient(L.mul(v, v))), (0,)))(x)
    np.testing.assert_array_equal(h, np.zeros((3, 3)))
    check_vmap(lax.stop_gradient, (np.ones((2, 3)),), 1)


@pytest.mark.parametrize("prim", sorted(NOT_IN_GRAD_TABLE
                                        - {"iota", "stop_gradient", "reduce_precision"}))
def test_non_differentiable_primitives_have_zero_tangents(prim):
    f, operand = _nondiff_cases()[prim]
    if operand is None:  # float operand, integer/bool result: a float0 tangent ...
        x = np.array([0.5, -1.0, 2.0])
        out, t = ft.jvp(f, (x,), (np.ones(3),))
        assert t.dtype == core.float0 and t.shape == np.shape(out)

        # ... and code using the result (as a mask or a count) differentiates through it
        def g(v):
            m = L.convert_element_type(f(v), v.dtype)
            return L.reduce_sum(L.mul(v, L.broadcast_in_dim(m, (3,), () if np.ndim(out) == 0
                                                            else (0,))), (0,))
        mask = np.broadcast_to(np.asarray(f(x), np.float64), (3,))
        np.testing.assert_allclose(ft.grad(g)(x), mask)
    else:  # integer/bool operand: no tangent flows at all
        out, t = ft.jvp(f, (operand,), (np.zeros(3, core.float0),))
        assert t.dtype == core.float0 and t.shape == np.shape(out)


# ---------------------------------------------------------------------------------------------
# Closure: the rules emit only primitives that have rules themselves

def _prims_in(closed):
    """Primitives of a (Closed)Jaxpr, including those of jaxprs held in equation params."""
    jaxpr = closed.jaxpr if isinstance(closed, core.ClosedJaxpr) else closed
    found = set()
    for eqn in jaxpr.eqns:
        found.add(eqn.primitive)
        for p in eqn.params.values():
            subs = p if isinstance(p, tuple) else (p,)
            for q in subs:
                if isinstance(q, (core.Jaxpr, core.ClosedJaxpr)):
                    found |= _prims_in(q)
    return found


def _missing(prims, need_transpose=False):
    out = []
    for p in prims:
        for table, what in [(core.impl_rules, "impl"), (core.abstract_eval_rules, "abstract eval"),
                            (ad.jvp_rules, "jvp"), (batching.batch_rules, "batching")]:
            if p not in table and not (what in ("jvp", "batching") and _nullary(p)) \
                    and not (what == "jvp" and p.name in NO_JVP_NEEDED):
                out.append(f"{p.name}: {what}")
        if need_transpose and p not in ad.transpose_rules:
            out.append(f"{p.name}: transpose")
    return out


@pytest.mark.parametrize("name", OP_NAMES)
def test_rules_are_closed(name):
    build, _ = OP_TABLE[name]
    f, _, args = build((2, 3), np.random.default_rng(0))
    fl = [i for i, a in enumerate(args) if np.asarray(a).dtype.kind == "f"]

    def f_float(*xs):
        full = list(args)
        for i, x in zip(fl, xs):
            full[i] = x
        return f(*full)

    xs = [args[i] for i in fl]
    emitted = set()
    jvp_j = ft.make_jaxpr(lambda p, t: ft.jvp(f_float, p, t))(xs, xs)
    vjp_j = ft.make_jaxpr(lambda p, c: ft.vjp(f_float, *p)[1](c))(xs, f_float(*xs))
    vmap_j = ft.make_jaxpr(ft.vmap(f_float))(*[np.stack([x, x]) for x in xs])
    hess_j = ft.make_jaxpr(lambda p, t: ft.jvp(lambda *q: ft.vjp(f_float, *q)[1](f_float(*q)),
                                               p, t))(xs, xs)
    for j in (jvp_j, vjp_j, vmap_j, hess_j):
        emitted |= _prims_in(j)
    _, lin, _ = ad.linearize_flat(lambda *q: ft.tree_util.tree_leaves(f_float(*q)), xs)
    problems = _missing(emitted) + _missing(_prims_in(lin), need_transpose=True)
    assert not problems, f"{name}: rules emit primitives lacking rules: {sorted(set(problems))}"


# ---------------------------------------------------------------------------------------------
# vmap of every op, for every placement of the batch dimension on every argument

@pytest.mark.parametrize("name", OP_NAMES)
def test_vmap_every_batch_dim_placement(name):
    build, _ = OP_TABLE[name]
    shape = (2, 3)
    f, _, args0 = build(shape, np.random.default_rng(1))
    _, _, args1 = build(shape, np.random.default_rng(2))
    _, _, args2 = build(shape, np.random.default_rng(3))
    options = [[None] + list(range(np.ndim(a) + 1)) for a in args0]
    count = 0
    for axes in itertools.product(*options):
        if all(a is None for a in axes):
            continue
        batched = [a0 if ax is None else np.stack([a0, a1, a2], axis=ax)
                   for a0, a1, a2, ax in zip(args0, args1, args2, axes)]
        for out_axes in (0, -1):
            check_vmap(f, batched, tuple(axes), out_axes=out_axes)
        count += 1
    assert count >= len(args0)


def test_vmap_of_jvp_and_grad_match_loop():
    """Batching composes with the derivative rules (rules are themselves batchable)."""
    def f(x, y):
        return L.reduce_sum(L.mul(L.sin(x), L.exp(y)), (0,))
    xs, ys = np.random.default_rng(0).normal(size=(2, 4, 3))
    check_vmap(ft.grad(f, argnums=(0, 1)), (xs, ys), (0, 0))
    check_vmap(lambda a, b: ft.jvp(f, (a, b), (b, a)), (xs, ys), (1, 1))


def test_check_grads_detects_a_wrong_rule():
    """check_grads can fail: a deliberately wrong jvp (for a fresh primitive) is caught, in
    forward mode and through the inner-product identity in reverse mode."""
    p = L.primitive("wrong_sin", np.sin, lambda x: x)
    batching.defvectorized(p)
    ad.defjvp(p, lambda g, x: L.mul(g, L.sin(x)))  # should be cos
    try:
        for mode in ("fwd", "rev"):
            with pytest.raises(AssertionError, match="not close"):
                check_grads(lambda x: p.bind(x), (np.array([0.3, 1.0]),), 1, modes=(mode,))
    finally:
        for table in (core.impl_rules, core.abstract_eval_rules, batching.batch_rules,
                      ad.jvp_rules):
            table.pop(p, None)


def test_check_grads_second_order_catches_wrong_second_derivative():
    """A jvp rule correct to first order but written with a non-differentiable helper (its
    derivative treated as zero) is caught only at order 2."""
    p = L.primitive("sin_first_order_only", np.sin, lambda x: x)
    batching.defvectorized(p)
    ad.defjvp(p, lambda g, x: L.mul(g, lax.stop_gradient(L.cos(x))))
    try:
        check_grads(lambda x: p.bind(x), (np.array([0.3, 1.0]),), 1)
        with pytest.raises(AssertionError):
            check_grads(lambda x: p.bind(x), (np.array([0.3, 1.0]),), 2)
    finally:
        for table in (core.impl_rules, core.abstract_eval_rules, batching.batch_rules,
                      ad.jvp_rules):
            table.pop(p, None)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint32, np.float64])
def test_select_n_large_arrays_bit_identical(dtype):
    # large 4-byte arrays take the integer bit-select path of the impl
    rng = np.random.default_rng(0)
    which = rng.random((130, 130)) > 0.5
    a = (rng.standard_normal((130, 130)) * 100).astype(dtype)
    b = (rng.standard_normal((130, 130)) * 100).astype(dtype)
    if np.dtype(dtype).kind == "f":
        a[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
        b[0, 4:8] = [np.nan, -0.0, np.inf, -np.inf]
    got = lax.select(which, a, b)
    want = np.where(which, a, b)
    assert got.dtype == want.dtype
    assert np.array_equal(np.asarray(got).view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("zero_side", [0, 1])
@pytest.mark.parametrize("fill", [0.0, -0.0, 2.5])
def test_select_n_against_broadcast_fill(zero_side, fill):
    # a broadcast constant case takes the one-pass path only when its bits are all zero
    rng = np.random.default_rng(1)
    which = rng.random((130, 130)) > 0.5
    x = rng.standard_normal((130, 130)).astype(np.float32)
    x[0, :4] = [np.nan, -0.0, np.inf, -np.inf]
    c = lax.full((130, 130), fill, np.float32)
    cases = (c, x) if zero_side == 0 else (x, c)
    got = lax.select_n(which, *cases)
    want = np.where(which, np.asarray(cases[1]), np.asarray(cases[0]))
    assert np.array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32))


def test_broadcast_results_are_read_only_views():
    # eager broadcasts are views (no fill pass); arrays are immutable, so they are read-only
    b = lax.broadcast_in_dim(lax.iota(np.float64, 3), (1000, 3), (1,))
    assert np.asarray(b).strides[0] == 0 and not np.asarray(b).flags.writeable
    with pytest.raises(ValueError):
        np.asarray(b)[0, 0] = 1.0
    np.testing.assert_array_equal(b, np.broadcast_to(np.arange(3.0), (1000, 3)))
