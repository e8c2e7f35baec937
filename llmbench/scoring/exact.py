"""Exact or contained string match against one or more references: the plainest scorer."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar

from llmbench.data.base import Sample
from llmbench.scoring.base import Score, Scorer


def normalize(text: str) -> str:
    """NFKC, case-folded, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text)
    return re.sub(r"\s+", " ", text).strip()


class ExactScorer(Scorer):
    """`mode: exact` needs the whole (normalised) output to equal a reference; `contains` finds it inside."""

    name: ClassVar[str] = "exact"

    def __init__(self, mode: str = "exact", normalize: bool = True, **options: Any) -> None:
        super().__init__(**options)
        if mode not in ("exact", "contains"):
            raise TypeError(f"mode must be 'exact' or 'contains', not {mode!r}")
        self.mode = mode
        self.normalize = normalize

    def score(self, sample: Sample, output: str) -> Score:
        refs = sample.reference if isinstance(sample.reference, list) else [sample.reference]
        norm = normalize if self.normalize else (lambda s: s.strip())
        got = norm(output)
        if not got:
            return Score(0.0, "unparsed", details={"reason": "empty output"})
        wanted = [norm(str(r)) for r in refs if r is not None]
        hit = any((got == w) if self.mode == "exact" else (w in got) for w in wanted)
        return Score(float(hit), "correct" if hit else "wrong", details={"references": wanted[:5]})

    def reference_output(self, sample: Sample) -> str:
        ref = sample.reference[0] if isinstance(sample.reference, list) else sample.reference
        return str(ref)
