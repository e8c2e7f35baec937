"""The saturation search: its decisions against a synthetic latency model, and its measuring path
against a backend that serves requests from a single FIFO queue in virtual time (no clock is read
for any figure the tests check). The real server run is in tests/backends/test_saturation_served.py.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError
from rich.console import Console

from llmbench.config.serving import SaturationSpec
from llmbench.config.suite import PerfSweep
from llmbench.report.saturation_table import markdown_lines, print_saturation
from llmbench.results.schema import Distribution, Performance, PerfPoint, SaturationProbe
from llmbench.run.perf import PerfTarget
from llmbench.run.saturation import describe_probe, judge, result_of, run_saturation, search, spans_rates
from llmbench.types import Completion, GenerationRequest
from tests.model_free_backend import ModelFreeBackend


def _dist(value: float) -> Distribution:
    return Distribution(mean=value, p50=value, p90=value, p99=value, min=value, max=value, n=8)


@dataclass
class LatencyModel:
    """A server of `capacity` requests/s: TTFT grows as 1 / (1 - load), TPOT linearly with load."""

    capacity: float = 10.0
    ttft_ms: float = 100.0
    tpot_ms: float = 20.0
    calls: int = 0

    def point(self, rate: float | None) -> PerfPoint:
        load = min((rate or self.capacity) / self.capacity, 0.999)
        return PerfPoint(
            input_tokens=32,
            output_tokens=16,
            request_rate=rate,
            concurrency=None if rate else 16,
            n_requests=8,
            ttft_ms=_dist(self.ttft_ms / (1 - load)),
            tpot_ms=_dist(self.tpot_ms * (1 + load)),
            request_throughput_per_s=min(rate or self.capacity, self.capacity),
            goodput_per_s=min(rate or self.capacity, self.capacity),
        )

    def __call__(self, spec: SaturationSpec, rate: float | None) -> SaturationProbe:
        self.calls += 1
        if rate is None:
            return SaturationProbe(kind="closed_loop", point=self.point(None))
        return judge(spec, self.point(rate), rate, rate, min(rate, self.capacity))


def _search(spec: SaturationSpec, model: LatencyModel) -> Any:
    return search(spec, lambda rate: model(spec, rate))


def test_search_finds_the_rate_where_the_ttft_bound_binds() -> None:
    # TTFT p99 = 100 / (1 - r / 10) <= 500 ms  <=>  r <= 8
    spec = SaturationSpec(slo_ttft_p99_ms=500, min_rate=1, max_rate=100, tolerance=0.05, max_probes=30)
    rate, bound, note, probes = _search(spec, LatencyModel())
    assert rate is not None and 8 * 0.95 <= rate <= 8
    assert bound == ["ttft_p99"]
    assert note is None
    assert probes[0].kind == "closed_loop"
    assert [p.offered_rate_per_s for p in probes[1:5]] == [1, 2, 4, 8]  # doubling up to the bracket


def test_search_names_the_tpot_bound_when_it_binds_first() -> None:
    # TPOT p99 = 20 (1 + r / 10) <= 30 ms  <=>  r <= 5; TTFT would allow 8
    spec = SaturationSpec(slo_ttft_p99_ms=500, slo_tpot_p99_ms=30, min_rate=1, tolerance=0.05, max_probes=30)
    rate, bound, _, _ = _search(spec, LatencyModel())
    assert rate is not None and 5 * 0.95 <= rate <= 5
    assert bound == ["tpot_p99"]


def test_search_stops_at_saturation_when_the_slos_are_loose() -> None:
    spec = SaturationSpec(
        slo_ttft_p99_ms=1e9,
        min_rate=1,
        max_rate=100,
        closed_loop_concurrency=None,
        tolerance=0.05,
        max_probes=30,
    )
    rate, bound, _, _ = _search(spec, LatencyModel(capacity=10))
    # completions keep pace within the 10% margin up to 10 / 0.9 = 11.1 requests/s
    assert rate is not None and 10 <= rate <= 11.2
    assert bound == ["saturated"]


def test_closed_loop_throughput_caps_the_rates_offered() -> None:
    spec = SaturationSpec(slo_ttft_p99_ms=1e9, min_rate=1, max_rate=100, tolerance=0.05)
    rate, bound, note, probes = _search(spec, LatencyModel(capacity=6))
    assert max(p.offered_rate_per_s or 0 for p in probes) <= 6
    assert rate == 6 and bound == ["closed_loop_throughput"]
    assert "closed-loop throughput at concurrency 16 (6/s)" in note and "not the server, bounded" in note


def test_a_closed_loop_throughput_below_min_rate_is_named_as_itself_not_as_min_rate() -> None:
    spec = SaturationSpec(slo_ttft_p99_ms=1e9, min_rate=8, max_rate=100, saturation_margin=0.5)
    rate, bound, note, _ = _search(spec, LatencyModel(capacity=6))
    assert rate == 8 and bound == ["closed_loop_throughput"]
    assert "min_rate (8/s)" in note and "above the closed-loop throughput at concurrency 16 (6/s)" in note


def test_a_lowest_rate_that_fails_gives_no_rate_and_names_the_bound() -> None:
    spec = SaturationSpec(slo_ttft_p99_ms=50, min_rate=1)
    rate, bound, note, probes = _search(spec, LatencyModel())
    assert rate is None and bound == ["ttft_p99"]
    assert "lowest rate" in note
    assert len(probes) == 2  # the closed loop, then min_rate


def test_max_probes_bounds_the_search_and_keeps_the_best_rate_so_far() -> None:
    spec = SaturationSpec(
        slo_ttft_p99_ms=500, min_rate=1, tolerance=0.001, max_probes=6, closed_loop_concurrency=None
    )
    model = LatencyModel()
    rate, _, note, probes = _search(spec, model)
    assert model.calls == 6 == len(probes)
    assert rate is not None and rate <= 8 and "max_probes" in note
    assert all(p.passed for p in probes if p.offered_rate_per_s is not None and p.offered_rate_per_s <= rate)


def test_a_search_cut_short_by_max_probes_says_so_in_the_terminal_and_markdown_tables() -> None:
    spec = SaturationSpec(
        slo_ttft_p99_ms=500, min_rate=1, tolerance=0.001, max_probes=6, closed_loop_concurrency=None
    )
    model = LatencyModel()
    result = result_of(spec, 32, 16, lambda rate: model(spec, rate))
    assert result.rate_per_s is not None and result.probes  # it found a rate: not a shape that could not run
    out = io.StringIO()
    print_saturation([result], Console(file=out, width=400))
    assert "stopped after max_probes (6)" in out.getvalue()
    assert any("stopped after max_probes (6) |" in line for line in markdown_lines([("run-a", [result])]))


def test_result_reports_goodput_at_the_rate_found_and_every_probe() -> None:
    spec = SaturationSpec(slo_ttft_p99_ms=500, min_rate=1, tolerance=0.05, max_probes=30)
    model = LatencyModel()
    result = result_of(spec, 32, 16, lambda rate: model(spec, rate))
    assert result.rate_per_s is not None and result.goodput_per_s == result.rate_per_s
    assert result.max_throughput_per_s == 10
    assert len(result.probes) == model.calls
    assert result.slo_ttft_p99_ms == 500 and result.slo_tpot_p99_ms is None
    assert describe_probe(result.probes[1]).startswith("rate 1/s: pass")


def test_a_probe_with_failed_requests_fails_whatever_its_latencies() -> None:
    spec = SaturationSpec(slo_ttft_p99_ms=500)
    point = LatencyModel().point(1.0).model_copy(update={"error": "1 of 8 requests failed: boom"})
    probe = judge(spec, point, 1.0, 1.0, 1.0)
    assert probe.passed is False and probe.violated == ["errors"]


def test_spans_rates_tell_a_growing_queue_from_a_server_that_keeps_up() -> None:
    offsets = {str(i): float(i) for i in range(5)}
    steady = [Completion(request_id=str(i), text="", latency_ms=500.0) for i in range(5)]
    assert spans_rates(offsets, steady) == (1.0, 1.0)
    queued = [Completion(request_id=str(i), text="", latency_ms=500.0 + 1000.0 * i) for i in range(5)]
    arrival, done = spans_rates(offsets, queued)
    assert arrival == 1.0 and done == pytest.approx(0.5)


def test_spans_rates_pair_each_completion_with_its_own_arrival_whatever_the_order() -> None:
    offsets = {str(i): float(i) for i in range(5)}
    # finished in reverse order: the last to arrive finished first, each 0.5 s after its own arrival
    steady = [Completion(request_id=str(i), text="", latency_ms=500.0) for i in reversed(range(5))]
    assert spans_rates(offsets, steady) == (1.0, 1.0)


def test_spans_rates_count_the_wait_for_a_client_slot_as_falling_behind() -> None:
    # a cap of one in flight: each request starts its clock when the slot frees, and queued that long
    offsets = {str(i): float(i) for i in range(5)}
    capped = [Completion(request_id=str(i), text="", latency_ms=1500.0, queue_ms=500.0 * i) for i in range(5)]
    arrival, done = spans_rates(offsets, capped)
    assert arrival == 1.0 and done == pytest.approx(4 / 6)


def test_saturation_spec_needs_an_slo_and_ordered_rates() -> None:
    with pytest.raises(ValidationError, match="needs slo_ttft_p99_ms"):
        SaturationSpec()
    with pytest.raises(ValidationError, match="above max_rate"):
        SaturationSpec(slo_tpot_p99_ms=100, min_rate=10, max_rate=1)
    with pytest.raises(ValidationError, match="extra"):
        PerfSweep.model_validate({"saturation": {"slo_ttft_p99_ms": 1, "slo": 2}})


def test_performance_blocks_without_saturation_still_read() -> None:
    old = {"sweep": [], "ttft_ms": None}
    assert Performance.model_validate(old).saturation == []


@dataclass
class QueueBackend(ModelFreeBackend):
    """One FIFO server in virtual time: each request takes `service_s`; TTFT includes the wait in the queue."""

    name: ClassVar[str] = "queue"
    service_s: float = 0.1
    prefill_s: float = 0.02

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        free_at = 0.0
        for i, request in enumerate(requests):
            arrival = offsets[i] if offsets is not None else 0.0
            start = max(arrival, free_at)
            free_at = start + self.service_s
            n_out = request.params.max_new_tokens
            yield Completion(
                request_id=request.request_id,
                text="x" * n_out,
                output_tokens=n_out,
                ttft_ms=(start - arrival + self.prefill_s) * 1000,
                latency_ms=(free_at - arrival) * 1000,
            )


def test_run_saturation_finds_a_queueing_servers_capacity_without_a_clock() -> None:
    # capacity 10 requests/s: a TTFT p99 bound of 1 s is met at low rates and missed near capacity
    spec = SaturationSpec(
        slo_ttft_p99_ms=1000, min_rate=1, max_rate=64, requests_per_point=40, closed_loop_concurrency=None
    )
    sweep = PerfSweep(input_tokens=[8], output_tokens=[4], saturation=spec)
    target = PerfTarget(
        QueueBackend(), None, None, max_model_len=None, seed=0, needs_text=False, vocab_size=1000
    )
    [result] = run_saturation(target, sweep)
    assert result.rate_per_s is not None and 2 <= result.rate_per_s < 12
    assert result.bound_by and set(result.bound_by) <= {"ttft_p99", "saturated"}
    rates = [p for p in result.probes if p.kind == "rate"]
    assert rates[0].offered_rate_per_s == 1 and rates[0].passed
    assert all(p.point.n_requests == 40 and p.point.error is None for p in rates)
    assert all(p.arrival_rate_per_s is not None for p in rates)


def test_run_saturation_skips_a_shape_that_does_not_fit_the_model() -> None:
    sweep = PerfSweep(input_tokens=[100], output_tokens=[4], saturation=SaturationSpec(slo_ttft_p99_ms=1))
    target = PerfTarget(
        QueueBackend(), None, None, max_model_len=50, seed=0, needs_text=False, vocab_size=1000
    )
    [result] = run_saturation(target, sweep)
    assert (
        result.rate_per_s is None and result.probes == [] and "exceeds max_model_len" in (result.note or "")
    )
