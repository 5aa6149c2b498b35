"""The embedded model's unsteered answers that calibrate and validate the offline judge."""

from __future__ import annotations

import json
from pathlib import Path

from esr_utils.paths import DATA_DIR

__all__ = ["ANSWERS_PATH", "ANSWER_SEEDS", "ANSWER_MAX_NEW_TOKENS", "MODEL_ANSWERS_PATH",
           "load_answers", "load_model_answers", "generate_answers", "write_answers"]

ANSWERS_PATH = DATA_DIR / "judge_eval_answers.jsonl"
# the fine-tuning chapter's dataset: the embedded model's unsteered answers to the project's
# training prompts (none of the 38), the real text a false restart would be found in
MODEL_ANSWERS_PATH = DATA_DIR / "organism" / "dataset.json"
# two samples per prompt: a few hundred labelled items, and a file small enough to ship
ANSWER_SEEDS = (0, 1)
# short answers keep generation to a few minutes on a laptop CPU
ANSWER_MAX_NEW_TOKENS = 150


def load_answers(path: str | Path = ANSWERS_PATH) -> list[dict]:
    """The shipped answers: one record per (prompt, seed), as written by `generate_answers`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; rebuild it with "
                                "`python -m esr_utils.judging.answers`")
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def load_model_answers(split: str, path: str | Path = MODEL_ANSWERS_PATH) -> list[dict]:
    """The embedded model's own unsteered answers to the fine-tuning dataset's training
    prompts: {"prompt", "response"} records of `split` ("train" or "val", in the split's order;
    the restart detector's negatives) or of every prompt ("all", by prompt id)."""
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    path = Path(path)
    data = json.loads(path.read_text())
    prompts = [line.strip() for line in (path.parent / "prompts_train.txt").read_text()
               .splitlines() if line.strip()]
    ids = sorted(map(int, data["answers"])) if split == "all" else data[f"{split}_ids"]
    return [{"prompt": prompts[i], "response": data["answers"][str(i)]}
            for i in ids if data["answers"].get(str(i), "").strip()]


def generate_answers(path: str | Path = ANSWERS_PATH, *, model=None, seeds=ANSWER_SEEDS,
                     batch_size: int = 19) -> Path:
    """Regenerate the answers file: every eval prompt × `seeds`, no steering.

    Uses the model spec's sampling (temperature 0.6, repetition penalty 1.1) with
    `ANSWER_MAX_NEW_TOKENS`; generation is seeded per trial, so the file is reproducible.
    Finished batches go to a `ResultsStore` in the user cache, so an interrupted run resumes.
    """
    from esr_utils.generation import Sampling, Trial, generate_trials
    from esr_utils.models import load_model
    from esr_utils.paths import cache_dir
    from esr_utils.prompts import load_prompts
    from esr_utils.results import ResultsStore

    model = model or load_model(device="cpu")
    sampling = Sampling.for_model(model.spec, max_new_tokens=ANSWER_MAX_NEW_TOKENS)
    store = ResultsStore(cache_dir() / "judge_eval_answers")
    records = []
    for seed in seeds:  # one seed at a time, so a partial run still covers every prompt
        trials = [Trial(p, seed=seed) for p in load_prompts("eval")]
        records += generate_trials(model, trials, sampling=sampling, batch_size=batch_size,
                                   store=store)
    return write_answers(records, path)


_KEEP = ("trial_id", "model", "prompt", "seed", "temperature", "repetition_penalty",
         "max_new_tokens", "response", "n_new_tokens", "hit_eos")


def write_answers(records, path: str | Path = ANSWERS_PATH) -> Path:
    """Write generation records as the answers file (ordered by seed, then prompt order)."""
    from esr_utils.prompts import load_prompts

    order = {p: i for i, p in enumerate(load_prompts("eval"))}
    records = sorted(records, key=lambda r: (r["seed"], order.get(r["prompt"], len(order))))
    path = Path(path)
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps({k: r[k] for k in _KEEP}, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":
    import sys

    print(generate_answers(seeds=tuple(int(s) for s in sys.argv[1:]) or ANSWER_SEEDS))
