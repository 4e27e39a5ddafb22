"""Diagnose vanishing and exploding gradients with functrans.diagnostics.grad_flow.

A deep ReLU network (20 layers by default) is initialised three ways: weights too small (the
signal and the gradient shrink at every layer: vanishing), too large (they grow: exploding), and
with He init (std sqrt(2 / fan_in), which keeps the gradient's size constant across depth).
``grad_flow(loss)(params, x, y)`` runs one backward pass and reports, per source line and per
parameter, the gradient's norm relative to the end nearest the loss, flagging the layers where it
has shrunk or grown more than 1000-fold.

Run:  python examples/grad_flow.py   (a few seconds; no data to download; --depth, --width)
"""
from __future__ import annotations

import argparse

import numpy as np

import functrans.numpy as jnp
from functrans.diagnostics import grad_flow

INITS = {  # weight std as a multiple of 1 / sqrt(fan_in); He init is sqrt(2)
    "too small": 0.4,
    "too large": 3.0,
    "He (good)": np.sqrt(2.0),
}


def init_params(rng, depth, width, gain):
    """depth layers of {"w": normal * gain / sqrt(width), "b": zeros}."""
    return [{"w": rng.normal(size=(width, width)) * gain / np.sqrt(width), "b": np.zeros(width)}
            for _ in range(depth)]


def loss(params, x, y):
    """Mean squared error of a ReLU MLP (the last layer linear) against the targets y."""
    h = x
    for layer in params[:-1]:
        z = h @ layer["w"] + layer["b"]   # two lines per layer, so that every layer
        h = jnp.maximum(z, 0.0)           # gets its own row in the report
    out = h @ params[-1]["w"] + params[-1]["b"]
    return jnp.mean((out - y) ** 2)


def summary(report):
    """Two lines: how much the gradient shrank or grew from the loss back to the first layer,
    and how many rows the report flagged."""
    first = report.lines[0]  # forward order: the first layer's first line
    return (f"loss {float(np.asarray(report.loss)):.4g}; the gradient reaching the first layer "
            f"is {first['relative']:.2e} x its size at the loss end\n"
            f"flagged: {len(report.vanishing)} vanishing, {len(report.exploding)} exploding "
            "(source-line runs and parameters)")


def parse_args(argv=None):
    """The command-line options (argv: a list of strings, default sys.argv[1:])."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    """Print a grad_flow report for each initialisation; returns {name: report}."""
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.batch, args.width))
    y = rng.normal(size=(args.batch, args.width))
    diagnose = grad_flow(loss)
    reports = {}
    for name, gain in INITS.items():
        params = init_params(rng, args.depth, args.width, gain)
        reports[name] = report = diagnose(params, x, y)
        title = f"{args.depth}-layer ReLU MLP, init {name}: std {gain:.2f} / sqrt(fan_in)"
        print(f"{title}\n{'=' * len(title)}")
        print(report)
        print(summary(report), end="\n\n")
    return reports



if __name__ == "__main__":
    main()
