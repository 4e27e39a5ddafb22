"""optax's building blocks: gradient transformations that rescale, accumulate, clip or mask
updates. Every state is a NamedTuple pytree; every update is traceable (no Python branching on
array values), so it works under jit and vmap."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import numpy as jnp
from .. import lax
from ..tree_util import tree_flatten, tree_leaves, tree_map, tree_structure, tree_unflatten
from ._base import (EmptyState, GradientTransformation, cast_like, check_same_structure,
                    identity, safe_increment, stateless, stateless_leafwise, zero_count)

# ---------------------------------------------------------------------------------------------
# states


class ScaleByAdamState(NamedTuple):
    """scale_by_adam's state: step count, first moment mu, second moment nu."""
    count: Any
    mu: Any
    nu: Any


class ScaleByRmsState(NamedTuple):
    """scale_by_rms's state: the running mean of squared updates nu."""
    nu: Any


class ScaleByRStdDevState(NamedTuple):
    """scale_by_stddev's state: running means of updates (mu) and their squares (nu)."""
    mu: Any
    nu: Any


class ScaleByRssState(NamedTuple):
    """scale_by_rss's (Adagrad's) state: the running sum of squared updates."""
    sum_of_squares: Any


class ScaleByLionState(NamedTuple):
    """scale_by_lion's state: step count and momentum mu."""
    count: Any
    mu: Any


class TraceState(NamedTuple):
    """trace's state: the momentum accumulator."""
    trace: Any


class EmaState(NamedTuple):
    """ema's state: step count and the moving average."""
    count: Any
    ema: Any


class ScaleByScheduleState(NamedTuple):
    """scale_by_schedule's state: the number of updates done so far."""
    count: Any


class FactoredState(NamedTuple):
    """scale_by_factored_rms's state: step count, row and column second-moment means of
    factored leaves (v_row, v_col), the full second moment of the others (v)."""
    count: Any
    v_row: Any
    v_col: Any
    v: Any


class MaskedState(NamedTuple):
    """masked's state: the inner transformation's state on the masked parameters."""
    inner_state: Any


class MaskedNode(NamedTuple):
    """Stands in for a masked-out parameter: an empty pytree, so inner transformations skip it."""


class MultiTransformState(NamedTuple):
    """multi_transform's state: {label: MaskedState} for each transformation."""
    inner_states: Any


ScaleState = ClipState = ClipByGlobalNormState = AddDecayedWeightsState = EmptyState


# ---------------------------------------------------------------------------------------------
# helpers


def _zeros_like_tree(params, dtype=None):
    return tree_map(lambda p: jnp.zeros(jnp.shape(p), dtype or jnp.asarray(p).dtype), params)


def _moment(updates, moment, decay, order):
    """decay * moment + (1 - decay) * updates ** order, leafwise."""
    return tree_map(lambda g, m: decay * m + (1 - decay) * g ** order, updates, moment)


def _bias_correction(moment, decay, count):
    """moment / (1 - decay ** count), leafwise, in each leaf's dtype."""
    correction = 1 - jnp.power(decay, count)
    return tree_map(lambda m: m / cast_like(correction, m), moment)


def _scale_leaves(updates, factor):
    return tree_map(lambda u: u * cast_like(factor, u), updates)


# ---------------------------------------------------------------------------------------------
# scaling


def scale(step_size):
    """Multiplies every update by the number step_size."""
    return stateless_leafwise(lambda u: u * cast_like(step_size, u))


def scale_by_schedule(step_size_fn):
    """Multiplies the updates by ``step_size_fn(count)``, count being the number of updates done
    so far (state: ScaleByScheduleState(count))."""
    def update(updates, state, params=None):
        factor = step_size_fn(state.count)
        return _scale_leaves(updates, factor), ScaleByScheduleState(safe_increment(state.count))
    return GradientTransformation(lambda params: ScaleByScheduleState(zero_count()), update)


def scale_by_learning_rate(learning_rate, *, flip_sign=True):
    """Multiplies the updates by -learning_rate (by +learning_rate with flip_sign=False);
    learning_rate is a number or a schedule."""
    sign = -1 if flip_sign else 1
    if callable(learning_rate):
        return scale_by_schedule(lambda count: sign * learning_rate(count))
    return scale(sign * learning_rate)


def scale_by_adam(b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, mu_dtype=None, *, nesterov=False):
    """Adam's rescaling: ``mu = b1 mu + (1-b1) g``, ``nu = b2 nu + (1-b2) g^2``,
    ``update = mu_hat / (sqrt(nu_hat + eps_root) + eps)`` with the bias-corrected moments; with
    nesterov (NAdam) ``mu_hat = b1 mu / (1 - b1^(t+1)) + (1-b1) g / (1 - b1^t)``."""
    def init(params):
        return ScaleByAdamState(zero_count(), _zeros_like_tree(params, mu_dtype),
                                _zeros_like_tree(params))

    def update(updates, state, params=None):
        check_same_structure(updates, state.mu, "scale_by_adam mu")
        mu = _moment(updates, state.mu, b1, 1)
        nu = _moment(updates, state.nu, b2, 2)
        count = safe_increment(state.count)
        if nesterov:
            mu_hat = tree_map(lambda m, g: b1 * m + (1 - b1) * g,
                              _bias_correction(mu, b1, safe_increment(count)),
                              _bias_correction(updates, b1, count))
        else:
            mu_hat = _bias_correction(mu, b1, count)
        nu_hat = _bias_correction(nu, b2, count)
        new = tree_map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        if mu_dtype is not None:
            mu = tree_map(lambda m: m.astype(mu_dtype), mu)
        return new, ScaleByAdamState(count, mu, nu)
    return GradientTransformation(init, update)


def _rsqrt_scale(g, nu, eps, eps_in_sqrt):
    return g * lax.rsqrt(nu + eps) if eps_in_sqrt else g / (jnp.sqrt(nu) + eps)


def scale_by_rms(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True):
    """RMSProp's rescaling: ``nu = decay nu + (1-decay) g^2``, ``update = g / sqrt(nu + eps)``
    (``g / (sqrt(nu) + eps)`` with eps_in_sqrt=False); nu starts at initial_scale."""
    def init(params):
        return ScaleByRmsState(tree_map(lambda p: jnp.full(jnp.shape(p), initial_scale,
                                                           jnp.asarray(p).dtype), params))

    def update(updates, state, params=None):
        check_same_structure(updates, state.nu, "scale_by_rms nu")
        nu = _moment(updates, state.nu, decay, 2)
        new = tree_map(lambda g, n: _rsqrt_scale(g, n, eps, eps_in_sqrt), updates, nu)
        return new, ScaleByRmsState(nu)
    return GradientTransformation(init, update)


def scale_by_stddev(decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True):
    """Centered RMSProp's rescaling: ``mu = decay mu + (1-decay) g``, ``nu = decay nu +
    (1-decay) g^2``, ``update = g / sqrt(nu - mu^2 + eps)``."""
    def init(params):
        return ScaleByRStdDevState(_zeros_like_tree(params),
                                   tree_map(lambda p: jnp.full(jnp.shape(p), initial_scale,
                                                               jnp.asarray(p).dtype), params))

    def update(updates, state, params=None):
        check_same_structure(updates, state.mu, "scale_by_stddev mu")
        mu = _moment(updates, state.mu, decay, 1)
        nu = _moment(updates, state.nu, decay, 2)
        new = tree_map(lambda g, m, n: _rsqrt_scale(g, n - m ** 2, eps, eps_in_sqrt),
                       updates, mu, nu)
        return new, ScaleByRStdDevState(mu, nu)
    return GradientTransformation(init, update)


def scale_by_rss(initial_accumulator_value=0.1, eps=1e-7):
    """Adagrad's rescaling: ``s = s + g^2``, ``update = g / sqrt(s + eps)`` (0 where s is 0)."""
    def init(params):
        return ScaleByRssState(tree_map(
            lambda p: jnp.full(jnp.shape(p), initial_accumulator_value, jnp.asarray(p).dtype),
            params))

    def update(updates, state, params=None):
        check_same_structure(updates, state.sum_of_squares, "scale_by_rss sum_of_squares")
        s = tree_map(lambda g, a: a + g * g, updates, state.sum_of_squares)
        new = tree_map(lambda g, a: jnp.where(a > 0, lax.rsqrt(a + eps), 0.0).astype(g.dtype) * g,
                       updates, s)
        return new, ScaleByRssState(s)
    return GradientTransformation(init, update)


def scale_by_lion(b1=0.9, b2=0.99, mu_dtype=None):
    """Lion's rescaling: ``update = sign(b1 mu + (1-b1) g)``, then ``mu = b2 mu + (1-b2) g``."""
    def init(params):
        return ScaleByLionState(zero_count(), _zeros_like_tree(params, mu_dtype))

    def update(updates, state, params=None):
        check_same_structure(updates, state.mu, "scale_by_lion mu")
        new = tree_map(lambda g, m: jnp.sign((1 - b1) * g + b1 * m), updates, state.mu)
        mu = _moment(updates, state.mu, b2, 1)
        if mu_dtype is not None:
            mu = tree_map(lambda m: m.astype(mu_dtype), mu)
        return new, ScaleByLionState(safe_increment(state.count), mu)
    return GradientTransformation(init, update)


def scale_by_trust_ratio(min_norm=0.0, trust_coefficient=1.0, eps=0.0):
    """LAMB's layerwise rescaling: each leaf times ``trust_coefficient * |p| / (|u| + eps)``
    (norms floored at min_norm; factor 1 where either norm is 0). Needs params."""
    def leaf(u, p):
        p_norm = jnp.maximum(jnp.sqrt(jnp.sum(p * p)), min_norm)
        u_norm = jnp.maximum(jnp.sqrt(jnp.sum(u * u)), min_norm)
        ratio = trust_coefficient * p_norm / (u_norm + eps)
        return u * jnp.where((p_norm == 0) | (u_norm == 0), 1.0, ratio).astype(u.dtype)

    def f(updates, params):
        _need_params(params, "scale_by_trust_ratio")
        return tree_map(leaf, updates, params)
    return stateless(f)


def _need_params(params, name):
    if params is None:
        raise ValueError(f"{name} needs the parameters: call update(updates, state, params)")


def trace(decay, nesterov=False, accumulator_dtype=None):
    """Momentum: ``t = g + decay t``; the update is t (``g + decay t`` with nesterov)."""
    def init(params):
        return TraceState(_zeros_like_tree(params, accumulator_dtype))

    def update(updates, state, params=None):
        check_same_structure(updates, state.trace, "trace")
        t = tree_map(lambda g, tr: g + decay * tr, updates, state.trace)
        new = tree_map(lambda g, tr: g + decay * tr, updates, t) if nesterov else t
        if accumulator_dtype is not None:
            t = tree_map(lambda x: x.astype(accumulator_dtype), t)
        return new, TraceState(t)
    return GradientTransformation(init, update)


def ema(decay, debias=True, accumulator_dtype=None):
    """Exponential moving average ``e = decay e + (1-decay) g``; the update is e (divided by
    ``1 - decay^t`` with debias)."""
    def init(params):
        return EmaState(zero_count(), _zeros_like_tree(params, accumulator_dtype))

    def update(updates, state, params=None):
        check_same_structure(updates, state.ema, "ema")
        e = _moment(updates, state.ema, decay, 1)
        count = safe_increment(state.count)
        new = _bias_correction(e, decay, count) if debias else e
        if accumulator_dtype is not None:
            e = tree_map(lambda x: x.astype(accumulator_dtype), e)
        return new, EmaState(count, e)
    return GradientTransformation(init, update)


def add_decayed_weights(weight_decay=0.0, mask=None):
    """Adds ``weight_decay * params`` to the updates (only where mask is True, when given)."""
    def f(updates, params):
        _need_params(params, "add_decayed_weights")
        return tree_map(lambda g, p: g + cast_like(weight_decay, g) * p, updates, params)
    tx = stateless(f)
    return tx if mask is None else masked(tx, mask)


# ---------------------------------------------------------------------------------------------
# clipping


def global_norm(updates):
    """The l2 norm of all the leaves of updates taken together: sqrt(sum of squares)."""
    return jnp.sqrt(sum(jnp.sum(jnp.real(x * jnp.conj(x))) for x in tree_leaves(updates)))


def clip(max_delta):
    """Clips every update element to [-max_delta, max_delta]."""
    return stateless_leafwise(lambda u: jnp.clip(u, -max_delta, max_delta))


def clip_by_global_norm(max_norm):
    """Rescales the updates to global norm max_norm when their global norm exceeds it."""
    def f(updates, params):
        norm = global_norm(updates)
        keep = norm < max_norm
        return tree_map(lambda u: jnp.where(keep, u, u / cast_like(norm, u) * max_norm), updates)
    return stateless(f)


def clip_by_block_rms(threshold):
    """Divides each leaf by max(1, rms(leaf) / threshold)."""
    return stateless_leafwise(
        lambda u: u / jnp.maximum(1.0, jnp.sqrt(jnp.mean(u * u)) / threshold).astype(u.dtype))


def scale_by_param_block_rms(min_scale=1e-3):
    """Multiplies each leaf by max(rms(param), min_scale). Needs params."""
    def f(updates, params):
        _need_params(params, "scale_by_param_block_rms")
        return tree_map(lambda u, p: u * jnp.maximum(jnp.sqrt(jnp.mean(p * p)),
                                                     min_scale).astype(u.dtype), updates, params)
    return stateless(f)


# ---------------------------------------------------------------------------------------------
# adafactor's factored second moments


def _decay_rate_pow(i, exponent=0.8):
    return 1.0 - jnp.power((i + 1).astype(jnp.float32), -exponent)


def _factored_dims(shape, factored, min_dim_size_to_factor):
    """The (second largest, largest) axes of a rank>=2 shape to factor over, or None."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape, kind="stable")
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def scale_by_factored_rms(factored=True, decay_rate=0.8, step_offset=0,
                          min_dim_size_to_factor=128, epsilon=1e-30):
    """Adafactor's rescaling by a second-moment estimate kept as row and column means for leaves
    with two axes of at least min_dim_size_to_factor (state: FactoredState(count, v_row, v_col,
    v)), with decay ``1 - (t+1)^-decay_rate``."""
    def init_leaf(p):
        shape, dtype = jnp.shape(p), jnp.asarray(p).dtype
        dims = _factored_dims(shape, factored, min_dim_size_to_factor)
        if dims is None:
            return jnp.zeros((1,), dtype), jnp.zeros((1,), dtype), jnp.zeros(shape, dtype)
        d1, d0 = dims
        return (jnp.zeros(np.delete(shape, d0).tolist(), dtype),
                jnp.zeros(np.delete(shape, d1).tolist(), dtype), jnp.zeros((1,), dtype))

    def init(params):
        leaves, treedef = tree_flatten(params)
        rows, cols, vs = zip(*map(init_leaf, leaves)) if leaves else ((), (), ())
        return FactoredState(zero_count(), *(tree_unflatten(treedef, list(x))
                                             for x in (rows, cols, vs)))

    def update_leaf(g, v_row, v_col, v, decay):
        decay = cast_like(decay, g)
        g_sq = g * g + epsilon
        dims = _factored_dims(jnp.shape(g), factored, min_dim_size_to_factor)
        if dims is None:
            new_v = decay * v + (1 - decay) * g_sq
            return g * lax.rsqrt(new_v), v_row, v_col, new_v
        d1, d0 = dims
        new_row = decay * v_row + (1 - decay) * jnp.mean(g_sq, axis=d0)
        new_col = decay * v_col + (1 - decay) * jnp.mean(g_sq, axis=d1)
        row_axis = d1 - 1 if d1 > d0 else d1
        row_factor = lax.rsqrt(new_row / jnp.mean(new_row, axis=row_axis, keepdims=True))
        col_factor = lax.rsqrt(new_col)
        new = g * jnp.expand_dims(row_factor, d0) * jnp.expand_dims(col_factor, d1)
        return new, new_row, new_col, v

    def update(updates, state, params=None):
        check_same_structure(updates, state.v_row, "scale_by_factored_rms v_row",
                             check_shapes=False)
        decay = _decay_rate_pow(state.count - step_offset, decay_rate)
        leaves, treedef = tree_flatten(updates)
        parts = [treedef.flatten_up_to(x) for x in (state.v_row, state.v_col, state.v)]
        outs = [update_leaf(g, r, c, v, decay) for g, r, c, v in zip(leaves, *parts)]
        new, rows, cols, vs = (tree_unflatten(treedef, [o[i] for o in outs]) for i in range(4))
        return new, FactoredState(safe_increment(state.count), rows, cols, vs)
    return GradientTransformation(init, update)


# ---------------------------------------------------------------------------------------------
# masking and partitioning


def _mask_tree(mask, tree):
    return mask(tree) if callable(mask) else mask


def _apply_mask(tree, mask_tree):
    """tree with each subtree under a False mask leaf replaced by MaskedNode()."""
    mask_leaves, mask_def = tree_flatten(mask_tree)
    subtrees = mask_def.flatten_up_to(tree)
    return tree_unflatten(mask_def, [s if m else MaskedNode() for m, s in zip(mask_leaves, subtrees)])


def masked(inner, mask):
    """Applies inner only to the parameters whose mask leaf is True (mask: a pytree of bools with
    the parameters' structure or a prefix of it, or a function params -> such a pytree); the
    other updates pass through unchanged (state: MaskedState(inner_state))."""
    def init(params):
        return MaskedState(inner.init(_apply_mask(params, _mask_tree(mask, params))))

    def update(updates, state, params=None):
        mask_tree = _mask_tree(mask, updates)
        _check_mask(mask_tree, updates)
        inner_params = None if params is None else _apply_mask(params, mask_tree)
        new_masked, inner_state = inner.update(_apply_mask(updates, mask_tree), state.inner_state,
                                               inner_params)
        mask_leaves, mask_def = tree_flatten(mask_tree)
        new_parts = mask_def.flatten_up_to(new_masked)
        old_parts = mask_def.flatten_up_to(updates)
        merged = [n if m else o for m, n, o in zip(mask_leaves, new_parts, old_parts)]
        return tree_unflatten(mask_def, merged), MaskedState(inner_state)
    return GradientTransformation(init, update)


def _check_mask(mask_tree, updates):
    try:
        tree_structure(mask_tree).flatten_up_to(updates)
    except ValueError as e:
        raise ValueError(f"masked: the mask's structure is not a prefix of the updates': {e}") \
            from None
    for m in tree_leaves(mask_tree):
        if not isinstance(m, (bool, np.bool_)):
            raise TypeError(f"masked: mask leaves must be Python bools, got {type(m).__name__}")


def multi_transform(transforms, param_labels):
    """Applies transforms[label] to the parameters labelled ``label`` by param_labels (a pytree of
    labels with the parameters' structure or a prefix, or a function params -> such a pytree)
    (state: MultiTransformState({label: MaskedState})."""
    def label_masks(tree):
        labels = _mask_tree(param_labels, tree)
        missing = set(tree_leaves(labels)) - set(transforms)
        if missing:
            raise ValueError(f"multi_transform: labels {sorted(map(str, missing))} have no "
                             f"transformation (known: {sorted(map(str, transforms))})")
        return {k: tree_map(lambda lab, k=k: lab == k, labels) for k in transforms}

    def init(params):
        masks = label_masks(params)
        return MultiTransformState({k: masked(tx, masks[k]).init(params)
                                    for k, tx in transforms.items()})

    def update(updates, state, params=None):
        masks = label_masks(updates)
        inner = {}
        for k, tx in transforms.items():
            updates, inner[k] = masked(tx, masks[k]).update(updates, state.inner_states[k], params)
        return updates, MultiTransformState(inner)
    return GradientTransformation(init, update)


def set_to_zero():
    """Replaces every update by zeros (freezes the parameters when used in multi_transform)."""
    return stateless_leafwise(jnp.zeros_like)


