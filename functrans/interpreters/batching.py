"""vmap: the BatchTrace, batching-rule helpers and jaxpr-level batching."""
from __future__ import annotations

from .. import core
from ..core import ClosedJaxpr, Tracer, Trace, get_aval, trace_to_jaxpr, transform_trace
from ..util import safe_map, safe_zip, unzip2
from . import ops

map, zip = safe_map, safe_zip

batch_rules = {}  # prim -> f(vals, dims, **params) -> (out, out_dim); dims entries int or None
not_mapped = None


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


class BatchTrace(Trace):
    """Runs batching rules for one vmap application of size ``axis_size``."""
    __slots__ = ("axis_size",)

    def __init__(self, parent, axis_size):
        super().__init__(parent)
        self.axis_size = axis_size

    def lift(self, x):
        if isinstance(x, Tracer) and x._trace is self:
            return x.val, x.bdim
        self.check_foreign(x)
        return x, not_mapped

    def process_primitive(self, prim, args, params):
        vals, dims = unzip2(self.lift(x) for x in args)
        prev = core._state.trace
        core._state.trace = self.parent
        try:
            if all(d is not_mapped for d in dims):
                return prim.bind(*vals, **params)
            rule = batch_rules.get(prim)
            if rule is None:
                raise NotImplementedError(
                    f"Batching rule for '{prim.name}' not implemented (vmap){core.where()}")
            out, out_dim = rule(vals, dims, **params)
        finally:
            core._state.trace = prev
        if prim.multiple_results:
            return [self.pure(o, d) for o, d in zip(out, out_dim)]
        return self.pure(out, out_dim)

    def pure(self, val, dim):
        return val if dim is not_mapped else BatchTracer(self, val, dim)


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
    for v, d in zip(vals, dims):
        if d is not not_mapped:
            return get_aval(v).shape[d]
    raise ValueError("no batched argument")


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

def vmap_flat(f, axis_size, in_dims, out_dims, args):
    """Run f over a batch: args carry their batch dims in in_dims; outputs get out_dims (a list,
    or a thunk called after f ran, when the output structure is only known then)."""
    trace = BatchTrace(core.current_trace(), axis_size)
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


def vmap_jaxpr(closed, axis_size, in_dims, force_batched=False):
    """Batch a ClosedJaxpr. Returns (ClosedJaxpr, out_dims): every batched output has its batch
    dim at 0; unbatched outputs have out_dim None unless force_batched (bool or list) says so."""
    n_out = len(closed.out_avals)
    force = list(force_batched) if isinstance(force_batched, (list, tuple)) else [force_batched] * n_out
    out_dims = []

    def fun(*args):
        trace = BatchTrace(core.current_trace(), axis_size)
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
