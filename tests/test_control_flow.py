"""Structured control flow: cond, switch, while_loop, fori_loop, scan, map — values against
Python loops, derivatives against finite differences, vmap against loops, jit against eager."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import lax
from functrans.test_util import check_grads

f64 = np.float64
i64 = np.int64
rng = np.random.RandomState(0)


def c(v, like):
    """A constant v of like's dtype and shape (lax ops need equal shapes and dtypes)."""
    return lax.full(np.shape(like), v, np.asarray(like).dtype if not hasattr(like, "aval")
                    else like.aval.dtype)


def add(x, y): return lax.add(x, y)
def mul(x, y): return lax.mul(x, y)
def vsum(x): return lax.reduce_sum(x, tuple(range(np.ndim(x))))


# ---------------------------------------------------------------------------------------------
# cond and switch

def piecewise(x, w):
    """Closes over w (a tracer of the enclosing transform when w is differentiated)."""
    return lax.cond(lax.gt(x, c(0.0, x)), lambda x: lax.sin(mul(x, w)),
                    lambda x: mul(mul(x, w), w), x)


@pytest.mark.parametrize("x", [0.7, -1.3])
def test_cond_values_and_grads(x):
    x, w = f64(x), f64(1.7)
    expect = np.sin(x * w) if x > 0 else x * w * w
    np.testing.assert_allclose(piecewise(x, w), expect)
    check_grads(piecewise, (x, w), order=2)


def test_cond_pytree_operands_and_outputs():
    def f(p, x):
        return lax.cond(lax.gt(vsum(x), c(0.0, f64(0))),
                        lambda p, x: {"a": mul(p["w"], x), "b": lax.exp(p["b"])},
                        lambda p, x: {"a": lax.sin(x), "b": mul(p["b"], p["b"])}, p, x)
    p = {"w": rng.randn(3), "b": f64(0.3)}
    for x in (rng.randn(3) + 2, rng.randn(3) - 2):
        out = f(p, x)
        if x.sum() > 0:
            np.testing.assert_allclose(out["a"], p["w"] * x)
        else:
            np.testing.assert_allclose(out["b"], 0.09)
        check_grads(lambda w, b, x: vsum(f({"w": w, "b": b}, x)["a"]) + f({"w": w, "b": b}, x)["b"],
                    (p["w"], p["b"], x), order=2)


def test_cond_zero_operands_number_pred_and_legacy_form():
    assert float(lax.cond(True, lambda: f64(1.0), lambda: f64(2.0))) == 1.0
    assert float(lax.cond(i64(0), lambda: f64(1.0), lambda: f64(2.0))) == 2.0
    out = lax.cond(False, f64(3.0), lambda a: mul(a, a), f64(5.0), lambda b: lax.neg(b))
    assert float(out) == -5.0


def branches_for_switch(w):
    return [lambda x: lax.sin(mul(x, w)), lambda x: mul(x, x), lambda x: lax.exp(mul(x, w))]


@pytest.mark.parametrize("i", [-3, 0, 1, 2, 9])
def test_switch_clamps_and_differentiates(i):
    x, w = f64(0.4), f64(1.1)
    expect = [np.sin(x * w), x * x, np.exp(x * w)][min(max(i, 0), 2)]
    np.testing.assert_allclose(lax.switch(i, branches_for_switch(w), x), expect)
    check_grads(lambda x, w: lax.switch(i64(i), branches_for_switch(w), x), (x, w), order=2)


def test_cond_branch_type_mismatch_names_both():
    with pytest.raises(TypeError, match=r"f64\[\].*f32\[\]"):
        lax.cond(True, lambda x: x, lambda x: lax.convert_element_type(x, np.float32), f64(1))
    with pytest.raises(TypeError, match=r"f64\[3\].*f64\[2\]"):
        lax.cond(True, lambda x: x, lambda x: lax.slice(x, (0,), (2,)), np.zeros(3))
    with pytest.raises(TypeError, match=r"true_fun.*\(f64\[\], f64\[\]\).*false_fun.*f64\[\]"):
        lax.cond(True, lambda x: (x, x), lambda x: x, f64(1))
    with pytest.raises(TypeError, match=r"branch 0.*branch 1"):
        lax.switch(0, [lambda x: x, lambda x: (x,)], f64(1))
    with pytest.raises(TypeError, match="scalar"):
        lax.cond(np.array([True, False]), lambda: f64(1), lambda: f64(2))


def test_vmap_cond_batched_and_unbatched_predicate():
    xs, ws = rng.randn(5), rng.randn(5)
    loop = np.array([piecewise(x, w) for x, w in zip(xs, ws)])
    np.testing.assert_allclose(ft.vmap(piecewise)(xs, ws), loop)       # batched predicate
    pos = np.abs(xs) + 0.1
    np.testing.assert_allclose(ft.vmap(piecewise, (None, 0))(f64(0.5), ws),
                               [piecewise(f64(0.5), w) for w in ws])   # unbatched pred, batched w
    np.testing.assert_allclose(ft.vmap(piecewise, (0, None))(pos, f64(0.3)),
                               [piecewise(x, f64(0.3)) for x in pos])
    idx = np.array([0, 2, 1, 5, -1])
    f = lambda i, x: lax.switch(i, branches_for_switch(f64(0.9)), x)  # noqa: E731
    np.testing.assert_allclose(ft.vmap(f)(idx, xs), [f(i, x) for i, x in zip(idx, xs)])
    np.testing.assert_allclose(ft.vmap(f, (None, 0))(i64(2), xs), [f(i64(2), x) for x in xs])
    # derivatives through the batched select
    g = ft.vmap(ft.grad(piecewise, argnums=(0, 1)))(xs, ws)
    for k in range(5):
        gk = ft.grad(piecewise, argnums=(0, 1))(xs[k], ws[k])
        np.testing.assert_allclose([g[0][k], g[1][k]], gk)


# ---------------------------------------------------------------------------------------------
# scan

def rnn_step(w):
    def step(h, x):
        h = lax.tanh(add(mul(h, w), x))
        return h, mul(h, h)
    return step


def python_scan(f, init, xs, reverse=False):
    carry, ys = init, []
    idx = range(len(xs))
    for i in (reversed(idx) if reverse else idx):
        carry, y = f(carry, xs[i])
        ys.append(y)
    return carry, np.array(ys[::-1] if reverse else ys)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_matches_python_loop(reverse):
    xs, w = rng.randn(6), f64(0.8)
    h, ys = lax.scan(rnn_step(w), f64(0.2), xs, reverse=reverse)
    h_ref, ys_ref = python_scan(rnn_step(w), f64(0.2), xs, reverse)
    np.testing.assert_allclose(h, h_ref)
    np.testing.assert_allclose(ys, ys_ref)


def test_scan_length_without_xs_and_pytrees():
    (a, b), ys = lax.scan(lambda cr, _: ((add(cr[0], cr[1]), cr[0]), {"fib": cr[0]}),
                          (i64(1), i64(0)), None, length=8)
    np.testing.assert_array_equal(ys["fib"], [1, 1, 2, 3, 5, 8, 13, 21])
    xs = {"u": rng.randn(4, 2), "v": [rng.randn(4)]}
    carry, ys = lax.scan(lambda cr, x: (add(cr, x["u"]), (x["v"][0], mul(cr, cr))), np.zeros(2), xs)
    np.testing.assert_allclose(carry, xs["u"].sum(0))
    np.testing.assert_allclose(ys[0], xs["v"][0])
    with pytest.raises(ValueError, match="length"):
        lax.scan(lambda cr, x: (cr, x), f64(0), None)
    with pytest.raises(ValueError, match="leading axis"):
        lax.scan(lambda cr, x: (cr, x), f64(0), (np.zeros(3), np.zeros(4)))


def test_scan_carry_type_mismatch_names_both():
    with pytest.raises(TypeError, match=r"f64\[\].*f32\[\]"):
        lax.scan(lambda cr, x: (lax.convert_element_type(cr, np.float32), x), f64(0), np.zeros(3))
    with pytest.raises(TypeError, match=r"\(f64\[\], f64\[\]\).*f64\[\]"):
        lax.scan(lambda cr, x: (cr[0], x), (f64(0), f64(0)), np.zeros(3))
    with pytest.raises(TypeError, match="pair"):
        lax.scan(lambda cr, x: cr, f64(0), np.zeros(3))


def scan_loss(h0, w, xs):
    h, ys = lax.scan(rnn_step(w), h0, xs)
    return add(h, vsum(ys))


def test_scan_grads_with_closure_order2():
    check_grads(scan_loss, (f64(0.2), f64(0.8), rng.randn(4)), order=2)


def test_scan_grads_pytree_carry_and_reverse():
    def f(p, xs):
        def step(cr, x):
            h, acc = cr["h"], cr["acc"]
            h = lax.sin(add(mul(h, p["a"]), x))
            return {"h": h, "acc": add(acc, mul(h, p["b"]))}, (h, mul(x, h))
        cr, (y1, y2) = lax.scan(step, {"h": np.zeros(2), "acc": np.zeros(2)}, xs, reverse=True)
        return vsum(add(cr["h"], cr["acc"])) + vsum(y1) + vsum(y2)
    p = {"a": rng.randn(2), "b": rng.randn(2)}
    check_grads(lambda a, b, xs: f({"a": a, "b": b}, xs), (p["a"], p["b"], rng.randn(3, 2)), order=2)


def test_vmap_scan_batched_xs_carry_consts():
    h0s, ws, xss = rng.randn(3), rng.randn(3), rng.randn(3, 5)
    loop = [scan_loss(h, w, x) for h, w, x in zip(h0s, ws, xss)]
    np.testing.assert_allclose(ft.vmap(scan_loss)(h0s, ws, xss), loop)
    np.testing.assert_allclose(ft.vmap(scan_loss, (0, None, None))(h0s, f64(0.5), xss[0]),
                               [scan_loss(h, f64(0.5), xss[0]) for h in h0s])
    np.testing.assert_allclose(ft.vmap(scan_loss, (None, 0, None))(f64(0.1), ws, xss[0]),
                               [scan_loss(f64(0.1), w, xss[0]) for w in ws])
    np.testing.assert_allclose(ft.vmap(scan_loss, (None, None, 1))(f64(0.1), f64(0.5), xss.T),
                               [scan_loss(f64(0.1), f64(0.5), x) for x in xss])
    g = ft.vmap(ft.grad(scan_loss, argnums=1))(h0s, ws, xss)
    np.testing.assert_allclose(g, [ft.grad(scan_loss, argnums=1)(h, w, x)
                                   for h, w, x in zip(h0s, ws, xss)])


@given(n=st.integers(0, 5), d=st.integers(1, 3), reverse=st.booleans(), seed=st.integers(0, 99))
def test_scan_cumulative_products_hypothesis(n, d, reverse, seed):
    r = np.random.RandomState(seed)
    xs, init = r.randn(n, d), r.randn(d)
    step = lambda cr, x: (mul(cr, lax.cos(x)), add(cr, x))  # noqa: E731
    carry, ys = lax.scan(step, init, xs, reverse=reverse)
    ref_c, ref_ys = python_scan(lambda cr, x: (cr * np.cos(x), cr + x), init, xs, reverse)
    np.testing.assert_allclose(carry, ref_c)
    np.testing.assert_allclose(ys, ref_ys.reshape(n, d))


def test_map():
    xs = rng.randn(4, 2)
    np.testing.assert_allclose(lax.map(lambda x: lax.sin(vsum(x)), xs), np.sin(xs.sum(1)))
    check_grads(lambda xs: vsum(lax.map(lambda x: mul(lax.sin(x), x), xs)), (xs,), order=2)


# ---------------------------------------------------------------------------------------------
# fori_loop and while_loop

def power_loop(x, n=3):
    return lax.fori_loop(0, n, lambda i, acc: add(mul(acc, x), lax.convert_element_type(i, np.float64)), x)


def test_fori_loop_static_bounds_values_and_grads():
    x = f64(1.3)
    acc = x
    for i in range(3):
        acc = acc * x + i
    np.testing.assert_allclose(power_loop(x), acc)
    check_grads(power_loop, (x,), order=2)
    assert float(lax.fori_loop(5, 2, lambda i, a: add(a, f64(1)), f64(0))) == 0.0
    pytree = lax.fori_loop(0, 4, lambda i, cr: (mul(cr[0], x), add(cr[1], cr[0])), (f64(1), f64(0)))
    np.testing.assert_allclose(pytree, (x ** 4, 1 + x + x ** 2 + x ** 3))


def while_fun(x):
    """sin applied until the counter reaches 4; closes over x."""
    cond = lambda cr: lax.lt(cr[0], i64(4))  # noqa: E731
    body = lambda cr: (add(cr[0], i64(1)), lax.sin(mul(cr[1], x)))  # noqa: E731
    return lax.while_loop(cond, body, (i64(0), x))[1]


def while_ref(x):
    y = x
    for _ in range(4):
        y = np.sin(y * x)
    return y


def test_while_loop_values_jvp_linearize():
    x = f64(0.9)
    np.testing.assert_allclose(while_fun(x), while_ref(x))
    check_grads(while_fun, (x,), order=2, modes=("fwd",))
    y, f_jvp = ft.linearize(while_fun, x)
    fd = (while_ref(x + 1e-6) - while_ref(x - 1e-6)) / 2e-6
    np.testing.assert_allclose(f_jvp(f64(1.0)), fd, rtol=1e-6)
    np.testing.assert_allclose(ft.jacfwd(while_fun)(x), fd, rtol=1e-6)


def test_while_loop_reverse_mode_raises_naming_the_way_out():
    with pytest.raises(ValueError, match=r"while_loop.*scan.*fori_loop"):
        ft.grad(while_fun)(f64(0.9))
    traced_bounds = ft.jit(lambda x, n: lax.fori_loop(0, n, lambda i, a: mul(a, x), x))
    np.testing.assert_allclose(traced_bounds(f64(1.1), i64(3)), 1.1 ** 4)
    with pytest.raises(ValueError, match=r"scan.*static"):
        ft.grad(traced_bounds)(f64(1.1), i64(3))


def test_while_loop_type_errors():
    with pytest.raises(TypeError, match="boolean scalar"):
        lax.while_loop(lambda x: x, lambda x: x, f64(1))
    with pytest.raises(TypeError, match=r"f64\[\].*f32\[\]"):
        lax.while_loop(lambda x: lax.lt(x, f64(1)),
                       lambda x: lax.convert_element_type(x, np.float32), f64(0))


def collatz_steps(n):
    """Data-dependent trip count: a batched predicate under vmap."""
    def body(cr):
        k, m = cr
        even = lax.eq(lax.rem(m, i64(2)), i64(0))
        return add(k, i64(1)), lax.select(even, lax.div(m, i64(2)), add(mul(m, i64(3)), i64(1)))
    return lax.while_loop(lambda cr: lax.gt(cr[1], i64(1)), body, (i64(0), n))[0]


def test_vmap_while_batched_and_unbatched_predicate():
    ns = np.array([1, 6, 7, 27, 2])
    np.testing.assert_array_equal(ft.vmap(collatz_steps)(ns), [collatz_steps(n) for n in ns])
    xs = rng.rand(4) + 0.5
    np.testing.assert_allclose(ft.vmap(while_fun)(xs), [while_ref(x) for x in xs])  # unbatched pred
    tang = ft.vmap(lambda x: ft.jvp(while_fun, (x,), (f64(1.0),))[1])(xs)
    np.testing.assert_allclose(tang, [ft.jvp(while_fun, (x,), (f64(1.0),))[1] for x in xs])

    def until_big(x, limit):  # batched limit -> batched predicate with float carries
        return lax.while_loop(lambda v: lax.lt(v, limit), lambda v: mul(v, x), x)
    lims = np.array([2.0, 10.0, 100.0])
    np.testing.assert_allclose(ft.vmap(until_big, (None, 0))(f64(1.5), lims),
                               [until_big(f64(1.5), lim) for lim in lims])


# ---------------------------------------------------------------------------------------------
# Nesting

def scan_in_scan(w, xs):
    def outer(h, row):
        h2, ys = lax.scan(rnn_step(w), h, row)
        return h2, vsum(ys)
    h, s = lax.scan(outer, f64(0.1), xs)
    return add(h, vsum(s))


def cond_in_scan(w, xs):
    def step(h, x):
        h = lax.cond(lax.gt(x, c(0.0, x)), lambda h: lax.sin(mul(h, w)),
                     lambda h: add(mul(h, x), w), h)
        return h, h
    h, ys = lax.scan(step, f64(0.3), xs)
    return add(h, vsum(ys))


def fori_in_cond(x, w):
    return lax.cond(lax.gt(w, c(0.0, w)),
                    lambda x: lax.fori_loop(0, 3, lambda i, a: lax.sin(mul(a, w)), x),
                    lambda x: mul(x, w), x)


def test_nesting_grads():
    check_grads(scan_in_scan, (f64(0.7), rng.randn(2, 3)), order=2)
    check_grads(cond_in_scan, (f64(0.7), np.array([0.5, -0.4, 0.8, -0.1])), order=2)
    check_grads(fori_in_cond, (f64(0.6), f64(0.9)), order=2)
    check_grads(fori_in_cond, (f64(0.6), f64(-0.9)), order=2)


def test_nesting_values_and_vmap():
    xs = np.array([0.5, -0.4, 0.8, -0.1])
    h, ref = 0.3, 0.0
    for x in xs:
        h = np.sin(h * 0.7) if x > 0 else h * x + 0.7
        ref += h
    np.testing.assert_allclose(cond_in_scan(f64(0.7), xs), h + ref)
    xss = rng.randn(3, 4)
    np.testing.assert_allclose(ft.vmap(cond_in_scan, (None, 0))(f64(0.7), xss),
                               [cond_in_scan(f64(0.7), x) for x in xss])
    ws = np.array([0.5, -0.5, 1.2])
    np.testing.assert_allclose(ft.vmap(fori_in_cond, (None, 0))(f64(0.6), ws),
                               [fori_in_cond(f64(0.6), w) for w in ws])


# ---------------------------------------------------------------------------------------------
# jit against eager, and checkpoint

JIT_CASES = {
    "cond": (piecewise, (f64(-0.7), f64(1.3))),
    "switch": (lambda i, x: lax.switch(i, branches_for_switch(f64(0.9)), x), (i64(2), f64(0.4))),
    "scan": (scan_loss, (f64(0.2), f64(0.8), rng.randn(5))),
    "grad_scan": (ft.grad(scan_loss, argnums=(0, 1)), (f64(0.2), f64(0.8), rng.randn(5))),
    "fori_static": (power_loop, (f64(1.3),)),
    "while": (while_fun, (f64(0.9),)),
    "while_batched_pred": (ft.vmap(collatz_steps), (np.array([3, 6, 7]),)),
    "map": (lambda xs: lax.map(lax.sin, xs), (rng.randn(3),)),
    "nested": (cond_in_scan, (f64(0.7), np.array([0.5, -0.4, 0.8]))),
    "grad_nested": (ft.grad(fori_in_cond, argnums=1), (f64(0.6), f64(0.9))),
}


@pytest.mark.parametrize("name", list(JIT_CASES))
def test_jit_matches_eager(name):
    f, args = JIT_CASES[name]
    eager = ft.tree_util.tree_leaves(f(*args))
    jitted = ft.tree_util.tree_leaves(ft.jit(f)(*args))
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_scan_of_checkpoint_saves_less_and_agrees():
    from functrans.checkpoint import checkpoint, residual_bytes
    w = rng.randn(4, 4) * 0.3

    def step(h, x):
        z = add(lax.dot_general(w, h, (((1,), (0,)), ((), ()))), x)
        return lax.sin(lax.tanh(lax.exp(lax.tanh(z)))), ()

    def loss(body):
        return lambda h0, xs: vsum(lax.scan(body, h0, xs)[0])
    h0, xs = rng.randn(4), rng.randn(1000, 4)
    plain, remat = residual_bytes(loss(step), h0, xs), residual_bytes(loss(checkpoint(step)), h0, xs)
    assert remat <= plain / 2, (plain, remat)
    np.testing.assert_allclose(ft.grad(loss(checkpoint(step)))(h0, xs), ft.grad(loss(step))(h0, xs))
    check_grads(loss(checkpoint(step)), (h0, xs[:3]), order=2)


def test_make_jaxpr_shows_loops():
    text = str(ft.make_jaxpr(scan_loss)(f64(0.2), f64(0.8), np.zeros(3)))
    assert "scan[length=3" in text and "tanh" in text
    text = str(ft.make_jaxpr(while_fun)(f64(0.9)))
    assert "while[" in text and "cond_jaxpr" in text


# ---------------------------------------------------------------------------------------------
# Loop-invariant code motion in the CPU plan (backends/plan.py hoist_loop_invariants)

def _loop_body_eqns(closed, name):
    from functrans.backends import plan
    eqns = plan.hoist_loop_invariants(plan.inline_jit(closed)[2])
    loop = next(e for e in eqns if e.primitive.name == name)
    body = loop.params["body_jaxpr" if name == "while" else "jaxpr"]
    return [e.primitive.name for e in eqns], [e.primitive.name for e in body.jaxpr.eqns]


def test_loop_invariants_run_once_before_the_loop():
    """A product of the loop's constants moves out of while and scan bodies (what CG on
    jvp(grad(f)) needs: f's forward pass once, not per iteration); what reads a carry or a
    scanned slice, splats of literals, and effects (debug.print) stay; values are unchanged."""
    a = np.random.default_rng(0).normal(size=(4, 4))

    def cg_like(m, v):
        def body(c):
            i, u = c
            ft.debug.print("step {}", i)
            return i + 1, jnp.tanh(m @ m) @ u * 0.5 + 1.0
        return lax.while_loop(lambda c: c[0] < 3, body, (0, v))[1]

    def scan_like(m, xs):
        return lax.scan(lambda c, x: (c + jnp.sin(m * 2.0).sum() * x, c), 0.0, xs)

    outer, body = _loop_body_eqns(ft.make_jaxpr(cg_like)(a, a[0]), "while")
    assert outer.count("dot_general") == 1 and "tanh" in outer          # tanh(m @ m): once
    assert body.count("dot_general") == 1 and "debug_callback" in body   # the carry's product
    outer, body = _loop_body_eqns(ft.make_jaxpr(scan_like)(a, a[0]), "scan")
    assert "sin" in outer and "reduce_sum" in outer and "sin" not in body
    np.testing.assert_allclose(ft.jit(cg_like)(a, a[0]), cg_like(a, a[0]), rtol=1e-12)
    for got, want in zip(ft.jit(scan_like)(a, a[0]), scan_like(a, a[0])):
        np.testing.assert_allclose(got, want, rtol=1e-12)
