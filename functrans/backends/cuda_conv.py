"""conv_general_dilated on the GPU as im2col + GEMM (cuBLAS through CuPy).

The direct kernel (cuda_ops: one thread per output element looping over its window) is
compute-bound on a single thread's loop; the weight gradient, a convolution whose "kernel" is
as large as the image, runs 26x slower than JAX's there. Here a convolution is one gather and
one batched GEMM per call:

* ``cols[g, r, c] = x_flat[index[g, r, c]]``: a row r = (batch, output position) of group g, a
  column c = (input feature, kernel offset); an index of ``x.size`` reads an appended zero
  (padding, and the holes of an lhs dilation). The index is computed once per equation on the
  host (NumPy) and kept on the device.
* ``out[g] = cols[g] @ w[g]`` with w as (group, input feature x kernel offset, output feature),
  then the (group, batch, position, feature) result is laid out as out_spec asks.

``ConvGemm.apply(xp, x, w, index)`` is written against an array module, so the same code runs
with NumPy in the tests (tests/test_conv.py checks it against the reference on every layout,
group and dilation) and with CuPy on a GPU. Used for float and complex operands whose column
buffer stays under ``MAX_COLUMN_BYTES``; other convolutions keep the direct kernel."""
from __future__ import annotations

import math

import numpy as np

MAX_COLUMN_BYTES = 1 << 30


class ConvGemm:
    """The im2col + GEMM evaluation of one conv_general_dilated equation's parameters."""

    def __init__(self, lhs_shape, rhs_shape, out_shape, params):
        lhs_spec, rhs_spec, out_spec = params["dimension_numbers"]
        self.rhs_perm, self.out_perm = tuple(rhs_spec), tuple(np.argsort(out_spec))
        self.lhs_size = math.prod(lhs_shape)
        o = rhs_shape[rhs_spec[0]]
        fgc, bgc = params["feature_group_count"], params["batch_group_count"]
        self.groups = max(fgc, bgc)
        self.og = o // self.groups
        self.out_n = out_shape[out_spec[0]]
        self.out_sp = tuple(out_shape[d] for d in out_spec[2:])
        self.kernel = tuple(rhs_shape[d] for d in rhs_spec[2:])
        self.cg = rhs_shape[rhs_spec[1]]
        self.index = _gather_index(lhs_shape, lhs_spec, self, params, bgc > 1)

    def column_bytes(self, itemsize):
        return self.index.size * itemsize

    def apply(self, xp, x, w, index):
        """The convolution's output (out_spec layout, possibly a strided view) of x and w, arrays
        of module xp; index is self.index as an xp array."""
        ext = xp.concatenate([x.reshape(-1), xp.zeros(1, x.dtype)])
        cols = ext[index]                                      # (G, N*P, Cg*K)
        wc = xp.transpose(w, self.rhs_perm)                    # (O, I, K...)
        wm = wc.reshape(self.groups, self.og, -1).transpose(0, 2, 1)   # (G, Cg*K, Og)
        y = xp.matmul(cols, wm)                                # (G, N*P, Og)
        y = y.reshape((self.groups, self.out_n) + self.out_sp + (self.og,))
        y = xp.moveaxis(y, (0, -1), (1, 2))                    # (N, G, Og, P...)
        y = y.reshape((self.out_n, self.groups * self.og) + self.out_sp)
        return xp.transpose(y, self.out_perm)       # a view: the caller copies it into place


def _gather_index(lhs_shape, lhs_spec, plan, params, batch_groups):
    """int index (G, N*P, Cg*K) into x's flat buffer (x.size: the appended zero)."""
    strides = np.cumprod((1,) + tuple(lhs_shape[::-1]))[-2::-1]      # C order, in elements
    s_n, s_c = strides[lhs_spec[0]], strides[lhs_spec[1]]
    sizes = [lhs_shape[d] for d in lhs_spec[2:]]
    nsp = len(sizes)
    # axes: (G, N, P_1..P_d, C, K_1..K_d)
    ax = 2 + 2 * nsp + 1
    g = _axis(plan.groups, 0, ax)
    n = _axis(plan.out_n, 1, ax)
    c = _axis(plan.cg, 2 + nsp, ax)
    flat = (n + g * plan.out_n) * s_n + c * s_c if batch_groups else n * s_n + (g * plan.cg + c) * s_c
    valid = np.ones((), bool)
    for d in range(nsp):
        p = _axis(plan.out_sp[d], 2 + d, ax)
        k = _axis(plan.kernel[d], 3 + nsp + d, ax)
        lo = params["padding"][d][0]
        ld = params["lhs_dilation"][d]
        q = p * params["window_strides"][d] + k * params["rhs_dilation"][d] - lo
        i = q // ld
        valid = valid & (q >= 0) & (i * ld == q) & (i < sizes[d])
        flat = flat + np.clip(i, 0, max(sizes[d] - 1, 0)) * strides[lhs_spec[2 + d]]
    dtype = np.int32 if plan.lhs_size < 2 ** 31 - 1 else np.int64
    index = np.where(valid, flat, plan.lhs_size).astype(dtype)
    rows = plan.out_n * math.prod(plan.out_sp)
    return index.reshape(plan.groups, rows, plan.cg * math.prod(plan.kernel))


def _axis(n, at, ndim):
    """arange(n) shaped to broadcast along axis at of ndim axes."""
    shape = [1] * ndim
    shape[at] = n
    return np.arange(n).reshape(shape)


def plan_for(eqn):
    """A ConvGemm for a conv_general_dilated equation, or None where the direct kernel stays:
    integer or mixed/preferred output types, empty operands, or a column buffer over
    MAX_COLUMN_BYTES."""
    x, w = eqn.inputs
    out = eqn.out_binders[0]
    dt = np.dtype(out.aval.dtype)
    if (dt.kind not in "fc" or np.dtype(x.aval.dtype) != dt or np.dtype(w.aval.dtype) != dt
            or 0 in x.aval.shape or 0 in w.aval.shape or 0 in out.aval.shape):
        return None
    rows = math.prod(out.aval.shape) // w.aval.shape[eqn.params["dimension_numbers"][1][0]]
    cols = math.prod(w.aval.shape) // w.aval.shape[eqn.params["dimension_numbers"][1][0]]
    groups = max(eqn.params["feature_group_count"], eqn.params["batch_group_count"])
    if rows * cols * groups * dt.itemsize > MAX_COLUMN_BYTES:
        return None
    return ConvGemm(x.aval.shape, w.aval.shape, out.aval.shape, eqn.params)
