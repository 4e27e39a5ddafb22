"""Differentially private SGD (DP-SGD) on scikit-learn's bundled digits dataset.

DP-SGD needs the gradient of every example separately: each is clipped to a norm bound C
before the batch is averaged, and Gaussian noise of scale sigma * C is added, so that no single
example can move the model by much. With functrans this is one line,
``vmap(grad(loss), in_axes=(None, 0, 0))`` -- the per-example loss written for ONE example,
batched by vmap instead of a Python loop over the batch.

Run:  pip install -e '.[examples]' && python examples/per_example_grads.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import random


def load_digits_split(key, test_fraction=0.2):
    """(x_train, y_train, x_test, y_test): 8x8 digit images scaled to [0, 1], labels 0..9."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    x, y = digits.data / 16.0, digits.target.astype(np.int64)
    order = np.asarray(random.permutation(key, len(x)))
    n_test = int(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def init_params(key, sizes=(64, 64, 10)):
    """MLP weights (scaled normal) and zero biases, one dict per layer."""
    keys = random.split(key, len(sizes) - 1)
    return [{"w": np.asarray(random.normal(k, (m, n))) / np.sqrt(m), "b": np.zeros(n)}
            for k, m, n in zip(keys, sizes[:-1], sizes[1:])]


def predict(params, x):
    """Logits of the MLP (tanh hidden layers) for one example or a batch."""
    h = x
    for layer in params[:-1]:
        h = jnp.tanh(h @ layer["w"] + layer["b"])
    return h @ params[-1]["w"] + params[-1]["b"]


def loss(params, x, label):
    """Softmax cross-entropy of ONE example (x: (64,), label: an int)."""
    logits = predict(params, x)
    shifted = logits - jnp.max(logits)
    log_probs = shifted - jnp.log(jnp.sum(jnp.exp(shifted)))
    return -jnp.sum(log_probs * (jnp.arange(10) == label))


per_example_grads = ft.vmap(ft.grad(loss), in_axes=(None, 0, 0))


def private_gradient(params, x, y, key, clip_norm, noise_multiplier):
    """The DP-SGD gradient: per-example gradients clipped to clip_norm (jointly over all
    parameters), summed, perturbed by N(0, (noise_multiplier * clip_norm)^2), averaged."""
    grads = per_example_grads(params, x, y)  # every leaf: (batch, *param.shape)
    leaves = [g for layer in grads for g in layer.values()]
    sq_norms = sum(jnp.sum(jnp.reshape(g, (g.shape[0], -1)) ** 2, axis=1) for g in leaves)
    scale = jnp.minimum(1.0, clip_norm / (jnp.sqrt(sq_norms) + 1e-12))  # (batch,)
    keys = random.split(key, len(leaves))
    noisy, i = [], 0
    for layer in grads:
        out = {}
        for name, g in layer.items():
            clipped = jnp.sum(g * jnp.reshape(scale, (-1,) + (1,) * (g.ndim - 1)), axis=0)
            noise = noise_multiplier * clip_norm * random.normal(keys[i], clipped.shape)
            out[name] = (clipped + noise) / x.shape[0]
            i += 1
        noisy.append(out)
    return noisy


def train_step(params, x, y, key, lr, clip_norm, noise_multiplier):
    """One DP-SGD update."""
    g = private_gradient(params, x, y, key, clip_norm, noise_multiplier)
    return [{k: p[k] - lr * gl[k] for k in p} for p, gl in zip(params, g)]


def accuracy(params, x, y):
    """Fraction of examples whose arg-max logit is the label."""
    return float(np.mean(np.argmax(np.asarray(predict(params, x)), axis=1) == y))


def main(epochs=10, batch_size=64, lr=0.5, clip_norm=1.0, noise_multiplier=0.5, seed=0, use_jit=False):
    """Train with DP-SGD and print test accuracy per epoch; returns the final accuracy."""
    root = random.PRNGKey(seed)
    data_key, init_key, train_key = random.split(root, 3)
    x_tr, y_tr, x_te, y_te = load_digits_split(data_key)
    params = init_params(init_key)
    step = ft.jit(train_step, static_argnums=(4, 5, 6)) if use_jit else train_step
    print(f"digits: {len(x_tr)} train / {len(x_te)} test; batch {batch_size}, clip {clip_norm}, "
          f"noise multiplier {noise_multiplier}")
    print(f"epoch 0: test accuracy {accuracy(params, x_te, y_te):.3f}")
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_key, train_key = random.split(train_key)
        order = np.asarray(random.permutation(epoch_key, len(x_tr)))
        step_keys = random.split(random.fold_in(epoch_key, epoch), len(x_tr) // batch_size)
        for b, k in enumerate(step_keys):
            idx = order[b * batch_size:(b + 1) * batch_size]
            params = step(params, x_tr[idx], y_tr[idx], k, lr, clip_norm, noise_multiplier)
            params = ft.tree_util.tree_map(np.asarray, params)
        acc = accuracy(params, x_te, y_te)
        print(f"epoch {epoch}: test accuracy {acc:.3f}  ({time.perf_counter() - t0:.1f} s)")
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--noise-multiplier", type=float, default=0.5)
    parser.add_argument("--clip-norm", type=float, default=1.0)
    parser.add_argument("--jit", action="store_true",
                        help="compile the training step with functrans.jit (numba); the first "
                             "compile takes a while, later steps and runs are much faster")
    a = parser.parse_args()
    main(epochs=a.epochs, clip_norm=a.clip_norm, noise_multiplier=a.noise_multiplier,
         use_jit=a.jit)
