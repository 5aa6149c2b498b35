"""Latent ids the paper names, as data (imported by the chapters' code and by the stand-ins)."""

from __future__ import annotations

__all__ = ["PAPER_OTDS_POSITIVE", "PAPER_OTDS_NEGATIVE", "PAPER_OTDS"]

# Llama-3.3-70B, Goodfire layer-50 SAE: the paper's 26 OTDs (Table 2), split by the sign of
# Cohen's d as the authors published it in later public material (review responses).
PAPER_OTDS_POSITIVE = (3675, 7517, 9168, 10304, 17481, 17516, 24684, 34002, 34765, 37536,
                       40119, 40792, 45078, 46037, 54311, 58565, 59483, 61420)
PAPER_OTDS_NEGATIVE = (11977, 15375, 27331, 28540, 33044, 41038, 49897, 61116)
PAPER_OTDS = tuple(sorted(PAPER_OTDS_POSITIVE + PAPER_OTDS_NEGATIVE))
