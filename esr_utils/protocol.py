"""Chapter 2's protocol as functions: select, calibrate, ESR run, baseline, sweep; replay.

Every function takes what it uses (model, SAE, judge, prompts, settings, a results folder) and
nothing else; every generation and verdict goes to an append-only store, so a rerun redoes
nothing. `run_protocol` chains the steps into an `EsrRun`; `replay` reruns a stored condition
with one thing changed (an ablation set, a meta-prompt, another model, fresh seeds, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from esr_utils.esr_run import EsrRun, ProtocolSettings, serialisable_summary, sweep_levels
from esr_utils.generation import Sampling, Trial, generate_trials
from esr_utils.latent_selection import (
    prompt_token_maxima,
    rate_concreteness,
    relevant_by_prompt_tokens,
    relevant_by_response_top_k,
    sample_candidates,
    select_latents,
)
from esr_utils.meta_prompts import assemble
from esr_utils.metrics import trial_metrics
from esr_utils.models import LoadedModel
from esr_utils.neuronpedia import sae_labels
from esr_utils.plans import PlannedTrials, judged_plans, judged_trials
from esr_utils.prompts import conversation_text
from esr_utils.residual import (
    boost_unit,
    latent_activation_stats,
    median_residual_norm,
    residual_norms,
)
from esr_utils.results import ResultsStore
from esr_utils.saes import load_labels
from esr_utils.steering import Steering
from esr_utils.threshold_search import boost_prior, search_thresholds, trial_seed

__all__ = ["judged_trials", "choose_latents", "calibrate", "esr_trials", "sweep_levels",
           "sweep_trials", "run_protocol", "plan_replay", "replays", "replay",
           "latent_labels", "unlabelled"]

def choose_latents(model, sae, prompts, settings: ProtocolSettings, *, label_store=None,
                   judge=None, directory: Path | None = None, compute: str = "allow"):
    """Evaluation-pool candidates through relevance and concreteness: (selected, funnel, maxima).

    `maxima` is the prompt-token reading's [n_prompts, d_sae] activation maxima (None for the
    response-top-k reading, which needs `judge`-free unsteered answers stored in `directory`).
    """
    d_sae = sae.cfg.d_sae
    candidates = sample_candidates(d_sae, settings.candidate_multiplier * settings.n_latents,
                                   seed=settings.seed)
    maxima = None
    if settings.relevance.startswith("prompt-tokens"):
        maxima = prompt_token_maxima(model, sae, prompts,
                                     skip_first=settings.relevance.endswith("after-first"))
        relevant = relevant_by_prompt_tokens(candidates, maxima)
    else:
        # answers as long as the run's (not the model's 512-token default)
        answers = generate_trials(model, [Trial(p, seed=settings.seed) for p in prompts],
                                  sampling=_sampling(model, settings.max_new_tokens),
                                  store=ResultsStore(directory / "unsteered_answers"),
                                  batch_size=settings.batch_size, compute=compute)
        texts = [conversation_text(model.tokenizer, r["prompt"], r["response"]) for r in answers]
        _, means = latent_activation_stats(model, sae, texts, model.spec.sae.layer)
        relevant = relevant_by_response_top_k(candidates, means, k=100)
    ratings = rate_concreteness(candidates, settings.concreteness, label_store)
    passing = select_latents(candidates, relevant=relevant, concreteness=ratings)
    selected = select_latents(candidates, relevant=relevant, concreteness=ratings,
                              n=settings.n_latents)
    funnel = {"candidates": len(candidates), "relevant": len(relevant),
              "relevant and concrete": len(passing), "selected": len(selected)}
    return selected, funnel, maxima


def _sampling(model, tokens: int | None, calibration: bool = False) -> Sampling:
    extra = {} if tokens is None else {"max_new_tokens": tokens}
    return Sampling.for_model(model.spec, calibration=calibration, **extra)


def calibrate(model, sae, judge, prompts, latents, label: Callable[[int], str],
              settings: ProtocolSettings, directory: Path, *, compute: str = "allow"):
    """Each latent's threshold: returns (estimates, prior, bounds, counts).

    A sample whose verdict failed or had no attempt is generated again with a new seed (up to
    `max_retries` times), as the paper's code does; `counts` says how many samples the search
    and the verification took, how many were generated again, and how many still had no score
    (those count as 0).
    """
    spec = model.spec
    if spec.threshold_prior is not None:
        prior, bounds = spec.threshold_prior, spec.threshold_bounds
    else:
        scale = median_residual_norm(residual_norms(model, prompts[:8],
                                                    [spec.steering_layer])[spec.steering_layer])
        prior, bounds = boost_prior(boost_unit(scale, sae.W_dec[list(latents)]))
    search_sampling = _sampling(model, settings.calibration_max_new_tokens, calibration=True)
    check_sampling = _sampling(model, settings.max_new_tokens)
    counts = {"samples": 0, "regenerated": 0, "unscored": 0, "verification": 0}

    def score_fn(queries):
        # verification samples (step -1) are answers as long as the ESR run's
        sampling = check_sampling if queries[0].step == -1 else search_sampling
        scores: list[float | None] = [None] * len(queries)
        for attempt in range(settings.max_retries + 1):
            todo = [i for i, s in enumerate(scores) if s is None]
            if not todo:
                break
            trials = []
            for i in todo:
                q = queries[i]
                key = (q.latent_id, q.step, q.sample) + ((attempt,) if attempt else ())
                rng = np.random.default_rng(trial_seed(settings.seed, "prompt", *key))
                trials.append(Trial(prompts[rng.integers(len(prompts))],
                                    Steering(q.latent_id, q.boost),
                                    seed=trial_seed(settings.seed, "calibration", *key)))
            records = judged_trials(model, trials, [label(queries[i].latent_id) for i in todo],
                                    judge=judge, sae=sae, sampling=sampling,
                                    directory=directory / "calibration",
                                    batch_size=settings.batch_size, compute=compute,
                                    progress=False)
            counts["regenerated" if attempt else "verification" if queries[0].step == -1
                   else "samples"] += len(todo)
            for i, r in zip(todo, records):
                m = trial_metrics(r)
                scores[i] = None if m["excluded"] else m["first_score"] / 100
        counts["unscored"] += sum(s is None for s in scores)
        return [0.0 if s is None else s for s in scores]

    estimates = search_thresholds(latents, score_fn, prior=prior, bounds=bounds,
                                  target=settings.target_score / 100,
                                  n_steps=settings.calibration_steps,
                                  samples_per_step=settings.samples_for(model.spec.name),
                                  verification_samples=settings.verification_samples,
                                  noise=settings.noise)
    return estimates, tuple(prior), tuple(bounds), counts


def esr_trials(prompts, latents, boosts: dict[int, float], settings: ProtocolSettings, *,
               steer: bool = True, salt: str = "esr"):
    """Each latent at its boost on `n_prompts_per_latent` prompts drawn without replacement.

    The seeds depend on (latent, prompt) only, so `steer=False` gives the matched baseline.
    """
    trials = []
    for k in latents:
        rng = np.random.default_rng(trial_seed(settings.seed, "prompts", k))
        n = min(settings.n_prompts_per_latent, len(prompts))
        for i in rng.choice(len(prompts), size=n, replace=False):
            seed = trial_seed(settings.seed, salt, k, int(i))
            trials.append(Trial(prompts[i], Steering(k, boosts[k]) if steer else Steering(),
                                seed=seed))
    return trials


def sweep_trials(prompts, latents, levels, settings: ProtocolSettings):
    """Every latent at every shared level on the same `sweep_prompts_per_latent` prompts."""
    trials = []
    for k in latents:
        rng = np.random.default_rng(trial_seed(settings.seed, "sweep-prompts", k))
        n = min(settings.sweep_prompts_per_latent, len(prompts))
        chosen = rng.choice(len(prompts), size=n, replace=False)
        for level in levels:
            for i in chosen:
                trials.append(Trial(prompts[i], Steering(k, level) if level else Steering(),
                                    seed=trial_seed(settings.seed, "sweep", k, int(i))))
    return trials


def run_protocol(model, sae, judge, prompts, settings: ProtocolSettings, directory: str | Path,
                 *, label: Callable[[int], str], label_store=None, compute: str = "allow",
                 sweep: bool = True, latents: Sequence[int] | None = None) -> EsrRun:
    """Chapter 2 for one model, stored under `directory`, returned as an `EsrRun`.

    `latents` skips the selection and calibrates these instead: comparing models (e.g. the
    fine-tuned mixtures of chapter 6) on the same latents, each at its own thresholds.
    """
    directory = Path(directory)
    if latents is None:
        latents, funnel, _ = choose_latents(model, sae, prompts, settings,
                                            label_store=label_store, directory=directory,
                                            compute=compute)
    else:
        latents, funnel = [int(k) for k in latents], {"given": len(latents)}
    estimates, prior, bounds, counts = calibrate(model, sae, judge, prompts, latents, label,
                                                 settings, directory, compute=compute)
    run = EsrRun(model=model.spec.name, layer=model.spec.steering_layer, judge=judge.name,
                 settings=settings, prompts=list(prompts), latents=latents,
                 labels={k: label(k) for k in latents}, funnel=funnel, prior=prior,
                 bounds=bounds, thresholds=estimates, calibration_counts=counts,
                 directory=directory)
    # the ESR run, its baseline and the sweep share their sampling: one generation call
    common = dict(sampling=_sampling(model, settings.max_new_tokens),
                  batch_size=settings.batch_size)
    boosts = {k: run.threshold(k) for k in latents}
    plans = {}
    for condition, steer in (("steered", True), ("baseline", False)):
        trials = esr_trials(prompts, latents, boosts, settings, steer=steer)
        labels = [run.labels[k] for k in latents for _ in range(len(trials) // len(latents))]
        plans[condition] = PlannedTrials(trials, labels, directory / condition, **common)
    if sweep:
        run.sweep_levels = sweep_levels(boosts.values(), settings.sweep_levels)[0]
        chosen = latents[: settings.sweep_latents or len(latents)]
        trials = sweep_trials(prompts, chosen, run.sweep_levels, settings)
        plans["sweep"] = PlannedTrials(trials, [run.labels[k] for k in chosen
                                                for _ in range(len(trials) // len(chosen))],
                                       directory / "sweep", **common)
    outputs = judged_plans(model, list(plans.values()), judge=judge, sae=sae, compute=compute)
    run.records.update(zip(plans, outputs))
    run.metrics = {c: serialisable_summary(r) for c, r in run.records.items()}
    run.save()
    return run


def plan_replay(run: EsrRun, *, directory: str | Path, condition: str = "steered",
                ablate: Sequence[int] = (), meta_prompt: str | None = None,
                new_seeds: int | None = None,
                assistant_prefix: str | Sequence[str | Sequence[int]] | None = None,
                boost_scale: float = 1.0, steer_tokens: int | None = None,
                sampling: Sampling | None = None) -> PlannedTrials:
    """The stored `condition`'s trials again, changed only as asked, planned (not yet run).

    Args:
        directory: where the replay's trials and verdicts are stored.
        ablate: latents zero-ablated in every trial (on top of the steering).
        meta_prompt: appended to each user prompt as "{prompt} {meta_prompt}"
            (`meta_prompts.assemble`); "[latent label]" in it is replaced by the steered
            latent's label. The judge grades the prompt so assembled.
        new_seeds: a salt for fresh sampling seeds (None keeps the stored seeds).
        assistant_prefix: text each answer is forced to start with, one for all trials or one
            per stored trial (e.g. each steered response's own opening, as text or as its exact
            token ids); None or "": none.
        boost_scale: multiplies every stored boost.
        steer_tokens: steer only while the first `steer_tokens` answer tokens are sampled
            (`Steering.steer_tokens`); None: throughout.
        sampling: defaults to the stored records' own sampling settings.
    """
    stored = run.records.get(condition)
    if not stored:
        raise KeyError(f"the run has no {condition!r} records; it has {sorted(run.records)}")
    if assistant_prefix is None or isinstance(assistant_prefix, str):
        prefixes = [assistant_prefix or ""] * len(stored)
    else:
        prefixes = list(assistant_prefix)
        if len(prefixes) != len(stored):
            raise ValueError(f"{len(prefixes)} assistant prefixes for the {len(stored)} stored "
                             f"{condition!r} trials: give one per trial, or one for all")
    trials, labels = [], []
    for r, prefix in zip(stored, prefixes):
        label = r.get("label", "")
        prompt = assemble(r["prompt"], meta_prompt, label)
        steering = Steering(r["latent_id"], r["boost"] * boost_scale,
                            ablate=tuple(r["ablate"]) + tuple(ablate), steer_tokens=steer_tokens)
        seed = r["seed"] if new_seeds is None else trial_seed(new_seeds, "replay", r["seed"])
        ids = () if isinstance(prefix, str) else tuple(prefix)  # exact token ids, or text
        trials.append(Trial(prompt, steering, seed=seed, assistant_prefix="" if ids else prefix,
                            prefix_tokens=ids))
        labels.append(label)
    return PlannedTrials(trials, labels, directory, sampling or Sampling.from_record(stored[0]),
                         run.settings.batch_size)


def replays(run: EsrRun, changes: Sequence[dict], *, model: LoadedModel, sae, judge,
            compute: str = "allow", progress: bool = True) -> list[list[dict]]:
    """Several replays of the run, the i-th `plan_replay(run, **changes[i])` (each with its own
    `directory`), generated together in fuller batches and judged, each in stored order."""
    return judged_plans(model, [plan_replay(run, **c) for c in changes], judge=judge, sae=sae,
                        compute=compute, progress=progress)


def replay(run: EsrRun, *, model: LoadedModel, sae, judge, directory: str | Path,
           compute: str = "allow", progress: bool = True, **changes) -> list[dict]:
    """The stored trials again, changed only as `changes` ask (`plan_replay`'s arguments),
    generated with `model` (the run's own, or e.g. a fine-tuned organism), judged, in stored
    order."""
    return replays(run, [dict(changes, directory=directory)], model=model, sae=sae,
                   judge=judge, compute=compute, progress=progress)[0]


def latent_labels(spec):
    """(label function, label store) for a model's SAE: the embedded SAE's offline labels, or the
    paper SAEs' Neuronpedia descriptions (`neuronpedia.sae_labels`). A latent without one is
    called "SAE latent <id>" (`unlabelled` lists them); a disk SAE has no store (None)."""
    if spec.sae.source == "embedded":
        store = load_labels()
    elif spec.sae.source in {"gemma_scope", "goodfire"}:
        store = sae_labels(spec)
    else:
        return (lambda k: f"SAE latent {k}"), None
    return store.label, store


def unlabelled(spec, latents) -> list[int]:
    """The latents among `latents` without a description: the judge sees a placeholder."""
    store = latent_labels(spec)[1]
    return [int(k) for k in latents if store is None or not store.is_live(k)]
