"""Budgeted remat on the deep chain, printed as a markdown table.

The chain of benchmarks/memory_bench.py (``x = tanh(x @ W_i)``, 64 layers, width 512, batch
256, float32; ``jit(grad)`` of ``sum(chain(x))`` with respect to x): no remat, ``checkpoint``
around every 8 layers, and ``auto_checkpoint`` with several budgets. For each: the peak memory
growth of one warm call (memory_bench's ``peak_growth_mib``, each in a fresh subprocess with
mmap-backed malloc, as that script's docstring describes), the peak the plan predicts, and the
time relative to the no-remat gradient. Times are the CPU time of the calling process
(``time.process_time``, all its threads; BLAS single-threaded), the best of ``--rounds`` x 3
calls in one subprocess per framework that alternates between the variants: on a shared
machine wall-clock time measures the other jobs. JAX's rows (no remat, checkpoint every 8)
are measured the same way when jax is installed.

Run:  python benchmarks/remat_bench.py [--layers 64] [--budgets 7,10,16,24]
(``--child IMPL VARIANT`` measures one variant's memory in this process; ``--timing IMPL``
times every variant; both print JSON.)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory_bench import chain_loss, make_inputs, peak_growth_mib  # noqa: E402

MIB = 2 ** 20


def variants(impl, budgets):
    """The variant names measured for impl: 'none', 'every8' and (functrans) 'auto:<MiB>'."""
    names = ["none", "every8"]
    if impl == "functrans":
        names += [f"auto:{b:g}" for b in budgets]
    return names


def gradient(impl, variant):
    """(jitted gradient of the chain loss w.r.t. x for variant, the framework module)."""
    if impl == "functrans":
        import functrans as ft
        import functrans.numpy as np_mod
    else:
        import jax as ft
        import jax.numpy as np_mod
        ft.config.update("jax_platforms", "cpu")
    loss = chain_loss(ft, np_mod, variant == "every8")
    if variant.startswith("auto:"):
        loss = ft.auto_checkpoint(loss, max_bytes=int(float(variant[5:]) * MIB))
    return ft.jit(ft.grad(loss)), ft


def caller(impl, variant, layers):
    """A no-argument function running one warm-able gradient call."""
    x, ws = make_inputs(layers)
    g, ft = gradient(impl, variant)
    if impl == "jax":
        xj, wj = ft.device_put(x), [ft.device_put(w) for w in ws]
        return lambda: g(xj, wj).block_until_ready()
    return lambda: np.asarray(g(x, ws))


def predicted_mib(variant, layers):
    """The peak auto_checkpoint's plan predicts for variant (None for the others)."""
    if not variant.startswith("auto:"):
        return None
    import functrans as ft
    import functrans.numpy as fnp
    x, ws = make_inputs(layers)
    f = ft.auto_checkpoint(chain_loss(ft, fnp, False), max_bytes=int(float(variant[5:]) * MIB))
    plan = f.explain(x, ws, argnums=0)
    return {"predicted": plan.predicted_peak / MIB,
            "recompute": plan.recompute_flop_fraction}


def child_memory(impl, variant, layers):
    call = caller(impl, variant, layers)
    for _ in range(3):
        call()
    return {"mib": peak_growth_mib(call)}


def child_timing(impl, names, layers, rounds):
    calls = {v: caller(impl, v, layers) for v in names}
    for call in calls.values():
        for _ in range(2):
            call()
    best = {v: float("inf") for v in names}
    for _ in range(rounds):
        for v, call in calls.items():
            for _ in range(3):
                t0 = time.process_time()
                call()
                best[v] = min(best[v], time.process_time() - t0)
    return {v: t * 1e3 for v, t in best.items()}


def run(args, mmap):
    """This script with args in a fresh subprocess; its JSON, or None if the framework is
    not installed."""
    env = dict(os.environ)
    if mmap:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    else:       # on a loaded machine, BLAS threads spinning for a core would be the measurement
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__] + args, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        if "ModuleNotFoundError" in proc.stderr:
            return None
        raise RuntimeError(f"{args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--budgets", default="7,10,16,24", help="auto_checkpoint budgets in MiB")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--child", nargs=2, metavar=("IMPL", "VARIANT"))
    ap.add_argument("--timing", metavar="IMPL")
    a = ap.parse_args()
    budgets = [float(b) for b in a.budgets.split(",")]
    common = ["--layers", str(a.layers), "--budgets", a.budgets]
    if a.child:
        print(json.dumps(child_memory(a.child[0], a.child[1], a.layers)))
        return
    if a.timing:
        print(json.dumps(child_timing(a.timing, variants(a.timing, budgets), a.layers,
                                      a.rounds)))
        return
    print(f"deep chain: {a.layers} x tanh(x @ W), width 512, batch 256, float32; jit(grad) "
          f"w.r.t. x; the saved activations are {a.layers * 0.5:.0f} MiB\n")
    print("| remat | functrans peak extra (MiB) | predicted (MiB) | recomputed FLOPs "
          "| time vs no remat | JAX peak extra (MiB) | JAX time vs no remat |")
    print("|---|---|---|---|---|---|---|")
    ms = {impl: run(["--timing", impl, "--rounds", str(a.rounds)] + common, False)
          for impl in ("functrans", "jax")}
    labels = {"none": "none", "every8": "checkpoint every 8"}
    for v in variants("functrans", budgets):
        label = labels.get(v, f"auto_checkpoint {v[5:]} MiB")
        mem = run(["--child", "functrans", v] + common, True)["mib"]
        pred = predicted_mib(v, a.layers)
        pred_s = f"{pred['predicted']:.1f}" if pred else ""
        rec_s = f"{pred['recompute']:.0%}" if pred else ""
        ratio = ms["functrans"][v] / ms["functrans"]["none"]
        jax_mem = jax_t = "" if ms["jax"] is not None else "not installed"
        if ms["jax"] is not None and v in ms["jax"]:
            jax_mem = f"{run(['--child', 'jax', v] + common, True)['mib']:.1f}"
            jax_t = f"{ms['jax'][v] / ms['jax']['none']:.2f}x ({ms['jax'][v]:.0f} ms)"
        print(f"| {label} | {mem:.1f} | {pred_s} | {rec_s} | {ratio:.2f}x "
              f"({ms['functrans'][v]:.0f} ms) | {jax_mem} | {jax_t} |", flush=True)


if __name__ == "__main__":
    main()
