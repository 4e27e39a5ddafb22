"""functrans.optim.adam under jit (update + apply_updates, one call) on a 10M-parameter float32
pytree, against a hand-written fused NumPy Adam (in place, no temporaries beyond one scratch
buffer per leaf), a hand-written jitted Adam in JAX (when jax is installed) and optax's adam on
JAX (when optax is installed). Target: functrans <= 1.2x the fused NumPy, <= 1x optax.

One run; every figure is the best of 15 calls (the machine is shared).
The last rows split functrans's time: a hand-written numba loop per leaf (allocating its
outputs, and in place) is the floor for one pass over memory, and functrans on a tiny pytree
of the same structure is its fixed per-call cost (dispatch, pytree flattening, launches).

Run: python benchmarks/optim_bench.py
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import functrans as ft  # noqa: E402
from functrans import optim  # noqa: E402
from timing import best as _best  # noqa: E402


def best(f):
    return _best(f, repeat=15)

LR, B1, B2, EPS = 1e-3, 0.9, 0.999, 1e-8
# 10.03M parameters: three weight matrices and their biases
SHAPES = {"w1": (2048, 2048), "b1": (2048,), "w2": (2048, 2048), "b2": (2048,),
          "w3": (2048, 800), "b3": (800,)}


def make_tree(rng, scale=1.0):
    return {k: (rng.standard_normal(s, dtype=np.float32) * scale) for k, s in SHAPES.items()}


# --- functrans ---------------------------------------------------------------------------------

def functrans_runner(params, grads):
    """One jitted call: optim.adam's update, then apply_updates. Returns a no-argument step."""
    opt = optim.adam(LR, B1, B2, EPS)

    @ft.jit
    def step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optim.apply_updates(params, updates), state

    box = [{k: ft.numpy.asarray(v) for k, v in params.items()}, None]
    box[1] = opt.init(box[0])
    g = {k: ft.numpy.asarray(v) for k, v in grads.items()}

    def run():
        box[0], box[1] = step(box[0], box[1], g)
        return ft.block_until_ready(box[0])
    return run


# --- NumPy: fused by hand, in place ------------------------------------------------------------

class NumpyAdam:
    """Adam in NumPy, in place: per leaf 9 passes (out= everywhere, one scratch buffer), the
    bias corrections folded into the step size and epsilon (lr_t = lr sqrt(1-b2^t) / (1-b1^t),
    eps_t = eps sqrt(1-b2^t)), which is the same update as optax's up to rounding."""

    def __init__(self, params):
        self.params = {k: v.copy() for k, v in params.items()}
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.tmp = {k: np.empty_like(v) for k, v in params.items()}
        self.t = 0

    def step(self, grads):
        self.t += 1
        c2 = np.sqrt(1 - B2 ** self.t)
        lr_t = np.float32(LR * c2 / (1 - B1 ** self.t))
        eps_t = np.float32(EPS * c2)
        b1, b2 = np.float32(B1), np.float32(B2)
        for k, g in grads.items():
            m, v, tmp, p = self.m[k], self.v[k], self.tmp[k], self.params[k]
            m *= b1                                   # m = b1 m + (1 - b1) g
            np.multiply(g, np.float32(1 - B1), out=tmp)
            m += tmp
            v *= b2                                   # v = b2 v + (1 - b2) g^2
            np.multiply(g, g, out=tmp)
            tmp *= np.float32(1 - B2)
            v += tmp
            np.sqrt(v, out=tmp)                       # p -= lr_t m / (sqrt(v) + eps_t)
            tmp += eps_t
            np.divide(m, tmp, out=tmp)
            tmp *= lr_t
            p -= tmp
        return self.params


# --- where the time goes: fixed per-call cost, and one fused loop by hand ---------------------

def numba_runner(params, grads, in_place):
    """Adam as ONE hand-written numba loop per leaf: the memory-traffic floor (7 streams). With
    in_place=False it allocates the new parameter and moments, as functrans (and JAX without
    donation) must; the difference is the cost of fresh output buffers."""
    import numba

    @numba.njit(cache=True, fastmath={"reassoc"})
    def leaf(p, m, v, g, p_out, m_out, v_out, lr_t, eps_t):
        p, m, v, g = p.ravel(), m.ravel(), v.ravel(), g.ravel()
        p_out, m_out, v_out = p_out.ravel(), m_out.ravel(), v_out.ravel()
        for i in range(p.size):
            mi = np.float32(B1) * m[i] + np.float32(1 - B1) * g[i]
            vi = np.float32(B2) * v[i] + np.float32(1 - B2) * g[i] * g[i]
            m_out[i], v_out[i] = mi, vi
            p_out[i] = p[i] - lr_t * mi / (np.sqrt(vi) + eps_t)

    state = [{k: v.copy() for k, v in params.items()},
             {k: np.zeros_like(v) for k, v in params.items()},
             {k: np.zeros_like(v) for k, v in params.items()}, 0]

    def run():
        p, m, v, t = state
        t += 1
        c2 = np.sqrt(1 - B2 ** t)
        lr_t, eps_t = np.float32(LR * c2 / (1 - B1 ** t)), np.float32(EPS * c2)
        outs = (p, m, v) if in_place else tuple({k: np.empty_like(x) for k, x in d.items()}
                                                for d in (p, m, v))
        for k, g in grads.items():
            leaf(p[k], m[k], v[k], g, outs[0][k], outs[1][k], outs[2][k], lr_t, eps_t)
        state[:] = [*outs, t]
        return outs[0]
    return run


# --- JAX: a hand-written jitted Adam, and optax -------------------------------------------------

def jax_runners(params, grads):
    """{label: step} for JAX baselines that are importable."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return {}
    jparams = {k: jnp.asarray(v) for k, v in params.items()}
    jgrads = {k: jnp.asarray(v) for k, v in grads.items()}
    runners = {}

    @jax.jit
    def hand_step(params, m, v, t, grads):
        t = t + 1
        m = jax.tree_util.tree_map(lambda m, g: B1 * m + (1 - B1) * g, m, grads)
        v = jax.tree_util.tree_map(lambda v, g: B2 * v + (1 - B2) * g * g, v, grads)
        c1, c2 = 1 - B1 ** t, 1 - B2 ** t
        params = jax.tree_util.tree_map(
            lambda p, m, v: p - LR * (m / c1) / (jnp.sqrt(v / c2) + EPS), params, m, v)
        return params, m, v, t

    zeros = {k: jnp.zeros_like(v) for k, v in jparams.items()}
    hand = [jparams, zeros, zeros, jnp.asarray(0, jnp.int32)]

    def run_hand():
        hand[:] = hand_step(*hand, jgrads)
        return jax.block_until_ready(hand[0])
    runners["jax.jit, hand-written Adam"] = run_hand
    try:
        import optax
    except ImportError:
        return runners
    opt = optax.adam(LR, B1, B2, EPS)

    @jax.jit
    def optax_step(params, state, grads):
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    box = [jparams, opt.init(jparams)]

    def run_optax():
        box[:] = optax_step(*box, jgrads)
        return jax.block_until_ready(box[0])
    runners["optax.adam on jax.jit"] = run_optax
    return runners


def check_same_update(params, grads):
    """functrans's first three steps equal the NumPy ones (float32 rounding aside)."""
    run = functrans_runner(params, grads)
    ref = NumpyAdam(params)
    for _ in range(3):
        ours = run()
        want = ref.step(grads)
    for k in SHAPES:
        np.testing.assert_allclose(np.asarray(ours[k]), want[k], rtol=1e-5, atol=1e-6)


def main():
    rng = np.random.default_rng(0)
    params, grads = make_tree(rng), make_tree(rng, 1e-2)
    n = sum(int(np.prod(s)) for s in SHAPES.values())
    check_same_update({k: v[:8] for k, v in params.items()}, {k: v[:8] for k, v in grads.items()})
    ref = NumpyAdam(params)
    rows = [("NumPy, fused by hand (in place)", best(lambda: ref.step(grads))),
            ("functrans.optim.adam, jit", best(functrans_runner(params, grads)))]
    rows += [(label, best(run)) for label, run in jax_runners(params, grads).items()]
    rows += [("numba loop by hand, new outputs", best(numba_runner(params, grads, False))),
             ("numba loop by hand, in place", best(numba_runner(params, grads, True)))]
    tiny = {k: v[:1] if v.ndim == 1 else v[:1, :1] for k, v in params.items()}
    rows += [("functrans, 6 leaves of 1 element", best(functrans_runner(tiny, tiny)))]
    base = rows[0][1]
    print(f"Adam update + apply_updates, {n / 1e6:.2f}M float32 parameters in {len(SHAPES)} "
          f"leaves (target: functrans <= 1.2x NumPy)")
    print(f"  {'':34s} {'ms':>8s} {'x NumPy':>8s}")
    for label, t in rows:
        print(f"  {label:34s} {t * 1e3:8.2f} {t / base:8.2f}")
    print("(the last three rows locate the time: one fused loop per leaf allocating its outputs "
          "as functrans does, the same in place, and functrans's fixed per-call cost)")


if __name__ == "__main__":
    main()
