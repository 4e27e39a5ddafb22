"""debug_nans: find the primitive, and the user's source line, that first produced a NaN.

With ``config.debug_nans`` on, every eager primitive's outputs are checked after its impl ran
(``core._run_impl``): a floating-point output holding a NaN that none of its inputs held raises
FloatingPointError naming the primitive and the user's line. A call primitive carrying a jaxpr
(a ``jit``-compiled call, checkpoint, custom_jvp/custom_vjp) whose compiled outputs hold a new
NaN is re-run equation by equation, eagerly (as JAX re-runs the de-optimised function), so the
error names the equation inside it that made the NaN and the line that staged it.
"""
from __future__ import annotations

import numpy as np

from . import core
from ._config import config


def _has_nan(x):
    """True when x (a buffer, NumPy scalar or Array) is floating and holds a NaN."""
    a = np.asarray(x)
    return a.dtype.kind in "fc" and bool(np.isnan(a).any())


def _new_nan(ins, outs):
    return any(_has_nan(o) for o in outs) and not any(_has_nan(v) for v in ins)


def _inner_call(params, args):
    """(ClosedJaxpr, its arguments) that a primitive with these params evaluates on args: the
    jaxpr of a call primitive (jit, checkpoint, custom_jvp/vjp; also a scan's body, when its
    inputs are one step's), the branch a cond takes; else None."""
    branches = params.get("branches")
    if branches is not None and args:
        return branches[int(np.clip(int(np.asarray(args[0])), 0, len(branches) - 1))], args[1:]
    for key in ("jaxpr", "call_jaxpr"):
        closed = params.get(key)
        if (isinstance(closed, core.ClosedJaxpr)
                and [core.get_aval(a) for a in args] == list(closed.in_avals)):
            return closed, args
    return None


def _error(name, where, inside=None):
    found = f" (found by re-running {inside} eagerly)" if inside else ""
    return FloatingPointError(f"invalid value (nan) encountered in {name}{where}{found}. "
                              "debug_nans is on (functrans.config.debug_nans, "
                              "FUNCTRANS_DEBUG_NANS=1); turn it off to get the NaNs back.")


def _locate(closed, args, inside):
    """Evaluate closed on args one equation at a time, eagerly, and raise at the first
    equation whose outputs hold a NaN its inputs did not (recursing into nested calls)."""
    jaxpr, env = closed.jaxpr, {}

    def read(v):
        return v.val if type(v) is core.Literal else env[v]

    env.update(zip(jaxpr.constvars, closed.consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        ins = [read(v) for v in eqn.inputs]
        outs = eqn.primitive.bind(*ins, **eqn.params)
        outs = outs if eqn.primitive.multiple_results else [outs]
        if _new_nan(ins, outs):
            inner = _inner_call(eqn.params, ins)
            if inner is not None:
                _locate(*inner, inside)
            raise _error(eqn.primitive.name, " at " + core.format_source(eqn.source_info), inside)
        env.update(zip(eqn.out_binders, outs))


def checked(prim, rule):
    """prim's impl rule, raising FloatingPointError if its outputs hold a NaN its inputs did not
    (core._run_impl runs this in place of the rule when config.debug_nans is on). The impl of a
    primitive that evaluates a jaxpr runs with debug_nans off, so that a NaN inside is reported
    by re-running the jaxpr with the lines its equations were staged at."""
    def run(*vals, **params):
        inner = _inner_call(params, vals)
        if inner is None:
            out = rule(*vals, **params)
            if _new_nan(vals, out if prim.multiple_results else [out]):
                raise _error(prim.name, core.where())
            return out
        config.debug_nans = False     # _locate checks each equation itself, with its own line
        try:
            out = rule(*vals, **params)
            if _new_nan(vals, out if prim.multiple_results else [out]):
                name = f"jit({params.get('name', 'fun')})" if prim.name == "jit" else prim.name
                with core.set_current_trace(core.eval_trace):
                    _locate(*inner, name)
                raise _error(prim.name, core.where())
        finally:
            config.debug_nans = True
        return out
    return run
