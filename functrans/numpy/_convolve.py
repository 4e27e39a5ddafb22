"""convolve and correlate of 1-d arrays, as NumPy defines them, on lax.conv_general_dilated."""
from __future__ import annotations

from .. import core
from ..core import get_aval
from ..lax import convolution, lax
from ._base import as_operand, cast, result_type
from ._ufuncs import conj


def _conv1d(op, a, v, mode, precision, preferred_element_type):
    """op ('convolve' or 'correlate') of 1-d a and v: NumPy's result (the longer operand slides
    under the shorter one; correlate of a swapped pair is reversed)."""
    a, v = as_operand(a, f"{op} argument"), as_operand(v, f"{op} argument")
    if get_aval(a).ndim != 1 or get_aval(v).ndim != 1:
        raise ValueError(f"{op}() only supports 1-dimensional inputs, got shapes "
                         f"{get_aval(a).shape} and {get_aval(v).shape}{core.where()}")
    dt = result_type(a, v)
    a, v = cast(a, dt), cast(v, dt)
    n, m = get_aval(a).shape[0], get_aval(v).shape[0]
    if n == 0 or m == 0:
        raise ValueError(f"{op}: inputs cannot be empty, got shapes {(n,)} and {(m,)}"
                         f"{core.where()}")
    reverse = False
    if op == "correlate":
        v = conj(v)
        reverse = n < m
    if n < m:
        a, v, n, m = v, a, m, n
    if op == "convolve":
        v = lax.rev(v, (0,))   # conv_general_dilated correlates: a convolution flips the kernel
    pads = {"valid": (0, 0), "same": (m // 2, m - m // 2 - 1), "full": (m - 1, m - 1)}
    if mode not in pads:
        raise ValueError(f"{op}: mode must be one of 'full', 'same' or 'valid', got {mode!r}"
                         f"{core.where()}")
    out = convolution.conv_general_dilated(
        lax.reshape(a, (1, 1, n)), lax.reshape(v, (1, 1, m)), (1,), [pads[mode]],
        precision=precision, preferred_element_type=preferred_element_type)
    out = lax.reshape(out, get_aval(out).shape[2:])
    return lax.rev(out, (0,)) if reverse else out


def convolve(a, v, mode="full", *, precision=None, preferred_element_type=None):
    """The discrete linear convolution of 1-d a and v (numpy.convolve): mode 'full' (length
    n + m - 1), 'same' (max(n, m)) or 'valid' (max(n, m) - min(n, m) + 1)."""
    return _conv1d("convolve", a, v, mode, precision, preferred_element_type)


def correlate(a, v, mode="valid", *, precision=None, preferred_element_type=None):
    """The cross-correlation of 1-d a and v, c[k] = sum_n a[n + k] conj(v[n])
    (numpy.correlate), with the same modes as convolve."""
    return _conv1d("correlate", a, v, mode, precision, preferred_element_type)
