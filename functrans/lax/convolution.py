"""Convolutions: the ``conv_general_dilated`` primitive (impl, abstract eval, jvp, transposes
w.r.t. both operands, batching) and JAX's wrappers around it (``conv``,
``conv_with_general_padding``, ``conv_transpose``, dimension-number helpers, shape helpers).

Conventions (XLA's, as JAX documents them). ``ConvDimensionNumbers(lhs_spec, rhs_spec,
out_spec)``: lhs_spec = (batch dim, feature dim, spatial dims...), rhs_spec = (out-feature dim,
in-feature dim, spatial dims...), out_spec = (batch dim, feature dim, spatial dims...). Groups
are always the major part of the dimension they split: with ``feature_group_count`` G, output
feature o belongs to group o // (O / G) and reads lhs features [g C/G, (g + 1) C/G); with
``batch_group_count`` B, it reads lhs batch entries [g N/B, (g + 1) N/B). The CPU lowering is
in backends/numba_cpu.py, the CUDA kernel in backends/cuda_ops.py."""
from __future__ import annotations

import functools
import operator
from typing import NamedTuple

import numpy as np

from .. import core
from ..core import ShapedArray, get_aval
from ..interpreters.ad import defbilinear
from ..interpreters.batching import batch_rules, moveaxis, not_mapped
from .lax import canonicalize_precision, convert_element_type, primitive, reshape, rev, transpose
from .windowed import padtype_to_pads

__all__ = ["ConvDimensionNumbers", "conv_general_dilated", "conv", "conv_with_general_padding",
           "conv_transpose", "conv_dimension_numbers", "conv_general_permutations",
           "conv_shape_tuple", "conv_general_shape_tuple", "conv_transpose_shape_tuple",
           "padtype_to_pads", "conv_general_dilated_p"]


class ConvDimensionNumbers(NamedTuple):
    """Where the batch, feature and spatial dimensions of a convolution's operands and output
    are: ``lhs_spec`` = (batch, feature, spatial...), ``rhs_spec`` = (out feature, in feature,
    spatial...), ``out_spec`` = (batch, feature, spatial...), each a tuple of axis indices."""
    lhs_spec: tuple
    rhs_spec: tuple
    out_spec: tuple


# ---------------------------------------------------------------------------------------------
# Dimension numbers and padding

def conv_general_permutations(dimension_numbers):
    """The (lhs, rhs, out) axis permutations of string dimension numbers such as
    ('NHWC', 'HWIO', 'NHWC'); spatial axes are ordered as they appear in the rhs spec."""
    lhs_s, rhs_s, out_s = dimension_numbers
    pairs = (("N", "C"), ("O", "I"), ("N", "C"))
    for spec, (a, b) in zip(dimension_numbers, pairs):
        if not spec.count(a) == spec.count(b) == 1:
            raise TypeError(f"convolution dimension_numbers spec {spec!r} must contain '{a}' and "
                            f"'{b}' exactly once")
        if len(spec) != len(set(spec)):
            raise TypeError(f"convolution dimension_numbers spec {spec!r} repeats a dimension")
    spatial = [set(s) - set(p) for s, p in zip(dimension_numbers, pairs)]
    if not spatial[0] == spatial[1] == spatial[2]:
        raise TypeError(f"convolution dimension_numbers {tuple(dimension_numbers)} do not name the "
                        "same spatial dimensions in lhs, rhs and out")

    def perm(spec, pair):
        sp = sorted((i for i, c in enumerate(spec) if c not in pair),
                    key=lambda i: rhs_s.index(spec[i]))
        return (spec.index(pair[0]), spec.index(pair[1])) + tuple(sp)
    return tuple(perm(s, p) for s, p in zip(dimension_numbers, pairs))


def conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers):
    """The ConvDimensionNumbers of None (NCHW, OIHW, NCHW-style defaults), of a
    ConvDimensionNumbers, or of three strings like ('NHWC', 'HWIO', 'NHWC')."""
    if len(lhs_shape) != len(rhs_shape):
        raise TypeError(f"convolution requires lhs and rhs ndim to be equal, got "
                        f"{len(lhs_shape)} and {len(rhs_shape)} (shapes {tuple(lhs_shape)} and "
                        f"{tuple(rhs_shape)})")
    if isinstance(dimension_numbers, ConvDimensionNumbers):
        return ConvDimensionNumbers(*(tuple(map(int, s)) for s in dimension_numbers))
    if dimension_numbers is None:
        iota = tuple(range(len(lhs_shape)))
        return ConvDimensionNumbers(iota, iota, iota)
    if not isinstance(dimension_numbers, (list, tuple)):
        raise TypeError(f"convolution dimension_numbers must be a tuple/list of three strings, a "
                        f"ConvDimensionNumbers or None, got {type(dimension_numbers).__name__}")
    if len(dimension_numbers) != 3 or not all(isinstance(s, str) for s in dimension_numbers):
        raise TypeError(f"convolution dimension_numbers must be three strings, got "
                        f"{dimension_numbers!r}")
    for i, s in enumerate(dimension_numbers):
        if len(s) != len(lhs_shape):
            raise TypeError(f"convolution dimension_numbers[{i}] must have len equal to the ndim of "
                            f"lhs and rhs, got {len(s)} for lhs and rhs shapes "
                            f"{tuple(lhs_shape)} and {tuple(rhs_shape)}")
    return ConvDimensionNumbers(*conv_general_permutations(dimension_numbers))


def _dilate(sizes, dilation):
    return tuple(0 if n == 0 else (n - 1) * d + 1 for n, d in zip(sizes, dilation))


def conv_shape_tuple(lhs_shape, rhs_shape, strides, pads, batch_group_count=1):
    """The output shape of a convolution on operands in the default (N, C, spatial...) and
    (O, I, spatial...) layouts (pads: explicit pairs or a padding string)."""
    if isinstance(pads, str):
        pads = padtype_to_pads(lhs_shape[2:], rhs_shape[2:], strides, pads)
    if len(pads) != len(lhs_shape) - 2:
        raise TypeError(f"Wrong number of explicit pads for convolution: expected "
                        f"{len(lhs_shape) - 2}, got {len(pads)}")
    out = []
    for n, k, s, (lo, hi) in zip(lhs_shape[2:], rhs_shape[2:], strides, pads):
        padded = n + lo + hi
        if padded < 0:
            raise ValueError(f"Negative padding is larger than the size of the corresponding "
                             f"dimension: got padding={tuple(pads)} for lhs_shape[2:]="
                             f"{tuple(lhs_shape[2:])}")
        out.append(max(0, (padded - k) // s + 1))
    return (lhs_shape[0] // batch_group_count, rhs_shape[0]) + tuple(out)


def conv_general_shape_tuple(lhs_shape, rhs_shape, window_strides, padding, dimension_numbers):
    """The output shape of conv_general_dilated(lhs, rhs, window_strides, padding,
    dimension_numbers=...) with no dilation or groups (the batch size passes through, so -1
    placeholders work as in stax)."""
    dn = conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    lhs_t = tuple(lhs_shape[i] for i in dn.lhs_spec)
    rhs_t = tuple(rhs_shape[i] for i in dn.rhs_spec)
    out_t = conv_shape_tuple(lhs_t, rhs_t, window_strides, padding)
    return tuple(out_t[i] for i in np.argsort(dn.out_spec))


def conv_transpose_shape_tuple(lhs_shape, rhs_shape, window_strides, padding, dimension_numbers):
    """The output shape of conv_transpose(lhs, rhs, window_strides, padding,
    dimension_numbers=...)."""
    dn = conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
    lhs_t = tuple(lhs_shape[i] for i in dn.lhs_spec)
    rhs_t = tuple(rhs_shape[i] for i in dn.rhs_spec)
    if isinstance(padding, str):
        padding = [_conv_transpose_padding(k, s, padding) for k, s in zip(rhs_t[2:], window_strides)]
    spatial = tuple((n - 1) * s - k + 2 + lo + hi
                    for n, k, s, (lo, hi) in zip(lhs_t[2:], rhs_t[2:], window_strides, padding))
    out_t = (lhs_t[0], rhs_t[0]) + spatial
    return tuple(out_t[i] for i in np.argsort(dn.out_spec))


# ---------------------------------------------------------------------------------------------
# The primitive

def _canonical_shapes(lhs, rhs, dimension_numbers):
    lhs_spec, rhs_spec, _ = dimension_numbers
    return (tuple(lhs.shape[i] for i in lhs_spec), tuple(rhs.shape[i] for i in rhs_spec))


def _conv_aval(lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
               dimension_numbers, feature_group_count, batch_group_count, precision,
               preferred_element_type):
    return _conv_aval_memo(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                           dimension_numbers, feature_group_count, batch_group_count,
                           preferred_element_type)


@functools.lru_cache(maxsize=1024)
def _conv_aval_memo(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                    dimension_numbers, fgc, bgc, preferred_element_type):
    if lhs.dtype != rhs.dtype:
        raise TypeError(f"requires arguments to have the same dtypes, got "
                        f"{lhs.dtype.name} and {rhs.dtype.name}")
    if lhs.dtype.kind not in "fiuc":
        raise TypeError(f"does not accept dtype {lhs.dtype.name}")
    if lhs.ndim != rhs.ndim or lhs.ndim < 2:
        raise TypeError(f"lhs and rhs must have the same number (at least 2) of "
                        f"dimensions, but got shapes {lhs.shape} and {rhs.shape}")
    nsp = lhs.ndim - 2
    for what, v in [("window_strides", window_strides), ("padding", padding),
                    ("lhs_dilation", lhs_dilation), ("rhs_dilation", rhs_dilation)]:
        if len(v) != nsp:
            raise TypeError(f"{what} must have one entry per spatial dimension ({nsp} "
                            f"for shapes {lhs.shape} and {rhs.shape}), got {v}")
    for what, v in [("window_strides", window_strides), ("lhs_dilation", lhs_dilation),
                    ("rhs_dilation", rhs_dilation)]:
        if any(s < 1 for s in v):
            raise ValueError(f"{what} must be positive, got {v}")
    (n, c, *sp), (o, i, *k) = _canonical_shapes(lhs, rhs, dimension_numbers)
    for what, g in [("feature_group_count", fgc), ("batch_group_count", bgc)]:
        if g < 1:
            raise ValueError(f"{what} must be a positive integer, got {g}")
    if fgc > 1 and bgc > 1:
        raise ValueError(f"At most one of batch_group_count and feature_group_count may be > 1, "
                         f"got batch_group_count={bgc} and feature_group_count={fgc}")
    if c % fgc:
        raise ValueError(f"feature_group_count must divide lhs feature dimension size, "
                         f"but {fgc} does not divide {c} (lhs shape {lhs.shape})")
    if c // fgc != i:
        raise ValueError(f"lhs feature dimension size divided by feature_group_count must "
                         f"equal the rhs input feature dimension size, but {c} // {fgc} != {i} "
                         f"(lhs shape {lhs.shape}, rhs shape {rhs.shape})")
    if n % bgc:
        raise ValueError(f"batch_group_count must divide lhs batch dimension size, but "
                         f"{bgc} does not divide {n} (lhs shape {lhs.shape})")
    for what, g in [("feature_group_count", fgc), ("batch_group_count", bgc)]:
        if o % g:
            raise ValueError(f"rhs output feature dimension size must be a multiple of "
                             f"{what}, but {o} is not a multiple of {g} (rhs shape {rhs.shape})")
    lhs_t = (n, c) + _dilate(sp, lhs_dilation)
    rhs_t = (o, i) + _dilate(k, rhs_dilation)
    out_t = conv_shape_tuple(lhs_t, rhs_t, window_strides, padding, bgc)
    shape = tuple(out_t[j] for j in np.argsort(dimension_numbers.out_spec))
    return ShapedArray(shape, preferred_element_type or lhs.dtype)


def _dilate_and_pad(x, lhs_dilation, padding):
    """x (N, C, spatial...) dilated by lhs_dilation and padded (negative pads crop)."""
    sp = x.shape[2:]
    if any(d > 1 for d in lhs_dilation):
        y = np.zeros(x.shape[:2] + _dilate(sp, lhs_dilation), x.dtype)
        y[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in lhs_dilation)] = x
        x = y
    grow = [(0, 0), (0, 0)] + [(max(lo, 0), max(hi, 0)) for lo, hi in padding]
    if any(p != (0, 0) for p in grow):
        x = np.pad(x, grow)
    crop = tuple(slice(-min(lo, 0), x.shape[2 + j] + min(hi, 0))
                 for j, (lo, hi) in enumerate(padding))
    return x[(slice(None), slice(None)) + crop]


def _conv_impl(lhs, rhs, **params):
    """NumPy: the windows of the padded lhs (a strided view) contracted with each group's kernel
    by tensordot (BLAS for floats)."""
    out_aval = _conv_aval(get_aval(lhs), get_aval(rhs), **params)
    dn = params["dimension_numbers"]
    dtype = out_aval.dtype
    x = np.transpose(lhs, dn.lhs_spec).astype(dtype, copy=False)
    w = np.transpose(rhs, dn.rhs_spec).astype(dtype, copy=False)
    out_t = tuple(out_aval.shape[j] for j in dn.out_spec)
    if 0 in out_t or 0 in w.shape[1:]:
        return np.zeros(out_aval.shape, dtype)
    groups, bgc = params["feature_group_count"], params["batch_group_count"]
    if bgc > 1:   # batch groups are feature groups of the lhs with its batch split off
        n, c = x.shape[:2]
        x = x.reshape((bgc, n // bgc, c) + x.shape[2:]).swapaxes(0, 1)
        x = x.reshape((n // bgc, bgc * c) + x.shape[3:])
        groups = bgc
    x = _dilate_and_pad(x, params["lhs_dilation"], params["padding"])
    k, rd, st = w.shape[2:], params["rhs_dilation"], params["window_strides"]
    nsp = len(k)
    win = np.lib.stride_tricks.sliding_window_view(x, _dilate(k, rd), axis=tuple(range(2, 2 + nsp)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in st)
              + tuple(slice(None, None, d) for d in rd)]
    cg, og = w.shape[1], w.shape[0] // groups
    red = [1] + list(range(2 + nsp, 2 + 2 * nsp))
    parts = [np.tensordot(win[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og], (red, red[:1] + list(range(2, 2 + nsp))))
             for g in range(groups)]
    out = np.concatenate(parts, axis=-1) if groups > 1 else parts[0]    # (N, spatial..., O)
    out = np.moveaxis(out, -1, 1)
    return np.ascontiguousarray(np.transpose(out, np.argsort(dn.out_spec)), dtype)


conv_general_dilated_p = primitive("conv_general_dilated", _conv_impl, _conv_aval)
core.complex_primitives.add(conv_general_dilated_p)   # bilinear: every rule holds for complex


def _int_tuple(v, what, n):
    if v is None:
        return (1,) * n
    try:
        out = tuple(operator.index(s) for s in v)
    except TypeError:
        raise TypeError(f"conv_general_dilated {what} must be a sequence of ints, got {v!r}") from None
    if len(out) != n:
        raise TypeError(f"conv_general_dilated {what} must have one entry per spatial dimension "
                        f"({n}), got {v!r}")
    return out


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
    """The general N-d convolution (XLA's Conv, as jax.lax documents it): returns the array of
    the cross-correlation of lhs with the kernel rhs. padding: 'SAME', 'SAME_LOWER', 'VALID' or
    (low, high) pairs per spatial dim (negative pads crop); lhs_dilation (transposed conv) and
    rhs_dilation (atrous conv) default to 1; dimension_numbers: None (NCHW/OIHW/NCHW-style), a
    ConvDimensionNumbers or three strings such as ('NHWC', 'HWIO', 'NHWC'), whose rhs spec
    orders the spatial dims that window_strides, padding and the dilations refer to."""
    la, ra = get_aval(lhs), get_aval(rhs)
    dn = conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    nsp = la.ndim - 2
    strides = _int_tuple(window_strides, "window_strides", nsp)
    ld = _int_tuple(lhs_dilation, "lhs_dilation", nsp)
    rd = _int_tuple(rhs_dilation, "rhs_dilation", nsp)
    if isinstance(padding, str):
        if any(d != 1 for d in ld):
            raise ValueError("String padding is not implemented for transposed convolution using "
                             "this op. Please either exactly specify the required padding or use "
                             "conv_transpose.")
        k = tuple(ra.shape[i] for i in dn.rhs_spec[2:])
        padding = padtype_to_pads(tuple(la.shape[i] for i in dn.lhs_spec[2:]), _dilate(k, rd),
                                  strides, padding)
    try:
        padding = tuple((operator.index(lo), operator.index(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        raise ValueError(f"padding argument to conv_general_dilated should be a string or a "
                         f"sequence of (low, high) pairs, got {padding!r}") from None
    pet = None if preferred_element_type is None else np.dtype(preferred_element_type)
    return conv_general_dilated_p.bind(
        lhs, rhs, window_strides=strides, padding=padding, lhs_dilation=ld, rhs_dilation=rd,
        dimension_numbers=dn, feature_group_count=operator.index(feature_group_count),
        batch_group_count=operator.index(batch_group_count),
        precision=canonicalize_precision(precision), preferred_element_type=pet)


def conv(lhs, rhs, window_strides, padding, precision=None, preferred_element_type=None):
    """conv_general_dilated with the default (N, C, spatial...) / (O, I, spatial...) layouts
    and no dilation: returns the convolution's array."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, precision=precision,
                                preferred_element_type=preferred_element_type)


def conv_with_general_padding(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                              precision=None, preferred_element_type=None):
    """conv_general_dilated with the default layouts and the given dilations: returns the
    convolution's array."""
    return conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                rhs_dilation=rhs_dilation, precision=precision,
                                preferred_element_type=preferred_element_type)


# ---------------------------------------------------------------------------------------------
# conv_transpose

def _conv_transpose_padding(k, s, padding):
    """(before, after) padding of a transposed conv's dilated input, for the 'SAME'/'VALID'
    padding of the forward conv it transposes (k: the dilated kernel size, s: the stride)."""
    if padding == "SAME":
        total = k + s - 2
        before = k - 1 if s > k - 1 else -(-total // 2)
    elif padding == "VALID":
        total = k + s - 2 + max(k - s, 0)
        before = k - 1
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:   # the forward conv's pair
        before, total = k - padding[0] - 1, 2 * k - padding[0] - padding[1] - 2
    else:
        raise ValueError(f"conv_transpose: padding mode must be 'SAME', 'VALID' or (low, high) "
                         f"pairs, got {padding!r}")
    return before, total - before


_TRANSPOSE_LAYOUTS = {2: ("NC", "IO", "NC"), 3: ("NHC", "HIO", "NHC"),
                      4: ("NHWC", "HWIO", "NHWC"), 5: ("NHWDC", "HWDIO", "NHWDC")}


def conv_transpose(lhs, rhs, strides, padding, rhs_dilation=None, dimension_numbers=None,
                   transpose_kernel=False, precision=None, preferred_element_type=None,
                   use_consistent_padding=False):
    """The N-d transposed ("fractionally strided") convolution, as jax.lax.conv_transpose:
    returns conv_general_dilated of lhs dilated by strides. dimension_numbers default to the
    TensorFlow layouts (NHWC, HWIO, NHWC for 2-d); 'SAME'/'VALID' name the padding of the
    forward conv, pairs are the transposed conv's own unless use_consistent_padding (then they
    are the forward conv's too, as in PyTorch); transpose_kernel flips the kernel's spatial
    dims and swaps its I and O dims (Keras's Conv2DTranspose)."""
    la, ra = get_aval(lhs), get_aval(rhs)
    if la.ndim != ra.ndim or la.ndim < 2:
        raise TypeError(f"conv_transpose: lhs and rhs must have the same number (at least 2) of "
                        f"dimensions, got shapes {la.shape} and {ra.shape}")
    if dimension_numbers is None:
        if la.ndim not in _TRANSPOSE_LAYOUTS:
            raise ValueError("conv_transpose: no default dimension_numbers for more than 3 "
                             "spatial dimensions")
        dimension_numbers = _TRANSPOSE_LAYOUTS[la.ndim]
    dn = conv_dimension_numbers(la.shape, ra.shape, dimension_numbers)
    nsp = la.ndim - 2
    rd = _int_tuple(rhs_dilation, "rhs_dilation", nsp)
    if isinstance(padding, str) or use_consistent_padding:
        k = _dilate(tuple(ra.shape[i] for i in dn.rhs_spec[2:]), rd)
        each = [padding] * nsp if isinstance(padding, str) else [tuple(p) for p in padding]
        padding = [_conv_transpose_padding(kk, s, p) for kk, s, p in zip(k, strides, each)]
    if transpose_kernel:
        rhs = rev(rhs, tuple(dn.rhs_spec[2:]))
        perm = list(range(ra.ndim))
        perm[dn.rhs_spec[0]], perm[dn.rhs_spec[1]] = perm[dn.rhs_spec[1]], perm[dn.rhs_spec[0]]
        rhs = transpose(rhs, tuple(perm))
    return conv_general_dilated(lhs, rhs, (1,) * nsp, padding, strides, rd, dn,
                                precision=precision, preferred_element_type=preferred_element_type)


# ---------------------------------------------------------------------------------------------
# Reshapes moving groups between axes (traceable)

def _split_major(x, axis, groups):
    """x with axis split into (groups, size // groups)."""
    sh = get_aval(x).shape
    return reshape(x, sh[:axis] + (groups, sh[axis] // groups) + sh[axis + 1:])


def _merge_next(x, axis):
    """x with axes axis and axis + 1 merged (axis the major one)."""
    sh = get_aval(x).shape
    return reshape(x, sh[:axis] + (sh[axis] * sh[axis + 1],) + sh[axis + 2:])


def _regroup(x, src, dst, groups):
    """x with the group part (major) of axis src moved into axis dst as its major part."""
    y = _split_major(x, src, groups)
    d = dst if dst < src else dst + 1          # dst's position in y
    d = d if d < src else d - 1                # ... once the group axis is taken out
    return _merge_next(moveaxis(y, src, d), d)


def _fold(x, bdim, axis, groups=1):
    """Fold the vmap axis bdim of x into axis (an axis of x without bdim): the new axis is
    indexed (group, vmap index, rest), so each of the axis's groups stays contiguous."""
    x = moveaxis(x, bdim, axis)                # (..., V, S, ...)
    if groups > 1:
        x = _split_major(x, axis + 1, groups)  # (..., V, G, S/G, ...)
        x = moveaxis(x, axis + 1, axis)        # (..., G, V, S/G, ...)
        x = _merge_next(x, axis)
    return _merge_next(x, axis)


def _unfold(x, axis, size, groups=1):
    """Undo _fold on an output: (x with a vmap axis of size at axis, that axis)."""
    if groups > 1:
        x = _split_major(x, axis, groups)      # (..., G, V*R, ...)
        x = _split_major(x, axis + 1, size)    # (..., G, V, R, ...)
        x = moveaxis(x, axis + 1, axis)        # (..., V, G, R, ...)
        return _merge_next(x, axis + 1), axis
    return _split_major(x, axis, size), axis


# ---------------------------------------------------------------------------------------------
# Transposes (the conv backprop) and batching

def _swap(spec):
    return (spec[1], spec[0]) + tuple(spec[2:])


def _as_dtype(x, dtype):
    return x if get_aval(x).dtype == dtype else convert_element_type(x, dtype)


def _dilated_extents(lhs_shape, rhs_shape, out_shape, dimension_numbers, window_strides,
                     padding, lhs_dilation, rhs_dilation):
    """Per spatial dim: (dilated kernel, dilated lhs, output dilated by the strides, low pad),
    the extents the two transposes pad the cotangent by."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    for d, (s, (lo, _), ld, rd) in enumerate(zip(window_strides, padding, lhs_dilation,
                                                  rhs_dilation)):
        yield (_dilate((rhs_shape[rhs_spec[2 + d]],), (rd,))[0],
               _dilate((lhs_shape[lhs_spec[2 + d]],), (ld,))[0],
               _dilate((out_shape[out_spec[2 + d]],), (s,))[0], lo)


def _conv_transpose_lhs(ct, lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
                        dimension_numbers, feature_group_count, batch_group_count, precision,
                        preferred_element_type):
    """d lhs: the cotangent, dilated by the strides, correlated with the flipped kernel whose
    I and O roles are swapped (groups moved from O into I)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    groups = max(feature_group_count, batch_group_count)
    w = get_aval(rhs)
    if groups > 1:
        rhs = _regroup(rhs, rhs_spec[0], rhs_spec[1], groups)
    pads = [(kd - 1 - lo, nd + lo - od) for kd, nd, od, lo in _dilated_extents(
        lhs.aval.shape, w.shape, get_aval(ct).shape, dimension_numbers, window_strides, padding,
        lhs_dilation, rhs_dilation)]
    out = conv_general_dilated_p.bind(
        _as_dtype(ct, w.dtype), rev(rhs, tuple(rhs_spec[2:])), window_strides=lhs_dilation,
        padding=tuple(pads), lhs_dilation=window_strides, rhs_dilation=rhs_dilation,
        dimension_numbers=ConvDimensionNumbers(out_spec, _swap(rhs_spec), lhs_spec),
        feature_group_count=groups, batch_group_count=1, precision=precision,
        preferred_element_type=None)
    if batch_group_count > 1:
        out = _regroup(out, lhs_spec[1], lhs_spec[0], batch_group_count)
    return _as_dtype(out, lhs.aval.dtype)


def _conv_transpose_rhs(ct, lhs, rhs, *, window_strides, padding, lhs_dilation, rhs_dilation,
                        dimension_numbers, feature_group_count, batch_group_count, precision,
                        preferred_element_type):
    """d rhs: lhs correlated with the cotangent (dilated by the strides) over the batch, the
    roles of batch and feature swapped (feature groups become batch groups and back)."""
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = get_aval(lhs)
    pads = [(lo, od - nd + kd - lo - 1) for kd, nd, od, lo in _dilated_extents(
        x.shape, rhs.aval.shape, get_aval(ct).shape, dimension_numbers, window_strides, padding,
        lhs_dilation, rhs_dilation)]
    out = conv_general_dilated_p.bind(
        lhs, _as_dtype(ct, x.dtype), window_strides=rhs_dilation, padding=tuple(pads),
        lhs_dilation=lhs_dilation, rhs_dilation=window_strides,
        dimension_numbers=ConvDimensionNumbers(_swap(lhs_spec), _swap(out_spec), _swap(rhs_spec)),
        feature_group_count=batch_group_count, batch_group_count=feature_group_count,
        precision=precision, preferred_element_type=None)
    return _as_dtype(out, rhs.aval.dtype)


defbilinear(conv_general_dilated_p, _conv_transpose_lhs, _conv_transpose_rhs)


def _conv_batch(vals, dims, **params):
    """vmap folds the batch into the lhs batch (lhs batched), the rhs out features (rhs
    batched) or, both batched, into feature (or batch) groups, one group per batch entry."""
    (lhs, rhs), (dl, dr) = vals, dims
    lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
    fgc, bgc = params["feature_group_count"], params["batch_group_count"]
    bind = conv_general_dilated_p.bind
    if dl is not not_mapped and dr is not not_mapped:
        size = get_aval(lhs).shape[dl]
        if bgc > 1:
            lhs = _fold(lhs, dl, lhs_spec[0])
            params = dict(params, batch_group_count=bgc * size)
        else:
            lhs = _fold(lhs, dl, lhs_spec[1])
            params = dict(params, feature_group_count=fgc * size)
        return _unfold(bind(lhs, _fold(rhs, dr, rhs_spec[0]), **params), out_spec[1], size)
    if dl is not not_mapped:
        size = get_aval(lhs).shape[dl]
        return _unfold(bind(_fold(lhs, dl, lhs_spec[0], bgc), rhs, **params), out_spec[0], size)
    size, groups = get_aval(rhs).shape[dr], max(fgc, bgc)
    out = bind(lhs, _fold(rhs, dr, rhs_spec[0], groups), **params)
    return _unfold(out, out_spec[1], size, groups)


batch_rules[conv_general_dilated_p] = _conv_batch
