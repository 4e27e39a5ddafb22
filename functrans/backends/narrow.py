"""jit of float16/bfloat16 programs on the CPU. numba has neither dtype, so such a jaxpr is
rewritten before lowering: every 16-bit value becomes a float32 one holding exactly the 16-bit
value, and every equation with a 16-bit output is followed by its rounding to that type
(``lax.reduce_precision`` for bfloat16; for float16 the same plus float16's subnormals).
The kernel is then an ordinary float32 kernel: the equations fuse as before, and the values
are the eager ones, which round every operation the same way (core._run_narrow).

bfloat16 arguments and results cross the kernel boundary as their bits: the program takes a
uint16 view of each bfloat16 argument (no copy) and widens it inside the kernel (the bits
shifted into float32's upper half), and returns each bfloat16 result as uint16 bits
(rounded to nearest even in integer ops) that are viewed as bfloat16 outside, so the kernel
reads and writes 2 bytes per element. float16 arguments are widened by NumPy on the way in and
results narrowed on the way out (both exact): numba cannot load float16 arrays, and decoding
float16 bits (subnormals, a 5-bit exponent) is not done in the jaxpr yet.
A program whose 16-bit values pass through a control-flow body, or bitcasts a float16, is left
to the eager fallback."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import ClosedJaxpr, Jaxpr, Literal

_F32 = np.dtype(np.float32)
_U16, _U32 = np.dtype(np.uint16), np.dtype(np.uint32)

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


def _u32(x, value):
    from ..lax import lax
    return lax.full(core.get_aval(x).shape, value, _U32)


def _bf16_from_bits(bits):
    """float32 holding the bfloat16 whose bits (any 2-byte dtype) are given: the bits shifted
    into float32's upper half (exact, NaN payloads and all)."""
    from ..lax import lax
    wide = lax.convert_element_type(lax.bitcast_convert_type(bits, _U16), _U32)
    return lax.bitcast_convert_type(lax.shift_left(wide, _u32(wide, 16)), _F32)


def _bf16_bits(x):
    """The uint16 bits of float32 x rounded to nearest even bfloat16, in integer ops: add
    0x7FFF plus the lowest kept bit, drop the low half. A NaN becomes the quiet NaN of its sign
    (0x7FC0), as ml_dtypes' conversion, which eager results go through."""
    from ..lax import lax
    b = lax.bitcast_convert_type(x, _U32)
    high = lax.shift_right_logical(b, _u32(b, 16))
    bias = lax.add(_u32(b, 0x7FFF), lax.bitwise_and(high, _u32(b, 1)))
    rounded = lax.shift_right_logical(lax.add(b, bias), _u32(b, 16))
    nan = lax.bitwise_or(lax.bitwise_and(high, _u32(b, 0x8000)), _u32(b, 0x7FC0))
    return lax.convert_element_type(lax.select(lax.ne(x, x), nan, rounded), _U16)


def _bitcast_wide(x, in_dtype, new_dtype):
    """bitcast_convert_type in the float32-widened program, where bfloat16 values are held as
    float32: a bfloat16 operand is first turned into its bits, a bfloat16 result is widened
    from them."""
    from ..lax import lax
    if in_dtype == core.bfloat16:
        x = _bf16_bits(x)
    if new_dtype == core.bfloat16:
        return _bf16_from_bits(x)
    return lax.bitcast_convert_type(x, new_dtype)


def _widen_value(v):
    a = np.asarray(v)
    return a.astype(_F32) if _is_narrow(a.dtype) else v


def _widened_eval(invars, consts, eqns, outvars):
    """A function of the widened inputs (bfloat16 ones as uint16 bits) evaluating the flat
    equations in float32, each 16-bit output rounded; bfloat16 results are returned as bits."""
    # bfloat16 results read by no equation: _bf16_bits rounds them (as reduce_precision would)
    read_later = {v for e in eqns for v in e.inputs if type(v) is not Literal}
    encoded_only = {v for v in outvars if type(v) is not Literal and v not in read_later
                    and v.aval.dtype == core.bfloat16}

    def run(*args):
        env = {v: _bf16_from_bits(a) if v.aval.dtype == core.bfloat16 else a
               for v, a in zip(invars, args)}
        env.update((v, _widen_value(c)) for v, c in consts)

        def read(x):
            return _widen_value(x.val) if type(x) is Literal else env[x]
        for eqn in eqns:
            if eqn.primitive.name == "bitcast_convert_type":
                env[eqn.out_binders[0]] = _bitcast_wide(read(eqn.inputs[0]),
                                                        eqn.inputs[0].aval.dtype,
                                                        eqn.params["new_dtype"])
                continue
            params = {k: _F32 if _is_narrow(v) else v for k, v in eqn.params.items()}
            outs = eqn.primitive.bind(*map(read, eqn.inputs), **params)
            outs = outs if eqn.primitive.multiple_results else [outs]
            for o, b in zip(outs, eqn.out_binders):
                dt = b.aval.dtype
                unrounded = eqn.primitive.name in _EXACT or b in encoded_only
                env[b] = o if not _is_narrow(dt) or unrounded else _round_to(o, dt)
        return [_bf16_bits(read(v)) if v.aval.dtype == core.bfloat16 else read(v)
                for v in outvars]
    return run


def holds_narrow(closed):
    """True if a 16-bit float is among closed's values (its nested calls' included)."""
    from .plan import inline_jit
    invars, consts, eqns, outvars = inline_jit(closed)
    vs = list(invars) + [v for v, _ in consts] + [o for e in eqns for o in e.out_binders]
    return any(_is_narrow(v.aval.dtype) for v in vs)


def _bitcasts_float16(eqn):
    return eqn.primitive.name == "bitcast_convert_type" and np.float16 in (
        eqn.inputs[0].aval.dtype, eqn.params["new_dtype"])


def _boundary_aval(aval):
    """How a value of a 16-bit program crosses the kernel boundary: bfloat16 as its uint16
    bits, float16 widened to float32, others as they are."""
    if aval.dtype == core.bfloat16:
        return aval.update(dtype=_U16)
    return aval.update(dtype=_F32) if _is_narrow(aval.dtype) else aval


def widen(closed):
    """(the ClosedJaxpr computing closed's values in float32, closed's output dtypes) for a
    program holding 16-bit floats, taking and returning bfloat16 values as uint16 bits and
    float16 ones as float32; None where a control-flow body would see them or a float16 is
    bitcast."""
    from .plan import inline_jit
    invars, consts, eqns, outvars = inline_jit(closed)
    if any(_has_jaxpr(e.params) or _bitcasts_float16(e) for e in eqns):
        return None
    avals = [_boundary_aval(v.aval) for v in invars]
    jaxpr, new_consts = core.trace_to_jaxpr(_widened_eval(invars, consts, eqns, outvars), avals)
    out_dtypes = [v.aval.dtype for v in outvars]
    return ClosedJaxpr(jaxpr, new_consts), out_dtypes


def _to_boundary(a, dtype):
    """An argument of dtype as the widened program takes it: a bfloat16 array's uint16 view
    (no copy), a float16 array widened to float32."""
    a = np.asarray(a)
    if dtype == core.bfloat16:
        return a.view(_U16) if a.dtype == dtype else a.astype(dtype).view(_U16)
    return a.astype(_F32)


def _from_boundary(o, dtype):
    """A result of the widened program as dtype: uint16 bits viewed as bfloat16 (no copy),
    float32 narrowed to float16 (exact)."""
    o = np.asarray(o)
    return o.view(dtype) if dtype == core.bfloat16 else o.astype(dtype)


class Widened:
    """The executable of a 16-bit program: the executable of its widened jaxpr, with 16-bit
    arguments and results converted at the boundary (_to_boundary, _from_boundary)."""
    __slots__ = ("closed", "inner", "in_dtypes", "out_dtypes")

    def __init__(self, closed, inner, in_dtypes, out_dtypes):
        self.closed = closed        # the widened jaxpr: inner's key in the weak executable table
        self.inner = inner
        self.in_dtypes = [d if _is_narrow(d) else None for d in in_dtypes]
        self.out_dtypes = [d if _is_narrow(d) else None for d in out_dtypes]

    def __call__(self, args):
        outs = self.inner([a if d is None else _to_boundary(a, d)
                           for a, d in zip(args, self.in_dtypes)])
        return tuple(o if d is None else _from_boundary(o, d)
                     for o, d in zip(outs, self.out_dtypes))
