"""lax.reduce, lax.reduce_window (and the reduce_window_sum/max/min primitives),
lax.associative_scan, lax.map(batch_size=) and the stax pooling layers: values against NumPy
references written as explicit loops, check_grads (float64, order 2, fwd and rev), jit
against eager, vmap against a Python loop, hypothesis over small windows, and JAX's
documentation examples."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import lax
from functrans.example_libraries import stax
from functrans.test_util import check_grads, check_vmap

RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# NumPy references (explicit loops)

def ref_pads(shape, window, strides, padding, base_dilation, window_dilation):
    """Explicit (lo, hi) pairs; 'SAME' per JAX: out = ceil(in / stride), odd element high."""
    if not isinstance(padding, str):
        return list(padding)
    if padding == "VALID":
        return [(0, 0)] * len(shape)
    pads = []
    for n, w, s, b, r in zip(shape, window, strides, base_dilation, window_dilation):
        n, w = (n - 1) * b + 1 if n else 0, (w - 1) * r + 1
        total = max(0, (-(-n // s) - 1) * s + w - n)
        pads.append((total // 2, total - total // 2))
    return pads


def ref_reduce_window(x, init, op, window, strides, padding, base_dilation=None,
                      window_dilation=None):
    """The windowed fold acc = op(acc, elem) from init over every window (row-major window
    order), the operand dilated and padded with init, by loops over elements."""
    nd = x.ndim
    bd = base_dilation or (1,) * nd
    wd = window_dilation or (1,) * nd
    pads = ref_pads(x.shape, window, strides, padding, bd, wd)
    full = [(n - 1) * b + 1 if n else 0 for n, b in zip(x.shape, bd)]
    padded_shape = [f + lo + hi for f, (lo, hi) in zip(full, pads)]
    xp = np.full([max(p, 0) for p in padded_shape], init, x.dtype)
    for i in itertools.product(*map(range, x.shape)):
        pos = [lo + k * b for k, b, (lo, _) in zip(i, bd, pads)]
        if all(0 <= p < n for p, n in zip(pos, padded_shape)):
            xp[tuple(pos)] = x[i]
    span = [(w - 1) * r + 1 for w, r in zip(window, wd)]
    out_shape = [max(0, (n - s_) // st + 1) if n >= s_ else 0
                 for n, s_, st in zip(padded_shape, span, strides)]
    out = np.empty(out_shape, x.dtype)
    for o in itertools.product(*map(range, out_shape)):
        acc = init
        for w in itertools.product(*map(range, window)):
            acc = op(acc, xp[tuple(a * st + b * r for a, st, b, r in zip(o, strides, w, wd))])
        out[o] = acc
    return out


def ref_reduce(x, init, op, dims):
    """The fold acc = op(acc, elem) from init over dims (row-major order), by loops."""
    kept = [d for d in range(x.ndim) if d not in dims]
    out = np.empty([x.shape[d] for d in kept], x.dtype)
    for o in itertools.product(*[range(x.shape[d]) for d in kept]):
        acc = init
        for r in itertools.product(*[range(x.shape[d]) for d in dims]):
            idx = [0] * x.ndim
            for d, v in zip(kept + list(dims), o + r):
                idx[d] = v
            acc = op(acc, x[tuple(idx)])
        out[o] = acc
    return out


def distinct(shape):
    """Values 0.1 apart in random order: no ties, so finite differences see no kinks."""
    n = int(np.prod(shape))
    return (RNG.permutation(n).reshape(shape) - n / 2) * 0.1


# ---------------------------------------------------------------------------------------------
# Forward values: hypothesis over small windows (eager; the impls)

@st.composite
def window_cases(draw, max_dims=2):
    nd = draw(st.integers(1, max_dims))
    shape = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    window = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    bd = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    wd = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = draw(st.one_of(st.sampled_from(["VALID", "SAME"]),
                             st.tuples(*[st.tuples(st.integers(-1, 2), st.integers(-1, 2))
                                         for _ in range(nd)])))
    full = [(n - 1) * b + 1 for n, b in zip(shape, bd)]
    pads = ref_pads(shape, window, strides, padding, bd, wd)
    if any(f + lo + hi < 0 for f, (lo, hi) in zip(full, pads)):
        padding = "VALID"
    return shape, window, strides, padding, bd, wd


MONOIDS = [("sum", lax.add, 0.0, np.add), ("max", lax.max, -np.inf, np.maximum),
           ("min", lax.min, np.inf, np.minimum)]


@settings(max_examples=25, deadline=None)
@given(case=window_cases())
def test_reduce_window_values(case):
    shape, window, strides, padding, bd, wd = case
    x = RNG.normal(size=shape)
    for name, op, init, np_op in MONOIDS:
        got = lax.reduce_window(x, init, op, window, strides, padding, bd, wd)
        want = ref_reduce_window(x, init, np_op, window, strides, padding, bd, wd)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)
    # a general (non-monoid) computation: the fold, init in the padding
    got = lax.reduce_window(x, 0.5, lambda a, b: a * 0.5 + b, window, strides, padding, bd, wd)
    want = ref_reduce_window(x, 0.5, lambda a, b: a * 0.5 + b, window, strides, padding, bd, wd)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@settings(max_examples=15, deadline=None)
@given(case=window_cases())
def test_reduce_window_sum_transpose_is_the_adjoint(case):
    """<ct, f(x)> == <f^T(ct), x> for the linear reduce_window_sum (its transpose rule)."""
    shape, window, strides, padding, bd, wd = case
    x = RNG.normal(size=shape)
    f = lambda v: lax.reduce_window(v, 0.0, lax.add, window, strides, padding, bd, wd)  # noqa: E731
    y, vjp = ft.vjp(f, x)
    ct = RNG.normal(size=np.shape(y))
    (ct_x,) = vjp(ct)
    np.testing.assert_allclose(np.vdot(ct, y), np.vdot(ct_x, x), rtol=1e-10, atol=1e-12)


def test_padtype_to_pads_and_shape_tuple_follow_jax():
    assert lax.padtype_to_pads((5, 6), (2, 3), (2, 1), "SAME") == [(0, 1), (1, 1)]
    assert lax.padtype_to_pads((5,), (2,), (2,), "SAME_LOWER") == [(1, 0)]
    assert lax.padtype_to_pads((5,), (2,), (2,), "VALID") == [(0, 0)]
    assert lax.reduce_window_shape_tuple((5, 6), (2, 3), (2, 1), [(0, 1), (1, 1)]) == (3, 6)
    with pytest.raises(ValueError, match="unknown padding 'FULL'"):
        lax.reduce_window(np.ones(3), 0.0, lax.add, (2,), (1,), "FULL")
    with pytest.raises(TypeError, match="window_strides"):
        lax.reduce_window(np.ones((3, 3)), 0.0, lax.add, (2, 2), (1,), "VALID")
    with pytest.raises(ValueError, match="window_dimensions must be positive"):
        lax.reduce_window(np.ones(3), 0.0, lax.add, (0,), (1,), "VALID")


def test_monoids_become_the_dedicated_primitives():
    x = np.ones((4, 4))
    prims = lambda f: {e.primitive.name for e in ft.make_jaxpr(f)(x).jaxpr.eqns}  # noqa: E731
    assert prims(lambda v: lax.reduce_window(v, 0.0, lax.add, (2, 2), (1, 1), "VALID")) == {"reduce_window_sum"}
    assert prims(lambda v: lax.reduce_window(v, -np.inf, lambda a, b: lax.max(a, b), (2, 2), (1, 1), "VALID")) == {"reduce_window_max"}
    assert prims(lambda v: lax.reduce_window(v, np.inf, lax.min, (2, 2), (1, 1), "VALID")) == {"reduce_window_min"}
    assert prims(lambda v: lax.reduce_window(v, 1.0, lax.add, (2, 2), (1, 1), "VALID")) == {"reduce_window"}
    assert prims(lambda v: lax.reduce_window(v, 1.0, lax.mul, (2, 2), (1, 1), "VALID")) == {"reduce_window"}
    assert prims(lambda v: lax.reduce(v, 0.0, lambda a, b: a + b, (0,))) == {"reduce_sum"}
    assert prims(lambda v: lax.reduce(v, 1.0, lax.mul, (0,))) == {"reduce_prod"}
    assert prims(lambda v: lax.reduce(v, -np.inf, lax.max, (0, 1))) == {"reduce_max"}
    assert prims(lambda v: lax.reduce(v, 2.0, lax.add, (0,))) == {"reduce"}
    b = np.array([[True, False], [True, True]])
    assert {e.primitive.name for e in ft.make_jaxpr(
        lambda v: lax.reduce(v, False, lax.bitwise_or, (1,)))(b).jaxpr.eqns} == {"reduce_max"}
    np.testing.assert_array_equal(lax.reduce(b, True, lax.bitwise_and, (1,)), [False, True])
    np.testing.assert_array_equal(lax.reduce(b, False, lax.bitwise_or, (0,)), [True, True])


@pytest.mark.parametrize("dims", [(0,), (1,), (0, 2), (0, 1, 2), ()])
def test_reduce_values(dims):
    x = RNG.normal(size=(2, 3, 2))
    np.testing.assert_allclose(lax.reduce(x, 0.0, lax.add, dims), x.sum(dims))
    np.testing.assert_allclose(lax.reduce(x, -np.inf, lax.max, dims), x.max(dims) if dims else x)
    comp = lambda a, b: a * 0.5 + jnp.sin(b)  # noqa: E731  (not associative: a true fold)
    want = ref_reduce(x, 0.25, lambda a, b: a * 0.5 + np.sin(b), list(dims))
    np.testing.assert_allclose(lax.reduce(x, 0.25, comp, dims), want, rtol=1e-12)


def test_reduce_variadic_pytrees():
    """Several operands (a pytree) reduced together: an argmax as JAX's docs build it."""
    x = np.array([[3.0, 7.0, 7.0, 1.0], [2.0, -1.0, 5.0, 5.0]])
    idx = np.broadcast_to(np.arange(4), x.shape)

    def better(a, b):
        (va, ia), (vb, ib) = a, b
        take_b = (vb > va) | ((vb == va) & (ib < ia))
        return jnp.where(take_b, vb, va), jnp.where(take_b, ib, ia)
    vals, arg = lax.reduce((x, idx), (-np.inf, 0), better, (1,))
    np.testing.assert_array_equal(vals, [7.0, 5.0])
    np.testing.assert_array_equal(arg, [1, 2])
    out = lax.reduce({"s": x, "p": x}, {"s": 0.0, "p": 1.0},
                     lambda a, b: {"s": a["s"] + b["s"], "p": a["p"] * b["p"]}, (0,))
    np.testing.assert_allclose(out["s"], x.sum(0))
    np.testing.assert_allclose(out["p"], x.prod(0))
    with pytest.raises(ValueError, match="same tree structure"):
        lax.reduce((x, x), 0.0, lax.add, (0,))
    with pytest.raises(TypeError, match="structure and types of the init values"):
        lax.reduce(x, 0.0, lambda a, b: (a, b), (0,))


# ---------------------------------------------------------------------------------------------
# Derivatives

WINDOW_FNS = {
    "sum": lambda v: lax.reduce_window(v, 0.0, lax.add, (2, 3), (2, 1), ((1, 0), (-1, 2)),
                                       (2, 1), (1, 2)),
    "max": lambda v: lax.reduce_window(v, -np.inf, lax.max, (2, 2), (1, 2), "SAME", (1, 2), (2, 1)),
    "min": lambda v: lax.reduce_window(v, np.inf, lax.min, (3, 2), (1, 1), ((1, 1), (0, 1))),
    "general": lambda v: lax.reduce_window(v, 1.0, lax.mul, (2, 2), (1, 1), "SAME"),
    "general_fold": lambda v: lax.reduce_window(v, 0.5, lambda a, b: a * jnp.cos(b), (2, 1),
                                                (1, 1), ((1, 0), (0, 0)), None, (1, 1)),
}


@pytest.mark.parametrize("name", sorted(WINDOW_FNS))
def test_reduce_window_check_grads(name):
    x = distinct((4, 3)) if name in ("max", "min") else RNG.uniform(0.5, 1.5, (4, 3))
    check_grads(WINDOW_FNS[name], (x,), order=2, modes=("fwd", "rev"))


def test_reduce_check_grads():
    x = RNG.uniform(0.5, 1.5, (3, 4))
    check_grads(lambda v: lax.reduce(v, 0.25, lambda a, b: a * 0.5 + jnp.sin(b), (1,)), (x,),
                order=2, modes=("fwd", "rev"))
    check_grads(lambda v, i: lax.reduce((v, v * v), (i, 1.0),
                                        lambda a, b: (a[0] * b[0], a[1] + b[1]), (0,)),
                (x, 0.75), order=2, modes=("fwd", "rev"))
    check_grads(lambda v: lax.reduce(v, -np.inf, lax.max, (0,)), (distinct((3, 4)),), order=2)


def first_max_grad(x, window, strides, padding):
    """The gradient of sum(max pool) that JAX gives (XLA's select_and_scatter_add with ge): the
    whole cotangent of each window to its FIRST maximum in row-major order (padding is -inf)."""
    pads = ref_pads(x.shape, window, strides, padding, (1,) * x.ndim, (1,) * x.ndim)
    g = np.zeros_like(x)
    out_shape = [(n + lo + hi - w) // s + 1 for n, (lo, hi), w, s in zip(x.shape, pads, window, strides)]
    for o in itertools.product(*map(range, out_shape)):
        best, where = -np.inf, None
        for w in itertools.product(*map(range, window)):
            i = tuple(a * s + b - lo for a, s, b, (lo, _) in zip(o, strides, w, pads))
            if all(0 <= k < n for k, n in zip(i, x.shape)) and x[i] > best:
                best, where = x[i], i
        if where is not None:
            g[where] += 1
    return g


@pytest.mark.parametrize("padding", ["VALID", "SAME"])
def test_max_pool_grad_at_ties_goes_to_the_first_maximum(padding):
    x = np.array([[1.0, 1.0, 0.0, 2.0], [1.0, 1.0, 2.0, 2.0], [3.0, 0.0, 3.0, 3.0]])
    f = lambda v: lax.reduce_window(v, -np.inf, lax.max, (2, 2), (1, 1), padding)  # noqa: E731
    g = ft.grad(lambda v: f(v).sum())(x)
    np.testing.assert_array_equal(g, first_max_grad(x, (2, 2), (1, 1), padding))
    if padding == "VALID":   # spelled out: each window's cotangent lands on its first maximum
        np.testing.assert_array_equal(g, [[1, 0, 0, 1], [0, 0, 1, 0], [1, 0, 2, 0]])
    ones = ft.grad(lambda v: f(v).sum())(np.ones((3, 3)))
    np.testing.assert_array_equal(ones, first_max_grad(np.ones((3, 3)), (2, 2), (1, 1), padding))
    # forward mode agrees: the tangent of each output is the tangent at its first maximum
    t = RNG.normal(size=x.shape)
    _, jt = ft.jvp(f, (x,), (t,))
    _, vjp = ft.vjp(f, x)
    ct = RNG.normal(size=np.shape(jt))
    np.testing.assert_allclose(np.vdot(ct, jt), np.vdot(vjp(ct)[0], t), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# jit against eager (one compile per bundle: numba compiles are slow) and vmap against a loop

def _bundle(v):
    outs = {k: f(v) for k, f in WINDOW_FNS.items()}
    outs["reduce"] = lax.reduce(v, 0.25, lambda a, b: a * 0.5 + jnp.sin(b), (1,))
    outs["variadic"] = lax.reduce((v, v), (0.0, 1.0), lambda a, b: (a[0] + b[0], a[1] * b[1]), (0,))
    outs["int_max"] = lax.reduce_window((v * 10).astype(np.int32), np.iinfo(np.int32).min,
                                        lax.max, (2, 2), (1, 1), "SAME")
    outs["grad_max"] = ft.grad(lambda u: WINDOW_FNS["max"](u).sum())(v)
    outs["grad_sum"] = ft.grad(lambda u: WINDOW_FNS["sum"](u).sum())(v)
    return outs


def test_jit_matches_eager():
    x = distinct((4, 3))
    got, want = ft.jit(_bundle)(x), _bundle(x)
    for k in want:
        for g, w in zip(ft.tree_util.tree_leaves(got[k]), ft.tree_util.tree_leaves(want[k])):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("name", sorted(WINDOW_FNS) + ["reduce"])
def test_vmap_matches_loop(name):
    f = WINDOW_FNS.get(name) or (lambda v: lax.reduce(v, 0.25, lambda a, b: a * 0.5 + b, (0,)))
    xs = RNG.uniform(0.5, 1.5, (3, 4, 3))
    check_vmap(f, (xs,), 0)
    check_vmap(f, (np.moveaxis(xs, 0, 2),), 2, out_axes=1)


def test_vmap_of_grad_of_max_pool():
    xs = np.stack([distinct((4, 3)) for _ in range(3)])
    check_vmap(ft.grad(lambda v: WINDOW_FNS["max"](v).sum()), (xs,), 0)


def test_batched_init_values_name_the_primitive():
    with pytest.raises(NotImplementedError, match="'reduce'.*batched init"):
        ft.vmap(lambda i: lax.reduce(np.ones(3), i, lambda a, b: a * b + 1.0, (0,)))(np.ones(2))


# ---------------------------------------------------------------------------------------------
# associative_scan

def sequential_scan(fn, elems):
    """out[0] = elems[0], out[i] = fn(out[i-1], elems[i]) along axis 0 (pytree of arrays)."""
    leaves, tree = ft.tree_util.tree_flatten(elems)
    n = leaves[0].shape[0]
    acc = [v[0] for v in leaves]
    outs = [acc]
    for i in range(1, n):
        acc = ft.tree_util.tree_leaves(fn(ft.tree_util.tree_unflatten(tree, acc),
                                          ft.tree_util.tree_unflatten(tree, [v[i] for v in leaves])))
        outs.append(acc)
    return ft.tree_util.tree_unflatten(tree, [np.stack(c) for c in zip(*outs)])


def matmul2(a, b):
    return jnp.einsum("...ij,...jk->...ik", a, b)


def linear_recurrence(e1, e2):
    """(a, b) pairs of h -> a h + b: composing them is associative, not commutative."""
    (a1, b1), (a2, b2) = e1, e2
    return a1 * a2, a2 * b1 + b2


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 8, 9])
def test_associative_scan_matches_sequential(n):
    x = RNG.normal(size=(n, 3))
    np.testing.assert_allclose(lax.associative_scan(jnp.add, x), np.cumsum(x, 0), rtol=1e-12)
    np.testing.assert_allclose(lax.associative_scan(jnp.multiply, x.T, axis=1),
                               np.cumprod(x.T, 1), rtol=1e-12)
    np.testing.assert_allclose(lax.associative_scan(jnp.add, x, reverse=True),
                               np.cumsum(x[::-1], 0)[::-1], rtol=1e-12)
    m = RNG.normal(size=(n, 2, 2))
    np.testing.assert_allclose(lax.associative_scan(matmul2, m),
                               sequential_scan(lambda a, b: a @ b, m), rtol=1e-10)
    pairs = (RNG.normal(size=n), RNG.normal(size=n))
    got = lax.associative_scan(linear_recurrence, pairs)
    want = sequential_scan(linear_recurrence, pairs)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-10)
    # reverse: later elements come first in fn (as JAX: the scan of the reversed sequence)
    got = lax.associative_scan(matmul2, m, reverse=True)
    want = sequential_scan(lambda a, b: a @ b, m[::-1])[::-1]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_associative_scan_transforms():
    m = RNG.normal(size=(5, 2, 2))
    check_grads(lambda v: lax.associative_scan(matmul2, v), (m,), order=2, modes=("fwd", "rev"))
    pairs = (RNG.uniform(0.5, 1.0, 6), RNG.normal(size=6))
    check_grads(lambda a, b: lax.associative_scan(linear_recurrence, (a, b)), pairs, order=2)
    check_vmap(lambda v: lax.associative_scan(matmul2, v), (RNG.normal(size=(3, 5, 2, 2)),), 0)
    f = ft.jit(lambda v: lax.associative_scan(jnp.add, v, reverse=True, axis=-1))
    x = RNG.normal(size=(2, 5))
    np.testing.assert_allclose(f(x), np.cumsum(x[:, ::-1], 1)[:, ::-1], rtol=1e-12)


def test_associative_scan_errors():
    with pytest.raises(ValueError, match="same length"):
        lax.associative_scan(lambda a, b: a, (np.ones(3), np.ones(4)))
    with pytest.raises(TypeError, match="must be callable"):
        lax.associative_scan(3, np.ones(3))


def test_jax_doc_examples():
    # jax.lax.associative_scan's docstring
    np.testing.assert_array_equal(lax.associative_scan(jnp.add, jnp.arange(0, 4)), [0, 1, 3, 6])
    np.testing.assert_array_equal(lax.associative_scan(jnp.add, jnp.arange(0, 4), reverse=True),
                                  [6, 6, 5, 3])
    # jax.lax.reduce_window: a 2x2 max pool with stride 2 (the pooling pattern of its docs)
    x = jnp.arange(16.0).reshape(4, 4)
    np.testing.assert_array_equal(lax.reduce_window(x, -jnp.inf, lax.max, (2, 2), (2, 2), "VALID"),
                                  [[5.0, 7.0], [13.0, 15.0]])
    # jax.lax.reduce: a sum over axis 0 and an argmax-style variadic reduction
    np.testing.assert_array_equal(lax.reduce(jnp.arange(6).reshape(2, 3), 0, lax.add, (0,)),
                                  [3, 5, 7])
    # jax.lax.map's docstring: batch_size gives the same result as the unbatched map
    xs = jnp.arange(7.0)
    np.testing.assert_array_equal(lax.map(lambda v: v ** 2, xs, batch_size=3),
                                  lax.map(lambda v: v ** 2, xs))


# ---------------------------------------------------------------------------------------------
# lax.map(batch_size=)

@pytest.mark.parametrize("n,batch_size", [(7, 3), (6, 3), (2, 3), (5, 1), (4, 8)])
def test_map_batch_size_equals_plain_map(n, batch_size):
    xs = {"a": RNG.normal(size=(n, 2)), "b": RNG.normal(size=n)}
    f = lambda d: (jnp.sin(d["a"]) * d["b"], {"s": d["a"].sum()})  # noqa: E731
    got, want = lax.map(f, xs, batch_size=batch_size), lax.map(f, xs)
    for g, w in zip(ft.tree_util.tree_leaves(got), ft.tree_util.tree_leaves(want)):
        assert np.shape(g) == np.shape(w)
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_map_batch_size_transforms():
    xs = RNG.normal(size=(5, 2))
    f = lambda v: lax.map(lambda r: jnp.tanh(r) * r[0], v, batch_size=2)  # noqa: E731
    np.testing.assert_allclose(ft.jit(f)(xs), f(xs), rtol=1e-12)
    check_grads(f, (xs,), order=2, modes=("fwd", "rev"))
    check_vmap(f, (RNG.normal(size=(3, 5, 2)),), 0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        lax.map(jnp.sin, xs, batch_size=0)


# ---------------------------------------------------------------------------------------------
# stax pooling

@pytest.mark.parametrize("layer,op,init", [(stax.MaxPool, np.maximum, -np.inf),
                                           (stax.SumPool, np.add, 0.0),
                                           (stax.AvgPool, np.add, 0.0)])
@pytest.mark.parametrize("padding,strides", [("VALID", None), ("SAME", (2, 1))])
def test_pooling_layers(layer, op, init, padding, strides):
    x = RNG.normal(size=(2, 5, 4, 3))
    init_fun, apply_fun = layer((3, 2), strides, padding)
    out_shape, params = init_fun(ft.random.PRNGKey(0), x.shape)
    y = apply_fun(params, x)
    assert params == () and tuple(out_shape) == np.shape(y)
    full_strides = (1,) + (strides or (1, 1)) + (1,)
    want = ref_reduce_window(x, init, op, (1, 3, 2, 1), full_strides, padding)
    if layer is stax.AvgPool:   # divided by the number of in-input elements of each window
        want = want / ref_reduce_window(np.ones_like(x), 0.0, np.add, (1, 3, 2, 1), full_strides,
                                        padding)
    np.testing.assert_allclose(y, want, rtol=1e-12)


def test_pooling_spec_and_grad():
    x = RNG.normal(size=(2, 3, 4, 4))   # NCHW
    init_fun, apply_fun = stax.AvgPool((2, 2), (2, 2), "SAME", spec="NCHW")
    out_shape, _ = init_fun(None, x.shape)
    y = apply_fun((), x)
    assert tuple(out_shape) == y.shape == (2, 3, 2, 2)
    np.testing.assert_allclose(y, x.reshape(2, 3, 2, 2, 2, 2).mean((3, 5)), rtol=1e-12)
    _, max_apply = stax.MaxPool((2, 2), (2, 2))
    check_grads(lambda v: max_apply((), v), (distinct((1, 4, 4, 2)),), order=2)
    net_init, net_apply = stax.serial(stax.MaxPool((2, 2)), stax.Flatten, stax.Dense(3))
    shape, params = net_init(ft.random.PRNGKey(1), (2, 4, 4, 1))
    assert tuple(shape) == (2, 3) and net_apply(params, np.ones((2, 4, 4, 1))).shape == (2, 3)
