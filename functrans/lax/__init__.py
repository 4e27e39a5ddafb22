"""functrans.lax: the primitives (and thin wrappers) everything else is written in."""
from .lax import *  # noqa: F401,F403
from .lax import (abs, add, argmax, argmin, broadcast_in_dim, broadcasted_iota, convert_element_type,  # noqa: F401
                  cumsum, cumprod, cummax, cummin, div, dot_general, exp, full, integer_pow, iota, max,
                  min, pow, reduce_max, reduce_min, reduce_prod, reduce_sum, reshape, rev, round,
                  select, select_n, squeeze, stop_gradient, transpose, expand_dims)
from .slicing import (slice, pad, concatenate, dynamic_slice, dynamic_update_slice,  # noqa: F401
                      gather, scatter_add, scatter, scatter_mul, sort, argsort)
from .control_flow import (cond, switch, while_loop, fori_loop, scan, map, associative_scan,  # noqa: F401,A004
                           cond_p, while_p, scan_p)
from .special import (betainc, digamma, erf_inv, erfc, igamma, igamma_grad_a, igammac,  # noqa: F401,E402
                      lgamma, ndtri, polygamma, random_gamma_grad)
from .windowed import (reduce, reduce_window, reduce_window_sum, reduce_window_max,  # noqa: F401,E402,A004
                       reduce_window_min, padtype_to_pads, reduce_window_shape_tuple)
from .parallel import (all_gather, all_to_all, axis_index, axis_size, pmax, pmean, pmin,  # noqa: F401,E402
                       ppermute, psum, psum_scatter, pswapaxes)
from .convolution import (ConvDimensionNumbers, conv, conv_dimension_numbers,  # noqa: F401,E402
                          conv_general_dilated, conv_general_dilated_p, conv_general_permutations,
                          conv_general_shape_tuple, conv_shape_tuple, conv_transpose,
                          conv_transpose_shape_tuple, conv_with_general_padding)
from . import linalg  # noqa: F401,E402
from .fft import FftType, fft, fft_p  # noqa: F401,E402
from .linear_solve import custom_linear_solve, custom_linear_solve_p  # noqa: F401,E402
