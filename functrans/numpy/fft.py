"""functrans.numpy.fft: NumPy's discrete Fourier transforms (signatures, defaults, errors and
result dtypes as numpy.fft: float32 and complex64 stay single precision) on the lax ``fft``
primitive, so they differentiate, batch and compile (docs/numerics.md, "Fourier transforms").

Every n-dimensional transform over distinct axes is one primitive call on the axes moved to the
end; repeated axes are transformed one after the other, as NumPy does."""
from __future__ import annotations

import math
import operator

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax, slicing
from ..lax.fft import FftType, fft_p
from ._base import as_operand, canonical_axis, cast
from ._shape import roll

__all__ = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft", "fft2", "ifft2", "rfft2", "irfft2",
           "fftn", "ifftn", "rfftn", "irfftn", "fftfreq", "rfftfreq", "fftshift", "ifftshift"]

_NORMS = (None, "backward", "ortho", "forward")
_SWAP = {None: "forward", "backward": "forward", "ortho": "ortho", "forward": "backward"}


def _check_norm(norm):
    if norm not in _NORMS:
        raise ValueError(f'Invalid norm value {norm}; should be "backward", "ortho" or '
                         f'"forward".{core.where()}')


def _scale(x, norm, n, inverse):
    """x (a transform computed in the 'backward' convention over n points) rescaled to norm."""
    if norm in (None, "backward"):
        return x
    f = math.sqrt(n) if norm == "ortho" else float(n)
    f = f if inverse else 1.0 / f
    a = get_aval(x)
    return lax.mul(x, lax.full(a.shape, f, a.dtype))


def _inexact(x, name, real=False):
    """x as an array of NumPy's FFT dtype: float32/complex64 kept, float16 single, other reals
    float64 (complex unless real); a complex x of a real-input transform is a TypeError."""
    x = as_operand(x)
    dt = get_aval(x).dtype
    if real and dt.kind == "c":
        raise TypeError(f"{name} requires real input, got an array of dtype {dt.name}"
                        f"{core.where()}")
    if dt == core.bfloat16:
        raise TypeError(f"{name} does not support bfloat16 (there is no bfloat16 FFT): convert "
                        f"the input with .astype(jnp.float32){core.where()}")
    if dt == np.float16:       # pocketfft has no half precision: single, as JAX
        dt = np.dtype(np.float32)
    elif dt.kind not in "fc":
        dt = np.dtype(np.float64)
    if not real:
        dt = lax.complex_dtype(dt)
    return cast(x, dt)


def _is_real(a):
    return get_aval(a).dtype.kind != "c"


def _fit(x, axis, n):
    """x cropped or zero-padded to n along axis."""
    size = get_aval(x).shape[axis]
    if n == size:
        return x
    nd = get_aval(x).ndim
    if n < size:
        limit = get_aval(x).shape[:axis] + (n,) + get_aval(x).shape[axis + 1:]
        return slicing.slice(x, (0,) * nd, limit)
    cfg = [(0, 0, 0)] * nd
    cfg[axis] = (0, n - size, 0)
    return slicing.pad(x, 0, cfg)


def _count(n):
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"FFT lengths must be integers, got {n!r}{core.where()}") from None
    if n < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.{core.where()}")
    return n


def _transform(x, fft_type, axes, lengths):
    """The primitive over the given distinct axes (x already fitted to them): the axes moved to
    the end, transformed, moved back."""
    nd = get_aval(x).ndim
    rest = [i for i in range(nd) if i not in axes]
    perm = tuple(rest) + tuple(axes)
    y = lax.transpose(x, perm) if perm != tuple(range(nd)) else x
    y = fft_p.bind(y, fft_type=fft_type, fft_lengths=tuple(lengths))
    inv = tuple(int(i) for i in np.argsort(perm))
    return lax.transpose(y, inv) if perm != tuple(range(nd)) else y


def _take(x, axis, start, stop):
    shape = get_aval(x).shape
    start_idx = [0] * len(shape)
    start_idx[axis] = start
    return slicing.slice(x, start_idx, shape[:axis] + (stop,) + shape[axis + 1:])


def _move_first_to(ndim, axis):
    perm = list(range(1, ndim))
    perm.insert(axis, 0)
    return tuple(perm)


def _negate_index(x, axis):
    """y[j] = x[-j mod n] along axis."""
    n = get_aval(x).shape[axis]
    if n <= 1:
        return x
    idx = (-np.arange(n) % n)[:, None]
    y = slicing.gather(x, idx, (axis,))        # one pass (slices, rev, concatenate: four)
    return y if axis == 0 else lax.transpose(y, _move_first_to(get_aval(y).ndim, axis))


def _real_fft(x, axes, lengths):
    """The complex FFT of a real x (fitted to lengths over the distinct axes) from its half
    spectrum: the missing half is X[-k] = conj(X[k]). Half the transform's work, and no
    conversion of x to complex."""
    half = _transform(x, FftType.RFFT, axes, lengths)
    last, n = axes[-1], lengths[-1]
    rest = _take(half, last, 1, n - n // 2)           # X[1 .. (n-1)//2] along the last axis
    rest = lax.rev(rest, (last,))
    for ax in axes[:-1]:
        rest = _negate_index(rest, ax)
    return slicing.concatenate([half, lax.conj(rest)], last)


# ---------------------------------------------------------------------------------------------
# One axis

def _one(name, a, n, axis, norm, fft_type):
    _check_norm(norm)
    a = as_operand(a)
    real_fft = fft_type == FftType.FFT and _is_real(a)
    x = _inexact(a, name, real=real_fft or fft_type == FftType.RFFT)
    nd = get_aval(x).ndim
    if nd == 0:
        raise ValueError(f"{name}: input must be at least 1-d, got a 0-d array{core.where()}")
    axis = canonical_axis(axis, nd)
    size = get_aval(x).shape[axis]
    if fft_type == FftType.IRFFT:
        n = _count(2 * (size - 1) if n is None else n)
        x = _fit(x, axis, n // 2 + 1)
    else:
        n = _count(size if n is None else n)
        x = _fit(x, axis, n)
    if real_fft:
        y = _real_fft(x, (axis,), (n,))
    else:
        y = _transform(x, fft_type, (axis,), (n,))
    return _scale(y, norm, n, fft_type in (FftType.IFFT, FftType.IRFFT))


def fft(a, n=None, axis=-1, norm=None):
    """The one-dimensional discrete Fourier transform of a along axis (cropped or zero-padded to
    n points); returns a complex array."""
    return _one("fft", a, n, axis, norm, FftType.FFT)


def ifft(a, n=None, axis=-1, norm=None):
    """The one-dimensional inverse discrete Fourier transform of a along axis; returns a complex
    array."""
    return _one("ifft", a, n, axis, norm, FftType.IFFT)


def rfft(a, n=None, axis=-1, norm=None):
    """The one-dimensional discrete Fourier transform of the real array a along axis; returns
    the n // 2 + 1 non-negative frequency terms (complex)."""
    return _one("rfft", a, n, axis, norm, FftType.RFFT)


def irfft(a, n=None, axis=-1, norm=None):
    """The inverse of rfft: the real signal of n points (default 2 * (m - 1) for m input
    terms) whose half spectrum along axis is a; returns a real array."""
    return _one("irfft", a, n, axis, norm, FftType.IRFFT)


def hfft(a, n=None, axis=-1, norm=None):
    """The FFT of a signal with Hermitian symmetry whose first half is a: irfft(conj(a), n)
    with the opposite normalisation; returns a real array of n points (default 2 * (m - 1))."""
    _check_norm(norm)
    return irfft(lax.conj(_inexact(a, "hfft")), n, axis, _SWAP[norm])


def ihfft(a, n=None, axis=-1, norm=None):
    """The inverse of hfft: conj(rfft(a, n)) with the opposite normalisation, for a real a;
    returns the n // 2 + 1 complex terms."""
    _check_norm(norm)
    return lax.conj(rfft(_inexact(a, "ihfft", real=True), n, axis, _SWAP[norm]))


# ---------------------------------------------------------------------------------------------
# Several axes

def _nd_args(name, x, s, axes, inverse_real):
    """(lengths, axes) as numpy.fft's: s defaults to the input's sizes (for the last axis of an
    inverse real transform, 2 * (m - 1)); axes default to the last len(s) axes (or all)."""
    nd = get_aval(x).ndim
    shape = get_aval(x).shape
    if axes is None:
        axes = list(range(nd)) if s is None else list(range(-len(s), 0))
    elif isinstance(axes, int) or np.ndim(axes) == 0:
        axes = [axes]
    axes = [canonical_axis(ax, nd) for ax in axes]
    if s is None:
        s = [shape[ax] for ax in axes]
        if inverse_real and axes:
            s[-1] = 2 * (shape[axes[-1]] - 1)
    else:
        s = list(np.atleast_1d(s).tolist()) if not isinstance(s, (list, tuple)) else list(s)
        if len(s) != len(axes):
            raise ValueError(f"Shape and axes have different lengths.{core.where()}")
        s = [shape[ax] if v == -1 else v for v, ax in zip(s, axes)]
    return [_count(v) for v in s], axes


def _many(name, a, s, axes, norm, fft_type):
    _check_norm(norm)
    a = as_operand(a)
    real_fft = fft_type == FftType.FFT and _is_real(a)
    x = _inexact(a, name, real=real_fft or fft_type == FftType.RFFT)
    s, axes = _nd_args(name, x, s, axes, fft_type == FftType.IRFFT)
    if not axes:
        return x
    if len(set(axes)) != len(axes):        # NumPy transforms a repeated axis again
        return _sequential(x, s, axes, norm, fft_type)
    for ax, n in zip(axes[:-1], s[:-1]):
        x = _fit(x, ax, n)
    last = s[-1] // 2 + 1 if fft_type == FftType.IRFFT else s[-1]
    x = _fit(x, axes[-1], last)
    if real_fft:
        y = _real_fft(x, tuple(axes), s)
    else:
        y = _transform(x, fft_type, tuple(axes), s)
    return _scale(y, norm, math.prod(s), fft_type in (FftType.IFFT, FftType.IRFFT))


def _sequential(x, s, axes, norm, fft_type):
    """numpy.fft's loop over axes (the last first for forward transforms; the inverse real
    transform does its complex axes first and its real axis last)."""
    if fft_type == FftType.IRFFT:
        for ax, n in zip(axes[:-1], s[:-1]):
            x = ifft(x, n, ax, norm)
        return irfft(x, s[-1], axes[-1], norm)
    first = rfft if fft_type == FftType.RFFT else (fft if fft_type == FftType.FFT else ifft)
    x = first(x, s[-1], axes[-1], norm)
    each = ifft if fft_type == FftType.IFFT else fft
    for ax, n in zip(axes[-2::-1], s[-2::-1]):
        x = each(x, n, ax, norm)
    return x


def fftn(a, s=None, axes=None, norm=None):
    """The n-dimensional discrete Fourier transform of a over axes (default: all, or the last
    len(s)), each cropped or zero-padded to s; returns a complex array."""
    return _many("fftn", a, s, axes, norm, FftType.FFT)


def ifftn(a, s=None, axes=None, norm=None):
    """The n-dimensional inverse discrete Fourier transform of a; returns a complex array."""
    return _many("ifftn", a, s, axes, norm, FftType.IFFT)


def rfftn(a, s=None, axes=None, norm=None):
    """The n-dimensional discrete Fourier transform of the real array a: a real transform over
    the last axis (s[-1] // 2 + 1 terms kept), complex ones over the others; returns complex."""
    return _many("rfftn", a, s, axes, norm, FftType.RFFT)


def irfftn(a, s=None, axes=None, norm=None):
    """The inverse of rfftn: the real array of shape s (last length default 2 * (m - 1)) whose
    half spectrum over axes is a; returns a real array."""
    return _many("irfftn", a, s, axes, norm, FftType.IRFFT)


def fft2(a, s=None, axes=(-2, -1), norm=None):
    """fftn over two axes (default the last two); returns a complex array."""
    return fftn(a, s, axes, norm)


def ifft2(a, s=None, axes=(-2, -1), norm=None):
    """ifftn over two axes (default the last two); returns a complex array."""
    return ifftn(a, s, axes, norm)


def rfft2(a, s=None, axes=(-2, -1), norm=None):
    """rfftn over two axes (default the last two); returns a complex array."""
    return rfftn(a, s, axes, norm)


def irfft2(a, s=None, axes=(-2, -1), norm=None):
    """irfftn over two axes (default the last two); returns a real array."""
    return irfftn(a, s, axes, norm)


# ---------------------------------------------------------------------------------------------
# Frequencies and shifts

def _freq_dtype(dtype):
    dt = np.dtype(np.float64 if dtype is None else dtype)
    return core.canonicalize_dtype(dt)


def _frequencies(ints, n, d, dtype):
    """ints / (d * n) in dtype (d may be an array or a traced value)."""
    dt = _freq_dtype(dtype)
    k = cast(np.asarray(ints), dt)
    denom = lax.mul(cast(d, dt), np.asarray(n, dt))
    return lax.div(k, lax.broadcast_in_dim(denom, get_aval(k).shape, ()))


def fftfreq(n, d=1.0, *, dtype=None, device=None):
    """The sample frequencies [0, 1, ..., (n-1)//2, -(n//2), ..., -1] / (d * n) of an n-point
    FFT with sample spacing d; returns a float array of length n."""
    n = _count(n)
    ints = np.concatenate([np.arange((n - 1) // 2 + 1), np.arange(-(n // 2), 0)])
    return _frequencies(ints, n, d, dtype)


def rfftfreq(n, d=1.0, *, dtype=None, device=None):
    """The sample frequencies [0, 1, ..., n//2] / (d * n) of an n-point rfft with sample
    spacing d; returns a float array of length n // 2 + 1."""
    n = _count(n)
    return _frequencies(np.arange(n // 2 + 1), n, d, dtype)


def _shift(x, axes, sign):
    x = as_operand(x)
    nd = get_aval(x).ndim
    if axes is None:
        axes = tuple(range(nd))
    elif isinstance(axes, int) or np.ndim(axes) == 0:
        axes = (axes,)
    axes = tuple(canonical_axis(ax, nd) for ax in axes)
    if not axes:
        return x
    shape = get_aval(x).shape
    return roll(x, [sign * (shape[ax] // 2) for ax in axes], axes)


def fftshift(x, axes=None):
    """x with the zero-frequency term moved to the centre along axes (default all): a roll by
    n // 2; returns an array of x's shape."""
    return _shift(x, axes, 1)


def ifftshift(x, axes=None):
    """The inverse of fftshift: a roll by -(n // 2) along axes; returns an array of x's
    shape."""
    return _shift(x, axes, -1)
