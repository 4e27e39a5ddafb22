"""optax's L-BFGS: scale_by_lbfgs (the two-loop recursion over a ring buffer of the last
memory_size parameter and gradient differences) and lbfgs (it, a sign flip or learning rate,
and a zoom line search)."""
from __future__ import annotations

from typing import Any, NamedTuple

from .. import lax
from .. import numpy as jnp
from ..tree_util import tree_map
from ._base import GradientTransformation, chain, identity, safe_increment, zero_count
from ._linesearch import _real_dtype, scale_by_zoom_linesearch, tree_vdot
from ._transforms import scale, scale_by_learning_rate


class ScaleByLBFGSState(NamedTuple):
    """scale_by_lbfgs's state: the step count, the parameters and updates of the last call, the
    buffers of parameter differences and update differences (each leaf stacked to (memory_size,
    *shape), newest pair first; optax keeps a ring indexed by count % memory_size), and the
    weights rho_i = 1 / <dw_i, du_i> (0 for unused rows)."""
    count: Any
    params: Any
    updates: Any
    diff_params_memory: Any
    diff_updates_memory: Any
    weights_memory: Any


def _axpy(a, x, y):
    """y + a x leafwise, in y's dtypes."""
    return tree_map(lambda xi, yi: yi + (a * xi).astype(yi.dtype), x, y)


def _push(memory, x):
    """The buffer with x as its new first row and its last row dropped (newest first)."""
    return jnp.concatenate([jnp.expand_dims(x, 0), memory[:-1]], axis=0)


def _two_loop(u, dw, du, rho, gamma):
    """P u for the L-BFGS inverse-Hessian approximation P (Nocedal & Wright, algorithm 7.4): the
    first loop runs over the pairs newest to oldest, then the scaling by gamma, the second loop
    oldest to newest. Unused rows hold zeros with weight 0, so they change nothing. The buffers
    are scanned as rows (no indexing by a traced position: that compiles 3x slower)."""
    def first(q, pair):
        w, d, r = pair
        a = r * tree_vdot(w, q)
        return _axpy(-a, d, q), a

    q, alphas = lax.scan(first, u, (dw, du, rho))
    r = tree_map(lambda x: x * gamma.astype(x.dtype), q)

    def second(r, pair):
        w, d, rh, a = pair
        b = rh * tree_vdot(d, r)
        return _axpy(a - b, w, r), None

    r, _ = lax.scan(second, r, (dw, du, rho, alphas), reverse=True)
    return r


def scale_by_lbfgs(memory_size=10, scale_init_precond=True):
    """optax's scale_by_lbfgs: returns ``P_k u_k``, P_k the L-BFGS approximation of the inverse
    Hessian built from the last memory_size pairs ``dw_i = w_{i+1} - w_i``, ``du_i = u_{i+1} -
    u_i`` (u the incoming updates, normally gradients), with initial matrix ``gamma_k I``:
    ``gamma_k = <dw, du> / <du, du>`` of the newest pair with scale_init_precond (else 1), and on
    the first call ``min(1, 1 / ||u_0||)`` (so the first step has length at most 1). The memory
    is updated first, from the params and updates of this call against the last, so chained with
    a line search the pairs are the accepted steps. Needs params. State: ScaleByLBFGSState."""
    if memory_size < 1:
        raise ValueError(f"scale_by_lbfgs: memory_size must be >= 1, got {memory_size}")

    def init(params):
        stacked = tree_map(lambda p: jnp.zeros((memory_size,) + jnp.shape(p),
                                               jnp.asarray(p).dtype), params)
        zeros = tree_map(lambda p: jnp.zeros_like(jnp.asarray(p)), params)
        return ScaleByLBFGSState(zero_count(), zeros, zeros, stacked, stacked,
                                 jnp.zeros((memory_size,), _real_dtype(params)))

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_lbfgs needs the parameters: call update(updates, state, "
                             "params)")
        dt = state.weights_memory.dtype
        started = state.count > 0
        dw = tree_map(lambda a, b: jnp.where(started, a - b, 0).astype(a.dtype),
                      params, state.params)
        du = tree_map(lambda a, b: jnp.where(started, a - b, 0).astype(a.dtype),
                      updates, state.updates)
        dwdu = tree_vdot(dw, du).astype(dt)
        rho = jnp.where(dwdu == 0, 0.0, 1.0 / jnp.where(dwdu == 0, 1.0, dwdu)).astype(dt)
        dw_mem = tree_map(_push, state.diff_params_memory, dw)
        du_mem = tree_map(_push, state.diff_updates_memory, du)
        rho_mem = _push(state.weights_memory, rho)
        gamma = _initial_scale(updates, dw, du, dwdu, started, dt) if scale_init_precond \
            else jnp.ones((), dt)
        new = _two_loop(updates, dw_mem, du_mem, rho_mem, gamma)
        return new, ScaleByLBFGSState(safe_increment(state.count), params, updates, dw_mem,
                                      du_mem, rho_mem)
    return GradientTransformation(init, update)


def _initial_scale(updates, dw, du, dwdu, started, dt):
    """gamma_k: <dw, du> / <du, du> of the newest pair (1 if du is 0); min(1, 1/||u||) at first."""
    dudu = tree_vdot(du, du).astype(dt)
    secant = jnp.where(dudu > 0, dwdu / jnp.where(dudu > 0, dudu, 1.0), 1.0)
    norm = jnp.sqrt(tree_vdot(updates, updates)).astype(dt)
    first = jnp.minimum(1.0, 1.0 / jnp.where(norm > 0, norm, 1.0))
    return jnp.where(started, secant, first).astype(dt)


def lbfgs(learning_rate=None, memory_size=10, scale_init_precond=True,
          linesearch=scale_by_zoom_linesearch(max_linesearch_steps=20,
                                              initial_guess_strategy="one")):
    """optax's L-BFGS: ``chain(scale_by_lbfgs(memory_size, scale_init_precond), scale(-1) (or
    scale_by_learning_rate(learning_rate)), linesearch)``; the default line search is the zoom
    search (strong Wolfe) from step 1 with at most 20 evaluations, and None means no search.
    ``update(grads, state, params, *, value, grad, value_fn, **extra_args)`` (value and grad at
    params; value_fn the objective, called as ``value_fn(params, **extra_args)``). Use
    ``value_and_grad_from_state(value_fn)`` to reuse the line search's last evaluation."""
    base = scale(-1.0) if learning_rate is None else scale_by_learning_rate(learning_rate)
    return chain(scale_by_lbfgs(memory_size, scale_init_precond), base,
                 identity() if linesearch is None else linesearch)
