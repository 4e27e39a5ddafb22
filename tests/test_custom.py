"""custom_jvp, custom_vjp and checkpoint under every transform."""
import functools

import numpy as np
import pytest

import functrans as ft
from functrans import lax
import functrans.numpy as jnp


def _sum(x):
    return lax.reduce_sum(x, tuple(range(np.ndim(x) if not hasattr(x, "ndim") else x.ndim)))


# A custom_jvp whose rule deliberately differs from the true derivative, so tests can tell which
# one was used: d/dx f = 2 (the true derivative is cos x).
@ft.custom_jvp
def f_jvp2(x):
    return lax.sin(x)


@f_jvp2.defjvp
def _f_jvp2_rule(primals, tangents):
    (x,), (t,) = primals, tangents
    return f_jvp2(x), lax.mul(lax.full_like(x, 2.0), t)


# A custom_vjp whose bwd says d/dx (x*y) = 3 (true: y) and d/dy = x.
@ft.custom_vjp
def g_vjp3(x, y):
    return lax.mul(x, y)


def _g_fwd(x, y):
    return g_vjp3(x, y), (x, y)


def _g_bwd(res, ct):
    x, y = res
    return lax.mul(ct, lax.full_like(x, 3.0)), lax.mul(ct, x)


g_vjp3.defvjp(_g_fwd, _g_bwd)

X = np.array([0.3, -0.7, 1.1])
B = np.stack([X, 2 * X])
ONES3, TWOS = np.full(3, 2.0), np.full((2, 3), 2.0)


@pytest.mark.parametrize("transform", [
    lambda: ft.grad(lambda x: _sum(f_jvp2(x)))(X),
    lambda: ft.jvp(f_jvp2, (X,), (np.ones(3),))[1],
    lambda: ft.jit(ft.grad(lambda x: _sum(f_jvp2(x))))(X),
    lambda: ft.grad(ft.jit(lambda x: _sum(f_jvp2(x))))(X),
    lambda: ft.vmap(ft.grad(lambda x: _sum(f_jvp2(x))))(B)[1],
    lambda: ft.grad(lambda x: _sum(ft.vmap(f_jvp2)(x)))(B)[0],
    lambda: ft.jacrev(f_jvp2)(X).diagonal(),
    lambda: ft.jacfwd(f_jvp2)(X).diagonal(),
])
def test_custom_jvp_rule_is_used_by_every_transform(transform):
    np.testing.assert_allclose(transform(), ONES3)


def test_custom_jvp_primal_and_vmap_values():
    np.testing.assert_allclose(f_jvp2(X), np.sin(X))
    np.testing.assert_allclose(ft.vmap(f_jvp2)(B), np.sin(B))
    np.testing.assert_allclose(ft.jit(f_jvp2)(X), np.sin(X))


def test_custom_jvp_nondiff_argnums_and_defjvps():
    @functools.partial(ft.custom_jvp, nondiff_argnums=(0,))
    def scale(n, x):
        return lax.mul(lax.full_like(x, float(n)), x)

    @scale.defjvp
    def _(n, primals, tangents):
        (x,), (t,) = primals, tangents
        return scale(n, x), lax.mul(lax.full_like(t, 10.0 * n), t)

    np.testing.assert_allclose(ft.grad(lambda x: _sum(scale(2, x)))(X), 20.0)

    @ft.custom_jvp
    def h(x, y):
        return lax.mul(x, y)

    h.defjvps(lambda t, ans, x, y: lax.mul(t, lax.full_like(x, 5.0)),
              lambda t, ans, x, y: lax.mul(t, x))
    gx, gy = ft.grad(lambda x, y: _sum(h(x, y)), (0, 1))(X, X)
    np.testing.assert_allclose(gx, 5.0)
    np.testing.assert_allclose(gy, X)


def test_custom_jvp_errors():
    @ft.custom_jvp
    def nojvp(x):
        return x
    with pytest.raises(AttributeError, match="No JVP"):
        nojvp(X)

    def closes(a):
        @ft.custom_jvp
        def k(x):
            return lax.mul(a, x)
        k.defjvp(lambda p, t: (k(*p), t[0]))
        return _sum(k(X))
    with pytest.raises(TypeError, match="closed-over"):
        ft.grad(closes)(np.ones(3))


@pytest.mark.parametrize("transform", [
    lambda: ft.grad(lambda x, y: _sum(g_vjp3(x, y)), (0, 1))(X, X),
    lambda: ft.vjp(g_vjp3, X, X)[1](np.ones(3)),
    lambda: ft.jit(ft.grad(lambda x, y: _sum(g_vjp3(x, y)), (0, 1)))(X, X),
    lambda: ft.grad(ft.jit(lambda x, y: _sum(g_vjp3(x, y))), (0, 1))(X, X),
    lambda: tuple(v[1] for v in ft.vmap(ft.grad(lambda x, y: _sum(g_vjp3(x, y)), (0, 1)))(B, B)),
    lambda: tuple(v[0] for v in ft.grad(lambda x, y: _sum(ft.vmap(g_vjp3)(x, y)), (0, 1))(B, B)),
])
def test_custom_vjp_rule_is_used_by_every_reverse_transform(transform):
    gx, gy = transform()
    np.testing.assert_allclose(gx, 3.0)
    assert np.asarray(gy).shape == (3,)


def test_custom_vjp_values_and_forward_mode_error():
    np.testing.assert_allclose(g_vjp3(X, X), X * X)
    np.testing.assert_allclose(ft.vmap(g_vjp3)(B, B), B * B)
    with pytest.raises(TypeError, match="forward-mode"):
        ft.jvp(g_vjp3, (X, X), (X, X))


def test_custom_vjp_pytrees_and_nondiff():
    @functools.partial(ft.custom_vjp, nondiff_argnums=(0, 1))
    def clip_grad(lo, hi, x):
        return x

    def fwd(lo, hi, x):
        return x, None

    def bwd(lo, hi, _, g):
        a = g["a"]
        return ({"a": lax.max(lax.min(a, lax.full_like(a, hi)), lax.full_like(a, lo))},)

    clip_grad.defvjp(fwd, bwd)

    def loss(x):
        out = clip_grad(-1.0, 1.0, {"a": x})
        return _sum(lax.mul(out["a"], lax.full_like(x, 5.0)))

    np.testing.assert_allclose(ft.grad(loss)(X), 1.0)


def test_custom_vjp_bwd_arity_error():
    @ft.custom_vjp
    def f(x, y):
        return lax.add(x, y)
    f.defvjp(lambda x, y: (f(x, y), None), lambda r, g: (g,))
    with pytest.raises(TypeError, match="length"):
        ft.grad(lambda x: _sum(f(x, x)))(X)


def _chain(x):
    for _ in range(16):
        x = lax.sin(lax.mul(x, x))
    return _sum(x)


def test_checkpoint_same_gradients_fewer_residuals():
    x = np.linspace(0.6, 1.2, 5)
    remat_chain = ft.checkpoint(_chain)
    np.testing.assert_allclose(ft.grad(remat_chain)(x), ft.grad(_chain)(x), rtol=1e-12)
    plain, remat = ft.saved_residuals(_chain, x), ft.saved_residuals(remat_chain, x)
    assert len(plain) == 32 and len(remat) == 1
    assert remat[0][1].startswith("from the argument")


def test_checkpoint_composes():
    x = np.linspace(0.6, 1.2, 5)
    r = ft.checkpoint(_chain)
    np.testing.assert_allclose(ft.jit(ft.grad(r))(x), ft.grad(_chain)(x), rtol=1e-12)
    np.testing.assert_allclose(ft.vmap(ft.grad(r))(np.stack([x, x])), [ft.grad(_chain)(x)] * 2, rtol=1e-12)
    h1 = ft.hessian(r)(x)
    np.testing.assert_allclose(h1, ft.hessian(_chain)(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ft.jvp(r, (x,), (x,))[1], ft.jvp(_chain, (x,), (x,))[1])


def test_vmap_of_custom_functions_equals_loop():
    xs = np.stack([np.linspace(0.6, 1.2, 5), np.linspace(-1.0, 0.3, 5)])
    r = ft.checkpoint(_chain)
    np.testing.assert_allclose(ft.vmap(r)(xs), [_chain(x) for x in xs])
    np.testing.assert_allclose(ft.vmap(f_jvp2, in_axes=1, out_axes=1)(xs), np.sin(xs))
    np.testing.assert_allclose(ft.vmap(g_vjp3, in_axes=(0, None))(xs, xs[0]), xs * xs[0])


def test_eager_calls_just_run_the_function():
    # with no transform active, a custom_jvp/custom_vjp call is the function itself: no jaxpr is
    # traced and no rule runs
    calls = []

    @ft.custom_jvp
    def f(x):
        calls.append("f")
        return jnp.sin(x) * 2

    @f.defjvp
    def f_jvp(primals, tangents):
        calls.append("rule")
        (x,), (t,) = primals, tangents
        return f(x), 2 * jnp.cos(x) * t

    @ft.custom_vjp
    def g(x):
        calls.append("g")
        return x * 3

    g.defvjp(lambda x: (calls.append("fwd") or g(x), None), lambda res, ct: (3 * ct,))
    np.testing.assert_allclose(f(0.5), np.sin(0.5) * 2)
    np.testing.assert_allclose(g(2.0), 6.0)
    assert calls == ["f", "g"]
    assert ft.grad(f)(0.5) == pytest.approx(2 * np.cos(0.5))
    assert ft.grad(g)(2.0) == pytest.approx(3.0)
