"""custom_gradient, linear_transpose, holomorphic=, and how often custom_jvp/custom_vjp run the
user's Python under each transform (JAX's counts)."""
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans.test_util import check_grads

X = np.array([0.3, -0.7, 1.1])


# ---------------------------------------------------------------------------------------------
# custom_gradient

@ft.custom_gradient
def square(x):                       # JAX's documentation example
    return x ** 2, lambda g: (g * x,)


def test_custom_gradient_documentation_example():
    assert float(square(3.0)) == 9.0
    assert float(ft.grad(square)(3.0)) == 3.0     # the rule's g * x, not the true 2x


@ft.custom_gradient
def scaled_sin(x, y):
    # the true derivative of sin(x) * y, written by hand: check_grads compares it with finite
    # differences, and it is only right if the closed-over x and y are differentiated through
    return jnp.sin(x) * y, lambda g: (g * jnp.cos(x) * y, g * jnp.sin(x))


@pytest.mark.parametrize("transform", ["eager", "jit", "vmap"])
def test_custom_gradient_is_used_under_transforms(transform):
    f = lambda x: jnp.sum(square(x))  # noqa: E731
    if transform == "eager":
        got = ft.grad(f)(X)
    elif transform == "jit":
        got = ft.jit(ft.grad(f))(X)
    else:
        got = ft.vmap(ft.grad(lambda x: square(x)))(X)
    np.testing.assert_allclose(got, X)


def test_custom_gradient_true_rule_matches_finite_differences_to_second_order():
    check_grads(scaled_sin, (X, np.array([1.5, -0.4, 0.9])), order=2, modes=("rev",))
    np.testing.assert_allclose(ft.grad(lambda x: jnp.sum(scaled_sin(x, 2.0)))(X), 2 * np.cos(X))


def test_custom_gradient_second_derivative_differentiates_the_rule():
    # d/dx of the rule's cotangent g * x is 1 (JAX gives the same)
    assert float(ft.grad(ft.grad(square))(3.0)) == 1.0


def test_custom_gradient_pytree_output_and_single_cotangent():
    @ft.custom_gradient
    def both(x):
        return {"a": x * 2, "b": x * 3}, lambda g: g["a"] * 10 + g["b"]   # not a tuple

    np.testing.assert_allclose(ft.grad(lambda x: both(x)["a"] + both(x)["b"])(1.0), 11.0)


def test_custom_gradient_bad_return_raises():
    @ft.custom_gradient
    def bad(x):
        return x
    with pytest.raises(TypeError, match="pair"):
        ft.grad(bad)(1.0)


# ---------------------------------------------------------------------------------------------
# linear_transpose

def test_linear_transpose_documentation_example():
    f = lambda x, y: 0.5 * x - 0.5 * y   # noqa: E731
    f_transpose = ft.linear_transpose(f, 1.0, 1.0)
    xt, yt = f_transpose(1.0)
    assert (float(xt), float(yt)) == (0.5, -0.5)


def test_linear_transpose_of_a_matrix_product_is_the_transposed_product():
    a = np.arange(6.0).reshape(2, 3)
    t = ft.linear_transpose(lambda x: a @ x, ft.ShapeDtypeStruct((3,), np.float64))
    out = t(np.array([1.0, -2.0]))
    assert isinstance(out, tuple) and len(out) == 1
    np.testing.assert_allclose(out[0], a.T @ np.array([1.0, -2.0]))
    np.testing.assert_allclose(ft.jit(t)(np.array([1.0, -2.0]))[0], out[0])


def test_linear_transpose_is_vjp_for_a_linear_pytree_function():
    def f(p):
        return {"s": jnp.sum(p["w"]) * 2.0, "v": p["w"][::-1] - p["b"]}
    p = {"w": X, "b": np.ones(3)}
    ct = {"s": np.array(1.5), "v": np.array([1.0, 2.0, 3.0])}
    got = ft.linear_transpose(f, p)(ct)[0]
    want = ft.vjp(f, p)[1](ct)[0]
    for k in p:
        np.testing.assert_allclose(got[k], want[k])


def test_linear_transpose_integer_functions():
    (out,) = ft.linear_transpose(lambda x: 2 * x, 1)(3)
    assert int(out) == 6 and np.asarray(out).dtype.kind == "i"


@pytest.mark.parametrize("fun, primal, ct, err, match", [
    (lambda x: 2.0 * x, 1, 1, TypeError, "linear_transpose only supports"),
    (lambda x: [x, x], 1.0, 1.0, TypeError, "cotangent tree does not match"),
    (lambda x: jnp.stack([x, x]), 1.0, 1.0, TypeError, "cotangent type does not match"),
    (lambda x: x, 1.0, 1j, TypeError, "cotangent type does not match"),
    (lambda x: jnp.sin(x), 1.0, 1.0, NotImplementedError, "not linear.*'sin'"),
    (lambda x: x * x, 1.0, 1.0, TypeError, "not linear.*'mul'"),
])
def test_linear_transpose_errors(fun, primal, ct, err, match):
    with pytest.raises(err, match=match):
        ft.linear_transpose(fun, primal)(ct)


# ---------------------------------------------------------------------------------------------
# holomorphic=

REAL_ERRORS = [
    (lambda: ft.grad(jnp.sin, holomorphic=True)(1.0), "grad"),
    (lambda: ft.value_and_grad(jnp.sin, holomorphic=True)(1.0), "grad"),
    (lambda: ft.jacfwd(jnp.sin, holomorphic=True)(X), "jacfwd"),
    (lambda: ft.jacrev(jnp.sin, holomorphic=True)(X), "jacrev"),
    (lambda: ft.hessian(jnp.sin, holomorphic=True)(1.0), "jacfwd"),
]


@pytest.mark.parametrize("call, name", REAL_ERRORS)
def test_holomorphic_requires_complex_inputs(call, name):
    with pytest.raises(TypeError, match=f"{name} with holomorphic=True requires inputs with "
                                        "complex dtype, but got float64"):
        call()


@pytest.mark.parametrize("transform", [ft.grad, ft.jacfwd, ft.jacrev,
                                       lambda f, **kw: lambda z: ft.value_and_grad(f, **kw)(z)[1]])
def test_holomorphic_derivative_of_complex_inputs_is_df_dz(transform):
    z = np.complex128(1 + 2j)
    np.testing.assert_allclose(transform(lambda v: v * v * v, holomorphic=True)(z), 3 * z * z,
                               rtol=1e-14)


def test_hessian_has_aux():
    h, aux = ft.hessian(lambda x: (jnp.sum(x ** 3), x * 2), has_aux=True)(X)
    np.testing.assert_allclose(h, np.diag(6 * X))
    np.testing.assert_allclose(aux, 2 * X)


def test_holomorphic_false_is_the_default():
    assert float(ft.grad(jnp.sin, holomorphic=False)(0.0)) == 1.0
    np.testing.assert_allclose(ft.jacrev(jnp.sin, holomorphic=False)(X), np.diag(np.cos(X)))


# ---------------------------------------------------------------------------------------------
# custom_jvp / custom_vjp: which user functions run, and on what

def _counted_custom_jvp(rule_calls_f):
    calls = {"f": 0, "rule": 0}

    @ft.custom_jvp
    def f(x):
        calls["f"] += 1
        return jnp.sin(x)

    @f.defjvp
    def f_jvp(primals, tangents):
        calls["rule"] += 1
        (x,), (t,) = primals, tangents
        return (f(x) if rule_calls_f else jnp.sin(x)), jnp.cos(x) * t

    return f, calls


@pytest.mark.parametrize("rule_calls_f, f_runs", [(False, 0), (True, 1)])
def test_custom_jvp_under_jvp_runs_only_the_rule(rule_calls_f, f_runs):
    f, calls = _counted_custom_jvp(rule_calls_f)
    y, t = ft.jvp(f, (0.5,), (1.0,))
    assert calls == {"f": f_runs, "rule": 1}
    np.testing.assert_allclose((y, t), (np.sin(0.5), np.cos(0.5)))
    calls.update(f=0, rule=0)
    ft.grad(f)(0.5)
    assert calls == {"f": f_runs, "rule": 1}
    calls.update(f=0, rule=0)
    f(0.5)
    assert calls == {"f": 1, "rule": 0}


def test_custom_vjp_under_grad_runs_fwd_then_bwd_only():
    calls = []

    @ft.custom_vjp
    def g(x):
        calls.append("g")
        return jnp.sin(x)

    def g_fwd(x):
        calls.append("fwd")
        return jnp.sin(x), jnp.cos(x)

    def g_bwd(cos_x, ct):
        calls.append("bwd")
        return (cos_x * ct,)

    g.defvjp(g_fwd, g_bwd)
    assert float(ft.grad(g)(0.5)) == pytest.approx(np.cos(0.5))
    assert calls == ["fwd", "bwd"]
    calls.clear()
    g(0.5)
    assert calls == ["g"]


@ft.custom_jvp
def relu_like(x):
    if x > 0:                       # Python control flow on the primal value
        return x
    return 0.1 * x


@relu_like.defjvp
def _relu_like_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    if x > 0:
        return relu_like(x), t
    return relu_like(x), 0.1 * t


@pytest.mark.parametrize("x, slope", [(2.0, 1.0), (-2.0, 0.1)])
def test_python_control_flow_on_primals_under_jvp_and_grad(x, slope):
    assert float(relu_like(x)) == pytest.approx(x * slope)
    assert float(ft.jvp(relu_like, (x,), (1.0,))[1]) == pytest.approx(slope)
    assert float(ft.grad(relu_like)(x)) == pytest.approx(slope)
    assert float(ft.grad(lambda v: relu_like(v) * v)(x)) == pytest.approx(2 * slope * x)
    assert float(ft.grad(ft.grad(lambda v: relu_like(v) * v))(x)) == pytest.approx(2 * slope)


def test_custom_vjp_fwd_with_python_control_flow_under_grad():
    @ft.custom_vjp
    def clip_grad(x):
        return x

    def fwd(x):
        return x, 1.0 if x > 0 else -1.0

    clip_grad.defvjp(fwd, lambda sign, ct: (sign * ct,))
    assert float(ft.grad(clip_grad)(3.0)) == 1.0
    assert float(ft.grad(clip_grad)(-3.0)) == -1.0


def test_closure_over_a_differentiated_value_inside_a_rule_raises():
    def outer(a):
        @ft.custom_jvp
        def k(x):
            return a * x

        k.defjvp(lambda p, t: (k(*p), t[0]))
        return k(a * 2.0)
    with pytest.raises(TypeError, match="closed-over"):
        ft.grad(outer)(1.0)
