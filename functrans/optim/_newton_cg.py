"""Newton-CG (Hessian-free): each step solves (H + lambda I) p = -g by conjugate gradients on
curvature-vector products, then backtracks along p; lambda follows Levenberg-Marquardt's rule
(raised when the quadratic model predicted the decrease badly, lowered when it predicted it
well). Everything is traced (while loops), so a whole step jits."""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import numpy as jnp
from ..api import grad, linearize
from ..lax import control_flow as cf
from ..scipy.sparse.linalg import cg
from ..tree_util import tree_leaves, tree_map
from ._base import GradientTransformation


class NewtonCGState(NamedTuple):
    """damping: the current lambda; count: steps taken; cg_info: the last inner solve's info
    (functrans.scipy.sparse.linalg.cg); step_size: the last line-search step (0: no decrease
    was found and the update was zero)."""
    damping: Any
    count: Any
    cg_info: Any
    step_size: Any


def _vdot(x, y):
    return sum(jnp.vdot(a, b) for a, b in zip(tree_leaves(x), tree_leaves(y)))


def _axpy(a, x, y):
    return tree_map(lambda u, v: a * u + v, x, y)


def _dtype(tree):
    return jnp.result_type(*tree_leaves(tree))


def newton_cg(damping=1e-3, *, cg_maxiter=50, cg_tol=None, max_linesearch_steps=20,
              armijo=1e-4, shrink=0.5, damping_increase=1.5, damping_decrease=2 / 3,
              min_damping=1e-8):
    """A Newton-CG / Hessian-free optimizer as a GradientTransformation whose update needs the
    objective: ``update(grads, state, params, *, value, value_fn, curvature_vp=None)``.

    value = value_fn(params) and grads its gradient; curvature_vp(params, v) is the curvature
    product (default: the Hessian's, by ``linearize`` of grad(value_fn) once per update; a
    ``ggn_vp`` keeps the system positive definite for non-convex losses). The direction solves (C + damping I) p = -grads by ``cg``
    with relative tolerance cg_tol (default min(0.5, sqrt|g|), the classical forcing term) and
    at most cg_maxiter iterations; if p is not a descent direction, -grads is used. The step
    t p has the largest t in 1, shrink, shrink^2, ... meeting Armijo's condition
    value_fn(params + t p) <= value + armijo t g.p (updates are zero if none of
    max_linesearch_steps does). The damping is multiplied by damping_increase when the ratio
    of actual to predicted decrease is below 1/4, by damping_decrease above 3/4 (never below
    min_damping). Returns (updates, NewtonCGState)."""
    def init(params):
        dt = _dtype(params)
        return NewtonCGState(jnp.asarray(damping, dt), jnp.zeros((), np.int32),
                             jnp.zeros((), np.int32), jnp.ones((), dt))

    def update(grads, state, params, *, value, value_fn, curvature_vp=None):
        if curvature_vp is None:    # linearized once: each CG iteration runs only the tangent part
            curv = linearize(grad(value_fn), params)[1]
        else:
            def curv(v):
                return curvature_vp(params, v)
        lam = state.damping

        def damped(v):
            return _axpy(lam, v, curv(v))

        gnorm = jnp.sqrt(jnp.real(_vdot(grads, grads)))
        tol = jnp.minimum(0.5, jnp.sqrt(gnorm)) if cg_tol is None else cg_tol
        p, info = cg(damped, tree_map(jnp.negative, grads), tol=tol, maxiter=cg_maxiter)
        slope = jnp.real(_vdot(grads, p))
        descent = (slope < 0) & jnp.isfinite(slope)
        p = tree_map(lambda d, g: jnp.where(descent, d, -g), p, grads)
        slope = jnp.where(descent, slope, -gnorm ** 2)
        t, f_t = _backtrack(value_fn, params, p, value, slope)
        t = jnp.where(f_t <= value, t, jnp.zeros_like(t))   # no decrease found: stay
        pcp = jnp.real(_vdot(p, curv(p)))
        predicted = -(t * slope + 0.5 * t * t * pcp)
        ratio = (value - jnp.where(t > 0, f_t, value)) / jnp.where(predicted > 0, predicted, 1)
        lam = jnp.where(ratio < 0.25, lam * damping_increase,
                        jnp.where(ratio > 0.75, lam * damping_decrease, lam))
        lam = jnp.maximum(lam, min_damping).astype(state.damping.dtype)
        updates = tree_map(lambda d: (t * d).astype(d.dtype), p)
        return updates, NewtonCGState(lam, state.count + 1, info, t.astype(state.step_size.dtype))

    def _backtrack(value_fn, params, p, value, slope):
        """(t, value_fn(params + t p)) for the first t = shrink^i meeting Armijo's condition
        (the last one tried if none does)."""
        def f_at(t):
            return jnp.asarray(value_fn(_axpy(t, p, params)))

        def going(state):
            t, f_t, i = state
            bad = ~(f_t <= value + armijo * t * slope)      # NaN counts as bad
            return bad & (i < max_linesearch_steps)

        def step(state):
            t, _, i = state
            t = t * shrink
            return t, f_at(t), i + 1

        one = jnp.ones((), jnp.result_type(slope))
        t, f_t, _ = cf.while_loop(going, step, (one, f_at(one).astype(one.dtype), jnp.int32(1)))
        return t, f_t

    return GradientTransformation(init, update)
