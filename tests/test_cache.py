"""The kernel cache never breaks a run (read-only, vanished, full, replaced by a file, written
by many processes), leaves no temporary directories, and the precompile helper never outlives
its parent. Each in-process test jits a kernel of its own (a source no other test compiles), so
its cache directory really is consulted."""
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np

import functrans
import functrans.numpy as fnp
from functrans import backends
from functrans.backends import cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env(**extra):
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [ROOT, os.environ.get("PYTHONPATH", "")] if p), **extra)


def _jit_in_memory_check(fun, x, monkeypatch, tmp_path, sabotage=None):
    """Run jit(fun)(x) with the cache in tmp_path/c (sabotage(dir) runs right after the kernel
    module is imported, before numba compiles it); returns (warnings, cache dir)."""
    d = tmp_path / "c"
    monkeypatch.setenv("FUNCTRANS_CACHE_DIR", str(d))
    monkeypatch.setattr(cache, "_warned", False)
    if sabotage is not None:
        real = cache._import

        def imported_then_sabotaged(modname, path):
            mod = real(modname, path)
            sabotage(d)
            return mod
        monkeypatch.setattr(cache, "_import", imported_then_sabotaged)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = functrans.jit(fun)(x)
    np.testing.assert_allclose(out, fun(x), rtol=1e-6)
    return [str(m.message) for m in w if issubclass(m.category, RuntimeWarning)], d


def test_cache_dir_expands_user_and_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FT_SUB", "sub")
    monkeypatch.setenv("FUNCTRANS_CACHE_DIR", "~/x/$FT_SUB")
    assert cache.cache_dir() == str(tmp_path / "x" / "sub")
    modname, path, fresh = cache.write_source("# expanded\n")
    assert fresh and path == str(tmp_path / "x" / "sub" / (modname + ".py"))
    assert not os.path.exists("~") and os.path.isfile(path)
    assert cache.write_source("# expanded\n") == (modname, path, False)


def test_directory_vanishing_before_import_compiles_in_memory(tmp_path, monkeypatch):
    real = cache._import

    def vanish_first(modname, path):
        shutil.rmtree(os.path.dirname(path))
        return real(modname, path)
    monkeypatch.setattr(cache, "_import", vanish_first)
    msgs, _ = _jit_in_memory_check(lambda x: fnp.sinh(x) * 1.5, np.arange(5.0), monkeypatch,
                                   tmp_path)
    assert len(msgs) == 1 and "could not be read" in msgs[0]


def test_directory_vanishing_mid_compile_only_costs_time(tmp_path, monkeypatch):
    # numba recreates the directory for its save: no warning, the kernel is cached again
    msgs, d = _jit_in_memory_check(lambda x: fnp.cosh(x) - 0.5, np.arange(5.0), monkeypatch,
                                   tmp_path, sabotage=shutil.rmtree)
    assert msgs == [] and any(f.endswith(".nbi") for f in os.listdir(d / "__pycache__"))


def test_directory_turned_into_a_file_mid_compile_warns_once(tmp_path, monkeypatch):
    def to_file(d):
        shutil.rmtree(d)
        d.write_text("not a directory")
    msgs, d = _jit_in_memory_check(lambda x: fnp.arctan(x) * 2.5, np.arange(5.0), monkeypatch,
                                   tmp_path, sabotage=to_file)
    assert len(msgs) == 1 and "failed to" in msgs[0] and d.read_text() == "not a directory"


def test_full_disk_warns_once_and_leaves_no_tmp_files(tmp_path, monkeypatch):
    real_replace = os.replace

    def enospc(src, dst, *a, **k):
        if str(tmp_path) in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)
    monkeypatch.setattr(os, "replace", enospc)
    msgs, d = _jit_in_memory_check(lambda x: fnp.arcsinh(x) + 0.25, np.arange(5.0), monkeypatch,
                                   tmp_path)
    assert len(msgs) == 1 and "No space left" in msgs[0]
    left = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs]
    assert left == []                   # the .py's tmp file was removed, nothing else written


def test_failed_numba_save_warns_once_then_runs(tmp_path, monkeypatch):
    # the .py is written; numba's save then fails (a full disk for numba's files only)
    real_replace = os.replace

    def enospc(src, dst, *a, **k):
        if "__pycache__" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *a, **k)
    monkeypatch.setattr(os, "replace", enospc)
    f = lambda x: fnp.arccos(x / 8) * 3.0   # noqa: E731
    msgs, d = _jit_in_memory_check(f, np.arange(5.0), monkeypatch, tmp_path)
    assert len(msgs) == 1 and "failed to save" in msgs[0]
    # a second kernel in the same process: the same failure, no second warning
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        functrans.jit(lambda x: fnp.arccos(x / 8) + fnp.arcsin(x / 9))(np.arange(5.0))
    assert not [m for m in w if issubclass(m.category, RuntimeWarning)]


_CHILD = textwrap.dedent("""
    import json, sys, warnings
    warnings.simplefilter("always")
    import numpy as np, functrans, functrans.numpy as fnp
    from functrans import backends
    with warnings.catch_warnings(record=True) as w:
        v = functrans.jit(lambda x: fnp.sum(fnp.tanh(x) * 1.75 - fnp.log1p(x * x)))(
            np.linspace(0, 2, 50).astype(np.float32))
    s = backends.compile_stats()
    print(json.dumps([s["compiles"], s["disk_loads"], float(v), [str(m.message) for m in w]]))
""")


def _child(cache_dir, tmp_path, wrap=(), **env):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    p = subprocess.run([*wrap, sys.executable, "-c", _CHILD],
                       env=_env(FUNCTRANS_CACHE_DIR=str(cache_dir), HOME=str(home),
                                XDG_CACHE_HOME=str(home / ".cache"), **env),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.splitlines()[-1])


def _tree(d):
    return sorted((os.path.relpath(os.path.join(r, f), d), os.stat(os.path.join(r, f)).st_mtime_ns)
                  for r, _, fs in os.walk(d) for f in fs)


def _read_only(d):
    """A command prefix running a child with d read-only: a read-only bind mount in a mount
    namespace of its own as root (root ignores file modes), the file modes otherwise."""
    if os.geteuid() != 0:
        for r, dirs, fs in os.walk(d):
            for n in dirs + fs:
                os.chmod(os.path.join(r, n), 0o555)
        os.chmod(d, 0o555)
        return ()
    return ("unshare", "-m", "sh", "-c",
            f'mount --bind "{d}" "{d}" && mount -o remount,bind,ro "{d}" "{d}" && exec "$@"', "sh")


def test_processes_populate_one_directory_then_a_read_only_copy_loads(tmp_path):
    d = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env=_env(FUNCTRANS_CACHE_DIR=str(d))) for _ in range(3)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(json.loads(out.splitlines()[-1]))
    assert len({r[2] for r in results}) == 1 and all(r[3] == [] for r in results)
    assert all(r[0] + r[1] == 1 for r in results)
    before = _tree(d)
    assert not [f for f, _ in before if ".tmp" in f]     # no writer left a tmp file
    compiles, loads, value, msgs = _child(d, tmp_path, wrap=_read_only(d))
    assert (compiles, loads, value, msgs) == (0, 1, results[0][2], [])
    assert _tree(d) == before                            # nothing written in the cache...
    assert _tree(tmp_path / "home") == []                # ...nor in numba's user-wide cache


def test_unusable_cache_leaves_no_temporary_directories(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    compiles, loads, _, msgs = _child(blocker / "sub", tmp_path, TMPDIR=str(tmp))
    assert (compiles, loads) == (1, 0) and len(msgs) == 1 and "not writable" in msgs[0]
    assert os.listdir(tmp) == [] and _tree(tmp_path / "home") == []


# ---------------------------------------------------------------------------------------------
# The precompile helper dies with its parent and is reaped

_PARENT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np, functrans, functrans.nn as nn, functrans.numpy as fnp
    from functrans.backends import precompile
    real = precompile.Helper.__init__

    def started(self, jobs):
        real(self, jobs)
        print(self.proc.pid, flush=True)
        how = {how!r}
        if how == "raise":
            raise RuntimeError("boom")
        if how == "interrupt":
            raise KeyboardInterrupt
        if how in ("SIGTERM", "SIGKILL"):
            os.kill(os.getpid(), getattr(signal, how))
        if how == "exit":
            sys.exit(0)
    precompile.Helper.__init__ = started
    precompile.choose = lambda costs: list(range(1, len(costs)))

    def step(ws, x):
        for w in ws:
            x = nn.relu(x @ w) * 1.25 + fnp.tanh(x @ w)
        return fnp.sum(nn.log_softmax(x))
    ws = [np.ones((4, 4)) * (i + 1) / 10 for i in range({n})]
    functrans.jit(functrans.grad(step))(ws, np.ones((3, 4)))
    import gc; gc.collect()
    print("done", flush=True)
""")


def _state(pid):
    """The /proc state letter of pid, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _run_parent(tmp_path, how, n=3):
    p = subprocess.run([sys.executable, "-c", _PARENT.format(how=how, n=n)], timeout=300,
                       env=_env(FUNCTRANS_CACHE_DIR=str(tmp_path / f"c-{how}"),
                                FUNCTRANS_PARALLEL_COMPILE="1"),
                       capture_output=True, text=True)
    pids = [int(ln) for ln in p.stdout.split() if ln.isdigit()]
    assert pids, (p.stdout, p.stderr)
    deadline = time.monotonic() + 20
    while any(_state(pid) not in (None, "Z") for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return p, pids


def test_helper_dies_with_its_parent_however_it_ends(tmp_path):
    for how, rc in [("exit", 0), ("raise", 1), ("interrupt", -2), ("SIGTERM", -15),
                    ("SIGKILL", -9)]:
        p, pids = _run_parent(tmp_path, how)
        assert p.returncode == rc, (how, p.stderr)
        assert [_state(pid) for pid in pids] in ([None], ["Z"]), how


def test_finished_helper_is_reaped_while_the_parent_runs():
    import signal
    from functrans.backends import precompile
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    h = precompile.Helper([])            # nothing to compile: it exits at once
    pid = h.proc.pid
    assert signal.getsignal(signal.SIGTERM) is precompile._on_sigterm
    deadline = time.monotonic() + 20
    while _state(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(pid) is None           # exited and reaped, though nobody called wait_for
    h._close()
    assert not precompile._live
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL      # the default is back


# ---------------------------------------------------------------------------------------------
# In-memory caches are bounded

def test_dropped_jitted_functions_free_their_executables():
    import gc
    x = np.arange(6.0)
    functrans.jit(lambda v: v * 0.5 - 3.0)(x)       # the kernel compiled once, up front
    gc.collect()
    before = len(backends._executables)
    for i in range(30):                              # distinct functions, one kernel source
        assert functrans.jit(lambda v, c=float(i): v * 0.5 - c)(x)[0] == -i
    gc.collect()
    assert len(backends._executables) == before


def test_kernel_modules_are_kept_least_recently_used(tmp_path, monkeypatch):
    monkeypatch.setenv("FUNCTRANS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "MAX_MODULES", 2)
    monkeypatch.setattr(cache, "_loaded", type(cache._loaded)())
    a, b, c = (cache.load_module(f"value = {i}\n") for i in range(3))
    assert list(cache._loaded) == [b.__name__, c.__name__]
    assert a.__name__ not in sys.modules and c.__name__ in sys.modules
    assert cache.load_module("value = 1\n") is b              # still loaded: the same module
    assert cache.load_module("value = 0\n").value == 0       # evicted: imported again
    assert list(cache._loaded) == [b.__name__, a.__name__]
