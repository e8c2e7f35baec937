"""Long-context scoring: were the planted values recovered, without guessing by listing many candidates?

Rules (needle and docqa samples alike):
- the reference is one value (a string) or a list of values that must all be recovered;
- a numeric value counts only as a whole number in the output (digit-group commas, apostrophes,
  underscores and thin or no-break spaces are ignored; `12345678` does not contain `1234567`; a plain
  space is not a group separator, so a list `1234567 890` stays two numbers);
- a text value counts when its normalised words appear as a run of words in the normalised output;
- anti-guessing: an output naming more distinct numbers of the values' widths than
  `len(values) + max_extra_numbers` (default 2, so 3 for a single needle) scores wrong, whatever it contains;
- reasoning blocks (`<think>...</think>`, or an unclosed `<think>`) are removed before scoring.
Per sample: `accuracy` (primary) is 1 only if every value is recovered; `recall` is the share recovered.
Statuses: correct, wrong, unparsed (empty answer, or no number at all where the values are numbers).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.errors import DataError
from llmbench.scoring.base import Score, Scorer

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
_DIGIT_SEPARATOR = re.compile(r"(?<=\d)[,'_\u00a0\u202f\u2009](?=\d{3}(?!\d))")
_NUMBER = re.compile(r"\d+")
_NON_WORD = re.compile(r"[^\w]+")


def strip_reasoning(text: str) -> str:
    """The answer part of an output: reasoning blocks removed, an unclosed one dropped to the end."""
    return _THINK.sub(" ", text)


def numbers_in(text: str) -> set[str]:
    """Every whole number in `text`, digit-group separators removed (`1,234,567` -> `1234567`)."""
    return set(_NUMBER.findall(_DIGIT_SEPARATOR.sub("", text)))


def normalise_words(text: str) -> str:
    """Lower case, accents and punctuation removed, single spaces: for matching short text answers."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(_NON_WORD.sub(" ", plain).split())


def reference_values(reference: Any) -> list[str]:
    """The values a sample asks for, as strings: a single value or a list of them."""
    if reference is None:
        raise DataError("the sample has no reference value to look for")
    values = [str(v) for v in reference] if isinstance(reference, (list, tuple)) else [str(reference)]
    if not values or not all(v.strip() for v in values):
        raise DataError(f"the sample's reference holds an empty value: {reference!r}")
    return values


class NeedleScorer(Scorer):
    """Recall of the planted value(s) in the output; accuracy only when all are found and none is guessed."""

    name: ClassVar[str] = "needle"
    primary_metric: ClassVar[str] = "accuracy"

    def __init__(self, *, max_extra_numbers: int = 2, **options: Any) -> None:
        super().__init__(**options)
        if (
            not isinstance(max_extra_numbers, int)
            or isinstance(max_extra_numbers, bool)
            or max_extra_numbers < 0
        ):
            raise TypeError("max_extra_numbers must be a non-negative integer")
        self.max_extra_numbers = max_extra_numbers

    def score(self, sample: Sample, output: str) -> Score:
        values = reference_values(sample.reference)
        answer = strip_reasoning(output)
        if not answer.strip():
            return Score(0.0, "unparsed", {"recall": 0.0}, {"reason": "empty answer"})
        numbers = numbers_in(answer)
        numeric = [_compact_number(v) for v in values if _compact_number(v).isdigit()]
        if numeric and not numbers:
            return Score(0.0, "unparsed", {"recall": 0.0}, {"reason": "no number in the answer"})
        words = f" {normalise_words(answer)} "
        found = [v for v in values if _recovered(v, numbers, words)]
        details: dict[str, Any] = {"found": found, "missing": [v for v in values if v not in found]}
        widths = {len(v) for v in numeric}
        candidates = {n for n in numbers if len(n) in widths}
        allowed = len(values) + self.max_extra_numbers
        if numeric and len(candidates) > allowed:
            reason = f"names {len(candidates)} candidate numbers, more than the {allowed} allowed"
            return Score(0.0, "wrong", {"recall": 0.0}, {**details, "reason": reason})
        recall = len(found) / len(values)
        if len(found) == len(values):
            return Score(1.0, "correct", {"recall": recall}, details)
        return Score(0.0, "wrong", {"recall": recall}, details)

    def reference_output(self, sample: Sample) -> str:
        values = reference_values(sample.reference)
        if len(values) == 1:
            return f"The answer is {values[0]}."
        return f"The answers are {', '.join(values[:-1])} and {values[-1]}."


def _compact_number(value: str) -> str:
    return _DIGIT_SEPARATOR.sub("", value.strip())


def _recovered(value: str, numbers: set[str], words: str) -> bool:
    compact = _compact_number(value)
    if compact.isdigit():
        return compact in numbers
    wanted = normalise_words(value)
    return bool(wanted) and f" {wanted} " in words
