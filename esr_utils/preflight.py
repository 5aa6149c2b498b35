"""Checks before a GPU, NDIF or paid-API run: every failure names its fix, before anything slow
runs.

    problems = preflight(spec, backend="remote", judge="anthropic", device="auto")

`preflight` gathers every problem it finds (rather than stopping at the first) and raises one
`PreflightError` listing them all. `estimate_run` prints what a chapter will cost, so that it
can be recorded in the run card before the first generation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from esr_utils import stand_ins
from esr_utils.models import ModelSpec

__all__ = ["PreflightError", "preflight", "RunEstimate", "estimate_run", "weights_gb"]

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
# the weights plus activations, the KV cache of a generation batch and the CUDA context
_GPU_HEADROOM = 1.25


class PreflightError(RuntimeError):
    """One or more things a run needs are missing; the message lists each with its fix."""


def weights_gb(spec: ModelSpec, dtype: str = "bfloat16") -> float:
    """Size of the model's weights in GB at `dtype` (what the GPU holds and the disk downloads)."""
    if spec.n_params is None:
        raise ValueError(f"{spec.name} has no parameter count in the registry")
    return spec.n_params * _BYTES[dtype] / 1e9


def _gated(spec: ModelSpec) -> bool:
    # Meta's and Google's repositories need an accepted licence and a token
    return spec.hf_repo.split("/")[0] in {"meta-llama", "google"}


def _hf_token() -> str | None:
    token = os.environ.get("HF_TOKEN", "").strip()
    if token:
        return token
    try:
        from huggingface_hub import get_token
    except ImportError:
        return None
    return get_token()


def _ndif_key() -> str | None:
    key = os.environ.get("NDIF_API_KEY", "").strip()
    if key:
        return key
    try:
        from nnsight import CONFIG
    except ImportError:
        return None
    return getattr(getattr(CONFIG, "API", None), "APIKEY", None) or None


def _judge_key_problem(judge: str | None) -> str | None:
    if not judge or judge.startswith("offline"):
        return None
    from esr_utils.judging import MissingAPIKey, make_backend

    try:
        make_backend(judge)
    except MissingAPIKey as err:
        return str(err)
    return None


def _gpu_problem(spec: ModelSpec, device: str, dtype: str) -> str | None:
    import torch

    need = weights_gb(spec, dtype) * _GPU_HEADROOM
    if device == "cpu" or not torch.cuda.is_available():
        if need > 8:
            return (f"{spec.name} needs a GPU with about {need:.0f} GB free in {dtype} "
                    f"(weights {weights_gb(spec, dtype):.0f} GB); none is visible: run on a GPU "
                    f"machine, or on NDIF where the model is served (BACKEND='remote')")
        return None
    free, _total = torch.cuda.mem_get_info()
    if free / 1e9 < need:
        return (f"{spec.name} needs about {need:.0f} GB of GPU memory in {dtype}, but only "
                f"{free / 1e9:.0f} GB are free on {torch.cuda.get_device_name()}: use a larger GPU "
                f"(80 GB for Gemma-2-27B), free the memory, or run it on NDIF if it is "
                "served there")
    return None


def _disk_problem(spec: ModelSpec, dtype: str, cache: Path) -> str | None:
    cache.mkdir(parents=True, exist_ok=True)
    free_gb = shutil.disk_usage(cache).free / 1e9
    need = weights_gb(spec, dtype) * 1.1
    if free_gb < need:
        return (f"downloading {spec.name} needs about {need:.0f} GB in {cache}, but only "
                f"{free_gb:.0f} GB are free: free space, or point HF_HOME at a larger disk")
    return None


def preflight(spec: ModelSpec, *, backend: str = "local",
              judge: str | Sequence[str] | None = None, device: str = "auto",
              dtype: str = "bfloat16", hf_cache: Path | None = None,
              check_ndif_status: bool = True) -> None:
    """Raise `PreflightError` listing every missing credential, resource or service for this run.

    `judge` is one judge spec or several (every LLM the run calls). The embedded model needs
    nothing and passes at once (apart from the judges' keys).
    """
    judges = [judge] if judge is None or isinstance(judge, str) else list(judge)
    problems = [p for p in dict.fromkeys(map(_judge_key_problem, judges)) if p]
    if spec.sae.source != "embedded" and not stand_ins.active():  # stand-ins need no weights
        if backend == "remote":
            if not _ndif_key():
                problems.append("NDIF needs an API key: set NDIF_API_KEY (from login.ndif.us)")
            if not _hf_token():
                problems.append("the NDIF client reads the model's config and tokenizer from the "
                                "Hub: set HF_TOKEN, with access granted to " + spec.hf_repo)
            if check_ndif_status and not problems:
                problems += _ndif_problems(spec)
        else:
            if _gated(spec) and not _hf_token():
                problems.append(f"{spec.hf_repo} is gated: accept its licence on the Hub and set "
                                "HF_TOKEN to a token with access")
            gpu = _gpu_problem(spec, device, dtype)
            if gpu:
                problems.append(gpu)
            cache = hf_cache or Path(os.environ.get("HF_HOME",
                                                    Path.home() / ".cache" / "huggingface"))
            disk = _disk_problem(spec, dtype, cache)
            if disk:
                problems.append(disk)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise PreflightError(f"this run cannot start yet ({len(problems)} problem(s)):\n{listed}")


def _ndif_problems(spec: ModelSpec) -> list[str]:
    """Is the model deployed on NDIF right now? (Needs the network; only called for remote runs.)"""
    try:
        import nnsight

        running = nnsight.is_model_running(spec.hf_repo)
    except Exception as err:  # any failure to ask is itself the problem to report
        return [f"could not ask NDIF whether {spec.hf_repo} is deployed ({type(err).__name__}: "
                f"{err}); check the network, NDIF_HOST and the nnsight version"]
    if not running:
        return [f"{spec.hf_repo} is not deployed on NDIF right now: check nnsight.status() and "
                "try later, or run it locally on a GPU"]
    return []


@dataclass(frozen=True)
class RunEstimate:
    """What a chapter will generate and judge, and what that costs; stored in the run card."""

    trials: int
    generated_tokens: int
    judge_calls: int
    judge_input_tokens: int
    judge_output_tokens: int
    judge_cost_usd: float | None
    generation_hours: float | None
    assumptions: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        cost = ("unknown (no price given)" if self.judge_cost_usd is None
                else f"${self.judge_cost_usd:,.2f}")
        hours = ("no time estimate for this model here" if self.generation_hours is None
                 else f"about {self.generation_hours:.1f} h")
        return (f"{self.trials:,} trials, {self.generated_tokens:,} generated tokens "
                f"({hours}); {self.judge_calls:,} judge calls, "
                f"{self.judge_input_tokens:,} in / {self.judge_output_tokens:,} out tokens: {cost}")


def estimate_run(*, trials: int, max_new_tokens: int, tokens_per_second: float | None = None,
                 judge_prompt_tokens: int = 900, judge_output_tokens: int = 250,
                 price_in_per_mtok: float | None = None,
                 price_out_per_mtok: float | None = None) -> RunEstimate:
    """Upper bound on a chapter's work: every trial runs to `max_new_tokens` and is judged once.

    `tokens_per_second` is the generation throughput of the machine (measured, or derived from
    FLOPs and memory bandwidth: say which where it is reported). Prices are per million tokens,
    as the judge's provider lists them today; they are parameters because they change.
    """
    if trials < 0 or max_new_tokens < 1:
        raise ValueError(f"trials must be >= 0 and max_new_tokens >= 1, got {trials}, "
                         f"{max_new_tokens}")
    generated = trials * max_new_tokens
    judge_in = trials * (judge_prompt_tokens + max_new_tokens)
    judge_out = trials * judge_output_tokens
    cost = None
    if price_in_per_mtok is not None and price_out_per_mtok is not None:
        cost = (judge_in * price_in_per_mtok + judge_out * price_out_per_mtok) / 1e6
    hours = None if not tokens_per_second else generated / tokens_per_second / 3600
    assumptions = (f"each trial runs to {max_new_tokens} tokens; the judge reads about "
                   f"{judge_prompt_tokens} tokens of instructions and prompt plus the response, "
                   f"and writes about {judge_output_tokens}")
    return RunEstimate(trials, generated, trials, judge_in, judge_out, cost, hours, assumptions)
