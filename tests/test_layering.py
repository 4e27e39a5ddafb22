"""The package's layering, checked on the source: every import statement, including the lazy ones
inside function bodies, must point down the stack

    tree_util, devices  <  core, util  <  _args, interpreters  <  lax  <  jit_primitive  <  backends, api

(interpreters get the few lax ops they emit through interpreters/ops.py, filled by lax)."""
import ast
import pathlib
import subprocess
import sys

import pytest

from functrans import jit_primitive
from functrans.interpreters import ops

PKG = pathlib.Path(__file__).resolve().parent.parent / "functrans"

# files (relative to the package) -> modules they must not import from
FORBIDDEN = {
    "interpreters/*.py": ("functrans.lax", "functrans.api", "functrans.backends"),
    "lax/*.py": ("functrans.api", "functrans.backends"),
    "jit_primitive.py": ("functrans.backends",),
}


def _module_name(path, root):
    """The dotted module name of a file under the directory root (``functrans.lax.lax``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node, path, root):
    """The absolute modules one Import/ImportFrom node names: for ``from X import y`` both X
    and X.y (y may be a submodule)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:
        package = _module_name(path, root).split(".")
        if path.name != "__init__.py":
            package = package[:-1]
        package = package[:len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    else:
        base = node.module
    return [base] + [f"{base}.{a.name}" for a in node.names]


def imported_modules(path, root=PKG.parent):
    """Every module a source file under root imports, wherever the import statement is
    (ast.walk also finds the lazy imports inside function bodies)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    return {m for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
            for m in _resolve(node, path, root)}


def _violations(path, forbidden, root=PKG.parent):
    return sorted(m for m in imported_modules(path, root)
                  if any(m == f or m.startswith(f + ".") for f in forbidden))


def test_resolver_sees_lazy_relative_imports(tmp_path):
    # the old code's shape: a lazy ``from ..lax import lax`` inside a function body
    pkg = tmp_path / "functrans" / "interpreters"
    pkg.mkdir(parents=True)
    src = pkg / "batching.py"
    src.write_text("from .. import core\n\ndef moveaxis(x):\n    from ..lax import lax\n"
                   "    return lax.transpose(x, (1, 0))\n")
    assert _violations(src, FORBIDDEN["interpreters/*.py"], tmp_path) == ["functrans.lax",
                                                                          "functrans.lax.lax"]
    assert "functrans.core" in imported_modules(src, tmp_path)


@pytest.mark.parametrize("pattern", sorted(FORBIDDEN))
def test_layering(pattern):
    files = sorted(PKG.glob(pattern))
    assert files, pattern
    bad = {str(p.relative_to(PKG)): _violations(p, FORBIDDEN[pattern]) for p in files}
    assert not {k: v for k, v in bad.items() if v}


def test_lax_registered_the_interpreter_ops():
    from functrans import lax
    for name in ops.NAMES:
        assert ops.get(name) is getattr(lax, name)


def test_interpreter_op_errors():
    with pytest.raises(RuntimeError, match="'no_such_op' used before functrans.lax registered"):
        ops.get("no_such_op")
    with pytest.raises(ValueError, match="not an op the interpreters use"):
        ops.register(mul=lambda x, y: x * y)


def test_cuda_executor_registered_without_importing_numba_cuda():
    code = ("import sys, functrans\n"
            "from functrans.jit_primitive import backend_executors as b\n"
            "assert 'functrans.backends.numba_cuda' not in sys.modules\n"
            "assert b['cuda'].__name__ == '_run_cuda_lazily', b\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent)


@pytest.mark.parametrize("first", ["functrans.lax.control_flow", "functrans.interpreters.ad"])
def test_fresh_process_imports(first):
    code = (f"import {first}\nimport functrans\n"
            "assert functrans.grad(functrans.numpy.sin)(0.0) == 1.0\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PKG.parent)


def test_jit_impl_runs_registered_executor(monkeypatch):
    import numpy as np

    import functrans
    calls = []

    def fake(closed, args, name):
        calls.append(name)
        return [np.asarray(7.0)]
    monkeypatch.setitem(jit_primitive.backend_executors, "cuda", fake)
    closed = functrans.make_jaxpr(lambda x: x + 1.0)(1.0)
    out = jit_primitive._jit_impl(np.asarray(1.0), jaxpr=closed, name="f", backend="cuda")
    assert float(out[0]) == 7.0 and calls == ["f"]
