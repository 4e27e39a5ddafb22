"""The core of functrans: abstract values, primitives and trace dispatch, and the jaxpr IR.

Dispatch is context based (as in current JAX and autodidax2): one *current trace*; ``bind``
hands the operation to it, and each transform's rule runs with the trace's parent current.
A value that is not a tracer of the trace handling it is a constant to that trace. Every
transform application makes a new trace object, so perturbation confusion cannot happen.
"""
from __future__ import annotations

import bisect
import os
import sys
import sysconfig

import ml_dtypes
import numpy as np
from numpy.lib.array_utils import byte_bounds

from ._config import _checks as _config_checks
from ._config import config  # (also re-exported: functrans.core.config)
from .devices import default_device
from .tree_util import register_leaf_type
from .errors import (ConcretizationTypeError, TracerArrayConversionError,
                     TracerBoolConversionError, TracerIntegerConversionError,
                     UnexpectedTracerError)




# ---------------------------------------------------------------------------------------------
# Abstract values

_DTYPE_SHORT = {"float16": "f16", "float32": "f32", "float64": "f64", "int8": "i8", "int16": "i16",
                "int32": "i32", "int64": "i64", "uint8": "u8", "uint16": "u16", "uint32": "u32",
                "uint64": "u64", "bool": "bool", "complex64": "c64", "complex128": "c128"}

float0 = np.dtype([("float0", np.void, 0)])  # the tangent dtype of integer and bool values
bfloat16 = np.dtype(ml_dtypes.bfloat16)
_DTYPE_SHORT["bfloat16"] = "bf16"
# the 16-bit floats: stored narrow, computed in float32 (docs/mixed_precision.md)
NARROW_FLOATS = frozenset((bfloat16, np.dtype(np.float16)))


def dtype_kind(dtype):
    """dtype.kind, with bfloat16 (an ml_dtypes extension type, kind 'V') counted as 'f'."""
    dtype = np.dtype(dtype)
    return "f" if dtype == bfloat16 else dtype.kind


class ShapedArray:
    """The abstract value of an array: its shape and dtype."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape = shape if type(shape) is tuple else tuple(shape)
        self.dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)

    ndim = property(lambda self: len(self.shape))
    size = property(lambda self: int(np.prod(self.shape, dtype=np.int64)))

    def __eq__(self, other):
        return (type(other) is ShapedArray and self.shape == other.shape
                and self.dtype == other.dtype)

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def str_short(self):
        """E.g. 'f32[3,4]'."""
        return f"{_DTYPE_SHORT.get(self.dtype.name, self.dtype.name)}[{','.join(map(str, self.shape))}]"

    __repr__ = __str__ = str_short

    def update(self, shape=None, dtype=None):
        """A copy with the given fields replaced."""
        return ShapedArray(self.shape if shape is None else shape,
                           self.dtype if dtype is None else dtype)


def is_float(dtype):
    """True for real floating dtypes."""
    return dtype_kind(dtype) == "f"


def has_tangent(dtype):
    """True for the dtypes whose values carry tangents: real floating and complex (integer and
    bool values have symbolic zero tangents, float0 at the API boundary)."""
    return dtype_kind(dtype) in "fc"


_aval_memo = {}   # (shape, dtype) -> ShapedArray, for native real and bool dtypes only


_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1


def check_int64(x):
    """x; OverflowError (as JAX) if it is a Python int outside int64, which NumPy would make an
    object (or uint64) array, or convert to a float silently."""
    if type(x) is int and not _INT64_MIN <= x <= _INT64_MAX:
        raise OverflowError(f"Python int {x} too large to convert to int64")
    return x


def scalar_array(x):
    """The Python or NumPy scalar x as a 0-d ndarray (check_int64's OverflowError)."""
    return np.asarray(check_int64(x))


# the dtypes every primitive handles: native-order bool, integer and real float (the only ones
# the aval memo holds, so a memo hit proves it); a set, for membership is the cheapest test.
# float16 and bfloat16 are not among them: their operations take the general path, which
# computes them in float32 (_run_narrow).
# With jax_enable_x64 off the 64-bit ones leave the set (set_x64), so that every value entering
# through a slow path is canonicalised to 32 bits there.
_ALL_PLAIN_DTYPES = frozenset(np.dtype(c) for c in "?bBhHiIlLqQfdg")
_PLAIN_DTYPES = _ALL_PLAIN_DTYPES
# 64-bit dtype -> its 32-bit counterpart: what values become with jax_enable_x64 off (as JAX)
_NARROW = {np.dtype(a): np.dtype(b) for a, b in
           [("i8", "i4"), ("u8", "u4"), ("f8", "f4"), ("c16", "c8"), ("g", "f4")]}
_x64 = True


def _is_plain(dtype):
    """True for the dtypes in _PLAIN_DTYPES."""
    return dtype in _PLAIN_DTYPES


def x64_enabled():
    """True when 64-bit values are kept (the default); False after
    ``config.update("jax_enable_x64", False)``, when they are canonicalised to 32 bits."""
    return _x64


def canonicalize_dtype(dtype):
    """dtype as values of it are stored: itself, or with x64 off its 32-bit counterpart."""
    dtype = np.dtype(dtype)
    return dtype if _x64 else _NARROW.get(dtype, dtype)


def set_x64(enabled):
    """Switch 64-bit canonicalisation (config's jax_enable_x64 hook): the plain dtypes, the
    scalar avals and the aval memo follow."""
    global _x64, _PLAIN_DTYPES, _SCALAR_AVALS
    _x64 = bool(enabled)
    _PLAIN_DTYPES = _ALL_PLAIN_DTYPES if _x64 else _ALL_PLAIN_DTYPES - _NARROW.keys()
    _SCALAR_AVALS = {t: a for t, a in _ALL_SCALAR_AVALS.items() if _is_plain(a.dtype)}
    _aval_memo.clear()


def _check_x64(value):
    set_x64(value)
    return bool(value)


_config_checks["enable_x64"] = _check_x64


def canonical_buffer(x, what="argument"):
    """The ndarray x in the layout functrans computes on: native byte order (a big-endian
    array is copied), 32-bit with x64 off. TypeError naming ``what`` for dtypes that are not
    numbers or bools (object, strings, records, datetimes)."""
    dt = x.dtype
    if dt.kind not in "biufc":
        if dt == float0 or dt == bfloat16:   # float0: the tangents of integer inputs
            return x
        raise TypeError(f"{what} has dtype {dt} ({x!r:.60}), which is not a valid functrans "
                        "array type: only bool, integer, floating-point and complex arrays are "
                        f"supported{where()}")
    if not _x64 and dt.newbyteorder("=") in _NARROW:
        return x.astype(_NARROW[dt.newbyteorder("=")])
    return x if dt.isnative else x.astype(dt.newbyteorder("="))


def get_aval(x):
    """The ShapedArray of an Array, tracer, NumPy array or Python/NumPy scalar."""
    if type(x) is Array or isinstance(x, Tracer):
        return x.aval
    if type(x) is np.ndarray or isinstance(x, np.generic):
        a = _aval_memo.get((x.shape, x.dtype))
        return a if a is not None else _new_aval(x)
    if isinstance(x, np.ndarray):
        return _new_aval(x)
    if isinstance(x, (bool, int, float, complex)):
        return _new_aval(scalar_array(x))
    raise TypeError(f"Value {x!r} of type {type(x).__name__} is not a valid functrans array type")


def as_array(x):
    """x as an array value: Arrays and tracers pass through; ndarrays in native byte order
    (copied if big-endian); scalars and objects with ``__array__`` become ndarrays. TypeError
    naming its type for anything else, or its dtype for non-numeric arrays; OverflowError for
    Python ints outside int64."""
    if type(x) is Array or isinstance(x, Tracer):
        return x
    if isinstance(x, np.ndarray):
        return x if _is_plain(x.dtype) else canonical_buffer(x, "value")
    if isinstance(x, (bool, int, float, complex, np.generic)):
        return canonical_buffer(scalar_array(x), "value")
    if hasattr(x, "__array__") and not isinstance(x, type):
        return canonical_buffer(np.asarray(x), "value")
    raise TypeError(f"Value {x!r} of type {type(x).__name__} is not a valid functrans array type")


# ---------------------------------------------------------------------------------------------
# Where the user's code is

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB = sysconfig.get_paths()["stdlib"]


def user_frame():
    """(filename, lineno, function) of the innermost frame outside functrans and the stdlib."""
    f = sys._getframe(1)
    while f is not None:
        fn = f.f_code.co_filename
        if not (fn.startswith(_PKG_DIR) or fn.startswith(_STDLIB) or fn.startswith("<frozen")):
            return (fn, f.f_lineno, f.f_code.co_name)
        f = f.f_back
    return None


def format_source(src):
    """'file.py:12 (fn)' for a user_frame() triple, or '<unknown>'."""
    if src is None:
        return "<unknown location>"
    return f"{src[0]}:{src[1]} ({src[2]})"


def where():
    """' at file.py:12 (fn)' for the current user frame."""
    return " at " + format_source(user_frame())


# ---------------------------------------------------------------------------------------------
# Primitives and their rule tables

impl_rules = {}            # prim -> f(*arrays, **params) -> array(s)         (EvalTrace)
abstract_eval_rules = {}   # prim -> f(*avals, **params) -> aval(s)           (staging)
partial_eval_rules = {}    # prim -> f(trace, tracers, **params)              (higher-order prims)


class Primitive:
    """A named operation. ``bind(*arrays, **static_params)`` hands it to the current trace."""
    __slots__ = ("name", "multiple_results")

    def __init__(self, name, multiple_results=False):
        self.name = name
        self.multiple_results = multiple_results

    def bind(self, *args, **params):
        """Apply the primitive under the current trace; returns an array (or a list)."""
        return _state.trace.process_primitive(self, args, params)

    def __repr__(self):
        return self.name


def abstract_eval(prim, avals, params):
    """Output avals (always a list) of prim applied to avals."""
    rule = abstract_eval_rules.get(prim)
    if rule is None:
        raise NotImplementedError(f"abstract evaluation rule for '{prim.name}' not implemented")
    out = rule(*avals, **params)
    return list(out) if prim.multiple_results else [out]


# ---------------------------------------------------------------------------------------------
# Traces and dispatch

class Trace:
    """One application of a transform. Tracers of this trace carry ``_trace is self``."""
    __slots__ = ("parent", "valid")

    def __init__(self, parent):
        self.parent = parent
        self.valid = True

    def process_primitive(self, prim, args, params):
        raise NotImplementedError

    def check_foreign(self, x):
        """x is not ours: it is a constant, unless its trace has already finished."""
        if isinstance(x, Tracer) and not x._trace.valid:
            raise escaped_tracer_error(x)


def escaped_tracer_error(x):
    """The UnexpectedTracerError for tracer x met where it cannot be used; its ``trace``
    attribute is x's trace (still valid when x's transform is suspended, not finished)."""
    err = UnexpectedTracerError(
        f"Encountered an unexpected tracer: a {x.aval.str_short()} value created inside a "
        f"transformed function ({type(x._trace).__name__}) escaped it, e.g. by being stored in a "
        f"global or returned through a side channel, and was used{where()}. Return values "
        "from transformed functions instead of leaking them.")
    err.trace = x._trace
    return err


# the hot paths' NumPy names, bound once (a global lookup instead of a global and an attribute)
_ndarray, _asarray = np.ndarray, np.asarray


class EvalTrace(Trace):
    """The bottom of every stack: runs impl rules on the buffers of Arrays, and returns Arrays
    on the device the inputs were committed to (the default device if none was)."""
    __slots__ = ()

    def process_primitive(self, prim, args, params):
        # the common case, inline (it runs for every eager op): uncommitted Arrays and ndarrays
        vals, views = [], False
        for x in args:
            t = type(x)
            if t is Array and x._plain:
                vals.append(x._value)
            elif t is _ndarray and x.dtype in _PLAIN_DTYPES:
                vals.append(x)
                views = True
            else:
                return self._process_general(prim, args, params)
        if prim in placement_rules:
            return self._process_general(prim, args, params)
        out = _run_impl(prim, vals, params)
        t = type(out)
        if t is _ndarray:
            if views:    # it may be a view of the caller's ndarray
                return to_array(out, owned_ndarrays(args))
            aval = _aval_memo.get((out.shape, out.dtype))
            if aval is None:        # a new shape, or a dtype that is not plain (complex)
                return make_array(out)
        else:
            aval = _SCALAR_AVALS.get(t)     # a NumPy scalar: what NumPy returns for 0-d operands
            if aval is None:
                return (to_arrays(out, owned_ndarrays(args)) if prim.multiple_results
                        else to_array(out))
            out = _asarray(out)
        a = _new_object(Array)          # make_array(out), inline
        a._value, a.aval, a._device, a._committed, a._plain = out, aval, _CPU0, False, True
        return a

    def _process_general(self, prim, args, params):
        """Any arguments: Python scalars, Arrays committed to a device, escaped tracers."""
        vals, device, owned = _unwrap(prim, args)
        if device is None and prim in placement_rules:
            device = placement_rules[prim](params)
        if device is not None and device.platform != "cpu":
            return device_impls[device.platform](prim, vals, params, device)
        if any(type(v) is np.ndarray and v.dtype in NARROW_FLOATS for v in vals):
            out = _run_narrow(prim, vals, params)
        else:
            out = _run_impl(prim, vals, params)
        if prim.multiple_results:
            return [to_array(o, owned, device, device is not None) for o in out]
        return to_array(out, owned, device, device is not None)


def _run_impl(prim, vals, params):
    """prim's impl rule on vals; its errors name the primitive and the user's line."""
    rule = impl_rules.get(prim)
    if rule is None:
        raise _no_impl_error(prim)
    if config.debug_nans:   # raise at the first NaN (functrans/_debug_nans.py)
        from ._debug_nans import checked
        rule = checked(prim, rule)
    try:
        return rule(*vals, **params)
    except (ValueError, TypeError, IndexError) as e:
        if getattr(e, "_functrans_located", False):
            raise
        raise _located(prim, e) from e


def _runs_narrow_natively(params):
    """True for the primitives that take 16-bit floats as they are: those carrying a jaxpr
    (its equations are run one by one) or a Python callable (the user's callback sees its own
    dtypes)."""
    def native(v):
        if isinstance(v, (tuple, list)):
            return any(map(native, v))
        return isinstance(v, (Jaxpr, ClosedJaxpr)) or callable(v) and not isinstance(v, type)
    return any(map(native, params.values()))


def _run_narrow(prim, vals, params):
    """prim on operands some of which are float16/bfloat16 arrays: computed in float32 and
    each output rounded (to nearest even) to the dtype abstract evaluation gives it, as XLA
    does on the CPU. ml_dtypes' bfloat16 matmul returns float32, scipy has no 16-bit loops,
    NumPy's float16 cumsum accumulates in float16; this makes every primitive its float32
    value, rounded once."""
    if prim in bit_primitives or _runs_narrow_natively(params):
        return _run_impl(prim, vals, params)
    out_avals = abstract_eval(prim, [get_aval(v) for v in vals], params)
    wide = [v.astype(np.float32) if type(v) is np.ndarray and v.dtype in NARROW_FLOATS else v
            for v in vals]
    out = _run_impl(prim, wide, params)
    outs = out if prim.multiple_results else [out]
    outs = [np.asarray(o).astype(a.dtype, copy=False) for o, a in zip(outs, out_avals)]
    return outs if prim.multiple_results else outs[0]


# NumPy's numeric scalar types -> the aval of the 0-d arrays they stand for
_ALL_SCALAR_AVALS = {t: ShapedArray((), np.dtype(t)) for t in set(np.sctypeDict.values())
                     if issubclass(t, (np.number, np.bool_)) and _is_plain(np.dtype(t))}
_SCALAR_AVALS = _ALL_SCALAR_AVALS
set_x64(config.enable_x64)     # the environment's choice (FUNCTRANS_ENABLE_X64, JAX_ENABLE_X64)


def _no_impl_error(prim):
    return NotImplementedError(f"evaluation rule (impl) for '{prim.name}' not implemented")


def _located(prim, e):
    """A copy of the error e of prim's rule, naming prim and the user's line."""
    err = type(e)(f"{prim.name}: {e}{where()}")
    err._functrans_located = True
    return err


# platform -> f(prim, buffers, params, device) -> Array(s): eager evaluation on that platform's
# buffers (registered by the GPU backend)
device_impls = {}
# prim -> f(params) -> Device or None: where prim runs when no input is committed anywhere
# (jit with backend="cuda" runs on the GPU)
placement_rules = {}


def _unwrap(prim, args):
    """(the buffers of args, the device they are committed to or None, the writable ndarrays
    among them or None). ValueError naming both devices when args are committed to two;
    ndarrays in native byte order; TypeError naming prim for a complex operand when prim is not
    in complex_primitives, and for a non-numeric ndarray."""
    vals, device, owned, cplx = [], None, None, False
    for x in args:
        t = type(x)
        if t is Array:
            if x._committed and x._device is not device:
                if device is not None:
                    raise device_mismatch_error(prim.name, device, x._device)
                device = x._device
            cplx = cplx or x.aval.dtype.kind == "c"
            vals.append(x._value)
        elif t is np.ndarray:
            if x.flags.writeable:
                if owned is None:
                    owned = _Owned()
                owned.append(x)
            if not _is_plain(x.dtype):
                x = canonical_buffer(x, f"{prim.name}: an operand")
                cplx = cplx or x.dtype.kind == "c"
            vals.append(x)
        elif isinstance(x, Tracer):
            raise escaped_tracer_error(x)
        else:
            cplx = cplx or isinstance(x, (complex, np.complexfloating))
            vals.append(x)
    if cplx and prim not in complex_primitives:
        raise _located(prim, complex_operand_error(prim))
    return vals, device, owned


# Primitives whose every rule (impl, abstract eval, jvp, transpose, batching, the CPU backend)
# handles complex operands correctly; higher-order primitives are here too, for their bodies
# are checked equation by equation. Any other primitive given a complex operand raises
# TypeError naming it, eagerly and when staged: the ones defined for real numbers only (max,
# comparisons, floor, atan2, erf, ...; docs/numerics.md lists them).
complex_primitives = set()

# Primitives reading their operands' bits (lax.bitcast_convert_type): 16-bit floats reach their
# impls as they are, not widened to float32 (_run_narrow).
bit_primitives = set()


def complex_operand_error(prim):
    """The TypeError for a complex operand of a primitive not in complex_primitives."""
    return TypeError(f"complex operands are not supported by '{prim.name}' (it is defined for "
                     "real numbers only: see docs/numerics.md)")


def device_mismatch_error(what, d1, d2):
    """The ValueError for Arrays committed to two devices meeting in one computation."""
    return ValueError(f"{what}: received Arrays committed to different devices, {d1} and {d2}"
                      f"{where()}. Computation follows data and functrans never moves data "
                      "silently: bring them together with functrans.device_put(x, device).")


class _State:
    __slots__ = ("trace", "axis_env")


_state = _State()
eval_trace = EvalTrace(None)
_state.trace = eval_trace
_state.axis_env = ()


def current_trace():
    """The trace that ``bind`` currently dispatches to."""
    return _state.trace


def staging():
    """True if a jaxpr is being staged (make_jaxpr, jit, a control-flow body) below the current
    trace: then constants must be built by binding, so that they are recorded as equations."""
    t = _state.trace
    while t is not None:
        if type(t) is StagingTrace and not t.forward:
            return True
        t = t.parent
    return False


class set_current_trace:
    """Context manager: make ``trace`` current for the duration of the block; with
    invalidate=True also mark it finished on exit, so tracers that escape are caught."""
    __slots__ = ("trace", "prev", "invalidate")

    def __init__(self, trace, invalidate=False):
        self.trace, self.invalidate = trace, invalidate

    def __enter__(self):
        self.prev = _state.trace
        _state.trace = self.trace
        return self.trace

    def __exit__(self, *exc):
        _state.trace = self.prev
        if self.invalidate:
            self.trace.valid = False


def transform_trace(trace):
    """Context manager for running one transform application: ``trace`` is current inside,
    and invalid afterwards."""
    return set_current_trace(trace, invalidate=True)


def call_in_parent(trace, f, *args):
    """Run f(*args) with trace.parent current (what every transform rule does)."""
    prev = _state.trace
    _state.trace = trace.parent
    try:
        return f(*args)
    finally:
        _state.trace = prev


# ---------------------------------------------------------------------------------------------
# The axis environment: the named axes in scope for collectives (functrans.lax.parallel)

class AxisFrame:
    """A named axis in scope: ``vmap(..., axis_name=)`` or ``make_jaxpr(..., axis_env=)`` binds
    one. ``runner``, if not None, evaluates collectives over this axis when they reach eager
    evaluation: ``runner(prim, values, params)`` (an axis spread over processes would bind one);
    under vmap the batch trace rewrites every collective before that, so its frames have none."""
    __slots__ = ("name", "size", "runner")

    def __init__(self, name, size, runner=None):
        self.name, self.size, self.runner = name, int(size), runner

    def __repr__(self):
        return f"AxisFrame({self.name!r}, {self.size})"


def unbound_axis_error(name):
    """The NameError for a collective over an axis name nothing binds (JAX's wording)."""
    return NameError(f"unbound axis name: {name}{where()}. Collectives act over the named axis "
                     f"of an enclosing vmap(..., axis_name={name!r}) (or make_jaxpr(..., "
                     "axis_env=[(name, size)]))")


def axis_frame(name):
    """The innermost frame binding axis ``name``; NameError if none does."""
    for frame in reversed(_state.axis_env):
        if frame.name == name:
            return frame
    raise unbound_axis_error(name)


class extend_axis_env:
    """Context manager: the frames (AxisFrame objects) are in scope inside the block."""
    __slots__ = ("frames", "prev")

    def __init__(self, frames):
        self.frames = tuple(frames)

    def __enter__(self):
        self.prev = _state.axis_env
        _state.axis_env = self.prev + self.frames

    def __exit__(self, *exc):
        _state.axis_env = self.prev


def axis_env_key():
    """The (name, size) pairs in scope, innermost last: traces of the same function under
    different axis environments differ (a collective's name may be bound in one only)."""
    return tuple((f.name, f.size) for f in _state.axis_env)


# ---------------------------------------------------------------------------------------------
# Tracers and Arrays: one set of operators and methods

_array_methods = {}  # filled by functrans.numpy (install_array_methods): operators and methods


class _ArrayOps:
    """What Tracer and Array share: shape properties, len/iter/hash, and the operators and
    methods that functrans.numpy installs here (``install_array_methods``), so the traced and
    the concrete array can never drift apart."""
    __slots__ = ()

    shape = property(lambda self: self.aval.shape)
    dtype = property(lambda self: self.aval.dtype)
    ndim = property(lambda self: len(self.aval.shape))
    size = property(lambda self: self.aval.size)
    itemsize = property(lambda self: self.aval.dtype.itemsize)
    nbytes = property(lambda self: self.aval.size * self.aval.dtype.itemsize)

    def __len__(self):
        if not self.aval.shape:
            raise TypeError("len() of unsized object")
        return self.aval.shape[0]

    def __iter__(self):
        if not self.aval.shape:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(self.aval.shape[0]))

    def __hash__(self):
        raise TypeError(f"unhashable type: '{type(self).__name__}' ({self.aval.str_short()}), "
                        "as in JAX; use a tuple of Python values (x.tolist()) as a key")


_PROPERTY_METHODS = ("T", "mT", "at", "real", "imag")


def install_array_methods(methods):
    """Install operators and methods (name -> function of the array) on Tracer and Array at
    once; names in _PROPERTY_METHODS become properties. Subclass definitions take precedence."""
    _array_methods.update(methods)
    for name, f in methods.items():
        setattr(_ArrayOps, name, property(f) if name in _PROPERTY_METHODS else f)


class Tracer(_ArrayOps):
    """A value flowing through user code while a transform runs."""
    __slots__ = ("_trace",)
    __array_priority__ = 1000
    __array_ufunc__ = None

    @property
    def aval(self):
        raise NotImplementedError

    def to_concrete_value(self):
        """The concrete value behind this tracer, or None if it is abstract."""
        return None

    def _concrete(self, what, err=ConcretizationTypeError):
        v = self.to_concrete_value()
        if v is None:
            raise err(
                f"Abstract tracer value encountered where a concrete value is expected: {what} "
                f"of a traced {self.aval.str_short()} value{where()}. Under jit (and inside lax "
                "control-flow bodies) values are abstract: use functrans.lax.cond / "
                "functrans.numpy.where for value-dependent branches, or mark the argument "
                "static with static_argnums / static_argnames.")
        return v

    def __bool__(self):
        return bool(self._concrete("bool()", TracerBoolConversionError))

    def __int__(self):
        return int(self._concrete("int()", TracerIntegerConversionError))

    def __float__(self):
        return float(self._concrete("float()"))

    def __complex__(self):
        return complex(self._concrete("complex()"))

    def __index__(self):
        if self.dtype.kind not in "iub":
            raise TypeError(f"only integer tracers can be used as an index, got {self.aval}")
        return int(self._concrete("an index conversion", TracerIntegerConversionError))

    def __array__(self, *args, **kwargs):
        raise TracerArrayConversionError(
            f"The numpy.ndarray conversion method __array__() was called on a traced "
            f"{self.aval.str_short()} value{where()}. NumPy functions cannot be traced: use "
            "functrans.numpy instead of numpy inside transformed functions.")

    def __setitem__(self, idx, value):
        raise _immutable_error(self)

    def __repr__(self):
        return f"Traced<{self.aval.str_short()}>with<{type(self._trace).__name__}>"


def _immutable_error(x):
    return TypeError(f"'{type(x).__name__}' object does not support item assignment: functrans "
                     f"arrays are immutable. Instead of x[idx] = y, use x = x.at[idx].set(y) "
                     f"(or .add, .multiply, .min, .max, ...){where()}")


class _ArrayMeta(type):
    def __instancecheck__(cls, x):     # as jax.Array: tracers are Arrays too
        return type(x) is Array or isinstance(x, Tracer)


def _host(v):
    """A device buffer's value as a host ndarray (a CPU buffer is returned as it is)."""
    if type(v) is np.ndarray:
        return v
    get = getattr(v, "get", None) or getattr(v, "copy_to_host", None)
    return np.asarray(get() if get is not None else v)


def _is_basic_index(idx):
    """True for a static basic index (ints, slices of ints, None, Ellipsis, or a tuple of
    them): NumPy's view indexing then means exactly what JAX's does, apart from JAX's
    clamping of out-of-range integers, which concrete Arrays refuse as JAX does."""
    for i in (idx if type(idx) is tuple else (idx,)):
        t = type(i)
        if t is int or t is slice or i is None or i is Ellipsis:
            if t is slice and not all(type(b) is int or b is None
                                      for b in (i.start, i.stop, i.step)):
                return False
            continue
        if isinstance(i, np.integer):
            continue
        return False
    return True


class Array(_ArrayOps, metaclass=_ArrayMeta):
    """functrans's array (as jax.Array): an immutable value with a shape, a dtype, and a buffer
    on a device (a host ndarray on the CPU). Every functrans function returns Arrays.
    ``isinstance(x, Array)`` also holds for traced values, as in JAX; ``numpy.asarray(x)`` is a
    read-only view; updates are functional: ``x.at[idx].set(y)``."""
    # _plain: uncommitted, with a dtype every primitive handles (not complex): the Arrays that
    # EvalTrace's inline path may take without looking further
    __slots__ = ("_value", "aval", "_device", "_committed", "_plain")
    __array_priority__ = 100

    def __init__(self, *args, **kwargs):
        raise TypeError("functrans.Array cannot be constructed directly: use "
                        "functrans.numpy.asarray(x) or functrans.device_put(x)")

    # -- devices
    @property
    def device(self):
        """The Device holding this Array's buffer."""
        return self._device

    def devices(self):
        """The set of devices holding this Array (one)."""
        return {self._device}

    def block_until_ready(self):
        """self, once the computation producing it has finished."""
        sync = device_sync.get(self._device.platform)
        if sync is not None:
            sync(self._value)
        return self

    is_fully_addressable = property(lambda self: True)
    committed = property(lambda self: self._committed)

    # -- NumPy and Python interop
    def __array__(self, dtype=None, copy=None):
        v = _host(self._value)
        if dtype is not None and np.dtype(dtype) != v.dtype:
            if copy is False:
                raise ValueError(f"converting a {self.aval.str_short()} Array to dtype "
                                 f"{np.dtype(dtype)} needs a copy, but copy=False")
            return v.astype(dtype)
        if copy:
            return v.copy()
        if v.flags.writeable:
            v = v.view()
            v.flags.writeable = False
        return v

    def to_concrete_value(self):
        """The host value (a read-only ndarray)."""
        return self.__array__()

    def __bool__(self):
        return bool(_host(self._value))

    def __int__(self):
        return int(_host(self._value))

    def __float__(self):
        return float(_host(self._value))

    def __complex__(self):
        return complex(_host(self._value))

    def __index__(self):
        if self.aval.dtype.kind not in "iu":
            raise TypeError(f"only integer arrays can be used as an index, got {self.aval}")
        return int(_host(self._value))

    def item(self, *args):
        """The element (a Python scalar) at args (no args: of a size-1 array)."""
        return _host(self._value).item(*args)

    def tolist(self):
        """The values as nested Python lists (NumPy's tolist)."""
        return _host(self._value).tolist()

    def copy(self):
        """A new Array with its own copy of the buffer."""
        return make_array(self._value.copy(), self._device, self._committed)

    __copy__ = copy

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        return (_unpickle_array, (_host(self._value),))

    def __getitem__(self, idx):
        if type(self._value) is np.ndarray and _is_basic_index(idx):
            try:
                v = self._value[idx]
            except IndexError as e:
                raise IndexError(f"{e}{where()}") from None
            return make_array(v if type(v) is np.ndarray else np.asarray(v),
                              self._device, self._committed)
        return _array_methods["__getitem__"](self, idx)

    def __iter__(self):
        if not self.aval.shape:
            raise TypeError("iteration over a 0-d array")
        v, dev, com = self._value, self._device, self._committed
        if type(v) is not np.ndarray:        # a device buffer: rows by (device) indexing
            return (self[i] for i in range(self.aval.shape[0]))
        return (make_array(np.asarray(r) if r.__class__ is not np.ndarray else r, dev, com)
                for r in v)

    def __setitem__(self, idx, value):
        raise _immutable_error(self)

    def __repr__(self):
        # JAX's layout: the values wrap as NumPy's repr does, and the dtype follows on the last
        # line, or on a line of its own where it would not fit
        v = _host(self._value)
        prefix = "Array("
        tail = (f"shape={v.shape}, " if v.size == 0 and v.shape != (0,) else "") + \
            f"dtype={v.dtype.name})"
        width = np.get_printoptions()["linewidth"]
        body = np.array2string(v, prefix=prefix, suffix=",", separator=", ", max_line_width=width)
        last = len(body) - body.rfind("\n") + 1
        sep = " " if last + len(tail) + 1 <= width else "\n" + " " * len(prefix)
        return f"{prefix}{body},{sep}{tail}"

    def __str__(self):
        return str(_host(self._value))

    def __format__(self, spec):
        v = _host(self._value)
        return format(v[()] if v.ndim == 0 else v, spec)


_new_object = object.__new__
# platform -> f(buffer): waits for the buffer's computation (registered by GPU backends)
device_sync = {}
# (source platform, destination platform) -> f(buffer, device) -> buffer on device
device_transfers = {("cpu", "cpu"): lambda v, device: v}
_CPU0 = default_device()


def make_array(value, device=None, committed=False):
    """An Array over ``value`` (a host ndarray, or a buffer of ``device``); it takes ownership:
    nothing may write into ``value`` afterwards."""
    a = _new_object(Array)
    aval = _aval_memo.get((value.shape, value.dtype))
    if aval is None:        # not a plain dtype, or a new shape: canonicalise, then look again
        if isinstance(value, (np.ndarray, np.generic)):
            value = canonical_buffer(np.asarray(value))
        aval = _new_aval(value)
        a._plain = not committed and _is_plain(aval.dtype)
    else:
        a._plain = not committed
    a._value, a.aval = value, aval
    a._device = _CPU0 if device is None else device
    a._committed = committed
    return a


def _new_aval(buffer):
    """The aval of a buffer (a host ndarray, NumPy scalar or device array), memoised for plain
    dtypes (_is_plain); a big-endian buffer has the aval of its native-order copy."""
    shape, dtype = tuple(buffer.shape), np.dtype(buffer.dtype)
    if not _is_plain(dtype):
        if dtype.kind not in "biufc":
            return ShapedArray(shape, dtype)
        return ShapedArray(shape, canonicalize_dtype(dtype.newbyteorder("=")))
    if len(_aval_memo) > 4096:
        _aval_memo.clear()
    a = _aval_memo[(shape, dtype)] = ShapedArray(shape, dtype)
    return a


def _unpickle_array(value):
    return make_array(np.array(value))


def _aliases(v, owned):
    """True if ndarray v may share memory with one of the ndarrays in owned (a bounds check:
    it also sees views that numba made, whose .base does not lead back to the input). Many
    owned arrays (a jitted call on a pytree of weights) are checked through one sorted index
    of their byte ranges, built once per list: each result costs a bisection, not a scan."""
    if len(owned) <= 8:
        return any(np.may_share_memory(v, o) for o in owned)
    ranges = getattr(owned, "ranges", None)
    if ranges is None:
        ranges = _ByteRanges(owned)
        if type(owned) is _Owned:
            owned.ranges = ranges
    return ranges.overlaps(v)


class _Owned(list):
    """The caller's writable ndarrays of one call (what its results must not alias), with the
    index of their byte ranges once one is needed."""
    __slots__ = ("ranges",)

    def __init__(self, *args):
        super().__init__(*args)
        self.ranges = None


class _ByteRanges:
    """The union of some arrays' byte ranges, as sorted disjoint [start, end) intervals."""
    __slots__ = ("starts", "ends")

    def __init__(self, arrays):
        merged = []
        for lo, hi in sorted(_byte_bounds(a) for a in arrays):
            if merged and lo < merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.starts = [lo for lo, _ in merged]
        self.ends = [hi for _, hi in merged]

    def overlaps(self, a):
        lo, hi = _byte_bounds(a)
        i = bisect.bisect_left(self.starts, hi) - 1     # the last interval starting before hi
        return i >= 0 and self.ends[i] > lo


def _byte_bounds(a):
    """[first byte, one past the last byte) that ndarray a can touch."""
    if a.size == 0:
        return 0, 0
    lo, hi = byte_bounds(a)
    return lo, hi


def _private_copy(v):
    """A copy of the view v that shares no memory with what v views. Broadcast (stride-0) axes
    stay broadcast: only the distinct elements are copied (a bias broadcast over a batch costs
    the bias, not the batch)."""
    if v.size and 0 in v.strides:
        distinct = v[tuple(slice(0, 1) if s == 0 else slice(None) for s in v.strides)]
        return np.broadcast_to(distinct.copy(), v.shape)
    return v.copy()


def owned_ndarrays(values):
    """The writable ndarrays among values, also inside lists and tuples (the caller's memory:
    results must not alias it), or None."""
    owned = _Owned()
    for x in values:
        if isinstance(x, np.ndarray):
            if x.flags.writeable:
                owned.append(x)
        elif type(x) in (list, tuple):
            owned.extend(owned_ndarrays(x) or ())
    return owned or None


def to_output(x):
    """x as a result handed to the user: Arrays and tracers as they are; any other array is
    memory the caller may still write (an input, a closed-over array) and is copied, unless
    it is read-only memory of its own; scalars become 0-d Arrays."""
    if type(x) is Array or isinstance(x, Tracer):
        return x
    if isinstance(x, np.ndarray):
        if x.flags.writeable or not x.flags.owndata:
            x = _private_copy(x)
        return make_array(x)
    return to_array(x)


def to_array(x, owned=None, device=None, committed=False):
    """x (an Array, tracer, ndarray, NumPy or Python scalar, or anything with __array__) as an
    Array; tracers pass through. An ndarray that is (a view of) one of ``owned`` is copied."""
    t = type(x)
    if t is np.ndarray:
        if owned is not None and _aliases(x, owned):
            x = _private_copy(x)
    elif t is Array:
        if device is not None and x._device is not device:     # from an impl's inner binds
            return make_array(x._value, device, committed)
        return x
    elif isinstance(x, Tracer):
        return x
    elif isinstance(x, np.generic):
        x = np.asarray(x)
    else:
        x = np.asarray(as_array(x))
        if x.flags.writeable and not x.flags.owndata:   # a view of the caller's __array__
            x = x.copy()
    return make_array(x, device, committed)


def put(x, device=None):
    """x as an Array on device (committed to it), or where it is (device None: an ndarray goes
    to the default device, copied). Tracers pass through."""
    if isinstance(x, Tracer):
        return x
    a = x if type(x) is Array else to_output(x)
    if device is None:
        return a
    src = a._device
    if src is device:
        return a if a._committed else make_array(a._value, device, True)
    move = device_transfers.get((src.platform, device.platform))
    if move is None:
        raise NotImplementedError(f"device_put: no transfer from {src} to {device}")
    return make_array(move(a._value, device), device, True)


def to_arrays(xs, owned=None):
    """to_array of each element of the list xs (a new list)."""
    return [to_array(x, owned) for x in xs]


def concrete_or_none(x):
    """The concrete value of x if it has one (arrays do), else None."""
    if isinstance(x, Tracer):
        return x.to_concrete_value()
    return x


# ---------------------------------------------------------------------------------------------
# The IR

class Var:
    """A jaxpr variable; names are assigned when printing."""
    __slots__ = ("aval",)

    def __init__(self, aval):
        self.aval = aval

    def __repr__(self):
        return f"Var({self.aval})"


class Literal:
    """A scalar constant inlined into an equation."""
    __slots__ = ("val", "aval")

    def __init__(self, val):
        t = type(val)
        if t is Array:
            v = val._value
            self.val, self.aval = v if type(v) is np.ndarray else _host(v), val.aval
        else:
            v = val if t is np.ndarray else scalar_array(val)
            aval = _aval_memo.get((v.shape, v.dtype))
            if aval is None:
                v = canonical_buffer(v, "a constant")
                aval = get_aval(v)
            self.val, self.aval = v, aval

    def __repr__(self):
        return f"{self.val.item()!r}:{self.aval.str_short()}"


class JaxprEqn:
    """out_binders = primitive[params](*inputs), recorded at the user's source line."""
    __slots__ = ("primitive", "inputs", "params", "out_binders", "source_info")

    def __init__(self, primitive, inputs, params, out_binders, source_info=None):
        self.primitive, self.inputs, self.params = primitive, inputs, params
        self.out_binders, self.source_info = out_binders, source_info


class Jaxpr:
    """A typed program in A-normal form: constvars, invars, equations and outvars."""
    __slots__ = ("constvars", "invars", "eqns", "outvars", "__weakref__")

    def __init__(self, constvars, invars, eqns, outvars):
        self.constvars, self.invars = list(constvars), list(invars)
        self.eqns, self.outvars = list(eqns), list(outvars)

    in_avals = property(lambda self: [v.aval for v in self.invars])
    out_avals = property(lambda self: [v.aval for v in self.outvars])

    def __str__(self):
        return pp_jaxpr(self)

    __repr__ = __str__


class ClosedJaxpr:
    """A jaxpr together with the values of its constvars."""
    __slots__ = ("jaxpr", "consts", "__weakref__")

    def __init__(self, jaxpr, consts):
        assert len(jaxpr.constvars) == len(consts)
        self.jaxpr, self.consts = jaxpr, list(consts)

    in_avals = property(lambda self: self.jaxpr.in_avals)
    out_avals = property(lambda self: self.jaxpr.out_avals)
    eqns = property(lambda self: self.jaxpr.eqns)

    def __call__(self, *args):
        return eval_jaxpr(self.jaxpr, self.consts, *args)

    def __str__(self):
        return pp_jaxpr(self.jaxpr)

    __repr__ = __str__


def eval_jaxpr(jaxpr, consts, *args):
    """Evaluate a jaxpr by binding each equation under the current trace; returns a list."""
    env = {}

    def read(v):
        return v.val if type(v) is Literal else env[v]

    for v, x in zip(jaxpr.constvars, consts):
        env[v] = x
    for v, x in zip(jaxpr.invars, args):
        env[v] = x
    for eqn in jaxpr.eqns:
        outs = eqn.primitive.bind(*[read(v) for v in eqn.inputs], **eqn.params)
        if eqn.primitive.multiple_results:
            for v, x in zip(eqn.out_binders, outs):
                env[v] = x
        else:
            env[eqn.out_binders[0]] = outs
    return [read(v) for v in jaxpr.outvars]


def jaxpr_as_fun(closed):
    """A Python function evaluating a ClosedJaxpr (binds, so it can be transformed)."""
    return lambda *args: eval_jaxpr(closed.jaxpr, closed.consts, *args)


class JaxprTypeError(TypeError):
    pass


def check_jaxpr(jaxpr):
    """Type-check a jaxpr: single assignment, defined inputs, and output types that agree with
    abstract evaluation of every equation. Raises JaxprTypeError."""
    defined = set()

    def bind_var(v):
        if v in defined:
            raise JaxprTypeError(f"variable {v} defined twice")
        defined.add(v)

    def check_use(v):
        if type(v) is not Literal and v not in defined:
            raise JaxprTypeError(f"variable {v} used before definition")

    for v in jaxpr.constvars + jaxpr.invars:
        bind_var(v)
    for eqn in jaxpr.eqns:
        for v in eqn.inputs:
            check_use(v)
        outs = abstract_eval(eqn.primitive, [v.aval for v in eqn.inputs], eqn.params)
        got = [v.aval for v in eqn.out_binders]
        if outs != got:
            raise JaxprTypeError(f"{eqn.primitive.name}: abstract eval gives {outs}, "
                                 f"equation binds {got}")
        for v in eqn.out_binders:
            bind_var(v)
    for v in jaxpr.outvars:
        check_use(v)


# primitives with a side effect (debug callbacks): never dropped as dead code
effectful_primitives = set()
# primitives that call Python on the host: compiled backends run them, and any control flow
# holding them, as host steps between kernels
host_primitives = set()
# host steps whose compiled run differs from the eager impl (linalg: eagerly NumPy's
# LinAlgError, compiled JAX's NaN results); backends use host_impl(prim)
host_impl_rules = {}


def host_impl(prim):
    """The function a compiled backend runs for a host step of prim."""
    return host_impl_rules.get(prim) or impl_rules[prim]


def _sub_jaxprs(params):
    for p in params.values():
        for sub in (p if isinstance(p, (tuple, list)) else (p,)):
            if isinstance(sub, ClosedJaxpr):
                yield sub.jaxpr
            elif isinstance(sub, Jaxpr):
                yield sub


def eqn_uses(eqn, prims):
    """True if eqn binds one of prims, itself or in a jaxpr among its params (a loop body, a
    branch, a nested jit), at any depth."""
    if eqn.primitive in prims:
        return True
    return bool(prims) and any(eqn_uses(e, prims) for j in _sub_jaxprs(eqn.params)
                               for e in j.eqns)


def dce_jaxpr(jaxpr):
    """Drop equations whose outputs are unused (unless they have a side effect: see
    effectful_primitives), and unused constvars."""
    live = {v for v in jaxpr.outvars if type(v) is Var}
    kept = []
    for eqn in reversed(jaxpr.eqns):
        if any(v in live for v in eqn.out_binders) or (
                effectful_primitives and eqn_uses(eqn, effectful_primitives)):
            kept.append(eqn)
            live.update(v for v in eqn.inputs if type(v) is Var)
    kept.reverse()
    return Jaxpr(jaxpr.constvars, jaxpr.invars, kept, jaxpr.outvars), live


# ---------------------------------------------------------------------------------------------
# Printing

pp_rules = {}  # prim -> f(eqn, names) -> list of lines, for params that are jaxprs


def _var_names():
    n = 0
    while True:
        s, k = "", n
        while True:
            s = chr(ord("a") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        yield s
        n += 1


class _Namer:
    def __init__(self):
        self.names, self.gen = {}, _var_names()

    def __call__(self, v):
        if type(v) is Literal:
            return repr(v)
        if v not in self.names:
            self.names[v] = next(self.gen)
        return self.names[v]

    def binder(self, v):
        return f"{self(v)}:{v.aval.str_short()}"


def _pp_param(v):
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return np.dtype(v).name
    if callable(v) and hasattr(v, "__name__"):
        return v.__name__
    return repr(v)


def pp_jaxpr(jaxpr, indent=0, namer=None):
    """The readable listing of a jaxpr (JAX's format)."""
    namer = namer or _Namer()
    pad = " " * indent
    head = " ".join(map(namer.binder, jaxpr.constvars))
    args = " ".join(map(namer.binder, jaxpr.invars))
    lines = [f"{pad}{{ lambda {head}; {args}. let"]
    for eqn in jaxpr.eqns:
        lhs = " ".join(map(namer.binder, eqn.out_binders)) or "_"
        sub = [(k, p) for k, p in eqn.params.items() if isinstance(p, (Jaxpr, ClosedJaxpr))]
        subs = [(k, p) for k, p in eqn.params.items()
                if isinstance(p, tuple) and p and all(isinstance(q, (Jaxpr, ClosedJaxpr)) for q in p)]
        plain = {k: p for k, p in eqn.params.items()
                 if k not in dict(sub) and k not in dict(subs)}
        ps = ", ".join(f"{k}={_pp_param(p)}" for k, p in plain.items())
        args_s = " ".join(map(namer, eqn.inputs))
        lines.append(f"{pad}    {lhs} = {eqn.primitive.name}{'[' + ps + ']' if ps else ''} {args_s}")
        for k, p in sub + [(f"{k}[{i}]", q) for k, ps_ in subs for i, q in enumerate(ps_)]:
            inner = p.jaxpr if isinstance(p, ClosedJaxpr) else p
            lines.append(f"{pad}      {k}=")
            lines.append(pp_jaxpr(inner, indent + 8, _Namer()))
    outs = " ".join(map(namer, jaxpr.outvars))
    lines.append(f"{pad}  in ({outs}{',' if len(jaxpr.outvars) == 1 else ''}) }}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Staging and partial evaluation: one trace for both
#
# A StagingTrace records the primitives applied to its tracers as equations. Values that are
# not its tracers are constants of the jaxpr it builds (with ``forward=False``: make_jaxpr,
# jit, control-flow bodies) or, with ``forward=True`` (partial evaluation: linearize and
# jaxpr-level partial eval), *known* values: operations on known values only are forwarded to
# the parent trace, and known values used by recorded equations become the residuals.

class StagedTracer(Tracer):
    """An abstract value being staged into a jaxpr (or an unknown under partial eval); ``_var``
    is its variable in that jaxpr (underscored: ``x.var`` is the array method)."""
    __slots__ = ("aval", "_var")

    def __init__(self, trace, aval):
        self._trace, self.aval, self._var = trace, aval, Var(aval)


_SCALAR_TYPES = {bool, int, float, complex, np.float64, np.float32, np.int64, np.int32, np.bool_,
                 np.uint32, np.uint8, np.int8, np.int16, np.uint16, np.uint64, np.float16}


class StagingTrace(Trace):
    """Builds jaxprs. See the section comment above for ``forward``. Equations are recorded as
    they are staged; values from outside become Literals (scalars) or constvars.
    ``sources`` (default: not forward) records the user's line in each equation."""
    __slots__ = ("forward", "sources", "eqns", "constvars", "consts", "_const_var_of",
                 "_keepalive")

    def __init__(self, parent, forward=False, sources=None):
        super().__init__(parent)
        self.forward = forward
        self.sources = not forward if sources is None else sources
        self.eqns, self.constvars, self.consts, self._const_var_of = [], [], [], {}
        self._keepalive = []

    def new_arg(self, aval):
        """A fresh input tracer of this trace."""
        return StagedTracer(self, aval)

    def is_ours(self, x):
        return isinstance(x, Tracer) and x._trace is self

    def process_primitive(self, prim, args, params):
        ours = False
        for x in args:
            if isinstance(x, Tracer):
                if x._trace is self:
                    ours = True
                elif not x._trace.valid:
                    raise escaped_tracer_error(x)
        if self.forward:
            if not ours:        # known: bound in the parent, with the parent current
                prev = _state.trace
                _state.trace = parent = self.parent
                try:
                    return parent.process_primitive(prim, args, params)
                finally:
                    _state.trace = prev
            rule = partial_eval_rules.get(prim)
            if rule is not None:
                return rule(self, list(args), **params)
        return self.stage(prim, args, params)

    def stage(self, prim, args, params):
        """Record prim(*args) as an equation; returns its output tracer(s)."""
        rule = abstract_eval_rules.get(prim)
        if rule is None:
            abstract_eval(prim, (), params)        # raises NotImplementedError
        try:
            inputs = [self.to_var(x) for x in args]
            in_avals = [v.aval for v in inputs]
            if prim not in complex_primitives:
                for a in in_avals:
                    if a.dtype.kind == "c":
                        raise complex_operand_error(prim)
            out_aval = rule(*in_avals, **params)
        except (TypeError, ValueError) as e:
            if getattr(e, "_functrans_located", False):
                raise
            raise _located(prim, e) from e
        # source lines matter for staged programs; partial evaluation (linearize) skips the
        # stack walk, which would otherwise dominate eager grad's cost (grad_flow asks for it)
        src = user_frame() if self.sources else None
        if prim.multiple_results:
            outs = [StagedTracer(self, a) for a in out_aval]
            self.eqns.append(JaxprEqn(prim, inputs, params, [t._var for t in outs], src))
            return outs
        out = StagedTracer(self, out_aval)
        self.eqns.append(JaxprEqn(prim, inputs, params, [out._var], src))
        return out

    def to_var(self, x):
        """The jaxpr atom of x: its Var if it is our tracer, else a Literal or a constvar."""
        if isinstance(x, Tracer):
            if x._trace is self:
                return x._var
        elif ((type(x) is Array or isinstance(x, np.ndarray)) and not x.shape
              or x.__class__ in _SCALAR_TYPES):
            return Literal(x)
        v = self._const_var_of.get(id(x))
        if v is None:
            v = self._const_var_of[id(x)] = Var(get_aval(x))
            self.constvars.append(v)
            self.consts.append(_freeze_const(x) if not self.forward else
                               make_array(canonical_buffer(x)) if type(x) is np.ndarray
                               and not _is_plain(x.dtype) else x)
            self._keepalive.append(x)      # its id is our key: keep it from being reused
        return v

    def build(self, in_tracers, outs, dce=True):
        """The jaxpr from in_tracers to outs, and the constants it closes over (in order)."""
        outvars = [self.to_var(x) for x in outs]
        constvars, consts = self.constvars, self.consts
        jaxpr = Jaxpr(constvars, [t._var for t in in_tracers], self.eqns, outvars)
        if dce:
            jaxpr, live = dce_jaxpr(jaxpr)
            keep = [v in live or v in jaxpr.outvars for v in constvars]
            jaxpr.constvars = [v for v, k in zip(constvars, keep) if k]
            consts = [c for c, k in zip(consts, keep) if k]
        if config.check_jaxprs:
            check_jaxpr(jaxpr)
        return jaxpr, list(consts)


def _freeze_const(x):
    """A constant as a staged jaxpr keeps it: fixed at trace time, as in JAX. Arrays, tracers
    and read-only ndarrays owning their memory are kept; any other array (the caller's memory)
    becomes an Array over a copy, so mutating it later changes nothing."""
    if type(x) is Array or isinstance(x, Tracer):
        return x
    if isinstance(x, np.ndarray) and not x.flags.writeable and x.flags.owndata and _is_plain(x.dtype):
        return x
    return make_array(canonical_buffer(np.array(x), "a constant"))


for _t in (Array, StagedTracer, np.ndarray, np.float64, np.float32, np.int64, np.int32, np.bool_):
    register_leaf_type(_t)


def trace_to_jaxpr(f, in_avals):
    """Stage f (a function of flat arrays returning a flat list) into a jaxpr.
    Returns (jaxpr, consts); consts may be tracers of enclosing transforms."""
    trace = StagingTrace(_state.trace)
    args = [trace.new_arg(a) for a in in_avals]
    with transform_trace(trace):
        outs = f(*args)
    outs = [as_array(o) for o in outs]
    return trace.build(args, outs)

