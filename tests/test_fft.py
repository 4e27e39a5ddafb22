"""functrans.numpy.fft and lax.fft: values against numpy.fft over drawn shapes, lengths, axes,
norms and dtypes; first and second order derivatives (forward and reverse, real and complex
directions) of every transform; vmap against a loop; jit against eager; Parseval-type
identities (which check the Hermitian weighting of the real transforms' transposes); and
NumPy's errors for bad input."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as jax
import functrans.numpy as jnp
from functrans import lax
from functrans.test_util import check_grads, check_vmap

NORMS = [None, "backward", "ortho", "forward"]
ONE_D = ["fft", "ifft", "rfft", "irfft", "hfft", "ihfft"]
N_D = ["fftn", "ifftn", "rfftn", "irfftn", "fft2", "ifft2", "rfft2", "irfft2"]
REAL_INPUT = {"rfft", "ihfft", "rfftn", "rfft2"}
TOL = {np.float32: 2e-4, np.complex64: 2e-4, np.float64: 1e-10, np.complex128: 1e-10}


def _input(rng, name, shape, dtype):
    x = rng.normal(size=shape)
    if name not in REAL_INPUT and np.dtype(dtype).kind == "c":
        x = x + 1j * rng.normal(size=shape)
    if name in REAL_INPUT:
        dtype = np.float32 if dtype in (np.float32, np.complex64) else np.float64
    return x.astype(dtype)


def _close(got, want, dtype):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=TOL[dtype] * scale)


# ---------------------------------------------------------------------------------------------
# Values

@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(ONE_D), shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       n=st.one_of(st.none(), st.integers(1, 9)), axis_pick=st.integers(0, 5),
       norm=st.sampled_from(NORMS),
       dtype=st.sampled_from([np.float32, np.float64, np.complex64, np.complex128]),
       seed=st.integers(0, 2**16))
def test_one_axis_values_match_numpy(name, shape, n, axis_pick, norm, dtype, seed):
    axis = axis_pick % len(shape) - len(shape) * (axis_pick % 2)   # negative axes too
    if name in ("irfft", "hfft") and n is None and shape[axis] == 1:
        n = 2                                    # NumPy's default 2 * (1 - 1) is invalid
    x = _input(np.random.default_rng(seed), name, tuple(shape), dtype)
    want = getattr(np.fft, name)(x, n, axis, norm)
    _close(getattr(jnp.fft, name)(x, n, axis, norm), want, dtype)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(N_D), shape=st.lists(st.integers(1, 5), min_size=2, max_size=4),
       axes=st.one_of(st.none(), st.lists(st.integers(-4, 3), min_size=1, max_size=3)),
       s=st.lists(st.one_of(st.integers(1, 7), st.just(-1)), min_size=3, max_size=3),
       use_s=st.booleans(), norm=st.sampled_from(NORMS),
       dtype=st.sampled_from([np.float32, np.float64, np.complex64, np.complex128]),
       seed=st.integers(0, 2**16))
def test_many_axes_values_match_numpy(name, shape, axes, s, use_s, norm, dtype, seed):
    nd = len(shape)
    if name.endswith("2"):
        axes = (-2, -1) if axes is None or len(axes) != 2 else axes
    if axes is not None:
        axes = [a % nd for a in axes]            # repeated axes allowed, as in NumPy
    k = nd if axes is None else len(axes)
    s = tuple(s[:k]) if use_s and k <= 3 else None
    if s is None and axes is None and name.startswith("irfft") and shape[-1] == 1:
        return
    if s is None and axes is not None and name.startswith("irfft") and shape[axes[-1]] == 1:
        return
    if s is not None and axes is None:
        axes = list(range(nd - len(s), nd))
    x = _input(np.random.default_rng(seed), name, tuple(shape), dtype)
    want = getattr(np.fft, name)(x, s, axes, norm)
    _close(getattr(jnp.fft, name)(x, s, axes, norm), want, dtype)


def test_integer_and_half_inputs_promote_like_numpy_and_jax():
    assert jnp.fft.fft(np.arange(4)).dtype == np.complex128
    assert jnp.fft.irfft(np.arange(3)).dtype == np.float64
    assert jnp.fft.rfft(np.ones(4, np.float16)).dtype == np.complex64   # JAX's; NumPy's too


def test_frequencies_and_shifts_match_numpy():
    for n in (1, 2, 5, 8):
        for d in (1.0, 0.25):
            np.testing.assert_allclose(jnp.fft.fftfreq(n, d), np.fft.fftfreq(n, d))
            np.testing.assert_allclose(jnp.fft.rfftfreq(n, d), np.fft.rfftfreq(n, d))
    assert jnp.fft.fftfreq(4, dtype=np.float32).dtype == np.float32
    x = np.arange(30).reshape(5, 6)
    for axes in (None, 0, 1, (0, 1), (-1,)):
        np.testing.assert_array_equal(jnp.fft.fftshift(x, axes), np.fft.fftshift(x, axes))
        np.testing.assert_array_equal(jnp.fft.ifftshift(x, axes), np.fft.ifftshift(x, axes))
    # a traced spacing
    np.testing.assert_allclose(jax.jit(lambda d: jnp.fft.fftfreq(5, d))(0.5),
                               np.fft.fftfreq(5, 0.5))


def test_lax_fft_matches_numpy_and_converts_real_operands():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(lax.fft(x, "fft", (3, 4)), np.fft.fftn(x, axes=(1, 2)))
    np.testing.assert_allclose(lax.fft(x, lax.FftType.IFFT, (4,)), np.fft.ifft(x))
    np.testing.assert_allclose(lax.fft(x, "rfft", (3, 4)), np.fft.rfftn(x, axes=(1, 2)))
    h = np.fft.rfftn(x, axes=(1, 2))
    np.testing.assert_allclose(lax.fft(h, "irfft", (3, 4)), x, atol=1e-12)
    assert lax.fft(x.astype(np.float32), "rfft", (4,)).dtype == np.complex64


# ---------------------------------------------------------------------------------------------
# Derivatives: every transform, first and second order, forward and reverse, along real and
# imaginary directions of complex inputs (check_grads)

def _grad_arg(name, shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    return x if name in REAL_INPUT else x + 1j * rng.normal(size=shape)


GRAD_CASES = [("fft", {}), ("ifft", {"n": 6}), ("rfft", {}), ("rfft", {"n": 5}),
              ("irfft", {}), ("irfft", {"n": 7}), ("hfft", {"n": 5}), ("ihfft", {}),
              ("fftn", {}), ("ifftn", {"s": (3, 2)}), ("rfftn", {}), ("irfftn", {}),
              ("irfftn", {"s": (2, 5)}), ("fft2", {}), ("ifft2", {}), ("rfft2", {"s": (4, 3)}),
              ("irfft2", {})]


@pytest.mark.parametrize("name,kw", GRAD_CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("norm", [None, "ortho", "forward"])
def test_derivatives_of_every_transform(name, kw, norm):
    f = getattr(jnp.fft, name)
    x = _grad_arg(name, (2, 4), seed=len(name))
    check_grads(lambda a: f(a, norm=norm, **kw), (x,), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("call", [lambda a: jnp.fft.fft(a, 5), lambda a: jnp.fft.fftn(a),
                                  lambda a: jnp.fft.fft2(a, (3, 4), norm="ortho"),
                                  lambda a: jnp.fft.fftn(a, axes=(1, 0))])
def test_derivatives_of_real_input_ffts(call):
    """A real input's FFT is built from its half spectrum (Hermitian fill): check that path."""
    check_grads(call, (np.random.default_rng(6).normal(size=(3, 4)),), order=2)


@pytest.mark.parametrize("fft_type,shape,lengths", [
    ("fft", (2, 3), (3,)), ("ifft", (2, 3), (2, 3)), ("rfft", (2, 4), (2, 4)),
    ("rfft", (3,), (3,)), ("irfft", (2, 3), (2, 4)), ("irfft", (3,), (5,))])
def test_lax_fft_derivatives(fft_type, shape, lengths):
    x = _grad_arg("rfft" if fft_type == "rfft" else "fft", shape, seed=3)
    check_grads(lambda a: lax.fft(a, fft_type, lengths), (x,), order=2)


def test_real_losses_through_complex_spectra_differentiate():
    """grad of a real loss of a spectrum: shifts, frequencies and a window in the graph."""
    x = np.random.default_rng(4).normal(size=8)

    def loss(a):
        spec = jnp.fft.fftshift(jnp.fft.rfft(a * np.hanning(8)))
        return jnp.sum(jnp.abs(spec) ** 2 * (1.0 + jnp.fft.rfftfreq(8)))
    check_grads(loss, (x,), order=2)


# ---------------------------------------------------------------------------------------------
# Identities

def test_parseval_and_unitarity():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(3, 8)) + 1j * rng.normal(size=(3, 8))
    np.testing.assert_allclose(jnp.sum(jnp.abs(jnp.fft.fft(z, norm="ortho")) ** 2),
                               np.sum(np.abs(z) ** 2))
    np.testing.assert_allclose(jnp.fft.ifftn(jnp.fft.fftn(z)), z, atol=1e-12)
    # grad of |F x|^2 for the unitary F is 2 x (conjugated, JAX's convention: df/dx - i df/dy)
    g = jax.grad(lambda a: jnp.sum(jnp.abs(jnp.fft.fft2(a, norm="ortho")) ** 2))(z)
    np.testing.assert_allclose(g, 2 * np.conj(z), atol=1e-12)


@pytest.mark.parametrize("n", [7, 8])
def test_rfft_parseval_weights_the_half_spectrum(n):
    """sum c_k |X_k|^2 = n sum x^2 (c = 1, 2, ..., 2, [1]): its gradient 2 n x needs the
    Hermitian weighting of rfft's transpose, and irfft's transpose gives it back."""
    x = np.random.default_rng(n).normal(size=(2, n))
    c = np.full(n // 2 + 1, 2.0)
    c[0] = 1.0
    if n % 2 == 0:
        c[-1] = 1.0

    def energy(a):
        return jnp.sum(c * jnp.abs(jnp.fft.rfft(a)) ** 2)
    np.testing.assert_allclose(energy(x), n * np.sum(x ** 2))
    np.testing.assert_allclose(jax.grad(energy)(x), 2 * n * x, atol=1e-10)
    h = np.fft.rfft(x)
    # irfft(rfft(x)) = x: the vjp of the identity map is the identity
    _, vjp = jax.vjp(lambda a: jnp.fft.irfft(jnp.fft.rfft(a), n), x)
    u = np.random.default_rng(0).normal(size=x.shape)
    np.testing.assert_allclose(vjp(u)[0], u, atol=1e-12)
    np.testing.assert_allclose(jnp.fft.irfft(h, n), x, atol=1e-12)


def test_transpose_conventions_match_jax():
    """Values JAX 0.10 gives (jax.vjp of jnp.fft.rfft / irfft), here as their closed forms:
    rfft^T(u) = n irfft(conj(u) / c), irfft^T(u) = c conj(rfft(u)) / n."""
    n = 6
    rng = np.random.default_rng(7)
    u_real, x = rng.normal(size=n), rng.normal(size=n)
    w = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    c = np.array([1.0, 2.0, 2.0, 1.0])
    _, vjp = jax.vjp(lambda a: jnp.fft.irfft(a, n), w)
    np.testing.assert_allclose(vjp(u_real)[0], c / n * np.conj(np.fft.rfft(u_real)))
    _, vjp = jax.vjp(jnp.fft.rfft, x)
    np.testing.assert_allclose(vjp(w)[0], np.real(np.fft.fft(np.concatenate([w, np.zeros(2)]))))


# ---------------------------------------------------------------------------------------------
# vmap and jit

@pytest.mark.parametrize("name", ONE_D + N_D)
def test_vmap_matches_a_loop(name):
    f = getattr(jnp.fft, name)
    x = _grad_arg(name, (3, 2, 4), seed=9)
    check_vmap(lambda a: f(a, norm="ortho"), (x,), in_axes=1, atol=1e-12)
    check_vmap(lambda a: f(a), (x,), in_axes=2, atol=1e-12)


def test_vmap_of_the_lax_primitive_and_its_transpose():
    x = np.random.default_rng(2).normal(size=(4, 3, 6))
    check_vmap(lambda a: lax.fft(a, "rfft", (6,)), (x,), in_axes=1, atol=1e-12)
    check_vmap(jax.grad(lambda a: jnp.sum(jnp.abs(lax.fft(a, "rfft", (3, 6))) ** 2)), (x,),
               in_axes=0, atol=1e-10)


def _everything(x, z):
    """Every transform once (one jitted function: numba compiles are the slow part)."""
    outs = [jnp.fft.fft(z), jnp.fft.ifft(z, 5, axis=0, norm="ortho"), jnp.fft.rfft(x, 7),
            jnp.fft.irfft(z, norm="forward"), jnp.fft.hfft(z), jnp.fft.ihfft(x, axis=0),
            jnp.fft.fftn(z), jnp.fft.ifftn(z, (3, 5)), jnp.fft.rfftn(x, axes=(1, 0)),
            jnp.fft.irfftn(z, (4, 6)), jnp.fft.fft2(x), jnp.fft.ifft2(z), jnp.fft.rfft2(x),
            jnp.fft.irfft2(z, norm="ortho"), jnp.fft.fftshift(jnp.fft.fft(x)),
            jnp.fft.ifftshift(x, 1) * jnp.fft.fftfreq(4)]
    loss = jnp.sum(jnp.abs(jnp.fft.rfft2(jnp.sin(x))) ** 2) + jnp.real(jnp.sum(jnp.fft.ifft(z)))
    return outs, loss


def test_jit_matches_eager():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 4))
    z = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    both = lambda a, b: (_everything(a, b), jax.grad(lambda p, q: _everything(p, q)[1],  # noqa: E731
                                                     argnums=(0, 1))(a, b))
    eager = both(x, z)
    compiled = jax.jit(both)(x, z)
    for e, c in zip(jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(compiled)):
        assert e.dtype == c.dtype
        np.testing.assert_allclose(c, e, atol=1e-12)


def test_fft_inside_a_jitted_loop():
    def body(c, _):
        return jnp.fft.ifft(jnp.fft.fft(c) * 0.5), None
    z = np.arange(6.0) + 1j
    out = jax.jit(lambda a: lax.scan(body, a, None, length=3)[0])(z)
    np.testing.assert_allclose(out, z / 8, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors

@pytest.mark.parametrize("call,exc,match", [
    (lambda: jnp.fft.fft(np.ones(3), norm="bogus"), ValueError, "Invalid norm value bogus"),
    (lambda: jnp.fft.ifftn(np.ones((2, 2)), norm="Ortho"), ValueError, "Invalid norm value"),
    (lambda: jnp.fft.fft(np.ones(3), 0), ValueError, r"Invalid number of FFT data points \(0\)"),
    (lambda: jnp.fft.irfft(np.ones(1)), ValueError, r"Invalid number of FFT data points \(0\)"),
    (lambda: jnp.fft.rfftn(np.ones((2, 2)), s=(0, 2)), ValueError, "Invalid number"),
    (lambda: jnp.fft.irfftn(np.ones((3, 3)), s=(4,), axes=(0, 1)), ValueError,
     "Shape and axes have different lengths"),
    (lambda: jnp.fft.rfft(np.ones(3) + 1j), TypeError, "rfft requires real input"),
    (lambda: jnp.fft.ihfft(np.ones(3) + 1j), TypeError, "ihfft requires real input"),
    (lambda: jnp.fft.fft(np.ones(3), axis=2), np.exceptions.AxisError, "out of bounds"),
    (lambda: jnp.fft.fft(np.float64(1.0)), ValueError, "at least 1-d"),
    (lambda: jnp.fft.fft(np.ones(3), 2.5), TypeError, "integers"),
    (lambda: jnp.fft.fftfreq(0), ValueError, "Invalid number"),
    (lambda: lax.fft(np.ones(3), "dft", (3,)), ValueError, "unknown fft_type"),
    (lambda: lax.fft(np.ones(3) + 0j, "rfft", (3,)), TypeError, "RFFT requires a real"),
    (lambda: lax.fft(np.ones((2, 3)), "fft", (2,)), TypeError, r"needs trailing axes of sizes \(2,\)"),
    (lambda: lax.fft(np.ones(4) + 0j, "irfft", (4,)), TypeError, r"sizes \(3,\)"),
])
def test_bad_input_raises_numpys_errors(call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=match):
            call()


def test_errors_name_the_users_line():
    with pytest.raises(ValueError, match=r"test_fft.py:\d+"):
        jnp.fft.fft(np.ones(3), norm="bogus")
