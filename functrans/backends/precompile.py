"""Compiling a split jaxpr's kernels on both cores.

numba compiles one function at a time (a global lock, and most of the work is Python), so a
cold jit of a training step spends 1.5-2 s compiling its 4-6 kernels one after another on one
core. When a split plan has several kernels that are not yet in the disk cache, the kernels
needed last are handed to one helper process (``python -m functrans.backends.precompile``),
which compiles them into the same disk cache while this process compiles the first ones.
Before a handed-off kernel first runs, this process waits for the helper, then loads the
kernel from the cache. A helper that fails or is slow changes nothing but time: the kernel is
then compiled here as it would have been.

The helper never outlives this process: it watches its stdin, a pipe only this process
writes to, and exits when the pipe closes (this process exited, however it ended, even by
SIGKILL). This process kills and reaps its helpers at exit (atexit, and on SIGTERM when no
other handler is installed), and a thread waits on each helper, so a finished one is reaped
at once and leaves no zombie.

``FUNCTRANS_PARALLEL_COMPILE=0`` turns this off."""
from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import threading
import time

# seconds, measured here (numba 0.68): a helper's start (Python, numba import, target init),
# the same target init in this process (paid by its first compile), and a kernel's compile as
# a fixed part plus a part per equation
HELPER_START_S = 0.7
MAIN_START_S = 0.2
KERNEL_FIXED_S = 0.2
KERNEL_PER_EQN_S = 0.03
WAIT_LIMIT_S = 120.0


def _decode(spec):
    """A numba Array type from (dtype, ndim, layout, readonly)."""
    import numpy as np
    from numba import from_dtype, types
    dtype, ndim, layout, readonly = spec
    return types.Array(from_dtype(np.dtype(dtype)), ndim, layout, readonly=readonly)


def enabled():
    """Whether kernels may be compiled in a helper process."""
    return os.environ.get("FUNCTRANS_PARALLEL_COMPILE", "1") != "0" and (os.cpu_count() or 1) > 1


def cost(n_eqns):
    """Estimated seconds to compile a kernel of n_eqns equations (numba_cpu.eqn_cost units:
    plain arithmetic equations)."""
    return KERNEL_FIXED_S + KERNEL_PER_EQN_S * n_eqns


def _finish_time(costs, first_helped):
    """When this process has run through all kernels, if the helper compiles
    costs[first_helped:] in order (the first run of each kernel waits for its compile)."""
    helper_done, t = HELPER_START_S, MAIN_START_S
    for i, c in enumerate(costs):
        if i < first_helped:
            t += c
        else:
            helper_done += c
            t = max(t, helper_done)
    return t


def choose(costs):
    """Indices of the kernels (in program order, with estimated compile costs) to hand to a
    helper: the suffix that finishes soonest; empty when a helper would not pay for its start."""
    n = len(costs)
    best = min(range(1, n + 1), key=lambda i: _finish_time(costs, i), default=n)
    return list(range(best, n))


_live = set()          # the Popen objects of helpers not yet closed
_sigterm_installed = False


def _stop(proc, timeout=0.0):
    """Close the helper's pipes and reap it (killing it if it has not exited after timeout)."""
    _live.discard(proc)
    try:
        proc.stdin.close()              # the helper's watcher sees EOF and exits
    except OSError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    proc.stdout.close()
    if not _live:
        _uninstall_sigterm()


def stop_all():
    """Kill and reap every helper process this process started (run at exit)."""
    for proc in list(_live):
        _stop(proc)


def _on_sigterm(signum, frame):
    """SIGTERM with no handler of the user's: stop the helpers, then die of SIGTERM as before."""
    stop_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _install_sigterm():
    """Chain into SIGTERM once, only where the default action is set and we are in the main
    thread (a user's handler is never replaced; the pipe covers that case)."""
    global _sigterm_installed
    if _sigterm_installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _uninstall_sigterm():
    """Give SIGTERM its default action back once no helper runs (a Python handler waits for
    the main thread to reach the interpreter; the default acts at once)."""
    global _sigterm_installed
    if (_sigterm_installed and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _on_sigterm):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _sigterm_installed = False


atexit.register(stop_all)


class Helper:
    """One helper process compiling the given (module name, path, argument spec) jobs, in
    order; it reports each one done on its stdout."""

    def __init__(self, jobs):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in [root, os.environ.get("PYTHONPATH", "")] if p))
        log = os.environ.get("FUNCTRANS_LOG_COMPILES", "") == "1"
        self.pending = {name for name, _, _ in jobs}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "functrans.backends.precompile", json.dumps(jobs)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None if log else subprocess.DEVNULL, text=True)
        _live.add(self.proc)
        _install_sigterm()
        # reaps the helper as soon as it exits (Popen.wait is safe from several threads)
        threading.Thread(target=self.proc.wait, daemon=True, name="functrans-helper-reaper").start()

    def has(self, name):
        """Whether the helper was given the kernel module ``name``."""
        return name in self.pending

    def wait_for(self, name):
        """Block until the helper reports ``name`` compiled, or has stopped, or WAIT_LIMIT_S
        passed. (Either way the caller then loads or compiles the kernel as usual.)"""
        if self.proc is None or name not in self.pending:
            return
        deadline = time.monotonic() + WAIT_LIMIT_S
        while name in self.pending and time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:                # the helper has exited
                break
            self.pending.discard(line.strip())
        if name in self.pending or not self.pending:
            self._close()

    def _close(self):
        proc, done, self.proc, self.pending = self.proc, not self.pending, None, set()
        _stop(proc, timeout=5 if done else 0)   # all reported: it is exiting by itself

    def __del__(self):
        if getattr(self, "proc", None) is not None:
            self._close()


def _exit_on_eof(stream):
    """Block until the parent closes our stdin (or dies), then exit at once."""
    try:
        stream.read()
    finally:
        os._exit(0)


def main(argv):
    """The helper: compile each job's kernel for its argument types (numba writes the disk
    cache), printing the module name after each. Exits as soon as its stdin closes."""
    threading.Thread(target=_exit_on_eof, args=(sys.stdin,), daemon=True).start()
    from . import cache
    for name, path, spec in json.loads(argv[1]):
        t0 = time.perf_counter()
        mod = cache._import(name, path)
        mod.kernel.compile(tuple(_decode(e) for e in spec))
        print(name, flush=True)
        if os.environ.get("FUNCTRANS_LOG_COMPILES", "") == "1":
            print(f"functrans: helper compiled {name} in {time.perf_counter() - t0:.3f} s",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(sys.argv)
