"""lax.conv_general_dilated and what builds on it: forward values against an explicit-loop
reference (itself checked against scipy.signal.correlate), derivatives (check_grads, order 2,
fwd and rev, w.r.t. lhs and rhs), jit against eager, vmap against a Python loop, shape errors,
numpy.convolve/correlate against NumPy, stax's convolution layers, and the examples of JAX's
"Generalized convolutions" notebook."""
import itertools

import numpy as np
import pytest
import scipy.signal
from hypothesis import given, settings
from hypothesis import strategies as st

import functrans as ft
import functrans.numpy as jnp
from functrans import lax, random
from functrans.example_libraries import optimizers, stax
from functrans.test_util import check_grads, check_vmap


# ---------------------------------------------------------------------------------------------
# An independent reference: every output element summed from its definition

def _ref_pads(in_sp, k_sp, strides, padding, rd):
    if not isinstance(padding, str):
        return list(padding)
    out = []
    for n, k, s, d in zip(in_sp, k_sp, strides, rd):
        kd = (k - 1) * d + 1
        total = max(0, (-(-n // s) - 1) * s + kd - n) if padding != "VALID" else 0
        half = total // 2 if padding == "SAME" else total - total // 2
        out.append((half, total - half))
    return out


def ref_conv(lhs, rhs, strides, padding, lhs_dilation=None, rhs_dilation=None, dn=None,
             fgc=1, bgc=1, out_dtype=None):
    """conv_general_dilated by its definition: out[n, o, p] = sum over the group's input
    features c and window offsets k of lhs[batch, c, i] * rhs[o, c, k], where the dilated,
    padded input coordinate p * stride + k * rhs_dilation - pad_lo must be a multiple of
    lhs_dilation, i being that multiple's index."""
    nd = lhs.ndim
    specs = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dn)
    x, w = np.transpose(lhs, specs.lhs_spec), np.transpose(rhs, specs.rhs_spec)
    nsp = nd - 2
    ld, rd = lhs_dilation or (1,) * nsp, rhs_dilation or (1,) * nsp
    pads = _ref_pads(x.shape[2:], w.shape[2:], strides, padding, rd)
    groups = max(fgc, bgc)
    n_out, O, cg = x.shape[0] // bgc, w.shape[0], w.shape[1]
    og = O // groups
    out_sp = []
    for n, k, s, (lo, hi), l_, r_ in zip(x.shape[2:], w.shape[2:], strides, pads, ld, rd):
        span = (n - 1) * l_ + 1 + lo + hi - ((k - 1) * r_ + 1)
        out_sp.append(max(0, span // s + 1))
    out = np.zeros((n_out, O) + tuple(out_sp), out_dtype or lhs.dtype)
    for b, o in itertools.product(range(n_out), range(O)):
        g = o // og
        bb = b + g * n_out if bgc > 1 else b
        c0 = 0 if bgc > 1 else g * cg
        for p in itertools.product(*map(range, out_sp)):
            acc = 0
            for k in itertools.product(*map(range, w.shape[2:])):
                q = [pi * s + ki * r_ - lo for pi, ki, s, r_, (lo, _) in
                     zip(p, k, strides, rd, pads)]
                if all(qi >= 0 and qi % l_ == 0 and qi // l_ < n
                       for qi, l_, n in zip(q, ld, x.shape[2:])):
                    i = tuple(qi // l_ for qi, l_ in zip(q, ld))
                    acc = acc + np.dot(x[(bb, slice(c0, c0 + cg)) + i].astype(out.dtype),
                                       w[(o, slice(None)) + k].astype(out.dtype))
            out[(b, o) + p] = acc
    return np.transpose(out, np.argsort(specs.out_spec))


def test_reference_matches_scipy_correlate():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(1, 1, 6, 5)), rng.normal(size=(1, 1, 3, 2))
    want = scipy.signal.correlate(x[0, 0], w[0, 0], mode="valid")
    np.testing.assert_allclose(ref_conv(x, w, (1, 1), "VALID")[0, 0], want, rtol=1e-12)
    full = scipy.signal.correlate(x[0, 0], w[0, 0], mode="full")
    np.testing.assert_allclose(ref_conv(x, w, (1, 1), [(2, 2), (1, 1)])[0, 0], full, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(lax.conv(x, w, (1, 1), "VALID"))[0, 0], want,
                               rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Forward values over drawn configurations

LAYOUTS = {1: [None, ("NHC", "HIO", "NHC"), ("NCH", "OIH", "NHC")],
           2: [None, ("NHWC", "HWIO", "NHWC"), ("NCHW", "HWIO", "NHWC"), ("HNWC", "OWHI", "CHWN")]}


@st.composite
def conv_configs(draw, max_sp=2):
    nsp = draw(st.integers(1, max_sp))
    groups = draw(st.sampled_from([(1, 1), (2, 1), (1, 2), (3, 1)]))
    fgc, bgc = groups
    dn = draw(st.sampled_from(LAYOUTS[nsp]))
    n = draw(st.integers(1, 2)) * bgc
    cg = draw(st.integers(1, 2))
    og = draw(st.integers(1, 2))
    sp = [draw(st.integers(1, 5)) for _ in range(nsp)]
    k = [draw(st.integers(1, 3)) for _ in range(nsp)]
    strides = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    rd = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    kind = draw(st.sampled_from(["SAME", "VALID", "SAME_LOWER", "pairs"]))
    if kind == "pairs":
        padding = [(draw(st.integers(-1, 2)), draw(st.integers(-1, 2))) for _ in range(nsp)]
        # a padded extent below zero is an error (as in JAX), tested on its own below
        padding = [(lo, max(hi, -n_ - lo)) for (lo, hi), n_ in zip(padding, sp)]
        ld = tuple(draw(st.integers(1, 2)) for _ in range(nsp))
    else:
        padding, ld = kind, (1,) * nsp
    canon_l = (n, cg * fgc) + tuple(sp)
    canon_r = (og * fgc * bgc, cg) + tuple(k)
    specs = lax.conv_dimension_numbers(canon_l, canon_r, dn)
    lshape = [0] * len(canon_l)
    rshape = [0] * len(canon_r)
    for i, a in enumerate(specs.lhs_spec):
        lshape[a] = canon_l[i]
    for i, a in enumerate(specs.rhs_spec):
        rshape[a] = canon_r[i]
    return dict(lshape=tuple(lshape), rshape=tuple(rshape), strides=strides, padding=padding,
                ld=ld, rd=rd, dn=dn, fgc=fgc, bgc=bgc)


def _conv_fn(c, **extra):
    def f(x, w):
        return lax.conv_general_dilated(x, w, c["strides"], c["padding"], c["ld"], c["rd"],
                                        c["dn"], c["fgc"], c["bgc"], **extra)
    return f


def _operands(c, rng, dtype=np.float64):
    return rng.normal(size=c["lshape"]).astype(dtype), rng.normal(size=c["rshape"]).astype(dtype)


@settings(max_examples=25, deadline=None)
@given(c=conv_configs(), seed=st.integers(0, 2**31 - 1))
def test_forward_matches_reference(c, seed):
    x, w = _operands(c, np.random.default_rng(seed))
    got = np.asarray(_conv_fn(c)(x, w))
    want = ref_conv(x, w, c["strides"], c["padding"], c["ld"], c["rd"], c["dn"], c["fgc"],
                    c["bgc"])
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_three_spatial_dims_and_integer_and_preferred_types():
    rng = np.random.default_rng(3)
    x, w = rng.normal(size=(2, 2, 3, 4, 3)), rng.normal(size=(3, 2, 2, 1, 2))
    np.testing.assert_allclose(np.asarray(lax.conv(x, w, (1, 2, 1), "SAME")),
                               ref_conv(x, w, (1, 2, 1), "SAME"), rtol=1e-10)
    xi, wi = rng.integers(-3, 4, (2, 3, 5)).astype(np.int32), rng.integers(-3, 4, (2, 3, 2)).astype(np.int32)
    out = lax.conv(xi, wi, (1,), "VALID")
    assert out.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(out), ref_conv(xi, wi, (1,), "VALID"))
    out64 = lax.conv(xi, wi, (1,), "VALID", preferred_element_type=np.float64)
    assert out64.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(out64), ref_conv(xi, wi, (1,), "VALID"))


# ---------------------------------------------------------------------------------------------
# Derivatives, jit and vmap on fixed configurations

def _config(lshape, rshape, strides, padding, ld=None, rd=None, dn=None, fgc=1, bgc=1):
    nsp = len(lshape) - 2
    return dict(lshape=lshape, rshape=rshape, strides=strides, padding=padding,
                ld=ld or (1,) * nsp, rd=rd or (1,) * nsp, dn=dn, fgc=fgc, bgc=bgc)


CONFIGS = {
    "plain": _config((1, 2, 4, 3), (2, 2, 2, 2), (1, 1), "VALID"),
    "strided_padded_dilated": _config((1, 1, 5, 4), (2, 1, 2, 2), (2, 1), [(1, 2), (-1, 1)],
                                      ld=(1, 2), rd=(2, 1)),
    "feature_groups_nhwc": _config((2, 3, 2, 4), (2, 1, 2, 4), (1, 2), "SAME",
                                   dn=("NHWC", "HWIO", "NHWC"), fgc=2),
    "batch_groups_1d": _config((4, 2, 5), (4, 2, 2), (2,), "SAME_LOWER", rd=(2,), bgc=2),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_grads_lhs_and_rhs(name):
    c = CONFIGS[name]
    x, w = _operands(c, np.random.default_rng(1))
    check_grads(_conv_fn(c), (x, w), order=2, modes=("fwd", "rev"))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_vmap_matches_loop(name):
    c = CONFIGS[name]
    rng = np.random.default_rng(2)
    xs = np.stack([_operands(c, rng)[0] for _ in range(3)])
    ws = np.stack([_operands(c, rng)[1] for _ in range(3)])
    x, w = xs[0], ws[0]
    f = _conv_fn(c)
    check_vmap(f, (xs, w), in_axes=(0, None))
    check_vmap(f, (x, ws), in_axes=(None, 0))
    check_vmap(f, (xs, ws), in_axes=(0, 0))
    check_vmap(f, (np.moveaxis(xs, 0, 2), np.moveaxis(ws, 0, -1)), in_axes=(2, -1), out_axes=1)


def test_vmap_of_grad_matches_loop():
    c = CONFIGS["feature_groups_nhwc"]
    rng = np.random.default_rng(4)
    xs = np.stack([_operands(c, rng)[0] for _ in range(2)])
    ws = np.stack([_operands(c, rng)[1] for _ in range(2)])
    g = ft.grad(lambda x, w: jnp.sum(jnp.sin(_conv_fn(c)(x, w))), argnums=(0, 1))
    check_vmap(lambda x, w: g(x, w), (xs, ws), in_axes=(0, 0))


# the CPU lowering copies runs along the last spatial dim (of the output, or of the kernel
# when that is longer): strides and padding there, with and without kernel dilation
JIT_CONFIGS = {
    "output_runs_strided_padded": _config((1, 2, 3, 7), (2, 2, 2, 3), (1, 2), [(1, 0), (2, 1)]),
    "kernel_runs_strided_dilated": _config((2, 1, 4, 9), (1, 1, 2, 6), (1, 2), [(0, 1), (3, 2)],
                                           rd=(1, 2)),
    **{name: CONFIGS[name] for name in ("strided_padded_dilated", "feature_groups_nhwc",
                                        "batch_groups_1d")},
}


@pytest.mark.parametrize("name", list(JIT_CONFIGS))
def test_jit_matches_eager(name):
    c = JIT_CONFIGS[name]
    x, w = _operands(c, np.random.default_rng(5))
    f = _conv_fn(c)
    np.testing.assert_allclose(np.asarray(ft.jit(f)(x, w)), np.asarray(f(x, w)), rtol=1e-12,
                               atol=1e-12)


def test_jit_float32_integer_and_grad():
    c = CONFIGS["strided_padded_dilated"]
    x, w = _operands(c, np.random.default_rng(6), np.float32)
    f = _conv_fn(c)
    got = ft.jit(f)(x, w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(np.asarray(got), np.asarray(f(x, w)), rtol=1e-5, atol=1e-6)
    xi = np.arange(10, dtype=np.int32).reshape(1, 2, 5)
    wi = np.array([[[1, -2], [3, 0]]], np.int32)
    fi = lambda a, b: lax.conv(a, b, (1,), [(1, 0)])   # noqa: E731
    np.testing.assert_array_equal(np.asarray(ft.jit(fi)(xi, wi)), np.asarray(fi(xi, wi)))
    loss = lambda x, w: jnp.sum(f(x, w) ** 2)   # noqa: E731
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for got, want in zip(ft.jit(ft.grad(loss, (0, 1)))(x64, w64), ft.grad(loss, (0, 1))(x64, w64)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=1e-12)


def _complex_operands(c, rng, dtype=np.complex128):
    (x, w), (xi, wi) = _operands(c, rng), _operands(c, rng)
    return (x + 1j * xi).astype(dtype), (w + 1j * wi).astype(dtype)


@pytest.mark.parametrize("name", ["strided_padded_dilated", "feature_groups_nhwc"])
def test_complex_values_grads_jit_and_vmap(name):
    """Complex operands (as JAX): values against the reference, derivatives along real and
    imaginary directions (check_grads draws complex tangents), jit and vmap against eager."""
    c = CONFIGS[name]
    x, w = _complex_operands(c, np.random.default_rng(9))
    f = _conv_fn(c)
    want = ref_conv(x, w, c["strides"], c["padding"], c["ld"], c["rd"], c["dn"], c["fgc"],
                    c["bgc"])
    np.testing.assert_allclose(np.asarray(f(x, w)), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(ft.jit(f)(x, w)), want, rtol=1e-12, atol=1e-12)
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"))
    check_vmap(f, (np.stack([x, x * 1j]), w), in_axes=(0, None))
    x32, w32 = _complex_operands(c, np.random.default_rng(9), np.complex64)
    got = ft.jit(f)(x32, w32)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_complex_convolve_and_correlate_match_numpy():
    rng = np.random.default_rng(10)
    for n, m in [(5, 3), (3, 5), (4, 4)]:
        a = rng.normal(size=n) + 1j * rng.normal(size=n)
        v = rng.normal(size=m) + 1j * rng.normal(size=m)
        for mode in ("full", "same", "valid"):
            np.testing.assert_allclose(np.asarray(jnp.correlate(a, v, mode)),
                                       np.correlate(a, v, mode), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(np.asarray(jnp.convolve(a, v, mode)),
                                       np.convolve(a, v, mode), rtol=1e-12, atol=1e-12)


def _conv_eqns(closed):
    return [e for e in closed.jaxpr.eqns if e.primitive.name == "conv_general_dilated"]


@pytest.mark.parametrize("name", list(CONFIGS) + ["output_runs_strided_padded",
                                                  "kernel_runs_strided_dilated"])
def test_gpu_im2col_gemm_plan_matches_the_impl(name):
    """The GPU's im2col + GEMM evaluation (backends/cuda_conv.py), run with NumPy as its array
    module, equals the impl on the forward convolution and on each convolution of its
    gradient (lhs dilations, swapped dimension numbers, kernels as large as the image)."""
    from functrans.backends import cuda_conv
    c = {**CONFIGS, **JIT_CONFIGS}[name]
    rng = np.random.default_rng(11)
    x, w = _operands(c, rng)
    loss = lambda a, b: jnp.sum(jnp.sin(_conv_fn(c)(a, b)))   # noqa: E731
    eqns = _conv_eqns(ft.make_jaxpr(ft.grad(loss, (0, 1)))(x, w))
    assert len(eqns) == 3
    for eqn in eqns:
        a, b = (rng.normal(size=v.aval.shape) for v in eqn.inputs)
        plan = cuda_conv.plan_for(eqn)
        want = lax.conv_general_dilated_p.bind(a, b, **eqn.params)
        np.testing.assert_allclose(plan.apply(np, a, b, plan.index), np.asarray(want),
                                   rtol=1e-12, atol=1e-12)
    z = x + 1j * x[::-1]
    eqn = _conv_eqns(ft.make_jaxpr(_conv_fn(c))(z, w.astype(complex)))[0]
    plan = cuda_conv.plan_for(eqn)
    np.testing.assert_allclose(plan.apply(np, z, w.astype(complex), plan.index),
                               np.asarray(_conv_fn(c)(z, w.astype(complex))), rtol=1e-12)
    ints = np.ones(c["lshape"], np.int32), np.ones(c["rshape"], np.int32)
    assert cuda_conv.plan_for(_conv_eqns(ft.make_jaxpr(_conv_fn(c))(*ints))[0]) is None


# ---------------------------------------------------------------------------------------------
# Errors, dimension numbers, padding helpers, conv_transpose

def test_shape_errors_name_the_shapes():
    x, w = np.ones((1, 3, 5, 5)), np.ones((2, 2, 3, 3))
    with pytest.raises(ValueError, match=r"3 // 1 != 2.*\(1, 3, 5, 5\).*\(2, 2, 3, 3\)"):
        lax.conv(x, w, (1, 1), "SAME")
    with pytest.raises(TypeError, match="same dtypes"):
        lax.conv(x, np.ones((2, 3, 3, 3), np.float32), (1, 1), "SAME")
    with pytest.raises(TypeError, match="ndim to be equal"):
        lax.conv(x, np.ones((2, 3, 3)), (1, 1), "SAME")
    with pytest.raises(TypeError, match="window_strides must have one entry"):
        lax.conv(x, np.ones((2, 3, 3, 3)), (1,), "SAME")
    with pytest.raises(ValueError, match="feature_group_count must divide"):
        lax.conv_general_dilated(x, np.ones((2, 1, 3, 3)), (1, 1), "SAME", feature_group_count=2)
    with pytest.raises(ValueError, match="At most one"):
        lax.conv_general_dilated(np.ones((2, 4, 3)), np.ones((4, 2, 1)), (1,), "SAME",
                                 feature_group_count=2, batch_group_count=2)
    with pytest.raises(ValueError, match="String padding"):
        lax.conv_general_dilated(x, np.ones((2, 3, 3, 3)), (1, 1), "SAME", lhs_dilation=(2, 2))
    with pytest.raises(TypeError, match="must contain 'N' and 'C'"):
        lax.conv_general_dilated(x, np.ones((2, 3, 3, 3)), (1, 1), "SAME",
                                 dimension_numbers=("NHWX", "OIHW", "NCHW"))
    with pytest.raises(ValueError, match=r"Negative padding is larger.*\(-1, -1\)"):
        lax.conv(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), (1, 1), [(0, 0), (-1, -1)])
    assert lax.conv(np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)), (1, 1),
                    [(0, 0), (-1, 0)]).shape == (1, 1, 1, 0)
    with pytest.raises(ValueError, match="unknown padding"):
        lax.conv(x, np.ones((2, 3, 3, 3)), (1, 1), "FULL")
    jaxpr_err = pytest.raises(ValueError, match="rhs input feature")
    with jaxpr_err:
        ft.make_jaxpr(lambda a: lax.conv(a, w, (1, 1), "SAME"))(x)


def test_dimension_numbers_and_padding_helpers():
    dn = lax.conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 4), ("NHWC", "HWIO", "NHWC"))
    assert dn == lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))
    assert lax.conv_dimension_numbers((1, 2, 3), (1, 2, 3), None) == ((0, 1, 2),) * 3
    assert lax.conv_dimension_numbers((1, 5, 5, 3), (3, 3, 3, 4), dn) == dn
    assert lax.conv_general_permutations(("NCHW", "OIWH", "NHWC")) == \
        ((0, 1, 3, 2), (0, 1, 2, 3), (0, 3, 2, 1))
    assert lax.padtype_to_pads((5, 6), (3, 2), (2, 2), "SAME") == [(1, 1), (0, 0)]
    assert lax.padtype_to_pads((4,), (4,), (1,), "SAME") == [(1, 2)]
    assert lax.padtype_to_pads((4,), (4,), (1,), "SAME_LOWER") == [(2, 1)]
    assert lax.conv_general_shape_tuple((-1, 8, 8, 3), (3, 3, 3, 16), (2, 2), "SAME",
                                        ("NHWC", "HWIO", "NHWC")) == (-1, 4, 4, 16)


def test_conv_transpose_is_the_gradient_of_a_strided_conv():
    """conv_transpose with transpose_kernel=True and padding 'VALID'/'SAME' is the vjp of the
    forward conv (for sizes the stride divides), as JAX documents."""
    rng = np.random.default_rng(7)
    for padding, size in [("VALID", 7), ("SAME", 6)]:
        x = rng.normal(size=(1, size, size, 2))
        k = rng.normal(size=(3, 3, 2, 4))
        dn = ("NHWC", "HWIO", "NHWC")
        fwd = lambda v: lax.conv_general_dilated(v, k, (2, 2), padding, dimension_numbers=dn)  # noqa: E731,B023
        y, vjp = ft.vjp(fwd, x)
        ct = rng.normal(size=y.shape)
        want = vjp(ct)[0]
        got = lax.conv_transpose(ct, k, (2, 2), padding, dimension_numbers=dn,
                                 transpose_kernel=True)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-10, atol=1e-12)
    # use_consistent_padding: explicit pairs are the forward conv's padding, as in PyTorch
    x = rng.normal(size=(1, 7, 7, 2))
    k = rng.normal(size=(3, 3, 2, 4))
    fwd = lambda v: lax.conv_general_dilated(v, k, (2, 2), [(1, 1), (1, 1)], dimension_numbers=dn)  # noqa: E731
    y, vjp = ft.vjp(fwd, x)
    ct = rng.normal(size=y.shape)
    got = lax.conv_transpose(ct, k, (2, 2), [(1, 1), (1, 1)], dimension_numbers=dn,
                             transpose_kernel=True, use_consistent_padding=True)
    np.testing.assert_allclose(np.asarray(got), np.asarray(vjp(ct)[0]), rtol=1e-10, atol=1e-12)
    shape = lax.conv_transpose_shape_tuple((2, 4, 5, 3), (3, 3, 3, 7), (2, 2), "SAME",
                                           ("NHWC", "HWIO", "NHWC"))
    out = lax.conv_transpose(np.ones((2, 4, 5, 3)), np.ones((3, 3, 3, 7)), (2, 2), "SAME")
    assert shape == out.shape == (2, 8, 10, 7)


# ---------------------------------------------------------------------------------------------
# numpy.convolve / numpy.correlate

@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 7), m=st.integers(1, 7), mode=st.sampled_from(["full", "same", "valid"]),
       seed=st.integers(0, 2**31 - 1))
def test_convolve_and_correlate_match_numpy(n, m, mode, seed):
    rng = np.random.default_rng(seed)
    a, v = rng.normal(size=n), rng.normal(size=m)
    for ours, theirs in [(jnp.convolve, np.convolve), (jnp.correlate, np.correlate)]:
        got, want = np.asarray(ours(a, v, mode)), theirs(a, v, mode)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_convolve_defaults_dtypes_errors_and_grad():
    a, v = np.arange(5), np.array([1, 2, 3])
    np.testing.assert_array_equal(np.asarray(jnp.convolve(a, v)), np.convolve(a, v))
    assert jnp.convolve(a, v).dtype == np.convolve(a, v).dtype
    np.testing.assert_array_equal(np.asarray(jnp.correlate(a, v)), np.correlate(a, v))
    got = jnp.convolve(np.ones(4, np.float32), np.ones(2))
    assert got.dtype == np.float64
    with pytest.raises(ValueError, match="1-dimensional"):
        jnp.convolve(np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="empty"):
        jnp.correlate(np.ones(0), np.ones(2))
    with pytest.raises(ValueError, match="mode"):
        jnp.convolve(np.ones(3), np.ones(2), "middle")
    rng = np.random.default_rng(8)
    check_grads(lambda p, q: jnp.convolve(p, q, "same"), (rng.normal(size=5), rng.normal(size=3)),
                order=2)


# ---------------------------------------------------------------------------------------------
# stax

def test_stax_conv_layer_shapes_match_their_outputs():
    rng = np.random.default_rng(9)
    layers = [(stax.Conv(4, (3, 3), padding="SAME"), (2, 7, 6, 3)),
              (stax.Conv(2, (2, 3), strides=(2, 1)), (1, 5, 6, 2)),
              (stax.GeneralConv(("NCHW", "OIHW", "NCHW"), 3, (2, 2)), (2, 2, 4, 5)),
              (stax.ConvTranspose(3, (3, 3), (2, 2), padding="SAME"), (2, 4, 5, 2)),
              (stax.Conv1DTranspose(2, (3,), (2,)), (2, 4, 3)),
              (stax.GeneralConvTranspose(("NCH", "IOH", "NCH"), 2, (2,), (3,)), (1, 2, 4))]
    expected = [(2, 7, 6, 4), (1, 2, 4, 2), (2, 3, 3, 4), (2, 8, 10, 3), (2, 9, 2), (1, 2, 12)]
    for ((init, apply), in_shape), want in zip(layers, expected):
        shape, (W, b) = init(random.PRNGKey(0), in_shape)
        assert shape == want
        out = apply((W, b), rng.normal(size=in_shape))
        assert out.shape == want
        assert b.ndim == len(want) and b.size == max(b.shape)


def test_stax_cnn_training_step_jit_matches_eager():
    init, apply = stax.serial(stax.Conv(3, (3, 3), padding="SAME"), stax.Relu,
                              stax.Conv(2, (2, 2), strides=(2, 2)), stax.Relu, stax.Flatten,
                              stax.Dense(3), stax.LogSoftmax)
    out_shape, params = init(random.PRNGKey(1), (-1, 6, 6, 1))
    assert out_shape == (-1, 3)
    rng = np.random.default_rng(10)
    x, labels = rng.normal(size=(4, 6, 6, 1)), np.eye(3)[[0, 1, 2, 1]]
    opt_init, opt_update, get_params = optimizers.sgd(0.1)

    def loss(p):
        return -jnp.mean(jnp.sum(apply(p, x) * labels, axis=1))

    def step(state):
        return opt_update(0, ft.grad(loss)(get_params(state)), state)

    eager, jitted = step(opt_init(params)), ft.jit(step)(opt_init(params))
    for a, b in zip(ft.tree_util.tree_leaves(get_params(eager)),
                    ft.tree_util.tree_leaves(get_params(jitted))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-12)
    assert loss(get_params(eager)) < loss(params)


# ---------------------------------------------------------------------------------------------
# JAX's "Generalized convolutions" notebook

def _notebook_image():
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    kernel += np.array([[1, 1, 0], [1, 0, -1], [0, -1, -1]], np.float32)[:, :, None, None]
    img = np.zeros((1, 200, 198, 3), np.float32)
    for k in range(3):
        x, y = 30 + 60 * k, 20 + 60 * k
        img[0, x:x + 10, y:y + 10, k] = 1.0
    return img, kernel


def test_notebook_lax_conv_and_general_padding():
    img, kernel = _notebook_image()
    out = lax.conv(np.transpose(img, [0, 3, 1, 2]), np.transpose(kernel, [3, 2, 0, 1]), (1, 1),
                   "SAME")
    assert out.shape == (1, 3, 200, 198)
    # the edge detector responds +-2/3 at the square's corners (channel sums of the kernel)
    want = scipy.signal.correlate(img[0].sum(-1), kernel[:, :, 0, 0], mode="same")
    np.testing.assert_allclose(np.asarray(out)[0, 0], want, atol=1e-5)
    out = lax.conv_with_general_padding(np.transpose(img, [0, 3, 1, 2]),
                                        np.transpose(kernel, [2, 3, 0, 1]), (1, 1),
                                        ((2, 2), (2, 2)), (1, 1), (1, 1))
    assert out.shape == (1, 3, 202, 200)


def test_notebook_dimension_numbers_strides_and_dilations():
    img, kernel = _notebook_image()
    dn = lax.conv_dimension_numbers(img.shape, kernel.shape, ("NHWC", "HWIO", "NHWC"))
    assert dn == lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1),
                                          out_spec=(0, 3, 1, 2))
    cases = [((1, 1), "SAME", (1, 1), (1, 1), (1, 200, 198, 3)),
             ((1, 1), "VALID", (1, 1), (1, 1), (1, 198, 196, 3)),
             ((2, 2), "SAME", (1, 1), (1, 1), (1, 100, 99, 3)),
             ((1, 1), "VALID", (1, 1), (12, 12), (1, 176, 174, 3)),
             ((1, 1), ((0, 0), (0, 0)), (2, 2), (1, 1), (1, 397, 393, 3)),
             ((1, 1), ((1, 2), (1, 2)), (2, 2), (1, 1), (1, 400, 396, 3))]
    full = np.asarray(lax.conv_general_dilated(img, kernel, (1, 1), "VALID", (1, 1), (1, 1), dn))
    for strides, padding, ld, rd, shape in cases:
        out = lax.conv_general_dilated(img, kernel, strides, padding, ld, rd, dn)
        assert out.shape == shape
    strided = np.asarray(lax.conv_general_dilated(img, kernel, (2, 2), "VALID", (1, 1), (1, 1), dn))
    np.testing.assert_allclose(strided, full[:, ::2, ::2], atol=1e-6)


def test_notebook_1d_and_3d():
    kernel = np.array([1, 0, -1], np.float32)[:, None, None] * np.ones((3, 3, 3), np.float32)
    data = np.zeros((1, 200, 3), np.float32)
    for k in range(3):
        data[0, 30 + 60 * k:40 + 60 * k, k] = 1.0
    dn = lax.conv_dimension_numbers(data.shape, kernel.shape, ("NHC", "HIO", "NHC"))
    assert dn == lax.ConvDimensionNumbers((0, 2, 1), (2, 1, 0), (0, 2, 1))
    out = lax.conv_general_dilated(data, kernel, (1,), "SAME", (1,), (1,), dn)
    assert out.shape == (1, 200, 3)
    # a difference filter x[p - 1] - x[p + 1] (summed over the input channels): -1 where the
    # block starts, +1 where it ends
    np.testing.assert_allclose(np.asarray(out)[0, 28:32, 0], [0, -1, -1, 0])
    np.testing.assert_allclose(np.asarray(out)[0, 38:42, 0], [0, 1, 1, 0])
    x = np.zeros((1, 30, 30, 30, 1), np.float32)
    x[0, 10:20, 10:20, 10:20, 0] = 1.0
    kernel3 = np.ones((3, 3, 3, 1, 1), np.float32)
    dn3 = lax.conv_dimension_numbers(x.shape, kernel3.shape, ("NHWDC", "HWDIO", "NHWDC"))
    out3 = lax.conv_general_dilated(x, kernel3, (1, 1, 1), "SAME", (1, 1, 1), (1, 1, 1), dn3)
    assert out3.shape == (1, 30, 30, 30, 1)
    assert float(out3[0, 15, 15, 15, 0]) == 27.0 and float(out3[0, 10, 10, 10, 0]) == 8.0
