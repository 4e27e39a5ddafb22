"""functrans.debug: ``print`` and ``callback``, which run on the values a program computes,
eagerly and under every transform (jit, vmap, grad, control flow); see docs/api_debug.md."""
from __future__ import annotations

import string
import sys

import numpy as np

from .lax.callback import FlatCallback, debug_callback_p, split_callback_args

__all__ = ["print", "callback"]


def callback(callback, *args, ordered=False, partitioned=False, **kwargs):
    """Call ``callback(*args, **kwargs)`` on the host for its side effect, with the array
    arguments as functrans.Arrays holding their runtime values. Under ``vmap`` it is called
    once per batch element, in order; under ``grad``/``jvp`` with the primal values; inside
    loops once per iteration; it is never removed as dead code. Returns None.
    (``partitioned`` is accepted for JAX's signature; there is one device.)"""
    del partitioned
    dynamic, tree, static = split_callback_args(args, kwargs)
    debug_callback_p.bind(*dynamic, callback=FlatCallback(callback, tree, static),
                          ordered=bool(ordered))


class _FormatChecker(string.Formatter):
    """str.format's checks without the formatting: the same errors for missing fields, and a
    ValueError for arguments the format does not use (as JAX's debug.print)."""

    def format_field(self, value, format_spec):
        return ""

    def get_value(self, key, args, kwargs):
        if isinstance(key, int) and key >= len(args):     # str.format's wording
            raise IndexError(f"Replacement index {key} out of range for positional args tuple")
        return super().get_value(key, args, kwargs)

    def check_unused_args(self, used_args, args, kwargs):
        unused = [a for i, a in enumerate(args) if i not in used_args]
        unused_kw = [k for k in kwargs if k not in used_args]
        if unused:
            raise ValueError(f"Unused positional arguments to `functrans.debug.print`: {unused}")
        if unused_kw:
            raise ValueError(
                f"Unused keyword arguments to `functrans.debug.print`: {unused_kw}. You may be "
                "passing an f-string (f\"{x}\") and should pass a regular string instead.")


class _Printer:
    """The callback of one debug.print: formats with the NumPy print options of trace time."""
    __slots__ = ("fmt", "placeholders", "options")

    def __init__(self, fmt, placeholders, options):
        self.fmt, self.placeholders, self.options = fmt, placeholders, options

    __name__ = "print"

    def __call__(self, *args, **kwargs):
        with np.printoptions(**dict(self.options)):
            if self.placeholders:
                msg = self.fmt.format(*args, **kwargs)
            else:
                msg = " ".join([self.fmt] + [str(a) for a in args])
        sys.stdout.write(msg + "\n")


def _has_placeholders(fmt):
    return any(field is not None for _, field, _, _ in string.Formatter().parse(fmt))


def print(fmt=None, *args, ordered=False, partitioned=False, skip_format_check=False,  # noqa: A001
          **kwargs):
    """Print ``fmt.format(*args, **kwargs)`` with the runtime values of the arguments (a format
    without placeholders is followed by the arguments, space-separated), eagerly and inside
    transformed functions, in program order. A format that does not fit the arguments raises
    str.format's error when the call is traced. Returns None; ``print(ordered=...)`` with no
    format returns the printing function (JAX's two-call form)."""
    if fmt is None:
        if args or kwargs:
            raise TypeError("functrans.debug.print: with no format string, only the options "
                            "(ordered, partitioned, skip_format_check) may be given")
        return lambda fmt, *a, **kw: print(fmt, *a, ordered=ordered, partitioned=partitioned,
                                           skip_format_check=skip_format_check, **kw)
    placeholders = _has_placeholders(fmt)
    if not skip_format_check:
        if placeholders:
            _FormatChecker().format(fmt, *args, **kwargs)
        elif kwargs:
            raise ValueError(f"Unused keyword arguments to `functrans.debug.print`: "
                             f"{list(kwargs)} (the format has no placeholders)")
    printer = _Printer(fmt, placeholders, tuple(np.get_printoptions().items()))
    callback(printer, *args, ordered=ordered, partitioned=partitioned, **kwargs)
