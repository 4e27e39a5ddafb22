"""Conjugate gradients on Hessian-vector products of an MLP loss, jitted: time per CG
iteration against one jitted gradient, side by side with JAX's jax.scipy.sparse.linalg.cg on
jvp(grad) in the same run (target: functrans <= 1.0x JAX per iteration).

The time per iteration is the slope between a run of N and one of 2N iterations (tol=0, so
both run exactly maxiter iterations), which takes out the fixed cost of a call. Every call is
timed round-robin with all the others (functrans's and JAX's), best of --rounds, so a slow spell
of the machine falls on both libraries alike.

functrans is also timed with the HVP linearized once (``functrans.linearize`` of the gradient
outside the loop, as optim.newton_cg does). Under jit the plan hoists the loop-invariant
forward pass out of the while loop either way, as XLA does (docs/solvers.md).

Both libraries run on one CPU core (--cpus 1: the affinity of every thread of the process): with XLA's single-thread
flags, JAX still used a second core (process CPU time 1.7x wall time), so the old comparison
set a two-core JAX against a one-core functrans. On a machine shared with other work, pin the
BLAS threads (OPENBLAS_NUM_THREADS=1, and XLA's
with XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"): idle
BLAS threads spinning against the load slow small matrix products 50x.

Run:  python benchmarks/cg_bench.py [--iters N] [--rounds R] [--cpus C]   (defaults 10, 40, 1)
"""
from __future__ import annotations

import argparse
import functools
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import nn
from functrans.scipy.sparse.linalg import cg
from timing import best_interleaved, pin_to_cpus

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


def functrans_calls(params, x, onehot, n):
    """{name: zero-argument call} for functrans: one jitted gradient, and CG runs of n and 2n
    iterations with hvp = jvp(grad) ("cg") and with the HVP linearized once outside the loop
    ("lin")."""
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
    calls = {"grad": lambda: ft.block_until_ready(grad(params, x, onehot))}
    for name, operator in (("cg", jvp_of_grad), ("lin", linearized)):
        info = int(solver(operator, 2 * n)(params, g)[1])
        assert info == 2 * n, f"CG stopped early (info {info}): the timing would be wrong"
        for m in (n, 2 * n):
            calls[f"{name}{m}"] = functools.partial(
                lambda s: ft.block_until_ready(s(params, g)), solver(operator, m))
    return calls


def jax_calls(params, x, onehot, n):
    """The same for JAX: its gradient and jax.scipy.sparse.linalg.cg on jvp(grad)."""
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

    g = grad(params, x, onehot)
    # JAX's cg stops once <r, r> is 0 and returns no count: a solution that still changes
    # between 2n - 1 and 2n iterations shows that it ran all 2n (at 40 it stopped after ~31)
    last, before = (np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(
        solver(m)(params, g))]) for m in (2 * n, 2 * n - 1))
    assert not np.array_equal(last, before), "JAX's CG stopped early: the timing would be wrong"
    calls = {"jax_grad": lambda: jax.block_until_ready(grad(params, x, onehot))}
    for m in (n, 2 * n):
        calls[f"jax_cg{m}"] = functools.partial(
            lambda s: jax.block_until_ready(s(params, g)), solver(m))
    return calls


def fmt(t):
    return f"{t * 1e6:9.1f} us" if t < 1e-2 else f"{t * 1e3:9.2f} ms"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=10,
                    help="N: runs of N and 2N iterations. Both libraries must run all 2N (it is "
                         "checked): past ~30 float32 CG on this problem has converged, JAX's "
                         "stops and ours reaches subnormal numbers")
    ap.add_argument("--rounds", type=int, default=40,
                    help="rounds of one call each, round-robin; the best of them counts")
    ap.add_argument("--cpus", type=int, default=1,
                    help="CPU cores the process may run on (0: all it is allowed now)")
    args = ap.parse_args()
    cores = pin_to_cpus(args.cpus)
    rng = np.random.default_rng(0)
    params = init_mlp(rng, SIZES)
    x = rng.normal(size=(BATCH, SIZES[0])).astype(np.float32)
    onehot = np.eye(SIZES[-1], dtype=np.float32)[rng.integers(0, SIZES[-1], BATCH)]
    n = args.iters
    t0 = time.perf_counter()
    calls = functrans_calls(params, x, onehot, n)
    ft_wall = time.perf_counter() - t0
    try:
        calls.update(jax_calls(params, x, onehot, n))
    except ImportError:
        pass
    t = best_interleaved(calls, rounds=args.rounds)
    per_iter = (lambda name: (t[f"{name}{2 * n}"] - t[f"{name}{n}"]) / n)  # noqa: E731
    ft_grad, ft_iter, ft_lin_iter = t["grad"], per_iter("cg"), per_iter("lin")
    jax_grad = t.get("jax_grad")
    jax_iter = per_iter("jax_cg") if jax_grad is not None else None
    print(f"CG on HVPs of an MLP {'-'.join(map(str, SIZES))} batch {BATCH} f32, jitted "
          f"on {cores or '?'} CPU core(s) (functrans run incl. compiles: {ft_wall:.1f} s)")
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
