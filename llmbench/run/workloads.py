"""Serving workloads in the perf sweep: shared prefixes, multi-turn chats and trace replay.

Each point keeps every figure of an ordinary sweep point (`point_measure.summarise_point`: TTFT, TPOT,
ITL, E2E, tokens/s, goodput, VRAM, energy per token; warm-up excluded) and adds the prefix
cache's setting and hit rate over the measured requests, and for chats the TTFT per turn index.

Prefix caching "off" where the engine has it on: each request gets a cache salt of its own, so
it shares no cached block with any other (the engine still hashes blocks; no reload needed).
A backend that cannot do that (a server we did not start) runs only the setting it has, and the
other point is recorded with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from llmbench.backends.prefix_cache import PrefixCacheState, state_of
from llmbench.config.serving import MultiTurnWorkload, SharedPrefixWorkload, TraceWorkload
from llmbench.config.suite import PerfSweep
from llmbench.data.workload_prompts import part_index as key
from llmbench.data.workload_prompts import perf_request
from llmbench.results.schema import PerfPoint
from llmbench.run import interrupts, perf
from llmbench.run.arrivals import repeat_offsets
from llmbench.run.limit import limited
from llmbench.run.point_measure import Batch, PointSpec
from llmbench.run.trace_replay import load_trace, trace_batch
from llmbench.run.workload_measure import (
    Runner,
    WorkloadPoint,
    failed_point,
    measure,
    measure_chats,
    measure_trace,
    requests_per_repeat,
)
from llmbench.types import GenerationRequest

log = logging.getLogger(__name__)


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


def run_perf(
    target: perf.PerfTarget,
    sweep: PerfSweep,
    *,
    on_point: Callable[[int, PerfPoint], None] | None = None,
    done: dict[int, PerfPoint] | None = None,
    base_dir: Path | None = None,
    limit: int | None = None,
) -> list[PerfPoint]:
    """A task's perf block: the ordinary sweep (`perf.run_sweep`), or its workload's points.

    `base_dir` is where a trace's relative path starts (the suite file's folder); `limit` (--limit)
    caps each point's requests per repeat (see `limit`).
    """
    sweep, limit_note = limited(sweep, limit)
    if sweep.workload is None:
        return perf.run_sweep(target, sweep, on_point=on_point, done=done)
    t = target
    # a point with failed requests gets no bandwidth figure here, unlike in the ordinary sweep (as it always was)
    meter = replace(t.meter(sweep), bandwidth_despite_errors=False)
    runner = Runner(meter, t.prompts(sweep), t.max_model_len, t.seed, base_dir, limit_note)
    return _run_workload(runner, on_point, done or {})


def _run_workload(
    runner: Runner, on_point: Callable[[int, PerfPoint], None] | None, done: dict[int, PerfPoint]
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
        log.info("workload point %s: %s", spec, point.error or f"{point.output_tokens_per_s} tok/s")
        results.append(point)
        if on_point is not None:
            on_point(point_no, point)
    return results


def _run(runner: Runner, point_no: int, spec: WorkloadPoint) -> PerfPoint:
    w = runner.sweep.workload
    assert w is not None
    state = state_of(runner.backend)  # once per point: on a server, a GET of its /metrics
    basics = _workload_fields(runner, spec, state)
    refused = _caching_refused(spec, state)
    salt = runner.salter(spec.prefix_caching, state)
    if isinstance(w, TraceWorkload):
        trace = load_trace(w, runner.base_dir)  # a trace that cannot be read ends the run: the user's to fix
        batch = trace_batch(
            trace, w, runner.builder, point_no, runner.max_model_len, runner.sweep.fit_to_model
        )
        return measure_trace(runner, batch, basics | batch.fields | _notes(basics, batch.fields), refused)
    shape = PointSpec(spec.input_tokens, spec.output_tokens, spec.concurrency, spec.request_rate)
    if isinstance(w, MultiTurnWorkload):
        n_in, reason = chat_input_tokens(shape, w.turns, runner.max_model_len, runner.sweep.fit_to_model)
    else:
        n_in, reason = perf.resolve_input_tokens(shape, runner.max_model_len, runner.sweep.fit_to_model)
    n_requests = requests_per_repeat(w) * runner.sweep.repeats
    if reason is None and isinstance(w, SharedPrefixWorkload) and n_in <= w.prefix_tokens:
        reason = f"input_tokens {n_in} leaves no room for a suffix after prefix_tokens {w.prefix_tokens}"
    if reason is None:
        reason = refused
    if reason is not None:
        return failed_point(shape, n_in, n_requests, reason, basics)
    if isinstance(w, SharedPrefixWorkload):
        batches = _shared_prefix_batches(runner, w, point_no, spec, n_in, salt)
        return measure(runner, shape, n_in, n_requests, basics, batches)
    assert isinstance(w, MultiTurnWorkload)
    return measure_chats(runner, point_no, shape, n_in, basics, w, salt)


def chat_input_tokens(
    shape: PointSpec, turns: int, max_model_len: int | None, fit: bool
) -> tuple[int, str | None]:
    """Each user message's length, and why the chat cannot run (None when it can).

    The last turn's prompt holds every message and every earlier answer: about turns x input_tokens +
    (turns - 1) x output_tokens before the chat template's own tokens, and its answer must fit after it.
    `fit` cuts the messages so that the last turn fits.
    """
    if turns == 1 or max_model_len is None:
        return perf.resolve_input_tokens(shape, max_model_len, fit)
    n_out = shape.output_tokens
    if shape.input_tokens == "max" or fit:
        n_in = (max_model_len - turns * n_out) // turns
        if shape.input_tokens != "max":
            n_in = min(n_in, shape.input_tokens)
        if n_in < 1:
            return 0, (
                f"{turns} turns of output_tokens {n_out} leave no room for a message in max_model_len {max_model_len}"
            )
        return n_in, None
    n_in = shape.input_tokens
    last = turns * n_in + (turns - 1) * n_out
    if last + n_out > max_model_len:
        return n_in, (
            f"turn {turns}'s prompt is about {last} tokens ({turns} x input_tokens {n_in} + {turns - 1} x "
            f"output_tokens {n_out}, before the chat template) and with its answer exceeds max_model_len {max_model_len}"
        )
    return n_in, None


def _workload_fields(runner: Runner, spec: WorkloadPoint, state: PrefixCacheState) -> dict[str, Any]:
    w = runner.sweep.workload
    assert w is not None
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
    if runner.limit_note is not None:
        fields["note"] = runner.limit_note
    return fields


def _notes(*fields: dict[str, Any]) -> dict[str, Any]:
    """The notes of several field sets joined into one."""
    notes = [f["note"] for f in fields if f.get("note")]
    return {"note": "; ".join(notes)} if notes else {}


def _caching_refused(spec: WorkloadPoint, state: PrefixCacheState) -> str | None:
    """Why this point's caching setting cannot be had on this backend; None when it can."""
    if spec.prefix_caching is True and state.enabled is False:
        return f"prefix caching is off ({state.source}); it cannot be switched on per request"
    if spec.prefix_caching is False and state.enabled is not False and not state.can_bypass:
        said = "on" if state.enabled else "not known"
        return f"this backend cannot switch prefix caching off (its setting: {said}, per {state.source})"
    return None


def _shared_prefix_batches(
    runner: Runner,
    w: SharedPrefixWorkload,
    point_no: int,
    spec: WorkloadPoint,
    n_in: int,
    salt: Callable[..., str | None],
) -> Iterator[Batch]:
    """Warm-up first (prefixes of its own, so it warms nothing the point measures), then each repeat."""
    b, seed = runner.builder, runner.seed

    def batch(tag: object, count: int) -> list[GenerationRequest]:
        out = []
        for i in range(count):  # request i uses prefix i % prefixes: every prefix is first seen early
            group, member = i % w.prefixes, i // w.prefixes
            prompt = b.with_prefix(
                key(seed, point_no, tag, "prefix", group), w.prefix_tokens, n_in, key(seed, point_no, tag, i)
            )
            out.append(
                perf_request(
                    f"perf-{point_no}-{tag}-g{group}-{member}",
                    prompt,
                    spec.output_tokens,
                    salt(point_no, tag, i),
                )
            )
        return out

    yield batch("warmup", runner.sweep.warmup_requests), None
    for repeat in range(runner.sweep.repeats):
        requests = batch(repeat, w.prefixes * w.requests_per_prefix)
        rate, arrival = spec.request_rate, runner.sweep.arrival
        yield requests, repeat_offsets(len(requests), rate, arrival, seed, point_no, repeat)
