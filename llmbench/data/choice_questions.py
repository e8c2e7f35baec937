"""Multiple-choice questions in one shape, whichever public layout they come in.

MMLU (`choices` list, `answer` index), C-Eval (`A`..`D` columns, `answer` letter), CMMLU (`Question`,
`A`..`D`, `Answer`) and ARC (`choices: {text, label}`, `answerKey`) all become a `Question`; a
sample's fields gain `options` (the lettered block) and `answer_letter` for prompt templates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from llmbench.data.base import Sample
from llmbench.errors import DataError

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, ...]
    answer: int  # index into options
    subject: str | None = None

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.options)]

    def rotated(self, shift: int) -> Question:
        """The options moved `shift` places up (option `shift` first), the answer following its text."""
        k = len(self.options)
        options = self.options[shift % k :] + self.options[: shift % k]
        return replace(self, options=options, answer=(self.answer - shift) % k)

    def options_block(self) -> str:
        return "\n".join(f"{letter}. {text}" for letter, text in zip(self.letters, self.options, strict=True))


def as_question(fields: dict[str, Any], where: str) -> Question:
    """The question in `fields`, in any of the layouts above; a record that fits none is a DataError."""
    text = _first(fields, ("question", "Question", "query", "stem"))
    if text is None:
        raise DataError(f"{where}: no 'question' field")
    options = _options(fields, where)
    answer = _answer(fields, options, where)
    subject = _first(fields, ("subject", "Subject", "category"))
    return Question(str(text), options, answer, str(subject) if subject is not None else None)


def question_sample(sample: Sample, where: str) -> Sample:
    """The sample with its question normalised into fields templates can use, and its letter as reference."""
    q = as_question(sample.fields, f"{where}: sample {sample.id}")
    fields = sample.fields | {
        "question": q.text,
        "options": q.options_block(),
        "answer_letter": q.letters[q.answer],
        "answer_text": q.options[q.answer],
        "letters": q.letters,
    }
    metadata = sample.metadata | ({"subject": q.subject} if q.subject is not None else {})
    return replace(sample, fields=fields, reference=q.letters[q.answer], metadata=metadata)


def asked_sample(sample: Sample, q: Question) -> Sample:
    """The sample as asked with `q`'s order of options (a rotation): its block and letter follow."""
    fields = sample.fields | {"options": q.options_block(), "answer_letter": q.letters[q.answer]}
    return replace(sample, fields=fields, reference=q.letters[q.answer])


def _first(fields: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((fields[n] for n in names if fields.get(n) is not None), None)


def _options(fields: dict[str, Any], where: str) -> tuple[str, ...]:
    raw = fields.get("choices", fields.get("options"))
    if isinstance(raw, dict) and isinstance(raw.get("text"), list):  # ARC: {text: [...], label: [...]}
        raw = raw["text"]
    if isinstance(raw, list) and raw:
        options = tuple(str(o) for o in raw)
    else:
        options = tuple(str(fields[c]) for c in LETTERS if fields.get(c) is not None)
    if len(options) < 2:
        raise DataError(f"{where}: fewer than two options (give 'choices' or columns A, B, ...)")
    if len(options) > len(LETTERS):
        raise DataError(f"{where}: more than {len(LETTERS)} options")
    return options


def _answer(fields: dict[str, Any], options: tuple[str, ...], where: str) -> int:
    raw = _first(fields, ("answer", "Answer", "answerKey", "label"))
    labels = fields.get("choices", {}).get("label") if isinstance(fields.get("choices"), dict) else None
    index: int | None = None
    if isinstance(raw, bool) or raw is None:
        index = None
    elif isinstance(raw, int):
        index = raw
    elif isinstance(labels, list) and str(raw) in [str(x) for x in labels]:
        index = [str(x) for x in labels].index(str(raw))
    elif isinstance(raw, str) and len(raw.strip()) == 1 and raw.strip().upper() in LETTERS:
        index = LETTERS.index(raw.strip().upper())
    elif isinstance(raw, str) and raw.strip().isdigit():
        index = int(raw.strip()) - 1  # ARC's few numbered questions label options 1..4
    if index is None or not 0 <= index < len(options):
        raise DataError(f"{where}: answer {raw!r} names none of its {len(options)} options")
    return index
