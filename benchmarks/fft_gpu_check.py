"""numpy.fft under jit(backend="cuda") with device-resident inputs: cuFFT through CuPy. Checks
values against NumPy and that cuFFT ran (not the host fallback), then times a 2**20-point
complex64 FFT and the gradient of sum(|rfft(x)|**2) (best of 10, ms) beside cupy.fft and JAX on
the same GPU when installed. Run on a machine with a GPU:  python benchmarks/fft_gpu_check.py
"""

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans.backends import numba_cuda
from timing import best as best_s


def best(f):
    """Best milliseconds of f() over 10 calls."""
    return best_s(f, 10) * 1e3

N = 2 ** 20
rng = np.random.default_rng(0)
z = (rng.standard_normal(N) + 1j * rng.standard_normal(N)).astype(np.complex64)
x = rng.standard_normal(N).astype(np.float32)
small = rng.standard_normal((4, 6, 10))


def power(a):
    return jnp.sum(jnp.abs(jnp.fft.rfft(a)) ** 2)


gpu = ft.devices("cuda")[0]
calls = numba_cuda._stats["cufft_calls"]
for name, f, want in [
        ("rfftn/irfftn (4,6,10) f64", lambda a: jnp.fft.irfftn(jnp.fft.rfftn(a) * 2.0),
         np.fft.irfftn(np.fft.rfftn(small) * 2.0)),
        ("fft2 ortho (4,6,10) f64", lambda a: jnp.fft.fft2(a, norm="ortho"),
         np.fft.fft2(small, norm="ortho")),
        ("hfft n=12 (4,6,10) f64", lambda a: jnp.fft.hfft(a, n=12), np.fft.hfft(small, n=12))]:
    got = np.asarray(ft.jit(f, backend="cuda")(ft.device_put(small, gpu)))
    err = float(np.max(np.abs(got - want)))
    print(f"{name}: max abs err {err:.2e}", "ok" if err < 1e-10 else "MISMATCH")
grad_gpu = np.asarray(ft.jit(ft.grad(power), backend="cuda")(ft.device_put(small[0, 0], gpu)))
print("grad of sum|rfft|^2 (Parseval 2nx away from the end terms): max abs err %.2e" %
      float(np.max(np.abs(grad_gpu - np.asarray(ft.grad(power)(small[0, 0]))))))
print("cuFFT calls:", numba_cuda._stats["cufft_calls"] - calls, "(0 means the host fallback ran)")

zg, xg = ft.device_put(z, gpu), ft.device_put(x, gpu)
fft = ft.jit(jnp.fft.fft)
gpow = ft.jit(ft.grad(power))
print("functrans cuda fft 2**20 c64 ms %.3f" % best(lambda: np.asarray(fft(zg)[0])))
print("functrans cuda grad sum|rfft|^2 2**20 f32 ms %.3f" % best(lambda: np.asarray(gpow(xg)[0])))
try:
    import cupy
    zc = cupy.asarray(z)
    print("cupy.fft.fft 2**20 c64 ms %.3f" % best(lambda: cupy.fft.fft(zc)[0].get()))
except Exception as e:  # noqa: BLE001
    print("cupy:", type(e).__name__, e)
try:
    import jax
    import jax.numpy as jj
    jf = jax.jit(jj.fft.fft)
    jg = jax.jit(jax.grad(lambda a: jj.sum(jj.abs(jj.fft.rfft(a)) ** 2)))
    zj, xj = jax.device_put(z), jax.device_put(x)
    print("jax gpu fft 2**20 c64 ms %.3f" % best(lambda: jf(zj).block_until_ready()))
    print("jax gpu grad sum|rfft|^2 ms %.3f" % best(lambda: jg(xj).block_until_ready()))
except Exception as e:  # noqa: BLE001
    print("jax:", type(e).__name__, e)
