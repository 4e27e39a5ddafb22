"""Fuzzing: hypothesis-generated random programs over the whole primitive set
(tests/fuzz_programs.py), each checked five ways: eager functrans against the NumPy reference
of the same program, jit against eager, derivatives of a scalarised float64 program against
central finite differences (check_grads), vmap against a Python loop, and jvp against
linearize.

Two profiles (docs/testing.md): ``ci`` runs in the default ``pytest`` (few, derandomised
examples; jit compiles dominate, so it gets the fewest); ``long`` runs with ``pytest -m fuzz``
(many random examples, second-order derivatives, nested jit). A failure prints the program
(ops, shapes, dtypes, inputs) and hypothesis's reproduction blob."""
import contextlib
import functools
import os

import numpy as np
import pytest
from hypothesis import Phase, find, given, settings

import functrans as ft
from functrans import core
from functrans.interpreters import batching
from functrans import test_util

from fuzz_programs import FT, OPS, programs

# Tolerances of float comparisons, by the least precise dtype: (rtol, atol relative to the
# largest magnitude of the expected output, floored at 1).
TOL = {np.dtype(np.float32): (2e-4, 2e-5), np.dtype(np.float64): (1e-9, 1e-11)}


@contextlib.contextmanager
def explain(prog, what):
    """Re-raise an AssertionError with the check's name and the program."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{what} failed for\n{prog!r}\n{e}") from e


def assert_outputs(got, want, prog, scale=1.0):
    """Same number, dtypes and shapes; integers and bools equal; floats close (TOL of the
    program's least precise float dtype, times scale)."""
    got, want = list(got), list(want)
    assert len(got) == len(want), f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert (g.dtype, g.shape) == (w.dtype, w.shape), (
            f"output {i}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}")
        if w.dtype.kind != "f":
            np.testing.assert_array_equal(g, w, err_msg=f"output {i}")
            continue
        rtol, atol = TOL[prog.least_float()]
        big = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
        np.testing.assert_allclose(g, w, rtol=rtol * scale, atol=atol * scale * big,
                                   err_msg=f"output {i}")


def _float_view(prog):
    """(f, float args): the program as a function of its float inputs, the others fixed."""
    args = prog.args()
    where = [i for i, a in enumerate(args) if a.dtype.kind == "f"]

    def f(*floats):
        full = list(args)
        for i, x in zip(where, floats):
            full[i] = x
        return prog(FT, *full)
    return f, [args[i] for i in where]


# ---------------------------------------------------------------------------------------------
# The checks (each takes a program and the profile's name)

def check_numpy(prog, profile):
    """Eager functrans equals the NumPy reference: dtypes, shapes and values."""
    with explain(prog, "eager vs NumPy"):
        assert_outputs(prog(FT, *prog.args()), prog.reference(), prog)


def check_jit(prog, profile):
    """jit (numba CPU) equals eager; in the long profile jit of the vmapped program too."""
    def f(*a):
        return prog(FT, *a)
    cases = [("jit", f, prog.args())]
    if profile == "long":
        cases.append(("jit(vmap)", ft.vmap(f, in_axes=tuple(prog.in_axes)), prog.batched_args()))
    for what, fun, args in cases:
        with explain(prog, f"{what} vs eager"):
            assert_outputs(ft.jit(fun, backend="cpu")(*args), fun(*args), prog, scale=10)


def check_grad(prog, profile):
    """Derivatives of sum(outputs * fixed weights) against central finite differences, in
    every mode the program's ops define (order 2 in the long profile)."""
    f, floats = _float_view(prog)
    rng = np.random.default_rng(prog.seed)
    weights = [rng.standard_normal(np.shape(r)) for r in prog.reference()]

    def loss(*xs):
        outs = f(*xs)
        return sum(ft.numpy.sum(o * w) for o, w in zip(outs, weights)
                   if np.dtype(o.dtype).kind == "f")
    # central differences with a fixed step are off by about eps**2 * |f'''| / 6; loop bodies are
    # bounded (BODIES) so that iterating them keeps it small
    order, tol = (2, 1e-3) if profile == "long" else (1, 1e-4)   # second differences: looser
    modes = sorted(prog.modes())
    with explain(prog, f"check_grads(order={order}, modes={modes})"):
        test_util.check_grads(loss, floats, order=order, modes=modes, atol=tol, rtol=tol)
        if "rev" in modes:
            assert_outputs(ft.grad(loss, argnums=tuple(range(len(floats))))(*floats),
                           ft.vjp(loss, *floats)[1](1.0), prog)


def check_batching(prog, profile):
    """vmap over the batch (in_axes 0 or None per input) equals a Python loop."""
    args = prog.batched_args()
    rtol, atol = TOL[prog.least_float()]
    with explain(prog, f"vmap(in_axes={prog.in_axes}) vs a loop"):
        test_util.check_vmap(lambda *a: prog(FT, *a), args, in_axes=tuple(prog.in_axes), atol=atol * 10,
                   rtol=rtol * 10)


def check_linearize(prog, profile):
    """linearize's linear map gives jvp's tangents, and both give the primal outputs."""
    f, floats = _float_view(prog)
    rng = np.random.default_rng(prog.seed)
    tangents = [rng.standard_normal(np.shape(x)).astype(x.dtype) for x in floats]
    out, t_jvp = ft.jvp(f, floats, tangents)
    out_lin, f_lin = ft.linearize(f, *floats)
    t_lin = f_lin(*tangents)
    keep = [i for i, o in enumerate(out) if np.asarray(o).dtype.kind == "f"]
    with explain(prog, "jvp vs linearize"):
        assert_outputs(out_lin, out, prog)
        assert_outputs([t_lin[i] for i in keep], [t_jvp[i] for i in keep], prog, scale=10)


# check -> (program options, examples in the ci profile, in the long one). The long counts are
# multiplied by $FUNCTRANS_FUZZ_SCALE (default 1).
CHECKS = {
    check_numpy: (dict(), 200, 4000),
    check_jit: (dict(max_steps=4), 4, 150),
    check_grad: (dict(float_dtypes=("float64",), diff="any", float_output=True), 100, 2000),
    check_batching: (dict(), 100, 2000),
    check_linearize: (dict(float_dtypes=("float64",), diff="fwd", float_output=True), 60, 1000),
}


@pytest.mark.parametrize("profile", ["ci", pytest.param("long", marks=pytest.mark.fuzz)])
@pytest.mark.parametrize("check", list(CHECKS), ids=lambda c: c.__name__)
def test_fuzz(check, profile):
    """Run one check over random programs with the profile's hypothesis settings
    (``fuzz-ci`` / ``fuzz-long``, registered in conftest.py)."""
    options, n_ci, n_long = CHECKS[check]
    long = profile == "long"
    n_long = max(1, round(n_long * float(os.environ.get("FUNCTRANS_FUZZ_SCALE", "1"))))

    @settings(settings.get_profile(f"fuzz-{profile}"), max_examples=n_long if long else n_ci)
    @given(prog=programs(long=long, **options))
    def run(prog):
        check(prog, profile)
    run()


# ---------------------------------------------------------------------------------------------
# Every row, once: a single-step program of each row through every check that applies (the
# random profiles draw rows at random, so a short run may miss some)

@functools.lru_cache(maxsize=None)
def single_step_program(name):
    """The first single-step program of row ``name`` on a nonempty input of 2 or 3 dims (so
    that transposes and reshapes are not no-ops) that hypothesis generates (derandomised: the
    same one every run); float64 when the row has derivatives to check."""
    options = (dict(float_dtypes=("float64",), diff="any", float_output=True)
               if OPS[name].diff else {})
    quick = settings(database=None, derandomize=True, phases=[Phase.generate],
                     max_examples=300, deadline=None)
    def nontrivial(p):
        return len(p.steps) == 1 and p.in_avals[0].ndim >= 2 and 0 not in p.in_avals[0].shape
    return find(programs(only=[name], max_steps=1, **options), nontrivial, settings=quick)


def _checks_for(prog):
    """The checks a program takes: derivatives only in the modes all its rows define."""
    checks = [check_numpy, check_batching]
    if prog.modes():
        checks.append(check_grad)
    if "fwd" in prog.modes():
        checks.append(check_linearize)
    return checks


@pytest.mark.parametrize("name", [n for n, op in OPS.items() if not op.long_only])
def test_every_row(name):
    """Each row of the table passes every check but jit (too many compiles for CI)."""
    prog = single_step_program(name)
    for check in _checks_for(prog):
        check(prog, "ci")


@pytest.mark.fuzz
def test_jit_every_row():
    """Long profile: the single-step programs of all rows in ONE jitted function (one compile,
    minutes on a loaded 2-core machine) equal eager."""
    progs = [single_step_program(n) for n, op in OPS.items() if not op.long_only]
    args = [p.args() for p in progs]

    def all_rows(args):
        return [p(FT, *a) for p, a in zip(progs, args)]
    for prog, got, want in zip(progs, ft.jit(all_rows)(args), all_rows(args)):
        with explain(prog, "jit (all rows together) vs eager"):
            assert_outputs(got, want, prog, scale=10)


def _primitive_names(jaxpr, names):
    """Add the names of the primitives of jaxpr and of the jaxprs in its equations' params."""
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for p in eqn.params.values():
            for sub in (p if isinstance(p, (list, tuple)) else [p]):
                if isinstance(sub, (core.Jaxpr, core.ClosedJaxpr)):
                    _primitive_names(sub, names)
    return names


def test_op_table_reaches_every_primitive():
    """Every primitive with an impl appears in the jaxpr of some single-step program
    (custom_lin exists only inside linearized custom_vjp functions: the grad check reaches
    it; collectives exist only where a vmap binds their axis, which rewrites them into other
    primitives: tests/test_collectives.py covers them)."""
    names = set()
    for name in OPS:
        prog = single_step_program(name)
        _primitive_names(ft.make_jaxpr(lambda *a, p=prog: p(FT, *a))(*prog.args()), names)
    collectives = {p.name for p in batching.collective_axes}
    missing = {p.name for p in core.impl_rules} - names - collectives - {"custom_lin"}
    assert not missing, f"primitives no op of the fuzz table reaches: {sorted(missing)}"
