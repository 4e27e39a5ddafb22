"""Structured control flow: ``cond``/``switch``, ``while_loop``, ``fori_loop``, ``scan``, ``map``.

Each construct is a higher-order primitive whose params carry ClosedJaxprs (the staged branch or
body functions); every transform is a jaxpr-to-jaxpr rule defined beside the primitive.
User functions are staged with ``core.trace_to_jaxpr``; whatever they close over (NumPy
constants or tracers of enclosing transforms) is passed to the primitive as explicit leading
operands, so the carried ClosedJaxprs never hold tracers.

Primitives and params (for backends lowering them):

- ``cond_p(index, *operands; branches)``: ``branches`` is a tuple of ClosedJaxprs, all of type
  operands -> outs. ``index`` is an int32 scalar; the impl clamps it into range.
- ``while_p(*cond_consts, *body_consts, *init; cond_jaxpr, body_jaxpr, cond_nconsts,
  body_nconsts)``: ``cond_jaxpr``: (*cond_consts, *carry) -> bool scalar; ``body_jaxpr``:
  (*body_consts, *carry) -> carry. Returns the final carry.
- ``scan_p(*consts, *init, *xs; jaxpr, length, reverse, num_consts, num_carry, unroll)``:
  ``jaxpr``: (*consts, *carry, *x) -> (*carry, *y) where x are the slices xs[i] along axis 0.
  Iterates i = 0..length-1 (length-1..0 when ``reverse``); returns (*carry, *ys) with the ys
  stacked along a new leading axis of size ``length`` (ys[i] written at iteration i).
  ``unroll`` is a hint only and is ignored.
"""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import ClosedJaxpr, Jaxpr, Primitive, ShapedArray, abstract_eval_rules, get_aval, impl_rules
from ..interpreters import ad, batching
from ..interpreters import partial_eval as pe
from ..interpreters.ad import UndefPrimal, Zero, instantiate_zeros
from ..interpreters.batching import bdim_at_front, moveaxis, not_mapped
from .._args import check_callable, flat_leaves
from ..tree_util import tree_flatten, tree_unflatten
from ..util import merge_lists, partition_list, safe_map, safe_zip, split_list
from . import lax
from . import slicing as lax_slicing

_map, _zip = safe_map, safe_zip

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan", "map", "associative_scan",
           "cond_p", "while_p", "scan_p"]


# ---------------------------------------------------------------------------------------------
# Staging helpers

def _stage(fun, in_tree, in_avals, what):
    """Stage fun (a function of pytrees, its arguments described by in_tree and the flat
    in_avals) into a ClosedJaxpr with no consts. Returns (closed, consts, out_tree): the
    jaxpr takes (*consts, *leaves); consts are what fun closes over, to be passed explicitly."""
    store = []

    def flat(*leaves):
        out_leaves, out_tree = flat_leaves(fun(*tree_unflatten(in_tree, leaves)), f"{what} output")
        store.append(out_tree)
        return out_leaves

    jaxpr, consts = core.trace_to_jaxpr(flat, list(in_avals))
    jaxpr = Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
    return ClosedJaxpr(jaxpr, []), list(consts), store[-1]


def _call(closed, args):
    """Evaluate a ClosedJaxpr under the current trace; returns a list."""
    return core.eval_jaxpr(closed.jaxpr, closed.consts, *args)


def _make(fun, in_avals):
    """Stage a flat function (list in, list out) into a ClosedJaxpr."""
    jaxpr, consts = core.trace_to_jaxpr(fun, list(in_avals))
    return ClosedJaxpr(jaxpr, consts)


def _permute(closed, in_order, out_order=None):
    """closed with its inputs (and outputs) reordered: new input k is old input in_order[k]."""
    j = closed.jaxpr
    outvars = j.outvars if out_order is None else [j.outvars[i] for i in out_order]
    return ClosedJaxpr(Jaxpr(j.constvars, [j.invars[i] for i in in_order], j.eqns, outvars),
                       closed.consts)


def _interleave(primal_sizes, tangent_sizes):
    """Index order turning [*groups of primals, *groups of tangents] into
    [group0, tangent group0, group1, tangent group1, ...]."""
    order, p, t = [], 0, sum(primal_sizes)
    for a, b in _zip(primal_sizes, tangent_sizes):
        order += list(range(p, p + a)) + list(range(t, t + b))
        p, t = p + a, t + b
    return order


def _fixpoint(step, flags):
    """Grow boolean flags (e.g. 'this carry has a nonzero tangent') until step(flags) adds
    nothing: the loop-carried property must hold on entry to every iteration."""
    flags = list(flags)
    while True:
        new = [a or b for a, b in _zip(flags, step(flags))]
        if new == flags:
            return flags
        flags = new


def _join(flag_lists):
    """Elementwise OR of several flag lists."""
    return [any(fs) for fs in _zip(*flag_lists)]


def _dims(flags):
    """Batch dims: 0 where flagged, else not mapped."""
    return [0 if f else not_mapped for f in flags]


def _with_zeros(flags, vals, avals):
    """Merge the values of flagged positions with symbolic zeros elsewhere."""
    it = iter(vals)
    out = [next(it) if f else Zero(a) for f, a in _zip(flags, avals)]
    assert next(it, None) is None
    return out


def _types(tree, avals):
    """A readable description of a pytree of avals, for type-mismatch errors."""
    return f"{tree_unflatten(tree, [a.str_short() for a in avals])}".replace("'", "")


def _zeros(aval):
    return lax.full(aval.shape, 0, aval.dtype)


def _stacked(aval, length):
    return ShapedArray((length,) + aval.shape, aval.dtype)


def _unstacked(aval):
    return ShapedArray(aval.shape[1:], aval.dtype)


def _params_str(**kw):
    return ", ".join(f"{k}={v}" for k, v in kw.items())


# =============================================================================================
# cond / switch

cond_p = Primitive("cond", multiple_results=True)
core.complex_primitives.add(cond_p)     # its bodies are checked equation by equation


def switch(index, branches, *operands):
    """Apply ``branches[index](*operands)``; the index is clamped into range. Returns the
    chosen branch's output (a pytree, the same type for every branch)."""
    branches = list(branches) if isinstance(branches, (list, tuple)) else None
    if not branches:
        raise ValueError("switch: branches must be a non-empty sequence of callables")
    for i, b in enumerate(branches):
        check_callable(b, f"switch: branch {i}")
    index = core.as_array(index)
    ia = get_aval(index)
    if ia.shape != () or ia.dtype.kind not in "iu":
        raise TypeError(f"switch: index must be an integer scalar, got {ia.str_short()}")
    names = [f"branch {i}" for i in range(len(branches))]
    return _switch(index, branches, operands, names)


def cond(pred, true_fun, false_fun, *operands):
    """``true_fun(*operands)`` if pred else ``false_fun(*operands)``; pred is a scalar (bool or
    number). Both branches must return the same type. The legacy per-branch form
    ``cond(pred, true_operand, true_fun, false_operand, false_fun)`` is also accepted.
    Returns the chosen branch's output."""
    if (len(operands) == 2 and not callable(true_fun) and callable(false_fun)
            and callable(operands[1])):
        true_op, t_fun, false_op, f_fun = true_fun, false_fun, operands[0], operands[1]
        return cond(pred, lambda ops: t_fun(ops[0]), lambda ops: f_fun(ops[1]), (true_op, false_op))
    check_callable(true_fun, "cond: true_fun")
    check_callable(false_fun, "cond: false_fun")
    pred = core.as_array(pred)
    pa = get_aval(pred)
    if pa.shape != ():
        raise TypeError(f"cond: pred must be a scalar, got {pa.str_short()}")
    if pa.dtype.kind not in "biuf":
        raise TypeError(f"cond: pred must be a bool or number scalar, got {pa.str_short()}")
    if pa.dtype.kind != "b":
        pred = lax.ne(pred, np.zeros((), pa.dtype))
    index = lax.convert_element_type(pred, np.int32)
    return _switch(index, [false_fun, true_fun], operands, ["false_fun", "true_fun"], ref=1)


def _switch(index, funs, operands, names, ref=0):
    """Stage every branch and bind cond_p; branch types are compared with branch ``ref``."""
    leaves, in_tree = flat_leaves(operands, "cond operands")
    avals = [get_aval(x) for x in leaves]
    staged = [_stage(f, in_tree, avals, f"cond {name}") for f, name in _zip(funs, names)]
    closeds, consts, out_trees = [list(t) for t in _zip(*staged)]
    for name, c, t in _zip(names, closeds, out_trees):
        if t != out_trees[ref] or c.out_avals != closeds[ref].out_avals:
            raise TypeError(
                f"cond/switch branches must return identical types: {names[ref]} returns "
                f"{_types(out_trees[ref], closeds[ref].out_avals)} but {name} returns "
                f"{_types(t, c.out_avals)}{core.where()}")
    index = lax.convert_element_type(index, np.int32)
    hi = np.array(len(funs) - 1, np.int32)
    index = lax.max(lax.min(index, hi), np.array(0, np.int32))
    branches = tuple(_widen_consts(closeds, consts))
    all_consts = [c for cs in consts for c in cs]
    outs = cond_p.bind(index, *all_consts, *leaves, branches=branches)
    return tree_unflatten(out_trees[0], outs)


def _widen_consts(closeds, consts):
    """Give every branch the inputs (*all branches' consts, *operands), ignoring the others'."""
    const_avals = [[get_aval(c) for c in cs] for cs in consts]
    for i, c in enumerate(closeds):
        j = c.jaxpr
        n = len(consts[i])
        vars_ = [j.invars[:n] if k == i else [core.Var(a) for a in avs]
                 for k, avs in enumerate(const_avals)]
        yield ClosedJaxpr(Jaxpr(j.constvars, [v for vs in vars_ for v in vs] + j.invars[n:],
                                j.eqns, j.outvars), c.consts)


def _cond_impl(index, *ops, branches):
    i = int(np.clip(int(index), 0, len(branches) - 1))
    return _call(branches[i], ops)


def _cond_abstract_eval(index, *ops, branches):
    if index.shape != () or index.dtype.kind not in "iu":
        raise TypeError(f"cond index must be an integer scalar, got {index.str_short()}")
    for i, b in enumerate(branches):
        if b.in_avals != list(ops):
            raise TypeError(f"cond branch {i} takes {b.in_avals} but the operands are {list(ops)}")
        if b.out_avals != branches[0].out_avals:
            raise TypeError(f"cond branch {i} returns {b.out_avals} but branch 0 returns "
                            f"{branches[0].out_avals}")
    return list(branches[0].out_avals)


impl_rules[cond_p] = _cond_impl
abstract_eval_rules[cond_p] = _cond_abstract_eval


def _cond_jvp(primals, tangents, *, branches):
    index, *ops = primals
    nz = [type(t) is not Zero for t in tangents[1:]]
    out_nz = _join([ad.jvp_jaxpr(b, nz)[1] for b in branches])
    jvps = tuple(ad.jvp_jaxpr(b, nz, instantiate=out_nz)[0] for b in branches)
    outs = cond_p.bind(index, *ops, *[t for t in tangents[1:] if type(t) is not Zero],
                       branches=jvps)
    outs_p, outs_t = split_list(outs, [len(out_nz)])
    return outs_p, _with_zeros(out_nz, outs_t, branches[0].out_avals)


def _cond_transpose(cts, index, *ops, branches):
    assert type(index) is not UndefPrimal, "cond index cannot be linear"
    linear = [type(x) is UndefPrimal for x in ops]
    t_branches = tuple(ad.transpose_jaxpr(b, linear) for b in branches)
    res = [x for x, lin in _zip(ops, linear) if not lin]
    cts_in = cond_p.bind(index, *res, *[instantiate_zeros(c) for c in cts], branches=t_branches)
    return [None] + merge_lists(linear, [None] * len(res), cts_in)


def _cond_batch(vals, dims, *, branches):
    size = batching.axis_size_of(vals, dims)
    (index, *ops), (idim, *op_dims) = vals, dims
    if idim is not_mapped:
        out_b = _join([[d is not not_mapped for d in batching.vmap_jaxpr(b, size, op_dims)[1]]
                       for b in branches])
        bbranches = tuple(batching.vmap_jaxpr(b, size, op_dims, force_batched=out_b)[0]
                          for b in branches)
        return cond_p.bind(index, *ops, branches=bbranches), _dims(out_b)
    # A batched index: every branch runs on the whole batch and a select picks per element.
    index = moveaxis(index, idim, 0)
    index = lax.max(lax.min(index, lax.full(index.shape, len(branches) - 1, index.dtype)),
                    lax.full(index.shape, 0, index.dtype))
    outs = [_call(batching.vmap_jaxpr(b, size, op_dims, force_batched=True)[0], ops)
            for b in branches]
    selected = []
    for cases in _zip(*outs):
        shape = get_aval(cases[0]).shape
        which = lax.broadcast_in_dim(index, shape, (0,))
        selected.append(lax.select_n(which, *cases))
    return selected, [0] * len(selected)


def _cond_partial_eval(trace, args, *, branches):
    index, *ops = args
    if trace.is_ours(index):
        return trace.stage(cond_p, args, dict(branches=branches))
    uk = [trace.is_ours(x) for x in ops]
    out_uk = _join([pe.partial_eval_jaxpr(b, uk)[2] for b in branches])
    splits = [pe.partial_eval_jaxpr(b, uk, instantiate=out_uk) for b in branches]
    n_known = out_uk.count(False)
    res_avals = [k.out_avals[n_known:] for k, _, _, _ in splits]
    known_br = tuple(_pad_residuals(k, n_known, res_avals, i) for i, (k, _, _, _) in enumerate(splits))
    unknown_br = tuple(_widen_residuals(u, res_avals, i) for i, (_, u, _, _) in enumerate(splits))
    known_ops, unknown_ops = partition_list(uk, ops)
    outs_k = core.call_in_parent(
        trace, lambda: cond_p.bind(index, *known_ops, branches=known_br))
    outs_k, res = split_list(outs_k, [n_known])
    outs_u = trace.stage(cond_p, [index, *res, *unknown_ops], dict(branches=unknown_br))
    return merge_lists(out_uk, outs_k, outs_u)


def _pad_residuals(known, n_out, res_avals, i):
    """Branch i's known jaxpr, returning every branch's residual slots (zeros but its own)."""
    def fun(*args):
        outs, res = split_list(_call(known, args), [n_out])
        return outs + [x for k, avs in enumerate(res_avals)
                       for x in (res if k == i else [_zeros(a) for a in avs])]
    return _make(fun, known.in_avals)


def _widen_residuals(unknown, res_avals, i):
    """Branch i's unknown jaxpr, taking every branch's residuals (using only its own)."""
    j, n = unknown.jaxpr, len(res_avals[i])
    vars_ = [j.invars[:n] if k == i else [core.Var(a) for a in avs]
             for k, avs in enumerate(res_avals)]
    return ClosedJaxpr(Jaxpr(j.constvars, [v for vs in vars_ for v in vs] + j.invars[n:],
                             j.eqns, j.outvars), unknown.consts)


ad.jvp_rules[cond_p] = _cond_jvp
ad.transpose_rules[cond_p] = _cond_transpose
batching.batch_rules[cond_p] = _cond_batch
core.partial_eval_rules[cond_p] = _cond_partial_eval


# =============================================================================================
# while_loop

while_p = Primitive("while", multiple_results=True)
core.complex_primitives.add(while_p)     # its bodies are checked equation by equation

_WHILE_REVERSE_ERROR = (
    "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop with "
    "dynamic (traced) start/stop values: the number of iterations is not known when the "
    "backward pass is built. Use lax.scan, or lax.fori_loop with static (Python int) bounds, "
    "instead; forward mode (jvp, jacfwd) does work through while_loop.")


def while_loop(cond_fun, body_fun, init_val):
    """Run ``val = body_fun(val)`` while ``cond_fun(val)``; returns the final val (a pytree of
    the type of init_val). cond_fun must return a bool scalar; body_fun must return a value of
    exactly init_val's type."""
    check_callable(cond_fun, "while_loop: cond_fun")
    check_callable(body_fun, "while_loop: body_fun")
    leaves, tree = flat_leaves(init_val, "while_loop init_val")
    _, in_tree = tree_flatten((init_val,))
    avals = [get_aval(x) for x in leaves]
    cond_c, cond_consts, cond_tree = _stage(cond_fun, in_tree, avals, "while_loop cond_fun")
    if cond_tree.num_leaves != 1 or cond_c.out_avals[0] != ShapedArray((), np.bool_):
        raise TypeError(f"while_loop: cond_fun must return a boolean scalar, but got output "
                        f"type {_types(cond_tree, cond_c.out_avals)}{core.where()}")
    body_c, body_consts, body_tree = _stage(body_fun, in_tree, avals, "while_loop body_fun")
    if body_tree != tree or body_c.out_avals != avals:
        raise TypeError(f"while_loop: body_fun output and input must have identical types: "
                        f"the input (init_val) is {_types(tree, avals)} but body_fun returns "
                        f"{_types(body_tree, body_c.out_avals)}{core.where()}")
    outs = while_p.bind(*cond_consts, *body_consts, *leaves, cond_jaxpr=cond_c, body_jaxpr=body_c,
                        cond_nconsts=len(cond_consts), body_nconsts=len(body_consts))
    return tree_unflatten(tree, outs)


def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc, carry = split_list(args, [cond_nconsts, body_nconsts])
    while bool(_call(cond_jaxpr, cc + carry)[0]):
        carry = _call(body_jaxpr, bc + carry)
    return carry


def _while_abstract_eval(*avals, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cc, bc, carry = split_list(avals, [cond_nconsts, body_nconsts])
    if cond_jaxpr.in_avals != cc + carry or cond_jaxpr.out_avals != [ShapedArray((), np.bool_)]:
        raise TypeError(f"while cond_jaxpr has type {cond_jaxpr.in_avals} -> "
                        f"{cond_jaxpr.out_avals}, expected {cc + carry} -> [bool[]]")
    if body_jaxpr.in_avals != bc + carry or body_jaxpr.out_avals != carry:
        raise TypeError(f"while body_jaxpr has type {body_jaxpr.in_avals} -> "
                        f"{body_jaxpr.out_avals}, expected {bc + carry} -> {carry}")
    return list(carry)


impl_rules[while_p] = _while_impl
abstract_eval_rules[while_p] = _while_abstract_eval


def _while_jvp(primals, tangents, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    nz = [type(t) is not Zero for t in tangents]
    _, bc_nz, carry_nz = split_list(nz, [cond_nconsts, body_nconsts])
    carry_nz = _fixpoint(lambda c: ad.jvp_jaxpr(body_jaxpr, bc_nz + c, instantiate=c)[1], carry_nz)
    body_jvp, _ = ad.jvp_jaxpr(body_jaxpr, bc_nz + carry_nz, instantiate=carry_nz)
    n_carry = len(carry_nz)
    body_jvp = _permute(body_jvp, _interleave([body_nconsts, n_carry],
                                              [sum(bc_nz), sum(carry_nz)]))
    cc, bc, carry = split_list(primals, [cond_nconsts, body_nconsts])
    _, bc_t, carry_t = split_list(tangents, [cond_nconsts, body_nconsts])
    bc_t = [t for t in bc_t if type(t) is not Zero]
    carry_t = [instantiate_zeros(t) for t, f in _zip(carry_t, carry_nz) if f]
    n_cond_in = cond_nconsts + n_carry
    cond_jvp = _make(lambda *a: _call(cond_jaxpr, a[:n_cond_in]),
                     cond_jaxpr.in_avals + [get_aval(t) for t in carry_t])
    outs = while_p.bind(*cc, *bc, *bc_t, *carry, *carry_t, cond_jaxpr=cond_jvp,
                        body_jaxpr=body_jvp, cond_nconsts=cond_nconsts,
                        body_nconsts=body_nconsts + len(bc_t))
    outs_p, outs_t = split_list(outs, [n_carry])
    return outs_p, _with_zeros(carry_nz, outs_t, body_jaxpr.out_avals)


def _while_transpose(cts, *args, **params):
    raise ValueError(_WHILE_REVERSE_ERROR)


def _while_batch(vals, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    size = batching.axis_size_of(vals, dims)
    cc_d, bc_d, carry_d = split_list(dims, [cond_nconsts, body_nconsts])
    cc, bc, carry = split_list(vals, [cond_nconsts, body_nconsts])

    def body_batched(flags):
        _, out_d = batching.vmap_jaxpr(body_jaxpr, size, bc_d + _dims(flags), force_batched=flags)
        return [d is not not_mapped for d in out_d]

    carry_b = _fixpoint(body_batched, [d is not not_mapped for d in carry_d])
    _, (pred_d,) = batching.vmap_jaxpr(cond_jaxpr, size, cc_d + _dims(carry_b))
    pred_b = pred_d is not not_mapped
    if pred_b:  # finished elements are frozen with a select, so every carry is batched
        carry_b = [True] * len(carry_b)
    body_b, _ = batching.vmap_jaxpr(body_jaxpr, size, bc_d + _dims(carry_b), force_batched=carry_b)
    cond_b, _ = batching.vmap_jaxpr(cond_jaxpr, size, cc_d + _dims(carry_b))
    carry = [bdim_at_front(x, d, size) if b else x for x, d, b in _zip(carry, carry_d, carry_b)]
    if not pred_b:
        outs = while_p.bind(*cc, *bc, *carry, cond_jaxpr=cond_b, body_jaxpr=body_b,
                            cond_nconsts=cond_nconsts, body_nconsts=body_nconsts)
        return outs, _dims(carry_b)

    def any_continues(*args):
        return [lax.reduce_max(_call(cond_b, args)[0], (0,))]

    def step_or_freeze(*args):
        c_consts, b_consts, c = split_list(args, [cond_nconsts, body_nconsts])
        pred = _call(cond_b, c_consts + c)[0]
        new = _call(body_b, b_consts + c)
        return [lax.select(lax.broadcast_in_dim(pred, get_aval(o).shape, (0,)), n, o)
                for n, o in _zip(new, c)]

    cond_any = _make(any_continues, cond_b.in_avals)
    body_sel = _make(step_or_freeze, cond_b.in_avals[:cond_nconsts] + body_b.in_avals)
    outs = while_p.bind(*cc, *cc, *bc, *carry, cond_jaxpr=cond_any, body_jaxpr=body_sel,
                        cond_nconsts=cond_nconsts, body_nconsts=cond_nconsts + body_nconsts)
    return outs, _dims(carry_b)


def _while_partial_eval(trace, args, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Known carries are computed by a loop over the known part of the body; the unknown ones
    by the whole loop, staged (it recomputes the known carries: there are no per-iteration
    residuals to save, since the iteration count is not known)."""
    params = dict(cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr, cond_nconsts=cond_nconsts,
                  body_nconsts=body_nconsts)
    uk = [trace.is_ours(x) for x in args]
    cc_uk, bc_uk, carry_uk = split_list(uk, [cond_nconsts, body_nconsts])
    carry_uk = _fixpoint(lambda c: pe.partial_eval_jaxpr(body_jaxpr, bc_uk + c, instantiate=c)[2],
                         carry_uk)
    cond_k, _, (pred_uk,), _ = pe.partial_eval_jaxpr(cond_jaxpr, cc_uk + carry_uk)
    if pred_uk or all(carry_uk):
        return trace.stage(while_p, args, params)
    body_k, _, _, _ = pe.partial_eval_jaxpr(body_jaxpr, bc_uk + carry_uk, instantiate=carry_uk)
    n_known = carry_uk.count(False)
    body_k = _make(lambda *a: _call(body_k, a)[:n_known], body_k.in_avals)
    cond_k = _make(lambda *a: _call(cond_k, a)[:1], cond_k.in_avals)
    cc, bc, carry = split_list(args, [cond_nconsts, body_nconsts])
    cc_k = [x for x, u in _zip(cc, cc_uk) if not u]
    bc_k = [x for x, u in _zip(bc, bc_uk) if not u]
    carry_k = [x for x, u in _zip(carry, carry_uk) if not u]
    outs_k = core.call_in_parent(trace, lambda: while_p.bind(
        *cc_k, *bc_k, *carry_k, cond_jaxpr=cond_k, body_jaxpr=body_k,
        cond_nconsts=len(cc_k), body_nconsts=len(bc_k)))
    outs_all = trace.stage(while_p, args, params)
    return merge_lists(carry_uk, outs_k, [o for o, u in _zip(outs_all, carry_uk) if u])


ad.jvp_rules[while_p] = _while_jvp
ad.transpose_rules[while_p] = _while_transpose
batching.batch_rules[while_p] = _while_batch
core.partial_eval_rules[while_p] = _while_partial_eval


# =============================================================================================
# scan

scan_p = Primitive("scan", multiple_results=True)
core.complex_primitives.add(scan_p)     # its bodies are checked equation by equation


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loop ``carry, y = f(carry, x)`` over the leading axis of xs (or ``length`` times with
    x = None when xs is None). Returns (final carry, ys stacked along a new leading axis).
    carry, xs and ys are pytrees; f must return a carry of exactly init's type."""
    check_callable(f, "scan: f")
    if isinstance(unroll, bool):
        unroll = 1 if not unroll else max(int(length or 1), 1)
    if not isinstance(unroll, (int, np.integer)) or unroll < 1:
        raise ValueError(f"scan: unroll must be a positive int or a bool, got {unroll!r}")
    init_leaves, init_tree = flat_leaves(init, "scan init")
    xs_leaves, xs_tree = flat_leaves(xs, "scan xs")
    length = _scan_length(xs_leaves, length)
    carry_avals = [get_aval(x) for x in init_leaves]
    x_avals = [_unstacked(get_aval(x)) for x in xs_leaves]
    _, in_tree = tree_flatten((init, tree_unflatten(xs_tree, x_avals)))
    carry_trees = []

    def body(carry, x):
        out = f(carry, x)
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError("scan: f must return a pair (carry, y), got "
                            f"{type(out).__name__}{core.where()}")
        carry_trees.append(tree_flatten(out[0])[1])
        return tuple(out)

    closed, consts, out_tree = _stage(body, in_tree, carry_avals + x_avals, "scan f")
    carry_tree = carry_trees[-1]
    n_carry = carry_tree.num_leaves
    out_carry_avals = closed.out_avals[:n_carry]
    if carry_tree != init_tree or out_carry_avals != carry_avals:
        raise TypeError(f"scan: the carry output of f must have the type of its carry input: "
                        f"init is {_types(init_tree, carry_avals)} but f returns "
                        f"{_types(carry_tree, out_carry_avals)}{core.where()}")
    outs = scan_p.bind(*consts, *init_leaves, *xs_leaves, jaxpr=closed, length=length,
                       reverse=bool(reverse), num_consts=len(consts), num_carry=n_carry,
                       unroll=int(unroll))
    carry_out, ys = tree_unflatten(out_tree, outs)
    return carry_out, ys


def _scan_length(xs_leaves, length):
    lengths = set()
    for x in xs_leaves:
        a = get_aval(x)
        if a.ndim == 0:
            raise ValueError(f"scan: xs leaves must have a leading axis to scan over, got a "
                             f"scalar {a.str_short()}")
        lengths.add(a.shape[0])
    if length is not None:
        length = int(core.concrete_or_none(length) if isinstance(length, core.Tracer) else length)
        lengths.add(length)
    if not lengths:
        raise ValueError("scan: length must be given when xs is None (or has no leaves)")
    if len(lengths) > 1:
        shapes = [get_aval(x).shape for x in xs_leaves]
        raise ValueError(f"scan: xs leaves (shapes {shapes}) and length={length} must all "
                         "agree on the leading axis size")
    return lengths.pop()


def _scan_impl(*args, jaxpr, length, reverse, num_consts, num_carry, unroll):
    consts, carry, xs = split_list(args, [num_consts, num_carry])
    xs = [np.asarray(x) for x in xs]
    ys = [np.empty((length,) + a.shape, a.dtype) for a in jaxpr.out_avals[num_carry:]]
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        carry, y = split_list(_call(jaxpr, consts + carry + [x[i] for x in xs]), [num_carry])
        for buf, v in _zip(ys, y):
            buf[i] = np.asarray(v)    # (ml_dtypes cannot assign an Array)
    return [np.asarray(c) for c in carry] + ys


def _scan_abstract_eval(*avals, jaxpr, length, reverse, num_consts, num_carry, unroll):
    consts, carry, xs = split_list(avals, [num_consts, num_carry])
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            raise TypeError(f"scan xs operand {x} does not have leading axis length {length}")
    expect = consts + carry + [_unstacked(x) for x in xs]
    if jaxpr.in_avals != expect:
        raise TypeError(f"scan jaxpr takes {jaxpr.in_avals}, but the operands give {expect}")
    if jaxpr.out_avals[:num_carry] != carry:
        raise TypeError(f"scan jaxpr returns carry {jaxpr.out_avals[:num_carry]}, but the carry "
                        f"is {carry}")
    return list(carry) + [_stacked(y, length) for y in jaxpr.out_avals[num_carry:]]


impl_rules[scan_p] = _scan_impl
abstract_eval_rules[scan_p] = _scan_abstract_eval


def _scan_jvp(primals, tangents, *, jaxpr, length, reverse, num_consts, num_carry, unroll):
    nz = [type(t) is not Zero for t in tangents]
    c_nz, carry_nz, x_nz = split_list(nz, [num_consts, num_carry])
    n_ys = len(jaxpr.out_avals) - num_carry
    carry_nz = _fixpoint(
        lambda c: ad.jvp_jaxpr(jaxpr, c_nz + c + x_nz, instantiate=c + [False] * n_ys)[1][:num_carry],
        carry_nz)
    jvp_j, out_nz = ad.jvp_jaxpr(jaxpr, c_nz + carry_nz + x_nz,
                                 instantiate=carry_nz + [False] * n_ys)
    ys_nz = out_nz[num_carry:]
    n_in = [num_consts, num_carry, len(x_nz)]
    nz_in = [sum(c_nz), sum(carry_nz), sum(x_nz)]
    jvp_j = _permute(jvp_j, _interleave(n_in, nz_in),
                     _interleave([num_carry, n_ys], [sum(carry_nz), sum(ys_nz)]))
    consts, carry, xs = split_list(primals, [num_consts, num_carry])
    c_t, carry_t, x_t = split_list(tangents, [num_consts, num_carry])
    c_t = [t for t in c_t if type(t) is not Zero]
    carry_t = [instantiate_zeros(t) for t, f in _zip(carry_t, carry_nz) if f]
    x_t = [t for t in x_t if type(t) is not Zero]
    outs = scan_p.bind(*consts, *c_t, *carry, *carry_t, *xs, *x_t, jaxpr=jvp_j, length=length,
                       reverse=reverse, num_consts=num_consts + len(c_t),
                       num_carry=num_carry + len(carry_t), unroll=unroll)
    carry_o, carry_to, ys, ys_t = split_list(outs, [num_carry, len(carry_t), n_ys])
    out_avals = _scan_abstract_eval(*[get_aval(x) for x in primals], jaxpr=jaxpr, length=length,
                                    reverse=reverse, num_consts=num_consts, num_carry=num_carry,
                                    unroll=unroll)
    return carry_o + ys, _with_zeros(carry_nz + ys_nz, carry_to + ys_t, out_avals)


def _scan_batch(vals, dims, *, jaxpr, length, reverse, num_consts, num_carry, unroll):
    size = batching.axis_size_of(vals, dims)
    c_d, carry_d, x_d = split_list(dims, [num_consts, num_carry])
    consts, carry, xs = split_list(vals, [num_consts, num_carry])
    n_ys = len(jaxpr.out_avals) - num_carry
    # xs keep the scanned axis at 0 and their batch axis at 1, i.e. at 0 inside the body.
    x_body_d = _dims([d is not not_mapped for d in x_d])

    def carry_batched(flags):
        _, out_d = batching.vmap_jaxpr(jaxpr, size, c_d + _dims(flags) + x_body_d,
                                       force_batched=flags + [False] * n_ys)
        return [d is not not_mapped for d in out_d[:num_carry]]

    carry_b = _fixpoint(carry_batched, [d is not not_mapped for d in carry_d])
    body_b, out_d = batching.vmap_jaxpr(jaxpr, size, c_d + _dims(carry_b) + x_body_d,
                                        force_batched=carry_b + [False] * n_ys)
    carry = [bdim_at_front(x, d, size) if b else x for x, d, b in _zip(carry, carry_d, carry_b)]
    xs = [x if d is not_mapped else moveaxis(x, d, 1) for x, d in _zip(xs, x_d)]
    outs = scan_p.bind(*consts, *carry, *xs, jaxpr=body_b, length=length, reverse=reverse,
                       num_consts=num_consts, num_carry=num_carry, unroll=unroll)
    ys_d = [not_mapped if d is not_mapped else 1 for d in out_d[num_carry:]]
    return outs, _dims(carry_b) + ys_d


def _scan_partial_eval(trace, args, *, jaxpr, length, reverse, num_consts, num_carry, unroll):
    """Split the body into known and unknown parts (carries unknown by fixpoint). The known scan
    runs now and also returns the residuals stacked as extra ys; the unknown scan is staged and
    consumes them as extra xs. Residuals that are just known consts (xs) are passed to the
    unknown scan as consts (xs) instead of being stacked again."""
    uk = [trace.is_ours(x) for x in args]
    c_uk, carry_uk, x_uk = split_list(uk, [num_consts, num_carry])
    n_ys = len(jaxpr.out_avals) - num_carry
    carry_uk = _fixpoint(
        lambda c: pe.partial_eval_jaxpr(jaxpr, c_uk + c + x_uk,
                                        instantiate=c + [False] * n_ys)[2][:num_carry],
        carry_uk)
    jk, ju, out_uk, num_res = pe.partial_eval_jaxpr(jaxpr, c_uk + carry_uk + x_uk,
                                                    instantiate=carry_uk + [False] * n_ys)
    consts, carry, xs = split_list(args, [num_consts, num_carry])
    consts_k, consts_u = partition_list(c_uk, consts)
    carry_k, carry_u = partition_list(carry_uk, carry)
    xs_k, xs_u = partition_list(x_uk, xs)
    n_known_out = len(jk.out_avals) - num_res
    k_c_vars = jk.jaxpr.invars[:len(consts_k)]
    k_x_vars = jk.jaxpr.invars[len(consts_k) + len(carry_k):]
    res_vars = jk.jaxpr.outvars[n_known_out:]
    fwd_c = [k_c_vars.index(v) if v in k_c_vars else None for v in res_vars]
    fwd_x = [k_x_vars.index(v) if v in k_x_vars else None for v in res_vars]
    stacked = [c is None and x is None for c, x in _zip(fwd_c, fwd_x)]
    # The known scan: (*known consts, *known carry, *known xs) -> (carry, ys, stacked residuals)
    jk = _permute(jk, range(len(jk.in_avals)),
                  list(range(n_known_out)) + [n_known_out + r for r, s in enumerate(stacked) if s])
    outs_k = core.call_in_parent(trace, lambda: scan_p.bind(
        *consts_k, *carry_k, *xs_k, jaxpr=jk, length=length, reverse=reverse,
        num_consts=len(consts_k), num_carry=len(carry_k), unroll=unroll))
    n_carry_k = len(carry_k)
    carry_ko, ys_k, res_stacked = split_list(outs_k, [n_carry_k, n_known_out - n_carry_k])
    # The unknown scan: consts (*const residuals, *unknown consts), carry, xs (*per-iteration
    # residuals, *unknown xs). ju takes (*residuals, *unknown consts, *unknown carry, *unknown xs).
    # Residuals that are known consts or known xs are passed as they are, not restacked.
    c_pos = [r for r, c in enumerate(fwd_c) if c is not None]
    x_pos = [r for r, c in enumerate(fwd_c) if c is None]
    it = iter(res_stacked)
    res_xs = [xs_k[fwd_x[r]] if fwd_x[r] is not None else next(it) for r in x_pos]
    n_cu, n_caru = len(consts_u), len(carry_u)
    order = (c_pos + list(range(num_res, num_res + n_cu))
             + list(range(num_res + n_cu, num_res + n_cu + n_caru)) + x_pos
             + list(range(num_res + n_cu + n_caru, len(ju.in_avals))))
    ju = _permute(ju, order)
    res_consts = [consts_k[fwd_c[r]] for r in c_pos]
    outs_u = trace.stage(scan_p, [*res_consts, *consts_u, *carry_u, *res_xs, *xs_u],
                         dict(jaxpr=ju, length=length, reverse=reverse,
                              num_consts=len(res_consts) + n_cu, num_carry=n_caru, unroll=unroll))
    carry_uo, ys_u = split_list(outs_u, [n_caru])
    return (merge_lists(carry_uk, carry_ko, carry_uo)
            + merge_lists(out_uk[num_carry:], ys_k, ys_u))


def _scan_transpose(cts, *args, jaxpr, length, reverse, num_consts, num_carry, unroll):
    """A reverse scan over the transposed body. Carries are always treated as linear (a carry
    given as a known value, e.g. materialised zero tangents, just gets no cotangent); the
    cotangents of linear consts are accumulated in extra carries."""
    consts, carry, xs = split_list(args, [num_consts, num_carry])
    c_lin = [type(x) is UndefPrimal for x in consts]
    x_lin = [type(x) is UndefPrimal for x in xs]
    body_t = ad.transpose_jaxpr(jaxpr, c_lin + [True] * num_carry + x_lin)
    res_c = [x for x, lin in _zip(consts, c_lin) if not lin]
    res_x = [x for x, lin in _zip(xs, x_lin) if not lin]
    c_in, carry_in, x_in = split_list(jaxpr.in_avals, [num_consts, num_carry])
    lin_c_avals = [a for a, lin in _zip(c_in, c_lin) if lin]
    res_x_avals = [a for a, lin in _zip(x_in, x_lin) if not lin]
    ct_carry, ct_ys = split_list([instantiate_zeros(c) for c in cts], [num_carry])
    n_rc, n_lc, n_rx = len(res_c), len(lin_c_avals), len(res_x)

    def body(*a):
        rc, acc, ct_c, rx, ct_y = split_list(a, [n_rc, n_lc, num_carry, n_rx])
        ct_lc, ct_carry_in, ct_x = split_list(_call(body_t, rc + rx + ct_c + ct_y),
                                              [n_lc, num_carry])
        return [lax.add(s, c) for s, c in _zip(acc, ct_lc)] + ct_carry_in + ct_x

    ys_avals = jaxpr.out_avals[num_carry:]
    body_t = _make(body, [get_aval(x) for x in res_c] + lin_c_avals + carry_in + res_x_avals
                   + ys_avals)
    outs = scan_p.bind(*res_c, *[_zeros(a) for a in lin_c_avals], *ct_carry, *res_x, *ct_ys,
                       jaxpr=body_t, length=length, reverse=not reverse, num_consts=n_rc,
                       num_carry=n_lc + num_carry, unroll=unroll)
    ct_c, ct_init, ct_x = split_list(outs, [n_lc, num_carry])
    ct_init = [c if type(x) is UndefPrimal else None for c, x in _zip(ct_init, carry)]
    return (merge_lists(c_lin, [None] * n_rc, ct_c) + ct_init
            + merge_lists(x_lin, [None] * n_rx, ct_x))


ad.jvp_rules[scan_p] = _scan_jvp
ad.transpose_rules[scan_p] = _scan_transpose
batching.batch_rules[scan_p] = _scan_batch
core.partial_eval_rules[scan_p] = _scan_partial_eval


# =============================================================================================
# fori_loop and map: written with scan and while_loop

def fori_loop(lower, upper, body_fun, init_val, *, unroll=None):
    """``val = body_fun(i, val)`` for i in [lower, upper); returns the final val. With concrete
    bounds this is a scan (differentiable in both modes); with traced bounds a while_loop
    (forward mode only)."""
    check_callable(body_fun, "fori_loop: body_fun")
    lower, upper = core.as_array(lower), core.as_array(upper)
    for name, b in (("lower", lower), ("upper", upper)):
        a = get_aval(b)
        if a.shape != () or a.dtype.kind not in "iu":
            raise TypeError(f"fori_loop: {name} must be an integer scalar, got {a.str_short()}")
    dtype = np.result_type(get_aval(lower).dtype, get_aval(upper).dtype)
    one = np.ones((), dtype)
    lo, hi = core.concrete_or_none(lower), core.concrete_or_none(upper)
    if lo is not None and hi is not None:
        def step(carry, _):
            i, x = carry
            return (lax.add(i, one), body_fun(i, x)), None
        n = max(int(hi) - int(lo), 0)
        (_, out), _ = scan(step, (np.asarray(lo, dtype), init_val), None, length=n,
                           unroll=unroll or 1)
        return out
    lower = lax.convert_element_type(lower, dtype)
    upper = lax.convert_element_type(upper, dtype)
    _, out = while_loop(lambda c: lax.lt(c[0], upper),
                        lambda c: (lax.add(c[0], one), body_fun(c[0], c[1])), (lower, init_val))
    return out


def map(f, xs, *, batch_size=None):  # noqa: A001  (lax.map, as in JAX)
    """[f(x) for x in xs] along the leading axis of the pytree xs, stacked (a scan with no
    carry). With ``batch_size``, f is vmapped over chunks of batch_size elements, one chunk per
    scan step, and once more over the remaining len % batch_size elements: the same values,
    fewer (wider) steps."""
    check_callable(f, "map: f")
    if batch_size is None:
        return scan(lambda _, x: ((), f(x)), (), xs)[1]
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"map: batch_size must be a positive int, got {batch_size!r}")
    leaves, tree = flat_leaves(xs, "map xs")
    n = _scan_length(leaves, None)
    chunks, rest = divmod(n, int(batch_size))
    cut = chunks * batch_size
    parts, out_trees = [], []
    if chunks:
        def step(_, x):
            return (), _vmap_leaves(f, tree, x, out_trees)
        batched = [lax.reshape(_rows(v, 0, cut), (chunks, batch_size) + get_aval(v).shape[1:])
                   for v in leaves]
        ys = scan(step, (), batched)[1]
        parts.append([lax.reshape(y, (cut,) + get_aval(y).shape[2:]) for y in ys])
    if rest or not chunks:
        parts.append(_vmap_leaves(f, tree, [_rows(v, cut, n) for v in leaves], out_trees))
    ys = [lax_slicing.concatenate(list(cols), 0) for cols in _zip(*parts)]
    return tree_unflatten(out_trees[-1], ys)


def _rows(v, start, stop):
    """v[start:stop] along the leading axis."""
    shape = get_aval(v).shape
    return lax_slicing.slice(v, (start,) + (0,) * (len(shape) - 1), (stop,) + shape[1:])


def _vmap_leaves(f, tree, leaves, out_trees):
    """vmap of f (a function of the pytree ``tree``) over axis 0 of leaves: its output leaves
    (their pytree structure is appended to out_trees)."""
    def flat(*xs):
        outs, out_tree = flat_leaves(f(tree_unflatten(tree, list(xs))), "map f output")
        out_trees.append(out_tree)
        return outs
    return batching.vmap_flat(flat, get_aval(leaves[0]).shape[0], [0] * len(leaves),
                              lambda: [0] * out_trees[-1].num_leaves, leaves)


# ---------------------------------------------------------------------------------------------
# associative_scan: written on lax slicing ops, so every transform applies

def associative_scan(fn, elems, reverse=False, axis=0):
    """The inclusive scan of elems (a pytree of arrays of equal length along ``axis``) with the
    associative fn(a, b) (a the earlier elements; both pytrees of elems' structure, of any
    length along axis: fn must be vectorised), by JAX's odd/even recursion in O(log n) fn
    calls. Equal to out[i] = fn(out[i - 1], elems[i]) (up to reassociation); ``reverse`` scans
    from the end (out[i] combines elems[i:], later elements as fn's first argument, as JAX)."""
    check_callable(fn, "associative_scan: fn")
    leaves, tree = flat_leaves(elems, "associative_scan elems")
    if not leaves:
        raise ValueError("associative_scan: elems has no arrays")
    nd = get_aval(leaves[0]).ndim
    if not -nd <= axis < nd:
        raise ValueError(f"associative_scan: axis {axis} is out of range for rank {nd}")
    axis %= nd
    lengths = {get_aval(v).shape[axis] if get_aval(v).ndim > axis else None for v in leaves}
    if len(lengths) != 1:
        raise ValueError("associative_scan: every array of elems must have the same length along "
                         f"axis {axis}, got shapes {[get_aval(v).shape for v in leaves]}")

    def combine(a, b):
        out, out_tree = flat_leaves(fn(tree_unflatten(tree, a), tree_unflatten(tree, b)),
                                    "associative_scan fn output")
        if out_tree != tree:
            raise TypeError(f"associative_scan: fn must return elems' structure {tree}, got "
                            f"{out_tree}{core.where()}")
        return out
    if reverse:
        leaves = [lax.rev(v, (axis,)) for v in leaves]
    out = _odd_even_scan(combine, leaves, axis)
    if reverse:
        out = [lax.rev(v, (axis,)) for v in out]
    return tree_unflatten(tree, out)


def _along(v, axis, start, stop, step=1):
    """v[start:stop:step] along axis."""
    a = get_aval(v)
    lo, hi, st = [0] * a.ndim, list(a.shape), [1] * a.ndim
    lo[axis], hi[axis], st[axis] = start, stop, step
    return lax_slicing.slice(v, lo, hi, st)


def _odd_even_scan(combine, elems, axis):
    """The inclusive scan of the lists of arrays elems: the pairs are combined, their scan
    gives the odd positions, and one more combine the even ones after the first."""
    n = get_aval(elems[0]).shape[axis]
    if n < 2:
        return elems
    odd = _odd_even_scan(combine, combine([_along(e, axis, 0, n - 1, 2) for e in elems],
                                          [_along(e, axis, 1, n, 2) for e in elems]), axis)
    n_odd = get_aval(odd[0]).shape[axis]
    first = [_along(e, axis, 0, 1) for e in elems]
    if n == 2:      # no even position after the first: fn is never called on empty arrays
        return [lax._interleave(e, o, axis) for e, o in _zip(first, odd)]
    prev = odd if n % 2 else [_along(o, axis, 0, n_odd - 1) for o in odd]
    even = combine(prev, [_along(e, axis, 2, n, 2) for e in elems])
    even = [lax_slicing.concatenate([f, v], axis) for f, v in _zip(first, even)]
    return [lax._interleave(e, o, axis) for e, o in _zip(even, odd)]
