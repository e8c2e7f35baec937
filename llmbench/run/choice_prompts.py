"""A multiple-choice question as text: few-shot examples from a dev split, then the question.

The same context serves every backend: log-likelihood backends score each option's continuation
after it; the generative variant sends it as the prompt (or the user turn) and reads a letter back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmbench.config.suite import ChoiceSpec, TaskSpec
from llmbench.data.base import DataContext, Sample
from llmbench.data.choice_questions import Question, as_question, question_sample
from llmbench.data.readers import load_samples
from llmbench.prompts import render


@dataclass(frozen=True)
class Asking:
    """One asking of a question (one rotation of its options) and the context it is asked in."""

    question: Question
    context: str  # few-shot examples and the question, without the system text
    system: str | None

    @property
    def full_context(self) -> str:
        return f"{self.system}\n\n{self.context}" if self.system else self.context


def continuations(spec: ChoiceSpec, question: Question) -> list[str]:
    """What follows the context for each option: its letter or its text, after the separator."""
    labels = question.letters if spec.continuation == "letter" else question.options
    return [f"{spec.answer_separator}{label}" for label in labels]


def few_shot_pool(spec: TaskSpec, ctx: DataContext, where: str) -> list[Sample]:
    choices = spec.choices
    if choices is None or not choices.few_shot or choices.few_shot_from is None:
        return []
    return [question_sample(s, f"{where} (few-shot)") for s in load_samples(choices.few_shot_from, ctx)]


def askings(spec: TaskSpec, sample: Sample, pool: list[Sample], where: str) -> list[Asking]:
    """The contexts a sample is asked in: one, or one per rotation with circular evaluation."""
    choices = spec.choices
    assert choices is not None
    question = as_question(sample.fields, f"{where}: sample {sample.id}")
    shots = _shots(choices, sample, pool)
    system = render(spec.prompt.system, sample.fields, where=where) if spec.prompt.system else None
    shifts = range(len(question.options)) if choices.circular else range(1)
    out = []
    for shift in shifts:
        q = question.rotated(shift)
        parts = [_render(spec, s, as_question(s.fields, where), where, answered=True) for s in shots]
        parts.append(_render(spec, sample, q, where, answered=False))
        out.append(Asking(q, "\n\n".join(parts), system))
    return out


def _shots(choices: ChoiceSpec, sample: Sample, pool: list[Sample]) -> list[Sample]:
    """The first `few_shot` dev examples of the sample's subject, then of any subject (never itself)."""
    subject = sample.metadata.get("subject")
    others = [s for s in pool if s.id != sample.id or s.fields != sample.fields]
    same = [s for s in others if s.metadata.get("subject") == subject]
    rest = [s for s in others if s.metadata.get("subject") != subject]
    return (same + rest)[: choices.few_shot]


def _render(spec: TaskSpec, sample: Sample, q: Question, where: str, *, answered: bool) -> str:
    choices = spec.choices
    assert choices is not None
    fields: dict[str, Any] = sample.fields | {"question": q.text, "options": q.options_block()}
    text = render(spec.prompt.template, fields, where=where)
    if answered:
        text += continuations(choices, q)[q.answer]
    return text


def generative_prompt(spec: TaskSpec, asking: Asking) -> dict[str, Any]:
    """The generation request's prompt for the generative variant: chat turns or plain text.

    Options scored by their text are not listed in the context; to answer with a letter the model
    must see them, so they follow it.
    """
    context = asking.context
    if spec.choices is not None and spec.choices.continuation == "text":
        context += f"\n\n{asking.question.options_block()}\nAnswer with the letter of the correct option."
    if spec.prompt.mode == "completion":
        return {"prompt": f"{asking.system}\n\n{context}" if asking.system else context}
    messages = [{"role": "system", "content": asking.system}] if asking.system else []
    return {"messages": (*messages, {"role": "user", "content": context})}


def with_question_fields(samples: list[Sample], where: str) -> list[Sample]:
    return [question_sample(s, where) for s in samples]
