"""functrans.numpy.fft under jit on the CPU against scipy.fft (pocketfft's C++ version, the
library the primitive's host step calls), numpy.fft (pocketfft's C version) and JAX's jit
(XLA's DUCC FFT) when installed: fft and rfft of 2**20 float32 points and fft2/rfft2 of
1024x1024, forward and the gradient of a real loss.

The scipy/numpy columns for a gradient are the hand-written reverse pass (the forward transform,
then its transpose as one more transform), so "ratio" (functrans / scipy.fft) is functrans's
overhead over pocketfft.
Timing: the best of N calls of the process CPU time (``--clock cpu``, the default: robust to a
shared machine; JAX's XLA threads add theirs) or of the wall clock (``--clock wall``).
Run:  python benchmarks/fft_bench.py [--repeats N] [--clock cpu|wall]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

import functrans as ft
import functrans.numpy as jnp


def _weights(n):
    c = np.full(n // 2 + 1, 2.0, np.float32)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0
    return c


def grad_fft(lib, x, axes):
    """d/dx sum |fftn(x)|^2 for a real x: 2 Re(F conj(F x)) (F is symmetric)."""
    X = lib.fftn(x, axes=axes)
    return 2 * np.real(lib.fftn(np.conj(X), axes=axes))


def grad_rfft(lib, x, axes):
    """d/dx sum |rfftn(x)|^2: 2 N irfftn(X / c) (the Hermitian-weighted transpose)."""
    X = lib.rfftn(x, axes=axes)
    n = int(np.prod([x.shape[a] for a in axes]))
    return 2 * n * lib.irfftn(X / _weights(x.shape[axes[-1]]), [x.shape[a] for a in axes], axes)


# name -> (shape, transform name, hand-written gradient, axes)
CASES = {
    "fft 2**20": ((2 ** 20,), "fft", grad_fft, (0,)),
    "rfft 2**20": ((2 ** 20,), "rfft", grad_rfft, (0,)),
    "fft2 1024x1024": ((1024, 1024), "fft2", grad_fft, (0, 1)),
    "rfft2 1024x1024": ((1024, 1024), "rfft2", grad_rfft, (0, 1)),
}


CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}


def timeit(f, repeats, clock="cpu"):
    """The best of repeats calls (after a warm-up): the machine may be shared."""
    now = CLOCK[clock]
    f()
    times = []
    for _ in range(repeats):
        t = now()
        f()
        times.append(now() - t)
    return float(np.min(times))


def _jax():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    try:
        import jax
        import jax.numpy as jjnp
    except ImportError:
        return None
    return jax, jjnp


def run_case(name, shape, kind, hand_grad, axes, repeats, jx, clock):
    import scipy.fft
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    ft_fwd = ft.jit(getattr(jnp.fft, kind))
    ft_grad = ft.jit(ft.grad(lambda a: jnp.sum(jnp.abs(getattr(jnp.fft, kind)(a)) ** 2)))
    np.testing.assert_allclose(ft_fwd(x), np.fft.fftn(x) if kind == "fft2" else
                               getattr(np.fft, kind)(x), rtol=1e-3, atol=1e-2 * np.sqrt(x.size))
    np.testing.assert_allclose(ft_grad(x), hand_grad(np.fft, x, axes), rtol=1e-3,
                               atol=1e-2 * x.size)
    cols = {"forward": [lambda: scipy.fft.__dict__[kind](x), lambda: np.fft.__dict__[kind](x),
                        lambda: np.asarray(ft_fwd(x))],
            "grad": [lambda: hand_grad(scipy.fft, x, axes), lambda: hand_grad(np.fft, x, axes),
                     lambda: np.asarray(ft_grad(x))]}
    if jx is not None:
        jax, jjnp = jx
        jf = jax.jit(getattr(jjnp.fft, kind))
        jg = jax.jit(jax.grad(lambda a: jjnp.sum(jjnp.abs(getattr(jjnp.fft, kind)(a)) ** 2)))
        xj = jax.device_put(x)
        cols["forward"].append(lambda: jf(xj).block_until_ready())
        cols["grad"].append(lambda: jg(xj).block_until_ready())
    print(f"\n{name} (float32), best of {repeats}, ms of {clock} time")
    print(f"  {'':8s} {'scipy.fft':>10s} {'numpy.fft':>10s} {'functrans':>10s} {'ratio':>6s} "
          f"{'jax':>8s}")
    for what, fs in cols.items():
        t = [timeit(f, repeats, clock) * 1e3 for f in fs]
        jcol = f"{t[3]:8.2f}" if len(t) > 3 else f"{'-':>8s}"
        print(f"  {what:8s} {t[0]:10.2f} {t[1]:10.2f} {t[2]:10.2f} {t[2] / t[0]:6.2f} {jcol}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clock", choices=sorted(CLOCK), default="cpu")
    args = ap.parse_args()
    jx = _jax()
    for name, (shape, kind, np_grad, axes) in CASES.items():
        run_case(name, shape, kind, np_grad, axes, args.repeats, jx, args.clock)


if __name__ == "__main__":
    main()
