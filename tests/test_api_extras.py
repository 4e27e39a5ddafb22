"""JAX API names outside the transforms proper: disable_jit, config options, jit on methods,
jacobian."""
import functools

import numpy as np
import pytest

import functrans as ft
import functrans.numpy as fnp


def _counting_jit():
    """A jitted function that counts its Python runs and records what type x had."""
    seen = []

    @ft.jit
    def f(x):
        seen.append(type(x))
        return fnp.sin(x) * 2.0
    return f, seen


def test_disable_jit_runs_the_python_function_each_call():
    f, seen = _counting_jit()
    x = np.linspace(0, 1, 3)
    want = np.sin(x) * 2.0
    np.testing.assert_allclose(f(x), want)
    np.testing.assert_allclose(f(x), want)
    assert len(seen) == 1                       # traced once, then compiled
    with ft.disable_jit():
        np.testing.assert_allclose(f(x), want)
        np.testing.assert_allclose(f(x), want)
        assert float(f(x)[1]) == pytest.approx(want[1])
    assert len(seen) == 4 and not isinstance(seen[-1], ft.core.Tracer)    # concrete values
    f(x)
    assert len(seen) == 4 and not ft.config.disable_jit                   # restored


def test_disable_jit_through_config_update_and_the_environment_name():
    f, seen = _counting_jit()
    ft.config.update("jax_disable_jit", True)
    try:
        assert ft.config.jax_disable_jit and ft.config.read("disable_jit")
        f(np.ones(2))
        f(np.ones(2))
    finally:
        ft.config.update("jax_disable_jit", False)
    assert len(seen) == 2 and all(t is not ft.core.Tracer for t in seen)


def test_unknown_config_option_names_close_matches():
    with pytest.raises(AttributeError, match="jax_debug_nans"):
        ft.config.update("jax_debug_nan", True)
    with pytest.raises(AttributeError, match="Unrecognized config option: 'no_such_thing'$"):
        ft.config.read("no_such_thing")


class _Scaled:
    def __init__(self, k):
        self.k = k

    @functools.partial(ft.jit, static_argnums=0)
    def apply(self, x):
        return x * self.k

    @ft.jit
    def plain(x):          # noqa: N805  (a jitted function stored on a class, called unbound)
        return x + 1.0


def test_jit_on_a_method_binds_self():
    s = _Scaled(3.0)
    np.testing.assert_allclose(s.apply(np.arange(3.0)), np.arange(3.0) * 3.0)
    np.testing.assert_allclose(_Scaled.apply(s, np.ones(2)), [3.0, 3.0])
    np.testing.assert_allclose(_Scaled.plain(np.ones(2)), [2.0, 2.0])
    assert isinstance(_Scaled.__dict__["apply"], ft.api.Jitted)


def test_jacobian_is_jacrev():
    f = lambda x: fnp.sin(x) * x[0]    # noqa: E731
    x = np.array([0.3, -1.2, 2.0])
    np.testing.assert_allclose(ft.jacobian(f)(x), ft.jacrev(f)(x))
    assert ft.jacobian is ft.jacrev
