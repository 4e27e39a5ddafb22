"""Persistent kernel cache: generated modules are written to content-hashed ``.py`` files in
FUNCTRANS_CACHE_DIR (default ``~/.cache/functrans``; ``~`` and ``$VARS`` are expanded) and
imported with importlib, so numba's ``cache=True`` stores the machine code beside them and a
second process starts warm.

A cache never breaks a run (docs/jit.md, "What survives what"):

* numba finds its cache files through :class:`Locator`, registered first in numba's (and
  numba-cuda's) locator lists: for the kernel modules and for functrans's own numba functions
  (vmath.py) it always answers ``<cache dir>/__pycache__``, so numba writes nothing outside
  FUNCTRANS_CACHE_DIR, a read-only cache directory is still read, and a directory that
  vanishes never leaves numba without a locator ("no locator available").
* Every write is atomic (tmp file + ``os.replace``), and a failing write (read-only, ENOSPC,
  the directory gone or turned into a file) only costs time: numba's saves are guarded
  (:func:`_guard_dispatchers`), and a source that cannot be written or read back is compiled
  in memory from the string (no file, no temporary directory). One warning per process.
* The modules loaded in this process are found again by name in ``sys.modules``; an LRU of
  ``MAX_MODULES`` keeps the last ones referenced (see :func:`load_module`)."""
from __future__ import annotations

import collections
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import types
import warnings

_warned = False
MAX_MODULES = 512           # kernel modules kept in sys.modules (least recently used dropped)
_loaded = collections.OrderedDict()     # module name -> module, most recently used last


def cache_dir():
    """The directory generated kernels are written to (``~`` and ``$VARS`` expanded)."""
    d = os.environ.get("FUNCTRANS_CACHE_DIR")
    if d:
        return os.path.abspath(os.path.expanduser(os.path.expandvars(d)))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(os.path.abspath(os.path.expanduser(os.path.expandvars(base))), "functrans")


def _salt():
    # read without importing numba or vmath: the names are computed before numba starts
    from importlib.metadata import version

    from .. import __version__
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vmath.py"), "rb") as f:
        helper = hashlib.sha256(f.read()).hexdigest()
    return f"functrans={__version__};numba={version('numba')};vmath={helper};"


_SALT = None
_KERNEL_MODULE = re.compile(r"ft_[0-9a-f]{24}$")


def module_name(src):
    """The content-hashed module name of a generated source."""
    global _SALT
    if _SALT is None:
        _SALT = _salt()
    return "ft_" + hashlib.sha256((_SALT + src).encode()).hexdigest()[:24]


def _warn_once(msg, consequence="compiling kernels in memory instead"):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"functrans: {msg}; {consequence}", RuntimeWarning, stacklevel=4)


def _write_atomic(path, src):
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------------------------------------
# numba's side: where it keeps the machine code, and saves that cannot fail a run

class Locator:
    """numba's cache locator for functrans's numba functions: the kernel modules (``ft_*``)
    and the package's own ``cache=True`` functions. Machine code lives in
    ``<cache dir>/__pycache__``. The source stamp is the module's content hash (the kernel's
    name; for package modules, the hash of the file as it was first read), so the stamp never
    needs the file and a vanished directory cannot make numba give up on caching."""

    _package_stamps = {}

    def __init__(self, py_func, py_file, stamp, cache_path):
        self._lineno = py_func.__code__.co_firstlineno
        self._stamp, self._cache_path = stamp, cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        """The locator of a function of ours, or None (numba then asks its own locators)."""
        modname = getattr(py_func, "__module__", None) or ""
        if _KERNEL_MODULE.match(modname):
            return cls(py_func, py_file, modname, os.path.join(os.path.dirname(py_file),
                                                               "__pycache__"))
        if modname.startswith("functrans.") and os.path.isfile(py_file):
            stamp = cls._package_stamps.get(py_file)
            if stamp is None:
                with open(py_file, "rb") as f:
                    stamp = cls._package_stamps[py_file] = hashlib.sha256(f.read()).hexdigest()
            return cls(py_func, py_file, f"{modname}:{stamp}",
                       os.path.join(cache_dir(), "__pycache__"))
        return None

    def ensure_cache_path(self):
        """Create the cache path; OSError if it cannot be written (numba then saves nothing)."""
        os.makedirs(self._cache_path, exist_ok=True)
        if not os.access(self._cache_path, os.W_OK):
            raise PermissionError(f"{self._cache_path} is not writable")

    def get_cache_path(self):
        """The directory numba's index and data files go to."""
        return self._cache_path

    def get_source_stamp(self):
        """A value that changes when the function's source does."""
        return self._stamp

    def get_disambiguator(self):
        """Tells apart functions of one name in a module (numba uses the line number)."""
        return str(self._lineno)


def _install_locator():
    """Put Locator first in numba's locator list, and in numba-cuda's once it is imported."""
    for name in ("numba.core.caching", "numba.cuda.core.caching"):
        mod = sys.modules.get(name)
        if name == "numba.core.caching" and mod is None:
            import numba.core.caching as mod
        impl = getattr(mod, "CacheImpl", None)
        if impl is not None and Locator not in impl._locator_classes:
            impl._locator_classes = [Locator, *impl._locator_classes]


def _guarded(method, what, errors=OSError, repair=None):
    def call(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except errors as e:
            _warn_once(f"kernel cache directory {cache_dir()!r} failed to {what} "
                       f"({type(e).__name__}: {e})",
                       "kernels are compiled here when needed and may not be saved")
            if repair is not None:
                repair()
            return None
    call.__doc__ = method.__doc__
    return call


def _guard_dispatchers(namespace):
    """Make the numba caches of the dispatchers in a module namespace fail softly: an OSError
    (a read-only, full or vanished cache directory) costs a compile, never a run, and an entry
    that does not load (corrupt, truncated) is a miss whose index is emptied for the next save."""
    for obj in list(namespace.values()):
        c = getattr(obj, "_cache", None)
        locator = getattr(getattr(c, "_impl", None), "locator", None)
        if isinstance(locator, Locator) and "save_overload" not in vars(c):
            c.flush = _guarded(c.flush, "flush")
            c.load_overload = _guarded(c.load_overload, "load", Exception, c.flush)
            c.save_overload = _guarded(c.save_overload, "save")


# ---------------------------------------------------------------------------------------------
# Our side: the generated sources

def _import(modname, path):
    _install_locator()
    spec = importlib.util.spec_from_file_location(modname, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod          # before exec: numba's cache locator needs it
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    _guard_dispatchers(vars(mod))
    return mod


def _from_string(modname, src):
    """A module executed from src with numba's disk cache off (no file anywhere)."""
    mod = types.ModuleType(modname)
    mod.__file__ = f"<functrans kernel {modname}>"
    sys.modules[modname] = mod          # numba looks functions' modules up by name
    try:
        exec(compile(re.sub(r"\bcache=(True|CACHE)\b", "cache=False", src), mod.__file__,
                     "exec"), vars(mod))
    except BaseException:
        sys.modules.pop(modname, None)
        raise
    return mod


def write_source(src):
    """(module name, path, fresh) of a generated source, written to the cache directory if it
    is not there yet (fresh: it was not, so numba has no compiled code for it). path is None
    where the directory cannot be written (the source is then compiled in memory)."""
    modname = module_name(src)
    d = cache_dir()
    path = os.path.join(d, modname + ".py")
    try:
        try:
            with open(path) as f:
                if f.read() == src:
                    return modname, path, False
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        os.makedirs(d, exist_ok=True)
        _write_atomic(path, src)        # missing or corrupt: (re)write it
    except OSError as e:
        _warn_once(f"kernel cache directory {d!r} is not writable ({e})")
        return modname, None, True
    return modname, path, True


def _remember(modname, mod):
    """Record mod as the most recently used; drop the least recently used beyond MAX_MODULES
    from sys.modules (their executables keep them alive while they are used)."""
    _loaded[modname] = mod
    _loaded.move_to_end(modname)
    while len(_loaded) > MAX_MODULES:
        old, _ = _loaded.popitem(last=False)
        sys.modules.pop(old, None)
    return mod


def load_module(src):
    """The imported module of a generated source (from the disk cache when possible; in memory
    when the cache directory cannot be written or read)."""
    modname = module_name(src)
    mod = _loaded.get(modname)
    if mod is not None:
        return _remember(modname, mod)
    modname, path, _ = write_source(src)
    if path is not None:
        try:
            return _remember(modname, _import(modname, path))
        except OSError as e:            # the file vanished (or turned unreadable) meanwhile
            _warn_once(f"kernel cache file {path!r} could not be read ({e})")
    return _remember(modname, _from_string(modname, src))


def drop_numba_cache(mod):
    """Delete numba's cache files for a module (after a failed load)."""
    if not mod.__file__.endswith(".py"):
        return                          # compiled in memory: nothing on disk
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
    return _loaded.get(modname) or _remember(modname, _from_string(modname, src))


def clear(directory=None):
    """Remove every cached kernel in the cache directory."""
    shutil.rmtree(directory or cache_dir(), ignore_errors=True)


__all__ = ["cache_dir", "load_module", "in_memory_module", "module_name", "clear",
           "drop_numba_cache", "Locator", "MAX_MODULES"]
