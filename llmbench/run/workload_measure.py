"""One serving-workload point measured: warm-up, then the timed requests inside one telemetry window and
one prefix-cache reading; a point that fails (an OOM, a backend error) is recorded with its reason."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench.backends.base import Backend
from llmbench.backends.common import free_device_memory
from llmbench.backends.prefix_cache import PrefixCacheState, counters_of, hit_rate
from llmbench.config.serving import MultiTurnWorkload, SharedPrefixWorkload
from llmbench.config.suite import PerfSweep
from llmbench.data.workload_prompts import PromptBuilder, perf_request
from llmbench.data.workload_prompts import part_index as key
from llmbench.results.schema import PerfPoint
from llmbench.run import perf
from llmbench.run.multiturn import chat_questions, run_conversations
from llmbench.run.trace_replay import TraceBatch
from llmbench.telemetry.nvml import NvmlSampler, TelemetryWindow
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
    """What every workload point needs: the loaded backend, how to build prompts, and the sweep."""

    backend: Backend
    sweep: PerfSweep
    builder: PromptBuilder
    sampler: NvmlSampler | None
    max_model_len: int | None
    seed: int
    base_dir: Path | None
    limit_note: str | None = None  # what --limit cut, for every point's note

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
    shape: perf.PointSpec, n_in: int, n_requests: int, reason: str, fields: dict[str, Any]
) -> PerfPoint:
    return perf._empty_point(shape, n_in, n_requests, reason).model_copy(update=fields)


def run_warmup(runner: Runner, requests: list[GenerationRequest], concurrency: int | None) -> None:
    if requests:
        list(runner.backend.generate(requests, concurrency=concurrency))


Batches = Iterator[tuple[list[GenerationRequest], list[float] | None]]  # requests, arrival offsets (s)


def measure(
    runner: Runner,
    shape: perf.PointSpec,
    n_in: int,
    n_requests: int,
    fields: dict[str, Any],
    batches: Batches,
) -> PerfPoint:
    """Warm up with the first batch, then time the rest inside one telemetry window and one cache reading.

    Every measured request is built before the window opens: its energy and wall time are the requests'.
    """
    try:
        warmup, _ = next(batches)
        run_warmup(runner, warmup, shape.concurrency)
        measured = list(batches)
        completions: list[Completion] = []
        wall_ns = 0
        with _window(runner) as (window, cache):
            for requests, offsets in measured:
                t0 = time.perf_counter_ns()
                completions += runner.backend.generate(
                    requests, concurrency=shape.concurrency, arrival_offsets_s=offsets
                )
                wall_ns += time.perf_counter_ns() - t0
    except Exception as exc:  # an OOM or a backend error fails this point only
        free_device_memory()
        return failed_point(shape, n_in, n_requests, perf.describe_failure(exc), fields)
    point = perf.summarise_point(shape, n_in, n_requests, completions, wall_ns / 1e9, window, runner.sweep)
    return point.model_copy(
        update=fields | cache.fields() | {"prompt_tokens_mean": _mean_prompt(completions)}
    )


def measure_chats(
    runner: Runner,
    point_no: int,
    shape: perf.PointSpec,
    n_in: int,
    fields: dict[str, Any],
    w: MultiTurnWorkload,
    spec: WorkloadPoint,
    salt: Callable[..., str | None],
) -> PerfPoint:
    n_requests = w.conversations * w.turns * runner.sweep.repeats
    try:
        warmup = [
            perf_request(
                f"perf-{point_no}-warmup-{i}",
                runner.builder.unique(n_in, key(runner.seed, point_no, "warmup", i)),
                spec.output_tokens,
            )
            for i in range(runner.sweep.warmup_requests)
        ]
        run_warmup(runner, warmup, shape.concurrency)
        questions = chat_questions(runner.builder, (runner.seed, point_no), runner.sweep.repeats, w, n_in)
        with _window(runner) as (window, cache):
            chats = run_conversations(
                runner.backend,
                questions,
                lambda *parts: salt(point_no, *parts),
                point_no,
                w,
                spec.output_tokens,
                spec.concurrency,
            )
    except Exception as exc:
        free_device_memory()
        return failed_point(shape, n_in, n_requests, perf.describe_failure(exc), fields)
    point = perf.summarise_point(
        shape, n_in, n_requests, chats.completions, chats.wall_s, window, runner.sweep
    )
    return point.model_copy(
        update=fields
        | cache.fields()
        | {"turns": chats.turns, "prompt_tokens_mean": _mean_prompt(chats.completions)}
    )


def measure_trace(
    runner: Runner, batch: TraceBatch, fields: dict[str, Any], refused: str | None
) -> PerfPoint:
    """A trace's requests at their own arrival times, each repeat in turn, after a warm-up of its own."""
    shape = perf.PointSpec(batch.input_tokens, batch.output_tokens)
    n_requests = len(batch.records) * runner.sweep.repeats
    if refused is not None:
        return failed_point(shape, batch.input_tokens, n_requests, refused, fields)

    def batches() -> Batches:
        yield batch.warmup(runner.sweep.warmup_requests), None
        for repeat in range(runner.sweep.repeats):
            yield batch.requests(repeat), batch.offsets_s

    return measure(runner, shape, batch.input_tokens, n_requests, fields, batches())


def _mean_prompt(completions: list[Completion]) -> float | None:
    counts = [c.prompt_tokens for c in completions if c.prompt_tokens]
    return statistics.fmean(counts) if counts else None


class _CacheReading:
    """The prefix cache counters before and after the measured requests."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.before = counters_of(backend)
        self.after = self.before

    def fields(self) -> dict[str, Any]:
        rate = hit_rate(self.before, self.after)
        if rate is not None:
            return {
                "prefix_cache_hit_rate": rate,
                "prefix_cache_source": self.after.source if self.after else None,
            }
        return {}


class _window:
    """The telemetry window and the cache reading around a point's measured requests."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.measuring: Any = (
            runner.sampler.window() if runner.sampler is not None else nullcontext(TelemetryWindow())
        )

    def __enter__(self) -> tuple[TelemetryWindow, _CacheReading]:
        self.cache = _CacheReading(self.runner.backend)
        return self.measuring.__enter__(), self.cache

    def __exit__(self, *exc: Any) -> None:
        self.measuring.__exit__(*exc)
        self.cache.after = counters_of(self.runner.backend)
