"""optax's optimizers: chains of the building blocks in _transforms."""
from __future__ import annotations

from .. import numpy as jnp
from ._base import chain, identity
from ._transforms import (add_decayed_weights, clip_by_block_rms, ema, scale,
                          scale_by_adam, scale_by_factored_rms, scale_by_learning_rate,
                          scale_by_lion, scale_by_param_block_rms, scale_by_rms, scale_by_rss,
                          scale_by_stddev, scale_by_trust_ratio, trace)


def sgd(learning_rate, momentum=None, nesterov=False, accumulator_dtype=None):
    """SGD: ``p -= lr * g``; with momentum ``t = g + momentum t``, ``p -= lr * t`` (``lr * (g +
    momentum t)`` with nesterov)."""
    return chain(trace(momentum, nesterov, accumulator_dtype) if momentum is not None
                 else identity(), scale_by_learning_rate(learning_rate))


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *,
         nesterov=False):
    """Adam: ``p -= lr * mu_hat / (sqrt(nu_hat + eps_root) + eps)`` (see scale_by_adam)."""
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 scale_by_learning_rate(learning_rate))


def nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None):
    """NAdam: Adam with Nesterov momentum in the first moment."""
    return adam(learning_rate, b1, b2, eps, eps_root, mu_dtype, nesterov=True)


def adamw(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None,
          weight_decay=1e-4, mask=None, *, nesterov=False):
    """AdamW: ``p -= lr * (adam_update + weight_decay * p)`` (decay only where mask is True)."""
    return chain(scale_by_adam(b1, b2, eps, eps_root, mu_dtype, nesterov=nesterov),
                 add_decayed_weights(weight_decay, mask), scale_by_learning_rate(learning_rate))


def lamb(learning_rate, b1=0.9, b2=0.999, eps=1e-6, eps_root=0.0, weight_decay=0.0, mask=None):
    """LAMB: the AdamW direction ``r = adam_update + weight_decay * p`` rescaled per leaf by
    ``|p| / |r|``, then ``p -= lr * that``."""
    return chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay, mask),
                 scale_by_trust_ratio(), scale_by_learning_rate(learning_rate))


def lion(learning_rate, b1=0.9, b2=0.99, mu_dtype=None, weight_decay=1e-3, mask=None):
    """Lion: ``p -= lr * (sign(b1 mu + (1-b1) g) + weight_decay * p)``, ``mu = b2 mu + (1-b2) g``."""
    return chain(scale_by_lion(b1, b2, mu_dtype), add_decayed_weights(weight_decay, mask),
                 scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
            centered=False, momentum=None, nesterov=False):
    """RMSProp: ``p -= lr * g / sqrt(nu + eps)`` (``nu - mu^2`` when centered), then momentum
    ``t = that + momentum t`` when momentum is given."""
    rescale = (scale_by_stddev if centered else scale_by_rms)(decay, eps, initial_scale,
                                                              eps_in_sqrt)
    return chain(rescale, scale_by_learning_rate(learning_rate),
                 trace(momentum, nesterov) if momentum is not None else identity())


def adagrad(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
    """Adagrad: ``s += g^2``, ``p -= lr * g / sqrt(s + eps)``."""
    return chain(scale_by_rss(initial_accumulator_value, eps),
                 scale_by_learning_rate(learning_rate))


def adafactor(learning_rate=None, min_dim_size_to_factor=128, decay_rate=0.8, decay_offset=0,
              multiply_by_parameter_scale=True, clipping_threshold=1.0, momentum=None,
              dtype_momentum=jnp.float32, weight_decay_rate=None, eps=1e-30, factored=True,
              weight_decay_mask=None):
    """Adafactor: factored second-moment rescaling, update clipping by block RMS, optional
    learning rate, scaling by the parameters' RMS, optional momentum and weight decay, then a
    sign flip (see docs/optim.md for the formula)."""
    txs = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        txs.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        txs.append(scale_by_learning_rate(learning_rate, flip_sign=False))
    if multiply_by_parameter_scale:
        txs.append(scale_by_param_block_rms())
    if momentum is not None:
        txs.append(ema(momentum, debias=False, accumulator_dtype=dtype_momentum))
    if weight_decay_rate is not None:
        txs.append(add_decayed_weights(weight_decay_rate, weight_decay_mask))
    txs.append(scale(-1.0))
    return chain(*txs)
