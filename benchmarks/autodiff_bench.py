"""Eager (un-jitted) autodiff overhead, printed as a ratio table from one run.

1. grad of a small scalar polynomial, per call, on a functrans.Array and on a Python float
   (target <= 100 us); autograd, torch.func and jax are timed too when installed.
2. value_and_grad of an MLP loss (784-512-256-10, batch 256, float32) against hand-written
   NumPy backpropagation (target <= 1.3x).
3. Hessian-vector product (functrans.hvp) of the same loss against its gradient (target <= 3x).

Run:  python benchmarks/autodiff_bench.py [--profile]
"""
from __future__ import annotations

import argparse
import timeit

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn


def best_time(f, min_total=0.5, repeat=5):
    """Best-of-repeat seconds per call of f()."""
    f()
    n, t = 1, 0.0
    while True:
        t = timeit.timeit(f, number=n)
        if t >= min_total / repeat:
            break
        n *= 2
    return min(timeit.repeat(f, number=n, repeat=repeat)) / n


def best_times(fns, rounds=7):
    """Best seconds per call of each f in fns, measured in alternating rounds, so that a change
    in machine load during the run affects both sides of a ratio alike."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            best[i] = min(best[i], best_time(f, min_total=0.2, repeat=2))
    return best


def poly(x):
    return 3.0 * x ** 3 - 2.0 * x ** 2 + x - 5.0


def other_frameworks_poly():
    """{name: seconds per grad call} for the frameworks that are installed."""
    out = {}
    try:
        import autograd
        g = autograd.grad(poly)
        out["autograd"] = best_time(lambda: g(1.5))
    except ImportError:
        out["autograd"] = None
    try:
        import torch
        import torch.func
        g = torch.func.grad(poly)
        x = torch.tensor(1.5)
        out["torch.func"] = best_time(lambda: g(x))
    except ImportError:
        out["torch.func"] = None
    try:
        import jax
        g = jax.grad(poly)
        out["jax"] = best_time(lambda: g(1.5).block_until_ready())
    except ImportError:
        out["jax"] = None
    return out


def init_mlp(rng, sizes, dtype=np.float32):
    return [((rng.normal(size=(m, n)) * np.sqrt(2.0 / m)).astype(dtype), np.zeros(n, dtype))
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp_loss(params, x, onehot):
    """Mean softmax cross-entropy of a relu MLP."""
    h = x
    for w, b in params[:-1]:
        h = nn.relu(h @ w + b)
    w, b = params[-1]
    return -jnp.mean(jnp.sum(onehot * nn.log_softmax(h @ w + b), axis=-1))


def numpy_value_and_grad(params, x, onehot):
    """The same loss and its gradient by hand-written backpropagation."""
    acts, pre = [x], []
    for w, b in params[:-1]:
        pre.append(acts[-1] @ w + b)
        acts.append(np.maximum(pre[-1], 0))
    w, b = params[-1]
    z = acts[-1] @ w + b
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    logp = z - np.log(s)
    n = x.shape[0]
    loss = -np.sum(onehot * logp) / n
    delta = (e / s - onehot) / n
    grads = [None] * len(params)
    for layer in reversed(range(len(params))):
        grads[layer] = (acts[layer].T @ delta, delta.sum(0))
        if layer:
            delta = (delta @ params[layer][0].T) * (pre[layer - 1] > 0)
    return loss, grads


def fmt(t):
    return "n/a" if t is None else f"{t * 1e6:10.1f} us" if t < 1e-2 else f"{t * 1e3:10.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", action="store_true", help="cProfile the eager grad call")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    params = init_mlp(rng, [784, 512, 256, 10])
    x = rng.normal(size=(256, 784)).astype(np.float32)
    onehot = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
    vg = ft.value_and_grad(mlp_loss)
    loss, grads = vg(params, x, onehot)
    loss_np, grads_np = numpy_value_and_grad(params, x, onehot)
    assert np.allclose(loss, loss_np, rtol=1e-4)
    for (a, b), (c, d) in zip(grads, grads_np):
        assert a.dtype == np.float32 and np.allclose(a, c, rtol=1e-3, atol=1e-5)
    tangent = init_mlp(np.random.default_rng(1), [784, 512, 256, 10])
    g_loss = ft.grad(mlp_loss)
    # each ratio's two sides alternate with each other only: the HVP's larger temporaries
    # would otherwise change the allocator's state for the calls that follow it
    t_vg, t_np = best_times([lambda: vg(params, x, onehot),
                             lambda: numpy_value_and_grad(params, x, onehot)])
    t_grad, t_hvp = best_times([
        lambda: g_loss(params, x, onehot),
        lambda: ft.hvp(lambda p: mlp_loss(p, x, onehot), (params,), (tangent,))])

    # the other frameworks last: once JAX's (XLA's) thread pool has run in a process, OpenBLAS's
    # threads run slower in it (measured), which would skew the BLAS-bound MLP rows above
    g_poly = ft.grad(poly)
    assert float(g_poly(1.5)) == 9 * 1.5 ** 2 - 4 * 1.5 + 1
    x_arr = jnp.asarray(1.5)
    t_poly, t_poly_arr = best_times([lambda: g_poly(1.5), lambda: g_poly(x_arr)])
    others = other_frameworks_poly()

    print("functrans eager autodiff (one run)")
    print(f"{'benchmark':58s} {'time':>13s} {'ratio':>8s} {'target':>8s}")
    print(f"{'grad(poly) per call, functrans.Array input':58s} {fmt(t_poly_arr):>13s} "
          f"{t_poly_arr / 100e-6:8.2f} {'<= 1.00':>8s}  (vs 100 us)")
    print(f"{'grad(poly) per call, Python float input':58s} {fmt(t_poly):>13s} "
          f"{t_poly / 100e-6:8.2f} {'<= 1.00':>8s}  (vs 100 us)")
    for name, t in others.items():
        ratio = "" if t is None else f"{t_poly_arr / t:8.2f}"
        # the issue measured autograd at 108 us against the 100 us target: <= 0.93x autograd
        # is the same target on a machine of another speed
        target = f"{'<= 0.93':>8s}" if name == "autograd" and t is not None else ""
        print(f"{'  ' + name + ' grad(poly) per call':58s} {fmt(t):>13s} {ratio:>8s} {target}"
              + ("  (functrans on an Array / it)" if t is not None else ""))
    print(f"{'value_and_grad MLP 784-512-256-10 b256 f32':58s} {fmt(t_vg):>13s} "
          f"{t_vg / t_np:8.2f} {'<= 1.30':>8s}  (vs NumPy backprop)")
    print(f"{'  NumPy hand-written backprop':58s} {fmt(t_np):>13s}")
    print(f"{'hvp MLP (forward-over-reverse)':58s} {fmt(t_hvp):>13s} {t_hvp / t_grad:8.2f} "
          f"{'<= 3.00':>8s}  (vs grad)")
    print(f"{'  grad MLP':58s} {fmt(t_grad):>13s}")

    if args.profile:
        import cProfile
        import pstats
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(2000):
            g_poly(1.5)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
