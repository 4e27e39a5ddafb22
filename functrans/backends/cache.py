"""Persistent kernel cache: generated modules are written to content-hashed ``.py`` files in
FUNCTRANS_CACHE_DIR (default ``~/.cache/functrans``) and imported with importlib, so numba's
``cache=True`` stores the machine code beside them and a second process starts warm.

Writes are atomic (tmp file + os.replace), so processes racing on one entry are safe. An
unwritable directory or a corrupt entry falls back to an in-memory module with one warning."""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import warnings

_warned = False
_fallback_dir = None


def cache_dir():
    """The directory generated kernels are written to."""
    d = os.environ.get("FUNCTRANS_CACHE_DIR")
    if d:
        return d
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "functrans")


def _salt():
    # read without importing numba or vmath: the names are computed before numba starts
    from importlib.metadata import version

    from .. import __version__
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vmath.py"), "rb") as f:
        helper = hashlib.sha256(f.read()).hexdigest()
    return f"functrans={__version__};numba={version('numba')};vmath={helper};"


_SALT = None


def module_name(src):
    """The content-hashed module name of a generated source."""
    global _SALT
    if _SALT is None:
        _SALT = _salt()
    return "ft_" + hashlib.sha256((_SALT + src).encode()).hexdigest()[:24]


def _warn_once(msg):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"functrans: {msg}; compiling kernels in memory instead", RuntimeWarning,
                      stacklevel=4)


def _write_atomic(path, src):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(src)
    os.replace(tmp, path)


def _import(modname, path):
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod          # before exec: numba's cache locator needs it
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


def _fallback_path(modname, src):
    """A private temp dir (a real file is needed for numba's locator; not shared)."""
    global _fallback_dir
    if _fallback_dir is None:
        _fallback_dir = tempfile.mkdtemp(prefix="functrans-")
    path = os.path.join(_fallback_dir, modname + ".py")
    _write_atomic(path, src)
    return path


def write_source(src):
    """(module name, path, fresh) of a generated source, written to the cache directory if it
    is not there yet (fresh: it was not, so numba has no compiled code for it)."""
    modname = module_name(src)
    d = cache_dir()
    path = os.path.join(d, modname + ".py")
    try:
        os.makedirs(d, exist_ok=True)
        existing = None
        if os.path.exists(path):
            with open(path) as f:
                existing = f.read()
        fresh = existing != src
        if fresh:                       # missing or corrupt: (re)write it
            _write_atomic(path, src)
    except OSError as e:
        _warn_once(f"kernel cache directory {d!r} is not writable ({e})")
        return modname, _fallback_path(modname, src), True
    return modname, path, fresh


def load_module(src):
    """The imported module of a generated source (from the disk cache when possible)."""
    mod = sys.modules.get(module_name(src))
    if mod is not None:
        return mod
    modname, path, _ = write_source(src)
    return _import(modname, path)


def drop_numba_cache(mod):
    """Delete numba's cache files for a module (after a failed load)."""
    pyc = os.path.join(os.path.dirname(mod.__file__), "__pycache__")
    base = os.path.basename(mod.__file__)[:-3]
    try:
        for f in os.listdir(pyc):
            if f.startswith(base + "."):
                os.remove(os.path.join(pyc, f))
    except OSError:
        pass


def in_memory_module(src):
    """A fresh module for src compiled without numba's disk cache."""
    modname = module_name(src) + "_mem"
    mod = sys.modules.get(modname)
    if mod is not None:
        return mod
    path = _fallback_path(modname, src.replace("cache=True", "cache=False"))
    return _import(modname, path)


def clear(directory=None):
    """Remove every cached kernel in the cache directory."""
    shutil.rmtree(directory or cache_dir(), ignore_errors=True)


__all__ = ["cache_dir", "load_module", "in_memory_module", "module_name", "clear",
           "drop_numba_cache"]
