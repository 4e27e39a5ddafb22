"""Automatic differentiation end to end: check_grads over every differentiable functrans.numpy
function, closed forms from backpropagation theory, named regressions, the transform API
surface (argnums, has_aux, pytrees), error messages, nn stability and the derivative
conventions at kinks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as ft
import functrans.numpy as jnp
from functrans import nn
from functrans.numpy import _indexing
from functrans.test_util import check_grads

# ---------------------------------------------------------------------------------------------
# Every differentiable functrans.numpy function: values against NumPy, derivatives (order 2,
# forward and reverse) against finite differences. Each row: name -> build(shape, rng) giving
# (functrans function, NumPy reference, float64 args drawn from its smooth domain).


def _u(lo, hi):
    return lambda rng, s: rng.uniform(lo, hi, s)


real, pos, unit, gt1 = _u(-2, 2), _u(0.5, 3), _u(-0.9, 0.9), _u(1.2, 3)
inner = _u(-0.7, 0.7)   # arctanh's third derivative near +-0.9 defeats the FD tolerance


def nonzero(rng, s):
    return rng.choice([-1.0, 1.0], s) * rng.uniform(0.3, 2.0, s)


def divisor(rng, s):
    """Away from 0 enough for second-order central differences of x / y at eps=1e-4 (their
    truncation error grows as 1/|y|**5: at y = 0.36 it was 5e-5, over the 1e-5 tolerance)."""
    return rng.choice([-1.0, 1.0], s) * rng.uniform(0.7, 2.0, s)


def off_integer(rng, s):
    return rng.integers(-3, 3, s) + rng.uniform(0.1, 0.4, s)


def _same(name, *doms, **kw):
    """jnp.name vs np.name on arguments of the drawn shape (or broadcast against it)."""
    def build(shape, rng):
        args = [d(rng, shape if i == 0 else shape[1:]) for i, d in enumerate(doms)]
        return (lambda *a: getattr(jnp, name)(*a, **kw), lambda *a: getattr(np, name)(*a, **kw),
                args)
    return build


def _apart(name):
    def build(shape, rng):
        x = real(rng, shape)
        y = x + nonzero(rng, shape) * 0.5 + rng.choice([-0.2, 0.2], shape)
        return getattr(jnp, name), getattr(np, name), [x, y]
    return build


def _spread(rng, s):
    """Distinct values 0.1 apart: finite differences never straddle a max/min tie (a kink)."""
    n = int(np.prod(s, dtype=np.int64))
    return (rng.permutation(n).reshape(s) - n / 2) * 0.1


def _reduction(name, values=real, **kw):
    def build(shape, rng):
        axis = 0 if shape else None
        return (lambda x: getattr(jnp, name)(x, axis=axis, **kw),
                lambda x: getattr(np, name)(x, axis=axis, **kw), [values(rng, shape)])
    return build


def _at_least_1d(build_fn):
    return lambda shape, rng: build_fn(shape or (3,), rng)


def _fixed(f, ref, *arg_shapes, dom=real):
    return lambda shape, rng: (f, ref, [dom(rng, s) for s in arg_shapes])


def _clip(shape, rng):
    # values away from the bounds -0.5 and 0.7 (clip at a bound is tested separately)
    x = rng.choice([-1.0, 1.0], shape) * rng.uniform(0.0, 0.4, shape) + \
        rng.choice([-1.2, 0.0, 1.3], shape)
    return (lambda v: jnp.clip(v, -0.5, 0.7), lambda v: np.clip(v, -0.5, 0.7), [x])


def _where(shape, rng):
    c = rng.uniform(size=shape) < 0.5
    return (lambda a, b: jnp.where(c, a, b), lambda a, b: np.where(c, a, b),
            [real(rng, shape), real(rng, shape)])


def _round(shape, rng):
    return jnp.round, np.round, [off_integer(rng, shape)]


def _index_basic(shape, rng):
    return (lambda x: x[1:, ::2] * 2.0, lambda x: x[1:, ::2] * 2.0, [real(rng, (3, 4))])


def _index_int_array(shape, rng):
    idx = np.array([2, 0, 2, 1])
    return (lambda x: x[idx], lambda x: x[idx], [real(rng, (3, 2))])


def _index_bool(shape, rng):
    mask = np.array([True, False, True, True])
    return (lambda x: x[mask], lambda x: x[mask], [real(rng, (4, 2))])


def _at(method):
    idx = np.array([0, 2, 2])

    def ref(x, u):
        out = x.copy()
        if method == "set":
            out[idx] = u
        else:
            getattr(np, {"add": "add", "mul": "multiply"}[method]).at(out, idx, u)
        return out
    def f(x, u):  # NumPy arrays have no .at: take functrans' indexing helper for them
        helper = x.at if hasattr(x, "at") else _indexing.at(x)
        return getattr(helper[idx], method)(u)
    return lambda shape, rng: (f, ref,
                               [real(rng, (4,)), real(rng, (3,))])


NUMPY_FUNCS = {
    "add": _same("add", real, real), "subtract": _same("subtract", real, real),
    "multiply": _same("multiply", real, real), "divide": _same("divide", real, divisor),
    "true_divide": _same("true_divide", real, divisor), "power": _same("power", pos, real),
    "negative": _same("negative", real), "abs": _same("abs", nonzero),
    "sign": _same("sign", nonzero), "exp": _same("exp", real), "expm1": _same("expm1", real),
    "log": _same("log", pos), "log1p": _same("log1p", pos), "log2": _same("log2", pos),
    "log10": _same("log10", pos), "sqrt": _same("sqrt", pos), "square": _same("square", real),
    "sin": _same("sin", real), "cos": _same("cos", real), "tan": _same("tan", _u(-1.2, 1.2)),
    "arcsin": _same("arcsin", unit), "arccos": _same("arccos", unit),
    "arctan": _same("arctan", real), "arctan2": _same("arctan2", real, divisor),
    "sinh": _same("sinh", real), "cosh": _same("cosh", real), "tanh": _same("tanh", real),
    "arcsinh": _same("arcsinh", real), "arccosh": _same("arccosh", gt1),
    "arctanh": _same("arctanh", inner), "maximum": _apart("maximum"),
    "minimum": _apart("minimum"), "clip": _clip, "where": _where,
    "floor": _same("floor", off_integer), "ceil": _same("ceil", off_integer), "round": _round,
    "reciprocal": _same("reciprocal", divisor), "logaddexp": _same("logaddexp", real, real),
    "sum": _reduction("sum"), "mean": _reduction("mean"), "var": _reduction("var"),
    # std at a single element is sqrt(0): keep the reduced axis of size >= 2
    "std": lambda s, rng: _reduction("std")((3,) + tuple(s[1:]), rng), "prod": _reduction("prod"),
    "max": _reduction("max", _spread), "min": _reduction("min", _spread),
    "sum_keepdims": _reduction("sum", keepdims=True),
    "cumsum": _at_least_1d(_reduction("cumsum")), "cumprod": _at_least_1d(_reduction("cumprod")),
    "dot": _fixed(jnp.dot, np.dot, (2, 3), (3, 4)),
    "matmul": _fixed(jnp.matmul, np.matmul, (2, 2, 3), (3, 2)),
    "matmul_op": _fixed(lambda a, b: a @ b, lambda a, b: a @ b, (3,), (3, 2)),
    "vdot": _fixed(jnp.vdot, np.vdot, (2, 3), (2, 3)),
    "inner": _fixed(jnp.inner, np.inner, (2, 3), (4, 3)),
    "outer": _fixed(jnp.outer, np.outer, (3,), (2,)),
    "tensordot": _fixed(lambda a, b: jnp.tensordot(a, b, axes=([1, 2], [0, 1])),
                        lambda a, b: np.tensordot(a, b, axes=([1, 2], [0, 1])), (2, 3, 2), (3, 2, 2)),
    "einsum": _fixed(lambda a, b: jnp.einsum("ij,jk->ki", a, b),
                     lambda a, b: np.einsum("ij,jk->ki", a, b), (2, 3), (3, 4)),
    "einsum_trace": _fixed(lambda a: jnp.einsum("ii->", a), lambda a: np.einsum("ii->", a), (3, 3)),
    "trace": _fixed(jnp.trace, np.trace, (3, 3)),
    "norm": _fixed(jnp.linalg.norm, np.linalg.norm, (2, 3)),
    "norm_axis": _fixed(lambda a: jnp.linalg.norm(a, axis=1), lambda a: np.linalg.norm(a, axis=1),
                        (2, 3)),
    "reshape": _fixed(lambda a: jnp.reshape(a, (3, 2)), lambda a: np.reshape(a, (3, 2)), (2, 3)),
    "transpose": _fixed(lambda a: jnp.transpose(a, (1, 2, 0)), lambda a: np.transpose(a, (1, 2, 0)),
                        (2, 3, 2)),
    "T": _fixed(lambda a: a.T, lambda a: a.T, (2, 3)),
    "swapaxes": _fixed(lambda a: jnp.swapaxes(a, 0, 2), lambda a: np.swapaxes(a, 0, 2), (2, 3, 2)),
    "moveaxis": _fixed(lambda a: jnp.moveaxis(a, 0, -1), lambda a: np.moveaxis(a, 0, -1), (2, 3, 2)),
    "squeeze": _fixed(lambda a: jnp.squeeze(a, 1), lambda a: np.squeeze(a, 1), (2, 1, 3)),
    "expand_dims": _fixed(lambda a: jnp.expand_dims(a, 1), lambda a: np.expand_dims(a, 1), (2, 3)),
    "broadcast_to": _fixed(lambda a: jnp.broadcast_to(a, (2, 2, 3)),
                           lambda a: np.broadcast_to(a, (2, 2, 3)), (1, 3)),
    "concatenate": _fixed(lambda a, b: jnp.concatenate([a, b, a], axis=1),
                          lambda a, b: np.concatenate([a, b, a], axis=1), (2, 3), (2, 1)),
    "stack": _fixed(lambda a, b: jnp.stack([a, b], axis=1), lambda a, b: np.stack([a, b], axis=1),
                    (2, 3), (2, 3)),
    "hstack": _fixed(lambda a, b: jnp.hstack([a, b]), lambda a, b: np.hstack([a, b]), (2, 3), (2, 2)),
    "vstack": _fixed(lambda a, b: jnp.vstack([a, b]), lambda a, b: np.vstack([a, b]), (2, 3), (1, 3)),
    "split": _fixed(lambda a: jnp.split(a, [1, 3], axis=1), lambda a: np.split(a, [1, 3], axis=1),
                    (2, 4)),
    "tile": _fixed(lambda a: jnp.tile(a, (2, 1)), lambda a: np.tile(a, (2, 1)), (2, 3)),
    "repeat": _fixed(lambda a: jnp.repeat(a, 2, axis=0), lambda a: np.repeat(a, 2, axis=0), (2, 3)),
    "flip": _fixed(lambda a: jnp.flip(a, 1), lambda a: np.flip(a, 1), (2, 3)),
    "roll": _fixed(lambda a: jnp.roll(a, 2, axis=1), lambda a: np.roll(a, 2, axis=1), (2, 3)),
    "pad": _fixed(lambda a: jnp.pad(a, ((1, 0), (2, 1))), lambda a: np.pad(a, ((1, 0), (2, 1))),
                  (2, 3)),
    "ravel": _fixed(jnp.ravel, np.ravel, (2, 3)),
    "take": _fixed(lambda a: jnp.take(a, np.array([2, 0, 2]), axis=1),
                   lambda a: np.take(a, np.array([2, 0, 2]), axis=1), (2, 3)),
    "take_along_axis": _fixed(lambda a: jnp.take_along_axis(a, np.array([[2, 0], [1, 1]]), 1),
                              lambda a: np.take_along_axis(a, np.array([[2, 0], [1, 1]]), 1),
                              (2, 3)),
    "index_basic": _index_basic, "index_int_array": _index_int_array, "index_bool": _index_bool,
    "at_set": _at("set"), "at_add": _at("add"), "at_mul": _at("mul"),
}

shapes = hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3)


@pytest.mark.parametrize("name", sorted(NUMPY_FUNCS))
@settings(max_examples=3)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_numpy_function_grads(name, shape, seed):
    f, ref, args = NUMPY_FUNCS[name](shape, np.random.default_rng(seed))
    got, want = ft.tree_util.tree_leaves(f(*args)), ft.tree_util.tree_leaves(ref(*args))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    check_grads(f, args, order=2, modes=("fwd", "rev"))


# ---------------------------------------------------------------------------------------------
# Closed forms from backpropagation theory

def test_softmax_jacobian_is_diag_minus_outer():
    x = np.array([0.3, -1.2, 2.0, 0.5])
    y = np.asarray(nn.softmax(x))
    expected = np.diag(y) - np.outer(y, y)
    np.testing.assert_allclose(ft.jacrev(nn.softmax)(x), expected, atol=1e-14)
    np.testing.assert_allclose(ft.jacfwd(nn.softmax)(x), expected, atol=1e-14)


def test_softmax_cross_entropy_grad_is_p_minus_y():
    logits = np.random.default_rng(0).normal(size=(5, 4))
    labels = np.array([0, 3, 1, 1, 2])
    y = np.eye(4)[labels]

    def loss(z):
        return -jnp.sum(nn.one_hot(labels, 4) * nn.log_softmax(z))

    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(ft.grad(loss)(logits), p - y, atol=1e-14)


def _mlp_params(rng, sizes):
    return [(rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m) * 0.1)
            for n, m in zip(sizes[:-1], sizes[1:])]


def _mlp_loss(params, x, y):
    """Mean squared error of a sigmoid MLP; columns of x are examples (a = sigma(W a + b))."""
    a = x
    for w, b in params:
        a = nn.sigmoid(w @ a + b[:, None])
    return 0.5 * jnp.sum((a - y) ** 2) / x.shape[1]


def _numpy_backprop(params, x, y):
    """The four backpropagation equations (Nielsen, ch. 2), batch-averaged:
    delta^L = (a^L - y) * sigma'(z^L); delta^l = (W^{l+1}^T delta^{l+1}) * sigma'(z^l);
    dC/db^l = delta^l; dC/dW^l = delta^l a^{l-1}^T."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    acts, zs = [x], []
    for w, b in params:
        zs.append(w @ acts[-1] + b[:, None])
        acts.append(sig(zs[-1]))
    n = x.shape[1]
    grads = [None] * len(params)
    delta = (acts[-1] - y) * sig(zs[-1]) * (1 - sig(zs[-1]))
    for layer in reversed(range(len(params))):
        grads[layer] = (delta @ acts[layer].T / n, delta.sum(1) / n)
        if layer:
            s = sig(zs[layer - 1])
            delta = (params[layer][0].T @ delta) * s * (1 - s)
    return grads


def test_mlp_grad_equals_handwritten_backprop():
    rng = np.random.default_rng(1)
    params = _mlp_params(rng, [4, 5, 3, 2])  # three layers
    x, y = rng.normal(size=(4, 7)), rng.uniform(size=(2, 7))
    got = ft.grad(_mlp_loss)(params, x, y)
    want = _numpy_backprop(params, x, y)
    for (gw, gb), (ww, wb) in zip(got, want):
        np.testing.assert_allclose(gw, ww, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(gb, wb, rtol=1e-12, atol=1e-15)
    check_grads(lambda p: _mlp_loss(p, x, y), (params,), order=2)


# ---------------------------------------------------------------------------------------------
# Named regressions

def test_perturbation_confusion_grad_form():
    # inner derivative d/dy (x y) = x, so the outer function is x * x, whose derivative at 2 is
    # 4 (a tagless implementation confusing the two perturbations gives 6 here: the inner
    # derivative would pick up the outer perturbation of x as 1 + 2 = 3 times x's perturbation)
    assert ft.grad(lambda x: x * ft.grad(lambda y: x * y)(1.0))(2.0) == 4.0
    # the inner derivative alone: d/dx [d/dy (x y)] = d/dx x = 1
    assert ft.grad(lambda x: ft.grad(lambda y: x * y)(1.0))(2.0) == 1.0
    # the classic form: d/dx [x * d/dy (x + y)] = d/dx x = 1
    assert ft.grad(lambda x: x * ft.grad(lambda y: x + y)(1.0))(2.0) == 1.0


def test_perturbation_confusion_jvp_closure_form():
    """d/dx [x * d/dy (x + y)] = 1 (Siskind & Pearlmutter); the inner jvp closes over x."""
    def f(x):
        inner = ft.jvp(lambda y: x + y, (1.0,), (1.0,))[1]
        return x * inner
    assert ft.jvp(f, (1.0,), (1.0,)) == (1.0, 1.0)

    def g(x):  # the closure's derivative must not leak into the inner tangent
        return ft.jvp(lambda y: x * y, (1.0,), (1.0,))[1]
    assert ft.jvp(g, (2.0,), (1.0,)) == (2.0, 1.0)


def _hess_fn(x):
    return jnp.sum(jnp.sin(x) * x[::-1] ** 2) + jnp.prod(x) + jnp.exp(x[0] * x[1])


def test_hessian_six_ways():
    x = np.array([0.3, -0.7, 1.1])
    h = np.asarray(ft.hessian(_hess_fn)(x))
    np.testing.assert_allclose(h, h.T, atol=1e-12)
    for other in [ft.jacfwd(ft.jacrev(_hess_fn)), ft.jacrev(ft.jacfwd(_hess_fn)),
                  ft.jacrev(ft.jacrev(_hess_fn)), ft.jacfwd(ft.jacfwd(_hess_fn)),
                  ft.jacfwd(ft.grad(_hess_fn))]:
        np.testing.assert_allclose(other(x), h, rtol=1e-12, atol=1e-12)
    for i, v in enumerate(np.eye(3)):
        np.testing.assert_allclose(ft.hvp(_hess_fn, (x,), (v,)), h[:, i], rtol=1e-12, atol=1e-12)
    v = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(ft.hvp(_hess_fn, (x,), (v,)), h @ v, rtol=1e-12, atol=1e-12)
    # scalars: grad(grad)
    f1 = lambda s: jnp.sin(s) * s ** 3  # noqa: E731
    s = 0.7
    want = -np.sin(s) * s ** 3 + 6 * np.cos(s) * s ** 2 + 6 * s * np.sin(s)
    for d2 in [ft.grad(ft.grad(f1)), ft.hessian(f1), ft.jacrev(ft.jacrev(f1)),
               ft.jacfwd(ft.jacrev(f1)), ft.jacrev(ft.jacfwd(f1))]:
        np.testing.assert_allclose(d2(s), want, rtol=1e-12)


def test_third_derivative_and_jvp_of_grad():
    f = lambda x: x ** 4 + jnp.sin(x)  # noqa: E731
    x = 0.9
    np.testing.assert_allclose(ft.grad(ft.grad(ft.grad(f)))(x), 24 * x - np.cos(x), rtol=1e-12)
    out, t = ft.jvp(ft.grad(f), (x,), (2.0,))
    np.testing.assert_allclose(out, 4 * x ** 3 + np.cos(x), rtol=1e-12)
    np.testing.assert_allclose(t, 2.0 * (12 * x ** 2 - np.sin(x)), rtol=1e-12)
    check_grads(f, (x,), order=3)


def test_python_control_flow_on_concrete_values():
    def f(x):
        if x > 0:
            return x ** 2
        return -3.0 * x
    assert ft.grad(f)(2.0) == 4.0
    assert ft.grad(f)(-2.0) == -3.0
    assert ft.jvp(f, (2.0,), (1.0,)) == (4.0, 4.0)
    assert ft.grad(ft.grad(f))(2.0) == 2.0

    def loop(x):
        while x < 10.0:
            x = x * 2.0
        return x
    assert ft.grad(loop)(3.0) == 4.0  # 3 -> 6 -> 12: two doublings


# ---------------------------------------------------------------------------------------------
# The API surface: argnums, has_aux, pytrees

def _f2(x, y):
    return jnp.sum(x ** 2 * y) + jnp.sum(y)


def test_argnums_int_and_tuple():
    x, y = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    np.testing.assert_allclose(ft.grad(_f2)(x, y), 2 * x * y)
    np.testing.assert_allclose(ft.grad(_f2, argnums=1)(x, y), x ** 2 + 1)
    gx, gy = ft.grad(_f2, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx, 2 * x * y)
    np.testing.assert_allclose(gy, x ** 2 + 1)
    v, (gx2,) = ft.value_and_grad(_f2, argnums=(0,))(x, y)
    assert v == _f2(x, y) and np.allclose(gx2, gx)
    np.testing.assert_allclose(ft.grad(_f2, argnums=-1)(x, y), x ** 2 + 1)
    with pytest.raises(TypeError, match="argnums=2 requires at least 3 positional"):
        ft.grad(_f2, argnums=2)(x, y)


def test_has_aux():
    def f(x):
        return jnp.sum(x ** 2), {"mean": jnp.mean(x), "n": 3}
    x = np.array([1.0, 2.0, 3.0])
    g, aux = ft.grad(f, has_aux=True)(x)
    np.testing.assert_allclose(g, 2 * x)
    assert aux["mean"] == 2.0 and aux["n"] == 3
    (v, aux), g = ft.value_and_grad(f, has_aux=True)(x)
    assert v == 14.0 and aux["mean"] == 2.0
    out, vjp_fn, aux = ft.vjp(f, x, has_aux=True)
    np.testing.assert_allclose(vjp_fn(1.0)[0], 2 * x)
    out, t, aux = ft.jvp(f, (x,), (np.ones(3),), has_aux=True)
    assert t == 12.0 and aux["mean"] == 2.0


def test_pytree_arguments_and_outputs():
    params = {"w": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": (np.array([0.5, -0.5]), 2.0)}
    x = np.array([1.0, -1.0])

    def f(p, x):
        h = p["w"] @ x + p["b"][0]
        return jnp.sum(h ** 2) * p["b"][1]

    g = ft.grad(f)(params, x)
    assert set(g) == {"w", "b"} and isinstance(g["b"], tuple)
    h = params["w"] @ x + params["b"][0]
    np.testing.assert_allclose(g["w"], 2 * params["b"][1] * np.outer(h, x))
    np.testing.assert_allclose(g["b"][0], 2 * params["b"][1] * h)
    np.testing.assert_allclose(g["b"][1], np.sum(h ** 2))

    def g2(p):
        return {"sq": p["a"] ** 2, "pair": (p["a"] * p["c"], jnp.sin(p["c"]))}
    p = {"a": np.array([1.0, 2.0]), "c": np.array(0.5)}
    t = {"a": np.array([1.0, 0.0]), "c": np.array(1.0)}
    out, tout = ft.jvp(g2, (p,), (t,))
    np.testing.assert_allclose(tout["sq"], 2 * p["a"] * t["a"])
    np.testing.assert_allclose(tout["pair"][0], t["a"] * 0.5 + p["a"] * 1.0)
    out_l, f_jvp = ft.linearize(g2, p)
    tl = f_jvp(t)
    for a, b in zip(ft.tree_util.tree_leaves(tl), ft.tree_util.tree_leaves(tout)):
        np.testing.assert_allclose(a, b)
    out_v, vjp_fn = ft.vjp(g2, p)
    ct = ft.tree_util.tree_map(np.ones_like, out_v)
    (gp,) = vjp_fn(ct)
    np.testing.assert_allclose(gp["a"], 2 * p["a"] + 0.5)
    np.testing.assert_allclose(gp["c"], np.sum(p["a"]) + np.cos(0.5))
    check_grads(g2, (p,), order=2)
    check_grads(f, (params, x), order=2)


def test_linearize_matches_jvp_without_rerunning_primal():
    calls = []

    def f(x):
        calls.append(1)
        return jnp.sin(x) * x
    x = np.array([0.1, 0.2])
    y, f_jvp = ft.linearize(f, x)
    n = len(calls)
    t = f_jvp(np.array([1.0, 2.0]))
    assert len(calls) == n
    np.testing.assert_allclose(t, (np.cos(x) * x + np.sin(x)) * np.array([1.0, 2.0]))


# ---------------------------------------------------------------------------------------------
# Errors

def test_grad_of_non_scalar_output_is_a_type_error():
    with pytest.raises(TypeError, match=r"scalar-output.*shape: \(3,\).*jacrev.*has_aux"):
        ft.grad(lambda x: x * 2.0)(np.ones(3))


def test_grad_of_complex_output_is_a_type_error():
    with pytest.raises(TypeError, match="complex"):
        ft.grad(lambda x: jnp.sum(x) * (1 + 1j))(np.ones(3))


@pytest.mark.parametrize("bad", [np.array([1, 2]), np.array(True), 3])
def test_grad_of_integer_or_bool_input_names_the_argument(bad):
    with pytest.raises(TypeError, match=r"args\[1\]"):
        ft.grad(lambda x, y: jnp.sum(x * y), argnums=1)(np.ones(2), bad)


def test_grad_of_int_inside_pytree_names_the_leaf():
    with pytest.raises(TypeError, match=r"args\[0\].*int"):
        ft.grad(lambda p: jnp.sum(p["w"]))({"w": np.ones(2), "k": np.array(3)})


def test_missing_rule_names_primitive_and_transform():
    from functrans import core
    from functrans.interpreters import batching
    p = core.Primitive("no_rules_prim")
    core.impl_rules[p] = lambda x: x
    core.abstract_eval_rules[p] = lambda x: x
    try:
        with pytest.raises(NotImplementedError, match="no_rules_prim.*jvp"):
            ft.jvp(lambda x: p.bind(x), (1.0,), (1.0,))
        with pytest.raises(NotImplementedError, match="no_rules_prim.*vmap"):
            ft.vmap(lambda x: p.bind(x))(np.ones(2))
    finally:
        del core.impl_rules[p], core.abstract_eval_rules[p]
        batching.batch_rules.pop(p, None)


# ---------------------------------------------------------------------------------------------
# nn: stability of values and derivatives

BIG = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", BIG)
@pytest.mark.parametrize("name", ["sigmoid", "softplus", "log_sigmoid", "gelu", "gelu_exact",
                                  "silu", "elu", "leaky_relu", "relu", "tanh", "relu6"])
def test_activations_stable_at_large_magnitude(name, dtype):
    f = (lambda v: nn.gelu(v, approximate=False)) if name == "gelu_exact" else getattr(nn, name)
    x = np.array([-1e4, -30.0, -1.0, 0.0, 1.0, 30.0, 1e4], dtype)
    y = np.asarray(f(x))
    assert y.dtype == dtype
    assert np.all(np.isfinite(y)), y
    g = np.asarray(ft.vmap(ft.grad(f))(x))
    h = np.asarray(ft.vmap(ft.grad(ft.grad(f)))(x))
    assert g.dtype == dtype and np.all(np.isfinite(g)) and np.all(np.isfinite(h)), (g, h)


def test_sigmoid_softplus_values_at_extremes():
    x = np.array([-1e4, 1e4])
    np.testing.assert_array_equal(nn.sigmoid(x), [0.0, 1.0])
    np.testing.assert_array_equal(nn.softplus(x), [0.0, 1e4])
    np.testing.assert_array_equal(ft.vmap(ft.grad(nn.softplus))(x), [0.0, 1.0])
    np.testing.assert_allclose(ft.grad(nn.softplus)(0.0), 0.5)
    np.testing.assert_allclose(ft.grad(ft.grad(nn.softplus))(0.0), 0.25)
    np.testing.assert_allclose(nn.log_sigmoid(np.array(-1e4)), -1e4)


@pytest.mark.parametrize("dtype", BIG)
def test_softmax_family_large_logits_and_neg_inf(dtype):
    z = np.array([[1e4, -1e4, 0.0, -np.inf], [3.0, -np.inf, 1.0, 2.0]], dtype)
    for f in [nn.softmax, nn.log_softmax, lambda v: nn.logsumexp(v, axis=-1, keepdims=True)]:
        y = np.asarray(f(z))
        assert y.dtype == dtype
        assert not np.any(np.isnan(y)) and np.all(y < np.inf)
        for row in range(2):
            g = ft.grad(lambda v: jnp.sum(f(v)[row] * np.arange(1.0, 5.0, dtype=dtype)))(z)
            assert not np.any(np.isnan(g)) and np.all(np.isfinite(g)), (f, g)
    np.testing.assert_allclose(nn.logsumexp(z, axis=1), [1e4, np.log(np.exp(3) + np.e + np.exp(2))],
                               rtol=1e-6)
    np.testing.assert_allclose(nn.softmax(z)[0], [1, 0, 0, 0])
    assert np.asarray(nn.log_softmax(z))[0, 3] == -np.inf


def test_logsumexp_all_neg_inf_and_weights_and_axes():
    assert nn.logsumexp(np.full(3, -np.inf)) == -np.inf
    x = np.random.default_rng(0).normal(size=(2, 3, 4))
    np.testing.assert_allclose(nn.logsumexp(x), np.log(np.exp(x).sum()), rtol=1e-13)
    np.testing.assert_allclose(nn.logsumexp(x, axis=(0, 2)), np.log(np.exp(x).sum((0, 2))),
                               rtol=1e-13)
    b = np.array([0.5, 0.0, 2.0, 1.0])
    np.testing.assert_allclose(nn.logsumexp(x, axis=-1, b=b), np.log((b * np.exp(x)).sum(-1)),
                               rtol=1e-13)
    check_grads(lambda v: nn.logsumexp(v, axis=1), (x,), order=2)
    check_grads(lambda v: nn.softmax(v, axis=0), (x,), order=2)
    check_grads(nn.log_softmax, (x,), order=2)
    g = ft.grad(lambda v: nn.logsumexp(v))(np.array([0.0, -np.inf, 1.0]))
    assert g[1] == 0.0 and np.isclose(g.sum(), 1.0)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "softplus", "gelu", "gelu_exact", "silu",
                                  "elu", "leaky_relu", "tanh", "log_sigmoid"])
def test_activation_grads_match_finite_differences(name):
    f = (lambda v: nn.gelu(v, approximate=False)) if name == "gelu_exact" else getattr(nn, name)
    x = np.array([-2.5, -0.7, 0.4, 1.9])
    check_grads(f, (x,), order=2)


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    from scipy.special import erf, expit
    np.testing.assert_allclose(nn.relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(nn.sigmoid(x), expit(x), rtol=1e-14)
    np.testing.assert_allclose(nn.softplus(x), np.log1p(np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(nn.silu(x), x * expit(x), rtol=1e-14)
    np.testing.assert_allclose(nn.swish(x), x * expit(x), rtol=1e-14)
    np.testing.assert_allclose(nn.elu(x), np.where(x > 0, x, np.expm1(x)), rtol=1e-14)
    np.testing.assert_allclose(nn.leaky_relu(x), np.where(x >= 0, x, 0.01 * x))
    np.testing.assert_allclose(nn.gelu(x, approximate=False), 0.5 * x * (1 + erf(x / np.sqrt(2))),
                               rtol=1e-14)
    tanh_form = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(nn.gelu(x), tanh_form, rtol=1e-14)
    np.testing.assert_allclose(nn.tanh(x), np.tanh(x))


def test_one_hot():
    out = nn.one_hot(np.array([0, 2, 3, -1]), 3)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1, 0, 0], [0, 0, 1], [0, 0, 0], [0, 0, 0]])
    out = nn.one_hot(np.array([[1, 0]]), 2, dtype=np.float32, axis=0)
    assert out.shape == (2, 1, 2) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0, :], [[0, 1], [1, 0]])
    traced = ft.vmap(lambda i: nn.one_hot(i, 4))(np.array([1, 3]))
    np.testing.assert_array_equal(traced, np.eye(4)[[1, 3]])


def test_nn_where_patterns_give_no_nan_gradients():
    """The double-where pattern JAX's docs recommend: the unused branch must not poison the
    gradient (safe log, safe sqrt)."""
    def safe_log(x):
        ok = x > 0
        return jnp.where(ok, jnp.log(jnp.where(ok, x, 1.0)), 0.0)

    def safe_sqrt_norm(x):
        sq = jnp.sum(x ** 2)
        ok = sq > 0
        return jnp.where(ok, jnp.sqrt(jnp.where(ok, sq, 1.0)), 0.0)
    x = np.array([0.0, 2.0, -1.0])
    np.testing.assert_allclose(ft.grad(lambda v: jnp.sum(safe_log(v)))(x), [0.0, 0.5, 0.0])
    np.testing.assert_array_equal(ft.grad(safe_sqrt_norm)(np.zeros(3)), np.zeros(3))
    np.testing.assert_array_equal(ft.grad(lambda v: jnp.sum(nn.elu(v)))(np.array([1e4, 800.0])),
                                  [1.0, 1.0])


# ---------------------------------------------------------------------------------------------
# Conventions at kinks (API.md)

def test_derivative_conventions_at_kinks():
    assert ft.grad(jnp.abs)(0.0) == 1.0
    assert ft.grad(jnp.maximum, argnums=(0, 1))(1.0, 1.0) == (0.5, 0.5)
    assert ft.grad(jnp.minimum, argnums=(0, 1))(1.0, 1.0) == (0.5, 0.5)
    assert ft.grad(nn.relu)(0.0) == 0.0
    assert ft.grad(nn.relu6)(0.0) == 0.0 and ft.grad(nn.relu6)(6.0) == 0.0
    np.testing.assert_array_equal(ft.grad(jnp.max)(np.array([1.0, 3.0, 3.0, 2.0, 3.0])),
                                  [0, 1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_array_equal(ft.grad(jnp.min)(np.array([1.0, 3.0, 1.0])), [0.5, 0, 0.5])
    assert ft.grad(lambda x: jnp.clip(x, 0.0, 1.0))(0.0) == 0.5
    assert ft.grad(lambda x: jnp.clip(x, 0.0, 1.0))(1.0) == 0.5
    assert ft.grad(jnp.sqrt)(0.0) == np.inf
    assert ft.grad(lambda x: x ** 2)(0.0) == 0.0
    assert ft.grad(ft.grad(lambda x: x ** 2))(0.0) == 2.0
    assert ft.grad(jnp.square)(0.0) == 0.0


def test_relu_propagates_nan_as_jax():
    x = np.array([np.nan, -1.0, 0.0, 2.0, 7.0])
    np.testing.assert_array_equal(nn.relu(x), [np.nan, 0.0, 0.0, 2.0, 7.0])
    np.testing.assert_array_equal(nn.relu6(x), [np.nan, 0.0, 0.0, 2.0, 6.0])


def test_relu_dtypes_follow_maximum():
    # relu(x) = maximum(x, 0), relu6(x) = minimum(maximum(x, 0), 6.0), with NumPy's promotion
    for x in [np.array([True, False]), np.array([-2, 3], np.int8), np.array([-1.0], np.float32)]:
        assert nn.relu(x).dtype == np.maximum(x, 0).dtype
        assert nn.relu6(x).dtype == np.minimum(np.maximum(x, 0), 6.0).dtype
    np.testing.assert_array_equal(nn.relu(np.array([True, False])), [1, 0])
