"""Linear algebra under jit: inv, solve, cholesky and svd, forward and grad, at n = 64, 256, 1024,
against NumPy/SciPy (LAPACK called directly) and jax.jit when installed. Prints one table; the
'ours/LAPACK' column is our forward time over NumPy's (the overhead of running the primitive as
a host step of a compiled program; the target is <= 1.2 at n >= 256). Every figure is the best
of a few repeats (fewer at n = 1024). Run: python benchmarks/linalg_bench.py"""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import functrans as ft  # noqa: E402
import functrans.numpy as fnp  # noqa: E402

try:
    import jax
    import jax.numpy as jjnp
    jax.config.update("jax_enable_x64", True)
except ImportError:
    jax = None


def best(f, repeat):
    """Best time per call (seconds) of f() over repeat rounds, after one warm-up call."""
    f()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def _block(x):
    return x.block_until_ready() if hasattr(x, "block_until_ready") else x


def problems(n, rng):
    """name -> (our function, NumPy function, JAX function or None, args)."""
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    a = q @ np.diag(rng.uniform(1, 3, n)) @ rng.normal(size=(n, n)) / np.sqrt(n) + 3 * np.eye(n)
    spd = q @ np.diag(rng.uniform(1, 3, n)) @ q.T
    b = rng.normal(size=(n,))
    ops = {
        "inv": (fnp.linalg.inv, np.linalg.inv, "inv", (a,)),
        "solve": (fnp.linalg.solve, np.linalg.solve, "solve", (a, b)),
        "cholesky": (fnp.linalg.cholesky, np.linalg.cholesky, "cholesky", (spd,)),
        "svd": (lambda x: fnp.linalg.svd(x, full_matrices=False, compute_uv=False),
                lambda x: np.linalg.svd(x, compute_uv=False),
                "svdvals", (a,)),
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
    rng = np.random.default_rng(0)
    rows = []
    for n in (64, 256, 1024):
        repeat = 5 if n < 1024 else 1
        for name, (ours, ref, jname, args) in problems(n, rng).items():
            fwd = ft.jit(ours)
            grad = ft.jit(ft.grad(_loss(ours)))
            t_np = best(lambda: ref(*args), repeat)
            t_fwd = best(lambda: fwd(*args), repeat)
            t_grad = best(lambda: grad(*args), repeat)
            jf = _jax_fn(jname)
            if jf is not None:
                jargs = [jjnp.asarray(x) for x in args]
                jfwd, jgrad = jax.jit(jf), jax.jit(jax.grad(_loss(jf)))
                t_jfwd = best(lambda: _block(jfwd(*jargs)), repeat)
                t_jgrad = best(lambda: _block(jgrad(*jargs)), repeat)
            else:
                t_jfwd = t_jgrad = float("nan")
            rows.append((name, n, t_np, t_fwd, t_jfwd, t_grad, t_jgrad))
    ms = lambda t: f"{t * 1e3:9.3f}"  # noqa: E731
    print(f"{'op':10}{'n':>6}{'LAPACK ms':>11}{'ours fwd':>10}{'jax fwd':>10}{'ours grad':>11}"
          f"{'jax grad':>10}{'ours/LAPACK':>13}")
    for name, n, t_np, t_fwd, t_jfwd, t_grad, t_jgrad in rows:
        print(f"{name:10}{n:6d}{ms(t_np):>11}{ms(t_fwd):>10}{ms(t_jfwd):>10}{ms(t_grad):>11}"
              f"{ms(t_jgrad):>10}{t_fwd / t_np:13.2f}")


if __name__ == "__main__":
    main()
