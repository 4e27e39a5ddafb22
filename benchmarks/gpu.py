"""GPU benchmark of jit(backend="cuda"): an MLP training step (batch 4096, widths 4096) and a
fused elementwise reduction, as achieved GFLOP/s and GB/s against the device's peak, and
against JAX / PyTorch on the same GPU when they are installed.

Usage: python benchmarks/gpu.py [--batch 4096] [--width 4096] [--n 100000000] [--repeat 5]
Without a usable GPU (or under the CUDA simulator) it says so and exits 0."""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _gpu_or_exit():
    from functrans.backends import numba_cuda
    try:
        where = numba_cuda.check_available()
    except RuntimeError as e:
        print(f"no GPU benchmark: {e}")
        sys.exit(0)
    if where != "gpu":
        print("no GPU benchmark: running on the CUDA simulator (NUMBA_ENABLE_CUDASIM=1)")
        sys.exit(0)


def device_peaks():
    """(name, peak float32 GFLOP/s, peak DRAM GB/s) from the device attributes."""
    from numba import cuda
    d = cuda.get_current_device()
    sms, clock_khz = d.MULTIPROCESSOR_COUNT, d.CLOCK_RATE
    cores = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 9): 128, (9, 0): 128}
    per_sm = cores.get(tuple(d.compute_capability), 128)
    gflops = 2 * sms * per_sm * clock_khz * 1e3 / 1e9          # FMA = 2 flops
    gbs = 2 * d.MEMORY_CLOCK_RATE * 1e3 * d.GLOBAL_MEMORY_BUS_WIDTH / 8 / 1e9
    name = d.name.decode() if isinstance(d.name, bytes) else str(d.name)
    return name, gflops, gbs


def best_of(fn, repeat, sync=lambda: None):
    """Minimum wall time of fn() over repeat runs (after one warm-up run)."""
    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return min(times)


def _mlp(fnp):
    def mlp(params, x):
        for w, b in params[:-1]:
            x = fnp.tanh(x @ w + b)
        w, b = params[-1]
        return x @ w + b

    def loss(params, x, y):
        return fnp.mean((mlp(params, x) - y) ** 2)
    return loss


def bench_mlp(batch, width, layers, repeat):
    import functrans as ft
    import functrans.numpy as fnp
    from functrans.backends import numba_cuda
    from numba import cuda
    rng = np.random.default_rng(0)
    params = [(rng.standard_normal((width, width), np.float32) / np.sqrt(width),
               np.zeros(width, np.float32)) for _ in range(layers)]
    x = rng.standard_normal((batch, width), np.float32)
    y = rng.standard_normal((batch, width), np.float32)
    loss = _mlp(fnp)

    def step(params, x, y):
        g = ft.grad(loss)(params, x, y)
        return [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, g)]
    flops = 6.0 * batch * width * width * layers           # forward 2, backward 4 per MAC
    jstep = ft.jit(step, backend="cuda")
    end_to_end = best_of(lambda: jstep(params, x, y), repeat)
    # device-resident: arguments already on the GPU, outputs left there
    leaves = ft.tree_util.tree_leaves((params, x, y))
    closed = ft.make_jaxpr(step)(params, x, y)
    prog = numba_cuda.executable(closed).program
    dev = [cuda.to_device(np.ascontiguousarray(a).reshape(-1)) for a in leaves]
    resident = best_of(lambda: prog.run(dev), repeat, cuda.synchronize)
    rows = [("functrans cuda, host arrays in/out", end_to_end, flops / end_to_end / 1e9),
            ("functrans cuda, device-resident", resident, flops / resident / 1e9)]
    rows += _mlp_references(params, x, y, repeat, flops)
    return rows


def _mlp_references(params, x, y, repeat, flops):
    rows = []
    try:
        import jax
        import jax.numpy as jnp
        if jax.default_backend() == "gpu":
            loss = _mlp(jnp)

            @jax.jit
            def step(p, a, b):
                g = jax.grad(loss)(p, a, b)
                return jax.tree_util.tree_map(lambda v, gv: v - 0.01 * gv, p, g)
            p, a, b = jax.device_put((params, x, y))
            t = best_of(lambda: jax.block_until_ready(step(p, a, b)), repeat)
            rows.append(("jax.jit (device-resident)", t, flops / t / 1e9))
    except ImportError:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            ps = [(torch.tensor(w, device="cuda", requires_grad=True),
                   torch.tensor(b, device="cuda", requires_grad=True)) for w, b in params]
            a, b = torch.tensor(x, device="cuda"), torch.tensor(y, device="cuda")

            def step():
                h = a
                for w, bb in ps[:-1]:
                    h = torch.tanh(h @ w + bb)
                out = h @ ps[-1][0] + ps[-1][1]
                loss = ((out - b) ** 2).mean()
                grads = torch.autograd.grad(loss, [t for pair in ps for t in pair])
                with torch.no_grad():
                    return [t - 0.01 * g for t, g in zip([t for pair in ps for t in pair], grads)]
            t = best_of(step, repeat, torch.cuda.synchronize)
            rows.append(("torch eager (device-resident)", t, flops / t / 1e9))
    except ImportError:
        pass
    return rows


def bench_fused_reduction(n, repeat):
    import functrans as ft
    import functrans.numpy as fnp
    from functrans.backends import numba_cuda
    from numba import cuda

    def f(x):
        return fnp.sum(fnp.tanh(x) * fnp.sin(x) + fnp.exp(-x * x))
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    nbytes = 4.0 * n
    jf = ft.jit(f, backend="cuda")
    end_to_end = best_of(lambda: jf(x), repeat)
    prog = numba_cuda.executable(ft.make_jaxpr(f)(x)).program
    dev = [cuda.to_device(x)]
    resident = best_of(lambda: prog.run(dev), repeat, cuda.synchronize)
    rows = [("functrans cuda, host array in", end_to_end, nbytes / end_to_end / 1e9),
            ("functrans cuda, device-resident", resident, nbytes / resident / 1e9)]
    try:
        import jax
        import jax.numpy as jnp
        if jax.default_backend() == "gpu":
            jf = jax.jit(lambda v: jnp.sum(jnp.tanh(v) * jnp.sin(v) + jnp.exp(-v * v)))
            xd = jax.device_put(x)
            t = best_of(lambda: jax.block_until_ready(jf(xd)), repeat)
            rows.append(("jax.jit (device-resident)", t, nbytes / t / 1e9))
    except ImportError:
        pass
    try:
        import torch
        if torch.cuda.is_available():
            xt = torch.tensor(x, device="cuda")
            t = best_of(lambda: (torch.tanh(xt) * torch.sin(xt) + torch.exp(-xt * xt)).sum(),
                        repeat, torch.cuda.synchronize)
            rows.append(("torch eager (device-resident)", t, nbytes / t / 1e9))
    except ImportError:
        pass
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--width", type=int, default=4096)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--n", type=int, default=100_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args(argv)
    _gpu_or_exit()
    name, peak_flops, peak_bw = device_peaks()
    print(f"device: {name}; peak float32 {peak_flops:.0f} GFLOP/s (no tensor cores), "
          f"DRAM {peak_bw:.0f} GB/s")
    print(f"\nMLP training step: batch {a.batch}, {a.layers} layers of width {a.width}, float32")
    for label, t, gf in bench_mlp(a.batch, a.width, a.layers, a.repeat):
        print(f"  {label:40s} {t * 1e3:9.2f} ms {gf:9.0f} GFLOP/s ({100 * gf / peak_flops:5.1f}% of peak)")
    print(f"\nfused sum(tanh(x)*sin(x) + exp(-x*x)), n = {a.n}, float32 (bytes read = 4n)")
    for label, t, gb in bench_fused_reduction(a.n, a.repeat):
        print(f"  {label:40s} {t * 1e3:9.2f} ms {gb:9.0f} GB/s ({100 * gb / peak_bw:5.1f}% of peak)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
