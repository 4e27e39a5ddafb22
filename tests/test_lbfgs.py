"""functrans.optim's L-BFGS and line searches: optax's documented examples, the two-loop
recursion against the dense BFGS inverse-Hessian recursion in NumPy, the zoom search's exact
step on a quadratic, convergence on Rosenbrock and an ill-conditioned quadratic, jit of the
whole update against eager, bad input."""
import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import optim


def sq(x):
    return jnp.sum(x ** 2)


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def minimize(fun, x0, steps, opt=None):
    """Runs optax's documented L-BFGS loop; returns (params, values after each step, state)."""
    opt = opt or optim.lbfgs()
    params, state = jnp.asarray(x0), None
    state = opt.init(params)
    vg = optim.value_and_grad_from_state(fun)
    values = []
    for _ in range(steps):
        value, grad = vg(params, state=state)
        updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=fun)
        params = optim.apply_updates(params, updates)
        values.append(float(fun(params)))
    return np.asarray(params), values, state


def test_optax_docstring_example_step_by_step():
    x0 = np.array([1.0, 2.0, 3.0])
    params, values, state = minimize(sq, x0, 1)
    # first step: gamma_0 = 1/||g||, so the direction is -g/||g||; the zoom search accepts step 1
    g = 2 * x0
    np.testing.assert_allclose(params, x0 - g / np.linalg.norm(g), rtol=1e-14)
    assert values[0] == pytest.approx(15 - np.sqrt(56), rel=1e-14)      # optax prints 7.52E+00
    assert float(state[2].learning_rate) == 1.0
    # second step: the secant pair makes gamma = 1/2, the exact inverse Hessian: the minimum
    _, values, _ = minimize(sq, x0, 2)
    assert values[1] < 1e-25                                             # optax: 7.46E-14 (f32)


def dense_lbfgs_direction(u, pairs, gamma):
    """P u with P_{j+1} = V_j^T P_j V_j + rho_j s_j s_j^T, V_j = I - rho_j y_j s_j^T, P = gamma I
    at the oldest pair (Nocedal & Wright eq. 7.19), as dense matrices."""
    n = u.size
    P = gamma * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        V = np.eye(n) - rho * np.outer(y, s)
        P = V.T @ P @ V + rho * np.outer(s, s)
    return P @ u


@pytest.mark.parametrize("memory_size", [1, 3])
def test_scale_by_lbfgs_is_the_dense_bfgs_recursion_over_the_last_pairs(memory_size):
    rng = np.random.default_rng(1)
    M = rng.normal(size=(5, 5))
    H = M @ M.T + 5 * np.eye(5)                  # gradients of a convex quadratic: s^T y > 0
    xs = [rng.normal(size=5) for _ in range(5)]
    tx = optim.scale_by_lbfgs(memory_size)
    state = tx.init(jnp.asarray(xs[0]))
    for k, x in enumerate(xs):
        out, state = tx.update(jnp.asarray(H @ x), state, jnp.asarray(x))
        pairs = [(xs[j + 1] - xs[j], H @ (xs[j + 1] - xs[j])) for j in range(k)][-memory_size:]
        if k == 0:
            want = H @ x * min(1.0, 1.0 / np.linalg.norm(H @ x))
        else:
            s, y = pairs[-1]
            want = dense_lbfgs_direction(H @ x, pairs, (s @ y) / (y @ y))
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-10, err_msg=f"step {k}")
    assert int(state.count) == 5


def test_scale_init_precond_false_starts_from_the_identity():
    tx = optim.scale_by_lbfgs(scale_init_precond=False)
    g = jnp.asarray([3.0, 4.0])
    out, _ = tx.update(g, tx.init(g), g)
    np.testing.assert_allclose(np.asarray(out), [3.0, 4.0])


def test_zoom_search_finds_the_exact_minimiser_of_a_quadratic_by_interpolation():
    # along u = -g from x, f(x + eta u) = |x|^2 (1 - 2 eta)^2: step 1 fails to decrease, the
    # quadratic interpolation through (0, f, f') and (1, f(1)) lands on eta = 1/2 exactly
    x = jnp.asarray([1.0, 2.0, 3.0])
    tx = optim.chain(optim.sgd(1.0), optim.scale_by_zoom_linesearch(15))
    value, grad = jax.value_and_grad(sq)(x)
    u, state = tx.update(grad, tx.init(x), x, value=value, grad=grad, value_fn=sq)
    ls = state[1]
    assert float(ls.learning_rate) == 0.5 and float(ls.value) == 0.0
    assert int(ls.info.num_linesearch_steps) == 2
    assert float(ls.info.decrease_error) == 0.0 and float(ls.info.curvature_error) == 0.0
    np.testing.assert_allclose(np.asarray(u), -np.asarray(x))


def test_backtracking_matches_optax_docstring_values():
    # optax prints 5.04E+00 1.81E+00 6.53E-01 2.35E-01 8.47E-02 (steps 0.8 then 0.8 * 1.5 / ...)
    opt = optim.chain(optim.sgd(1.0),
                      optim.scale_by_backtracking_linesearch(15, store_grad=True))
    _, values, state = minimize(sq, [1.0, 2.0, 3.0], 5, opt)
    np.testing.assert_allclose(values, [5.04, 1.81, 0.653, 0.235, 0.0847], rtol=3e-3)
    assert values[0] == pytest.approx(14 * 0.36, rel=1e-14)     # 1 -> 0.8: x - 1.6 x


def test_extra_arguments_reach_value_fn():
    def fn(params, x, y):
        return 0.5 * (x @ params - y) ** 2
    x, y = jnp.asarray([3.0, 2.0, 1.0]), jnp.asarray(0.0)
    params = jnp.asarray([1.0, 2.0, 3.0])
    tx = optim.chain(optim.sgd(1.0), optim.scale_by_zoom_linesearch(15))
    value, grad = jax.value_and_grad(fn)(params, x, y)
    u, _ = tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=fn,
                     x=x, y=y)
    assert float(fn(optim.apply_updates(params, u), x, y)) < 1e-20    # optax: 2.56E-13 (f32)
    with pytest.raises(TypeError, match=r"\['z'\]"):
        tx.update(grad, tx.init(params), params, value=value, grad=grad, value_fn=fn, x=x, y=y,
                  z=1)


@pytest.mark.parametrize("n", [2, 10])
def test_lbfgs_converges_on_rosenbrock(n):
    params, values, state = minimize(rosenbrock, np.zeros(n), 60)
    np.testing.assert_allclose(params, np.ones(n), atol=1e-7)
    assert values[-1] < 1e-12
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))   # sufficient decrease


def test_lbfgs_solves_a_quadratic_with_condition_number_100():
    rng = np.random.default_rng(2)
    Q = np.linalg.qr(rng.normal(size=(8, 8)))[0]
    A = (Q * np.logspace(0, 2, 8)) @ Q.T
    b = rng.normal(size=8)

    def f(x):
        return 0.5 * x @ (jnp.asarray(A) @ x) - jnp.asarray(b) @ x
    params, values, _ = minimize(f, np.zeros(8), 30, optim.lbfgs(memory_size=8))
    x_star = np.linalg.solve(A, b)
    assert values[-1] - float(f(jnp.asarray(x_star))) < 1e-12
    np.testing.assert_allclose(params, x_star, atol=1e-5)


OPT = optim.lbfgs()
VG = optim.value_and_grad_from_state(rosenbrock)


def lbfgs_update(grad, state, params, value):
    return OPT.update(grad, state, params, value=value, grad=grad, value_fn=rosenbrock)


def iterates(update_fn, steps):
    """The params after each of ``steps`` L-BFGS steps on Rosenbrock from (-1.2, 1)."""
    params = jnp.asarray([-1.2, 1.0])
    state, out = OPT.init(params), []
    for _ in range(steps):
        value, grad = VG(params, state=state)
        updates, state = update_fn(grad, state, params, value)
        params = optim.apply_updates(params, updates)
        out.append(np.asarray(params))
    return out, state


def test_jit_of_the_update_matches_eager():
    # jit of update (the line search's while_loop, the two-loop scans); jitting the whole step
    # with value_and_grad_from_state's cond as well costs 5 s more of cold compile
    eager, _ = iterates(lbfgs_update, 6)
    jitted, state = iterates(jax.jit(lbfgs_update), 6)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12, atol=1e-14)
    assert int(state[0].count) == 6 and float(state[2].learning_rate) > 0


def test_bad_input():
    with pytest.raises(ValueError, match="memory_size"):
        optim.scale_by_lbfgs(0)
    adam = optim.adam(1e-3)
    with pytest.raises(ValueError, match="'value'"):
        optim.value_and_grad_from_state(sq)(jnp.ones(2), state=adam.init(jnp.ones(2)))
    with pytest.raises(ValueError, match="initial_guess_strategy"):
        optim.scale_by_zoom_linesearch(10, initial_guess_strategy="two")
    with pytest.raises(ValueError, match="parameters"):
        optim.scale_by_lbfgs().update(jnp.ones(2), optim.scale_by_lbfgs().init(jnp.ones(2)))


def test_a_step_into_nan_is_not_taken():
    # value_fn is nan for every step the search tries: the step size is 0, params unchanged
    def f(x):
        return jnp.where(jnp.all(x == 1.0), jnp.sum(x ** 2), jnp.nan)
    x = jnp.asarray([1.0, 1.0])
    value, grad = jax.value_and_grad(sq)(x)
    u, state = OPT.update(grad, OPT.init(x), x, value=value, grad=grad, value_fn=f)
    assert float(state[2].learning_rate) == 0.0
    np.testing.assert_array_equal(np.asarray(u), [0.0, 0.0])
