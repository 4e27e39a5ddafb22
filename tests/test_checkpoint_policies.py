"""checkpoint policies and checkpoint_name: the policy decides which residuals the backward pass
keeps (checked on the residuals and on the linearized jaxpr), gradients never change, and nested
(recursive) checkpointing differentiates to any order. Examples from JAX's "Gradient
checkpointing with jax.checkpoint"."""
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans import ad_checkpoint
from functrans.ad_checkpoint import checkpoint_name, print_saved_residuals
from functrans.interpreters import ad
from functrans.test_util import check_grads

P = ft.checkpoint_policies
RNG = np.random.default_rng(0)
W1, W2, W3 = (RNG.normal(size=s) * 0.5 for s in [(5, 4), (6, 5), (7, 6)])
X = RNG.normal(size=4)


def g(W, x):
    y = jnp.dot(W, x)
    return jnp.sin(y)


def f(W1, W2, W3, x):
    x = g(W1, x)
    x = g(W2, x)
    x = g(W3, x)
    return x


def loss(fun):
    return lambda *args: jnp.sum(fun(*args))


def residuals(fun, *args):
    """(shapes of the residuals saved from the arguments, shapes of the other residuals)."""
    res = ft.saved_residuals(fun, *args)
    from_args = sorted(tuple(s.shape) for s, d in res if d.startswith("from the argument"))
    others = sorted(tuple(s.shape) for s, d in res if not d.startswith("from the argument"))
    return from_args, others


ARG_SHAPES = sorted([(5, 4), (6, 5), (7, 6), (4,)])


def test_namespace_and_aliases():
    assert ft.ad_checkpoint.checkpoint_policies is ft.checkpoint_policies
    assert P.checkpoint_dots is P.dots_saveable
    assert P.checkpoint_dots_with_no_batch_dims is P.dots_with_no_batch_dims_saveable
    assert ad_checkpoint.checkpoint is ft.checkpoint and ad_checkpoint.remat is ft.remat


def test_checkpointing_each_layer_saves_only_the_layer_inputs():
    def f2(W1, W2, W3, x):
        x = ft.checkpoint(g)(W1, x)
        x = ft.checkpoint(g)(W2, x)
        x = ft.checkpoint(g)(W3, x)
        return x
    args, others = residuals(f2, W1, W2, W3, X)
    assert args == ARG_SHAPES
    assert others == [(5,), (6,)]          # the outputs of the first two layers' sin
    _, plain = residuals(f, W1, W2, W3, X)
    assert len(plain) > len(others)


@pytest.mark.parametrize("policy, expected_others", [
    (None, []),
    (P.nothing_saveable, []),
    # the products W @ x
    (P.dots_with_no_batch_dims_saveable, [(5,), (6,), (7,)]),
    (P.dots_saveable, [(5,), (6,), (7,)]),
])
def test_policy_decides_the_residuals(policy, expected_others):
    f3 = ft.checkpoint(f, policy=policy)
    args, others = residuals(f3, W1, W2, W3, X)
    assert args == ARG_SHAPES
    assert others == expected_others


def test_everything_saveable_keeps_what_no_checkpoint_keeps():
    f_all = ft.checkpoint(f, policy=P.everything_saveable)
    assert sorted(residuals(f_all, W1, W2, W3, X)[1]) == sorted(residuals(f, W1, W2, W3, X)[1])


def f4(W1, W2, W3, x):
    x = checkpoint_name(g(W1, x), name="a")
    x = checkpoint_name(g(W2, x), name="b")
    x = checkpoint_name(g(W3, x), name="c")
    return x


@pytest.mark.parametrize("policy, expected_others", [
    (P.save_only_these_names("a"), [(5,)]),
    (P.save_only_these_names("a", "b"), [(5,), (6,)]),
    # c is the output: nothing reads it in the backward pass, so it is never a residual
    (P.save_any_names_but_these("a"), [(6,)]),
    (P.save_from_both_policies(P.save_only_these_names("b"), P.dots_saveable),
     [(5,), (6,), (6,), (7,)]),
])
def test_named_values_are_saved_only_when_the_policy_says_so(policy, expected_others):
    args, others = residuals(ft.checkpoint(f4, policy=policy), W1, W2, W3, X)
    assert others == expected_others
    # the inputs of the first layer are needed to recompute it; later layers' weights too
    assert set(args) <= set(ARG_SHAPES)


def _linearized(policy):
    """(the linear jaxpr of loss(f4) checkpointed with policy, its residuals)."""
    fun = ft.checkpoint(loss(f4), policy=policy)
    _, jaxpr, consts = ad.linearize_flat(lambda *a: [fun(*a)], [W1, W2, W3, X])
    return jaxpr, consts


def _count(jaxpr, name):
    """How many equations of jaxpr (and the jaxprs nested in it) apply primitive name."""
    n = 0
    for e in jaxpr.eqns:
        n += e.primitive.name == name
        for p in e.params.values():
            if isinstance(p, ft.core.ClosedJaxpr):
                n += _count(p.jaxpr, name)
    return n


def test_nothing_saveable_linearized_jaxpr_closes_over_the_inputs_only():
    jaxpr, consts = _linearized(P.nothing_saveable)
    assert {id(c) for c in consts} <= {id(a) for a in (W1, W2, W3, X)}
    assert [e.primitive.name for e in jaxpr.eqns] == ["checkpoint"]
    # the outputs of layers 1 and 2 (read by the next layer's weight cotangent) are recomputed
    assert _count(jaxpr, "sin") == 2


@pytest.mark.parametrize("names, sins", [(("a",), 1), (("a", "b"), 0)])
def test_save_only_these_names_linearized_jaxpr_keeps_exactly_the_named_values(names, sins):
    jaxpr, consts = _linearized(P.save_only_these_names(*names))
    extra = [np.asarray(c) for c in consts if all(c is not a for a in (W1, W2, W3, X))]
    a = np.sin(W1 @ X)
    want = [a, np.sin(W2 @ a)][:len(names)]
    assert sorted(e.shape for e in extra) == sorted(w.shape for w in want)
    for w in want:
        assert any(e.shape == w.shape and np.allclose(e, w) for e in extra)
    assert _count(jaxpr, "sin") == sins      # saved values are not recomputed


@pytest.mark.parametrize("policy", [None, P.everything_saveable, P.dots_saveable,
                                    P.save_only_these_names("b"),
                                    P.save_any_names_but_these("b")])
def test_policies_never_change_derivatives(policy):
    fun = ft.checkpoint(loss(f4), policy=policy)
    want = ft.grad(loss(f4), argnums=(0, 1, 2, 3))(W1, W2, W3, X)
    got = ft.grad(fun, argnums=(0, 1, 2, 3))(W1, W2, W3, X)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    check_grads(fun, (W1, W2, W3, X), order=2, modes=("fwd", "rev"))


def test_policy_survives_jit_vmap_and_linearize():
    fun = ft.checkpoint(loss(f4), policy=P.save_only_these_names("a"))
    want = ft.grad(loss(f4), argnums=3)(W1, W2, W3, X)
    np.testing.assert_allclose(ft.jit(ft.grad(fun, argnums=3))(W1, W2, W3, X), want, rtol=1e-12)
    xs = np.stack([X, 2 * X])
    got = ft.vmap(ft.grad(fun, argnums=3), in_axes=(None, None, None, 0))(W1, W2, W3, xs)
    np.testing.assert_allclose(got[0], want, rtol=1e-12)
    y, f_jvp = ft.linearize(lambda x: fun(W1, W2, W3, x), X)
    np.testing.assert_allclose(f_jvp(X), ft.jvp(lambda x: loss(f4)(W1, W2, W3, x), (X,), (X,))[1])


def test_checkpoint_name_is_the_identity_under_every_transform():
    x = np.array([0.5, -1.0])
    for fn in [lambda v: checkpoint_name(v, "n"), ft.jit(lambda v: checkpoint_name(v * 2, "n") / 2)]:
        np.testing.assert_allclose(fn(x), x)
    np.testing.assert_allclose(ft.vmap(lambda v: checkpoint_name(v, "n"))(x), x)
    check_grads(lambda v: jnp.sin(checkpoint_name(v, "n")), (x,), order=2, modes=("fwd", "rev"))
    tree = checkpoint_name({"a": x, "b": 1.0}, "t")
    np.testing.assert_allclose(tree["a"], x)
    assert "checkpoint_name[name='n']" in str(ft.make_jaxpr(lambda v: checkpoint_name(v, "n"))(x))


def test_print_saved_residuals(capsys):
    print_saved_residuals(ft.checkpoint(f4, policy=P.save_only_these_names("a")), W1, W2, W3, X)
    lines = capsys.readouterr().out.splitlines()
    assert "f64[5] intermediate value" in lines
    assert "f64[4] from the argument args-leaf 3" in lines


def test_prevent_cse_and_static_argnums_are_accepted():
    def power(x, n):
        for _ in range(n):
            x = jnp.sin(x)
        return x
    c = ft.checkpoint(power, prevent_cse=False, static_argnums=(1,))
    np.testing.assert_allclose(ft.grad(c)(0.3, 3), ft.grad(power)(0.3, 3))
    with pytest.raises(TypeError, match="policy must be callable"):
        ft.checkpoint(power, policy="dots")


# ---------------------------------------------------------------------------------------------
# Nested checkpoints (the regression: "mul is not linear in both arguments")

def sincos(x):
    return jnp.sin(x) * jnp.cos(x)


nested = ft.checkpoint(lambda x: sincos(ft.checkpoint(lambda y: sincos(ft.checkpoint(sincos)(y)))(x)))
plain3 = lambda x: sincos(sincos(sincos(x)))  # noqa: E731


def test_grad_through_three_nested_checkpoints():
    x = np.array([0.3, -0.8, 1.2])
    np.testing.assert_allclose(ft.grad(lambda v: jnp.sum(nested(v)))(x),
                               ft.grad(lambda v: jnp.sum(plain3(v)))(x), rtol=1e-12)
    check_grads(nested, (x,), order=2, modes=("fwd", "rev"))


def test_grad_of_grad_through_checkpoint():
    for fun, ref in [(ft.checkpoint(sincos), sincos), (nested, plain3)]:
        np.testing.assert_allclose(ft.grad(ft.grad(fun))(0.3), ft.grad(ft.grad(ref))(0.3),
                                   rtol=1e-12)
        np.testing.assert_allclose(ft.jit(ft.grad(ft.grad(fun)))(0.3),
                                   ft.grad(ft.grad(ref))(0.3), rtol=1e-12)


def recursive_checkpoint(funs):
    """JAX's documentation example: checkpoint the second half recursively (binomial-style)."""
    if len(funs) == 1:
        return funs[0]
    if len(funs) == 2:
        f1, f2 = funs
        return lambda x: f1(f2(x))
    f1 = recursive_checkpoint(funs[:len(funs) // 2])
    f2 = recursive_checkpoint(funs[len(funs) // 2:])
    return lambda x: f1(ft.checkpoint(f2)(x))


def test_recursive_checkpointing_example():
    funs = [jnp.sin] * 8
    chained = recursive_checkpoint(funs)

    def plain(x):
        for fn in funs:
            x = fn(x)
        return x
    x = np.array([0.7, -0.2])
    np.testing.assert_allclose(ft.grad(lambda v: jnp.sum(chained(v)))(x),
                               ft.grad(lambda v: jnp.sum(plain(v)))(x), rtol=1e-12)
    check_grads(chained, (x,), order=2, modes=("fwd", "rev"))
    assert len(ft.saved_residuals(chained, x)) < len(ft.saved_residuals(plain, x))
