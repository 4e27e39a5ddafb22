"""Backend-neutral kernel plan: a jaxpr becomes a list of steps.

* ``Group``: one loop nest over an iteration shape. It holds a chain of elementwise equations,
  index-map reads (broadcast_in_dim, transpose, rev, slice, squeeze, iota) of arrays computed
  before the group, and reductions that consume values of the chain. Only values used after the
  group (or returned) get a buffer; the rest live in registers.
* ``Op``: one equation lowered on its own (dot_general, reshape, pad, cumulative ops, ...).

Nested ``jit`` equations are inlined first. The plan depends on shapes only through shape
*equality* (and size-1 broadcasting), so most new batch sizes give the same plan."""
from __future__ import annotations

from .. import core
from ..core import Literal, Var

ELEMENTWISE = {
    "neg", "sign", "floor", "ceil", "round", "is_finite", "abs", "exp", "exp2", "log", "log1p",
    "expm1", "tanh", "logistic", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt", "erf", "not", "stop_gradient",
    "integer_pow", "add", "sub", "mul", "div", "rem", "pow", "max", "min", "atan2", "and", "or",
    "xor", "shift_left", "shift_right_logical", "eq", "ne", "lt", "le", "gt", "ge", "select_n",
    "convert_element_type"}
# reads of one earlier array through an index map; iota reads nothing
INDEX_MAPS = {"broadcast_in_dim", "transpose", "rev", "slice", "squeeze", "iota"}
REDUCTIONS = {"reduce_sum", "reduce_prod", "reduce_max", "reduce_min"}
# call-like higher-order primitives, inlined: name -> the param holding the ClosedJaxpr
CALLS = {"jit": "jaxpr", "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
         "custom_vjp_call": "call_jaxpr"}


class Group:
    """One fused loop nest over ``shape_var``'s shape."""
    __slots__ = ("shape_var", "eqns", "local", "pending")

    def __init__(self, shape_var):
        self.shape_var = shape_var      # a Var whose shape is the iteration shape
        self.eqns = []
        self.local = set()              # vars computed elementwise inside the group
        self.pending = set()            # reduction outputs: not readable inside the group

    def __repr__(self):
        return f"Group({self.shape_var.aval}, {[e.primitive.name for e in self.eqns]})"


class Op:
    """One equation lowered on its own."""
    __slots__ = ("eqn",)

    def __init__(self, eqn):
        self.eqn = eqn

    def __repr__(self):
        return f"Op({self.eqn.primitive.name})"


class KernelPlan:
    """inputs (consts then args), steps, outputs, and the vars that need a buffer."""

    def __init__(self, inputs, consts, steps, outvars, materialized):
        self.inputs, self.consts, self.steps = inputs, consts, steps
        self.outvars, self.materialized = outvars, materialized

    def __repr__(self):
        return "KernelPlan(\n  " + "\n  ".join(map(repr, self.steps)) + "\n)"


def inline_jit(closed):
    """(invars, consts-as-(Var, value), eqns, outvars) with nested call equations (jit,
    checkpoint, custom_jvp/vjp calls) inlined."""
    const_pairs = list(zip(closed.jaxpr.constvars, closed.consts))
    eqns = []

    def walk(jaxpr, env):
        def read(v):
            return v if type(v) is Literal else env.get(v, v)
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in CALLS:
                inner = eqn.params[CALLS[eqn.primitive.name]]
                sub = {}
                for cv, c in zip(inner.jaxpr.constvars, inner.consts):
                    nv = Var(cv.aval)
                    const_pairs.append((nv, c))
                    sub[cv] = nv
                for iv, x in zip(inner.jaxpr.invars, eqn.inputs):
                    sub[iv] = read(x)
                outs = walk(inner.jaxpr, sub)
                for ov, o in zip(eqn.out_binders, outs):
                    env[ov] = o
            else:   # fresh binders: an inlined jaxpr may be inlined more than once
                outs = [Var(v.aval) for v in eqn.out_binders]
                eqns.append(core.JaxprEqn(eqn.primitive, [read(v) for v in eqn.inputs],
                                          eqn.params, outs, eqn.source_info))
                env.update(zip(eqn.out_binders, outs))
        return [read(v) for v in jaxpr.outvars]

    outs = walk(closed.jaxpr, {})
    return list(closed.jaxpr.invars), const_pairs, eqns, outs


def _fusible(eqn):
    name = eqn.primitive.name
    return name in ELEMENTWISE or name in INDEX_MAPS or name in REDUCTIONS


def _iter_var(eqn):
    """The var whose shape is the loop nest this equation runs over."""
    if eqn.primitive.name in REDUCTIONS:
        return eqn.inputs[0]
    return eqn.out_binders[0]


def _can_join(group, eqn):
    if group is None or _iter_var(eqn).aval.shape != group.shape_var.aval.shape:
        return False
    name = eqn.primitive.name
    for v in eqn.inputs:
        if type(v) is Literal:
            continue
        if v in group.pending:
            return False
        if name in INDEX_MAPS and v in group.local and name != "broadcast_in_dim":
            return False
        if name == "broadcast_in_dim" and v in group.local:
            return False
    return True


def _depends_on(eqn, group):
    return group is not None and any(type(v) is Var and (v in group.local or v in group.pending)
                                     for v in eqn.inputs)


def make_plan(closed):
    """The KernelPlan of a ClosedJaxpr."""
    invars, const_pairs, eqns, outvars = inline_jit(closed)
    steps, group, hoisted = [], None, []

    def flush():
        nonlocal group, hoisted
        steps.extend(hoisted)
        hoisted = []
        if group is not None:
            steps.append(group)
        group = None

    for eqn in eqns:
        if _fusible(eqn):
            if not _can_join(group, eqn):
                flush()
                group = Group(_iter_var(eqn))
            group.eqns.append(eqn)
            target = group.pending if eqn.primitive.name in REDUCTIONS else group.local
            target.update(eqn.out_binders)
        elif _depends_on(eqn, group):
            flush()
            steps.append(Op(eqn))
        else:
            hoisted.append(Op(eqn))   # independent of the open group: run it before the group
    flush()

    used_later = set(v for v in outvars if type(v) is Var)
    materialized = set(used_later)
    for step in steps:
        if isinstance(step, Op):
            materialized.update(v for v in step.eqn.inputs if type(v) is Var)
    for i, step in enumerate(steps):
        if isinstance(step, Group):
            materialized.update(step.pending)
            for later in steps[i + 1:]:
                eq = [later.eqn] if isinstance(later, Op) else later.eqns
                for e in eq:
                    materialized.update(v for v in e.inputs if type(v) is Var and v in step.local)
            for e in step.eqns:   # index maps read whole arrays
                if e.primitive.name in INDEX_MAPS:
                    materialized.update(v for v in e.inputs if type(v) is Var)
    consts = [c for _, c in const_pairs]
    return KernelPlan([v for v, _ in const_pairs] + invars, consts, steps, outvars, materialized)
