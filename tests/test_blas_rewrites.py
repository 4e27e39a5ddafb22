"""How the CPU plan feeds BLAS: the dot_general transpose rule writes a weight gradient in its
own layout, a sum of two products is one gemm accumulating into the other (accumulate_dots),
full contractions become loops fused with their operands' producers (vdots_as_reductions), and
a dot keeps elementwise groups it does not read open across it. Each is checked on the plan it
makes and on values (jit against eager or NumPy)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as fnp
from functrans import lax
from functrans.backends import numba_cpu, plan
from functrans.backends.plan import Group, Op
from functrans.test_util import check_grads


def _plan(f, *args):
    return plan.make_plan(ft.make_jaxpr(f)(*args), rewrites=True, cpu_blas=True)


def _op_names(kplan):
    return [s.eqn.primitive.name for s in kplan.steps if isinstance(s, Op)]


def _arrays(rng, dtype, *shapes):
    dtype = np.dtype(dtype)
    out = []
    for s in shapes:
        a = rng.normal(size=s)
        if dtype.kind == "c":
            a = a + 1j * rng.normal(size=s)
        out.append(a.astype(dtype))
    return out


# ---------------------------------------------------------------------------------------------
# The transpose rule of dot_general

def test_weight_gradient_has_no_transpose():
    """grad of x @ w in w is x^T g written straight into w's layout (dot_general(x, g)), not
    dot_general(g, x) and a transpose; the input gradient needed none already."""
    rng = np.random.default_rng(0)
    x, w = _arrays(rng, np.float32, (4, 3), (3, 5))
    for argnums in (0, 1):
        jaxpr = ft.make_jaxpr(ft.grad(lambda x, w: fnp.sum(fnp.tanh(x @ w)), argnums))(x, w)
        assert "transpose" not in [e.primitive.name for e in jaxpr.jaxpr.eqns]


@st.composite
def _dot_problems(draw):
    """(x, y, dimension_numbers) with batch, contracting and free dims in shuffled places."""
    nb, nc = draw(st.integers(0, 1)), draw(st.integers(1, 2))
    nxf, nyf = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    sizes = draw(st.lists(st.integers(1, 3), min_size=nb + nc + nxf + nyf,
                          max_size=nb + nc + nxf + nyf))
    b, c = sizes[:nb], sizes[nb:nb + nc]
    xf, yf = sizes[nb + nc:nb + nc + nxf], sizes[nb + nc + nxf:]
    px = draw(st.permutations(range(nb + nc + nxf)))     # where each x dim lands
    py = draw(st.permutations(range(nb + nc + nyf)))
    xshape, yshape = [0] * len(px), [0] * len(py)
    for i, s in enumerate(b + c + xf):
        xshape[px[i]] = s
    for i, s in enumerate(b + c + yf):
        yshape[py[i]] = s
    dn = ((tuple(px[nb:nb + nc]), tuple(py[nb:nb + nc])), (tuple(px[:nb]), tuple(py[:nb])))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    x, y = _arrays(rng, np.float64, xshape, yshape)
    return x, y, dn


@given(_dot_problems())
def test_dot_general_transposes_for_any_dimension_numbers(problem):
    """Whichever operand order the transpose rule picks, the cotangents are right."""
    x, y, dn = problem
    check_grads(lambda x, y: lax.dot_general(x, y, dn), (x, y), order=2, modes=("rev",))


def test_transpose_with_a_wider_preferred_element_type():
    """The cotangent then has the preferred dtype, the other operand its own: the rule computes
    in the wider one and returns the operand's dtype."""
    rng = np.random.default_rng(6)
    x, w = _arrays(rng, np.float32, (3, 4), (4, 5))

    def f(x, w):
        return lax.dot_general(x, w, (((1,), (0,)), ((), ())), preferred_element_type=np.float64)
    gx, gw = ft.grad(lambda x, w: fnp.sum(fnp.tanh(f(x, w))), argnums=(0, 1))(x, w)
    assert gx.dtype == gw.dtype == np.float32
    ct = 1 - np.tanh(x.astype(np.float64) @ w) ** 2
    np.testing.assert_allclose(gw, x.T.astype(np.float64) @ ct, rtol=1e-6)
    check_grads(f, (x.astype(np.float64), w.astype(np.float64)), order=2)


def test_swapped_transpose_keeps_each_operands_precision():
    rng = np.random.default_rng(7)
    x, w = _arrays(rng, np.float32, (3, 4), (4, 5))
    prec = (lax.Precision.HIGHEST, lax.Precision.DEFAULT)
    jaxpr = ft.make_jaxpr(ft.grad(lambda w: fnp.sum(fnp.dot(x, w, precision=prec))))(w)
    dot, = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert dot.inputs[0].aval.shape == (3, 4)        # x . ct: x keeps its HIGHEST
    assert tuple(dot.params["precision"]) == prec


# ---------------------------------------------------------------------------------------------
# accumulate_dots: gemm with beta = 1

def _sum_of_products(x, g, h, w, a, b, c):
    """Three products summed (the first two with transposed operands, as a weight gradient's
    tangent has them), plus a batched pair."""
    s = x.T @ g + h @ w.T
    s = s + a @ b
    bat = lax.dot_general(c, c, (((2,), (2,)), ((0,), (0,))))
    return s * 2.0, bat + lax.dot_general(c, c, (((1,), (1,)), ((0,), (0,))))


def _sum_args(dtype):
    rng = np.random.default_rng(1)
    return _arrays(rng, dtype, (5, 4), (5, 3), (4, 6), (3, 6), (4, 2), (2, 3), (2, 3, 3))


def test_sums_of_products_accumulate_in_the_plan():
    kplan = _plan(_sum_of_products, *_sum_args(np.float32))
    assert _op_names(kplan).count("dot_accumulate") == 3
    assert _op_names(kplan).count("dot_general") == 2       # one product starts each sum
    assert "add" not in [e.primitive.name for s in kplan.steps if isinstance(s, Group)
                         for e in s.eqns]


def test_products_used_elsewhere_or_integer_are_not_accumulated():
    rng = np.random.default_rng(2)
    x, y = _arrays(rng, np.float32, (3, 3), (3, 3))
    def shared(x, y):
        p = x @ y                       # read twice: it must keep its own buffer
        return p + y @ x, p * 2.0
    shared = _plan(shared, x, y)
    assert "dot_accumulate" not in _op_names(shared)
    i = np.arange(9, dtype=np.int32).reshape(3, 3)
    assert "dot_accumulate" not in _op_names(_plan(lambda x, y: x @ y + y @ x, i, i))


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
def test_accumulated_products_equal_eager(dtype):
    args = _sum_args(dtype)
    got = ft.jit(_sum_of_products)(*args)
    want = _sum_of_products(*args)
    tol = 1e-5 if dtype in ("float32", "complex64") else 1e-12
    for g, w in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(w).dtype
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=tol, atol=tol)


def test_accumulated_products_at_empty_and_unit_sizes():
    """gemm_acc's BLAS flags and leading dimensions at M, K, N of 0 and 1 (one shape-erased
    kernel for all of them)."""
    rng = np.random.default_rng(8)
    jf = ft.jit(lambda x, g, h, w: x.T @ g + h @ w.T)
    for m, k, n in [(0, 2, 3), (2, 0, 3), (2, 3, 0), (1, 1, 1), (1, 3, 2), (3, 1, 2), (2, 3, 1)]:
        x, g, h, w = _arrays(rng, np.float32, (k, m), (k, n), (m, k), (n, k))
        np.testing.assert_allclose(jf(x, g, h, w), x.T @ g + h @ w.T, rtol=1e-5, atol=1e-6)


def test_accumulated_products_in_a_loop_body():
    """Sums of products carried from one iteration to the next (the accumulator is a fresh
    buffer each iteration, never the carry it came from)."""
    rng = np.random.default_rng(9)
    a, b = _arrays(rng, np.float64, (3, 3), (3, 3))

    def f(a, b):
        def body(i, c):
            p, q = c
            return p @ a + q @ b, p.T @ q + q @ p
        return lax.fori_loop(0, 4, body, (a * 0.1, b * 0.1))
    kplan_src = ft.jit(f).lower(a, b).as_text()
    assert "gemm_acc(" in kplan_src
    for g, w in zip(ft.jit(f)(a, b), f(a, b)):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_accumulated_products_in_a_split_plan(monkeypatch):
    """Split plans run products between kernels on the host: dot_accumulate too."""
    from functrans.backends import SplitLowered
    monkeypatch.setattr(numba_cpu, "SPLIT_EQNS", 1)
    args = _sum_args(np.float32)
    jf = ft.jit(lambda *a: _sum_of_products(*a)[0] + 1.0)
    low = jf.lower(*args)
    assert isinstance(low, SplitLowered)
    assert "dot_accumulate" in [x.primitive.name for k, x in low.parts if k == "numpy"]
    np.testing.assert_allclose(jf(*args), _sum_of_products(*args)[0] + 1.0, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# vdots_as_reductions and groups kept open across products

def test_vdots_become_reductions_fused_with_their_producers():
    rng = np.random.default_rng(3)
    x, y = _arrays(rng, np.float32, (4, 5), (4, 5))

    def f(x, y):                    # one CG-like step: r = x - 2 y, then <r, r> and <r, y>
        r = x - 2.0 * y
        return r, fnp.vdot(r, r) + fnp.vdot(r, y)
    kplan = _plan(f, x, y)
    assert "dot_general" not in _op_names(kplan)
    loops = [s for s in kplan.steps if isinstance(s, Group) and s.shape_var.aval.shape == (4, 5)]
    assert len(loops) == 1          # r and both sums in one pass
    got = ft.jit(f)(x, y)
    r = x - 2 * y
    np.testing.assert_allclose(got[0], r, rtol=1e-6)
    np.testing.assert_allclose(got[1], np.vdot(r, r) + np.vdot(r, y), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float64", "complex64", "int32"])
def test_vdot_values_on_every_path(dtype):
    """float64 (rewritten), complex and integer (kept as products), shapes that differ
    before flattening, and empty vectors."""
    rng = np.random.default_rng(4)
    for xs, ys in (((2, 3), (3, 2)), ((0,), (0,))):
        x, y = (a.astype(dtype) for a in _arrays(rng, "float64", xs, ys))
        got = ft.jit(fnp.vdot)(x, y)
        np.testing.assert_allclose(got, np.vdot(x, y), rtol=1e-6)
        assert np.asarray(got).dtype == np.vdot(x, y).dtype


def _assert_steps_in_dependency_order(kplan):
    seen = set(kplan.inputs)
    for step in kplan.steps:
        assert all(v in seen for v in plan.step_reads(step)), step
        seen.update(o for e in plan.step_eqns(step) for o in e.out_binders)


def test_a_product_runs_the_groups_its_groups_read():
    rng = np.random.default_rng(10)
    x, w = _arrays(rng, np.float32, (4, 4), (4, 4))

    def f(x, w):
        a = x * 2.0                          # group 1, with a row-sum reduction
        b = fnp.sum(a, axis=1) + 1.0         # group 2 reads group 1
        c = lax.broadcast_in_dim(b, (4, 4), (0,)) * 3.0     # group 3 reads group 2
        return c @ w                         # the product reads group 3 only
    kplan = _plan(f, x, w)
    assert [type(s).__name__ for s in kplan.steps] == ["Group"] * 3 + ["Op"]
    _assert_steps_in_dependency_order(kplan)
    np.testing.assert_allclose(ft.jit(f)(x, w), f(x, w), rtol=1e-5)


def test_groups_stay_open_across_a_product_that_does_not_read_them():
    rng = np.random.default_rng(5)
    x, y, w = _arrays(rng, np.float32, (3, 4), (4, 4), (4, 4))

    def f(x, y, w):
        b = y + 1.0               # the product reads this group ...
        a = x * 2.0               # ... not this one, which the last line joins
        d = b @ w
        return d, a * 3.0 + 1.0
    kplan = _plan(f, x, y, w)
    loops = [s for s in kplan.steps if isinstance(s, Group) and s.shape_var.aval.shape == (3, 4)]
    assert len(loops) == 1
    _assert_steps_in_dependency_order(kplan)
    got = ft.jit(f)(x, y, w)
    np.testing.assert_allclose(got[0], (y + 1) @ w, rtol=1e-5)
    np.testing.assert_allclose(got[1], x * 6 + 1, rtol=1e-6)
