"""Multiple-choice tasks by log-likelihood: every option of every pending question scored, then judged.

The pipeline hands a task here when its backend can score log-probabilities (and the task does not
ask for the generative variant); otherwise the task's generation requests run like any other task,
and the `choice` scorer reads a letter back. Each question becomes one sample record, journaled as
soon as all its options are scored, so an interrupted run resumes question by question.
"""

from __future__ import annotations

import time
from typing import Any

from llmbench.backends.base import Backend, scores_loglikelihood
from llmbench.hashing import stable_hash
from llmbench.results.schema import SampleRecord
from llmbench.run import interrupts
from llmbench.run.choice_prompts import continuations
from llmbench.run.prepare import PreparedTask
from llmbench.run.progress_events import Progress
from llmbench.run.scoring import SampleSink, make_record
from llmbench.scoring.base import Score
from llmbench.scoring.choice import ChoiceScorer, Rotation
from llmbench.types import Completion, Loglikelihood, LoglikelihoodRequest


def uses_loglikelihood(task: PreparedTask, backend: Backend) -> bool:
    """Whether this task is scored by log-likelihood on this backend (else: the generative variant)."""
    choices = task.spec.choices
    if choices is None or choices.generative == "always":
        return False
    able = scores_loglikelihood(backend)
    if not able and choices.generative == "never":
        from llmbench.errors import UserInputError

        raise UserInputError(
            f"task '{task.spec.name}': the {backend.name} backend cannot score log-likelihoods "
            "and the task sets generative: never",
            hint="use generative: auto, or a backend with prompt log-probabilities (transformers, vllm)",
        )
    return able


def loglikelihood_requests(task: PreparedTask, rid: str) -> list[LoglikelihoodRequest]:
    """One request per option per asking of the question `rid`; ids are `rid#rotation.option`."""
    choices = task.spec.choices
    assert choices is not None
    out = []
    for r, asking in enumerate(task.askings[rid]):
        for i, continuation in enumerate(continuations(choices, asking.question)):
            out.append(
                LoglikelihoodRequest(
                    request_id=f"{rid}#{r}.{i}",
                    context=asking.full_context,
                    continuation=continuation,
                    reference=i == asking.question.answer,
                )
            )
    return out


def run_choices(
    task: PreparedTask,
    backend: Any,
    sink: SampleSink,
    done: dict[str, SampleRecord],
    sampler: Any,
    progress: Progress,
) -> tuple[list[SampleRecord], float, float | None]:
    """Score the task's pending questions; returns every record, the wall time and energy spent."""
    assert isinstance(task.scorer, ChoiceScorer), "a choices task is scored by the 'choice' scorer"
    questions = list(task.askings)  # one record per question, its rotations scored together
    pending = [rid for rid in questions if rid not in done]
    progress.task_started(task.spec.name, len(questions), len(questions) - len(pending))
    by_id: dict[str, SampleRecord] = {rid: done[rid] for rid in questions if rid in done}
    wanted = {rid: loglikelihood_requests(task, rid) for rid in pending}
    results: dict[str, dict[str, Loglikelihood]] = {rid: {} for rid in pending}
    wall_s, energy = 0.0, None
    if pending:
        with sampler.window() as window:
            t0 = time.perf_counter_ns()
            for result in backend.loglikelihood([r for reqs in wanted.values() for r in reqs]):
                interrupts.check()
                rid = result.request_id.rpartition("#")[0]
                if rid not in results:
                    continue
                results[rid][result.request_id] = result
                if len(results[rid]) == len(wanted[rid]):
                    by_id[rid] = _record(task, rid, wanted[rid], results.pop(rid))
                    sink.append(rid, by_id[rid])
                    progress.advance()
            wall_s = (time.perf_counter_ns() - t0) / 1e9
        energy = window.energy_j
    for rid, partial in results.items():  # a backend that dropped a request: the question fails
        by_id[rid] = _record(task, rid, wanted[rid], partial)
        sink.append(rid, by_id[rid])
    progress.task_finished(task.spec.name)
    return [by_id[rid] for rid in questions], wall_s, energy


def _record(
    task: PreparedTask, rid: str, requests: list[LoglikelihoodRequest], got: dict[str, Loglikelihood]
) -> SampleRecord:
    assert isinstance(task.scorer, ChoiceScorer)
    results = [got.get(r.request_id) for r in requests]
    errors = [
        res.error if res is not None else "backend returned no result"
        for res in results
        if res is None or res.error
    ]
    ok = [res for res in results if res is not None]
    scored_tokens = sum(res.continuation_tokens for res in ok)
    facts = {"requests": len(requests), "tokens_scored": scored_tokens}
    if errors:
        score = Score(0.0, "error", details={"error": errors[0]} | facts)
    else:
        score = task.scorer.score_rotations(_rotations(task, rid, requests, ok))
        score.details.update(facts)
    latencies = [res.latency_ms for res in ok if res.latency_ms is not None]
    completion = Completion(
        request_id=rid,
        text=str(score.details.get("picked", "")),
        prompt_tokens=sum(res.prompt_tokens for res in ok) or None,
        output_tokens=None,
        finish_reason="error" if errors else "stop",
        latency_ms=sum(latencies) if latencies else None,
        # Scores arrive whole, like a non-streamed answer: the first "token" is the last.
        ttft_ms=sum(latencies) if latencies else None,
        prompt_hash=stable_hash([res.prompt_hash for res in ok]) if ok else None,
        rendered_prompt=task.askings[rid][0].full_context,
        error=errors[0] if errors else None,
        batch_size=max((res.batch_size or 1 for res in ok), default=None),
    )
    return make_record(task, completion, score, None)


def _rotations(
    task: PreparedTask, rid: str, requests: list[LoglikelihoodRequest], results: list[Loglikelihood]
) -> list[Rotation]:
    choices = task.spec.choices
    assert choices is not None
    out, pos = [], 0
    for asking in task.askings[rid]:
        q = asking.question
        k = len(q.options)
        part, asked = results[pos : pos + k], requests[pos : pos + k]
        pos += k
        labels = q.letters if choices.continuation == "letter" else q.options
        out.append(
            Rotation(
                answer=q.answer,
                logprobs=[res.logprob for res in part],
                tokens=[res.continuation_tokens for res in part],
                chars=[len(r.continuation.strip()) for r in asked],
                labels=list(labels),
            )
        )
    return out
