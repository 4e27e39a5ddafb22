"""Gradient-flow diagnostics: statistics of every cotangent of a backward pass, read off the jaxpr.

``grad_flow(loss)(params, *batch)`` linearizes ``loss`` at ``params`` and runs the backward pass
once (``ad.backward_pass`` with an ``observe`` hook), reducing each cotangent next to the
transposed equation that made it: in NumPy on concrete values, and as staged functrans.numpy
operations under ``jit`` (the report is a pytree whose leaves are the statistics arrays). The
report groups the equations by the user's source line that staged them and the gradients by
the pytree path of the parameters. See docs/diagnostics.md.
"""
from __future__ import annotations

import os

import numpy as np

from . import core
from . import numpy as jnp
from .api import _check_callable, _check_scalar_output
from .interpreters import ad
from .tree_util import keystr, register_pytree_node_class, tree_flatten_with_path, tree_unflatten

# Columns of GradFlowReport.eqn_stats (one row per transposed equation, in backward order): the
# sum of squares of the cotangent of its outputs; exact zeros, non-finite entries and size of the
# cotangents it produced for its inputs; the non-finite entries of its output cotangent and of
# its saved forward values (residuals).
_SUMSQ, _ZEROS, _NONFINITE, _SIZE, _CT_NONFINITE, _RES_NONFINITE = range(6)
# Columns of GradFlowReport.param_stats (one row per parameter leaf).
_P_SUMSQ, _P_ZEROS, _P_NONFINITE, _P_SIZE, _P_PARAM_SUMSQ = range(5)


def _is_float(x):
    return type(x) is not ad.Zero and x is not None and core.get_aval(x).dtype.kind in "fc"


def _namespace(arrays):
    """NumPy when every value is concrete (eagerly a reduction then costs no dispatch), else
    functrans.numpy, so that under jit the reductions are staged into the program."""
    return jnp if any(isinstance(x, core.Tracer) for x in arrays) else np


def _reductions(arrays, xp):
    """[sum of squares of the finite entries, exact zeros, non-finite entries, size] of the
    float arrays, float32 scalars of the array namespace xp."""
    out = [0.0, 0.0, 0.0, 0.0]
    for x in arrays:
        stats = _numpy_stats(np.asarray(x)) if xp is np else _traced_stats(x)
        out = [a + b for a, b in zip(out, stats)]
    return out


def _traced_stats(x):
    finite = jnp.isfinite(x)
    mag = jnp.abs(x) if core.get_aval(x).dtype.kind == "c" else x
    size = float(np.prod(core.get_aval(x).shape, dtype=np.int64))
    return [jnp.sum(jnp.where(finite, mag * mag, 0), dtype=jnp.float32),
            jnp.sum(x == 0, dtype=jnp.float32), size - jnp.sum(finite, dtype=jnp.float32), size]


def _numpy_stats(x):
    """_traced_stats of a concrete array in two passes over it when it is all finite (the
    common case: vdot is one BLAS pass, count_nonzero another)."""
    sumsq = np.vdot(x, x).real
    zeros, bad = x.size - np.count_nonzero(x), 0
    if not np.isfinite(sumsq):
        finite = np.isfinite(x)
        bad = x.size - np.count_nonzero(finite)
        sumsq = np.vdot(x[finite], x[finite]).real
    return [np.float32(sumsq), np.float32(zeros), np.float32(bad), np.float32(x.size)]


def _stack(rows, xp, width):
    return (xp.stack([xp.stack([xp.float32(c) if xp is np else c for c in r]) for r in rows])
            if rows else xp.zeros((0, width), xp.float32))


def _source_runs(eqns):
    """For each equation of a jaxpr, the label of its run: consecutive equations staged at the
    same source line form one run, and a line staged again later (a loop, a function called
    per layer) starts a new run, numbered '#k' so that each layer keeps its own row."""
    runs, prev, count = [], object(), {}
    for eqn in eqns:
        src = eqn.source_info
        if src != prev:
            count[src] = count.get(src, 0) + 1
            prev = src
        runs.append((src, count[src] - 1))
    many = {s for s, n in count.items() if n > 1}
    return [_short(src) + (f" #{k}" if src in many else "") for src, k in runs]


def _short(src):
    if src is None:
        return "<unknown>"
    return f"{os.path.basename(src[0])}:{src[1]} ({src[2]})"


def grad_flow(loss, threshold=1e3):
    """Returns a function of ``(params, *batch)`` that returns a GradFlowReport: the statistics of
    every cotangent of the backward pass of the scalar ``loss(params, *batch)`` with respect to
    ``params``, grouped by source line and by parameter path. A line run whose cotangent norm
    is more than ``threshold`` times that of the run nearest the loss is flagged exploding, less
    than ``1/threshold`` times it vanishing (parameters likewise, by gradient RMS against the
    leaf used last). Costs one forward and one backward pass; works under jit."""
    _check_callable(loss, "grad_flow")
    if not threshold > 1:
        raise ValueError(f"grad_flow: threshold must be > 1, got {threshold!r}")

    def run(params, *batch):
        path_leaves, treedef = tree_flatten_with_path(params)
        paths = tuple(keystr(p) or "<params>" for p, _ in path_leaves)
        p_flat = [core.as_array(x) for _, x in path_leaves]
        for path, x in zip(paths, p_flat):
            if core.get_aval(x).dtype.kind not in "fc":
                raise TypeError(f"grad_flow: parameter {path} has dtype {core.get_aval(x).dtype}; "
                                "only float parameters can be differentiated")

        def flat_loss(*leaves):
            out = loss(tree_unflatten(treedef, leaves), *batch)
            _check_scalar_output(out, "grad_flow")
            return [out]

        (value,), jaxpr, consts = ad.linearize_flat(flat_loss, p_flat, dce=False, sources=True)
        recorder = _Recorder(jaxpr)
        seed = jnp.ones_like(value)
        grads = ad.backward_pass(jaxpr, consts, [ad.UndefPrimal(v.aval) for v in jaxpr.invars],
                                 [seed], recorder.observe)
        grads = [ad.instantiate_zeros(g) for g in grads]
        rows = recorder.rows
        xp = _namespace(grads + p_flat + [value] + [c for r in rows for c in r])
        param_rows = [_reductions([g], xp) + [_reductions([p], xp)[_SUMSQ]]
                      for g, p in zip(grads, p_flat)]
        return GradFlowReport(value, _stack(rows, xp, 6), _stack(param_rows, xp, 5),
                              (tuple(recorder.meta), paths, _depths(jaxpr), float(threshold)))

    return run


def _depths(jaxpr):
    """For each input of jaxpr, the index of the first equation that reads it (-1: none)."""
    first_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for v in eqn.inputs:
            first_use.setdefault(v, i)
    return tuple(first_use.get(v, -1) for v in jaxpr.invars)


class _Recorder:
    """The observe hook of backward_pass: one row of statistics (see _SUMSQ...) and one
    (equation index, source, primitive, line run) per transposed equation."""

    def __init__(self, jaxpr):
        self.index = {id(e): i for i, e in enumerate(jaxpr.eqns)}
        self.runs = _source_runs(jaxpr.eqns)
        self.rows, self.meta = [], []
        self.residual_bad = {}   # id -> (saved forward value, its non-finite count)
        self.produced = {}       # id -> (cotangent, its reductions): most are the next's input

    def _nonfinite_residuals(self, known, xp):
        total = 0.0
        for x in known:
            hit = self.residual_bad.get(id(x))
            if hit is None or hit[0] is not x:      # a saved value feeds many equations
                hit = self.residual_bad[id(x)] = (x, _reductions([x], xp)[_NONFINITE])
            total = total + hit[1]
        return total

    def _cotangent_reductions(self, arrays, xp, incoming=False):
        out = [0.0] * 4
        for x in arrays:
            hit = self.produced.pop(id(x), None) if incoming else None
            stats = hit[1] if hit is not None and hit[0] is x else _reductions([x], xp)
            if not incoming:
                self.produced[id(x)] = (x, stats)
            out = [a + b for a, b in zip(out, stats)]
        return out

    def observe(self, eqn, ins, cts, cts_in):
        produced = [c for c in cts_in if _is_float(c)]
        if not produced:
            return
        cts = [c for c in (cts if eqn.primitive.multiple_results else [cts]) if _is_float(c)]
        known = [x for x in ins if not ad.is_undefined_primal(x) and _is_float(x)]
        xp = _namespace(produced + cts + known)
        ct_sumsq, _, ct_bad, _ = self._cotangent_reductions(cts, xp, incoming=True)
        self.rows.append([ct_sumsq] + self._cotangent_reductions(produced, xp)[1:]
                         + [ct_bad, self._nonfinite_residuals(known, xp)])
        i = self.index[id(eqn)]
        self.meta.append((i, core.format_source(eqn.source_info), eqn.primitive.name,
                          self.runs[i]))


def _norm(sumsq):
    return float(np.sqrt(sumsq))


def _fraction(part, whole):
    return float(part / whole) if whole else 0.0


@register_pytree_node_class
class GradFlowReport:
    """What grad_flow found. ``lines`` (per source-line run, forward order), ``equations`` (per
    transposed equation, backward order) and ``params`` (per parameter path) are lists of dicts;
    ``exploding`` and ``vanishing`` list the flagged lines; ``first_nonfinite`` names the
    equation where the first NaN/inf appeared (or is None). ``str(report)`` is a text table and
    ``report.plot()`` a matplotlib figure. A pytree: a jitted grad_flow returns one."""

    def __init__(self, loss, eqn_stats, param_stats, aux):
        self.loss, self.eqn_stats, self.param_stats = loss, eqn_stats, param_stats
        self._aux = aux
        self._meta, self._paths, self._depth, self.threshold = aux

    def tree_flatten(self):
        return (self.loss, self.eqn_stats, self.param_stats), self._aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, aux)

    def _eqn_array(self):
        return np.asarray(self.eqn_stats, dtype=np.float64).reshape(-1, 6)

    @property
    def equations(self):
        """One dict per transposed equation, in the order the backward pass ran them: source
        line, primitive, line run, norm of its output's cotangent, zero fraction and non-finite
        count of the cotangents it produced."""
        return [dict(source=src, primitive=prim, line=run, norm=_norm(r[_SUMSQ]),
                     zero_fraction=_fraction(r[_ZEROS], r[_SIZE]), nonfinite=int(r[_NONFINITE]))
                for (_, src, prim, run), r in zip(self._meta, self._eqn_array())]

    @property
    def lines(self):
        """One dict per source-line run, in forward (program) order: the largest norm of the
        cotangent of a value it computed, the zero fraction and non-finite count of the
        cotangents it passed back, ``relative``: the ratio of the norm to that of the last run
        (nearest the loss) with a positive finite norm, and the flag ('exploding', 'vanishing'
        or '')."""
        groups = {}
        in_program_order = sorted(zip(self._meta, self._eqn_array()), key=lambda t: t[0][0])
        for (_, _, _, run), r in in_program_order:
            g = groups.setdefault(run, dict(line=run, equations=0, sumsq=0.0, zeros=0.0,
                                            size=0.0, nonfinite=0))
            g["equations"] += 1
            g["sumsq"] = max(g["sumsq"], r[_SUMSQ])
            g["zeros"] += r[_ZEROS]
            g["size"] += r[_SIZE]
            g["nonfinite"] += int(r[_NONFINITE])
        out = [dict(line=g["line"], equations=g["equations"], norm=_norm(g["sumsq"]),
                    zero_fraction=_fraction(g["zeros"], g["size"]), nonfinite=g["nonfinite"])
               for g in groups.values()]
        # relative to the run nearest the loss: how the gradient grew or shrank on its way back
        _flag(out, [g["norm"] for g in out], self.threshold, lambda norms: norms[-1])
        return out

    @property
    def params(self):
        """One dict per parameter leaf: its path, gradient norm, parameter norm, their ratio,
        the zero fraction and the non-finite count of the gradient, ``relative``: the ratio of
        its gradient's RMS to that of the leaf used last in the forward pass (nearest the loss,
        with a positive finite gradient), and the flag ('exploding', 'vanishing' or '')."""
        out = []
        for path, r in zip(self._paths, np.asarray(self.param_stats, dtype=np.float64)):
            g, p = _norm(r[_P_SUMSQ]), _norm(r[_P_PARAM_SUMSQ])
            out.append(dict(path=path, grad_norm=g, param_norm=p,
                            ratio=g / p if p else float("inf") if g else 0.0,
                            zero_fraction=_fraction(r[_P_ZEROS], r[_P_SIZE]),
                            nonfinite=int(r[_P_NONFINITE])))
        rms = [p["grad_norm"] / np.sqrt(r[_P_SIZE]) if r[_P_SIZE] else 0.0
               for p, r in zip(out, np.asarray(self.param_stats).reshape(-1, 5))]
        # relative to the leaf used last in the forward pass (nearest the loss)
        by_depth = [x for _, x in sorted(zip(self._depth, rms), key=lambda t: t[0])]
        _flag(out, rms, self.threshold, lambda _: [x for x in by_depth
                                                   if x > 0 and np.isfinite(x)][-1])
        return out

    def _flagged(self, flag):
        return ([g["line"] for g in self.lines if g["flag"] == flag]
                + [p["path"] for p in self.params if p["flag"] == flag])

    exploding = property(lambda self: self._flagged("exploding"),
                         doc="The source-line runs and parameter paths flagged exploding.")
    vanishing = property(lambda self: self._flagged("vanishing"),
                         doc="The source-line runs and parameter paths flagged vanishing.")

    @property
    def first_nonfinite(self):
        """'file.py:12 (fn): primitive (forward)' for the first equation, in program order, whose
        saved forward values (residuals) hold a NaN/inf; else '... (backward)' for the first
        equation, in backward order, that produced a non-finite cotangent from finite ones;
        None when every value was finite."""
        stats = self._eqn_array()
        fwd = [(m[0], m) for m, r in zip(self._meta, stats) if r[_RES_NONFINITE]]
        if fwd:
            m = min(fwd, key=lambda t: t[0])[1]
            return f"{m[1]}: {m[2]} (forward)"
        for m, r in zip(self._meta, stats):
            if r[_NONFINITE] and not r[_CT_NONFINITE]:
                return f"{m[1]}: {m[2]} (backward)"
        return None

    def __str__(self):
        lines = self.lines
        head = (f"grad_flow report: loss {float(np.asarray(self.loss)):.6g}, {len(self._meta)} "
                f"backward equations on {len(lines)} source-line runs")
        line_table = _table(["source line", "eqns", "ct norm", "/loss end", "zeros", "nonfinite",
                             "flag"],
                            [[g["line"], g["equations"], f"{g['norm']:.3e}",
                              f"{g['relative']:.2e}", f"{g['zero_fraction']:.1%}",
                              g["nonfinite"], g["flag"]] for g in lines])
        param_table = _table(["parameter", "grad norm", "param norm", "grad/param", "rms/loss end",
                              "zeros", "nonfinite", "flag"],
                             [[p["path"], f"{p['grad_norm']:.3e}", f"{p['param_norm']:.3e}",
                               f"{p['ratio']:.2e}", f"{p['relative']:.2e}",
                               f"{p['zero_fraction']:.1%}", p["nonfinite"], p["flag"]]
                              for p in self.params])
        t = self.threshold
        summary = [f"flags: exploding > {t:g} x, vanishing < {1 / t:g} x the reference (lines: "
                   "ct norm / the run nearest the loss; parameters: grad rms / the leaf "
                   "nearest the loss): "
                   f"{len(self.exploding)} exploding, {len(self.vanishing)} vanishing"]
        first = self.first_nonfinite
        summary.append(f"first NaN/inf: {first}" if first else "no NaN/inf")
        return "\n".join([head, "", line_table, "", param_table, ""] + summary)

    __repr__ = __str__

    def plot(self):
        """A matplotlib Figure: the cotangent norm per source-line run (log scale, flagged runs
        in red) and the grad/param norm ratio per parameter. ImportError without matplotlib."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("GradFlowReport.plot needs matplotlib (pip install matplotlib); "
                              "str(report) gives the same numbers as a table") from e
        lines, params = self.lines, self.params
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7))
        ax1.bar(range(len(lines)), [max(g["norm"], 1e-30) for g in lines],
                color=["tab:red" if g["flag"] else "tab:blue" for g in lines])
        ax1.set_yscale("log")
        ax1.set_xticks(range(len(lines)), [g["line"] for g in lines], rotation=60, ha="right",
                       fontsize=7)
        ax1.set_ylabel("cotangent norm")
        ax2.bar(range(len(params)), [max(p["ratio"], 1e-30) for p in params])
        ax2.set_yscale("log")
        ax2.set_xticks(range(len(params)), [p["path"] for p in params], rotation=60, ha="right",
                       fontsize=7)
        ax2.set_ylabel("grad norm / param norm")
        fig.tight_layout()
        return fig


def _flag(rows, sizes, threshold, reference):
    """Set each row's ``relative`` (its size over reference(the positive finite sizes in depth
    order), called only when there are some) and flag: 'exploding' beyond threshold,
    'vanishing' below 1/threshold, else ''."""
    positive = [x for x in sizes if x > 0 and np.isfinite(x)]
    ref = float(reference(positive)) if positive else 0.0
    for row, x in zip(rows, sizes):
        row["relative"] = x / ref if ref else float("nan")
        row["flag"] = ("" if not ref else "exploding" if x / ref > threshold
                       else "vanishing" if x / ref < 1 / threshold else "")


def _table(header, rows):
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt.format(*header), rule] + [fmt.format(*r) for r in rows])
