"""Offline latent labels: what a latent fires on, and what it pushes the model to say.

For every live latent of the embedded SAE the training command stores, in `labels.json`:

* `top`: its top-activating tokens in the training corpus, each with a short context
  (`"…the valley was between two [ranges] of hills"`) and the activation;
* `promoted`: the output tokens its decoder row promotes most (logit lens: `W_dec[j]` through
  the model's final norm and unembedding);
* `frequency`: the fraction of corpus tokens it fires on.

`label` joins the most common top-activating tokens with the promoted ones, e.g.
`"fires on: violin, cello, viola | promotes: violin, orchestra, instrument"`. Chapters use it
wherever the paper uses a Goodfire or Neuronpedia label. It is a description of evidence, not
an interpretation: read the contexts before trusting it.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["LatentLabels", "build_labels", "logit_lens", "load_labels", "PHYSICAL_TOPICS"]

# words that WordNet lists as nouns but this corpus mostly uses otherwise ("can", "don't",
# "the Tao", "the young of"), and chat-template words
_FUNCTION_WORDS = {"can", "will", "may", "might", "must", "shall", "need", "well", "still",
                   "don", "tao", "young"}
_CHAT_TEMPLATE = ("SmolLM", "Hugging", "im_start", "im_end")

# WordNet topic files of things one can see or touch (used by `concrete_ids`)
PHYSICAL_TOPICS = {"animal", "artifact", "body", "food", "location", "object", "plant",
                   "substance", "person"}

_N_TOP = 8  # examples kept per latent
_N_PROMOTED = 8
_CONTEXT_BEFORE = 8
_CONTEXT_AFTER = 2


@torch.no_grad()
def logit_lens(hf, directions: Tensor, k: int = _N_PROMOTED) -> tuple[Tensor, Tensor]:
    """Top-k output token ids and logits promoted by each direction [n, d_model]."""
    normed = hf.model.norm(directions.to(hf.lm_head.weight.dtype))
    logits = hf.lm_head(normed)
    top = logits.topk(k, dim=-1)
    return top.indices, top.values


def _clean(piece: str) -> str:
    return piece.replace("\n", "⏎")


@torch.no_grad()
def _topic(examples: list[dict], topics: dict[str, str]) -> list | None:
    """[word, WordNet topic, count] of the noun most of the top tokens are, if any."""
    found = Counter()
    for ex in examples:
        token = ex["token"].strip().lower()
        # a short piece without a leading space is part of a longer word ("import|ant")
        if not token.isalpha() or len(token) < 3 or (len(token) < 4
                                                     and not ex["token"].startswith(" ")):
            continue
        for word in (token, token[:-1] if token.endswith("s") else None,
                     token[:-2] if token.endswith("es") else None):
            if word and word in topics:
                found[word] += 1
                break
    if not found:
        return None
    word, count = found.most_common(1)[0]
    return [word, topics[word], count] if count >= 2 else None


@torch.no_grad()
def build_labels(sae, hf, tokenizer, data: dict, layer: int, batch_size: int = 4096,
                 k: int = _N_TOP, topics: dict[str, str] | None = None) -> dict:
    """Labels for every latent that fires on the cached corpus `data` (from `collect_activations`).

    `topics` maps nouns to their WordNet topic file (`sae_corpus.noun_topics()`); with it, a
    latent whose top tokens are mostly one such noun gets `topic: [word, lexname, count]`.
    Returns a JSON-ready dict: {"meta": {...}, "latents": {"<id>": {...}}}; dead latents are
    listed in `meta["dead"]` and get no entry.
    """
    acts, index, tokens = data["acts"], data["index"], data["tokens"]
    d_sae = sae.W_dec.shape[0]
    best_val = torch.full((k, d_sae), -1.0)
    best_row = torch.zeros((k, d_sae), dtype=torch.long)
    counts = torch.zeros(d_sae, dtype=torch.long)
    for start in range(0, acts.shape[0], batch_size):
        f = sae.encode(acts[start:start + batch_size].float())
        counts += (f > 0).sum(0)
        kk = min(k, f.shape[0])
        top = f.topk(kk, dim=0)
        vals = torch.cat([best_val, top.values])
        rows = torch.cat([best_row, top.indices + start])
        order = vals.topk(k, dim=0).indices
        best_val = vals.gather(0, order)
        best_row = rows.gather(0, order)
    live = (counts > 0).nonzero().flatten().tolist()
    promoted_ids, _ = logit_lens(hf, sae.W_dec.float())
    pieces = {}

    def piece(tok_id: int) -> str:
        if tok_id not in pieces:
            pieces[tok_id] = _clean(tokenizer.decode([tok_id]))
        return pieces[tok_id]

    latents = {}
    for j in live:
        examples = []
        for slot in range(k):
            value = float(best_val[slot, j])
            if value <= 0:
                break
            ctx, pos = index[best_row[slot, j]].tolist()
            row = tokens[ctx]
            before = [int(t) for t in row[max(0, pos - _CONTEXT_BEFORE):pos] if t >= 0]
            after = [int(t) for t in row[pos + 1:pos + 1 + _CONTEXT_AFTER] if t >= 0]
            examples.append({
                "token": piece(int(row[pos])),
                "context": "".join(piece(t) for t in before) + "[" + piece(int(row[pos])) + "]"
                + "".join(piece(t) for t in after),
                "act": round(value, 2),
            })
        promoted = [piece(int(t)) for t in promoted_ids[j]]
        latents[str(j)] = {
            "frequency": round(float(counts[j]) / acts.shape[0], 6),
            "top": examples,
            "promoted": promoted,
        }
        topic = _topic(examples, topics) if topics else None
        if topic:
            latents[str(j)]["topic"] = topic
    return {
        "meta": {"layer": layer, "d_sae": d_sae, "n_tokens": int(acts.shape[0]),
                 "n_live": len(live), "dead": (counts == 0).nonzero().flatten().tolist(),
                 "method": "top-activating corpus tokens (context: 8 tokens before, 2 after); "
                           "promoted tokens by logit lens of W_dec through final norm + "
                           "unembedding; topic: WordNet topic file of the noun most top "
                           "tokens are (first sense)"},
        "latents": latents,
    }


def _label_text(entry: dict, n: int = 3) -> str:
    tokens = [ex["token"].strip() for ex in entry["top"]]
    common = [t for t, _ in Counter(t for t in tokens if t).most_common(n)]
    promoted = [p.strip() for p in entry["promoted"] if p.strip()][:n]
    return f"fires on: {', '.join(common) or '?'} | promotes: {', '.join(promoted) or '?'}"


@dataclass
class LatentLabels:
    """The label store of one SAE: look latents up by id, or search them by word."""

    meta: dict
    latents: dict

    @property
    def d_sae(self) -> int:
        return int(self.meta["d_sae"])

    def _entry(self, latent_id: int) -> dict | None:
        latent_id = int(latent_id)
        if not 0 <= latent_id < self.d_sae:
            raise IndexError(
                f"latent_id {latent_id} is out of range: this SAE has latents 0..{self.d_sae - 1}"
            )
        return self.latents.get(str(latent_id))

    def is_live(self, latent_id: int) -> bool:
        return self._entry(latent_id) is not None

    def live_ids(self) -> list[int]:
        return sorted(int(k) for k in self.latents)

    def label(self, latent_id: int) -> str:
        """One-line description; "dead latent" for latents that never fired in the corpus."""
        entry = self._entry(latent_id)
        return "dead latent (never fired in the training corpus)" if entry is None \
            else _label_text(entry)

    def __getitem__(self, latent_id: int) -> dict:
        entry = self._entry(latent_id)
        if entry is None:
            raise KeyError(f"latent {latent_id} is dead (never fired in the training corpus)")
        return {"latent_id": int(latent_id), "label": _label_text(entry), **entry}

    def frequency(self, latent_id: int) -> float:
        entry = self._entry(latent_id)
        return 0.0 if entry is None else float(entry["frequency"])

    def search(self, word: str) -> list[int]:
        """Latents whose top tokens or promoted tokens contain `word` (case-insensitive)."""
        word = word.lower()
        hits = []
        for key, entry in self.latents.items():
            tokens = [ex["token"] for ex in entry["top"]] + entry["promoted"]
            if any(word in t.lower() for t in tokens):
                hits.append(int(key))
        return sorted(hits)

    def words(self, latent_id: int) -> list[str]:
        """The words the latent is about: its topic noun, then its distinct alphabetic
        top-activating tokens, lower case. Promoted (logit-lens) tokens are left out: at 60%
        depth of a small model they are mostly word pieces."""
        entry = self[latent_id]
        words = ([entry["topic"][0]] if entry.get("topic") else [])
        words += [ex["token"].strip().lower() for ex in entry["top"]]
        return list(dict.fromkeys(w for w in words if w.isalpha() and len(w) >= 3))

    def concrete_ids(self, min_frequency: float = 1e-4, max_frequency: float = 0.02,
                     min_count: int = 3) -> list[int]:
        """Latents whose top tokens mostly name one physical thing, most convincing first.

        A latent qualifies when at least `min_count` of its top-activating tokens are the same
        WordNet noun (plural or singular) whose first sense is in `PHYSICAL_TOPICS` (an animal,
        artifact, food, plant, place, ...), and it fires neither too rarely nor too often. A
        heuristic stand-in for the paper's LLM concreteness rating.
        """
        scored = []
        for key, entry in self.latents.items():
            topic = entry.get("topic")
            if not (topic and topic[1] in PHYSICAL_TOPICS and topic[2] >= min_count
                    and min_frequency <= entry["frequency"] <= max_frequency):
                continue
            if topic[0] in _FUNCTION_WORDS:
                continue
            contexts = [ex["context"] for ex in entry["top"]]
            if sum(any(m in c for m in _CHAT_TEMPLATE) for c in contexts) * 2 >= len(contexts):
                continue  # fires on the chat template ("Hugging Face"), not on a topic
            scored.append((-topic[2], -entry["frequency"], int(key)))
        return [k for *_, k in sorted(scored)]

    def topic(self, latent_id: int) -> str | None:
        """The WordNet noun the latent's top tokens mostly are, e.g. "violin", if any."""
        entry = self[latent_id]
        return entry["topic"][0] if entry.get("topic") else None

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
        from esr_utils.saes import EMBEDDED_SAE_DIR

        path = EMBEDDED_SAE_DIR
    path = Path(path)
    if path.is_dir():
        found = [p for p in (path / "labels.json.gz", path / "labels.json") if p.exists()]
        if not found:
            raise FileNotFoundError(f"no labels.json(.gz) in {path}: labels ship only with the "
                                    "embedded SAE; build them with esr_utils.labels.build_labels")
        path = found[0]
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    data = json.loads(raw)
    return LatentLabels(meta=data["meta"], latents=data["latents"])
