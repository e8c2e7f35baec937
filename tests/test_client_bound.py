"""A point is marked client-bound where its schedule lag or its client's CPU shows the client set the figures."""

from __future__ import annotations

from llmbench.config.suite import PerfSweep
from llmbench.results.schema import PerfPoint
from llmbench.run.point_measure import PointSpec, summarise_point, with_client_load
from llmbench.telemetry.nvml import TelemetryWindow
from llmbench.types import Completion

SPEC = PointSpec(32, 16, request_rate=320.0)


def point_of(lags: list[float | None], ttft_ms: float = 22.0, cpu_share: float | None = None) -> PerfPoint:
    done = [
        Completion(
            f"r{i}", "x", output_tokens=16, ttft_ms=ttft_ms, latency_ms=ttft_ms + 60, schedule_lag_ms=lag
        )
        for i, lag in enumerate(lags)
    ]
    point = summarise_point(SPEC, 32, len(done), done, 1.0, TelemetryWindow(), PerfSweep())
    return with_client_load(point, cpu_share)


def test_a_point_whose_requests_went_out_on_time_is_not_client_bound() -> None:
    point = point_of([0.1] * 99 + [0.5])
    assert point.client_bound is False and point.note is None
    assert point.schedule_lag_ms.p99 <= 0.5


def test_a_lag_p99_above_a_tenth_of_ttft_marks_the_point_in_its_note() -> None:
    point = point_of([0.1] * 90 + [3.0] * 10)  # 3 ms > 2.2 ms, a tenth of the 22 ms TTFT
    assert point.client_bound is True
    assert point.note.startswith("client-bound: schedule lag p50/p99 0.1/3.0 ms > 2.2 ms")


def test_the_lag_bound_is_at_most_five_ms_however_long_the_ttft() -> None:
    assert point_of([6.0] * 10, ttft_ms=2000.0).client_bound is True
    assert point_of([4.0] * 10, ttft_ms=2000.0).client_bound is False


def test_a_saturated_client_process_marks_a_closed_loop_point() -> None:
    point = point_of([None] * 4, cpu_share=0.97)
    assert point.client_bound is True and "client CPU 97% of a core" in point.note
    assert point_of([None] * 4).client_bound is None  # nothing measured
