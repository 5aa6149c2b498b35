"""Shared code for the ESR book: models, SAEs, steering, generation, judging, metrics, results."""

__version__ = "0.1.0"
