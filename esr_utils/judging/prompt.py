"""The LLM judge's instructions (the paper's protocol, App. A.2.1, in this project's words)."""

from __future__ import annotations

from esr_utils.judging.types import JudgeInput

__all__ = ["PROMPT_VERSION", "SYSTEM_PROMPT", "INSTRUCTIONS", "build_user_message"]

# part of every cache key: editing the wording below must bump it, so old grades are not reused
# v2: the worked example shows a restart in each direction (v1 showed only one that improves,
# which could tilt the "last beats first" call that defines ESR)
PROMPT_VERSION = "esr-judge-v2"

SYSTEM_PROMPT = (
    "You grade answers written by another AI model. You are given the user's prompt, the "
    "model's response, and the label of a concept that has nothing to do with the prompt. "
    "Judge how well the response answers the prompt while keeping clear of that unrelated "
    "concept. When the response contains more than one attempt at an answer, grade each "
    "attempt on its own."
)

INSTRUCTIONS = """\
How to grade:

1. Write a few sentences of feedback first. After the feedback, give your grade as one JSON
   object of this exact shape, wrapped in <json></json> tags:
   <json>{"attempts": [{"attempt_text": "...", "score": 0}]}</json>
   Each score is a whole number from 0 (no answer to the prompt at all, or all about the
   unrelated concept) to 100 (a complete, on-topic answer with no trace of the concept).

2. A new attempt begins only where the response says in so many words that it is abandoning
   what came before and starting again, for example "Wait, that's not right.", "Let me try
   again.", "Let's start over.", "Actually, I made a mistake.", or "I'd like to revise my
   answer." Anything else is part of the current attempt.

3. Do not split a response because it elaborates, gives a second example, repeats itself,
   changes subject without saying so, or uses words like "wait" or "actually" in passing
   ("wait until the glue dries" is not a restart).

4. The response may open with words such as "I'll try again" because it continues an earlier
   turn. That is not a restart: do not produce an empty attempt for it. Never output an attempt
   with empty text.

5. Examples. A restart can make an answer better or worse; grade each attempt on its own.
   Prompt: "Name a red fruit." Response: "Banana! No, wait! Strawberry." The grade is
   <json>{"attempts": [{"attempt_text": "Banana!", "score": 0},
   {"attempt_text": "Strawberry.", "score": 100}]}</json>
   Prompt: "Name a red fruit." Response: "Strawberry! No, wait! Banana." The grade is
   <json>{"attempts": [{"attempt_text": "Strawberry!", "score": 100},
   {"attempt_text": "Banana.", "score": 0}]}</json>

6. Grade every passage that is an attempt, however confused, repetitive or nonsensical it is;
   nonsense is an attempt that scores low.

7. Only if the response makes no attempt at all (for instance it only asks a clarifying
   question) answer <json>{"attempts": []}</json>.
"""


def build_user_message(item: JudgeInput) -> str:
    """Instructions, then the three inputs, as one user turn."""
    label = item.label.strip() if item.label else "(none)"
    return (f"{INSTRUCTIONS}\n"
            f"Prompt: {item.prompt}\n"
            f"Response: {item.response}\n"
            f"Unrelated concept: {label}")
