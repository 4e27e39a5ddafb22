"""functrans.distributed: one process in this process (no MPI), and two-process jobs started
with the mpich wheel's mpiexec running tests/_mpi_worker.py (mpi4py and mpich are in the test
extra: without them these tests fail with the ImportError naming ``pip install
functrans[mpi]``)."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans import _mpi, core, distributed as dist, lax
from functrans.lax import parallel

WORKER = os.path.join(os.path.dirname(__file__), "_mpi_worker.py")


def _loss(params, x, y):
    w, b = params
    return jnp.mean((x @ w + b - y) ** 2)


def _data():
    rng = np.random.default_rng(0)
    return (rng.normal(size=3), rng.normal(size=())), rng.normal(size=(4, 3)), rng.normal(size=4)


@pytest.fixture(autouse=True)
def _forget_process_axes():
    """The process axes spmd registers are the job's; other test files must not see them."""
    saved = dict(parallel.process_axes)
    yield
    parallel.process_axes.clear()
    parallel.process_axes.update(saved)


_dp_loss = dist.spmd(lambda p, x, y: lax.pmean(_loss(p, x, y), "data"), in_axes=(None, 0, 0),
                     out_axes=None)


def test_one_process_without_mpi():
    assert (ft.process_index(), ft.process_count()) == (0, 1)
    assert dist.is_initialized() and "mpi4py.MPI" not in sys.modules
    dist.initialize()                                   # idempotent
    with pytest.raises(RuntimeError, match="already called"):
        dist.initialize(check_collectives=False)
    x = np.arange(6.0).reshape(3, 2)
    out = dist.spmd(lambda v: (lax.psum(v, "data"), lax.all_gather(v, "data"),
                               lax.axis_index("data"), lax.ppermute(v, "data", [(0, 0)])))(x)
    np.testing.assert_array_equal(out[0], x)
    np.testing.assert_array_equal(out[1], x[None])
    assert int(out[2]) == 0
    np.testing.assert_array_equal(out[3], x)
    np.testing.assert_array_equal(dist.shard(x), x)
    np.testing.assert_array_equal(dist.broadcast({"a": x})["a"], x)


def test_grad_of_spmd_is_the_plain_gradient_and_buckets_the_allreduce():
    params, x, y = _data()
    want = ft.grad(_loss)(params, x, y)
    for got in (ft.grad(_dp_loss)(params, x, y), ft.jit(ft.grad(_dp_loss))(params, x, y)):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)
    # the loss's psum (its transpose) and one for both gradient leaves (a single bucket)
    text = str(ft.make_jaxpr(ft.grad(_dp_loss))(params, x, y))
    assert text.count("psum[") == 2, text


def test_bucketing_splits_by_dtype_and_size(monkeypatch):
    monkeypatch.setattr(parallel, "BUCKET_BYTES", 64)   # 8 float64s a bucket
    leaves = [np.ones(3), np.ones(4), np.ones(2, np.float32), np.ones(20), np.ones(())]
    with core.extend_axis_env([core.AxisFrame("p", 1, lambda prim, vals, params: vals[0])]):
        jaxpr = ft.make_jaxpr(lambda ls: lax.psum(ls, "p"))(leaves)
        out = lax.psum(leaves, "p")
    # buckets: [3 + 4 float64], [float32], [20: alone, over the size], [scalar]
    assert str(jaxpr).count("psum[") == 4
    for o, v in zip(out, leaves):
        np.testing.assert_array_equal(o, v)
        assert o.dtype == v.dtype


def test_buffer_pool_reuses_only_unreferenced_buffers():
    pool = _mpi.BufferPool(min_bytes=8, max_bytes=64)
    a, fresh = pool.take((2,), np.float64)
    assert fresh
    b, fresh = pool.take((2,), np.float64)
    assert fresh and b is not a                       # a is still referenced here
    del a
    c, fresh = pool.take((2,), np.float64)
    assert not fresh and c.shape == (2,)
    assert pool.take((1,), np.float64)[1]              # under min_bytes: never pooled
    pool.take((8,), np.float64)                        # 64 bytes: the older ones are evicted
    assert [x.shape for x in pool.buffers] == [(8,)]


def test_errors():
    with pytest.raises(NameError, match="unbound axis name: data"):
        lax.psum(np.ones(2), "data")
    with pytest.raises(ValueError, match="in_axes entries must be 0"):
        dist.spmd(lambda v: v, in_axes=1)(np.ones(2))
    with pytest.raises(ValueError, match="out_axes entries must be 0"):
        dist.spmd(lambda v: v, out_axes=(None, 2))
    with pytest.raises(TypeError, match="not None"):
        dist.spmd(lambda v: v, axis_name=None)
    with pytest.raises(TypeError, match="positional arguments only"):
        dist.spmd(lambda v: v)(v=1.0)


def test_shard_needs_an_even_split(monkeypatch):
    monkeypatch.setattr(dist._transport(), "size", 2)     # as the process 0 of two sees it
    with pytest.raises(ValueError, match=r"shape \(3, 2\) cannot be split evenly .* 2 processes"):
        dist.shard(np.ones((3, 2)))
    np.testing.assert_array_equal(dist.shard(np.arange(4.0)), [0.0, 1.0])


def test_launched_by_mpiexec_without_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setitem(sys.modules, "mpi4py", None)        # import mpi4py fails
    with pytest.raises(ImportError, match=r"pip install functrans\[mpi\]"):
        dist._join({"check_collectives": True})
    with pytest.raises(ImportError, match=r"pip install functrans\[mpi\]"):
        dist.mpiexec()


def _run_job(case, timeout):
    cmd = [dist.mpiexec(), "-n", "2", sys.executable, WORKER, case]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(ft.__file__)), os.environ.get("PYTHONPATH", "")]))
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - start


def test_two_processes():
    """Collectives across processes equal vmap's, data-parallel SGD equals full-batch SGD,
    jit(grad(spmd)), mismatched shapes named, errors, print0 (see _mpi_worker.py)."""
    proc, _ = _run_job("checks", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the processes' lines reach mpiexec's stdout interleaved, maybe mid-line
    assert sorted(re.findall(r"ok ([01])", proc.stdout)) == ["0", "1"], proc.stdout
    assert proc.stdout.count("printed once") == 1, proc.stdout


def test_an_exception_in_one_process_aborts_the_job():
    proc, took = _run_job("fault", timeout=60)
    assert proc.returncode != 0
    assert "process 0 was not aborted" not in proc.stdout
    assert proc.stderr.count("RuntimeError: boom in process 1") == 1, proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1
    assert took < 30


def test_an_error_every_process_raises_is_printed_once():
    proc, took = _run_job("mismatch", timeout=60)
    assert proc.returncode != 0
    assert proc.stderr.count("raised an exception; aborting the job") == 1, proc.stderr
    assert "process 0 of 2 raised" in proc.stderr
    assert "process 0: psum of float64[2], process 1: psum of float64[3]" in proc.stderr
    assert took < 30
