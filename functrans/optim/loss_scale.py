"""Loss scaling for training in float16/bfloat16, with jmp's names and semantics: multiply the
loss by a scale before differentiating (small gradients then survive the narrow dtype), divide
the gradients by it afterwards, and skip the steps whose gradients overflowed.

``DynamicLossScale`` halves its scale on every non-finite step (never below ``min_loss_scale``)
and doubles it after ``period`` finite steps in a row. Loss scales are pytrees (the scale and
the counter are leaves, period and factor static), so they pass through ``jit`` and
``lax.cond``. See docs/mixed_precision.md for the recipe."""
from __future__ import annotations

import numpy as np

from .. import numpy as jnp
from ..tree_util import register_pytree_node_class, tree_leaves, tree_map


def _scaled(tree, factor):
    """Every leaf of tree times factor, in the leaf's own dtype."""
    return tree_map(lambda x: (x * factor.astype(jnp.result_type(x))).astype(jnp.result_type(x)),
                    tree)


def all_finite(tree):
    """A scalar bool array: True when no leaf of tree holds a NaN or an infinity."""
    leaves = tree_leaves(tree)
    if not leaves:
        return jnp.asarray(True)
    return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]).all()


def select_tree(pred, on_true, on_false):
    """on_true where the scalar bool pred holds, else on_false, leaf by leaf (two trees of one
    structure): how a training step keeps its old parameters when the gradients overflowed."""
    return tree_map(lambda a, b: jnp.where(pred, a, b).astype(jnp.result_type(a)),
                    on_true, on_false)


@register_pytree_node_class
class NoOpLossScale:
    """No scaling: ``scale`` and ``unscale`` return the tree, ``adjust`` returns self."""

    loss_scale = property(lambda self: jnp.asarray(1.0, jnp.float32))

    def scale(self, tree):
        """tree unchanged."""
        return tree

    def unscale(self, tree):
        """tree unchanged."""
        return tree

    def adjust(self, grads_finite):
        """self (nothing to adapt)."""
        return self

    def tree_flatten(self):
        return (), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls()


@register_pytree_node_class
class StaticLossScale:
    """A fixed loss scale: ``scale`` multiplies every leaf by it, ``unscale`` divides."""

    def __init__(self, loss_scale):
        self.loss_scale = jnp.asarray(loss_scale, jnp.float32)

    def scale(self, tree):
        """Every leaf of tree times the loss scale (in the leaf's dtype)."""
        return _scaled(tree, self.loss_scale)

    def unscale(self, tree):
        """Every leaf of tree divided by the loss scale (in the leaf's dtype)."""
        return _scaled(tree, 1.0 / self.loss_scale)

    def adjust(self, grads_finite):
        """self (a static scale does not adapt)."""
        return self

    def tree_flatten(self):
        return (self.loss_scale,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.loss_scale, = children
        return obj


@register_pytree_node_class
class DynamicLossScale(StaticLossScale):
    """A loss scale that adapts (jmp's DynamicLossScale): ``adjust(grads_finite)`` returns the
    next one, the scale divided by ``factor`` (at least ``min_loss_scale``) when the gradients
    were not finite, multiplied by ``factor`` once ``period`` finite steps have passed in a row
    (the counter restarts after either), unchanged otherwise."""

    def __init__(self, loss_scale, counter=None, period=2000, factor=2, min_loss_scale=1.0):
        super().__init__(loss_scale)
        self.counter = jnp.zeros([], jnp.int32) if counter is None \
            else jnp.asarray(counter, jnp.int32)
        self.period, self.factor = int(period), float(factor)
        self.min_loss_scale = float(min_loss_scale)
        if self.period < 1 or self.factor <= 1.0:
            raise ValueError(f"DynamicLossScale: period must be >= 1 and factor > 1, got "
                             f"period={period}, factor={factor}")

    def adjust(self, grads_finite):
        """The next DynamicLossScale after a step whose gradients were all finite or not (a
        scalar bool, e.g. ``all_finite(grads)``); the scale stays finite."""
        grads_finite = jnp.asarray(grads_finite)
        grown = jnp.where(self.counter == self.period - 1, self.loss_scale * self.factor,
                          self.loss_scale)
        grown = jnp.where(jnp.isfinite(grown), grown, self.loss_scale)
        shrunk = jnp.maximum(self.loss_scale / self.factor, self.min_loss_scale)
        scale = jnp.where(grads_finite, grown, shrunk).astype(jnp.float32)
        counter = jnp.where(grads_finite, (self.counter + 1) % self.period, 0).astype(jnp.int32)
        return DynamicLossScale(scale, counter, self.period, self.factor, self.min_loss_scale)

    def tree_flatten(self):
        return (self.loss_scale, self.counter), (self.period, self.factor, self.min_loss_scale)

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.loss_scale, obj.counter = children
        obj.period, obj.factor, obj.min_loss_scale = aux
        return obj

    def __repr__(self):
        return (f"DynamicLossScale(loss_scale={np.asarray(self.loss_scale)!r}, "
                f"counter={np.asarray(self.counter)!r}, period={self.period}, "
                f"factor={self.factor:g})")
