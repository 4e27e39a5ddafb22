"""CUDA graphs for compiled programs: a program's kernel launches and GEMMs are captured once and
replayed per call with one ``cudaGraphLaunch``, so a call costs one launch of host work instead
of one per kernel (a scan body's kernels included: the capture unrolls the loop).

A graph instance owns its memory: the static input buffers the graph reads, and a private CuPy
memory pool that served every buffer of the captured run (its outputs and intermediates). A call
copies its inputs into the static inputs (device-to-device), launches the graph on the null
stream (ordered with every other kernel, ours or CuPy's) and hands out the output buffers
themselves, tied to a *lease*: each returned CuPy array holds the lease through its memory, and
the instance is replayed again only when the lease is gone (every output of its last call has
been dropped). While the outputs of one call are alive (``params = step(params, batch)`` keeps
them as the next call's inputs), the next call uses a second instance; at most
``MAX_INSTANCES`` are captured per program, after which a call with every instance leased runs
the program without a graph.

Used for programs of at least ``MIN_LAUNCHES`` launches (counting a scan body once per step)
with no host read (no ``cond``/``while``, whose predicates the host must see), on a GPU with
CuPy, from the second call on (the first compiles the kernels). Anything the capture cannot take
turns graphs off for that program, which then runs as before. ``FUNCTRANS_CUDA_GRAPHS=0`` turns
them off everywhere."""
from __future__ import annotations

import os
import threading
import weakref

from . import cuda_memory

ENABLED = os.environ.get("FUNCTRANS_CUDA_GRAPHS", "1") != "0"
MIN_LAUNCHES = 4
MAX_INSTANCES = 2

_stats = {"captures": 0, "replays": 0, "capture_failures": 0, "fallback_runs": 0}
_live = weakref.WeakSet()           # every Graphs object, for memory_bytes() and release()


class NotCapturable(RuntimeError):
    """A step that cannot be captured in a CUDA graph (the message says which)."""


class _Capture(threading.local):
    """This thread's launch stream: None for the null stream, else (CuPy stream, the same
    stream as a cuda.core Stream) while a graph is being captured or warmed up."""
    stream = None


capture = _Capture()


def stream_ptr():
    """The handle of the stream our kernels and GEMMs go to now (0: the null stream)."""
    s = capture.stream
    return 0 if s is None else s[0].ptr


def stats():
    """Counters: graphs captured, replays, failed captures, calls that ran without a graph
    because every instance was leased."""
    return dict(_stats)


def memory_bytes():
    """Bytes held by the private pools of every captured graph (not counted by the default
    pool's statistics)."""
    return sum(g.memory_bytes() for g in list(_live))


def release():
    """Forget every captured graph; an instance whose outputs are still alive is freed when
    they are."""
    for g in list(_live):
        g.instances.clear()


def launch_count(program):
    """Kernel launches and GEMMs one run of program issues (a scan body's once per step)."""
    n = 0
    for step, run in zip(program.plan.steps, program.steps):
        launches = getattr(run, "launches", None)
        if launches is not None:
            n += sum(1 for ln in launches if ln.work)
            continue
        name = step.eqn.primitive.name
        if name == "scan":
            body = program._sub(step.eqn.params["jaxpr"])
            n += step.eqn.params["length"] * launch_count(body)
        elif name != "reshape":
            n += 1
    return n


#: ops a program may run as CuPy calls with temporaries of their own (the im2col + GEMM
#: convolution): such programs are not captured.
CUPY_STEP_OPS = frozenset({"conv_general_dilated"})


def host_free(program):
    """True when no step of program (or of its sub-programs) reads device memory on the host
    (cond and while read their predicate; callbacks their operands) or runs CuPy calls with
    temporaries of their own (CUPY_STEP_OPS)."""
    from .. import core
    from .plan import HOST_IMPL_OPS, Group
    for step in program.plan.steps:
        if not isinstance(step, Group) and (step.eqn.primitive.name in ("cond", "while")
                                            or step.eqn.primitive in core.host_primitives
                                            or step.eqn.primitive.name in HOST_IMPL_OPS
                                            or step.eqn.primitive.name in CUPY_STEP_OPS):
            return False
    return all(host_free(p) for p, _ in program._subs.values())


def for_program(program):
    """A Graphs for program, or None when graphs do not apply (off, no CuPy, too few launches,
    a host read)."""
    if not ENABLED or cuda_memory.cupy_module() is None:
        return None
    if not host_free(program) or launch_count(program) < MIN_LAUNCHES:
        return None
    return Graphs(program)


class _Lease:
    __slots__ = ("instance", "__weakref__")

    def __init__(self, instance):
        self.instance = instance


class _Instance:
    """One captured graph: its static inputs, outputs, private pool, and the current lease."""
    __slots__ = ("graph", "inputs", "outputs", "pool", "lease")

    def __init__(self, graph, inputs, outputs, pool):
        self.graph, self.inputs, self.outputs, self.pool = graph, inputs, outputs, pool
        self.lease = None

    def free(self):
        return self.lease is None or self.lease() is None


class Graphs:
    """The captured graphs of one program; ``run(device inputs, out avals)`` -> the outputs
    (CuPy arrays of the avals' shapes), or None when this call runs without a graph."""

    def __init__(self, program):
        self.program = program
        self.instances = []
        self.calls = 0
        self.failed = None          # why capturing failed, once it has
        self._lock = threading.Lock()
        _live.add(self)

    def run(self, inputs, out_avals):
        self.calls += 1
        if self.calls < 2 or self.failed or not self._lock.acquire(blocking=False):
            return None
        try:
            inst = next((i for i in self.instances if i.free()), None)
            if inst is None:
                if len(self.instances) >= MAX_INSTANCES:
                    _stats["fallback_runs"] += 1
                    return None
                inst = self._capture(inputs)
                if inst is None:
                    return None
                self.instances.append(inst)
            return self._replay(inst, inputs, out_avals)
        finally:
            self._lock.release()

    def memory_bytes(self):
        return sum(int(i.pool.total_bytes()) for i in self.instances)

    # -- capture
    def _capture(self, inputs):
        cp = cuda_memory.cupy_module()
        try:
            return self._record(cp, inputs)
        except Exception as e:  # noqa: BLE001  (anything uncapturable: run without graphs)
            self.failed = f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"
            _stats["capture_failures"] += 1
            cuda_memory._log(f"CUDA graph capture failed ({self.failed}); running without graphs")
            return None

    def _record(self, cp, inputs):
        """Capture the program into a new instance. The static inputs get this call's values
        and the program runs once for real on the capture stream first, so the private pool
        already holds every block the captured run asks for (no cudaMalloc while capturing)."""
        pool = cp.cuda.MemoryPool()
        s = _capture_stream(cp)
        with cp.cuda.using_allocator(pool.malloc):
            static = [cp.empty(a.size, a.dtype) for a in inputs]
            for dst, src in zip(static, inputs):
                _copy(dst, src)
            cp.cuda.Stream.null.synchronize()
            with s[0]:
                capture.stream = s
                try:
                    self.program.run(static)            # warm-up on the capture stream
                    s[0].synchronize()
                    s[0].begin_capture()
                    try:
                        outs = self.program.run(static)
                    finally:
                        graph = s[0].end_capture()
                finally:
                    capture.stream = None
        graph.upload(cp.cuda.Stream.null)
        _stats["captures"] += 1
        return _Instance(graph, static, outs, pool)

    # -- replay
    def _replay(self, inst, inputs, out_avals):
        for dst, src in zip(inst.inputs, inputs):
            if dst is not src:
                _copy(dst, src)
        inst.graph.launch(cuda_memory.cupy_module().cuda.Stream.null)
        _stats["replays"] += 1
        lease = _Lease(inst)
        inst.lease = weakref.ref(lease)
        return [_leased(buf, a.shape, lease) for buf, a in zip(inst.outputs, out_avals)]


def _copy(dst, src):
    """dst[:] = src (flat device buffers of one size), queued on the current stream."""
    n = dst.nbytes
    if n:
        dst.data.copy_from_device_async(src.data, n)


def _leased(buf, shape, lease):
    """A CuPy array of shape over buf's memory whose memory holds lease."""
    cp = cuda_memory.cupy_module()
    if buf.nbytes == 0:
        return cp.empty(shape, buf.dtype)
    mem = cp.cuda.UnownedMemory(buf.data.ptr, buf.nbytes, lease, buf.device.id)
    return cp.ndarray(shape, buf.dtype, cp.cuda.MemoryPointer(mem, 0))


_STREAMS = {}


def _capture_stream(cp):
    """(CuPy stream, cuda.core Stream) of this device's capture stream: a non-blocking stream,
    as capture cannot run on the null stream."""
    dev = cp.cuda.runtime.getDevice()
    s = _STREAMS.get(dev)
    if s is None:
        from cuda.core import Stream
        c = cp.cuda.Stream(non_blocking=True)
        s = _STREAMS[dev] = (c, Stream.from_handle(c.ptr))
    return s
