"""Curvature-matrix-vector products without forming matrices: ``ggn_vp`` (generalised
Gauss-Newton) and ``fisher_vp`` (empirical Fisher). ``functrans.hvp`` is the third.
docs/solvers.md has the definitions and when to use which."""
from __future__ import annotations

from . import numpy as jnp
from .api import hvp, jvp, vjp
from .tree_util import tree_map
from ._args import check_callable

__all__ = ["ggn_vp", "fisher_vp"]


def ggn_vp(model, loss):
    """The Gauss-Newton-vector product of ``loss(model(params, x), *loss_args)``.

    model(params, x) returns the outputs z (a pytree); loss(z, *loss_args) a scalar. Returns
    ``gvp(params, v, x, *loss_args)`` = J^T H J v, J the Jacobian of z in params at x and H
    the Hessian of the loss in z (J v by a jvp, H (J v) by an hvp of the loss, J^T by a vjp;
    no matrix is formed). v and the result have params' structure. The GGN is positive
    semi-definite when the loss is convex in z, unlike the Hessian, so CG on it is safe."""
    check_callable(model, "ggn_vp: model")
    check_callable(loss, "ggn_vp: loss")

    def gvp(params, v, x, *loss_args):
        def outputs(p):
            return model(p, x)
        z, jv = jvp(outputs, (params,), (v,))
        hjv = hvp(lambda out: loss(out, *loss_args), (z,), (jv,))
        _, pullback = vjp(outputs, params)
        return pullback(hjv)[0]
    return gvp


def fisher_vp(log_likelihood):
    """The empirical-Fisher-vector product of per-example log-likelihoods.

    log_likelihood(params, *batch) returns the vector (n,) of log p(y_i | x_i, params).
    Returns ``fvp(params, v, *batch)`` = (1/n) sum_i g_i (g_i . v), g_i the gradient of the
    i-th log-likelihood: the per-example Jacobian G is applied as G v (a jvp) then G^T (a
    vjp), never formed. For the model (true) Fisher of an exponential-family output with its
    canonical link, use ``ggn_vp`` with the negative log-likelihood as the loss (they are
    equal there)."""
    check_callable(log_likelihood, "fisher_vp: log_likelihood")

    def fvp(params, v, *batch):
        def per_example(p):
            out = log_likelihood(p, *batch)
            if jnp.ndim(out) != 1:
                raise ValueError("fisher_vp: log_likelihood must return a vector of per-example "
                                 f"log-likelihoods, got shape {jnp.shape(out)}")
            return out
        ll, gv = jvp(per_example, (params,), (v,))
        _, pullback = vjp(per_example, params)
        n = jnp.shape(ll)[0]
        return tree_map(lambda t: t / n, pullback(gv)[0])
    return fvp
