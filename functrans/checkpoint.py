"""checkpoint (remat): recompute a function's intermediates in the backward pass instead of
saving them, and ``saved_residuals`` to see what a vjp keeps alive.

``checkpoint_p`` is a call primitive like jit_p. Its partial-evaluation rule is what makes it
remat: the known (primal) outputs are computed now, but the unknown (tangent) part is staged as
a checkpoint_p of the *whole* jvp jaxpr, whose only residuals are its primal inputs. When that
equation is transposed, backward_pass evaluates its non-linear (primal) equations again first.
"""
from __future__ import annotations

import functools

import numpy as np

from . import core
from .api import ShapeDtypeStruct, _Store, _flatten_fun
from .core import ClosedJaxpr, Jaxpr, Primitive, abstract_eval_rules, get_aval, impl_rules
from .custom_derivatives import lift_tracer_consts
from .interpreters import ad, batching, partial_eval
from .interpreters.ad import UndefPrimal, Zero, instantiate_zeros
from ._args import flat_leaves
from .tree_util import tree_unflatten
from .util import merge_lists, safe_map, safe_zip, split_list

map, zip = safe_map, safe_zip

checkpoint_p = Primitive("checkpoint", multiple_results=True)
core.complex_primitives.add(checkpoint_p)     # its bodies are checked equation by equation
impl_rules[checkpoint_p] = lambda *args, jaxpr: core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)
abstract_eval_rules[checkpoint_p] = lambda *avals, jaxpr: list(jaxpr.out_avals)


def checkpoint(fun, prevent_cse=True, policy=None, static_argnums=()):
    """fun, marked so that reverse mode recomputes its intermediates instead of storing them
    (only its inputs are saved). Alias: ``remat``."""
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)

    @functools.wraps(fun)
    def remat_fun(*args, **kwargs):
        from .api import _static_split
        f_dyn, dyn_args, dyn_kw, _ = _static_split(fun, args, kwargs, static_argnums)
        leaves, in_tree = flat_leaves((dyn_args, dyn_kw), "checkpoint arguments")
        out_store = _Store()
        flat = _flatten_fun(lambda a, k: f_dyn(*a, **k), in_tree, out_store)
        jaxpr, consts = core.trace_to_jaxpr(flat, [get_aval(x) for x in leaves])
        closed, lifted = lift_tracer_consts(jaxpr, consts)
        outs = checkpoint_p.bind(*lifted, *leaves, jaxpr=closed)
        return tree_unflatten(out_store.val, outs)

    return remat_fun


remat = checkpoint


def _checkpoint_jvp(primals, tangents, *, jaxpr):
    nonzeros = [type(t) is not Zero for t in tangents]
    jvp_closed, out_nz = ad.jvp_jaxpr(jaxpr, nonzeros)
    outs = checkpoint_p.bind(*primals, *[t for t in tangents if type(t) is not Zero], jaxpr=jvp_closed)
    outs_p, outs_t = split_list(outs, [len(jaxpr.out_avals)])
    it = iter(outs_t)
    return outs_p, [next(it) if nz else Zero(a) for nz, a in zip(out_nz, jaxpr.out_avals)]


def _checkpoint_transpose(cts, *args, jaxpr):
    linear = [type(x) is UndefPrimal for x in args]
    t_closed = ad.transpose_jaxpr(jaxpr, linear)
    res = [x for x, lin in zip(args, linear) if not lin]
    cts_in = core.eval_jaxpr(t_closed.jaxpr, t_closed.consts, *res, *map(instantiate_zeros, cts))
    it = iter(cts_in)
    return [next(it) if lin else None for lin in linear]


def _checkpoint_batch(vals, dims, *, jaxpr):
    size = batching.axis_size_of(vals, dims)
    b_closed, out_dims = batching.vmap_jaxpr(jaxpr, size, dims)
    return checkpoint_p.bind(*vals, jaxpr=b_closed), out_dims


def _prune_outputs(closed, keep):
    """closed with only the flagged outputs (and the equations they need)."""
    j = closed.jaxpr
    pruned, _ = core.dce_jaxpr(Jaxpr(j.constvars, j.invars, j.eqns,
                                     [v for v, k in zip(j.outvars, keep) if k]))
    return ClosedJaxpr(pruned, closed.consts)


def _checkpoint_partial_eval(trace, args, *, jaxpr):
    unknowns = [trace.is_ours(x) for x in args]
    jk, _, out_uk, num_res = partial_eval.partial_eval_jaxpr(jaxpr, unknowns)
    known_in = [x for x, uk in zip(args, unknowns) if not uk]
    n_known_out = len(out_uk) - sum(out_uk)
    primal_only = _prune_outputs(jk, [True] * n_known_out + [False] * num_res)
    outs_k = core.call_in_parent(trace, lambda: checkpoint_p.bind(*known_in, jaxpr=primal_only))
    # the unknown outputs are recomputed from all inputs: only the inputs are residuals
    recompute = _prune_outputs(jaxpr, out_uk)
    outs_u = trace.stage(checkpoint_p, list(args), {"jaxpr": recompute})
    return merge_lists(out_uk, outs_k, outs_u)


ad.jvp_rules[checkpoint_p] = _checkpoint_jvp
ad.transpose_rules[checkpoint_p] = _checkpoint_transpose
batching.batch_rules[checkpoint_p] = _checkpoint_batch
core.partial_eval_rules[checkpoint_p] = _checkpoint_partial_eval


def saved_residuals(fun, *args):
    """What reverse mode of fun at args keeps alive for the backward pass: a list of
    (ShapeDtypeStruct, description) pairs, one per residual array."""
    leaves, in_tree = flat_leaves(args, "saved_residuals arguments")
    out_store = _Store()
    _, _, residuals = ad.linearize_flat(_flatten_fun(fun, in_tree, out_store), leaves)
    by_id = {id(x): i for i, x in enumerate(leaves)}
    out = []
    for r in residuals:
        a = get_aval(r)
        i = by_id.get(id(r))
        desc = f"from the argument args-leaf {i}" if i is not None else "intermediate value"
        out.append((ShapeDtypeStruct(a.shape, a.dtype), desc))
    return out


def residual_bytes(fun, *args):
    """Total bytes of the residuals reverse mode of fun at args saves."""
    return sum(int(np.prod(s.shape, dtype=np.int64)) * s.dtype.itemsize
               for s, _ in saved_residuals(fun, *args))
