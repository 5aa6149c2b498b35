"""Offline latent labels of the embedded SAE: a concept phrase per live latent, and its evidence.

`labels.json.gz` (next to the SAE) holds, for every latent that fires on the training corpus:

* `concept`: a short phrase such as "violin and cello", chosen offline (no LLM) as the phrase
  that best predicts where the latent fires in training text
  (`esr_utils.saes.training.label_search`; `train_auc` is that score);
* `concept_lexname`: the WordNet topic file of the phrase's first word ("noun.artifact"), None
  when that word is not a WordNet lemma;
* `auc`: how well the phrase predicts which held-out contexts activate the latent (0.5: no
  better than chance; `esr_utils.saes.training.label_scores`);
* `top`: its top-activating tokens, each with a short context ("…two [ranges] of hills");
* `frequency`: the fraction of corpus tokens it fires on.

`LatentLabels.label(k)` is the concept phrase: what the judge is told to avoid and what the
meta-prompts name, where the paper uses a Goodfire or Neuronpedia label.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from esr_utils.saes.ids import check_latent_ids
from esr_utils.saes.loading import EMBEDDED_SAE_DIR

__all__ = ["LatentLabels", "load_labels", "PHYSICAL_LEXNAMES"]

# WordNet topic files of things one can see or touch (used by `concrete_ids`)
PHYSICAL_LEXNAMES = {"noun.animal", "noun.artifact", "noun.body", "noun.food", "noun.object",
                     "noun.plant", "noun.substance"}
_CHAT_TEMPLATE = ("SmolLM", "Hugging", "im_start", "im_end")


@dataclass
class LatentLabels:
    """The label store of one SAE: look latents up by id, or search them by word."""

    meta: dict
    latents: dict

    @property
    def d_sae(self) -> int:
        return int(self.meta["d_sae"])

    def _entry(self, latent_id: int) -> dict | None:
        (latent_id,) = check_latent_ids([latent_id], self.d_sae)
        return self.latents.get(str(latent_id))

    def is_live(self, latent_id: int) -> bool:
        return self._entry(latent_id) is not None

    def live_ids(self) -> list[int]:
        return sorted(int(k) for k in self.latents)

    def label(self, latent_id: int) -> str:
        """The concept phrase; "dead latent" for latents that never fired in the corpus."""
        entry = self._entry(latent_id)
        return "dead latent (never fired in the training corpus)" if entry is None \
            else entry["concept"]

    def __getitem__(self, latent_id: int) -> dict:
        entry = self._entry(latent_id)
        if entry is None:
            raise KeyError(f"latent {latent_id} is dead (never fired in the training corpus)")
        return {"latent_id": int(latent_id), "label": entry["concept"], **entry}

    def frequency(self, latent_id: int) -> float:
        entry = self._entry(latent_id)
        return 0.0 if entry is None else float(entry["frequency"])

    def search(self, word: str) -> list[int]:
        """Latents whose concept phrase or top tokens contain `word` (case-insensitive)."""
        word = word.lower()
        hits = []
        for key, entry in self.latents.items():
            texts = [entry["concept"]] + [ex["token"] for ex in entry["top"]]
            if any(word in t.lower() for t in texts):
                hits.append(int(key))
        return sorted(hits)

    def words(self, latent_id: int) -> list[str]:
        """The words the latent is about: its concept's words, then its distinct alphabetic
        top-activating tokens, lower case."""
        entry = self[latent_id]
        words = list(entry.get("concept_words", []))
        words += [ex["token"].strip().lower() for ex in entry["top"]]
        return list(dict.fromkeys(w for w in words if w.isalpha() and len(w) >= 3))

    def concrete_ids(self, min_frequency: float = 1e-4, max_frequency: float = 0.02,
                     min_auc: float = 0.75) -> list[int]:
        """Latents whose concept names a physical thing and predicts where they fire, best first.

        A latent qualifies when its concept's first word is a WordNet noun of a physical topic
        file (`PHYSICAL_LEXNAMES`: animals, artifacts, food, plants, ...), its label AUC on
        held-out text is at least `min_auc`, and it fires neither too rarely nor too often. A
        heuristic stand-in for the paper's LLM concreteness rating.
        """
        scored = []
        for key, entry in self.latents.items():
            auc = entry.get("auc")
            if (entry.get("concept_lexname") not in PHYSICAL_LEXNAMES or auc is None
                    or auc < min_auc
                    or not min_frequency <= entry["frequency"] <= max_frequency):
                continue
            contexts = [ex["context"] for ex in entry["top"]]
            if sum(any(m in c for m in _CHAT_TEMPLATE) for c in contexts) * 2 >= len(contexts):
                continue  # fires on the chat template ("Hugging Face"), not on a topic
            scored.append((-auc, int(key)))
        return [k for _, k in sorted(scored)]

    def topic(self, latent_id: int) -> str | None:
        """The first word of the latent's concept phrase, e.g. "violin"."""
        words = self[latent_id].get("concept_words") or []
        return words[0] if words else None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        data = json.dumps({"meta": self.meta, "latents": self.latents}, separators=(",", ":"),
                          ensure_ascii=False).encode()
        if path.suffix == ".gz":
            path.write_bytes(gzip.compress(data, mtime=0))
        else:
            path.write_bytes(data)
        return path


def load_labels(path: str | Path | None = None) -> LatentLabels:
    """Read a label file (`labels.json` or `labels.json.gz`, or the folder holding one).

    Without a path, the embedded SAE's labels.
    """
    if path is None:
        path = EMBEDDED_SAE_DIR
    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "labels.json.gz", path / "labels.json") if p.exists()]
        if not found:
            raise FileNotFoundError(f"no labels.json(.gz) in {path}: labels ship only with the "
                                    "embedded SAE; build them with "
                                    "esr_utils.saes.training.concepts.build_labels")
        path = found[0]
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    return LatentLabels(meta=data["meta"], latents=data["latents"])
