"""One-shot GPU check of jit(backend="cuda"): correctness on the real GPU, then a markdown table
against JAX and PyTorch on the same GPU.

    PYTHONPATH=. python3 benchmarks/gpu_check.py            # on the GPU machine (about 5 min)
    PYTHONPATH=. python3 benchmarks/gpu_check.py --sim      # tiny sizes on numba's simulator

(a) runs tests/cuda_sim_checks.py's checks without the simulator (in a subprocess with a time
    limit) and prints pass/fail per check with the failure text;
(b) times each workload with its data resident on the device for every framework and prints
    one markdown row per workload: functrans time, JAX time, PyTorch time, functrans TFLOP/s or
    GB/s, speed relative to JAX (JAX time / functrans time: 1.0 is parity), and functrans's
    first call (trace + lowering + kernel compiles, with an empty kernel cache).

Timing: warm-up calls, then the median of --repeat calls, each ended by a device synchronise
(numba ``cuda.synchronize``, ``jax.block_until_ready``, ``torch.cuda.synchronize``). float32
matmuls run at the same precision everywhere: TF32 (JAX's GPU default; torch with
``allow_tf32``; functrans's DEFAULT). functrans gets its inputs as ``functrans.device_put(x,
functrans.devices("cuda")[0])`` when that API exists, else through
``numba_cuda.run_device`` on CuPy arrays (device-resident too); the mode column says which.
Every row is guarded: a failure prints an error line and the script goes on. Under
NUMBA_ENABLE_CUDASIM=1 (or with --sim) sizes are tiny and JAX/PyTorch are skipped."""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIM = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or "--sim" in sys.argv
if SIM:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"       # before numba is imported
if "FUNCTRANS_CACHE_DIR" not in os.environ:        # first calls compile from scratch
    _CACHE_TMP = tempfile.TemporaryDirectory(prefix="functrans-gpu-check-")   # removed at exit
    os.environ["FUNCTRANS_CACHE_DIR"] = _CACHE_TMP.name
# JAX would otherwise take 75% of the GPU's memory up front, leaving CuPy and torch the rest
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import numpy as np  # noqa: E402

FULL = dict(mlp=(4096, [784, 1024, 1024, 10]), pex=(2048, [784, 256, 10]),
            hvp=(4096, [784, 1024, 1024, 10]), fused=100_000_000, rnn=(64, 256, 256),
            matmul=4096)
TINY = dict(mlp=(4, [6, 8, 8, 2]), pex=(3, [6, 4, 2]), hvp=(4, [6, 8, 8, 2]),
            fused=300, rnn=(2, 4, 3), matmul=8)
QUICK_CHECKS = ["integer_ops", "device_resident", "loops_on_device", "unsupported_primitive_message"]


def log(msg=""):
    print(msg, flush=True)


class Deadline:
    """Seconds left of the whole run's budget."""

    def __init__(self, seconds):
        self.end = time.perf_counter() + seconds

    def left(self):
        return self.end - time.perf_counter()


# ---------------------------------------------------------------------------------------------
# (a) correctness on the GPU

# the checks that exercise what only a GPU can show come first; the rest follow in file order
PRIORITY = ["device_resident", "memory_pool", "loops_on_device", "matmul_precision",
            "integer_ops", "dot_general", "unsupported_primitive_message", "mlp_training_step"]


def check_groups(names, workers):
    """names (all checks when empty, priority ones first) dealt round-robin to workers."""
    if not names:
        names = _check_names()
    groups = [names[i::workers] for i in range(workers)]
    return [g for g in groups if g]


def _check_names():
    """Every check defined in tests/cuda_sim_checks.py, PRIORITY first (read from the source:
    importing it would start numba here)."""
    text = (ROOT / "tests" / "cuda_sim_checks.py").read_text()
    found = [ln.split("def ")[1].split("(")[0] for ln, prev in
             zip(text.splitlines()[1:], text.splitlines()) if prev.strip() == "@check"]
    return [n for n in PRIORITY if n in found] + [n for n in found if n not in PRIORITY]


def run_checks(names, timeout, workers):
    """Run tests/cuda_sim_checks.py (no simulator unless --sim) in parallel subprocesses (kernel
    compiles are single-threaded per process); print one line per check and the failure texts.
    Returns {name: verdict}."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, str(ROOT / "tests" / "cuda_sim_checks.py"), "--gpu",
                               *group], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for group in check_groups(names, workers)]
    end = time.perf_counter() + timeout
    outs, errs, notes = [], [], []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(end - time.perf_counter(), 1))
            notes.append(f"exit {proc.returncode}")
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            notes.append(f"stopped after {timeout:.0f} s")
        outs.append(out or "")
        errs.append(err or "")
    return _report_checks("\n".join(outs), "\n".join(errs), ", ".join(notes))


def _report_checks(out, err, note):
    verdicts = {}
    for line in out.splitlines():
        if line.startswith("CUDA_CHECK "):
            _, name, secs, verdict = line.split()
            verdicts[name] = verdict
            log(f"  {'PASS' if verdict == 'ok' else 'FAIL'}  {name}  ({secs} s)")
        elif line.startswith("CUDA_SIM_RESULTS "):
            for name, text in json.loads(line[len("CUDA_SIM_RESULTS "):]).items():
                if text != "ok":
                    log(f"\n  --- {name} failed:\n" + "\n".join("    " + t for t in text.splitlines()))
    passed = sum(v == "ok" for v in verdicts.values())
    log(f"  checks: {passed} passed, {len(verdicts) - passed} failed ({note})")
    if not verdicts or out.count("CUDA_SIM_RESULTS") < len(note.split(", ")):
        log("  stderr tail:\n" + "\n".join("    " + t for t in err.splitlines()[-25:]))
    return verdicts


# ---------------------------------------------------------------------------------------------
# Timing helpers

def median_time(fn, sync, warmup=None, repeat=10):
    """Median seconds of fn() followed by sync(), after warm-up calls (2; 0 on the simulator,
    where the first call already ran)."""
    for _ in range(warmup if warmup is not None else (0 if SIM else 2)):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _cuda_sync():
    """Wait for the GPU: cudaDeviceSynchronize through CuPy where it is in use (the cheapest
    call, as torch.cuda.synchronize), else numba's context synchronize."""
    from functrans.backends import cuda_memory
    cp = cuda_memory.cupy_module()
    if cp is not None:
        cp.cuda.runtime.deviceSynchronize()
    else:
        cuda_memory.synchronize()


class Functrans:
    """Runs a function of array pytrees with functrans on the GPU, inputs on the device."""

    def __init__(self):
        import functrans as ft
        self.ft = ft
        self.devices = getattr(ft, "devices", None)
        self.mode = "run_device (CuPy inputs)"
        if self.devices is not None:
            try:
                self.dev = self.devices("cuda")[0]
                self.mode = "Array (device_put)"
            except Exception as e:  # noqa: BLE001
                log(f"  functrans.devices('cuda') failed ({e}); using run_device")
                self.devices = None
        if self.devices is None:
            from functrans.backends import cuda_memory
            if cuda_memory.cupy_module() is None:
                self.mode = "run_device (numba device arrays)"

    def put(self, tree):
        """tree with every leaf on the device."""
        from functrans.backends import cuda_memory
        ft = self.ft
        if self.devices is not None:
            return ft.device_put(tree, self.dev)
        return ft.tree_util.tree_map(
            lambda a: cuda_memory.to_cupy(cuda_memory.to_device(np.asarray(a)), np.shape(a)), tree)

    def compile(self, f, *args):
        """(call, first-call seconds): call() runs f on the device-resident args."""
        ft = self.ft
        t0 = time.perf_counter()
        if self.devices is not None:
            jf = ft.jit(f, backend="cuda")
            dargs = self.put(args)

            def call():
                return jf(*dargs)
        else:
            from functrans.backends import numba_cuda
            leaves, tree = ft.tree_util.tree_flatten(args)
            closed = ft.make_jaxpr(lambda *ls: f(*ft.tree_util.tree_unflatten(tree, list(ls))))(*leaves)
            dleaves = [self.put(a) for a in leaves]

            def call():
                return numba_cuda.run_device(closed, dleaves, getattr(f, "__name__", "f"))
        call()
        _cuda_sync()
        return call, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Workloads, written once for functrans.numpy / jax.numpy / torch

def init_mlp(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [((rng.standard_normal((m, n)) / np.sqrt(m)).astype(np.float32), np.zeros(n, np.float32))
            for m, n in zip(sizes[:-1], sizes[1:])]


def mlp_loss(m):
    """loss(params, x, y) with the array module m (tanh, mean)."""
    def loss(params, x, y):
        h = x
        for w, b in params[:-1]:
            h = m.tanh(h @ w + b)
        w, b = params[-1]
        return m.mean((h @ w + b - y) ** 2)
    return loss


def mlp_flops(batch, sizes):
    """Forward 2 + backward 4 FLOP per multiply-add."""
    return 6.0 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def mlp_data(batch, sizes, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.standard_normal((batch, sizes[-1])).astype(np.float32)
    return x, y


def rnn_loss(m, scan):
    """loss((W, U, b), xs, h0): h <- tanh(h W + x U + b) over xs; mean of the last h squared."""
    def loss(params, xs, h0):
        W, U, b = params

        def step(h, x):
            return m.tanh(h @ W + x @ U + b), None
        h, _ = scan(step, h0, xs)
        return m.mean(h * h)
    return loss


def rnn_data(T, H, B, seed=2):
    rng = np.random.default_rng(seed)
    f = lambda *s: (rng.standard_normal(s) / np.sqrt(H)).astype(np.float32)  # noqa: E731
    return (f(H, H), f(H, H), np.zeros(H, np.float32)), f(T, B, H) * np.float32(np.sqrt(H)), np.zeros((B, H), np.float32)


def fused(m):
    return lambda x: m.sum(m.tanh(x) * m.sin(x) + m.exp(-x * x))


# ---------------------------------------------------------------------------------------------
# Rows: each returns a dict (functrans, jax, torch times, rate, first call, notes)

def sgd(grad):
    def step(loss):
        def f(params, x, y):
            g = grad(loss)(params, x, y)
            return [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, g)]
        return f
    return step


def row_mlp(ctx, cfg):
    batch, sizes = cfg["mlp"]
    params, (x, y) = init_mlp(sizes), mlp_data(batch, sizes)
    ft = ctx.ft.ft
    f = sgd(ft.grad)(mlp_loss(__import__("functrans.numpy", fromlist=["numpy"])))
    out = ctx.time_functrans(f, params, x, y)
    out["rate"] = ("TFLOP/s", mlp_flops(batch, sizes) / 1e12)
    out["jax"] = ctx.time_jax(lambda jax, jnp: sgd(jax.grad)(mlp_loss(jnp)), params, x, y)
    out["torch"] = ctx.time_torch(_torch_sgd, params, x, y)
    out["pool"] = ctx.steady_state_pool(out["call"])
    return out


def _torch_sgd(torch, ps, x, y):
    loss_fn = mlp_loss(torch)

    def step():
        flat = [t.requires_grad_(True) for pair in ps for t in pair]
        loss = loss_fn([(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)], x, y)
        grads = torch.autograd.grad(loss, flat)
        with torch.no_grad():
            return [t - 0.01 * g for t, g in zip(flat, grads)]
    return step


def row_per_example(ctx, cfg):
    batch, sizes = cfg["pex"]
    params, (x, y) = init_mlp(sizes), mlp_data(batch, sizes)
    x, y = x[:, None], y[:, None]
    ft = ctx.ft.ft
    import functrans.numpy as fnp
    f = ft.vmap(ft.grad(mlp_loss(fnp)), in_axes=(None, 0, 0))
    out = ctx.time_functrans(f, params, x, y)
    out["rate"] = ("TFLOP/s", mlp_flops(batch, sizes) / 1e12)
    out["jax"] = ctx.time_jax(lambda jax, jnp: jax.vmap(jax.grad(mlp_loss(jnp)), in_axes=(None, 0, 0)),
                              params, x, y)
    out["torch"] = ctx.time_torch(_torch_per_example, params, x, y)
    return out


def _torch_per_example(torch, ps, x, y):
    from torch.func import grad, vmap
    g = vmap(grad(mlp_loss(torch)), in_dims=(None, 0, 0))
    return lambda: g(ps, x, y)


def row_hvp(ctx, cfg):
    batch, sizes = cfg["hvp"]
    params, (x, y) = init_mlp(sizes), mlp_data(batch, sizes)
    tangent = init_mlp(sizes, seed=5)
    ft = ctx.ft.ft
    import functrans.numpy as fnp
    loss = mlp_loss(fnp)

    def f(p, t, a, b):
        return ft.hvp(lambda q: loss(q, a, b), (p,), (t,))
    out = ctx.time_functrans(f, params, tangent, x, y)
    out["rate"] = ("TFLOP/s", 2 * mlp_flops(batch, sizes) / 1e12)    # jvp of grad: ~2 grads
    out["jax"] = ctx.time_jax(_jax_hvp, params, tangent, x, y)
    out["torch"] = ctx.time_torch(_torch_hvp, params, tangent, x, y)
    return out


def _jax_hvp(jax, jnp):
    loss = mlp_loss(jnp)

    def f(p, t, a, b):
        return jax.jvp(jax.grad(lambda q: loss(q, a, b)), (p,), (t,))[1]
    return f


def _torch_hvp(torch, ps, ts, x, y):
    from torch.func import grad, jvp
    loss = mlp_loss(torch)
    return lambda: jvp(grad(lambda q: loss(q, x, y)), (ps,), (ts,))[1]


def row_fused(ctx, cfg):
    n = cfg["fused"]
    x = np.random.default_rng(3).standard_normal(n).astype(np.float32)
    import functrans.numpy as fnp
    out = ctx.time_functrans(fused(fnp), x)
    out["rate"] = ("GB/s", 4.0 * n / 1e9)
    out["jax"] = ctx.time_jax(lambda jax, jnp: fused(jnp), x)
    out["torch"] = ctx.time_torch(lambda torch, xt: (lambda: fused(torch)(xt)), x)
    return out


def row_rnn(ctx, cfg):
    T, H, B = cfg["rnn"]
    params, xs, h0 = rnn_data(T, H, B)
    ft = ctx.ft.ft
    import functrans.numpy as fnp
    from functrans import lax
    f = ft.grad(rnn_loss(fnp, lax.scan))
    out = ctx.time_functrans(f, params, xs, h0)
    out["rate"] = ("TFLOP/s", 6.0 * T * B * 2 * H * H / 1e12)
    out["jax"] = ctx.time_jax(lambda jax, jnp: jax.grad(rnn_loss(jnp, jax.lax.scan)), params, xs, h0)
    out["torch"] = ctx.time_torch(_torch_rnn, params, xs, h0)
    return out


def _torch_rnn(torch, ps, xs, h0):
    def scan(step, h, seq):
        for t in range(seq.shape[0]):
            h, _ = step(h, seq[t])
        return h, None
    loss = rnn_loss(torch, scan)

    def run():
        leaves = [p.requires_grad_(True) for p in ps]
        return torch.autograd.grad(loss(tuple(leaves), xs, h0), leaves)
    return run


def row_matmul(ctx, cfg):
    n = cfg["matmul"]
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = ctx.time_functrans(lambda p, q: p @ q, a, b)
    out["rate"] = ("TFLOP/s", 2.0 * n ** 3 / 1e12)
    out["jax"] = ctx.time_jax(lambda jax, jnp: (lambda p, q: p @ q), a, b)
    out["torch"] = ctx.time_torch(lambda torch, p, q: (lambda: p @ q), a, b)
    out["cublas"] = ctx.time_cupy_matmul(a, b)
    return out


ROWS = [("MLP SGD step", "mlp", row_mlp), ("per-example grads vmap(grad)", "pex", row_per_example),
        ("HVP", "hvp", row_hvp), ("fused sum(tanh*sin+exp(-x²))", "fused", row_fused),
        ("scan RNN grad", "rnn", row_rnn), ("matmul f32", "matmul", row_matmul)]


def describe(key, cfg):
    v = cfg[key]
    if key in ("mlp", "pex", "hvp"):
        return f"batch {v[0]}, {'-'.join(map(str, v[1]))} f32"
    if key == "fused":
        return f"n={v:.0e} f32" if v >= 1e6 else f"n={v} f32"
    if key == "rnn":
        return f"T={v[0]}, H={v[1]}, batch {v[2]}"
    return f"{v}³ f32"


# ---------------------------------------------------------------------------------------------
# The frameworks

class Context:
    """Timers for functrans, JAX and PyTorch on device-resident data."""

    def __init__(self, repeat, refs):
        self.repeat, self.refs = repeat, refs
        self.ft = Functrans()
        self.jax = _import_jax() if refs else None
        self.torch = _import_torch() if refs else None

    def time_functrans(self, f, *args):
        call, first = self.ft.compile(f, *args)
        return {"functrans": median_time(call, _cuda_sync, repeat=self.repeat), "first": first,
                "call": call}

    def time_jax(self, make, *args):
        if self.jax is None:
            return None
        jax = self.jax
        import jax.numpy as jnp
        f = jax.jit(make(jax, jnp))
        dargs = jax.device_put(args)
        return median_time(lambda: jax.block_until_ready(f(*dargs)), lambda: None,
                           repeat=self.repeat)

    def time_torch(self, make, *args):
        if self.torch is None:
            return None
        torch = self.torch
        fn = make(torch, *[_to_torch(torch, a) for a in args])
        return median_time(fn, torch.cuda.synchronize, repeat=self.repeat)

    def time_cupy_matmul(self, a, b):
        """cupy.matmul (cuBLAS) at TF32, functrans's default float32 precision; None when CuPy
        is missing or its compute-type switch is not there."""
        from functrans.backends import cuda_memory
        cp = cuda_memory.cupy_module()
        if cp is None:
            return None
        try:
            from cupy._core import _routines_linalg as rl
            saved = rl.get_compute_type(np.float32)
            rl.set_compute_type(np.float32, getattr(rl, "COMPUTE_TYPE_TF32", 7))
        except Exception as e:  # noqa: BLE001
            log(f"  cupy.matmul reference skipped: cannot select TF32 ({type(e).__name__}: {e})")
            return None
        try:
            da, db = cp.asarray(a), cp.asarray(b)
            return median_time(lambda: cp.matmul(da, db), cp.cuda.Device().synchronize,
                               repeat=self.repeat)
        finally:
            rl.set_compute_type(np.float32, saved)

    def steady_state_pool(self, call):
        """(driver bytes the pool gained over steady-state calls of an already-run call(),
        buffers asked per call, calls)."""
        from functrans.backends import numba_cuda
        _cuda_sync()
        steps = 1 if SIM else 5
        before = numba_cuda.memory_stats()
        for _ in range(steps):
            call()
        _cuda_sync()
        after = numba_cuda.memory_stats()
        grew = None if after["pool_total_bytes"] is None else \
            after["pool_total_bytes"] - before["pool_total_bytes"]
        return grew, (after["allocations"] - before["allocations"]) / steps, steps


def _to_torch(torch, a):
    if isinstance(a, (list, tuple)):
        return type(a)(_to_torch(torch, v) for v in a)
    return torch.as_tensor(np.asarray(a, np.float32), dtype=torch.float32).cuda()


def _import_jax():
    try:
        import jax
        if jax.default_backend() != "gpu":
            log(f"  JAX: default backend is {jax.default_backend()}, not the GPU: no JAX column")
            return None
        jax.config.update("jax_default_matmul_precision", "default")   # TF32-class on GPU
        return jax
    except Exception as e:  # noqa: BLE001
        log(f"  JAX unavailable: {type(e).__name__}: {e}")
        return None


def _import_torch():
    try:
        import torch
        if not torch.cuda.is_available():
            log("  PyTorch sees no GPU: no PyTorch column")
            return None
        torch.backends.cuda.matmul.allow_tf32 = True      # the same precision as JAX's default
        torch.backends.cudnn.allow_tf32 = True
        return torch
    except Exception as e:  # noqa: BLE001
        log(f"  PyTorch unavailable: {type(e).__name__}: {e}")
        return None


# ---------------------------------------------------------------------------------------------
# The table

def fmt_ms(t):
    return "–" if t is None else f"{t * 1e3:.3f} ms"


def table_row(name, desc, r, mode):
    ft_t, jax_t = r["functrans"], r.get("jax")
    unit, work = r["rate"]
    rate = f"{work / ft_t:.2f} {unit}" if unit == "TFLOP/s" else f"{work / ft_t:.0f} {unit}"
    ratio = "–" if not jax_t else f"{jax_t / ft_t:.2f}"
    notes = [mode]
    if r.get("cublas"):
        notes.append(f"cupy.matmul (cuBLAS, TF32) {fmt_ms(r['cublas'])}: functrans at "
                     f"{100 * r['cublas'] / ft_t:.0f}% of cuBLAS")
    if r.get("pool"):
        grew, per_call, steps = r["pool"]
        held = "no CuPy pool" if grew is None else f"pool grew {grew} bytes"
        notes.append(f"steady state: {held} over {steps} steps, {per_call:.0f} buffers/step")
    return (f"| {name} ({desc}) | {fmt_ms(ft_t)} | {fmt_ms(jax_t)} | {fmt_ms(r.get('torch'))} | "
            f"{rate} | {ratio} | {r['first']:.2f} s | {'; '.join(notes)} |")


HEADER = ("| workload | functrans | JAX | PyTorch | functrans rate | vs JAX (JAX t / ft t) | "
          "functrans first call | notes |\n|---|---|---|---|---|---|---|---|")


def run_rows(cfg, args, deadline):
    ctx = Context(args.repeat, refs=not SIM)
    log(f"  functrans inputs: {ctx.ft.mode}")
    lines = []
    for name, key, fn in ROWS:
        if args.rows and key not in args.rows:
            continue
        if deadline.left() < 10:
            lines.append(f"| {name} | skipped: time budget spent | | | | | | |")
            continue
        try:
            t0 = time.perf_counter()
            r = fn(ctx, cfg)
            lines.append(table_row(name, describe(key, cfg), r, ctx.ft.mode))
            log(f"  {name}: done in {time.perf_counter() - t0:.1f} s")
        except Exception as e:  # noqa: BLE001  (one row's failure does not stop the others)
            log(f"  {name}: ERROR {type(e).__name__}: {e}")
            log("".join(traceback.format_exc(limit=8)[-2500:]))
            lines.append(f"| {name} ({describe(key, cfg)}) | error: {type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]} | | | | | | |")
    return lines


def profile_dispatch(ctx, cfg):
    """Host time per call (no device synchronise in between) of small jitted programs on GPU
    Arrays, and the functions that take it (cProfile, by own time): what bounds launch-bound
    workloads."""
    import cProfile
    import io
    import pstats
    import functrans.numpy as fnp
    n = 8 if SIM else 64
    rng = np.random.default_rng(6)
    a = rng.standard_normal((n, n)).astype(np.float32)
    batch, sizes = cfg["mlp"]
    small = (8, [n, n, n, 4])
    params, (x, y) = init_mlp(small[1]), mlp_data(*small)
    cases = [("matmul", lambda p, q: p @ q, (a, a)),
             ("tanh(a)+1", lambda p: fnp.tanh(p) + 1.0, (a,)),
             ("MLP step (small)", sgd(ctx.ft.ft.grad)(mlp_loss(fnp)), (params, x, y))]
    calls = 2 if SIM else 300
    for name, f, args in cases[1:2] if SIM else cases:    # the simulator: that the code runs
        call, _ = ctx.ft.compile(f, *args)
        for _ in range(3):
            call()
        _cuda_sync()
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        host = (time.perf_counter() - t0) / calls
        _cuda_sync()
        log(f"  {name}: {host * 1e6:.1f} µs of host time per call")
        prof = cProfile.Profile()
        prof.runcall(lambda: [call() for _ in range(calls)])
        _cuda_sync()
        text = io.StringIO()
        pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(14)
        log("\n".join("    " + ln for ln in text.getvalue().splitlines()[6:24] if ln.strip()))


_CACHE_CHILD = """
import json, warnings
warnings.simplefilter("always")
import numpy as np, functrans, functrans.numpy as fnp
from functrans.backends import numba_cuda
with warnings.catch_warnings(record=True) as caught:
    f = functrans.jit(lambda x: fnp.tanh(x) * 2.0 + 1.0, backend="cuda")
    x = np.arange(1000, dtype=np.float32) / 1000
    err = float(np.max(np.abs(np.asarray(f(x)) - (np.tanh(x) * 2 + 1))))
kernels = list(numba_cuda._kernels.values())
print(json.dumps(dict(err=err, hits=sum(sum(k._cache_hits.values()) for k in kernels),
                      misses=sum(sum(k._cache_misses.values()) for k in kernels),
                      warnings=[str(w.message) for w in caught])))
"""


def check_disk_cache():
    """Two processes jit the same CUDA function over one fresh FUNCTRANS_CACHE_DIR (and an
    empty HOME): the second loads every kernel from disk, nothing is written outside the cache
    dir, no warning. Prints what it saw."""
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FUNCTRANS_CACHE_DIR=cache, HOME=home,
                   XDG_CACHE_HOME=os.path.join(home, ".cache"),
                   PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        runs = []
        for _ in range(2):
            proc = subprocess.run([sys.executable, "-c", _CACHE_CHILD], env=env,
                                  capture_output=True, text=True, timeout=120)
            line = (proc.stdout.strip().splitlines() or [""])[-1]
            runs.append(json.loads(line) if line.startswith("{") else {"error": proc.stderr[-800:]})
        # the driver's own PTX-to-SASS cache (~/.nv/ComputeCache) is not ours to move
        outside = [os.path.join(r, f) for r, _, fs in os.walk(home) for f in fs
                   if os.sep + ".nv" + os.sep not in r + os.sep]
        ours = [w for r in runs for w in r.get("warnings", ()) if "functrans" in w]
        ok = (all("error" not in r for r in runs) and runs[1].get("misses") == 0
              and runs[1].get("hits", 0) > 0 and not outside and not ours)
        log(f"  {'PASS' if ok else 'FAIL'}  disk cache: first {runs[0]}, second {runs[1]}, "
            f"files outside the cache dir: {outside[:5]}")


def environment():
    """One line per library version and the functrans CUDA status."""
    import importlib.metadata as md
    vers = []
    for pkg in ("numpy", "numba", "numba-cuda", "cupy-cuda12x", "cupy-cuda13x", "jax", "torch"):
        try:
            vers.append(f"{pkg} {md.version(pkg)}")
        except md.PackageNotFoundError:
            pass
    log(f"python {sys.version.split()[0]}; " + ", ".join(vers))
    import functrans as ft
    from functrans.backends import cuda_memory, numba_cuda
    try:
        where = numba_cuda.check_available()
    except RuntimeError as e:
        log(f"functrans CUDA: {e}")
        return False
    log(f"functrans CUDA: {where}; CuPy: {cuda_memory.cupy_status()}; "
        f"default matmul precision: {ft.config.default_matmul_precision or 'default'}")
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="tiny sizes on numba's CUDA simulator")
    ap.add_argument("--repeat", type=int, default=1 if SIM else 10,
                    help="timed calls per measurement")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--checks", default=None, help="comma-separated check names (default all)")
    ap.add_argument("--check-timeout", type=float, default=150.0)
    ap.add_argument("--workers", type=int, default=1 if SIM else 8,
                    help="parallel check processes")
    ap.add_argument("--skip-checks", action="store_true")
    ap.add_argument("--no-profile", dest="profile", action="store_false",
                    help="skip the host-time profile of small calls")
    ap.add_argument("--rows", default=None, help="comma-separated: mlp,pex,hvp,fused,rnn,matmul")
    args = ap.parse_args(argv)
    args.rows = args.rows.split(",") if args.rows else None
    deadline = Deadline(args.budget)
    cfg = TINY if SIM else FULL
    log("# functrans GPU check" + (" (simulator, tiny sizes)" if SIM else ""))
    if not environment():
        return 1
    if not args.skip_checks:
        names = args.checks.split(",") if args.checks else (QUICK_CHECKS if SIM else [])
        log(f"\n## (a) CUDA checks{' (' + ', '.join(names) + ')' if names else ''}")
        run_checks(names, min(args.check_timeout, max(deadline.left() - 60, 30)), args.workers)
    if not args.skip_checks and not SIM:
        log("\n## (a2) the kernel cache across processes")
        try:
            check_disk_cache()
        except Exception as e:  # noqa: BLE001
            log(f"  FAIL  disk cache check: {type(e).__name__}: {e}")
    log("\n## (b) benchmarks")
    lines = run_rows(cfg, args, deadline)
    if args.profile:
        log("\n## (c) dispatch: host time per call")
        try:
            profile_dispatch(Context(1, refs=False), cfg)
        except Exception as e:  # noqa: BLE001
            log(f"  profile failed: {type(e).__name__}: {e}")
    log("\n" + HEADER)
    for ln in lines:
        log(ln)
    from functrans.backends import numba_cuda
    log(f"\nfunctrans CUDA counters: {numba_cuda.stats()}")
    log(f"memory pool: {numba_cuda.memory_stats()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
