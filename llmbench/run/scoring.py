"""From a completion to a journaled sample record: strip reasoning, score, classify, record.

The runner and `llmbench score` share this step, so a sample scored offline is recorded exactly as
one scored during a run.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from llmbench.results.schema import SampleRecord
from llmbench.run.prepare import PreparedTask
from llmbench.scoring.base import Score
from llmbench.scoring.reasoning import split_reasoning
from llmbench.types import Completion


class SampleSink(Protocol):
    """Where a scored sample goes as soon as it exists (the run's journal)."""

    def append(self, request_id: str, record: SampleRecord) -> None: ...


def score_chunk(
    task: PreparedTask, chunk: list[Completion], sink: SampleSink, tokenizer: Any = None
) -> list[tuple[str, SampleRecord]]:
    """Score a chunk of completions of one task; each record reaches `sink` before this returns."""
    assert task.scorer is not None
    markers = [(m[0], m[1]) for m in task.spec.reasoning_markers]
    splits = [split_reasoning(c.text, markers) for c in chunk]
    to_score = [i for i, c in enumerate(chunk) if c.error is None]
    verdicts = task.scorer.score_batch(
        [(task.index[chunk[i].request_id][0], splits[i].answer) for i in to_score]
    )
    scores: dict[int, Score] = dict(zip(to_score, verdicts, strict=True))
    out = []
    for i, c in enumerate(chunk):
        score = scores.get(i) or Score(0.0, "error", details={"error": c.error})
        if score.status != "correct" and (c.finish_reason == "length" or splits[i].unclosed):
            score = Score(
                score.value, "truncated", score.metrics, score.details | {"scored_as": score.status}
            )
        record = make_record(task, c, score, reasoning_tokens(splits[i].reasoning, tokenizer))
        sink.append(c.request_id, record)
        out.append((c.request_id, record))
    return out


def reasoning_tokens(reasoning: str, tokenizer: Any) -> int | None:
    """Tokens of the stripped reasoning, counted with the model's tokenizer; None without one."""
    if not reasoning:
        return 0
    if tokenizer is None:
        return None
    try:
        return len(tokenizer.encode(reasoning, add_special_tokens=False))
    except Exception:  # a tokenizer that cannot take the text costs this figure, not the sample
        return None


def make_record(
    task: PreparedTask, c: Completion, score: Score, reasoning_tokens: int | None
) -> SampleRecord:
    """The sample record of one completion and its verdict."""
    sample, k = task.index[c.request_id]
    req = task.request(c.request_id)
    prompt: Any = c.rendered_prompt
    if prompt is None and req is not None:
        prompt = list(req.messages) if req.messages else req.prompt
    return SampleRecord(
        task=task.spec.name,
        id=sample.id,
        sample_index=k,
        prompt=prompt,
        output=c.text,
        reference=_jsonable(sample.reference),
        score=score.value,
        status=score.status,
        metrics=score.metrics,
        details=_jsonable(score.details),
        metadata=_jsonable(_metadata(task, sample)),
        tokens_in=c.prompt_tokens,
        tokens_out=c.output_tokens,
        reasoning_tokens=reasoning_tokens,
        finish_reason=c.finish_reason,
        ttft_ms=c.ttft_ms,
        latency_ms=c.latency_ms,
        tpot_ms=c.tpot_ms,
        itl_ms=[round(g, 3) for g in c.itl_ms] or None,  # microseconds are the clocks' resolution here
        schedule_lag_ms=c.schedule_lag_ms,
        prompt_hash=c.prompt_hash,
        output_hash=c.output_hash,
        batch_size=c.batch_size,
        error=c.error,
        warnings=list(c.warnings),
        attempts=c.attempts,
        raw_head=c.raw_head,
    )


def is_failure(record: SampleRecord) -> bool:
    """A sample that could not be generated or judged (not a wrong answer)."""
    return record.error is not None or record.status == "error"


def _metadata(task: PreparedTask, sample: Any) -> dict[str, Any]:
    """The sample's metadata, plus any `group_by` key that lives among its fields (e.g. `language`)."""
    extra = {
        k: sample.fields[k] for k in task.spec.group_by if k not in sample.metadata and k in sample.fields
    }
    return {**sample.metadata, **extra}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))
