"""CPU kernels reading an operand through a transpose of its last axis run their two innermost
loops in tiles (numba_cpu._emit_tiled_nest): same values, for sizes off the tile grid too."""
import numpy as np
import pytest

import functrans as jax
import functrans.numpy as jnp
from functrans.backends import numba_cpu, plan


@pytest.mark.parametrize("shape", [(1, 1), (5, 5), (33, 33), (70, 70), (2, 3, 45)])
def test_transposed_reads_match_numpy(shape):
    a = np.random.default_rng(0).normal(size=shape)
    if shape[-1] == shape[-2]:
        f, want = (lambda x: (x + jnp.swapaxes(x, -1, -2)) * 0.5), (a + np.swapaxes(a, -1, -2)) / 2
    else:
        f, want = (lambda x: jnp.swapaxes(x, -1, -2) * 2.0 + 1.0), np.swapaxes(a, -1, -2) * 2 + 1
    np.testing.assert_array_equal(np.asarray(jax.jit(f)(a)), want)


def test_tiles_only_where_a_transpose_moves_the_last_axis():
    a = np.zeros((4, 4))
    for f, tiled in [(lambda x: x + x.T, True), (lambda x: x * 2.0, False),
                     (lambda x: jnp.transpose(x[None], (1, 0, 2)) + 1.0, False)]:
        src = numba_cpu.generate(plan.make_plan(jax.make_jaxpr(f)(a), rewrites=True))[0]
        assert ("range(0, " in src) == tiled, src
