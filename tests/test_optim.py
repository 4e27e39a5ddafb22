"""functrans.optim: every optimizer against its published update formula written out in NumPy,
schedules against closed forms, the combinators' semantics, jit/vmap of update, bad input."""
import importlib.util
import math

import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import optim
from functrans.tree_util import tree_map

RNG = np.random.default_rng(0)
PARAMS = {"w": RNG.normal(size=(2, 3)), "b": RNG.normal(size=(3,))}
GRADS = [{k: RNG.normal(size=v.shape) for k, v in PARAMS.items()} for _ in range(3)]
LR = 0.1


def run(opt, params=PARAMS, grads=GRADS):
    """The list of update pytrees (as NumPy) of opt over grads, applying each to params."""
    params = tree_map(jnp.asarray, params)
    state, out = opt.init(params), []
    for g in grads:
        u, state = opt.update(tree_map(jnp.asarray, g), state, params)
        params = optim.apply_updates(params, u)
        out.append(tree_map(np.asarray, u))
    return out


def reference(step_fn, init_fn, params=PARAMS, grads=GRADS):
    """The same list from a NumPy per-leaf formula step_fn(g, p, state, t) -> update (t counts
    from 1; state is a dict per leaf built by init_fn(p))."""
    params = {k: v.copy() for k, v in params.items()}
    states = {k: init_fn(v) for k, v in params.items()}
    out = []
    for t, g in enumerate(grads, 1):
        u = {k: step_fn(g[k], params[k], states[k], t) for k in params}
        params = {k: params[k] + u[k] for k in params}
        out.append(u)
    return out


def assert_close(got, want, rtol=1e-10, atol=1e-12):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.keys() == w.keys()
        for k in g:
            np.testing.assert_allclose(g[k], w[k], rtol=rtol, atol=atol, err_msg=k)


def zeros(*names):
    return lambda p: {n: np.zeros_like(p) for n in names}


# --- NumPy formulas -------------------------------------------------------------------------

def np_adam(b1=0.9, b2=0.999, eps=1e-8, nesterov=False):
    def step(g, p, s, t):
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g * g
        if nesterov:
            m_hat = b1 * s["m"] / (1 - b1 ** (t + 1)) + (1 - b1) * g / (1 - b1 ** t)
        else:
            m_hat = s["m"] / (1 - b1 ** t)
        return m_hat / (np.sqrt(s["v"] / (1 - b2 ** t)) + eps)
    return step


def np_sgd(momentum, nesterov):
    def step(g, p, s, t):
        s["t"] = g + momentum * s["t"]
        return -LR * (g + momentum * s["t"] if nesterov else s["t"])
    return step


def np_adamw(wd):
    adam = np_adam()
    return lambda g, p, s, t: -LR * (adam(g, p, s, t) + wd * p)


def np_lamb(wd):
    adam = np_adam(eps=1e-6)

    def step(g, p, s, t):
        r = adam(g, p, s, t) + wd * p
        pn, rn = np.linalg.norm(p), np.linalg.norm(r)
        return -LR * (pn / rn if pn > 0 and rn > 0 else 1.0) * r
    return step


def np_lion(b1=0.9, b2=0.99, wd=1e-3):
    def step(g, p, s, t):
        c = np.sign(b1 * s["m"] + (1 - b1) * g)
        s["m"] = b2 * s["m"] + (1 - b2) * g
        return -LR * (c + wd * p)
    return step


def np_rmsprop(decay, eps, centered, momentum, nesterov):
    def step(g, p, s, t):
        s["v"] = decay * s["v"] + (1 - decay) * g * g
        s["m"] = decay * s["m"] + (1 - decay) * g
        u = -LR * g / np.sqrt(s["v"] - (s["m"] ** 2 if centered else 0) + eps)
        if momentum is None:
            return u
        s["t"] = u + momentum * s["t"]
        return u + momentum * s["t"] if nesterov else s["t"]
    return step


def np_adagrad(init=0.1, eps=1e-7):
    def step(g, p, s, t):
        s["s"] = s["s"] + g * g
        return -LR * g / np.sqrt(s["s"] + eps)
    return step, lambda p: {"s": np.full_like(p, init)}


def np_adafactor(eps=1e-30, decay_rate=0.8):
    """Shazeer & Stern: V = R C / mean(R) for matrices (R, C row/column means of g^2), plain
    EMA for vectors; update clipped to RMS 1, times lr * max(RMS(p), 1e-3), negated."""
    def step(g, p, s, t):
        beta = 1 - t ** -decay_rate
        g2 = g * g + eps
        if g.ndim == 2:   # shape (2, 3): rows are axis 0 (the smaller), columns axis 1
            s["r"] = beta * s["r"] + (1 - beta) * g2.mean(axis=1)
            s["c"] = beta * s["c"] + (1 - beta) * g2.mean(axis=0)
            v = np.outer(s["r"], s["c"]) / s["r"].mean()
        else:
            s["v"] = beta * s["v"] + (1 - beta) * g2
            v = s["v"]
        u = g / np.sqrt(v)
        u = u / max(1.0, np.sqrt(np.mean(u * u)))
        return -LR * u * max(np.sqrt(np.mean(p * p)), 1e-3)

    def init(p):
        return {"r": np.zeros(p.shape[0]), "c": np.zeros(p.shape[-1]), "v": np.zeros_like(p)}
    return step, init


CASES = {
    "sgd": (lambda: optim.sgd(LR), lambda g, p, s, t: -LR * g, zeros()),
    "sgd_momentum": (lambda: optim.sgd(LR, momentum=0.9), np_sgd(0.9, False), zeros("t")),
    "sgd_nesterov": (lambda: optim.sgd(LR, momentum=0.9, nesterov=True), np_sgd(0.9, True),
                     zeros("t")),
    "adam": (lambda: optim.adam(LR), lambda g, p, s, t: -LR * np_adam()(g, p, s, t),
             zeros("m", "v")),
    "nadam": (lambda: optim.nadam(LR),
              lambda g, p, s, t: -LR * np_adam(nesterov=True)(g, p, s, t), zeros("m", "v")),
    "adamw": (lambda: optim.adamw(LR, weight_decay=0.05), np_adamw(0.05), zeros("m", "v")),
    "lamb": (lambda: optim.lamb(LR, weight_decay=0.01), np_lamb(0.01), zeros("m", "v")),
    "lion": (lambda: optim.lion(LR), np_lion(), zeros("m")),
    "rmsprop": (lambda: optim.rmsprop(LR), np_rmsprop(0.9, 1e-8, False, None, False),
                zeros("v", "m")),
    "rmsprop_centered_nesterov": (
        lambda: optim.rmsprop(LR, decay=0.8, eps=1e-3, centered=True, momentum=0.5,
                              nesterov=True),
        np_rmsprop(0.8, 1e-3, True, 0.5, True), zeros("v", "m", "t")),
    "adagrad": (lambda: optim.adagrad(LR), *np_adagrad()),
    "adafactor_factored": (lambda: optim.adafactor(LR, min_dim_size_to_factor=2),
                           *np_adafactor()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_optimizer_matches_published_formula(name):
    make, step, init = CASES[name]
    # adafactor computes its decay 1 - t^-0.8 in float32, as optax does
    rtol = 1e-6 if name.startswith("adafactor") else 1e-10
    assert_close(run(make()), reference(step, init), rtol=rtol)


def test_adafactor_states_are_factored_for_matrices_only():
    state = optim.adafactor(LR, min_dim_size_to_factor=2).init(PARAMS)[0]
    assert isinstance(state, optim.FactoredState)
    assert state.v_row["w"].shape == (2,) and state.v_col["w"].shape == (3,)
    assert state.v["w"].shape == (1,) and state.v["b"].shape == (3,)
    # optax's default min_dim_size_to_factor=128: small matrices keep a full second moment
    assert optim.adafactor(LR).init(PARAMS)[0].v["w"].shape == (2, 3)


def test_adam_state_is_optax_shaped():
    state = optim.adam(LR).init(PARAMS)
    assert isinstance(state[0], optim.ScaleByAdamState) and state[0]._fields == ("count", "mu", "nu")
    assert isinstance(state[1], optim.EmptyState)
    assert str(state[0].count.dtype) == "int32"
    _, state = optim.adam(LR).update(GRADS[0], state, PARAMS)
    assert int(state[0].count) == 1


def test_float32_params_stay_float32():
    params = {k: jnp.asarray(v, dtype=jnp.float32) for k, v in PARAMS.items()}
    grads = [{k: v.astype(np.float32) for k, v in g.items()} for g in GRADS]
    opt = optim.adamw(optim.linear_schedule(LR, 0.0, 4))
    state = opt.init(params)
    for g in grads:
        u, state = opt.update(g, state, params)
        params = optim.apply_updates(params, u)
    assert {str(v.dtype) for v in list(u.values()) + list(params.values())} == {"float32"}


def test_learning_rate_schedule():
    sched = optim.exponential_decay(LR, 1, 0.5)
    got = run(optim.sgd(sched))
    want = [{k: -LR * 0.5 ** i * g[k] for k in g} for i, g in enumerate(GRADS)]
    assert_close(got, want)


# --- schedules ------------------------------------------------------------------------------

STEPS = [0, 1, 3, 5, 7, 10, 12]


def check_schedule(sched, closed_form, steps=STEPS):
    for n in steps:
        np.testing.assert_allclose(float(sched(n)), closed_form(n), rtol=1e-12, atol=1e-15,
                                   err_msg=f"step {n}")
    traced = jax.vmap(sched)(jnp.asarray(steps, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(traced), [closed_form(n) for n in steps], rtol=1e-12,
                               atol=1e-15)


def test_schedules_match_closed_forms():
    check_schedule(optim.constant_schedule(0.3), lambda n: 0.3)
    check_schedule(optim.linear_schedule(1.0, 0.2, 8, transition_begin=2),
                   lambda n: 1.0 + (0.2 - 1.0) * min(max(n - 2, 0), 8) / 8)
    check_schedule(optim.polynomial_schedule(1.0, 0.1, 2, 10),
                   lambda n: 0.9 * (1 - min(n, 10) / 10) ** 2 + 0.1)
    check_schedule(optim.cosine_decay_schedule(2.0, 10, alpha=0.1),
                   lambda n: 2.0 * (0.9 * 0.5 * (1 + math.cos(math.pi * min(n, 10) / 10)) + 0.1))
    check_schedule(optim.exponential_decay(1.0, 4, 0.5, transition_begin=2, staircase=True,
                                           end_value=0.4),
                   lambda n: 1.0 if n <= 2 else max(0.5 ** ((n - 2) // 4), 0.4))
    check_schedule(optim.piecewise_constant_schedule(1.0, {5: 0.5, 10: 0.1}),
                   lambda n: 1.0 * (0.5 if n >= 5 else 1) * (0.1 if n >= 10 else 1))


def test_warmup_cosine_and_join():
    def closed(n):
        if n < 4:
            return 0.0 + (1.0 - 0.0) * n / 4
        t = min(n - 4, 8)
        alpha = 0.1 / 1.0
        return 1.0 * ((1 - alpha) * 0.5 * (1 + math.cos(math.pi * t / 8)) + alpha)
    check_schedule(optim.warmup_cosine_decay_schedule(0.0, 1.0, 4, 12, end_value=0.1), closed)
    joined = optim.join_schedules([optim.constant_schedule(1.0), optim.linear_schedule(2.0, 0.0, 4)],
                                  [3])
    check_schedule(joined, lambda n: 1.0 if n < 3 else 2.0 - 2.0 * min(n - 3, 4) / 4)


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="decay_steps"):
        optim.cosine_decay_schedule(1.0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        optim.piecewise_constant_schedule(1.0, {3: -1.0})
    with pytest.raises(ValueError, match="boundaries"):
        optim.join_schedules([optim.constant_schedule(1.0)] * 2, [])


# --- combinators ----------------------------------------------------------------------------

def test_chain_clip_global_norm_and_identity():
    g = {"w": np.full((2, 3), 3.0), "b": np.full(3, 4.0)}
    norm = math.sqrt(6 * 9 + 3 * 16)
    assert float(optim.global_norm(g)) == pytest.approx(norm)
    tx = optim.chain(optim.identity(), optim.clip_by_global_norm(2.0), optim.scale(-0.5))
    got = run(tx, grads=[g])[0]
    assert_close([got], [{k: -0.5 * v * 2.0 / norm for k, v in g.items()}])
    small = {k: v * 1e-3 for k, v in g.items()}
    assert_close(run(tx, grads=[small]), [{k: -0.5 * v for k, v in small.items()}])
    assert_close(run(optim.clip(3.5), grads=[g]), [{"w": g["w"], "b": np.full(3, 3.5)}])


def test_masked_passes_unmasked_updates_through():
    tx = optim.masked(optim.adam(LR), {"w": True, "b": False})
    state = tx.init(PARAMS)
    assert isinstance(state, optim.MaskedState)
    assert isinstance(state.inner_state[0].mu["b"], optim.MaskedNode)
    got = run(tx)
    adam = reference(lambda g, p, s, t: -LR * np_adam()(g, p, s, t), zeros("m", "v"))
    assert_close(got, [{"w": a["w"], "b": g["b"]} for a, g in zip(adam, GRADS)])
    by_fn = optim.masked(optim.adam(LR), lambda p: {k: v.ndim == 2 for k, v in p.items()})
    assert_close(run(by_fn), got)


def test_masked_with_a_prefix_mask_on_nested_params():
    nested = {"layer": dict(PARAMS), "head": {"w": PARAMS["w"]}}
    grads = [{"layer": dict(g), "head": {"w": g["w"]}} for g in GRADS[:2]]
    got = run(optim.masked(optim.sgd(LR, momentum=0.9), {"layer": True, "head": False}),
              params=nested, grads=grads)
    want = reference(np_sgd(0.9, False), zeros("t"), grads=GRADS[:2])
    for gt, w, g in zip(got, want, grads):
        assert_close([gt["layer"]], [w])
        np.testing.assert_array_equal(gt["head"]["w"], g["head"]["w"])


def test_adamw_mask_limits_weight_decay():
    got = run(optim.adamw(LR, weight_decay=0.05, mask={"w": True, "b": False}))
    decayed, plain = reference(np_adamw(0.05), zeros("m", "v")), \
        reference(np_adamw(0.0), zeros("m", "v"))
    assert_close(got, [{"w": d["w"], "b": p["b"]} for d, p in zip(decayed, plain)])


def test_multi_transform_routes_by_label():
    tx = optim.multi_transform({"fast": optim.adam(LR), "slow": optim.sgd(LR)},
                               {"w": "fast", "b": "slow"})
    state = tx.init(PARAMS)
    assert set(state.inner_states) == {"fast", "slow"}
    adam = reference(lambda g, p, s, t: -LR * np_adam()(g, p, s, t), zeros("m", "v"))
    assert_close(run(tx), [{"w": a["w"], "b": -LR * g["b"]} for a, g in zip(adam, GRADS)])
    with pytest.raises(ValueError, match="'other'"):
        optim.multi_transform({"fast": optim.sgd(LR)}, {"w": "fast", "b": "other"}).init(PARAMS)


def test_multisteps_accumulates_then_steps():
    ms = optim.MultiSteps(optim.sgd(LR, momentum=0.9), every_k_schedule=3)
    tx = ms.gradient_transformation()
    assert isinstance(tx, optim.GradientTransformation)
    params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
    state = tx.init(params)
    updated = []
    for g in GRADS:
        u, state = tx.update(g, state, params)
        updated.append(bool(ms.has_updated(state)))
        if not updated[-1]:
            assert all(np.all(np.asarray(x) == 0) for x in u.values())
    assert updated == [False, False, True]
    mean = {k: sum(g[k] for g in GRADS) / 3 for k in PARAMS}
    assert_close([{k: np.asarray(v) for k, v in u.items()}], [{k: -LR * v for k, v in mean.items()}])
    assert int(state.mini_step) == 0 and int(state.gradient_step) == 1
    assert all(np.all(np.asarray(x) == 0) for x in state.acc_grads.values())
    summed = optim.MultiSteps(optim.sgd(LR), 3, use_grad_mean=False)
    assert_close(run(summed)[2:], [{k: -LR * 3 * v for k, v in mean.items()}])


def test_multisteps_skips_non_finite():
    ms = optim.MultiSteps(optim.sgd(LR), 1, should_skip_update_fn=optim.skip_not_finite)
    state = ms.init(PARAMS)
    bad = {"w": np.full((2, 3), np.nan), "b": np.ones(3)}
    u, state = ms.update(bad, state, PARAMS)
    assert all(np.all(np.asarray(x) == 0) for x in u.values())
    assert int(state.gradient_step) == 0 and int(state.skip_state["num_not_finite"]) == 6
    u, state = ms.update(GRADS[0], state, PARAMS)
    assert_close([{k: np.asarray(v) for k, v in u.items()}],
                 [{k: -LR * v for k, v in GRADS[0].items()}])


# --- transformations of update ---------------------------------------------------------------

def test_update_under_jit_matches_eager():
    opt = optim.chain(optim.clip_by_global_norm(1.0), optim.adamw(optim.cosine_decay_schedule(LR, 5)))
    step = jax.jit(opt.update)
    params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
    s_eager = s_jit = opt.init(params)
    for g in GRADS:
        u_e, s_eager = opt.update(g, s_eager, params)
        u_j, s_jit = step({k: jnp.asarray(v) for k, v in g.items()}, s_jit, params)
        for k in u_e:
            np.testing.assert_allclose(np.asarray(u_j[k]), np.asarray(u_e[k]), rtol=1e-12)
    assert int(s_jit[1][0].count) == 3


def test_update_under_vmap_matches_loop():
    opt = optim.adam(LR)
    batch = {k: np.stack([GRADS[0][k], GRADS[1][k]]) for k in PARAMS}
    params = {k: jnp.asarray(v) for k, v in PARAMS.items()}
    states = jax.vmap(lambda g: opt.init(params))(batch)
    u, _ = jax.vmap(opt.update, in_axes=(0, 0, None))(batch, states, params)
    for i in range(2):
        want, _ = opt.update(GRADS[i], opt.init(params), params)
        for k in PARAMS:
            np.testing.assert_allclose(np.asarray(u[k])[i], np.asarray(want[k]), rtol=1e-12)


# --- bad input ------------------------------------------------------------------------------

def test_state_from_other_params_names_the_path():
    state = optim.adam(LR).init(PARAMS)
    other = {"w": GRADS[0]["w"], "c": GRADS[0]["b"]}
    with pytest.raises(ValueError, match=r"different parameter structure.*\['c'\]"):
        optim.adam(LR).update(other, state, other)
    with pytest.raises(ValueError, match=r"\['w'\].*shape \(3, 2\)"):
        optim.sgd(LR, momentum=0.9).update({"w": np.ones((3, 2)), "b": np.ones(3)},
                                           optim.sgd(LR, momentum=0.9).init(PARAMS))
    nested = {"a": {"w": np.ones(2)}}
    with pytest.raises(ValueError, match=r"\['a'\]\['v'\]"):
        optim.adam(LR).update({"a": {"v": np.ones(2)}}, optim.adam(LR).init(nested))
    with pytest.raises(ValueError, match="needs the parameters"):
        optim.adamw(LR).update(GRADS[0], optim.adamw(LR).init(PARAMS))


# --- optional: optax itself -------------------------------------------------------------------

def test_against_optax_when_installed():
    """The NumPy formulas above are the real checks; this compares with optax where present."""
    if not importlib.util.find_spec("optax"):
        return
    import jax.numpy as ojnp
    import optax
    for name in ["sgd", "adam", "adamw", "nadam", "lamb", "lion", "rmsprop", "adagrad"]:
        ours, theirs = getattr(optim, name)(LR), getattr(optax, name)(LR)
        o_params = {k: ojnp.asarray(v) for k, v in PARAMS.items()}
        o_state = theirs.init(o_params)
        want = []
        for g in GRADS:
            u, o_state = theirs.update({k: ojnp.asarray(v) for k, v in g.items()}, o_state,
                                       o_params)
            o_params = optax.apply_updates(o_params, u)
            want.append({k: np.asarray(v) for k, v in u.items()})
        assert_close(run(ours), want, rtol=1e-4, atol=1e-6)
