"""The gate judges every sweep point that baseline and candidate share, and names a point that disappeared."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llmbench import api
from llmbench.analysis.gate import GateThresholds, check_regressions
from llmbench.results.io import write_results
from llmbench.results.schema import Performance, PerfPoint, RunResult
from llmbench.scoring.stats import distribution
from tests.factories import make_run


def point(ttft_ms: float, *, concurrency: int = 4, seed: int = 0, goodput: float | None = None) -> PerfPoint:
    """A sweep point measured on 64 requests whose first token comes after about `ttft_ms`."""
    rng = np.random.default_rng(seed)
    return PerfPoint(
        task="throughput",
        input_tokens=512,
        output_tokens=128,
        concurrency=concurrency,
        n_requests=64,
        ttft_ms=distribution((ttft_ms + rng.normal(0, 0.3, 64)).tolist()),
        tpot_ms=distribution((8.0 + rng.normal(0, 0.1, 64)).tolist()),
        output_tokens_per_s=120.0 * concurrency,
        goodput_per_s=goodput,
        peak_vram_mib=17200.0,
    )


def perf_run(
    points: list[PerfPoint], run_id: str, created_at: str = "2026-11-20T02:00:00+00:00"
) -> RunResult:
    """A perf suite's run: no quality task and no run-level figures, only its sweep."""
    return make_run(
        "m", {}, suite="perf", run_id=run_id, created_at=created_at, perf=Performance(sweep=points)
    )


def test_a_sweep_point_whose_first_token_went_from_20_to_26_ms_fails_the_gate_naming_it() -> None:
    baseline = perf_run([point(20, concurrency=1), point(20, concurrency=4)], "base")
    candidate = perf_run([point(20, concurrency=1, seed=1), point(26, concurrency=4, seed=1)], "cand")
    found = check_regressions(baseline, candidate, GateThresholds())
    assert {(r.kind, r.task, r.metric) for r in found} == {
        ("performance", "point throughput in=512 out=128 conc=4", "ttft_ms p50"),
        ("performance", "point throughput in=512 out=128 conc=4", "ttft_ms p90"),
    }
    assert "perf/point throughput in=512 out=128 conc=4 ttft_ms p50 rose 2" in str(found[0])


def test_a_sweep_point_at_the_same_20_ms_passes() -> None:
    baseline = perf_run([point(20, concurrency=1), point(20, concurrency=4)], "base")
    candidate = perf_run([point(20, concurrency=1, seed=1), point(20, concurrency=4, seed=2)], "cand")
    assert check_regressions(baseline, candidate, GateThresholds()) == []


def test_a_sweep_point_missing_from_the_candidate_is_named_once() -> None:
    baseline = perf_run([point(20, concurrency=1), point(20, concurrency=4)], "base")
    candidate = perf_run([point(20, concurrency=1, seed=1)], "cand")
    found = check_regressions(baseline, candidate, GateThresholds())
    assert [str(r) for r in found] == [
        "perf sweep point throughput in=512 out=128 conc=4 is in the baseline but missing from the candidate"
    ]
    assert check_regressions(baseline, candidate, GateThresholds(allow_missing=True)) == []


def test_a_sweep_point_that_failed_in_the_candidate_is_named() -> None:
    baseline = perf_run([point(20)], "base")
    failed = point(20).model_copy(update={"error": "server closed the connection", "ttft_ms": None})
    found = check_regressions(baseline, perf_run([failed], "cand"), GateThresholds())
    assert [r.kind for r in found] == ["missing"] and "failed in the candidate: server closed" in str(
        found[0]
    )


def test_points_of_other_traffic_are_not_compared_and_goodput_is_gated_where_an_slo_is_set() -> None:
    baseline = perf_run([point(20, goodput=30.0)], "base")
    other_traffic = point(26, goodput=30.0).model_copy(
        update={"arrival_process": "poisson", "request_rate": 8.0}
    )
    candidate = perf_run([point(20, seed=1, goodput=24.0), other_traffic], "cand")
    found = check_regressions(baseline, candidate, GateThresholds())
    assert [(r.task, r.metric) for r in found] == [
        ("point throughput in=512 out=128 conc=4", "goodput_per_s")
    ]


def test_the_cli_gate_fails_a_slower_sweep_point_and_passes_the_same_one(tmp_path: Path) -> None:
    base = write_results(perf_run([point(20)], "base"), tmp_path / "base.json")
    slow = write_results(perf_run([point(26, seed=1)], "slow"), tmp_path / "slow.json")
    same = write_results(perf_run([point(20, seed=2)], "same"), tmp_path / "same.json")
    findings = api.gate(api.compare([slow], baseline=base))
    assert findings and all("conc=4" in str(f) for f in findings)
    assert api.gate(api.compare([same], baseline=base)) == []
