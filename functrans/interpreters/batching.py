"""vmap: the BatchTrace, batching-rule helpers and jaxpr-level batching."""
from __future__ import annotations

import functools
import weakref

from .. import core
from ..core import ClosedJaxpr, Tracer, Trace, get_aval, trace_to_jaxpr, transform_trace
from ..util import safe_map, safe_zip, unzip2
from . import ops

map, zip = safe_map, safe_zip

batch_rules = {}  # prim -> f(vals, dims, **params) -> (out, out_dim); dims entries int or None
not_mapped = None

# Collectives (functrans.lax.parallel) act over named axes. For the vmap whose axis_name they
# name, the rule is collective_rules[prim](trace, vals, dims, **params) (the trace gives the
# axis size); under any other vmap they commute through it by their ordinary batch_rules entry.
collective_rules = {}
collective_axes = {}  # prim -> f(params) -> the axis names it acts over


class BatchTracer(Tracer):
    """A value with a batch dimension ``bdim`` (an int) that the function does not see."""
    __slots__ = ("val", "bdim", "_aval")

    def __init__(self, trace, val, bdim):
        self._trace, self.val, self.bdim, self._aval = trace, val, bdim, None

    @property
    def aval(self):
        if self._aval is None:
            a = get_aval(self.val)
            self._aval = core.ShapedArray(a.shape[:self.bdim] + a.shape[self.bdim + 1:], a.dtype)
        return self._aval

    def _concrete(self, what, err=core.ConcretizationTypeError):
        raise err(f"{what} of a value batched by vmap{core.where()}: a Python branch cannot "
                  "depend on a batched value; use functrans.numpy.where or functrans.lax.cond.")


core.register_leaf_type(BatchTracer)


class _RuleState:
    """The BatchTrace whose rule is running: the rules of higher-order primitives batch their
    jaxprs over the same (possibly named) axis, and may have no batched operand to size it."""
    __slots__ = ("trace",)


_rule = _RuleState()
_rule.trace = None


class BatchTrace(Trace):
    """Runs batching rules for one vmap application of size ``axis_size``; ``axis_name``
    (None for an anonymous vmap) is the name collectives use to act over it."""
    __slots__ = ("axis_size", "axis_name", "spmd_axis_name")

    def __init__(self, parent, axis_size, axis_name=None, spmd_axis_name=None):
        super().__init__(parent)
        self.axis_size, self.axis_name, self.spmd_axis_name = axis_size, axis_name, spmd_axis_name

    def lift(self, x):
        if isinstance(x, Tracer) and x._trace is self:
            return x.val, x.bdim
        self.check_foreign(x)
        return x, not_mapped

    def process_primitive(self, prim, args, params):
        vals, dims = unzip2(self.lift(x) for x in args)
        named = self.axis_name is not None and self.axis_name in axis_names_of(prim, params)
        if named and prim in collective_rules:
            rule = functools.partial(collective_rules[prim], self)
        elif not named and all(d is not_mapped for d in dims):
            prev = core._state.trace
            core._state.trace = self.parent
            try:
                return prim.bind(*vals, **params)
            finally:
                core._state.trace = prev
        else:
            rule = batch_rules.get(prim)
            if rule is None:
                raise NotImplementedError(
                    f"Batching rule for '{prim.name}' not implemented (vmap){core.where()}")
        prev, prev_rule = core._state.trace, _rule.trace
        core._state.trace, _rule.trace = self.parent, self
        try:
            out, out_dim = rule(vals, dims, **params)
        finally:
            core._state.trace, _rule.trace = prev, prev_rule
        if prim.multiple_results:
            return [self.pure(o, d) for o, d in zip(out, out_dim)]
        return self.pure(out, out_dim)

    def pure(self, val, dim):
        return val if dim is not_mapped else BatchTracer(self, val, dim)


def axis_names_of(prim, params):
    """The axis names prim acts over: a collective's own, or those of the collectives in the
    jaxprs a higher-order primitive carries (which must be batched even when no operand is)."""
    names = collective_axes.get(prim)
    if names is not None:
        return names(params)
    found = set()
    for v in params.values():
        for j in (v if isinstance(v, (tuple, list)) else (v,)):
            if isinstance(j, core.ClosedJaxpr):
                j = j.jaxpr
            if isinstance(j, core.Jaxpr):
                found |= jaxpr_axis_names(j)
    return found


_jaxpr_names = weakref.WeakKeyDictionary()   # Jaxpr -> frozenset of axis names


def jaxpr_axis_names(jaxpr):
    """The axis names the collectives in jaxpr (and in the jaxprs nested in it) act over."""
    names = _jaxpr_names.get(jaxpr)
    if names is None:
        names = set()
        for eqn in jaxpr.eqns:
            names |= set(axis_names_of(eqn.primitive, eqn.params))
        names = _jaxpr_names[jaxpr] = frozenset(names)
    return names


# ---------------------------------------------------------------------------------------------
# Helpers for rules (all traceable)

def moveaxis(x, src, dst):
    """Move axis src of x to position dst (a transpose primitive)."""
    nd = get_aval(x).ndim
    src, dst = src % nd, dst % nd
    if src == dst:
        return x
    perm = [i for i in range(nd) if i != src]
    perm.insert(dst, src)
    return ops.get("transpose")(x, tuple(perm))


def broadcast_batch(x, size, dim):
    """Insert a new axis of the given size at dim by broadcasting."""
    a = get_aval(x)
    shape = a.shape[:dim] + (size,) + a.shape[dim:]
    dims = tuple(i if i < dim else i + 1 for i in range(a.ndim))
    return ops.get("broadcast_in_dim")(x, shape, dims)


def bdim_at_front(x, dim, size):
    """x with its batch dimension at 0 (broadcast in if x is unbatched)."""
    if dim is not_mapped:
        return broadcast_batch(x, size, 0)
    return moveaxis(x, dim, 0)


def axis_size_of(vals, dims):
    """The size of the batch axis: that of a batched operand, else (a higher-order primitive
    batched for the collectives inside it) that of the vmap whose rule is running."""
    for v, d in zip(vals, dims):
        if d is not not_mapped:
            return get_aval(v).shape[d]
    if _rule.trace is not None:
        return _rule.trace.axis_size
    raise ValueError("no batched argument")


# the axis_name default of vmap_flat and vmap_jaxpr: that of the vmap whose rule is running
# (rules of higher-order primitives batch their bodies over the same axis)
RULE_AXIS = object()


def _new_trace(axis_size, axis_name):
    if axis_name is RULE_AXIS:
        t = _rule.trace
        return BatchTrace(core.current_trace(), axis_size, *(
            (t.axis_name, t.spmd_axis_name) if t is not None else ()))
    return BatchTrace(core.current_trace(), axis_size, axis_name)


def defvectorized(prim):
    """prim acts elementwise on a single operand: the batch dim passes through."""
    def rule(vals, dims, **params):
        return prim.bind(vals[0], **params), dims[0]
    batch_rules[prim] = rule


def defbroadcasting(prim):
    """prim acts elementwise on operands of equal shapes: align batch dims (the first batched
    operand's), broadcasting unbatched operands."""
    def rule(vals, dims, **params):
        size = axis_size_of(vals, dims)
        d0 = next(d for d in dims if d is not not_mapped)
        vals = [broadcast_batch(v, size, d0) if d is not_mapped else moveaxis(v, d, d0)
                for v, d in zip(vals, dims)]
        return prim.bind(*vals, **params), d0
    batch_rules[prim] = rule


def defreducer(prim, axes_param="axes"):
    """prim reduces over params[axes_param] of a single operand."""
    def rule(vals, dims, **params):
        (x,), (d,) = vals, dims
        axes = tuple(a + (a >= d) for a in params[axes_param])
        out_d = d - sum(a < d for a in axes)
        return prim.bind(x, **{**params, axes_param: axes}), out_d
    batch_rules[prim] = rule


# ---------------------------------------------------------------------------------------------
# vmap of flat functions and of jaxprs

def vmap_flat(f, axis_size, in_dims, out_dims, args, axis_name=RULE_AXIS):
    """Run f over a batch: args carry their batch dims in in_dims; outputs get out_dims (a list,
    or a thunk called after f ran, when the output structure is only known then). axis_name
    names the batch axis for collectives (None: anonymous); the caller binds it in the axis
    environment."""
    trace = _new_trace(axis_size, axis_name)
    with transform_trace(trace):
        ins = [x if d is not_mapped else BatchTracer(trace, x, d) for x, d in zip(args, in_dims)]
        outs = f(*ins)
        lifted = [trace.lift(core.as_array(o)) for o in outs]
    out_dims = out_dims() if callable(out_dims) else out_dims
    return [_place(v, d, od, axis_size) for (v, d), od in zip(lifted, out_dims)]


def _place(v, d, od, size):
    if od is not_mapped:
        if d is not not_mapped:
            raise ValueError("vmap has mapped output but out_axes is None")
        return v
    nd = get_aval(v).ndim + (d is not_mapped)
    if not -nd <= od < nd:
        raise ValueError(f"vmap out_axes {od} is out of bounds for an output of rank {nd}")
    od %= nd
    if d is not_mapped:
        return broadcast_batch(v, size, od)
    return moveaxis(v, d, od)


def vmap_jaxpr(closed, axis_size, in_dims, force_batched=False, axis_name=RULE_AXIS):
    """Batch a ClosedJaxpr. Returns (ClosedJaxpr, out_dims): every batched output has its batch
    dim at 0; unbatched outputs have out_dim None unless force_batched (bool or list) says so.
    axis_name as for vmap_flat."""
    n_out = len(closed.out_avals)
    force = list(force_batched) if isinstance(force_batched, (list, tuple)) else [force_batched] * n_out
    out_dims = []

    def fun(*args):
        trace = _new_trace(axis_size, axis_name)
        with transform_trace(trace):
            ins = [x if d is not_mapped else BatchTracer(trace, x, d) for x, d in zip(args, in_dims)]
            outs = core.eval_jaxpr(closed.jaxpr, closed.consts, *ins)
            lifted = [trace.lift(core.as_array(o)) for o in outs]
        dims = [0 if (d is not not_mapped or fb) else not_mapped for (_, d), fb in zip(lifted, force)]
        out_dims[:] = dims
        return [_place(v, d, od, axis_size) for (v, d), od in zip(lifted, dims)]

    in_avals = [a if d is not_mapped else
                core.ShapedArray(a.shape[:d] + (axis_size,) + a.shape[d:], a.dtype)
                for a, d in zip(closed.in_avals, in_dims)]
    jaxpr, consts = trace_to_jaxpr(fun, in_avals)
    return ClosedJaxpr(jaxpr, consts), list(out_dims)
