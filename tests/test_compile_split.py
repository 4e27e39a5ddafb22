"""Large fused groups cut into pieces (plan.cut_group): the pieces respect the cost cap, cut
where fewest values cross, compute what the uncut program computes, and repeated pieces
share one compiled kernel."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans
import functrans.numpy as fnp
from functrans import backends
from functrans.backends import cache, numba_cpu, plan
from functrans.backends.plan import Group


def _unit_cost(eqn):
    return 1


def _two_value_chain(steps):
    """Two values carried through steps, a reduction at the end: cuts must carry both."""
    def f(x):
        y = x * 0.5
        for _ in range(steps):
            x, y = x * 1.1 - y * 0.1, y * 0.9 + x * x * 0.01
        return x + y, fnp.sum(x * y)
    return f


def _names(kplan):
    return [e.primitive.name for s in kplan.steps for e in getattr(s, "eqns", [getattr(s, "eqn", None)])]


def _groups(kplan):
    return [s for s in kplan.steps if isinstance(s, Group)]


@settings(max_examples=30)
@given(steps=st.integers(1, 40), cap=st.integers(2, 12))
def test_pieces_respect_the_cap_and_keep_the_equations_in_order(steps, cap):
    closed = functrans.make_jaxpr(_two_value_chain(steps))(np.ones(5))
    whole = plan.make_plan(closed, rewrites=True)
    cut = plan.make_plan(closed, rewrites=True, eqn_cost=_unit_cost, group_cap=cap)
    assert _names(cut) == _names(whole)    # (each make_plan builds fresh equations)
    for g in _groups(cut):
        assert len(g.eqns) <= cap
    n_whole = sum(len(g.eqns) for g in _groups(whole))
    assert len(_groups(cut)) >= -(-n_whole // cap)
    # every value crossing a cut is materialized; at most the two carried values per cut
    extra = len(cut.materialized) - len(whole.materialized)
    assert 0 <= extra <= 2 * (len(_groups(cut)) - len(_groups(whole)))


def test_cut_where_fewest_values_are_read_later():
    def f(x):
        a = x * 2.0
        b = a + 1.0
        c = b * 3.0
        d = c + a          # after d only d is alive; after c both a and c, after e d and e
        e = d * 2.0
        g = e + d
        return g * 3.0 + 1.0
    closed = functrans.make_jaxpr(f)(np.ones(4))
    kplan = plan.make_plan(closed, rewrites=True, eqn_cost=_unit_cost, group_cap=5)
    sizes = [len(g.eqns) for g in _groups(kplan)]
    assert sizes[0] == 4 and sum(sizes) == 8
    d = _groups(kplan)[0].eqns[-1].out_binders[0]
    crossing = [v for v in kplan.materialized if v in _groups(kplan)[0].local]
    assert crossing == [d]


def test_a_chain_materializes_one_value_per_cut():
    def f(x):
        for _ in range(30):
            x = fnp.sin(x) * 1.01 + 0.1
        return x
    closed = functrans.make_jaxpr(f)(np.ones(3, np.float32))
    kplan = plan.make_plan(closed, rewrites=True, eqn_cost=numba_cpu.eqn_cost,
                           group_cap=numba_cpu.GROUP_COST_CAP)
    groups = _groups(kplan)
    for g in groups:
        assert sum(map(numba_cpu.eqn_cost, g.eqns)) <= numba_cpu.GROUP_COST_CAP
    assert len(groups) == 15 and len(kplan.materialized) == len(groups)


@settings(max_examples=8)
@given(steps=st.integers(1, 30), cap=st.sampled_from([6, 9]))
def test_cut_programs_compute_what_eager_computes(steps, cap):
    f = _two_value_chain(steps)
    x = np.linspace(-1, 1, 7)
    old = numba_cpu.GROUP_COST_CAP
    numba_cpu.GROUP_COST_CAP = cap
    try:
        got = functrans.jit(f)(x)
    finally:
        numba_cpu.GROUP_COST_CAP = old
    want = f(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-300)


def test_switching_cutting_off_keeps_whole_groups(monkeypatch):
    f = _two_value_chain(12)
    x = np.linspace(-1, 1, 6)
    cut = functrans.jit(f).lower(x)
    monkeypatch.setenv("FUNCTRANS_SPLIT_GROUPS", "0")
    assert numba_cpu.group_cap() is None
    whole = functrans.jit(f).lower(x)
    assert len(_groups(whole.plan)) < len(_groups(cut.plan))
    for a, b in zip(functrans.jit(f)(x), f(x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)


def test_identical_pieces_share_one_kernel():
    def f(x):
        for _ in range(20):
            x = fnp.sin(x) * 1.01 + 0.1
        return x
    x = np.linspace(-3, 3, 50, dtype=np.float32)
    jf = functrans.jit(f)
    low = jf.lower(x)
    kernels = [p for kind, p in low.parts if kind == "kernel"]
    assert len(kernels) == 10
    assert len({cache.module_name(k.source) for k in kernels}) == 1
    before = backends.compile_stats()["compiles"]
    got = jf(x)
    assert backends.compile_stats()["compiles"] - before <= 1
    want = x
    for _ in range(20):
        want = np.sin(want) * np.float32(1.01) + np.float32(0.1)
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=2e-6)


# --- interleaved shapes: one open group per shape (plan._place) ---------------------------------

def _adam_like(params, grads):
    """tree_maps the way an optimizer writes them: every leaf's first moment, then every leaf's
    second moment, then the update; the leaves have two shapes."""
    m = {k: 0.9 * params[k] + 0.1 * g for k, g in grads.items()}
    v = {k: 0.99 * params[k] + 0.01 * g * g for k, g in grads.items()}
    return {k: params[k] - 0.1 * m[k] / (fnp.sqrt(v[k]) + 1e-8) for k in grads}


_LEAVES = {"a": np.arange(1.0, 4.0), "b": np.arange(1.0, 13.0).reshape(4, 3),
           "c": np.arange(2.0, 14.0).reshape(4, 3)}


def test_interleaved_tree_maps_fuse_into_one_loop_per_shape_and_leaf():
    closed = functrans.make_jaxpr(_adam_like)(_LEAVES, _LEAVES)
    whole = plan.make_plan(closed, rewrites=True)
    assert sorted(g.shape_var.aval.shape for g in _groups(whole)) == [(3,), (4, 3)]
    assert set(whole.materialized) == set(whole.outvars)    # m and v stay in registers
    # cut to the cap, the (4, 3) group splits between the two leaves' chains, not across them
    cut = plan.make_plan(closed, rewrites=True, eqn_cost=_unit_cost, group_cap=12)
    assert len(_groups(cut)) == 3 and set(cut.materialized) == set(cut.outvars)
    # (the values under jit: tests/test_optim.py's jitted chain of adamw and clipping)


def test_an_equation_runs_after_the_groups_it_reads():
    def f(x, y):
        a = x * 2.0
        s = fnp.sum(y * 3.0)          # a reduction in the y-shaped group
        return a + s, y + 1.0         # a + s reads it: a's group must run after y's
    x, y = np.arange(4.0), np.arange(3.0)
    kplan = plan.make_plan(functrans.make_jaxpr(f)(x, y), rewrites=True)
    # y's group (reading only arguments) opens before a's, so a and a + s share one loop
    assert [g.shape_var.aval.shape for g in _groups(kplan)] == [(3,), (4,)]
    assert [e.primitive.name for e in _groups(kplan)[1].eqns] == ["mul", "broadcast_in_dim", "add"]
    got = functrans.jit(f)(x, y)
    np.testing.assert_allclose(np.asarray(got[0]), x * 2 + np.sum(y * 3))
    np.testing.assert_allclose(np.asarray(got[1]), y + 1)
