"""One-shot check of the linalg primitives under jit(backend="cuda") (host fallback: operands
copied to the host, NumPy/SciPy run, results copied back): values against NumPy, a gradient,
and a singular solve giving NaN. Run on the GPU machine: PYTHONPATH=. python benchmarks/linalg_gpu_check.py"""
import numpy as np

import functrans as ft
import functrans.numpy as jnp
import functrans.scipy.linalg as fsl


def f(a, p, b):
    w, v = jnp.linalg.eigh(p)
    return (jnp.linalg.solve(a, b) * 2.0, jnp.linalg.cholesky(p) + 1.0, w, jnp.linalg.det(a),
            jnp.linalg.svd(a, compute_uv=False), fsl.expm(a * 0.1),
            ft.grad(lambda x: jnp.sum(jnp.linalg.inv(x) ** 2))(a))


rng = np.random.default_rng(0)
a = rng.normal(size=(2, 8, 8)) + 4 * np.eye(8)
q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
p = np.stack([q @ np.diag(np.linspace(1, 3, 8)) @ q.T] * 2)
b = rng.normal(size=(2, 8, 3))
want = f(a, p, b)
got = ft.jit(f, backend="cuda")(a, p, b)
for i, (g, w) in enumerate(zip(got, want)):
    err = float(np.max(np.abs(np.asarray(g) - np.asarray(w))))
    print(f"output {i}: max abs err {err:.2e}", "ok" if err < 1e-8 else "MISMATCH")
sing = np.array([[1.0, 2.0], [2.0, 4.0]])
print("singular solve under cuda jit:", np.asarray(ft.jit(jnp.linalg.inv, backend="cuda")(sing)))
