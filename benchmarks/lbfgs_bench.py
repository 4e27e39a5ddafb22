"""functrans.optim.lbfgs (optax's L-BFGS: memory 10, zoom line search, update jitted) against
scipy.optimize.minimize(method='L-BFGS-B') on the Rosenbrock function, n = 2 and n = 100, from
x0 = (-1.2, 1, -1.2, 1, ...). Both stop when max|grad| <= 1e-5 (scipy's gtol). Iterations,
function (value and gradient) evaluations and time; functrans's time excludes the jit compile
(a first run compiles, the second is timed). One run, one table.

Run:  python benchmarks/lbfgs_bench.py
"""
from __future__ import annotations

import os
import time

# Vectors of length <= 100: BLAS threads only add synchronisation (on a busy machine scipy's
# L-BFGS-B ran 30x slower with them), so both sides run single-threaded.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

import functrans as ft  # noqa: E402
import functrans.numpy as jnp  # noqa: E402
from functrans import optim  # noqa: E402

GTOL, MAX_ITERS = 1e-5, 1000


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosen_np(x):
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


OPT = optim.lbfgs()
VG = optim.value_and_grad_from_state(rosenbrock)


@ft.jit
def step(params, state):
    value, grad = VG(params, state=state)
    updates, state = OPT.update(grad, state, params, value=value, grad=grad, value_fn=rosenbrock)
    return optim.apply_updates(params, updates), state, grad


def run_functrans(x0):
    """(iterations, evaluations, seconds, final value): stops once the gradient at the start of
    an iteration has max|g| <= GTOL (that gradient is the line search's last one, reused)."""
    params, state = jnp.asarray(x0), OPT.init(jnp.asarray(x0))
    evals, t = 1, time.perf_counter()          # the first value_and_grad
    for it in range(MAX_ITERS):
        new_params, new_state, grad = step(params, state)
        if np.max(np.abs(np.asarray(grad))) <= GTOL:
            break
        params, state = new_params, new_state
        evals += int(state[2].info.num_linesearch_steps)
    return it, evals, time.perf_counter() - t, float(rosenbrock(params))


def run_scipy(x0):
    t = time.perf_counter()
    r = scipy.optimize.minimize(rosen_np, x0, jac=scipy.optimize.rosen_der, method="L-BFGS-B",
                                options=dict(gtol=GTOL, ftol=0.0, maxiter=MAX_ITERS, maxcor=10))
    return r.nit, r.nfev, time.perf_counter() - t, r.fun


def main():
    print(f"L-BFGS on Rosenbrock, stop at max|grad| <= {GTOL:g} (memory 10, float64)")
    print(f"  {'n':>4s}  {'method':28s} {'iters':>6s} {'f evals':>8s} {'time':>10s} "
          f"{'per iter':>10s} {'final f':>10s}")
    for n in (2, 100):
        x0 = np.tile([-1.2, 1.0], n // 2)
        run_functrans(x0)                          # compile (and warm) the jitted step
        for name, fn in (("functrans lbfgs (jit)", run_functrans),
                         ("scipy L-BFGS-B", run_scipy)):
            it, ev, sec, f = fn(x0)
            print(f"  {n:4d}  {name:28s} {it:6d} {ev:8d} {sec * 1e3:8.1f} ms "
                  f"{sec / max(it, 1) * 1e3:7.2f} ms {f:10.2e}")


if __name__ == "__main__":
    main()
