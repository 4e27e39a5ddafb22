"""jit of float16/bfloat16 programs on the CPU. numba has neither dtype, so such a jaxpr is
rewritten before lowering: every 16-bit value becomes a float32 one holding exactly the 16-bit
value, and every equation with a 16-bit output is followed by its rounding to that type
(``lax.reduce_precision`` for bfloat16; for float16 the same plus float16's subnormals).
The kernel is then an ordinary float32 kernel: the equations fuse as before, and the values
are the eager ones, which round every operation the same way (core._run_narrow). 16-bit
arguments are widened on the way in and results narrowed on the way out (both exact).
A program whose 16-bit values pass through a control-flow body is left to the eager fallback."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import ClosedJaxpr, Jaxpr, Literal

_F32 = np.dtype(np.float32)

# the primitives whose output values are among their 16-bit inputs' values: no rounding needed
_EXACT = {"broadcast_in_dim", "transpose", "rev", "slice", "squeeze", "reshape", "select_n",
          "neg", "abs", "max", "min", "concatenate", "pad", "gather", "dynamic_slice",
          "dynamic_update_slice", "reduce_max", "reduce_min", "sort", "stop_gradient",
          "copy", "scatter"}


def _is_narrow(dtype):
    return isinstance(dtype, np.dtype) and dtype in core.NARROW_FLOATS


def _has_jaxpr(params):
    def holds(v):
        if isinstance(v, (tuple, list)):
            return any(map(holds, v))
        return isinstance(v, (Jaxpr, ClosedJaxpr))
    return any(map(holds, params.values()))


def _round_to(x, dtype):
    """The float32 x rounded to the 16-bit dtype's nearest value (ties to even), as float32."""
    from ..lax import lax
    if dtype == core.bfloat16:
        return lax.reduce_precision(x, 8, 7)
    shape = core.get_aval(x).shape
    tiny = lax.lt(lax.abs(x), lax.full(shape, 2.0 ** -14, _F32))     # float16's subnormals
    sub = lax.mul(lax.round(lax.mul(x, lax.full(shape, 2.0 ** 24, _F32))),
                  lax.full(shape, 2.0 ** -24, _F32))
    return lax.select(tiny, sub, lax.reduce_precision(x, 5, 10))


def _widen_value(v):
    a = np.asarray(v)
    return a.astype(_F32) if _is_narrow(a.dtype) else v


def _widened_eval(invars, consts, eqns, outvars):
    """A function of the float32-widened inputs evaluating the flat equations in float32, each
    16-bit output rounded."""
    def run(*args):
        env = dict(zip(invars, args))
        env.update((v, _widen_value(c)) for v, c in consts)

        def read(x):
            return _widen_value(x.val) if type(x) is Literal else env[x]
        for eqn in eqns:
            params = {k: _F32 if _is_narrow(v) else v for k, v in eqn.params.items()}
            outs = eqn.primitive.bind(*map(read, eqn.inputs), **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
            for o, b in zip(outs, eqn.out_binders):
                dt = b.aval.dtype
                env[b] = o if not _is_narrow(dt) or eqn.primitive.name in _EXACT \
                    else _round_to(o, dt)
        return [read(v) for v in outvars]
    return run


def holds_narrow(closed):
    """True if a 16-bit float is among closed's values (its nested calls' included)."""
    from .plan import inline_jit
    invars, consts, eqns, outvars = inline_jit(closed)
    vs = list(invars) + [v for v, _ in consts] + [o for e in eqns for o in e.out_binders]
    return any(_is_narrow(v.aval.dtype) for v in vs)


def widen(closed):
    """(the float32 ClosedJaxpr computing closed's values, closed's output dtypes) for a
    program holding 16-bit floats; None where a control-flow body would see them."""
    from .plan import inline_jit
    invars, consts, eqns, outvars = inline_jit(closed)
    if any(_has_jaxpr(e.params) for e in eqns):
        return None
    avals = [a.update(dtype=_F32) if _is_narrow(a.dtype) else a for a in
             (v.aval for v in invars)]
    jaxpr, new_consts = core.trace_to_jaxpr(_widened_eval(invars, consts, eqns, outvars), avals)
    out_dtypes = [v.aval.dtype for v in outvars]
    return ClosedJaxpr(jaxpr, new_consts), out_dtypes


class Widened:
    """The executable of a 16-bit program: the float32 executable of its widened jaxpr, with
    16-bit arguments widened and results narrowed (both exact)."""
    __slots__ = ("closed", "inner", "in_narrow", "out_dtypes")

    def __init__(self, closed, inner, in_dtypes, out_dtypes):
        self.closed = closed        # the widened jaxpr: inner's key in the weak executable table
        self.inner = inner
        self.in_narrow = [_is_narrow(d) for d in in_dtypes]
        self.out_dtypes = [d if _is_narrow(d) else None for d in out_dtypes]

    def __call__(self, args):
        wide = [np.asarray(a).astype(_F32) if n else a for a, n in zip(args, self.in_narrow)]
        outs = self.inner(wide)
        return tuple(o if d is None else np.asarray(o).astype(d)
                     for o, d in zip(outs, self.out_dtypes))
