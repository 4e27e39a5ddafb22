"""Collectives over named axes: psum, pmean, pmax, pmin, all_gather, psum_scatter, ppermute,
all_to_all (and pswapaxes), axis_index and axis_size, with JAX's semantics.

A collective names the axes it acts over. Each name must be bound in the *axis environment*
(``core.axis_frame``): ``vmap(f, axis_name='i')`` binds 'i' while f runs, ``make_jaxpr(...,
axis_env=[('i', 4)])`` while it traces. The primitives carry the names as the ``axes`` param
(a tuple) and have three kinds of rules:

* under the vmap that binds one of their names, ``batching.collective_rules`` give the
  semantics by rewriting into ordinary lax ops over the batch dimension (psum of a batched
  value is a reduce_sum over its batch dim; of an unbatched value, the value times the size);
* under any other vmap they commute: ``batching.batch_rules`` move the batch dim out of the way;
* jvp and transpose rules (the linear ones transpose to each other: psum to psum, all_gather
  to psum_scatter, ppermute to the inverse permutation, all_to_all to the reverse all_to_all).

Abstract evaluation raises ``NameError: unbound axis name: i`` when a name is not bound, so a
collective never reaches a jit backend unbound. The impl asks the frame of its axis for a
``runner``: an axis environment that runs collectives eagerly (across processes, say) supplies
one; vmap's frames have none, since its trace rewrites every collective before evaluation.

A collective that reaches a compiled program is a host step (``core.host_primitives``): the
kernel plan splits there and the runner is called between kernels. A jaxpr traced where a
process axis was bound may run after that binding ended (``jit(grad(spmd(f)))``): its
collectives then find the runner in ``process_axes`` (functrans.distributed registers it)."""
from __future__ import annotations

import math
import operator

import numpy as np

from .. import core
from ..core import ShapedArray, Tracer, get_aval
from ..interpreters import ad, batching
from ..interpreters.ad import Zero
from ..interpreters.batching import moveaxis, not_mapped
from ..tree_util import tree_flatten, tree_map, tree_unflatten
from .lax import (add, broadcast_in_dim, convert_element_type, div, eq, full, iota, mul, primitive,
                  reduce_max, reduce_min, reduce_sum, reshape)
from .slicing import concatenate, gather
from .slicing import slice as _slice

__all__ = ["psum", "pmean", "pmax", "pmin", "all_gather", "psum_scatter", "ppermute",
           "all_to_all", "pswapaxes", "axis_index", "axis_size",
           "psum_p", "pmax_p", "pmin_p", "all_gather_p", "psum_scatter_p", "ppermute_p",
           "all_to_all_p", "axis_index_p"]


# ---------------------------------------------------------------------------------------------
# Axis names and sizes

def _axes(axis_name):
    """axis_name as a tuple of names (a tuple or list names several axes)."""
    return tuple(axis_name) if isinstance(axis_name, (tuple, list)) else (axis_name,)


def axis_size(axis_name):
    """The size of the named axis (a Python int): for a tuple of names, the product of their
    sizes. NameError if a name is not bound."""
    return math.prod(core.axis_frame(n).size for n in _axes(axis_name))


def _no_groups(axis_index_groups, what):
    if axis_index_groups is not None:
        raise NotImplementedError(f"{what}: axis_index_groups is not supported (vmap collectives "
                                  "act over the whole axis, as in JAX)")


def _check_bound(axes):
    """NameError for a name nothing binds. A process axis functrans.distributed registered
    counts as bound: a jaxpr traced inside spmd and checked or run outside it (the jaxpr of
    ``jit(grad(spmd(f)))``) is valid in the whole job. The API functions still require the
    name bound (``_require_bound``), so user code outside spmd gets the NameError."""
    for n in axes:
        if n not in process_axes:
            core.axis_frame(n)


def _require_bound(axes):
    for n in axes:
        core.axis_frame(n)


# axis name -> runner of the process axes functrans.distributed has bound: compiled programs
# traced with such an axis bound run their collectives through it when called outside
process_axes = {}


def _running_frame(name):
    """The frame a collective runs over: the bound one, else the process axis of that name
    (a jaxpr holding it was traced with it bound, and runs anywhere in the job)."""
    for frame in reversed(core._state.axis_env):
        if frame.name == name:
            return frame
    runner = process_axes.get(name)
    return core.axis_frame(name) if runner is None else core.AxisFrame(name, 0, runner)


def _eager_impl(prim):
    """The impl of a collective: the runner of its axis frame evaluates it; an unbound name is
    a NameError, and so is an axis whose frame cannot run it (vmap's)."""
    def impl(*vals, axes, **params):
        frames = [_running_frame(n) for n in axes]
        runner = frames[0].runner
        if runner is None or any(f.runner is not runner for f in frames):
            raise NameError(f"{prim.name} over the axes {axes} was evaluated{core.where()} "
                            "outside the transformation binding them (vmap rewrites the "
                            "collectives over its axis; nothing here runs them eagerly)")
        return runner(prim, vals, dict(params, axes=axes))
    return impl


def collective(name, abstract_eval, named_rule, positional=()):
    """A collective primitive (its names in the param ``axes``): impl through the axis frame's
    runner, abstract eval after a check that its axes are bound, ``named_rule(prim)`` the rule
    for the vmap binding its axis, and a rule commuting it through other vmaps (``positional``:
    its params that number axes of the operand)."""
    def aval(*avals, axes, **params):
        _check_bound(axes)
        return abstract_eval(*avals, **params)
    p = primitive(name, None, aval)
    core.impl_rules[p] = _eager_impl(p)
    core.host_primitives.add(p)             # vmap rewrites them first: any left run on the host
    batching.collective_axes[p] = lambda params: params["axes"]
    batching.collective_rules[p] = named_rule(p)
    batching.batch_rules[p] = _commute(p, positional)
    return p


def _commute(prim, positional):
    """The batch rule under a vmap the collective does not name: it acts on each batch element
    alike. With positional params (axis numbers), the batch dim moves to 0 and they shift."""
    def rule(vals, dims, **params):
        if not vals:                    # axis_index: nothing to batch
            return prim.bind(**params), not_mapped
        (x,), (d,) = vals, dims
        if not positional:
            return prim.bind(x, **params), d
        shifted = {k: params[k] + 1 for k in positional}
        return prim.bind(moveaxis(x, d, 0), **{**params, **shifted}), 0
    return rule


def _single_axis(axes, what):
    """The vmap rules of the collectives that move data between positions act over one axis."""
    if len(axes) != 1:
        raise NotImplementedError(f"{what} over several axes {axes} inside vmap is not "
                                  "supported (as in JAX): use one axis name")


def _at_front(trace, x, d):
    """x with the batch dim at 0 (broadcast to the axis size if x is unbatched)."""
    return batching.bdim_at_front(x, d, trace.axis_size)


# ---------------------------------------------------------------------------------------------
# psum, pmax, pmin (and pmean)

def _same_aval(x, **params):
    return x


def _reduction_rule(reduce, if_unmapped):
    """The vmap rule of an all-reduce: reduce over the batch dim (if_unmapped(x, size) for an
    unbatched x), then over the remaining named axes further out; the result is the same for
    every member, so unbatched."""
    def named_rule(prim):
        def rule(trace, vals, dims, *, axes):
            (x,), (d,) = vals, dims
            y = if_unmapped(x, trace.axis_size) if d is not_mapped else reduce(x, (d,))
            rest = tuple(a for a in axes if a != trace.axis_name)
            return (prim.bind(y, axes=rest) if rest else y), not_mapped
        return rule
    return named_rule


def _times(x, n):
    return mul(x, full(get_aval(x).shape, n, get_aval(x).dtype))


def _numeric(name):
    def aval(x):
        if x.dtype.kind not in "iuf":
            raise TypeError(f"{name} does not accept dtype {x.dtype.name}")
        return x
    return aval


psum_p = collective("psum", _numeric("psum"), _reduction_rule(reduce_sum, _times))
pmax_p = collective("pmax", _same_aval, _reduction_rule(reduce_max, lambda x, n: x))
pmin_p = collective("pmin", _same_aval, _reduction_rule(reduce_min, lambda x, n: x))


def _as_int32_if_bool(v):
    """Booleans are summed as int32 (as JAX)."""
    if get_aval(v).dtype != np.bool_:
        return v
    return convert_element_type(v, np.int32) if isinstance(v, Tracer) else np.asarray(v, np.int32)


def _scaled_constant(v, n):
    """psum of a value no transform traces: the value times the axis size, as JAX computes it
    (without binding; Python and NumPy scalars stay what they are)."""
    get_aval(v)                                  # TypeError for what is not an array value
    v = _as_int32_if_bool(v)
    if type(v) is core.Array:
        return _times(v, n)
    return v * n if isinstance(v, (int, float)) else v * np.asarray(n, v.dtype)


def psum(x, axis_name, *, axis_index_groups=None):
    """The sum of x over the named axis (or axes, for a tuple of names), the same for every
    member of it; x may be a pytree. Booleans are summed as int32. Inside ``vmap(...,
    axis_name='i')``, ``psum(x, 'i')`` sums x over the batch; an x that does not vary along
    the axis gives ``x * axis_size('i')``."""
    _no_groups(axis_index_groups, "psum")
    axes = _axes(axis_name)
    if not axes:
        return x

    # a value no transform traces is the same on every member of a vmap axis; on an axis whose
    # members run apart (a frame with a runner) it need not be
    eager = any(core.axis_frame(n).runner is not None for n in axes)

    if eager:             # members in other processes: few large all-reduces for many leaves
        leaves, tree = tree_flatten(x)
        vals = [_as_int32_if_bool(core.as_array(v)) for v in leaves]
        return tree_unflatten(tree, bucketed_psum(vals, axes))

    def leaf(v):
        if not isinstance(v, Tracer):
            return _scaled_constant(v, axis_size(axes))
        return psum_p.bind(_as_int32_if_bool(core.as_array(v)), axes=axes)
    return tree_map(leaf, x)


# psum of a pytree over a process axis packs leaves of one dtype into buckets of at most this
# many bytes, one all-reduce each (PyTorch DDP's default size): a message costs a latency, so
# a hundred small gradient leaves cost a hundred latencies unbucketed
BUCKET_BYTES = 25 * 2 ** 20


def _buckets(vals):
    """Lists of indices into vals: same dtype, at most BUCKET_BYTES each (a larger leaf alone)."""
    out, open_ = [], {}
    for i, v in enumerate(vals):
        a = get_aval(v)
        nbytes = a.size * a.dtype.itemsize
        cur = open_.get(a.dtype)
        if cur is None or cur[1] + nbytes > BUCKET_BYTES:
            cur = open_[a.dtype] = [[], 0]
            out.append(cur[0])
        cur[0].append(i)
        cur[1] += nbytes
    return out


def bucketed_psum(vals, axes):
    """psum of each of vals (arrays) over axes, as one psum per bucket: each bucket's leaves
    raveled and concatenated, summed, and sliced apart again (all traceable, so it composes)."""
    out = [None] * len(vals)
    for bucket in _buckets(vals):
        if len(bucket) == 1:
            out[bucket[0]] = psum_p.bind(vals[bucket[0]], axes=axes)
            continue
        shapes = [get_aval(vals[i]).shape for i in bucket]
        sizes = [math.prod(s) for s in shapes]
        total = psum_p.bind(concatenate([reshape(vals[i], (n,)) for i, n in zip(bucket, sizes)],
                                        0), axes=axes)
        offset = 0
        for i, shape, n in zip(bucket, shapes, sizes):
            out[i] = reshape(_slice(total, (offset,), (offset + n,)), shape)
            offset += n
    return out


def pmean(x, axis_name, *, axis_index_groups=None):
    """The mean of x over the named axis (axes), the same for every member; x may be a pytree.
    Integers give float64 means."""
    _no_groups(axis_index_groups, "pmean")
    n = axis_size(axis_name)

    def leaf(v):
        v = core.as_array(v)
        if get_aval(v).dtype.kind not in "f":
            v = convert_element_type(v, np.float64)
        return div(v, full(get_aval(v).shape, n, get_aval(v).dtype))
    return tree_map(leaf, psum(x, axis_name))


def _chooser(prim, what):
    def f(x, axis_name, *, axis_index_groups=None):
        _no_groups(axis_index_groups, what)
        axes = _axes(axis_name)
        _require_bound(axes)
        return tree_map(lambda v: prim.bind(v, axes=axes) if axes else v, x)
    return f


pmax = _chooser(pmax_p, "pmax")
pmax.__name__ = pmax.__qualname__ = "pmax"
pmax.__doc__ = ("The maximum of x over the named axis (axes), the same for every member; x may "
                "be a pytree. Its derivative splits the tangent equally among tied members.")
pmin = _chooser(pmin_p, "pmin")
pmin.__name__ = pmin.__qualname__ = "pmin"
pmin.__doc__ = ("The minimum of x over the named axis (axes), the same for every member; x may "
                "be a pytree. Its derivative splits the tangent equally among tied members.")


def _chooser_jvp(prim):
    """pmax/pmin pick a member's value: the tangent is that member's (averaged over ties),
    as reduce_max's."""
    def jvp(primals, tangents, *, axes):
        (x,), (t,) = primals, tangents
        y = prim.bind(x, axes=axes)
        if type(t) is Zero:
            return y, Zero(get_aval(y))
        loc = convert_element_type(eq(x, y), get_aval(t).dtype)
        return y, div(psum_p.bind(mul(t, loc), axes=axes), psum_p.bind(loc, axes=axes))
    return jvp


ad.jvp_rules[pmax_p] = _chooser_jvp(pmax_p)
ad.jvp_rules[pmin_p] = _chooser_jvp(pmin_p)
# psum is linear, and so is its transpose: JAX treats psum as psum followed by a broadcast,
# so the cotangent is summed over the axes again
ad.deflinear(psum_p, lambda ct, x, *, axes: [psum_p.bind(ct, axes=axes)])


# ---------------------------------------------------------------------------------------------
# all_gather and psum_scatter (each other's transpose)

def _gather_aval(x, *, axis, tiled, axis_size):
    shape = list(x.shape)
    if tiled:
        shape[axis] *= axis_size
    else:
        shape.insert(axis, axis_size)
    return ShapedArray(tuple(shape), x.dtype)


def _merge_axes(x, axis):
    """x with axes axis and axis+1 merged into one (row-major)."""
    s = get_aval(x).shape
    return reshape(x, s[:axis] + (s[axis] * s[axis + 1],) + s[axis + 2:])


def _split_axis(x, axis, n):
    """x with axis split into (n, size // n)."""
    s = get_aval(x).shape
    return reshape(x, s[:axis] + (n, s[axis] // n) + s[axis + 1:])


def _all_gather_named(trace, vals, dims, *, axes, axis, tiled, axis_size):
    _single_axis(axes, "all_gather")
    (x,), (d,) = vals, dims
    if d is not_mapped:
        s = get_aval(x).shape
        y = broadcast_in_dim(x, s[:axis] + (trace.axis_size,) + s[axis:],
                             tuple(i + (i >= axis) for i in range(len(s))))
    else:
        y = moveaxis(x, d, axis)
    return (_merge_axes(y, axis) if tiled else y), not_mapped


all_gather_p = collective("all_gather", _gather_aval, lambda p: _all_gather_named, ("axis",))


def _scatter_aval(x, *, scatter_dimension, tiled, axis_size):
    shape = list(x.shape)
    if tiled:
        shape[scatter_dimension] //= axis_size
    else:
        del shape[scatter_dimension]
    return ShapedArray(tuple(shape), x.dtype)


def _psum_scatter_named(trace, vals, dims, *, axes, scatter_dimension, tiled, axis_size):
    _single_axis(axes, "psum_scatter")
    (x,), (d,) = vals, dims
    y = _times(x, trace.axis_size) if d is not_mapped else reduce_sum(x, (d,))
    # member k keeps block k of the sum along scatter_dimension: that axis is the batch axis
    return (_split_axis(y, scatter_dimension, trace.axis_size) if tiled else y), scatter_dimension


def _psum_scatter_aval(x, **params):
    _numeric("psum_scatter")(x)
    return _scatter_aval(x, **params)


psum_scatter_p = collective("psum_scatter", _psum_scatter_aval, lambda p: _psum_scatter_named,
                            ("scatter_dimension",))

ad.deflinear(all_gather_p, lambda ct, x, *, axes, axis, tiled, axis_size: [
    psum_scatter_p.bind(ct, axes=axes, scatter_dimension=axis, tiled=tiled, axis_size=axis_size)])
ad.deflinear(psum_scatter_p, lambda ct, x, *, axes, scatter_dimension, tiled, axis_size: [
    all_gather_p.bind(ct, axes=axes, axis=scatter_dimension, tiled=tiled, axis_size=axis_size)])


def _canonical_axis(axis, ndim, what):
    try:
        axis = operator.index(axis)
    except TypeError:
        raise TypeError(f"{what} must be an int, got {axis!r}") from None
    if not -ndim <= axis < ndim:
        raise ValueError(f"{what} {axis} is out of bounds for an array of rank {ndim}")
    return axis % ndim


def all_gather(x, axis_name, *, axis_index_groups=None, axis=0, tiled=False):
    """Every member's x, gathered: stacked along a new axis ``axis`` of size axis_size (or,
    tiled, concatenated along the existing axis ``axis``); the same for every member; x may
    be a pytree."""
    _no_groups(axis_index_groups, "all_gather")
    axes = _axes(axis_name)
    n = axis_size(axes)

    def leaf(v):
        v = core.as_array(v)
        nd = get_aval(v).ndim
        a = _canonical_axis(axis, nd if tiled else nd + 1, "all_gather axis")
        return all_gather_p.bind(v, axes=axes, axis=a, tiled=bool(tiled), axis_size=n)
    return tree_map(leaf, x)


def psum_scatter(x, axis_name, *, scatter_dimension=0, axis_index_groups=None, tiled=False):
    """``psum(x, axis_name)`` of which member k keeps only block k along
    ``scatter_dimension``: that axis must have the axis' size (it is removed) or, tiled, a
    multiple of it (it shrinks by the axis size). x may be a pytree."""
    _no_groups(axis_index_groups, "psum_scatter")
    axes = _axes(axis_name)
    n = axis_size(axes)

    def leaf(v):
        v = _as_int32_if_bool(core.as_array(v))
        shape = get_aval(v).shape
        sd = _canonical_axis(scatter_dimension, len(shape), "psum_scatter scatter_dimension")
        if tiled and shape[sd] % n:
            raise ValueError(f"psum_scatter: the scatter_dimension of size {shape[sd]} must be "
                             f"divisible by the size {n} of axis {axis_name!r} when tiled")
        if not tiled and shape[sd] != n:
            raise ValueError(f"psum_scatter: the scatter_dimension of size {shape[sd]} must equal "
                             f"the size {n} of axis {axis_name!r} (or use tiled=True)")
        return psum_scatter_p.bind(v, axes=axes, scatter_dimension=sd, tiled=bool(tiled),
                                   axis_size=n)
    return tree_map(leaf, x)


# ---------------------------------------------------------------------------------------------
# ppermute

def _source_of(perm, n):
    """For each destination, its source (n: no source, the destination gets zeros)."""
    src = [n] * n
    for s, d in perm:
        src[d] = s
    return src


def _ppermute_named(trace, vals, dims, *, axes, perm):
    _single_axis(axes, "ppermute")
    (x,), (d,) = vals, dims
    n = trace.axis_size
    src = _source_of(perm, n)
    if d is not_mapped and n not in src:
        return x, not_mapped            # every member receives the same x
    x = _at_front(trace, x, d)
    if n in src:                        # a slot of zeros for destinations without a source
        zeros = full((1,) + get_aval(x).shape[1:], 0, get_aval(x).dtype)
        x = concatenate([x, zeros], 0)
    return gather(x, np.asarray(src, np.int64)[:, None], (0,)), 0


ppermute_p = collective("ppermute", _same_aval, lambda p: _ppermute_named)
ad.deflinear(ppermute_p, lambda ct, x, *, axes, perm: [
    ppermute_p.bind(ct, axes=axes, perm=tuple((d, s) for s, d in perm))])


def ppermute(x, axis_name, perm):
    """x sent along the named axis: for each (source, destination) pair of ``perm`` the member
    at index destination receives the source's x; members that are no destination get zeros.
    Sources and destinations must each be distinct indices into the axis. x may be a pytree."""
    axes = _axes(axis_name)
    n = axis_size(axes)
    try:
        perm = tuple((operator.index(s), operator.index(d)) for s, d in perm)
    except (TypeError, ValueError):
        raise TypeError(f"ppermute perm must be a sequence of (source, destination) int pairs, "
                        f"got {perm!r}") from None
    srcs, dsts = [s for s, _ in perm], [d for _, d in perm]
    if len(set(srcs)) != len(srcs) or len(set(dsts)) != len(dsts):
        raise ValueError(f"ppermute sources and destinations must be unique, got {perm}")
    if any(not 0 <= i < n for i in srcs + dsts):
        raise ValueError(f"ppermute perm {perm} has indices outside the axis {axis_name!r} of "
                         f"size {n}")
    return tree_map(lambda v: ppermute_p.bind(v, axes=axes, perm=perm), x)


# ---------------------------------------------------------------------------------------------
# all_to_all (its own transpose, with the axes swapped)

def _all_to_all_aval(x, *, split_axis, concat_axis, tiled, axis_size):
    shape = list(x.shape)
    if tiled:
        shape[split_axis] //= axis_size
        shape[concat_axis] *= axis_size
    else:
        del shape[split_axis]
        shape.insert(concat_axis, axis_size)
    return ShapedArray(tuple(shape), x.dtype)


def _all_to_all_named(trace, vals, dims, *, axes, split_axis, concat_axis, tiled, axis_size):
    _single_axis(axes, "all_to_all")
    (x,), (d,) = vals, dims
    n = trace.axis_size
    x = _at_front(trace, x, d)          # axis 0: the sending member j; member axes at +1
    if tiled:
        x = _split_axis(x, 1 + split_axis, n)
    y = moveaxis(x, 1 + split_axis, 0)  # axis 0: the receiving member k, then j
    if tiled:                           # k's block from each j, concatenated j-major
        return _merge_axes(moveaxis(y, 1, 1 + concat_axis), 1 + concat_axis), 0
    return moveaxis(y, 1, 1 + concat_axis), 0


all_to_all_p = collective("all_to_all", _all_to_all_aval, lambda p: _all_to_all_named,
                          ("split_axis", "concat_axis"))
ad.deflinear(all_to_all_p, lambda ct, x, *, axes, split_axis, concat_axis, tiled, axis_size: [
    all_to_all_p.bind(ct, axes=axes, split_axis=concat_axis, concat_axis=split_axis, tiled=tiled,
                      axis_size=axis_size)])


def all_to_all(x, axis_name, split_axis, concat_axis, *, axis_index_groups=None, tiled=False):
    """Member k receives block k of every member's x along ``split_axis``, stacked along a new
    axis ``concat_axis`` (indexed by the sender) of the result with the split axis removed; or,
    tiled, the blocks concatenated along the existing ``concat_axis`` (the split axis shrinks
    by the axis size). x.shape[split_axis] must equal the axis size (tiled: a multiple of it).
    x may be a pytree."""
    _no_groups(axis_index_groups, "all_to_all")
    axes = _axes(axis_name)
    n = axis_size(axes)

    def leaf(v):
        v = core.as_array(v)
        shape = get_aval(v).shape
        sa = _canonical_axis(split_axis, len(shape), "all_to_all split_axis")
        ca = _canonical_axis(concat_axis, len(shape), "all_to_all concat_axis")
        if tiled and shape[sa] % n:
            raise ValueError(f"The size of all_to_all split_axis ({shape[sa]}) has to be "
                             f"divisible by the size of the named axis {axis_name} ({n})")
        if not tiled and shape[sa] != n:
            raise ValueError("all_to_all requires the size of the mapped axis axis_name to equal "
                             f"x.shape[split_axis], but they are {n} and {shape[sa]} respectively.")
        return all_to_all_p.bind(v, axes=axes, split_axis=sa, concat_axis=ca, tiled=bool(tiled),
                                 axis_size=n)
    return tree_map(leaf, x)


def pswapaxes(x, axis_name, axis, *, axis_index_groups=None):
    """Swap the named axis with the positional ``axis`` of x: ``all_to_all(x, axis_name, axis,
    axis)``."""
    return all_to_all(x, axis_name, axis, axis, axis_index_groups=axis_index_groups)


# ---------------------------------------------------------------------------------------------
# axis_index

def _axis_index_named(trace, vals, dims, *, axes):
    return iota(np.int32, trace.axis_size), 0


axis_index_p = collective("axis_index", lambda: ShapedArray((), np.int32),
                          lambda p: _axis_index_named)
ad.defjvp_zero(axis_index_p)


def axis_index(axis_name):
    """This member's index along the named axis (an int32 scalar); for a tuple of names, the
    row-major index over them (the first name varies slowest)."""
    axes = _axes(axis_name)
    _require_bound(axes)
    if len(axes) == 1:
        return axis_index_p.bind(axes=axes)
    index, stride = full((), 0, np.int32), 1
    for name in reversed(axes):
        index = add(index, mul(axis_index_p.bind(axes=(name,)), full((), stride, np.int32)))
        stride *= axis_size(name)
    return index
