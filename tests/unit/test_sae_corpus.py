"""The SAE corpus: shipped files only, a fixed held-out split, contexts of the right shape."""

from __future__ import annotations

import gzip
import json

import pytest

from esr_utils.saes.training import corpus
from esr_utils.saes.training.settings import TrainSettings


class _Tok:
    """Whitespace 'tokenizer': one id per word (the length of the word), enough for packing."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [len(w) for w in text.split(" ") if w] or [0]}


def test_corpus_files_ship_with_the_repository_and_their_readme():
    """A fresh clone trains and evaluates from these files alone (no Debian packages)."""
    for name in corpus.CORPUS_FILES:
        path = corpus.CORPUS_DIR / name
        assert path.stat().st_size > 100_000, name
        first = json.loads(gzip.decompress(path.read_bytes()).decode().splitlines()[0])
        assert first
    readme = (corpus.CORPUS_DIR / "README.md").read_text()
    for word in ("WordNet 3.0", "Princeton", "PSF", *corpus.CORPUS_FILES):
        assert word in readme
    total = sum(p.stat().st_size for p in corpus.CORPUS_DIR.iterdir())
    assert total < 15e6


def test_every_source_has_documents_and_a_disjoint_held_out_tenth():
    texts = [{"kind": "prose", "prompt": f"p{i}", "response": f"story {i}"} for i in range(50)]
    for source in corpus.SOURCES:
        docs = corpus.documents(source, texts)
        assert docs, source
        held = [d for d in docs if corpus.is_heldout(d)]
        if source != "chat":  # chat's shipped answers are always held out
            assert 0.05 < len(held) / len(docs) < 0.2, source
        assert [corpus.is_heldout(d) for d in docs] == [corpus.is_heldout(d) for d in docs]
    lion = next(d for d in corpus.documents("definitions") if d.text.startswith("lion, "))
    assert "feline" in lion.text
    assert all(corpus.is_heldout(d) for d in corpus.documents("chat"))


def test_missing_corpus_file_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(corpus, "CORPUS_DIR", tmp_path)
    corpus.read_records.cache_clear()
    try:
        with pytest.raises(FileNotFoundError, match="git checkout"):
            corpus.read_records(corpus.CORPUS_FILES[0])
    finally:
        corpus.read_records.cache_clear()


def test_pack_fills_whole_contexts_up_to_the_budget():
    docs = [corpus.Document(" ".join(["word"] * 7), "definitions") for _ in range(40)]
    contexts = corpus.pack(_Tok(), docs, context_size=16, n_tokens=64, seed=0)
    assert len(contexts) == 4 and all(len(c) == 16 for c in contexts)


def test_prose_and_chat_training_need_the_models_texts():
    settings = TrainSettings(definitions_tokens=32, docstrings_tokens=32, context_size=16)
    with pytest.raises(ValueError, match="model's own texts"):
        corpus.build_corpus(_Tok(), settings, sources=("prose",))
    out = corpus.build_corpus(_Tok(), settings, sources=("definitions", "docstrings"))
    assert all(len(c) == 16 for cs in out.values() for c in cs)
