"""functrans.example_libraries: optimizers (hand-computed updates, schedules, pytree state,
jit, a training loop) and stax layers (shapes, values, combinators, rng). The doc_* tests are
JAX's documentation examples, unchanged apart from the import lines."""
import pickle

import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans import random
from functrans.example_libraries import optimizers, stax
from functrans.example_libraries.optimizers import OptimizerState

G = np.array([0.5, -2.0])
X0 = np.array([1.0, 3.0])


def _two_steps(opt):
    init, update, get_params = opt
    state = update(0, G, init(X0))
    state = update(1, G, state)
    return np.asarray(get_params(state))


def _adam_ref(x, b1=0.9, b2=0.999, eps=1e-8, lr=0.1):
    m = v = 0.0
    for i in range(2):
        m, v = (1 - b1) * G + b1 * m, (1 - b2) * G ** 2 + b2 * v
        x = x - lr * (m / (1 - b1 ** (i + 1))) / (np.sqrt(v / (1 - b2 ** (i + 1))) + eps)
    return x


def _ref(kind):
    """Two steps of each optimizer with gradient G from X0, computed by hand in NumPy."""
    lr = 0.1
    if kind == "sgd":
        return X0 - 2 * lr * G
    if kind == "momentum":            # v1 = g, v2 = 0.9 g + g
        return X0 - lr * G - lr * 1.9 * G
    if kind == "nesterov":            # steps (0.9 v + g) with v1 = g, v2 = 1.9 g
        return X0 - lr * 1.9 * G - lr * (0.9 * 1.9 + 1) * G
    if kind == "adagrad":             # m1 = 0.1 g/|g|, m2 = 0.1 g/(sqrt2|g|) + 0.9 m1
        s = np.sign(G)
        m1 = 0.1 * s
        m2 = 0.1 * s / np.sqrt(2) + 0.9 * m1
        return X0 - lr * (m1 + m2)
    if kind == "rmsprop":
        a1 = 0.1 * G ** 2
        a2 = 0.9 * a1 + 0.1 * G ** 2
        return X0 - lr * G / np.sqrt(a1 + 1e-8) - lr * G / np.sqrt(a2 + 1e-8)
    if kind == "rmsprop_momentum":
        a1 = 0.1 * G ** 2
        a2 = 0.9 * a1 + 0.1 * G ** 2
        mom1 = lr * G / np.sqrt(a1 + 1e-8)
        mom2 = 0.9 * mom1 + lr * G / np.sqrt(a2 + 1e-8)
        return X0 - mom1 - mom2
    if kind == "adam":
        return _adam_ref(X0)
    if kind == "adamax":
        m1, u1 = 0.1 * G, np.abs(G)
        x1 = X0 - lr / 0.1 * m1 / (u1 + 1e-8)
        m2, u2 = 0.1 * G + 0.9 * m1, np.maximum(0.999 * u1, np.abs(G))
        return x1 - lr / (1 - 0.81) * m2 / (u2 + 1e-8)
    if kind == "sm3":                 # a vector: one accumulator, so adagrad with momentum 0.9
        s = np.sign(G)
        m1 = 0.1 * s
        m2 = 0.1 * s / np.sqrt(2) + 0.9 * m1
        return X0 - lr * (m1 + m2)
    raise KeyError(kind)


OPTS = {
    "sgd": lambda: optimizers.sgd(0.1),
    "momentum": lambda: optimizers.momentum(0.1, mass=0.9),
    "nesterov": lambda: optimizers.nesterov(0.1, 0.9),
    "adagrad": lambda: optimizers.adagrad(0.1),
    "rmsprop": lambda: optimizers.rmsprop(0.1),
    "rmsprop_momentum": lambda: optimizers.rmsprop_momentum(0.1),
    "adam": lambda: optimizers.adam(0.1),
    "adamax": lambda: optimizers.adamax(0.1),
    "sm3": lambda: optimizers.sm3(0.1),
}


@pytest.mark.parametrize("kind", sorted(OPTS))
def test_two_updates_match_hand_computation(kind):
    np.testing.assert_allclose(_two_steps(OPTS[kind]()), _ref(kind), rtol=1e-12)


def _loss(params, batch):
    x, y = batch
    pred = jnp.tanh(x @ params["w"] + params["b"])
    return jnp.mean((pred - y) ** 2)


@pytest.mark.parametrize("kind", sorted(OPTS))
def test_training_loop_decreases_loss_on_pytree_params(kind):
    rng = np.random.RandomState(0)
    x = rng.randn(16, 3)
    y = np.tanh(x @ np.array([0.5, -1.0, 0.25]) + 0.1)
    params = {"w": np.zeros(3), "b": np.array(0.0)}
    init, update, get_params = OPTS[kind]()
    state = init(params)
    first = float(_loss(params, (x, y)))
    for i in range(30):
        state = update(i, jax.grad(_loss)(get_params(state), (x, y)), state)
    out = get_params(state)
    assert set(out) == {"w", "b"} and np.shape(out["b"]) == ()
    assert float(_loss(out, (x, y))) < 0.5 * first


def test_doc_jitted_update_and_state_is_a_pytree():
    # JAX's docs example for jax.example_libraries.optimizers
    def loss(params, batch):
        return _loss(params, batch)

    data = (np.eye(3), np.array([0.2, -0.1, 0.3]))
    params = {"w": np.zeros(3), "b": np.array(0.0)}
    opt_init, opt_update, get_params = optimizers.adam(step_size=0.05)
    opt_state = opt_init(params)

    @jax.jit
    def step(step, opt_state):
        value, grads = jax.value_and_grad(loss)(get_params(opt_state), data)
        opt_state = opt_update(step, grads, opt_state)
        return value, opt_state

    values = []
    for i in range(20):
        value, opt_state = step(i, opt_state)
        values.append(float(value))
    assert isinstance(opt_state, OptimizerState)
    assert values[-1] < values[0]
    leaves = jax.tree_util.tree_leaves(opt_state)
    assert len(leaves) == 6       # (x, m, v) for w and for b
    # eager updates agree with the jitted ones
    state = opt_init(params)
    for i in range(20):
        state = opt_update(i, jax.grad(loss)(get_params(state), data), state)
    np.testing.assert_allclose(get_params(state)["w"], get_params(opt_state)["w"], rtol=1e-10)


def test_update_rejects_mismatched_gradient_tree():
    init, update, _ = optimizers.sgd(0.1)
    with pytest.raises(TypeError, match="did not match the parameter tree"):
        update(0, [1.0, 2.0], init({"a": 1.0, "b": 2.0}))


def test_schedules():
    i = np.arange(6.0)
    np.testing.assert_allclose([optimizers.exponential_decay(1.0, 2, 0.5)(k) for k in i],
                               0.5 ** (i / 2))
    np.testing.assert_allclose([optimizers.inverse_time_decay(1.0, 2, 0.5)(k) for k in i],
                               1 / (1 + 0.5 * i / 2))
    np.testing.assert_allclose([optimizers.inverse_time_decay(1.0, 2, 0.5, True)(k) for k in i],
                               1 / (1 + 0.5 * np.floor(i / 2)))
    np.testing.assert_allclose([optimizers.polynomial_decay(1.0, 4, 0.2, 2.0)(k) for k in i],
                               (1 - np.minimum(i, 4) / 4) ** 2 * 0.8 + 0.2)
    pc = optimizers.piecewise_constant([1, 3], [1.0, 0.5, 0.1])
    assert [float(pc(k)) for k in i] == [1.0, 1.0, 0.5, 0.5, 0.1, 0.1]
    with pytest.raises(ValueError, match="one shorter"):
        optimizers.piecewise_constant([1, 3], [1.0, 0.5])
    assert optimizers.make_schedule(0.3)(7) == 0.3
    sched = optimizers.constant(2.0)
    assert optimizers.make_schedule(sched) is sched
    with pytest.raises(TypeError):
        optimizers.make_schedule(np.ones(2))
    # a schedule drives sgd: step i uses step_size(i)
    init, update, get_params = optimizers.sgd(optimizers.piecewise_constant([0], [1.0, 0.5]))
    state = update(1, np.array(1.0), update(0, np.array(1.0), init(np.array(0.0))))
    assert float(get_params(state)) == -1.5


def test_l2_norm_and_clip_grads():
    tree = {"a": np.array([3.0]), "b": (np.array([[4.0]]),)}
    assert float(optimizers.l2_norm(tree)) == 5.0
    clipped = optimizers.clip_grads(tree, 1.0)
    np.testing.assert_allclose(clipped["a"], [0.6])
    np.testing.assert_allclose(clipped["b"][0], [[0.8]])
    same = optimizers.clip_grads(tree, 10.0)
    np.testing.assert_allclose(same["a"], [3.0])


def test_pack_unpack_roundtrip_and_pickle():
    init, update, get_params = optimizers.momentum(0.1, 0.9)
    state = update(0, {"w": G}, init({"w": X0}))
    marked = optimizers.unpack_optimizer_state(state)
    assert isinstance(marked["w"], optimizers.JoinPoint)
    restored = optimizers.pack_optimizer_state(pickle.loads(pickle.dumps(marked)))
    np.testing.assert_allclose(get_params(restored)["w"], get_params(state)["w"])
    again = update(1, {"w": G}, restored)
    np.testing.assert_allclose(get_params(again)["w"], _ref("momentum"), rtol=1e-12)


def test_sm3_matrix_accumulators_and_scalar_params():
    init, update, get_params = optimizers.sm3(0.1)
    g = np.array([[1.0, 2.0], [3.0, 4.0]])
    state = update(0, g, init(np.zeros((2, 2))))
    out = get_params(state)
    np.testing.assert_allclose(out, -0.1 * 0.1 * np.sign(g))   # first step: g / |g|
    sub = jax.tree_util.tree_unflatten(state.subtree_defs[0], state.packed_state[0])
    np.testing.assert_allclose(sub[2][0], [4.0, 16.0])      # row maxima of g^2
    np.testing.assert_allclose(sub[2][1], [9.0, 16.0])      # column maxima
    s_state = update(0, np.array(2.0), init(np.array(1.0)))
    assert np.shape(get_params(s_state)) == ()


# --- stax -------------------------------------------------------------------------------------

def test_doc_serial_mlp():
    # JAX's stax docs example
    from functrans.example_libraries.stax import Dense, Relu, LogSoftmax, serial
    net_init, net_apply = stax.serial(
        stax.Dense(32), stax.Relu,
        stax.Dense(8), stax.Relu,
        stax.Dense(4), stax.LogSoftmax,
    )
    rng = random.PRNGKey(0)
    in_shape = (-1, 6)
    out_shape, net_params = net_init(rng, in_shape)
    assert out_shape == (-1, 4)
    inputs = np.random.RandomState(0).randn(5, 6)
    predictions = net_apply(net_params, inputs)
    assert predictions.shape == (5, 4)
    np.testing.assert_allclose(np.exp(np.asarray(predictions)).sum(1), 1.0, rtol=1e-12)
    W, b = net_params[0]
    assert W.shape == (6, 32) and b.shape == (32,)
    h = np.maximum(inputs @ np.asarray(W) + np.asarray(b), 0)
    for (W, b), act in zip(net_params[2:5:2], [True, False]):
        h = h @ np.asarray(W) + np.asarray(b)
        h = np.maximum(h, 0) if act else h
    np.testing.assert_allclose(predictions, h - np.log(np.exp(h).sum(1, keepdims=True)),
                               rtol=1e-10)
    grads = jax.grad(lambda p: jnp.sum(net_apply(p, inputs)[:, 0]))(net_params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(net_params)


def test_glorot_init_statistics():
    W = np.asarray(stax.glorot_normal()(random.PRNGKey(1), (200, 300)))
    assert abs(W.std() - np.sqrt(2 / 500)) < 0.05 * np.sqrt(2 / 500)
    assert np.abs(W).max() <= 2 * np.sqrt(1 / 250) / 0.87962566103423978 + 1e-12
    b = np.asarray(stax.normal()(random.PRNGKey(2), (5000,)))
    assert abs(b.std() - 1e-2) < 1e-3


def test_elementwise_layers_and_shapes():
    x = np.linspace(-2, 2, 6).reshape(2, 3)
    cases = {stax.Tanh: np.tanh(x), stax.Relu: np.maximum(x, 0),
             stax.Sigmoid: 1 / (1 + np.exp(-x)), stax.Softplus: np.log1p(np.exp(x)),
             stax.Elu: np.where(x > 0, x, np.expm1(x)),
             stax.LeakyRelu: np.where(x > 0, x, 0.01 * x), stax.Exp: np.exp(x),
             stax.Softmax: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
             stax.Identity: x}
    for (init, apply), want in cases.items():
        shape, params = init(random.PRNGKey(0), x.shape)
        assert shape == x.shape and params == ()
        np.testing.assert_allclose(apply(params, x), want, rtol=1e-12)
    init, apply = stax.Flatten
    assert init(None, (4, 2, 3))[0] == (4, 6)
    assert apply((), np.ones((4, 2, 3))).shape == (4, 6)


def test_fan_out_parallel_fan_in():
    init, apply = stax.serial(stax.FanOut(2), stax.parallel(stax.Dense(3), stax.Identity),
                              stax.FanInConcat())
    shape, params = init(random.PRNGKey(0), (5, 2))
    assert shape == (5, 5)
    x = np.ones((5, 2))
    out = apply(params, x)
    W, b = params[1][0]
    np.testing.assert_allclose(out, np.concatenate([x @ np.asarray(W) + np.asarray(b), x], 1))
    init, apply = stax.serial(stax.FanOut(3), stax.parallel(stax.Identity, stax.Identity,
                                                            stax.Tanh), stax.FanInSum)
    shape, params = init(random.PRNGKey(0), (2,))
    assert shape == (2,)
    np.testing.assert_allclose(apply(params, np.array([0.5, 1.0])),
                               2 * np.array([0.5, 1.0]) + np.tanh([0.5, 1.0]))


def test_dropout_modes_and_rng():
    init, apply = stax.Dropout(0.5)
    x = np.ones((200,))
    with pytest.raises(ValueError, match="PRNG key"):
        apply((), x)
    out = np.asarray(apply((), x, rng=random.PRNGKey(3)))
    assert set(np.unique(out)) <= {0.0, 2.0} and 60 < (out == 2.0).sum() < 140
    np.testing.assert_array_equal(apply((), x, rng=random.PRNGKey(3)), out)
    _, test_apply = stax.Dropout(0.5, mode="test")
    np.testing.assert_array_equal(test_apply((), x, rng=random.PRNGKey(3)), x)
    # serial splits the rng among layers and passes it on
    s_init, s_apply = stax.serial(stax.Dense(4), stax.Dropout(0.9))
    _, params = s_init(random.PRNGKey(0), (3, 2))
    a = s_apply(params, np.ones((3, 2)), rng=random.PRNGKey(1))
    assert a.shape == (3, 4)


def test_batchnorm():
    init, apply = stax.BatchNorm(axis=(0,))
    shape, (beta, gamma) = init(random.PRNGKey(0), (8, 3))
    assert shape == (8, 3) and beta.shape == (3,) and gamma.shape == (3,)
    x = np.random.RandomState(1).randn(8, 3) * 3 + 1
    z = np.asarray(apply((beta + 0.5, gamma * 2), x))
    want = 2 * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + 0.5
    np.testing.assert_allclose(z, want, rtol=1e-10)
    init, apply = stax.BatchNorm(axis=(0, 2), center=False)
    shape, (beta, gamma) = init(random.PRNGKey(0), (4, 3, 5))
    assert beta == () and gamma.shape == (3,)
    x = np.random.RandomState(2).randn(4, 3, 5)
    z = np.asarray(apply((beta, gamma), x))
    np.testing.assert_allclose(z.mean((0, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(z.var((0, 2)), 1, rtol=1e-4)


def test_shape_dependent():
    layer = stax.shape_dependent(lambda shape: stax.Dense(shape[-1] * 2))
    init, apply = layer
    shape, params = init(random.PRNGKey(0), (3, 2))
    assert shape == (3, 4)
    assert apply(params, np.ones((3, 2))).shape == (3, 4)
