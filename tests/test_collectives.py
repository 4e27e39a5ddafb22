"""Collectives over named axes (functrans.lax.parallel) inside vmap(..., axis_name=): the JAX
documentation examples, every collective against a NumPy loop over the members, nested named
and unnamed vmaps, unbatched operands, derivatives (closed forms, the identity
vmap(grad(g)) == grad(sum . vmap(g)), check_grads of order 2 in both modes), jit, scan and
cond, make_jaxpr's axis_env, NameError for unbound names, and the runner hook of an axis
frame."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import core, lax
from functrans.test_util import check_grads

RNG = np.random.default_rng(0)
RING = [(0, 1), (1, 2), (2, 3), (3, 0)]


def distinct(*shape):
    """float64 values well apart (no ties for pmax/pmin, even under finite differences)."""
    n = int(np.prod(shape))
    return (RNG.permutation(n).reshape(shape) - n / 2) * 0.37 + 0.05


def named(f, **kw):
    return ft.vmap(f, axis_name="i", **kw)


# ---------------------------------------------------------------------------------------------
# The JAX documentation examples

def test_jax_docs_pmean_centering():
    x = np.arange(5.0)
    np.testing.assert_allclose(named(lambda v: v - lax.pmean(v, "i"))(x), x - 2.0)


def test_jax_docs_vmap_normalisation():
    # jax.vmap's docstring: normalise each element by the sum over the named axis
    out = ft.vmap(lambda x: x / lax.psum(x, "i"), axis_name="i")(jnp.arange(4.0))
    np.testing.assert_allclose(out, np.arange(4.0) / 6.0)


def test_jax_docs_psum_and_all_gather():
    x = np.arange(4)
    np.testing.assert_array_equal(named(lambda v: lax.psum(v, "i"))(x), [6, 6, 6, 6])
    np.testing.assert_array_equal(named(lambda v: lax.all_gather(v, "i"))(x), np.tile(x, (4, 1)))
    y = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(named(lambda v: lax.psum(v, "i"))(y), np.tile([24, 28, 32, 36], (4, 1)))
    np.testing.assert_array_equal(named(lambda v: lax.psum_scatter(v, "i"))(y), [24, 28, 32, 36])
    np.testing.assert_array_equal(named(lambda v: lax.psum_scatter(v, "i", tiled=True))(y),
                                  [[24], [28], [32], [36]])


def test_jax_docs_nested_vmap_psum_over_two_axes():
    x = RNG.normal(size=(3, 4, 2))
    f = ft.vmap(ft.vmap(lambda v: lax.psum(v, ("i", "j")), axis_name="j"), axis_name="i")
    np.testing.assert_allclose(f(x), np.broadcast_to(x.sum((0, 1)), x.shape))
    g = ft.vmap(ft.vmap(lambda v: lax.psum(v, "i") - lax.psum(v, "j"), axis_name="j"), axis_name="i")
    np.testing.assert_allclose(g(x), x.sum(0, keepdims=True) - x.sum(1, keepdims=True))


# ---------------------------------------------------------------------------------------------
# Every collective against a loop over the members (X stacks the members' values on axis 0)

def loop_all_gather(X, axis, tiled):
    one = np.concatenate(list(X), axis) if tiled else np.stack(list(X), axis)
    return np.stack([one] * len(X))


def loop_psum_scatter(X, sd, tiled):
    total = X.sum(0)
    n = len(X)
    return np.stack([np.split(total, n, sd)[k] if tiled else np.take(total, k, sd) for k in range(n)])


def loop_ppermute(X, perm):
    out = np.zeros_like(X)
    for s, d in perm:
        out[d] = X[s]
    return out


def loop_all_to_all(X, sa, ca, tiled):
    n = len(X)
    if tiled:
        return np.stack([np.concatenate([np.split(X[j], n, sa)[k] for j in range(n)], ca)
                         for k in range(n)])
    return np.stack([np.stack([np.take(X[j], k, sa) for j in range(n)], ca) for k in range(n)])


def test_reductions_match_the_loop():
    X = distinct(4, 2, 3)
    for f, ref in [(lax.psum, X.sum(0)), (lax.pmean, X.mean(0)), (lax.pmax, X.max(0)),
                   (lax.pmin, X.min(0))]:
        np.testing.assert_allclose(named(lambda v: f(v, "i"))(X), np.broadcast_to(ref, X.shape))


def test_axis_index_and_axis_size():
    out = named(lambda v: (lax.axis_index("i"), lax.axis_size("i")))(np.zeros(5))
    np.testing.assert_array_equal(out[0], np.arange(5))
    assert out[0].dtype == np.int32
    np.testing.assert_array_equal(out[1], [5] * 5)
    size = []
    named(lambda v: size.append(lax.axis_size("i")) or v)(np.zeros(3))
    assert size == [3] and type(size[0]) is int     # a static Python int, usable in shapes


def test_axis_index_of_two_names_is_row_major():
    f = ft.vmap(ft.vmap(lambda v: lax.axis_index(("i", "j")), axis_name="j"), axis_name="i")
    np.testing.assert_array_equal(f(np.zeros((3, 4))), np.arange(12).reshape(3, 4))
    assert ft.vmap(ft.vmap(lambda v: lax.axis_size(("i", "j")), axis_name="j"),
                   axis_name="i")(np.zeros((3, 4)))[0, 0] == 12


def test_ppermute_ring_and_partial_permutation():
    X = distinct(4, 3)
    np.testing.assert_array_equal(named(lambda v: lax.ppermute(v, "i", RING))(X), loop_ppermute(X, RING))
    part = [(0, 2), (3, 1)]           # members 0 and 3 receive nothing: zeros (JAX's docstring)
    np.testing.assert_array_equal(named(lambda v: lax.ppermute(v, "i", part))(X), loop_ppermute(X, part))


@settings(max_examples=12, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2), st.booleans(), st.integers(0, 100), st.integers(0, 2))
def test_data_moving_collectives_match_the_loop(ndim, axis_seed, tiled, seed, in_axis_seed):
    rng = np.random.default_rng(seed)
    n = 3
    shape = [int(s) for s in rng.integers(1, 3, ndim)]
    axis = axis_seed % ndim
    shape[axis] = n * (2 if tiled else 1)   # the scatter/split axis fits the named axis
    X = rng.normal(size=(n, *shape))
    in_axis = in_axis_seed % (ndim + 1)     # the named axis anywhere in the argument
    Xin = np.moveaxis(X, 0, in_axis)

    def run(f):
        return named(f, in_axes=in_axis)(Xin)

    gather_axis = axis if tiled else (axis_seed % (ndim + 1))
    np.testing.assert_allclose(run(lambda v: lax.all_gather(v, "i", axis=gather_axis, tiled=tiled)),
                               loop_all_gather(X, gather_axis, tiled))
    np.testing.assert_allclose(run(lambda v: lax.psum_scatter(v, "i", scatter_dimension=axis, tiled=tiled)),
                               loop_psum_scatter(X, axis, tiled), rtol=1e-12, atol=1e-12)
    ca = int(rng.integers(0, ndim if tiled else ndim))
    np.testing.assert_allclose(run(lambda v: lax.all_to_all(v, "i", axis, ca, tiled=tiled)),
                               loop_all_to_all(X, axis, ca, tiled))
    perm = list(zip(range(n), [int(p) for p in rng.permutation(n)]))
    np.testing.assert_allclose(run(lambda v: lax.ppermute(v, "i", perm)), loop_ppermute(X, perm))
    np.testing.assert_allclose(run(lambda v: lax.psum(v, "i")), np.broadcast_to(X.sum(0), X.shape),
                               rtol=1e-12)


def test_negative_axes_and_pswapaxes():
    X = distinct(4, 2, 4)
    np.testing.assert_allclose(named(lambda v: lax.all_gather(v, "i", axis=-1))(X),
                               loop_all_gather(X, 2, False))
    np.testing.assert_allclose(named(lambda v: lax.pswapaxes(v, "i", 1))(X),
                               loop_all_to_all(X, 1, 1, False))


def test_pytrees_bool_and_integer_dtypes():
    x, y = distinct(4), distinct(4, 2)
    out = named(lambda a, b: lax.psum({"a": a, "b": (b,)}, "i"))(x, y)
    np.testing.assert_allclose(out["a"], np.full(4, x.sum()))
    np.testing.assert_allclose(out["b"][0], np.broadcast_to(y.sum(0), y.shape))
    counts = named(lambda v: lax.psum(v > 0, "i"))(x)
    assert counts.dtype == np.int32 and list(counts) == [int((x > 0).sum())] * 4
    means = named(lambda v: lax.pmean(v, "i"))(np.arange(4))
    assert means.dtype == np.float64 and np.allclose(means, 1.5)
    assert named(lambda v: lax.pmax(v, "i"))(np.arange(4)).dtype == np.arange(4).dtype


def test_out_axes_none_for_results_the_same_on_every_member():
    x = distinct(4)
    np.testing.assert_allclose(named(lambda v: lax.psum(v, "i"), out_axes=None)(x), x.sum())
    np.testing.assert_allclose(named(lambda v: lax.all_gather(v, "i"), out_axes=None)(x), x)
    with pytest.raises(ValueError, match="out_axes is None"):
        named(lambda v: lax.axis_index("i"), out_axes=None)(x)


# ---------------------------------------------------------------------------------------------
# Values that do not vary along the axis, and other vmaps

def test_unbatched_operands_follow_jax():
    x = distinct(4)

    def f(v):
        return (lax.psum(2.0, "i"), lax.psum(jnp.ones(2), "i"), lax.pmax(3.0, "i"),
                lax.pmean(jnp.float64(5.0), "i"), lax.all_gather(jnp.float64(2.0), "i"),
                lax.ppermute(jnp.float64(7.0), "i", RING), lax.ppermute(jnp.float64(7.0), "i", [(0, 1)]),
                lax.psum_scatter(jnp.ones(4), "i"), lax.all_to_all(jnp.arange(4.0), "i", 0, 0))
    outs = named(f)(x)
    expected = [np.full(4, 8.0), np.full((4, 2), 4.0), np.full(4, 3.0), np.full(4, 5.0),
                np.full((4, 4), 2.0), np.full(4, 7.0), np.array([0, 7.0, 0, 0]), np.full(4, 4.0),
                np.tile(np.arange(4.0)[:, None], (1, 4))]
    for o, e in zip(outs, expected):
        np.testing.assert_allclose(o, e)
    # psum of a constant is computed directly, as in JAX: Python scalars stay Python scalars
    seen = []
    named(lambda v: seen.append((lax.psum(1, "i"), lax.psum(2.5, "i"))) or v)(x)
    assert seen == [(4, 10.0)] and type(seen[0][0]) is int


def test_inner_unnamed_vmap_commutes():
    X = distinct(3, 4, 2)      # i over axis 0, an unnamed vmap over axis 1
    f = named(ft.vmap(lambda v: lax.psum(v, "i") * lax.axis_index("i")))
    np.testing.assert_allclose(f(X), X.sum(0)[None] * np.arange(3)[:, None, None])
    g = named(ft.vmap(lambda v: lax.all_gather(v, "i", axis=1)))
    np.testing.assert_allclose(g(X), np.broadcast_to(np.moveaxis(X, 0, 2)[None], (3, 4, 2, 3)))
    h = ft.vmap(named(lambda v: lax.ppermute(v, "i", [(0, 1), (1, 2), (2, 0)])), in_axes=1)
    np.testing.assert_allclose(h(X), np.roll(np.moveaxis(X, 1, 0), 1, axis=1))
    k = named(ft.vmap(lambda v: lax.psum_scatter(v, "i", scatter_dimension=0)), in_axes=0)
    Y = distinct(3, 2, 3)
    np.testing.assert_allclose(k(Y), np.moveaxis(Y.sum(0), 1, 0))


def test_shadowed_names_refer_to_the_innermost_vmap():
    X = distinct(2, 3)
    f = ft.vmap(ft.vmap(lambda v: lax.psum(v, "i"), axis_name="i"), axis_name="i")
    np.testing.assert_allclose(f(X), np.broadcast_to(X.sum(1, keepdims=True), X.shape))


def test_spmd_axis_name_accepted():
    x = distinct(4)
    out = ft.vmap(lambda v: lax.psum(v, "i"), axis_name="i", spmd_axis_name="data")(x)
    np.testing.assert_allclose(out, np.full(4, x.sum()))


# ---------------------------------------------------------------------------------------------
# Derivatives

def test_grad_inside_vmap_closed_forms():
    x = distinct(4)
    S, n = x.sum(), 4
    # JAX transposes psum to psum: vmap(grad(g)) is the gradient of the sum over members
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.psum(v, "i")))(x), np.full(4, n))
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.psum(v ** 2, "i")))(x), 2 * n * x)
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.pmean(v ** 2, "i")))(x), 2 * x)
    np.testing.assert_allclose(named(ft.grad(lambda v: v * lax.psum(v, "i")))(x), np.full(4, 2 * S))
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.pmax(v ** 2, "i")))(x),
                               np.where(x ** 2 == (x ** 2).max(), 2 * x * n, 0))
    w = np.arange(4.0)
    np.testing.assert_allclose(named(ft.grad(lambda v: (lax.all_gather(v, "i") ** 2 * w).sum()))(x),
                               2 * x * w * n)
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.ppermute(v, "i", RING) * lax.axis_index("i")))(x),
                               np.roll(np.arange(4.0), -1))


def test_grad_of_vmap_closed_form():
    x = distinct(4)
    g = ft.grad(lambda a: named(lambda v: lax.psum(v, "i") * v)(a).sum())(x)
    np.testing.assert_allclose(g, np.full(4, 2 * x.sum()))


def test_pmax_ties_split_the_tangent():
    x = np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_allclose(ft.grad(lambda a: named(lambda v: lax.pmax(v, "i"))(a)[0])(x),
                               [0, 0.5, 0.5, 0])
    np.testing.assert_allclose(named(ft.grad(lambda v: lax.pmax(v, "i")))(x), [0, 2, 2, 0])


# the collectives differentiated: g is per member; X stacks the members on axis 0
GS = {
    "psum": (lambda v: jnp.sin(lax.psum(v * v, "i")) * v, (4, 2)),
    "pmean": (lambda v: lax.pmean(jnp.exp(v), "i") * v, (4,)),
    "pmax": (lambda v: lax.pmax(v ** 3, "i") * v, (4, 2)),
    "pmin": (lambda v: lax.pmin(jnp.sin(v), "i") + v * v, (4,)),
    "all_gather": (lambda v: jnp.sum(lax.all_gather(v, "i") ** 2 * jnp.arange(8.0).reshape(4, 2)) * v,
                   (4, 2)),
    "all_gather_tiled": (lambda v: jnp.tanh(lax.all_gather(v, "i", axis=0, tiled=True)) * 2.0, (4, 2)),
    "ppermute": (lambda v: lax.ppermute(v ** 2, "i", RING) * v, (4, 3)),
    "psum_scatter": (lambda v: lax.psum_scatter(v ** 3, "i") * (1.0 + lax.axis_index("i")), (4, 4)),
    "all_to_all": (lambda v: lax.all_to_all(jnp.sin(v), "i", 0, 1) * jnp.arange(12.0).reshape(3, 4), (4, 4, 3)),
}


@pytest.mark.parametrize("name", sorted(GS))
def test_vmap_grad_is_grad_of_the_sum_over_members(name):
    g, shape = GS[name]
    X = distinct(*shape)
    inside = named(ft.grad(lambda v: jnp.sum(g(v))))(X)
    outside = ft.grad(lambda A: jnp.sum(named(g)(A)))(X)
    np.testing.assert_allclose(inside, outside, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(GS))
def test_jvp_inside_vmap_is_the_jvp_of_the_batch(name):
    g, shape = GS[name]
    X, T = distinct(*shape), RNG.normal(size=shape)
    inside = named(lambda v, t: ft.jvp(g, (v,), (t,))[1])(X, T)
    outside = ft.jvp(named(g), (X,), (T,))[1]
    np.testing.assert_allclose(inside, outside, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", sorted(GS))
def test_check_grads_through_collectives(name):
    g, shape = GS[name]
    X = distinct(*shape)
    check_grads(named(g), (X,), order=2, modes=("fwd", "rev"))
    # the inner derivatives come from the collectives' own jvp and transpose rules
    check_grads(named(ft.grad(lambda v: jnp.sum(g(v)))), (X,), order=2, modes=("fwd", "rev"))
    T = RNG.normal(size=shape)
    check_grads(named(lambda v, t: ft.jvp(g, (v,), (t,))[1]), (X, T), order=2, modes=("fwd", "rev"))


def test_hessian_and_jacobians_inside_vmap():
    X = distinct(4, 3)
    n = 4
    h = named(ft.hessian(lambda v: lax.psum(jnp.sum(v ** 3), "i")))(X)
    np.testing.assert_allclose(h, np.stack([np.diag(6 * n * r) for r in X]))
    # as in JAX, forward and reverse mode differ inside a named vmap: jvp sums the members'
    # tangents (each gets the same basis vector), the transpose sums the cotangents
    jf = named(ft.jacfwd(lambda v: lax.psum(v * v, "i")))(X)
    jr = named(ft.jacrev(lambda v: lax.psum(v * v, "i")))(X)
    np.testing.assert_allclose(jf, np.broadcast_to(np.diag(2 * X.sum(0)), (4, 3, 3)))
    np.testing.assert_allclose(jr, np.stack([np.diag(2 * n * r) for r in X]))


def test_nested_named_vmaps_with_grad():
    W = distinct(3, 4)
    f = ft.vmap(ft.vmap(ft.grad(lambda v: lax.psum(v ** 2, ("i", "j"))), axis_name="j"), axis_name="i")
    np.testing.assert_allclose(f(W), 2 * W * 12)
    g = ft.vmap(ft.vmap(ft.grad(lambda v: lax.psum(v ** 2, "i") * v), axis_name="j"), axis_name="i")
    ref = ft.grad(lambda A: jnp.sum(ft.vmap(ft.vmap(lambda v: lax.psum(v ** 2, "i") * v,
                                                    axis_name="j"), axis_name="i")(A)))(W)
    np.testing.assert_allclose(g(W), ref)


# ---------------------------------------------------------------------------------------------
# jit, scan, cond

def test_jit_composes_both_ways():
    x = distinct(4)
    f = named(lambda v: v - lax.pmean(v, "i"))
    np.testing.assert_allclose(ft.jit(f)(x), x - x.mean())
    inner = ft.jit(lambda v: lax.psum(v, "i") * v)
    np.testing.assert_allclose(named(inner)(x), x.sum() * x)
    np.testing.assert_allclose(ft.jit(ft.grad(lambda a: jnp.sum(named(inner)(a))))(x), np.full(4, 2 * x.sum()))
    np.testing.assert_allclose(named(ft.jit(ft.grad(lambda v: lax.psum(v ** 2, "i"))))(x), 8 * x)
    # a jitted body whose operands do not vary along the axis still sees it
    const = named(lambda v: ft.jit(lambda: lax.psum(2.0 * jnp.ones(()), "i"))() + v)(x)
    np.testing.assert_allclose(const, x + 8.0)


def test_scan_and_cond_bodies():
    x = distinct(4)
    ys = named(lambda v: lax.scan(lambda c, _: (lax.psum(c, "i") * 0.5, c), v, None, length=3)[1])(x)
    s = x.sum()
    np.testing.assert_allclose(ys, np.stack([x, np.full(4, s / 2), np.full(4, 4 * s / 2 / 2)], 1))
    ys = named(lambda v: lax.scan(lambda c, _: (lax.psum(c, "i"), c), 1.0, None, length=2)[1] + v)(x)
    np.testing.assert_allclose(ys, x[:, None] + [1.0, 4.0])
    c = named(lambda v: lax.cond(v > 0, lambda u: lax.psum(u, "i"), lambda u: u, v))(x)
    np.testing.assert_allclose(c, np.where(x > 0, s, x))
    g = named(ft.grad(lambda v: lax.scan(lambda c, _: (lax.psum(c * c, "i"), None), v, None, length=2)[0]))(x)
    # c1 = psum(c0^2); c2 = psum(c1^2): d/dx_k of the sum over members is n * 2 c1 * n * 2 x_k
    c1 = (x ** 2).sum()
    np.testing.assert_allclose(g, 16 * c1 * x * 4)


def test_while_checkpoint_and_custom_rules_keep_the_name_bound():
    x = np.arange(1.0, 5.0)
    loop = named(lambda v: lax.while_loop(lambda c: c < 100, lambda c: lax.psum(c, "i") + 1, 1.0) + v)
    np.testing.assert_allclose(loop(x), 341 + x)         # an unbatched carry: c -> 4c + 1
    loop = named(lambda v: lax.while_loop(lambda c: c < 100, lambda c: lax.psum(c, "i") + 1, v))
    np.testing.assert_allclose(loop(x), np.full(4, 181.0))  # 10 -> 11 -> 45 -> 181
    remat = ft.checkpoint(lambda v: lax.psum(jnp.sin(v), "i"))
    np.testing.assert_allclose(named(remat)(x), np.full(4, np.sin(x).sum()))
    np.testing.assert_allclose(named(ft.grad(remat))(x), 4 * np.cos(x))

    @ft.custom_jvp
    def f(v):
        return lax.psum(v, "i") * v
    f.defjvp(lambda p, t: (f(p[0]), lax.psum(t[0], "i") * p[0] + lax.psum(p[0], "i") * t[0]))

    @ft.custom_vjp
    def g(v):
        return lax.psum(v, "i") * v
    g.defvjp(lambda v: (g(v), v), lambda r, ct: (lax.psum(ct * r, "i") + lax.psum(r, "i") * ct,))
    for h in (f, g):
        np.testing.assert_allclose(named(h)(x), 10 * x)
        np.testing.assert_allclose(named(ft.grad(h))(x), np.full(4, 20.0))


# ---------------------------------------------------------------------------------------------
# make_jaxpr's axis_env and unbound names

def test_make_jaxpr_axis_env():
    jaxpr = ft.make_jaxpr(lambda x: lax.psum(x, "i") + lax.axis_index("i"), axis_env=[("i", 4)])(1.0)
    text = str(jaxpr)
    assert "psum[axes=('i',)]" in text and "axis_index" in text
    with pytest.raises(NameError, match="unbound axis name: i"):
        ft.make_jaxpr(lambda x: lax.psum(x, "i"))(1.0)
    with pytest.raises(NameError, match="unbound axis name: i"):
        jaxpr(1.0)          # evaluated where nothing binds 'i'
    with pytest.raises(NameError, match="unbound axis name: i"):
        ft.jit(core.jaxpr_as_fun(jaxpr))(1.0)
    with pytest.raises(TypeError, match="axis_env"):
        ft.make_jaxpr(lambda x: x, axis_env=["i"])(1.0)


@pytest.mark.parametrize("call", [
    lambda x: lax.psum(x, "i"), lambda x: lax.psum(1.0, "i"), lambda x: lax.pmax(x, "i"),
    lambda x: lax.pmean(x, "i"), lambda x: lax.all_gather(x, "i"), lambda x: lax.axis_index("i"),
    lambda x: lax.ppermute(x, "i", [(0, 0)]), lambda x: lax.axis_size("i"),
    lambda x: lax.psum_scatter(x, "i"), lambda x: lax.all_to_all(x, "i", 0, 0),
])
def test_unbound_names_raise_name_error_eagerly_and_under_jit(call):
    x = np.ones(4)
    with pytest.raises(NameError, match="unbound axis name: i"):
        call(x)
    with pytest.raises(NameError, match="unbound axis name: i"):
        ft.jit(call)(x)
    with pytest.raises(NameError, match="unbound axis name: i"):
        ft.vmap(call, axis_name="j")(np.ones((4, 4)))


def test_jit_retraces_per_axis_environment():
    f = ft.jit(lambda v: lax.psum(v, "i"))
    x = distinct(4)
    np.testing.assert_allclose(named(f)(x), np.full(4, x.sum()))
    with pytest.raises(NameError, match="unbound axis name: i"):
        f(1.0)              # the trace made under vmap is not reused outside it
    np.testing.assert_allclose(named(f)(x[:2]), np.full(2, x[:2].sum()))


def test_bad_arguments():
    x = distinct(4, 3)
    with pytest.raises(ValueError, match="sources and destinations must be unique"):
        named(lambda v: lax.ppermute(v, "i", [(0, 1), (1, 1)]))(x)
    with pytest.raises(ValueError, match="outside the axis"):
        named(lambda v: lax.ppermute(v, "i", [(0, 4)]))(x)
    with pytest.raises(ValueError, match="must equal the size 4"):
        named(lambda v: lax.psum_scatter(v, "i"))(x)
    with pytest.raises(ValueError, match="all_to_all requires"):
        named(lambda v: lax.all_to_all(v, "i", 0, 0))(x)
    with pytest.raises(ValueError, match="out of bounds"):
        named(lambda v: lax.all_gather(v, "i", axis=3))(x)
    with pytest.raises(TypeError, match="hashable"):
        ft.vmap(lambda v: v, axis_name=["i"])(x)
    with pytest.raises(NotImplementedError, match="axis_index_groups"):
        named(lambda v: lax.psum(v, "i", axis_index_groups=[[0, 1], [2, 3]]))(x)
    with pytest.raises(NotImplementedError, match="several axes"):
        ft.vmap(named(lambda v: lax.all_gather(v, ("i", "j"))), axis_name="j")(np.ones((2, 4)))


# ---------------------------------------------------------------------------------------------
# The axis environment's hook for collectives run eagerly (an axis over processes, later)

def test_an_axis_frame_runner_evaluates_collectives_eagerly():
    calls = []

    def runner(prim, vals, params):      # two identical "processes": each sum doubles
        calls.append((prim.name, params["axes"]))
        (x,) = vals
        return x * 2 if prim.name == "psum" else x
    with core.extend_axis_env([core.AxisFrame("p", 2, runner)]):
        out = lax.pmax(jnp.arange(3.0), "p")
        summed = lax.psum(np.arange(3.0), "p")     # concrete, yet not the same on every member
        jaxpr = ft.make_jaxpr(lambda v: lax.psum(v, "p"))(1.0)   # the frame binds the name
        # compiled: the collective is a host step between kernels, run by the same runner
        jitted = ft.jit(lambda v: lax.psum(v * 3.0, "p") + 1.0)(np.ones(3))
    assert calls == [("pmax", ("p",)), ("psum", ("p",)), ("psum", ("p",))]
    np.testing.assert_allclose(jitted, np.full(3, 7.0))
    np.testing.assert_allclose(out, np.arange(3.0))
    np.testing.assert_allclose(summed, 2 * np.arange(3.0))
    assert "psum" in str(jaxpr)
