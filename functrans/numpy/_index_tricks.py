"""r_ and c_: index expressions that concatenate arrays, scalars and slices (as NumPy's, with a
leading string directive 'axis[,ndmin[,trans1d]]', 'r' or 'c')."""
from __future__ import annotations

from .. import core
from ..core import get_aval
from ._base import as_operand, cast, is_weak, result_type
from ._creation import arange, linspace
from ._shape import concatenate, expand_dims, reshape, swapaxes, transpose


def _error(msg):
    return ValueError(f"{msg}{core.where()}")


def _with_ndmin(x, ndmin):
    s = get_aval(x).shape
    return reshape(x, (1,) * (ndmin - len(s)) + s) if len(s) < ndmin else x


def _from_slice(s):
    """The 1-d array a slice stands for: arange(start, stop, step), or linspace with
    abs(step) points for an imaginary step (1:5:3j)."""
    start = 0 if s.start is None else s.start
    step = 1 if s.step is None else s.step
    if isinstance(step, complex):
        return linspace(start, s.stop, int(abs(step)))
    return arange(start, s.stop, step)


class _AxisConcatenator:
    """Concatenates the items of an index expression along ``axis`` (after giving each at least
    ``ndmin`` dimensions; trans1d places the original axes of a low-dimensional item)."""

    def __init__(self, axis, ndmin, trans1d, name):
        self.axis, self.ndmin, self.trans1d, self._name = axis, ndmin, trans1d, name

    def __repr__(self):
        return f"functrans.numpy.{self._name}"

    def __len__(self):
        return 0

    def __getitem__(self, key):
        items = list(key) if isinstance(key, tuple) else [key]
        axis, ndmin, trans1d, matrix = self.axis, self.ndmin, self.trans1d, None
        if items and isinstance(items[0], str):
            axis, ndmin, trans1d, matrix = self._directive(items.pop(0), axis, ndmin, trans1d)
        pieces, kinds = [], []
        for item in items:
            if isinstance(item, str):
                raise _error(f"{self._name}: special directives must be the first entry, got "
                             f"{item!r}")
            piece, kind = self._piece(item, ndmin, trans1d)
            pieces.append(piece)
            kinds.append(kind)
        if not pieces:
            raise _error(f"{self._name}: need at least one array to concatenate")
        dt = result_type(*kinds)     # Python scalars stay weak, as in NumPy
        out = concatenate([_with_ndmin(cast(p, dt), ndmin) for p in pieces], axis)
        if matrix is not None and get_aval(out).ndim == 1:
            out = expand_dims(out, matrix)    # 'r' a row, 'c' a column (arrays, not np.matrix)
        return out

    def _directive(self, d, axis, ndmin, trans1d):
        if d in ("r", "c"):
            return axis, ndmin, trans1d, 0 if d == "r" else 1
        fields = d.split(",")
        fields = fields[:2] if len(fields) > 3 else fields    # NumPy ignores the rest
        try:
            values = [int(v) for v in fields]
        except ValueError:
            raise _error(f"{self._name}: unknown special directive {d!r}") from None
        values += [ndmin, trans1d][len(values) - 1:]
        return values[0], values[1], values[2], None

    @staticmethod
    def _piece(item, ndmin, trans1d):
        """The item as an array with its dimensions arranged, and what its dtype promotes as."""
        if isinstance(item, slice):
            x = _with_ndmin(_from_slice(item), ndmin)
            if ndmin > 1 and trans1d != -1:
                x = swapaxes(x, -1, trans1d)
            return x, x
        if is_weak(item):
            return as_operand(item), item
        x = as_operand(item)
        nd = get_aval(x).ndim
        x = _with_ndmin(x, ndmin)
        if trans1d != -1 and nd < ndmin:
            k1, k2 = trans1d, ndmin - nd
            k1 = k1 + k2 + 1 if k1 < 0 else k1
            order = list(range(ndmin))
            x = transpose(x, order[:k1] + order[k2:] + order[k1:k2])
        return x, x


r_ = _AxisConcatenator(0, 1, -1, "r_")
c_ = _AxisConcatenator(-1, 2, 0, "c_")
