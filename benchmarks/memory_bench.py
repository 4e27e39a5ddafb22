"""Peak memory of a jitted gradient through a deep chain, printed as a markdown table.

The chain: ``x = tanh(x @ W_i)`` for 64 layers, width 512, batch 256, float32; the gradient of
``sum(chain(x))`` with respect to the input x (the weights are arguments, not differentiated),
without remat and with ``checkpoint`` around every 8 layers. Compared: functrans
``jit(grad)``, JAX ``jit(grad)`` (when installed) and hand-written NumPy backpropagation.

"Peak memory growth of one warm call" is measured like this, each in a fresh subprocess:

1. glibc's malloc is told to serve every block of 64 KiB or more by ``mmap`` and give it back
   on ``free`` (``MALLOC_MMAP_THRESHOLD_=65536``; a fixed threshold also turns off glibc's
   dynamic one, which would otherwise keep freed blocks in the heap). The resident set size
   then follows the bytes that are live, whoever allocated them: NumPy, numba's NRT (invisible
   to tracemalloc) or XLA.
2. The inputs are made and the function is called three times (compile, caches, first-touch).
3. The peak resident size is reset to the current one (``5 > /proc/self/clear_refs``), the
   function is called once (its result is kept), and the growth is ``VmHWM`` afterwards minus
   ``VmRSS`` before: every byte the call had live at once, its result included.

Time is the best of several calls in other subprocesses with the ordinary malloc settings,
over ``--rounds`` rounds that alternate between the rows (so load changes on a shared machine
hit every row alike). ``--baseline PATH`` adds a functrans row run from another checkout (e.g.
the main branch), so a before/after comparison comes from one run.

Run:  python benchmarks/memory_bench.py [--layers 64] [--baseline /path/to/other/checkout]
(``--child IMPL [--remat]`` runs one measurement in this process and prints it as JSON; the
tests use it with a smaller chain.)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

WIDTH, BATCH, SEGMENT = 512, 256, 8


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_growth_mib(call):
    """MiB by which one call of ``call()`` raised the resident set above its level before."""
    import gc
    gc.collect()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    result = call()
    peak = _status_kib("VmHWM")
    del result
    return (peak - before) / 1024


def best_ms(call, repeat=7):
    """Best milliseconds per call of ``call()`` over ``repeat`` calls."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def make_inputs(layers, width=WIDTH, batch=BATCH, seed=0):
    """(x, list of weights): a float32 batch and ``layers`` square weight matrices."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, width), dtype=np.float32)
    ws = [rng.standard_normal((width, width), dtype=np.float32) / np.float32(np.sqrt(width))
          for _ in range(layers)]
    return x, ws


def chain_loss(ft, np_mod, remat, segment_layers=SEGMENT):
    """loss(x, ws) = sum of the chain's output in a JAX-like framework ``ft``; with remat, each
    run of ``segment_layers`` layers is wrapped in ``ft.checkpoint``."""
    def segment(x, ws):
        for w in ws:
            x = np_mod.tanh(x @ w)
        return x

    def loss(x, ws):
        if remat:
            for i in range(0, len(ws), segment_layers):
                x = ft.checkpoint(segment)(x, ws[i:i + segment_layers])
        else:
            x = segment(x, ws)
        return np_mod.sum(x)
    return loss


def framework_grad(ft, np_mod, remat):
    """The jitted gradient function of the chain in a JAX-like framework ``ft``."""
    return ft.jit(ft.grad(chain_loss(ft, np_mod, remat)))


def numpy_grad(x, ws, remat):
    """Hand-written backpropagation of sum(chain(x)) to x; with remat, only segment inputs are
    kept in the forward pass and each segment is recomputed before its backward pass."""
    def forward(x, ws, saved):
        for w in ws:
            x = np.tanh(x @ w)
            if saved is not None:
                saved.append(x)
        return x

    def backward(ct, ws, outs):
        for w, y in zip(reversed(ws), reversed(outs)):
            ct *= 1 - y * y
            ct = ct @ w.T
        return ct

    if not remat:
        outs = []
        forward(x, ws, outs)
        return backward(np.ones_like(x), ws, outs)
    starts = []
    for i in range(0, len(ws), SEGMENT):
        starts.append(x)
        if i + SEGMENT < len(ws):
            x = forward(x, ws[i:i + SEGMENT], None)
    ct = np.ones_like(x)
    for k in range(len(starts) - 1, -1, -1):
        seg = ws[k * SEGMENT:(k + 1) * SEGMENT]
        outs = []
        forward(starts[k], seg, outs)
        ct = backward(ct, seg, outs)
        del outs
    return ct


def measure(impl, remat, layers, width=WIDTH, batch=BATCH, repeat=0):
    """{'mib': peak growth of one call} of one implementation, in this process; with
    ``repeat``, {'ms': best time of that many calls} instead."""
    x, ws = make_inputs(layers, width, batch)
    if impl == "functrans":
        import functrans
        import functrans.numpy as fnp
        g = framework_grad(functrans, fnp, remat)
        call = lambda: np.asarray(g(x, ws))           # noqa: E731
    elif impl == "jax":
        import jax
        import jax.numpy as jnp
        jax.config.update("jax_platforms", "cpu")
        g = framework_grad(jax, jnp, remat)
        xj, wj = jax.device_put(x), [jax.device_put(w) for w in ws]
        call = lambda: g(xj, wj).block_until_ready()  # noqa: E731
    else:
        call = lambda: numpy_grad(x, ws, remat)       # noqa: E731
    for _ in range(3):
        call()
    if repeat:
        return {"ms": best_ms(call, repeat)}
    return {"mib": peak_growth_mib(call)}


def run_child(impl, remat, layers, pythonpath=None, repeat=0):
    """measure() in a fresh subprocess (with mmap-backed malloc unless timing); None if impl
    is unavailable."""
    env = dict(os.environ)
    if not repeat:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    cmd = [sys.executable, __file__, "--child", impl, "--layers", str(layers),
           "--repeat", str(repeat)]
    if remat:
        cmd.append("--remat")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        if "ModuleNotFoundError" in proc.stderr:
            return None
        raise RuntimeError(f"{impl} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--baseline", help="another functrans checkout to measure beside this one")
    ap.add_argument("--child", choices=["functrans", "jax", "numpy"],
                    help="measure one implementation in this process; print JSON")
    ap.add_argument("--remat", action="store_true", help="with --child: checkpoint segments")
    ap.add_argument("--width", type=int, default=WIDTH, help="with --child")
    ap.add_argument("--batch", type=int, default=BATCH, help="with --child")
    ap.add_argument("--repeat", type=int, default=0,
                    help="with --child: time this many calls instead of measuring memory")
    ap.add_argument("--rounds", type=int, default=2, help="timing subprocesses per row")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(measure(a.child, a.remat, a.layers, a.width, a.batch, a.repeat)))
        return
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rows = [("functrans", "functrans", here), ("JAX", "jax", None),
            ("hand-written NumPy", "numpy", None)]
    if a.baseline:
        rows.insert(1, (f"functrans at {a.baseline}", "functrans", a.baseline))
    saved = BATCH * WIDTH * 4 * a.layers / 2 ** 20
    print(f"deep chain: {a.layers} x tanh(x @ W), width {WIDTH}, batch {BATCH}, float32; "
          f"jit(grad) w.r.t. x; the {a.layers} saved activations are {saved:.0f} MiB\n")
    print("| implementation | remat | peak growth (MiB) | time (ms) |")
    print("|---|---|---|---|")
    for remat in (False, True):
        mem = {label: run_child(impl, remat, a.layers, path) for label, impl, path in rows}
        ms = {label: float("inf") for label, _, _ in rows if mem[label] is not None}
        for _ in range(a.rounds):
            for label, impl, path in rows:
                if label in ms:
                    ms[label] = min(ms[label], run_child(impl, remat, a.layers, path, 7)["ms"])
        how = f"checkpoint every {SEGMENT}" if remat else "none"
        for label, _, _ in rows:
            if mem[label] is None:
                print(f"| {label} | {how} | not installed | |")
            else:
                print(f"| {label} | {how} | {mem[label]['mib']:.1f} | {ms[label]:.1f} |",
                      flush=True)


if __name__ == "__main__":
    main()
