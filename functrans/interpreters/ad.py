"""Automatic differentiation: forward mode (JVPTrace), linearize (jvp under partial evaluation)
and reverse mode (transposition of the linear jaxpr), plus the rule tables and def-helpers."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import (ClosedJaxpr, Literal, Tracer, Trace, as_array, get_aval,
                    jaxpr_as_fun, trace_to_jaxpr, transform_trace)
from ..util import merge_lists, safe_map, safe_zip, split_list, unzip2
from . import ops

map, zip = safe_map, safe_zip

jvp_rules = {}        # prim -> f(primals, tangents, **params) -> (out, tangent_out)
transpose_rules = {}  # prim -> f(ct, *invals, **params) -> [ct_in or None, ...]


# ---------------------------------------------------------------------------------------------
# Symbolic zeros

class Zero:
    """A symbolic zero tangent or cotangent of the given aval: costs nothing until instantiated."""
    __slots__ = ("_aval", "_like")

    def __init__(self, aval):
        self._aval, self._like = aval, None

    @classmethod
    def like(cls, x):
        """The zero tangent of value x (its aval is computed only if asked for)."""
        z = cls.__new__(cls)
        z._aval, z._like = None, x
        return z

    @property
    def aval(self):
        if self._aval is None:
            self._aval = get_aval(self._like)
        return self._aval

    def __repr__(self):
        return f"Zero({self.aval})"


def zeros_like_aval(aval):
    """A materialised zero array of aval's shape and dtype (a traceable op)."""
    return ops.get("full")(aval.shape, 0, aval.dtype)


def instantiate_zeros(t):
    """Materialise a symbolic zero; other values pass through."""
    return zeros_like_aval(t.aval) if type(t) is Zero else t


def add_tangents(x, y):
    """Sum of two tangents, skipping symbolic zeros."""
    if type(x) is Zero:
        return y
    if type(y) is Zero:
        return x
    return ops.get("add")(x, y)


def tangent_aval(aval):
    """Tangents of float values have the value's aval; others are always symbolic zeros."""
    return aval


# ---------------------------------------------------------------------------------------------
# Forward mode

class JVPTracer(Tracer):
    """A primal value paired with its (possibly symbolically zero) tangent."""
    __slots__ = ("primal", "tangent", "aval")

    def __init__(self, trace, primal, tangent):
        self._trace, self.primal, self.tangent = trace, primal, tangent
        self.aval = primal.aval if type(primal) is core.Array else get_aval(primal)

    def to_concrete_value(self):
        return core.concrete_or_none(self.primal)


core.register_leaf_type(JVPTracer)


class JVPTrace(Trace):
    """Runs jvp rules; primal and tangent computations go to the parent trace."""
    __slots__ = ()

    def lift(self, x):
        """(primal, tangent) of x as seen by this trace."""
        if isinstance(x, Tracer) and x._trace is self:
            return x.primal, x.tangent
        self.check_foreign(x)
        return x, Zero(get_aval(x))

    def process_primitive(self, prim, args, params):
        primals, tangents, nonzero = [], [], False
        for x in args:
            if type(x) is JVPTracer and x._trace is self:
                primals.append(x.primal)
                tangents.append(x.tangent)
                nonzero = True
                continue
            if isinstance(x, Tracer) and not x._trace.valid:
                raise core.escaped_tracer_error(x)
            primals.append(x)
            tangents.append(Zero.like(x))
        prev = core._state.trace
        core._state.trace = self.parent
        try:
            if not nonzero:
                return self.parent.process_primitive(prim, primals, params)
            rule = jvp_rules.get(prim)
            if rule is None:
                raise NotImplementedError(
                    f"Differentiation rule for '{prim.name}' not implemented (jvp){core.where()}")
            out, t_out = rule(primals, tangents, **params)
        finally:
            core._state.trace = prev
        if prim.multiple_results:
            return [self.pure(p, t) for p, t in zip(out, t_out)]
        return out if type(t_out) is Zero else JVPTracer(self, out, t_out)

    def pure(self, primal, tangent):
        return primal if type(tangent) is Zero else JVPTracer(self, primal, tangent)


def jvp_flat(f, primals, tangents):
    """Push tangents through f (flat lists in and out). A tangent may be a Zero."""
    trace = JVPTrace(core.current_trace())
    with transform_trace(trace):
        ins = [p if type(t) is Zero else JVPTracer(trace, p, t) for p, t in zip(primals, tangents)]
        outs = f(*ins)
        return unzip2(trace.lift(as_array(o)) for o in outs)


# ---------------------------------------------------------------------------------------------
# Rule helpers

def _bind(prim, primals, params):
    return prim.bind(*primals, **params)


def defjvp(prim, *rules):
    """jvp from one rule per argument: rule(g, *primals, **params) is that argument's tangent
    contribution (None: the argument has no derivative)."""
    jvp_rules[prim] = _jvp_from_contributions(prim, rules, with_ans=False)


def defjvp2(prim, *rules):
    """Like defjvp, but each rule also sees the output: rule(g, ans, *primals, **params)."""
    jvp_rules[prim] = _jvp_from_contributions(prim, rules, with_ans=True)


def _jvp_from_contributions(prim, rules, with_ans):
    """The jvp rule whose output tangent is the sum over the nonzero tangents g of
    rule(g, *primals, **params) (rule(g, ans, *primals, **params) with_ans)."""
    def jvp(primals, tangents, **params):
        out = core._state.trace.process_primitive(prim, primals, params)   # prim.bind
        extra = (out,) if with_ans else ()
        t_out = None
        for rule, g in zip(rules, tangents):
            if rule is not None and type(g) is not Zero:
                t = rule(g, *extra, *primals, **params)
                t_out = t if t_out is None else add_tangents(t_out, t)
        return out, Zero.like(out) if t_out is None else t_out
    return jvp


def defjvp_zero(prim):
    """prim is piecewise constant (or integer valued): its tangent is zero."""
    def jvp(primals, tangents, **params):
        out = prim.bind(*primals, **params)
        if prim.multiple_results:
            return out, [Zero(get_aval(o)) for o in out]
        return out, Zero(get_aval(out))
    jvp_rules[prim] = jvp


def deflinear(prim, transpose_rule):
    """prim is linear in all its arguments: its jvp applies prim to the tangents."""
    def jvp(primals, tangents, **params):
        out = prim.bind(*primals, **params)
        if all(type(t) is Zero for t in tangents):
            return out, Zero(get_aval(out))
        return out, prim.bind(*map(instantiate_zeros, tangents), **params)
    jvp_rules[prim] = jvp
    transpose_rules[prim] = transpose_rule


def defbilinear(prim, lhs_transpose, rhs_transpose):
    """prim(x, y) is linear in each argument separately (mul, dot_general)."""
    def jvp(primals, tangents, **params):
        (x, y), (tx, ty) = primals, tangents
        out = prim.bind(x, y, **params)
        t_x = None if type(tx) is Zero else prim.bind(tx, y, **params)
        t_y = None if type(ty) is Zero else prim.bind(x, ty, **params)
        if t_x is None:
            return out, Zero.like(out) if t_y is None else t_y
        return out, t_x if t_y is None else add_tangents(t_x, t_y)
    jvp_rules[prim] = jvp

    def transpose(ct, x, y, **params):
        if isinstance(x, UndefPrimal):
            if isinstance(y, UndefPrimal):
                raise NotLinearError(f"'{prim.name}' of two values that both depend on the "
                                     "inputs being transposed is not linear in them")
            return [lhs_transpose(ct, x, y, **params), None]
        return [None, rhs_transpose(ct, x, y, **params)]
    transpose_rules[prim] = transpose


# ---------------------------------------------------------------------------------------------
# Linearize: jvp with the tangents staged by a partial-evaluation trace

def linearize_flat(f, primals, dce=True, sources=False):
    """Returns (primal outs, linear jaxpr, residuals). The jaxpr maps the tangents of the float
    primals to the output tangents; its constvars are the residuals. (vjp skips dead-code
    elimination: transposition never reaches equations whose outputs are unused.) With
    sources=True its equations record the user's source lines."""
    parent = core.current_trace()
    pe = core.StagingTrace(parent, forward=True, sources=sources)
    jt = JVPTrace(pe)
    ins, t_in = [], []
    for p in primals:
        aval = get_aval(p)
        if core.has_tangent(aval.dtype):
            t = pe.new_arg(aval)
            t_in.append(t)
            p = JVPTracer(jt, p, t)
        ins.append(p)
    core._state.trace = jt      # what transform_trace(jt) does, without a context manager
    try:
        outs_p, outs_t = [], []
        for o in f(*ins):
            p, t = jt.lift(as_array(o))
            outs_p.append(p)
            outs_t.append(t)
        core._state.trace = pe
        outs_t = [instantiate_zeros(t) for t in outs_t]
    finally:
        core._state.trace = parent
        jt.valid = pe.valid = False
    jaxpr, consts = pe.build(t_in, outs_t, dce=dce)
    return outs_p, jaxpr, consts


# ---------------------------------------------------------------------------------------------
# Transposition

class NotLinearError(TypeError):
    """Transposition met an operation that is not linear in the values being transposed."""


class UndefPrimal:
    """Marks a linear input of a transposed equation (its value is not known)."""
    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval

    def __repr__(self):
        return f"UndefPrimal({self.aval})"


def is_undefined_primal(x):
    return type(x) is UndefPrimal


def backward_pass(jaxpr, consts, args, cts_out, observe=None):
    """Transpose jaxpr with respect to the inputs given as UndefPrimal. Non-linear equations
    (on known inputs only) are evaluated forward first. Returns the cotangents of the
    UndefPrimal inputs (Zero where nothing flowed). ``observe(eqn, ins, cts, cts_in)``, when
    given, sees each transposed equation: its inputs (UndefPrimal for the linear ones), the
    cotangents of its outputs and those it produced for its inputs (diagnostics.grad_flow)."""
    env = dict(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    linear_eqns = _eval_nonlinear(jaxpr, env)
    add = ops.get("add")
    ct_env = {}
    for v, ct in zip(jaxpr.outvars, cts_out):
        if type(v) is not Literal:
            _add_cotangent(ct_env, v, ct, add)
    for eqn in reversed(linear_eqns):
        cts = (_pop_cotangents(ct_env, eqn) if eqn.primitive.multiple_results
               else ct_env.pop(eqn.out_binders[0], None))
        if cts is None:
            continue
        rule = transpose_rules.get(eqn.primitive)
        if rule is None:
            raise NotImplementedError(
                f"Transpose rule (for reverse-mode differentiation) for '{eqn.primitive.name}' "
                f"not implemented (equation at {core.format_source(eqn.source_info)})")
        ins = [v.val if type(v) is Literal else env[v] for v in eqn.inputs]
        cts_in = list(rule(cts, *ins, **eqn.params))
        if observe is not None:
            observe(eqn, ins, cts, cts_in)
        for v, x, ct in zip(eqn.inputs, ins, cts_in):
            if type(x) is UndefPrimal:
                _add_cotangent(ct_env, v, ct, add)
    return [_cotangent_or_zero(ct_env, v) for v, x in zip(jaxpr.invars, args)
            if type(x) is UndefPrimal]


def _cotangent_or_zero(ct_env, v):
    ct = ct_env.get(v)
    return Zero(v.aval) if ct is None else ct


def _eval_nonlinear(jaxpr, env):
    """Evaluate (bind) the equations of jaxpr that do not depend on an UndefPrimal of env,
    adding their outputs to env; mark the outputs of the others UndefPrimal. Returns those
    others: the linear equations, in order."""
    linear_vars = set()
    for v in jaxpr.invars:
        if type(env[v]) is UndefPrimal:
            linear_vars.add(v)
    linear_eqns = []
    for eqn in jaxpr.eqns:
        if not linear_vars.isdisjoint(eqn.inputs):  # (Literals hash by identity: never in it)
            linear_eqns.append(eqn)
            for v in eqn.out_binders:
                linear_vars.add(v)
                env[v] = UndefPrimal(v.aval)
            continue
        outs = eqn.primitive.bind(*[v.val if type(v) is Literal else env[v] for v in eqn.inputs],
                                  **eqn.params)
        if eqn.primitive.multiple_results:
            env.update(zip(eqn.out_binders, outs))
        else:
            env[eqn.out_binders[0]] = outs
    return linear_eqns


def _add_cotangent(ct_env, v, ct, add):
    """Accumulate the cotangent ct (None or a Zero: nothing) of variable v."""
    if ct is None or type(ct) is Zero:
        return
    prev = ct_env.get(v)
    ct_env[v] = ct if prev is None else add(prev, ct)


def _pop_cotangents(ct_env, eqn):
    """The output cotangents of the multiple-results eqn, removed from ct_env (Zeros where
    nothing flowed); None if nothing flowed into any."""
    cts = [ct_env.pop(v, None) for v in eqn.out_binders]
    if all(c is None for c in cts):
        return None
    return [Zero(v.aval) if c is None else c for v, c in zip(eqn.out_binders, cts)]


def vjp_flat(f, primals):
    """Returns (primal outs, vjp_fn) where vjp_fn(cts) gives one cotangent per primal
    (float0 zeros for integer and bool primals)."""
    outs_p, jaxpr, consts = linearize_flat(f, primals, dce=False)
    avals = [get_aval(p) for p in primals]
    out_shapes = [get_aval(o).shape for o in outs_p]
    undefined = [UndefPrimal(v.aval) for v in jaxpr.invars]

    def vjp_fn(cts):
        cts = [_checked_cotangent(i, c, s) for i, (c, s) in enumerate(zip(cts, out_shapes))]
        cts_lin = iter(backward_pass(jaxpr, consts, undefined, cts))
        return [instantiate_zeros(next(cts_lin)) if core.has_tangent(a.dtype)
                else np.zeros(a.shape, core.float0) for a in avals]

    return outs_p, vjp_fn


def _checked_cotangent(i, ct, shape):
    """ct, the cotangent of primal output i, as an array (or a Zero); ValueError unless it has
    the output's shape."""
    if type(ct) is not Zero:
        ct = as_array(ct)
    ct_shape = ct.aval.shape if type(ct) is Zero else get_aval(ct).shape
    if ct_shape != shape:
        raise ValueError(f"vjp: cotangent {i} has shape {ct_shape}, but the primal output has "
                         f"shape {shape}")
    return ct


# ---------------------------------------------------------------------------------------------
# Jaxpr-to-jaxpr transforms used by higher-order primitives

def _as_flags(x, n):
    return list(x) if isinstance(x, (list, tuple)) else [bool(x)] * n


def jvp_jaxpr(closed, nonzeros, instantiate=False):
    """The jvp of a ClosedJaxpr. Returns (ClosedJaxpr of (*primals, *nonzero tangents) ->
    (*outs, *nonzero out tangents), out_nonzeros). ``instantiate`` forces output tangents."""
    n = len(closed.in_avals)
    instantiate = _as_flags(instantiate, len(closed.out_avals))
    out_nz = []

    def fun(*args):
        primals, tangents = args[:n], iter(args[n:])
        tangents = [next(tangents) if nz else Zero(a) for nz, a in zip(nonzeros, closed.in_avals)]
        outs_p, outs_t = jvp_flat(jaxpr_as_fun(closed), primals, tangents)
        outs_t = [instantiate_zeros(t) if inst else t for t, inst in zip(outs_t, instantiate)]
        out_nz[:] = [type(t) is not Zero for t in outs_t]
        return list(outs_p) + [t for t in outs_t if type(t) is not Zero]

    in_avals = list(closed.in_avals) + [a for a, nz in zip(closed.in_avals, nonzeros) if nz]
    jaxpr, consts = trace_to_jaxpr(fun, in_avals)
    return ClosedJaxpr(jaxpr, consts), list(out_nz)


def transpose_jaxpr(closed, linear):
    """Transpose a ClosedJaxpr that is linear in the inputs flagged by ``linear``. Returns a
    ClosedJaxpr of (*non-linear inputs, *output cotangents) -> cotangents of the linear inputs."""
    in_avals = closed.in_avals
    res_avals = [a for a, lin in zip(in_avals, linear) if not lin]
    lin_avals = [a for a, lin in zip(in_avals, linear) if lin]

    def fun(*args):
        res, cts = split_list(args, [len(res_avals)])
        ins = merge_lists(linear, res, [UndefPrimal(a) for a in lin_avals])
        return [instantiate_zeros(c) for c in backward_pass(closed.jaxpr, closed.consts, ins, cts)]

    jaxpr, consts = trace_to_jaxpr(fun, res_avals + list(closed.out_avals))
    return ClosedJaxpr(jaxpr, consts)
