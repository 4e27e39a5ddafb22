"""Memory planning of the CPU jit backend: each value is released after its last use (the split
driver's slots; numba frees a kernel's locals at their last use), elementwise groups write into
dead buffers they own, split kernels are handed their dying inputs, and checkpoint really trades
saved activations for recomputation. Peak memory is measured by benchmarks/memory_bench.py in a
subprocess (see its docstring for the method)."""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans
import functrans.numpy as fnp
from functrans import lax
from functrans.backends import numba_cpu
from functrans.backends.plan import Group, Op, plan_liveness, release_points, step_eqns

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load_bench():
    spec = importlib.util.spec_from_file_location("memory_bench",
                                                  ROOT / "benchmarks" / "memory_bench.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


memory_bench = _load_bench()


def _chain_loss(remat):
    return memory_bench.chain_loss(functrans, fnp, remat, segment_layers=4)


def _chain_inputs(layers, width=8, batch=4, seed=0):
    return memory_bench.make_inputs(layers, width, batch, seed)


def test_release_points_are_last_uses():
    reads = [["x", "w"], ["a"], ["b", "w"], ["c", "a"], []]
    writes = [["a"], ["b"], ["c"], ["d"], ["e"]]
    got = release_points(reads, writes, keep={"d"})
    assert [sorted(r) for r in got] == [["x"], [], ["b", "w"], ["a", "c"], ["e"]]


def test_plan_release_points_count_uses_inside_loop_bodies():
    def f(x, w):
        a = fnp.tanh(x @ w)
        b = a @ w
        return lax.fori_loop(0, 3, lambda i, c: c * a, b)   # a is read inside the body only
    x, (w,) = _chain_inputs(1)
    plan = functrans.jit(f).lower(x, w).plan
    reads, writes, rel = plan_liveness(plan)
    loop = next(i for i, s in enumerate(plan.steps)
                if isinstance(s, Op) and s.eqn.primitive.name == "scan")
    tanh_step = next(i for i, s in enumerate(plan.steps) if isinstance(s, Group))
    a = plan.steps[tanh_step].eqns[-1].out_binders[0]
    released_at = {v: i for i, vs in enumerate(rel) for v in vs}
    assert released_at[a] == loop                      # not at the second dot, its last plain read
    for i, vs in enumerate(rel):
        for v in vs:   # released where it is used, never before a later read
            assert v in reads[i] or v in writes[i]
            assert all(v not in r for r in reads[i + 1:])
    every = set(v for r in reads for v in r) | set(v for w_ in writes for v in w_)
    assert set(released_at) == every - set(plan.outvars)


def _check_in_place(plan, pairs_per_step):
    reads, _, rel = plan_liveness(plan)
    owned = numba_cpu.owned_buffers(plan) | plan.donated
    n = 0
    for step, pairs, rs, dead in zip(plan.steps, pairs_per_step, reads, rel):
        for out, src in pairs.items():
            n += 1
            assert isinstance(step, Group)
            assert src in rs and src in dead and src in owned
            assert src not in plan.outvars and (src not in plan.inputs or src in plan.donated)
            assert (src.aval.shape, src.aval.dtype) == (out.aval.shape, out.aval.dtype)
            assert all(src not in e.inputs for e in step.eqns if e.primitive.name in
                       ("broadcast_in_dim", "transpose", "rev", "slice", "squeeze"))
    return n


def test_chain_gradient_writes_in_place_and_never_into_arguments():
    x, ws = _chain_inputs(3)
    x0, ws0 = x.copy(), [w.copy() for w in ws]
    g = functrans.jit(functrans.grad(_chain_loss(False)))
    plan = g.lower(x, ws).plan
    assert _check_in_place(plan, numba_cpu.in_place_outputs(plan)) >= 3   # one per tanh layer
    np.testing.assert_allclose(g(x, ws), functrans.grad(_chain_loss(False))(x, ws),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, x0)
    for w, w0 in zip(ws, ws0):
        np.testing.assert_array_equal(w, w0)


def test_a_reshaped_buffer_is_never_overwritten():
    def f(x):
        a = fnp.exp(x)
        view = a.reshape(-1)           # aliases a's buffer
        b = fnp.tanh(a) * 2.0          # a's last use: b must not take its buffer
        return b, view * 3.0
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    jf = functrans.jit(f)
    plan = jf.lower(x).plan
    a = plan.steps[0].eqns[0].out_binders[0]
    assert a not in numba_cpu.owned_buffers(plan)
    assert all(a not in pairs.values() for pairs in numba_cpu.in_place_outputs(plan))
    got, want = jf(x), f(x)
    for g_, w_ in zip(got, want):
        np.testing.assert_allclose(g_, w_, rtol=1e-6)


def test_split_kernels_are_donated_only_dying_intermediates():
    x, ws = _chain_inputs(8)
    g = functrans.jit(functrans.grad(_chain_loss(True)))
    low = g.lower(x, ws)
    assert isinstance(low, functrans.backends.SplitLowered)
    top = low.plan
    parts = [p for _, p in low.parts]
    donated_any = False
    for i, (kind, part) in enumerate(low.parts):
        if kind != "kernel":
            continue
        later_reads = set(v for p in parts[i + 1:] for v in
                          (p.inputs if hasattr(p, "primitive") else p.plan.inputs))
        for v in part.plan.donated:
            donated_any = True
            assert v not in top.inputs and v not in top.outvars and v not in later_reads
        _check_in_place(part.plan, numba_cpu.in_place_outputs(part.plan))
    assert donated_any
    for remat in (False, True):
        want = functrans.grad(_chain_loss(remat))(x, ws)
        np.testing.assert_allclose(functrans.jit(functrans.grad(_chain_loss(remat)))(x, ws),
                                   want, rtol=1e-5, atol=1e-6)


_UNARY = {"tanh": fnp.tanh, "sin": fnp.sin, "exp_neg_sq": lambda a: fnp.exp(-a * a),
          "twice": lambda a: a * 2.0}


@settings(max_examples=6, deadline=None)
@given(st.lists(st.sampled_from(["tanh", "sin", "exp_neg_sq", "twice", "dot", "reshape",
                                 "transpose", "add_first"]), min_size=2, max_size=7))
def test_random_programs_match_eager(ops):
    """In-place reuse and release points must not change any result (or the arguments)."""
    x, (w,) = _chain_inputs(1, width=4, batch=4, seed=1)
    x0 = x.copy()

    def f(x, w):
        first, a = None, x
        for op in ops:
            if op == "dot":
                a = a @ w
            elif op == "reshape":
                a = a.reshape(2, 8).reshape(4, 4)
            elif op == "transpose":
                a = a.T
            elif op == "add_first":
                a = a + (x if first is None else first)
            else:
                a = _UNARY[op](a)
            first = a if first is None else first
        return a, first
    for got, want in zip(functrans.jit(f)(x, w), f(x, w)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, x0)


def _peak_mib(remat, layers=16, width=256):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "memory_bench.py"), "--child", "functrans",
           "--layers", str(layers), "--width", str(width), "--batch", "256"]
    proc = subprocess.run(cmd + (["--remat"] if remat else []), env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])["mib"]


def test_peak_memory_of_a_jitted_chain_gradient():
    """16 tanh layers, 256 x 256 activations of 0.25 MiB: the gradient must hold the 16 saved
    activations (4 MiB) and little else; with checkpoint every 8 layers, one segment's 8 plus
    the input of the second segment. Before memory planning these were 20 and 25 MiB."""
    act = 256 * 256 * 4 / 2 ** 20
    plain, remat = _peak_mib(False), _peak_mib(True)
    assert plain <= 16 * act + 4 * act, plain
    assert remat <= 9 * act + 5 * act, remat
    assert remat < plain - 4 * act, (remat, plain)


def test_cuda_workspace_slots_are_shared_only_by_disjoint_lives():
    from functrans.backends import numba_cuda
    from functrans.backends.plan import make_plan

    def f(x, ws):
        y = functrans.grad(_chain_loss(False))(x, ws)
        return y.reshape(-1).reshape(y.shape) * 2.0, y.reshape(-1)
    x, ws = _chain_inputs(6)
    plan = make_plan(functrans.make_jaxpr(f)(x, ws), rewrites=True)
    reusable = numba_cuda._reusable_vars(plan)
    slots = numba_cuda._workspace_slots(plan, reusable)
    reads, writes, _ = plan_liveness(plan)
    born = {v: i for i, ws_ in enumerate(writes) for v in ws_}
    dies = {v: max([i for i, r in enumerate(reads) if v in r], default=born[v]) for v in born}
    by_slot = {}
    for v, k in slots.items():
        by_slot.setdefault(k, []).append(v)
    for vs in by_slot.values():
        vs.sort(key=born.get)
        for a, b in zip(vs, vs[1:]):
            assert dies[a] < born[b]
            assert (a.aval.size, a.aval.dtype) == (b.aval.size, b.aval.dtype)
    assert len(by_slot) < len(slots)       # a chain reuses its buffers
    viewed = [e.inputs[0] for s in plan.steps for e in step_eqns(s)
              if e.primitive.name == "reshape"]
    assert viewed and not any(v in slots for v in viewed)
    assert not any(v in slots for v in plan.outvars)
