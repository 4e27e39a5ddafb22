"""jit as a higher-order primitive: ``jit_p`` carries a ClosedJaxpr, so every transform composes
with it through jaxpr-level rules (jvp_jaxpr, vmap_jaxpr, partial_eval_jaxpr, transpose_jaxpr)."""
from __future__ import annotations

from . import core
from .core import Primitive, abstract_eval_rules, impl_rules
from .interpreters import ad, batching, partial_eval
from .interpreters.ad import UndefPrimal, Zero, instantiate_zeros
from .util import safe_map, safe_zip, split_list

map, zip = safe_map, safe_zip

jit_p = Primitive("jit", multiple_results=True)
core.complex_primitives.add(jit_p)     # its body is checked equation by equation

# backend name -> f(closed_jaxpr, args, name) -> list of outputs; filled by functrans.backends
# (this module imports nothing from there: backends sit above the primitives they run)
backend_executors = {}


def _jit_impl(*args, jaxpr, name, backend):
    run = backend_executors.get(backend or "cpu")
    if run is None:             # no compiled backend registered: evaluate eagerly
        return core.eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, *args)
    return run(jaxpr, args, name)


impl_rules[jit_p] = _jit_impl


def _jit_placement(params):
    """jit(backend="cuda") on uncommitted inputs runs on (and returns Arrays on) the GPU."""
    if params["backend"] == "cuda":
        from .devices import devices
        return devices("cuda")[0]
    return None


core.placement_rules[jit_p] = _jit_placement
abstract_eval_rules[jit_p] = lambda *avals, jaxpr, name, backend: list(jaxpr.out_avals)


def _jit_jvp(primals, tangents, *, jaxpr, name, backend):
    nonzeros = [type(t) is not Zero for t in tangents]
    jvp_closed, out_nz = ad.jvp_jaxpr(jaxpr, nonzeros)
    outs = jit_p.bind(*primals, *[t for t in tangents if type(t) is not Zero],
                      jaxpr=jvp_closed, name=f"jvp({name})", backend=backend)
    n = len(jaxpr.out_avals)
    outs_p, outs_t = split_list(outs, [n])
    it = iter(outs_t)
    return outs_p, [next(it) if nz else Zero(a) for nz, a in zip(out_nz, jaxpr.out_avals)]


def _jit_transpose(cts, *args, jaxpr, name, backend):
    linear = [type(x) is UndefPrimal for x in args]
    t_closed = ad.transpose_jaxpr(jaxpr, linear)
    res = [x for x, lin in zip(args, linear) if not lin]
    cts_in = jit_p.bind(*res, *map(instantiate_zeros, cts), jaxpr=t_closed,
                        name=f"transpose({name})", backend=backend)
    it = iter(cts_in)
    return [next(it) if lin else None for lin in linear]


def _jit_batch(vals, dims, *, jaxpr, name, backend):
    size = batching.axis_size_of(vals, dims)
    b_closed, out_dims = batching.vmap_jaxpr(jaxpr, size, dims)
    outs = jit_p.bind(*vals, jaxpr=b_closed, name=f"vmap({name})", backend=backend)
    return outs, out_dims


ad.jvp_rules[jit_p] = _jit_jvp
ad.transpose_rules[jit_p] = _jit_transpose
batching.batch_rules[jit_p] = _jit_batch
partial_eval.call_partial_eval(jit_p)

