"""An optional LLM judge: rates each answer 1-10 through any backend, for a combined quality score.

Exact and programmatic scorers stay the primary figures (judges favour verbose answers); the
rating only enters the `combined` score a suite asks for, and the judge's model and prompt hash
are recorded beside it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.backends.base import backends
from llmbench.config.models import resolve_model
from llmbench.config.suite import CombinedSpec, JudgeSpec
from llmbench.hashing import stable_hash
from llmbench.prompts import render
from llmbench.results.schema import MetricValue, RunResult, SampleRecord
from llmbench.run.progress_events import Progress
from llmbench.scoring.stats import summarize
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest

DEFAULT_PROMPT = """You are grading an answer to a task. Judge correctness first, then clarity and completeness.

Task:
{{ question }}

Reference answer (may be empty):
{{ reference }}

Answer to grade:
{{ answer }}

Reply with one line of the form "Rating: N" where N is an integer from 1 (useless) to 10 (perfect)."""

_RATING = re.compile(r"(?:rating|score)\s*[:=]?\s*\[?\[?\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)


def parse_rating(text: str) -> float | None:
    """The judge's 1-10 rating scaled to 0-1, or None when it gave none (never guessed)."""
    matches = [int(m.group(1)) for m in _RATING.finditer(text)]
    valid = [m for m in matches if 1 <= m <= 10]
    return (valid[-1] - 1) / 9 if valid else None


@dataclass
class JudgeOutcome:
    ratings: dict[tuple[str, str, int], float | None]
    judge: dict[str, str]


def rate(records: Sequence[SampleRecord], spec: JudgeSpec) -> JudgeOutcome:
    """Ask the judge about every record; returns a rating (or None) per (task, id, sample index)."""
    model = resolve_model(spec.model, backend=spec.backend)
    backend = backends.get(model.backend)(model, resolve_model_path(model))  # type: ignore[call-arg]
    template = spec.prompt or DEFAULT_PROMPT
    backend.load()
    try:
        requests, keys = [], {}
        for i, r in enumerate(records):
            question = (
                r.prompt[-1]["content"] if isinstance(r.prompt, list) and r.prompt else str(r.prompt or "")
            )
            text = render(
                template,
                {"question": question, "answer": r.output or "", "reference": r.reference or ""},
                where="judge prompt",
            )
            rid = f"judge/{i}"
            keys[rid] = (r.task, r.id, r.sample_index)
            requests.append(
                GenerationRequest(
                    rid,
                    GenerationParams(max_new_tokens=spec.max_new_tokens),
                    messages=({"role": "user", "content": text},),
                )
            )
        ratings = {
            keys[c.request_id]: (parse_rating(c.text) if c.error is None else None)
            for c in backend.generate(requests)
        }
    finally:
        backend.close()
    return JudgeOutcome(
        ratings, {"model": model.name, "backend": model.backend, "prompt_hash": stable_hash(template)}
    )


def combined_score(
    suite_score: MetricValue | None, ratings: Sequence[float | None], spec: CombinedSpec
) -> dict[str, object]:
    """accuracy_weight x suite score + rating_weight x mean rating; unrated answers are counted, not imputed."""
    rated = [r for r in ratings if r is not None]
    rating = summarize(rated) if rated else None
    total = spec.accuracy_weight + spec.rating_weight
    value = None
    if suite_score is not None and rating is not None and total > 0:
        value = (spec.accuracy_weight * suite_score.value + spec.rating_weight * rating.value) / total
    return {
        "value": value,
        "rating": rating.model_dump() if rating else None,
        "unrated": len(ratings) - len(rated),
        "accuracy_weight": spec.accuracy_weight,
        "rating_weight": spec.rating_weight,
    }


def judge_run(result: RunResult, spec: CombinedSpec, progress: Progress) -> None:
    """Rate every answer with the suite's judge; the ratings go into the samples and the combined score."""
    progress.message(f"judging {len(result.samples)} answers with {spec.judge.model}")
    outcome = rate(result.samples, spec.judge)
    for r in result.samples:
        rating = outcome.ratings.get((r.task, r.id, r.sample_index))
        if rating is not None:
            r.metrics["rating"] = rating
    result.summary.combined = combined_score(result.suite_score, list(outcome.ratings.values()), spec)
    result.summary.judge = outcome.judge
    result.fingerprint["judge"] = outcome.judge["prompt_hash"]
