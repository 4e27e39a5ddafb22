"""auto_checkpoint: remat planned against a memory budget.

``auto_checkpoint(f, max_bytes=B)`` traces ``f`` to a jaxpr, cuts its equation sequence into
segments and runs each segment either as it is (its residuals are *saved*) or as a
``checkpoint_p`` call (only its inputs are saved; its residuals are *recomputed* in the
backward pass). The cut is chosen by a dynamic program over the equation sequence that
minimises the recomputed FLOPs subject to the predicted peak of the backward pass staying
within B. The cost model (docs/auto_checkpoint.md):

* the residuals of each equation are found exactly, by partially evaluating the jvp of that
  equation alone: each is one of its inputs, one of its outputs, or a fresh value;
* a saved segment keeps its residuals from the forward pass to its backward pass; a
  recomputed one keeps its inputs and, during its own backward pass, its residuals;
* the backward pass runs the segments last to first and each value is freed at its last use,
  so while segment j is transposed the live extra bytes are what segments 0..j-1 saved plus
  what segment j holds, plus the working set of one transposed equation (its output's
  cotangent and the one it makes). The predicted peak is the largest of these.
"""
from __future__ import annotations

import functools

import numpy as np

from . import core
from .api import _Store, _flatten_fun, _check_callable
from .checkpoint import checkpoint_p
from .core import ClosedJaxpr, Jaxpr, Literal, Tracer, Var, get_aval
from .custom_derivatives import lift_tracer_consts
from .diagnostics import _short
from .interpreters import ad, partial_eval
from .interpreters.batching import BatchTracer
from ._args import flat_leaves
from .tree_util import tree_flatten, tree_unflatten

__all__ = ["auto_checkpoint", "RematPlan"]

_SAVE, _RECOMPUTE = "saved", "recomputed"
_QUANTA = 512           # the DP rounds saved bytes up to max_bytes / _QUANTA


def auto_checkpoint(fun, max_bytes):
    """fun, rewritten so that reverse mode (grad, vjp, linearize; eagerly or under jit, and
    under vmap) saves only as many of its residuals as keep the backward pass's predicted
    peak extra memory within ``max_bytes`` bytes, recomputing the others. Returns a function
    with fun's signature; its ``.explain(*args, argnums=None)`` returns the RematPlan for
    those arguments. ValueError when max_bytes is not positive, or (at the call) below the
    least any plan needs for fun."""
    _check_callable(fun, "auto_checkpoint")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, float, np.integer,
                                                                 np.floating)):
        raise TypeError(f"auto_checkpoint: max_bytes must be a number of bytes, got "
                        f"{max_bytes!r}")
    if not max_bytes > 0:
        raise ValueError(f"auto_checkpoint: max_bytes must be positive, got {max_bytes!r}")
    budget = int(max_bytes)
    plans = {}

    @functools.wraps(fun)
    def planned(*args, **kwargs):
        if type(core.current_trace()) is core.EvalTrace:
            return fun(*args, **kwargs)          # no transform: nothing to differentiate
        leaves, in_tree = flat_leaves((args, kwargs), "auto_checkpoint arguments")
        closed, lifted, out_tree = _trace(fun, leaves, in_tree)
        all_in = list(lifted) + list(leaves)
        active = _differentiated(all_in)
        factor = _vmap_factor(all_in)
        key = (in_tree, tuple(get_aval(x) for x in all_in), tuple(active), factor,
               tuple(e.primitive for e in closed.jaxpr.eqns))
        plan = plans.get(key)
        if plan is None:
            plan = plans[key] = _plan(closed.jaxpr, active, budget, factor)
        outs = _run(closed, plan.segments, all_in)
        return tree_unflatten(out_tree, outs)

    def explain(*args, argnums=None, **kwargs):
        """The RematPlan for a call with these arguments, as if reverse mode differentiated
        the positional arguments ``argnums`` (an int or tuple; None: every float input)."""
        leaves, in_tree = flat_leaves((args, kwargs), "auto_checkpoint arguments")
        closed, lifted, _ = _trace(fun, leaves, in_tree)
        active = [True] * len(lifted) + _argnum_flags(args, kwargs, argnums)
        return _plan(closed.jaxpr, active, budget)

    planned.explain = explain
    planned.max_bytes = budget
    return planned


def _trace(fun, leaves, in_tree):
    out_store = _Store()
    flat = _flatten_fun(lambda a, k: fun(*a, **k), in_tree, out_store)
    jaxpr, consts = core.trace_to_jaxpr(flat, [get_aval(x) for x in leaves])
    closed, lifted = lift_tracer_consts(jaxpr, consts)
    return closed, lifted, out_store.val


def _argnum_flags(args, kwargs, argnums):
    """Per flat leaf of (args, kwargs): whether it is in one of the positional args argnums."""
    if argnums is None:
        return [True] * len(tree_flatten((args, kwargs))[0])
    nums = {argnums} if isinstance(argnums, int) else set(argnums)
    flags = []
    for i, a in enumerate(args):
        flags += [i in nums] * len(tree_flatten(a)[0])
    return flags + [False] * len(tree_flatten(kwargs)[0])


def _tracer_chain(x):
    """x and the values it wraps through enclosing jvps and vmaps, outermost first."""
    while isinstance(x, Tracer):
        yield x
        x = x.primal if type(x) is ad.JVPTracer else x.val if type(x) is BatchTracer else None


def _has_jvp(x):
    return any(type(t) is ad.JVPTracer for t in _tracer_chain(x))


def _vmap_factor(xs):
    """The product of the sizes of the enclosing vmaps that batch any of xs: the traced
    (per-example) shapes are that many times smaller than the memory really used."""
    sizes = {id(t._trace): t._trace.axis_size for x in xs for t in _tracer_chain(x)
             if type(t) is BatchTracer}
    return int(np.prod(list(sizes.values()), dtype=np.int64))


def _differentiated(xs):
    """Which inputs reverse mode may differentiate: those carrying a tangent of an enclosing
    jvp when any does; otherwise (no jvp seen, e.g. a jit that a grad will differentiate
    later) every one, as the plan must then hold for any choice."""
    flags = [_has_jvp(x) for x in xs]
    return flags if any(flags) else [True] * len(xs)


# ---------------------------------------------------------------------------------------------
# The cost model

def _nbytes(aval):
    return int(np.prod(aval.shape, dtype=np.int64)) * np.dtype(aval.dtype).itemsize


def _is_float(aval):
    return np.dtype(aval.dtype).kind in "fc"


def _flops(eqn):
    """Rough FLOPs of one equation: 2·M·N·K for a dot_general, the body's FLOPs for a call
    primitive (times the trip count of a scan), else one per output element."""
    name = eqn.primitive.name
    if name == "dot_general":
        (lc, _), _ = eqn.params["dimension_numbers"]
        k = int(np.prod([eqn.inputs[0].aval.shape[d] for d in lc], dtype=np.int64))
        return 2 * k * sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.out_binders)
    inner = [p for p in eqn.params.values() if isinstance(p, (ClosedJaxpr, Jaxpr))]
    if inner:
        trips = int(eqn.params.get("length", 1) or 1)
        return trips * sum(_flops(e) for j in inner for e in _inner(j).eqns)
    return max(1, sum(int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.out_binders))


def _inner(j):
    return j.jaxpr if isinstance(j, ClosedJaxpr) else j


_residual_cache = {}


def _residual_kinds(eqn, ins, nonzeros):
    """The residuals reverse mode keeps for eqn alone when the inputs ``ins`` (its distinct
    Var inputs) with ``nonzeros`` carry tangents: a list of ('in', i), ('out', i) or
    ('fresh', bytes). An equation without a jvp rule is charged its inputs and outputs."""
    try:
        key = (eqn.primitive, tuple(v.aval for v in ins), tuple(nonzeros),
               tuple(sorted(eqn.params.items())), tuple(v.aval for v in eqn.inputs))
        hash(key)
    except TypeError:
        key = None
    if key is not None and key in _residual_cache:
        return _residual_cache[key]
    try:
        closed = ClosedJaxpr(Jaxpr([], ins, [eqn], eqn.out_binders), [])
        jvp, _ = ad.jvp_jaxpr(closed, nonzeros)
        jk, _, _, n_res = partial_eval.partial_eval_jaxpr(
            jvp, [False] * len(ins) + [True] * sum(nonzeros))
        k = jk.jaxpr
        outs = k.outvars[:len(k.outvars) - n_res]
        kinds = [_kind(r, k.invars, outs, eqn) for r in k.outvars[len(k.outvars) - n_res:]]
    except NotImplementedError:
        kinds = [("in", i) for i in range(len(ins))] + [
            ("out", i) for i in range(len(eqn.out_binders))]
    if key is not None:
        if len(_residual_cache) > 4096:
            _residual_cache.clear()
        _residual_cache[key] = kinds
    return kinds


def _kind(r, invars, outs, eqn):
    for i, v in enumerate(invars):
        if r is v:
            return ("in", i)
    for o, v in zip(outs, eqn.out_binders):
        if r is o:
            return ("out", eqn.out_binders.index(v))
    return ("fresh", _nbytes(r.aval))


class _EqnInfo:
    """What the planner knows of one equation: the input Vars it reads, the residual Vars it
    shares with other equations, its fresh residual bytes, its FLOPs, whether it is active."""
    __slots__ = ("reads", "res_vars", "fresh", "flops", "active")


def _analyse(jaxpr, active_in):
    """One _EqnInfo per equation of jaxpr, given which inputs are differentiated."""
    active_vars = {v for v, a in zip(jaxpr.invars, active_in) if a and _is_float(v.aval)}
    infos = []
    for eqn in jaxpr.eqns:
        info = _EqnInfo()
        ins = list(dict.fromkeys(v for v in eqn.inputs if type(v) is Var))
        nz = [v in active_vars for v in ins]
        info.reads, info.flops, info.active = ins, _flops(eqn), any(nz)
        info.res_vars, info.fresh = [], 0
        if info.active:
            active_vars.update(v for v in eqn.out_binders if _is_float(v.aval))
            for kind, x in _residual_kinds(eqn, ins, nz):
                if kind == "fresh":
                    info.fresh += x
                else:
                    info.res_vars.append(ins[x] if kind == "in" else eqn.out_binders[x])
        infos.append(info)
    return infos


class _Segments:
    """For segments [a, b) of the equation sequence: the bytes a saved segment keeps (its
    residuals), the bytes a recomputed one keeps (its inputs) and holds while it is
    transposed (its inputs and residuals), and its FLOPs. Values the caller holds (the
    jaxpr's inputs and constants) cost nothing."""

    def __init__(self, jaxpr, infos):
        self.infos = infos
        self.free = set(jaxpr.invars) | set(jaxpr.constvars)
        self.producer = {v: i for i, e in enumerate(jaxpr.eqns) for v in e.out_binders}

    def extend(self, a, limit):
        """Yield (b, saved_bytes, input_bytes, recompute_live_bytes, flops) for b = a+1, ...
        while some mode of [a, b) could still fit under limit."""
        res, inputs = set(), set()
        fresh = res_bytes = in_bytes = both_bytes = flops = 0
        for b in range(a, len(self.infos)):
            info = self.infos[b]
            fresh += info.fresh
            flops += info.flops
            for v in info.res_vars:
                if v not in res and v not in self.free:
                    res.add(v)
                    res_bytes += _nbytes(v.aval)
                    if v not in inputs:
                        both_bytes += _nbytes(v.aval)
            for v in info.reads:
                if v not in inputs and v not in self.free and self.producer.get(v, b) < a:
                    inputs.add(v)
                    in_bytes += _nbytes(v.aval)
                    if v not in res:
                        both_bytes += _nbytes(v.aval)
            saved, live = res_bytes + fresh, both_bytes + fresh
            yield b + 1, saved, in_bytes, live, flops
            if min(saved, live) > limit:
                return


def _working_set(jaxpr, infos):
    """Bytes one transposed equation holds: its output's cotangent and the cotangent it makes
    (bounded by twice its largest float output)."""
    return max([2 * _nbytes(v.aval) for e, i in zip(jaxpr.eqns, infos) if i.active
                for v in e.out_binders if _is_float(v.aval)], default=0)


def _options(segs, a, limit):
    """The (b, mode, kept_bytes, live_bytes, flops) segments starting at a (recomputing a
    segment with no active equation would only cost)."""
    active = False
    for b, saved, in_bytes, live, flops in segs.extend(a, limit):
        yield b, _SAVE, saved, saved, 0
        active = active or segs.infos[b - 1].active
        if active:
            yield b, _RECOMPUTE, in_bytes, live, flops


def _dp(segs, n, limit, quantum):
    """The plan of least recomputed FLOPs whose predicted peak (before the working set) is at
    most limit: Pareto fronts of (kept bytes, FLOPs) per cut position. Returns the list of
    (a, b, mode) or None when no plan fits."""
    fronts = [dict() for _ in range(n + 1)]        # kept quanta -> (flops, back pointer)
    fronts[0][0] = (0, None)
    for a in range(n):
        front = _pareto(fronts[a])
        opts = list(_options(segs, a, limit - front[0][0] * quantum)) if front else []
        for kept, (cost, _) in front:
            base = kept * quantum
            for b, mode, keep, live, flops in opts:
                if base + live > limit:
                    continue
                q = kept + -(-keep // quantum)
                c = cost + flops
                old = fronts[b].get(q)
                if old is None or c < old[0]:
                    fronts[b][q] = (c, (a, kept, mode))
    if not fronts[n]:
        return None
    return _backtrack(fronts, n, min(fronts[n].items(), key=lambda kv: (kv[1][0], kv[0]))[0])


def _pareto(front):
    """front's (kept, (flops, back)) entries no other entry beats on both."""
    out, best = [], None
    for kept, val in sorted(front.items()):
        if best is None or val[0] < best:
            out.append((kept, val))
            best = val[0]
    return out


def _backtrack(fronts, n, kept):
    plan, b = [], n
    while b:
        a, prev_kept, mode = fronts[b][kept][1]
        plan.append((a, b, mode))
        b, kept = a, prev_kept
    return plan[::-1]


def _plan(jaxpr, active_in, budget, factor=1):
    """The RematPlan for jaxpr under budget bytes (ValueError when none fits); under vmaps of
    total size factor each traced byte stands for factor bytes."""
    if factor > 1:
        try:
            return _plan(jaxpr, active_in, budget // factor)
        except ValueError as e:
            raise ValueError(f"{e}; under vmap of {factor} examples each example gets "
                             f"max_bytes / {factor}") from None
    infos = _analyse(jaxpr, active_in)
    segs = _Segments(jaxpr, infos)
    work = _working_set(jaxpr, infos)
    floor = max([_nbytes(v.aval) for i in infos for v in i.res_vars if v not in segs.free]
                + [i.fresh for i in infos], default=0)
    n = len(jaxpr.eqns)
    quantum = max(1, budget // _QUANTA)
    segments = _dp(segs, n, budget - work, quantum) if budget >= floor + work else None
    if segments is None:
        raise ValueError(
            f"auto_checkpoint: max_bytes={budget} is below the minimum possible for this "
            f"function, {_least_budget(segs, n, work, floor)} bytes (the least predicted peak "
            f"of any plan; the largest single residual is {floor} bytes, and one transposed "
            f"equation's cotangents {work} bytes)")
    return RematPlan(jaxpr, infos, segs, _merge(segments), budget, work)


def _merge(segments):
    """Adjacent saved segments as one (the same program, fewer calls)."""
    out = []
    for a, b, mode in segments:
        if out and mode == _SAVE and out[-1][2] == _SAVE:
            out[-1] = (out[-1][0], b, mode)
        else:
            out.append((a, b, mode))
    return out


def _fits(segs, n, limit, quantum):
    """Whether _dp finds a plan for limit: the least kept bytes (rounded up to quanta as _dp
    does) at each cut position, a segment allowed where it fits on top of them."""
    least = [0] + [None] * n
    for a in range(n):
        if least[a] is None:
            continue
        base = least[a] * quantum
        for b, _, keep, live, _ in _options(segs, a, limit - base):
            q = least[a] + -(-keep // quantum)
            if base + live <= limit and (least[b] is None or q < least[b]):
                least[b] = q
    return least[n] is not None


def _least_budget(segs, n, work, floor):
    """The smallest max_bytes (to within 1/256) for which _dp finds a plan."""
    def fits(budget):
        return budget >= work + floor and _fits(segs, n, budget - work,
                                                max(1, budget // _QUANTA))
    lo, hi = 0, 1
    while not fits(hi):
        lo, hi = hi, hi * 2
    while hi - lo > max(1, hi // 256):
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


# ---------------------------------------------------------------------------------------------
# Running a plan

def _segment_jaxprs(jaxpr, segments):
    """For each segment (a, b, mode): (its Jaxpr of the values it reads from earlier to the
    values later equations or the outputs read, mode)."""
    last_use = {}
    for i, e in enumerate(jaxpr.eqns):
        for v in e.inputs:
            if type(v) is Var:
                last_use[v] = i
    for v in jaxpr.outvars:
        if type(v) is Var:
            last_use[v] = len(jaxpr.eqns)
    out = []
    for a, b, mode in segments:
        eqns = jaxpr.eqns[a:b]
        made = {v for e in eqns for v in e.out_binders}
        ins = list(dict.fromkeys(v for e in eqns for v in e.inputs
                                 if type(v) is Var and v not in made))
        outs = [v for e in eqns for v in e.out_binders if last_use.get(v, -1) >= b]
        out.append((Jaxpr([], ins, eqns, outs), mode))
    return out


def _run(closed, segments, args):
    jaxpr = closed.jaxpr
    env = dict(zip(jaxpr.constvars, closed.consts))
    env.update(zip(jaxpr.invars, args))
    for sub, mode in _segment_jaxprs(jaxpr, segments):
        ins = [env[v] for v in sub.invars]
        if mode == _RECOMPUTE:
            outs = checkpoint_p.bind(*ins, jaxpr=ClosedJaxpr(sub, []), prevent_cse=True,
                                     policy=None)
        else:
            outs = core.eval_jaxpr(sub, [], *ins)
        env.update(zip(sub.outvars, outs))
    return [v.val if type(v) is Literal else env[v] for v in jaxpr.outvars]


# ---------------------------------------------------------------------------------------------
# The report

def _fmt(n):
    """n bytes in B, KiB or MiB."""
    for unit, size in (("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


class RematPlan:
    """The plan auto_checkpoint chose for one function and argument shapes. Attributes:
    ``segments`` ([(first eqn, end eqn, 'saved' | 'recomputed')]), ``max_bytes``,
    ``predicted_peak`` (bytes), ``saved_bytes`` (kept from the forward to the backward pass),
    ``no_remat_bytes`` (what saving every residual keeps), ``recompute_flop_fraction`` and
    ``recompute_eqn_fraction`` (of the forward pass's FLOPs / equations run again),
    ``lines`` ([(source line, equations saved, equations recomputed, residual bytes)]).
    ``str(plan)`` is the printable report."""

    def __init__(self, jaxpr, infos, segs, segments, budget, work):
        self.segments, self.max_bytes, self.working_set_bytes = segments, budget, work
        kept, peak, self.saved_bytes = 0, 0, 0
        for a, b, mode in segments:
            _, saved, in_bytes, live, _ = list(segs.extend(a, float("inf")))[b - a - 1]
            keep, hold = (saved, saved) if mode == _SAVE else (in_bytes, live)
            peak = max(peak, kept + hold)
            kept += keep
        self.saved_bytes = kept
        self.predicted_peak = peak + work
        whole = list(segs.extend(0, float("inf")))
        self.no_remat_bytes = whole[-1][1] if whole else 0
        n = len(jaxpr.eqns)
        recomputed = [False] * n
        for a, b, mode in segments:
            if mode == _RECOMPUTE:
                recomputed[a:b] = [True] * (b - a)
        total = sum(i.flops for i in infos) or 1
        self.recompute_flop_fraction = sum(i.flops for i, r in zip(infos, recomputed)
                                           if r) / total
        self.recompute_eqn_fraction = sum(recomputed) / max(n, 1)
        self.lines = self._by_line(jaxpr, infos, segs, recomputed)

    @staticmethod
    def _by_line(jaxpr, infos, segs, recomputed):
        rows = {}
        for eqn, info, r in zip(jaxpr.eqns, infos, recomputed):
            row = rows.setdefault(_short(eqn.source_info), [0, 0, 0])
            row[1 if r else 0] += 1
            row[2] += info.fresh + sum(_nbytes(v.aval) for v in info.res_vars
                                       if v not in segs.free)
        return [(line, s, rc, nb) for line, (s, rc, nb) in rows.items()]

    def __str__(self):
        head = [f"auto_checkpoint plan: budget {_fmt(self.max_bytes)}, predicted peak "
                f"{_fmt(self.predicted_peak)} (saved residuals {_fmt(self.saved_bytes)} of "
                f"{_fmt(self.no_remat_bytes)} without remat; cotangent working set "
                f"{_fmt(self.working_set_bytes)})",
                f"recomputed: {self.recompute_eqn_fraction:.0%} of equations, "
                f"{self.recompute_flop_fraction:.0%} of forward FLOPs; "
                f"{len(self.segments)} segments (equation ranges, S saved, R recomputed): "
                + " ".join(f"[{a}:{b}]{'R' if m == _RECOMPUTE else 'S'}"
                           for a, b, m in self.segments), ""]
        width = max([len(r[0]) for r in self.lines] + [11])
        table = [f"{'source line':<{width}}  saved eqns  recomputed eqns  residuals"]
        table += [f"{line:<{width}}  {s:>10}  {rc:>15}  {_fmt(nb):>9}"
                  for line, s, rc, nb in self.lines]
        return "\n".join(head + table)

    __repr__ = __str__
