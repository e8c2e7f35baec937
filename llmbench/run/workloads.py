"""Serving workloads in the perf sweep: shared prefixes, multi-turn chats and trace replay.

Each point keeps every figure of an ordinary sweep point (`perf.summarise_point`: TTFT, TPOT,
ITL, E2E, tokens/s, goodput, VRAM, energy per token; warm-up excluded) and adds the prefix
cache's setting and hit rate over the measured requests, and for chats the TTFT per turn index.

Prefix caching "off" where the engine has it on: each request gets a cache salt of its own, so
it shares no cached block with any other (the engine still hashes blocks; no reload needed).
A backend that cannot do that (a server we did not start) runs only the setting it has, and the
other point is recorded with the reason.
"""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench import interrupts
from llmbench.backends.base import Backend
from llmbench.backends.common import free_device_memory
from llmbench.backends.prefix_cache import counters_of, hit_rate, state_of
from llmbench.config import PerfSweep
from llmbench.config_serving import MultiTurnWorkload, SharedPrefixWorkload, TraceWorkload
from llmbench.data.workloads import PromptBuilder, perf_request
from llmbench.data.workloads import part_index as key
from llmbench.results import PerfPoint
from llmbench.run import perf
from llmbench.run.arrivals import arrival_offsets
from llmbench.run.multiturn import run_conversations
from llmbench.run.trace_replay import TraceBatch, load_trace, trace_batch
from llmbench.telemetry.nvml import NvmlSampler, TelemetryWindow
from llmbench.types import Completion, GenerationRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkloadPoint:
    """One point of a workload before it runs."""

    input_tokens: int | Literal["max"]
    output_tokens: int
    prefix_caching: bool | None
    concurrency: int | None = None
    request_rate: float | None = None


def workload_points(sweep: PerfSweep) -> list[WorkloadPoint]:
    """Every point in run order: per (input, output) and caching setting, each concurrency, then each rate."""
    w = sweep.workload
    if isinstance(w, TraceWorkload):
        return [WorkloadPoint(0, 0, None)]
    assert w is not None
    rates = sweep.request_rates if isinstance(w, SharedPrefixWorkload) else []
    points = []
    for n_in in sweep.input_tokens:
        for n_out in sweep.output_tokens:
            for caching in w.prefix_caching if w.prefix_caching is not None else [None]:
                points += [WorkloadPoint(n_in, n_out, caching, concurrency=c) for c in sweep.concurrency]
                points += [WorkloadPoint(n_in, n_out, caching, request_rate=r) for r in rates]
    return points


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

    def salt(self, caching: bool | None, *parts: object) -> str | None:
        """A request's own cache salt where its point runs with caching off and the engine has it on."""
        if caching is False and state_of(self.backend).enabled is not False:
            return f"llmbench-{key(self.seed, *parts)}"
        return None


def run_perf(
    backend: Backend,
    sweep: PerfSweep,
    *,
    sampler: NvmlSampler | None,
    tokenizer: Any,
    max_model_len: int | None,
    seed: int,
    needs_text: bool,
    weights_bytes: int | None,
    peak_bandwidth_bytes_s: float | None,
    on_point: Callable[[int, PerfPoint], None] | None = None,
    vocab_size: int | None = None,
    done: dict[int, PerfPoint] | None = None,
    base_dir: Path | None = None,
) -> list[PerfPoint]:
    """A task's perf block: the ordinary sweep (`perf.run_sweep`), or its workload's points.

    `base_dir` is where a trace's relative path starts (the suite file's folder).
    """
    if sweep.workload is None:
        return perf.run_sweep(
            backend,
            sweep,
            sampler=sampler,
            tokenizer=tokenizer,
            max_model_len=max_model_len,
            seed=seed,
            needs_text=needs_text,
            weights_bytes=weights_bytes,
            peak_bandwidth_bytes_s=peak_bandwidth_bytes_s,
            on_point=on_point,
            vocab_size=vocab_size,
            done=done,
        )
    builder = PromptBuilder(tokenizer, sweep.prompt_kind, seed, needs_text, vocab_size)
    return _run_workload(
        Runner(backend, sweep, builder, sampler, max_model_len, seed, base_dir),
        weights_bytes,
        peak_bandwidth_bytes_s,
        on_point,
        done or {},
    )


def _run_workload(
    runner: Runner,
    weights_bytes: int | None,
    peak_bandwidth_bytes_s: float | None,
    on_point: Callable[[int, PerfPoint], None] | None,
    done: dict[int, PerfPoint],
) -> list[PerfPoint]:
    """Run every point of the sweep's workload; a point that fails is recorded and the sweep goes on."""
    sweep = runner.sweep
    results: list[PerfPoint] = []
    for point_no, spec in enumerate(workload_points(sweep)):
        interrupts.check()
        if point_no in done:
            results.append(done[point_no])
            continue
        point = _run(runner, point_no, spec)
        if point.error is None:
            point = perf._with_bandwidth(point, weights_bytes, peak_bandwidth_bytes_s)
        log.info("workload point %s: %s", spec, point.error or f"{point.output_tokens_per_s} tok/s")
        results.append(point)
        if on_point is not None:
            on_point(point_no, point)
    return results


def _run(runner: Runner, point_no: int, spec: WorkloadPoint) -> PerfPoint:
    w = runner.sweep.workload
    assert w is not None
    basics = _workload_fields(runner, spec)
    refused = _caching_refused(runner, spec)
    if isinstance(w, TraceWorkload):
        trace = load_trace(w, runner.base_dir)  # a trace that cannot be read ends the run: the user's to fix
        batch = trace_batch(
            trace, w, runner.builder, point_no, runner.max_model_len, runner.sweep.fit_to_model
        )
        return _measure_trace(runner, point_no, spec, batch, basics | batch.fields, refused)
    shape = perf.PointSpec(spec.input_tokens, spec.output_tokens, spec.concurrency, spec.request_rate)
    n_in, reason = perf.resolve_input_tokens(shape, runner.max_model_len, runner.sweep.fit_to_model)
    n_requests = _n_requests(w) * runner.sweep.repeats
    if reason is None and isinstance(w, SharedPrefixWorkload) and n_in <= w.prefix_tokens:
        reason = f"input_tokens {n_in} leaves no room for a suffix after prefix_tokens {w.prefix_tokens}"
    if reason is None:
        reason = refused
    if reason is not None:
        return _failed(shape, n_in, n_requests, reason, basics)
    if isinstance(w, SharedPrefixWorkload):
        return _measure(
            runner, point_no, shape, n_in, basics, _shared_prefix_batches(runner, w, point_no, spec, n_in)
        )
    assert isinstance(w, MultiTurnWorkload)
    return _measure_chats(runner, point_no, shape, n_in, basics, w, spec)


def _n_requests(w: SharedPrefixWorkload | MultiTurnWorkload) -> int:
    if isinstance(w, SharedPrefixWorkload):
        return w.prefixes * w.requests_per_prefix
    return w.conversations * w.turns


def _workload_fields(runner: Runner, spec: WorkloadPoint) -> dict[str, Any]:
    w = runner.sweep.workload
    assert w is not None
    state = state_of(runner.backend)
    caching = spec.prefix_caching if spec.prefix_caching is False else state.enabled
    fields: dict[str, Any] = {
        "workload": w.kind,
        "prefix_caching": caching,
        "prefix_cache_source": state.source,
    }
    if spec.request_rate is not None:
        fields |= {
            "arrival_process": runner.sweep.arrival.process,
            "burstiness": runner.sweep.arrival.burstiness,
        }
    return fields


def _caching_refused(runner: Runner, spec: WorkloadPoint) -> str | None:
    """Why this point's caching setting cannot be had on this backend; None when it can."""
    state = state_of(runner.backend)
    if spec.prefix_caching is True and state.enabled is False:
        return f"prefix caching is off ({state.source}); it cannot be switched on per request"
    if spec.prefix_caching is False and state.enabled is not False and not state.can_bypass:
        said = "on" if state.enabled else "not known"
        return f"this backend cannot switch prefix caching off (its setting: {said}, per {state.source})"
    return None


def _failed(
    shape: perf.PointSpec, n_in: int, n_requests: int, reason: str, fields: dict[str, Any]
) -> PerfPoint:
    return perf._empty_point(shape, n_in, n_requests, reason).model_copy(update=fields)


def _warmup(runner: Runner, requests: list[GenerationRequest], concurrency: int | None) -> None:
    if requests:
        list(runner.backend.generate(requests, concurrency=concurrency))


def _shared_prefix_batches(
    runner: Runner, w: SharedPrefixWorkload, point_no: int, spec: WorkloadPoint, n_in: int
) -> Iterator[tuple[list[GenerationRequest], list[float] | None]]:
    """Warm-up first (prefixes of its own, so it warms nothing the point measures), then each repeat."""
    b, seed = runner.builder, runner.seed

    def batch(tag: object, count: int) -> list[GenerationRequest]:
        out = []
        for i in range(count):  # request i uses prefix i % prefixes: every prefix is first seen early
            group, member = i % w.prefixes, i // w.prefixes
            prompt = b.with_prefix(
                key(seed, point_no, tag, "prefix", group), w.prefix_tokens, n_in, key(seed, point_no, tag, i)
            )
            salt = runner.salt(spec.prefix_caching, point_no, tag, i)
            out.append(
                perf_request(f"perf-{point_no}-{tag}-g{group}-{member}", prompt, spec.output_tokens, salt)
            )
        return out

    yield batch("warmup", runner.sweep.warmup_requests), None
    for repeat in range(runner.sweep.repeats):
        requests = batch(repeat, w.prefixes * w.requests_per_prefix)
        offsets = None
        if spec.request_rate is not None:
            rng = random.Random(f"{seed}:{point_no}:{repeat}")
            offsets = arrival_offsets(len(requests), spec.request_rate, runner.sweep.arrival, rng)
        yield requests, offsets


def _measure(
    runner: Runner,
    point_no: int,
    shape: perf.PointSpec,
    n_in: int,
    fields: dict[str, Any],
    batches: Iterator[tuple[list[GenerationRequest], list[float] | None]],
) -> PerfPoint:
    """Warm up with the first batch, then time the rest inside one telemetry window and one cache reading."""
    n_requests = _n_requests(runner.sweep.workload) * runner.sweep.repeats  # type: ignore[arg-type]
    try:
        warmup, _ = next(batches)
        _warmup(runner, warmup, shape.concurrency)
        completions: list[Completion] = []
        wall_ns = 0
        with _window(runner) as (window, cache):
            for requests, offsets in batches:
                t0 = time.perf_counter_ns()
                completions += runner.backend.generate(
                    requests, concurrency=shape.concurrency, arrival_offsets_s=offsets
                )
                wall_ns += time.perf_counter_ns() - t0
    except Exception as exc:  # an OOM or a backend error fails this point only
        free_device_memory()
        return _failed(shape, n_in, n_requests, perf.describe_failure(exc), fields)
    point = perf.summarise_point(shape, n_in, n_requests, completions, wall_ns / 1e9, window, runner.sweep)
    return point.model_copy(
        update=fields | cache.fields() | {"prompt_tokens_mean": _mean_prompt(completions)}
    )


def _measure_chats(
    runner: Runner,
    point_no: int,
    shape: perf.PointSpec,
    n_in: int,
    fields: dict[str, Any],
    w: MultiTurnWorkload,
    spec: WorkloadPoint,
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
        _warmup(runner, warmup, shape.concurrency)
        with _window(runner) as (window, cache):
            chats = run_conversations(
                runner.backend,
                runner.builder,
                lambda *parts: runner.salt(spec.prefix_caching, point_no, *parts),
                (runner.seed, point_no),
                runner.sweep.repeats,
                w,
                n_in,
                spec.output_tokens,
                spec.concurrency,
            )
    except Exception as exc:
        free_device_memory()
        return _failed(shape, n_in, n_requests, perf.describe_failure(exc), fields)
    point = perf.summarise_point(
        shape, n_in, n_requests, chats.completions, chats.wall_s, window, runner.sweep
    )
    return point.model_copy(
        update=fields
        | cache.fields()
        | {"turns": chats.turns, "prompt_tokens_mean": _mean_prompt(chats.completions)}
    )


def _measure_trace(
    runner: Runner,
    point_no: int,
    spec: WorkloadPoint,
    batch: TraceBatch,
    fields: dict[str, Any],
    refused: str | None,
) -> PerfPoint:
    shape = perf.PointSpec(batch.input_tokens, batch.output_tokens)
    n_requests = len(batch.requests(0)) * runner.sweep.repeats
    if refused is not None:
        return _failed(shape, batch.input_tokens, n_requests, refused, fields)
    try:
        _warmup(runner, batch.warmup(runner.sweep.warmup_requests), None)
        completions: list[Completion] = []
        wall_ns = 0
        with _window(runner) as (window, cache):
            for repeat in range(runner.sweep.repeats):
                requests = batch.requests(repeat)
                t0 = time.perf_counter_ns()
                completions += runner.backend.generate(requests, arrival_offsets_s=batch.offsets_s)
                wall_ns += time.perf_counter_ns() - t0
    except Exception as exc:
        free_device_memory()
        return _failed(shape, batch.input_tokens, n_requests, perf.describe_failure(exc), fields)
    point = perf.summarise_point(
        shape, batch.input_tokens, n_requests, completions, wall_ns / 1e9, window, runner.sweep
    )
    return point.model_copy(
        update=fields | cache.fields() | {"prompt_tokens_mean": _mean_prompt(completions)}
    )


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
