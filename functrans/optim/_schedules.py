"""Learning-rate schedules: functions of the step count (a Python int or an int array) returning
the value at that step, written with traceable ops so they work under jit and vmap."""
from __future__ import annotations

import math

from .. import numpy as jnp


def constant_schedule(value):
    """A schedule returning ``value`` at every step."""
    return lambda count: value


def polynomial_schedule(init_value, end_value, power, transition_steps, transition_begin=0):
    """A schedule going from init_value to end_value over transition_steps steps (starting at
    transition_begin) as ``(init - end) * (1 - t / transition_steps) ** power + end``, then
    constant; constant init_value when transition_steps <= 0."""
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count):
        t = jnp.clip(jnp.asarray(count) - transition_begin, 0, transition_steps)
        frac = 1 - t / transition_steps
        return (init_value - end_value) * frac ** power + end_value
    return schedule


def linear_schedule(init_value, end_value, transition_steps, transition_begin=0):
    """A schedule going linearly from init_value to end_value over transition_steps steps."""
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def cosine_decay_schedule(init_value, decay_steps, alpha=0.0, exponent=1.0):
    """A schedule ``init * ((1 - alpha) * (0.5 * (1 + cos(pi * t / decay_steps))) ** exponent
    + alpha)`` with t = min(count, decay_steps)."""
    if not decay_steps > 0:
        raise ValueError(f"cosine_decay_schedule: decay_steps must be positive, got {decay_steps}")

    def schedule(count):
        t = jnp.minimum(jnp.asarray(count), decay_steps)
        cosine = 0.5 * (1 + jnp.cos(math.pi * t / decay_steps))
        return init_value * ((1 - alpha) * cosine ** exponent + alpha)
    return schedule


def join_schedules(schedules, boundaries):
    """A schedule following schedules[0] until boundaries[0], then schedules[1] (called with
    ``count - boundaries[0]``), and so on."""
    if len(boundaries) != len(schedules) - 1:
        raise ValueError(f"join_schedules: {len(schedules)} schedules need "
                         f"{len(schedules) - 1} boundaries, got {len(boundaries)}")

    def schedule(count):
        count = jnp.asarray(count)
        out = jnp.asarray(schedules[0](count))
        for boundary, s in zip(boundaries, schedules[1:]):
            out = jnp.where(count < boundary, out, s(count - boundary))
        return out
    return schedule


def warmup_cosine_decay_schedule(init_value, peak_value, warmup_steps, decay_steps, end_value=0.0,
                                 exponent=1.0):
    """A linear warmup from init_value to peak_value over warmup_steps, then a cosine decay to
    end_value reached at step decay_steps (decay_steps counts the warmup)."""
    alpha = 0.0 if peak_value == 0 else end_value / peak_value
    return join_schedules([linear_schedule(init_value, peak_value, warmup_steps),
                           cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha,
                                                 exponent)],
                          [warmup_steps])


def exponential_decay(init_value, transition_steps, decay_rate, transition_begin=0,
                      staircase=False, end_value=None):
    """A schedule ``init * decay_rate ** ((count - transition_begin) / transition_steps)``
    (the exponent floored with staircase), init_value before transition_begin, bounded by
    end_value when given; constant init_value when transition_steps <= 0."""
    if transition_steps <= 0:
        return constant_schedule(init_value)

    def schedule(count):
        steps = jnp.asarray(count) - transition_begin
        p = steps / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = init_value * jnp.power(decay_rate, p)
        if transition_begin > 0:
            value = jnp.where(steps <= 0, init_value, value)
        if end_value is not None:
            value = (jnp.maximum if decay_rate < 1 else jnp.minimum)(value, end_value)
        return value
    return schedule


def piecewise_constant_schedule(init_value, boundaries_and_scales=None):
    """A schedule starting at init_value and multiplied by ``scale`` from each step ``boundary``
    on, for each ``boundary: scale`` of boundaries_and_scales (scales must be non-negative)."""
    items = sorted((boundaries_and_scales or {}).items())
    if any(s < 0 for _, s in items):
        raise ValueError("piecewise_constant_schedule: every scale must be non-negative")

    def schedule(count):
        count = jnp.asarray(count)
        value = jnp.asarray(init_value * 1.0)
        for boundary, s in items:
            value = jnp.where(count < boundary, value, value * s)
        return value
    return schedule
