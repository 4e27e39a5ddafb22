"""functrans.jit (numba CPU backend) against hand-written NumPy and, when installed, jax.jit and
PyTorch. One run, side by side; every figure is the best of several repeats (the machine is
shared). Run: python benchmarks/jit_bench.py   (FUNCTRANS_CACHE_DIR is honoured)."""
import os
import subprocess
import sys
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import functrans  # noqa: E402
import functrans.numpy as fnp  # noqa: E402

# the first-call subprocesses import this module for sgd_step; they measure a process that,
# like a user's training script, has not imported jax and torch (their libraries slow numba's
# first compile by a second)
_BASELINES = os.environ.get("FTBENCH_NO_BASELINES") != "1"
jax = torch = None
if _BASELINES:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        jax = None
    try:
        import torch
    except ImportError:
        torch = None


def best(f, repeat=7, number=None):
    """Best time per call (seconds) of f() over `repeat` rounds."""
    f()
    if number is None:
        t = time.perf_counter()
        f()
        number = max(1, int(0.05 / max(time.perf_counter() - t, 1e-7)))
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            f()
        times.append((time.perf_counter() - t) / number)
    return min(times)


# ---------------------------------------------------------------------------------------------
# MLP training step: 784-512-256-10, batch 256, float32, softmax cross-entropy, SGD

def mlp_loss(params, x, y):
    """Softmax cross-entropy of a relu MLP, written as a user would (functrans.nn)."""
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = functrans.nn.relu(h)
    return -fnp.mean(fnp.sum(functrans.nn.log_softmax(h) * y, axis=1))


def sgd_step(params, x, y):
    g = functrans.grad(mlp_loss)(params, x, y)
    return [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, g)]


def init_mlp(sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [((rng.normal(size=(m, n)) / np.sqrt(m)).astype(np.float32), np.zeros(n, np.float32))
            for m, n in zip(sizes[:-1], sizes[1:])]


def numpy_step(params, x, y):
    acts, h = [x], x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = np.maximum(h, 0)
        acts.append(h)
    z = h - h.max(1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(1, keepdims=True)
    d = (p - y) / x.shape[0]
    new = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        w, b = params[i]
        gw, gb = acts[i].T @ d, d.sum(0)
        if i:
            d = (d @ w.T) * (acts[i] > 0)
        new[i] = (w - np.float32(0.01) * gw, b - np.float32(0.01) * gb)
    return new


def bench_mlp(rows, label="MLP step 784-512-256-10 b256 f32"):
    params = init_mlp([784, 512, 256, 10])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 256)]
    step = functrans.jit(sgd_step)
    got, want = step(params, x, y), numpy_step(params, x, y)
    err = max(np.abs(a - b).max() for p, q in zip(got, want) for a, b in zip(p, q))
    # one side after the other, never alternating: once XLA's thread pool has run, OpenBLAS's
    # threads run 1.5x slower in this process (measured), which would penalise the BLAS sides
    t_ft = best(lambda: step(params, x, y))
    t_np = best(lambda: numpy_step(params, x, y))
    t_jax = "n/a"
    if jax is not None:
        jstep = jax.jit(lambda p, x, y: jax.tree_util.tree_map(
            lambda a, g: a - 0.01 * g, p, jax.grad(lambda p: mlp_loss_jax(p, x, y))(p)))
        jp = jax.tree_util.tree_map(jnp.asarray, params)
        t_jax = best(lambda: jax.block_until_ready(jstep(jp, x, y)))
    rows.append((label, t_ft, t_np, t_jax, f"max|diff| {err:.1e}"))


def _mlp_row_in_subprocess(rows, label, env):
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--mlp-row"], env=env,
                         capture_output=True, text=True, check=True).stdout
    ft, np_, jt, note = out.strip().splitlines()[-1].split(";;")
    rows.append((label, float(ft), float(np_), jt if jt == "n/a" else float(jt), note))


def bench_mlp_fresh(rows):
    """The MLP row in a fresh process: in this one, XLA's thread pool has already run (the rows
    above), and OpenBLAS's threads then run 1.5x slower (measured)."""
    _mlp_row_in_subprocess(rows, "MLP step 784-512-256-10 b256 f32", dict(os.environ))


def bench_mlp_blas_unset(rows):
    """The MLP row again in a subprocess with OPENBLAS_CORETYPE unset for every library (OpenBLAS
    then picks its AVX-512 kernels); skipped when the variable is not set here."""
    if "OPENBLAS_CORETYPE" not in os.environ:
        return
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    _mlp_row_in_subprocess(rows, "MLP step, OPENBLAS_CORETYPE unset", env)


def mlp_loss_jax(params, x, y):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(h) * y, axis=1))


# ---------------------------------------------------------------------------------------------
# Per-example gradients: jit(vmap(grad)) on 784-256-10, batch 128

def bench_per_example(rows):
    params = init_mlp([784, 256, 10])
    rng = np.random.default_rng(2)
    x = rng.normal(size=(128, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128)]

    def one(params, xi, yi):
        return mlp_loss(params, xi[None], yi[None])
    pe = functrans.jit(functrans.vmap(functrans.grad(one), in_axes=(None, 0, 0)))

    def numpy_pe(params):
        (w1, b1), (w2, b2) = params
        h = np.maximum(x @ w1 + b1, 0)
        z = h @ w2 + b2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        d2 = p - y
        d1 = (d2 @ w2.T) * (h > 0)
        return [(np.einsum("bi,bj->bij", x, d1), d1), (np.einsum("bi,bj->bij", h, d2), d2)]
    got, want = pe(params, x, y), numpy_pe(params)
    err = max(np.abs(np.asarray(a) - b).max() for p, q in zip(got, want) for a, b in zip(p, q))
    t_ft = best(lambda: pe(params, x, y), repeat=5)
    t_np = best(lambda: numpy_pe(params), repeat=5)
    t_jax = "n/a"
    if jax is not None:
        jpe = jax.jit(jax.vmap(jax.grad(lambda p, xi, yi: mlp_loss_jax(p, xi[None], yi[None])),
                               in_axes=(None, 0, 0)))
        t_jax = best(lambda: jax.block_until_ready(jpe(params, x, y)), repeat=5)
    rows.append(("per-example grads 784-256-10 b128", t_ft, t_np, t_jax, f"max|diff| {err:.1e}"))


# ---------------------------------------------------------------------------------------------
# Fused elementwise reduction over 4e6 float32

def bench_fused(rows):
    x = np.random.default_rng(3).normal(size=4_000_000).astype(np.float32)
    f = functrans.jit(lambda x: fnp.sum(fnp.tanh(x) * fnp.sin(x) + fnp.exp(-x * x)))
    want = np.sum(np.tanh(x) * np.sin(x) + np.exp(-x * x), dtype=np.float64)
    got = float(f(x))
    t_ft = best(lambda: f(x))
    t_np = best(lambda: np.sum(np.tanh(x) * np.sin(x) + np.exp(-x * x)))
    t_jax = "n/a"
    if jax is not None:
        jf = jax.jit(lambda x: jnp.sum(jnp.tanh(x) * jnp.sin(x) + jnp.exp(-x * x)))
        t_jax = best(lambda: jax.block_until_ready(jf(x)))
    t_torch = "n/a"
    if torch is not None:
        tx = torch.from_numpy(x)
        t_torch = best(lambda: torch.sum(torch.tanh(tx) * torch.sin(tx) + torch.exp(-tx * tx)))
    rows.append(("sum(tanh*sin+exp(-x^2)) 4e6 f32", t_ft, t_np, t_jax,
                 f"{16e6 / t_ft / 1e9:.1f} GB/s; rel err {abs(got - want) / abs(want):.1e}; "
                 f"torch {t_torch if t_torch == 'n/a' else f'{t_torch * 1e3:.2f} ms'}"))


# ---------------------------------------------------------------------------------------------
# Call overhead of a tiny jitted function

def bench_overhead(rows):
    """Per-call cost of a tiny jitted function: with functrans.Array arguments against JAX on
    jax.Array arguments (target <= 3 us and <= 0.5x JAX), and with NumPy arguments on both."""
    f = functrans.jit(lambda x, y: x * y + 1)
    x = np.ones(8, np.float32)
    xa = functrans.device_put(x)
    t_ft = best(lambda: f(xa, xa), repeat=9, number=20000)
    t_ft_np = best(lambda: f(x, x), repeat=9, number=20000)
    t_np = best(lambda: x * x + 1, repeat=9, number=20000)
    ex = functrans.backends._executables[next(iter(f._cache.values()))[0]]
    k, pre = ex.kernel, ex.prefix
    t_bare = best(lambda: k(*pre, x, x), repeat=9, number=20000)
    t_jax = t_jax_np = "n/a"
    if jax is not None:
        jf = jax.jit(lambda x, y: x * y + 1)
        xj = jax.device_put(x)
        t_jax = best(lambda: jax.block_until_ready(jf(xj, xj)), repeat=9, number=5000)
        t_jax_np = best(lambda: jax.block_until_ready(jf(x, x)), repeat=9, number=5000)
    rows.append(("call overhead, tiny fn, Array args", t_ft, t_np, t_jax,
                 f"jax.Array args; target <= 3 us and <= 0.5x JAX; bare numba kernel call "
                 f"{t_bare * 1e6:.2f} us"))
    rows.append(("call overhead, tiny fn, ndarray args", t_ft_np, t_np, t_jax_np,
                 "NumPy args on both sides"))


# ---------------------------------------------------------------------------------------------
# First call of the jitted MLP step: cold (empty cache) and warm (second process)

_FIRST = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
    import numpy as np, functrans
    from jit_bench import sgd_step, init_mlp
    params = init_mlp([784, 512, 256, 10])
    x = np.ones((256, 784), np.float32); y = np.eye(10, dtype=np.float32)[np.zeros(256, int)]
    t1 = time.perf_counter()
    functrans.jit(sgd_step)(params, x, y)
    t2 = time.perf_counter()
    print(t2 - t1, t2 - t0)
""")


def bench_first_call(rows):
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    res = []
    with tempfile.TemporaryDirectory(prefix="ftbench-") as d:
        env = dict(os.environ, FUNCTRANS_CACHE_DIR=d, FTBENCH_NO_BASELINES="1")
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", _FIRST.format(root=root, here=here)],
                                 env=env, capture_output=True, text=True, check=True).stdout.split()
            res.append((float(out[0]), float(out[1])))
    rows.append(("first call MLP step, cold cache", res[0][0], "n/a", "n/a",
                 f"whole process {res[0][1]:.2f} s"))
    rows.append(("first call MLP step, warm disk cache", res[1][0], "n/a", "n/a",
                 f"whole process {res[1][1]:.2f} s"))


def _fmt(t):
    if isinstance(t, str):
        return t
    return f"{t * 1e6:.2f} us" if t < 1e-3 else f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def main():
    print(f"functrans {functrans.__version__}, numpy {np.__version__}, "
          f"jax {'n/a' if jax is None else jax.__version__}, "
          f"torch {'n/a' if torch is None else torch.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}, "
          f"cpus={os.cpu_count()}")
    rows = []
    for b in (bench_overhead, bench_fused, bench_mlp_fresh, bench_mlp_blas_unset, bench_per_example,
              bench_first_call):
        b(rows)
    print(f"{'benchmark':40s} {'functrans':>11s} {'numpy':>11s} {'ft/np':>7s} {'jax':>9s} "
          f"{'ft/jax':>7s}  notes")
    for name, ft, npt, jt, note in rows:
        r_np = f"{ft / npt:.2f}" if not isinstance(npt, str) else "n/a"
        r_jax = f"{ft / jt:.2f}" if not isinstance(jt, str) else "n/a"
        print(f"{name:40s} {_fmt(ft):>11s} {_fmt(npt):>11s} {r_np:>7s} {_fmt(jt):>9s} "
              f"{r_jax:>7s}  {note}")
    print(f"numba compiles {functrans.backends.compile_count()}, "
          f"stats {functrans.backends.compile_stats()}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--mlp-row"]:
        r = []
        bench_mlp(r)
        print(";;".join(str(v) for v in r[0][1:]))
    else:
        main()
