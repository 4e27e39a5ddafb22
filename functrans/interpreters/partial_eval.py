"""Jaxpr-level partial evaluation: split a jaxpr into the part computable from known inputs
and the part that needs the unknown ones. Built by tracing ``eval_jaxpr`` under a staging
trace (the known jaxpr) below a forwarding staging trace (the unknown jaxpr)."""
from __future__ import annotations

from .. import core
from ..core import ClosedJaxpr, Jaxpr, StagingTrace, transform_trace
from ..util import merge_lists, partition_list, safe_map, safe_zip, split_list

map, zip = safe_map, safe_zip


def partial_eval_jaxpr(closed, unknowns, instantiate=False):
    """Split ``closed`` given which inputs are unknown.

    Returns (jaxpr_known, jaxpr_unknown, out_unknowns, num_res) where jaxpr_known maps the
    known inputs to (*known outputs, *residuals) and jaxpr_unknown maps (*residuals, *unknown
    inputs) to the unknown outputs. ``instantiate`` (bool or list) forces outputs unknown."""
    n_out = len(closed.out_avals)
    instantiate = list(instantiate) if isinstance(instantiate, (list, tuple)) else [instantiate] * n_out
    known_trace = StagingTrace(core.current_trace())
    unknown_trace = StagingTrace(known_trace, forward=True)
    k_in = [known_trace.new_arg(a) for a, uk in zip(closed.in_avals, unknowns) if not uk]
    u_in = [unknown_trace.new_arg(a) for a, uk in zip(closed.in_avals, unknowns) if uk]
    with transform_trace(known_trace), transform_trace(unknown_trace):
        outs = core.eval_jaxpr(closed.jaxpr, closed.consts, *merge_lists(unknowns, k_in, u_in))
        out_uk = [unknown_trace.is_ours(o) or inst for o, inst in zip(outs, instantiate)]
        outs_k, outs_u = partition_list(out_uk, outs)
        jaxpr_u, consts_u = unknown_trace.build(u_in, outs_u)
        is_res = [known_trace.is_ours(c) for c in consts_u]
        res = [c for c, r in zip(consts_u, is_res) if r]
        jaxpr_u = Jaxpr([v for v, r in zip(jaxpr_u.constvars, is_res) if not r],
                        [v for v, r in zip(jaxpr_u.constvars, is_res) if r] + jaxpr_u.invars,
                        jaxpr_u.eqns, jaxpr_u.outvars)
        closed_u = ClosedJaxpr(jaxpr_u, [c for c, r in zip(consts_u, is_res) if not r])
        jaxpr_k, consts_k = known_trace.build(k_in, list(outs_k) + res)
    return ClosedJaxpr(jaxpr_k, consts_k), closed_u, out_uk, len(res)


def call_partial_eval(prim, jaxpr_param="jaxpr"):
    """A partial_eval rule for a call-like primitive (its first param is a ClosedJaxpr applied
    to all operands): run the known part now, stage the unknown part."""
    def rule(trace, args, **params):
        unknowns = [trace.is_ours(x) for x in args]
        jk, ju, out_uk, num_res = partial_eval_jaxpr(params[jaxpr_param], unknowns)
        known, unknown = partition_list(unknowns, args)
        outs_k = core.call_in_parent(trace, lambda: prim.bind(*known, **{**params, jaxpr_param: jk}))
        outs_k, res = split_list(outs_k, [len(outs_k) - num_res])
        outs_u = trace.stage(prim, list(res) + list(unknown), {**params, jaxpr_param: ju})
        return merge_lists(out_uk, outs_k, outs_u)
    core.partial_eval_rules[prim] = rule
    return rule
