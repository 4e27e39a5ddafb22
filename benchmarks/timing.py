"""The timing helpers every benchmark script shares (run them from the repository root, as
`python benchmarks/NAME.py`: this folder is then on sys.path). The machine may be shared, so a
figure is the best of several rounds, never a mean."""
import time


def best(f, repeat=7, clock=time.perf_counter, number=1):
    """Best seconds per call of f() over `repeat` rounds of `number` calls, after one warm-up
    call; clock=time.process_time counts this process's CPU time only."""
    f()
    times = []
    for _ in range(repeat):
        t = clock()
        for _ in range(number):
            f()
        times.append((clock() - t) / number)
    return min(times)


def best_adaptive(f, rounds=5, round_seconds=0.2):
    """best() of f() and the wait for its results (functrans.block_until_ready), with as many
    calls per round as fill about round_seconds."""
    import functrans

    def call():
        return functrans.block_until_ready(f())
    t = time.perf_counter()
    call()
    once = max(time.perf_counter() - t, 1e-6)
    return best(call, repeat=rounds, number=max(1, int(round_seconds / once)))


def best_interleaved(fns, rounds=40, clock=time.perf_counter):
    """{name: best seconds per call} of the callables in ``fns`` (a dict), timed round-robin --
    one call of each per round, after one warm-up call each -- so that a slow spell of a shared
    machine falls on all of them alike, not on whichever happened to run then."""
    for f in fns.values():
        f()
    out = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, f in fns.items():
            t = clock()
            f()
            out[name] = min(out[name], clock() - t)
    return out


def pin_to_cpus(n):
    """Restrict this process -- every thread it has now, BLAS workers included, and so every
    thread it starts later -- to its first n allowed CPU cores (Linux; elsewhere nothing).
    os.sched_setaffinity(0, ...) alone moves only the calling thread. Returns the core count
    the process now runs on, or None where affinity is unsupported."""
    import os
    if not n or not hasattr(os, "sched_setaffinity"):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    cpus = sorted(os.sched_getaffinity(0))[:n]
    tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]
    for tid in tasks:
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:      # a thread that ended meanwhile
            pass
    return len(cpus)
