"""functrans.optim: optax's gradient transformations, optimizers and schedules, with optax's
names, signatures and state pytrees, so optax code ports by changing the import.

An optimizer is a ``GradientTransformation(init, update)``: ``state = opt.init(params)``,
``updates, state = opt.update(grads, state, params)``, ``params = apply_updates(params,
updates)``. See docs/optim.md."""
from ._base import (EmptyState, GradientTransformation, GradientTransformationExtraArgs,  # noqa: F401
                    apply_updates, chain, identity, stateless)
from ._transforms import (AddDecayedWeightsState, ClipByGlobalNormState, ClipState,  # noqa: F401
                          EmaState, FactoredState, MaskedNode, MaskedState, MultiTransformState,
                          ScaleByAdamState, ScaleByLionState, ScaleByRmsState,
                          ScaleByRssState, ScaleByRStdDevState, ScaleByScheduleState, ScaleState,
                          TraceState, add_decayed_weights, clip, clip_by_block_rms,
                          clip_by_global_norm, ema, global_norm, masked, multi_transform, scale,
                          scale_by_adam, scale_by_factored_rms, scale_by_learning_rate,
                          scale_by_lion, scale_by_param_block_rms, scale_by_rms, scale_by_rss,
                          scale_by_schedule, scale_by_stddev, scale_by_trust_ratio, set_to_zero,
                          trace)
from ._alias import (adafactor, adagrad, adam, adamw, lamb, lion, nadam, rmsprop,  # noqa: F401
                     sgd)
from ._multistep import MultiSteps, MultiStepsState, skip_not_finite  # noqa: F401
from ._schedules import (constant_schedule, cosine_decay_schedule, exponential_decay,  # noqa: F401
                         join_schedules, linear_schedule, piecewise_constant_schedule,
                         polynomial_schedule, warmup_cosine_decay_schedule)
from .loss_scale import (DynamicLossScale, NoOpLossScale, StaticLossScale,  # noqa: F401
                         all_finite, select_tree)
from ._newton_cg import NewtonCGState, newton_cg  # noqa: F401,E402
from ._linesearch import (BacktrackingLinesearchInfo, ScaleByBacktrackingLinesearchState,  # noqa: F401
                          ScaleByZoomLinesearchState, ZoomLinesearchInfo,
                          scale_by_backtracking_linesearch, scale_by_zoom_linesearch,
                          value_and_grad_from_state)
from ._lbfgs import ScaleByLBFGSState, lbfgs, scale_by_lbfgs  # noqa: F401
