"""Verifiable instructions in the IFEval style: one small checker per instruction id, judged strict and loose.

Sample fields: `prompt`, `instruction_ids` (list) and `kwargs` (a list of dicts, one per instruction), as in
the public google/IFEval set, whose records load unchanged (keys whose value is null are ignored). The
checkers are ours, in `llmbench.scoring.instruction_checkers` (re-exported here), which states their rules.

Loose judging (as IFEval defines it): an instruction is also followed when some variant of the output follows
it: the output with its first line, its last line or both removed, each with and without markdown asterisks.
Per sample: `prompt_strict` (primary) and `prompt_loose` are 1 when every instruction is followed;
`instruction_strict` and `instruction_loose` are the share followed; the task-level instruction figures are
over all instructions of all samples, as IFEval reports them. An empty output is `unparsed` and follows none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from llmbench.data.base import Sample
from llmbench.errors import DataError
from llmbench.scoring.base import Score, ScoredOutput, Scorer
from llmbench.scoring.instruction_checkers import (
    RELATIONS,
    BulletList,
    CapitalWords,
    Checker,
    ConstrainedResponse,
    EndPhrase,
    EnglishCapital,
    EnglishLowercase,
    ForbiddenWords,
    HighlightedSections,
    JsonFormat,
    KeywordFrequency,
    KeywordsExist,
    LetterFrequency,
    MultipleSections,
    NoComma,
    NthParagraphFirstWord,
    NumberParagraphs,
    NumberSentences,
    NumberWords,
    Placeholders,
    Postscript,
    Quotation,
    RepeatPrompt,
    ResponseLanguage,
    Title,
    TwoResponses,
    build_checker,
    checker,
    checkers,
    count_sentences,
    words,
)

__all__ = [
    "RELATIONS",
    "BulletList",
    "CapitalWords",
    "Checker",
    "ConstrainedResponse",
    "EndPhrase",
    "EnglishCapital",
    "EnglishLowercase",
    "ForbiddenWords",
    "HighlightedSections",
    "InstructionScorer",
    "JsonFormat",
    "KeywordFrequency",
    "KeywordsExist",
    "LetterFrequency",
    "MultipleSections",
    "NoComma",
    "NthParagraphFirstWord",
    "NumberParagraphs",
    "NumberSentences",
    "NumberWords",
    "Placeholders",
    "Postscript",
    "Quotation",
    "RepeatPrompt",
    "ResponseLanguage",
    "Title",
    "TwoResponses",
    "build_checker",
    "checker",
    "checkers",
    "count_sentences",
    "loose_variants",
    "sample_checkers",
    "words",
]


def loose_variants(text: str) -> list[str]:
    """The output and its loose variants: first/last/both lines removed, each with and without asterisks."""
    lines = text.split("\n")
    cut = [text, "\n".join(lines[1:]), "\n".join(lines[:-1]), "\n".join(lines[1:-1])]
    variants = [v for c in cut for v in (c, c.replace("*", ""))]
    return [v for v in dict.fromkeys(variants) if v.strip()]


def sample_checkers(sample: Sample) -> list[tuple[str, Checker]]:
    """The sample's instructions, each with its checker; malformed records raise a DataError."""
    ids = sample.fields.get("instruction_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise DataError(
            f"sample '{sample.id}': 'instruction_ids' must be a non-empty list of ids, not {ids!r}"
        )
    kwargs = sample.fields.get("kwargs")
    kwargs = [{} for _ in ids] if kwargs is None else kwargs
    if (
        not isinstance(kwargs, list)
        or len(kwargs) != len(ids)
        or not all(isinstance(k, dict | None) for k in kwargs)
    ):
        raise DataError(
            f"sample '{sample.id}': 'kwargs' must be a list of {len(ids)} objects, one per instruction"
        )
    return [(i, build_checker(i, k)) for i, k in zip(ids, kwargs, strict=True)]


class InstructionScorer(Scorer):
    """All instructions followed (`prompt_strict`, primary) or the share followed, strict and loose."""

    name: ClassVar[str] = "instructions"
    primary_metric: ClassVar[str] = "prompt_strict"

    def score(self, sample: Sample, output: str) -> Score:
        items = sample_checkers(sample)
        ids = [i for i, _ in items]
        if not output.strip():
            metrics = dict.fromkeys(("prompt_loose", "instruction_strict", "instruction_loose"), 0.0)
            details = {"reason": "empty output", "failed_strict": ids, "failed_loose": ids}
            return Score(0.0, "unparsed", {**metrics, "instructions": float(len(ids))}, details)
        variants = loose_variants(output)
        strict = [c.check(output) for _, c in items]
        loose = [s or any(c.check(v) for v in variants) for s, (_, c) in zip(strict, items, strict=True)]
        metrics = {
            "prompt_loose": float(all(loose)),
            "instruction_strict": sum(strict) / len(ids),
            "instruction_loose": sum(loose) / len(ids),
            "instructions": float(len(ids)),
        }
        details = {
            "failed_strict": [i for i, ok in zip(ids, strict, strict=True) if not ok],
            "failed_loose": [i for i, ok in zip(ids, loose, strict=True) if not ok],
        }
        return Score(float(all(strict)), "correct" if all(strict) else "wrong", metrics, details)

    def aggregate(self, outputs: Sequence[ScoredOutput]) -> dict[str, list[float]]:
        """As the base, but instruction-level figures count every instruction once (IFEval's definition)."""
        result = super().aggregate(outputs)
        result.pop("instructions", None)
        for name in ("instruction_strict", "instruction_loose"):
            per_instruction: list[float] = []
            for o in outputs:
                n = round(o.score.metrics.get("instructions", 0))
                followed = round(o.score.metrics.get(name, 0.0) * n)
                per_instruction += [1.0] * followed + [0.0] * (n - followed)
            result[name] = per_instruction
        return result

    def reference_output(self, sample: Sample) -> str:
        """The record's `reference` answer; empty for sets without one (the full google/IFEval)."""
        ref = sample.fields.get("reference", sample.reference)
        return ref if isinstance(ref, str) else ""
