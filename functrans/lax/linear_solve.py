"""``custom_linear_solve``: a matrix-free linear solve differentiated implicitly.

The primitive ``custom_linear_solve_p(*matvec consts, *vecmat consts, *solve consts,
*transpose_solve consts, *b; jaxprs, const_lengths)`` holds four ClosedJaxprs (a ``Solvers``
tuple; vecmat and transpose_solve may be None), each of type (*its consts, *vector) -> vector
(solve and transpose_solve may return aux outputs after the vector). It evaluates
``solve(b)``. Its rules never look inside solve:

* jvp: x = solve(b), then dx = solve(db - dA x), dA x being the jvp of matvec in its consts
  at fixed x (so the tangent is one more solve, linear in (db, dA x); aux tangents are zero);
* transpose (linear in b only): ct_b = transpose_solve(ct_x), i.e. the same primitive with
  matvec <-> vecmat and solve <-> transpose_solve swapped;
* batching: every jaxpr is batched, with the vector batched wherever b, any const or any
  jaxpr's output makes it so (a fixpoint);
* lowering (backends/plan.py): the equation is replaced by its solve jaxpr.

Gradients therefore cost one more solve and never unroll the solver's iterations.
"""
from __future__ import annotations

from typing import NamedTuple

from .. import core
from ..core import Primitive, abstract_eval_rules, get_aval, impl_rules
from ..interpreters import ad, batching
from ..interpreters.ad import UndefPrimal, Zero, instantiate_zeros
from ..interpreters.batching import bdim_at_front, not_mapped
from .._args import check_callable, flat_leaves
from ..tree_util import tree_flatten, tree_unflatten
from ..util import safe_map, safe_zip, split_list
from . import lax
from .control_flow import _call, _dims, _fixpoint, _stage, _types

_map, _zip = safe_map, safe_zip

__all__ = ["custom_linear_solve", "custom_linear_solve_p", "Solvers"]


class Solvers(NamedTuple):
    """One item per linear map of a custom_linear_solve (jaxprs, or their const counts)."""
    matvec: object
    vecmat: object
    solve: object
    transpose_solve: object

    def transpose(self):
        """The same items for the transposed system A^T y = c."""
        return Solvers(self.vecmat, self.matvec, self.transpose_solve, self.solve)


custom_linear_solve_p = Primitive("custom_linear_solve", multiple_results=True)
core.complex_primitives.add(custom_linear_solve_p)   # its bodies are checked equation by equation


def custom_linear_solve(matvec, b, solve, transpose_solve=None, symmetric=False, has_aux=False):
    """``solve(matvec, b)``, the solution x of ``matvec(x) == b``, with derivatives defined
    implicitly at that solution (one more solve each) instead of through solve's steps.

    matvec: the linear map x -> A x (same pytree type in and out as b; differentiable).
    solve(matvec, b) returns x (and aux when ``has_aux``); need not be differentiable.
    transpose_solve(vecmat, b) solves A^T y = b given vecmat y -> A^T y (computed by
    transposing matvec); needed for reverse mode unless ``symmetric`` (A == A^T, when solve
    serves as transpose_solve). Returns solve's output: x, or (x, aux) with has_aux (aux gets
    zero derivatives)."""
    check_callable(matvec, "custom_linear_solve: matvec")
    check_callable(solve, "custom_linear_solve: solve")
    if transpose_solve is not None:
        check_callable(transpose_solve, "custom_linear_solve: transpose_solve")
    if transpose_solve is None and symmetric:
        transpose_solve = solve
    leaves, tree = flat_leaves(b, "custom_linear_solve b")
    avals = [get_aval(x) for x in leaves]
    _, in_tree = tree_flatten((b,))
    matvec_c, matvec_consts, out_tree = _stage(matvec, in_tree, avals, "custom_linear_solve matvec")
    _check_vector("matvec", tree, avals, out_tree, matvec_c.out_avals, False)
    solve_c, solve_consts, solve_tree = _stage(lambda x: solve(matvec, x), in_tree, avals,
                                               "custom_linear_solve solve")
    _check_vector("solve", tree, avals, solve_tree, solve_c.out_avals, has_aux)
    vecmat_c = tsolve_c = None
    vecmat_consts, tsolve_consts = [], []
    if transpose_solve is not None:
        if symmetric:
            vecmat_c, vecmat_consts, vecmat = matvec_c, matvec_consts, matvec
        else:
            vecmat_c = ad.transpose_jaxpr(matvec_c, [False] * len(matvec_consts)
                                          + [True] * len(leaves))
            vecmat_consts = matvec_consts
            vecmat = _as_function(vecmat_c, vecmat_consts, tree)
        tsolve_c, tsolve_consts, t_tree = _stage(
            lambda x: transpose_solve(vecmat, x), in_tree, avals,
            "custom_linear_solve transpose_solve")
        _check_vector("transpose_solve", tree, avals, t_tree, tsolve_c.out_avals, has_aux)
    consts = Solvers(matvec_consts, vecmat_consts, solve_consts, tsolve_consts)
    outs = custom_linear_solve_p.bind(
        *[c for cs in consts for c in cs], *leaves,
        jaxprs=Solvers(matvec_c, vecmat_c, solve_c, tsolve_c),
        const_lengths=Solvers(*_map(len, consts)))
    return tree_unflatten(solve_tree, outs)


def _as_function(closed, consts, tree):
    """The pytree function x -> closed(*consts, *leaves(x))."""
    def fun(x):
        return tree_unflatten(tree, _call(closed, list(consts) + tree_flatten(x)[0]))
    return fun


def _check_vector(name, tree, avals, out_tree, out_avals, has_aux):
    """TypeError unless name's output (its first item with has_aux) has b's type."""
    if has_aux:
        out = tree_unflatten(out_tree, list(range(len(out_avals))))
        if type(out) not in (tuple, list) or len(out) != 2:
            raise TypeError(f"custom_linear_solve: with has_aux=True, {name} must return a pair "
                            f"(x, aux), got {_types(out_tree, out_avals)}{core.where()}")
        out_tree = tree_flatten(out[0])[1]
        out_avals = [out_avals[i] for i in tree_flatten(out[0])[0]]
    if out_tree != tree or list(out_avals) != list(avals):
        raise TypeError(f"custom_linear_solve: {name} must return the type of b, "
                        f"{_types(tree, avals)}, but returns {_types(out_tree, out_avals)}"
                        f"{core.where()}")


def _split(args, const_lengths):
    """(Solvers of the const lists, b)."""
    *consts, b = split_list(list(args), list(const_lengths))
    return Solvers(*consts), b


def _impl(*args, jaxprs, const_lengths):
    consts, b = _split(args, const_lengths)
    return _call(jaxprs.solve, consts.solve + b)


def _abstract_eval(*avals, jaxprs, const_lengths):
    consts, b = _split(avals, const_lengths)
    for name in Solvers._fields:
        j = getattr(jaxprs, name)
        if j is None:
            continue
        if j.in_avals != getattr(consts, name) + b or j.out_avals[:len(b)] != b:
            raise TypeError(f"custom_linear_solve {name} jaxpr has type {j.in_avals} -> "
                            f"{j.out_avals}, expected {getattr(consts, name) + b} -> {b}")
    return list(jaxprs.solve.out_avals)


impl_rules[custom_linear_solve_p] = _impl
abstract_eval_rules[custom_linear_solve_p] = _abstract_eval


def _jvp(primals, tangents, *, jaxprs, const_lengths):
    consts, b = _split(primals, const_lengths)
    dconsts, db = _split(tangents, const_lengths)
    params = dict(jaxprs=jaxprs, const_lengths=const_lengths)
    outs = custom_linear_solve_p.bind(*primals, **params)
    x, aux = split_list(outs, [len(b)])
    rhs = db
    if any(type(t) is not Zero for t in dconsts.matvec):
        x_zero = [Zero(get_aval(v)) for v in x]
        _, dax = ad.jvp_flat(core.jaxpr_as_fun(jaxprs.matvec), consts.matvec + x,
                             list(dconsts.matvec) + x_zero)
        rhs = [ad.add_tangents(t, lax.neg(d)) if type(d) is not Zero else t
               for t, d in _zip(db, dax)]
    if all(type(t) is Zero for t in rhs):
        return outs, [Zero(get_aval(v)) for v in outs]
    rhs = [instantiate_zeros(t) for t in rhs]
    dx = custom_linear_solve_p.bind(*[c for cs in consts for c in cs], *rhs, **params)
    return outs, dx[:len(b)] + [Zero(get_aval(v)) for v in aux]


def _transpose(cts, *args, jaxprs, const_lengths):
    if jaxprs.transpose_solve is None:
        raise TypeError("custom_linear_solve: transpose_solve is required for reverse-mode "
                        "differentiation (or pass symmetric=True when A == A^T)")
    consts, b = _split(args, const_lengths)
    if any(type(c) is UndefPrimal for cs in consts for c in cs):
        raise ad.NotLinearError("custom_linear_solve is linear in b only, not in the consts of "
                                "matvec or solve")
    ct_x = [instantiate_zeros(c) for c in cts[:len(b)]]
    t_consts = consts.transpose()
    ct_b = custom_linear_solve_p.bind(*[c for cs in t_consts for c in cs], *ct_x,
                                      jaxprs=jaxprs.transpose(),
                                      const_lengths=const_lengths.transpose())
    return [None] * sum(const_lengths) + [c if type(x) is UndefPrimal else None
                                          for c, x in _zip(ct_b[:len(b)], b)]


def _batch(vals, dims, *, jaxprs, const_lengths):
    size = batching.axis_size_of(vals, dims)
    consts, b = _split(vals, const_lengths)
    c_dims, b_dims = _split(dims, const_lengths)
    present = [n for n in Solvers._fields if getattr(jaxprs, n) is not None]
    n_b = len(b)

    def batched_outputs(flags):
        out = []
        for n in present:
            _, od = batching.vmap_jaxpr(getattr(jaxprs, n), size,
                                        list(getattr(c_dims, n)) + _dims(flags))
            out.append([d is not not_mapped for d in od[:n_b]])
        return [any(fs) for fs in _zip(*out)]

    flags = _fixpoint(batched_outputs, [d is not not_mapped for d in b_dims])
    new = {}
    for n in present:
        j = getattr(jaxprs, n)
        n_aux = len(j.out_avals) - n_b
        new[n] = batching.vmap_jaxpr(j, size, list(getattr(c_dims, n)) + _dims(flags),
                                     force_batched=flags + [True] * n_aux)[0]
    b = [bdim_at_front(x, d, size) if f else x for x, d, f in _zip(b, b_dims, flags)]
    outs = custom_linear_solve_p.bind(
        *[c for cs in consts for c in cs], *b,
        jaxprs=Solvers(*[new.get(n) for n in Solvers._fields]), const_lengths=const_lengths)
    return outs, _dims(flags) + [0] * (len(outs) - n_b)


ad.jvp_rules[custom_linear_solve_p] = _jvp
ad.transpose_rules[custom_linear_solve_p] = _transpose
batching.batch_rules[custom_linear_solve_p] = _batch
