"""Exceptions raised for misuse of functrans."""


class ConcretizationTypeError(TypeError):
    """A concrete Python value was needed from an abstract traced value (under jit or staging)."""


class TracerBoolConversionError(ConcretizationTypeError):
    """bool() of an abstract traced value."""


class TracerIntegerConversionError(ConcretizationTypeError):
    """int() or index of an abstract traced value."""


class NonConcreteBooleanIndexError(IndexError, ConcretizationTypeError):
    """A boolean mask index of an abstract traced value (its true count would set the result
    shape); an IndexError as in JAX, and a ConcretizationTypeError."""


class TracerArrayConversionError(TypeError):
    """np.asarray() of a traced value: NumPy functions cannot be traced."""


class UnexpectedTracerError(Exception):
    """A tracer escaped the transform that created it and was used afterwards."""
