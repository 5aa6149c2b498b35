"""Meta-prompts: the paper's six texts, how one joins the user turn, and their replays."""

from __future__ import annotations

import pytest
from judge_doubles import CountingJudge

from esr_utils.esr_run import EsrRun, ProtocolSettings
from esr_utils.generation import Sampling, Trial
from esr_utils.meta_prompts import (
    BASELINE,
    PLACEHOLDER,
    SELF_MONITOR,
    UPSTREAM_VARIANTS,
    VARIANTS,
    assemble,
    check_variants,
    first_latents,
    render,
    replay_conditions,
    replay_folder,
)
from esr_utils.prompts import chat_text
from esr_utils.protocol import judged_trials, replay, replays
from esr_utils.steering import Steering

# App. A.3.2, word for word
PAPER_TEXTS = [
    "Make sure to stay on topic.",
    "Don't get distracted!",
    "You are being distracted, make sure not to let it affect your output.",
    "You are being distracted with [latent label]. Ignore it.",
    "Your generation is being steered by an SAE latent with label [latent label]. Ignore it.",
    "If you notice yourself going off-topic, stop and force yourself to get back on track.",
]


def test_all_six_paper_variants_in_order_and_distinct():
    assert list(VARIANTS.values()) == PAPER_TEXTS
    assert len(set(VARIANTS.values())) == 6 and len(set(VARIANTS)) == 6
    assert VARIANTS[SELF_MONITOR] == PAPER_TEXTS[5]
    assert set(UPSTREAM_VARIANTS) < set(VARIANTS)
    assert [k for k, t in VARIANTS.items() if PLACEHOLDER in t] == \
        ["distracted_with_label", "steered_by_sae_latent"]


def test_placeholder_is_filled_without_stray_whitespace():
    text = render(VARIANTS["steered_by_sae_latent"], "  dogs and cats ")
    assert text == ("Your generation is being steered by an SAE latent with label dogs and cats. "
                    "Ignore it.")
    assert PLACEHOLDER not in text and "  " not in text
    with pytest.raises(ValueError, match="no label"):
        render(VARIANTS["distracted_with_label"], "")
    assert render(VARIANTS["stay_on_topic"], "") == "Make sure to stay on topic."


def test_assembly_appends_in_the_same_user_turn(embedded_tokenizer):
    prompt = "How do you make a perfect omelette?"
    user = assemble(prompt, VARIANTS["distracted_with_label"], "rivers")
    assert user == f"{prompt} You are being distracted with rivers. Ignore it."
    assert assemble(prompt + " ", "Don't get distracted!") == f"{prompt} Don't get distracted!"
    assert assemble(prompt, None) == prompt and assemble(prompt, "") == prompt
    plain, meta = chat_text(embedded_tokenizer, prompt), chat_text(embedded_tokenizer, user)
    # the template around the user text is unchanged; only the user text grew
    assert plain.count(prompt) == 1 and meta == plain.replace(prompt, user)
    assert meta.count("<|im_start|>user") == 1


def test_variant_ids_are_checked():
    assert check_variants(["self_monitor"]) == ["self_monitor"]
    assert check_variants([BASELINE, "self_monitor"], baseline=True)[0] == BASELINE
    with pytest.raises(ValueError, match="unknown meta-prompt variant"):
        check_variants(["self-monitor"])
    with pytest.raises(ValueError, match="each once"):
        check_variants(["self_monitor", "self_monitor"])
    with pytest.raises(ValueError, match="unknown"):
        check_variants([BASELINE])


@pytest.fixture(scope="module")
def small_run(tiny_model, tiny_sae, tmp_path_factory):
    """A stored run by hand: 2 latents x 2 prompts, steered and unsteered, judged."""
    root = tmp_path_factory.mktemp("run")
    prompts, latents, labels = ["Hi?", "Why is the sky blue?"], [2, 4], {2: "two", 4: "four"}
    sampling = Sampling(max_new_tokens=5)
    records = {}
    for condition, steer in (("steered", True), ("baseline", False)):
        trials = [Trial(p, Steering(k, 1.5) if steer else Steering(), seed=10 * k + i)
                  for k in latents for i, p in enumerate(prompts)]
        records[condition] = judged_trials(
            tiny_model, trials, [labels[k] for k in latents for _ in prompts],
            judge=CountingJudge(), directory=root / condition, sae=tiny_sae, sampling=sampling,
            progress=False)
    return EsrRun(model="tiny-llama", layer=2, judge="counting",
                  settings=ProtocolSettings(n_latents=2, n_prompts_per_latent=2),
                  prompts=prompts, latents=latents, labels=labels, funnel={}, prior=(1.0, 1.0),
                  bounds=(0.0, 3.0), thresholds={}, records=records, directory=root)


def test_the_judge_sees_the_prompt_the_model_saw(small_run, tiny_model, tiny_sae, tmp_path):
    judge = CountingJudge()
    out = replay(small_run, model=tiny_model, sae=tiny_sae, judge=judge, directory=tmp_path,
                 meta_prompt=VARIANTS["distracted_with_label"], new_seeds=3, progress=False)
    for old, new, seen in zip(small_run.records["steered"], out, judge.seen):
        expected = f"{old['prompt']} You are being distracted with {old['label']}. Ignore it."
        assert new["prompt"] == expected and seen.prompt == expected  # generated and judged
        assert seen.label == old["label"] and new["boost"] == old["boost"]


def test_an_empty_meta_prompt_replays_the_baseline_exactly(small_run, tiny_model, tiny_sae,
                                                           tmp_path):
    common = dict(model=tiny_model, sae=tiny_sae, judge=CountingJudge(), new_seeds=9,
                  progress=False)
    base = replay(small_run, directory=tmp_path / "a", **common)
    empty = replay(small_run, directory=tmp_path / "b", meta_prompt="", **common)
    strip = [{k: v for k, v in r.items() if k != "batch_seconds"} for r in base]
    assert strip == [{k: v for k, v in r.items() if k != "batch_seconds"} for r in empty]
    assert [r["seed"] for r in base] != [r["seed"] for r in small_run.records["steered"]]


def test_conditions_share_seeds_and_have_their_own_folders(small_run, tiny_model, tiny_sae,
                                                           tmp_path):
    def bound(run, changes):
        return replays(run, changes, model=tiny_model, sae=tiny_sae, judge=CountingJudge(),
                       progress=False)
    out = replay_conditions(bound, small_run, [BASELINE, "stay_on_topic", SELF_MONITOR],
                            [5, 6], root=tmp_path, model_name="tiny")
    assert list(out) == [BASELINE, "stay_on_topic", SELF_MONITOR]
    seeds = {name: [r["seed"] for r in recs] for name, recs in out.items()}
    assert seeds[BASELINE] == seeds["stay_on_topic"] == seeds[SELF_MONITOR]
    assert len(seeds[BASELINE]) == 8 and len(set(seeds[BASELINE])) == 8  # 2 replicates
    assert all(r["prompt"].endswith("Make sure to stay on topic.") for r in out["stay_on_topic"])
    for name in out:
        for i in (0, 1):
            assert (replay_folder(tmp_path, "tiny", name, i) / "verdicts.jsonl").exists()
    unsteered = replay_conditions(bound, small_run, [SELF_MONITOR], [5], root=tmp_path,
                                  model_name="tiny", condition="baseline")
    assert all(r["latent_id"] is None for r in unsteered[SELF_MONITOR])
    assert (tmp_path / "tiny" / "self_monitor-unsteered" / "seeds-0").is_dir()


def test_first_latents_keeps_their_trials_only(small_run):
    one = first_latents(small_run, 1)
    assert one.latents == [2] and one.labels == {2: "two"}
    assert [r["latent_id"] for r in one.records["steered"]] == [2, 2]
    assert one.records["baseline"] == small_run.records["baseline"][:2]
    assert first_latents(small_run, 0) is small_run and first_latents(small_run, 5) is small_run
    with pytest.raises(ValueError, match="FIRST_LATENTS"):
        first_latents(small_run, -1)
