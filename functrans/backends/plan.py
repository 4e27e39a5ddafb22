"""Backend-neutral kernel plan: a jaxpr becomes a list of steps.

* ``Group``: one loop nest over an iteration shape. It holds a chain of elementwise equations,
  index-map reads (broadcast_in_dim, transpose, rev, slice, squeeze, iota) of arrays computed
  before the group, and reductions that consume values of the chain. Only values used after the
  group (or returned) get a buffer; the rest live in registers.
* ``Op``: one equation lowered on its own (dot_general, reshape, pad, cumulative ops, ...).

Nested ``jit`` equations are inlined first. The plan depends on shapes only through shape
*equality* (and size-1 broadcasting), so most new batch sizes give the same plan."""
from __future__ import annotations

import numpy as np

from .. import core
from ..core import Literal, Var

ELEMENTWISE = {
    "neg", "sign", "floor", "ceil", "round", "is_finite", "abs", "exp", "exp2", "log", "log1p",
    "expm1", "tanh", "logistic", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh",
    "asinh", "acosh", "atanh", "sqrt", "rsqrt", "cbrt", "erf", "not", "stop_gradient",
    "integer_pow", "add", "sub", "mul", "div", "rem", "pow", "max", "min", "atan2", "and", "or",
    "xor", "shift_left", "shift_right_logical", "eq", "ne", "lt", "le", "gt", "ge", "select_n",
    "convert_element_type", "reduce_precision"}
ELEMENTWISE |= {"lgamma", "digamma", "polygamma", "erfc", "erf_inv", "ndtri",    # lax/special.py
                "igamma", "igammac", "igamma_grad_a", "random_gamma_grad",
                "regularized_incomplete_beta"}
ELEMENTWISE |= {"real", "imag", "conj", "complex"}       # the complex parts (lax.py)
# elementwise where the widths are equal (see is_elementwise), a view of the bytes otherwise
WIDTH_DEPENDENT = {"bitcast_convert_type"}
# reads of one earlier array through an index map; iota reads nothing
INDEX_MAPS = {"broadcast_in_dim", "transpose", "rev", "slice", "squeeze", "iota"}
REDUCTIONS = {"reduce_sum", "reduce_prod", "reduce_max", "reduce_min"}
# call-like higher-order primitives, inlined: name -> the param holding the ClosedJaxpr
CALLS = {"jit": "jaxpr", "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
         "custom_vjp_call": "call_jaxpr", "custom_linear_solve": None}


def _call_body(eqn):
    """(ClosedJaxpr, input atoms) that a call-like equation runs: its body on its inputs, or
    for custom_linear_solve (lax/linear_solve.py) its solve jaxpr on (*solve consts, *b)."""
    if eqn.primitive.name == "custom_linear_solve":
        n_mv, n_vm, n_s, n_ts = eqn.params["const_lengths"]
        ins = list(eqn.inputs)
        start = n_mv + n_vm
        return eqn.params["jaxprs"].solve, ins[start:start + n_s] + ins[start + n_s + n_ts:]
    return eqn.params[CALLS[eqn.primitive.name]], eqn.inputs


# primitives that are the identity at run time (their output is their input): no code at all
ALIASES = {"checkpoint_name"}


class Group:
    """One fused loop nest over ``shape_var``'s shape."""
    __slots__ = ("shape_var", "eqns", "local", "pending")

    def __init__(self, shape_var):
        self.shape_var = shape_var      # a Var whose shape is the iteration shape
        self.eqns = []
        self.local = set()              # vars computed elementwise inside the group
        self.pending = set()            # reduction outputs: not readable inside the group

    def __repr__(self):
        return f"Group({self.shape_var.aval}, {[e.primitive.name for e in self.eqns]})"


class Op:
    """One equation lowered on its own."""
    __slots__ = ("eqn",)

    def __init__(self, eqn):
        self.eqn = eqn

    def __repr__(self):
        return f"Op({self.eqn.primitive.name})"


class KernelPlan:
    """inputs (consts then args), steps, outputs, the vars that need a buffer, and the inputs
    the plan may overwrite once it is done reading them."""

    def __init__(self, inputs, consts, steps, outvars, materialized, donated=()):
        self.inputs, self.consts, self.steps = inputs, consts, steps
        self.outvars, self.materialized = outvars, materialized
        # inputs whose buffers the caller hands over: dead after this plan, aliased by nothing
        self.donated = frozenset(donated)

    def __repr__(self):
        return "KernelPlan(\n  " + "\n  ".join(map(repr, self.steps)) + "\n)"


def step_eqns(step):
    """The equations a step computes (one for an Op)."""
    return [step.eqn] if isinstance(step, Op) else step.eqns


def step_reads(step):
    """The vars a step reads from earlier steps or the inputs. A control-flow Op's branch and
    body jaxprs are closed (every outer value they use is an operand of the equation), so a use
    inside them is a use at the Op."""
    defined = set(o for e in step_eqns(step) for o in e.out_binders)
    return list(dict.fromkeys(v for e in step_eqns(step) for v in e.inputs
                              if type(v) is Var and v not in defined))


def release_points(reads, writes, keep):
    """Liveness over a straight-line sequence of steps: step i reads ``reads[i]`` and writes
    ``writes[i]`` (hashable names). Returns one list per step: the names whose last use is that
    step (read there and by no later step, or written there and never read), in first-seen
    order, leaving out those in ``keep`` (the results)."""
    last = {}
    for i, (rs, ws) in enumerate(zip(reads, writes)):
        for n in ws:
            last.setdefault(n, i)
        for n in rs:
            last[n] = i
    out = [[] for _ in reads]
    for n, i in last.items():
        if n not in keep:
            out[i].append(n)
    return out


def plan_liveness(kplan):
    """(reads, writes, dying): per step of ``kplan``, the vars it reads from earlier steps or the
    inputs, the vars it computes, and the vars whose last use it is (release_points; the plan's
    outputs never die)."""
    reads = [step_reads(s) for s in kplan.steps]
    writes = [[o for e in step_eqns(s) for o in e.out_binders] for s in kplan.steps]
    keep = set(v for v in kplan.outvars if type(v) is Var)
    return reads, writes, release_points(reads, writes, keep)


def inline_jit(closed):
    """(invars, consts-as-(Var, value), eqns, outvars) with nested call equations (jit,
    checkpoint, custom_jvp/vjp calls) inlined."""
    const_pairs = list(zip(closed.jaxpr.constvars, closed.consts))
    eqns = []

    def walk(jaxpr, env):
        def read(v):
            return v if type(v) is Literal else env.get(v, v)
        for eqn in jaxpr.eqns:
            if eqn.primitive.name in CALLS:
                inner, inputs = _call_body(eqn)
                sub = {}
                for cv, c in zip(inner.jaxpr.constvars, inner.consts):
                    nv = Var(cv.aval)
                    const_pairs.append((nv, c))
                    sub[cv] = nv
                for iv, x in zip(inner.jaxpr.invars, inputs):
                    sub[iv] = read(x)
                outs = walk(inner.jaxpr, sub)
                for ov, o in zip(eqn.out_binders, outs):
                    env[ov] = o
            elif eqn.primitive.name in ALIASES:
                env[eqn.out_binders[0]] = read(eqn.inputs[0])
            else:   # fresh binders: an inlined jaxpr may be inlined more than once
                outs = [Var(v.aval) for v in eqn.out_binders]
                eqns.append(core.JaxprEqn(eqn.primitive, [read(v) for v in eqn.inputs],
                                          eqn.params, outs, eqn.source_info))
                env.update(zip(eqn.out_binders, outs))
        return [read(v) for v in jaxpr.outvars]

    outs = walk(closed.jaxpr, {})
    return list(closed.jaxpr.invars), const_pairs, eqns, outs


def is_elementwise(eqn):
    """True for an equation computing each output element from the same element of its
    operands (their shapes equal): ELEMENTWISE, and a WIDTH_DEPENDENT one between equal widths."""
    name = eqn.primitive.name
    if name in WIDTH_DEPENDENT:
        return eqn.inputs[0].aval.dtype.itemsize == eqn.out_binders[0].aval.dtype.itemsize
    return name in ELEMENTWISE


def _fusible(eqn):
    name = eqn.primitive.name
    return is_elementwise(eqn) or name in INDEX_MAPS or name in REDUCTIONS


def _iter_var(eqn):
    """The var whose shape is the loop nest this equation runs over."""
    if eqn.primitive.name in REDUCTIONS:
        return eqn.inputs[0]
    return eqn.out_binders[0]


def _can_join(group, eqn):
    if group is None or _iter_var(eqn).aval.shape != group.shape_var.aval.shape:
        return False
    name = eqn.primitive.name
    for v in eqn.inputs:
        if type(v) is Literal:
            continue
        if v in group.pending:
            return False
        if name in INDEX_MAPS and v in group.local and name != "broadcast_in_dim":
            return False
        if name == "broadcast_in_dim" and v in group.local:
            return False
    return True


def _add(group, eqn):
    group.eqns.append(eqn)
    target = group.pending if eqn.primitive.name in REDUCTIONS else group.local
    target.update(eqn.out_binders)


def _place(groups, eqn):
    """Adds the fusible eqn to the earliest open group (groups: in run order) that it can join
    and that runs after every group computing one of its inputs; else opens a new group right
    after the last of those (first of all when it reads none). Elementwise work on several
    shapes interleaved -- an optimizer's tree_maps compute the first moment of every leaf, then
    the second moment of every leaf, ... -- thus becomes one loop per shape instead of one per
    tree_map and leaf, each intermediate staying in registers. A group thus reads only groups
    before it in the list (_groups_read relies on it)."""
    first = next((i for i in range(len(groups) - 1, -1, -1) if _depends_on(eqn, groups[i])),
                 None)
    start = 0 if first is None else first
    for g in groups[start:]:
        if _can_join(g, eqn):
            _add(g, eqn)
            return
    group = Group(_iter_var(eqn))
    _add(group, eqn)
    groups.insert(0 if first is None else first + 1, group)


def _groups_read(groups, eqn):
    """The indices of the open groups eqn reads, and of those these read, transitively (a
    group reads only groups before it)."""
    need, todo = set(), [i for i, g in enumerate(groups) if _depends_on(eqn, g)]
    while todo:
        i = todo.pop()
        if i not in need:
            need.add(i)
            todo += [j for j in range(i) if any(_depends_on(e, groups[j]) for e in groups[i].eqns)]
    return need


def _depends_on(eqn, group):
    return group is not None and any(type(v) is Var and (v in group.local or v in group.pending)
                                     for v in eqn.inputs)


def _outer_dims(eqn):
    """For a dot_general whose contraction has size 1 (an outer product, batched or not): the
    output position each operand dim reads from (None for a contracted dim); else None."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, y = eqn.inputs
    out = eqn.out_binders[0]
    if (type(x) is Literal or type(y) is Literal or out.aval.ndim == 0
            or not (x.aval.dtype == y.aval.dtype == out.aval.dtype)
            or x.aval.dtype.kind not in "iufc"
            or any(x.aval.shape[d] != 1 for d in lc)):
        return None
    lf = [d for d in range(x.aval.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(y.aval.ndim) if d not in rc and d not in rb]
    xpos, ypos = [None] * x.aval.ndim, [None] * y.aval.ndim
    for i, (a, b) in enumerate(zip(lb, rb)):
        xpos[a], ypos[b] = i, i
    for j, d in enumerate(lf):
        xpos[d] = len(lb) + j
    for j, d in enumerate(rf):
        ypos[d] = len(lb) + len(lf) + j
    return xpos, ypos


def _read_as(v, pos, out_aval):
    """A broadcast_in_dim equation reading v into out_aval's shape; dim k of v is read at output
    position pos[k] (a size-1 dim with pos None reads index 0: it is mapped onto dim 0, which the
    code generator reads as 0 because v's dim has size 1)."""
    dims = tuple(0 if p is None else p for p in pos)
    o = Var(out_aval)
    prim = core_prims()["broadcast_in_dim"]
    return core.JaxprEqn(prim, [v], {"shape": out_aval.shape, "broadcast_dimensions": dims},
                         [o], None), o


_PRIMS = {}


def core_prims():
    """The lax primitives the rewrites emit (imported lazily)."""
    if not _PRIMS:
        from ..lax import lax
        _PRIMS.update(broadcast_in_dim=lax.broadcast_in_dim_p, mul=lax.mul_p,
                      reduce_sum=lax.reduce_sum_p)
    return _PRIMS


def fuse_outer_products(eqns, outvars):
    """Rewrite every dot_general with a size-1 contraction as broadcast reads and a mul (a fused
    loop nest instead of a loop of rank-1 BLAS calls). A transpose that is the only consumer of
    such a product is folded into the reads, so the product is written once, in its final
    layout."""
    uses = {}
    for e in eqns:
        for v in e.inputs:
            if type(v) is Var:
                uses.setdefault(v, []).append(e)
    outset = set(v for v in outvars if type(v) is Var)
    folded, new = set(), []
    for e in eqns:
        if id(e) in folded:
            continue
        dims = _outer_dims(e) if e.primitive.name == "dot_general" else None
        if dims is None:
            new.append(e)
            continue
        out = e.out_binders[0]
        xpos, ypos = dims
        consumers = uses.get(out, [])
        if (out not in outset and len(consumers) == 1
                and consumers[0].primitive.name == "transpose"):
            t = consumers[0]
            inv = {p: k for k, p in enumerate(t.params["permutation"])}
            xpos = [None if p is None else inv[p] for p in xpos]
            ypos = [None if p is None else inv[p] for p in ypos]
            folded.add(id(t))
            out = t.out_binders[0]
        ex, xv = _read_as(e.inputs[0], xpos, out.aval)
        ey, yv = _read_as(e.inputs[1], ypos, out.aval)
        new += [ex, ey, core.JaxprEqn(core_prims()["mul"], [xv, yv], {}, [out], e.source_info)]
    return new


def _flattened(v, defs):
    """The array v is a flattening reshape of (v itself if it is not one)."""
    e = defs.get(v) if type(v) is Var else None
    if (e is not None and e.primitive.name == "reshape" and v.aval.ndim == 1
            and e.params.get("dimensions") is None and type(e.inputs[0]) is Var):
        return e.inputs[0]
    return v


def vdots_as_reductions(eqns):
    """Rewrite every dot_general contracting all dims of two real float operands of one dtype
    (vdot, a 1-D dot: a sum of x * y) as a mul and a reduce_sum. The loop fuses with the loops
    computing x and y -- a CG step sums <p, Ap> in the loop that computes Ap and <r, r> in the one
    that updates r, instead of reading both back in a BLAS call -- and accumulates in float64.
    Flattening reshapes of two arrays of one shape are looked through."""
    defs = {o: e for e in eqns for o in e.out_binders}
    new = []
    for e in eqns:
        if e.primitive.name != "dot_general" or e.out_binders[0].aval.ndim:
            new.append(e)
            continue
        (lc, rc), (lb, _) = e.params["dimension_numbers"]
        x, y = e.inputs
        out = e.out_binders[0]
        dt = np.dtype(out.aval.dtype)
        if (lb or tuple(lc) != tuple(range(x.aval.ndim)) or tuple(rc) != tuple(lc)
                or dt.kind != "f" or dt.itemsize < 4
                or x.aval.dtype != dt or y.aval.dtype != dt):
            new.append(e)
            continue
        fx, fy = _flattened(x, defs), _flattened(y, defs)
        if fx.aval.shape == fy.aval.shape:
            x, y = fx, fy
        terms = Var(core.ShapedArray(x.aval.shape, dt))
        new += [core.JaxprEqn(core_prims()["mul"], [x, y], {}, [terms], e.source_info),
                core.JaxprEqn(core_prims()["reduce_sum"], [terms],
                              {"axes": tuple(range(x.aval.ndim))}, [out], e.source_info)]
    return new


def _dot_accumulate_impl(acc, x, y, *, dimension_numbers, **params):
    """acc + dot_general(x, y), written into acc (the host step of split plans)."""
    from ..lax import lax
    prod = core.impl_rules[lax.dot_general_p](x, y, dimension_numbers=dimension_numbers,
                                              **params)
    return np.add(acc, prod, out=acc)


# plan-internal, CPU only (accumulate_dots below makes it; no user jaxpr holds it, so it has
# no transform rules and no core impl): dot_accumulate(acc, x, y) = acc + dot_general(x, y),
# computed in acc's buffer; numba_cpu lowers it, and split plans run this host step
dot_accumulate_p = core.Primitive("dot_accumulate")
core.host_impl_rules[dot_accumulate_p] = _dot_accumulate_impl
_BLAS_DTYPES = frozenset(map(np.dtype, ("float32", "float64", "complex64", "complex128")))


def accumulate_dots(eqns, outvars):
    """add(p, dot_general(x, y)) where p is another product (a dot_general or a
    dot_accumulate) -> dot_accumulate(p, x, y): BLAS adds the second product into the first
    one's buffer (gemm with beta = 1), as XLA fuses a dot with its addend. No second buffer, no
    zeroing it, no pass adding the two. A weight gradient's tangent, x' g + x g', is such a sum
    (each HVP has one per layer). Both products must be read by the add alone and be no
    output of the plan."""
    uses = {}
    for e in eqns:
        for v in e.inputs:
            if type(v) is Var:
                uses[v] = uses.get(v, 0) + 1
    outset = set(v for v in outvars if type(v) is Var)
    defs = {o: (i, e) for i, e in enumerate(eqns) for o in e.out_binders}

    def product(v, names, aval):
        if type(v) is not Var or uses.get(v) != 1 or v in outset or v not in defs:
            return None
        i, e = defs[v]
        dt = np.dtype(aval.dtype)
        ok = (e.primitive.name in names and v.aval.shape == aval.shape and dt in _BLAS_DTYPES
              and all(np.dtype(u.aval.dtype) == dt for u in [v, *e.inputs[-2:]]))
        return (i, e) if ok else None

    moved, new = set(), list(eqns)
    for k, e in enumerate(eqns):
        if e.primitive.name != "add":
            continue
        out = e.out_binders[0]
        # per operand: (its product as the accumulator, as the product added in)
        roles = [(product(v, ("dot_general", "dot_accumulate"), out.aval),
                  product(v, ("dot_general",), out.aval)) for v in e.inputs]
        pairs = [(a, b) for a, b in ((roles[0][0], roles[1][1]), (roles[1][0], roles[0][1]))
                 if a is not None and b is not None and a[1] is not b[1]]
        if not pairs:
            continue
        acc, (j, dot) = min(pairs, key=lambda p: p[0][0])    # the earlier product accumulates
        new[k] = core.JaxprEqn(dot_accumulate_p, [acc[1].out_binders[0], *dot.inputs],
                               dict(dot.params), [out], e.source_info)
        moved.add(j)
        defs[out] = (k, new[k])
    return [e for i, e in enumerate(new) if i not in moved]


# index maps and reshapes of a splat are the same splat
_SPLAT_PRESERVING = {"broadcast_in_dim", "reshape", "transpose", "rev", "squeeze", "slice"}


def _splat(val, aval):
    lit = core.Literal(val)
    lit.aval = core.ShapedArray(aval.shape, aval.dtype)   # a scalar standing for a full array
    return lit


def _svd_values_only(e):
    return e.primitive.name == "svd" and not e.params["compute_uv"]


def share_svd_values(eqns, outvars):
    """Singular values asked for alone of an operand that also gets a full svd (grad's forward
    pass does both: the values are the result, the jvp needs u and v) come from the full svd,
    moved up to the first one's place: one LAPACK call fewer. Returns (eqns, outvars)."""
    full = {}
    for e in eqns:
        if e.primitive.name == "svd" and e.params["compute_uv"] and type(e.inputs[0]) is Var:
            full.setdefault(e.inputs[0], e)
    if not full or not any(_svd_values_only(e) and type(e.inputs[0]) is Var
                           and e.inputs[0] in full for e in eqns):
        return eqns, outvars
    rename, placed, out = {}, set(), []
    for e in eqns:
        f = (full.get(e.inputs[0]) if e.primitive.name == "svd" and type(e.inputs[0]) is Var
             else None)
        if f is not None and _svd_values_only(e):
            rename[e.out_binders[0]] = f.out_binders[0]
            e = f                       # the full svd takes this place, if not placed yet
        if e is f:
            if id(f) in placed:
                continue
            placed.add(id(f))
        if any(v in rename for v in e.inputs if type(v) is Var):
            e = core.JaxprEqn(e.primitive, [rename.get(v, v) if type(v) is Var else v
                                            for v in e.inputs], e.params, e.out_binders,
                              e.source_info)
        out.append(e)
    return out, [rename.get(v, v) if type(v) is Var else v for v in outvars]


def fold_splats(eqns, outvars):
    """Constant folding of "splats" (arrays with one value everywhere: broadcasts of literals
    and elementwise ops of splats): they become literals in the elementwise equations that read
    them, instead of buffers filled and read back. A splat read by anything else (a reduction,
    an Op, the outputs) is materialized by one broadcast right before its first such use.
    Returns (eqns, outvars)."""
    splat, made, new = {}, {}, []

    def materialize(v):
        if v not in made:
            made[v] = v
            lit = core.Literal(splat[v].val)
            new.append(core.JaxprEqn(core_prims()["broadcast_in_dim"], [lit],
                                     {"shape": v.aval.shape, "broadcast_dimensions": ()}, [v]))
        return v

    for e in eqns:
        name = e.primitive.name
        ins = [splat.get(v, v) if type(v) is Var else v for v in e.inputs]
        if len(e.out_binders) == 1 and all(type(v) is Literal for v in ins) and (
                name in _SPLAT_PRESERVING or is_elementwise(e)):
            out = e.out_binders[0]
            if is_elementwise(e):
                val = core.impl_rules[e.primitive](*[np.asarray(v.val, v.aval.dtype) for v in ins],
                                                   **e.params)
                val = np.asarray(val, out.aval.dtype).reshape(())
            else:
                val = ins[0].val
            splat[out] = _splat(val, out.aval)
            continue
        if is_elementwise(e):
            e = core.JaxprEqn(e.primitive, ins, e.params, e.out_binders, e.source_info)
        else:
            for v in e.inputs:
                if type(v) is Var and v in splat:
                    materialize(v)
        new.append(e)
    outs = [materialize(v) if type(v) is Var and v in splat else v for v in outvars]
    return new, outs


def _swap_transposed_dots(eqns, outvars):
    """transpose(dot_general(a, b)) that swaps the lhs and rhs free dims -> dot_general(b, a):
    the product is written in its final layout instead of copied."""
    uses = {}
    for e in eqns:
        for v in e.inputs:
            if type(v) is Var:
                uses[v] = uses.get(v, 0) + 1
    dots = {e.out_binders[0]: e for e in eqns if e.primitive.name == "dot_general"}
    outset = set(v for v in outvars if type(v) is Var)
    new = []
    for e in eqns:
        v = e.inputs[0] if e.primitive.name == "transpose" else None
        d = dots.get(v) if type(v) is Var else None
        if d is not None and uses.get(v) == 1 and v not in outset:
            (lc, rc), (lb, rb) = d.params["dimension_numbers"]
            x, y = d.inputs
            nb, nlf = len(lb), x.aval.ndim - len(lc) - len(lb)
            nrf = y.aval.ndim - len(rc) - len(rb)
            swap = list(range(nb)) + list(range(nb + nlf, nb + nlf + nrf)) + \
                list(range(nb, nb + nlf))
            if list(e.params["permutation"]) == swap:
                e = core.JaxprEqn(d.primitive, [y, x],
                                  dict(d.params, dimension_numbers=((rc, lc), (rb, lb))),
                                  e.out_binders, d.source_info)
        new.append(e)
    return new


def absorb_transposes_into_dots(eqns, outvars):
    """dot_general(transpose(a), b) -> dot_general(a, b) with its dimension numbers mapped
    through the permutation, when that keeps the order of the free dims (hence the output):
    BLAS takes the transposed operand as a flag instead of a copied array. And
    transpose(dot_general(a, b)) -> dot_general(b, a) where that is the same array. The
    equations left unused are dropped by drop_unused."""
    eqns = _swap_transposed_dots(eqns, outvars)
    made = {e.out_binders[0]: e for e in eqns if e.primitive.name == "transpose"}
    new = []
    for e in eqns:
        if e.primitive.name == "dot_general" and any(v in made for v in e.inputs
                                                      if type(v) is Var):
            (lc, rc), (lb, rb) = e.params["dimension_numbers"]
            ins, cs, bs = list(e.inputs), [list(lc), list(rc)], [list(lb), list(rb)]
            for k, v in enumerate(e.inputs):
                t = made.get(v) if type(v) is Var else None
                if t is None:
                    continue
                perm = t.params["permutation"]
                free = [d for d in range(len(perm)) if d not in cs[k] and d not in bs[k]]
                if [perm[d] for d in free] != sorted(perm[d] for d in free):
                    continue
                ins[k] = t.inputs[0]
                cs[k] = [perm[d] for d in cs[k]]
                bs[k] = [perm[d] for d in bs[k]]
            dn = ((tuple(cs[0]), tuple(cs[1])), (tuple(bs[0]), tuple(bs[1])))
            e = core.JaxprEqn(e.primitive, ins, dict(e.params, dimension_numbers=dn),
                              e.out_binders, e.source_info)
        new.append(e)
    return new


# ops no backend compiles: run by their impl on the host between kernels. fft: scipy.fft's
# pocketfft is the fastest FFT at hand on the CPU; compiling it into kernels (rocket-fft) would
# add a long compile for the same transform (docs/numerics.md, "Fourier transforms")
HOST_IMPL_OPS = frozenset({"fft"})


def _uses_host_impl(eqn):
    return eqn.primitive.name in HOST_IMPL_OPS or any(
        _uses_host_impl(e) for j in core._sub_jaxprs(eqn.params) for e in j.eqns)


def needs_host(eqn):
    """True if the equation calls Python on the host (a callback, a HOST_IMPL_OPS op, or control
    flow or a call holding one): backends run it as a host step, not in a kernel."""
    return (bool(core.host_primitives) and core.eqn_uses(eqn, core.host_primitives)
            or _uses_host_impl(eqn))


def drop_unused(eqns, outvars):
    """The equations whose results are used, and those with a side effect."""
    live = set(v for v in outvars if type(v) is Var)
    kept = []
    for e in reversed(eqns):
        if any(o in live for o in e.out_binders) or (
                core.effectful_primitives and core.eqn_uses(e, core.effectful_primitives)):
            kept.append(e)
            live.update(v for v in e.inputs if type(v) is Var)
    return kept[::-1]


def _materialized(steps, outvars):
    """The vars that need a buffer: outputs, Op operands, reduction results, operands of
    index maps, and values computed in one Group and read by a later step."""
    materialized = set(v for v in outvars if type(v) is Var)
    owner = {}                  # var -> index of the Group step computing it
    for i, step in enumerate(steps):
        if isinstance(step, Op):
            materialized.update(v for v in step.eqn.inputs if type(v) is Var)
            continue
        materialized.update(step.pending)
        for e in step.eqns:
            ins = [v for v in e.inputs if type(v) is Var]
            if e.primitive.name in INDEX_MAPS:     # index maps read whole arrays
                materialized.update(ins)
            else:
                materialized.update(v for v in ins if owner.get(v, i) != i)
            owner.update((o, i) for o in e.out_binders)
    return materialized


def _piece_end(eqns, costs, last_use, start, cap):
    """Where the piece of a Group starting at eqns[start] ends. It takes equations while their
    cost stays within cap; among the ends that fill at least half of cap it picks the one
    where the fewest values computed in the piece are still read afterwards (each needs a
    buffer), the latest on a tie, so a repeated pattern is cut at the same place each time."""
    n, cost, crossing, p = len(eqns), 0, 0, start
    expiring = {}               # index of last reader -> values of this piece it last reads
    best = None                 # (crossing values, end)
    while p < n and (p == start or cost + costs[p] <= cap):
        cost += costs[p]
        for o in eqns[p].out_binders:
            u = last_use.get(o, p)
            if u > p:
                crossing += 1
                expiring[u] = expiring.get(u, 0) + 1
        crossing -= expiring.pop(p, 0)
        p += 1
        if 2 * cost >= cap and (best is None or crossing <= best[0]):
            best = (crossing, p)
    return p if p == n or best is None else best[1]


def _by_component(eqns):
    """eqns reordered so that each set of equations connected through the values they compute
    is contiguous (sets in order of their first equation, each in its own order). Sets share
    no value, so this is a valid order; a group merging independent chains (the leaves of
    one shape in an optimizer update) is then cut between chains, not across them."""
    parent = list(range(len(eqns)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    maker = {}
    for i, e in enumerate(eqns):
        for v in e.inputs:
            if type(v) is Var and v in maker:
                parent[root(maker[v])] = root(i)
        maker.update((o, i) for o in e.out_binders)
    first = {}
    for i in range(len(eqns)):
        first.setdefault(root(i), i)
    order = sorted(range(len(eqns)), key=lambda i: (first[root(i)], i))
    return [eqns[i] for i in order]


def cut_group(group, eqn_cost, cap):
    """The Group as a list of consecutive Groups over the same iteration shape, each costing
    at most cap under eqn_cost (an equation costlier than cap is a piece alone). A value
    computed in one piece and read by a later one is then materialized (see _materialized)."""
    costs = [eqn_cost(e) for e in group.eqns]
    if sum(costs) <= cap:
        return [group]
    eqns = _by_component(group.eqns)
    costs = [eqn_cost(e) for e in eqns]
    last_use = {}
    for i, e in enumerate(eqns):
        for v in e.inputs:
            if type(v) is Var:
                last_use[v] = i
    pieces, start = [], 0
    while start < len(eqns):
        end = _piece_end(eqns, costs, last_use, start, cap)
        piece = Group(_iter_var(eqns[start]))   # a var the piece's own kernel knows
        piece.eqns = eqns[start:end]
        for e in piece.eqns:
            target = piece.pending if e.primitive.name in REDUCTIONS else piece.local
            target.update(e.out_binders)
        pieces.append(piece)
        start = end
    return pieces


def cut_groups(steps, eqn_cost, cap):
    """steps with every Group costlier than cap cut into pieces (cut_group)."""
    out = []
    for step in steps:
        out.extend(cut_group(step, eqn_cost, cap) if isinstance(step, Group) else [step])
    return out


# ---------------------------------------------------------------------------------------------
# Loop-invariant code motion: equations of a while/scan body that read only the loop's
# constants (never a carry or a scanned slice) run once, before the loop. CG on jvp(grad(f))
# recomputed f's whole forward pass in every iteration without it (XLA hoists it too).

# where a loop's constant operands start in its inputs, how many there are, and its body
_LOOP_BODIES = {"while": (lambda p: p["cond_nconsts"], lambda p: p["body_nconsts"],
                          "body_jaxpr", "body_nconsts"),
                "scan": (lambda p: 0, lambda p: p["num_consts"], "jaxpr", "num_consts")}


def _invariant(eqn, invariant):
    """True if eqn reads only loop-invariant vars and literals, and has no effect."""
    return (all(type(v) is not Var or v in invariant for v in eqn.inputs)
            and eqn.primitive not in core.host_primitives
            and not (core.host_primitives and core.eqn_uses(eqn, core.host_primitives)))


def _cheap(eqn):
    """A splat of a scalar or an iota: cheaper recomputed inside a loop (where the CPU backend
    folds it into the loops that read it) than materialised outside."""
    return (not any(type(v) is Var and v.aval.ndim for v in eqn.inputs)
            and eqn.primitive.name in ("broadcast_in_dim", "iota"))


def _hoist_from_loop(eqn):
    """[the hoisted equations (on the loop's operands), the loop equation without them]; the
    loop's body takes the hoisted values as extra constants after its own. Cheap invariant
    equations stay in the body, and are copied out too where a hoisted one reads them."""
    start_of, count_of, body_key, count_key = _LOOP_BODIES[eqn.primitive.name]
    p = eqn.params
    start, n = start_of(p), count_of(p)
    body = p[body_key]
    jx = body.jaxpr
    invariant = set(jx.invars[:n])
    cheap, hoisted, kept = {}, [], []
    for e in jx.eqns:
        if not _invariant(e, invariant):
            kept.append(e)
            continue
        invariant.update(e.out_binders)
        if _cheap(e):
            kept.append(e)
            cheap.update((o, e) for o in e.out_binders)
        else:
            hoisted.append(e)
    if not hoisted:
        return [eqn]
    used = set(v for e in kept for v in e.inputs) | set(jx.outvars)
    needed = [o for e in hoisted for o in e.out_binders if o in used]
    outer = dict(zip(jx.invars[:n], eqn.inputs[start:start + n]))
    moved = []

    def move(e):
        outs = [Var(o.aval) for o in e.out_binders]
        for v in e.inputs:
            if v in cheap and v not in outer:
                move(cheap[v])
        moved.append(core.JaxprEqn(e.primitive, [outer.get(v, v) for v in e.inputs], e.params,
                                   outs, e.source_info))
        outer.update(zip(e.out_binders, outs))
    for e in hoisted:
        move(e)
    new_body = core.ClosedJaxpr(core.Jaxpr(jx.constvars, jx.invars[:n] + needed + jx.invars[n:],
                                           kept, jx.outvars), body.consts)
    ins = list(eqn.inputs)
    ins[start + n:start + n] = [outer[v] for v in needed]
    loop = core.JaxprEqn(eqn.primitive, ins, dict(p, **{body_key: new_body,
                                                        count_key: n + len(needed)}),
                         eqn.out_binders, eqn.source_info)
    return moved + [loop]


def hoist_loop_invariants(eqns):
    """eqns with each while/scan body's loop-invariant equations moved before the loop."""
    out = []
    for e in eqns:
        out.extend(_hoist_from_loop(e) if e.primitive.name in _LOOP_BODIES else [e])
    return out


def make_plan(closed, rewrites=False, eqn_cost=None, group_cap=None, cpu_blas=False):
    """The KernelPlan of a ClosedJaxpr. rewrites=True (the CPU backend) also moves loop
    invariants out of while/scan bodies (hoist_loop_invariants), folds splat
    constants into the loops that read them (fold_splats), lowers outer-product dot_generals
    as fused loops (fuse_outer_products) and feeds transposes to dot_general as BLAS flags
    (absorb_transposes_into_dots). With a group_cap, every Group whose equations cost more
    than group_cap under eqn_cost (equation -> number) is cut into pieces (cut_groups).
    cpu_blas=True (the CPU backend) also turns full contractions into fusible loops
    (vdots_as_reductions) and a sum of two products into one accumulating into the other
    (accumulate_dots)."""
    invars, const_pairs, eqns, outvars = inline_jit(closed)
    if rewrites:
        eqns = hoist_loop_invariants(eqns)
        eqns, outvars = share_svd_values(*fold_splats(eqns, outvars))
        eqns = fuse_outer_products(eqns, outvars)
        if cpu_blas:
            eqns = vdots_as_reductions(eqns)
        eqns = drop_unused(absorb_transposes_into_dots(eqns, outvars), outvars)
        if cpu_blas:
            eqns = accumulate_dots(eqns, outvars)
    steps, groups, hoisted = [], [], []      # groups: the open Groups, in run order

    def flush(which):
        """Emit the hoisted Ops, then the open groups at the indices ``which``."""
        nonlocal groups, hoisted
        steps.extend(hoisted)
        steps.extend(g for i, g in enumerate(groups) if i in which)
        groups, hoisted = [g for i, g in enumerate(groups) if i not in which], []

    for eqn in eqns:
        if _fusible(eqn):
            _place(groups, eqn)
            continue
        needed = _groups_read(groups, eqn)
        if needed:      # run the groups it reads; the others stay open for later equations
            flush(needed)
            steps.append(Op(eqn))
        else:
            hoisted.append(Op(eqn))   # independent of the open groups: run it before them
    flush(range(len(groups)))
    if group_cap is not None:
        steps = cut_groups(steps, eqn_cost, group_cap)
    materialized = _materialized(steps, outvars)
    consts = [c for _, c in const_pairs]
    return KernelPlan([v for v, _ in const_pairs] + invars, consts, steps, outvars, materialized)


def index_map_indices(eqn, idx, size, num=str):
    """Source expressions indexing the operand of an index-map equation (broadcast_in_dim,
    transpose, rev, slice, squeeze) at the output's loop indices ``idx``. ``size(d)`` renders
    the operand's d-th dimension and ``num(k)`` a static integer: backends differ in whether
    shapes are literals (CUDA) or run-time names (the shape-erased CPU code)."""
    name, p = eqn.primitive.name, eqn.params
    xs, out_shape = eqn.inputs[0].aval.shape, eqn.out_binders[0].aval.shape
    if name == "broadcast_in_dim":
        return ["0" if xs[i] == 1 and out_shape[d] != 1 else idx[d]
                for i, d in enumerate(p["broadcast_dimensions"])]
    if name == "transpose":
        ins = [None] * len(xs)
        for k, q in enumerate(p["permutation"]):
            ins[q] = idx[k]
        return ins
    if name == "rev":
        return [f"({size(d)} - 1 - {idx[d]})" if d in p["dimensions"] else idx[d]
                for d in range(len(xs))]
    if name == "slice":
        return [f"({num(s)} + {idx[d]}{'' if st == 1 else ' * ' + num(st)})"
                for d, (s, st) in enumerate(zip(p["start_indices"], p["strides"]))]
    if name == "squeeze":
        it = iter(idx)
        return ["0" if d in p["dimensions"] else next(it) for d in range(len(xs))]
    raise NotImplementedError(f"no index map for '{name}'")


def select_expr(which, cases):
    """Source of a scalar select_n: cases[which] as nested conditional expressions (valid in
    both numba CPU and CUDA kernels)."""
    if len(cases) == 1:
        return cases[0]
    expr = cases[-1]
    for i in range(len(cases) - 2, -1, -1):
        cond = f"not {which}" if len(cases) == 2 else f"{which} == {i}"
        expr = f"({cases[i]} if {cond} else {expr})"
    return expr
