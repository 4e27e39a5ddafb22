"""Cost of functrans.diagnostics.grad_flow against one gradient (target <= 2.5x), eagerly and
under jit, on a deep tanh MLP (8 layers, width 256, batch 128, float32). One run, ratio table.

Run:  python benchmarks/grad_flow_bench.py
"""
from __future__ import annotations


import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans.diagnostics import grad_flow
from timing import best_adaptive

DEPTH, WIDTH, BATCH = 8, 256, 128


def loss(params, x, y):
    h = x
    for w, b in params:
        h = jnp.tanh(h @ w + b)
    return jnp.mean((h - y) ** 2)


def main():
    rng = np.random.default_rng(0)
    params = [(jnp.asarray(rng.normal(size=(WIDTH, WIDTH)).astype(np.float32) / np.sqrt(WIDTH)),
               jnp.zeros(WIDTH, jnp.float32)) for _ in range(DEPTH)]
    x = jnp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))
    y = jnp.asarray(rng.normal(size=(BATCH, WIDTH)).astype(np.float32))
    grad, flow = ft.grad(loss), grad_flow(loss)
    jgrad, jflow = ft.jit(grad), ft.jit(flow)
    rows = [("eager", best_adaptive(lambda: grad(params, x, y)), best_adaptive(lambda: flow(params, x, y))),
            ("jit", best_adaptive(lambda: jgrad(params, x, y)), best_adaptive(lambda: jflow(params, x, y)))]
    print(f"grad_flow vs grad ({DEPTH} tanh layers, width {WIDTH}, batch {BATCH}, float32); "
          "target <= 2.5x")
    for name, g, f in rows:
        print(f"  {name:5s}  grad {g * 1e3:8.2f} ms   grad_flow {f * 1e3:8.2f} ms   "
              f"ratio {f / g:5.2f}x")


if __name__ == "__main__":
    main()
