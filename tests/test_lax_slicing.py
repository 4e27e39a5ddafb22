"""Tests for functrans/lax/slicing.py: forward values against NumPy loops, derivatives against
float64 central finite differences (jvp, vjp, second order), vmap against Python loops for every
batch-dim placement, jit, and the closure of the rules under repeated differentiation."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functrans as ft
from functrans import lax
from functrans.lax import slicing as S
from functrans.test_util import check_grads, check_vmap

small = settings(max_examples=25, deadline=None)


def _rng(seed):
    return np.random.default_rng(seed)


shapes = st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 3), min_size=1, max_size=3).map(tuple)
seeds = st.integers(0, 2 ** 16)


def _sum(x):
    return lax.reduce_sum(x, tuple(range(np.ndim(x) if isinstance(x, np.ndarray) else x.ndim)))


# ---------------------------------------------------------------------------------------------
# NumPy loop references

def _ref_pad(x, v, cfg):
    out_shape = [lo + hi + d + max(0, d - 1) * it for d, (lo, hi, it) in zip(x.shape, cfg)]
    out = np.full(out_shape, v, x.dtype)
    for i in np.ndindex(*x.shape):
        pos = tuple(lo + k * (it + 1) for k, (lo, hi, it) in zip(i, cfg))
        if all(0 <= p < n for p, n in zip(pos, out_shape)):
            out[pos] = x[i]
    return out


def _index_tuple(x_shape, row, axes):
    """x's index expression for one idx row: the coordinates on axes, whole slices elsewhere."""
    return tuple(int(row[list(axes).index(d)]) if d in axes else slice(None)
                 for d in range(len(x_shape)))


def _ref_gather(x, idx, axes):
    rest = tuple(n for d, n in enumerate(x.shape) if d not in axes)
    out = np.zeros(idx.shape[:-1] + rest, x.dtype)
    for b in np.ndindex(*idx.shape[:-1]):
        row = [min(max(int(i), 0), x.shape[a] - 1) for i, a in zip(idx[b], axes)]
        out[b] = x[_index_tuple(x.shape, row, axes)]
    return out


def _ref_scatter(x, idx, updates, axes, kind):
    out = x.copy()
    for b in np.ndindex(*idx.shape[:-1]):
        row = idx[b]
        if not all(0 <= int(i) < x.shape[a] for i, a in zip(row, axes)):
            continue
        where = _index_tuple(x.shape, row, axes)
        if kind == "add":
            out[where] += updates[b]
        elif kind == "mul":
            out[where] *= updates[b]
        else:
            out[where] = updates[b]
    return out


SCATTERS = {"add": S.scatter_add, "set": S.scatter, "mul": S.scatter_mul}


# ---------------------------------------------------------------------------------------------
# Strategies for gather/scatter problems

@st.composite
def gather_problems(draw, allow_empty=True):
    """(x, idx, axes) with tiny shapes, duplicate and out-of-range indices."""
    shape = draw(shapes if allow_empty else nonempty_shapes)
    k = draw(st.integers(0, len(shape)))
    axes = tuple(draw(st.permutations(range(len(shape))))[:k])
    if any(shape[a] == 0 for a in axes):
        batch = draw(st.lists(st.integers(0, 2), max_size=2).filter(lambda b: 0 in b))
    else:
        batch = draw(st.lists(st.integers(0 if allow_empty else 1, 3), max_size=2))
    rng = _rng(draw(seeds))
    x = rng.normal(size=shape)
    hi = [shape[a] + 1 for a in axes]
    idx = np.stack([rng.integers(-2, h + 1, size=tuple(batch)) for h in hi], -1) if axes else \
        np.zeros(tuple(batch) + (0,), np.int64)
    idx = idx.astype(draw(st.sampled_from([np.int32, np.int64])))
    return x, idx, axes


def _updates_for(x, idx, axes, rng):
    rest = tuple(n for d, n in enumerate(x.shape) if d not in axes)
    return rng.normal(size=idx.shape[:-1] + rest)


# ---------------------------------------------------------------------------------------------
# Forward values

@given(shapes, seeds, st.data())
def test_slice_forward(shape, seed, data):
    x = _rng(seed).normal(size=shape)
    start = [data.draw(st.integers(0, n)) for n in shape]
    limit = [data.draw(st.integers(s, n)) for s, n in zip(start, shape)]
    strides = [data.draw(st.integers(1, 3)) for _ in shape]
    got = lax.slice(x, start, limit, strides)
    np.testing.assert_array_equal(got, x[tuple(slice(*t) for t in zip(start, limit, strides))])


@given(shapes, seeds, st.data())
def test_pad_forward(shape, seed, data):
    x = _rng(seed).normal(size=shape)
    cfg = []
    for d in shape:
        it = data.draw(st.integers(0, 2))
        core = d + max(0, d - 1) * it
        lo = data.draw(st.integers(-core, 2))
        hi = data.draw(st.integers(-(core + lo) if core + lo > 0 else 0, 2))
        cfg.append((lo, hi, it))
    np.testing.assert_array_equal(lax.pad(x, -7.0, cfg), _ref_pad(x, -7.0, cfg))


@given(nonempty_shapes, seeds, st.data())
def test_concatenate_forward(shape, seed, data):
    dim = data.draw(st.integers(0, len(shape) - 1))
    rng = _rng(seed)
    xs = [rng.normal(size=shape[:dim] + (data.draw(st.integers(0, 2)),) + shape[dim + 1:])
          for _ in range(data.draw(st.integers(1, 3)))]
    np.testing.assert_array_equal(lax.concatenate(xs, dim), np.concatenate(xs, dim))


@given(shapes, seeds, st.data())
def test_dynamic_slice_and_update_forward(shape, seed, data):
    rng = _rng(seed)
    x = rng.normal(size=shape)
    sizes = [data.draw(st.integers(0, n)) for n in shape]
    starts = [data.draw(st.integers(-3, n + 3)) for n in shape]
    dtypes = [np.int32, np.int64, np.uint8]
    starts_arr = [np.asarray(max(s, 0) if dt is np.uint8 else s, dt)
                  for s, dt in zip(starts, itertools.cycle(dtypes))]
    clamped = [min(max(int(s), 0), n - k) for s, n, k in zip(starts_arr, shape, sizes)]
    window = tuple(slice(c, c + k) for c, k in zip(clamped, sizes))
    np.testing.assert_array_equal(S.dynamic_slice(x, starts_arr, sizes), x[window])
    u = rng.normal(size=sizes)
    expected = x.copy()
    expected[window] = u
    np.testing.assert_array_equal(S.dynamic_update_slice(x, u, starts_arr), expected)


@given(gather_problems())
def test_gather_forward(problem):
    x, idx, axes = problem
    np.testing.assert_array_equal(S.gather(x, idx, axes), _ref_gather(x, idx, axes))


@given(gather_problems(), st.sampled_from(sorted(SCATTERS)), seeds)
def test_scatter_forward(problem, kind, seed):
    x, idx, axes = problem
    u = _updates_for(x, idx, axes, _rng(seed))
    got = SCATTERS[kind](x, idx, u, axes)
    np.testing.assert_allclose(got, _ref_scatter(x, idx, u, axes, kind), rtol=1e-14)


def test_scatter_duplicates_accumulate_and_last_set_wins():
    x = np.zeros(3)
    idx = np.array([[1], [1], [1], [3], [-1]])
    u = np.array([1., 2., 4., 100., 100.])
    np.testing.assert_array_equal(S.scatter_add(x, idx, u, (0,)), [0, 7, 0])
    np.testing.assert_array_equal(S.scatter(x, idx, u, (0,)), [0, 4, 0])
    np.testing.assert_array_equal(S.scatter_mul(np.ones(3), idx, u, (0,)), [1, 8, 1])
    np.testing.assert_array_equal(S.gather(np.arange(3.), idx, (0,)), [1, 1, 1, 2, 0])


@given(shapes.filter(lambda s: len(s) >= 1), seeds, st.data())
def test_sort_and_argsort_forward(shape, seed, data):
    rng = _rng(seed)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    keys = rng.integers(0, 3, size=shape).astype(np.float64)  # many ties: stability matters
    keys[rng.random(shape) < 0.2] = np.nan
    other = rng.normal(size=shape)
    perm = np.argsort(keys, axis=dim, kind="stable")
    np.testing.assert_array_equal(S.sort(keys, dimension=dim), np.sort(keys, axis=dim))
    np.testing.assert_array_equal(S.argsort(keys, dim), perm)
    assert S.argsort(keys, dim).dtype == np.int64
    k2, o2 = S.sort(keys, other, dimension=dim)
    np.testing.assert_array_equal(o2, np.take_along_axis(other, perm, dim))
    second = rng.integers(0, 2, size=shape)
    lex = np.lexsort((keys, second), axis=dim)  # primary key: second
    outs = S.sort(second, keys, other, dimension=dim, num_keys=2)
    np.testing.assert_array_equal(outs[2], np.take_along_axis(other, lex, dim))
    lex = np.lexsort((second, keys), axis=dim)  # primary key: keys (with NaNs)
    outs = S.sort(keys, second, other, dimension=dim, num_keys=2)
    np.testing.assert_array_equal(outs[2], np.take_along_axis(other, lex, dim))
    np.testing.assert_array_equal(outs[0], np.sort(keys, axis=dim))  # NaNs last


# ---------------------------------------------------------------------------------------------
# Derivatives (jvp, vjp, second order) against finite differences

@small
@given(gather_problems(allow_empty=False))
def test_gather_grads(problem):
    x, idx, axes = problem
    check_grads(lambda x: S.gather(x, idx, axes), (x,), order=2)


@small
@given(gather_problems(allow_empty=False), st.sampled_from(sorted(SCATTERS)), seeds)
def test_scatter_grads(problem, kind, seed):
    x, idx, axes = problem
    u = _updates_for(x, idx, axes, _rng(seed))
    check_grads(lambda x, u: SCATTERS[kind](x, idx, u, axes), (x, u), order=2)


def test_scatter_mul_grad_exact_with_zero_updates():
    x = np.array([1.5, -2.0, 0.5])
    idx = np.array([[0], [0], [0], [1], [2], [2]])
    for u in (np.array([0., 2., 3., 0., 0., 0.]), np.array([2., 0., 3., 4., 5., -1.])):
        check_grads(lambda x, u: S.scatter_mul(x, idx, u, (0,)), (x, u), order=1)


@small
@given(nonempty_shapes, seeds, st.data())
def test_dynamic_slice_grads(shape, seed, data):
    rng = _rng(seed)
    x = rng.normal(size=shape)
    sizes = [data.draw(st.integers(0, n)) for n in shape]
    starts = [np.int32(data.draw(st.integers(-2, n + 1))) for n in shape]
    u = rng.normal(size=sizes)
    check_grads(lambda x: S.dynamic_slice(x, starts, sizes), (x,), order=2)
    check_grads(lambda x, u: S.dynamic_update_slice(x, u, starts), (x, u), order=2)


@small
@given(nonempty_shapes, seeds, st.data())
def test_slice_pad_concatenate_grads(shape, seed, data):
    rng = _rng(seed)
    x = rng.normal(size=shape)
    cfg = [(data.draw(st.integers(-1, 2)) if d > 1 else data.draw(st.integers(0, 1)),
            data.draw(st.integers(0, 2)), data.draw(st.integers(0, 1))) for d in shape]
    check_grads(lambda x, v: S.pad(x, v, cfg), (x, np.float64(0.3)), order=2)
    start = [data.draw(st.integers(0, n - 1)) for n in shape]
    check_grads(lambda x: S.slice(x, start, shape, [2] * len(shape)), (x,), order=2)
    y = rng.normal(size=shape)
    check_grads(lambda x, y: S.concatenate([x, y, x], len(shape) - 1), (x, y), order=2)


@small
@given(nonempty_shapes, seeds, st.data())
def test_sort_grads(shape, seed, data):
    rng = _rng(seed)
    dim = data.draw(st.integers(0, len(shape) - 1))
    x = rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape)
    x = x + 0.1 * rng.normal(size=shape)  # keys distinct by > fd step
    y = rng.normal(size=shape)
    check_grads(lambda x, y: S.sort(x, y, dimension=dim), (x, y), order=2)
    check_grads(lambda x: S.sort(x, dimension=dim), (x,), order=2)


def test_second_order_grad_of_jvp_through_gather_and_scatter():
    rng = _rng(0)
    x, t = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    idx = np.array([[0, 2], [3, 1], [0, 2], [9, -4]])
    u = rng.normal(size=(4,))

    def f(x):
        g = S.gather(lax.mul(x, x), idx, (0, 1))
        s = S.scatter(lax.mul(x, x), idx, lax.mul(g, u), (0, 1))
        return _sum(lax.sin(S.scatter_add(s, idx, g, (0, 1))))

    def g(x):  # directional derivative: a scalar function of a jvp
        return ft.jvp(f, (x,), (t,))[1]

    check_grads(g, (x,), order=1)
    h = ft.grad(g)(x)
    eps = 1e-5
    fd = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        fd[i] = (g(x + e) - g(x - e)) / (2 * eps)
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-7)


def test_rule_closure_grad_of_grad():
    """The primitives emitted by jvp/transpose rules have rules themselves (gather <-> scatter_add,
    dynamic_slice <-> dynamic_update_slice, sort's take_along)."""
    rng = _rng(1)
    x = rng.normal(size=(3, 4))
    idx = np.array([[2], [0], [2], [7]])

    def f(x):
        g = S.gather(x, idx, (0,))
        d = S.dynamic_slice(lax.mul(x, x), [np.int32(1), np.int32(1)], (2, 2))
        upd = S.dynamic_update_slice(x, lax.mul(d, d), [np.int32(0), np.int32(2)])
        srt = S.sort(upd, dimension=1)
        m = S.scatter_mul(srt, idx, lax.sin(g), (0,))
        return _sum(lax.mul(m, m))

    hess = ft.jacfwd(ft.grad(f))(x)
    hess_rev = ft.jacrev(ft.grad(f))(x)
    np.testing.assert_allclose(hess, hess_rev, rtol=1e-10, atol=1e-10)
    ggrad = ft.grad(lambda x: _sum(ft.grad(f)(x)))(x)
    np.testing.assert_allclose(ggrad, hess.reshape(12, 12).sum(0).reshape(3, 4), rtol=1e-10,
                               atol=1e-10)
    check_grads(f, (x,), order=2)


# ---------------------------------------------------------------------------------------------
# vmap against Python loops, every batch-dim placement

N = 2


def _batched(example, d):
    """N samples stacked on axis d (or one sample if d is None)."""
    return example(0) if d is None else np.stack([example(i) for i in range(N)], d)


def _check_all_placements(f, examples):
    """check_vmap of f for every combination of batch dims (incl. None) of its arguments."""
    ranks = [np.ndim(e(0)) for e in examples]
    options = [[None] + list(range(r + 1)) for r in ranks]
    for in_axes in itertools.product(*options):
        if all(a is None for a in in_axes):
            continue
        args = [_batched(e, d) for e, d in zip(examples, in_axes)]
        check_vmap(f, args, in_axes=in_axes)


def _index_example(batch, hi, seed):
    return lambda i: np.stack([_rng(seed + 7 * i + j).integers(-1, h + 1, size=batch)
                               for j, h in enumerate(hi)], -1)


def test_gather_vmap_all_placements():
    axes = (1,)
    xe = lambda i: _rng(i).normal(size=(2, 3))  # noqa: E731
    _check_all_placements(lambda x, i: S.gather(x, i, axes), [xe, _index_example((3,), [3], 0)])
    _check_all_placements(lambda x, i: S.gather(x, i, (1, 0)),
                          [xe, _index_example((2,), [3, 2], 5)])


@pytest.mark.parametrize("kind", sorted(SCATTERS))
def test_scatter_vmap_all_placements(kind):
    f = lambda x, i, u: SCATTERS[kind](x, i, u, (0,))  # noqa: E731
    xe = lambda i: _rng(i).normal(size=(3, 2))  # noqa: E731
    ue = lambda i: _rng(10 + i).normal(size=(4, 2))  # noqa: E731
    _check_all_placements(f, [xe, _index_example((4,), [3], 3), ue])


def test_dynamic_slice_vmap_all_placements():
    xe = lambda i: _rng(i).normal(size=(3, 4))  # noqa: E731
    se = lambda k: (lambda i: np.int32([-1, 2, 5][(i + k) % 3]))  # noqa: E731
    _check_all_placements(lambda x, a, b: S.dynamic_slice(x, [a, b], (2, 2)), [xe, se(0), se(1)])
    ue = lambda i: _rng(20 + i).normal(size=(2, 2))  # noqa: E731
    _check_all_placements(lambda x, u, a, b: S.dynamic_update_slice(x, u, [a, b]),
                          [xe, ue, se(0), se(2)])


def test_vmap_batch_column_wider_than_index_dtype():
    x = _rng(0).normal(size=(200, 3))
    idx = np.tile(np.array([[[2], [-1]]], np.int8), (200, 1, 1))
    check_vmap(lambda x, i: S.gather(x, i, (0,)), (x, idx), in_axes=(0, 0))
    u = _rng(1).normal(size=(200, 2))
    check_vmap(lambda x, i, u: S.scatter_add(x, i, u, (0,)), (x, idx, u), in_axes=(0, 0, 0))


@pytest.mark.parametrize("kind", sorted(SCATTERS))
def test_vmap_of_grad_with_batched_indices(kind):
    """The rules' own emitted primitives (masks, winner ids, gathers) batch correctly."""
    def f(x, i, u):
        return _sum(lax.sin(SCATTERS[kind](x, i, lax.mul(u, u), (0,))))

    x = _rng(2).normal(size=(3, 4, 2))
    u = _rng(3).normal(size=(3, 5, 2))
    idx = np.array([[[0], [2], [0], [4], [2]], [[1], [1], [1], [-1], [0]], [[3], [3], [2], [0], [1]]])
    check_vmap(ft.grad(f, argnums=(0, 2)), (x, idx, u), in_axes=(0, 0, 0))
    check_vmap(ft.grad(f, argnums=(0, 2)), (x[0], idx, np.moveaxis(u, 0, 2)), in_axes=(None, 0, 2))


def test_dynamic_slice_vmap_with_batched_starts_is_loop_free():
    x = np.arange(12.).reshape(3, 4)
    jaxpr = str(ft.make_jaxpr(ft.vmap(lambda s: S.dynamic_slice(x, [s, s], (2, 2))))(
        np.array([0, 1, 2])))
    assert "gather" in jaxpr and "dynamic_slice" not in jaxpr


def test_sort_slice_pad_concatenate_vmap_all_placements():
    xe = lambda i: _rng(i).normal(size=(2, 3))  # noqa: E731
    ye = lambda i: _rng(30 + i).normal(size=(2, 3))  # noqa: E731
    _check_all_placements(lambda x, y: S.sort(x, y, dimension=1), [xe, ye])
    _check_all_placements(lambda x: S.argsort(x, 0), [xe])
    _check_all_placements(lambda x: S.slice(x, (0, 1), (2, 3), (1, 2)), [xe])
    ve = lambda i: np.float64(i + 0.5)  # noqa: E731
    _check_all_placements(lambda x, v: S.pad(x, v, [(1, -1, 1), (0, 2, 0)]), [xe, ve])
    _check_all_placements(lambda x, y: S.concatenate([x, y], 1), [xe, ye])


# ---------------------------------------------------------------------------------------------
# jit, size-0 dims, errors

def test_every_op_under_jit(monkeypatch):
    """Staging under jit and jit_p's rules, run by the reference executor (eval_jaxpr): the
    numba lowerings of these primitives belong to functrans/backends and are tested there."""
    from functrans import jit_primitive
    monkeypatch.delitem(jit_primitive.backend_executors, "cpu", raising=False)
    rng = _rng(3)
    x, idx = rng.normal(size=(3, 4)), np.array([[2], [0], [5]])
    u = rng.normal(size=(3, 4))
    cases = [
        (lambda x: S.slice(x, (0, 1), (3, 4), (2, 1)), (x,)),
        (lambda x: S.pad(x, 0.0, [(1, -1, 1), (0, 1, 0)]), (x,)),
        (lambda x: S.concatenate([x, x], 0), (x,)),
        (lambda x, s: S.dynamic_slice(x, [s, s], (2, 2)), (x, np.int32(2))),
        (lambda x, s: S.dynamic_update_slice(x, u[:2, :2], [s, s]), (x, np.int32(3))),
        (lambda x, i: S.gather(x, i, (0,)), (x, idx)),
        (lambda x, i: S.scatter_add(x, i, u, (0,)), (x, idx)),
        (lambda x, i: S.scatter(x, i, u, (0,)), (x, idx)),
        (lambda x, i: S.scatter_mul(x, i, u, (0,)), (x, idx)),
        (lambda x: S.sort(x, x, dimension=1), (x,)),
        (lambda x: S.argsort(x, 0), (x,)),
    ]
    for f, args in cases:
        jitted = ft.jit(f)
        for got, want in zip(ft.tree_util.tree_leaves(jitted(*args)),
                             ft.tree_util.tree_leaves(f(*args))):
            np.testing.assert_array_equal(got, want)
        assert jitted.trace_count == 1


def test_size_zero_dims():
    x = np.zeros((0, 3))
    assert S.gather(x, np.zeros((0, 1), np.int64), (0,)).shape == (0, 3)
    assert S.gather(np.ones((2, 0)), np.array([[1]]), (0,)).shape == (1, 0)
    np.testing.assert_array_equal(S.scatter_add(x, np.zeros((0, 1), np.int64),
                                                np.zeros((0, 3)), (0,)), x)
    assert S.dynamic_slice(x, [0, 1], (0, 2)).shape == (0, 2)
    assert S.dynamic_update_slice(x, np.zeros((0, 1)), [5, 5]).shape == (0, 3)
    assert S.sort(x, dimension=0).shape == (0, 3) and S.argsort(x, 1).shape == (0, 3)
    t = ft.vjp(lambda x: S.gather(x, np.zeros((0, 1), np.int64), (0,)), x)[1](np.zeros((0, 3)))
    assert t[0].shape == (0, 3)


def test_bad_inputs_raise_clear_errors():
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match="integer"):
        S.gather(x, np.zeros((2, 1)), (0,))
    with pytest.raises(TypeError, match="last dimension"):
        S.gather(x, np.zeros((2, 2), np.int64), (0,))
    with pytest.raises(ValueError, match="distinct"):
        S.gather(x, np.zeros((2, 2), np.int64), (0, 0))
    with pytest.raises(ValueError, match="size 0"):
        S.gather(np.zeros((0, 2)), np.zeros((1, 1), np.int64), (0,))
    with pytest.raises(TypeError, match=r"updates must have shape \(2, 4\)"):
        S.scatter_add(x, np.zeros((2, 1), np.int64), np.zeros((2, 3)), (0,))
    with pytest.raises(TypeError, match="one per dimension"):
        S.dynamic_slice(x, [0], (1, 1))
    with pytest.raises(ValueError, match="does not fit"):
        S.dynamic_slice(x, [0, 0], (4, 1))
    with pytest.raises(TypeError, match="scalar integers"):
        S.dynamic_slice(x, [0.5, 0], (1, 1))
    with pytest.raises(ValueError, match="num_keys"):
        S.sort(x, dimension=0, num_keys=2)
    with pytest.raises(TypeError, match="same shape"):
        S.sort(x, np.zeros(3), dimension=0)
    with pytest.raises(ValueError, match="at least one"):
        S.concatenate([], 0)
    with pytest.raises(TypeError, match="scalar integers"):  # also caught when staged
        ft.make_jaxpr(lambda x: S.dynamic_slice(x, [np.float32(0), 0], (1, 1)))(x)
