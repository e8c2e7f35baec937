"""One point measured, the same way for the perf sweep, the serving workloads and the saturation search:
its warm-up before the telemetry window, its requests inside it, its figures, its bandwidth (`Meter`).

The per-request figures (TTFT, TTFOT, TPOT, ITL, E2E) are those of `RequestTiming.figures` (llmbench.types),
the one place they are defined. What this module adds:
- When a request's clock starts. Time in the engine's own queue counts; time before submission does not.
  A request-rate request is submitted at its scheduled arrival (the clock starts there even when the
  client wakes late), every request at its arrival however many are in flight; only under a client cap
  (the saturation search's `max_concurrency`) may one wait for a free slot, and then its clock starts
  when the slot frees, the wait being recorded apart as the completion's `queue_ms`, as `vllm bench
  serve --max-concurrency` does. A concurrency point is closed loop: each request is submitted when a
  slot frees.
  The Transformers backend follows the same rule: a request that arrives while its batch slots are
  taken waits for the next batch, and that wait is its `queue_ms`.
- TTFOT is summarised over the requests that reasoned, beside their reasoning and answer tokens.
- Output tokens/s: all output tokens of the point / the point's wall time (first submission to last
  completion, summed over repeats). Request throughput and goodput use the same wall time; goodput
  counts only requests that meet every SLO given (TTFT <= slo_ttft_ms, TPOT <= slo_tpot_ms).
- Bandwidth utilisation (MBU) = weights_bytes x decode steps per second / peak memory bandwidth,
  where one decode step serves the whole batch, so steps/s = 1000 / mean TPOT (ms). It counts weight
  reads only (KV-cache reads come on top), so it is a lower bound; None where a figure is unknown.
- Schedule lag: actual send minus scheduled send, per open-loop request (the client waking late); inside
  TTFT and E2E, which start at the schedule. A point is client-bound, and its note says so, where the lag's
  p99 exceeds `LAG_BOUND_MS` or a tenth of the TTFT p50 (whichever is less), or where the client's own
  process (a server-backed point: the engine runs elsewhere) used `CPU_BOUND_CORES` of a core or more.
Warm-up requests run before each point and are left out of every figure.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from llmbench.backends.base import Backend
from llmbench.backends.common import free_device_memory, is_out_of_memory
from llmbench.config.suite import PerfSweep
from llmbench.results.schema import PerfPoint, PointRequests
from llmbench.run.warmup import run_warmup
from llmbench.scoring.clustered import clustered_distribution
from llmbench.scoring.stats import distribution
from llmbench.telemetry.nvml import NvmlSampler, TelemetryWindow
from llmbench.types import Completion, GenerationRequest


@dataclass(frozen=True)
class PointSpec:
    """One point before it runs: its lengths, and its concurrency or its request rate."""

    input_tokens: int | Literal["max"]
    output_tokens: int
    concurrency: int | None = None
    request_rate: float | None = None


def describe_failure(exc: BaseException) -> str:
    """One line for a failed point; out-of-memory errors are named as such."""
    if is_out_of_memory(exc):
        return f"out of memory: {exc}"
    return f"{type(exc).__name__}: {exc}"


def empty_point(spec: PointSpec, n_in: int, n_requests: int, error: str) -> PerfPoint:
    """A point without figures: it could not run, or failed, for the reason `error` says."""
    return PerfPoint(**_named(spec, n_in, n_requests), error=error)


def _named(spec: PointSpec, n_in: int, n_requests: int) -> dict[str, Any]:
    """The fields that name a point: its lengths, its concurrency or rate, its number of requests."""
    return {
        "input_tokens": n_in,
        "output_tokens": spec.output_tokens,
        "concurrency": spec.concurrency,
        "request_rate": spec.request_rate,
        "n_requests": n_requests,
    }


Batch = tuple[list[GenerationRequest], list[float] | None]  # requests, their arrival offsets (s) or None


LAG_BOUND_MS = 5.0  # schedule lag p99 above this (or above a tenth of TTFT p50) marks a point client-bound
CPU_BOUND_CORES = 0.9  # a client process this busy (CPU seconds per second) cannot keep its schedule


@dataclass
class Sent:
    """The completions of a point's measured requests and the wall time of the calls that sent them."""

    completions: list[Completion] = field(default_factory=list)
    wall_s: float = 0.0


@dataclass(frozen=True)
class Batches:
    """A point's measured requests: batch after batch (its repeats), each at its own arrival offsets."""

    batches: Sequence[Batch]

    def send(self, backend: Backend, concurrency: int | None) -> Sent:
        """Each batch in turn; the wall time is the batches' own, summed."""
        completions: list[Completion] = []
        wall_ns = 0
        for requests, offsets in self.batches:
            t0 = time.perf_counter_ns()
            completions += backend.generate(requests, concurrency=concurrency, arrival_offsets_s=offsets)
            wall_ns += time.perf_counter_ns() - t0
        return Sent(completions, wall_ns / 1e9)


S = TypeVar("S", bound=Sent)


@dataclass(frozen=True)
class Meter:
    """Measures points on a loaded backend: warm-up, telemetry window, figures and bandwidth, one way for all.

    `sweep` gives goodput's SLOs; `max_concurrency` caps the requests in flight of a point that has no
    concurrency of its own (a saturation search's rate probes).
    """

    backend: Backend
    sampler: NvmlSampler | None
    sweep: PerfSweep
    max_concurrency: int | None = None
    weights_bytes: int | None = None
    peak_bandwidth_bytes_s: float | None = None
    bandwidth_despite_errors: bool = True  # False: a point with failed requests gets no bandwidth figure
    client_process: bool = False  # the engine runs elsewhere (a server): this process's CPU is the client's

    def measure(
        self,
        spec: PointSpec,
        n_in: int,
        n_requests: int,
        warmup: Callable[[], list[GenerationRequest]],
        prepare: Callable[[], Callable[[Backend, int | None], S]],
        around: AbstractContextManager[object] | None = None,
    ) -> tuple[PerfPoint, S | None]:
        """One point: warm up, build its requests, send them inside one telemetry window, then summarise.

        `warmup` builds the warm-up requests (run before the window, in no figure); `prepare` then builds
        the measured ones, before the window so that its energy and wall time are theirs, and returns
        what sends them; `around` (a prefix-cache reading) encloses the window. A point that fails (an
        OOM, a backend error) is recorded with its reason, and None for what was sent.
        """
        concurrency = spec.concurrency or self.max_concurrency
        try:
            run_warmup(self.backend, warmup(), concurrency, spec.request_rate)
            send = prepare()
            measuring = self.sampler.window() if self.sampler is not None else nullcontext(TelemetryWindow())
            with around or nullcontext(), measuring as window, _collector_paused():
                cpu0, wall0 = time.process_time(), time.perf_counter()
                sent = send(self.backend, concurrency)
                cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
        except Exception as exc:  # an OOM or a backend error fails this point only
            free_device_memory()  # give cached device memory back, so the next point starts clean
            return empty_point(spec, n_in, n_requests, describe_failure(exc)), None
        point = summarise_point(spec, n_in, n_requests, sent.completions, sent.wall_s, window, self.sweep)
        point = with_client_load(point, cpu_s / wall_s if self.client_process and wall_s > 0 else None)
        if point.error is None or self.bandwidth_despite_errors:
            point = with_bandwidth(point, self.weights_bytes, self.peak_bandwidth_bytes_s)
        return point, sent


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Collect garbage before the window, then keep what exists out of every collection inside it: a full
    collection of a heap that holds a tokenizer took about 250 ms here, and stalled the client meanwhile."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def summarise_point(
    spec: PointSpec,
    n_in: int,
    n_requests: int,
    completions: Sequence[Completion],
    wall_s: float,
    window: TelemetryWindow,
    sweep: PerfSweep,
) -> PerfPoint:
    """The figures of one point from its completions (see the module docstring for the definitions)."""
    ok = [c for c in completions if c.error is None and c.finish_reason != "error"]
    failed = [c for c in completions if c not in ok]
    error = None
    if failed:
        first = failed[0].error or "finish_reason=error"
        error = f"{len(failed)} of {len(completions)} requests failed: {first}"
        if "out of memory" in first.lower():
            error = f"out of memory: {error}"
    if len(completions) < n_requests and error is None:
        error = f"{n_requests - len(completions)} of {n_requests} requests returned no completion"
    total_out = sum(c.output_tokens or 0 for c in ok)
    per_request = [
        c.output_tokens / (c.latency_ms / 1000)
        for c in ok
        if c.output_tokens and c.latency_ms and c.latency_ms > 0
    ]
    tpots = [t for c in ok if (t := c.tpot_ms) is not None]
    lags = [c.schedule_lag_ms for c in completions if c.schedule_lag_ms is not None]
    ttfts = [c.ttft_ms for c in ok if c.ttft_ms is not None]
    return PerfPoint(
        **_named(spec, n_in, n_requests),
        ttft_ms=distribution(ttfts),
        tpot_ms=distribution(tpots),
        requests=PointRequests(ttft_ms=_rounded(ttfts), tpot_ms=_rounded(tpots)) if ok else None,
        itl_ms=clustered_distribution([c.itl_ms for c in ok]),
        e2e_latency_ms=distribution([c.latency_ms for c in ok if c.latency_ms is not None]),
        output_tokens_per_s=_per_s(total_out, wall_s) if ok else None,
        per_request_output_tokens_per_s=distribution(per_request),
        request_throughput_per_s=_per_s(len(ok), wall_s) if ok else None,
        goodput_per_s=_per_s(sum(_meets_slo(c, sweep) for c in ok), wall_s)
        if _has_slo(sweep) and ok
        else None,
        peak_vram_mib=window.peak_vram_mib,
        energy_per_output_token_j=window.energy_j / total_out
        if window.energy_j is not None and total_out
        else None,
        duration_s=wall_s,
        error=error,
        schedule_lag_ms=distribution(lags) if lags else None,
        **reasoning_figures(ok),
    )


def reasoning_figures(ok: Sequence[Completion]) -> dict[str, Any]:
    """TTFOT over the requests that reasoned, and the point's output tokens of reasoning and of answers apart;
    nothing where none reasoned."""
    reasoned = [c for c in ok if c.reasoning_tokens]
    if not reasoned:
        return {}
    return {
        "ttfot_ms": distribution([c.ttfot_ms for c in reasoned if c.ttfot_ms is not None]),
        "reasoning_tokens": sum(c.reasoning_tokens or 0 for c in ok),
        "answer_tokens": sum(c.answer_tokens or 0 for c in ok),
    }


def client_bound_reason(point: PerfPoint) -> str | None:
    """Why the client, not the server, set the point's figures (see the module docstring); None if it kept up."""
    reasons = []
    lag, ttft = point.schedule_lag_ms, point.ttft_ms
    if lag is not None:
        bound = min(LAG_BOUND_MS, 0.1 * ttft.p50) if ttft is not None else LAG_BOUND_MS
        if lag.p99 > bound:
            reasons.append(f"schedule lag p50/p99 {lag.p50:.1f}/{lag.p99:.1f} ms > {bound:.1f} ms")
    if point.client_cpu_share is not None and point.client_cpu_share >= CPU_BOUND_CORES:
        reasons.append(f"client CPU {point.client_cpu_share:.0%} of a core")
    return "client-bound: " + ", ".join(reasons) if reasons else None


def with_client_load(point: PerfPoint, cpu_share: float | None) -> PerfPoint:
    """The point with its client's CPU share (None: not measured) and its client-bound mark and note."""
    point = point.model_copy(update={"client_cpu_share": cpu_share})
    reason = client_bound_reason(point)
    if point.schedule_lag_ms is None and cpu_share is None:
        return point
    note = "; ".join(filter(None, (point.note, reason)))
    return point.model_copy(update={"client_bound": reason is not None, "note": note or None})


def _rounded(values: Sequence[float]) -> list[float]:
    """Milliseconds to the microsecond: finer than any clock here resolves a request, and a smaller file."""
    return [round(v, 3) for v in values]


def _per_s(count: int, wall_s: float) -> float | None:
    return count / wall_s if wall_s > 0 else None


def _has_slo(sweep: PerfSweep) -> bool:
    return sweep.slo_ttft_ms is not None or sweep.slo_tpot_ms is not None


def _meets_slo(c: Completion, sweep: PerfSweep) -> bool:
    """Within every SLO given; a request with a single output token has no TPOT and passes that one."""
    if sweep.slo_ttft_ms is not None and (c.ttft_ms is None or c.ttft_ms > sweep.slo_ttft_ms):
        return False
    tpot = c.tpot_ms
    return not (sweep.slo_tpot_ms is not None and tpot is not None and tpot > sweep.slo_tpot_ms)


def with_bandwidth(point: PerfPoint, weights_bytes: int | None, peak_bw: float | None) -> PerfPoint:
    """The point with its bandwidth utilisation (see the module docstring); as it was where a part is unknown."""
    if not weights_bytes or not peak_bw or point.tpot_ms is None or point.tpot_ms.mean <= 0:
        return point
    steps_per_s = 1000.0 / point.tpot_ms.mean
    return point.model_copy(update={"bandwidth_utilisation": weights_bytes * steps_per_s / peak_bw})
