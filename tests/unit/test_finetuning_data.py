"""Fine-tuning data: prompt and latent disjointness, pairing, restart families, mask boundaries."""

import random

import numpy as np
import pytest

from esr_utils.finetuning.examples import (
    Example,
    first_sentences,
    load_restart_families,
    load_training_prompts,
    mix_examples,
    normal_example,
    restart_sentences,
    self_correction_example,
    split_prompts,
    unrelated_partner,
)
from esr_utils.finetuning.masking import IGNORE, collate, encode_example
from esr_utils.latent_selection import latent_pool
from esr_utils.prompts import chat_text, load_prompts

NEAR_DUPLICATE = 0.65  # MiniLM cosine at or above which two prompts count as the same task


def _norm(s):
    return " ".join(s.lower().replace("?", "").replace(".", "").split())


def test_training_prompts_are_many_unique_and_disjoint_from_evaluation():
    train = load_training_prompts()
    assert len(train) >= 200
    assert len({_norm(p) for p in train}) == len(train)
    assert not {_norm(p) for p in train} & {_norm(p) for p in load_prompts("eval")}


def test_no_training_prompt_is_a_near_duplicate_of_an_evaluation_prompt():
    from esr_utils.judging.offline import load_embedder

    model = load_embedder()
    a = model.encode(load_training_prompts(), normalize_embeddings=True)
    b = model.encode(load_prompts("eval"), normalize_embeddings=True)
    sims = a @ b.T
    assert sims.max() < NEAR_DUPLICATE, (load_training_prompts()[int(sims.max(1).argmax())],
                                         float(sims.max()))


def test_latent_pools_are_disjoint_and_cover_the_sae():
    ev, tr = latent_pool("evaluation", 2304), latent_pool("training", 2304)
    assert not set(ev) & set(tr)
    assert len(ev) + len(tr) == 2304
    assert all(k % 2 == 1 for k in tr)


def test_shipped_dataset_uses_only_training_latents_and_training_prompts():
    from esr_utils.finetuning.building import load_dataset
    from esr_utils.finetuning.examples import ORGANISM_DATA_DIR

    path = ORGANISM_DATA_DIR / "dataset.json"
    if not path.exists():
        pytest.skip("no shipped dataset yet: run `make organism`")
    data, examples = load_dataset(path)
    training = set(latent_pool("training", 2304).tolist())
    evaluation_prompts = {_norm(p) for p in load_prompts("eval")}
    assert not set(data["train_ids"]) & set(data["val_ids"])
    for e in examples:
        assert e.prompt_id in data["train_ids"]
        assert _norm(e.prompt) not in evaluation_prompts
        if "latent" in e.provenance:
            assert e.provenance["latent"] in training
        if "partner_prompt_id" in e.provenance:
            assert e.provenance["partner_prompt_id"] != e.prompt_id
        if e.kind == "self_correction":
            assert e.provenance["restart_family"] in {f for f, _ in restart_sentences(False)}


def test_unrelated_partner_is_never_the_prompt_itself():
    rng = random.Random(0)
    for i in range(50):
        assert unrelated_partner(i % 5, range(5), rng) != i % 5
    with pytest.raises(ValueError, match="no other prompt"):
        unrelated_partner(3, [3], rng)


def test_restart_families_split_into_train_and_held_out_without_shared_sentences():
    fams = load_restart_families()
    held = {n for n, f in fams.items() if f["held_out"]}
    assert held and set(fams) - held
    train = {s for _, s in restart_sentences(False)}
    test = {s for _, s in restart_sentences(True)}
    assert train and test and not train & test


def test_first_sentences_cuts_at_a_sentence_boundary():
    text = "Cats purr very loudly. Dogs bark at night! Birds sing. Fish swim"
    assert first_sentences(text, 1) == "Cats purr very loudly."
    assert first_sentences(text, 2) == "Cats purr very loudly. Dogs bark at night!"
    assert first_sentences("Too short.", 1) == ""
    assert first_sentences(text, 9) == ""


def test_split_prompts_is_a_reproducible_partition():
    tr, va = split_prompts(100, 0.2, seed=3)
    assert sorted(tr + va) == list(range(100)) and len(va) == 20
    assert split_prompts(100, 0.2, seed=3) == (tr, va)


def test_mix_examples_has_the_exact_fraction_and_refuses_to_shrink():
    sc = [self_correction_example(i, "How?", "Off topic text.", "Wait.", "Answer.", {})
          for i in range(10)]
    nm = [normal_example(i, "How?", "Answer.", {}) for i in range(10)]
    mix = mix_examples(sc, nm, 0.3, 10, seed=0)
    assert sum(e.kind == "self_correction" for e in mix) == 3 and len(mix) == 10
    with pytest.raises(ValueError, match="build more data"):
        mix_examples(sc, nm, 0.9, 20, seed=0)


def test_normal_example_cannot_carry_a_prefix():
    with pytest.raises(ValueError, match="no off-topic prefix"):
        Example("normal", 0, "How?", "drift", "answer")


# -- mask boundaries, on the real tokenizer ------------------------------------------------------
@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from esr_utils.models import embedded_dense_dir

    return AutoTokenizer.from_pretrained(str(embedded_dense_dir()))


def test_self_correction_mask_trains_exactly_restart_recovery_and_end(tokenizer):
    ex = self_correction_example(0, "Explain how to boil an egg.", "Volcanoes erupt lava.",
                                 "Wait, that's not what you asked about.", "Put the egg in water.",
                                 {})
    enc = encode_example(tokenizer, ex, max_len=512)
    trained = [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]
    masked = [t for t, lab in zip(enc.input_ids, enc.labels) if lab == IGNORE]
    assert tokenizer.decode(trained) == ("Wait, that's not what you asked about. "
                                         "Put the egg in water." + tokenizer.eos_token)
    assert tokenizer.decode(masked) == chat_text(tokenizer, ex.prompt) + "Volcanoes erupt lava. "
    # the trained span is one contiguous block at the end
    first = enc.labels.index(next(lab for lab in enc.labels if lab != IGNORE))
    assert all(lab == IGNORE for lab in enc.labels[:first])
    assert all(lab != IGNORE for lab in enc.labels[first:])


def test_normal_mask_trains_the_whole_answer_and_nothing_of_the_prompt(tokenizer):
    ex = normal_example(1, "How do you fly a kite?", "Run into the wind.", {})
    enc = encode_example(tokenizer, ex, max_len=512)
    head = tokenizer(chat_text(tokenizer, ex.prompt), add_special_tokens=False)["input_ids"]
    assert enc.labels[:len(head)] == [IGNORE] * len(head)
    assert enc.labels[len(head):] == enc.input_ids[len(head):]
    assert tokenizer.decode(enc.input_ids[len(head):]) == "Run into the wind." + tokenizer.eos_token


def test_truncation_keeps_the_start_and_refuses_examples_with_nothing_trained(tokenizer):
    ex = self_correction_example(0, "Explain how to boil an egg.", "Lava " * 200, "Wait.",
                                 "Boil it.", {})
    with pytest.raises(ValueError, match="no trained token"):
        encode_example(tokenizer, ex, max_len=64)


def test_collate_pads_with_ignored_labels(tokenizer):
    a = encode_example(tokenizer, normal_example(0, "How?", "Yes.", {}), 64)
    b = encode_example(tokenizer, normal_example(1, "How do you fly a kite?", "Run fast now.", {}),
                       64)
    batch = collate([a, b], pad_id=0)
    n = len(a.input_ids)
    assert batch["labels"][0, n:].eq(IGNORE).all() and batch["attention_mask"][0, n:].eq(0).all()
    assert batch["labels"][1].ne(IGNORE).sum() == b.n_trained
    assert np.array_equal(batch["input_ids"][1].numpy(), np.array(b.input_ids))
