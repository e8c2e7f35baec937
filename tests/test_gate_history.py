"""Thresholds that know the noise (bands from the last good nights) and drift judged against a pinned
baseline and the median of those nights."""

from __future__ import annotations

import itertools
from pathlib import Path

from llmbench import api
from llmbench.analysis.gate import GateThresholds, check_regressions, gate_report
from llmbench.analysis.noise import noise_bands, successive_sd
from llmbench.results.io import write_results
from llmbench.results.schema import RunResult
from tests.test_gate_sweep import perf_run, point


def night(day: int, ttft_ms: float) -> RunResult:
    return perf_run([point(ttft_ms, seed=day)], f"night-{day:02d}", f"2026-11-{day:02d}T02:00:00+00:00")


def test_the_noise_band_ignores_a_steady_drift() -> None:
    assert successive_sd([1.0, 1.03, 1.06, 1.09]) == successive_sd([1.0, 1.03, 1.0, 1.03])


def test_seven_nights_of_three_percent_drift_fail_against_the_pinned_baseline_and_recent_nights() -> None:
    pinned = night(1, 20.0)
    good, failed_on = [pinned], None
    for day in range(2, 9):  # seven nights, each 3% slower than the one before
        tonight = night(day, 20.0 * 1.03 ** (day - 1))
        if check_regressions(pinned, tonight, GateThresholds(), good):
            failed_on = failed_on or day
        else:
            good.append(tonight)
    assert failed_on is not None and failed_on - 1 <= 7
    # The old scheme, each passing night the next baseline, never fails: every step is 3%.
    nights = [night(day, 20.0 * 1.03 ** (day - 1)) for day in range(1, 9)]
    assert all(check_regressions(a, b, GateThresholds()) == [] for a, b in itertools.pairwise(nights))


def test_a_step_inside_the_nights_noise_passes_and_the_same_step_on_quiet_nights_fails() -> None:
    pinned = night(1, 20.0)
    tonight = night(9, 22.4)  # +12%: over the 10% floor
    noisy = [night(day, 20.0 if day % 2 else 22.6) for day in range(1, 9)]
    quiet = [night(day, 20.0 + 0.05 * (day % 2)) for day in range(1, 9)]
    loud = gate_report(pinned, tonight, GateThresholds(), noisy)
    assert not [r for r in loud.regressions if r.metric == "ttft_ms p50"]
    line = next(x for x in loud.lines(0.05) if "ttft_ms p50" in x and "baseline" in x)
    assert "ttft_ms p50 +11.7%" in line and "noise band ±" in line and "from 7 nights: ok" in line
    calm = gate_report(pinned, tonight, GateThresholds(), quiet)
    found = [r for r in calm.regressions if r.metric == "ttft_ms p50"]
    assert found and "from 7 nights" in str(found[0]) and "Holm-adjusted" in str(found[0])


def test_bands_need_three_nights_and_the_window_keeps_the_last_ones() -> None:
    assert noise_bands([night(1, 20.0), night(2, 20.0)]) == {}
    nights = [night(day, 20.0 + day) for day in range(1, 9)]
    report = gate_report(
        nights[0], night(9, 27.0), GateThresholds.model_validate({"history": {"window": 4}}), nights
    )
    assert report.nights == 4 and report.lines(0.05)[0].endswith("from 4 good nights")


def test_the_gate_reads_good_nights_from_a_history_folder(tmp_path: Path) -> None:
    for day in range(1, 6):
        write_results(night(day, 20.0), tmp_path / "good" / f"{day}.json")
    base = write_results(night(1, 20.0), tmp_path / "pinned.json")
    cand = write_results(night(9, 20.0), tmp_path / "tonight.json")
    notes: list[str] = []
    assert api.gate(api.compare([cand], baseline=base), history=tmp_path / "good", notes=notes) == []
    assert notes[0].startswith("gate: ") and "from 5 good nights" in notes[0]
    assert any("noise band ±" in n and "the median of the good nights" in n for n in notes)
