"""Multiple choice: the option the model found most likely, or the letter it answered with.

Scored by log-likelihood, a question is right when its answer's continuation has the highest
log-probability; per-character and per-token normalised picks are reported beside the raw one
(`pick` chooses which is the task's accuracy). With circular evaluation the question is asked in
every rotation of its options and counts as right only if right in all of them.

Scored generatively (backends that cannot return log-probabilities), the answer must be a lone
letter (`B`, `(B)`, `B.`, `Answer: B`, `答案：B`); anything else is `unparsed`, counted apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.data.choice_questions import LETTERS
from llmbench.scoring.base import Score, ScoredOutput, Scorer

PICKS = ("raw", "char", "token")
METRIC_OF_PICK = {"raw": "acc", "char": "acc_norm_char", "token": "acc_norm_token"}
_LETTER = re.compile(
    r"^(?:(?:the\s+)?answer(?:\s+is)?\s*[:：]?|答案\s*(?:是|为)?\s*[:：]?|选项?\s*)?\s*"
    r"[(（]?([A-J])[)）]?\s*[.。:：)]?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Rotation:
    """One asking of a question: each option's summed log-probability, its tokens and characters."""

    answer: int
    logprobs: Sequence[float]
    tokens: Sequence[int]
    chars: Sequence[int]
    labels: Sequence[str]  # what each continuation reads as (letters or option texts)

    def pick(self, how: str) -> int:
        if how == "char":
            values = [lp / max(c, 1) for lp, c in zip(self.logprobs, self.chars, strict=True)]
        elif how == "token":
            values = [lp / max(t, 1) for lp, t in zip(self.logprobs, self.tokens, strict=True)]
        else:
            values = list(self.logprobs)
        return max(range(len(values)), key=lambda i: (values[i], -i))  # ties: the earlier option

    def probability_of_answer(self) -> float:
        """The answer's share of the probability the options hold between them."""
        top = max(self.logprobs)
        weights = [math.exp(lp - top) for lp in self.logprobs]
        return weights[self.answer] / sum(weights)


class ChoiceScorer(Scorer):
    """Accuracy over options (`pick`: raw, char or token normalised); strict letters when generated."""

    name: ClassVar[str] = "choice"

    def __init__(self, pick: str = "raw", **options: Any) -> None:
        super().__init__(**options)
        if pick not in PICKS:
            raise TypeError(f"pick must be one of {', '.join(PICKS)}, not {pick!r}")
        self.pick = pick

    def score(self, sample: Sample, output: str) -> Score:
        letters = str(sample.fields.get("letters") or LETTERS[:4])
        match = _LETTER.match(output.strip())
        got = match.group(1).upper() if match else None
        if got is None or got not in letters:
            return Score(0.0, "unparsed", details={"reason": "no lone option letter", "letters": letters})
        hit = got == sample.reference
        return Score(float(hit), "correct" if hit else "wrong", {"acc": float(hit)}, {"extracted": got})

    def reference_output(self, sample: Sample) -> str:
        return str(sample.reference)

    def aggregate(self, outputs: Sequence[ScoredOutput]) -> dict[str, list[float]]:
        """Per question: right only if every asking of it was right (the generative variant asks each
        rotation of a circular task as its own output); other figures are averaged over the askings."""
        by_question: dict[str, list[ScoredOutput]] = {}
        for o in outputs:
            by_question.setdefault(o.sample_id, []).append(o)
        result: dict[str, list[float]] = {self.primary_metric: []}
        for group in by_question.values():
            result[self.primary_metric].append(float(all(o.score.value == 1.0 for o in group)))
            for name in sorted({k for o in group for k in o.score.metrics}):
                values = [o.score.metrics[name] for o in group if name in o.score.metrics]
                joined = min(values) if name.startswith("acc") else sum(values) / len(values)
                result.setdefault(name, []).append(joined)
        return result

    def score_rotations(self, rotations: Sequence[Rotation]) -> Score:
        """The verdict from each rotation's option log-probabilities (one rotation unless circular)."""
        metrics: dict[str, float] = {}
        picks = {how: [r.pick(how) for r in rotations] for how in PICKS}
        for how in PICKS:
            right = all(p == r.answer for p, r in zip(picks[how], rotations, strict=True))
            metrics[METRIC_OF_PICK[how]] = float(right)
        metrics["prob_correct"] = sum(r.probability_of_answer() for r in rotations) / len(rotations)
        value = metrics[METRIC_OF_PICK[self.pick]]
        first = rotations[0]
        details: dict[str, Any] = {
            "picked": first.labels[picks[self.pick][0]],
            "pick": self.pick,
            "logprobs": [round(lp, 6) for lp in first.logprobs],
            "tokens": list(first.tokens),
        }
        if len(rotations) > 1:
            details["rotations_right"] = sum(
                p == r.answer for p, r in zip(picks[self.pick], rotations, strict=True)
            )
            details["rotations"] = len(rotations)
        return Score(value, "correct" if value == 1.0 else "wrong", metrics, details)
