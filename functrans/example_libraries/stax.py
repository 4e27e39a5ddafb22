"""functrans.example_libraries.stax: JAX's minimal neural-network library.

A layer is a pair ``(init_fun, apply_fun)``: ``init_fun(rng, input_shape) -> (output_shape,
params)`` draws parameters with functrans.random, and ``apply_fun(params, inputs, **kwargs)``
computes the layer (``rng=`` for stochastic layers). Combinators (``serial``, ``parallel``,
``shape_dependent``) build layers from layers. Pooling (``MaxPool``, ``SumPool``, ``AvgPool``)
is built on ``lax.reduce_window``; convolutions (``Conv``, ``GeneralConv``, ``ConvTranspose``,
``Conv1DTranspose``, ``GeneralConvTranspose``) on ``lax.conv_general_dilated``."""
from __future__ import annotations

import functools
import math
import operator

import numpy as np

from .. import lax, nn, random
from ..lax.windowed import max_identity
from .. import numpy as jnp

__all__ = ["Dense", "Identity", "Flatten", "FanOut", "FanInSum", "FanInConcat", "Dropout",
           "BatchNorm", "serial", "parallel", "shape_dependent", "elementwise", "Tanh", "Relu",
           "Exp", "LogSoftmax", "Softmax", "Softplus", "Sigmoid", "Elu", "LeakyRelu", "Selu",
           "Gelu", "glorot", "randn", "glorot_normal", "normal", "zeros", "ones"]


# ---------------------------------------------------------------------------------------------
# Initializers: init(key, shape, dtype=float64) -> array (JAX's jax.nn.initializers names)

def zeros(key, shape, dtype=np.float64):
    """An array of zeros of shape (key unused)."""
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype=np.float64):
    """An array of ones of shape (key unused)."""
    return jnp.ones(shape, dtype)


def normal(stddev=1e-2):
    """The initializer drawing N(0, stddev^2) samples."""
    def init(key, shape, dtype=np.float64):
        return random.normal(key, shape, dtype) * stddev
    return init


def glorot_normal(in_axis=-2, out_axis=-1):
    """The Glorot (Xavier) normal initializer: a normal truncated to +-2 standard deviations,
    rescaled so the variance is 2 / (fan_in + fan_out)."""
    def init(key, shape, dtype=np.float64):
        receptive = math.prod(d for i, d in enumerate(shape)
                              if i not in (in_axis % len(shape), out_axis % len(shape)))
        fan_avg = (shape[in_axis] + shape[out_axis]) * receptive / 2
        # the std of N(0, 1) truncated to [-2, 2] is 0.87962566103423978
        std = math.sqrt(1.0 / fan_avg) / 0.87962566103423978
        lo, hi = 0.5 * math.erfc(2 / math.sqrt(2)), 0.5 * math.erfc(-2 / math.sqrt(2))
        u = random.uniform(key, shape, dtype, minval=lo, maxval=hi)
        return lax.ndtri(u) * std
    return init


glorot, randn = glorot_normal, normal


# ---------------------------------------------------------------------------------------------
# Layers

def Dense(out_dim, W_init=glorot_normal(), b_init=normal()):
    """A fully connected layer: inputs @ W + b, W of shape (in_dim, out_dim)."""
    def init_fun(rng, input_shape):
        k1, k2 = random.split(rng)
        W, b = W_init(k1, (input_shape[-1], out_dim)), b_init(k2, (out_dim,))
        return tuple(input_shape[:-1]) + (out_dim,), (W, b)

    def apply_fun(params, inputs, **kwargs):
        W, b = params
        return jnp.dot(inputs, W) + b
    return init_fun, apply_fun


# Convolutions: a kernel laid out by the rhs spec ('O' = out_chan, 'I' = the input's 'C', the
# other letters filter_shape in order) and a bias broadcast along the output's 'C'

__all__ += ["GeneralConv", "Conv", "GeneralConvTranspose", "Conv1DTranspose", "ConvTranspose"]


def _conv_layer(conv_fn, shape_fn, dimension_numbers, out_chan, filter_shape, strides, padding,
                W_init, b_init):
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    one = (1,) * len(filter_shape)
    strides = strides or one
    W_init = W_init or glorot_normal(rhs_spec.index('I'), rhs_spec.index('O'))

    def init_fun(rng, input_shape):
        filters = iter(filter_shape)
        kernel_shape = tuple(out_chan if c == 'O' else input_shape[lhs_spec.index('C')]
                             if c == 'I' else next(filters) for c in rhs_spec)
        output_shape = shape_fn(input_shape, kernel_shape, strides, padding, dimension_numbers)
        bias_shape = tuple(out_chan if c == 'C' else 1 for c in out_spec)
        k1, k2 = random.split(rng)
        return output_shape, (W_init(k1, kernel_shape), b_init(k2, bias_shape))

    def apply_fun(params, inputs, **kwargs):
        W, b = params
        return conv_fn(inputs, W, strides, padding, dimension_numbers) + b
    return init_fun, apply_fun


def GeneralConv(dimension_numbers, out_chan, filter_shape, strides=None, padding='VALID',
                W_init=None, b_init=normal(1e-6)):
    """A convolution layer with the layouts of dimension_numbers (three strings such as
    ('NHWC', 'HWIO', 'NHWC')): out_chan output channels, a filter_shape window, strides
    (default 1) and padding ('VALID', 'SAME' or pairs). Params (W, b)."""
    def conv(x, W, strides, padding, dn):
        return lax.conv_general_dilated(x, W, strides, padding, dimension_numbers=dn)
    return _conv_layer(conv, lax.conv_general_shape_tuple, dimension_numbers, out_chan,
                       filter_shape, strides, padding, W_init, b_init)


def GeneralConvTranspose(dimension_numbers, out_chan, filter_shape, strides=None,
                         padding='VALID', W_init=None, b_init=normal(1e-6)):
    """A transposed-convolution layer (lax.conv_transpose) with the layouts of
    dimension_numbers; arguments as GeneralConv. Params (W, b)."""
    def conv(x, W, strides, padding, dn):
        return lax.conv_transpose(x, W, strides, padding, dimension_numbers=dn)
    return _conv_layer(conv, lax.conv_transpose_shape_tuple, dimension_numbers, out_chan,
                       filter_shape, strides, padding, W_init, b_init)


Conv = functools.partial(GeneralConv, ('NHWC', 'HWIO', 'NHWC'))
Conv1DTranspose = functools.partial(GeneralConvTranspose, ('NHC', 'HIO', 'NHC'))
ConvTranspose = functools.partial(GeneralConvTranspose, ('NHWC', 'HWIO', 'NHWC'))


def elementwise(fun, **fun_kwargs):
    """A parameterless layer applying fun(inputs, **fun_kwargs)."""
    def init_fun(rng, input_shape):
        return input_shape, ()

    def apply_fun(params, inputs, **kwargs):
        return fun(inputs, **fun_kwargs)
    return init_fun, apply_fun


def _selu(x, alpha=1.6732632423543772, scale=1.0507009873554805):
    return scale * nn.elu(x, alpha)


Tanh = elementwise(jnp.tanh)
Relu = elementwise(nn.relu)
Exp = elementwise(jnp.exp)
LogSoftmax = elementwise(nn.log_softmax, axis=-1)
Softmax = elementwise(nn.softmax, axis=-1)
Softplus = elementwise(nn.softplus)
Sigmoid = elementwise(nn.sigmoid)
Elu = elementwise(nn.elu)
LeakyRelu = elementwise(nn.leaky_relu)
Selu = elementwise(_selu)
Gelu = elementwise(nn.gelu)


def _identity_init(rng, input_shape):
    return input_shape, ()


def _flatten_init(rng, input_shape):
    return (input_shape[0], functools.reduce(operator.mul, input_shape[1:], 1)), ()


Identity = (_identity_init, lambda params, inputs, **kwargs: inputs)
Flatten = (_flatten_init,
           lambda params, inputs, **kwargs: jnp.reshape(inputs, (inputs.shape[0], -1)))


def FanOut(num):
    """A layer copying its input into a list of num outputs."""
    def init_fun(rng, input_shape):
        return [input_shape] * num, ()
    return init_fun, lambda params, inputs, **kwargs: [inputs] * num


def _fan_in_sum_init(rng, input_shape):
    return input_shape[0], ()


FanInSum = (_fan_in_sum_init, lambda params, inputs, **kwargs: sum(inputs))


def FanInConcat(axis=-1):
    """A layer concatenating its list of inputs along axis."""
    def init_fun(rng, input_shape):
        ax = axis % len(input_shape[0])
        size = sum(s[ax] for s in input_shape)
        return tuple(input_shape[0][:ax]) + (size,) + tuple(input_shape[0][ax + 1:]), ()

    def apply_fun(params, inputs, **kwargs):
        return jnp.concatenate(inputs, axis)
    return init_fun, apply_fun


def Dropout(rate, mode='train'):
    """Dropout as JAX's stax defines it: ``rate`` is the probability of KEEPING a unit; kept
    units are scaled by 1 / rate. In mode 'train' apply_fun needs ``rng=``; in any other mode
    it returns its input."""
    def init_fun(rng, input_shape):
        return input_shape, ()

    def apply_fun(params, inputs, **kwargs):
        rng = kwargs.get('rng', None)
        if rng is None:
            raise ValueError("Dropout layer requires apply_fun to be called with a PRNG key "
                             "argument. That is, instead of `apply_fun(params, inputs)`, call "
                             "it like `apply_fun(params, inputs, rng)` where `rng` is a PRNG "
                             "key (e.g. from `functrans.random.PRNGKey`).")
        if mode == 'train':
            keep = random.bernoulli(rng, rate, inputs.shape)
            return jnp.where(keep, inputs / rate, 0)
        return inputs
    return init_fun, apply_fun


def BatchNorm(axis=(0, 1, 2), epsilon=1e-5, center=True, scale=True, beta_init=zeros,
              gamma_init=ones):
    """Batch normalisation over the given axes: (x - mean) / sqrt(var + epsilon), then
    gamma * z + beta with gamma, beta of the input shape without those axes (either omitted
    with scale=False / center=False)."""
    axis = (axis,) if np.isscalar(axis) else tuple(axis)

    def init_fun(rng, input_shape):
        axes = {a % len(input_shape) for a in axis}
        shape = tuple(d for i, d in enumerate(input_shape) if i not in axes)
        k1, k2 = random.split(rng)
        beta = beta_init(k1, shape) if center else ()
        gamma = gamma_init(k2, shape) if scale else ()
        return input_shape, (beta, gamma)

    def apply_fun(params, x, **kwargs):
        beta, gamma = params
        axes = tuple(sorted({a % x.ndim for a in axis}))
        mean = jnp.mean(x, axes, keepdims=True)
        var = jnp.mean(jnp.square(x), axes, keepdims=True) - jnp.square(mean)
        z = (x - mean) * lax.rsqrt(var + epsilon)
        ed = tuple(None if i in axes else slice(None) for i in range(x.ndim))
        if scale:
            z = gamma[ed] * z
        if center:
            z = z + beta[ed]
        return z
    return init_fun, apply_fun


# ---------------------------------------------------------------------------------------------
# Pooling (lax.reduce_window). Inputs are NHWC (any number of spatial dims) unless ``spec``, a
# string such as 'NCHW', names where the batch (N) and feature (C) dims are.

def _non_spatial_axes(spec, ndim):
    return (0, ndim - 1) if spec is None else (spec.index("N"), spec.index("C"))


def _full_window(window_shape, strides, spec):
    """window_shape and strides (of the spatial dims) with ones at the N and C dims."""
    window, strides = tuple(window_shape), tuple(strides or (1,) * len(window_shape))
    for i in sorted(_non_spatial_axes(spec, len(window) + 2)):
        window, strides = window[:i] + (1,) + window[i:], strides[:i] + (1,) + strides[i:]
    return window, strides


def _pooling_layer(computation, identity, normalize=False):
    def layer(window_shape, strides=None, padding="VALID", spec=None):
        window, full_strides = _full_window(window_shape, strides, spec)

        def init_fun(rng, input_shape):
            pads = lax.padtype_to_pads(input_shape, window, full_strides, padding)
            return lax.reduce_window_shape_tuple(input_shape, window, full_strides, pads), ()

        def apply_fun(params, inputs, **kwargs):
            out = lax.reduce_window(inputs, np.asarray(identity(inputs.dtype), inputs.dtype), computation,
                                    window, full_strides, padding)
            return out / _window_sizes(inputs, window, full_strides, padding, spec) \
                if normalize else out
        return init_fun, apply_fun
    return layer


def _window_sizes(inputs, window, strides, padding, spec):
    """How many input elements each output window covers (padding excluded), broadcastable
    against the pooled output: AvgPool's divisor, as in JAX's stax."""
    ones = jnp.ones(inputs.shape, inputs.dtype)
    keep = _non_spatial_axes(spec, inputs.ndim)
    counts = lax.reduce_window(ones, np.asarray(0, inputs.dtype), lax.add, window, strides, padding)
    first = tuple(slice(None) if i not in keep else slice(0, 1) for i in range(inputs.ndim))
    return counts[first]


MaxPool = _pooling_layer(lax.max, max_identity)
MaxPool.__doc__ = ("MaxPool(window_shape, strides=None, padding='VALID', spec=None): the layer "
                   "taking the maximum of every window (padding never wins).")
SumPool = _pooling_layer(lax.add, lambda dtype: 0)
SumPool.__doc__ = ("SumPool(window_shape, strides=None, padding='VALID', spec=None): the layer "
                   "summing every window.")
AvgPool = _pooling_layer(lax.add, lambda dtype: 0, normalize=True)
AvgPool.__doc__ = ("AvgPool(window_shape, strides=None, padding='VALID', spec=None): the layer "
                   "averaging every window over its elements inside the input (padding excluded).")
__all__ += ["MaxPool", "SumPool", "AvgPool"]


# ---------------------------------------------------------------------------------------------
# Combinators

def _split_rng(rng, n):
    return random.split(rng, n) if rng is not None else (None,) * n


def serial(*layers):
    """The composition of layers, applied left to right; params is the list of their params.
    A given ``rng`` is split among the layers."""
    init_funs, apply_funs = zip(*layers)

    def init_fun(rng, input_shape):
        params = []
        for init in init_funs:
            rng, layer_rng = random.split(rng)
            input_shape, param = init(layer_rng, input_shape)
            params.append(param)
        return input_shape, params

    def apply_fun(params, inputs, **kwargs):
        rngs = _split_rng(kwargs.pop('rng', None), len(layers))
        for fun, param, rng in zip(apply_funs, params, rngs):
            inputs = fun(param, inputs, rng=rng, **kwargs)
        return inputs
    return init_fun, apply_fun


def parallel(*layers):
    """Layers applied side by side: the i-th layer takes the i-th of a sequence of inputs
    (input shapes) and gives the i-th output. Use with FanOut and FanInSum/FanInConcat."""
    init_funs, apply_funs = zip(*layers)

    def init_fun(rng, input_shape):
        rngs = random.split(rng, len(layers))
        pairs = [init(r, s) for init, r, s in zip(init_funs, rngs, input_shape)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    def apply_fun(params, inputs, **kwargs):
        rngs = _split_rng(kwargs.pop('rng', None), len(layers))
        return [f(p, x, rng=r, **kwargs) for f, p, x, r in zip(apply_funs, params, inputs, rngs)]
    return init_fun, apply_fun


def shape_dependent(make_layer):
    """A layer built by make_layer(input_shape) -> (init_fun, apply_fun) once the input shape is
    known (at init from input_shape, at apply from inputs.shape)."""
    def init_fun(rng, input_shape):
        return make_layer(input_shape)[0](rng, input_shape)

    def apply_fun(params, inputs, **kwargs):
        return make_layer(inputs.shape)[1](params, inputs, **kwargs)
    return init_fun, apply_fun
