"""The program tests/test_distributed.py runs under ``mpiexec -n 2``: ``python _mpi_worker.py
CASE``. Each check raises on failure, which (through initialize's abort hook) ends the job with
a non-zero exit and the traceback; the last line each process prints is ``ok <rank>``."""
import sys

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import distributed as dist
from functrans import lax, nn
from functrans.tree_util import tree_leaves, tree_map

RANK, N = ft.process_index(), ft.process_count()


def collectives(x):
    """Every collective of one process's x (3, 4), and two derived values."""
    return {
        "psum": lax.psum(x, "data"), "pmean": lax.pmean({"a": x, "b": x[0, 0]}, "data"),
        "pmax": lax.pmax(x, "data"), "pmin": lax.pmin(x, "data"),
        "index": lax.axis_index("data"),
        "gather": lax.all_gather(x, "data", axis=1),
        "gather_tiled": lax.all_gather(x, "data", axis=1, tiled=True),
        "scatter": lax.psum_scatter(x[:2], "data"),
        "scatter_tiled": lax.psum_scatter(x, "data", scatter_dimension=1, tiled=True),
        "permute": lax.ppermute(x, "data", [(0, 1)]),
        "all_to_all": lax.all_to_all(x[:2], "data", 0, 1),
        "all_to_all_tiled": lax.all_to_all(x, "data", 1, 0, tiled=True),
        "grad_inside": ft.grad(lambda v: lax.psum(jnp.sum(v ** 3), "data"))(x),
    }


def check_collectives_match_vmap():
    """spmd over the processes computes, on each, what vmap over the stacked inputs computes
    for that member (jit: check_jit_of_grad_of_spmd; each kernel costs seconds cold)."""
    xs = np.random.default_rng(0).normal(size=(N, 3, 4))
    want = ft.vmap(collectives, axis_name="data")(xs)
    got = dist.spmd(collectives)(xs[RANK])
    for w, g in zip(tree_leaves(want), tree_leaves(got)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w)[RANK], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# the target: data-parallel SGD equals full-batch SGD

def mlp_loss(params, x, labels):
    for w, b in params[:-1]:
        x = nn.relu(x @ w + b)
    w, b = params[-1]
    log_probs = nn.log_softmax(x @ w + b)
    return -jnp.mean(jnp.sum(nn.one_hot(labels, 10) * log_probs, axis=-1))


def sgd(loss, params, x, y):
    grads = ft.grad(loss)(params, x, y)
    return tree_map(lambda p, g: p - 0.5 * g, params, grads)


def check_data_parallel_sgd_equals_full_batch():
    """20 steps on 2 processes (each its half of the batch, the loss pmean'd, grad from
    outside spmd: one bucketed all-reduce of the gradient) give one process's full-batch
    parameters to 1e-6 in float64, from parameters broadcast by process 0. (Eager: the MLP
    step's compile would cost this test most of its time; jit is checked below.)"""
    rng = np.random.default_rng(1)
    x, y = rng.uniform(0, 1, (64, 64)), rng.integers(0, 10, 64)       # digits-shaped data
    init = [(rng.normal(size=(64, 32)) * 0.25, np.zeros(32)),
            (rng.normal(size=(32, 10)) * 0.25, np.zeros(10))]
    if RANK:
        init = tree_map(lambda p: p + 1.0, init)       # broadcast must replace these
    init = dist.broadcast(init)
    dp_loss = dist.spmd(lambda p, xb, yb: lax.pmean(mlp_loss(p, xb, yb), "data"),
                        in_axes=(None, 0, 0), out_axes=None)
    xs, ys = dist.shard((x, y))
    full, dp = init, init
    for _ in range(20):
        full = sgd(mlp_loss, full, x, y)
        dp = sgd(dp_loss, dp, xs, ys)
    for f, d in zip(tree_leaves(full), tree_leaves(dp)):
        np.testing.assert_allclose(d, f, rtol=0, atol=1e-6)
    assert float(jnp.max(jnp.abs(full[0][0] - init[0][0]))) > 1e-3    # it did train


def linear_loss(params, x, y):
    w, b = params
    return jnp.mean((x @ w + b - y) ** 2)


def check_jit_of_grad_of_spmd():
    """jit(grad(spmd(...))): the kernel plan splits at the collectives (the loss's psum and
    the gradient's: two leaves, one bucket), run as host steps after the spmd call returned
    (through parallel.process_axes); equal to the full-batch gradient."""
    rng = np.random.default_rng(2)
    x, y, params = rng.normal(size=(8, 3)), rng.normal(size=8), (rng.normal(size=3), 0.5)
    dp_loss = dist.spmd(lambda p, xb, yb: lax.pmean(linear_loss(p, xb, yb), "data"),
                        in_axes=(None, 0, 0), out_axes=None)
    got = ft.jit(ft.grad(dp_loss))(params, *dist.shard((x, y)))
    for g, w in zip(tree_leaves(got), tree_leaves(ft.grad(linear_loss)(params, x, y))):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def check_grad_from_outside_matches_vmap():
    """grad of an spmd function (a replicated and a sharded output, a replicated and a sharded
    argument) equals grad of the vmap over the stacked shards with the same in/out axes: the
    replicated argument's gradient is global, the sharded one's this process's rows."""
    def f(w, x):
        local = jnp.tanh(x @ w)
        return lax.pmean(jnp.sum(local ** 2), "data"), local * lax.axis_index("data")
    rng = np.random.default_rng(3)
    w, xs = rng.normal(size=3), rng.normal(size=(N, 2, 3))

    def total(fn, w, x):
        loss, local = fn(w, x)
        return loss + 0.5 * jnp.sum(local)
    vm = ft.vmap(f, in_axes=(None, 0), out_axes=(None, 0), axis_name="data")
    sp = dist.spmd(f, in_axes=(None, 0), out_axes=(None, 0))
    gw, gx = ft.grad(lambda w, x: total(vm, w, x), argnums=(0, 1))(w, xs)
    sw, sx = ft.grad(lambda w, x: total(sp, w, x), argnums=(0, 1))(w, xs[RANK])
    np.testing.assert_allclose(sw, gw, rtol=1e-12)
    np.testing.assert_allclose(sx, np.asarray(gx)[RANK], rtol=1e-12)


def check_large_psums_reuse_result_buffers():
    """Results of 2 MB (over BufferPool.min_bytes) come from the pool once dropped: the
    reused buffer gets the new sum, and a result still held is never overwritten."""
    psum = dist.spmd(lambda v: lax.psum(v, "data"))
    x = np.full(2 ** 18, RANK + 1.0)
    held = psum(x)
    for k in range(3):
        np.testing.assert_array_equal(psum(x * (k + 2)), 3.0 * (k + 2))
    np.testing.assert_array_equal(held, 3.0)


def check_mismatched_shapes_name_them():
    f = dist.spmd(lambda v: lax.psum(v, "data"))
    try:
        f(np.zeros(3 + RANK))
    except dist.CollectiveMismatchError as e:
        msg = str(e)
        assert "process 0: psum of float64[3]" in msg, msg
        assert "process 1: psum of float64[4]" in msg, msg
    else:
        raise AssertionError("no CollectiveMismatchError for mismatched shapes")


def check_errors():
    try:
        lax.psum(np.ones(2), "data")
    except NameError as e:
        assert "unbound axis name: data" in str(e)
    else:
        raise AssertionError("a collective outside spmd did not raise NameError")
    dist.initialize()                                   # the defaults again: a no-op
    try:
        dist.initialize(check_collectives=False)
    except RuntimeError as e:
        assert "already called" in str(e)
    else:
        raise AssertionError("initialize with other options did not raise")


def fault():
    """Process 1 raises while process 0 waits in a collective: the job must end."""
    dist.initialize()
    if RANK == 1:
        raise RuntimeError("boom in process 1")
    dist.spmd(lambda v: lax.psum(v, "data"))(np.ones(2))
    print("process 0 was not aborted", flush=True)


def uncaught_mismatch():
    """Both processes raise the same CollectiveMismatchError, uncaught."""
    dist.spmd(lambda v: lax.psum(v, "data"))(np.zeros(2 + RANK))


def main(case):
    if case == "fault":
        return fault()
    if case == "mismatch":
        return uncaught_mismatch()
    dist.initialize()
    assert N == 2 and dist.process_count() == 2
    check_errors()
    check_collectives_match_vmap()
    check_mismatched_shapes_name_them()
    check_large_psums_reuse_result_buffers()
    check_grad_from_outside_matches_vmap()
    check_data_parallel_sgd_equals_full_batch()
    check_jit_of_grad_of_spmd()
    dist.print0("printed once")
    print(f"ok {RANK}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
