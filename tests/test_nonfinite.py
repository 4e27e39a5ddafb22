"""Non-finite semantics as JAX, and debug_nans.

One table: every nn function, the reductions and the elementwise derivative rules, evaluated at
the special inputs X (NaN, +-inf, +-0, +-tiny, +-huge), value and derivative, eagerly and under
jit. The expected values were recorded from JAX 0.10.2 with jax_enable_x64 (``EXPECTED``; the
documented differences are listed in docs/nonfinite.md). Signs of zero are not compared.
Then: NaN anywhere in an input reaches every reduction's output (hypothesis), and
config.debug_nans names the primitive and the line that made the first NaN."""
import re
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import functrans as ft
import functrans.numpy as jnp
import functrans.scipy.special
from functrans import lax, nn
from functrans.test_util import check_grads

nan, inf = np.nan, np.inf
X = np.array([nan, inf, -inf, 0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300])


def elementwise(jnp, nn, lax):
    """name -> f(x), elementwise, for a library with JAX's module layout (so that the expected
    values can be recorded from JAX with the same table)."""
    return {
        "relu": nn.relu, "relu6": nn.relu6, "sigmoid": nn.sigmoid, "softplus": nn.softplus,
        "silu": nn.silu, "swish": nn.swish, "gelu": nn.gelu,
        "gelu_exact": lambda x: nn.gelu(x, approximate=False), "elu": nn.elu, "celu": nn.celu,
        "selu": nn.selu, "leaky_relu": nn.leaky_relu, "log_sigmoid": nn.log_sigmoid,
        "nn.tanh": nn.tanh, "sqrt": jnp.sqrt, "rsqrt": lax.rsqrt, "cbrt": jnp.cbrt,
        "log": jnp.log, "log1p": jnp.log1p, "log2": jnp.log2, "exp": jnp.exp,
        "exp2": jnp.exp2, "expm1": jnp.expm1, "tanh": jnp.tanh, "logistic": lax.logistic,
        "abs": jnp.abs, "sign": jnp.sign, "erf": lax.erf, "sin": jnp.sin, "atan": jnp.arctan,
        "sinh": jnp.sinh, "cosh": jnp.cosh, "asinh": jnp.arcsinh, "atanh": jnp.arctanh,
        "square": jnp.square, "reciprocal": jnp.reciprocal, "x**3": lambda x: x ** 3,
        "x**-2": lambda x: x ** -2, "x**2.5": lambda x: jnp.power(x, 2.5),
        "x**0.": lambda x: jnp.power(x, jnp.zeros_like(x)), "2**x": lambda x: jnp.power(2.0, x),
        "0**x": lambda x: jnp.power(jnp.zeros_like(x), x), "1/x": lambda x: 1.0 / x,
        "x/x": lambda x: x / x, "max(x,0)": lambda x: jnp.maximum(x, 0.0),
        "min(x,0)": lambda x: jnp.minimum(x, 0.0), "max(x,x)": lambda x: jnp.maximum(x, x),
        "atan2(x,1)": lambda x: jnp.arctan2(x, 1.0), "atan2(1,x)": lambda x: jnp.arctan2(1.0, x),
        "logaddexp(x,0)": lambda x: jnp.logaddexp(x, 0.0),
        "logaddexp(x,x)": lambda x: jnp.logaddexp(x, x), "clip": lambda x: jnp.clip(x, -1.0, 1.0),
    }


def reductions(jnp, nn, lax, special):
    """name -> f(v) of a length-3 vector v, evaluated at v = [x, 1, 2] for x in X."""
    keep, w = jnp.array([True, False, True]), jnp.array([-1.0, 2.0, 0.5])
    return {
        "sum": jnp.sum, "prod": jnp.prod, "max": jnp.max, "min": jnp.min, "mean": jnp.mean,
        "var": jnp.var, "std": jnp.std, "argmax": jnp.argmax, "argmin": jnp.argmin,
        "norm": jnp.linalg.norm, "max_tied": lambda v: jnp.max(jnp.concatenate([v, v])),
        "cumsum": lambda v: jnp.cumsum(v)[-1], "cumprod": lambda v: jnp.cumprod(v)[-1],
        "cummax": lambda v: lax.cummax(v)[-1], "logsumexp": nn.logsumexp,
        "logsumexp_b": lambda v: special.logsumexp(v, b=jnp.abs(w)),
        "logsumexp_b<0": lambda v: special.logsumexp(v, b=w),
        "logsumexp_sign": lambda v: special.logsumexp(v, b=w, return_sign=True)[1],
        "logsumexp_where": lambda v: nn.logsumexp(v, where=keep),
        "softmax[0]": lambda v: nn.softmax(v)[0], "softmax[1]": lambda v: nn.softmax(v)[1],
        "log_softmax[0]": lambda v: nn.log_softmax(v)[0],
        "log_softmax[1]": lambda v: nn.log_softmax(v)[1],
        "softmax_where[1]": lambda v: nn.softmax(v, where=keep)[2],
        "log_softmax_where[0]": lambda v: nn.log_softmax(v, where=keep)[0],
    }


# name -> (values at X, derivatives at X), recorded from JAX: one token per input, "a,b,c" for a
# gradient at [x, 1, 2]; "-": no derivative (integer outputs)
EXPECTED = {
    "relu": ("nan inf 0 0 0 1e-300 0 1e+300 0",
             "0 1 0 0 0 1 0 1 0"),
    "relu6": ("nan 6 0 0 0 1e-300 0 6 0",
              "0 0 0 0 0 1 0 0 0"),
    "sigmoid": ("nan 1 0 0.5 0.5 0.5 0.5 1 0",
                "nan 0 0 0.25 0.25 0.25 0.25 0 0"),
    "softplus": ("nan inf 0 0.693147181 0.693147181 0.693147181 0.693147181 1e+300 0",
                 "nan 1 0 0.5 0.5 0.5 0.5 1 0"),
    "silu": ("nan inf nan 0 0 5e-301 -5e-301 1e+300 0",
             "nan nan nan 0.5 0.5 0.5 0.5 1 0"),
    "swish": ("nan inf nan 0 0 5e-301 -5e-301 1e+300 0",
              "nan nan nan 0.5 0.5 0.5 0.5 1 0"),
    "gelu": ("nan inf nan 0 0 5e-301 -5e-301 1e+300 0",
             "nan nan nan 0.5 0.5 0.5 0.5 nan nan"),
    "gelu_exact": ("nan inf nan 0 0 5e-301 -5e-301 1e+300 0",
                   "nan nan nan 0.5 0.5 0.5 0.5 1 0"),
    "elu": ("nan inf -1 0 0 1e-300 -1e-300 1e+300 -1",
            "nan 1 0 1 1 1 1 1 0"),
    "celu": ("nan inf -1 0 0 1e-300 -1e-300 1e+300 -1",
             "nan 1 0 1 1 1 1 1 0"),
    "selu": ("nan inf -1.75809934 0 0 1.05070099e-300 -1.75809934e-300 1.05070099e+300 "
             "-1.75809934",
             "nan 1.05070099 0 1.75809934 1.75809934 1.05070099 1.75809934 1.05070099 0"),
    "leaky_relu": ("nan inf -inf 0 0 1e-300 -1e-302 1e+300 -1e+298",
                   "0.01 1 0.01 1 1 1 0.01 1 0.01"),
    "log_sigmoid": ("nan 0 -inf -0.693147181 -0.693147181 -0.693147181 -0.693147181 0 -1e+300",
                    "nan 0 1 0.5 0.5 0.5 0.5 0 1"),
    "nn.tanh": ("nan 1 -1 0 0 1e-300 -1e-300 1 -1",
                "nan 0 0 1 1 1 1 0 0"),
    "sqrt": ("nan inf nan 0 0 1e-150 nan 1e+150 nan",
             "nan 0 nan inf -inf 5e+149 nan 5e-151 nan"),
    "rsqrt": ("nan 0 nan inf -inf 1e+150 nan 1e-150 nan",
              "nan 0 nan -inf -inf -inf nan 0 nan"),
    "cbrt": ("nan inf -inf 0 0 1e-100 -1e-100 1e+100 -1e+100",
             "nan 0 0 inf inf 3.33333333e+199 3.33333333e+199 3.33333333e-201 3.33333333e-201"),
    "log": ("nan inf nan -inf -inf -690.775528 nan 690.775528 nan",
            "nan 0 0 inf -inf 1e+300 -1e+300 1e-300 -1e-300"),
    "log1p": ("nan inf nan 0 0 1e-300 -1e-300 690.775528 nan",
              "nan 0 0 1 1 1 1 1e-300 -1e-300"),
    "log2": ("nan inf nan -inf -inf -996.578428 nan 996.578428 nan",
             "nan 0 0 inf -inf 1.44269504e+300 -1.44269504e+300 1.44269504e-300 "
             "-1.44269504e-300"),
    "exp": ("nan inf 0 1 1 1 1 inf 0",
            "nan inf 0 1 1 1 1 inf 0"),
    "exp2": ("nan inf 0 1 1 1 1 inf 0",
             "nan inf 0 0.693147181 0.693147181 0.693147181 0.693147181 inf 0"),
    "expm1": ("nan inf -1 0 0 1e-300 -1e-300 inf -1",
              "nan inf 0 1 1 1 1 inf 0"),
    "tanh": ("nan 1 -1 0 0 1e-300 -1e-300 1 -1",
             "nan 0 0 1 1 1 1 0 0"),
    "logistic": ("nan 1 0 0.5 0.5 0.5 0.5 1 0",
                 "nan 0 0 0.25 0.25 0.25 0.25 0 0"),
    "abs": ("nan inf inf 0 0 1e-300 1e-300 1e+300 1e+300",
            "-1 1 -1 1 1 1 -1 1 -1"),
    "sign": ("nan 1 -1 0 0 1 -1 1 -1",
             "0 0 0 0 0 0 0 0 0"),
    "erf": ("nan 1 -1 0 0 1.12837917e-300 -1.12837917e-300 1 -1",
            "nan 0 0 1.12837917 1.12837917 1.12837917 1.12837917 0 0"),
    "sin": ("nan nan nan 0 0 1e-300 -1e-300 -0.817881912 0.817881912",
            "nan nan nan 1 1 1 1 -0.575386112 -0.575386112"),
    "atan": ("nan 1.57079633 -1.57079633 0 0 1e-300 -1e-300 1.57079633 -1.57079633",
             "nan 0 0 1 1 1 1 0 0"),
    "sinh": ("nan inf -inf 0 0 1e-300 -1e-300 inf -inf",
             "nan inf inf 1 1 1 1 inf inf"),
    "cosh": ("nan inf inf 1 1 1 1 inf inf",
             "nan inf -inf 0 0 1e-300 -1e-300 inf -inf"),
    "asinh": ("nan inf -inf 0 0 1e-300 -1e-300 691.468675 -691.468675",
              "nan 0 0 1 1 1 1 0 0"),
    "atanh": ("nan nan nan 0 0 1e-300 -1e-300 nan nan",
              "nan 0 0 1 1 1 1 0 0"),
    "square": ("nan inf inf 0 0 0 0 inf inf",
               "nan inf -inf 0 0 2e-300 -2e-300 2e+300 -2e+300"),
    "reciprocal": ("nan 0 0 inf -inf 1e+300 -1e+300 1e-300 -1e-300",
                   "nan 0 0 -inf -inf -inf -inf 0 0"),
    "x**3": ("nan inf -inf 0 0 0 0 inf -inf",
             "nan inf inf 0 0 0 0 inf inf"),
    "x**-2": ("nan 0 0 inf inf inf inf 0 0",
              "nan 0 0 -inf inf -inf inf 0 0"),
    "x**2.5": ("nan inf inf 0 0 0 nan inf nan",
               "nan inf inf 0 0 0 nan inf nan"),
    # x ** 0. is the constant 1, so its derivative is 0 everywhere: here we differ from JAX
    # (nan 0 0 nan nan 0 0 0 0, its formula's 0 * inf), as issue 16 asks (docs/nonfinite.md)
    "x**0.": ("1 1 1 1 1 1 1 1 1",
              "0 0 0 0 0 0 0 0 0"),
    "2**x": ("nan inf 0 1 1 1 1 inf 0",
             "nan inf 0 0.693147181 0.693147181 0.693147181 0.693147181 inf 0"),
    "0**x": ("nan 0 inf 1 1 0 inf 0 inf",
             "nan 0 nan 0 0 0 nan 0 nan"),
    "1/x": ("nan 0 0 inf -inf 1e+300 -1e+300 1e-300 -1e-300",
            "nan 0 0 -inf -inf -inf -inf 0 0"),
    "x/x": ("nan nan nan nan nan 1 1 1 1",
            "nan nan nan nan nan -inf inf 1e-300 -1e-300"),
    "max(x,0)": ("nan inf 0 0 0 1e-300 0 1e+300 0",
                 "0 1 0 0.5 0.5 1 0 1 0"),
    "min(x,0)": ("nan 0 -inf 0 0 0 -1e-300 0 -1e+300",
                 "0 0 1 0.5 0.5 0 1 0 1"),
    "max(x,x)": ("nan inf -inf 0 0 1e-300 -1e-300 1e+300 -1e+300",
                 "0 1 1 1 1 1 1 1 1"),
    "atan2(x,1)": ("nan 1.57079633 -1.57079633 0 0 1e-300 -1e-300 1.57079633 -1.57079633",
                   "nan 0 0 1 1 1 1 0 0"),
    "atan2(1,x)": ("nan 0 3.14159265 1.57079633 1.57079633 1.57079633 1.57079633 1e-300 "
                   "3.14159265",
                   "nan 0 0 -1 -1 -1 -1 0 0"),
    "logaddexp(x,0)": ("nan inf 0 0.693147181 0.693147181 0.693147181 0.693147181 1e+300 0",
                       "nan 1 0 0.5 0.5 0.5 0.5 1 0"),
    "logaddexp(x,x)": ("nan inf -inf 0.693147181 0.693147181 0.693147181 0.693147181 1e+300 "
                       "-1e+300",
                       "nan 2 nan 1 1 1 1 2 2"),
    "clip": ("nan 1 -1 0 0 1e-300 -1e-300 1 -1",
             "0 0 0 1 1 1 1 0 0"),
    "sum": ("nan inf -inf 3 3 3 3 1e+300 -1e+300",
            "1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1"),
    "prod": ("nan inf -inf 0 0 2e-300 -2e-300 2e+300 -2e+300",
             "2,nan,nan 2,inf,inf 2,-inf,-inf 2,0,0 2,0,0 2,2e-300,1e-300 2,-2e-300,-1e-300 "
             "2,2e+300,1e+300 2,-2e+300,-1e+300"),
    "max": ("nan inf 2 2 2 2 2 1e+300 2",
            "nan,nan,nan 1,0,0 0,0,1 0,0,1 0,0,1 0,0,1 0,0,1 1,0,0 0,0,1"),
    "min": ("nan 1 -inf 0 0 1e-300 -1e-300 1 -1e+300",
            "nan,nan,nan 0,1,0 1,0,0 1,0,0 1,0,0 1,0,0 1,0,0 0,1,0 1,0,0"),
    "mean": ("nan inf -inf 1 1 1 1 3.33333333e+299 -3.33333333e+299",
             "0.333333333,0.333333333,0.333333333 0.333333333,0.333333333,0.333333333 "
             "0.333333333,0.333333333,0.333333333 0.333333333,0.333333333,0.333333333 "
             "0.333333333,0.333333333,0.333333333 0.333333333,0.333333333,0.333333333 "
             "0.333333333,0.333333333,0.333333333 0.333333333,0.333333333,0.333333333 "
             "0.333333333,0.333333333,0.333333333"),
    "var": ("nan nan nan 0.666666667 0.666666667 0.666666667 0.666666667 inf inf",
            "nan,nan,nan nan,nan,nan nan,nan,nan -0.666666667,0,0.666666667 "
            "-0.666666667,0,0.666666667 -0.666666667,0,0.666666667 -0.666666667,0,0.666666667 "
            "4.44444444e+299,-2.22222222e+299,-2.22222222e+299 "
            "-4.44444444e+299,2.22222222e+299,2.22222222e+299"),
    "std": ("nan nan nan 0.816496581 0.816496581 0.816496581 0.816496581 inf inf",
            "nan,nan,nan nan,nan,nan nan,nan,nan -0.40824829,0,0.40824829 "
            "-0.40824829,0,0.40824829 -0.40824829,0,0.40824829 -0.40824829,0,0.40824829 0,0,0 "
            "0,0,0"),
    "argmax": ("0 0 2 2 2 2 2 0 2",
               "-"),
    "argmin": ("0 1 0 0 0 0 0 1 0",
               "-"),
    "norm": ("nan inf inf 2.23606798 2.23606798 2.23606798 2.23606798 inf inf",
             "nan,nan,nan nan,0,0 nan,0,0 0,0.447213595,0.894427191 0,0.447213595,0.894427191 "
             "4.47213595e-301,0.447213595,0.894427191 -4.47213595e-301,0.447213595,0.894427191 "
             "0,0,0 0,0,0"),
    "max_tied": ("nan inf 2 2 2 2 2 1e+300 2",
                 "nan,nan,nan 1,0,0 0,0,1 0,0,1 0,0,1 0,0,1 0,0,1 1,0,0 0,0,1"),
    "cumsum": ("nan inf -inf 3 3 3 3 1e+300 -1e+300",
               "1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1 1,1,1"),
    "cumprod": ("nan inf -inf 0 0 2e-300 -2e-300 2e+300 -2e+300",
                "2,nan,nan 2,inf,inf 2,-inf,-inf 2,0,0 2,0,0 2,2e-300,1e-300 2,-2e-300,-1e-300 "
                "2,2e+300,1e+300 2,-2e+300,-1e+300"),
    "cummax": ("nan inf 2 2 2 2 2 1e+300 2",
               "0,0,0 1,0,0 0,0,1 0,0,1 0,0,1 0,0,1 0,0,1 1,0,0 0,0,1"),
    "logsumexp": ("nan inf 2.31326169 2.40760596 2.40760596 2.40760596 2.40760596 1e+300 "
                  "2.31326169",
                  "nan,nan,nan nan,0,0 0,0.268941421,0.731058579 "
                  "0.0900305732,0.244728471,0.665240956 0.0900305732,0.244728471,0.665240956 "
                  "0.0900305732,0.244728471,0.665240956 0.0900305732,0.244728471,0.665240956 "
                  "1,0,0 0,0.268941421,0.731058579"),
    "logsumexp_b": ("nan inf 2.21168526 2.31560908 2.31560908 2.31560908 2.31560908 1e+300 "
                    "2.21168526",
                    "nan,nan,nan nan,0,0 0,0.595390325,0.404609675 "
                    "0.0987060456,0.5366217,0.364672254 0.0987060456,0.5366217,0.364672254 "
                    "0.0987060456,0.5366217,0.364672254 0.0987060456,0.5366217,0.364672254 "
                    "1,0,0 0,0.595390325,0.404609675"),
    "logsumexp_b<0": ("nan nan 2.21168526 2.0956952 2.0956952 2.0956952 2.0956952 nan "
                      "2.21168526",
                      "nan,nan,nan nan,0,0 0,0.595390325,0.404609675 "
                      "-0.122984715,0.668614235,0.454370481 "
                      "-0.122984715,0.668614235,0.454370481 "
                      "-0.122984715,0.668614235,0.454370481 "
                      "-0.122984715,0.668614235,0.454370481 0,0,0 0,0.595390325,0.404609675"),
    "logsumexp_sign": ("nan -1 1 1 1 1 1 -1 1",
                       "0,0,0 0,0,0 0,0,0 0,0,0 0,0,0 0,0,0 0,0,0 0,0,0 0,0,0"),
    "logsumexp_where": ("nan inf 2 2.12692801 2.12692801 2.12692801 2.12692801 1e+300 2",
                        "nan,0,nan nan,0,0 0,0,1 0.119202922,0,0.880797078 "
                        "0.119202922,0,0.880797078 0.119202922,0,0.880797078 "
                        "0.119202922,0,0.880797078 1,0,0 0,0,1"),
    "softmax[0]": ("nan nan 0 0.0900305732 0.0900305732 0.0900305732 0.0900305732 1 0",
                   "nan,nan,nan nan,nan,nan 0,0,0 0.0819250691,-0.0220330445,-0.0598920245 "
                   "0.0819250691,-0.0220330445,-0.0598920245 "
                   "0.0819250691,-0.0220330445,-0.0598920245 "
                   "0.0819250691,-0.0220330445,-0.0598920245 0,0,0 0,0,0"),
    "softmax[1]": ("nan nan 0.268941421 0.244728471 0.244728471 0.244728471 0.244728471 0 "
                   "0.268941421",
                   "nan,nan,nan nan,nan,nan 0,0.196611933,-0.196611933 "
                   "-0.0220330445,0.184836447,-0.162803402 "
                   "-0.0220330445,0.184836447,-0.162803402 "
                   "-0.0220330445,0.184836447,-0.162803402 "
                   "-0.0220330445,0.184836447,-0.162803402 0,0,0 0,0.196611933,-0.196611933"),
    "log_softmax[0]": ("nan nan -inf -2.40760596 -2.40760596 -2.40760596 -2.40760596 0 -1e+300",
                       "nan,nan,nan nan,nan,nan 1,-0.268941421,-0.731058579 "
                       "0.909969427,-0.244728471,-0.665240956 "
                       "0.909969427,-0.244728471,-0.665240956 "
                       "0.909969427,-0.244728471,-0.665240956 "
                       "0.909969427,-0.244728471,-0.665240956 0,0,0 1,-0.268941421,-0.731058579"),
    "log_softmax[1]": ("nan nan -1.31326169 -1.40760596 -1.40760596 -1.40760596 -1.40760596 "
                       "-1e+300 -1.31326169",
                       "nan,nan,nan nan,nan,nan 0,0.731058579,-0.731058579 "
                       "-0.0900305732,0.755271529,-0.665240956 "
                       "-0.0900305732,0.755271529,-0.665240956 "
                       "-0.0900305732,0.755271529,-0.665240956 "
                       "-0.0900305732,0.755271529,-0.665240956 -1,1,0 "
                       "0,0.731058579,-0.731058579"),
    "softmax_where[1]": ("nan nan 1 0.880797078 0.880797078 0.880797078 0.880797078 0 1",
                         "nan,0,nan nan,0,nan 0,0,0 -0.104993585,0,0.104993585 "
                         "-0.104993585,0,0.104993585 -0.104993585,0,0.104993585 "
                         "-0.104993585,0,0.104993585 0,0,0 0,0,0"),
    "log_softmax_where[0]": ("nan nan -inf -2.12692801 -2.12692801 -2.12692801 -2.12692801 0 "
                             "-1e+300",
                             "nan,0,nan nan,0,nan 1,0,-1 0.880797078,0,-0.880797078 "
                             "0.880797078,0,-0.880797078 0.880797078,0,-0.880797078 "
                             "0.880797078,0,-0.880797078 0,0,0 1,0,-1"),
}


def _assert_table(name, got, text):
    """got (one row per input in X) equals the EXPECTED entry text to 8 digits, NaN for NaN."""
    want = np.array([[float(t) for t in tok.split(",")] for tok in text.split()])
    got = np.asarray(got, np.float64).reshape(want.shape)
    ok = np.isclose(got, want, rtol=1e-8, atol=0, equal_nan=True)   # inf == inf here too
    bad = [(X[i], got[i].tolist(), want[i].tolist()) for i in np.nonzero(~ok.all(1))[0]]
    assert not bad, f"{name}: (input, functrans, JAX) {bad}"


ELEMENTWISE = elementwise(jnp, nn, lax)
REDUCTIONS = reductions(jnp, nn, lax, functrans.scipy.special)
ROWS = np.stack([X, np.ones_like(X), np.full_like(X, 2.0)], axis=1)   # [x, 1, 2] for x in X


def _elementwise_grad(f):
    return ft.grad(lambda x: jnp.sum(f(x)))     # elementwise: the derivative at each x


def _all(fns, transform=lambda f: f):
    """One function evaluating transform(f) of every f (so that jit compiles once)."""
    return lambda x: [transform(f)(x) for f in fns.values()]


def _differentiable(fns):
    return {k: f for k, f in fns.items() if EXPECTED[k][1] != "-"}


def test_table_covers_every_nn_function():
    covered = {re.split(r"[\[(<]", k)[0] for k in EXPECTED}   # "softmax[0]" covers softmax
    missing = set(nn.__all__) - {"one_hot"} - covered           # one_hot takes integer labels
    assert not missing, missing
    assert set(EXPECTED) == set(ELEMENTWISE) | set(REDUCTIONS)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_elementwise_values_and_derivatives_as_jax(mode):
    wrap = ft.jit if mode == "jit" else (lambda f: f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = wrap(_all(ELEMENTWISE))(X)
        grads = wrap(_all(ELEMENTWISE, _elementwise_grad))(X)
    for (name, (v, g)), got_v, got_g in zip(((k, EXPECTED[k]) for k in ELEMENTWISE), values, grads):
        _assert_table(name, got_v, v)
        _assert_table(f"d {name}", got_g, g)


@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_reduction_values_and_gradients_as_jax(mode):
    wrap = ft.jit if mode == "jit" else (lambda f: f)
    diff = _differentiable(REDUCTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = wrap(_all(REDUCTIONS, ft.vmap))(ROWS)
        grads = wrap(_all(diff, lambda f: ft.vmap(ft.grad(f))))(ROWS)
    for name, got in zip(REDUCTIONS, values):
        _assert_table(name, got, EXPECTED[name][0])
    for name, got in zip(diff, grads):
        _assert_table(f"grad {name}", got, EXPECTED[name][1])


# ---------------------------------------------------------------------------------------------
# NaN anywhere in an input reaches the output of every reduction

NAN_REDUCTIONS = {"sum": jnp.sum, "prod": jnp.prod, "max": jnp.max, "min": jnp.min,
                  "mean": jnp.mean, "var": jnp.var, "std": jnp.std, "logsumexp": nn.logsumexp,
                  "norm": jnp.linalg.norm, "cumsum": lambda v: jnp.cumsum(v)[-1],
                  "cummax": lambda v: lax.cummax(v.ravel())[-1],
                  "softmax": lambda v: nn.softmax(v.ravel())[0]}


@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=2, max_side=4),
                  elements=st.floats(-1e300, 1e300) | st.sampled_from([np.inf, -np.inf, 0.0])),
       st.data())
def test_nan_anywhere_propagates_through_reductions(x, data):
    x = x.copy()
    x.flat[data.draw(st.integers(0, x.size - 1))] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name, f in NAN_REDUCTIONS.items():
            assert np.isnan(f(x)), name
        assert jnp.argmax(x) == np.flatnonzero(np.isnan(x))[0]   # NaN counts as the maximum
        assert jnp.argmin(x) == np.flatnonzero(np.isnan(x))[0]   # and as the minimum


# ---------------------------------------------------------------------------------------------
# debug_nans

def _log_of_negative(x):
    y = jnp.sin(x) - 2.0
    return jnp.log(y) * 2.0   # the line that makes the NaN


_NAN_LINE = _log_of_negative.__code__.co_firstlineno + 2


@pytest.fixture
def debug_nans():
    ft.config.update("jax_debug_nans", True)
    try:
        yield
    finally:
        ft.config.update("jax_debug_nans", False)


@pytest.mark.parametrize("wrap", [
    lambda f: f, ft.jit, lambda f: ft.jit(ft.jit(f)), ft.checkpoint, lambda f: ft.vmap(f),
    lambda f: ft.jit(lambda x: lax.cond(x.sum() > -10, f, lambda v: v, x)),
    lambda f: ft.jit(lambda x: lax.scan(lambda c, _: (f(c), None), x, None, length=2)[0])],
    ids=["eager", "jit", "nested_jit", "checkpoint", "vmap", "jit_cond", "jit_scan"])
def test_debug_nans_names_the_primitive_and_the_line(debug_nans, wrap):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError,
                           match=rf"invalid value \(nan\) encountered in log at .*"
                                 rf"test_nonfinite.py:{_NAN_LINE} \(_log_of_negative\)"):
            wrap(_log_of_negative)(np.ones(3))


def test_debug_nans_off_returns_nans_and_nan_inputs_do_not_raise(debug_nans):
    assert np.isnan(jnp.log(np.array([np.nan, 1.0]))).sum() == 1    # the NaN came in: no error
    assert np.isnan(ft.jit(jnp.sin)(np.array([np.nan]))).all()
    assert ft.config.debug_nans and ft.config.read("debug_nans") and ft.config.jax_debug_nans
    ft.config.update("debug_nans", False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert np.isnan(ft.jit(_log_of_negative)(np.ones(3))).all()
        assert np.isnan(_log_of_negative(np.ones(3))).all()
    with pytest.raises(AttributeError, match="Unrecognized config option"):
        ft.config.update("jax_debug_everything", True)


def test_debug_nans_from_the_environment():
    import subprocess
    import sys
    code = ("import functrans, functrans.numpy as jnp\n"
            "assert functrans.config.debug_nans\n"
            "try:\n    jnp.sqrt(-1.0)\nexcept FloatingPointError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, env={**__import__("os").environ, "FUNCTRANS_DEBUG_NANS": "1"})
    assert "invalid value (nan) encountered in sqrt" in out.stdout, out.stderr


# ---------------------------------------------------------------------------------------------
# The rules rewritten for these semantics, against finite differences (order 2, both modes)

_V = np.array([[-1.3, 0.4, 2.1, -0.2], [0.7, -2.2, 1.1, 3.4]])
_KEEP = np.array([True, False, True, True])
_GRAD_CHECKS = {
    "relu": nn.relu, "relu6": lambda v: nn.relu6(3.0 * v), "celu": nn.celu, "selu": nn.selu,
    "logaddexp": lambda v: jnp.logaddexp(v, v[::-1]),
    "logsumexp_b": lambda v: nn.logsumexp(v, axis=1, b=np.array([0.5, 0.0, 2.0, 1.0])),
    "logsumexp_sign": lambda v: nn.logsumexp(v, axis=0, b=np.array([-1.0, 0.5, 2.0, 1.0]),
                                             return_sign=True)[0],
    "logsumexp_where": lambda v: nn.logsumexp(v, axis=1, where=_KEEP),
    "softmax_where": lambda v: nn.softmax(v, where=_KEEP),
    "log_softmax_where": lambda v: nn.log_softmax(v, axis=-1, where=_KEEP),
    "cumprod": lambda v: lax.cumprod(v, 1), "cumprod_rev": lambda v: lax.cumprod(v, 1, True),
    "cummax": lambda v: lax.cummax(v, 1), "cummin_rev": lambda v: lax.cummin(v, 1, True),
    "cumprod_odd": lambda v: jnp.cumprod(v[:, :3], axis=1),
}


@pytest.mark.parametrize("name", list(_GRAD_CHECKS))
def test_rewritten_rules_match_finite_differences(name):
    f = _GRAD_CHECKS[name]
    if name.endswith("softmax_where"):     # masked-out outputs are constants: check the kept
        g = f
        f = lambda v: jnp.where(_KEEP, g(v), 0.0)   # noqa: E731
    check_grads(f, (_V,), order=2)
