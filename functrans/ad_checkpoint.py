"""jax.ad_checkpoint: checkpoint (remat) with policies, ``checkpoint_name`` and
``print_saved_residuals``.

A policy is called as ``policy(prim, *avals, **params)`` on each primal equation of a
checkpointed function whose output the backward pass needs; True saves that output (it becomes
a residual), False recomputes it from the inputs and the saved values. The offloading policies
of JAX (``offload_dot_with_no_batch_dims``, ``save_and_offload_only_these_names``) are not
provided: functrans has no host/device memory split to offload across.
"""
from __future__ import annotations

import types

from . import core
from .checkpoint import checkpoint, remat, saved_residuals
from .auto_checkpoint import auto_checkpoint  # noqa: F401
from .core import Primitive, abstract_eval_rules, impl_rules
from .interpreters import ad, batching
from .lax.lax import dot_general_p
from .tree_util import tree_map

__all__ = ["checkpoint", "remat", "auto_checkpoint", "checkpoint_name", "checkpoint_policies",
           "print_saved_residuals", "saved_residuals", "name_p"]

# The identity, carrying a name that policies can select. Its tangent passes through unnamed (as
# JAX's): only primal values are ever saved. The backends alias its output to its input.
name_p = Primitive("checkpoint_name")
impl_rules[name_p] = lambda x, *, name: x
abstract_eval_rules[name_p] = lambda aval, *, name: aval
ad.jvp_rules[name_p] = lambda primals, tangents, *, name: (name_p.bind(primals[0], name=name),
                                                           tangents[0])
batching.batch_rules[name_p] = lambda vals, dims, *, name: (name_p.bind(vals[0], name=name),
                                                            dims[0])
core.complex_primitives.add(name_p)


def checkpoint_name(x, name):
    """x (a pytree of arrays) unchanged, each leaf tagged with ``name`` so that the policies
    ``save_only_these_names`` / ``save_any_names_but_these`` can select it. Returns x's values."""
    return tree_map(lambda v: name_p.bind(core.as_array(v), name=name), x)


def _everything_saveable(prim, *avals, **params):
    return True


def _nothing_saveable(prim, *avals, **params):
    return False


def _dots_saveable(prim, *avals, **params):
    return prim is dot_general_p


def _dots_with_no_batch_dims_saveable(prim, *avals, **params):
    if prim is not dot_general_p:
        return False
    (_, _), (lhs_batch, rhs_batch) = params["dimension_numbers"]
    return not lhs_batch and not rhs_batch


def _names_policy(names, saved_if_listed):
    names = frozenset(names)

    def policy(prim, *avals, **params):
        return prim is name_p and (params["name"] in names) == saved_if_listed
    return policy


def save_only_these_names(*names):
    """The policy saving exactly the values tagged by checkpoint_name with one of names."""
    return _names_policy(names, True)


def save_any_names_but_these(*names):
    """The policy saving every value tagged by checkpoint_name except those named in names."""
    return _names_policy(names, False)


def save_from_both_policies(policy_1, policy_2):
    """The policy saving what either policy saves."""
    def policy(prim, *avals, **params):
        return policy_1(prim, *avals, **params) or policy_2(prim, *avals, **params)
    return policy


checkpoint_policies = types.SimpleNamespace(
    everything_saveable=_everything_saveable,
    nothing_saveable=_nothing_saveable,
    dots_saveable=_dots_saveable,
    checkpoint_dots=_dots_saveable,
    dots_with_no_batch_dims_saveable=_dots_with_no_batch_dims_saveable,
    checkpoint_dots_with_no_batch_dims=_dots_with_no_batch_dims_saveable,
    save_only_these_names=save_only_these_names,
    save_any_names_but_these=save_any_names_but_these,
    save_from_both_policies=save_from_both_policies,
)


def print_saved_residuals(fun, *args):
    """Print one line per residual that reverse mode of fun at args saves (its type and where
    it comes from); returns None."""
    for shape, desc in saved_residuals(fun, *args):
        aval = core.ShapedArray(tuple(shape.shape), shape.dtype)
        print(f"{aval.str_short()} {desc}")
