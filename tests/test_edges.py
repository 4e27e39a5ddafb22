"""Edge cases at the boundary (issue 14 items 4, 5, 8): any NumPy layout and numeric dtype in,
NumPy's answer out, under eager, jit, grad and vmap; Python ints outside int64 and non-numeric
arrays refused with the argument named; complex operands never give a wrong number (each
primitive either handles them or raises TypeError naming itself); and error messages that say
what JAX says (grad of non-scalar outputs, argnums, static arguments)."""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

import functrans as jax
import functrans.numpy as jnp
from functrans import core, lax

# ---------------------------------------------------------------------------------------------
# Layouts x dtypes x transforms

DTYPES = [np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                                np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                                np.float64)]
LAYOUTS = ("C", "fortran", "reversed", "negative_step", "broadcast", "strided_view", "readonly",
           "empty")


def _layout(base, layout):
    """base (2-d, C order) presented in ``layout``; equal values, for 'empty' a 0-size slice."""
    if layout == "fortran":
        return np.asfortranarray(base)
    if layout == "reversed":                        # negative strides on both axes
        return np.ascontiguousarray(base[::-1, ::-1])[::-1, ::-1]
    if layout == "negative_step":
        return np.ascontiguousarray(base[:, ::-2])[:, ::-1]
    if layout == "broadcast":                       # a zero stride
        return np.broadcast_to(base[:1], base.shape)
    if layout == "strided_view":                    # a non-contiguous view of a bigger array
        big = np.zeros((base.shape[0] * 2, base.shape[1] + 3), base.dtype)
        big[::2, 1:-2] = base
        return big[::2, 1:-2]
    if layout == "readonly":
        v = base.copy()
        v.flags.writeable = False
        return v
    if layout == "empty":
        return base[:0]
    return base


@st.composite
def laid_out(draw):
    """(x, dtype): a 2-d ndarray of any numeric dtype, either byte order, in any layout."""
    dt = draw(st.sampled_from(DTYPES))
    if dt.itemsize > 1 and draw(st.booleans()):
        dt = dt.newbyteorder(">" if dt.byteorder in "=<" else "<")
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 5)))
    vals = np.arange(shape[0] * shape[1]).reshape(shape) % 5 - (2 if dt.kind in "if" else 0)
    base = vals.astype(dt)
    x = _layout(base, draw(st.sampled_from(LAYOUTS)))
    return x, dt


def _f(x):
    return (x * 2 - x).T, jnp.sum(x, axis=-1)


def _np_f(x):
    return (x * 2 - x).T, np.sum(x, axis=-1)


def _assert_same(got, want, dt):
    """Values, shapes and dtype agree with NumPy's (whose results are in native order)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype.newbyteorder("=") and got.dtype.isnative
    assert got.shape == want.shape
    tol = 1e-2 if dt == np.float16 else 1e-6
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol)


@given(laid_out(), st.sampled_from(["eager", "jit", "vmap", "grad"]))
def test_any_layout_and_dtype_gives_numpys_answer(xd, mode):
    x, dt = xd
    before = x.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # integer overflow wraps, as NumPy
        if mode == "grad":
            if dt.kind != "f":
                return
            g = jax.grad(lambda v: jnp.sum(v * v))(x)
            _assert_same(g, 2 * x, dt)
        elif mode == "vmap":
            cols = jax.vmap(_f, in_axes=1, out_axes=(0, 0))(x)
            _assert_same(cols[0], (x * 2 - x).T, dt)
            _assert_same(cols[1], np.sum(x, axis=0), dt)
        else:
            f = jax.jit(_f) if mode == "jit" else _f
            for got, want in zip(f(x), _np_f(x)):
                _assert_same(got, want, dt)
            if mode == "jit":   # and again: the cached signature, through the fast path
                for got, want in zip(f(jnp.asarray(x)), _np_f(x)):
                    _assert_same(got, want, dt)
    np.testing.assert_array_equal(x, before)          # inputs untouched


@pytest.mark.parametrize("dt", [">f8", ">i4", ">u2"])
def test_big_endian_arrays_become_native_arrays(dt):
    x = np.arange(6).reshape(2, 3).astype(dt)
    a = jnp.asarray(x)
    assert a.dtype == np.dtype(dt).newbyteorder("=") and np.asarray(a).dtype.isnative
    np.testing.assert_array_equal(a, x)
    # a big-endian constant closed over by jit, and one passed eagerly to a lax primitive
    c = np.ones(3, ">f8")
    np.testing.assert_array_equal(jax.jit(lambda v: v + c)(np.zeros(3)), np.ones(3))
    np.testing.assert_array_equal(lax.add(c, c), 2 * np.ones(3))
    assert lax.add(c, c).dtype == np.float64
    # repeated calls: the fast path must not hand the big-endian buffer to the native kernel
    g = jax.jit(lambda v: v * 2)
    for arg in (x, x, np.asarray(x, x.dtype.newbyteorder("=")), x):
        np.testing.assert_array_equal(g(arg), 2 * x)


def test_zero_size_arrays_under_every_transform():
    x = np.zeros((0, 3))
    assert jax.jit(lambda v: v * 2)(x).shape == (0, 3)
    assert jax.grad(lambda v: jnp.sum(v * v))(x).shape == (0, 3)
    assert jax.vmap(lambda r: r.sum())(x).shape == (0,)
    assert float(jax.jit(jnp.sum)(x)) == 0.0


# ---------------------------------------------------------------------------------------------
# Python ints outside int64, object and string arrays

@pytest.mark.parametrize("n", [2 ** 63, 2 ** 70, -2 ** 63 - 1])
def test_python_ints_outside_int64_raise_overflow_error(n):
    for f in (jnp.asarray, jnp.array, lambda v: jnp.array([1, v]), lambda v: jnp.ones(2) + v,
              lambda v: jnp.ones(2, np.float32) * v, lambda v: jnp.add(1, v)):
        with pytest.raises(OverflowError, match=f"Python int {n} too large to convert to int64"):
            f(n)


def test_python_int_overflow_names_the_argument_under_transforms():
    with pytest.raises(OverflowError, match=r"args\[1\].*too large"):
        jax.jit(lambda a, b: a + b)(1.0, 2 ** 70)
    with pytest.raises(OverflowError, match=r"kwargs\['b'\].*too large"):
        jax.vmap(lambda a, b: a + b)(np.ones(2), b=2 ** 64)
    with pytest.raises(OverflowError, match="too large"):
        jax.jit(lambda a: a + 2 ** 70)(1.0)


def test_int64_bounds_and_explicit_dtypes_are_accepted():
    assert int(jnp.asarray(2 ** 63 - 1)) == 2 ** 63 - 1
    assert int(jnp.asarray(-2 ** 63)) == -2 ** 63
    assert jnp.asarray(2 ** 63 - 1).dtype == np.int64
    assert int(jnp.asarray(2 ** 63, dtype=np.uint64)) == 2 ** 63
    assert int(jax.jit(lambda v: v)(2 ** 62)) == 2 ** 62


@pytest.mark.parametrize("bad", [np.array([1.0, None]), np.array(["a", "b"]),
                                 np.array([b"x"]), np.array(["2020-01-01"], "datetime64[D]")],
                         ids=["object", "str", "bytes", "datetime"])
def test_non_numeric_arrays_raise_type_error_naming_the_argument(bad):
    dt = re.escape(str(bad.dtype))
    with pytest.raises(TypeError, match=rf"jit arguments: args\[1\] has dtype {dt}"):
        jax.jit(lambda a, b: a)(1.0, bad)
    with pytest.raises(TypeError, match=rf"grad arguments: args\[0\]\['w'\] has dtype {dt}"):
        jax.grad(lambda p: 1.0)({"w": bad})
    with pytest.raises(TypeError, match=rf"vmap arguments: kwargs\['k'\] has dtype {dt}"):
        jax.vmap(lambda a, k: a)(np.ones(2), k=bad)
    with pytest.raises(TypeError, match=rf"jvp primals: .* has dtype {dt}"):
        jax.jvp(lambda a: a, (bad,), (bad,))
    with pytest.raises(TypeError, match=rf"has dtype {dt}"):
        jnp.asarray(bad)
    with pytest.raises(TypeError, match=rf"add: an operand has dtype {dt}"):
        lax.add(bad, bad)


# ---------------------------------------------------------------------------------------------
# Complex operands: a right answer or a TypeError naming the primitive

Z = np.array([[1 + 2j, 3 - 1j, -0.5j], [2.0 + 0j, -1 + 1j, 0.25 + 4j]])
W = np.array([[0.5 - 1j, 2 + 2j, 1.0 + 0j], [-3j, 1 - 1j, 2 + 0.5j]])

# functions built only from primitives in core.complex_primitives, with NumPy's version
SUPPORTED = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub_neg": (lambda a, b: -(a - b), lambda a, b: -(a - b)),
    "mul_scalar": (lambda a, b: a * b * 2j, lambda a, b: a * b * 2j),
    "div_mean": (lambda a, b: jnp.mean(a / b, axis=0), lambda a, b: np.mean(a / b, axis=0)),
    "matmul": (lambda a, b: a @ b.T, lambda a, b: a @ b.T),
    "sum": (lambda a, b: jnp.sum(a), lambda a, b: np.sum(a)),
    "shape_ops": (lambda a, b: jnp.concatenate([a.T[::-1], b.reshape(3, 2)[1:]]),
                  lambda a, b: np.concatenate([a.T[::-1], b.reshape(3, 2)[1:]])),
    "where_eq": (lambda a, b: jnp.where(a == b, a, b * (a != a)), lambda a, b: np.where(a == b, a, b * (a != a))),
    "take_pad": (lambda a, b: jnp.pad(a[np.array([1, 0])], 1), lambda a, b: np.pad(a[[1, 0]], 1)),
    "from_real": (lambda a, b: jnp.ones(3) * 1j + 2, lambda a, b: np.ones(3) * 1j + 2),
}


def _modes(f):
    return {"eager": lambda a, b: f(jnp.asarray(a), jnp.asarray(b)), "jit": jax.jit(f),
            "vmap": lambda a, b: jax.vmap(f)(a[None], b[None])[0]}


@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_complex_operands_of_supported_primitives_give_numpys_answer(name):
    f, ref = SUPPORTED[name]
    want = ref(Z, W)
    for mode, g in _modes(f).items():
        got = g(Z, W)
        assert got.dtype == want.dtype and got.shape == np.shape(want), mode
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=mode)


SUPPORTED.update({
    "sin_exp_sqrt": (lambda a, b: jnp.sin(a) + jnp.exp(b) * jnp.sqrt(a),
                     lambda a, b: np.sin(a) + np.exp(b) * np.sqrt(a)),
    "pow_sign": (lambda a, b: a ** 3.5 + jnp.sign(b), lambda a, b: a ** 3.5 + np.sign(b)),
    "cumsum_prod": (lambda a, b: jnp.cumsum(a) * jnp.prod(b), lambda a, b: np.cumsum(a) * np.prod(b)),
    "astype": (lambda a, b: a.astype(np.complex64).astype(np.complex128),
               lambda a, b: a.astype(np.complex64).astype(np.complex128)),
    "abs_parts": (lambda a, b: jnp.abs(a) + a.real * b.imag + jnp.isfinite(b),
                  lambda a, b: np.abs(a) + a.real * b.imag + np.isfinite(b)),
})
# primitives defined for real numbers only: a complex operand is a TypeError naming them
UNSUPPORTED = {
    "reduce_max": lambda a: jnp.max(a), "sort": lambda a: jnp.sort(a),
    "floor": lambda a: lax.floor(a), "max": lambda a: lax.max(a, a), "lt": lambda a: a < a,
    "atan2": lambda a: lax.atan2(a, a), "erf": lambda a: lax.erf(a), "cbrt": lambda a: lax.cbrt(a),
    "is_finite": lambda a: lax.is_finite(a), "rem": lambda a: lax.rem(a, a),
}


@pytest.mark.parametrize("prim", sorted(UNSUPPORTED))
def test_complex_operands_of_other_primitives_raise_type_error_naming_them(prim):
    f = UNSUPPORTED[prim]
    for mode, g in _modes(lambda a, b: f(a)).items():
        with pytest.raises(TypeError, match=rf"complex operands are not supported by '{prim}'.*"
                                            rf"test_edges\.py"):
            g(Z, W)


@pytest.mark.parametrize("fn", ["floor", "ceil", "arctan2", "cbrt"])
def test_jnp_functions_undefined_on_complex_numbers_raise(fn):
    args = (Z, W) if fn == "arctan2" else (Z,)
    for mode, g in _modes(lambda a, b: getattr(jnp, fn)(*(a, b)[:len(args)])).items():
        with pytest.raises(TypeError):
            g(Z, W)


def test_conj_real_imag_are_right_eagerly_and_traced():
    z = jnp.asarray(Z)
    for part, ref in [(jnp.conj, np.conj(Z)), (lambda v: v.conj(), np.conj(Z)),
                      (jnp.conjugate, np.conj(Z)), (lambda v: v.real, Z.real),
                      (lambda v: v.imag, Z.imag)]:
        np.testing.assert_array_equal(part(z), ref)
        np.testing.assert_array_equal(jax.jit(part)(z), ref)
    np.testing.assert_array_equal(jnp.conj(np.arange(3.0)), np.arange(3.0))


def test_differentiating_complex_values_follows_jax():
    z = jnp.asarray(Z)
    t, = jax.jvp(lambda v: v * v, (z,), (z,))[1:]
    np.testing.assert_allclose(t, 2 * Z * Z)
    np.testing.assert_allclose(jax.vjp(lambda v: v * v, z)[1](np.ones_like(Z))[0], 2 * Z)
    np.testing.assert_allclose(jax.grad(lambda v: jnp.sum(jnp.abs(v) ** 2))(z), 2 * np.conj(Z))
    np.testing.assert_allclose(jax.jacrev(lambda v: jnp.abs(v))(z[0, 0]), np.conj(Z[0, 0]) / abs(Z[0, 0]))
    with pytest.raises(TypeError, match="jacfwd requires real-valued inputs.*holomorphic=True"):
        jax.jacfwd(lambda v: v * v)(z)
    with pytest.raises(TypeError, match="grad requires real-valued outputs.*but got complex128.*"
                                        "holomorphic=True"):
        jax.grad(lambda v: jnp.sum(v * v))(z)
    # a complex value made inside from a real input keeps its tangent: f(v) = -v sin v
    def f(v):
        return jnp.real(v * 1j * jnp.exp(1j * v))
    for derivative in (lambda v: jax.jvp(f, (v,), (1.0,))[1], jax.grad(f), jax.jacfwd(f),
                       jax.jit(jax.jacrev(f))):
        np.testing.assert_allclose(derivative(1.0), -np.sin(1.0) - np.cos(1.0), rtol=1e-12)
    # integer inputs still get float0 tangents
    out, tan = jax.jvp(lambda n: n * 2, (np.arange(3),), (np.zeros(3, core.float0),))
    assert tan.dtype == core.float0


def test_complex_values_in_control_flow_and_constants():
    z = jnp.asarray(Z[0])
    carry, ys = lax.scan(lambda c, v: (c + v, c * v), z[0], z)
    want_c, want_ys = Z[0, 0], []
    for v in Z[0]:
        want_ys.append(want_c * v)
        want_c = want_c + v
    np.testing.assert_allclose(carry, want_c)
    np.testing.assert_allclose(ys, want_ys)
    np.testing.assert_allclose(jax.jit(lambda p, v: lax.cond(p, lambda u: u * 2, lambda u: -u, v))(
        True, z), Z[0] * 2)
    c = np.array([1j, 2j])       # a complex constant in a real computation is fine
    np.testing.assert_allclose(jax.jit(lambda v: v * c)(np.ones(2)), c)


# ---------------------------------------------------------------------------------------------
# Messages: grad's scalar output, argnums, static arguments

@pytest.mark.parametrize("out, shown", [
    (lambda x: (x, x), r"\(f64\[\], f64\[\]\)"),
    (lambda x: [x * 2], r"\[f64\[\]\]"),
    (lambda x: {"loss": x, "n": 3, "s": "a"}, r"\{'loss': f64\[\], 'n': i64\[\], 's': str\}"),
])
def test_grad_of_pytree_output_names_its_structure(out, shown):
    for transform in (jax.grad, jax.value_and_grad):
        with pytest.raises(TypeError, match=r"Gradient only defined for scalar-output functions\. "
                                            rf"Output was {shown}.*test_edges\.py.*jacrev.*vjp"
                                            r".*has_aux"):
            transform(out)(1.0)


def test_grad_of_non_scalar_output_names_its_shape():
    with pytest.raises(TypeError, match=r"Output had shape: \(2, 3\) \(f32\[2,3\]\).*has_aux"):
        jax.grad(lambda x: x * jnp.ones((2, 3), np.float32))(np.float32(1))
    with pytest.raises(TypeError, match=r"Output had shape: \(3,\)"):
        jax.grad(lambda x: (x * 2, "aux"), has_aux=True)(np.ones(3))
    with pytest.raises(TypeError, match=r"real-valued outputs.*int64.*vjp"):
        jax.grad(lambda x: jnp.asarray(3))(1.0)


@pytest.mark.parametrize("transform", [jax.grad, jax.value_and_grad, jax.jacfwd, jax.jacrev,
                                       jax.hessian])
def test_argnums_out_of_range(transform):
    f = lambda x, y: x * y  # noqa: E731
    with pytest.raises(TypeError, match=r"argnums=5 requires at least 6 positional arguments.*"
                                        r"got only 2"):
        transform(f, argnums=5)(1.0, 2.0)
    with pytest.raises(TypeError, match=r"argnums=\(0, 2\) requires at least 3"):
        transform(f, argnums=(0, 2))(1.0, 2.0)
    with pytest.raises(ValueError, match=r"argnums -3 out of range"):
        transform(f, argnums=-3)(1.0, 2.0)
    with pytest.raises(TypeError, match=r"argnums must be an int or a non-empty tuple"):
        transform(f, argnums=1.0)(1.0, 2.0)
    with pytest.raises(TypeError, match=r"argnums must be an int or a non-empty tuple"):
        transform(f, argnums=())(1.0, 2.0)


def _two(x, y, *, scale=1.0):
    return x * scale


@pytest.mark.parametrize("kw, call, label", [
    (dict(static_argnums=1), lambda f: f(1.0, [1]), r"'y' \(position 1\)"),
    (dict(static_argnames="y"), lambda f: f(1.0, y=[1]), r"'y' \(position 1\)"),
    (dict(static_argnames="y"), lambda f: f(1.0, [1]), r"'y' \(position 1\)"),
    (dict(static_argnums=1), lambda f: f(1.0, y={}), r"'y' \(position 1\)"),
    (dict(static_argnames="scale"), lambda f: f(1.0, 2.0, scale=[2]), r"'scale'"),
])
def test_unhashable_static_argument_is_named(kw, call, label):
    with pytest.raises(ValueError, match=rf"Non-hashable static arguments.*{label} of _two.*"
                                         r"test_edges\.py"):
        call(jax.jit(_two, **kw))


def test_static_arguments_the_function_does_not_take_raise_at_jit():
    with pytest.raises(ValueError, match=r"static_argnames \['z'\] are not parameters of _two"):
        jax.jit(_two, static_argnames="z")
    with pytest.raises(ValueError, match=r"static_argnums contains 5, but _two accepts only 2"):
        jax.jit(_two, static_argnums=5)
    # functions taking *args or **kwargs may take them
    jax.jit(lambda *a: a[0], static_argnums=3)
    jax.jit(lambda x, **k: x, static_argnames="z")
    # a static argument given by position or by name is the same static argument
    f = jax.jit(_two, static_argnums=1)
    assert float(f(2.0, 3)) == float(f(2.0, y=3)) == 2.0
