"""The transports behind functrans.distributed and the runner of its process axis.

A *transport* moves NumPy arrays between the processes of a job: ``LocalTransport`` for one
process without MPI, ``MPITransport`` over mpi4py's buffer API (uppercase methods: contiguous
buffers, no pickling). ``collective_runner(transport)`` is the ``AxisFrame.runner`` of the
process axis: it gives each collective primitive of functrans.lax.parallel its semantics
(JAX's, as under vmap) in terms of the transport's few operations, so both transports share it.
"""
from __future__ import annotations

import sys
import time
import traceback

import numpy as np



class CollectiveMismatchError(ValueError):
    """Processes called a collective with operands of different shapes or dtypes (or different
    collectives): every process raises it, with the same message."""


class LocalTransport:
    """One process, no MPI: every collective over it sees only this process's value."""
    rank, size, checks = 0, 1, False

    def allreduce(self, x, op):
        return np.array(x)

    def allgather(self, x):
        return np.array(x)[None]

    def reduce_scatter(self, blocks):
        return np.array(blocks[0])

    def alltoall(self, x):
        return np.array(x)

    def permute(self, x, perm):
        return np.array(x) if (0, 0) in perm else np.zeros_like(x)

    def bcast(self, x):
        return np.array(x)

    def check(self, what, x):
        pass

    def abort(self, code):
        sys.exit(code)


# the header every process contributes to a collective's check: which collective, dtype,
# rank and shape (collectives of rank above _MAX_RANK are checked by dtype and rank only)
_NAMES = ("psum", "pmax", "pmin", "all_gather", "psum_scatter", "ppermute", "all_to_all",
          "broadcast")
_MAX_RANK = 13


def _header(what, x):
    h = np.full(3 + _MAX_RANK, -1, np.int64)
    h[0], h[1], h[2] = _NAMES.index(what), ord(x.dtype.char), x.ndim
    if x.ndim <= _MAX_RANK:
        h[3:3 + x.ndim] = x.shape
    return h


def _describe(h):
    """'psum of float64[3, 4]' from a header."""
    shape = [int(d) for d in h[3:3 + h[2]]] if h[2] <= _MAX_RANK else f"<rank {h[2]}>"
    return f"{_NAMES[h[0]]} of {np.dtype(chr(h[1])).name}{shape}"


def _contiguous(x):
    """x as a C-contiguous array, 0-d kept 0-d (np.ascontiguousarray makes it 1-d)."""
    return np.asarray(x, order="C")


def _reducible(buf):
    """buf as MPI reduces it: booleans as bytes (MPI's MAX and MIN take no C bool)."""
    return buf.view(np.uint8) if buf.dtype == np.bool_ else buf


class BufferPool:
    """Result buffers of large all-reduces, reused once nothing but the pool refers to them.

    A collective's result is a new immutable array, so it needs a new buffer; a fresh one of
    100 MB costs its page faults (about as long as a copy), a warm one whose last result was
    dropped does not. Pools buffers of at least ``min_bytes``, at most ``max_bytes`` in all
    (the oldest dropped first)."""

    def __init__(self, min_bytes=2 ** 20, max_bytes=512 * 2 ** 20):
        self.min_bytes, self.max_bytes, self.buffers = min_bytes, max_bytes, []

    def take(self, shape, dtype):
        """(buffer, fresh): a free pooled buffer of this shape and dtype, or a new one."""
        for buf in self.buffers:
            # its referents: self.buffers, the loop variable and getrefcount's argument
            if buf.shape == shape and buf.dtype == dtype and sys.getrefcount(buf) == 3:
                return buf, False
        buf = np.empty(shape, dtype)
        if buf.nbytes >= self.min_bytes:
            self.buffers.append(buf)
            while sum(b.nbytes for b in self.buffers) > self.max_bytes and len(self.buffers) > 1:
                self.buffers.pop(0)
        return buf, True


class MPITransport:
    """The processes of an MPI communicator (COMM_WORLD), through mpi4py's buffer API."""

    def __init__(self, MPI, comm, checks):
        self.MPI, self.comm, self.checks = MPI, comm, checks
        self.pool = BufferPool()
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.ops = {"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}

    def check(self, what, x):
        """CollectiveMismatchError on every process if the processes' operands (or the
        collectives they call) differ: one small allgather of fixed-size headers."""
        if not self.checks:
            return
        mine = _header(what, x)
        every = np.empty((self.size, mine.size), np.int64)
        self.comm.Allgather(mine, every)
        if (every != every[0]).any():
            calls = ", ".join(f"process {i}: {_describe(h)}" for i, h in enumerate(every))
            raise CollectiveMismatchError(
                f"the processes called a collective with different operands ({calls}). "
                "Every process must call the same collectives, in the same order, on operands "
                "of the same shape and dtype")

    def allreduce(self, x, op):
        x = _contiguous(x)
        out, fresh = self.pool.take(x.shape, x.dtype)
        if fresh:         # measured faster than MPI writing into fresh memory itself
            np.copyto(out, x)
            self.comm.Allreduce(self.MPI.IN_PLACE, _reducible(out), self.ops[op])
        else:
            self.comm.Allreduce(_reducible(x), _reducible(out), self.ops[op])
        return out

    def allgather(self, x):
        x = _contiguous(x)
        out = np.empty((self.size,) + x.shape, x.dtype)
        self.comm.Allgather(x, out)
        return out

    def reduce_scatter(self, blocks):
        """blocks of shape (size, ...): the sum over processes of row `rank`."""
        blocks = _contiguous(blocks)
        out = np.empty(blocks.shape[1:], blocks.dtype)
        self.comm.Reduce_scatter_block(blocks, out, self.MPI.SUM)
        return out

    def alltoall(self, x):
        """x of shape (size, ...): row j goes to process j; row j of the result came from it."""
        x = _contiguous(x)
        out = np.empty_like(x)
        self.comm.Alltoall(x, out)
        return out

    def permute(self, x, perm):
        x = _contiguous(x)
        out = np.zeros_like(x)
        sends = [self.comm.Isend(x, dest=d, tag=7) for s, d in perm if s == self.rank]
        for s, d in perm:
            if d == self.rank:
                self.comm.Recv(out, source=s, tag=7)
        self.MPI.Request.Waitall(sends)
        return out

    def bcast(self, x):
        buf = np.array(x, order="C")
        self.comm.Bcast(buf, root=0)
        return buf

    def abort(self, code):
        self.comm.Abort(code)


# ---------------------------------------------------------------------------------------------
# The collectives in terms of a transport (x: this process's operand, a NumPy array)

def _all_gather(t, x, *, axes, axis, tiled, axis_size):
    g = np.moveaxis(t.allgather(x), 0, axis)
    if tiled:
        g = g.reshape(g.shape[:axis] + (g.shape[axis] * g.shape[axis + 1],) + g.shape[axis + 2:])
    return _contiguous(g)


def _blocks(x, axis, n, tiled):
    """x as (n, ...) blocks along axis (tiled: axis split into n; else axis itself, of size n)
    with the block's own axes in x's order minus axis (tiled: that axis first)."""
    x = np.moveaxis(x, axis, 0)
    return x.reshape((n, x.shape[0] // n) + x.shape[1:]) if tiled else x


def _unblock(y, axis, tiled):
    """One block of _blocks back in x's axis order."""
    return np.moveaxis(y, 0, axis) if tiled else y


def _psum_scatter(t, x, *, axes, scatter_dimension, tiled, axis_size):
    mine = t.reduce_scatter(_blocks(x, scatter_dimension, t.size, tiled))
    return _contiguous(_unblock(mine, scatter_dimension, tiled))


def _all_to_all(t, x, *, axes, split_axis, concat_axis, tiled, axis_size):
    got = t.alltoall(_blocks(x, split_axis, t.size, tiled))   # got[j]: sender j's block
    if tiled:
        return np.concatenate([_unblock(b, split_axis, True) for b in got], axis=concat_axis)
    return _contiguous(np.moveaxis(got, 0, concat_axis))


def _reduction(op):
    return lambda t, x, *, axes: t.allreduce(x, op)


_RULES = {
    "psum": _reduction("sum"), "pmax": _reduction("max"), "pmin": _reduction("min"),
    "all_gather": _all_gather, "psum_scatter": _psum_scatter, "all_to_all": _all_to_all,
    "ppermute": lambda t, x, *, axes, perm: t.permute(x, perm),
}


def collective_runner(transport):
    """The runner of an axis over the transport's processes: ``runner(prim, values, params)``
    evaluates the collective ``prim`` (AxisFrame.runner's protocol)."""
    def runner(prim, vals, params):
        if prim.name == "axis_index":
            return np.asarray(transport.rank, np.int32)
        x = np.asarray(vals[0])
        transport.check(prim.name, x)
        return _RULES[prim.name](transport, x, **params)
    return runner


# ---------------------------------------------------------------------------------------------
# Faults: an exception in one process ends the whole job

def install_abort_hook(transport):
    """sys.excepthook: print the traceback (once: an error every process raises alike is
    printed by process 0 only), then MPI_Abort, so that processes blocked in a collective
    waiting for this one end too instead of hanging."""
    def hook(etype, value, tb):
        if transport.rank == 0 or not isinstance(value, CollectiveMismatchError):
            print(f"functrans.distributed: process {transport.rank} of {transport.size} raised "
                  "an exception; aborting the job", file=sys.stderr)
            traceback.print_exception(etype, value, tb)
            sys.stderr.flush()
            # the launcher forwards our stderr through a pipe; MPI_Abort at once made it drop
            # the tail of the traceback (1 run in 8 on a busy 2-core machine)
            time.sleep(0.5)
        else:
            time.sleep(2.0)                 # process 0 prints the same error and aborts
        transport.abort(1)
    sys.excepthook = hook
