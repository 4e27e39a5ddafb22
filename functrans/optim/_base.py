"""The optax core: GradientTransformation, chain, apply_updates, and the state-structure check."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np

from .. import numpy as jnp
from ..tree_util import keystr, tree_flatten_with_path, tree_map


class GradientTransformation(NamedTuple):
    """A pair of pure functions: ``init(params) -> state`` and
    ``update(updates, state, params=None) -> (new_updates, new_state)``."""
    init: Callable
    update: Callable


class GradientTransformationExtraArgs(GradientTransformation):
    """A GradientTransformation whose ``update(updates, state, params=None, **extra_args)`` takes
    keyword arguments (``value=``, ``grad=``, ``value_fn=`` for the line searches); ``chain``
    passes its keyword arguments on to these and only these."""


def _call_update(t, updates, state, params, extra_args):
    if isinstance(t, GradientTransformationExtraArgs):
        return t.update(updates, state, params, **extra_args)
    return t.update(updates, state, params)


class EmptyState(NamedTuple):
    """The state of a stateless transformation (an empty pytree)."""


def identity():
    """A GradientTransformation that returns the updates unchanged."""
    return GradientTransformation(lambda params: EmptyState(),
                                  lambda updates, state, params=None: (updates, state))


def stateless(f):
    """A GradientTransformation from ``f(updates, params) -> new_updates`` with an EmptyState."""
    def update(updates, state, params=None):
        return f(updates, params), state
    return GradientTransformation(lambda params: EmptyState(), update)


def stateless_leafwise(f):
    """A stateless GradientTransformation applying ``f(update_leaf)`` to every leaf."""
    return stateless(lambda updates, params: tree_map(f, updates))


def chain(*transforms):
    """A GradientTransformation applying ``transforms`` in order; its state is the tuple of their
    states. Its update takes keyword arguments (a GradientTransformationExtraArgs) and passes
    them to the transformations that take them."""
    def init(params):
        return tuple(t.init(params) for t in transforms)

    def update(updates, state, params=None, **extra_args):
        if len(state) != len(transforms):
            raise ValueError(f"chain: the state holds {len(state)} states for "
                             f"{len(transforms)} transformations")
        new_states = []
        for t, s in zip(transforms, state):
            updates, s = _call_update(t, updates, s, params, extra_args)
            new_states.append(s)
        return updates, tuple(new_states)
    return GradientTransformationExtraArgs(init, update)


def apply_updates(params, updates):
    """Returns ``params + updates`` leafwise, each result in its parameter's dtype."""
    return tree_map(lambda p, u: (jnp.asarray(p) + u).astype(jnp.asarray(p).dtype), params,
                    updates)


def check_same_structure(updates: Any, tree: Any, what: str, check_shapes: bool = True):
    """Raises ValueError naming the first pytree path where ``tree`` (a part of an optimizer state)
    differs from ``updates`` in structure (or, with check_shapes, in a leaf's shape)."""
    u_pairs, u_def = tree_flatten_with_path(updates)
    s_pairs, s_def = tree_flatten_with_path(tree)
    if u_def == s_def and not check_shapes:
        return
    for (up, ul), (sp, sl) in zip(u_pairs, s_pairs):
        if keystr(up) != keystr(sp):
            _mismatch(what, f"the updates have a leaf at {keystr(up) or '<root>'} where the state "
                            f"has one at {keystr(sp) or '<root>'}")
        if check_shapes and np.shape(ul) != np.shape(sl):
            _mismatch(what, f"at {keystr(up) or '<root>'} the update has shape {np.shape(ul)} and "
                            f"the state {np.shape(sl)}")
    if len(u_pairs) != len(s_pairs):
        longer, who = (u_pairs, "the updates") if len(u_pairs) > len(s_pairs) else (s_pairs, "the state")
        _mismatch(what, f"{who} have an extra leaf at {keystr(longer[min(len(u_pairs), len(s_pairs))][0])}")
    if u_def != s_def:
        _mismatch(what, f"the structures differ: {u_def} vs {s_def}")


def _mismatch(what, detail):
    raise ValueError(f"optimizer state was built for a different parameter structure: {what}: "
                     f"{detail}")


def safe_increment(count):
    """count + 1 for an int32 step counter, saturating at the int32 maximum instead of wrapping."""
    top = np.iinfo(np.int32).max
    return jnp.where(count < top, count + 1, top).astype(jnp.int32)


def zero_count():
    """A fresh int32 step counter."""
    return jnp.zeros([], jnp.int32)


def cast_like(s, x):
    """The scalar (or array) s as an array of x's dtype, so float32 leaves stay float32."""
    return jnp.asarray(s).astype(jnp.asarray(x).dtype)
