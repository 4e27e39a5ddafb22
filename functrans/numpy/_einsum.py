"""einsum: subscripts parsed once, lowered to diagonal slices, reduce_sum, dot_general and a
final transpose (pairwise contraction, left to right)."""
from __future__ import annotations

import operator
import string

import numpy as np

from .. import core
from ..core import get_aval
from ..lax import lax
from ._base import as_operand, broadcast_to_shape, cast, result_type


def _error(msg):
    return ValueError(f"einsum: {msg}{core.where()}")


# the labels '...' stands for: letters no subscript can spell (NumPy's labels are ASCII only)
_ELLIPSIS_LABELS = [chr(0x391 + i) for i in range(25)]


def _parse(subscripts, shapes):
    """Per-operand label lists and the output labels ('...' expanded to the labels of
    _ELLIPSIS_LABELS)."""
    s = subscripts.replace(" ", "")
    if "->" in s:
        ins, out = s.split("->")
    else:
        ins, out = s, None
    ins = ins.split(",")
    if len(ins) != len(shapes):
        raise _error(f"{len(ins)} operand subscripts for {len(shapes)} operands in "
                     f"{subscripts!r}")
    ell_nd = 0
    for term, shape in zip(ins, shapes):
        if "..." in term:
            ell_nd = max(ell_nd, len(shape) - (len(term) - 3))
    ell = _ELLIPSIS_LABELS[:ell_nd]
    labels = []
    for term, shape in zip(ins, shapes):
        if "..." in term:
            k = len(shape) - (len(term) - 3)
            if k < 0:
                raise _error(f"subscripts {term!r} do not match operand of shape {shape}")
            a, b = term.split("...")
            explicit = a + b
            term_l = list(a) + ell[ell_nd - k:] + list(b)
        else:
            explicit = term
            term_l = list(term)
        if len(term_l) != len(shape) or any(c not in string.ascii_letters for c in explicit):
            raise _error(f"subscripts {term!r} do not match operand of shape {shape}")
        labels.append(term_l)
    if out is None:
        counts = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out_l = ell + sorted(c for c, n in counts.items() if n == 1 and c not in ell)
    else:
        a, _, b = out.partition("...")
        out_l = list(a) + (ell if "..." in out else []) + list(b)
    if len(set(out_l)) != len(out_l):
        raise _error(f"output subscript {out!r} repeats a label")
    known = {c for ls in labels for c in ls}
    if any(c not in known for c in out_l):
        raise _error(f"output subscript {out!r} has a label not in the inputs")
    return labels, out_l, ell


def _take_diagonals(x, ls):
    """x with repeated labels collapsed to their diagonal."""
    from ._linalg import diagonal
    while len(set(ls)) != len(ls):
        c = next(c for c in ls if ls.count(c) > 1)
        i = ls.index(c)
        j = ls.index(c, i + 1)
        x = diagonal(x, 0, i, j)
        ls = [l for k, l in enumerate(ls) if k not in (i, j)] + [c]
    return x, ls


def _sum_out(x, ls, keep):
    axes = tuple(i for i, c in enumerate(ls) if c not in keep)
    if not axes:
        return x, ls
    return lax.reduce_sum(x, axes), [c for c in ls if c in keep]


def _sublist_letters(sublist):
    """A sublist of the operand-list form ([0, 1], [Ellipsis, 0]) as subscript letters: 0-25
    are 'A'-'Z' and 26-51 'a'-'z' (NumPy's mapping, so implicit outputs sort alike)."""
    out = []
    for s in sublist:
        if s is Ellipsis:
            out.append("...")
            continue
        try:
            i = operator.index(s)
        except TypeError:
            raise TypeError(f"einsum: subscripts in a sublist must be ints or Ellipsis, got "
                            f"{s!r}{core.where()}") from None
        if not 0 <= i < 52:
            raise _error(f"subscript {i} is not within the valid range [0, 52)")
        out.append(string.ascii_letters[i + 26] if i < 26 else string.ascii_letters[i - 26])
    return "".join(out)


def _from_operand_lists(args):
    """(subscripts, operands) of einsum(op0, sublist0, op1, sublist1, ..., [sublistout])."""
    ops, subs = list(args[0::2]), list(args[1::2])
    out = None
    if len(args) % 2:
        out = _sublist_letters(ops.pop())
    subscripts = ",".join(_sublist_letters(s) for s in subs)
    return subscripts + ("" if out is None else "->" + out), ops


def einsum(subscripts, *operands, optimize=None, dtype=None, precision=None,
           preferred_element_type=None):
    """Einstein summation over the operands as given by subscripts (NumPy's notation), or in
    the operand-list form einsum(a, [0, 1], b, [1, 2], [0, 2]). precision and
    preferred_element_type go to each lax.dot_general (as in jax.numpy)."""
    if not isinstance(subscripts, str):
        subscripts, operands = _from_operand_lists((subscripts,) + operands)
    ops = [as_operand(o) for o in operands]
    dt = np.dtype(dtype) if dtype is not None else result_type(*ops)
    if dt.kind == "b":
        dt = np.dtype(np.bool_)
    ops = [cast(o, dt) for o in ops]
    shapes = [get_aval(o).shape for o in ops]
    labels, out_l, ell = _parse(subscripts, shapes)
    # sizes per label must agree; ellipsis dims broadcast
    sizes = {}
    for ls, shape in zip(labels, shapes):
        for c, n in zip(ls, shape):
            if c in ell:     # broadcast: a size 1 gives way to any other (0 included)
                if sizes.get(c, 1) not in (1, n) and n != 1:
                    raise _error(f"operands could not be broadcast together with shapes "
                                 f"{' '.join(map(str, shapes))}")
                if n != 1:
                    sizes[c] = n
                sizes.setdefault(c, 1)
            elif sizes.setdefault(c, n) != n:
                raise _error(f"size of label '{c}' differs between operands: shapes "
                             f"{' '.join(map(str, shapes))}")
    if ell:
        ops = [broadcast_to_shape(o, tuple(sizes[c] if c in ell else n for c, n in zip(ls, s)))
               for o, ls, s in zip(ops, labels, shapes)]
    terms = []
    for k, (x, ls) in enumerate(zip(ops, labels)):
        x, ls = _take_diagonals(x, list(ls))
        others = {c for j, l2 in enumerate(labels) if j != k for c in l2}
        x, ls = _sum_out(x, ls, set(out_l) | others)
        terms.append((x, ls))
    x, ls = terms[0]
    for k in range(1, len(terms)):
        y, ly = terms[k]
        later = {c for _, l2 in terms[k + 1:] for c in l2} | set(out_l)
        shared = [c for c in ls if c in ly]
        batch = [c for c in shared if c in later]
        contract = [c for c in shared if c not in later]
        dn = ((tuple(ls.index(c) for c in contract), tuple(ly.index(c) for c in contract)),
              (tuple(ls.index(c) for c in batch), tuple(ly.index(c) for c in batch)))
        if get_aval(y).dtype != get_aval(x).dtype:    # after a preferred_element_type product
            y = cast(y, get_aval(x).dtype)
        x = lax.dot_general(x, y, dn, precision=precision,
                            preferred_element_type=preferred_element_type)
        ls = batch + [c for c in ls if c not in shared] + [c for c in ly if c not in shared]
    x, ls = _sum_out(x, ls, set(out_l))
    if preferred_element_type is not None:
        x = cast(x, preferred_element_type)
    return lax.transpose(x, tuple(ls.index(c) for c in out_l))
