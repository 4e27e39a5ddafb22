"""lax.conv_general_dilated on the CPU: functrans eager (NumPy impl) and jit (numba im2col +
BLAS) against hand-written NumPy (a strided window view contracted by tensordot) and JAX's jit
when installed, for a few layer shapes (float32), forward and forward+backward.

Prints one table per case: the best wall time per call and the ratio to hand-written NumPy.
Run:  python benchmarks/conv_bench.py [--repeats N]
"""
from __future__ import annotations

import argparse

import numpy as np

import functrans as ft
import functrans.numpy as jnp
from functrans import lax
from timing import best

DN = ("NHWC", "HWIO", "NHWC")
# name -> (lhs shape, rhs shape, strides, padding, dimension numbers, feature groups)
CASES = {
    "2-d 32x28x28x16 -> 32, 3x3 SAME": ((32, 28, 28, 16), (3, 3, 16, 32), (1, 1), "SAME", DN, 1),
    "2-d 8x32x32x32 -> 32, 3x3 stride 2": ((8, 32, 32, 32), (3, 3, 32, 32), (2, 2), "SAME", DN, 1),
    "2-d depthwise 8x32x32x32, 3x3": ((8, 32, 32, 32), (3, 3, 1, 32), (1, 1), "SAME", DN, 32),
    "1-d 16x256x8 -> 16, k=5 VALID": ((16, 256, 8), (5, 8, 16), (1,), "VALID", ("NHC", "HIO", "NHC"), 1),
}


def numpy_conv(x, w, strides, padding, fgc):
    """NHWC / HWIO convolution by hand: pad, take the strided windows, tensordot per group."""
    nsp = x.ndim - 2
    k = w.shape[:nsp]
    if padding == "SAME":
        pads = []
        for n, kk, s in zip(x.shape[1:-1], k, strides):
            total = max(0, (-(-n // s) - 1) * s + kk - n)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0)] + pads + [(0, 0)])
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=tuple(range(1, 1 + nsp)))
    win = win[(slice(None),) + tuple(slice(None, None, s) for s in strides)]
    cg, og = w.shape[-2], w.shape[-1] // fgc
    axes_w = [nsp] + list(range(nsp))
    axes_x = [1 + nsp] + list(range(2 + nsp, 2 + 2 * nsp))
    group = lambda g: (slice(None),) * (1 + nsp) + (slice(g * cg, (g + 1) * cg),)  # noqa: E731
    parts = [np.tensordot(win[group(g)], w[..., g * og:(g + 1) * og], (axes_x, axes_w))
             for g in range(fgc)]
    return np.concatenate(parts, -1) if fgc > 1 else parts[0]


def run_case(name, spec, repeats):
    lshape, rshape, strides, padding, dn, fgc = spec
    rng = np.random.default_rng(0)
    x = rng.standard_normal(lshape).astype(np.float32)
    w = (rng.standard_normal(rshape) / np.sqrt(np.prod(rshape[:-1]))).astype(np.float32)

    def conv(a, b):
        return lax.conv_general_dilated(a, b, strides, padding, dimension_numbers=dn,
                                        feature_group_count=fgc)

    def loss(a, b):
        return jnp.sum(jnp.tanh(conv(a, b)))

    want = numpy_conv(x, w, strides, padding, fgc)
    got = np.asarray(ft.jit(conv)(x, w))
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-4)
    rows = {"numpy (hand-written)": best(lambda: numpy_conv(x, w, strides, padding, fgc), repeats),
            "functrans eager": best(lambda: conv(x, w), repeats),
            "functrans jit": best(lambda: ft.jit(conv)(x, w), repeats)}
    grad = ft.jit(ft.grad(loss, (0, 1)))
    rows["functrans jit grad (fwd+bwd)"] = best(lambda: grad(x, w), repeats)
    try:
        import jax
        from jax import lax as jlax
        import jax.numpy as jjnp
        jconv = jax.jit(lambda a, b: jlax.conv_general_dilated(
            a, b, strides, padding, dimension_numbers=dn, feature_group_count=fgc))
        jgrad = jax.jit(jax.grad(lambda a, b: jjnp.sum(jjnp.tanh(jlax.conv_general_dilated(
            a, b, strides, padding, dimension_numbers=dn, feature_group_count=fgc))), (0, 1)))
        rows["jax jit"] = best(lambda: jconv(x, w).block_until_ready(), repeats)
        rows["jax jit grad (fwd+bwd)"] = best(lambda: jax.block_until_ready(jgrad(x, w)), repeats)
    except ImportError:
        pass
    base = rows["numpy (hand-written)"]
    print(f"\n{name}")
    print(f"  {'method':32s} {'ms':>9s} {'/ numpy':>9s}")
    for k, t in rows.items():
        print(f"  {k:32s} {t * 1e3:9.3f} {t / base:9.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    for name, spec in CASES.items():
        run_case(name, spec, args.repeats)


if __name__ == "__main__":
    main()
