"""functrans.random: known-answer values, determinism, independence after split, distribution
checks (fixed keys, so nothing can flake), traceability under vmap/jit/grad, errors."""
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, strategies as st

import functrans as ft
from functrans import random

KEY = random.PRNGKey(0)
N = 20000


def _ks(sample, cdf):
    """Kolmogorov-Smirnov distance between a sample and a cdf."""
    x = np.sort(np.asarray(sample, np.float64))
    f = cdf(x)
    n = len(x)
    return max(np.max(np.arange(1, n + 1) / n - f), np.max(f - np.arange(n) / n))


def test_threefry_known_answer():
    # Random123's published test vector for threefry2x32 with 20 rounds.
    u = lambda v: np.asarray(v, np.uint32)  # noqa: E731
    y0, y1 = random._threefry2x32(u(0x13198A2E), u(0x03707344), u([0x243F6A88]), u([0x85A308D3]))
    assert (int(y0[0]), int(y1[0])) == (0xC4923A9C, 0x483DF7A0)


def test_keys_match_jax():
    np.testing.assert_array_equal(random.PRNGKey(42), np.array([0, 42], np.uint32))
    np.testing.assert_array_equal(random.key(2**32 + 7), np.array([1, 7], np.uint32))
    # jax.random.split(jax.random.PRNGKey(0)) with the threefry implementation
    np.testing.assert_array_equal(random.split(KEY),
                                  np.array([[4146024105, 967050713], [2718843009, 1272950319]], np.uint32))
    assert random.split(KEY, 5).shape == (5, 2) and random.split(KEY, 5).dtype == np.uint32
    assert random.split(KEY, 0).shape == (0, 2)


def test_negative_and_large_seeds_differ():
    keys = {tuple(random.PRNGKey(s).tolist()) for s in (-1, 0, 1, 2**63 + 5, 2**40)}
    assert len(keys) == 5


def test_deterministic_per_key():
    a = random.normal(KEY, (7,))
    np.testing.assert_array_equal(a, random.normal(random.PRNGKey(0), (7,)))
    assert not np.array_equal(a, random.normal(random.PRNGKey(1), (7,)))


def test_split_streams_are_independent():
    k1, k2 = random.split(KEY)
    a, b = random.normal(k1, (N,)), random.normal(k2, (N,))
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.03
    assert not np.array_equal(a, b)
    # keys from a split differ from each other and from the parent
    keys = random.split(KEY, 100)
    assert len({tuple(k) for k in keys.tolist()} | {tuple(KEY.tolist())}) == 101
    # neighbouring streams: lag-one correlation of one stream is small too
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.03


def test_fold_in():
    a, b = random.fold_in(KEY, 1), random.fold_in(KEY, 2)
    assert a.shape == (2,) and a.dtype == np.uint32
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, random.fold_in(KEY, 1))
    x, y = random.uniform(a, (N,)), random.uniform(b, (N,))
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.03


def test_uniform_distribution():
    u = random.uniform(KEY, (N,))
    assert u.dtype == np.float64 and u.shape == (N,)
    assert u.min() >= 0 and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005
    assert _ks(u, lambda x: x) < 0.015
    v = random.uniform(KEY, (N,), np.float32, minval=-2.0, maxval=3.0)
    assert v.dtype == np.float32 and v.min() >= -2 and v.max() < 3
    assert abs(v.mean() - 0.5) < 0.05


def test_uniform_bounds_broadcast():
    lo = np.array([0.0, 10.0, 100.0])
    u = random.uniform(KEY, (1000, 3), minval=lo, maxval=lo + 1)
    assert np.all((u >= lo) & (u < lo + 1))


def test_normal_distribution():
    z = random.normal(random.PRNGKey(3), (N,))
    assert z.dtype == np.float64
    assert abs(z.mean()) < 0.03 and abs(z.var() - 1) < 0.04
    assert abs(scipy.stats.skew(z)) < 0.06 and abs(scipy.stats.kurtosis(z)) < 0.12
    assert _ks(z, scipy.stats.norm.cdf) < 0.015
    assert np.all(np.isfinite(z))
    z32 = random.normal(KEY, (4, 5), np.float32)
    assert z32.dtype == np.float32 and z32.shape == (4, 5)


def test_bernoulli():
    b = random.bernoulli(KEY, 0.3, (N,))
    assert b.dtype == np.bool_ and abs(b.mean() - 0.3) < 0.015
    p = np.array([0.0, 0.5, 1.0])
    c = random.bernoulli(KEY, p, (2000, 3))
    assert c.shape == (2000, 3) and not c[:, 0].any() and c[:, 2].all()
    assert abs(c[:, 1].mean() - 0.5) < 0.04
    assert random.bernoulli(KEY, p).shape == (3,)
    assert random.bernoulli(KEY).shape == () and random.bernoulli(KEY).dtype == np.bool_


def test_randint():
    r = random.randint(KEY, (N,), 3, 10)
    assert r.dtype == np.int64 and r.min() == 3 and r.max() == 9
    counts = np.bincount(r - 3, minlength=7)
    assert scipy.stats.chisquare(counts).pvalue > 1e-4
    assert random.randint(KEY, (5,), -4, -2, np.int32).dtype == np.int32


def test_permutation_of_int():
    p = random.permutation(KEY, 50)
    assert p.dtype == np.int64
    np.testing.assert_array_equal(np.sort(p), np.arange(50))
    assert not np.array_equal(p, np.arange(50))
    assert not np.array_equal(p, random.permutation(random.PRNGKey(1), 50))
    # every position is equally likely to receive each value: first entries of many shuffles
    keys = random.split(KEY, 600)
    firsts = np.array([random.permutation(k, 4)[0] for k in keys[:300]])
    assert scipy.stats.chisquare(np.bincount(firsts, minlength=4)).pvalue > 1e-4


def test_permutation_of_array_shuffles_along_axis():
    x = np.arange(24.0).reshape(4, 6)
    p = random.permutation(KEY, x, axis=1)
    assert p.shape == x.shape and p.dtype == x.dtype
    np.testing.assert_array_equal(np.sort(p, axis=1), x)
    # the same column order for every row
    np.testing.assert_array_equal(p - p[:1], np.zeros((4, 1)) + (x - x[:1]))
    q = random.permutation(KEY, x)
    np.testing.assert_array_equal(np.sort(q[:, 0]), x[:, 0])


def test_choice():
    c = random.choice(KEY, 5, (N,))
    assert c.dtype == np.int64 and set(np.unique(c)) == set(range(5))
    u = random.choice(KEY, 10, (10,), replace=False)
    np.testing.assert_array_equal(np.sort(u), np.arange(10))
    p = np.array([0.1, 0.0, 0.6, 0.3])
    w = random.choice(KEY, 4, (N,), p=p)
    np.testing.assert_allclose(np.bincount(w, minlength=4) / N, p, atol=0.015)
    w2 = random.choice(KEY, 4, (3,), replace=False, p=p)
    assert len(set(w2.tolist())) == 3 and 1 not in w2.tolist()
    a = np.array([10.0, 20.0, 30.0])
    s = random.choice(KEY, a, (2, 4))
    assert s.shape == (2, 4) and set(s.ravel().tolist()) <= set(a.tolist())


@given(st.lists(st.integers(0, 3), max_size=3).map(tuple),
       st.sampled_from([np.float32, np.float64]))
def test_shapes_and_dtypes(shape, dtype):
    for f in (random.uniform, random.normal):
        out = f(KEY, shape, dtype)
        assert out.shape == shape and out.dtype == dtype


def test_vmap_over_keys_equals_loop():
    keys = random.split(KEY, 4)
    out = ft.vmap(lambda k: random.normal(k, (3,)))(keys)
    np.testing.assert_array_equal(out, np.stack([random.normal(k, (3,)) for k in keys]))
    perms = ft.vmap(lambda k: random.permutation(k, 6))(keys)
    np.testing.assert_array_equal(perms, np.stack([random.permutation(k, 6) for k in keys]))
    subkeys = ft.vmap(random.split)(keys)
    np.testing.assert_array_equal(subkeys, np.stack([random.split(k) for k in keys]))
    # keys mapped on axis 1
    out = ft.vmap(lambda k: random.uniform(k, (2,)), in_axes=1)(keys.T)
    np.testing.assert_array_equal(out, np.stack([random.uniform(k, (2,)) for k in keys]))


def test_jit_and_grad_through_random():
    f = ft.jit(lambda k: random.normal(k, (5,)))
    np.testing.assert_array_equal(f(KEY), random.normal(KEY, (5,)))
    # the draw is a function of the bounds: d/dlo of uniform(lo, lo + 1) is one
    g = ft.grad(lambda lo: random.uniform(KEY, (), minval=lo, maxval=lo + 1.0))(2.0)
    np.testing.assert_allclose(g, 1.0)
    np.testing.assert_array_equal(ft.jit(random.PRNGKey)(np.int64(7)), random.PRNGKey(7))


def test_errors():
    with pytest.raises(TypeError, match="PRNG key"):
        random.normal(np.zeros(3, np.uint32))
    with pytest.raises(TypeError, match="PRNG key"):
        random.normal(np.zeros(2, np.int64))
    with pytest.raises(TypeError, match="integer"):
        random.PRNGKey(1.5)
    with pytest.raises(TypeError, match="float"):
        random.normal(KEY, (2,), np.int32)
    with pytest.raises(ValueError, match="larger sample"):
        random.choice(KEY, 3, (4,), replace=False)
    with pytest.raises(ValueError, match="p must have shape"):
        random.choice(KEY, 3, (2,), p=np.ones(4) / 4)
    with pytest.raises(ValueError, match="negative"):
        random.uniform(KEY, (-1,))
    with pytest.raises(ValueError, match="broadcast"):
        random.uniform(KEY, (3,), minval=np.zeros(2))
