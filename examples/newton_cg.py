"""L2-regularised logistic regression trained by Newton-CG, against plain gradient descent.

Newton's method solves H p = -g for the step p at every iteration. Newton-CG never forms the
Hessian H: conjugate gradients needs only Hessian-vector products, and ``functrans.hvp``
(forward-over-reverse: a jvp of grad) gives one at about the cost of a couple of gradients.
``functrans.optim.newton_cg`` does it all (``functrans.scipy.sparse.linalg.cg`` on damped HVPs,
a backtracking line search, Levenberg-Marquardt damping; docs/solvers.md). Newton-CG converges
quadratically -- a handful of outer iterations -- where gradient descent needs hundreds.

Run:  python examples/newton_cg.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn, optim


def make_data(rng, n=600, d=20):
    """Features (n, d) on very different scales (an ill-conditioned problem, as raw
    unnormalised features are) and 0/1 labels from a noisy linear model."""
    x = rng.normal(size=(n, d)) * np.logspace(-1.5, 0.5, d)
    w_true = rng.normal(size=d) / np.logspace(-1.5, 0.5, d)
    p = 1 / (1 + np.exp(-(x @ w_true)))
    return x, (rng.uniform(size=n) < p).astype(np.float64)


def make_loss(x, y, l2):
    """Mean logistic loss plus (l2 / 2) |w|^2, written stably with log_sigmoid."""
    def loss(w):
        z = x @ w
        return -jnp.mean(y * nn.log_sigmoid(z) + (1 - y) * nn.log_sigmoid(-z)) + 0.5 * l2 * jnp.sum(w * w)
    return loss


def newton_cg(loss, w, iters, tol=1e-10):
    """functrans.optim.newton_cg: CG on Hessian-vector products (``functrans.hvp`` of the
    loss), Armijo backtracking and Levenberg-Marquardt damping; prints progress."""
    opt = optim.newton_cg(damping=1e-4)
    state = opt.init(w)
    value_and_grad = ft.value_and_grad(loss)
    for k in range(iters):
        value, g = value_and_grad(w)
        gnorm = float(jnp.linalg.norm(g))
        print(f"  newton {k:2d}  loss {float(value):.12f}  |grad| {gnorm:.2e}", end="")
        if gnorm < tol:
            print()
            break
        updates, state = opt.update(g, state, w, value=value, value_fn=loss)
        w = optim.apply_updates(w, updates)
        print(f"  (step {float(state.step_size):g}, damping {float(state.damping):.1e}, "
              f"cg info {int(state.cg_info)})")
    return w


def gradient_descent(loss, w, lr, iters, report_every):
    """Plain gradient descent with a fixed step; prints progress."""
    vg = ft.value_and_grad(loss)
    for k in range(iters + 1):
        val, g = vg(w)
        if k % report_every == 0:
            print(f"  gd {k:5d}  loss {float(val):.12f}  |grad| {np.linalg.norm(g):.2e}")
        w = w - lr * np.asarray(g)
    return w


def main(argv=None):
    """Fit by Newton-CG and by gradient descent, print both; returns (Newton loss, GD loss)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--l2", type=float, default=1e-3)
    ap.add_argument("--gd-iters", type=int, default=2000)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    x, y = make_data(rng)
    loss = make_loss(x, y, args.l2)
    w0 = np.zeros(x.shape[1])

    print("Newton-CG (functrans.optim.newton_cg: CG on Hessian-vector products):")
    t0 = time.perf_counter()
    w_newton = newton_cg(loss, w0, iters=10)
    t_newton = time.perf_counter() - t0

    # the logistic loss has curvature at most max eig(X^T X) / (4 n) + l2: step 1/L is safe
    lipschitz = np.linalg.eigvalsh(x.T @ x).max() / (4 * len(x)) + args.l2
    print(f"\nGradient descent (step 1/L = {1 / lipschitz:.3f}):")
    t0 = time.perf_counter()
    w_gd = gradient_descent(loss, w0, 1 / lipschitz, args.gd_iters, max(1, args.gd_iters // 10))
    t_gd = time.perf_counter() - t0

    f_newton, f_gd = float(loss(w_newton)), float(loss(w_gd))
    print(f"\nNewton-CG: loss {f_newton:.12f} in {t_newton:.2f} s")
    print(f"GD ({args.gd_iters} steps): loss {f_gd:.12f} in {t_gd:.2f} s "
          f"(gap to Newton-CG {f_gd - f_newton:.2e})")
    acc = np.mean(((x @ w_newton) > 0) == (y > 0.5))
    print(f"training accuracy {acc:.3f}")
    return f_newton, f_gd


if __name__ == "__main__":
    main()
