"""optax's line searches: scale_by_zoom_linesearch (strong Wolfe conditions; Nocedal & Wright
algorithms 3.5 and 3.6 with Hager & Zhang's approximate decrease test),
scale_by_backtracking_linesearch (Armijo), and value_and_grad_from_state, which reuses the
value and gradient a line search computed at the accepted step.

Each update is one ``lax.while_loop`` whose body evaluates ``value_fn`` (and its gradient) once,
so it traces once under ``jit``. The two phases of the zoom search (growing an interval, then
zooming into it) share one body: the phase's candidate step and its bookkeeping are selected
with ``where``, so the body holds one ``value_and_grad``."""
from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import numpy as np

from .. import lax
from .. import numpy as jnp
from ..api import value_and_grad
from ..tree_util import tree_leaves, tree_map
from ._base import GradientTransformationExtraArgs


class ZoomLinesearchInfo(NamedTuple):
    """Diagnostics of one zoom line search: the number of steps it took and the sufficient
    decrease and curvature errors at the returned step (0 where the criterion holds)."""
    num_linesearch_steps: Any
    decrease_error: Any
    curvature_error: Any


class ScaleByZoomLinesearchState(NamedTuple):
    """scale_by_zoom_linesearch's state: the accepted step size, the value and gradient at the
    accepted point (reused by value_and_grad_from_state) and a ZoomLinesearchInfo."""
    learning_rate: Any
    value: Any
    grad: Any
    info: ZoomLinesearchInfo


class BacktrackingLinesearchInfo(NamedTuple):
    """Diagnostics of one backtracking search: its steps and the final decrease error."""
    num_linesearch_steps: Any
    decrease_error: Any


class ScaleByBacktrackingLinesearchState(NamedTuple):
    """scale_by_backtracking_linesearch's state: the accepted step size, the value there, the
    gradient there (None unless store_grad) and a BacktrackingLinesearchInfo."""
    learning_rate: Any
    value: Any
    grad: Any
    info: BacktrackingLinesearchInfo


# ---------------------------------------------------------------------------------------------
# helpers


def tree_vdot(a, b):
    """The sum over leaves of ``sum(a * b)``."""
    return sum(jnp.sum(x * y) for x, y in zip(tree_leaves(a), tree_leaves(b)))


def _add_scaled(params, step, updates):
    return tree_map(lambda p, u: p + (step * u).astype(jnp.asarray(p).dtype), params, updates)


def _real_dtype(params):
    leaves = tree_leaves(params)
    return np.result_type(*[jnp.asarray(x).dtype for x in leaves]) if leaves else np.float64


def _fn_kwargs(value_fn, extra_args, who):
    """The extra keyword arguments value_fn takes; any other is a TypeError naming it."""
    names = inspect.signature(value_fn).parameters
    unused = sorted(k for k in extra_args if k not in names)
    if unused:
        raise TypeError(f"{who}.update got keyword arguments that value_fn does not take: "
                        f"{unused}")
    return dict(extra_args)


def _as_error(e):
    """A criterion's violation: max(e, 0), inf where e is nan."""
    e = jnp.maximum(e, 0.0)
    return jnp.where(jnp.isnan(e), jnp.inf, e).astype(e.dtype)


def _cubic_min(a, fa, da, b, fb, c, fc):
    """The critical point of the cubic through (a, fa), (b, fb), (c, fc) with slope da at a
    (nan or inf when there is none)."""
    db, dc = b - a, c - a
    denom = (db * dc) ** 2 * (db - dc)
    rb, rc = fb - fa - da * db, fc - fa - da * dc
    p = (dc ** 2 * rb - db ** 2 * rc) / denom
    q = (-dc ** 3 * rb + db ** 3 * rc) / denom
    return a + (-q + jnp.sqrt(q * q - 3.0 * p * da)) / (3.0 * p)


def _quad_min(a, fa, da, b, fb):
    """The critical point of the quadratic through (a, fa), (b, fb) with slope da at a."""
    db = b - a
    curv = (fb - fa - da * db) / (db * db)
    return a - da / (2.0 * curv)


def _select(pred, new, old):
    return tree_map(lambda n, o: jnp.where(pred, n, o).astype(jnp.asarray(o).dtype), new, old)


# ---------------------------------------------------------------------------------------------
# the zoom line search


class _Zoom(NamedTuple):
    """The zoom search's loop carry (the current trial point, the phase flags, the bracketing
    interval [low, high] with value(low) <= value(high) (not low < high), the point kept for
    cubic interpolation, and the best point with sufficient decrease seen so far)."""
    count: Any
    stepsize: Any
    value: Any
    grad: Any
    slope: Any
    decrease_error: Any
    curvature_error: Any
    interval_found: Any
    done: Any
    failed: Any
    low: Any
    value_low: Any
    slope_low: Any
    high: Any
    value_high: Any
    slope_high: Any
    cubic_ref: Any
    value_cubic_ref: Any
    safe_stepsize: Any
    safe_value: Any
    safe_grad: Any


def _zoom_init(value, grad, slope, dt):
    z, inf, f = jnp.zeros((), dt), jnp.full((), np.inf, dt), jnp.asarray(False)
    return _Zoom(jnp.zeros((), jnp.int32), z, value, grad, slope, inf, inf, f, f, f,
                 z, value, slope, z, value, slope, z, value, z, value, grad)


def _zoom_search(params, updates, value_init, grad_init, slope_init, guess, value_and_grad_fn,
                 opts):
    """The zoom line search from ``params`` along ``updates``: the final _Zoom carry."""
    (max_steps, max_stepsize, tol, increase_factor, slope_rtol, curv_rtol, approx_dec_rtol,
     interval_threshold) = opts
    dt = jnp.asarray(value_init).dtype

    def decrease_error(step, value, slope):
        err = value - value_init - slope_rtol * step * slope_init
        if approx_dec_rtol is not None:
            # Hager & Zhang: near a minimum the Armijo test drowns in rounding; there a small
            # slope (with a value not above the start's by more than approx_dec_rtol) suffices.
            approx = jnp.maximum(slope - (2 * slope_rtol - 1.0) * slope_init,
                                 value - value_init - approx_dec_rtol * jnp.abs(value_init))
            err = jnp.minimum(approx, err)
        return _as_error(err)

    def grow_candidate(s):
        new = jnp.where(s.count == 0, guess, increase_factor * s.stepsize).astype(dt)
        if max_stepsize is None:
            return new, jnp.asarray(False)
        return jnp.minimum(new, max_stepsize).astype(dt), new >= max_stepsize

    def zoom_candidate(s):
        delta = jnp.abs(s.high - s.low)
        left, right = jnp.minimum(s.low, s.high), jnp.maximum(s.low, s.high)
        cubic = _cubic_min(s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref,
                           s.value_cubic_ref)
        quad = _quad_min(s.low, s.value_low, s.slope_low, s.high, s.value_high)
        use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
        use_quad = ~use_cubic & (quad > left + 0.1 * delta) & (quad < right - 0.1 * delta)
        mid = jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (s.low + s.high) / 2))
        return mid.astype(dt), delta <= interval_threshold

    def grow_update(s, new, reached, value, slope, dec_err, err):
        """Algorithm 3.5: accept, bracket, or keep growing the step."""
        high_is_new = (dec_err > 0) | ((value >= s.value) & (s.count > 0))
        low_is_new = (slope >= 0) & ~high_is_new
        prev, cand = (s.stepsize, s.value, s.slope), (new, value, slope)
        low, high = _select(low_is_new, (cand, prev), (prev, cand))
        found = high_is_new | low_is_new | (err <= tol)
        done = (err <= tol) | (reached & ~found)
        return found, done, low, high, low[:2]

    def zoom_update(s, mid, value, slope, dec_err, err):
        """Algorithm 3.6: shrink the bracket around mid."""
        high_is_mid = (dec_err > 0) | (value >= s.value_low)
        high_is_low = (slope * (s.high - s.low) >= 0) & ~high_is_mid
        old_low = (s.low, s.value_low, s.slope_low)
        old_high = (s.high, s.value_high, s.slope_high)
        cand = (mid, value, slope)
        high = _select(high_is_mid, cand, _select(high_is_low, old_low, old_high))
        low = _select(high_is_mid, old_low, cand)
        ref = _select(high_is_mid | high_is_low, old_high[:2], old_low[:2])
        return s.interval_found, err <= tol, low, high, ref

    def body(s):
        grow_step, reached = grow_candidate(s)
        zoom_step, too_small = zoom_candidate(s)
        step = jnp.where(s.interval_found, zoom_step, grow_step)
        value, grad = value_and_grad_fn(_add_scaled(params, step, updates))
        value = jnp.asarray(value).astype(dt)
        slope = tree_vdot(grad, updates).astype(dt)
        dec_err = decrease_error(step, value, slope)
        curv_err = _as_error(jnp.abs(slope) - curv_rtol * jnp.abs(slope_init))
        err = jnp.maximum(dec_err, curv_err)
        # the best point with sufficient decrease: kept in case curvature cannot be satisfied
        keep = (dec_err <= tol) & (~s.interval_found | (value < s.safe_value))
        safe = _select(keep, (step, value, grad), (s.safe_stepsize, s.safe_value, s.safe_grad))
        g = grow_update(s, step, reached, value, slope, dec_err, err)
        z = zoom_update(s, step, value, slope, dec_err, err)
        found, done, low, high, ref = _select(s.interval_found, z, g)
        last = s.count + 1 >= max_steps
        failed = jnp.where(s.interval_found, last | (too_small & (safe[0] > 0)), last) & ~done
        new = _Zoom(s.count + 1, step, value, grad, slope, dec_err, curv_err, found, done,
                    failed, *low, *high, *ref, *safe)
        return _fall_back_to_safe(new)

    init = _zoom_init(value_init, grad_init, slope_init, dt)
    return lax.while_loop(lambda s: ~(s.done | s.failed), body, init)


def _fall_back_to_safe(s):
    """When the search failed, return the safe point (sufficient decrease without curvature)
    if there is one, or if the last point is not even finite (then the step is 0)."""
    use_safe = s.failed & ((s.safe_stepsize > 0) | jnp.isinf(s.decrease_error))
    step, value, grad = _select(use_safe, (s.safe_stepsize, s.safe_value, s.safe_grad),
                                (s.stepsize, s.value, s.grad))
    return s._replace(stepsize=step, value=value, grad=grad)


def scale_by_zoom_linesearch(max_linesearch_steps, max_learning_rate=None, tol=0.0,
                             increase_factor=2.0, slope_rtol=1e-4, curv_rtol=0.9,
                             approx_dec_rtol=1e-6, stepsize_precision=1e-5,
                             initial_guess_strategy="keep", verbose=False):
    """optax's zoom line search: scales the updates u by a step size eta satisfying the strong
    Wolfe conditions ``f(w + eta u) <= f(w) + slope_rtol eta <g, u> + tol`` and ``|<g(w + eta
    u), u>| <= curv_rtol |<g(w), u>| + tol`` (the first replaced near a minimum by Hager and
    Zhang's approximate test unless approx_dec_rtol is None). It first grows the step (from 1
    with ``initial_guess_strategy='one'``, from the last accepted step with 'keep') by
    increase_factor until an interval holding such a step is found, then zooms into it by cubic,
    quadratic or bisection steps. At most max_linesearch_steps evaluations; when they run out it
    returns the best step with sufficient decrease (or 0 if every value was nan/inf).

    ``update(updates, state, params, *, value, grad, value_fn, **extra_args)``: value and grad of
    ``value_fn(params, **extra_args)`` at params. State: ScaleByZoomLinesearchState
    (learning_rate, value, grad, info) holding the value and gradient at the accepted point."""
    if initial_guess_strategy not in ("one", "keep"):
        raise ValueError(f"scale_by_zoom_linesearch: initial_guess_strategy must be 'one' or "
                         f"'keep', got {initial_guess_strategy!r}")
    opts = (max_linesearch_steps, max_learning_rate, tol, increase_factor, slope_rtol,
            curv_rtol, approx_dec_rtol, stepsize_precision)

    def init(params):
        dt = _real_dtype(params)
        inf = jnp.full((), np.inf, dt)
        return ScaleByZoomLinesearchState(
            jnp.ones((), dt), inf, tree_map(jnp.zeros_like, params),
            ZoomLinesearchInfo(jnp.zeros((), jnp.int32), inf, inf))

    def update(updates, state, params=None, *, value, grad, value_fn, **extra_args):
        if params is None:
            raise ValueError("scale_by_zoom_linesearch needs the parameters: call "
                             "update(updates, state, params, value=, grad=, value_fn=)")
        kwargs = _fn_kwargs(value_fn, extra_args, "scale_by_zoom_linesearch")
        dt = _real_dtype(params)
        value = jnp.asarray(value).astype(dt)
        slope = tree_vdot(updates, grad).astype(dt)
        guess = jnp.ones((), dt) if initial_guess_strategy == "one" else state.learning_rate
        vg = value_and_grad(value_fn)
        s = _zoom_search(params, updates, value, grad, slope, guess,
                         lambda p: vg(p, **kwargs), opts)
        info = ZoomLinesearchInfo(s.count, s.decrease_error, s.curvature_error)
        new_updates = tree_map(lambda u: u * s.stepsize.astype(jnp.asarray(u).dtype), updates)
        return new_updates, ScaleByZoomLinesearchState(s.stepsize, s.value, s.grad, info)
    return GradientTransformationExtraArgs(init, update)


# ---------------------------------------------------------------------------------------------
# backtracking


def scale_by_backtracking_linesearch(max_backtracking_steps, slope_rtol=1e-4,
                                     decrease_factor=0.8, increase_factor=1.5,
                                     max_learning_rate=1.0, atol=0.0, rtol=0.0,
                                     store_grad=False, verbose=False):
    """optax's backtracking (Armijo) line search: starting from ``min(increase_factor *
    last_step, max_learning_rate)``, multiplies the step eta by decrease_factor until
    ``f(w + eta u) <= (1 + rtol) f(w) + eta slope_rtol <g, u> + atol`` (at most
    max_backtracking_steps reductions; a nan/inf value at the end gives step 0). With
    store_grad the gradient at the accepted point is kept for value_and_grad_from_state.
    ``update(updates, state, params, *, value, grad, value_fn, **extra_args)`` as the zoom
    search. State: ScaleByBacktrackingLinesearchState (learning_rate, value, grad, info)."""
    def init(params):
        dt = _real_dtype(params)
        inf = jnp.full((), np.inf, dt)
        return ScaleByBacktrackingLinesearchState(
            jnp.ones((), dt), inf, tree_map(jnp.zeros_like, params) if store_grad else None,
            BacktrackingLinesearchInfo(jnp.zeros((), jnp.int32), inf))

    def update(updates, state, params=None, *, value, grad, value_fn, **extra_args):
        if params is None:
            raise ValueError("scale_by_backtracking_linesearch needs the parameters")
        kwargs = _fn_kwargs(value_fn, extra_args, "scale_by_backtracking_linesearch")
        dt = _real_dtype(params)
        value = jnp.asarray(value).astype(dt)
        slope = tree_vdot(updates, grad).astype(dt)

        def error(step, new_value):
            return _as_error(new_value - (1.0 + rtol) * value - step * slope_rtol * slope)

        def body(c):
            step, _, _, i = c
            step = jnp.where(i > 0, decrease_factor * step, step).astype(dt)
            new_value = jnp.asarray(value_fn(_add_scaled(params, step, updates),
                                             **kwargs)).astype(dt)
            return step, new_value, error(step, new_value), i + 1

        start = jnp.minimum(increase_factor * state.learning_rate, max_learning_rate).astype(dt)
        init_c = (start, value, jnp.full((), np.inf, dt), jnp.zeros((), jnp.int32))
        step, new_value, err, steps = lax.while_loop(
            lambda c: ~(c[2] <= atol) & (c[3] <= max_backtracking_steps), body, init_c)
        step = jnp.where(jnp.isinf(err), 0.0, step).astype(dt)
        new_grad = None
        if store_grad:
            new_grad = value_and_grad(value_fn)(_add_scaled(params, step, updates), **kwargs)[1]
        new_updates = tree_map(lambda u: u * step.astype(jnp.asarray(u).dtype), updates)
        return new_updates, ScaleByBacktrackingLinesearchState(
            step, new_value, new_grad, BacktrackingLinesearchInfo(steps, err))
    return GradientTransformationExtraArgs(init, update)


# ---------------------------------------------------------------------------------------------
# value_and_grad_from_state


def _find_fields(tree, name, found):
    """Appends to found the values of every NamedTuple field called name inside tree."""
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):
        for field, v in zip(tree._fields, tree):
            if field == name:
                found.append(v)
            else:
                _find_fields(v, name, found)
    elif isinstance(tree, (tuple, list)):
        for v in tree:
            _find_fields(v, name, found)
    elif isinstance(tree, dict):
        for v in tree.values():
            _find_fields(v, name, found)
    return found


def _one_field(state, name):
    found = _find_fields(state, name, [])
    if len(found) != 1 or found[0] is None:
        what = "no" if not found or found[0] is None else f"{len(found)}"
        raise ValueError(f"value_and_grad_from_state: the optimizer state holds {what} "
                         f"'{name}' field(s); it needs exactly one (a line search with a stored "
                         f"gradient: scale_by_zoom_linesearch, or the backtracking one with "
                         f"store_grad=True)")
    return found[0]


def value_and_grad_from_state(value_fn):
    """optax's value_and_grad_from_state: returns ``f(params, *args, state, **kwargs) -> (value,
    grad)`` that takes the value and gradient the line search stored in ``state`` (computed at
    these very params, the point it accepted) instead of evaluating ``value_fn`` again; when the
    stored value is nan or inf (the first step) it calls ``value_and_grad(value_fn)``. A state
    without exactly one ``value`` and one ``grad`` field is a ValueError."""
    def f(params, *args, state, **kwargs):
        value, grad = _one_field(state, "value"), _one_field(state, "grad")
        return lax.cond(jnp.isfinite(value),
                        lambda p, a, kw: (value, grad),
                        lambda p, a, kw: _fresh(value_fn, value, p, a, kw),
                        params, args, kwargs)
    return f


def _fresh(value_fn, like, params, args, kwargs):
    v, g = value_and_grad(value_fn)(params, *args, **kwargs)
    return jnp.asarray(v).astype(jnp.asarray(like).dtype), g
