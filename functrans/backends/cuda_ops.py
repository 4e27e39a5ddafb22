"""CUDA kernels for the equations the plan lowers on their own (``plan.Op``): dot_general,
conv_general_dilated, pad, concatenate, gather, scatter_add/scatter/scatter_mul, dynamic_slice,
dynamic_update_slice, cumulative ops, argmax/argmin and sort.

``op_rules[name](eqn, geo) -> list of Launch`` (see cuda_codegen for the conventions: flat
arrays, shapes baked in, grid-stride loops). ``reshape`` needs no kernel: flat buffers of the
same size are the same bytes, so the executor aliases it."""
from __future__ import annotations

import numpy as np

from ..core import Literal
from .cuda_codegen import (ATOMIC_DTYPES, Args, Launch, _ident, _indent, _size, cast, combine,
                           const, ctor, flat_index, grid_stride, scalar_read, unravel)

op_rules = {}


def _names(prefix, n):
    return [f"{prefix}{k}" for k in range(n)]


def _pqn(shape, axis):
    return _size(shape[:axis]), shape[axis], _size(shape[axis + 1:])


# ---------------------------------------------------------------------------------------------
# dot_general: tiled shared-memory matmul, batched over blockIdx.z

def _dot_general(eqn, geo):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, y = eqn.inputs
    out = eqn.out_binders[0]
    xs, ys = x.aval.shape, y.aval.shape
    lf = [i for i in range(len(xs)) if i not in lc and i not in lb]
    rf = [i for i in range(len(ys)) if i not in rc and i not in rb]
    B, M = _size([xs[i] for i in lb]), _size([xs[i] for i in lf])
    K, N = _size([xs[i] for i in lc]), _size([ys[i] for i in rf])
    odt = np.dtype(out.aval.dtype)
    acc_dt = np.dtype(np.int64) if odt == np.bool_ else odt
    T = geo.tile
    args = Args()
    xa, ya, oa = args.read(x), args.read(y), args.write(out)

    def element(arr, shape, groups, values):
        """Lines computing the flat offset ``e_`` of arr at (group index values)."""
        lines, idx = [], [None] * len(shape)
        for dims, val, tag in zip(groups, values, "bmk"):
            names = [f"{tag}{d}_" for d in dims]
            lines += unravel(val, names, [shape[d] for d in dims])
            for d, nm in zip(dims, names):
                idx[d] = nm
        return lines + [f"e_ = {flat_index(idx, shape)}"]

    lines = [f"sx_ = cuda.shared.array(({T}, {T}), {ctor(acc_dt)})",
             f"sy_ = cuda.shared.array(({T}, {T}), {ctor(acc_dt)})",
             "tx_ = cuda.threadIdx.x", "ty_ = cuda.threadIdx.y",
             f"n_ = cuda.blockIdx.x * {T} + tx_", f"m_ = cuda.blockIdx.y * {T} + ty_",
             "bz_ = cuda.blockIdx.z", f"while bz_ < {B}:"]
    zero = const(0, acc_dt)
    loop = [f"acc_ = {zero}", f"for kt_ in range({-(-K // T)}):",
            f"    kx_ = kt_ * {T} + tx_", f"    if m_ < {M} and kx_ < {K}:"]
    loop += _indent(element(xa, xs, [lb, lf, lc], ["bz_", "m_", "kx_"]), 2)
    loop += [f"        sx_[ty_, tx_] = {cast(f'{xa}[e_]', acc_dt)}", "    else:",
             f"        sx_[ty_, tx_] = {zero}", f"    ky_ = kt_ * {T} + ty_",
             f"    if ky_ < {K} and n_ < {N}:"]
    loop += _indent(element(ya, ys, [rb, rc, rf], ["bz_", "ky_", "n_"]), 2)
    loop += [f"        sy_[ty_, tx_] = {cast(f'{ya}[e_]', acc_dt)}", "    else:",
             f"        sy_[ty_, tx_] = {zero}", "    cuda.syncthreads()",
             f"    for kk_ in range({T}):",
             f"        acc_ = {cast('acc_ + sx_[ty_, kk_] * sy_[kk_, tx_]', acc_dt)}",
             "    cuda.syncthreads()",
             f"if m_ < {M} and n_ < {N}:",
             f"    {oa}[(bz_ * {M} + m_) * {N} + n_] = {cast('acc_', odt)}",
             "bz_ += cuda.gridDim.z"]
    lines += _indent(loop)
    grid = (max(1, -(-N // T)), max(1, -(-M // T)), max(1, min(B, 65535)))
    return [Launch("dot_general", lines, args.reads, args.writes, grid, (T, T), work=B * M * N)]


# ---------------------------------------------------------------------------------------------
# Pointwise ops: one thread per output element

def _pointwise(name, out, geo, make_body):
    """A grid-stride Launch over out's elements; make_body(args, idx) -> lines that store the
    element's value in ``val_``."""
    args = Args()
    shape = out.aval.shape
    idx = _names("o", len(shape))
    body = unravel("f", idx, shape) + make_body(args, idx)
    wa = args.write(out)
    body.append(f"{wa}[f] = val_")
    return grid_stride(geo, name, _size(shape), body, args.reads, args.writes)


def _pad(eqn, geo):
    x, pv = eqn.inputs
    xs = x.aval.shape

    def body(args, idx):
        lines, src, conds = [], [], []
        for k, (lo, hi, it) in enumerate(eqn.params["padding_config"]):
            lines.append(f"p{k}_ = {idx[k]} - ({lo})")
            conds.append(f"p{k}_ >= 0 and p{k}_ % {it + 1} == 0 and p{k}_ // {it + 1} < {xs[k]}")
            src.append(f"p{k}_ // {it + 1}")
        fill = scalar_read(args, pv)
        lines.append(f"if {' and '.join(conds) or 'True'}:")
        lines.append(f"    val_ = {args.read(x)}[{flat_index(src, xs)}]")
        lines += ["else:", f"    val_ = {fill}"]
        return lines
    return [_pointwise("pad", eqn.out_binders[0], geo, body)]


def _concatenate(eqn, geo):
    dim = eqn.params["dimension"]

    def body(args, idx):
        lines, offset, kw = [], 0, "if"
        for x in eqn.inputs:
            n = x.aval.shape[dim]
            if n == 0:
                continue
            src = [f"({i} - {offset})" if k == dim else i for k, i in enumerate(idx)]
            read = const(x.val, x.aval.dtype) if type(x) is Literal else \
                f"{args.read(x)}[{flat_index(src, x.aval.shape)}]"
            lines += [f"{kw} {idx[dim]} < {offset + n}:", f"    val_ = {read}"]
            offset, kw = offset + n, "elif"
        return lines
    return [_pointwise("concatenate", eqn.out_binders[0], geo, body)]


def _coords(args, x_shape, idx_var, axes, b_names, b_shape, rest_names, clamp):
    """Lines computing c<d>_ (coordinates in x) for block index (b_names, rest_names); with
    clamp False also ``ok_`` (all indexed coordinates in range)."""
    ia = args.read(idx_var)
    nb = len(b_shape)
    lines = ["ok_ = True"] if not clamp else []
    for j, a in enumerate(axes):
        row = flat_index(list(b_names) + [str(j)], tuple(b_shape) + (len(axes),))
        lines.append(f"c{a}_ = np.int64({ia}[{row}])")
        if clamp:
            lines.append(f"c{a}_ = {_clamp(f'c{a}_', max(x_shape[a] - 1, 0))}")
        else:
            lines.append(f"ok_ = ok_ and c{a}_ >= 0 and c{a}_ < {x_shape[a]}")
    rest = [d for d in range(len(x_shape)) if d not in axes]
    for r, d in enumerate(rest):
        lines.append(f"c{d}_ = {rest_names[r]}")
    del nb
    return lines, flat_index([f"c{d}_" for d in range(len(x_shape))], x_shape)


def _gather(eqn, geo):
    x, iv = eqn.inputs
    axes = eqn.params["axes"]
    b_shape = iv.aval.shape[:-1]
    nb = len(b_shape)

    def body(args, idx):
        lines, off = _coords(args, x.aval.shape, iv, axes, idx[:nb], b_shape, idx[nb:], True)
        return lines + [f"val_ = {args.read(x)}[{off}]"]
    return [_pointwise("gather", eqn.out_binders[0], geo, body)]


def _copy_launch(x, out, geo):
    def body(args, idx):
        return [f"val_ = {scalar_read(args, x) if type(x) is Literal else args.read(x) + '[f]'}"]
    return _pointwise("copy", out, geo, body)


def _scatter(kind):
    def rule(eqn, geo):
        x, iv, upd = eqn.inputs
        out = eqn.out_binders[0]
        axes = eqn.params["axes"]
        xs, b_shape = x.aval.shape, iv.aval.shape[:-1]
        rest_shape = [n for d, n in enumerate(xs) if d not in axes]
        dt = np.dtype(out.aval.dtype)
        args = Args()
        oa = args.write(out)
        bn, rn = _names("b", len(b_shape)), _names("r", len(rest_shape))
        if kind == "add" and dt in ATOMIC_DTYPES:     # fully parallel, atomics on collisions
            block = tuple(b_shape) + tuple(rest_shape)
            lines, off = _coords(args, xs, iv, axes, bn, b_shape, rn, False)
            body = unravel("f", bn + rn, block) + lines
            body += ["if ok_:", f"    cuda.atomic.add({oa}, {off}, {args.read(upd)}[f])"]
            second = grid_stride(geo, "scatter_add", _size(block), body, args.reads,
                                 args.writes, fresh=[])
        else:   # ordered: one thread per non-indexed element, rows in order (last write wins)
            nrest = _size(rest_shape)
            lines, off = _coords(args, xs, iv, axes, bn, b_shape, rn, False)
            u = f"{args.read(upd)}[b_ * {nrest} + f]"
            new = {"set": u, "add": cast(f"{oa}[t_] + {u}", dt),
                   "mul": cast(f"{oa}[t_] * {u}", dt)}[kind]
            loop = unravel("b_", bn, b_shape) + lines + [f"t_ = {off}", "if ok_:",
                                                           f"    {oa}[t_] = {new}"]
            body = unravel("f", rn, rest_shape) + [f"for b_ in range({_size(b_shape)}):"]
            body += _indent(loop)
            second = grid_stride(geo, f"scatter_{kind}", nrest, body, args.reads,
                                 args.writes, fresh=[])
        return [_copy_launch(x, out, geo), second]
    return rule


def _clamp(name, hi):
    """name clamped into [0, hi] (no builtin min/max: numba.cuda needs a device for them)."""
    return f"(0 if {name} < 0 else ({hi} if {name} > {hi} else {name}))"


def _clamped_starts(args, starts, shape, sizes):
    lines = []
    for k, (s, n, w) in enumerate(zip(starts, shape, sizes)):
        lines.append(f"st{k}_ = np.int64({scalar_read(args, s)})")
        lines.append(f"st{k}_ = {_clamp(f'st{k}_', n - w)}")
    return lines


def _dynamic_slice(eqn, geo):
    x, *starts = eqn.inputs
    sizes = eqn.params["slice_sizes"]

    def body(args, idx):
        lines = _clamped_starts(args, starts, x.aval.shape, sizes)
        src = [f"(st{k}_ + {i})" for k, i in enumerate(idx)]
        return lines + [f"val_ = {args.read(x)}[{flat_index(src, x.aval.shape)}]"]
    return [_pointwise("dynamic_slice", eqn.out_binders[0], geo, body)]


def _dynamic_update_slice(eqn, geo):
    x, upd, *starts = eqn.inputs
    us = upd.aval.shape

    def body(args, idx):
        lines = _clamped_starts(args, starts, x.aval.shape, us)
        inside = " and ".join(f"st{k}_ <= {i} and {i} < st{k}_ + {us[k]}" for k, i in enumerate(idx))
        src = [f"({i} - st{k}_)" for k, i in enumerate(idx)]
        xr = scalar_read(args, x) if type(x) is Literal else f"{args.read(x)}[f]"
        lines += [f"if {inside or 'True'}:", f"    val_ = {args.read(upd)}[{flat_index(src, us)}]",
                  "else:", f"    val_ = {xr}"]
        return lines
    return [_pointwise("dynamic_update_slice", eqn.out_binders[0], geo, body)]


# ---------------------------------------------------------------------------------------------
# Along one axis: one thread per (outer, inner) position, sequential along the axis

def _along_axis(name, geo, shape, axis, make_loop, reads_writes):
    P, N, Q = _pqn(shape, axis)
    args = Args()
    reads_writes(args)
    body = [f"p_ = f // {Q}", f"q_ = f % {Q}", f"base_ = p_ * {N * Q} + q_"]
    body += make_loop(args, N, Q)
    return grid_stride(geo, name, P * Q, body, args.reads, args.writes)


def _cumulative(red):
    def rule(eqn, geo):
        x, out = eqn.inputs[0], eqn.out_binders[0]
        dt = out.aval.dtype
        rng = "range({N} - 1, -1, -1)" if eqn.params["reverse"] else "range({N})"

        def loop(args, N, Q):
            xa, oa = args.read(x), args.write(out)
            return [f"acc_ = {const(_ident(red, dt), dt)}", f"for k_ in {rng.format(N=N)}:",
                    f"    i_ = base_ + k_ * {Q}",
                    f"    acc_ = {cast(combine(red, dt, 'acc_', f'{xa}[i_]'), dt)}",
                    f"    {oa}[i_] = acc_"]
        return [_along_axis(eqn.primitive.name, geo, x.aval.shape, eqn.params["axis"], loop,
                            lambda a: None)]
    return rule


def _argminmax(better):
    def rule(eqn, geo):
        x, out = eqn.inputs[0], eqn.out_binders[0]
        (axis,) = eqn.params["axes"]
        if x.aval.shape[axis] == 0:
            raise ValueError(f"attempt to get {eqn.primitive.name} of an empty sequence")
        nan = np.dtype(x.aval.dtype).kind == "f"

        def loop(args, N, Q):
            xa, oa = args.read(x), args.write(out)
            test = f"v_ != v_ or v_ {better} best_" if nan else f"v_ {better} best_"
            lines = [f"best_ = {xa}[base_]", "bi_ = 0", f"for k_ in range(1, {N}):"]
            if nan:
                lines += ["    if best_ != best_:", "        break"]
            lines += [f"    v_ = {xa}[base_ + k_ * {Q}]", f"    if {test}:", "        best_ = v_",
                      "        bi_ = k_", f"{oa}[f] = {cast('bi_', out.aval.dtype)}"]
            return lines
        return [_along_axis(eqn.primitive.name, geo, x.aval.shape, axis, loop, lambda a: None)]
    return rule


def _sort(eqn, geo):
    ops, outs = eqn.inputs, eqn.out_binders
    nk = eqn.params["num_keys"]

    def less(j, dt, a=None, b=None):
        a, b = a or f"u{j}_", b or f"v{j}_"
        if np.dtype(dt).kind == "f":
            return f"({a} < {b} or ({b} != {b} and {a} == {a}))"
        return f"({a} < {b})"

    def loop(args, N, Q):
        ins = [args.read(o) for o in ops]
        ws = [args.write(o) for o in outs]
        lines = [f"for k_ in range({N}):"]
        lines += [f"    {w}[base_ + k_ * {Q}] = {i}[base_ + k_ * {Q}]" for w, i in zip(ws, ins)]
        cond = less(nk - 1, ops[nk - 1].aval.dtype)
        for j in range(nk - 2, -1, -1):     # lexicographic: key j decides unless tied
            dt = ops[j].aval.dtype
            lt, gt = less(j, dt), less(j, dt, f"v{j}_", f"u{j}_")
            cond = f"({lt} or (not {gt} and {cond}))"
        lines += [f"for k_ in range(1, {N}):", "    i_ = k_", "    while i_ > 0:",
                  f"        pa_ = base_ + i_ * {Q}", f"        pb_ = base_ + (i_ - 1) * {Q}"]
        for j in range(nk):
            lines += [f"        u{j}_ = {ws[j]}[pa_]", f"        v{j}_ = {ws[j]}[pb_]"]
        lines += [f"        if not {cond}:", "            break"]
        for w in ws:
            lines += [f"        tmp_ = {w}[pa_]", f"        {w}[pa_] = {w}[pb_]", f"        {w}[pb_] = tmp_"]
        lines.append("        i_ -= 1")
        return lines
    return [_along_axis("sort", geo, ops[0].aval.shape, eqn.params["dimension"], loop,
                        lambda a: None)]


# ---------------------------------------------------------------------------------------------
# conv_general_dilated: one thread per output element, looping over its group's input features
# and the kernel window (window positions falling in padding or between dilated entries are
# skipped)

def _conv_general_dilated(eqn, geo):
    x, w = eqn.inputs
    p = eqn.params
    lhs_spec, rhs_spec, out_spec = p["dimension_numbers"]
    out = eqn.out_binders[0]
    odt = np.dtype(out.aval.dtype)
    xs, ws = x.aval.shape, w.aval.shape
    groups = max(p["feature_group_count"], p["batch_group_count"])
    bgc = p["batch_group_count"] > 1
    og, cg = ws[rhs_spec[0]] // groups, ws[rhs_spec[1]]

    def body(args, idx):
        n, o = idx[out_spec[0]], idx[out_spec[1]]
        xi, wi = [None] * len(xs), [None] * len(ws)
        xi[lhs_spec[0]] = f"{n} + g_ * {out.aval.shape[out_spec[0]]}" if bgc else n
        xi[lhs_spec[1]] = "c_" if bgc else f"g_ * {cg} + c_"
        wi[rhs_spec[0]], wi[rhs_spec[1]] = o, "c_"
        lines = [f"g_ = {o} // {og}", f"acc_ = {const(0, odt)}", f"for c_ in range({cg}):"]
        depth = 1
        for j, (pos, s, (lo, _), ld, rd) in enumerate(zip(
                [idx[d] for d in out_spec[2:]], p["window_strides"], p["padding"],
                p["lhs_dilation"], p["rhs_dilation"])):
            lines += _indent([f"for k{j}_ in range({ws[rhs_spec[2 + j]]}):",
                              f"    q{j}_ = {pos} * {s} + k{j}_ * {rd} - ({lo})",
                              f"    i{j}_ = q{j}_ // {ld}",
                              f"    if q{j}_ >= 0 and i{j}_ * {ld} == q{j}_ and "
                              f"i{j}_ < {xs[lhs_spec[2 + j]]}:"], depth)
            depth += 2
            xi[lhs_spec[2 + j]], wi[rhs_spec[2 + j]] = f"i{j}_", f"k{j}_"
        xr = cast(f"{args.read(x)}[{flat_index(xi, xs)}]", odt)
        wr = cast(f"{args.read(w)}[{flat_index(wi, ws)}]", odt)
        lines += _indent([f"acc_ = {cast(f'acc_ + {xr} * {wr}', odt)}"], depth)
        return lines + ["val_ = acc_"]
    return [_pointwise("conv_general_dilated", out, geo, body)]


op_rules["conv_general_dilated"] = _conv_general_dilated


op_rules.update({
    "dot_general": _dot_general,
    "pad": _pad,
    "concatenate": _concatenate,
    "gather": _gather,
    "scatter_add": _scatter("add"),
    "scatter": _scatter("set"),
    "scatter_mul": _scatter("mul"),
    "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice,
    "cumsum": _cumulative("reduce_sum"),
    "cumprod": _cumulative("reduce_prod"),
    "cummax": _cumulative("reduce_max"),
    "cummin": _cumulative("reduce_min"),
    "argmax": _argminmax(">"),
    "argmin": _argminmax("<"),
    "sort": _sort,
})


# ---------------------------------------------------------------------------------------------
# Windowed reductions (lax/windowed.py): one thread per output element looping over its window;
# padding and dilation holes are skipped. The general reduce and reduce_window (a user
# computation) have no rule here: they raise NotImplementedError naming themselves.

def _window_monoid(red):
    def rule(eqn, geo):
        x, out = eqn.inputs[0], eqn.out_binders[0]
        p, xs, dt = eqn.params, x.aval.shape, out.aval.dtype

        def body(args, idx):
            lines = [f"acc_ = {const(_ident(red, dt), dt)}"]
            for k, w in enumerate(p["window_dimensions"]):
                lines += _indent([f"for w{k}_ in range({w}):"], k)
            src, conds = [], []
            for k, n in enumerate(xs):
                (lo, _), bd = p["padding"][k], p["base_dilation"][k]
                lines += _indent([f"q{k}_ = {idx[k]} * {p['window_strides'][k]} + "
                                  f"w{k}_ * {p['window_dilation'][k]} - ({lo})"], len(xs))
                conds.append(f"q{k}_ >= 0 and q{k}_ % {bd} == 0 and q{k}_ // {bd} < {n}")
                src.append(f"(q{k}_ // {bd})")
            elem = f"{args.read(x)}[{flat_index(src, xs)}]"
            lines += _indent([f"if {' and '.join(conds) or 'True'}:",
                              f"    acc_ = {cast(combine(red, dt, 'acc_', elem), dt)}"], len(xs))
            return lines + ["val_ = acc_"]
        return [_pointwise(eqn.primitive.name, out, geo, body)]
    return rule


op_rules.update({
    "reduce_window_sum": _window_monoid("reduce_sum"),
    "reduce_window_max": _window_monoid("reduce_max"),
    "reduce_window_min": _window_monoid("reduce_min"),
})
