"""functrans.nn: activation functions and softmax-family helpers, numerically stable in value
and in every derivative (as jax.nn).

Stability devices: a stop-gradient'ed running maximum in logsumexp/softmax/log_softmax (the
functions are shift-invariant, so cutting the gradient through the shift is exact and avoids
overflow for logits of magnitude 1e4); ``lax.logistic`` for sigmoid; softplus as
``max(x, 0) + log1p(exp(-|x|))``; the double-``where`` pattern where one branch would overflow
(elu), so that the unused branch never produces inf * 0 = NaN in a gradient.

Conventions at kinks (as JAX): relu'(0) = 0, leaky_relu and elu take the x >= 0 / x > 0
branches as JAX does. ``one_hot`` returns float64 by default (functrans dtypes follow NumPy; JAX
uses its default float, float32).
"""
from __future__ import annotations

import math

import numpy as np

from . import lax
from . import numpy as jnp
from .numpy import _base as jnp_base

__all__ = ["relu", "relu6", "sigmoid", "log_sigmoid", "softplus", "gelu", "silu", "swish", "elu",
           "leaky_relu", "tanh", "softmax", "log_softmax", "logsumexp", "one_hot"]


def _float_operand(x, name):
    x = jnp.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"nn.{name} requires a floating-point input, got dtype {x.dtype} "
                        f"(convert it with .astype(float))")
    return x


def _as_dtype_of(ufunc, x, scalar):
    """x as an array of the dtype ufunc(x, scalar) has (NEP 50: bool -> int, int stays)."""
    x = jnp.asarray(x)
    return jnp_base.cast(x, jnp_base.oracle_dtype(ufunc, x, scalar))


def relu(x):
    """max(x, 0) elementwise (NaN stays NaN), with derivative 0 at x == 0 (as JAX). A select
    rather than JAX's custom_jvp of max: the same values and derivatives, except that the
    derivative at a NaN input is 1 here (0 in JAX), for a third of the eager cost."""
    x = _as_dtype_of(np.maximum, x, 0)
    zero = lax.full_like(x, 0)
    return lax.select(lax.le(x, zero), zero, x)


def relu6(x):
    """min(max(x, 0), 6) elementwise (NaN stays NaN), with derivative 0 at both kinks."""
    x = _as_dtype_of(np.minimum, _as_dtype_of(np.maximum, x, 0), 6.0)
    zero, six = lax.full_like(x, 0), lax.full_like(x, 6)
    return lax.select(lax.le(x, zero), zero, lax.select(lax.ge(x, six), six, x))


def sigmoid(x):
    """The logistic function 1 / (1 + exp(-x)), computed without overflow."""
    return lax.logistic(_float_operand(x, "sigmoid"))


def softplus(x):
    """log(1 + exp(x)), computed as max(x, 0) + log1p(exp(-|x|)): finite for |x| of 1e4 and
    more, with derivative sigmoid(x) everywhere (0.5 at 0)."""
    x = _float_operand(x, "softplus")
    # x >= 0 takes the same side at 0 as abs'(0) = 1, so the two kinks cancel exactly
    return jnp.where(x >= 0, x, jnp.zeros_like(x)) + jnp.log1p(jnp.exp(-jnp.abs(x)))


def log_sigmoid(x):
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -softplus(-_float_operand(x, "log_sigmoid"))


def gelu(x, approximate=True):
    """The Gaussian error linear unit x * Phi(x): with approximate=True (the default, as JAX)
    the tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), else the exact
    form 0.5 x (1 + erf(x / sqrt(2)))."""
    x = _float_operand(x, "gelu")
    if approximate:
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))
        return 0.5 * x * (1 + jnp.tanh(inner))
    return 0.5 * x * (1 + lax.erf(x * (1 / math.sqrt(2))))


def silu(x):
    """x * sigmoid(x) (also called swish)."""
    x = _float_operand(x, "silu")
    return x * sigmoid(x)


swish = silu


def elu(x, alpha=1.0):
    """x for x > 0, alpha * (exp(x) - 1) otherwise. The exponential only ever sees x <= 0 (the
    double-where trick), so large positive x gives no inf and no NaN gradient."""
    x = _float_operand(x, "elu")
    positive = x > 0
    safe_x = jnp.where(positive, jnp.zeros_like(x), x)
    return jnp.where(positive, x, alpha * jnp.expm1(safe_x))


def leaky_relu(x, negative_slope=0.01):
    """x for x >= 0, negative_slope * x otherwise (derivative 1 at 0, as JAX)."""
    x = _float_operand(x, "leaky_relu")
    return jnp.where(x >= 0, x, negative_slope * x)


def tanh(x):
    """The hyperbolic tangent, elementwise."""
    return jnp.tanh(x)


def _axes_tuple(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % ndim if ndim else 0 for a in axes)


def _shifted(x, axes):
    """(x - shift, shift, expand): the shift is the max of x over axes (0 where not finite),
    with no gradient (cut before the max, so that no transform differentiates it only to drop
    the result); expand broadcasts a value reduced over axes back to x's shape. In lax
    directly: softmax sits in every classifier's loss, and the jnp layer's promotion and
    broadcasting checks would double its eager cost."""
    kept = tuple(i for i in range(x.ndim) if i not in axes)

    def expand(r):
        return lax.broadcast_in_dim(r, x.shape, kept)
    m = lax.reduce_max(lax.stop_gradient(x), axes)
    m = lax.select(lax.is_finite(m), m, lax.full_like(m, 0))
    return lax.sub(x, expand(m)), m, expand


def logsumexp(a, axis=None, b=None, keepdims=False):
    """log(sum(b * exp(a))) over ``axis`` (all axes by default), computed stably: finite for
    logits of magnitude 1e4, -inf entries contribute nothing (and get zero gradient), and the
    result is -inf when every entry is -inf. ``b`` (optional) are non-negative weights
    broadcastable to a."""
    a = _float_operand(a, "logsumexp")
    axes = _axes_tuple(axis, a.ndim)
    shifted, shift, _ = _shifted(a, axes)
    e = jnp.exp(shifted)
    if b is not None:
        e = e * jnp.asarray(b)
    total = jnp.sum(e, axis=axes)
    positive = total > 0  # all -inf (or zero weights): -inf, without log(0)'s warning or NaN grad
    out = jnp.where(positive, jnp.log(jnp.where(positive, total, 1)), -jnp.inf) + shift
    return jnp.expand_dims(out, axes) if keepdims else out


def softmax(x, axis=-1):
    """exp(x) / sum(exp(x)) along axis, computed stably (Jacobian diag(y) - y y^T)."""
    x = _float_operand(x, "softmax")
    axes = _axes_tuple(axis, x.ndim)
    shifted, _, expand = _shifted(x, axes)
    unnormalized = lax.exp(shifted)
    return lax.div(unnormalized, expand(lax.reduce_sum(unnormalized, axes)))


def log_softmax(x, axis=-1):
    """x - logsumexp(x) along axis, computed stably; -inf entries stay -inf with finite
    gradients elsewhere."""
    x = _float_operand(x, "log_softmax")
    axes = _axes_tuple(axis, x.ndim)
    shifted, _, expand = _shifted(x, axes)
    return lax.sub(shifted, expand(lax.log(lax.reduce_sum(lax.exp(shifted), axes))))


def one_hot(x, num_classes, dtype=np.float64, axis=-1):
    """One-hot encoding of integer labels x: a new axis of size num_classes at ``axis``, 1 at
    the label and 0 elsewhere; out-of-range labels give an all-zero row. The default dtype is
    float64 (NumPy's default float)."""
    x = jnp.asarray(x)
    num_classes = int(num_classes)
    out_ndim = x.ndim + 1
    if not -out_ndim <= axis < out_ndim:
        raise ValueError(f"nn.one_hot: axis {axis} out of range for an output of rank {out_ndim}")
    axis %= out_ndim
    classes = jnp.arange(num_classes).reshape((num_classes,) + (1,) * (out_ndim - axis - 1))
    return (jnp.expand_dims(x, axis) == classes).astype(dtype)
