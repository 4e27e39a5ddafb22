"""lax.bitcast_convert_type: NumPy's ``view`` with JAX's shape rule, eagerly, under jit (fused
for equal widths, a byte view otherwise, and inside 16-bit programs), vmap, jvp, and errors."""
import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import core, lax
from functrans.backends import cuda_codegen
from functrans.test_util import check_vmap

BF16, F16 = core.bfloat16, np.dtype(np.float16)
X = np.array([1.0, -2.5, np.inf, -0.0, 3e-39, np.nan], np.float32)   # subnormal, NaN, -0


def view(x, dtype):
    """JAX's shape rule on NumPy's view (the reference)."""
    x, dtype = np.array(x, order="C"), np.dtype(dtype)     # (ascontiguousarray makes 0-d 1-d)
    if dtype.itemsize < x.dtype.itemsize:
        return x[..., None].view(dtype)
    return x.view(dtype)[..., 0] if dtype.itemsize > x.dtype.itemsize else x.view(dtype)


def assert_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


CASES = [(X, np.int32), (X, np.uint8), (X.astype(np.float64), np.uint32),
         (X.reshape(2, 3).astype(np.float64), np.float32),
         (np.arange(12, dtype=np.uint16).reshape(3, 4), np.float16),
         (np.arange(6, dtype=np.uint16).reshape(3, 2), np.float32),
         (np.arange(8, dtype=np.uint8).reshape(2, 4), np.int32),
         (X.astype(BF16), np.uint16), (X.astype(BF16), np.uint8),
         (np.array([0x3FC0, 0x7F81], np.uint16), BF16), (np.float32(2.0), np.uint8)]


@pytest.mark.parametrize("x, dtype", CASES, ids=lambda c: getattr(np.dtype(c), "name", "") if
                         not isinstance(c, np.ndarray) else str(c.dtype))
def test_eager_equals_numpy_view(x, dtype):
    assert_bits(lax.bitcast_convert_type(x, dtype), view(x, dtype))


def _kernel(x64, x32, u16):
    return (lax.bitcast_convert_type(x32 * 2, np.uint32) + np.uint32(1),    # fused, equal width
            lax.bitcast_convert_type(x64, np.uint16),                       # narrower: bytes view
            lax.bitcast_convert_type(u16, np.int32))                        # wider


_jit_kernel = jax.jit(_kernel)


def test_jit_equals_numpy_view():
    x64, u16 = X.astype(np.float64).reshape(2, 3), np.arange(8, dtype=np.uint16).reshape(4, 2)
    got = _jit_kernel(x64, X, u16)
    assert_bits(got[0], view(X * 2, np.uint32) + np.uint32(1))
    assert_bits(got[1], view(x64, np.uint16))
    assert_bits(got[2], view(u16, np.int32))
    assert "bitcast_as(" in _jit_kernel.lower(x64, X, u16).as_text()


def test_vmap_over_the_consumed_axis():
    """A wider dtype consumes the last axis: a batch axis there moves first (axis 2)."""
    pairs, bytes_ = np.arange(8, dtype=np.uint16).reshape(2, 2, 2), np.arange(24, dtype=np.uint16)
    for axis in range(3):
        check_vmap(lambda a: lax.bitcast_convert_type(a, np.uint32), (pairs,), axis)
        check_vmap(lambda a: lax.bitcast_convert_type(a, np.uint8), (bytes_.reshape(3, 2, 4),),
                   axis)
    got = jax.vmap(lambda a: lax.bitcast_convert_type(a, np.uint32), in_axes=2)(pairs)
    np.testing.assert_array_equal(got, view(pairs.transpose(2, 0, 1), np.uint32))


def test_derivative_is_zero_as_jax():
    out, t = jax.jvp(lambda v: lax.bitcast_convert_type(v, np.int32), (X,),
                     (np.ones(6, np.float32),))
    assert t.dtype == core.float0 and t.shape == (6,)
    def f(v):      # v again, through its bits: no derivative there, only through `+ v`
        same = lax.bitcast_convert_type(lax.bitcast_convert_type(v, np.int32), np.float32)
        return jnp.sum(same * 3 + v)
    np.testing.assert_array_equal(jax.grad(f)(np.ones(3, np.float32)), np.ones(3, np.float32))


def test_errors_name_the_problem():
    with pytest.raises(TypeError, match="bitcast_convert_type.*bool"):
        lax.bitcast_convert_type(np.array([True]), np.uint8)
    with pytest.raises(TypeError, match="bitcast_convert_type.*complex64"):
        lax.bitcast_convert_type(np.ones(2, np.float64), np.complex64)
    with pytest.raises(TypeError, match="last axis must hold 2"):
        lax.bitcast_convert_type(np.ones(3, np.uint16), np.uint32)
    with pytest.raises(NotImplementedError,
                       match="CUDA lowering for primitive 'bitcast_convert_type'"):
        cuda_codegen.SCALAR_RULES["bitcast_convert_type"](["x"], np.dtype(np.float32),
                                                          np.dtype(np.int32), {})


def _narrow_bits(x, u16):
    """bfloat16 bits out and in, inside a bfloat16 program (narrow.py's rewrite)."""
    return (lax.bitcast_convert_type(x * 2, np.uint16), lax.bitcast_convert_type(x, np.uint8),
            lax.bitcast_convert_type(u16, BF16) + x)


_jit_narrow_bits = jax.jit(_narrow_bits)


def test_bitcast_in_16_bit_programs_under_jit():
    x = X.astype(BF16)
    u16 = np.array([0x3FC0, 0x7F81, 0xFF80, 0x0001, 0x8000, 0x4049], np.uint16)
    for got, want in zip(_jit_narrow_bits(x, u16), _narrow_bits(jnp.asarray(x), u16)):
        assert_bits(got, want)
    # float16 bits are not decoded in kernels: such a program runs eagerly, and is right
    h = X.astype(F16)
    assert_bits(jax.jit(lambda v: lax.bitcast_convert_type(v + v, np.int16))(h),
                view(h + h, np.int16))
