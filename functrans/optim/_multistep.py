"""MultiSteps: gradient accumulation over k mini-steps before one inner-optimizer step."""
from __future__ import annotations

from typing import Any, NamedTuple

from .. import numpy as jnp
from ..tree_util import tree_leaves, tree_map
from ._base import GradientTransformation, check_same_structure, safe_increment, zero_count


class MultiStepsState(NamedTuple):
    """MultiSteps' state: mini-steps since the last inner step, inner steps done, the inner
    optimizer's state, the accumulated gradient and the skip function's state."""
    mini_step: Any
    gradient_step: Any
    inner_opt_state: Any
    acc_grads: Any
    skip_state: Any = ()


class MultiSteps:
    """Accumulates updates for ``every_k_schedule(gradient_step)`` mini-steps (a number or a
    schedule), then applies the inner optimizer to their mean (their sum with
    use_grad_mean=False); in between it returns zero updates. Both branches are computed and one
    is selected, so update traces without Python branching on the step."""

    def __init__(self, opt, every_k_schedule, use_grad_mean=True, should_skip_update_fn=None):
        self._opt = opt
        self._every_k = every_k_schedule if callable(every_k_schedule) else \
            (lambda step, k=every_k_schedule: k)
        self._use_grad_mean = use_grad_mean
        self._should_skip = should_skip_update_fn

    @property
    def inner_opt(self):
        """The wrapped GradientTransformation."""
        return self._opt

    def init(self, params):
        """The initial MultiStepsState: zero counters, the inner state and zero accumulators."""
        skip_state = () if self._should_skip is None else \
            self._should_skip(tree_map(jnp.zeros_like, params), zero_count(), params)[1]
        return MultiStepsState(zero_count(), zero_count(), self._opt.init(params),
                               tree_map(jnp.zeros_like, params), skip_state)

    def update(self, updates, state, params=None):
        """(updates, new state): zeros on a mini-step, the inner optimizer's update of the
        accumulated gradient on every k-th."""
        check_same_structure(updates, state.acc_grads, "MultiSteps acc_grads")
        k = self._every_k(state.gradient_step)
        n = state.mini_step
        if self._use_grad_mean:
            acc = tree_map(lambda g, a: a + (g - a) / (n + 1).astype(a.dtype), updates,
                           state.acc_grads)
        else:
            acc = tree_map(lambda g, a: a + g, updates, state.acc_grads)
        final, inner_state = self._opt.update(acc, state.inner_opt_state, params)
        is_final = n >= k - 1
        final_state = MultiStepsState(zero_count(), safe_increment(state.gradient_step),
                                      inner_state, tree_map(jnp.zeros_like, acc), state.skip_state)
        mid_state = MultiStepsState(n + 1, state.gradient_step, state.inner_opt_state, acc,
                                    state.skip_state)
        new_updates = tree_map(lambda f: jnp.where(is_final, f, jnp.zeros_like(f)), final)
        new_state = _select(is_final, final_state, mid_state)
        if self._should_skip is not None:
            skip, skip_state = self._should_skip(updates, state.gradient_step, params)
            new_updates = tree_map(lambda u: jnp.where(skip, jnp.zeros_like(u), u), new_updates)
            new_state = _select(skip, state, new_state)._replace(skip_state=skip_state)
        return new_updates, new_state

    def has_updated(self, state):
        """True (a bool array) when the last update applied the inner optimizer."""
        return jnp.logical_and(state.mini_step == 0, state.gradient_step > 0)

    def gradient_transformation(self):
        """This MultiSteps as a GradientTransformation(init, update)."""
        return GradientTransformation(self.init, self.update)


def _select(pred, on_true, on_false):
    return tree_map(lambda a, b: jnp.where(pred, a, b).astype(jnp.asarray(a).dtype),
                    on_true, on_false)


def skip_not_finite(updates, gradient_step, params):
    """A should_skip_update_fn for MultiSteps: (skip, state) with skip true when any update is NaN
    or inf; state is {"should_skip", "num_not_finite"}."""
    bad = [jnp.sum(~jnp.isfinite(u)).astype(jnp.int32) for u in tree_leaves(updates)]
    num_bad = sum(bad, jnp.zeros([], jnp.int32))
    return num_bad > 0, {"should_skip": num_bad > 0, "num_not_finite": num_bad}
