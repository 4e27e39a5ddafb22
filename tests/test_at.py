"""x.at[idx] with JAX's interface (get/set/add/subtract/multiply/divide/power/min/max/apply,
mode, fill_value, indices_are_sorted, unique_indices) against a NumPy reference written here:
eagerly, staged with traced indices, under jit, vmap and grad."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans.test_util import check_grads

MODES = [None, "promise_in_bounds", "clip", "drop", "fill"]
UPDATES = ["set", "add", "subtract", "multiply", "divide", "power", "min", "max"]
METHODS = ["get", "apply"] + UPDATES
FLOAT_ONLY = {"divide", "power"}
BOOL_OK = {"get", "set", "min", "max"}
UFUNC_AT = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply,
            "divide": np.divide, "power": np.power, "min": np.minimum, "max": np.maximum}


def twice_plus_one(v):
    """The elementwise function for apply: not idempotent, so repeated indices show."""
    return v * 2 + 1


# ---------------------------------------------------------------------------------------------
# The NumPy reference. Indices are tuples of per-dimension entries: int, slice, or integer
# arrays (all of one shape). Out-of-range means outside [-n, n); negatives are wrapped first.

def _plan(shape, idx):
    """(the index with every integer clamped into range, validity of each advanced position
    (a bool, or an array of the index arrays' shape), where the advanced dims sit in x[idx]
    (None if there are no index arrays), the index arrays' shape)."""
    entries = idx if isinstance(idx, tuple) else (idx,)
    clamped, valid, adv, ashape = [], np.True_, [], ()
    for d, e in enumerate(entries):
        if isinstance(e, slice):
            clamped.append(e)
            continue
        n = shape[d]
        a = np.asarray(e, np.int64)
        a = np.where(a < 0, a + n, a)
        valid = valid & (a >= 0) & (a < n)
        c = np.clip(a, 0, n - 1)
        clamped.append(int(c) if c.ndim == 0 else c)
        adv.append(d)
        ashape = ashape or np.shape(e)
    if not ashape:
        return tuple(clamped), bool(valid), None, ()
    contiguous = adv == list(range(adv[0], adv[-1] + 1))
    return tuple(clamped), np.broadcast_to(valid, ashape), adv[0] if contiguous else 0, ashape


def _fill(dtype, fill_value):
    if fill_value is not None:
        return fill_value
    if dtype.kind == "f":
        return np.nan
    return True if dtype.kind == "b" else np.iinfo(dtype).min


def ref_get(x, idx, mode, fill_value=None):
    """x.at[idx].get(mode): clamped indices, except fill_value where fill/drop meets an
    out-of-range index."""
    clamped, valid, bdim, ashape = _plan(x.shape, idx)
    out = x[clamped]
    if mode not in ("fill", "drop"):
        return out
    if bdim is not None:
        valid = valid.reshape((1,) * bdim + ashape + (1,) * (out.ndim - bdim - len(ashape)))
    return np.where(valid, out, np.asarray(_fill(x.dtype, fill_value), x.dtype))


def _targets(x, idx, values, mode):
    """(index, values) of the updates that land: clamped under clip; otherwise the index
    arrays and the values' advanced dims keep only the in-range positions."""
    clamped, valid, bdim, ashape = _plan(x.shape, idx)
    values = np.broadcast_to(np.asarray(values, x.dtype), x[clamped].shape)
    if mode == "clip":
        return clamped, values
    if bdim is None:
        return (clamped, values) if valid else (None, None)
    nb = len(ashape)
    moved = np.moveaxis(values, list(range(bdim, bdim + nb)), list(range(nb)))[valid]
    keep = tuple(c[valid] if isinstance(c, np.ndarray) else c for c in clamped)
    return keep, np.moveaxis(moved, 0, bdim)


def ref_update(x, idx, method, values, mode):
    """x.at[idx].<method>(values, mode=mode) computed with NumPy's ufunc.at / assignment."""
    index, values = _targets(x, idx, values, mode)
    out = x.copy()
    if index is None:
        return out
    if method == "set":
        out[index] = values
    else:
        UFUNC_AT[method].at(out, index, values)
    return out


def ref_counts(x, idx, mode):
    """How many index entries select each element (after the mode's clamping/dropping)."""
    counts = np.zeros(x.shape, np.int64)
    index, _ = _targets(x, idx, np.zeros((), x.dtype), mode)
    if index is not None:
        np.add.at(counts, index, 1)
    return counts


def ref_apply(x, idx, func, mode):
    """func applied to each element once per index entry selecting it (ufunc.at)."""
    counts, out = ref_counts(x, idx, mode), x.copy()
    for i in range(int(counts.max(initial=0))):
        out = np.where(counts > i, func(out), out).astype(x.dtype)
    return out


# ---------------------------------------------------------------------------------------------
# Hypothesis cases

DTYPES = [np.float32, np.float64, np.int32, np.bool_]


def _values(rng, shape, dtype, method):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "i":
        return rng.integers(-3, 4, shape).astype(dtype)
    if method == "divide":
        return (rng.uniform(0.5, 2.0, shape) * rng.choice([-1, 1], shape)).astype(dtype)
    if method == "power":
        return rng.choice([0.5, 1.0, 2.0], shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


@st.composite
def index_st(draw, shape):
    """An index on shape: per-dimension ints (some out of range or negative), slices and
    integer arrays of one shared shape (with repeats and out-of-range entries)."""
    k = draw(st.integers(1, len(shape)))
    ashape = draw(st.sampled_from([(1,), (3,), (4,), (2, 3)]))
    entries = []
    for n in shape[:k]:
        kind = draw(st.sampled_from(["int", "slice", "array"]))
        ints = st.integers(-n - 2, n + 1)
        if kind == "int":
            entries.append(draw(ints))
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
            step = st.sampled_from([None, 1, 2, -1, -2])
            entries.append(slice(draw(bound), draw(bound), draw(step)))
        else:
            flat = draw(st.lists(ints, min_size=int(np.prod(ashape)),
                                 max_size=int(np.prod(ashape))))
            entries.append(np.array(flat, np.int64).reshape(ashape))
    if k == 1 and draw(st.booleans()):
        return entries[0]
    return tuple(entries)


@st.composite
def case_st(draw, method):
    dtypes = [d for d in DTYPES if (np.dtype(d).kind != "b" or method in BOOL_OK)
              and (np.dtype(d).kind == "f" or method not in FLOAT_ONLY)]
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    idx = draw(index_st(shape))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = _values(rng, shape, dtype, None)
    if method == "power":
        x = np.abs(x) + np.asarray(0.5, dtype)
    return dict(x=x, idx=idx, mode=draw(st.sampled_from(MODES)), rng=rng,
                scalar_values=draw(st.booleans()), hints=draw(st.booleans()))


def _split_index(idx):
    """(a function rebuilding idx from its array leaves, the leaves): ints become 0-d arrays,
    so that staged they are traced like the index arrays."""
    parts = idx if isinstance(idx, tuple) else (idx,)
    leaves = [np.asarray(p, np.int64) for p in parts if not isinstance(p, slice)]

    def rebuild(*vals):
        it = iter(vals)
        out = tuple(p if isinstance(p, slice) else next(it) for p in parts)
        return out if isinstance(idx, tuple) else out[0]
    return rebuild, leaves


def staged(f, *args):
    """f(*args) staged into a jaxpr and evaluated: every index leaf is a traced value."""
    closed = ft.make_jaxpr(f)(*args)
    return closed(*args)[0]


def assert_matches(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype,
                                                                 want.shape, want.dtype)
    tol = 1e-5 if want.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True)


def _call(x, idx, method, values, mode, fill_value=None, hints=None):
    """x.at[idx].<method>(...) through functrans.numpy."""
    ref = jnp.asarray(x).at[idx]
    kw = dict(mode=mode, **(hints or {}))
    if method == "get":
        return ref.get(fill_value=fill_value, **kw)
    if method == "apply":
        return ref.apply(twice_plus_one, **kw)
    return getattr(ref, method)(values, **kw)


def _reference(x, idx, method, values, mode, fill_value=None):
    if method == "get":
        return ref_get(x, idx, mode, fill_value)
    if method == "apply":
        return ref_apply(x, idx, twice_plus_one, mode)
    return ref_update(x, idx, method, values, mode)


def _case_args(method, c):
    """(values, fill_value, hints) for a drawn case; unique_indices only when it holds."""
    x, idx, mode, rng = c["x"], c["idx"], c["mode"], c["rng"]
    clamped = _plan(x.shape, idx)[0]
    shape = () if c["scalar_values"] else x[clamped].shape
    values = _values(rng, shape, x.dtype, method)
    if method == "set" and not c["scalar_values"]:
        values = _values(rng, x.shape, x.dtype, method)[clamped]  # repeats agree on the value
    fill_value = None
    if method == "get" and c["scalar_values"]:
        fill_value = {"f": -2.5, "i": 7, "b": False}[x.dtype.kind]
    hints = {}
    if c["hints"]:
        unique = ref_counts(x, idx, mode).max(initial=0) <= 1
        hints = dict(indices_are_sorted=False, unique_indices=bool(unique))
    return values, fill_value, hints


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=60)
@given(data=st.data())
def test_at_matches_numpy_reference(method, data):
    c = data.draw(case_st(method))
    x, idx, mode = c["x"], c["idx"], c["mode"]
    values, fill_value, hints = _case_args(method, c)
    want = _reference(x, idx, method, values, mode, fill_value)
    with np.errstate(all="ignore"):
        assert_matches(_call(x, idx, method, values, mode, fill_value, hints), want)
        rebuild, leaves = _split_index(idx)
        got = staged(lambda x, v, *ls: _call(x, rebuild(*ls), method, v, mode, fill_value, hints),
                     x, np.asarray(values), *leaves)
    assert_matches(got, want)


# ---------------------------------------------------------------------------------------------
# Fixed semantics, spelled out

def test_modes_on_a_vector():
    x = np.arange(5.0)
    i = np.array([7, 1, -9, 3, 1, -1])
    a = jnp.asarray(x)
    # get: clamped by default (as x[i]), fill_value under fill/drop
    for mode in [None, "promise_in_bounds", "clip"]:
        np.testing.assert_array_equal(a.at[i].get(mode=mode), [4, 1, 0, 3, 1, 4])
    for mode in ["fill", "drop"]:
        np.testing.assert_array_equal(a.at[i].get(mode=mode), [np.nan, 1, np.nan, 3, 1, 4])
    np.testing.assert_array_equal(a.at[i].get(mode="fill", fill_value=-1), [-1, 1, -1, 3, 1, 4])
    np.testing.assert_array_equal(a.at[i].get(), a[i])
    assert np.isnan(a.at[7].get(mode="fill")) and a.at[7].get() == 4.0
    # updates: dropped by default, clamped under clip; repeats accumulate
    for mode in [None, "promise_in_bounds", "drop", "fill"]:
        np.testing.assert_array_equal(a.at[i].add(1.0, mode=mode), [0, 3, 2, 4, 5])
    np.testing.assert_array_equal(a.at[i].add(1.0, mode="clip"), [1, 3, 2, 4, 6])
    np.testing.assert_array_equal(a.at[i].subtract(1.0), [0, -1, 2, 2, 3])
    # apply runs once per selecting entry: element 1 twice, 4 once (clip: 4 twice, 0 once)
    np.testing.assert_array_equal(a.at[i].apply(twice_plus_one), [0, 7, 2, 7, 9])
    np.testing.assert_array_equal(a.at[i].apply(twice_plus_one, mode="clip"), [1, 7, 2, 7, 19])
    np.testing.assert_array_equal(a.at[i].apply(twice_plus_one, unique_indices=True,
                                                mode="clip")[[2, 3]], [2, 7])
    # concrete indices while tracing: the repeat count is known, so no while_loop is staged
    closed = ft.make_jaxpr(lambda x: x.at[i].apply(twice_plus_one))(x)
    assert "while" not in str(closed)
    np.testing.assert_array_equal(closed(x)[0], [0, 7, 2, 7, 9])
    assert "while" in str(ft.make_jaxpr(lambda x, j: x.at[j].apply(twice_plus_one))(x, i))


def test_fill_values_by_dtype():
    i = np.array([0, 5])
    for dtype, fill in [(np.float32, np.nan), (np.int32, np.iinfo(np.int32).min),
                        (np.uint8, np.iinfo(np.uint8).max), (np.bool_, True)]:
        got = jnp.zeros(3, dtype).at[i].get(mode="fill")
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.array([0, fill]).astype(dtype))


def test_bad_arguments_raise():
    a = jnp.arange(4.0)
    for method in ["get", "set", "add", "apply"]:
        arg = {"get": (), "apply": (twice_plus_one,)}.get(method, (1.0,))
        with pytest.raises(ValueError, match="'promise_in_bounds', 'clip', 'drop', 'fill'"):
            getattr(a.at[1], method)(*arg, mode="wrap")
    with pytest.raises(TypeError):
        a.at[1].set(1.0, fill_value=0.0)  # as JAX: fill_value belongs to get only
    with pytest.raises(ValueError, match="scalar"):
        a.at[1].get(mode="fill", fill_value=np.zeros(2))
    with pytest.raises(TypeError, match="subtract"):
        jnp.ones(3, bool).at[0].subtract(True)
    assert a.at[1].mul is not None and a.at[1].mul(3.0)[1] == 3.0


# ---------------------------------------------------------------------------------------------
# jit (traced indices), vmap, grad

X = np.arange(1.0, 13.0).reshape(3, 4)
I_CASES = [np.array([4, -1, 0, -4, 0]), np.array([1, 1, 2, -2, 9])]
# compiling is what costs here (the staged hypothesis test above already runs every method and
# mode with traced indices): per mode, the methods whose compiled code differs
JIT_METHODS = {None: ["set", "add", "subtract", "multiply", "min", "apply", "get"],
               "clip": ["add", "max", "apply", "get"], "fill": ["set", "get"]}


def _methods_at(x, i, v, mode, methods):
    """x.at[i, 1:].<method>(...) for each method, and x.at[:, i[:2]].get(): as one list."""
    out = [_call(x, (i, slice(1, None)), m, v, mode) for m in methods]
    return out + [_call(x, (slice(None), i[:2]), "get", None, mode)]


def _methods_reference(x, i, v, mode, methods):
    out = [_reference(x, (i, slice(1, None)), m, v, mode) for m in methods]
    return out + [ref_get(x, (slice(None), i[:2]), mode)]


@pytest.mark.parametrize("mode", sorted(JIT_METHODS, key=str))
def test_jit_with_traced_indices(mode):
    methods = JIT_METHODS[mode]
    f = ft.jit(lambda x, i, v: _methods_at(x, i, v, mode, methods))
    v = np.linspace(0.5, 2.0, 15).reshape(5, 3)
    for i in I_CASES:
        for got, want in zip(f(X, i, v), _methods_reference(X, i, v, mode, methods)):
            assert_matches(got, want)
    assert f.trace_count == 1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", [None, "clip", "fill"])
def test_vmap_batched_x_values_and_indices(method, mode):
    rng = np.random.default_rng(0)
    xs = rng.uniform(0.5, 2.0, (3, 3, 4))
    vs = rng.uniform(0.5, 2.0, (3, 5))
    js = np.array([[0, 2, 2, -1, 5], [1, 1, -4, 0, 3], [2, 0, 9, 2, -3]])

    def f(x, j, v):
        return _call(x, (j, 1), method, v, mode)

    for in_axes in [(0, None, None), (None, 0, None), (None, None, 0), (0, 0, 0)]:
        args = [a if ax is not None else a[0] for a, ax in zip((xs, js, vs), in_axes)]
        got = ft.vmap(f, in_axes=in_axes)(*args)
        for b in range(3):
            ex = [a[b] if ax is not None else a for a, ax in zip(args, in_axes)]
            assert_matches(got[b], _reference(ex[0], (ex[1], 1), method, ex[2], mode))


@pytest.mark.parametrize("method", ["set", "add", "multiply", "min", "max", "get"])
@pytest.mark.parametrize("mode", [None, "clip", "fill"])
def test_grads_order_two(method, mode):
    # distinct values, well separated from each other and from x, so min/max winners are stable
    x = np.array([[1.0, 4.0, 7.0], [2.0, 5.0, 8.0], [3.0, 6.0, 9.0]]) * 1.37
    v = np.array([0.6, 10.4, 3.3, 12.0, -2.2]).reshape(5, 1) * np.array([1.0, 1.1, 0.9])
    i = np.array([2, 0, 2, 7, -1])  # a repeat, an out-of-range index and a negative one
    if method == "get":
        check_grads(lambda x: jnp.asarray(x).at[i, 1:].get(mode=mode, fill_value=0.5) ** 2,
                    (x,), order=2, modes=("fwd", "rev"))
        return
    check_grads(lambda x, v: getattr(jnp.asarray(x).at[i], method)(v, mode=mode), (x, v),
                order=2, modes=("fwd", "rev"))


def test_grad_of_fill_value_and_apply():
    i = np.array([3, 0, 0])
    g = ft.grad(lambda f: jnp.sum(jnp.arange(3.0).at[i].get(mode="fill", fill_value=f)))(2.0)
    assert g == 1.0  # one out-of-range index reads the fill value
    check_grads(lambda x: jnp.asarray(x).at[i].apply(jnp.sin), (np.array([0.3, 0.7, 1.1]),),
                order=2, modes=("fwd", "rev"))
