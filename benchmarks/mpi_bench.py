"""functrans.distributed over MPI: all-reduce bandwidth and the data-parallel MLP step.

* all-reduce of 100 MB of float32: ``lax.psum`` in an ``spmd`` function (eager, and jitted)
  against mpi4py's raw ``Allreduce(MPI.IN_PLACE, buf)`` in the same run, as algorithm
  bandwidth (bytes / time); plus the latency of an 8-byte all-reduce, the two numbers the
  cost model of docs/distributed.md takes;
* the digits MLP's SGD step (examples/data_parallel.py, 64-128-10, float64, global batch 64):
  on one process (process 0 alone, the others waiting) and on all processes, each with its
  share of the batch and one bucketed all-reduce of the gradient.

Run:  mpiexec -n 2 python benchmarks/mpi_bench.py [--repeats N]  (prints on process 0)
"""
from __future__ import annotations

import argparse
import os
import sys
import time

# one BLAS thread per process: N processes share the machine's cores (as MPI jobs usually run)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import functrans as ft  # noqa: E402
import functrans.numpy as jnp  # noqa: E402
from functrans import distributed, lax  # noqa: E402
from functrans.tree_util import tree_map  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from train_mlp import init_params, loss_fn  # noqa: E402

MB = 10 ** 6


def _median_time(fn, repeats, comm=None):
    """Median seconds of fn() over repeats calls (after one warm-up), every process timing
    the same calls: a barrier before each, so that no process waits for a late one."""
    fn()
    times = []
    for _ in range(repeats):
        if comm is not None:
            comm.Barrier()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def allreduce_rows(comm, MPI, repeats):
    """[(what, seconds, MB/s)] for 100 MB float32 and the 8-byte latency."""
    buf = np.ones(100 * MB // 4, np.float32)
    x = jnp.asarray(buf)            # an Array, as a gradient is (a NumPy argument is copied in)
    psum = distributed.spmd(lambda v: lax.psum(v, "data"))
    jitted = ft.jit(psum)
    rows = []
    for what, fn in (("mpi4py Allreduce(IN_PLACE), raw", lambda: comm.Allreduce(MPI.IN_PLACE, buf)),
                     ("functrans spmd psum, eager", lambda: psum(x)),
                     ("functrans spmd psum, jit", lambda: jitted(x))):
        t = _median_time(fn, repeats, comm)
        rows.append((what, t, x.nbytes / t / MB))
    small = jnp.ones(1, np.float64)
    raw_small = np.ones(1, np.float64)
    t = _median_time(lambda: [comm.Allreduce(MPI.IN_PLACE, raw_small) for _ in range(100)],
                     repeats, comm) / 100
    rows.append(("mpi4py Allreduce of 8 bytes (latency)", t, None))
    t = _median_time(lambda: [psum(small) for _ in range(100)], repeats, comm) / 100
    rows.append(("functrans spmd psum of 8 bytes", t, None))
    return rows


global_loss = distributed.spmd(lambda p, x, y: lax.pmean(loss_fn(p, x, y), "data"),
                               in_axes=(None, 0, 0), out_axes=None)


def _sgd(loss):
    @ft.jit
    def step(params, x, y):
        grads = ft.grad(loss)(params, x, y)
        return tree_map(lambda p, g: p - 0.1 * g, params, grads)
    return step


def mlp_rows(comm, repeats, batch=64):
    """[(what, seconds)]: the MLP step on process 0 alone, then on every process."""
    rng = np.random.default_rng(0)
    params = distributed.broadcast(init_params(rng, [64, 128, 10]))
    x, y = rng.uniform(0, 1, (batch, 64)), rng.integers(0, 10, batch)
    rows = []
    if ft.process_index() == 0:
        single = _sgd(loss_fn)
        rows.append(("1 process, whole batch", _median_time(lambda: single(params, x, y),
                                                             repeats * 10)))
    comm.Barrier()
    xs, ys = distributed.shard((x, y))
    dp = _sgd(global_loss)
    t = _median_time(lambda: dp(params, xs, ys), repeats * 10, comm)
    rows.append((f"{ft.process_count()} processes, data-parallel", t))
    n_grad = sum(np.asarray(p).size for p in ft.tree_util.tree_leaves(params))
    return rows, n_grad


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-checks", action="store_true",
                    help="initialize(check_collectives=False): no shape check before each")
    args = ap.parse_args()
    distributed.initialize(check_collectives=not args.no_checks)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    ar = allreduce_rows(comm, MPI, args.repeats)
    mlp, n_grad = mlp_rows(comm, args.repeats)
    p = distributed.print0
    p(f"processes: {ft.process_count()}   MPI: {MPI.Get_library_version().splitlines()[0]}   "
      f"collective checks: {'off' if args.no_checks else 'on'}")
    p("\n| all-reduce | time | bandwidth (bytes/time) |\n|---|---|---|")
    raw_bw = ar[0][2]
    for what, t, bw in ar:
        share = f" ({bw / raw_bw:.0%} of raw)" if bw and what.startswith("functrans") else ""
        p(f"| {what} | {t * 1e3:.3f} ms | {f'{bw:,.0f} MB/s' if bw else '-'}{share} |")
    p(f"\n| MLP 64-128-10 SGD step, float64, global batch 64 ({n_grad} parameters) | "
      f"median time |\n|---|---|")
    for what, t in mlp:
        p(f"| {what} | {t * 1e6:.0f} us |")


if __name__ == "__main__":
    main()
