"""conv_general_dilated on a GPU (jit with backend cuda, device-resident inputs): checks the
forward and the gradient against the CPU jit, then times them (best of 10, ms) and JAX on the
same GPU when installed; the convolutions run as im2col + cuBLAS GEMM (backends/cuda_conv.py)
where CuPy is in use. Run on a machine with a GPU:  python benchmarks/conv_gpu_check.py
"""
import numpy as np
import functrans as ft
import functrans.numpy as jnp
from functrans import lax
rng = np.random.default_rng(0)
DN = ("NHWC", "HWIO", "NHWC")
x = rng.standard_normal((32, 28, 28, 16)).astype(np.float32)
w = (rng.standard_normal((3, 3, 16, 32)) / 12).astype(np.float32)
conv = lambda a, b: lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=DN)
loss = lambda a, b: jnp.sum(jnp.tanh(conv(a, b)))
from timing import best as best_s  # noqa: E402
def best(f, n=10):
    return best_s(f, n) * 1e3
gpu = ft.devices("cuda")[0]
xg, wg = ft.device_put(x, gpu), ft.device_put(w, gpu)
fc = ft.jit(conv)
gc = ft.jit(ft.grad(loss, (0, 1)))
want = np.asarray(ft.jit(conv)(x, w))
np.testing.assert_allclose(np.asarray(fc(xg, wg)), want, rtol=1e-4, atol=1e-4)
for a, b in zip(gc(xg, wg), ft.jit(ft.grad(loss, (0, 1)))(x, w)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-3)
print("cuda fwd ms %.3f" % best(lambda: np.asarray(fc(xg, wg)[0, 0, 0, 0])))
print("cuda grad ms %.3f" % best(lambda: np.asarray(gc(xg, wg)[1][0, 0, 0, 0])))
from functrans.backends import numba_cuda  # noqa: E402
print("im2col+GEMM convolutions run:", numba_cuda._stats["conv_gemm_calls"],
      "| cuBLAS fallbacks:", numba_cuda._stats["gemm_fallbacks"])
print("cpu jit fwd ms %.3f" % best(lambda: ft.jit(conv)(x, w), 5))
try:
    import jax, jax.numpy as jj
    jf = jax.jit(lambda a, b: jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=DN))
    jg = jax.jit(jax.grad(lambda a, b: jj.sum(jj.tanh(jax.lax.conv_general_dilated(a, b, (1, 1), "SAME", dimension_numbers=DN))), (0, 1)))
    xj, wj = jax.device_put(x), jax.device_put(w)
    print("jax gpu fwd ms %.3f" % best(lambda: jf(xj, wj).block_until_ready()))
    print("jax gpu grad ms %.3f" % best(lambda: jax.block_until_ready(jg(xj, wj))))
except Exception as e:
    print("jax:", type(e).__name__, e)
