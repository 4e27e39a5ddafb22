"""Lanczos top-10 Hessian eigenvalues of a ~100k-parameter MLP (784-128-10, tanh, softmax
cross-entropy, batch 256, float32), with the cost of one jitted HVP against one jitted gradient,
and the Hutchinson trace and SLQ density at their default sizes. One run, one table.

Run:  python benchmarks/spectrum_bench.py
"""
from __future__ import annotations

import os
import time

# Single-threaded BLAS (as linalg_bench): on 2 shared cores OpenBLAS's threads contend with
# numba's and made every number here 5-10x worse and erratic.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

import functrans as ft  # noqa: E402
import functrans.numpy as jnp  # noqa: E402
from functrans import spectral  # noqa: E402
from timing import best_adaptive  # noqa: E402

SIZES, BATCH, K = (784, 128, 10), 256, 10
MAX_ITERS = 300     # the top 10 are clustered (gaps ~1%): more than the default 100 steps


def loss(params, x, labels):
    (w1, b1), (w2, b2) = params
    logits = jnp.tanh(x @ w1 + b1) @ w2 + b2
    return -jnp.mean(jnp.take_along_axis(ft.nn.log_softmax(logits), labels[:, None], axis=1))


def timed(f):
    """f's result, and its wall and CPU seconds (on a shared machine the CPU time is the one to
    compare with the per-call bests above)."""
    t, c = time.perf_counter(), time.process_time()
    out = f()
    return out, (time.perf_counter() - t, time.process_time() - c)


def main():
    rng = np.random.default_rng(0)
    params = [(jnp.asarray((rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)),
               jnp.zeros(b, jnp.float32)) for a, b in zip(SIZES[:-1], SIZES[1:])]
    x = jnp.asarray(rng.normal(size=(BATCH, SIZES[0])).astype(np.float32))
    labels = jnp.asarray(rng.integers(0, SIZES[-1], BATCH))
    op = spectral.HessianOperator(loss, params, x, labels)
    v = rng.normal(size=op.dim)
    jgrad = ft.jit(ft.grad(loss))
    t_grad = best_adaptive(lambda: jgrad(params, x, labels))
    t_hvp = best_adaptive(lambda: op.matvec(v))            # includes the flat <-> pytree conversion
    t_hvp_tree = best_adaptive(lambda: op._hvp(params, op.unravel(v), x, labels))
    op.num_matvecs = 0
    eig, t_eig = timed(lambda: spectral.top_eigenpairs(op.matvec, op.dim, K, tol=1e-4,
                                                                  max_iters=MAX_ITERS, key=0))
    (tr, se), t_tr = timed(lambda: spectral.hutchinson_trace(op.matvec, op.dim, 100, key=1))
    dens, t_d = timed(lambda: spectral.spectral_density(op.matvec, op.dim, num_iters=80, key=2))
    print(f"Hessian spectrum of a {'-'.join(map(str, SIZES))} MLP: {op.dim} parameters, batch "
          f"{BATCH}, float32 (jitted forward-over-reverse HVPs; Krylov bookkeeping in float64)")
    print(f"  one gradient (jit)            {t_grad * 1e3:8.2f} ms")
    print(f"  one HVP (jit, pytree)         {t_hvp_tree * 1e3:8.2f} ms   "
          f"{t_hvp_tree / t_grad:5.2f}x a gradient")
    print(f"  one HVP (flat matvec)         {t_hvp * 1e3:8.2f} ms   {t_hvp / t_grad:5.2f}x "
          f"a gradient")
    print(f"  Lanczos top-{K} (tol 1e-4)     {t_eig[0]:6.2f} s wall {t_eig[1]:6.2f} s CPU   "
          f"{eig.num_matvecs} HVPs, {t_eig[1] / eig.num_matvecs * 1e3:.1f} ms CPU per step "
          f"(HVP + reorthogonalisation), converged={eig.converged}, "
          f"max residual |Hv - lv| / l_max {eig.residuals.max() / abs(eig.values[0]):.1e}")
    print(f"    eigenvalues: {', '.join(f'{e:.4g}' for e in eig.values)}")
    print(f"  Hutchinson trace, 100 probes  {t_tr[0]:6.2f} s wall {t_tr[1]:6.2f} s CPU   "
          f"trace {tr:.4g} +- {se:.2g}")
    print(f"  SLQ density, 1 x 80 steps     {t_d[0]:6.2f} s wall {t_d[1]:6.2f} s CPU   "
          f"integral {dens.integral():.4f}")


if __name__ == "__main__":
    main()
