"""functrans.random: a counter-based functional PRNG (Threefry-2x32, as in JAX).

A key is a uint32 array of shape (2,). Every function is a pure function of its key, written
in lax ops, so it works under jit, vmap (e.g. over a batch of keys from ``split``), and grad
(random draws carry no derivative with respect to the key). The same key always gives the same
numbers; ``split`` derives keys whose streams are statistically independent.
"""
from __future__ import annotations

import math

import numpy as np

from . import core
from .core import get_aval
from .lax import lax, slicing

__all__ = ["PRNGKey", "key", "split", "fold_in", "bits", "uniform", "normal", "bernoulli",
           "randint", "permutation", "choice"]

_U32, _U64 = np.dtype(np.uint32), np.dtype(np.uint64)
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_KS_PARITY = 0x1BD11BDA


# ---------------------------------------------------------------------------------------------
# The Threefry-2x32 block cipher on uint32 arrays

def _u32(x, value):
    """A uint32 constant with x's shape."""
    return lax.full(get_aval(x).shape, value, _U32)


def _rotl(x, r):
    """Rotate the bits of a uint32 array left by r (a static int)."""
    return lax.bitwise_or(lax.shift_left(x, _u32(x, r)), lax.shift_right_logical(x, _u32(x, 32 - r)))


def _threefry2x32(k0, k1, x0, x1):
    """Encrypt the counter pairs (x0, x1) (uint32 arrays of one shape) under the key words
    (k0, k1) (uint32 scalars): 20 rounds with a key injection every 4, as in Random123."""
    shape = get_aval(x0).shape
    ks = [lax.broadcast_in_dim(k, shape, ()) for k in
          (k0, k1, lax.bitwise_xor(lax.bitwise_xor(k0, k1), np.asarray(_KS_PARITY, _U32)))]
    x0, x1 = lax.add(x0, ks[0]), lax.add(x1, ks[1])
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = lax.add(x0, x1)
            x1 = lax.bitwise_xor(_rotl(x1, r), x0)
        x0 = lax.add(x0, ks[(i + 1) % 3])
        x1 = lax.add(lax.add(x1, ks[(i + 2) % 3]), _u32(x1, i + 1))
    return x0, x1


def _key_words(key):
    """The two uint32 scalars of a key, after checking it is one."""
    a = get_aval(key)
    if a.shape != (2,) or a.dtype != _U32:
        raise TypeError(f"functrans.random expects a PRNG key: a uint32 array of shape (2,) as made "
                        f"by random.PRNGKey or random.split, got {a.str_short()}")
    return (lax.reshape(slicing.slice(key, (i,), (i + 1,)), ()) for i in range(2))


def _random_bits32(key, n):
    """n pseudo-random uint32 words: the cipher applied to the counters 0..n-1 (split in halves
    as the two words of each block, as JAX does)."""
    k0, k1 = _key_words(key)
    half = (n + 1) // 2
    counts = lax.iota(_U32, 2 * half)
    x0 = slicing.slice(counts, (0,), (half,))
    x1 = slicing.slice(counts, (half,), (2 * half,))
    y0, y1 = _threefry2x32(k0, k1, x0, x1)
    out = slicing.concatenate([y0, y1], 0)
    return out if n == 2 * half else slicing.slice(out, (0,), (n,))


def _check_shape(shape, name):
    try:
        shape = (int(shape),) if np.ndim(shape) == 0 and not isinstance(shape, tuple) else tuple(int(d) for d in shape)
    except TypeError:
        raise TypeError(f"random.{name}: shape must be a tuple of ints, got {shape!r}") from None
    if any(d < 0 for d in shape):
        raise ValueError(f"random.{name}: negative dimension in shape {shape}")
    return shape


def bits(key, shape=(), dtype=np.uint32):
    """Uniformly random unsigned integers of the given shape (dtype uint32 or uint64)."""
    shape, dtype = _check_shape(shape, "bits"), core.canonicalize_dtype(dtype)
    n = math.prod(shape)
    if dtype == _U32:
        return lax.reshape(_random_bits32(key, n), shape)
    if dtype != _U64:
        raise TypeError(f"random.bits supports uint32 and uint64, got {dtype.name}")
    words = _random_bits32(key, 2 * n)
    hi = lax.convert_element_type(slicing.slice(words, (0,), (n,)), _U64)
    lo = lax.convert_element_type(slicing.slice(words, (n,), (2 * n,)), _U64)
    word = lax.bitwise_or(lax.shift_left(hi, lax.full((n,), 32, _U64)), lo)
    return lax.reshape(word, shape)


# ---------------------------------------------------------------------------------------------
# Keys

def PRNGKey(seed):
    """A key (uint32 array of shape (2,)) from an integer seed: [high 32 bits, low 32 bits]."""
    if isinstance(seed, (int, np.integer)) and not -2**63 <= int(seed) < 2**64:
        raise OverflowError(f"PRNGKey seed {seed} does not fit in 64 bits")
    if isinstance(seed, int) and seed >= 2**63:     # a uint64 seed: its bits, as an int64
        seed = np.uint64(seed).astype(np.int64)
    if isinstance(seed, (float, np.floating)) or get_aval(core.as_array(seed)).dtype.kind not in "iub":
        raise TypeError(f"PRNGKey seed must be an integer, got {seed!r}")
    s = core.as_array(seed)
    if get_aval(s).shape != ():
        raise TypeError(f"PRNGKey seed must be a scalar, got shape {get_aval(s).shape}")
    s = lax.convert_element_type(s, np.int64)
    hi = lax.convert_element_type(lax.shift_right_logical(s, np.asarray(32, np.int64)), _U32)
    lo = lax.convert_element_type(lax.bitwise_and(s, np.asarray(0xFFFFFFFF, np.int64)), _U32)
    return slicing.concatenate([lax.reshape(hi, (1,)), lax.reshape(lo, (1,))], 0)


key = PRNGKey


def split(key, num=2):
    """num new keys derived from key, as an array of shape (num, 2)."""
    num = int(num)
    if num < 0:
        raise ValueError(f"random.split: num must be non-negative, got {num}")
    return lax.reshape(_random_bits32(key, 2 * num), (num, 2))


def fold_in(key, data):
    """A new key derived from key and the integer data (e.g. a step or example index)."""
    k0, k1 = _key_words(key)
    d0, d1 = _key_words(PRNGKey(data))
    y0, y1 = _threefry2x32(k0, k1, lax.reshape(d0, (1,)), lax.reshape(d1, (1,)))
    return slicing.concatenate([y0, y1], 0)


# ---------------------------------------------------------------------------------------------
# Continuous distributions

def _float_dtype(dtype, name):
    dtype = core.canonicalize_dtype(dtype)
    if dtype not in core.NARROW_FLOATS and (dtype.kind != "f" or dtype.itemsize not in (4, 8)):
        raise TypeError(f"random.{name} requires a float16, bfloat16, float32 or float64 dtype, "
                        f"got {dtype.name}")
    return dtype


def _unit_floats(key, shape, dtype):
    """Uniform floats in [0, 1) on the grid k * 2**-mantissa_bits (exact in dtype)."""
    mant = np.finfo(dtype).nmant + 1
    word = bits(key, shape, _U64 if dtype.itemsize == 8 else _U32)
    wbits = 8 * get_aval(word).dtype.itemsize
    top = lax.shift_right_logical(word, lax.full(shape, wbits - mant, get_aval(word).dtype))
    # 16-bit floats: k * 2**-mant is exact in float32 and in the narrow type alike
    wide = np.dtype(np.float32) if dtype in core.NARROW_FLOATS else dtype
    unit = lax.mul(lax.convert_element_type(top, wide), lax.full(shape, 2.0 ** -mant, wide))
    return lax.convert_element_type(unit, dtype)


def _scalar_like(v, shape, dtype, name):
    """v (a scalar or an array broadcastable to shape) broadcast to shape as dtype."""
    v = core.as_array(v)
    a = get_aval(v)
    if a.ndim > len(shape) or any(d not in (1, s) for d, s in zip(a.shape[::-1], shape[::-1])):
        raise ValueError(f"random.{name}: argument of shape {a.shape} does not broadcast to the "
                         f"requested shape {shape}")
    v = lax.convert_element_type(v, dtype)
    keep = [i for i, d in enumerate(a.shape) if d != 1 or shape[len(shape) - a.ndim + i] == 1]
    v = lax.reshape(v, tuple(a.shape[i] for i in keep))
    return lax.broadcast_in_dim(v, shape, tuple(len(shape) - a.ndim + i for i in keep))


def uniform(key, shape=(), dtype=np.float64, minval=0.0, maxval=1.0):
    """Floats drawn uniformly from [minval, maxval) with the given shape and dtype."""
    shape, dtype = _check_shape(shape, "uniform"), _float_dtype(dtype, "uniform")
    lo, hi = _scalar_like(minval, shape, dtype, "uniform"), _scalar_like(maxval, shape, dtype, "uniform")
    u = _unit_floats(key, shape, dtype)
    return lax.max(lo, lax.add(lax.mul(u, lax.sub(hi, lo)), lo))


def normal(key, shape=(), dtype=np.float64):
    """Standard normal floats of the given shape and dtype (Box-Muller on two uniform streams)."""
    shape, dtype = _check_shape(shape, "normal"), _float_dtype(dtype, "normal")
    u = _unit_floats(key, (2,) + shape, dtype)
    n = math.prod(shape)
    flat = lax.reshape(u, (2 * n,))
    u1 = lax.reshape(slicing.slice(flat, (0,), (n,)), shape)
    u2 = lax.reshape(slicing.slice(flat, (n,), (2 * n,)), shape)
    one = lax.full(shape, 1.0, dtype)
    radius = lax.sqrt(lax.mul(lax.full(shape, -2.0, dtype), lax.log(lax.sub(one, u1))))  # 1-u1 in (0, 1]
    return lax.mul(radius, lax.cos(lax.mul(lax.full(shape, 2 * np.pi, dtype), u2)))


def bernoulli(key, p=0.5, shape=None):
    """Booleans that are True with probability p (p broadcast to shape; shape defaults to p's)."""
    p = core.as_array(p)
    shape = get_aval(p).shape if shape is None else _check_shape(shape, "bernoulli")
    dtype = get_aval(p).dtype if get_aval(p).dtype.kind == "f" else np.dtype(np.float64)
    return lax.lt(uniform(key, shape, dtype), _scalar_like(p, shape, dtype, "bernoulli"))


# ---------------------------------------------------------------------------------------------
# Integers, permutations and choices

def randint(key, shape, minval, maxval, dtype=np.int64):
    """Integers drawn uniformly from [minval, maxval) (64 random bits per draw, so the modulo
    bias is below 2**-32 for spans under 2**32)."""
    shape, dtype = _check_shape(shape, "randint"), np.dtype(dtype)
    if dtype.kind not in "iu":
        raise TypeError(f"random.randint requires an integer dtype, got {dtype.name}")
    lo = _scalar_like(minval, shape, np.int64, "randint")
    hi = _scalar_like(maxval, shape, np.int64, "randint")
    span = lax.convert_element_type(lax.max(lax.sub(hi, lo), lax.full(shape, 1, np.int64)), _U64)
    offset = lax.convert_element_type(lax.rem(bits(key, shape, _U64), span), np.int64)
    return lax.convert_element_type(lax.add(lo, offset), dtype)


def _argsort(x):
    """The permutation sorting the 1-d array x (ascending, stable)."""
    return slicing.argsort(x, 0)


def _take(x, idx, axis):
    """x gathered at the integer array idx along axis (idx's shape replaces that axis)."""
    ia = get_aval(idx)
    out = slicing.gather(x, lax.reshape(idx, ia.shape + (1,)), (axis,))
    k, rest = ia.ndim, get_aval(x).ndim - 1  # out dims: idx dims, then x's other dims in order
    perm = tuple(range(k, k + axis)) + tuple(range(k)) + tuple(range(k + axis, k + rest))
    return lax.transpose(out, perm)


def _as_index_count(x, name):
    """(n, None) if x is an integer count, else (x.shape[axis], x) for an array."""
    if isinstance(x, (int, np.integer)) or (isinstance(x, (np.ndarray, core.Array)) and x.ndim == 0
                                            and x.dtype.kind in "iu"):
        n = int(x)
        if n < 0:
            raise ValueError(f"random.{name}: the population size must be non-negative, got {n}")
        return n, None
    x = core.as_array(x)
    if get_aval(x).ndim == 0:
        raise ValueError(f"random.{name}: expected an integer or an array with at least one "
                         f"dimension, got a 0-d {get_aval(x).dtype.name} value")
    return None, x


def _population(x, axis, name):
    """(size, array or None, non-negative axis) of an integer or array population."""
    n, arr = _as_index_count(x, name)
    if arr is None:
        return n, None, axis
    nd = get_aval(arr).ndim
    if not -nd <= axis < nd:
        raise ValueError(f"random.{name}: axis {axis} is out of range for shape "
                         f"{get_aval(arr).shape}")
    return get_aval(arr).shape[axis % nd], arr, axis % nd


def permutation(key, x, axis=0):
    """A random permutation of range(x) (int64) for an integer x, or of the array x shuffled
    along axis."""
    n, arr, axis = _population(x, axis, "permutation")
    perm = _argsort(bits(key, (n,), _U64))
    return perm if arr is None else _take(arr, perm, axis)


def choice(key, a, shape=(), replace=True, p=None, axis=0):
    """Samples from range(a) (int64) for an integer a, or from the entries of the array a along
    axis; with probabilities p (uniform if None); without repetition if replace is False."""
    shape = _check_shape(shape, "choice")
    n, arr, axis = _population(a, axis, "choice")
    k = math.prod(shape)
    if not replace and k > n:
        raise ValueError(f"random.choice: cannot take a larger sample ({k}) than the population "
                         f"({n}) when replace=False")
    if n == 0 and k > 0:
        raise ValueError("random.choice: cannot sample from an empty population")
    if p is not None:
        p = core.as_array(p)
        if get_aval(p).shape != (n,):
            raise ValueError(f"random.choice: p must have shape ({n},) to match the population, "
                             f"got {get_aval(p).shape}")
    if replace:
        idx = randint(key, shape, 0, n) if p is None else _inverse_cdf(key, p, shape)
    else:
        order = _argsort(bits(key, (n,), _U64)) if p is None else _gumbel_order(key, p)
        idx = lax.reshape(slicing.slice(order, (0,), (k,)), shape)
    return idx if arr is None else _take(arr, idx, axis)


def _inverse_cdf(key, p, shape):
    """Indices distributed by the weights p: the number of cdf entries below a uniform draw."""
    n = get_aval(p).shape[0]
    dtype = get_aval(p).dtype if get_aval(p).dtype.kind == "f" else np.dtype(np.float64)
    cdf = lax.cumsum(lax.convert_element_type(p, dtype), 0)
    total = lax.reshape(slicing.slice(cdf, (n - 1,), (n,)), ())
    u = lax.mul(uniform(key, shape, dtype), lax.broadcast_in_dim(total, shape, ()))
    full = shape + (n,)
    below = lax.le(lax.broadcast_in_dim(cdf, full, (len(shape),)),
                   lax.broadcast_in_dim(u, full, tuple(range(len(shape)))))
    idx = lax.reduce_sum(lax.convert_element_type(below, np.int64), (len(shape),))
    return lax.min(idx, lax.full(shape, n - 1, np.int64))  # guards rounding at the top of the cdf


def _gumbel_order(key, p):
    """Indices ordered by log(p) + Gumbel noise, descending: a prefix of length k is a weighted
    sample without replacement."""
    n = get_aval(p).shape[0]
    dtype = get_aval(p).dtype if get_aval(p).dtype.kind == "f" else np.dtype(np.float64)
    u = _unit_floats(key, (n,), dtype)
    one = lax.full((n,), 1.0, dtype)
    gumbel = lax.neg(lax.log(lax.neg(lax.log(lax.sub(one, u)))))  # -log(-log(U)), U in (0, 1]
    p = lax.convert_element_type(p, dtype)
    positive = lax.gt(p, lax.full((n,), 0, dtype))
    log_p = lax.select(positive, lax.log(lax.select(positive, p, one)), lax.full((n,), -np.inf, dtype))
    score = lax.add(log_p, gumbel)  # zero weights score -inf: never drawn
    return _argsort(lax.neg(score))
