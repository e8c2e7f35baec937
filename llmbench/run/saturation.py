"""Saturation search: the highest Poisson request rate at which a server still meets latency SLOs.

How it searches (for each input x output shape of the perf sweep):
1. Closed loop (optional): `closed_loop_concurrency` requests in flight, no pacing. Its request
   throughput caps the search (with `max_rate`). It is what the server completes at that
   concurrency, which understates a server that batches more; when every rate up to it passes, the
   note says that this ceiling, not the server, bounded the result.
2. Bracket: offer `min_rate`, then double it, until a rate fails or the cap is reached.
3. Bisect between the highest passing and the lowest failing rate until they are within `tolerance`
   of each other (relative to the failing rate) or `max_probes` have run.

A rate passes when every request completed, TTFT p99 and TPOT p99 are within their bounds, and the
server kept up: requests completed at least (1 - `saturation_margin`) as fast as they arrived
(completion span vs arrival span of the same requests, so the Poisson draw's own spread cancels out).
Each probe offers max(`requests_per_point`, rate x `min_duration_s`) requests after one warm-up.
The result names what failed at the lowest failing rate (`bound_by`), or the cap that stopped the
search, and keeps every probe with its full perf point. Goodput at the rate found counts the requests
that met every SLO bound, per second of the probe's wall time.

The search itself (`search`) takes a `measure` function and knows no clock or backend: tests drive it
with a synthetic latency model.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from llmbench.backends.base import Backend
from llmbench.config.serving import SaturationSpec
from llmbench.config.suite import PerfSweep
from llmbench.data.workload_prompts import PromptBuilder
from llmbench.results.schema import PerfPoint, SaturationProbe, SaturationResult
from llmbench.run import interrupts
from llmbench.run.arrivals import poisson_offsets
from llmbench.run.perf import PerfTarget, resolve_input_tokens
from llmbench.run.point_measure import Batches, Meter, PointSpec, Sent
from llmbench.types import Completion, GenerationRequest

log = logging.getLogger(__name__)

# The search's prompts start this far into the prompt sequence, so that none repeats a prompt of the
# sweep (a repeated prefix would be served from the engine's prefix cache and flatter TTFT).
_PROMPT_INDEX_START = 1 << 24

Measure = Callable[[float | None], SaturationProbe]  # offered rate (None: closed loop) -> probe


# ---------------------------------------------------------------- the search, free of clocks


def judge(
    spec: SaturationSpec,
    point: PerfPoint,
    offered_rate: float,
    arrival_rate: float | None,
    completion_rate: float | None,
) -> SaturationProbe:
    """A rate probe with its verdict: which SLO bounds it violated, and whether the server fell behind."""
    violated = []
    if point.error is not None or point.ttft_ms is None:
        violated.append("errors")
    if spec.slo_ttft_p99_ms is not None and (
        point.ttft_ms is None or point.ttft_ms.p99 > spec.slo_ttft_p99_ms
    ):
        violated.append("ttft_p99")
    # A point whose requests all made one token has no TPOT: that bound cannot fail there.
    if (
        spec.slo_tpot_p99_ms is not None
        and point.tpot_ms is not None
        and point.tpot_ms.p99 > spec.slo_tpot_p99_ms
    ):
        violated.append("tpot_p99")
    if (
        arrival_rate is not None
        and completion_rate is not None
        and completion_rate < arrival_rate * (1 - spec.saturation_margin)
    ):
        violated.append("saturated")
    return SaturationProbe(
        kind="rate",
        offered_rate_per_s=offered_rate,
        arrival_rate_per_s=arrival_rate,
        completion_rate_per_s=completion_rate,
        passed=not violated,
        violated=violated,
        point=point,
    )


def search(
    spec: SaturationSpec, measure: Measure
) -> tuple[float | None, list[str], str | None, list[SaturationProbe]]:
    """Run the search with `measure`; returns (rate found, what bound it, a note, every probe in order)."""
    probes: list[SaturationProbe] = []
    ceiling, cap_name = spec.max_rate, "max_rate"
    capped = f"every rate up to max_rate ({spec.max_rate:.3g}/s) met the SLOs"
    if spec.closed_loop_concurrency is not None:
        closed = measure(None)
        probes.append(closed)
        throughput = closed.point.request_throughput_per_s
        if throughput is not None and throughput < ceiling:
            ceiling, cap_name = max(spec.min_rate, throughput), "closed_loop_throughput"
            capped = _ceiling_note(spec, throughput)
    passing: SaturationProbe | None = None
    failing: SaturationProbe | None = None
    rate = spec.min_rate
    while len(_rate_probes(probes)) < spec.max_probes:  # bracket: double until a rate fails or the cap
        probe = measure(rate)
        probes.append(probe)
        if not probe.passed:
            failing = probe
            break
        passing = probe
        if rate >= ceiling:
            return rate, [cap_name], capped, probes
        rate = min(rate * 2, ceiling)
    if passing is None:
        bound = failing.violated if failing is not None else []
        return None, bound, f"even the lowest rate ({spec.min_rate:g}/s) missed: {', '.join(bound)}", probes
    while failing is not None:  # bisect
        low, high = passing.offered_rate_per_s or 0.0, failing.offered_rate_per_s or 0.0
        if (high - low) <= spec.tolerance * high:
            return low, failing.violated, None, probes
        if len(_rate_probes(probes)) >= spec.max_probes:
            break
        probe = measure((low + high) / 2)
        probes.append(probe)
        if probe.passed:
            passing = probe
        else:
            failing = probe
    bound = failing.violated if failing is not None else []
    return passing.offered_rate_per_s, bound, f"stopped after max_probes ({spec.max_probes})", probes


def _ceiling_note(spec: SaturationSpec, throughput: float) -> str:
    """Why the search stopped at the closed-loop throughput: that ceiling, not an SLO, bounded the rate."""
    measured = (
        f"the closed-loop throughput at concurrency {spec.closed_loop_concurrency} ({throughput:.3g}/s)"
    )
    raise_it = "raise closed_loop_concurrency, or set it to null, to offer higher rates"
    if throughput < spec.min_rate:
        return (
            f"min_rate ({spec.min_rate:g}/s) met the SLOs and is already above {measured}, "
            f"so no higher rate was offered; {raise_it}"
        )
    return f"every rate up to {measured} met the SLOs: that ceiling, not the server, bounded the search; {raise_it}"


def _rate_probes(probes: Sequence[SaturationProbe]) -> list[SaturationProbe]:
    return [p for p in probes if p.kind == "rate"]


def result_of(spec: SaturationSpec, n_in: int, n_out: int, measure: Measure) -> SaturationResult:
    """Search one shape and assemble its result; goodput is read off the probe at the rate found."""
    rate, bound, note, probes = search(spec, measure)
    at_rate = next((p for p in reversed(probes) if p.passed and p.offered_rate_per_s == rate), None)
    closed = next((p for p in probes if p.kind == "closed_loop"), None)
    return SaturationResult(
        input_tokens=n_in,
        output_tokens=n_out,
        slo_ttft_p99_ms=spec.slo_ttft_p99_ms,
        slo_tpot_p99_ms=spec.slo_tpot_p99_ms,
        rate_per_s=rate,
        goodput_per_s=at_rate.point.goodput_per_s if at_rate is not None else None,
        bound_by=bound,
        max_throughput_per_s=closed.point.request_throughput_per_s if closed is not None else None,
        probes=probes,
        note=note,
    )


def describe_probe(probe: SaturationProbe) -> str:
    """One line for progress output: the rate, the verdict and the figures it was judged on."""
    pt = probe.point
    ttft = f"TTFT p99 {pt.ttft_ms.p99:.0f} ms" if pt.ttft_ms else "no TTFT"
    tpot = f"TPOT p99 {pt.tpot_ms.p99:.1f} ms" if pt.tpot_ms else "no TPOT"
    if probe.kind == "closed_loop":
        got = pt.request_throughput_per_s
        return (
            f"closed loop c={pt.concurrency}: {got:.2f} req/s, {ttft}, {tpot}"
            if got
            else f"closed loop: {pt.error}"
        )
    verdict = "pass" if probe.passed else "fail (" + ", ".join(probe.violated) + ")"
    return f"rate {probe.offered_rate_per_s:.3g}/s: {verdict}, {ttft}, {tpot}"


# ---------------------------------------------------------------- measuring on a backend


def spans_rates(
    offsets_s: Mapping[str, float], completions: Sequence[Completion]
) -> tuple[float | None, float | None]:
    """(arrival rate, completion rate) of the requests that finished, each as (n - 1) / its span.

    `offsets_s` maps each request id to its scheduled arrival. A request completes at its arrival +
    the time it queued for a client slot (`queue_ms`, under `max_concurrency`) + its E2E latency, so a
    server that keeps up shifts every request by about the same latency and the two spans match; one
    that falls behind (or a client cap that holds requests back) lets its queue, and so its completion
    span, grow.
    """
    by_arrival = sorted(
        (offsets_s[c.request_id], offsets_s[c.request_id] + ((c.queue_ms or 0.0) + c.latency_ms) / 1000)
        for c in completions
        if c.latency_ms is not None and c.error is None and c.request_id in offsets_s
    )
    if len(by_arrival) < 2:
        return None, None
    arrivals = [a for a, _ in by_arrival]
    done = [d for _, d in by_arrival]
    n = len(by_arrival) - 1
    arrival_span, done_span = max(arrivals) - min(arrivals), max(done) - min(done)
    return (n / arrival_span if arrival_span > 0 else None, n / done_span if done_span > 0 else None)


@dataclass
class _Prober:
    """Measures probes of one shape on a loaded backend; each probe's prompts are new."""

    meter: Meter  # its sweep has the SLO bounds as per-request goodput thresholds
    spec: SaturationSpec
    n_in: int
    n_out: int
    prompts: PromptBuilder
    seed: int
    on_probe: Callable[[SaturationProbe], None] | None = None
    count: int = 0

    def __call__(self, rate: float | None) -> SaturationProbe:
        interrupts.check()
        self.count += 1
        probe = self._closed_loop() if rate is None else self._at_rate(rate)
        log.info("saturation probe %s: %s", rate or "closed loop", probe.violated or probe.passed)
        if self.on_probe is not None:
            self.on_probe(probe)
        return probe

    def _closed_loop(self) -> SaturationProbe:
        concurrency = self.spec.closed_loop_concurrency
        n = max(self.spec.requests_per_point, 2 * (concurrency or 1))
        point, _, _ = self._measure(PointSpec(self.n_in, self.n_out, concurrency=concurrency), n, None)
        return SaturationProbe(kind="closed_loop", point=point)

    def _at_rate(self, rate: float) -> SaturationProbe:
        n = max(self.spec.requests_per_point, math.ceil(rate * self.spec.min_duration_s))
        offsets = poisson_offsets(n, rate, random.Random(f"{self.seed}:saturation:{self.count}"))
        point, batch, completions = self._measure(
            PointSpec(self.n_in, self.n_out, request_rate=rate), n, offsets
        )
        arrival, completion = None, None
        if completions:  # each completion paired with its own request's arrival, by id
            by_id = {r.request_id: offset for r, offset in zip(batch, offsets, strict=True)}
            arrival, completion = spans_rates(by_id, completions)
        return judge(self.spec, point, rate, arrival, completion)

    def _measure(
        self, spec: PointSpec, n: int, offsets: list[float] | None
    ) -> tuple[PerfPoint, list[GenerationRequest], list[Completion]]:
        """One warm-up request, then the probe's `n` in one measurement (at most `max_concurrency` in flight)."""
        tag = f"saturation-{self.count}"
        batch: list[GenerationRequest] = []

        def prepare() -> Callable[[Backend, int | None], Sent]:
            batch.extend(self.prompts.requests(n, self.n_in, self.n_out, tag))
            return Batches([(batch, offsets)]).send

        warmup = partial(self.prompts.requests, 1, self.n_in, self.n_out, f"{tag}-warmup")
        point, sent = self.meter.measure(spec, self.n_in, n, warmup, prepare)
        return point, batch, sent.completions if sent is not None else []


def run_saturation(
    target: PerfTarget, sweep: PerfSweep, *, on_probe: Callable[[SaturationProbe], None] | None = None
) -> list[SaturationResult]:
    """One search per input x output shape of `sweep` (which must have a `saturation` block)."""
    spec = sweep.saturation
    if spec is None:
        return []
    # Goodput counts the requests that meet the same bounds the search holds p99 to.
    slo_sweep = sweep.model_copy(
        update={"slo_ttft_ms": spec.slo_ttft_p99_ms, "slo_tpot_ms": spec.slo_tpot_p99_ms}
    )
    t = target
    prompts = t.prompts(sweep)
    prompts.skip(_PROMPT_INDEX_START)
    meter = Meter(
        t.backend, t.sampler, slo_sweep, max_concurrency=spec.max_concurrency, client_process=t.client_process
    )
    results, seen = [], set()
    for n_in_spec in sweep.input_tokens:
        for n_out in sweep.output_tokens:
            n_in, reason = resolve_input_tokens(
                PointSpec(n_in_spec, n_out), t.max_model_len, sweep.fit_to_model
            )
            if (n_in, n_out) in seen:
                continue
            seen.add((n_in, n_out))
            if reason is not None:
                results.append(SaturationResult(input_tokens=n_in, output_tokens=n_out, note=reason))
                continue
            prober = _Prober(meter, spec, n_in, n_out, prompts, t.seed, on_probe)
            results.append(result_of(spec, n_in, n_out, prober))
    return results
