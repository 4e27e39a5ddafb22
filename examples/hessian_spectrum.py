"""The Hessian spectrum of a small MLP's loss on scikit-learn's bundled digits, before and after
training it with L-BFGS: top eigenvalues (Lanczos), trace (Hutchinson) and spectral density
(stochastic Lanczos quadrature), all from Hessian-vector products (docs/second_order.md).

At initialisation the spectrum has a tail of negative eigenvalues (a saddle-like region);
after training, near a minimum, it is almost positive semi-definite and concentrated near 0,
with a few outlying top eigenvalues. With matplotlib installed, --plot FILE saves the two
densities. Runs in under a minute (the HVP is jitted once; the L-BFGS steps run eagerly).

Run:  pip install scikit-learn  (an optional extra)  &&  python examples/hessian_spectrum.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn, optim


def load_digits_data():
    """(x, labels): the 1797 8x8 digits scaled to [0, 1] and their integer labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this example needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    return digits.data / 16.0, digits.target


def init_params(rng, sizes):
    """{'w0', 'b0', 'w1', 'b1', ...}: scaled normal weights, zero biases."""
    params = {}
    for i, (m, n) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"w{i}"] = rng.normal(size=(m, n)) / np.sqrt(m)
        params[f"b{i}"] = np.zeros(n)
    return params


def loss(params, x, labels, weight_decay=1e-3):
    """Mean softmax cross-entropy of a tanh MLP (tanh: a smooth loss, so a defined Hessian) plus
    weight_decay/2 times the squared weights (so training cannot drive the loss, and with it
    the Hessian, to 0 on these 1797 images)."""
    n_layers = len(params) // 2
    for i in range(n_layers - 1):
        x = jnp.tanh(x @ params[f"w{i}"] + params[f"b{i}"])
    logits = x @ params[f"w{n_layers - 1}"] + params[f"b{n_layers - 1}"]
    logp = nn.log_softmax(logits)
    decay = sum(jnp.sum(params[f"w{i}"] ** 2) for i in range(n_layers))
    nll = -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))
    return nll + 0.5 * weight_decay * decay


def train_lbfgs(params, x, labels, steps):
    """Full-batch L-BFGS (optax's semantics) for ``steps`` iterations; returns the params. The
    step runs eagerly: 50 steps cost less than compiling it (jit pays off on longer runs)."""
    opt = optim.lbfgs()
    value_and_grad = optim.value_and_grad_from_state(loss)

    def step(params, state):
        value, grad = value_and_grad(params, x, labels, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=loss, x=x, labels=labels)
        return optim.apply_updates(params, updates), state

    state = opt.init(params)
    for _ in range(steps):
        params, state = step(params, state)
    return params


def main(argv=None):
    """Prints the spectra before and after training; returns them (two HessianSpectrum)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--steps", type=int, default=50, help="L-BFGS iterations")
    ap.add_argument("--k", type=int, default=5, help="number of top eigenvalues")
    ap.add_argument("--plot", metavar="FILE", help="save the densities (needs matplotlib)")
    args = ap.parse_args(argv)

    x, labels = load_digits_data()
    x, labels = jnp.asarray(x), jnp.asarray(labels)
    params = ft.tree_util.tree_map(jnp.asarray, init_params(np.random.default_rng(0),
                                                             (64, args.hidden, 10)))
    t = time.perf_counter()
    print(f"functrans.hessian_spectrum of a 64-{args.hidden}-10 tanh MLP's loss on the digits")
    before = ft.hessian_spectrum(loss, params, x, labels, k=args.k, key=0)
    print(f"at initialisation (loss {float(loss(params, x, labels)):.4f}):\n{before}\n")

    t_train = time.perf_counter()
    params = train_lbfgs(params, x, labels, args.steps)
    t_train = time.perf_counter() - t_train
    after = ft.hessian_spectrum(loss, params, x, labels, k=args.k, key=0)
    print(f"after {args.steps} L-BFGS steps (loss {float(loss(params, x, labels)):.4f}):\n"
          f"{after}\n")
    low = [s.density.grid[np.argmax(s.density.values > 1e-3 * s.density.values.max())]
           for s in (before, after)]
    print(f"lowest point of the density (above 1e-3 of its peak): {low[0]:.3f} -> {low[1]:.3f}; "
          f"{time.perf_counter() - t:.1f} s in all, {t_train:.1f} s of it training")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots()
        before.plot(ax)
        after.plot(ax)
        ax.legend(["initialisation", "trained"])
        fig.savefig(args.plot)
        print(f"saved {args.plot}")
    return before, after


if __name__ == "__main__":
    main()
