"""Sentences, restart patterns, and grouping sentences into attempts.

The offline judge decides which sentences are restarts with a learned detector
(`restart_detector`); the patterns here are one of its features, and the whole decision only
for the strict variant (`split_attempts`). Either way, restart sentences start a new attempt
and are dropped from it, and empty attempts are dropped, so a response that opens with
"Let me try again." is one attempt (as the paper's judge is told, App. A.2.1).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["RESTART_PATTERNS", "PAPER_EXAMPLE_PATTERNS", "RESTART_EXAMPLES", "split_sentences",
           "is_restart", "split_attempts", "group_attempts", "KEEP_WORDS", "PatternRestarts"]

# a restart sentence longer than this carries content ("Wait, no: to change a tire you first
# remove the wheel.") and stays as the first sentence of the attempt it opens
KEEP_WORDS = 12

_I = r"(?:i|i've|i'd|i'm|i am|i have)"
# Each pattern is searched inside one sentence (case-insensitive). Patterns that would also
# fire on ordinary instructions ("wait until it dries", "if you make a mistake, start over")
# are tied to the start of the sentence or to the first person.
RESTART_PATTERNS: tuple[str, ...] = (
    # "Wait!", "No, wait.", "Oh wait" standing alone
    r"^(?:no|oh|oops|hmm+|um+|ah)?[\s,.!-]*wait[\s.!,]*$",
    # "Wait, that's not right", "Wait, I made a mistake", "Wait, let me ..."
    r"^(?:no[,\s]+|oh[,\s]+|hmm+[,\s]+)?wait\s*[,.!—–-]+\s*(?:no\b|that|this|i\b|i'|let|sorry|"
    r"actually|scratch|hold on|hmm|oops|wrong|never ?mind)",
    # "Hold on, ..." / "Hang on, ..." at the start of a sentence
    r"^(?:hold|hang) on\b",
    # "That's not right", "This is wrong", "That was incorrect"
    r"^(?:no[,\s]+|oops[,\s]+|hmm+[,\s]+|sorry[,\s]+)?(?:that|this)(?:'s| is| was) "
    r"(?:not (?:right|correct|what (?:you|the question))|wrong|incorrect|off[- ]topic|"
    r"not relevant|irrelevant|unrelated)",
    # "I made a mistake", "I've made an error", "My mistake", "I was wrong"
    rf"\b{_I} (?:just )?(?:made|make) (?:a|an|some) (?:mistake|error)",
    r"^(?:oops|sorry|apologies)?[\s,!.]*my (?:mistake|bad|apologies)\b",
    rf"\b{_I} (?:was|got (?:that|it)) wrong\b",
    # "Let me try again", "Let's start over", "Let me start from scratch", "Let me try that again"
    # the phrase must close its clause: "let's try it again with 3/4" is a worked example
    r"\blet(?:'s| me| us) (?:try|start|begin|do) (?:(?:this|that|it) )?(?:again|over|afresh|anew)"
    r"(?=\s*(?:[.!:;,—–-]|$))",
    r"^(?:ok(?:ay)?[,\s]+|so[,\s]+|alright[,\s]+)?(?:i'll |i will |i'm going to |time to )?"
    r"(?:start|begin)(?:ing)? (?:over|again|from scratch)\b",
    r"\blet(?:'s| me| us) (?:start|begin) from (?:scratch|the beginning)",
    # "I'd like to revise my answer", "Let me correct myself", "Let me rethink that"
    rf"\b(?:{_I}|let me) (?:(?:would )?like to |need to |should )?(?:revise|redo|correct|rethink|"
    r"reconsider) (?:my|that|this|myself)\b",
    r"^(?:actually|oops|sorry)[\s,.!]+(?:scratch|ignore|disregard|forget) (?:that|this|the above|"
    r"what i)",
    r"^(?:scratch|ignore|disregard|forget) (?:that|this|the above|all that|everything above)\b",
    # "I got off topic", "I'm getting sidetracked", "I went off on a tangent"
    rf"\b{_I} (?:got|am getting|'m getting|went|have gone|'ve gone|drifted|strayed|got "
    r"carried) (?:a bit |completely |way )?(?:off[- ]topic|sidetracked|distracted|off track|"
    r"off on a tangent|away from)",
    # "Back to the question", "Let's get back on track", "Getting back to your question"
    r"^(?:anyway[,\s]+|ok(?:ay)?[,\s]+|so[,\s]+)?(?:let(?:'s| me| us) )?(?:get(?:ting)? )?back "
    r"(?:to|on) (?:the |your |my )?(?:question|topic|track|prompt|point)",
    # "Sorry, I misunderstood", "Oops, wrong topic"
    rf"^(?:oops|sorry|apologies)[\s,!.]+(?:{_I} (?:misunderstood|misread|misspoke)|wrong "
    r"(?:topic|answer|question))",
)
_COMPILED = tuple(re.compile(p, re.IGNORECASE) for p in RESTART_PATTERNS)

# A sentence ends at . ! ? (plus closing quotes, brackets, emphasis) followed by space, or at a
# newline; a colon or semicolon followed by space also ends one, because a restart often follows
# a passage cut off at "Here are the steps:"
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]*_]*\s+|(?<=[:;])\s+|\n+")
_LEAD = re.compile(r"^[\s\"'*_#>\-–—•\d.)]*")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences in `text`, whitespace excluded."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        if match.start() > start:
            spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def is_restart(sentence: str, patterns: Sequence[re.Pattern] | None = None) -> bool:
    """Whether one sentence is explicit restart language."""
    # list markers and markdown emphasis are not words: "**Wait, that's wrong.**"
    core = _LEAD.sub("", sentence.strip()).strip("*_ ")
    core = core.replace("’", "'")
    return any(p.search(core) for p in (_COMPILED if patterns is None else patterns))


def group_attempts(text: str, spans: Sequence[tuple[int, int]],
                   restarts: Sequence[bool]) -> list[list[int]]:
    """Sentence indices of each attempt: a restart sentence closes the current attempt, and is
    kept in the next one only when it has more than `KEEP_WORDS` words. Empty groups vanish."""
    groups: list[list[int]] = [[]]
    for k, ((start, end), restart) in enumerate(zip(spans, restarts, strict=True)):
        if restart:
            if groups[-1]:
                groups.append([])
            if len(re.findall(r"\w+", text[start:end])) > KEEP_WORDS:
                groups[-1].append(k)
        else:
            groups[-1].append(k)
    return [g for g in groups if g]


def split_attempts(text: str, patterns: Sequence[re.Pattern] | None = None,
                   also: Callable[[str], bool] | None = None) -> list[str]:
    """The attempts in `text` by patterns alone, restart sentences removed; [] when nothing but
    restarts is left. `also` is an extra restart test, OR-ed with the patterns."""
    spans = split_sentences(text)
    flags = [is_restart(text[s:e], patterns) or (also is not None and also(text[s:e]))
             for s, e in spans]
    # each attempt keeps the original text from its first to its last sentence
    return [text[spans[g[0]][0]:spans[g[-1]][1]].strip()
            for g in group_attempts(text, spans, flags)]


# Only the five example phrases the paper's judge is shown (App. A.2.1), as exact wordings;
# used by the strict variant of the offline judge in cross-judge demos
PAPER_EXAMPLE_PATTERNS: tuple[str, ...] = (
    r"^wait, that's not right\b",
    r"^let me try again\b",
    r"^let's start over\b",
    r"^actually, i made a mistake\b",
    r"^i'd like to revise my answer\b",
)

# Example restarts for the offline judge's semantic test: the paper's five examples, the "No,
# wait!" of its worked example, and one plain admission of drifting off-topic
RESTART_EXAMPLES: tuple[str, ...] = (
    "Wait, that's not right.",
    "Let me try again.",
    "Let's start over.",
    "Actually, I made a mistake.",
    "I'd like to revise my answer.",
    "No, wait!",
    "Oops, I got off topic.",
)


class PatternRestarts:
    """A restart decision by patterns alone (the strict offline judge's), in the detector's
    interface: `flags(prompt, sentences, embedder)`."""

    def __init__(self, patterns: Sequence[str] | None = None):
        self.patterns = tuple(patterns) if patterns is not None else RESTART_PATTERNS
        self._compiled = tuple(re.compile(p, re.IGNORECASE) for p in self.patterns)

    def flags(self, prompt: str, sentences: Sequence[str], embedder=None) -> list[bool]:
        return [is_restart(s, self._compiled) for s in sentences]
