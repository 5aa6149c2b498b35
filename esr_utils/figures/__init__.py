"""One function per figure the book draws, each returning a matplotlib figure.

Chapters call these and save the result with `plotting.save_figure`; the data comes in as an
`EsrRun` (or plain tables), so a figure can be redrawn from stored results without a model.
One module per chapter's figures; this package re-exports them all.
"""

from esr_utils.figures.detection import decomposition, first_k_rates, prefill_rates
from esr_utils.figures.detectors import (
    ablation_rates,
    detector_effect_sizes,
    random_control,
    region_bars,
    restart_alignment,
    single_episode,
)
from esr_utils.figures.esr import (
    boost_sweep,
    calibration_check,
    calibration_traces,
    esr_rates,
    first_scores_no_steering,
)
from esr_utils.figures.fine_tuning import fine_tuning_rates
from esr_utils.figures.meta_prompting import meta_prompt_across_models, meta_prompt_variants
from esr_utils.figures.setup import concept_vs_boost, residual_norms_by_layer

__all__ = ["residual_norms_by_layer", "concept_vs_boost", "calibration_traces",
           "calibration_check", "esr_rates", "first_scores_no_steering", "boost_sweep",
           "fine_tuning_rates", "meta_prompt_across_models", "meta_prompt_variants",
           "prefill_rates", "first_k_rates", "decomposition", "detector_effect_sizes",
           "ablation_rates", "random_control", "restart_alignment", "region_bars", "single_episode"]
