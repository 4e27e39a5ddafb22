"""Train an MLP on scikit-learn's digits in bfloat16, with float32 master weights and dynamic
loss scaling, next to the same MLP trained in float32.

The recipe (docs/mixed_precision.md): the optimizer keeps float32 parameters; each step casts
them to bfloat16, runs the forward and backward pass in bfloat16 on a loss multiplied by the
loss scale, casts the gradients back to float32, divides them by the scale, and applies the
update only when they are all finite (the scale halves otherwise, and doubles after ``period``
good steps). Prints both test accuracies; they agree to within a point.

Run:  pip install scikit-learn  (an optional extra)  &&  python examples/train_bf16.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn, optim
from functrans.tree_util import tree_map


def load_data(seed, test_fraction=0.25):
    """(x_train, y_train, x_test, y_test): 8x8 images scaled to [0, 1] (float32), labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this example needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def init_params(rng, sizes):
    """float32 master weights: a list of (W, b) per layer, He-initialised W, zero b."""
    return [((rng.normal(size=(m, n)) * np.sqrt(2.0 / m)).astype(np.float32),
             np.zeros(n, np.float32)) for m, n in zip(sizes[:-1], sizes[1:])]


def predict(params, x):
    """Logits of the MLP (relu hidden layers), in the dtype of params and x."""
    for w, b in params[:-1]:
        x = nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def loss_fn(params, x, labels, dtype):
    """Mean softmax cross-entropy of the MLP run in ``dtype`` (the master params and the
    batch cast to it); the softmax is taken in float32, as mixed-precision recipes do."""
    low = tree_map(lambda p: p.astype(dtype), params)
    logits = predict(low, x.astype(dtype)).astype(jnp.float32)
    return -jnp.mean(jnp.sum(nn.one_hot(labels, 10) * nn.log_softmax(logits), axis=-1))


def make_step(opt, dtype, use_jit=True):
    """The (jitted) training step (params, opt_state, loss_scale, x, labels) -> the next three
    and the loss; a step whose gradients overflowed leaves params and opt_state as they were."""
    def step(params, opt_state, scale, x, labels):
        def scaled_loss(p):
            return scale.scale(loss_fn(p, x, labels, dtype))
        loss, grads = ft.value_and_grad(scaled_loss)(params)
        grads = scale.unscale(grads)
        finite = optim.all_finite(grads)
        updates, new_state = opt.update(grads, opt_state, params)
        new_params = optim.apply_updates(params, updates)
        params, opt_state = optim.select_tree(finite, (new_params, new_state),
                                              (params, opt_state))
        return params, opt_state, scale.adjust(finite), scale.unscale(loss)
    return ft.jit(step) if use_jit else step


def accuracy(params, x, labels, dtype):
    """The fraction of x classified correctly by the MLP run in dtype."""
    low = tree_map(lambda p: jnp.asarray(p).astype(dtype), params)
    logits = np.asarray(predict(low, jnp.asarray(x).astype(dtype)).astype(jnp.float32))
    return float(np.mean(np.argmax(logits, axis=1) == labels))


def train(dtype, data, args):
    """Trains the MLP in dtype; returns (test accuracy, final loss scale, skipped steps, s)."""
    x_train, y_train, x_test, y_test = data
    params = init_params(np.random.default_rng(args.seed), [64, args.hidden, 10])
    opt = optim.sgd(args.lr, momentum=0.9)
    opt_state = opt.init(params)
    scale = (optim.DynamicLossScale(2.0 ** 15) if dtype == jnp.bfloat16
             else optim.NoOpLossScale())
    step, order_rng, skipped = (make_step(opt, dtype, not args.no_jit),
                                np.random.default_rng(args.seed), 0)
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = order_rng.permutation(len(x_train))
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[i:i + args.batch_size]
            old = float(scale.loss_scale)
            params, opt_state, scale, loss = step(params, opt_state, scale, x_train[idx],
                                                  y_train[idx])
            skipped += float(scale.loss_scale) < old
    seconds = time.perf_counter() - t0
    return accuracy(params, x_test, y_test, dtype), float(scale.loss_scale), skipped, seconds


def main(argv=None):
    """Trains in float32 and in bfloat16; returns {"float32": accuracy, "bfloat16": accuracy}."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-jit", action="store_true", help="run the steps eagerly")
    args = ap.parse_args(argv)
    data = load_data(args.seed)
    results = {}
    for name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        acc, final_scale, skipped, seconds = train(dtype, data, args)
        results[name] = acc
        print(f"{name:>8}: test accuracy {100 * acc:.2f}%  ({seconds:.1f} s; final loss scale "
              f"{final_scale:g}, {skipped} overflowed steps skipped)")
    print(f"bfloat16 - float32: {100 * (results['bfloat16'] - results['float32']):+.2f} points")
    return results


if __name__ == "__main__":
    main()
