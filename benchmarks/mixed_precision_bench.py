"""Mixed precision: the digits MLP's test accuracy in bfloat16 (float32 master weights, dynamic
loss scaling) against float32 (target: within 1 point), and the cost of one bfloat16 gradient
of a tanh MLP (3 layers, width 256, batch 128) against float32, eagerly and under jit, and a
jitted elementwise function (tanh(x) * 2 + 1 on 2**22 elements) with bfloat16 in and out
against float32 (the kernel reads and writes bfloat16's 2 bytes per element). One run.

Run:  pip install scikit-learn  &&  python benchmarks/mixed_precision_bench.py
      python benchmarks/mixed_precision_bench.py --elementwise-only
"""
from __future__ import annotations

import argparse
import importlib.util
import pathlib

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from timing import best_adaptive

DEPTH, WIDTH, BATCH = 3, 256, 128


def _example():
    path = pathlib.Path(__file__).resolve().parent.parent / "examples" / "train_bf16.py"
    spec = importlib.util.spec_from_file_location("train_bf16", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def loss(params, x):
    h = x
    for w in params:
        h = jnp.tanh(h @ w)
    return jnp.mean(h * h).astype(jnp.float32)


def gradient_times():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(WIDTH, WIDTH)).astype(np.float32) / np.sqrt(WIDTH)
          for _ in range(DEPTH)]
    x = rng.normal(size=(BATCH, WIDTH)).astype(np.float32)
    grad = ft.grad(loss)
    jgrad = ft.jit(grad)
    rows = []
    for dt in (jnp.float32, jnp.bfloat16):
        p, xd = [jnp.asarray(w).astype(dt) for w in ws], jnp.asarray(x).astype(dt)
        rows.append((np.dtype(dt).name, best_adaptive(lambda: grad(p, xd)), best_adaptive(lambda: jgrad(p, xd))))
    return rows


ELEMENTS = 2 ** 22


def elementwise_times():
    """(dtype name, seconds) of jit(tanh(x) * 2 + 1) on ELEMENTS values of each dtype."""
    f = ft.jit(lambda x: jnp.tanh(x) * 2 + 1)
    x = np.random.default_rng(0).uniform(-3, 3, ELEMENTS).astype(np.float32)
    return [(np.dtype(dt).name, best_adaptive(lambda xd=x.astype(dt): f(xd)))
            for dt in (jnp.float32, jnp.bfloat16)]


def print_elementwise():
    (_, t32), (_, t16) = elementwise_times()
    print(f"jit(tanh(x) * 2 + 1), {ELEMENTS} elements: float32 {t32 * 1e3:.2f} ms, bfloat16 "
          f"{t16 * 1e3:.2f} ms ({t16 / t32:.2f}x float32)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--elementwise-only", action="store_true",
                    help="only the elementwise jit timing (no training, no gradients)")
    args = ap.parse_args()
    print_elementwise()
    if args.elementwise_only:
        return
    ex = _example()
    train_args = argparse.Namespace(epochs=args.epochs, batch_size=64, lr=0.05, hidden=128,
                                    seed=0)
    data = ex.load_data(0)
    accs = {name: ex.train(dt, data, train_args)[0]
            for name, dt in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16))}
    print(f"digits MLP test accuracy: float32 {100 * accs['float32']:.2f}%, bfloat16 "
          f"{100 * accs['bfloat16']:.2f}% ({100 * (accs['bfloat16'] - accs['float32']):+.2f} "
          "points; target within 1)")
    print(f"gradient of a {DEPTH}-layer tanh MLP (width {WIDTH}, batch {BATCH}):")
    for name, eager, jitted in gradient_times():
        print(f"  {name:8s}  eager {eager * 1e3:8.2f} ms   jit {jitted * 1e3:8.2f} ms")


if __name__ == "__main__":
    main()
