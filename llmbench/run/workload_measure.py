"""One serving-workload point measured by the one `Meter`: its requests built, and a prefix-cache reading
around the telemetry window; a point that fails (an OOM, a backend error) is recorded with its reason."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench.backends.base import Backend
from llmbench.backends.prefix_cache import PrefixCacheCounters, PrefixCacheState, counters_of, hit_rate
from llmbench.config.serving import MultiTurnWorkload, SharedPrefixWorkload
from llmbench.config.suite import PerfSweep
from llmbench.data.workload_prompts import PromptBuilder
from llmbench.data.workload_prompts import part_index as key
from llmbench.results.schema import PerfPoint
from llmbench.run.multiturn import Chats, chat_questions, run_conversations
from llmbench.run.point_measure import Batch, Batches, Meter, PointSpec, Sent, empty_point
from llmbench.run.trace_replay import TraceBatch
from llmbench.types import Completion, GenerationRequest


@dataclass(frozen=True)
class WorkloadPoint:
    """One point of a workload before it runs."""

    input_tokens: int | Literal["max"]
    output_tokens: int
    prefix_caching: bool | None
    concurrency: int | None = None
    request_rate: float | None = None


@dataclass
class Runner:
    """What every workload point needs: the meter of the loaded backend, how to build prompts, the sweep."""

    meter: Meter
    builder: PromptBuilder
    max_model_len: int | None
    seed: int
    base_dir: Path | None
    limit_note: str | None = None  # what --limit cut, for every point's note

    @property
    def backend(self) -> Backend:
        return self.meter.backend

    @property
    def sweep(self) -> PerfSweep:
        return self.meter.sweep

    def salter(self, caching: bool | None, state: PrefixCacheState) -> Callable[..., str | None]:
        """Each request's own cache salt (named by `parts`) where its point runs with caching off and the
        engine, per `state` (read once per point: on a server, a GET of its /metrics), has it on."""
        if caching is False and state.enabled is not False:
            return lambda *parts: f"llmbench-{key(self.seed, *parts)}"
        return lambda *parts: None


def requests_per_repeat(w: SharedPrefixWorkload | MultiTurnWorkload) -> int:
    if isinstance(w, SharedPrefixWorkload):
        return w.prefixes * w.requests_per_prefix
    return w.conversations * w.turns


def failed_point(
    shape: PointSpec, n_in: int, n_requests: int, reason: str, fields: dict[str, Any]
) -> PerfPoint:
    return empty_point(shape, n_in, n_requests, reason).model_copy(update=fields)


def measure(
    runner: Runner,
    shape: PointSpec,
    n_in: int,
    n_requests: int,
    fields: dict[str, Any],
    batches: Iterator[Batch],
) -> PerfPoint:
    """Warm up with the first batch, then send the rest in one measurement and one cache reading.

    Every measured request is built before the window opens: its energy and wall time are the requests'.
    """
    cache = _CacheReading(runner.backend)
    point, sent = runner.meter.measure(
        shape, n_in, n_requests, lambda: next(batches)[0], lambda: Batches(list(batches)).send, cache
    )
    return _with_fields(point, sent, fields, cache)


def measure_chats(
    runner: Runner,
    point_no: int,
    shape: PointSpec,
    n_in: int,
    fields: dict[str, Any],
    w: MultiTurnWorkload,
    salt: Callable[..., str | None],
) -> PerfPoint:
    """A chat point: its warm-up, then every repeat's conversations turn by turn in one measurement."""
    n_requests = w.conversations * w.turns * runner.sweep.repeats

    def prepare() -> Callable[[Backend, int | None], Chats]:
        asked = chat_questions(runner.builder, (runner.seed, point_no), runner.sweep.repeats, w, n_in)
        return lambda backend, concurrency: run_conversations(
            backend,
            asked,
            lambda *parts: salt(point_no, *parts),
            point_no,
            w,
            shape.output_tokens,
            concurrency,
        )

    def warmup() -> list[GenerationRequest]:
        return runner.builder.warmup(runner.sweep.warmup_requests, point_no, n_in, shape.output_tokens)

    cache = _CacheReading(runner.backend)
    point, chats = runner.meter.measure(shape, n_in, n_requests, warmup, prepare, cache)
    return _with_fields(point, chats, fields, cache, {"turns": chats.turns} if chats is not None else {})


def measure_trace(
    runner: Runner, batch: TraceBatch, fields: dict[str, Any], refused: str | None
) -> PerfPoint:
    """A trace's requests at their own arrival times, each repeat in turn, after a warm-up of its own."""
    shape = PointSpec(batch.input_tokens, batch.output_tokens)
    n_requests = len(batch.records) * runner.sweep.repeats
    if refused is not None:
        return failed_point(shape, batch.input_tokens, n_requests, refused, fields)

    def batches() -> Iterator[Batch]:
        first = batch.records[0]  # the warm-up has the first request's shape and shares no block
        n = runner.sweep.warmup_requests
        yield runner.builder.warmup(n, batch.point_no, first.input_tokens, first.output_tokens), None
        for repeat in range(runner.sweep.repeats):
            yield batch.requests(repeat), batch.offsets_s

    return measure(runner, shape, batch.input_tokens, n_requests, fields, batches())


def _with_fields(
    point: PerfPoint,
    sent: Sent | None,
    fields: dict[str, Any],
    cache: _CacheReading,
    measured: dict[str, Any] | None = None,
) -> PerfPoint:
    """The point with the workload's `fields`; one that was measured (`sent`) also with its cache hit rate,
    its `measured` figures and its prompts' mean length."""
    if sent is None:
        return point.model_copy(update=fields)
    mean = {"prompt_tokens_mean": _mean_prompt(sent.completions)}
    return point.model_copy(update=fields | cache.fields() | (measured or {}) | mean)


def _mean_prompt(completions: list[Completion]) -> float | None:
    counts = [c.prompt_tokens for c in completions if c.prompt_tokens]
    return statistics.fmean(counts) if counts else None


class _CacheReading:
    """The prefix cache counters when the measured requests start and when they have finished."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.before: PrefixCacheCounters | None = None
        self.after: PrefixCacheCounters | None = None

    def __enter__(self) -> _CacheReading:
        self.before = self.after = counters_of(self.backend)
        return self

    def __exit__(self, *exc: object) -> None:
        self.after = counters_of(self.backend)

    def fields(self) -> dict[str, Any]:
        rate = hit_rate(self.before, self.after)
        if rate is not None:
            return {
                "prefix_cache_hit_rate": rate,
                "prefix_cache_source": self.after.source if self.after else None,
            }
        return {}
