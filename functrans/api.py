"""User-facing transforms: pytree flattening, argnums and has_aux around the flat interpreters."""
from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import types

import numpy as np

from . import core
from .core import Array, ShapedArray, as_array, get_aval, has_tangent, is_float
from .devices import Device
from .interpreters import ad, batching
from .interpreters.ad import Zero
from ._args import check_callable as _check_callable, flat_leaves as _flat_leaves
from .tree_util import (node_children, tree_flatten, tree_map, tree_paths, tree_structure,
                        tree_unflatten)
from .util import gc_paused, safe_map, safe_zip

map, zip = safe_map, safe_zip


def _outputs(flat):
    """Flat results for the user, as Arrays (core.to_output: an array that is not an Array, such
    as an input or a closed-over array returned as it is, is copied)."""
    for x in flat:
        if type(x) is not Array:
            return [core.to_output(x) for x in flat]
    return flat                   # all Arrays already (the common case)


def _snapshot(leaves):
    """Flat inputs kept past the call (by vjp_fn, f_jvp): the caller's writable ndarrays are
    copied into Arrays, so that mutating them later does not change the results."""
    return [core.to_array(x, core.owned_ndarrays((x,))) for x in leaves]


class _Store:
    """A write-once box for facts learned while tracing (output tree, aux data)."""
    __slots__ = ("val",)

    def __init__(self):
        self.val = None


def _flatten_fun(fun, in_tree, out_store, has_aux=False, aux_store=None):
    """fun on pytrees -> a function of flat leaves returning flat leaves (aux leaves appended)."""
    def flat(*leaves):
        out = fun(*tree_unflatten(in_tree, leaves))
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError("has_aux=True requires the function to return a pair "
                                f"(output, aux), got {type(out).__name__}")
            out, aux = out
            aux_leaves, aux_tree = tree_flatten(aux)
            aux_store.val = (aux_tree, len(aux_leaves))
        else:
            aux_leaves = []
        out_leaves, out_tree = tree_flatten(out)
        out_store.val = out_tree
        return [_as_output(x) for x in out_leaves + aux_leaves]
    return flat


def _as_output(x):
    try:
        return as_array(x)
    except TypeError:
        raise TypeError(f"transformed functions must return arrays (or pytrees of arrays), got "
                        f"a value of type {type(x).__name__}: {x!r}") from None


def _split_aux(flat_outs, out_tree, aux_store, has_aux):
    n = out_tree.num_leaves
    out = tree_unflatten(out_tree, flat_outs[:n])
    if not has_aux:
        return out, None
    aux_tree, _ = aux_store.val
    return out, tree_unflatten(aux_tree, flat_outs[n:])


# ---------------------------------------------------------------------------------------------
# Forward mode and linearize

def jvp(fun, primals, tangents, has_aux=False):
    """Returns (fun(*primals), the directional derivative of fun at primals along tangents)
    (plus aux with has_aux=True: (out, tangent_out, aux))."""
    _check_callable(fun, "jvp")
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("primal and tangent arguments to jvp must be tuples or lists; found "
                        f"{type(primals).__name__} and {type(tangents).__name__}")
    p_flat, p_tree = _flat_leaves(tuple(primals), "jvp primals")
    _check_grad_inputs(p_flat, lambda: tree_paths(p_tree, "primals"), "jvp", ints_ok=True)
    t_flat, t_tree = _flat_leaves(tuple(tangents), "jvp tangents")
    if p_tree != t_tree:
        raise TypeError(f"primal and tangent arguments to jvp must have the same tree structure; "
                        f"primals have tree structure {p_tree} whereas tangents have {t_tree}")
    for p, t in zip(p_flat, t_flat):
        pa, ta = get_aval(p), get_aval(t)
        if pa.shape != ta.shape:
            raise ValueError(f"jvp called with different primal and tangent shapes; got primal "
                             f"shape {pa.shape} and tangent shape {ta.shape}")
        if has_tangent(pa.dtype) and pa.dtype != ta.dtype:
            raise TypeError(f"primal and tangent arguments to jvp do not match; dtypes must be "
                            f"equal, got primal dtype {pa.dtype} and tangent dtype {ta.dtype}")
    t_flat = [t if has_tangent(get_aval(p).dtype) else Zero(get_aval(p))
              for p, t in zip(p_flat, t_flat)]
    out_store, aux_store = _Store(), _Store()
    flat = _flatten_fun(fun, p_tree, out_store, has_aux, aux_store)
    outs_p, outs_t = ad.jvp_flat(flat, p_flat, t_flat)
    outs_p = _outputs(outs_p)
    outs_t = _outputs([_instantiate_tangent(t) for t in outs_t])
    out_p, aux = _split_aux(outs_p, out_store.val, aux_store, has_aux)
    out_t, _ = _split_aux(outs_t, out_store.val, aux_store, has_aux)
    return (out_p, out_t, aux) if has_aux else (out_p, out_t)


def _instantiate_tangent(t):
    if type(t) is Zero:
        if has_tangent(t.aval.dtype):
            return ad.zeros_like_aval(t.aval)
        return np.zeros(t.aval.shape, core.float0)
    return t


def linearize(fun, *primals):
    """Returns (fun(*primals), f_jvp) where f_jvp(*tangents) evaluates the linear map without
    re-running the primal computation."""
    _check_callable(fun, "linearize")
    p_flat, p_tree = _flat_leaves(primals, "linearize primals")
    _check_grad_inputs(p_flat, lambda: tree_paths(p_tree, "primals"), "linearize", ints_ok=True)
    p_flat = _snapshot(p_flat)
    out_store = _Store()
    outs_p, jaxpr, consts = ad.linearize_flat(_flatten_fun(fun, p_tree, out_store), p_flat)
    outs_p = _outputs(outs_p)
    out_tree = out_store.val
    float_mask = [has_tangent(get_aval(p).dtype) for p in p_flat]

    def f_jvp(*tangents):
        t_flat, t_tree = _flat_leaves(tangents, "linearize tangents")
        if t_tree != p_tree:
            raise TypeError(f"linearized function called on tangents of structure {t_tree}, "
                            f"expected {p_tree}")
        t_flat = [t for t, f in zip(t_flat, float_mask) if f]
        return tree_unflatten(out_tree, _outputs(core.eval_jaxpr(jaxpr, consts, *t_flat)))

    return tree_unflatten(out_tree, outs_p), f_jvp


# ---------------------------------------------------------------------------------------------
# Reverse mode

def vjp(fun, *primals, has_aux=False):
    """Returns (fun(*primals), vjp_fn) (and aux with has_aux=True); vjp_fn(cotangent) returns a
    tuple with one cotangent per primal."""
    _check_callable(fun, "vjp")
    p_flat, p_tree = _flat_leaves(primals, "vjp primals")
    _check_grad_inputs(p_flat, lambda: tree_paths(p_tree, "primals"), "vjp", ints_ok=True)
    p_flat = _snapshot(p_flat)
    out_store, aux_store = _Store(), _Store()
    flat = _flatten_fun(fun, p_tree, out_store, has_aux, aux_store)
    outs_p, vjp_flat_fn = ad.vjp_flat(flat, p_flat)
    outs_p = _outputs(outs_p)
    out_tree = out_store.val
    out, aux = _split_aux(outs_p, out_tree, aux_store, has_aux)
    n_out = out_tree.num_leaves
    out_avals = [get_aval(o) for o in outs_p[:n_out]]

    def vjp_fn(ct):
        ct_flat, ct_tree = tree_flatten(ct)
        if ct_tree != out_tree:
            raise ValueError(f"vjp: the cotangent has tree structure {ct_tree}, but the primal "
                             f"output has {out_tree}")
        ct_flat = [as_array(c) for c in ct_flat]
        for c, a in zip(ct_flat, out_avals):
            if get_aval(c).shape != a.shape:
                raise ValueError(f"vjp: cotangent of shape {get_aval(c).shape} does not match the "
                                 f"primal output shape {a.shape}")
        cts = ct_flat + [Zero(get_aval(o)) for o in outs_p[n_out:]]
        return tuple(tree_unflatten(p_tree, _outputs(vjp_flat_fn(cts))))

    return (out, vjp_fn, aux) if has_aux else (out, vjp_fn)


def _argnums_tuple(argnums, nargs, name):
    """(argnums as a tuple of non-negative ints, whether a single int was given). As JAX's grad:
    TypeError when the caller passed too few positional arguments for an argnum, ValueError
    for a negative argnum below -nargs, TypeError for argnums that are not ints."""
    if type(argnums) is int and 0 <= argnums < nargs:     # the common case
        return (argnums,), True
    single = isinstance(argnums, (int, np.integer))
    try:
        nums = (argnums,) if single else tuple(argnums)
    except TypeError:
        nums = (argnums,)
    if not nums or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool)
                           for i in nums):
        raise TypeError(f"{name}: argnums must be an int or a non-empty tuple of ints, got "
                        f"{argnums!r}")
    if max(nums) >= nargs:
        raise TypeError(f"{name}: differentiating with respect to argnums={argnums!r} requires "
                        f"at least {max(nums) + 1} positional arguments to be passed by the "
                        f"caller, but got only {nargs} positional arguments{core.where()}")
    if min(nums) < -nargs:
        raise ValueError(f"{name}: argnums {argnums!r} out of range: negative argnums must be "
                         f">= -len(args) = {-nargs} (the function was called with {nargs} "
                         f"positional arguments){core.where()}")
    return tuple(int(i) % nargs for i in nums), single


def _check_grad_inputs(leaves, paths, name, ints_ok=False, holomorphic=False, complex_ok=True):
    """JAX's TypeErrors for inputs that cannot be differentiated: with ``holomorphic``, any
    leaf that is not complex; otherwise integer and bool leaves unless ``ints_ok`` (jvp, vjp
    and linearize give them float0 tangents), and complex leaves unless ``complex_ok`` (jacfwd
    needs real inputs or holomorphic=True). ``paths`` is a thunk (built only on error)."""
    if holomorphic:
        for x in leaves:
            dt = get_aval(x).dtype
            if dt.kind != "c":
                raise TypeError(f"{name} with holomorphic=True requires inputs with complex "
                                f"dtype, but got {dt.name}.")
        return
    for x in leaves:
        k = core.dtype_kind(x.dtype)
        if not (k == "f" or (k == "c" and complex_ok) or (ints_ok and k in "biu")):
            break
    else:
        return
    for path, x in zip(paths(), leaves):
        dt = get_aval(x).dtype
        if dt.kind == "c" and not complex_ok:
            raise TypeError(f"{name} requires real-valued inputs (input dtype that is a sub-dtype "
                            f"of np.floating), but argument {path} has dtype {dt.name}. For "
                            "holomorphic differentiation, pass holomorphic=True. For "
                            "differentiation of non-holomorphic functions involving complex "
                            "inputs, use jvp directly.")
        if not ints_ok and not has_tangent(dt):
            raise TypeError(f"{name} requires real- or complex-valued floating-point inputs, but "
                            f"argument {path} has dtype {dt.name}. Convert it with "
                            ".astype(float), or leave it out of argnums.")


def _check_output_dtype(aval, name, holomorphic):
    """JAX's TypeErrors for an output reverse mode (or holomorphic forward mode) cannot
    differentiate: complex without holomorphic=True, real with it, integer or bool."""
    if holomorphic:
        if aval.dtype.kind != "c":
            raise TypeError(f"{name} with holomorphic=True requires outputs with complex dtype, "
                            f"but got {aval.dtype.name}.")
        return
    if aval.dtype.kind == "c":
        raise TypeError(f"{name} requires real-valued outputs (output dtype that is a sub-dtype "
                        f"of np.floating), but got {aval.dtype.name}. For holomorphic "
                        "differentiation, pass holomorphic=True. For differentiation of "
                        "non-holomorphic functions involving complex outputs, use vjp directly.")
    if core.dtype_kind(aval.dtype) != "f":
        raise TypeError(f"{name} requires real-valued outputs (a floating-point dtype), but got "
                        f"{aval.dtype}. For functions with integer outputs, use vjp directly.")


class _Shown:
    """A pytree leaf shown by its aval (or type) in error messages: ``(f64[], f64[3])``."""
    __slots__ = ("text",)

    def __init__(self, x):
        try:
            self.text = get_aval(as_array(x)).str_short()
        except (TypeError, OverflowError):
            self.text = type(x).__name__

    def __repr__(self):
        return self.text


_GRAD_HINT = ("grad needs a function returning one real scalar: use jacrev or vjp to "
              "differentiate a non-scalar or pytree output, or has_aux=True to return auxiliary "
              "data alongside the scalar as a pair (output, aux).")


def _check_scalar_output(out, name, holomorphic=False):
    """TypeError (JAX's wording, naming the output's structure) unless out is a real scalar
    (a complex one with holomorphic=True)."""
    if not isinstance(out, (core.Array, np.ndarray, np.generic, bool, int, float, complex)):
        leaves, treedef = tree_flatten(out)
        shown = tree_unflatten(treedef, [_Shown(x) for x in leaves])
        raise TypeError(f"Gradient only defined for scalar-output functions. Output was "
                        f"{shown!r}{core.where()}. {_GRAD_HINT}")
    aval = get_aval(as_array(out))
    if aval.shape != ():
        raise TypeError(f"Gradient only defined for scalar-output functions. Output had shape: "
                        f"{aval.shape} ({aval.str_short()}){core.where()}. {_GRAD_HINT}")
    _check_output_dtype(aval, name, holomorphic)


def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """Returns a function computing (fun(*args), gradient of fun w.r.t. args[argnums]) — or
    ((value, aux), gradient) with has_aux=True. holomorphic=True requires complex inputs
    and a complex output, and gives df/dz; for a real-valued fun of complex inputs the gradient
    is JAX's: conj of df/d(conj z) times 2 (docs/numerics.md)."""
    _check_callable(fun, "value_and_grad")

    @functools.wraps(fun)
    def value_and_grad_f(*args, **kwargs):
        return _value_and_grad(fun, argnums, has_aux, args, kwargs, holomorphic)

    return value_and_grad_f


def _value_and_grad(fun, argnums, has_aux, args, kwargs, holomorphic=False):
    """value_and_grad(fun, argnums, has_aux, holomorphic)(*args, **kwargs)."""
    nums, single = _argnums_tuple(argnums, len(args), "grad")
    leaves, treedef = _flat_leaves(tuple([args[i] for i in nums]), "grad arguments",
                                   [f"args[{i}]" for i in nums])
    _check_grad_inputs(leaves, lambda: _arg_paths(treedef, nums), "grad", holomorphic=holomorphic)
    out_store, aux_store = _Store(), _Store()
    f_of_diff = _scalar_fun_of(fun, args, kwargs, nums, has_aux, holomorphic)
    outs_p, vjp_fn = ad.vjp_flat(_flatten_fun(f_of_diff, treedef, out_store, has_aux, aux_store),
                                 leaves)
    outs_p = _outputs(outs_p)
    value = outs_p[0]
    cts = [np.array(1, value.dtype)] + [Zero(get_aval(o)) for o in outs_p[1:]]
    grads = tree_unflatten(treedef, _outputs(vjp_fn(cts)))
    g = grads[0] if single else grads
    if has_aux:
        _, aux = _split_aux(outs_p, out_store.val, aux_store, True)
        return (value, aux), g
    return value, g


def _scalar_fun_of(fun, args, kwargs, nums, has_aux, holomorphic=False):
    """fun as a function of the arguments args[nums] (the others fixed), checking that it
    returns a real scalar, or a complex one with holomorphic (the first of a pair with
    has_aux)."""
    def f_of_diff(*diff):
        full = list(args)
        for i, a in zip(nums, diff):
            full[i] = a
        out = fun(*full, **kwargs)
        if has_aux:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError("has_aux=True requires the function to return a pair "
                                "(output, aux)")
            _check_scalar_output(out[0], "grad", holomorphic)
        else:
            _check_scalar_output(out, "grad", holomorphic)
        return out
    return f_of_diff


def _arg_paths(treedef, nums):
    """Readable paths of the leaves of the differentiated-arguments tuple, named by argnum."""
    out = []
    for i, child in zip(nums, treedef.children()):
        out.extend(tree_paths(child, f"args[{i}]"))
    return out


def grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """Returns a function computing the gradient of scalar-valued fun w.r.t. args[argnums]
    (and aux with has_aux=True: (grad, aux)). holomorphic=True requires complex inputs
    and a complex output, and gives df/dz; for a real-valued fun of complex inputs the gradient
    is JAX's: conj of df/d(conj z) times 2 (docs/numerics.md)."""
    _check_callable(fun, "grad")

    @functools.wraps(fun)
    def grad_f(*args, **kwargs):
        if has_aux:
            (_, aux), g = _value_and_grad(fun, argnums, True, args, kwargs, holomorphic)
            return g, aux
        return _value_and_grad(fun, argnums, False, args, kwargs, holomorphic)[1]

    return grad_f


# ---------------------------------------------------------------------------------------------
# vmap

def _broadcast_prefix(prefix, tree, name, what):
    """One entry of ``prefix`` (a pytree prefix of ``tree`` with int/None leaves) per leaf."""
    out = []

    def rec(p, t):
        if p is None or isinstance(p, (int, np.integer)):
            out.extend([None if p is None else int(p)] * tree_structure(t).num_leaves)
            return
        p_leaves, p_def = tree_flatten(p, is_leaf=lambda x: x is None)
        t_def = tree_structure(t)
        if type(p) is not type(t) and not (isinstance(p, (tuple, list)) and isinstance(t, (tuple, list))
                                           and type(p) is tuple and type(t) is tuple):
            raise ValueError(f"{name} {what} specification must be a tree prefix of the "
                             f"corresponding value, got specification {p!r} for value tree "
                             f"{t_def}.")
        if isinstance(p, dict):
            if sorted(p) != sorted(t):
                raise ValueError(f"{name} {what} specification must be a tree prefix of the "
                                 f"corresponding value, got specification {p!r} for value tree "
                                 f"{t_def}.")
            for k in sorted(t):
                rec(p[k], t[k])
            return
        if isinstance(p, (tuple, list)):
            if len(p) != len(t):
                raise ValueError(f"{name} {what} specification must be a tree prefix of the "
                                 f"corresponding value, got specification {p!r} (length {len(p)}) "
                                 f"for value tree {t_def} (length {len(t)}).")
            for a, b in zip(p, t):
                rec(a, b)
            return
        p_kids, t_kids = node_children(p), node_children(t)
        if p_kids is not None:    # a registered node (dataclass, Partial, namedtuple...)
            if p_kids[1] != t_kids[1] or len(p_kids[0]) != len(t_kids[0]):
                raise ValueError(f"{name} {what} specification must be a tree prefix of the "
                                 f"corresponding value, got specification {p!r} for value tree "
                                 f"{t_def}.")
            for a, b in zip(p_kids[0], t_kids[0]):
                rec(a, b)
            return
        raise ValueError(f"{name} {what} must be an int, None, or a (nested) container with "
                         f"those types as leaves, got {p!r}")

    rec(prefix, tree)
    return out


def vmap(fun, in_axes=0, out_axes=0, axis_name=None, axis_size=None, spmd_axis_name=None):
    """Vectorise fun over the axes in_axes of its arguments; results are stacked on out_axes.
    With ``axis_name`` the mapped axis is named for the collectives of functrans.lax
    (``psum(x, axis_name)`` sums over it, ...). ``spmd_axis_name`` is accepted for JAX
    compatibility (there is no sharding to constrain)."""
    _check_callable(fun, "vmap")
    _check_axis_name(axis_name, "vmap axis_name")
    if isinstance(in_axes, list):  # a list at the top is a prefix of the args tuple, as in JAX
        in_axes = tuple(in_axes)
    if not isinstance(in_axes, (tuple, int, np.integer, type(None))):
        raise ValueError("vmap in_axes must be an int, None, or a tuple of entries corresponding "
                         f"to the positional arguments, got {in_axes!r}")

    @functools.wraps(fun)
    def vmapped(*args, **kwargs):
        axes_args = in_axes
        if isinstance(in_axes, tuple) and len(in_axes) != len(args):
            raise ValueError(f"vmap in_axes must be an int, None, or a tuple of entries "
                             f"corresponding to the positional arguments passed to the function, "
                             f"but got len(in_axes)={len(in_axes)}, len(args)={len(args)}")
        all_args = (tuple(args), kwargs)
        leaves, treedef = _flat_leaves(all_args, "vmap arguments")
        dims = _broadcast_prefix(axes_args, tuple(args), "vmap", "in_axes") + \
            [0] * tree_structure(kwargs).num_leaves
        paths = tree_paths(tree_structure(tuple(args)), "args") + \
            tree_paths(tree_structure(kwargs), "kwargs")
        sizes = {}
        canon = []
        for x, d, path in zip(leaves, dims, paths):
            if d is None:
                canon.append(None)
                continue
            nd = get_aval(x).ndim
            if not -nd <= d < nd:
                raise ValueError(f"vmap was requested to map its argument along axis {d}, which "
                                 f"implies that its rank should be at least {d + 1 if d >= 0 else -d}, "
                                 f"but is only {nd} (its shape is {get_aval(x).shape}) for "
                                 f"argument {path}")
            canon.append(d % nd)
            sizes[path] = get_aval(x).shape[d % nd]
        if sizes:
            distinct = set(sizes.values())
            if len(distinct) > 1:
                detail = "\n".join(f"  {p} has size {s} along its mapped axis" for p, s in sizes.items())
                raise ValueError(f"vmap got inconsistent sizes for the array axes to be mapped:\n"
                                 f"{detail}")
            size = distinct.pop()
            if axis_size is not None and axis_size != size:
                raise ValueError(f"vmap got axis_size={axis_size} but the mapped arguments have "
                                 f"size {size}")
        elif axis_size is None:
            raise ValueError("vmap must have at least one non-None value in in_axes, or be "
                             "given axis_size")
        else:
            size = int(axis_size)
        out_store = _Store()

        def flat(*xs):
            a, k = tree_unflatten(treedef, xs)
            out = fun(*a, **k)
            out_leaves, out_tree = tree_flatten(out)
            out_store.val = (out_tree, out)
            return [_as_output(o) for o in out_leaves]

        def out_dims():
            out_tree, out = out_store.val
            ods = _broadcast_prefix(out_axes, out, "vmap", "out_axes")
            return ods

        if axis_name is None:
            outs = batching.vmap_flat(flat, size, canon, out_dims, leaves, axis_name=None)
        else:
            with core.extend_axis_env([core.AxisFrame(axis_name, size)]):
                outs = batching.vmap_flat(flat, size, canon, out_dims, leaves,
                                          axis_name=axis_name)
        return tree_unflatten(out_store.val[0], _outputs(outs))

    return vmapped


def _check_axis_name(name, what):
    """TypeError unless name is None or hashable (axis names are compared and looked up)."""
    try:
        hash(name)
    except TypeError:
        raise TypeError(f"{what} must be hashable, got {name!r}") from None


# ---------------------------------------------------------------------------------------------
# Jacobians

def _std_basis(leaves):
    """An identity matrix splitting into per-leaf pieces: shape (N, *leaf.shape) each."""
    sizes = [get_aval(x).size for x in leaves]
    n = sum(sizes)
    eye = np.eye(n)
    out, start = [], 0
    for x, s in zip(leaves, sizes):
        a = get_aval(x)
        out.append(eye[:, start:start + s].reshape((n,) + a.shape).astype(a.dtype))
        start += s
    return out


def _jac_args(fun, argnums, args, name, holomorphic=False):
    nums, single = _argnums_tuple(argnums, len(args), name)
    diff = tuple(args[i] for i in nums)
    leaves, treedef = _flat_leaves(diff, name, [f"args[{i}]" for i in nums])
    _check_grad_inputs(leaves, lambda: _arg_paths(treedef, nums), name, holomorphic=holomorphic,
                       complex_ok=name != "jacfwd")

    def f_diff(*d):
        full = list(args)
        for i, a in zip(nums, d):
            full[i] = a
        return fun(*full)

    return f_diff, leaves, treedef, nums, single


def jacfwd(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian of fun by forward mode: vmap of jvp over the standard basis of the inputs.
    The result nests the input structure inside the output structure. holomorphic=True
    requires complex inputs and outputs and gives the complex derivative df/dz."""
    _check_callable(fun, "jacfwd")

    def jac(*args):
        f_diff, leaves, in_tree, nums, single = _jac_args(fun, argnums, args, "jacfwd", holomorphic)
        out_store, aux_store, primal_outs = _Store(), _Store(), _Store()
        flat = _flatten_fun(f_diff, in_tree, out_store, has_aux, aux_store)

        def push(*ts):
            po, to = ad.jvp_flat(flat, leaves, list(ts))
            if holomorphic:
                for o in po[:out_store.val.num_leaves]:
                    _check_output_dtype(get_aval(o), "jacfwd", True)
            primal_outs.val = po
            return [_instantiate_tangent(t) for t in to]

        n = sum(get_aval(x).size for x in leaves)
        tangents = batching.vmap_flat(push, n, [0] * len(leaves),
                                      lambda: [0] * len(primal_outs.val), _std_basis(leaves),
                                      axis_name=None)
        out_tree = out_store.val
        result_leaves = []
        for y in tangents[:out_tree.num_leaves]:
            out_shape = get_aval(y).shape[1:]
            pieces, start = [], 0
            for x in leaves:
                xa = get_aval(x)
                blk = _reshape(_take_rows(y, start, xa.size), xa.shape + out_shape)
                perm = tuple(range(xa.ndim, xa.ndim + len(out_shape))) + tuple(range(xa.ndim))
                pieces.append(_transpose(blk, perm))
                start += xa.size
            tree = tree_unflatten(in_tree, pieces)
            result_leaves.append(tree[0] if single else tree)
        result = tree_map(core.to_output, tree_unflatten(out_tree, result_leaves))
        if has_aux:
            aux = _split_aux(_outputs(primal_outs.val), out_tree, aux_store, True)[1]
            return result, aux
        return result

    return jac


def _take_rows(y, start, n):
    from .lax import slicing
    a = get_aval(y)
    return slicing.slice(y, (start,) + (0,) * (a.ndim - 1), (start + n,) + a.shape[1:])


def _transpose(x, perm):
    from .lax import lax
    return lax.transpose(x, perm)


def _reshape(x, shape):
    from .lax import lax
    return lax.reshape(x, shape)


def jacrev(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Jacobian of fun by reverse mode: vmap of vjp over the standard basis of the outputs.
    The result nests the input structure inside the output structure. holomorphic=True
    requires complex inputs and outputs and gives the complex derivative df/dz."""
    _check_callable(fun, "jacrev")

    def jac(*args):
        f_diff, leaves, in_tree, nums, single = _jac_args(fun, argnums, args, "jacrev", holomorphic)
        out_store, aux_store = _Store(), _Store()
        flat = _flatten_fun(f_diff, in_tree, out_store, has_aux, aux_store)
        outs_p, vjp_fn = ad.vjp_flat(flat, leaves)
        out_tree = out_store.val
        n_out = out_tree.num_leaves
        ys = outs_p[:n_out]
        for y in ys:
            if holomorphic or get_aval(y).dtype.kind == "c":
                _check_output_dtype(get_aval(y), "jacrev", holomorphic)
        basis = _std_basis(ys)
        m = sum(get_aval(y).size for y in ys)

        def pull(*cts):
            return vjp_fn(list(cts) + [Zero(get_aval(o)) for o in outs_p[n_out:]])

        cts_in = batching.vmap_flat(pull, m, [0] * n_out, lambda: [0] * len(leaves), basis,
                                     axis_name=None)
        # cts_in[j]: (m, *in_shape_j); split m into output leaves
        result_leaves, start = [], 0
        for y in ys:
            ya = get_aval(y)
            pieces = [_reshape(_take_rows(c, start, ya.size), ya.shape + get_aval(x).shape)
                      for c, x in zip(cts_in, leaves)]
            tree = tree_unflatten(in_tree, pieces)
            result_leaves.append(tree[0] if single else tree)
            start += ya.size
        result = tree_map(core.to_output, tree_unflatten(out_tree, result_leaves))
        if has_aux:
            return result, _split_aux(_outputs(outs_p), out_tree, aux_store, True)[1]
        return result

    return jac


def linear_transpose(fun, *primals, reduce_axes=()):
    """The transpose of the linear function fun, at inputs shaped like primals (arrays or
    ShapeDtypeStructs): returns ``f_t`` (a tree_util.Partial) with ``f_t(cotangent)`` a tuple
    with one cotangent per primal. fun must be linear in its inputs (equations that do not
    depend on them are evaluated as constants); a non-linear operation on an input raises. As
    JAX: all inputs and outputs inexact, or all integer."""
    _check_callable(fun, "linear_transpose")
    if reduce_axes:
        raise NotImplementedError("linear_transpose: reduce_axes names mapped axes, which "
                                  "functrans does not have; leave it empty")
    leaves, in_tree = tree_flatten(primals)
    in_avals = [_aval_of_arg(x) for x in leaves]
    out_store = _Store()
    jaxpr, consts = core.trace_to_jaxpr(_flatten_fun(fun, in_tree, out_store), in_avals)
    out_avals = [v.aval if isinstance(v, core.Var) else get_aval(v.val) for v in jaxpr.outvars]
    dtypes = [a.dtype for a in in_avals + out_avals]
    if not (all(core.dtype_kind(d) in "fc" for d in dtypes) or all(d.kind in "iu" for d in dtypes)):
        raise TypeError("linear_transpose only supports [float or complex] -> [float or "
                        "complex], and integer -> integer functions, but got "
                        f"{[a.dtype.name for a in in_avals]} -> "
                        f"{[a.dtype.name for a in out_avals]}.")
    out_tree = out_store.val

    def transposed(consts, out_cotangent):
        cts, ct_tree = tree_flatten(out_cotangent)
        if ct_tree != out_tree:
            raise TypeError("cotangent tree does not match function output, expected "
                            f"{out_tree} but got {ct_tree}")
        cts = [_typed_cotangent(c, a, out_avals) for c, a in zip(cts, out_avals)]
        undefined = [ad.UndefPrimal(a) for a in in_avals]
        try:
            in_cts = ad.backward_pass(jaxpr, consts, undefined, cts)
        except (NotImplementedError, ad.NotLinearError) as e:
            # JAX's exception types (a missing transpose rule is NotImplementedError), saying why
            raise type(e)(f"linear_transpose: the function is not linear in its inputs: {e}"
                          ) from None
        return tree_unflatten(in_tree, _outputs([ad.instantiate_zeros(c) for c in in_cts]))

    from .tree_util import Partial
    return Partial(transposed, consts)


def _typed_cotangent(ct, aval, out_avals):
    """ct as an array of aval's type; JAX's TypeError if it has another shape or dtype (a
    Python scalar takes the output's dtype, as JAX's weak types do)."""
    weak = type(ct) in (int, float) and \
        core.dtype_kind(aval.dtype) in ("f" if type(ct) is float else "fiu")
    ct = as_array(ct)
    a = get_aval(ct)
    if a.shape != aval.shape or (a.dtype != aval.dtype and not weak):
        raise TypeError(f"cotangent type does not match function output, expected "
                        f"{[o.str_short() for o in out_avals]} but got {a.str_short()}")
    return core.to_array(np.asarray(ct, aval.dtype)) if a.dtype != aval.dtype else ct


def hessian(fun, argnums=0, has_aux=False, holomorphic=False):
    """The Hessian of scalar fun: jacfwd(jacrev(fun)) (with has_aux=True: (hessian, aux))."""
    if has_aux:
        inner = jacrev(fun, argnums, has_aux=True, holomorphic=holomorphic)
        return jacfwd(inner, argnums, has_aux=True, holomorphic=holomorphic)
    return jacfwd(jacrev(fun, argnums, holomorphic=holomorphic), argnums, holomorphic=holomorphic)


def hvp(fun, primals, tangents):
    """Forward-over-reverse Hessian-vector product: jvp of grad(fun) (a convenience beyond JAX).
    primals and tangents are tuples; returns the HVP with the structure of the primals (a single
    array for one primal)."""
    primals, tangents = tuple(primals), tuple(tangents)
    argnums = tuple(range(len(primals)))
    g = grad(fun, argnums=argnums)
    out = jvp(g, primals, tangents)[1]
    return out[0] if len(primals) == 1 else out


# ---------------------------------------------------------------------------------------------
# Staging

class ShapeDtypeStruct:
    """A shape and dtype standing in for an array (eval_shape's results)."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def __eq__(self, other):
        return isinstance(other, ShapeDtypeStruct) and (self.shape, self.dtype) == (other.shape, other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"ShapeDtypeStruct(shape={self.shape}, dtype={self.dtype.name})"


def _aval_of_arg(x):
    if isinstance(x, (ShapeDtypeStruct, ShapedArray)):
        return ShapedArray(x.shape, x.dtype)
    return get_aval(as_array(x))


def _static_split(fun, args, kwargs, static_argnums, static_argnames=()):
    """(function of the dynamic positional args, dynamic args, static key)."""
    static_argnums = tuple(i % len(args) if args else i for i in static_argnums
                           if -len(args) <= i < len(args))
    static = tuple((i, args[i]) for i in static_argnums)
    dyn_args = tuple(a for i, a in enumerate(args) if i not in static_argnums)
    static_kw = tuple(sorted((k, v) for k, v in kwargs.items() if k in static_argnames))
    dyn_kw = {k: v for k, v in kwargs.items() if k not in static_argnames}

    def f_dyn(*dargs, **dkw):
        it = iter(dargs)
        full = [args[i] if i in static_argnums else next(it) for i in range(len(args))]
        return fun(*full, **dict(static_kw), **dkw)

    return f_dyn, dyn_args, dyn_kw, (static, static_kw)


def make_jaxpr(fun, static_argnums=(), axis_env=None):
    """Returns a function that traces fun on example arguments and returns its ClosedJaxpr
    (str() of it is the readable listing). ``axis_env``, a sequence of (axis name, size) pairs,
    binds those names for the collectives fun uses (they are staged, not evaluated)."""
    _check_callable(fun, "make_jaxpr")
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    frames = []
    for entry in axis_env or ():
        try:
            name, size = entry
        except (TypeError, ValueError):
            raise TypeError("make_jaxpr axis_env must be a sequence of (axis name, size) pairs, "
                            f"got the entry {entry!r}") from None
        _check_axis_name(name, "make_jaxpr axis_env name")
        frames.append(core.AxisFrame(name, operator.index(size)))

    @functools.wraps(fun)
    def make(*args, **kwargs):
        f_dyn, dyn_args, dyn_kw, _ = _static_split(fun, args, kwargs, static_argnums)
        leaves, treedef = tree_flatten((dyn_args, dyn_kw))
        avals = [_aval_of_arg(x) for x in leaves]
        out_store = _Store()
        flat = _flatten_fun(lambda a, k: f_dyn(*a, **k), treedef, out_store)
        with core.extend_axis_env(frames):
            jaxpr, consts = core.trace_to_jaxpr(flat, avals)
        return core.ClosedJaxpr(jaxpr, consts)

    return make


def eval_shape(fun, *args, **kwargs):
    """The shapes and dtypes of fun's outputs (ShapeDtypeStruct leaves), computed without
    evaluating it."""
    _check_callable(fun, "eval_shape")
    leaves, treedef = tree_flatten((args, kwargs))
    avals = [_aval_of_arg(x) for x in leaves]
    out_store = _Store()
    flat = _flatten_fun(lambda a, k: fun(*a, **k), treedef, out_store)
    jaxpr, _ = core.trace_to_jaxpr(flat, avals)
    return tree_unflatten(out_store.val, [ShapeDtypeStruct(a.shape, a.dtype) for a in jaxpr.out_avals])


def device_put(x, device=None):
    """x (a pytree) with every leaf an Array: on ``device`` (a Device; the Arrays are then
    committed to it, and computation on them runs there), or where it already is (NumPy
    values: the default device). NumPy inputs are copied; tracers pass through."""
    if device is not None and not isinstance(device, Device):
        raise TypeError(f"device_put: device must be a functrans Device (from functrans.devices()), "
                        f"got {type(device).__name__} {device!r}")
    return tree_map(lambda v: core.put(v, device), x)


def device_get(x):
    """x (a pytree) with every Array leaf as a host NumPy array (read-only for CPU Arrays,
    which are not copied); other leaves unchanged."""
    return tree_map(lambda v: np.asarray(v) if type(v) is core.Array else v, x)


def block_until_ready(x):
    """x (a pytree), once the computations producing its Arrays have finished."""
    for leaf in tree_flatten(x)[0]:
        if type(leaf) is core.Array:
            leaf.block_until_ready()
    return x


# ---------------------------------------------------------------------------------------------
# jit

def _static_arg_label(i_or_name, params):
    """'y' (position 1) for a static argument given by position or by name; ``params`` are the
    function's positional parameter names (None when its signature is unknown)."""
    if isinstance(i_or_name, str):
        pos = params.index(i_or_name) if params and i_or_name in params else None
        return f"'{i_or_name}'" + ("" if pos is None else f" (position {pos})")
    if params and 0 <= i_or_name < len(params):
        return f"'{params[i_or_name]}' (position {i_or_name})"
    return f"at position {i_or_name}"


def _check_static_hashable(static_key, fun, params):
    """ValueError (as JAX) naming the first unhashable static argument by name and position."""
    try:
        hash(static_key)
    except TypeError:
        (pos, kw) = static_key
        for i, v in list(pos) + list(kw):
            try:
                hash(v)
            except TypeError as e:
                raise ValueError(
                    f"Non-hashable static arguments are not supported: static argument "
                    f"{_static_arg_label(i, params)} of {getattr(fun, '__name__', fun)} is "
                    f"{type(v).__name__} {v!r:.80} ({e}){core.where()}. Static arguments must be "
                    "hashable: use a tuple instead of a list, or pass arrays as dynamic "
                    "arguments.") from None
        raise


def _positional_params(fun):
    """(names of fun's positional parameters, whether it takes *args, whether it takes
    **kwargs, the names of all its named parameters), or None when its signature cannot be
    inspected (builtins, some callables)."""
    try:
        sig = inspect.signature(fun)
    except (TypeError, ValueError):
        return None
    ps = list(sig.parameters.values())
    pos = [p.name for p in ps if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var = any(p.kind is p.VAR_POSITIONAL for p in ps)
    varkw = any(p.kind is p.VAR_KEYWORD for p in ps)
    return pos, var, varkw, [p.name for p in ps if p.kind is not p.VAR_POSITIONAL]


def _check_static_specs(fun, static_argnums, static_argnames, sig):
    """ValueError at jit() time (as JAX) for static_argnums beyond the function's positional
    parameters, or static_argnames it does not take; each names the argument."""
    if sig is None:
        return
    pos, var, varkw, names = sig
    name = getattr(fun, "__name__", fun)
    for i in static_argnums:
        if not var and not -len(pos) <= i < len(pos):
            raise ValueError(f"jit: static_argnums contains {i}, but {name} accepts only "
                             f"{len(pos)} positional arguments ({', '.join(pos) or 'none'})")
    bad = [n for n in static_argnames if n not in names]
    if bad and not varkw:
        raise ValueError(f"jit: static_argnames {bad} are not parameters of {name}: it takes "
                         f"({', '.join(names) or 'no arguments'})")


_MISS = object()     # a fast-path lookup that missed


class Jitted:
    """A jit-compiled function: call it like the original; ``lower(*args)`` shows the generated
    code; ``trace_count`` and ``cache_size()`` show how often it retraced."""

    def __init__(self, fun, static_argnums, static_argnames, backend):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        sig = _positional_params(fun)
        _check_static_specs(fun, self.static_argnums, self.static_argnames, sig)
        self._params = None if sig is None else sig[0]
        if sig is not None:      # as JAX: static arguments may be passed by name or position
            params = sig[0]
            self.static_argnames += tuple(params[i] for i in self.static_argnums
                                          if -len(params) <= i < len(params)
                                          and params[i] not in self.static_argnames)
            self.static_argnums += tuple(params.index(n) for n in self.static_argnames
                                         if n in params and params.index(n) not in self.static_argnums)
        if backend not in (None, "cpu", "cuda"):
            raise ValueError(f"jit backend must be 'cpu' or 'cuda', got {backend!r}")
        self.backend = backend or "cpu"
        self._cache = {}
        self.trace_count = 0
        # (shapes, dtypes) of plain-array calls -> (compiled executable, out tree); only for
        # functions without static arguments (their key also holds the static values)
        self._fast = None if self.static_argnums or self.static_argnames else {}
        # (arg tree, avals, device) of calls on Arrays committed to an accelerator -> (jit_p
        # params, out tree)
        self._fast_device = {}

    def _trace(self, args, kwargs):
        """(ClosedJaxpr, flat dynamic args incl. lifted tracer consts, out tree)."""
        kwargs = dict(kwargs)
        pos_static = [i for i in self.static_argnums if -len(args) <= i < len(args)]
        f_dyn, dyn_args, dyn_kw, static_key = _static_split(self.fun, args, kwargs, pos_static,
                                                            self.static_argnames)
        _check_static_hashable(static_key, self.fun, self._params)
        leaves, in_tree = _flat_leaves((dyn_args, dyn_kw), "jit arguments")
        if not core.x64_enabled():  # 64-bit arguments are passed (and traced) as 32-bit ones
            leaves = [x if type(x) is core.Array or isinstance(x, core.Tracer)
                      else core.canonical_buffer(np.asarray(x)) for x in leaves]
        avals = tuple(get_aval(x) for x in leaves)
        key = (in_tree, avals, static_key, core.x64_enabled(),
               core._state.axis_env and core.axis_env_key())
        entry = self._cache.get(key)
        if entry is None:
            self.trace_count += 1
            out_store = _Store()
            flat = _flatten_fun(lambda a, k: f_dyn(*a, **k), in_tree, out_store)
            with gc_paused():
                jaxpr, consts = core.trace_to_jaxpr(flat, list(avals))
            tracer_consts = [isinstance(c, core.Tracer) for c in consts]
            if any(tracer_consts):  # closes over an enclosing transform's values: pass them in
                jaxpr = core.Jaxpr([], jaxpr.constvars + jaxpr.invars, jaxpr.eqns, jaxpr.outvars)
                return core.ClosedJaxpr(jaxpr, []), list(consts) + leaves, out_store.val
            entry = self._cache[key] = (core.ClosedJaxpr(jaxpr, consts), out_store.val)
        closed, out_tree = entry
        return closed, leaves, out_tree

    def __get__(self, obj, objtype=None):
        """As a method: bound to the instance, which becomes the first argument."""
        return self if obj is None else types.MethodType(self, obj)

    def __call__(self, *args, **kwargs):
        if core.config.disable_jit:
            return self.fun(*args, **kwargs)
        fast = (self._fast is not None and not kwargs and core._state.trace is core.eval_trace
                and not core.config.debug_nans    # debug_nans checks in jit_p's impl
                and core.x64_enabled())           # without x64, arguments are converted
        if fast:
            outs = self._call_fast(args)
            if outs is _MISS and self._fast_device:
                outs = self._call_on_device(args)
            if outs is not _MISS:
                return outs
        from .jit_primitive import jit_p
        closed, flat_args, out_tree = self._trace(args, kwargs)
        params = dict(jaxpr=closed, name=getattr(self.fun, "__name__", "fun"), backend=self.backend)
        outs = jit_p.bind(*flat_args, **params)
        if fast:
            self._remember_fast(closed, args, flat_args, out_tree)
            self._remember_device(params, args, flat_args, out_tree)
        return tree_unflatten(out_tree, outs)

    def _call_on_device(self, args):
        """The outputs of a call whose array leaves are all Arrays committed to one accelerator,
        with a signature run before: straight to that device's jit executor (no retrace, no
        bind). _MISS when the call must take the general path."""
        leaves, tree = tree_flatten(args)
        device = None
        for x in leaves:
            if type(x) is not core.Array or not x._committed or (
                    device is not None and x._device is not device):
                return _MISS
            device = x._device
        hit = self._fast_device.get((tree, tuple([x.aval for x in leaves]), device))
        if hit is None:
            return _MISS
        from .jit_primitive import jit_p
        params, out_tree = hit
        outs = core.device_impls[device.platform](jit_p, [x._value for x in leaves], params, device)
        return tree_unflatten(out_tree, outs)

    def _remember_device(self, params, args, flat_args, out_tree):
        leaves, tree = tree_flatten(args)
        if (len(leaves) != len(flat_args) or any(a is not b for a, b in zip(leaves, flat_args))
                or len(self._fast_device) >= 64):
            return
        devices = {x._device for x in leaves if type(x) is core.Array and x._committed}
        if len(devices) != 1 or not all(type(x) is core.Array and x._committed for x in leaves):
            return
        device = devices.pop()
        if device.platform in core.device_impls:
            key = (tree, tuple(x.aval for x in leaves), device)
            self._fast_device[key] = (params, out_tree)

    def _call_fast(self, args):
        """The outputs of a call whose arguments are all arrays at the top level (uncommitted
        Arrays or ndarrays) of a signature run before: straight to the compiled kernel. _MISS
        (not None: a function may return None) when the call must take the general path."""
        bufs, owned = [], None
        for a in args:
            t = type(a)
            if t is core.Array:
                if a._committed:
                    return _MISS
                b = a._value
                if not (b.flags.c_contiguous and b.flags.writeable):
                    # an equal buffer the kernel takes as it is (Arrays are immutable)
                    b = a._value = np.array(b)
                bufs.append(b)
            elif t is np.ndarray and a.flags.c_contiguous and a.flags.writeable:
                bufs.append(a)
                owned = args
            else:
                return _MISS
        hit = self._fast.get(tuple([(b.shape, b.strides, b.dtype) for b in bufs]))
        if hit is None:
            return _MISS
        kernel, prefix, suffix, out_tree = hit
        outs = kernel(*prefix, *bufs, *suffix)
        if owned is not None:       # an output may be (a view of) the caller's ndarray
            outs = core.to_arrays(outs, core.owned_ndarrays(owned))
        else:
            outs = [core.make_array(o) for o in outs]
        return outs[0] if out_tree is None else tree_unflatten(out_tree, outs)

    def _remember_fast(self, closed, args, flat_args, out_tree):
        from . import backends
        from .jit_primitive import backend_executors
        if (len(flat_args) != len(args) or backend_executors.get(self.backend) is None
                or len(self._fast) >= 64):
            return
        bufs = [a._value if type(a) is core.Array else a for a in args]
        if not all(type(b) is np.ndarray and b.flags.c_contiguous and b.flags.writeable
                   and b.dtype.isnative for b in bufs):     # the kernel takes them as they are
            return
        ex = backends._executables.get(closed)
        if getattr(ex, "checked", False) and hasattr(ex, "kernel"):
            single = getattr(out_tree, "nodetype", False) is None
            key = tuple((b.shape, b.strides, b.dtype) for b in bufs)
            self._fast[key] = (ex.kernel, ex.prefix, ex.suffix, None if single else out_tree)

    def lower(self, *args, **kwargs):
        """The lowered form of this function for these arguments (its jaxpr and generated
        source; see ``.as_text()``)."""
        from .backends import lower_for_backend
        closed, flat_args, _ = self._trace(args, kwargs)
        return lower_for_backend(closed, flat_args, self.backend)

    def cache_size(self):
        """Number of traced signatures held."""
        return len(self._cache)


@contextlib.contextmanager
def disable_jit(disable=True):
    """A context in which jit-decorated functions run as plain Python (un-traced: prints and
    breakpoints see concrete values), as ``jax.disable_jit``; restores the setting on exit."""
    saved = core.config.disable_jit
    core.config.disable_jit = bool(disable)
    try:
        yield
    finally:
        core.config.disable_jit = saved


@contextlib.contextmanager
def default_matmul_precision(precision):
    """A context in which float32 matmuls without ``precision=`` use ``precision`` (JAX's names:
    "default", "high", "highest", "float32", "tensorfloat32", "bfloat16"...), as
    ``jax.default_matmul_precision``; restores the setting on exit."""
    saved = core.config.default_matmul_precision
    core.config.default_matmul_precision = precision
    try:
        yield
    finally:
        core.config.default_matmul_precision = saved


def jit(fun=None, static_argnums=(), static_argnames=(), backend=None, **unused):
    """Compile fun: traced once per input signature (shapes, dtypes, static values) and run
    as generated numba code on the CPU (backend="cpu", default) or GPU (backend="cuda")."""
    if fun is None:
        return lambda f: jit(f, static_argnums, static_argnames, backend)
    _check_callable(fun, "jit")
    return Jitted(fun, static_argnums, static_argnames, backend)
