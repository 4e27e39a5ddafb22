"""Per-example gradients for a batch of 128 on an MLP 784-256-10 (float32, tanh, softmax
cross-entropy): functrans vmap(grad) (eager and under jit) against a Python loop of grad,
hand-written NumPy (einsum outer products), and JAX / PyTorch when installed.

Prints one table: median wall time per batch and the ratio to hand-written NumPy.
Run:  python benchmarks/vmap_bench.py [--repeats N]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp

BATCH, SIZES, DTYPE = 128, (784, 256, 10), np.float32


def make_problem(seed=0):
    """(params, x, y_onehot) in float32."""
    rng = np.random.default_rng(seed)
    (i, h, o) = SIZES
    params = {"w1": (rng.standard_normal((i, h)) / np.sqrt(i)).astype(DTYPE), "b1": np.zeros(h, DTYPE),
              "w2": (rng.standard_normal((h, o)) / np.sqrt(h)).astype(DTYPE), "b2": np.zeros(o, DTYPE)}
    x = rng.standard_normal((BATCH, i)).astype(DTYPE)
    y = np.eye(o, dtype=DTYPE)[rng.integers(0, o, BATCH)]
    return params, x, y


def loss(params, x, y):
    """Cross-entropy of ONE example."""
    a1 = jnp.tanh(x @ params["w1"] + params["b1"])
    logits = a1 @ params["w2"] + params["b2"]
    shifted = logits - jnp.max(logits)
    return -jnp.sum(y * (shifted - jnp.log(jnp.sum(jnp.exp(shifted)))))


def numpy_per_example_grads(params, x, y):
    """Hand-written batched backward pass; per-example weight gradients by einsum."""
    a1 = np.tanh(x @ params["w1"] + params["b1"])
    logits = a1 @ params["w2"] + params["b2"]
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d_logits = p - y
    d_h1 = (d_logits @ params["w2"].T) * (1 - a1 * a1)
    return {"w1": np.einsum("bi,bj->bij", x, d_h1), "b1": d_h1,
            "w2": np.einsum("bi,bj->bij", a1, d_logits), "b2": d_logits}


def loop_of_grad(params, x, y):
    """grad called once per example, stacked with NumPy."""
    g = ft.grad(loss)
    per = [g(params, xi, yi) for xi, yi in zip(x, y)]
    return {k: np.stack([np.asarray(p[k]) for p in per]) for k in params}


def _timeit(f, repeats):
    f()  # warm-up (tracing, compilation)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = f()
        ft.block_until_ready(out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _jax_or_none():
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    import jax
    import jax.numpy as jjnp

    def jloss(params, x, y):
        a1 = jjnp.tanh(x @ params["w1"] + params["b1"])
        logits = a1 @ params["w2"] + params["b2"]
        return -jjnp.sum(y * jax.nn.log_softmax(logits))
    f = jax.jit(jax.vmap(jax.grad(jloss), in_axes=(None, 0, 0)))
    return lambda p, x, y: jax.block_until_ready(f(p, x, y))


def _torch_or_none():
    try:
        import torch
        from torch.func import grad, vmap
    except ImportError:
        return None

    def tloss(params, x, y):
        a1 = torch.tanh(x @ params["w1"] + params["b1"])
        return -(y * torch.log_softmax(a1 @ params["w2"] + params["b2"], -1)).sum()
    f = vmap(grad(tloss), in_dims=(None, 0, 0))
    return lambda p, x, y: f({k: torch.from_numpy(v) for k, v in p.items()},
                             torch.from_numpy(x), torch.from_numpy(y))


def main(repeats=5, loop_repeats=1):
    """Run every method once for warm-up then `repeats` times; print the table."""
    params, x, y = make_problem()
    vg = ft.vmap(ft.grad(loss), in_axes=(None, 0, 0))
    jvg = ft.jit(vg)
    methods = [
        ("hand-written NumPy (einsum)", lambda: numpy_per_example_grads(params, x, y), repeats),
        ("functrans vmap(grad)", lambda: vg(params, x, y), repeats),
        ("functrans jit(vmap(grad))", lambda: jvg(params, x, y), repeats),
        ("functrans Python loop of grad", lambda: loop_of_grad(params, x, y), loop_repeats),
    ]
    for name, make in (("JAX jit(vmap(grad))", _jax_or_none), ("PyTorch func.vmap(grad)", _torch_or_none)):
        f = make()
        methods.append((name, None if f is None else (lambda f=f: f(params, x, y)), repeats))

    ref = numpy_per_example_grads(params, x, y)
    rows = []
    for name, f, reps in methods:
        if f is None:
            rows.append((name, None, None))
            continue
        t, out = _timeit(f, reps)
        err = max(float(np.max(np.abs(np.asarray(out[k]) - ref[k]))) for k in ref)
        rows.append((name, t, err))
    base = rows[0][1]
    print(f"per-example gradients, batch {BATCH}, MLP {'-'.join(map(str, SIZES))}, {np.dtype(DTYPE).name}")
    print(f"{'method':34s} {'time/batch':>12s} {'vs NumPy':>9s} {'max |diff|':>11s}")
    for name, t, err in rows:
        if t is None:
            print(f"{name:34s} {'n/a':>12s} {'n/a':>9s} {'n/a':>11s}")
        else:
            print(f"{name:34s} {t * 1e3:10.1f}ms {t / base:8.2f}x {err:11.1e}")
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    main(repeats=parser.parse_args().repeats)
