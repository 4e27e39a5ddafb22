"""Conjugate gradients on Hessian-vector products of an MLP loss, jitted: time per CG
iteration against one jitted gradient, side by side with JAX's jax.scipy.sparse.linalg.cg on
jvp(grad) in the same run (target: functrans <= 1.0x JAX per iteration).

The time per iteration is the slope between a run of N and one of 2N iterations (tol=0, so
both run exactly maxiter iterations), which takes out the fixed cost of a call.

functrans is also timed with the HVP linearized once (``functrans.linearize`` of the gradient
outside the loop, as optim.newton_cg does): XLA hoists the loop-invariant forward pass out of
JAX's while loop by itself; functrans does not (docs/solvers.md).

On a machine shared with other work, pin the BLAS threads (OPENBLAS_NUM_THREADS=1, and XLA's
with XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"): idle
BLAS threads spinning against the load slow small matrix products 50x.

Run:  python benchmarks/cg_bench.py [--iters N]   (default 20)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn
from functrans.scipy.sparse.linalg import cg
from timing import best

SIZES = [256, 256, 128, 10]
BATCH = 256
DAMPING = 1.0


def init_mlp(rng, sizes, dtype=np.float32):
    return [((rng.normal(size=(m, n)) * np.sqrt(2.0 / m)).astype(dtype), np.zeros(n, dtype))
            for m, n in zip(sizes[:-1], sizes[1:])]


def make_loss(np_mod, nn_mod):
    """The mean softmax cross-entropy of a tanh MLP, in the given numpy/nn modules (a smooth
    activation, so the Hessian has no kinks)."""
    def loss(params, x, onehot):
        h = x
        for w, b in params[:-1]:
            h = np_mod.tanh(h @ w + b)
        w, b = params[-1]
        return -np_mod.mean(np_mod.sum(onehot * nn_mod.log_softmax(h @ w + b), axis=-1))
    return loss


def damped(hvp, tree_map=ft.tree_util.tree_map, damping=DAMPING):
    """v -> hvp(v) + damping v: positive definite, so CG runs every iteration it is given."""
    return lambda v: tree_map(lambda h, u: h + damping * u, hvp(v), v)


def per_iteration(run, n):
    """Seconds per CG iteration: the slope between n and 2n iterations."""
    return (best(lambda: run(2 * n)) - best(lambda: run(n))) / n


def functrans_times(params, x, onehot, n):
    """(seconds per gradient, per CG iteration with hvp = jvp(grad), per CG iteration with the
    HVP linearized once outside the loop)."""
    loss = make_loss(jnp, nn)
    grad = ft.jit(ft.grad(loss))

    def jvp_of_grad(p):
        return damped(lambda v: ft.hvp(lambda q: loss(q, x, onehot), (p,), (v,)))

    def linearized(p):       # the forward pass and the residuals once, not per iteration
        return damped(ft.linearize(ft.grad(lambda q: loss(q, x, onehot)), p)[1])

    def solver(operator, maxiter):
        @ft.jit
        def solve(p, b):
            return cg(operator(p), b, tol=0.0, maxiter=maxiter)
        return solve

    g = grad(params, x, onehot)
    for operator in (jvp_of_grad, linearized):
        info = int(solver(operator, 2 * n)(params, g)[1])
        assert info == 2 * n, f"CG stopped early (info {info}): the timing would be wrong"
    t_grad = best(lambda: ft.block_until_ready(grad(params, x, onehot)))
    t_iters = []
    for operator in (jvp_of_grad, linearized):
        solvers = {m: solver(operator, m) for m in (n, 2 * n)}
        t_iters.append(per_iteration(lambda m: ft.block_until_ready(solvers[m](params, g)), n))
    return t_grad, *t_iters


def jax_times(params, x, onehot, n):
    import jax
    import jax.numpy as jjnp
    from jax.scipy.sparse.linalg import cg as jcg
    loss = make_loss(jjnp, jax.nn)
    grad = jax.jit(jax.grad(loss))

    def solver(maxiter):
        @jax.jit
        def solve(p, b):
            def hvp(v):
                return jax.jvp(jax.grad(lambda q: loss(q, x, onehot)), (p,), (v,))[1]
            return jcg(damped(hvp, jax.tree_util.tree_map), b, tol=0.0, maxiter=maxiter)[0]
        return solve

    solvers = {m: solver(m) for m in (n, 2 * n)}
    g = grad(params, x, onehot)
    t_grad = best(lambda: jax.block_until_ready(grad(params, x, onehot)))
    t_iter = per_iteration(lambda m: jax.block_until_ready(solvers[m](params, g)), n)
    return t_grad, t_iter


def fmt(t):
    return f"{t * 1e6:9.1f} us" if t < 1e-2 else f"{t * 1e3:9.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20,
                    help="N: runs of N and 2N iterations (with 5 the slope was noise)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    params = init_mlp(rng, SIZES)
    x = rng.normal(size=(BATCH, SIZES[0])).astype(np.float32)
    onehot = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    t0 = time.perf_counter()
    ft_grad, ft_iter, ft_lin_iter = functrans_times(params, x, onehot, args.iters)
    ft_wall = time.perf_counter() - t0
    try:     # JAX last: its thread pool would slow the BLAS of what runs after it
        jax_grad, jax_iter = jax_times(params, x, onehot, args.iters)
    except ImportError:
        jax_grad = jax_iter = None
    print(f"CG on HVPs of an MLP {'-'.join(map(str, SIZES))} batch {BATCH} f32, jitted "
          f"(functrans run incl. compiles: {ft_wall:.1f} s)")
    print(f"{'':34s} {'functrans':>12s} {'JAX':>12s} {'ratio':>7s} {'target':>8s}")
    jt = (lambda t: fmt(t) if t is not None else "n/a")
    ratio = f"{ft_iter / jax_iter:7.2f}" if jax_iter else "    n/a"
    print(f"{'time per CG iteration (1 HVP)':34s} {fmt(ft_iter):>12s} {jt(jax_iter):>12s} "
          f"{ratio} {'<= 1.00':>8s}")
    ratio = f"{ft_lin_iter / jax_iter:7.2f}" if jax_iter else "    n/a"
    print(f"{'  HVP linearized outside the loop':34s} {fmt(ft_lin_iter):>12s} {'':>12s} "
          f"{ratio} {'<= 1.00':>8s}")
    print(f"{'one gradient':34s} {fmt(ft_grad):>12s} {jt(jax_grad):>12s} "
          + (f"{ft_grad / jax_grad:7.2f}" if jax_grad else ""))
    print(f"{'CG iteration / gradient':34s} {ft_iter / ft_grad:12.2f} "
          + (f"{jax_iter / jax_grad:12.2f}" if jax_grad else ""))


if __name__ == "__main__":
    main()
