"""First-jit (compile) time and steady-state run time of large programs, split vs unsplit.

Each row runs in a fresh subprocess with an empty FUNCTRANS_CACHE_DIR, so nothing is shared
between rows but the OS page cache. "first call" is the first call of the jitted function in
that process, numba's start-up included (what a user's script waits for); it is given as wall
time and as this process's CPU time (the machine is shared: CPU time does not count the time
other processes took the cores; a helper compiling in parallel is in the wall time only). "split" is the default; "unsplit" sets
FUNCTRANS_SPLIT_GROUPS=0 (one loop nest per fused group, however large). Steady state is the
least CPU time of several calls; NumPy is the same program run eagerly with numpy.

    python benchmarks/compile_bench.py            # the table
    python benchmarks/compile_bench.py --quick    # small rows only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNSPLIT_TIMEOUT_S = 240


def sin_chain(np_mod, steps):
    """x <- sin(x) * 1.01 + 0.1, steps times (float32: sin is an inlined vmath function)."""
    def f(x):
        for _ in range(steps):
            x = np_mod.sin(x) * 1.01 + 0.1
        return x
    return f


def mixed_chain(np_mod, steps):
    """A chain mixing cheap and transcendental ops, two values alive at each step."""
    def f(x):
        y = x
        for _ in range(steps):
            x, y = np_mod.tanh(x * 1.1 - y * 0.1), y * 0.9 + np_mod.exp(-x * x) * 0.1
        return x + y
    return f


def mlp_grad(layers, width=64, batch=32):
    """The gradient of a layers-deep tanh MLP's squared output, unrolled, as (f, args)."""
    import numpy as np

    import functrans
    import functrans.numpy as fnp

    def loss(params, x):
        for w, b in params:
            x = fnp.tanh(x @ w + b)
        return fnp.sum(x * x)
    rng = np.random.default_rng(0)
    params = [(rng.normal(size=(width, width)).astype(np.float32) / np.sqrt(width),
               np.zeros(width, np.float32)) for _ in range(layers)]
    x = rng.normal(size=(batch, width)).astype(np.float32)
    return functrans.grad(loss), (params, x)


def _numpy_mlp_grad(params, x):
    """Hand-written NumPy backprop of mlp_grad's loss."""
    import numpy as np
    acts = [x]
    for w, b in params:
        acts.append(np.tanh(acts[-1] @ w + b))
    g = 2 * acts[-1]
    grads = []
    for (w, b), a_in, a_out in zip(params[::-1], acts[-2::-1], acts[:0:-1]):
        gz = g * (1 - a_out * a_out)
        grads.append((a_in.T @ gz, gz.sum(0)))
        g = gz @ w.T
    return grads[::-1]


ROWS = {   # name -> (kind, steps, elements)
    "sin chain, 8 steps": ("sin", 8, 1_000_000),
    "sin chain, 100 steps": ("sin", 100, 100_000),
    "sin chain, 1000 steps": ("sin", 1000, 100_000),
    "sin chain, 5000 steps": ("sin", 5000, 100_000),
    "mixed chain, 1000 steps": ("mixed", 1000, 100_000),
    "MLP 200 layers, jit(grad)": ("mlp", 200, None),
}
QUICK = ["sin chain, 8 steps", "sin chain, 100 steps", "mixed chain, 1000 steps"]
# also measured unsplit (the larger chains do not compile unsplit: numba's SSA pass recurses
# once per basic block, and 100 inlined sins already exceed Python's recursion limit)
UNSPLIT_ROWS = ["sin chain, 8 steps", "sin chain, 100 steps", "MLP 200 layers, jit(grad)"]


def _best(f, *args, repeat=5):
    """The least CPU time of this process over repeat calls (the kernels and NumPy's calls
    here run on one thread; CPU time leaves out the time other processes held the core)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        f(*args)
        best = min(best, time.process_time() - t)
    return best


def run_row(name):
    """Measure one row in this process; prints a JSON line."""
    import numpy as np

    import functrans
    import functrans.numpy as fnp
    from functrans import backends
    kind, steps, size = ROWS[name]
    if kind == "mlp":
        f, args = mlp_grad(steps)
        ref = lambda: _numpy_mlp_grad(*args)   # noqa: E731
    else:
        make = sin_chain if kind == "sin" else mixed_chain
        f = make(fnp, steps)
        args = (np.linspace(-2, 2, size).astype(np.float32),)
        g = make(np, steps)
        ref = lambda: g(args[0])   # noqa: E731
    jf = functrans.jit(f)
    w0, c0 = time.perf_counter(), time.process_time()
    jf(*args)
    first_wall, first_cpu = time.perf_counter() - w0, time.process_time() - c0
    stats = backends.compile_stats()
    low = jf.lower(*args)
    kernels = [x for k, x in getattr(low, "parts", [("kernel", low)]) if k == "kernel"]
    print(json.dumps(dict(
        first_wall=first_wall, first_cpu=first_cpu, compiles=stats["compiles"],
        kernels=len(kernels), distinct=len({x.source for x in kernels}),
        run=_best(jf, *args), numpy=_best(ref))))


def measure(name, split):
    """Run one row in a fresh process with an empty cache; the dict it printed, or an error."""
    env = dict(os.environ, FUNCTRANS_SPLIT_GROUPS="1" if split else "0", PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as cache:
        env["FUNCTRANS_CACHE_DIR"] = cache
        try:
            p = subprocess.run([sys.executable, __file__, "--row", name], env=env, text=True,
                               capture_output=True, timeout=UNSPLIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"error": f"> {UNSPLIT_TIMEOUT_S} s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"error": last.split(":")[0]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def _cell(r, key, fmt):
    return r["error"] if "error" in r else fmt(r[key])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--row")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    if a.row:
        run_row(a.row)
        return
    names = QUICK if a.quick else list(ROWS)
    print("| program | mode | first call wall | first call CPU | kernels (distinct) | "
          "numba compiles | steady state | NumPy eager | jit / NumPy |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for split in (True, False):
            if not split and name not in UNSPLIT_ROWS:
                continue
            r = measure(name, split)
            ms = lambda s: f"{s * 1e3:.2f} ms"   # noqa: E731
            print(f"| {name} | {'split' if split else 'unsplit'} | "
                  f"{_cell(r, 'first_wall', lambda s: f'{s:.2f} s')} | "
                  f"{_cell(r, 'first_cpu', lambda s: f'{s:.2f} s')} | "
                  + ("" if "error" in r else f"{r['kernels']} ({r['distinct']})") + " | "
                  + ("" if "error" in r else str(r["compiles"])) + " | "
                  f"{_cell(r, 'run', ms)} | {_cell(r, 'numpy', ms)} | "
                  + ("" if "error" in r else f"{r['run'] / r['numpy']:.2f}") + " |",
                  flush=True)


if __name__ == "__main__":
    main()
