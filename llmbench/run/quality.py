"""The quality loop: generate a task's pending requests while a worker thread scores and journals them."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

from llmbench.backends.base import Backend
from llmbench.results.schema import SampleRecord
from llmbench.run import interrupts
from llmbench.run.assemble import Generated
from llmbench.run.journal import Journal
from llmbench.run.prepare import PreparedTask
from llmbench.run.progress_events import Progress
from llmbench.run.scoring import make_record, score_chunk
from llmbench.run.warmup import run_warmup
from llmbench.scoring.base import Score
from llmbench.telemetry.nvml import NvmlSampler
from llmbench.types import Completion

SCORE_CHUNK = 16  # completions scored (and journaled) together, off the generating thread


def warm_up(backend: Backend, task: PreparedTask) -> bool:
    """The task's first request, cut to 4 new tokens, as the run's warm-up (`run_warmup`) before the first
    timed one, so start-up costs stay out of the first sample's TTFT; False for a task without requests."""
    if not task.requests:
        return False
    first = task.requests[0]
    params = replace(first.params, max_new_tokens=min(4, first.params.max_new_tokens), stop=())
    return run_warmup(backend, [replace(first, request_id="llmbench-warmup", params=params)])


def run_quality(
    task: PreparedTask,
    backend: Backend,
    journal: Journal,
    done: dict[str, SampleRecord],
    generated: Generated,
    sampler: NvmlSampler,
    tokenizer: object,
    progress: Progress,
) -> list[SampleRecord]:
    """Generate the task's pending requests while a worker thread scores and journals finished ones."""
    pending = [r for r in task.requests if r.request_id not in done]
    progress.task_started(task.spec.name, len(task.requests), len(task.requests) - len(pending))
    by_id: dict[str, SampleRecord] = {rid: done[rid] for rid in task.index if rid in done}
    futures: list[Future[list[tuple[str, SampleRecord]]]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmbench-score") as scoring:
        if pending:
            buffer: list[Completion] = []
            with sampler.window() as window:
                t0 = time.perf_counter_ns()
                try:
                    for completion in backend.generate(pending):
                        interrupts.check()  # a Ctrl-C that landed in a finaliser was dropped: stop here
                        generated.add(completion)
                        buffer.append(completion)
                        if len(buffer) >= SCORE_CHUNK:
                            futures.append(scoring.submit(score_chunk, task, buffer, journal, tokenizer))
                            buffer = []
                        progress.advance()
                except KeyboardInterrupt:  # Ctrl-C or the deadline: what finished is journaled for --resume
                    if buffer:
                        scoring.submit(score_chunk, task, buffer, journal, tokenizer)
                    raise
                wall_ns = time.perf_counter_ns() - t0
            generated.add_window(wall_ns / 1e9, window.energy_j)
            if buffer:
                futures.append(scoring.submit(score_chunk, task, buffer, journal, tokenizer))
        for fut in futures:
            by_id.update(fut.result())
    progress.task_finished(task.spec.name)
    for rid in [rid for rid in task.index if rid not in by_id]:  # a backend that dropped a request
        missing = Completion(rid, "", finish_reason="error", error="backend returned no output")
        by_id[rid] = make_record(task, missing, Score(0.0, "error"), None)
    return [by_id[rid] for rid in task.index]
