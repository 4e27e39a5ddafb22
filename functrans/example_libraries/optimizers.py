"""functrans.example_libraries.optimizers: JAX's optimizer triples.

Each optimizer is a function of hyperparameters returning ``(init_fun, update_fun, get_params)``:
``opt_state = init_fun(params)``, ``opt_state = update_fun(step, grads, opt_state)``,
``params = get_params(opt_state)``. ``params`` and ``grads`` are any pytrees of arrays (the
``@optimizer`` decorator lifts a per-array optimizer to pytrees), and ``opt_state`` is an
``OptimizerState`` pytree, so it can be passed through and returned from ``jit``. Step sizes are
numbers or schedules ``step -> step size``."""
from __future__ import annotations

import functools
from collections import namedtuple

import numpy as np

from .. import numpy as jnp
from ..tree_util import register_pytree_node, tree_flatten, tree_leaves, tree_map, tree_unflatten

__all__ = ["OptimizerState", "Optimizer", "optimizer", "sgd", "momentum", "nesterov", "adagrad",
           "rmsprop", "rmsprop_momentum", "adam", "adamax", "sm3", "constant",
           "exponential_decay", "inverse_time_decay", "polynomial_decay", "piecewise_constant",
           "make_schedule", "l2_norm", "clip_grads", "JoinPoint", "unpack_optimizer_state",
           "pack_optimizer_state"]

# packed_state: one list of state leaves per parameter leaf; tree_def: the parameters' structure;
# subtree_defs: each parameter's state structure. Only packed_state holds leaves.
OptimizerState = namedtuple("OptimizerState", ["packed_state", "tree_def", "subtree_defs"])
register_pytree_node(OptimizerState,
                     lambda s: ((s.packed_state,), (s.tree_def, s.subtree_defs)),
                     lambda aux, xs: OptimizerState(xs[0], aux[0], aux[1]))

Optimizer = namedtuple("Optimizer", ["init_fn", "update_fn", "params_fn"])


def _flatten_each(trees):
    """([leaves of each tree], [treedef of each tree])."""
    pairs = [tree_flatten(t) for t in trees]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def optimizer(opt_maker):
    """Decorator: lifts ``opt_maker(*hyper) -> (init, update, get_params)``, written for one
    array, to pytrees of parameters. The returned maker gives an ``Optimizer`` triple whose
    state is an ``OptimizerState``; update raises TypeError when the gradient tree's structure
    differs from the parameters'."""
    @functools.wraps(opt_maker)
    def tree_opt_maker(*args, **kwargs):
        init, update, get_params = opt_maker(*args, **kwargs)

        @functools.wraps(init)
        def tree_init(x0_tree):
            x0_flat, tree = tree_flatten(x0_tree)
            states_flat, subtrees = _flatten_each([init(x0) for x0 in x0_flat])
            return OptimizerState(states_flat, tree, subtrees)

        @functools.wraps(update)
        def tree_update(i, grad_tree, opt_state):
            states_flat, tree, subtrees = opt_state
            grad_flat, grad_def = tree_flatten(grad_tree)
            if grad_def != tree:
                raise TypeError("optimizer update function was passed a gradient tree that did "
                                "not match the parameter tree structure with which it was "
                                f"initialized: parameter tree {tree} and grad tree {grad_def}.")
            states = [tree_unflatten(d, s) for d, s in zip(subtrees, states_flat)]
            new_flat, new_subtrees = _flatten_each(
                [update(i, g, s) for g, s in zip(grad_flat, states)])
            for before, after in zip(subtrees, new_subtrees):
                if before != after:
                    raise TypeError("optimizer update function produced an output structure "
                                    f"that did not match its input structure: input {before} "
                                    f"and output {after}.")
            return OptimizerState(new_flat, tree, subtrees)

        @functools.wraps(get_params)
        def tree_get_params(opt_state):
            states_flat, tree, subtrees = opt_state
            return tree_unflatten(tree, [get_params(tree_unflatten(d, s))
                                         for d, s in zip(subtrees, states_flat)])

        return Optimizer(tree_init, tree_update, tree_get_params)
    return tree_opt_maker


def _first(state):
    return state[0]


# ---------------------------------------------------------------------------------------------
# Optimizers (per array; @optimizer lifts them to pytrees)

@optimizer
def sgd(step_size):
    """Stochastic gradient descent: x <- x - step_size(i) * g. Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def init(x0):
        return x0

    def update(i, g, x):
        return x - step_size(i) * g

    return init, update, lambda x: x


def _zeros_init(n):
    """The per-array init giving (x0, then n zero arrays like x0)."""
    def init(x0):
        return (x0,) + tuple(jnp.zeros_like(x0) for _ in range(n))
    return init


def _momentum(step_size, mass, lookahead):
    """Heavy-ball (lookahead False) or Nesterov (True) momentum, per array."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, velocity = state
        velocity = mass * velocity + g
        direction = mass * velocity + g if lookahead else velocity
        return x - step_size(i) * direction, velocity

    return _zeros_init(1), update, _first


@optimizer
def momentum(step_size, mass):
    """Heavy-ball momentum: v <- mass * v + g; x <- x - step_size(i) * v. Returns the triple."""
    return _momentum(step_size, mass, lookahead=False)


@optimizer
def nesterov(step_size, mass):
    """Nesterov momentum: v <- mass * v + g; x <- x - step_size(i) * (mass * v + g). Returns
    the optimizer triple."""
    return _momentum(step_size, mass, lookahead=True)


@optimizer
def adagrad(step_size, momentum=0.9):
    """Adagrad with momentum: the gradient scaled by 1/sqrt(sum of squared gradients) (0 where
    that sum is 0), averaged with weight ``momentum``. Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, g_sq, m = state
        g_sq = g_sq + jnp.square(g)
        g_sq_inv_sqrt = jnp.where(g_sq > 0, 1.0 / jnp.sqrt(jnp.where(g_sq > 0, g_sq, 1.0)), 0.0)
        m = (1.0 - momentum) * (g * g_sq_inv_sqrt) + momentum * m
        return x - step_size(i) * m, g_sq, m

    return _zeros_init(2), update, _first


@optimizer
def rmsprop(step_size, gamma=0.9, eps=1e-8):
    """RMSProp: a <- gamma * a + (1 - gamma) * g^2; x <- x - step_size(i) * g / sqrt(a + eps).
    Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, avg_sq_grad = state
        avg_sq_grad = avg_sq_grad * gamma + jnp.square(g) * (1.0 - gamma)
        return x - step_size(i) * g / jnp.sqrt(avg_sq_grad + eps), avg_sq_grad

    return _zeros_init(1), update, _first


@optimizer
def rmsprop_momentum(step_size, gamma=0.9, eps=1e-8, momentum=0.9):
    """RMSProp with momentum on the scaled step: m <- momentum * m + step_size(i) * g /
    sqrt(a + eps); x <- x - m. Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, avg_sq_grad, mom = state
        avg_sq_grad = avg_sq_grad * gamma + jnp.square(g) * (1.0 - gamma)
        mom = momentum * mom + step_size(i) * g / jnp.sqrt(avg_sq_grad + eps)
        return x - mom, avg_sq_grad, mom

    return _zeros_init(2), update, _first


def _bias_correction(b, i, like):
    """1 - b^(i+1) in like's dtype (i may be traced)."""
    return 1 - jnp.asarray(b, jnp.asarray(like).dtype) ** (i + 1)


@optimizer
def adam(step_size, b1=0.9, b2=0.999, eps=1e-8):
    """Adam (Kingma & Ba): bias-corrected first and second moment estimates m, v;
    x <- x - step_size(i) * m_hat / (sqrt(v_hat) + eps). Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, m, v = state
        m = (1 - b1) * g + b1 * m
        v = (1 - b2) * jnp.square(g) + b2 * v
        m_hat = m / _bias_correction(b1, i, m)
        v_hat = v / _bias_correction(b2, i, v)
        return x - step_size(i) * m_hat / (jnp.sqrt(v_hat) + eps), m, v

    return _zeros_init(2), update, _first


@optimizer
def adamax(step_size, b1=0.9, b2=0.999, eps=1e-8):
    """AdaMax, Adam's infinity-norm variant: u <- max(b2 * u, |g|);
    x <- x - step_size(i) / (1 - b1^(i+1)) * m / (u + eps). Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def update(i, g, state):
        x, m, u = state
        m = (1 - b1) * g + b1 * m
        u = jnp.maximum(b2 * u, jnp.abs(g))
        return x - (step_size(i) / _bias_correction(b1, i, m)) * m / (u + eps), m, u

    return _zeros_init(2), update, _first


@optimizer
def sm3(step_size, momentum=0.9):
    """SM3 (Anil et al. 2019): Adagrad with one accumulator per axis of each array (the
    minimum over axes approximates the per-element sum). Returns the optimizer triple."""
    step_size = make_schedule(step_size)

    def along(ndim, v, axis):
        """v (a vector) shaped to broadcast along axis of an ndim-array."""
        shape = [1] * ndim
        shape[axis] = v.shape[0]
        return jnp.reshape(v, shape)

    def init(x0):
        x_shape = jnp.shape(x0)
        x0 = jnp.atleast_1d(x0)
        vs = [jnp.zeros(n, dtype=x0.dtype) for n in x0.shape]
        return x0, jnp.zeros_like(x0), vs, x_shape

    def update(i, g, state):
        x, m, vs, x_shape = state
        g = jnp.reshape(g, x.shape)
        accum = functools.reduce(jnp.minimum, [along(x.ndim, v, k) for k, v in enumerate(vs)])
        accum = accum + jnp.square(g)
        accum_inv_sqrt = jnp.where(accum > 0, 1.0 / jnp.sqrt(jnp.where(accum > 0, accum, 1.0)),
                                   0.0)
        m = (1.0 - momentum) * (g * accum_inv_sqrt) + momentum * m
        x = x - step_size(i) * m
        vs = [jnp.max(accum, axis=tuple(a for a in range(x.ndim) if a != k))
              for k in range(x.ndim)]
        return x, m, vs, x_shape

    def get_params(state):
        x, _, _, x_shape = state
        return jnp.reshape(x, tuple(int(d) for d in x_shape))

    return init, update, get_params


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules: step -> step size

def constant(step_size):
    """The schedule i -> step_size."""
    def schedule(i):
        return step_size
    return schedule


def exponential_decay(step_size, decay_steps, decay_rate):
    """The schedule i -> step_size * decay_rate ** (i / decay_steps)."""
    def schedule(i):
        return step_size * decay_rate ** (i / decay_steps)
    return schedule


def inverse_time_decay(step_size, decay_steps, decay_rate, staircase=False):
    """The schedule i -> step_size / (1 + decay_rate * i / decay_steps) (with staircase, the
    quotient i / decay_steps is floored)."""
    def schedule(i):
        t = jnp.floor(i / decay_steps) if staircase else i / decay_steps
        return step_size / (1 + decay_rate * t)
    return schedule


def polynomial_decay(step_size, decay_steps, final_step_size, power=1.0):
    """The schedule decaying from step_size to final_step_size over decay_steps steps as
    (1 - i / decay_steps) ** power, then constant at final_step_size."""
    def schedule(i):
        i = jnp.minimum(i, decay_steps)
        mult = (1 - i / decay_steps) ** power
        return mult * (step_size - final_step_size) + final_step_size
    return schedule


def piecewise_constant(boundaries, values):
    """The schedule i -> values[k], k the number of boundaries strictly below i (so values has
    one entry more than boundaries; ValueError otherwise)."""
    boundaries = jnp.array(boundaries)
    values = jnp.array(values)
    if not boundaries.ndim == values.ndim == 1:
        raise ValueError("boundaries and values must be sequences")
    if boundaries.shape[0] != values.shape[0] - 1:
        raise ValueError("boundaries length must be one shorter than values length")

    def schedule(i):
        return values[jnp.sum(i > boundaries)]
    return schedule


def make_schedule(scalar_or_schedule):
    """A schedule from a callable (returned as it is) or a scalar (a constant schedule);
    TypeError otherwise."""
    if callable(scalar_or_schedule):
        return scalar_or_schedule
    if np.ndim(scalar_or_schedule) == 0:
        return constant(scalar_or_schedule)
    raise TypeError(type(scalar_or_schedule))


# ---------------------------------------------------------------------------------------------
# Utilities

def l2_norm(tree):
    """The l2 norm of all the leaves of tree taken together, as one vector."""
    return jnp.sqrt(sum(jnp.vdot(x, x) for x in tree_leaves(tree)))


def clip_grads(grad_tree, max_norm):
    """grad_tree scaled by max_norm / l2_norm(grad_tree) where that norm exceeds max_norm (as
    it is otherwise)."""
    norm = l2_norm(grad_tree)
    return tree_map(lambda g: jnp.where(norm < max_norm, g, g * (max_norm / norm)), grad_tree)


class JoinPoint:
    """A leaf marking where a parameter's own state pytree joins the parameter tree (in the
    output of unpack_optimizer_state); ``subtree`` is that state."""

    def __init__(self, subtree):
        self.subtree = subtree

    def __iter__(self):
        yield self.subtree


def unpack_optimizer_state(opt_state):
    """An OptimizerState as a pytree of the parameters' structure with a JoinPoint per parameter
    holding its state (for pickling or inspection; pack_optimizer_state inverts it)."""
    states_flat, tree_def, subtree_defs = opt_state
    return tree_unflatten(tree_def, [JoinPoint(tree_unflatten(d, s))
                                     for d, s in zip(subtree_defs, states_flat)])


def pack_optimizer_state(marked_pytree):
    """The OptimizerState of a pytree of JoinPoints, as made by unpack_optimizer_state."""
    sentinels, tree_def = tree_flatten(marked_pytree)
    if not all(isinstance(s, JoinPoint) for s in sentinels):
        raise TypeError("pack_optimizer_state: every leaf must be a JoinPoint")
    states_flat, subtree_defs = _flatten_each([s.subtree for s in sentinels])
    return OptimizerState(states_flat, tree_def, subtree_defs)
