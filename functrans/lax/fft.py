"""Fast Fourier transforms: the ``fft`` primitive (as JAX's lax.fft) with its impl (scipy.fft's
pocketfft), abstract eval, jvp (it is linear), transpose, batching, and the ``fft`` wrapper.

``fft(x, fft_type, fft_lengths)`` transforms the trailing ``len(fft_lengths)`` axes of x:

* ``FFT`` / ``IFFT``: complex to complex, of the same shape (IFFT scaled by 1 / prod(lengths));
* ``RFFT``: real (trailing shape ``fft_lengths``) to complex, the last axis cut to
  ``fft_lengths[-1] // 2 + 1`` (the non-negative frequencies);
* ``IRFFT``: complex (last axis ``fft_lengths[-1] // 2 + 1``) to real of trailing shape
  ``fft_lengths``, scaled by 1 / prod(lengths); the imaginary parts of the zero (and, for an
  even length, the Nyquist) frequency are ignored.

Transposes, in functrans's convention ``Re(sum(vjp(u) * t)) == Re(sum(u * jvp(t)))``, with
N = prod(fft_lengths) and the Hermitian weights c = (1, 2, ..., 2, 1 if the last length is even
else 2) on the last axis: FFT -> FFT and IFFT -> IFFT (their matrices are symmetric),
RFFT -> u |-> N * IRFFT(conj(u) / c), IRFFT -> u |-> c * conj(RFFT(u)) / N (docs/numerics.md).
Backends: the CPU jit runs the impl between kernels (backends/numba_cpu.py, HOST_IMPL_OPS), the
CUDA backend calls cuFFT through CuPy or runs the impl on the host (backends/numba_cuda.py)."""
from __future__ import annotations

import enum
import functools
import operator

import numpy as np

from .. import core
from ..core import ShapedArray, get_aval
from ..interpreters.ad import deflinear
from ..interpreters.batching import batch_rules, moveaxis
from .lax import (_conj, broadcast_in_dim, complex_dtype, convert_element_type, full, mul,
                  primitive, real_dtype)

__all__ = ["FftType", "fft", "fft_p"]


class FftType(enum.IntEnum):
    """The kind of transform ``lax.fft`` computes."""
    FFT = 0
    IFFT = 1
    RFFT = 2
    IRFFT = 3


_NAMES = {"fft": FftType.FFT, "ifft": FftType.IFFT, "rfft": FftType.RFFT, "irfft": FftType.IRFFT}


def _fft_type(fft_type):
    if isinstance(fft_type, str):
        t = _NAMES.get(fft_type.lower())
        if t is None:
            raise ValueError(f"lax.fft: unknown fft_type {fft_type!r}; expected one of "
                             f"{sorted(_NAMES)} or a FftType")
        return t
    return FftType(fft_type)


# ---------------------------------------------------------------------------------------------
# The primitive

@functools.lru_cache(maxsize=512)
def _fft_aval_memo(shape, dtype, fft_type, fft_lengths):
    k = len(fft_lengths)
    if k < 1 or k > len(shape):
        raise TypeError(f"fft: fft_lengths {fft_lengths} must name between 1 and {len(shape)} "
                        f"trailing axes of the operand of shape {shape}")
    if any(n < 0 for n in fft_lengths):
        raise ValueError(f"fft: fft_lengths must be non-negative, got {fft_lengths}")
    lead, tail = shape[:-k], shape[-k:]
    if fft_type == FftType.RFFT:
        if dtype.kind != "f":
            raise TypeError(f"fft: RFFT requires a real floating-point operand, got {dtype.name}")
        out_dtype = complex_dtype(dtype)
        want, out_tail = fft_lengths, fft_lengths[:-1] + (fft_lengths[-1] // 2 + 1,)
    else:
        if dtype.kind != "c":
            raise TypeError(f"fft: {fft_type.name} requires a complex operand, got {dtype.name}")
        if fft_type == FftType.IRFFT:
            out_dtype = real_dtype(dtype)
            want, out_tail = fft_lengths[:-1] + (fft_lengths[-1] // 2 + 1,), fft_lengths
        else:
            out_dtype, want, out_tail = dtype, fft_lengths, fft_lengths
    if tail != want:
        raise TypeError(f"fft: {fft_type.name} with fft_lengths {fft_lengths} needs trailing "
                        f"axes of sizes {want}, got an operand of shape {shape}")
    return ShapedArray(lead + out_tail, out_dtype)


def _fft_aval(x, *, fft_type, fft_lengths):
    return _fft_aval_memo(x.shape, x.dtype, fft_type, fft_lengths)


_SCIPY_NAMES = {FftType.FFT: "fftn", FftType.IFFT: "ifftn", FftType.RFFT: "rfftn",
                FftType.IRFFT: "irfftn"}


def fft_transform_name(fft_type):
    """The scipy.fft (and cupyx.scipy.fft) function computing an fft_type transform."""
    return _SCIPY_NAMES[fft_type]


def _fft_impl(x, *, fft_type, fft_lengths):
    """scipy.fft (pocketfft's C++ version: 2-10x faster than numpy.fft's here, and single
    precision stays single); imported on first use, as it adds 50 ms to importing functrans."""
    import scipy.fft
    out = _fft_aval_memo(x.shape, x.dtype, fft_type, fft_lengths)
    if 0 in out.shape or 0 in x.shape:
        return np.zeros(out.shape, out.dtype)
    axes = tuple(range(x.ndim - len(fft_lengths), x.ndim))
    y = getattr(scipy.fft, fft_transform_name(fft_type))(x, s=fft_lengths, axes=axes)
    return np.ascontiguousarray(y, out.dtype)


fft_p = primitive("fft", _fft_impl, _fft_aval)
core.complex_primitives.add(fft_p)


def fft(x, fft_type, fft_lengths):
    """The FFT of kind fft_type (a FftType or 'fft', 'ifft', 'rfft', 'irfft') over the trailing
    len(fft_lengths) axes of x; returns the transformed array (complex for FFT, IFFT and RFFT,
    real for IRFFT). A real x of FFT/IFFT/IRFFT is converted to complex first, as JAX does."""
    t = _fft_type(fft_type)
    try:
        lengths = tuple(operator.index(n) for n in np.atleast_1d(fft_lengths).tolist())
    except TypeError:
        raise TypeError(f"lax.fft: fft_lengths must be a sequence of ints, got "
                        f"{fft_lengths!r}") from None
    dt = get_aval(x).dtype
    if t != FftType.RFFT and dt.kind != "c":
        x = convert_element_type(x, complex_dtype(dt if dt.kind == "f" else np.float64))
    return fft_p.bind(x, fft_type=t, fft_lengths=lengths)


# ---------------------------------------------------------------------------------------------
# Transposes and batching

def _hermitian_weights(fft_lengths):
    """The weights c = (1, 2, ..., 2, then 1 for an even last length) of the stored half
    spectrum: how many times each stored frequency counts in the full spectrum."""
    n = fft_lengths[-1]
    c = np.full(n // 2 + 1, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    return c


def _times_last_axis(x, w):
    """x times the constant vector w along its last axis (a traceable op)."""
    a = get_aval(x)
    return mul(x, broadcast_in_dim(np.asarray(w, a.dtype), a.shape, (a.ndim - 1,)))


def _scaled(x, factor):
    a = get_aval(x)
    return mul(x, full(a.shape, factor, a.dtype))


def _fft_transpose(ct, x, *, fft_type, fft_lengths):
    n = float(np.prod(fft_lengths))
    if fft_type in (FftType.FFT, FftType.IFFT):
        out = fft_p.bind(ct, fft_type=fft_type, fft_lengths=fft_lengths)
    elif fft_type == FftType.RFFT:
        half = _times_last_axis(_conj(ct), 1.0 / _hermitian_weights(fft_lengths))
        out = _scaled(fft_p.bind(half, fft_type=FftType.IRFFT, fft_lengths=fft_lengths), n)
    else:
        spec = fft_p.bind(ct, fft_type=FftType.RFFT, fft_lengths=fft_lengths)
        out = _times_last_axis(_conj(spec), _hermitian_weights(fft_lengths) / n)
    return [out]


deflinear(fft_p, _fft_transpose)


def _fft_batch(vals, dims, *, fft_type, fft_lengths):
    """The transform acts on trailing axes: the batch axis goes to the front."""
    return fft_p.bind(moveaxis(vals[0], dims[0], 0), fft_type=fft_type,
                      fft_lengths=fft_lengths), 0


batch_rules[fft_p] = _fft_batch
