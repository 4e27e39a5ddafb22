"""Small list utilities. Most tracer bugs are list-alignment bugs; these assert."""
import builtins
import contextlib
import gc
import functools


def safe_map(f, *xs):
    """map that insists all sequences have the same length; returns a list."""
    if len(xs) == 1:                    # nothing to check (the common case, kept cheap)
        return list(builtins.map(f, xs[0]))
    xs = [list(x) for x in xs]
    n = len(xs[0])
    for x in xs[1:]:
        assert len(x) == n, (n, len(x))
    return list(builtins.map(f, *xs))


# zip that insists all sequences have the same length (ValueError otherwise); a partial, not
# a def, because it runs in every interpreter loop and a Python frame costs more
safe_zip = functools.partial(builtins.zip, strict=True)


def unzip2(pairs):
    """[(a, b), ...] -> ([a, ...], [b, ...])."""
    a, b = [], []
    for x, y in pairs:
        a.append(x)
        b.append(y)
    return a, b


def split_list(xs, sizes):
    """Split xs into consecutive pieces of the given sizes plus the rest."""
    xs = list(xs)
    out = []
    for n in sizes:
        out.append(xs[:n])
        xs = xs[n:]
    out.append(xs)
    return out


def partition_list(flags, xs):
    """Split xs by boolean flags: returns (xs where not flag, xs where flag)."""
    no, yes = [], []
    for f, x in safe_zip(flags, xs):
        (yes if f else no).append(x)
    return no, yes


def merge_lists(flags, nos, yeses):
    """Inverse of partition_list."""
    nos, yeses = iter(nos), iter(yeses)
    out = [next(yeses) if f else next(nos) for f in flags]
    assert next(nos, None) is None and next(yeses, None) is None
    return out


def canonicalize_axis(axis, ndim):
    """A non-negative axis in range(ndim); raises ValueError naming both otherwise."""
    axis = int(axis)
    if not -ndim <= axis < max(ndim, 1) or (ndim == 0 and axis not in (0, -1)):
        raise ValueError(f"axis {axis} is out of bounds for an array of rank {ndim}")
    return axis % ndim if ndim else 0


def canonicalize_axes(axes, ndim):
    """A tuple of distinct non-negative axes; None means all axes."""
    if axes is None:
        return tuple(range(ndim))
    if isinstance(axes, int) or hasattr(axes, "__index__"):
        axes = (axes,)
    out = tuple(canonicalize_axis(a, ndim) for a in axes)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {tuple(axes)}")
    return out


@contextlib.contextmanager
def gc_paused():
    """A context in which Python's cyclic garbage collector does not run (it is re-enabled on
    exit if it was enabled). Tracing and lowering a large program allocate hundreds of
    thousands of long-lived objects; the collector's full passes over them made those steps
    grow faster than the program (a 5000-step chain: 2.7 s -> 1.5 s)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
