"""SAEs: slicing (`slicing`), loading (`loading`, `pretrained`), labels (`labels`), id checks
(`ids`).

Training the embedded SAE lives in `esr_utils.saes.training` (`python -m esr_utils.saes.training`).
The names below are the ones chapters use.
"""

from esr_utils.saes.ids import check_latent_ids
from esr_utils.saes.labels import LatentLabels, load_labels
from esr_utils.saes.loading import (
    EMBEDDED_SAE_DIR,
    CorruptSaeError,
    load_sae,
    verify_sae_folder,
)
from esr_utils.saes.slicing import SaeSlice, slice_sae

__all__ = ["SaeSlice", "slice_sae", "check_latent_ids", "load_sae", "verify_sae_folder",
           "CorruptSaeError", "EMBEDDED_SAE_DIR", "LatentLabels", "load_labels"]
