"""Shared code for the ESR book: models, SAEs, steering, generation, judging, metrics, results."""

__version__ = "0.1.0"

# the smoke test's record of which files a chapter reads (off unless ESR_READ_AUDIT is set)
from esr_utils.read_audit import install_from_env  # noqa: E402

install_from_env()
