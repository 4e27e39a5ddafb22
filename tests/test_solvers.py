"""Matrix-free solvers (functrans.scipy.sparse.linalg: cg, bicgstab, gmres),
lax.custom_linear_solve, the curvature products ggn_vp / fisher_vp, and optim.newton_cg.

Solutions are checked against numpy.linalg.solve, derivatives against finite differences
(check_grads) and against the derivative of the direct solve, curvature products against
explicit matrices from jacfwd / hessian. Cost: tiny systems; the only jitted solver (cg on a
4 x 4 matrix) is built once at module level. bicgstab and gmres are not jitted here (seconds,
and for gmres a minute, of compile cold: docs/solvers.md); their loops are the same
while_loop and custom_linear_solve primitives."""
import numpy as np
import pytest

import functrans as ft
import functrans.numpy as jnp
from functrans import lax, optim
from functrans.scipy.sparse.linalg import bicgstab, cg, gmres
from functrans.test_util import check_grads

N = 4
_rng = np.random.default_rng(0)
_G = _rng.normal(size=(N, N))
SPD = _G @ _G.T + N * np.eye(N)
NONSYM = _G + N * np.eye(N)
B = _rng.normal(size=N)


def gmres_incremental(A, b, **kw):
    return gmres(A, b, solve_method="incremental", **kw)


def gmres_batched(A, b, **kw):
    return gmres(A, b, solve_method="batched", restart=2, **kw)   # several restart cycles


SOLVERS = {"cg": (cg, SPD), "bicgstab": (bicgstab, NONSYM),
           "gmres_incremental": (gmres_incremental, NONSYM),
           "gmres_batched": (gmres_batched, NONSYM)}


# ---------------------------------------------------------------------------------------------
# Solutions

@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("as_function", [False, True])
def test_solution_matches_numpy(name, as_function):
    solver, A = SOLVERS[name]
    op = (lambda v: jnp.dot(A, v)) if as_function else A
    x, info = solver(op, B, tol=1e-12)
    np.testing.assert_allclose(x, np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    assert int(info) == 0


@pytest.mark.parametrize("name", ["cg", "gmres_incremental"])
def test_pytree_vectors(name):
    """A block-diagonal operator on a dict of a vector and a matrix, with x0 given."""
    solver = SOLVERS[name][0]
    a1, a2 = SPD[:2, :2], SPD

    def op(v):
        return {"u": a1 @ v["u"], "w": a2 @ v["w"]}
    b = {"u": B[:2], "w": np.arange(8.0).reshape(4, 2)}
    x0 = {"u": np.ones(2), "w": np.ones((4, 2))}
    x, info = solver(op, b, x0=x0, tol=1e-12)
    np.testing.assert_allclose(x["u"], np.linalg.solve(a1, b["u"]), atol=1e-10)
    np.testing.assert_allclose(x["w"], np.linalg.solve(a2, b["w"]), atol=1e-10)
    assert int(info) == 0


def test_preconditioner_makes_an_ill_conditioned_system_converge():
    """A diagonal spread over 6 decades: CG stops unconverged after 3 iterations (info 3),
    with the Jacobi preconditioner it converges (info 0)."""
    n = 6
    a = np.diag(np.logspace(0, 6, n)) + 0.01 * (np.ones((n, n)) - np.eye(n))
    b = np.ones(n)
    jacobi = np.diag(1 / np.diag(a))
    for solver in (cg, bicgstab):
        _, info = solver(a, b, tol=1e-3, maxiter=3)
        assert int(info) == 3
        x, info = solver(a, b, tol=1e-8, maxiter=3, M=jacobi)
        assert int(info) == 0
        np.testing.assert_allclose(a @ np.asarray(x), b, rtol=1e-6)


def test_maxiter_reached_reports_the_iteration_count():
    _, info = cg(SPD, B, tol=1e-14, maxiter=2)
    assert int(info) == 2


# ---------------------------------------------------------------------------------------------
# jit and vmap

_cg_jit = ft.jit(lambda a, b: cg(a, b, tol=1e-12))


def test_jit_matches_numpy():
    """cg only: each solver's jitted loop costs seconds of compile (bicgstab, gmres share
    the while_loop and custom_linear_solve lowering tested here)."""
    jitted, A = _cg_jit, SPD
    x, info = jitted(A, B)
    np.testing.assert_allclose(x, np.linalg.solve(A, B), rtol=1e-9, atol=1e-12)
    assert int(info) == 0
    x, info = jitted(A, np.full(N, np.nan))       # non-finite detection compiled too
    assert int(info) == -1 and np.isnan(np.asarray(x)).all()


@pytest.mark.parametrize("name", ["cg", "bicgstab", "gmres_incremental"])
def test_vmap_over_rhs_and_matrix_matches_a_loop(name):
    solver, A = SOLVERS[name]
    bs = np.stack([B, 2 * B + 1, -B])
    xs, infos = ft.vmap(lambda b: solver(A, b, tol=1e-12))(bs)
    for x, b in zip(np.asarray(xs), bs):
        np.testing.assert_allclose(x, np.linalg.solve(A, b), atol=1e-10)
    assert np.asarray(infos).tolist() == [0, 0, 0]
    As = np.stack([A, A + np.eye(N)])
    xs, _ = ft.vmap(lambda a: solver(a, B, tol=1e-12))(As)
    for x, a in zip(np.asarray(xs), As):
        np.testing.assert_allclose(x, np.linalg.solve(a, B), atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Derivatives: implicit (one more solve), never through the iterations

def _spd(m):
    return m @ m.T + N * jnp.eye(N)


@pytest.mark.parametrize("name", ["cg", "bicgstab", "gmres_incremental"])
def test_gradients_match_finite_differences(name):
    solver = SOLVERS[name][0]
    make = _spd if name == "cg" else (lambda m: m + N * jnp.eye(N))

    def f(m, b):
        return solver(make(m), b, tol=1e-13)[0]
    check_grads(f, (_G, B), order=1, modes=("fwd", "rev"))


def test_gradient_matches_the_direct_solve_and_second_order():
    def via_cg(m, b):
        return jnp.sum(jnp.sin(cg(lambda v: _spd(m) @ v, b, tol=1e-13)[0]))

    def direct(m, b):
        return jnp.sum(jnp.sin(jnp.linalg.solve(_spd(m), b)))
    for got, want in zip(ft.grad(via_cg, (0, 1))(_G, B), ft.grad(direct, (0, 1))(_G, B)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    check_grads(lambda b: cg(SPD, b, tol=1e-13)[0], (B,), order=2, modes=("fwd", "rev"))


def test_gradient_is_a_solve_not_an_unrolled_loop():
    """The backward pass holds a custom_linear_solve (the transposed solve), and reverse mode
    works although the solver's loop is a while_loop (which has no transpose)."""
    jaxpr = ft.make_jaxpr(ft.grad(lambda b: jnp.sum(cg(SPD, b)[0] ** 2)))(B)
    names = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert names.count("custom_linear_solve") == 2 and "while" not in names


# ---------------------------------------------------------------------------------------------
# Non-finite values and bad input

@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_nonfinite_operator_is_reported(name):
    solver, A = SOLVERS[name]
    poisoned = A.copy()
    poisoned[1, 2] = np.inf               # the product overflows to inf, then NaN
    x, info = solver(lambda v: jnp.dot(poisoned, v), B, x0=np.ones(N), tol=1e-12)
    assert int(info) == -1
    assert np.isnan(np.asarray(x)).all()       # never a plausible-looking wrong answer


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="square matrix"):
        cg(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="x0 and b must have matching tree structure"):
        cg(SPD, B, x0=(B,))
    with pytest.raises(ValueError, match="solve_method"):
        gmres(NONSYM, B, solve_method="qr")
    with pytest.raises(TypeError, match="matvec must return the type of b"):
        cg(lambda v: v[:2], B)


# ---------------------------------------------------------------------------------------------
# custom_linear_solve directly

def _dense_solve(matvec, b):
    return jnp.linalg.solve(ft.jacfwd(matvec)(b), b)      # A recovered from the linear map


def test_custom_linear_solve_nonsymmetric_transpose_and_aux():
    def f(m, b):
        def matvec(v):
            return m @ v

        def solve(mv, rhs):
            return _dense_solve(mv, rhs), jnp.int32(7)
        return lax.custom_linear_solve(matvec, b, solve, transpose_solve=solve, has_aux=True)
    x, aux = f(NONSYM, B)
    np.testing.assert_allclose(x, np.linalg.solve(NONSYM, B), rtol=1e-12)
    assert int(aux) == 7
    check_grads(lambda m, b: f(m, b)[0], (NONSYM, B), order=2, modes=("fwd", "rev"))
    xs, _ = ft.vmap(f, (None, 0))(NONSYM, np.stack([B, -B]))
    np.testing.assert_allclose(xs[1], -np.linalg.solve(NONSYM, B), rtol=1e-12)


def test_custom_linear_solve_without_transpose_solve():
    def f(b):
        return lax.custom_linear_solve(lambda v: NONSYM @ v, b, _dense_solve)
    np.testing.assert_allclose(ft.jvp(f, (B,), (B,))[1], np.linalg.solve(NONSYM, B), rtol=1e-12)
    with pytest.raises(TypeError, match="transpose_solve is required"):
        ft.grad(lambda b: jnp.sum(f(b)))(B)


# ---------------------------------------------------------------------------------------------
# Curvature products against explicit matrices

def _model(p, x):
    """A one-layer tanh model with 3 outputs; p is a flat vector of 2 * 3 + 3 parameters."""
    return jnp.tanh(x @ p[:6].reshape(2, 3) + p[6:])


def _xent(z, y):
    return -jnp.sum(y * ft.nn.log_softmax(z))


_X = _rng.normal(size=(5, 2))
_Y = np.eye(3)[[0, 1, 2, 0, 1]]
_P = _rng.normal(size=9)
_V = _rng.normal(size=9)


def test_ggn_vp_matches_explicit_gauss_newton_matrix():
    jac = np.asarray(ft.jacfwd(_model)(_P, _X)).reshape(15, 9)
    hess = np.asarray(ft.hessian(lambda z: _xent(z.reshape(5, 3), _Y))(
        np.asarray(_model(_P, _X)).reshape(15)))
    ggn = jac.T @ hess @ jac
    np.testing.assert_allclose(ft.ggn_vp(_model, _xent)(_P, _V, _X, _Y), ggn @ _V, rtol=1e-10)
    assert np.linalg.eigvalsh(ggn).min() > -1e-12      # positive semi-definite


def test_fisher_vp_matches_explicit_empirical_fisher():
    def log_lik(p, x, y):
        return jnp.sum(y * ft.nn.log_softmax(_model(p, x)), axis=-1)
    g = np.asarray(ft.jacfwd(log_lik)(_P, _X, _Y))          # (5, 9) per-example gradients
    np.testing.assert_allclose(ft.fisher_vp(log_lik)(_P, _V, _X, _Y), g.T @ g @ _V / 5,
                               rtol=1e-10)
    with pytest.raises(ValueError, match="vector of per-example"):
        ft.fisher_vp(lambda p: jnp.sum(p))(_P, _V)


# ---------------------------------------------------------------------------------------------
# Newton-CG

def _newton(f, w, steps, **kw):
    opt = optim.newton_cg(**kw)
    state = opt.init(w)
    for _ in range(steps):
        value, g = ft.value_and_grad(f)(w)
        updates, state = opt.update(g, state, w, value=value, value_fn=f)
        w = optim.apply_updates(w, updates)
    return w, state


def test_newton_cg_solves_a_quadratic_in_one_step():
    c = np.arange(1.0, N + 1)
    w, state = _newton(lambda w: 0.5 * w @ SPD @ w - c @ w, np.zeros(N), 2,
                       damping=1e-12, cg_tol=1e-12)
    np.testing.assert_allclose(w, np.linalg.solve(SPD, c), rtol=1e-9)
    assert float(state.step_size) == 1.0 and int(state.count) == 2


def test_newton_cg_with_gauss_newton_curvature_on_rosenbrock():
    """Rosenbrock as least squares (r = (10 (w1 - w0^2), 1 - w0)): Gauss-Newton curvature
    through ggn_vp, damping and the line search reach the minimum (1, 1)."""
    def residuals(w, _):
        return jnp.stack([10 * (w[1] - w[0] ** 2), 1 - w[0]])

    def sq(r):
        return jnp.sum(r ** 2)
    f = lambda w: sq(residuals(w, None))          # noqa: E731
    gvp = ft.ggn_vp(residuals, sq)
    opt = optim.newton_cg(damping=1e-3)
    w = np.array([-1.2, 1.0])
    state = opt.init(w)
    for _ in range(40):
        value, g = ft.value_and_grad(f)(w)
        updates, state = opt.update(g, state, w, value=value, value_fn=f,
                                    curvature_vp=lambda p, v: gvp(p, v, None))
        w = optim.apply_updates(w, updates)
    np.testing.assert_allclose(w, [1.0, 1.0], atol=1e-6)
