"""Cost of functrans.diagnostics.grad_flow against one gradient (target <= 2.5x), eagerly and
under jit, on a deep tanh MLP (8 layers, width 256, batch 128, float32). One run, ratio table.

Run:  python benchmarks/grad_flow_bench.py
"""
from __future__ import annotations

import timeit

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans.diagnostics import grad_flow

DEPTH, WIDTH, BATCH = 8, 256, 128


def loss(params, x, y):
    h = x
    for w, b in params:
        h = jnp.tanh(h @ w + b)
    return jnp.mean((h - y) ** 2)


def best(f, rounds=5):
    """Best seconds per call of f() over a few rounds (after one warm-up call)."""
    ft.block_until_ready(f())
    n = max(1, int(0.2 / max(timeit.timeit(f, number=1), 1e-6)))
    return min(timeit.repeat(lambda: ft.block_until_ready(f()), number=n, repeat=rounds)) / n


def main():
    rng = np.random.default_rng(0)
    params = [(jnp.asarray(rng.normal(size=(WIDTH, WIDTH)).astype(np.float32) / np.sqrt(WIDTH)),
               jnp.zeros(WIDTH, jnp.float32)) for _ in range(DEPTH)]
    x = jnp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))
    grad, flow = ft.grad(loss), grad_flow(loss)
    jgrad, jflow = ft.jit(grad), ft.jit(flow)
    rows = [("eager", best(lambda: grad(params, x, y)), best(lambda: flow(params, x, y))),
            ("jit", best(lambda: jgrad(params, x, y)), best(lambda: jflow(params, x, y)))]
    print(f"grad_flow vs grad ({DEPTH} tanh layers, width {WIDTH}, batch {BATCH}, float32); "
          "target <= 2.5x")
    for name, g, f in rows:
        print(f"  {name:5s}  grad {g * 1e3:8.2f} ms   grad_flow {f * 1e3:8.2f} ms   "
              f"ratio {f / g:5.2f}x")


if __name__ == "__main__":
    main()
