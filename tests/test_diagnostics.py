"""functrans.diagnostics.grad_flow: per-line and per-parameter gradient statistics of one backward
pass, flags for exploding/vanishing gradients, the first NaN's line, eagerly and under jit."""
import inspect

import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans.diagnostics import GradFlowReport, grad_flow
from functrans.tree_util import keystr, tree_flatten_with_path

WIDTH, DEPTH, BATCH = 6, 5, 8


def _params(scale, seed=0, depth=DEPTH):
    rng = np.random.default_rng(seed)
    return {"layers": [{"w": jnp.asarray(rng.normal(size=(WIDTH, WIDTH)) * scale / np.sqrt(WIDTH)),
                        "b": jnp.asarray(rng.normal(size=WIDTH) * 0.1)}
                       for _ in range(depth)]}


def _batch(seed=1):
    rng = np.random.default_rng(seed)
    return tuple(jnp.asarray(rng.normal(size=(BATCH, WIDTH))) for _ in range(2))


def relu_mlp(params, x, y):
    h = x
    for p in params["layers"]:
        z = h @ p["w"] + p["b"]
        h = jnp.maximum(z, 0.0)
    return jnp.mean((h - y) ** 2)


RELU_LINE = inspect.getsourcelines(relu_mlp)[1] + 4


def tanh_mlp(params, x, y):
    h = x
    for p in params["layers"]:
        h = jnp.tanh(h @ p["w"] + p["b"])
    return jnp.mean((h - y) ** 2)


def _line_rows(report, lineno):
    return [g for g in report.lines if f"test_diagnostics.py:{lineno} " in g["line"]]


@pytest.mark.parametrize("loss", [relu_mlp, tanh_mlp])
def test_param_norms_equal_grad_leaf_norms(loss):
    params, (x, y) = _params(1.5), _batch()
    report = grad_flow(loss)(params, x, y)
    grads, _ = tree_flatten_with_path(jax.grad(loss)(params, x, y))
    leaves, _ = tree_flatten_with_path(params)
    assert [p["path"] for p in report.params] == [keystr(k) for k, _ in grads]
    for row, (_, g), (_, p) in zip(report.params, grads, leaves):
        np.testing.assert_allclose(row["grad_norm"], np.linalg.norm(np.asarray(g)), rtol=1e-5)
        np.testing.assert_allclose(row["param_norm"], np.linalg.norm(np.asarray(p)), rtol=1e-5)
        np.testing.assert_allclose(row["ratio"], row["grad_norm"] / row["param_norm"], rtol=1e-6)
    np.testing.assert_allclose(float(report.loss), float(loss(params, x, y)), rtol=1e-6)


def test_dead_relu_fraction_is_the_hand_count():
    params, (x, y) = _params(1.5), _batch()
    report = grad_flow(relu_mlp)(params, x, y)
    rows = _line_rows(report, RELU_LINE)
    assert [r["line"].endswith(f"#{k}") for k, r in enumerate(rows)] == [True] * DEPTH
    h, dead = np.asarray(x), []
    for p in params["layers"]:
        z = h @ np.asarray(p["w"]) + np.asarray(p["b"])
        dead.append(np.mean(z < 0))
        h = np.maximum(z, 0)
    assert 0 < max(dead) < 1
    np.testing.assert_allclose([r["zero_fraction"] for r in rows], dead)


def test_healthy_network_is_not_flagged():
    params, (x, y) = _params(1.0), _batch()
    report = grad_flow(tanh_mlp)(params, x, y)
    assert report.exploding == [] and report.vanishing == [] and report.first_nonfinite is None


def test_exploding_gradients_are_flagged():
    params, (x, y) = _params(40.0), _batch()
    report = grad_flow(relu_mlp)(params, x, y)
    assert report.exploding, str(report)
    assert report.lines[0]["line"] in report.exploding        # the first layer gets the most
    assert all(g["flag"] == "exploding" for g in report.lines if g["line"] in report.exploding)


def test_vanishing_gradients_are_flagged_by_line_run():
    params, (x, y) = _params(0.01), _batch()
    report = grad_flow(relu_mlp)(params, x, y)
    assert report.lines[0]["line"] in report.vanishing, str(report)
    assert not report.exploding
    # a looser threshold flags nothing
    assert grad_flow(relu_mlp, threshold=1e30)(params, x, y).vanishing == []


def test_vanishing_gradients_are_flagged_by_parameter():
    # the loop body is one line, so the layers share one line run: the parameter rows give depth
    params, (x, y) = _params(0.01), _batch()
    report = grad_flow(tanh_mlp)(params, x, y)
    assert len(report.lines) == 2
    assert "['layers'][0]['w']" in report.vanishing, str(report)
    assert "['layers'][4]['w']" not in report.vanishing and not report.exploding


def nan_mlp(params, x, y):
    h = x
    for i, p in enumerate(params["layers"]):
        h = jnp.tanh(h @ p["w"] + p["b"])
        if i == 2:
            h = h * jnp.sqrt(h - 10.0)
    return jnp.mean((h - y) ** 2)


NAN_LINE = inspect.getsourcelines(nan_mlp)[1] + 5


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt")
def test_first_nan_names_the_injected_line():
    params, (x, y) = _params(1.0), _batch()
    report = grad_flow(nan_mlp)(params, x, y)
    first = report.first_nonfinite
    assert first is not None and f"test_diagnostics.py:{NAN_LINE} (nan_mlp)" in first, first
    assert "(forward)" in first
    assert any(p["nonfinite"] for p in report.params)
    assert f"first NaN/inf: {first}" in str(report)


def test_under_jit_one_compile_matches_eager():
    params = _params(1.5, depth=2)      # small: a cold numba compile of the program stays short
    jitted = jax.jit(grad_flow(relu_mlp))
    for seed in (1, 2):
        x, y = _batch(seed)
        eager, staged = grad_flow(relu_mlp)(params, x, y), jitted(params, x, y)
        assert isinstance(staged, GradFlowReport)
        for a, b in ((eager.lines, staged.lines), (eager.params, staged.params)):
            assert [r.get("line", r.get("path")) for r in a] == [r.get("line", r.get("path"))
                                                                 for r in b]
            for ra, rb in zip(a, b):
                for key in ("norm", "grad_norm", "zero_fraction", "nonfinite"):
                    if key in ra:
                        np.testing.assert_allclose(ra[key], rb[key], rtol=1e-5)
    assert jitted.trace_count == 1


def test_str_is_the_table():
    params, (x, y) = _params(1.5), _batch()
    text = str(grad_flow(relu_mlp)(params, x, y))
    assert "source line" in text and "ct norm" in text and "grad/param" in text
    assert f"test_diagnostics.py:{RELU_LINE} (relu_mlp) #4" in text
    assert "['layers'][4]['w']" in text and "no NaN/inf" in text


def test_bad_input():
    params, (x, _) = _params(1.0), _batch()
    with pytest.raises(ValueError, match="threshold"):
        grad_flow(relu_mlp, threshold=0.5)
    with pytest.raises(TypeError, match="scalar"):
        grad_flow(lambda p, x: x @ p["layers"][0]["w"])(params, x)
    with pytest.raises(TypeError, match=r"\['n'\]"):
        grad_flow(lambda p: jnp.sum(p["w"]))({"w": jnp.ones(2), "n": jnp.arange(2)})


def test_plot_without_matplotlib_says_so(monkeypatch):
    params, (x, y) = _params(1.0), _batch()
    report = grad_flow(relu_mlp)(params, x, y)
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="matplotlib"):
        report.plot()
