"""Test configuration: type-check every jaxpr built, share compiled kernels through an
on-disk cache, and keep hypothesis runs small (numba compiles are slow on 2 cores)."""
import os
import pathlib

os.environ.setdefault("FUNCTRANS_CHECK_JAXPRS", "1")
os.environ.setdefault("FUNCTRANS_CACHE_DIR",
                      str(pathlib.Path(__file__).resolve().parent.parent / ".functrans_cache"))

from hypothesis import HealthCheck, settings  # noqa: E402

_quiet = [HealthCheck.too_slow, HealthCheck.data_too_large]
# The README's test command draws the same examples every run (a red run is always the code's
# fault, never the draw's); FUNCTRANS_HYPOTHESIS=explore draws new ones and remembers failures.
settings.register_profile("default", max_examples=25, deadline=None, derandomize=True,
                          database=None, suppress_health_check=_quiet)
settings.register_profile("explore", max_examples=25, deadline=None, suppress_health_check=_quiet)
settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True,
                          database=None, suppress_health_check=_quiet)
# The fuzz suite (tests/test_fuzz.py, docs/testing.md): the CI profile is derandomised (the
# same programs every run); the long one (pytest -m fuzz) draws new ones and keeps failures in
# hypothesis's example database (.hypothesis/) so that the next run replays them first.
_fuzz = dict(deadline=None, print_blob=True, suppress_health_check=list(HealthCheck))
settings.register_profile("fuzz-ci", derandomize=True, database=None, **_fuzz)
settings.register_profile("fuzz-long", **_fuzz)
settings.load_profile(os.environ.get("FUNCTRANS_HYPOTHESIS")
                      or ("ci" if os.environ.get("CI") else "default"))

import functrans.core  # noqa: E402

functrans.core.config.check_jaxprs = True
