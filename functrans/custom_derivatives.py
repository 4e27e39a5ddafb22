"""custom_jvp and custom_vjp: user-defined derivative rules that compose with every transform.

Each decorated call binds a higher-order primitive carrying the function's jaxpr and the user's
rule (as a flat Python callable). The JVP trace applies the rule; every other trace treats the
call like any call: EvalTrace evaluates the jaxpr, staging records it, vmap batches both the jaxpr
and the rule. custom_vjp's jvp emits ``custom_lin``: a linear primitive whose transpose is the
user's bwd and which refuses to run in forward mode (as JAX: no jvp of a custom_vjp function).
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

from . import core
from .core import ClosedJaxpr, Primitive, abstract_eval_rules, get_aval, impl_rules
from .errors import UnexpectedTracerError
from .interpreters import ad, batching
from .interpreters.ad import Zero, instantiate_zeros
from .tree_util import register_pytree_node, tree_flatten, tree_unflatten
from .util import safe_map, safe_zip, split_list


def _run_eagerly(custom_fn, args):
    """The function of custom_fn applied to args with no transform active; its results as
    Arrays (core.to_output), as every functrans function returns. A value of a differentiation
    whose rule is running (it is suspended) that the function closes over is the closure
    TypeError, not an escaped tracer."""
    try:
        with core.set_current_trace(core.eval_trace):
            leaves, tree = tree_flatten(custom_fn.fun(*args))
    except UnexpectedTracerError as e:
        t = getattr(e, "trace", None)
        if type(t) is ad.JVPTrace and t.valid:
            raise _closure_tangent_error(type(custom_fn).__name__) from None
        raise
    return tree_unflatten(tree, [core.to_output(x) for x in leaves])


def _effective_trace(leaves):
    """The trace a primitive bound on leaves now would reach first with one of them its own:
    partial-evaluation traces (forwarding staging traces) to which every leaf is known pass the
    call down. As in JAX, a custom function called by a rule under grad thus sees concrete
    primals (or the next transform's tracers)."""
    t = core.current_trace()
    while type(t) is core.StagingTrace and t.forward and not any(t.is_ours(x) for x in leaves):
        t = t.parent
    return t


def _differentiating_trace(trace, leaves):
    """trace if it is a JVPTrace that one of leaves belongs to, else None. Such a trace applies
    the custom rule directly, without tracing the function (JAX's count: under jvp only the jvp
    rule runs, under grad only fwd and bwd)."""
    if type(trace) is ad.JVPTrace and any(type(x) is ad.JVPTracer and x._trace is trace
                                          for x in leaves):
        return trace
    return None


def _apply_rule_directly(jt, rule, leaves, **params):
    """The JVP rule ``rule(primals, tangents, **params)`` (run with jt's parent current) on the
    leaves' primals and tangents, its outputs as tracers of the JVPTrace jt."""
    primals, tangents = zip(*[jt.lift(x) for x in leaves])
    outs_p, outs_t = core.call_in_parent(
        jt, lambda: rule(list(primals), list(tangents), **params))
    return [jt.pure(p, t) for p, t in zip(outs_p, outs_t)]

map, zip = safe_map, safe_zip


class _Store:
    __slots__ = ("val",)

    def __init__(self):
        self.val = None


def _resolve_args(fun, args, kwargs):
    """Keyword arguments bound to positions (custom rules take positional arguments)."""
    if not kwargs:
        return tuple(args)
    sig = inspect.signature(fun)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return tuple(bound.args) + tuple(bound.kwargs.values())


def _split_nondiff(args, nondiff_argnums):
    nondiff = tuple(args[i] for i in nondiff_argnums)
    diff = tuple(a for i, a in enumerate(args) if i not in nondiff_argnums)
    return nondiff, diff


def _merge_nondiff(nondiff_argnums, nondiff, diff, n):
    nd, d = iter(nondiff), iter(diff)
    return [next(nd) if i in nondiff_argnums else next(d) for i in range(n)]


def _trace_call(fun, diff_args):
    """(ClosedJaxpr over (tracer consts, *leaves), tracer consts, leaves, in_tree, out_tree)."""
    leaves, in_tree = tree_flatten(diff_args)
    leaves = [core.as_array(x) for x in leaves]
    out_store = _Store()

    def flat(*xs):
        out = fun(*tree_unflatten(in_tree, xs))
        out_leaves, out_store.val = tree_flatten(out)
        return [core.as_array(o) for o in out_leaves]

    jaxpr, consts = core.trace_to_jaxpr(flat, [get_aval(x) for x in leaves])
    closed, lifted = lift_tracer_consts(jaxpr, consts)
    return closed, lifted, leaves, in_tree, out_store.val


def lift_tracer_consts(jaxpr, consts):
    """Constants that are tracers of enclosing transforms become leading inputs. Returns
    (ClosedJaxpr, lifted tracer consts)."""
    is_tracer = [isinstance(c, core.Tracer) for c in consts]
    if not any(is_tracer):
        return ClosedJaxpr(jaxpr, consts), []
    lifted_vars = [v for v, t in zip(jaxpr.constvars, is_tracer) if t]
    kept_vars = [v for v, t in zip(jaxpr.constvars, is_tracer) if not t]
    new = core.Jaxpr(kept_vars, lifted_vars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
    return (ClosedJaxpr(new, [c for c, t in zip(consts, is_tracer) if not t]),
            [c for c, t in zip(consts, is_tracer) if t])


class _CustomFunction:
    """What custom_jvp and custom_vjp share: the wrapped function, its nondiff arguments, and
    tracing a call into a jaxpr."""

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)

    def _split(self, args, kwargs):
        """(all args positionally, nondiff args, diff args, merge(diff) -> all args, the diff
        leaves as arrays, their tree)."""
        args = _resolve_args(self.fun, args, kwargs)
        nondiff, diff = _split_nondiff(args, self.nondiff_argnums)
        n = len(args)
        merge = lambda d: _merge_nondiff(self.nondiff_argnums, nondiff, d, n)  # noqa: E731
        leaves, in_tree = tree_flatten(diff)
        return args, nondiff, diff, merge, [core.as_array(x) for x in leaves], in_tree

    def __call__(self, *args, **kwargs):
        if self._rule_missing():
            raise AttributeError(self._missing_rule_message.format(self.__name__))
        args, nondiff, diff, merge, leaves, in_tree = self._split(args, kwargs)
        trace = _effective_trace(leaves)
        if type(trace) is core.EvalTrace:      # no transform sees the call: just run it
            return _run_eagerly(self, args)
        out_tree = _Store()
        jt = _differentiating_trace(trace, leaves)
        if jt is not None:              # differentiated now: only the rules run
            outs = self._apply_rules(jt, leaves, nondiff, diff, merge, in_tree, out_tree)
        else:
            closed, lifted, leaves, in_tree, out_tree.val = self._trace(merge, diff)
            outs = self._bind(closed, lifted, leaves, nondiff, diff, merge, in_tree, out_tree)
        return tree_unflatten(out_tree.val, outs)

    def _trace(self, merge, diff):
        """_trace_call's (ClosedJaxpr, lifted tracer consts, leaves, in_tree, out_tree);
        TypeError if the function closes over a value being differentiated by a transform
        whose rule is running (its tracer is then outside the current trace's chain)."""
        traced = _trace_call(lambda *d: self.fun(*merge(d)), diff)
        if any(type(c._trace) is ad.JVPTrace and c._trace.valid and not _in_scope(c._trace)
               for c in traced[1]):
            raise _closure_tangent_error(type(self).__name__)
        return traced


def _in_scope(trace):
    """True if trace is the current trace or one below it."""
    t = core.current_trace()
    while t is not None:
        if t is trace:
            return True
        t = t.parent
    return False


def _call_impl(*args, call_jaxpr, **_):
    return core.eval_jaxpr(call_jaxpr.jaxpr, call_jaxpr.consts, *args)


def _call_aval(*avals, call_jaxpr, **_):
    return list(call_jaxpr.out_avals)


def _closure_tangent_error(kind):
    return TypeError(
        f"Detected differentiation of a {kind} function with respect to a closed-over value. "
        f"That isn't supported because the custom rule only specifies how to differentiate the "
        f"function with respect to its explicit inputs: pass the value as an argument{core.where()}.")


def _broadcast_all(vals, dims, size):
    return [batching.bdim_at_front(v, d, size) for v, d in zip(vals, dims)]


# ---------------------------------------------------------------------------------------------
# custom_jvp

custom_jvp_call_p = Primitive("custom_jvp_call", multiple_results=True)
core.complex_primitives.add(custom_jvp_call_p)     # its bodies are checked equation by equation
impl_rules[custom_jvp_call_p] = _call_impl
abstract_eval_rules[custom_jvp_call_p] = _call_aval


class custom_jvp(_CustomFunction):
    """Decorator: a function with a custom JVP rule set by ``.defjvp(rule)``, where
    ``rule(primals, tangents) -> (primal_out, tangent_out)`` (nondiff arguments come first)."""
    jvp = None

    def defjvp(self, jvp, symbolic_zeros=False):
        """Set the JVP rule; returns it (so it can be used as a decorator)."""
        self.jvp = jvp
        return jvp

    def defjvps(self, *tangent_fns):
        """Set the JVP from one function per argument: fn(tangent, primal_out, *primals)."""
        def jvp(primals, tangents):
            out = self(*primals)
            t_out = None
            for fn, t in zip(tangent_fns, tangents):
                if fn is not None:
                    c = fn(t, out, *primals)
                    t_out = c if t_out is None else _tree_add(t_out, c)
            if t_out is None:
                from .tree_util import tree_map
                t_out = tree_map(lambda o: np.zeros(get_aval(o).shape, get_aval(o).dtype), out)
            return out, t_out
        self.jvp = jvp

    _missing_rule_message = "No JVP defined for custom_jvp function {} using defjvp."

    def _rule_missing(self):
        return self.jvp is None

    def _apply_rules(self, jt, leaves, nondiff, diff, merge, in_tree, out_tree):
        """The rule alone, applied by the differentiating trace jt (the function never runs)."""
        jvp_fn = _flat_jvp_rule(self.__name__, self.jvp, nondiff, in_tree, 0, out_tree)
        return _apply_rule_directly(jt, _custom_jvp_jvp, leaves, jvp_fn=jvp_fn, num_consts=0)

    def _bind(self, closed, lifted, leaves, nondiff, diff, merge, in_tree, out_tree):
        """custom_jvp_call of the traced function, carrying the rule."""
        jvp_fn = _flat_jvp_rule(self.__name__, self.jvp, nondiff, in_tree, len(lifted), out_tree)
        return custom_jvp_call_p.bind(*lifted, *leaves, call_jaxpr=closed, jvp_fn=jvp_fn,
                                      num_consts=len(lifted))


def _flat_jvp_rule(name, rule, nondiff, in_tree, num_consts, out_tree):
    """The user's rule as a flat function (closure consts + leaves, their tangents) -> primal
    outs + tangent outs. out_tree.val is the function's output tree; when it is None (the
    function was not traced) the rule's primal output sets it."""
    def jvp_fn(primals, tangents):
        p = tree_unflatten(in_tree, primals[num_consts:])
        t = tree_unflatten(in_tree, tangents[num_consts:])
        out = rule(*nondiff, tuple(p), tuple(t))
        if not (isinstance(out, (tuple, list)) and len(out) == 2):
            raise TypeError(f"Custom JVP rule of {name} must return a pair "
                            f"(primal_out, tangent_out), got {out!r}")
        po, pt = tree_flatten(out[0])
        to, tt = tree_flatten(out[1])
        if out_tree.val is None:
            out_tree.val = pt
        if pt != out_tree.val or tt != out_tree.val:
            raise TypeError(f"Custom JVP rule of {name} must produce primal and tangent outputs "
                            f"with the function's output structure {out_tree.val}, got {pt} "
                            f"and {tt}")
        return [core.as_array(o) for o in po] + [core.as_array(o) for o in to]
    return jvp_fn


def _tree_add(a, b):
    from .tree_util import tree_map
    from .lax import lax
    return tree_map(lambda x, y: lax.add(x, y), a, b)


def _custom_jvp_jvp(primals, tangents, *, jvp_fn, num_consts, call_jaxpr=None):
    if any(type(t) is not Zero for t in tangents[:num_consts]):
        raise _closure_tangent_error("custom_jvp")
    tangents = [instantiate_zeros(t) for t in tangents]
    outs = jvp_fn(list(primals), tangents)
    outs_p, outs_t = split_list(outs, [len(outs) // 2])
    if call_jaxpr is not None:
        for o, a in zip(outs_p, call_jaxpr.out_avals):
            if get_aval(o).shape != a.shape:
                raise TypeError(f"Custom JVP rule returned a primal output of shape "
                                f"{get_aval(o).shape}, but the function returns shape {a.shape}")
    for t, o in zip(outs_t, outs_p):
        if get_aval(t).shape != get_aval(o).shape:
            raise TypeError(f"Custom JVP rule returned a tangent of shape {get_aval(t).shape} for "
                            f"a primal output of shape {get_aval(o).shape}")
    return outs_p, outs_t


def _custom_jvp_batch(vals, dims, *, call_jaxpr, jvp_fn, num_consts):
    size = batching.axis_size_of(vals, dims)
    vals = _broadcast_all(vals, dims, size)
    b_closed, _ = batching.vmap_jaxpr(call_jaxpr, size, [0] * len(vals), force_batched=True)
    n_out = len(call_jaxpr.out_avals)

    def b_jvp_fn(primals, tangents):
        k = len(primals)
        f = lambda *pt: jvp_fn(list(pt[:k]), list(pt[k:]))  # noqa: E731
        return batching.vmap_flat(f, size, [0] * (2 * k), [0] * (2 * n_out),
                                  list(primals) + list(tangents))

    outs = custom_jvp_call_p.bind(*vals, call_jaxpr=b_closed, jvp_fn=b_jvp_fn, num_consts=num_consts)
    return outs, [0] * n_out


ad.jvp_rules[custom_jvp_call_p] = _custom_jvp_jvp
batching.batch_rules[custom_jvp_call_p] = _custom_jvp_batch


# ---------------------------------------------------------------------------------------------
# custom_vjp

custom_vjp_call_p = Primitive("custom_vjp_call", multiple_results=True)
core.complex_primitives.add(custom_vjp_call_p)     # its bodies are checked equation by equation
impl_rules[custom_vjp_call_p] = _call_impl
abstract_eval_rules[custom_vjp_call_p] = _call_aval

custom_lin_p = Primitive("custom_lin", multiple_results=True)


def _custom_lin_impl(*args, num_res, bwd_fn, out_avals):
    raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function: define a "
                    "custom_jvp rule instead, or use reverse mode (grad, vjp)")


impl_rules[custom_lin_p] = _custom_lin_impl
abstract_eval_rules[custom_lin_p] = lambda *avals, num_res, bwd_fn, out_avals: list(out_avals)


class custom_vjp(_CustomFunction):
    """Decorator: a function with a custom VJP set by ``.defvjp(fwd, bwd)``: fwd(*args) ->
    (output, residuals); bwd(*nondiff_args, residuals, cotangent) -> a tuple with one cotangent
    per differentiable argument."""
    fwd = bwd = None

    def defvjp(self, fwd, bwd, symbolic_zeros=False):
        """Set the forward and backward rules."""
        self.fwd, self.bwd = fwd, bwd

    _missing_rule_message = "No VJP defined for custom_vjp function {} using defvjp."

    def _rule_missing(self):
        return self.fwd is None

    def _apply_rules(self, jt, leaves, nondiff, diff, merge, in_tree, out_tree):
        """fwd now (and bwd later), applied by the differentiating trace jt."""
        fwd_fn, bwd_fn = self._flat_rules(nondiff, diff, merge, in_tree, 0, out_tree)
        return _apply_rule_directly(jt, _custom_vjp_jvp, leaves, fwd_fn=fwd_fn, bwd_fn=bwd_fn,
                                    num_consts=0)

    def _bind(self, closed, lifted, leaves, nondiff, diff, merge, in_tree, out_tree):
        """custom_vjp_call of the traced function, carrying fwd and bwd."""
        k = len(lifted)
        fwd_fn, bwd_fn = self._flat_rules(nondiff, diff, merge, in_tree, k, out_tree)
        return custom_vjp_call_p.bind(*lifted, *leaves, call_jaxpr=closed, fwd_fn=fwd_fn,
                                      bwd_fn=bwd_fn, num_consts=k)

    def _flat_rules(self, nondiff, diff, merge, in_tree, k, out_tree):
        """(fwd_fn, bwd_fn): fwd and bwd on flat lists. fwd_fn(closure consts + leaves) ->
        (outputs, residual leaves); bwd_fn(residual leaves, output cotangents) -> cotangents
        of consts + leaves. out_tree.val is the function's output tree (None: the function
        was not traced, and fwd's output sets it)."""
        name, fwd, bwd = self.__name__, self.fwd, self.bwd
        res_store = _Store()

        def fwd_fn(primals):
            d = tree_unflatten(in_tree, primals[k:])
            out = fwd(*merge(d))
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(f"Custom VJP fwd rule of {name} must return a pair (output, "
                                f"residuals), got {type(out).__name__}")
            o, r = tree_flatten(out[0])
            if out_tree.val is None:
                out_tree.val = r
            if r != out_tree.val:
                raise TypeError(f"Custom VJP fwd rule of {name} must produce an output with the "
                                f"structure of the function's output {out_tree.val}, got {r}")
            res, res_store.val = tree_flatten(out[1])
            return [core.as_array(x) for x in o], [core.as_array(x) for x in res]

        def bwd_fn(res, cts):
            ct = tree_unflatten(out_tree.val, cts)
            out = bwd(*nondiff, tree_unflatten(res_store.val, res), ct)
            if not isinstance(out, (tuple, list)) or len(out) != len(diff):
                raise TypeError(f"Custom VJP bwd rule of {name} must return a tuple of length "
                                f"equal to the number of differentiable arguments ({len(diff)}), "
                                f"got {out!r}")
            flat = []
            for arg, c in zip(diff, out):
                a_leaves, a_tree = tree_flatten(arg)
                if c is None:
                    flat.extend(ad.zeros_like_aval(get_aval(core.as_array(x))) for x in a_leaves)
                    continue
                c_leaves, c_tree = tree_flatten(c)
                if c_tree != a_tree:
                    raise TypeError(f"Custom VJP bwd rule of {name} returned a cotangent of "
                                    f"structure {c_tree} for an argument of structure {a_tree}")
                flat.extend(core.as_array(x) for x in c_leaves)
            return [None] * k + flat

        return fwd_fn, bwd_fn


def _custom_vjp_jvp(primals, tangents, *, fwd_fn, bwd_fn, num_consts, call_jaxpr=None):
    if any(type(t) is not Zero for t in tangents[:num_consts]):
        raise _closure_tangent_error("custom_vjp")
    outs, res = fwd_fn(list(primals))
    out_avals = tuple(get_aval(o) for o in outs)
    lin_in = [instantiate_zeros(t) for t in tangents]
    t_out = custom_lin_p.bind(*res, *lin_in, num_res=len(res), bwd_fn=bwd_fn, out_avals=out_avals)
    return outs, t_out


def _custom_lin_transpose(cts, *args, num_res, bwd_fn, out_avals):
    res, lin = split_list(args, [num_res])
    cts_in = bwd_fn(list(res), [instantiate_zeros(c) for c in cts])
    return [None] * num_res + [None if c is None else c for c in cts_in]


def _custom_vjp_batch(vals, dims, *, call_jaxpr, fwd_fn, bwd_fn, num_consts):
    size = batching.axis_size_of(vals, dims)
    vals = _broadcast_all(vals, dims, size)
    b_closed, _ = batching.vmap_jaxpr(call_jaxpr, size, [0] * len(vals), force_batched=True)
    n_in, n_out = len(vals), len(call_jaxpr.out_avals)
    n_res = _Store()

    def b_fwd_fn(primals):
        def f(*ps):
            outs, res = fwd_fn(list(ps))
            n_res.val = len(res)
            return list(outs) + list(res)
        flat = batching.vmap_flat(f, size, [0] * n_in, lambda: [0] * (n_out + n_res.val), list(primals))
        return flat[:n_out], flat[n_out:]

    def b_bwd_fn(res, cts):
        r = len(res)

        def g(*rc):
            return bwd_fn(list(rc[:r]), list(rc[r:]))[num_consts:]
        outs = batching.vmap_flat(g, size, [0] * (r + n_out), [0] * (n_in - num_consts),
                                  list(res) + list(cts))
        return [None] * num_consts + outs

    outs = custom_vjp_call_p.bind(*vals, call_jaxpr=b_closed, fwd_fn=b_fwd_fn, bwd_fn=b_bwd_fn,
                                  num_consts=num_consts)
    return outs, [0] * n_out


def _custom_lin_batch(vals, dims, *, num_res, bwd_fn, out_avals):
    raise TypeError("can't apply forward-mode autodiff (jvp) to a custom_vjp function")


ad.jvp_rules[custom_vjp_call_p] = _custom_vjp_jvp
ad.transpose_rules[custom_lin_p] = _custom_lin_transpose
batching.batch_rules[custom_vjp_call_p] = _custom_vjp_batch
batching.batch_rules[custom_lin_p] = _custom_lin_batch


# ---------------------------------------------------------------------------------------------
# custom_gradient: TensorFlow's interface, on top of custom_vjp

class _TracedVJP:
    """The vjp function returned by a custom_gradient function, as a residual: its jaxpr (and
    trees) are static, the constants it closes over are the leaves."""

    def __init__(self, jaxpr, consts, in_tree, out_tree):
        self.jaxpr, self.consts, self.in_tree, self.out_tree = jaxpr, consts, in_tree, out_tree


register_pytree_node(_TracedVJP,
                     lambda r: (r.consts, (r.jaxpr, r.in_tree, r.out_tree)),
                     lambda aux, consts: _TracedVJP(aux[0], list(consts), aux[1], aux[2]))


def traced_vjp(ans, vjp_fn):
    """vjp_fn (a function of a cotangent of ans) as a residual custom_vjp can carry: traced to
    a jaxpr, with the values it closes over as the leaves."""
    ans_leaves, out_tree = tree_flatten(ans)
    in_tree = _Store()

    def flat_vjp(*cts):
        cts_in, in_tree.val = tree_flatten(vjp_fn(tree_unflatten(out_tree, cts)))
        return [core.as_array(c) for c in cts_in]

    avals = [get_aval(core.as_array(x)) for x in ans_leaves]
    jaxpr, consts = core.trace_to_jaxpr(flat_vjp, avals)
    return _TracedVJP(jaxpr, consts, in_tree.val, out_tree)


def apply_traced_vjp(res, ct, what):
    """The traced vjp function res (traced_vjp) applied to the cotangent ct."""
    ct_leaves, ct_tree = tree_flatten(ct)
    if ct_tree != res.out_tree:
        raise TypeError(f"{what}: cotangent structure {ct_tree} does not match the output "
                        f"structure {res.out_tree}")
    return tree_unflatten(res.in_tree, core.eval_jaxpr(res.jaxpr, res.consts, *ct_leaves))


def custom_gradient(fun):
    """Decorator (TensorFlow's ``tf.custom_gradient``, as ``jax.custom_gradient``): ``fun``
    returns ``(value, vjp)`` where ``vjp(cotangent of value)`` returns the cotangents of the
    positional arguments (a tuple, or a single value for one argument). Returns a function
    computing ``value`` whose reverse-mode derivative is ``vjp``."""
    @custom_vjp
    def wrapped(*args):
        return fun(*args)[0]

    def fwd(*args):
        out = fun(*args)
        if not (isinstance(out, (tuple, list)) and len(out) == 2 and callable(out[1])):
            raise TypeError(f"custom_gradient function {getattr(fun, '__name__', fun)} must "
                            f"return a pair (value, vjp_function), got {type(out).__name__}")
        ans, vjp_fn = out
        return ans, traced_vjp(ans, vjp_fn)

    def bwd(res, ct):
        cts = apply_traced_vjp(res, ct, "custom_gradient")
        return cts if isinstance(cts, tuple) else (cts,)

    wrapped.defvjp(fwd, bwd)
    functools.update_wrapper(wrapped, fun)
    return wrapped
