"""Linear algebra under jit: inv, solve, cholesky and svd, forward and grad, at n = 64, 256, 1024,
against NumPy/SciPy (LAPACK called directly) and jax.jit when installed. Prints one table: 'fwd
x' is our forward time over NumPy's call, 'grad x' our gradient of sum(f(a)**2) over a
hand-written NumPy/SciPy reverse pass (the forward call, then the standard matrix-calculus
cotangent formula in LAPACK/BLAS calls): the overhead of running the primitives as host steps
of a compiled program. The target is <= 1.2 at n >= 256.

Timing: the best of a few repeats of the *process CPU time* (robust to a shared machine), with
BLAS/LAPACK on one thread (set before NumPy loads; JAX's XLA runs its own threads, whose CPU time
is counted too). Run: python benchmarks/linalg_bench.py [--repeats N] [--sizes 64,256,1024]"""
import argparse
import os
import sys
import time

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import scipy.linalg  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import functrans as ft  # noqa: E402
import functrans.numpy as fnp  # noqa: E402
from timing import best as _best  # noqa: E402


def best(f, repeat):
    """Best process CPU time per call (seconds): robust to a shared machine."""
    return _best(f, repeat, clock=time.process_time)

try:
    import jax
    import jax.numpy as jjnp
    jax.config.update("jax_enable_x64", True)
except ImportError:
    jax = None


def _block(x):
    return x.block_until_ready() if hasattr(x, "block_until_ready") else x


def _inv_grad(a):
    x = np.linalg.inv(a)
    return -x.T @ (2 * x) @ x.T


def _solve_grad(a, b):
    x = np.linalg.solve(a, b)
    gb = np.linalg.solve(a.T, 2 * x)
    return -np.outer(gb, x)    # (grad takes the first argument's)


def _cholesky_grad(spd):
    """d sum(L**2) / dA for L = chol(A): S = L^-T Phi(L^T Lbar) L^-1 (Phi: the lower triangle,
    diagonal halved), symmetrised."""
    lo = np.linalg.cholesky(spd)
    p = np.tril(lo.T @ (2 * lo))
    p[np.diag_indices_from(p)] *= 0.5
    p_linv = scipy.linalg.solve_triangular(lo, p.T, lower=True, trans=1).T     # P L^-1
    s = scipy.linalg.solve_triangular(lo, p_linv, lower=True, trans=1)
    return 0.5 * (s + s.T)


def _svd_grad(a):
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    return (u * (2 * s)) @ vt


def problems(n, rng):
    """name -> (our function, NumPy function, JAX name, args, NumPy reverse pass)."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(rng.uniform(1, 3, n)) @ rng.normal(size=(n, n)) / np.sqrt(n) + 3 * np.eye(n)
    spd = q @ np.diag(rng.uniform(1, 3, n)) @ q.T
    b = rng.normal(size=(n,))
    ops = {
        "inv": (fnp.linalg.inv, np.linalg.inv, "inv", (a,), _inv_grad),
        "solve": (fnp.linalg.solve, np.linalg.solve, "solve", (a, b), _solve_grad),
        "cholesky": (fnp.linalg.cholesky, np.linalg.cholesky, "cholesky", (spd,), _cholesky_grad),
        "svd": (lambda x: fnp.linalg.svd(x, full_matrices=False, compute_uv=False),
                lambda x: np.linalg.svd(x, compute_uv=False),
                "svdvals", (a,), _svd_grad),
    }
    return ops


def _jax_fn(name):
    if jax is None:
        return None
    if name == "svdvals":
        return lambda x: jjnp.linalg.svd(x, full_matrices=False, compute_uv=False)
    return getattr(jjnp.linalg, name)


def _loss(f):
    return lambda *args: (f(*args) ** 2).sum()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="repeats below n = 1024 (there: 2)")
    ap.add_argument("--sizes", default="64,256,1024")
    opts = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for n in [int(k) for k in opts.sizes.split(",")]:
        repeat = opts.repeats if n < 1024 else min(opts.repeats, 2)
        for name, (ours, ref, jname, args, ref_grad) in problems(n, rng).items():
            fwd = ft.jit(ours)
            grad = ft.jit(ft.grad(_loss(ours)))
            g_ref = ref_grad(*args)
            np.testing.assert_allclose(np.asarray(grad(*args)), g_ref, rtol=1e-6,
                                       atol=1e-8 * np.abs(g_ref).max())
            t_np = best(lambda: ref(*args), repeat)
            t_fwd = best(lambda: fwd(*args), repeat)
            t_np_grad = best(lambda: ref_grad(*args), repeat)
            t_grad = best(lambda: grad(*args), repeat)
            jf = _jax_fn(jname)
            if jf is not None:
                jargs = [jjnp.asarray(x) for x in args]
                jfwd, jgrad = jax.jit(jf), jax.jit(jax.grad(_loss(jf)))
                t_jfwd = best(lambda: _block(jfwd(*jargs)), repeat)
                t_jgrad = best(lambda: _block(jgrad(*jargs)), repeat)
            else:
                t_jfwd = t_jgrad = float("nan")
            rows.append((name, n, t_np, t_fwd, t_jfwd, t_np_grad, t_grad, t_jgrad))
            print(name, n, "done", file=sys.stderr, flush=True)
    ms = lambda t: f"{t * 1e3:10.3f}"  # noqa: E731
    print(f"{'op':9}{'n':>5}{'LAPACK':>10}{'ours fwd':>10}{'fwd x':>7}{'jax fwd':>10}"
          f"{'LAPACK grad':>12}{'ours grad':>10}{'grad x':>7}{'jax grad':>10}   (ms)")
    for name, n, t_np, t_fwd, t_jfwd, t_np_grad, t_grad, t_jgrad in rows:
        print(f"{name:9}{n:5d}{ms(t_np)}{ms(t_fwd)}{t_fwd / t_np:7.2f}{ms(t_jfwd)}"
              f"{ms(t_np_grad):>12}{ms(t_grad)}{t_grad / t_np_grad:7.2f}{ms(t_jgrad)}")


if __name__ == "__main__":
    main()
