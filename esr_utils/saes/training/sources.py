"""Writing the SAE corpus files that ship in `esr_utils/data/sae_corpus/` (run rarely, by hand).

The book and its tests only read the shipped files (`corpus.py`); these functions are how those
files were made, so that anyone can rebuild them:

* `export_definitions`: WordNet 3.0 glosses (needs the Debian package `wordnet-base`, read from
  /usr/share/wordnet), one synset per line;
* `export_docstrings`: docstrings of the running Python's standard library (PSF licence);
* `generate_model_texts`: the embedded model's own chat answers and short prose, by seeded
  sampling (`python -m esr_utils.saes.training --regenerate-texts` rewrites them).
"""

from __future__ import annotations

import ast
import gzip
import json
import random
import re
import sysconfig
from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["WORDNET_DIR", "LEXNAMES", "CHAT_TEMPLATES", "PROSE_TEMPLATES", "export_definitions",
           "export_docstrings", "topic_prompts", "generate_model_texts", "write_jsonl_gz"]

WORDNET_DIR = Path("/usr/share/wordnet")
# WordNet's lexicographer file names (lexnames(5WN)), by number
LEXNAMES = ["adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
            "noun.artifact", "noun.attribute", "noun.body", "noun.cognition", "noun.communication",
            "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
            "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
            "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state",
            "noun.substance", "noun.time", "verb.body", "verb.change", "verb.cognition",
            "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
            "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
            "verb.social", "verb.stative", "verb.weather", "adj.ppl"]
_POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")

CHAT_TEMPLATES = ("Tell me about {}.", "What is {}? Explain briefly.",
                  "Give me three facts about {}.",
                  "What should I know about {}?", "How is {} used?", "Why does {} matter?")
PROSE_TEMPLATES = ("Write a short story about {}.", "Write a short poem about {}.",
                   "Describe a scene with {} in it.", "Write a diary entry that mentions {}.")


def write_jsonl_gz(path: Path, records: Sequence[dict]) -> Path:
    """Records as gzipped JSON lines, byte-identical for identical records (mtime 0)."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return path


def export_definitions(out: Path, wordnet_dir: Path = WORDNET_DIR) -> Path:
    """Every WordNet synset as {"pos", "lexname", "lemmas", "gloss"} (gloss with examples)."""
    if not (wordnet_dir / "data.noun").exists():
        raise FileNotFoundError(f"no WordNet database in {wordnet_dir}: run "
                                "`sudo apt-get install wordnet-base` (only needed to rebuild "
                                "definitions.jsonl.gz, which ships with the repository)")
    records = []
    for name in _POS_FILES:
        for line in (wordnet_dir / name).read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # licence header
            fields, gloss = line.split("|", 1)
            parts = fields.split()
            lemmas = [re.sub(r"\([a-z]+\)$", "", parts[4 + 2 * i]).replace("_", " ")
                      for i in range(int(parts[3], 16))]
            records.append({"pos": name[5:], "lexname": LEXNAMES[int(parts[1])],
                            "lemmas": lemmas, "gloss": gloss.strip()})
    return write_jsonl_gz(out, records)


def _docstrings(path: Path):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    nodes = [tree] + [n for n in ast.walk(tree)
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for node in nodes:
        doc = ast.get_docstring(node)
        if doc and 80 <= len(doc) <= 3000:
            yield getattr(node, "name", path.stem), doc


def export_docstrings(out: Path, max_chars: int = 1_500_000, seed: int = 0) -> Path:
    """Docstrings (80–3000 characters) of the standard library, tests and private modules left
    out, shuffled and cut at `max_chars` in all: {"module", "name", "text"}."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    records = []
    for path in sorted(stdlib.rglob("*.py")):
        rel = path.relative_to(stdlib)
        if any(p in {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo"}
               or p.startswith("_") for p in rel.parts):
            continue
        module = ".".join(rel.with_suffix("").parts)
        records += [{"module": module, "name": n, "text": d} for n, d in _docstrings(path)]
    random.Random(seed).shuffle(records)
    kept, total = [], 0
    for r in records:
        total += len(r["text"])
        if total > max_chars:
            break
        kept.append(r)
    return write_jsonl_gz(out, kept)


def topic_prompts(nouns: Sequence[str], templates: Sequence[str], n: int, seed: int) -> list[str]:
    """`n` prompts, each a template filled with a noun, drawn with a seeded generator."""
    rng = random.Random(seed)
    return [rng.choice(templates).format(rng.choice(nouns)) for _ in range(n)]


@torch.no_grad()
def generate_model_texts(hf, tokenizer, prompts: Sequence[str], kind: str, max_new_tokens: int,
                         seed: int, batch_size: int = 32, progress: bool = True) -> list[dict]:
    """The model's own sampled answers to `prompts` (temperature 0.7, top-p 0.9), batched.

    Returns {"kind", "prompt", "response", "seed"}; `seed` seeds each batch's sampling.
    """
    from tqdm.auto import tqdm

    from esr_utils.prompts import chat_text

    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    out = []
    for start in tqdm(range(0, len(prompts), batch_size), disable=not progress, desc=kind):
        chunk = list(prompts[start:start + batch_size])
        enc = tokenizer([chat_text(tokenizer, p) for p in chunk], return_tensors="pt",
                        padding=True, add_special_tokens=False)
        torch.manual_seed(seed * 1_000_003 + start)
        ids = hf.generate(**enc, do_sample=True, temperature=0.7, top_p=0.9,
                          max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id)
        for prompt, row in zip(chunk, ids[:, enc["input_ids"].shape[1]:]):
            text = tokenizer.decode(row, skip_special_tokens=True).strip()
            out.append({"kind": kind, "prompt": prompt, "response": text, "seed": seed})
    return out
