"""functrans.nn: activation functions and softmax-family helpers, numerically stable in value
and in every derivative (as jax.nn).

Stability devices: a stop-gradient'ed running maximum in logsumexp/softmax/log_softmax (the
functions are shift-invariant, so cutting the gradient through the shift is exact and avoids
overflow for logits of magnitude 1e4); ``lax.logistic`` for sigmoid; softplus as
``max(x, 0) + log1p(exp(-|x|))``; the double-``where`` pattern where one branch would overflow
(elu), so that the unused branch never produces inf * 0 = NaN in a gradient.

Conventions at kinks (as JAX): relu'(0) = relu'(NaN) = 0, leaky_relu and elu take the x >= 0 /
x > 0 branches as JAX does. NaN, +-inf and the other special values give what JAX gives, in value
and derivative (docs/nonfinite.md; a +inf logit makes its softmax slice NaN). ``one_hot``
returns float64 by default (functrans dtypes follow NumPy; JAX uses its default float, float32).
"""
from __future__ import annotations

import math

import numpy as np

from . import core, lax
from . import numpy as jnp
from .numpy import _base as jnp_base
from .numpy._special import logsumexp as jnp_logsumexp

__all__ = ["relu", "relu6", "sigmoid", "log_sigmoid", "softplus", "gelu", "silu", "swish", "elu",
           "celu", "selu", "leaky_relu", "tanh", "softmax", "log_softmax", "logsumexp", "one_hot"]


def _float_operand(x, name):
    x = jnp.asarray(x)
    if core.dtype_kind(x.dtype) != "f":
        raise TypeError(f"nn.{name} requires a floating-point input, got dtype {x.dtype} "
                        f"(convert it with .astype(float))")
    return x


def _as_dtype_of(ufunc, x, scalar):
    """x as an array of the dtype ufunc(x, scalar) has (NEP 50: bool -> int, int stays)."""
    x = jnp.asarray(x)
    return jnp_base.cast(x, jnp_base.oracle_dtype(ufunc, x, scalar))


def _clamped(x, lo, hi=None):
    """clip(x, lo, hi) with derivative 1 strictly between the bounds and 0 elsewhere, NaN
    included (as the custom JVPs of jax.nn.relu and relu6). Eagerly, with no transform to
    serve, just max/min (one pass; NaN stays NaN). Otherwise x where it is inside, else the
    clip of stop_gradient(x), which keeps a NaN a NaN with no derivative."""
    lo_ = lax.full_like(x, lo)
    if type(core.current_trace()) is core.EvalTrace:
        out = lax.max(x, lo_)
        return out if hi is None else lax.min(out, lax.full_like(x, hi))
    inside = lax.gt(x, lo_)
    clipped = lax.max(lax.stop_gradient_p.bind(x), lo_)
    if hi is not None:
        hi_ = lax.full_like(x, hi)
        inside = lax.bitwise_and(inside, lax.lt(x, hi_))
        clipped = lax.min(clipped, hi_)
    return lax.select(inside, x, clipped)


def relu(x):
    """max(x, 0) elementwise (NaN stays NaN), with derivative 0 at x == 0 and at NaN (as
    JAX)."""
    return _clamped(_as_dtype_of(np.maximum, x, 0), 0)


def relu6(x):
    """min(max(x, 0), 6) elementwise (NaN stays NaN), with derivative 0 at both kinks and at
    NaN (as JAX)."""
    return _clamped(_as_dtype_of(np.minimum, _as_dtype_of(np.maximum, x, 0), 6.0), 0, 6)


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


def celu(x, alpha=1.0):
    """The continuously differentiable ELU: max(x, 0) + alpha * expm1(min(x, 0) / alpha), as
    JAX (derivative 1 at 0)."""
    x = _float_operand(x, "celu")
    zero = jnp.zeros_like(x)
    return jnp.maximum(x, zero) + alpha * jnp.expm1(jnp.minimum(x, zero) / alpha)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x):
    """The scaled ELU: scale * elu(x, alpha) with the self-normalising constants of
    Klambauer et al. (scale 1.0507..., alpha 1.6732...), as JAX."""
    return _SELU_SCALE * elu(_float_operand(x, "selu"), _SELU_ALPHA)


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


def _shifted(x, axes, where):
    """(x - max(x), expand, mask) over axes, the max taken of stop_gradient(x) (the softmax
    family is shift-invariant, so cutting the gradient of the shift is exact, and no transform
    differentiates a max only to drop the result). As JAX, the shift is the max as it is: a
    +inf (or NaN) entry makes the whole slice NaN. ``where`` (optional, broadcastable to x)
    masks entries out as -inf; mask is it broadcast, or None. expand broadcasts a value reduced
    over axes back to x's shape. In lax directly: softmax sits in every classifier's loss, and
    the jnp layer's promotion and broadcasting checks would double its eager cost."""
    kept = tuple(i for i in range(x.ndim) if i not in axes)

    def expand(r):
        return lax.broadcast_in_dim(r, x.shape, kept)
    mask = None
    if where is not None:
        mask = jnp.broadcast_to(jnp.asarray(where, dtype=bool), x.shape)
        x = lax.select(mask, x, lax.full_like(x, -np.inf))
    m = lax.reduce_max(lax.stop_gradient_p.bind(x), axes)
    return lax.sub(x, expand(m)), expand, mask


def _sum_exp(shifted, axes, mask):
    """sum(exp(shifted)) over axes, of the entries the mask keeps; (exp(shifted), the sum)."""
    e = lax.exp(shifted)
    kept = e if mask is None else lax.select(mask, e, lax.full_like(e, 0))
    return e, lax.reduce_sum(kept, axes)


def _masked(out, mask, fill):
    return out if mask is None else lax.select(mask, out, lax.full_like(out, fill))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, where=None):
    """log(sum(b * exp(a))) over ``axis``: the same function as
    ``functrans.scipy.special.logsumexp`` (as in JAX)."""
    return jnp_logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign,
                         where=where)


def softmax(x, axis=-1, where=None):
    """exp(x) / sum(exp(x)) along axis, computed stably (Jacobian diag(y) - y y^T). As JAX, a
    +inf or NaN entry makes its slice all NaN; entries masked out by ``where`` are 0."""
    x = _float_operand(x, "softmax")
    axes = _axes_tuple(axis, x.ndim)
    shifted, expand, mask = _shifted(x, axes, where)
    e, total = _sum_exp(shifted, axes, mask)
    return _masked(lax.div(e, expand(total)), mask, 0)


def log_softmax(x, axis=-1, where=None):
    """x - logsumexp(x) along axis, computed stably; -inf entries stay -inf with finite
    gradients elsewhere. As JAX, a +inf or NaN entry makes its slice all NaN; entries masked
    out by ``where`` are -inf."""
    x = _float_operand(x, "log_softmax")
    axes = _axes_tuple(axis, x.ndim)
    shifted, expand, mask = _shifted(x, axes, where)
    _, total = _sum_exp(shifted, axes, mask)
    return _masked(lax.sub(shifted, expand(lax.log(total))), mask, -np.inf)


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
