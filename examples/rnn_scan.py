"""An Elman RNN trained with lax.scan + value_and_grad under jit.

Task: read a sequence x_1..x_T of numbers and output, at every step, the running sum
x_1 + ... + x_t. The recurrence h_t = tanh(W_h h_{t-1} + W_x x_t + b) is a ``lax.scan`` over
time (batched over sequences inside the step); the whole loss-and-gradient function is jitted,
so the forward scan and the reverse scan of the backward pass run compiled.

Run: python examples/rnn_scan.py   (well under a minute; the loss falls every epoch)
"""
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import lax

T, BATCH, HIDDEN = 12, 64, 16


def init_params(rng):
    """Small random weights for a 1-input, 1-output Elman RNN with HIDDEN units."""
    return {
        "W_h": rng.normal(0, 0.3, (HIDDEN, HIDDEN)),
        "W_x": rng.normal(0, 0.5, (1, HIDDEN)),
        "b": np.zeros(HIDDEN),
        "w_o": rng.normal(0, 0.3, (HIDDEN, 1)),
        "b_o": np.zeros(1),
    }


def predict(params, xs):
    """xs: (T, batch, 1) -> predictions (T, batch, 1)."""
    def step(h, x):
        h = jnp.tanh(h @ params["W_h"] + x @ params["W_x"] + params["b"])
        return h, h @ params["w_o"] + params["b_o"]

    h0 = jnp.zeros((xs.shape[1], HIDDEN))
    _, ys = lax.scan(step, h0, xs)
    return ys


def loss(params, xs, targets):
    """Mean squared error of the running-sum predictions."""
    return jnp.mean((predict(params, xs) - targets) ** 2)


def make_batch(rng):
    """Inputs uniform in [-0.5, 0.5] and their running sums, both (T, BATCH, 1)."""
    xs = rng.uniform(-0.5, 0.5, (T, BATCH, 1))
    return xs, np.cumsum(xs, axis=0)


def adam_update(params, grads, state, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam step in plain NumPy (the optimiser needs no transforms)."""
    m, v, t = state
    t += 1
    new = {}
    for k in params:
        m[k] = b1 * m[k] + (1 - b1) * grads[k]
        v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
        mhat, vhat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
        new[k] = params[k] - lr * mhat / (np.sqrt(vhat) + eps)
    return new, (m, v, t)


def main(epochs=8, steps_per_epoch=60, seed=0, use_jit=True):
    """Train and print the mean loss per epoch; returns the list of epoch losses. use_jit=False
    runs the loss and gradient eagerly (no compilation)."""
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    state = ({k: np.zeros_like(p) for k, p in params.items()},
             {k: np.zeros_like(p) for k, p in params.items()}, 0)
    loss_and_grad = ft.value_and_grad(loss)
    loss_and_grad = ft.jit(loss_and_grad) if use_jit else loss_and_grad
    history = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for _ in range(steps_per_epoch):
            xs, targets = make_batch(rng)
            value, grads = loss_and_grad(params, xs, targets)
            grads = {k: np.asarray(g) for k, g in grads.items()}
            params, state = adam_update(params, grads, state, lr=1e-2 * 0.7 ** epoch)
            total += float(value)
        history.append(total / steps_per_epoch)
        print(f"epoch {epoch}: mean loss {history[-1]:.5f}  ({time.perf_counter() - t0:.1f} s)")
    xs, targets = make_batch(rng)
    pred = np.asarray(predict(params, xs))
    print("running sum of a test sequence:", np.round(targets[:, 0, 0], 2))
    print("RNN prediction:                ", np.round(pred[:, 0, 0], 2))
    return history


if __name__ == "__main__":
    main()
