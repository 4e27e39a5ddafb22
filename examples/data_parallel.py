"""Data-parallel training of the digits MLP (examples/train_mlp.py) over MPI processes.

Every process runs this same script. Process 0's initial parameters are broadcast; each global
batch is split evenly between the processes (``distributed.shard``); each computes the loss on
its share, ``lax.pmean`` averages it over the process axis ``"data"``, and ``grad`` of the
``spmd`` loss is the gradient of the global batch (one bucketed all-reduce). The parameters
stay identical on every process; only process 0 prints.

Run:  pip install -e ".[mpi,examples]"  &&  mpiexec -n 2 python examples/data_parallel.py
(``python examples/data_parallel.py`` alone is a job of one process.)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import functrans as ft
from functrans import distributed, lax
from functrans.tree_util import tree_map
from train_mlp import accuracy, init_params, load_data, loss_fn

# the global batch's mean loss: every process its share, averaged over the processes
global_loss = distributed.spmd(lambda params, x, labels: lax.pmean(loss_fn(params, x, labels),
                                                                   "data"),
                               axis_name="data", in_axes=(None, 0, 0), out_axes=None)


def sgd_step(params, x, labels, lr):
    """One SGD step on the global batch (x, labels: this process's share): (new params, loss)."""
    loss, grads = ft.value_and_grad(global_loss)(params, x, labels)
    return tree_map(lambda p, g: p - lr * g, params, grads), loss


def main(argv=None):
    """Trains; returns the final test accuracy (the same on every process)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64, help="global batch size")
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-jit", action="store_true", help="run the steps eagerly")
    args = ap.parse_args(argv)
    step = sgd_step if args.no_jit else ft.jit(sgd_step)

    distributed.initialize()
    n_proc = ft.process_count()
    if args.batch_size % n_proc:
        raise SystemExit(f"--batch-size {args.batch_size} must divide by {n_proc} processes")
    x_train, y_train, x_test, y_test = load_data(args.seed)
    rng = np.random.default_rng(args.seed + ft.process_index())    # differ: broadcast fixes it
    params = distributed.broadcast(init_params(rng, [64, args.hidden, 10]))
    order_rng = np.random.default_rng(args.seed)                    # the same on every process
    lr = np.float64(args.lr)
    n_batches = len(x_train) // args.batch_size
    distributed.print0(f"digits: {len(x_train)} train / {len(x_test)} test, MLP "
                       f"64-{args.hidden}-10, {n_proc} process(es), global batch "
                       f"{args.batch_size}")
    t_start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        order = order_rng.permutation(len(x_train))
        losses, step_times = [], []
        for i in range(n_batches):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            x, labels = distributed.shard((x_train[idx], y_train[idx]))
            t0 = time.perf_counter()
            params, loss = step(params, x, labels, lr)
            step_times.append(time.perf_counter() - t0)
            losses.append(float(loss))
        distributed.print0(f"epoch {epoch:2d}  loss {np.mean(losses):.4f}  test accuracy "
                           f"{accuracy(params, x_test, y_test):.4f}  step "
                           f"{np.median(step_times) * 1e6:8.1f} us")
    acc = accuracy(params, x_test, y_test)
    distributed.print0(f"final test accuracy {acc:.4f} in {time.perf_counter() - t_start:.1f} s")
    return acc


if __name__ == "__main__":
    main()
