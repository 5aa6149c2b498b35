"""The offline training text for the embedded SAE: WordNet glosses, fortunes, and chat answers.

Everything here is read from Debian packages (`wordnet-base`, `fortunes`), so the corpus is
the same on every machine with those packages; nothing is downloaded. The model's own chat
answers (the third part of the corpus) are generated from the topic prompts that
`chat_prompts` builds out of WordNet nouns. `settings` arguments are
`esr_utils.sae_training.TrainSettings`.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from esr_utils.sae_training import TrainSettings

__all__ = [
    "WORDNET_DIR",
    "FORTUNES_DIR",
    "FORTUNE_FILES",
    "CONCRETE_LEXNAMES",
    "Document",
    "wordnet_documents",
    "fortune_documents",
    "chat_prompts",
    "noun_topics",
    "generate_chat_answers",
    "chat_contexts",
    "build_corpus",
    "heldout_contexts",
    "require_corpus_packages",
]

WORDNET_DIR = Path("/usr/share/wordnet")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# topical, mostly prose files; the files of jokes about groups of people are left out
FORTUNE_FILES = (
    "art", "computers", "cookie", "definitions", "education", "food", "fortunes", "goedel",
    "humorists", "kids", "law", "literature", "love", "magic", "medicine", "miscellaneous",
    "news", "people", "pets", "platitudes", "politics", "riddles", "science", "songs-poems",
    "sports", "wisdom", "work",
)
# WordNet lexicographer files of nouns that name things one can point at (lexnames(5WN))
CONCRETE_LEXNAMES = {
    5: "animal", 6: "artifact", 8: "body", 13: "food", 15: "location", 17: "object",
    20: "plant", 21: "possession", 27: "substance", 10: "communication", 4: "act",
    14: "group", 18: "person", 11: "event", 9: "cognition",
}
_POS_FILES = {"noun": "data.noun", "verb": "data.verb", "adj": "data.adj", "adv": "data.adv"}


@dataclass(frozen=True)
class Document:
    """One training text and where it came from."""

    text: str
    source: str  # "wordnet", "fortunes" or "chat"


def require_corpus_packages() -> None:
    """Fail with the install command when the Debian corpus packages are missing."""
    missing = [pkg for pkg, path in (("wordnet-base", WORDNET_DIR / "data.noun"),
                                     ("fortunes", FORTUNES_DIR / "fortunes"))
               if not path.exists()]
    if missing:
        raise FileNotFoundError(
            f"the SAE training corpus needs the Debian package(s) {', '.join(missing)}: "
            f"run `sudo apt-get install {' '.join(missing)}`"
        )


def _wordnet_entries(pos: str):
    """(lexname id, lemmas, gloss) for every synset in one WordNet data file."""
    for line in (WORDNET_DIR / _POS_FILES[pos]).read_text(encoding="latin-1").splitlines():
        if line.startswith("  ") or "|" not in line:
            continue  # licence header
        fields, gloss = line.split("|", 1)
        parts = fields.split()
        lex_id = int(parts[1])
        n_words = int(parts[3], 16)
        lemmas = [parts[4 + 2 * i].replace("_", " ") for i in range(n_words)]
        lemmas = [re.sub(r"\([a-z]+\)$", "", w) for w in lemmas]
        yield lex_id, lemmas, gloss.strip()


def wordnet_documents() -> list[Document]:
    """One short encyclopedic line per WordNet synset: lemma, synonyms, gloss, examples.

    "lion, king of beasts, Panthera leo: large gregarious predatory feline of Africa and India;
    ..." Every synset of every part of speech is used, so topics are as broad as WordNet.
    """
    docs = []
    for pos in _POS_FILES:
        for _, lemmas, gloss in _wordnet_entries(pos):
            # glosses hold "definition; \"example\"; \"example\"": keep them as prose
            text = gloss.replace('"', "").replace(" ; ", "; ")
            head = ", ".join(lemmas[:3])
            docs.append(Document(f"{head}: {text}", "wordnet"))
    return docs


def fortune_documents() -> list[Document]:
    """One document per fortune in `FORTUNE_FILES` (quotations, jokes, verse, definitions)."""
    docs = []
    for name in FORTUNE_FILES:
        raw = (FORTUNES_DIR / name).read_text(encoding="utf-8", errors="replace")
        for chunk in raw.split("\n%\n"):
            text = re.sub(r"[ \t]+", " ", chunk.strip().replace("\t", " "))
            if 40 <= len(text) <= 2000:
                docs.append(Document(text, "fortunes"))
    return docs


_TEMPLATES = (
    "Tell me about {}.",
    "What is {}? Explain briefly.",
    "Describe {} in a few sentences.",
    "Write a short paragraph about {}.",
    "What should I know about {}?",
    "Give me three facts about {}.",
)


def chat_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` user prompts about WordNet nouns from concrete topic files, e.g. "Tell me about cello."

    Noun lemmas are drawn uniformly from `CONCRETE_LEXNAMES`'s files, so the chat answers cover
    animals, artifacts, food, places, plants, people and events rather than one domain.
    """
    rng = random.Random(seed)
    by_lex: dict[int, list[str]] = {}
    for lex_id, lemmas, _ in _wordnet_entries("noun"):
        if lex_id in CONCRETE_LEXNAMES and lemmas[0].isascii() and lemmas[0].islower():
            by_lex.setdefault(lex_id, []).append(lemmas[0])
    lex_ids = sorted(by_lex)
    prompts = []
    for i in range(n):
        words = by_lex[lex_ids[i % len(lex_ids)]]
        prompts.append(rng.choice(_TEMPLATES).format(rng.choice(words)))
    rng.shuffle(prompts)
    return prompts


def noun_topics() -> dict[str, str]:
    """WordNet's topic file (lexname, e.g. "animal", "artifact") of each noun's first sense.

    Only nouns whose most frequent sense lies in `CONCRETE_LEXNAMES` are returned; labels use
    this to mark latents whose top tokens name a concrete thing.
    """
    lex_of = {}
    for line in (WORDNET_DIR / "data.noun").read_text(encoding="latin-1").splitlines():
        if not line.startswith("  "):
            parts = line.split(" ", 2)
            lex_of[parts[0]] = int(parts[1])
    senses = {pos: _sense_counts(pos) for pos in ("verb", "adj", "adv")}
    topics = {}
    for line in (WORDNET_DIR / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        parts = line.split()
        word, n_senses, n_ptr = parts[0], int(parts[2]), int(parts[3])
        lex = lex_of.get(parts[4 + n_ptr + 2])  # the first (most frequent) sense
        # skip words that are mainly something else ("have", "small", "tell") and chat roles
        mainly_other = (senses["adj"].get(word, 0) >= n_senses
                        or senses["adv"].get(word, 0) >= n_senses
                        or senses["verb"].get(word, 0) > 3 * n_senses)
        if (lex in CONCRETE_LEXNAMES and word.isalpha() and len(word) >= 3
                and not mainly_other and word not in _CHAT_ROLES):
            topics[word] = CONCRETE_LEXNAMES[lex]
    return topics


_CHAT_ROLES = {"assistant", "user", "system"}


def _sense_counts(pos: str) -> dict[str, int]:
    counts = {}
    for line in (WORDNET_DIR / f"index.{pos}").read_text(encoding="latin-1").splitlines():
        if not line.startswith("  "):
            parts = line.split()
            counts[parts[0]] = int(parts[2])
    return counts


def _pack(tokenizer, docs: Sequence[Document], context_size: int, n_tokens: int,
          rng: random.Random, skip: int = 0) -> tuple[list[list[int]], int]:
    """Shuffle documents and pack them, separated by blank lines, into full contexts.

    Returns the contexts and how many shuffled documents they used; `skip` starts after that
    many documents of the same shuffle (how held-out text is drawn).
    """
    order = list(range(len(docs)))
    rng.shuffle(order)
    sep = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    contexts, current, used = [], [], skip
    for i in order[skip:]:
        current += tokenizer(docs[i].text, add_special_tokens=False)["input_ids"] + sep
        used += 1
        while len(current) >= context_size:
            contexts.append(current[:context_size])
            current = current[context_size:]
        if len(contexts) * context_size >= n_tokens:
            break
    return contexts, used


def generate_chat_answers(n: int, max_new_tokens: int, seed: int, batch_size: int = 32,
                          progress: bool = True) -> list[dict]:
    """The embedded model's own answers to `n` WordNet-topic prompts (seeded sampling)."""
    from esr_utils.generation import Sampling, Trial, generate_trials
    from esr_utils.models import load_model

    model = load_model("smollm2-135m-instruct", device="cpu")
    trials = [Trial(prompt=p, seed=seed * 100_003 + i)
              for i, p in enumerate(chat_prompts(n, seed=seed))]
    sampling = Sampling.for_model(model.spec, max_new_tokens=max_new_tokens)
    return generate_trials(model, trials, sampling=sampling, batch_size=batch_size,
                           progress=progress)


def chat_contexts(tokenizer, answers: Sequence[dict], context_size: int) -> list[list[int]]:
    """Each answer as its own chat-formatted context (template, prompt, answer, end of turn)."""
    from esr_utils.prompts import chat_text

    out = []
    for record in answers:
        text = chat_text(tokenizer, record["prompt"]) + record["response"] + "<|im_end|>\n"
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:context_size]
        out.append(ids)
    return out


def _text_sources(settings: TrainSettings):
    n_fortune = int(settings.n_text_tokens * settings.fortune_share)
    return (("wordnet", wordnet_documents, settings.n_text_tokens - n_fortune),
            ("fortunes", fortune_documents, n_fortune))


def build_corpus(tokenizer, settings: TrainSettings, answers: Sequence[dict] = ()) -> dict:
    """Token contexts per source: {"wordnet": [...], "fortunes": [...], "chat": [...]}."""
    require_corpus_packages()
    rng = random.Random(settings.seed)
    corpus = {}
    for name, read, n_tokens in _text_sources(settings):
        corpus[name], _ = _pack(tokenizer, read(), settings.context_size, n_tokens, rng)
    corpus["chat"] = chat_contexts(tokenizer, answers, settings.context_size)
    return corpus


def heldout_contexts(tokenizer, settings: TrainSettings, n_contexts: int) -> dict:
    """Contexts of WordNet and fortune text the SAE never saw: the documents that come after
    the training ones in the same seeded shuffle, split between sources like the corpus."""
    require_corpus_packages()
    rng = random.Random(settings.seed)
    out = {}
    for name, read, n_tokens in _text_sources(settings):
        docs = read()
        state = rng.getstate()
        _, used = _pack(tokenizer, docs, settings.context_size, n_tokens, rng)
        rng.setstate(state)  # replay the same shuffle, then skip the used documents
        share = n_tokens / settings.n_text_tokens
        want = max(1, round(n_contexts * share))
        out[name], _ = _pack(tokenizer, docs, settings.context_size,
                             want * settings.context_size, rng, skip=used)
    return out
