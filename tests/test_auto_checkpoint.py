"""auto_checkpoint: gradients never change (eager, jit, vmap, higher order), the plan keeps
its predicted peak within the budget and the linearized jaxpr really saves no more than the
plan says, explain() reports the plan by source line, and bad budgets are errors naming the
minimum."""
import re

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans.test_util import check_grads

LAYERS, BATCH, WIDTH = 8, 3, 4
ACT = BATCH * WIDTH * 8                      # bytes of one float64 activation
RNG = np.random.default_rng(0)
X = RNG.normal(size=(BATCH, WIDTH))
WS = [RNG.normal(size=(WIDTH, WIDTH)) / 2 for _ in range(LAYERS)]


def chain(x, ws):
    for w in ws:
        x = jnp.tanh(x @ w)                  # the layer line explain() reports
    return jnp.sum(x * x)


LAYER_LINE = f"test_auto_checkpoint.py:{chain.__code__.co_firstlineno + 2} (chain)"
AUTO = ft.auto_checkpoint(chain, max_bytes=8 * ACT)
GRAD = ft.grad(chain)
REF = np.asarray(GRAD(X, WS))
JIT_GRAD_AUTO = ft.jit(ft.grad(AUTO))


def least_budget(f, *args, **kw):
    """The minimum the ValueError of a too-small budget names, in bytes."""
    with pytest.raises(ValueError, match="below the minimum") as err:
        ft.auto_checkpoint(f, max_bytes=1).explain(*args, **kw)
    return int(re.search(r"minimum possible for this function, (\d+) bytes",
                         str(err.value)).group(1))


def test_exported_beside_checkpoint():
    assert ft.ad_checkpoint.auto_checkpoint is ft.auto_checkpoint


def test_gradient_equals_the_plain_gradient_eagerly_and_under_jit():
    np.testing.assert_allclose(np.asarray(ft.grad(AUTO)(X, WS)), REF, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(JIT_GRAD_AUTO(X, WS)), REF, rtol=0, atol=1e-12)
    # values and every argument's gradient, pytrees included
    v, (gx, gws) = ft.value_and_grad(AUTO, argnums=(0, 1))(X, WS)
    v0, (gx0, gws0) = ft.value_and_grad(chain, argnums=(0, 1))(X, WS)
    assert float(v) == float(v0)
    for a, b in zip([gx] + list(gws), [gx0] + list(gws0)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-12)
    # a closed-over tracer (the scale) is differentiated too
    scaled = ft.grad(lambda s: ft.auto_checkpoint(lambda x: chain(s * x, WS), 8 * ACT)(X))(2.0)
    assert abs(float(scaled) - float(ft.grad(lambda s: chain(s * X, WS))(2.0))) < 1e-12


def test_staged_without_a_visible_jvp_plans_for_every_input():
    # jit stages AUTO before grad differentiates it: every float input is assumed active
    assert "checkpoint" in str(ft.make_jaxpr(AUTO)(X, WS))
    np.testing.assert_allclose(np.asarray(ft.grad(ft.jit(AUTO))(X, WS)), REF, rtol=0,
                               atol=1e-12)


def test_the_plan_recomputes_and_the_vjp_saves_no_more_than_planned():
    plan = AUTO.explain(X, WS)              # as saved_residuals: w.r.t. every argument
    assert plan.recompute_eqn_fraction > 0
    intermediate = [s for s, d in ft.saved_residuals(AUTO, X, WS)
                    if not d.startswith("from the argument")]
    saved = sum(int(np.prod(s.shape)) * s.dtype.itemsize for s in intermediate)
    assert 0 < saved <= plan.saved_bytes < plan.no_remat_bytes
    plain = [s for s, d in ft.saved_residuals(chain, X, WS)]
    assert len(intermediate) < len(plain)


def test_check_grads_on_a_small_chain():
    ws = WS[:3]
    def f0(x):
        return chain(x, ws)
    f = ft.auto_checkpoint(f0, max_bytes=least_budget(f0, X))
    assert f.explain(X).recompute_eqn_fraction > 0
    check_grads(f, (X,), order=2, modes=("fwd", "rev"))


def test_vmap_of_grad_and_grad_of_vmap():
    xs = np.stack([X, 2 * X])
    with pytest.raises(ValueError, match="under vmap of 2 examples"):   # 8 * ACT / 2 is too
        ft.vmap(ft.grad(AUTO), in_axes=(0, None))(xs, WS)               # little per example
    auto = ft.auto_checkpoint(chain, max_bytes=2 * 8 * ACT)
    per_example = ft.vmap(ft.grad(auto), in_axes=(0, None))(xs, WS)
    for i in range(2):
        np.testing.assert_allclose(np.asarray(per_example[i]), np.asarray(GRAD(xs[i], WS)),
                                   rtol=0, atol=1e-12)
    batched = ft.grad(lambda xs: jnp.sum(ft.vmap(auto, in_axes=(0, None))(xs, WS)))(xs)
    np.testing.assert_allclose(np.asarray(batched), np.stack([GRAD(x, WS) for x in xs]),
                               rtol=0, atol=1e-12)


def test_no_transform_calls_the_function_itself():
    assert float(AUTO(X, WS)) == float(chain(X, WS))


@pytest.mark.parametrize("argnums", [0, None])
def test_predicted_peak_within_budget_and_monotone(argnums):
    least = least_budget(chain, X, WS, argnums=argnums)
    plans = [ft.auto_checkpoint(chain, max_bytes=b).explain(X, WS, argnums=argnums)
             for b in (least, least + ACT, 2 * least, 100 * least)]
    for p in plans:
        assert p.predicted_peak <= p.max_bytes
    fractions = [p.recompute_flop_fraction for p in plans]
    assert fractions == sorted(fractions, reverse=True)
    assert plans[0].recompute_eqn_fraction >= 0.5          # the minimum recomputes most
    huge = plans[-1]                                        # a huge budget saves everything
    assert huge.recompute_eqn_fraction == 0 and huge.saved_bytes == huge.no_remat_bytes
    assert [m for _, _, m in huge.segments] == ["saved"]


def test_explain_reports_lines_bytes_and_fractions():
    plan = AUTO.explain(X, WS, argnums=0)
    text = str(plan)
    assert "predicted peak" in text and "recomputed" in text and "source line" in text
    rows = {line: (s, r, b) for line, s, r, b in plan.lines}
    saved, recomputed, nbytes = rows[LAYER_LINE]
    assert saved + recomputed == 2 * LAYERS and recomputed > 0
    assert nbytes == LAYERS * ACT              # one residual per tanh; dot keeps only its W
    assert LAYER_LINE in text
    assert f"{plan.recompute_eqn_fraction:.0%} of equations" in text


def test_bad_budgets():
    with pytest.raises(ValueError, match="positive"):
        ft.auto_checkpoint(chain, max_bytes=0)
    with pytest.raises(ValueError, match="positive"):
        ft.auto_checkpoint(chain, max_bytes=-5)
    with pytest.raises(TypeError, match="max_bytes"):
        ft.auto_checkpoint(chain, max_bytes="10MiB")
    # below the largest single residual: the minimum and that residual named in bytes
    least = least_budget(chain, X, WS, argnums=0)
    with pytest.raises(ValueError, match=rf"minimum possible for this function, {least} bytes"
                                         rf" .*largest single residual is {ACT} bytes"):
        ft.grad(ft.auto_checkpoint(chain, max_bytes=ACT))(X, WS)
    # above the largest residual but below what any plan reaches: the same minimum
    with pytest.raises(ValueError, match=f"minimum possible for this function, {least} bytes"):
        ft.grad(ft.auto_checkpoint(chain, max_bytes=least - 1))(X, WS)
    ft.grad(ft.auto_checkpoint(chain, max_bytes=least))(X, WS)
