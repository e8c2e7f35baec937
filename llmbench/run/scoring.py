"""From a completion to a journaled sample record: strip reasoning, score, classify, record.

The runner and `llmbench score` share this step, so a sample scored offline is recorded exactly as
one scored during a run.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Protocol

from llmbench.results.schema import SampleRecord
from llmbench.run.prepare import PreparedTask
from llmbench.scoring.base import Score
from llmbench.scoring.reasoning import SplitOutput, split_output
from llmbench.scoring.tool_calls import calls_as_text
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
    splits = [split_output(c.text, markers, c.rendered_prompt) for c in chunk]
    cut = [cut_in_reasoning(c, split) for c, split in zip(chunk, splits, strict=True)]
    to_score = [i for i, c in enumerate(chunk) if c.error is None and not cut[i]]
    verdicts = task.scorer.score_batch(
        [(task.index[chunk[i].request_id][0], scored_text(splits[i].answer, chunk[i])) for i in to_score]
    )
    scores: dict[int, Score] = dict(zip(to_score, verdicts, strict=True))
    out = []
    for i, c in enumerate(chunk):
        score = scores.get(i) or Score(0.0, "error", details={"error": c.error})
        if cut[i]:
            score = Score(0.0, "truncated", details={"truncated": CUT_IN_REASONING})
        elif score.status != "correct" and c.finish_reason == "length":
            score = Score(
                score.value, "truncated", score.metrics, score.details | {"scored_as": score.status}
            )
        counted = c.reasoning_tokens
        record = make_record(
            task,
            c,
            score,
            counted if counted is not None else reasoning_tokens(splits[i].reasoning, tokenizer),
        )
        sink.append(c.request_id, record)
        out.append((c.request_id, record))
    return out


CUT_IN_REASONING = "the output ended inside its reasoning: no answer to score"


def cut_in_reasoning(c: Completion, split: SplitOutput) -> bool:
    """The output ended inside its reasoning, so the scorer never sees it: a block never closed, or the token
    limit came with nothing after the reasoning (a server's reasoning channel included)."""
    if c.error is not None:
        return False
    if split.unclosed:
        return True
    reasoned = bool(split.reasoning) or bool(c.reasoning_tokens)
    return c.finish_reason == "length" and reasoned and not split.answer.strip() and not c.tool_calls


def scored_text(answer: str, c: Completion) -> str:
    """What the scorer reads: the answer, then any calls the backend reported apart from it, written in the
    one form the tool-call reader reads (a model's own written calls stay where it wrote them)."""
    if not c.tool_calls:
        return answer
    return "\n".join(part for part in (answer, calls_as_text(c.tool_calls)) if part)


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
        **timing_fields(c),
        schedule_lag_ms=c.schedule_lag_ms,
        prompt_hash=c.prompt_hash,
        output_hash=c.output_hash,
        batch_size=c.batch_size,
        error=c.error,
        warnings=list(c.warnings),
        attempts=c.attempts,
        raw_head=c.raw_head,
        tool_calls=[asdict(call) for call in c.tool_calls] or None,
        cached_tokens_in=c.cached_prompt_tokens,
        rate_wait_ms=c.rate_wait_ms,
    )


def timing_fields(c: Completion) -> dict[str, Any]:
    """The sample's copy of the completion's timing record, at 0.01 ms: arrivals, their tokens where any carried
    more than one, the close, the slot wait; TTFOT and the answer's tokens where the output reasoned."""
    t = c.timing
    if t is None:
        return {"queue_ms": c.queue_ms}
    reasoned = t.reasoning_tokens > 0
    return {
        "arrivals_ms": [round(a, 2) for a in t.arrivals_ms] or None,
        "arrival_tokens": list(t.arrival_tokens) if any(n != 1 for n in t.arrival_tokens) else None,
        "close_ms": round(t.close_ms, 2) if t.close_ms is not None else None,
        "queue_ms": c.queue_ms,
        "tokens_estimated": True if t.tokens_estimated else None,
        "engine_stamps": True if t.engine_stamps else None,
        "ttfot_ms": c.ttfot_ms if reasoned else None,
        "answer_tokens": c.answer_tokens if reasoned else None,
    }


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
