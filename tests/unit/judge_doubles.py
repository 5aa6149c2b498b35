"""A judge double for the unit tests: scores by response length, remembers what it was shown."""

from __future__ import annotations

from esr_utils.judging import Attempt, Verdict


class CountingJudge:
    """Scores by response length; remembers what it was asked (a judge at its boundary)."""

    name = "counting"

    def __init__(self):
        self.seen = []

    def judge_many(self, items):
        self.seen.extend(items)
        return [Verdict(attempts=(Attempt(i.response, float(len(i.response) % 101)),),
                        judge=self.name) for i in items]
