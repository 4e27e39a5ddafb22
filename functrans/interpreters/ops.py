"""The few traceable ops the interpreters' own helpers emit (materialised zeros, tangent sums,
moving and inserting batch axes), kept in a table that ``functrans.lax.lax`` fills when it is
imported.

Layering: transforms sit above lax. lax imports the interpreters to register its rules, so the
interpreters never import lax (not even lazily); lax hands them these ops instead."""

NAMES = ("add", "broadcast_in_dim", "full", "transpose")

_ops = {}   # name in NAMES -> the lax function of that name


def register(**ops):
    """Register traceable ops by name; every name must be in NAMES (lax.py calls this once)."""
    unknown = sorted(set(ops) - set(NAMES))
    if unknown:
        raise ValueError(f"not an op the interpreters use: {unknown} (expected names in {NAMES})")
    _ops.update(ops)


def get(name):
    """The registered traceable op ``name``; RuntimeError if lax has not registered it yet."""
    try:
        return _ops[name]
    except KeyError:
        raise RuntimeError(f"interpreter op {name!r} used before functrans.lax registered it "
                           "(import functrans, which imports functrans.lax)") from None
