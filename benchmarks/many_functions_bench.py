"""Memory of a process that jits many distinct small functions: does it stay bounded?

Each function is ``x * 2.5 + i`` for a different Python constant ``i``: a distinct Python
function, jaxpr, plan and executable every time, but (shape and literal erasure) one kernel
source, so numba compiles once and the run measures functrans's own bookkeeping. Two phases:
the functions are dropped after their call (RSS must stay flat), then they are kept (RSS grows
by what each live jitted function holds). Prints RSS every ``--every`` functions. A last phase
compiles ``--sources`` distinct kernel sources and prints what each one costs.

Run: python benchmarks/many_functions_bench.py [--n 10000] [--every 1000]"""
import argparse
import gc
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rss_mib():
    """This process's resident set size in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def phase(n, every, keep):
    """Jit and call n distinct functions; returns [(count, RSS MiB)] every `every` functions."""
    import functrans
    x = np.arange(8, dtype=np.float32)
    kept, marks = [], []
    for i in range(1, n + 1):
        f = functrans.jit(lambda v, c=float(i): v * 2.5 + c)
        assert float(f(x)[0]) == float(i)
        if keep:
            kept.append(f)
        if i % every == 0:
            gc.collect()
            marks.append((i, rss_mib()))
    return marks


def sources(n):
    """Jit n functions of n distinct kernel sources (chains of 1..n steps, each compiled by
    numba); returns the RSS growth in KiB per kernel source."""
    import functrans
    x = np.arange(8, dtype=np.float32)

    def chain(k):
        def f(v):
            for _ in range(k):
                v = v * 1.5 + 1.0
            return v
        return f
    functrans.jit(chain(1))(x)
    gc.collect()
    r0 = rss_mib()
    for k in range(2, n + 2):
        functrans.jit(chain(k))(x)
    gc.collect()
    return (rss_mib() - r0) * 1024 / n


def main():
    """Run both phases in a private cache directory and print the RSS marks."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--every", type=int, default=1000)
    ap.add_argument("--sources", type=int, default=40, help="distinct kernel sources compiled")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftmem-") as d:
        os.environ["FUNCTRANS_CACHE_DIR"] = d
        from functrans import backends
        for keep in (False, True):
            t0 = time.perf_counter()
            marks = phase(args.n, args.every, keep)
            dt = time.perf_counter() - t0
            print(f"{'kept' if keep else 'dropped'}: {args.n} functions in {dt:.1f} s "
                  f"({dt / args.n * 1e3:.2f} ms each); RSS MiB at "
                  + ", ".join(f"{i}: {m:.1f}" for i, m in marks))
            growth = (marks[-1][1] - marks[0][1]) / max(1, marks[-1][0] - marks[0][0])
            print(f"  growth after the first {marks[0][0]}: {growth * 1024:.2f} KiB per function")
        print(f"{args.sources} distinct kernel sources: "
              f"{sources(args.sources):.0f} KiB per source (numba's machine code and module)")
        print("numba compiles:", backends.compile_stats()["compiles"])


if __name__ == "__main__":
    main()
