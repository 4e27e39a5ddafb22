"""Every program in examples/ runs and does what its docstring says, on small settings and
eagerly (no numba compiles: about 2 s in all). A test below fails when an example has no test."""
import importlib.util
import pathlib
import sys
import types

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
TESTED = {"train_mlp", "grad_flow", "newton_cg", "per_example_grads", "rnn_scan", "train_bf16",
          "data_parallel", "hessian_spectrum"}


def load(name):
    """The example examples/<name>.py as a module (its __main__ block not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_has_a_test():
    assert {p.stem for p in EXAMPLES.glob("*.py")} == TESTED


def test_train_mlp_learns_digits_with_the_line_progress_bar(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm fails: the plain line is used
    acc = load("train_mlp").main(["--no-jit", "--epochs", "2", "--batch-size", "64"])
    assert acc > 0.8
    out, err = capsys.readouterr()
    assert f"final test accuracy {acc:.4f}" in out
    assert "\r[" in err and "42/42" in err and "epoch 2 loss" in err


def test_train_mlp_uses_tqdm_when_installed(monkeypatch):
    class FakeTqdm:
        def __init__(self, total, unit):
            self.total = total
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    bar = load("train_mlp").progress_bar(7)
    assert isinstance(bar, FakeTqdm) and bar.total == 7


def test_grad_flow_example_flags_bad_inits_only(capsys):
    reports = load("grad_flow").main(["--depth", "12", "--width", "16", "--batch", "8"])
    small, large, good = reports["too small"], reports["too large"], reports["He (good)"]
    assert small.vanishing and not small.exploding
    assert large.exploding and not large.vanishing
    assert not good.vanishing and not good.exploding
    out = capsys.readouterr().out
    assert "init too small" in out and "vanishing" in out and "exploding" in out


def test_newton_cg_beats_gradient_descent(capsys):
    f_newton, f_gd = load("newton_cg").main(["--gd-iters", "20"])
    assert f_newton < f_gd
    assert "Newton-CG (functrans.optim.newton_cg" in capsys.readouterr().out


def test_per_example_grads_dp_sgd_learns(capsys):
    assert load("per_example_grads").main(epochs=1) > 0.5


def test_rnn_scan_loss_falls(capsys):
    history = load("rnn_scan").main(epochs=2, steps_per_epoch=5, use_jit=False)
    assert len(history) == 2 and history[1] < history[0]
    assert np.isfinite(history).all()


def test_train_bf16_matches_float32_accuracy(capsys):
    acc = load("train_bf16").main(["--no-jit", "--epochs", "2", "--hidden", "32"])
    assert acc["float32"] > 0.85 and abs(acc["bfloat16"] - acc["float32"]) < 0.03
    assert "overflowed steps skipped" in capsys.readouterr().out


def test_data_parallel_trains_as_one_process(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))       # it imports train_mlp's model
    assert load("data_parallel").main(["--no-jit", "--epochs", "1"]) > 0.8
    assert "1 process(es)" in capsys.readouterr().out


def test_hessian_spectrum_top_eigenvalues_after_training(capsys):
    before, after = load("hessian_spectrum").main(["--hidden", "4", "--steps", "3", "--k", "2"])
    for spec in (before, after):
        assert len(spec.eigenvalues) == 2 and spec.eigenvalues[0] >= spec.eigenvalues[1]
    assert "L-BFGS steps" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(TESTED))
def test_example_documents_how_to_run_it(name):
    assert "Run:" in load(name).__doc__
