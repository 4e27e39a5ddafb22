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
from .core import ClosedJaxpr, Jaxpr, Primitive, Var, abstract_eval_rules, get_aval, impl_rules
from .custom_derivatives import lift_tracer_consts
from .interpreters import ad, batching, partial_eval
from .interpreters.ad import UndefPrimal, Zero, instantiate_zeros
from ._args import flat_leaves
from .tree_util import tree_unflatten
from .util import merge_lists, partition_list, safe_map, safe_zip, split_list

map, zip = safe_map, safe_zip

checkpoint_p = Primitive("checkpoint", multiple_results=True)
core.complex_primitives.add(checkpoint_p)     # its bodies are checked equation by equation
impl_rules[checkpoint_p] = lambda *args, jaxpr, **_: core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)
abstract_eval_rules[checkpoint_p] = lambda *avals, jaxpr, **_: list(jaxpr.out_avals)


def checkpoint(fun, prevent_cse=True, policy=None, static_argnums=()):
    """fun, marked so that reverse mode recomputes its intermediates instead of storing them.
    ``policy(prim, *avals, **params) -> bool`` (see ``checkpoint_policies``) names the
    intermediates that may be saved instead; None saves none (only the inputs).
    ``prevent_cse`` is accepted for JAX compatibility (functrans never merges equal
    subexpressions, so there is nothing to prevent). Alias: ``remat``."""
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if policy is not None and not callable(policy):
        raise TypeError(f"checkpoint: policy must be callable (see checkpoint_policies), got "
                        f"{policy!r}")

    @functools.wraps(fun)
    def remat_fun(*args, **kwargs):
        from .api import _static_split
        f_dyn, dyn_args, dyn_kw, _ = _static_split(fun, args, kwargs, static_argnums)
        leaves, in_tree = flat_leaves((dyn_args, dyn_kw), "checkpoint arguments")
        out_store = _Store()
        flat = _flatten_fun(lambda a, k: f_dyn(*a, **k), in_tree, out_store)
        jaxpr, consts = core.trace_to_jaxpr(flat, [get_aval(x) for x in leaves])
        closed, lifted = lift_tracer_consts(jaxpr, consts)
        outs = checkpoint_p.bind(*lifted, *leaves, jaxpr=closed, prevent_cse=bool(prevent_cse),
                                 policy=policy)
        return tree_unflatten(out_store.val, outs)

    return remat_fun


remat = checkpoint


def _checkpoint_jvp(primals, tangents, *, jaxpr, **params):
    nonzeros = [type(t) is not Zero for t in tangents]
    jvp_closed, out_nz = ad.jvp_jaxpr(jaxpr, nonzeros)
    outs = checkpoint_p.bind(*primals, *[t for t in tangents if type(t) is not Zero],
                             jaxpr=jvp_closed, **params)
    outs_p, outs_t = split_list(outs, [len(jaxpr.out_avals)])
    it = iter(outs_t)
    return outs_p, [next(it) if nz else Zero(a) for nz, a in zip(out_nz, jaxpr.out_avals)]


def _checkpoint_transpose(cts, *args, jaxpr, **params):
    """Recompute the primal (non-linear) part from the known inputs, then transpose the linear
    part. The split is a partial evaluation, not a per-equation guess: an equation nested in
    the body may compute primal and tangent values at once (the jvp of an inner checkpoint),
    and its primal outputs must be known values, not linear ones."""
    linear = [type(x) is UndefPrimal for x in args]
    jk, ju, out_uk, num_res = partial_eval.partial_eval_jaxpr(jaxpr, linear)
    known_in = [x for x, lin in zip(args, linear) if not lin]
    n_known_out = len(out_uk) - sum(out_uk)
    recompute = _prune_outputs(jk, [False] * n_known_out + [True] * num_res)
    res = checkpoint_p.bind(*known_in, jaxpr=recompute, **params) if num_res else []
    t_closed = ad.transpose_jaxpr(ju, [False] * num_res + [True] * sum(linear))
    cts_u = [instantiate_zeros(c) for c, uk in zip(cts, out_uk) if uk]
    cts_in = iter(core.eval_jaxpr(t_closed.jaxpr, t_closed.consts, *res, *cts_u))
    return [next(cts_in) if lin else None for lin in linear]


def _checkpoint_batch(vals, dims, *, jaxpr, **params):
    size = batching.axis_size_of(vals, dims)
    b_closed, out_dims = batching.vmap_jaxpr(jaxpr, size, dims)
    return checkpoint_p.bind(*vals, jaxpr=b_closed, **params), out_dims


def _prune_outputs(closed, keep):
    """closed with only the flagged outputs (and the equations they need)."""
    j = closed.jaxpr
    pruned, _ = core.dce_jaxpr(Jaxpr(j.constvars, j.invars, j.eqns,
                                     [v for v, k in zip(j.outvars, keep) if k]))
    return ClosedJaxpr(pruned, closed.consts)


def _saveable(policy, eqn):
    """Whether policy lets reverse mode keep eqn's outputs (no policy: nothing is saveable)."""
    if policy is None:
        return False
    return bool(policy(eqn.primitive, *[v.aval for v in eqn.inputs], **eqn.params))


def _residual_sources(jaxpr, res_vars, policy):
    """How to get the residuals res_vars of the known jaxpr back in the backward pass: (the
    equations that recompute them from the jaxpr's inputs and constants and the saved values,
    the saved values: outputs of saveable equations, in order)."""
    producer = {v: e for e in jaxpr.eqns for v in e.out_binders}
    saved, needed, seen = [], set(), set()
    stack = [v for v in res_vars if type(v) is Var]
    while stack:
        v = stack.pop()
        if v in seen:
            continue
        seen.add(v)
        eqn = producer.get(v)
        if eqn is None:                      # an input or a constant
            continue
        if _saveable(policy, eqn):
            saved.append(v)
        elif id(eqn) not in needed:
            needed.add(id(eqn))
            stack.extend(x for x in eqn.inputs if type(x) is Var)
    return [e for e in jaxpr.eqns if id(e) in needed], saved


def _checkpoint_partial_eval(trace, args, *, jaxpr, policy, **params):
    """Known outputs (and the values the policy saves) are computed now; the unknown outputs
    are staged as a checkpoint that first recomputes the other residuals from the inputs and
    the saved values."""
    unknowns = [trace.is_ours(x) for x in args]
    jk, ju, out_uk, num_res = partial_eval.partial_eval_jaxpr(jaxpr, unknowns)
    n_known_out = len(out_uk) - sum(out_uk)
    k = jk.jaxpr
    res_vars = k.outvars[n_known_out:]
    eqns, saved = _residual_sources(k, res_vars, policy)
    recompute = ClosedJaxpr(Jaxpr(k.constvars, k.invars + saved, eqns, res_vars), jk.consts)
    known_in, unknown_in = partition_list(unknowns, args)
    known_part = ClosedJaxpr(Jaxpr(k.constvars, k.invars, k.eqns,
                                   k.outvars[:n_known_out] + saved), jk.consts)
    known_part = _prune_outputs(known_part, [True] * len(known_part.jaxpr.outvars))
    outs_k = core.call_in_parent(trace, lambda: checkpoint_p.bind(
        *known_in, jaxpr=known_part, policy=policy, **params))
    outs_k, saved_vals = split_list(outs_k, [n_known_out])

    def backward_body(*xs):       # (known inputs, saved values, unknown inputs) -> unknown outs
        res = core.eval_jaxpr(recompute.jaxpr, recompute.consts, *xs[:len(k.invars) + len(saved)])
        return core.eval_jaxpr(ju.jaxpr, ju.consts, *res, *xs[len(k.invars) + len(saved):])

    in_avals = ([v.aval for v in k.invars] + [v.aval for v in saved]
                + [get_aval(x) for x in unknown_in])
    body, body_consts = core.trace_to_jaxpr(backward_body, in_avals)
    body, used = _drop_unused_inputs(body, len(k.invars) + len(saved))
    residuals = [x for x, u in zip(list(known_in) + list(saved_vals), used) if u]
    outs_u = trace.stage(checkpoint_p, residuals + list(unknown_in),
                         {"jaxpr": ClosedJaxpr(body, body_consts), "policy": policy, **params})
    return merge_lists(out_uk, outs_k, outs_u)


def _drop_unused_inputs(jaxpr, n):
    """jaxpr without those of its first n inputs that nothing uses, and the used flags of
    those n (the residuals a staged backward body really needs)."""
    used_vars = {x for e in jaxpr.eqns for x in e.inputs if type(x) is Var}
    used_vars.update(v for v in jaxpr.outvars if type(v) is Var)
    used = [v in used_vars for v in jaxpr.invars[:n]]
    invars = [v for v, u in zip(jaxpr.invars[:n], used) if u] + jaxpr.invars[n:]
    return Jaxpr(jaxpr.constvars, invars, jaxpr.eqns, jaxpr.outvars), used


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
