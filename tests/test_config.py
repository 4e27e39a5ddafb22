"""functrans.config: jax_enable_x64 (64-bit canonicalisation), jax_default_matmul_precision;
and lax's strict operand rules (equal dtypes, broadcast shapes) with JAX's error types."""
import os
import subprocess
import sys

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans import lax, random
from functrans.errors import ConcretizationTypeError, NonConcreteBooleanIndexError


@pytest.fixture
def x32():
    """jax_enable_x64 off for one test, restored after it."""
    ft.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        ft.config.update("jax_enable_x64", True)


def _no_64bit(closed):
    text = str(closed)
    return not any(t in text for t in ("f64", "i64", "u64", "c128"))


# ---------------------------------------------------------------------------------------------
# jax_enable_x64

def test_x64_is_on_by_default():
    assert ft.config.jax_enable_x64 is True and ft.config.read("enable_x64") is True
    assert jnp.zeros(2).dtype == np.float64 and jnp.arange(3).dtype == np.int64
    assert jnp.asarray(np.ones(2)).dtype == np.float64


@pytest.mark.parametrize("make, dtype", [
    (lambda: jnp.asarray(np.ones(2)), np.float32),
    (lambda: jnp.array([1, 2]), np.int32),
    (lambda: jnp.array(1.5), np.float32),
    (lambda: jnp.zeros(3), np.float32),
    (lambda: jnp.ones(3, dtype=jnp.float64), np.float32),
    (lambda: jnp.full((2,), 7), np.int32),
    (lambda: jnp.arange(4), np.int32),
    (lambda: jnp.linspace(0, 1, 3), np.float32),
    (lambda: jnp.eye(2), np.float32),
    (lambda: jnp.mean(jnp.arange(4)), np.float32),
    (lambda: jnp.argmax(np.arange(5.0)), np.int32),
    (lambda: jnp.ones(2) + 1.0, np.float32),
    (lambda: jnp.ones(2, np.float32) * np.float64(2), np.float32),
    (lambda: lax.add(1.0, 2.0), np.float32),
    (lambda: np.float64(2) * jnp.ones(2), np.float32),
    (lambda: jnp.ones(2).astype(np.int64), np.int32),
    (lambda: random.normal(random.PRNGKey(0), (2,)), np.float32),
    (lambda: random.uniform(random.PRNGKey(0), (2,), dtype=np.float64), np.float32),
    (lambda: random.randint(random.PRNGKey(0), (2,), 0, 9), np.int32),
    (lambda: random.permutation(random.PRNGKey(0), 4), np.int32),
    (lambda: ft.nn.one_hot(np.arange(2), 3), np.float32),
    (lambda: ft.scipy.special.gammaln(np.arange(1, 4)), np.float32),
])
def test_x64_off_canonicalises_to_32_bits(x32, make, dtype):
    assert make().dtype == dtype


def test_x64_off_transforms_compute_in_32_bits(x32):
    x = np.linspace(0.1, 1.0, 4)            # float64 input: canonicalised on the way in
    f = lambda v: jnp.sum(jnp.sin(v) * v ** 2)
    g = ft.grad(f)(x)
    assert g.dtype == np.float32
    x32v = x.astype(np.float32)
    np.testing.assert_allclose(g, np.cos(x32v) * x32v ** 2 + 2 * x32v * np.sin(x32v), rtol=1e-5)
    assert ft.jit(ft.grad(f))(x).dtype == np.float32
    assert ft.hessian(f)(x).dtype == np.float32
    assert ft.vmap(lambda v: jnp.dot(v, v))(np.ones((3, 2))).dtype == np.float32
    _, out = lax.scan(lambda c, a: (c + a, c * a), 0.0, np.ones(3))
    assert out.dtype == np.float32
    assert _no_64bit(ft.make_jaxpr(lambda v: jnp.argsort(v) + jnp.cumsum(v) * np.float64(3))(x))


def test_x64_switch_is_part_of_the_jit_cache_key():
    f = ft.jit(lambda v: v * 2.0 + jnp.arange(3))
    assert f(np.ones(3)).dtype == np.float64
    ft.config.update("jax_enable_x64", False)
    try:
        out = f(np.ones(3))
        assert out.dtype == np.float32 and f(np.ones(3)).dtype == np.float32
        np.testing.assert_array_equal(out, [2, 3, 4])
    finally:
        ft.config.update("jax_enable_x64", True)
    assert f(np.ones(3)).dtype == np.float64


def test_x64_off_from_the_environment():
    code = ("import numpy as np, functrans as jax, functrans.numpy as jnp\n"
            "print(jax.config.jax_enable_x64, jnp.asarray(np.ones(1)).dtype, jnp.arange(2).dtype)")
    env = dict(os.environ, JAX_ENABLE_X64="0")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "float32", "int32"]


# ---------------------------------------------------------------------------------------------
# jax_default_matmul_precision

def test_default_matmul_precision_option_and_context():
    assert ft.config.jax_default_matmul_precision is None
    with ft.default_matmul_precision("float32"):
        assert ft.config.default_matmul_precision == "float32"
        with ft.default_matmul_precision("tensorfloat32"):
            assert ft.config.read("jax_default_matmul_precision") == "tensorfloat32"
        assert ft.config.default_matmul_precision == "float32"
    assert ft.config.default_matmul_precision is None
    ft.config.update("jax_default_matmul_precision", "HIGHEST")
    try:
        assert ft.config.default_matmul_precision == "highest"
        a = np.arange(6.0).reshape(2, 3)
        np.testing.assert_array_equal(ft.jit(jnp.matmul)(a, a.T), a @ a.T)   # CPU: always exact
    finally:
        ft.config.update("jax_default_matmul_precision", None)
    with pytest.raises(ValueError, match="jax_default_matmul_precision.*'fast'"):
        ft.config.update("jax_default_matmul_precision", "fast")


def test_unknown_option_names_close_matches():
    with pytest.raises(AttributeError, match="jax_enable_x64"):
        ft.config.update("jax_enable_x46", True)


# ---------------------------------------------------------------------------------------------
# lax operand rules and JAX's error types

@pytest.mark.parametrize("x, y, got", [
    (1, 1.0, "int64, float64"),
    (np.float32(1), 1.0, "float32, float64"),
    (np.ones(2, np.float32), np.ones(2), "float32, float64"),
    (np.ones(2, np.int32), 2, "int32, int64"),
])
def test_lax_binops_require_equal_dtypes(x, y, got):
    with pytest.raises(TypeError, match=rf"lax.add requires arguments to have the same dtypes, "
                                        rf"got {got}.*jnp.add.*test_config.py"):
        lax.add(x, y)
    with pytest.raises(TypeError, match="lax.max requires.*jnp.maximum"):
        lax.max(x, y)


def test_lax_binops_broadcast_shapes_eagerly_and_under_jit():
    x = np.arange(6.0).reshape(2, 3)
    for f in (lax.add, ft.jit(lax.add)):
        np.testing.assert_array_equal(f(x, 1.0), x + 1)
        np.testing.assert_array_equal(f(x, np.ones((1, 3))), x + 1)
        np.testing.assert_array_equal(f(np.ones(3), x), x + 1)
    np.testing.assert_array_equal(lax.add(1, 1), 2)
    assert ft.grad(lambda v: lax.mul(v, 3.0).sum())(np.ones(2)).tolist() == [3.0, 3.0]
    with pytest.raises(TypeError, match=r"mul got incompatible shapes for broadcasting: \(2,\), \(3,\)"):
        lax.mul(np.ones(2), np.ones(3))


def test_boolean_mask_under_jit_is_an_index_error():
    f = ft.jit(lambda x: x[x > 0])
    with pytest.raises(IndexError, match=r"boolean indices must be concrete; got bool\[3\].*test_config.py"):
        f(jnp.arange(3.0))
    assert issubclass(NonConcreteBooleanIndexError, ConcretizationTypeError)
    np.testing.assert_array_equal(jnp.arange(3.0)[np.array([True, False, True])], [0.0, 2.0])


@pytest.mark.parametrize("op", [jnp.dot, jnp.matmul, lambda a, b: a @ b])
def test_dot_shape_mismatch_is_a_type_error(op):
    with pytest.raises(TypeError, match=r"\(2, 3\) and \(2, 3\)"):
        op(jnp.ones((2, 3)), jnp.ones((2, 3)))
    with pytest.raises(TypeError, match=r"\(2, 3\) and \(2, 3\)"):
        ft.jit(op)(jnp.ones((2, 3)), jnp.ones((2, 3)))
