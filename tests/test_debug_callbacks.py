"""functrans.debug.print, functrans.debug.callback and functrans.pure_callback: printed output
and its order eagerly and under jit, vmap, grad and control flow; JAX's documentation examples
(the "Introduction to debugging" and "External callbacks" tutorials, pure_callback's
docstring), which run as written apart from the import line; functrans.numpy.printoptions."""
from functools import partial

import numpy as np
import pytest
import scipy.special

import functrans as jax
import functrans.numpy as jnp
from functrans import core, lax
from functrans.backends import numba_cpu


def lines(capsys):
    return capsys.readouterr().out.splitlines()


# ---------------------------------------------------------------------------------------------
# debug.print in every context: the same lines, in program order

def sin_and_print(x):
    jax.debug.print("x={}", x)
    y = jnp.sin(x)
    jax.debug.print("y={y}", y=y)
    return y * 2


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_print_eager_and_jit(capsys, wrap):
    out = wrap(sin_and_print)(2.0)
    assert float(out) == pytest.approx(2 * np.sin(2.0))
    assert lines(capsys) == ["x=2.0", f"y={np.sin(2.0)}"]


def test_print_under_jit_runs_at_each_call_with_runtime_values(capsys):
    f = jax.jit(sin_and_print)
    f(1.0)
    f(3.0)
    assert lines(capsys) == ["x=1.0", f"y={np.sin(1.0)}", "x=3.0", f"y={np.sin(3.0)}"]


def test_print_is_interleaved_with_python_prints_in_order(capsys):
    f = jax.jit(sin_and_print)
    print("before")
    f(0.5)
    print("after")
    assert lines(capsys) == ["before", "x=0.5", f"y={np.sin(0.5)}", "after"]


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_print_under_vmap_once_per_element_in_order(capsys, wrap):
    xs = np.array([0.0, 1.0, 2.0])
    out = wrap(jax.vmap(sin_and_print))(xs)
    np.testing.assert_allclose(out, 2 * np.sin(xs))
    assert lines(capsys) == [f"x={x}" for x in xs] + [f"y={np.sin(x)}" for x in xs]


def test_print_under_vmap_of_jit_and_nested_vmap(capsys):
    jax.vmap(jax.jit(sin_and_print))(np.array([1.0, 2.0]))
    assert lines(capsys) == ["x=1.0", "x=2.0", f"y={np.sin(1.0)}", f"y={np.sin(2.0)}"]
    jax.vmap(jax.vmap(lambda x: jax.debug.print("{}", x)))(np.arange(4.0).reshape(2, 2))
    # JAX's order: the inner vmap unrolls first, each of its calls is unrolled by the outer one
    assert lines(capsys) == ["0.0", "2.0", "1.0", "3.0"]


def test_print_unbatched_argument_under_vmap(capsys):
    jax.vmap(lambda x, y: jax.debug.print("{} {}", x, y), in_axes=(0, None))(
        np.array([1, 2]), 7)
    assert lines(capsys) == ["1 7", "2 7"]


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_print_under_grad_shows_primals_once(capsys, wrap):
    g = wrap(jax.grad(sin_and_print))(2.0)
    assert float(g) == pytest.approx(2 * np.cos(2.0))
    assert lines(capsys) == ["x=2.0", f"y={np.sin(2.0)}"]


def test_print_under_jvp_and_grad_of_jit(capsys):
    p, t = jax.jvp(sin_and_print, (1.0,), (1.0,))
    assert float(t) == pytest.approx(2 * np.cos(1.0))
    assert lines(capsys) == ["x=1.0", f"y={np.sin(1.0)}"]
    jax.grad(jax.jit(sin_and_print))(1.0)
    assert lines(capsys) == ["x=1.0", f"y={np.sin(1.0)}"]


def test_print_under_second_order_grad(capsys):
    h = jax.grad(jax.grad(sin_and_print))(1.0)
    assert float(h) == pytest.approx(-2 * np.sin(1.0))
    assert lines(capsys)[:2] == ["x=1.0", f"y={np.sin(1.0)}"]


def scan_printing(xs):
    def body(c, x):
        jax.debug.print("c={} x={}", c, x)
        return c + x, c * x
    c, ys = lax.scan(body, 0.0, xs)
    return c + ys.sum()


def _scan_lines(xs):
    c, out = 0.0, []
    for x in xs:
        out.append(f"c={c} x={x}")
        c += x
    return out


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit, lambda f: jax.jit(jax.grad(f)),
                                  jax.grad], ids=["eager", "jit", "jit-grad", "grad"])
def test_print_in_scan_each_iteration(capsys, wrap):
    xs = np.array([1.0, 2.0, 3.0])
    wrap(scan_printing)(xs)
    assert lines(capsys) == _scan_lines(xs)


def test_print_in_scan_under_vmap(capsys):
    xs = np.array([[1.0, 2.0], [10.0, 20.0]])
    out = jax.vmap(scan_printing)(xs)
    np.testing.assert_allclose(out, [scan_printing(x) for x in xs])
    want = _scan_lines(xs[0]), _scan_lines(xs[1])
    got = lines(capsys)
    assert got[:4] == [want[0][0], want[1][0], want[0][1], want[1][1]]   # step by step


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_print_in_fori_while_and_cond(capsys, wrap):
    def f(x):
        x = lax.fori_loop(0, 2, lambda i, c: (jax.debug.print("fori {} {}", i, c), c + 1)[1], x)
        x = lax.while_loop(lambda c: c < 4, lambda c: (jax.debug.print("while {}", c), c + 1)[1], x)
        return lax.cond(x > 3, lambda v: (jax.debug.print("big {}", v), v)[1],
                        lambda v: (jax.debug.print("small {}", v), v)[1], x)
    assert float(wrap(f)(0.0)) == 4.0
    assert lines(capsys) == ["fori 0 0.0", "fori 1 1.0", "while 2.0", "while 3.0", "big 4.0"]


def test_print_in_while_under_jvp(capsys):
    def f(x):
        return lax.while_loop(lambda c: c < 3, lambda c: (jax.debug.print("{}", c), c * 2)[1], x)
    jax.jvp(f, (1.0,), (1.0,))
    assert lines(capsys) == ["1.0", "2.0"]


def test_print_is_never_dead_code(capsys):
    def f(x):
        jax.debug.print("unused {}", x * 3)
        lax.scan(lambda c, _: (jax.debug.print("loop {}", c), (c + 1, None))[1], x, None,
                 length=2)
        return 1.0
    assert float(jax.jit(f)(1.0)) == 1.0
    assert lines(capsys) == ["unused 3.0", "loop 1.0", "loop 2.0"]
    assert "debug_callback" in str(jax.make_jaxpr(f)(1.0))


def test_print_formats_like_str_format(capsys):
    x = jnp.arange(3)
    jax.jit(lambda x: jax.debug.print("{0} {a:.2f} {x[1]} {x.shape} {{}}", x, a=x[1] / 3, x=x))(x)
    jax.debug.print("no placeholders", x, 5)
    assert lines(capsys) == ["[0 1 2] 0.33 1 (3,) {}", "no placeholders [0 1 2] 5"]


@pytest.mark.parametrize("fmt, args, kwargs", [
    ("{} {}", (1.0,), {}), ("{x}", (), {"y": 1.0}), ("{0} {}", (1.0, 2.0), {}),
    ("{x[", (), {"x": 1.0})])
def test_print_format_mismatch_raises_str_format_error_at_trace_time(capsys, fmt, args, kwargs):
    with pytest.raises(Exception) as want:
        fmt.format(*args, **kwargs)
    for run in (lambda: jax.debug.print(fmt, *args, **kwargs),
                lambda: jax.jit(lambda *a: jax.debug.print(fmt, *a, **kwargs))(*args)):
        with pytest.raises(type(want.value)) as got:
            run()
        assert str(got.value) == str(want.value)
    assert capsys.readouterr().out == ""


def test_print_unused_arguments_raise():
    with pytest.raises(ValueError, match="Unused positional arguments"):
        jax.debug.print("{}", 1, 2)
    with pytest.raises(ValueError, match="f-string"):
        jax.debug.print("{a}", a=1, b=2)


def test_print_two_call_form_and_ordered(capsys):
    jax.debug.print(ordered=True)("a {}", 1)
    jax.jit(lambda x: jax.debug.print("b {}", x, ordered=True))(2)
    assert lines(capsys) == ["a 1", "b 2"]


def test_print_uses_the_print_options_of_trace_time(capsys):
    x = np.array([1.0 / 3, 2.0 / 3])
    with jnp.printoptions(precision=2):
        f = jax.jit(lambda v: jax.debug.print("{}", v))
        f(x)
    f(x)         # traced under precision=2: still formats with it
    jax.debug.print("{}", x)
    assert lines(capsys) == ["[0.33 0.67]", "[0.33 0.67]", str(x)]


# ---------------------------------------------------------------------------------------------
# debug.callback

def test_callback_receives_arrays_with_runtime_values():
    seen = []

    def record(x, *, tag):
        seen.append((tag, type(x), np.asarray(x).copy()))

    def f(x):
        jax.debug.callback(record, x * 2, tag="a")
        return x
    f(np.ones(2))
    jax.jit(f)(np.full(2, 3.0))
    assert [t for t, _, _ in seen] == ["a", "a"]
    assert all(tp is jax.Array for _, tp, _ in seen)
    np.testing.assert_array_equal(seen[0][2], [2.0, 2.0])
    np.testing.assert_array_equal(seen[1][2], [6.0, 6.0])


def test_callback_values_are_private_copies():
    kept = []
    x = np.ones(3)
    jax.debug.callback(kept.append, x)
    x[0] = 5.0
    assert float(kept[0][0]) == 1.0


def test_callback_pytree_arguments_and_static_leaves(capsys):
    def show(d, name, n):
        print(name, float(d["a"]), d["b"].shape, n)
    jax.jit(lambda x: jax.debug.callback(show, {"a": x, "b": jnp.zeros((2, 3))}, "tag", n=4))(1.5)
    assert lines(capsys) == ["tag 1.5 (2, 3) 4"]


def test_callback_under_vmap_grad_and_scan(capsys):
    def f(x):
        jax.debug.callback(lambda v: print("cb", v), x)
        return x ** 2
    jax.vmap(f)(np.array([1.0, 2.0]))
    jax.grad(f)(3.0)
    lax.scan(lambda c, x: (f(x), None), 0.0, np.array([4.0, 5.0]))
    assert lines(capsys) == ["cb 1.0", "cb 2.0", "cb 3.0", "cb 4.0", "cb 5.0"]


def test_callback_complex_operand(capsys):
    jax.jit(lambda z: jax.debug.print("{}", z))(np.complex128(1 + 2j))
    assert lines(capsys) == ["(1+2j)"]


def test_callbacks_have_every_rule():
    from functrans.interpreters import ad, batching
    from functrans.lax.callback import debug_callback_p, pure_callback_p
    for p in (debug_callback_p, pure_callback_p):
        assert p in core.impl_rules and p in core.abstract_eval_rules
        assert p in ad.jvp_rules and p in batching.batch_rules
        assert p in core.host_primitives
        assert p.name in numba_cpu.lowerable_primitives()
        assert p not in ad.transpose_rules      # neither is linear
    assert debug_callback_p in core.effectful_primitives
    assert pure_callback_p not in core.effectful_primitives


def test_jit_plan_runs_callbacks_as_host_steps():
    low = jax.jit(scan_printing).lower(np.ones(3))
    kinds = [k for k, _ in low.parts]
    assert "numpy" in kinds           # the scan holding the print runs on the host


# ---------------------------------------------------------------------------------------------
# pure_callback

def host_sin(x):
    return np.sin(x).astype(x.dtype)


def sin_cb(x, vmap_method="sequential"):
    return jax.pure_callback(host_sin, jax.ShapeDtypeStruct(x.shape, x.dtype), x,
                             vmap_method=vmap_method)


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_pure_callback_values(wrap):
    x = np.linspace(0, 1, 5)
    np.testing.assert_allclose(wrap(lambda v: sin_cb(v) * 2)(x), 2 * np.sin(x))
    y = wrap(lambda v: sin_cb(v).astype(np.float32) + 1)(x.astype(np.float32))
    assert y.dtype == np.float32


def test_pure_callback_pytree_results_and_kwargs():
    def host(x, *, scale):
        return {"double": x * scale, "n": np.int32(x.size)}
    shapes = {"double": jax.ShapeDtypeStruct((3,), np.float64),
              "n": jax.ShapeDtypeStruct((), np.int32)}
    for f in (lambda x: jax.pure_callback(host, shapes, x, scale=2.0),
              jax.jit(lambda x: jax.pure_callback(host, shapes, x, scale=2.0))):
        out = f(np.arange(3.0))
        np.testing.assert_array_equal(out["double"], [0.0, 2.0, 4.0])
        assert int(out["n"]) == 3 and out["n"].dtype == np.int32


@pytest.mark.parametrize("method", ["sequential", "sequential_unrolled", "expand_dims",
                                    "broadcast_all", "legacy_vectorized"])
def test_pure_callback_vmap_methods_agree_with_a_loop(method):
    xs = np.arange(6.0).reshape(3, 2)
    want = np.stack([np.sin(x) for x in xs])
    np.testing.assert_allclose(jax.vmap(partial(sin_cb, vmap_method=method))(xs), want)
    np.testing.assert_allclose(jax.jit(jax.vmap(partial(sin_cb, vmap_method=method)))(xs), want)
    np.testing.assert_allclose(jax.vmap(partial(sin_cb, vmap_method=method), in_axes=1,
                                        out_axes=1)(xs.T), want.T)


def test_pure_callback_shapes_seen_by_each_vmap_method(capsys):
    def host(x, y):
        print(np.shape(x), np.shape(y))
        return (x + y).astype(np.float64)

    def fun(x, y, method):
        return jax.pure_callback(host, jax.ShapeDtypeStruct((), np.float64), x, y,
                                 vmap_method=method)
    x = np.arange(3.0)
    for method in ("sequential", "expand_dims", "broadcast_all", "legacy_vectorized"):
        out = jax.vmap(partial(fun, method=method), in_axes=(0, None))(x, 1.0)
        np.testing.assert_array_equal(out, x + 1)
    assert lines(capsys) == ["() ()"] * 3 + ["(3,) (1,)", "(3,) (3,)", "(3,) ()"]


def test_pure_callback_sequential_calls_in_order_and_nests(capsys):
    def host(x):
        print(float(x))
        return x
    f = lambda x: jax.pure_callback(host, jax.ShapeDtypeStruct((), np.float64), x,  # noqa: E731
                                    vmap_method="sequential")
    out = jax.vmap(jax.vmap(f))(np.arange(4.0).reshape(2, 2))
    np.testing.assert_array_equal(out, np.arange(4.0).reshape(2, 2))
    assert lines(capsys) == ["0.0", "1.0", "2.0", "3.0"]


def test_pure_callback_vmap_without_method_raises():
    with pytest.raises(NotImplementedError, match="vmap_method"):
        jax.vmap(partial(sin_cb, vmap_method=None))(np.ones((2, 2)))
    assert float(sin_cb(np.float64(0.0), vmap_method=None)) == 0.0   # fine unbatched


def test_pure_callback_bad_vmap_method():
    with pytest.raises(ValueError, match="vmap_method"):
        sin_cb(np.ones(2), vmap_method="parallel")


def test_pure_callback_is_not_differentiable():
    for d in (jax.grad, lambda f: partial(jax.jvp, f, (1.0,), (1.0,))):
        with pytest.raises(ValueError, match="Pure callbacks do not support JVP.*custom_jvp"):
            d(lambda x: sin_cb(x) * 2)(1.0) if d is jax.grad else d(lambda x: sin_cb(x))()


@pytest.mark.parametrize("wrap", [lambda f: f, jax.jit], ids=["eager", "jit"])
@pytest.mark.parametrize("ret, match", [
    (lambda x: np.ones(4), r"shape for return value #0.*expected \(3,\), got \(4,\)"),
    (lambda x: np.ones(3, np.float32), "dtype for return value #0.*expected float64, got float32"),
    (lambda x: (np.ones(3), np.ones(3)), "returned 2 arrays.*declares 1")])
def test_pure_callback_wrong_results_raise(wrap, ret, match):
    f = wrap(lambda x: jax.pure_callback(ret, jax.ShapeDtypeStruct((3,), np.float64), x))
    with pytest.raises(RuntimeError, match=match):
        f(np.ones(3))


def test_pure_callback_python_scalar_result_takes_declared_dtype():
    out = jax.jit(lambda x: jax.pure_callback(lambda v: 2.5, jax.ShapeDtypeStruct((), np.float32),
                                              x))(1.0)
    assert out.dtype == np.float32 and float(out) == 2.5


def test_pure_callback_unused_result_is_dead_code_under_jit():
    calls = []

    def host(x):
        calls.append(1)
        return x

    def f(x):
        jax.pure_callback(host, jax.ShapeDtypeStruct((), np.float64), x)
        return x + 1
    assert float(jax.jit(f)(1.0)) == 2.0
    assert calls == [] and "pure_callback" not in str(jax.make_jaxpr(f)(1.0))


def test_pure_callback_in_scan_and_cond_under_jit():
    def f(xs):
        ys = lax.map(sin_cb, xs)
        return lax.cond(ys.sum() > 0, lambda y: sin_cb(y), lambda y: -y, ys)
    xs = np.linspace(0.1, 1, 4)
    np.testing.assert_allclose(jax.jit(f)(xs), np.sin(np.sin(xs)))


# ---------------------------------------------------------------------------------------------
# JAX's documentation examples, as written (only `import jax` / `jax.numpy as jnp` differ)

def test_doc_debugging_print_under_jit(capsys):
    @jax.jit
    def f(x):
        jax.debug.print("🤯 {x} 🤯", x=x)
        y = jnp.sin(x)
        jax.debug.print("🤯 {y} 🤯", y=y)
        return y

    f(2.)
    assert lines(capsys) == ["🤯 2.0 🤯", f"🤯 {np.sin(2.0)} 🤯"]


def test_doc_debugging_print_under_vmap(capsys):
    def f(x):
        jax.debug.print("jax.debug.print(x) -> {}", x)
        y = jnp.sin(x)
        jax.debug.print("jax.debug.print(y) -> {}", y)
        return y

    xs = jnp.arange(3.)

    jax.vmap(f)(xs)
    assert lines(capsys) == ([f"jax.debug.print(x) -> {v}" for v in (0.0, 1.0, 2.0)]
                             + [f"jax.debug.print(y) -> {np.sin(v)}" for v in (0.0, 1.0, 2.0)])


def test_doc_debugging_print_under_grad(capsys):
    def f(x):
        jax.debug.print("x: {}", x)
        return x ** 2

    jax.grad(f)(1.)
    assert lines(capsys) == ["x: 1.0"]


def test_doc_debug_callback_log_value(capsys):
    def log_value(x):
        # This could be an actual logging call; we'll use
        # print() for demonstration
        print("log:", x)

    @jax.jit
    def f(x):
        jax.debug.callback(log_value, x)
        return x

    f(1.0)
    x = jnp.arange(5.0)
    jax.vmap(f)(x)
    jax.grad(f)(1.0)
    assert lines(capsys) == ["log: 1.0"] + [f"log: {v}" for v in (0.0, 1.0, 2.0, 3.0, 4.0)] \
        + ["log: 1.0"]


def test_doc_external_callbacks_pure_callback_sin():
    def f_host(x):
        # call a numpy (not jax.numpy) operation:
        return np.sin(x).astype(x.dtype)

    def f(x):
        result_shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return jax.pure_callback(f_host, result_shape, x, vmap_method='sequential')

    x = jnp.arange(5.0)
    want = np.sin(np.arange(5.0))
    np.testing.assert_allclose(f(x), want)
    np.testing.assert_allclose(jax.jit(f)(x), want)
    np.testing.assert_allclose(jax.vmap(f)(x), want)
    np.testing.assert_allclose(jax.lax.map(f, x), want)
    with pytest.raises(ValueError, match="Pure callbacks do not support JVP"):
        jax.grad(f)(x[0])


def test_doc_external_callbacks_bessel_custom_jvp():
    def jv(v, z):
        v, z = jnp.asarray(v), jnp.asarray(z)

        # Require the order v to be integer type: simplifies the JVP rule below.
        assert jnp.issubdtype(v.dtype, jnp.integer)

        # Promote the input to inexact (float/complex).
        # Note that jnp.result_type() accounts for the enable_x64 flag.
        z = z.astype(jnp.result_type(float, z.dtype))

        # Wrap scipy function to return the expected dtype.
        _scipy_jv = lambda v, z: scipy.special.jv(v, z).astype(z.dtype)  # noqa: E731

        # Define the expected shape & dtype of output.
        result_shape_dtype = jax.ShapeDtypeStruct(
            shape=jnp.broadcast_shapes(v.shape, z.shape),
            dtype=z.dtype)

        # Use vmap_method="broadcast_all" because scipy.special.jv handles broadcasted inputs.
        return jax.pure_callback(_scipy_jv, result_shape_dtype, v, z, vmap_method="broadcast_all")

    jv = jax.custom_jvp(jv)

    @jv.defjvp
    def _jv_jvp(primals, tangents):
        v, z = primals
        _, z_dot = tangents  # Note: v_dot is always 0 because v is integer.
        jv_minus_1, jv_plus_1 = jv(v - 1, z), jv(v + 1, z)
        djv_dz = jnp.where(v == 0, -jv_plus_1, 0.5 * (jv_minus_1 - jv_plus_1))
        return jv(v, z), z_dot * djv_dz

    j1 = partial(jv, 1)
    z = jnp.arange(5.0)
    np.testing.assert_allclose(j1(z), scipy.special.jv(1, np.arange(5.0)))
    np.testing.assert_allclose(jax.jit(j1)(z), scipy.special.jv(1, np.arange(5.0)))
    np.testing.assert_allclose(jax.vmap(j1)(z), scipy.special.jv(1, np.arange(5.0)))
    want = 0.5 * (scipy.special.jv(0, 2.0) - scipy.special.jv(2, 2.0))
    assert float(jax.grad(j1)(2.0)) == pytest.approx(want)
    assert float(jax.jit(jax.grad(j1))(2.0)) == pytest.approx(want)
    np.testing.assert_allclose(jax.vmap(jax.grad(j1))(z),
                               [0.5 * (scipy.special.jv(0, t) - scipy.special.jv(2, t))
                                for t in np.arange(5.0)])
    h = jax.hessian(j1)(2.0)    # through the jvp rule's own callbacks
    j1pp = 0.25 * (scipy.special.jv(-1, 2.0) - 2 * scipy.special.jv(1, 2.0)
                   + scipy.special.jv(3, 2.0))
    assert float(h) == pytest.approx(j1pp)


def test_doc_pure_callback_docstring_vmap_methods(capsys):
    def callback(x, y):
        print(jnp.shape(x), jnp.shape(y))
        return x + y

    def fun(x, y, *, vmap_method):
        shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y))
        dtype = jnp.result_type(x, y)
        out_type = jax.ShapeDtypeStruct(shape, dtype)
        return jax.pure_callback(callback, out_type, x, y,
                                 vmap_method=vmap_method)

    x = jnp.arange(4)
    y = 1.0
    a = jax.vmap(partial(fun, vmap_method="expand_dims"), in_axes=(0, None))(x, y)
    b = jax.vmap(partial(fun, vmap_method="broadcast_all"), in_axes=(0, None))(x, y)
    np.testing.assert_array_equal(a, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(b, [1.0, 2.0, 3.0, 4.0])
    assert lines(capsys) == ["(4,) (1,)", "(4,) (4,)"]


# ---------------------------------------------------------------------------------------------
# functrans.numpy.printoptions

def test_printoptions_affect_array_repr_and_str():
    x = jnp.array([1.0 / 3, 2.0 / 3])
    with jnp.printoptions(precision=3):
        assert str(x) == "[0.333 0.667]"
        assert repr(x) == "Array([0.333, 0.667], dtype=float64)"
        assert jnp.get_printoptions()["precision"] == 3
    assert str(x) == str(np.array([1.0 / 3, 2.0 / 3]))
    old = jnp.get_printoptions()
    try:
        jnp.set_printoptions(precision=1)
        assert str(x) == "[0.3 0.7]"
    finally:
        jnp.set_printoptions(**old)
    assert jnp.get_printoptions() == old
