"""The quality loop: generate a task's pending requests while a worker thread scores and journals them;
the generation cache answers what it can before the backend is asked."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from llmbench.backends.base import Backend
from llmbench.results.schema import SampleRecord
from llmbench.run import interrupts
from llmbench.run.assemble import Generated
from llmbench.run.gen_cache import CachedGeneration, GenerationCache
from llmbench.run.journal import Journal
from llmbench.run.prepare import PreparedTask
from llmbench.run.progress_events import Progress
from llmbench.run.scoring import make_record, score_chunk
from llmbench.run.spending import Budget, batches
from llmbench.run.warmup import run_warmup
from llmbench.scoring.base import Score
from llmbench.telemetry.nvml import NvmlSampler
from llmbench.types import Completion, GenerationRequest

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
    cache: GenerationCache | None = None,
    warm_up_first: bool = False,
    budget: Budget | None = None,
) -> tuple[list[SampleRecord], bool]:
    """Generate the task's pending requests while a worker thread scores and journals finished ones.

    What the generation cache answers is scored without generating (and without timings); the rest goes
    to the backend, after the warm-up where `warm_up_first`, and is stored as it finishes; under a `budget`
    (--max-cost) in batches it can pay for. Returns the task's records and whether the warm-up ran.
    """
    cache = cache or GenerationCache.off()
    pending = [r for r in task.requests if r.request_id not in done]
    progress.task_started(task.spec.name, len(task.requests), len(task.requests) - len(pending))
    by_id: dict[str, SampleRecord] = {rid: done[rid] for rid in task.index if rid in done}
    cached = cache.look_up(pending)
    to_generate = [r for r in pending if r.request_id not in cached]
    warm = bool(to_generate) and warm_up_first
    warmed = (
        warm and (budget is None or budget.reserve(task.requests[0], tokenizer)) and warm_up(backend, task)
    )
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmbench-score") as pool:
        queue = _ScoreQueue(task, journal, tokenizer, pool, cache, {r.request_id: r for r in to_generate})
        queue.submit_cached(cached, progress)
        for batch in batches(budget, to_generate, tokenizer, task.spec.name):
            _generate(queue, backend, batch, generated, sampler, progress, budget)
        for fut in queue.futures:
            by_id.update(fut.result())
    progress.task_finished(task.spec.name)
    for rid in [rid for rid in task.index if rid not in by_id]:  # a backend that dropped a request
        missing = Completion(rid, "", finish_reason="error", error="backend returned no output")
        by_id[rid] = make_record(task, missing, Score(0.0, "error"), None)
    return [by_id[rid] for rid in task.index], warmed


def _generate(
    queue: _ScoreQueue,
    backend: Backend,
    requests: list[GenerationRequest],
    generated: Generated,
    sampler: NvmlSampler,
    progress: Progress,
    budget: Budget | None,
) -> None:
    """The timed, metered generation of `requests`; finished completions go to `queue` in chunks (and what
    they cost to the `budget`)."""
    buffer: list[Completion] = []
    with sampler.window() as window:
        t0 = time.perf_counter_ns()
        try:
            for completion in backend.generate(requests):
                interrupts.check()  # a Ctrl-C that landed in a finaliser was dropped: stop here
                generated.add(completion)
                if budget is not None:
                    budget.charge(completion)
                buffer.append(completion)
                if len(buffer) >= SCORE_CHUNK:
                    queue.submit(buffer)
                    buffer = []
                progress.advance()
        except KeyboardInterrupt:  # Ctrl-C or the deadline: what finished is journaled for --resume
            if buffer:
                queue.submit(buffer, wait=False)
            raise
        wall_ns = time.perf_counter_ns() - t0
    generated.add_window(wall_ns / 1e9, window.energy_j)
    if buffer:
        queue.submit(buffer)


@dataclass
class _ScoreQueue:
    """Chunks of completions on their way to the scoring thread, which also journals and caches them."""

    task: PreparedTask
    journal: Journal
    tokenizer: object
    pool: ThreadPoolExecutor
    cache: GenerationCache
    asked: dict[str, GenerationRequest]  # the requests sent to the backend: what the cache may keep
    futures: list[Future[list[tuple[str, SampleRecord]]]] = field(default_factory=list)

    def submit(self, chunk: list[Completion], wait: bool = True) -> None:
        """Score, journal and cache `chunk` off the generating thread (`wait`: collect its records)."""
        fut = self.pool.submit(self._score_and_keep, chunk)
        if wait:
            self.futures.append(fut)

    def _score_and_keep(self, chunk: list[Completion]) -> list[tuple[str, SampleRecord]]:
        records = score_chunk(self.task, chunk, self.journal, self.tokenizer)
        self.cache.keep(self.asked, chunk)
        return records

    def submit_cached(self, cached: dict[str, CachedGeneration], progress: Progress) -> None:
        """Score the cached answers as the generated ones are, each marked with the run that generated it."""
        sink = _MarkedAsCached(self.journal, {rid: c.source_run for rid, c in cached.items()})
        completions = [c.completion for c in cached.values()]
        for i in range(0, len(completions), SCORE_CHUNK):
            chunk = completions[i : i + SCORE_CHUNK]
            self.futures.append(self.pool.submit(score_chunk, self.task, chunk, sink, self.tokenizer))
            progress.advance(len(chunk))


class _MarkedAsCached:
    """The journal, for samples answered from the cache: each record says which run generated it."""

    def __init__(self, journal: Journal, sources: dict[str, str]) -> None:
        self.journal = journal
        self.sources = sources

    def append(self, request_id: str, record: SampleRecord) -> None:
        record.cached_from = self.sources[request_id]
        self.journal.append(request_id, record)
