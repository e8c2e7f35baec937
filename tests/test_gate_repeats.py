"""A candidate merged from repeats (other seeds) takes each figure's noise band from their spread, and the
decision line says so; `history` shows each gated figure's trend with the band of the last nights."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from llmbench import api
from llmbench.analysis.gate import GateThresholds, gate_report
from llmbench.analysis.noise import repeat_bands
from llmbench.analysis.repeats import merge
from llmbench.report.history_table import print_history
from llmbench.results.io import read_results, write_results
from llmbench.results.schema import Performance, RunResult
from tests.factories import make_run
from tests.test_gate_history import night
from tests.test_gate_sweep import point

PINNED = "2026-11-20T02:00:00+00:00"


def repeat(seed: int, ttft_ms: float) -> RunResult:
    """One repeat of tonight's perf run: same settings, its own seed."""
    perf = Performance(sweep=[point(ttft_ms, seed=seed)])
    return make_run("m", {}, suite="perf", created_at=f"2026-11-21T02:0{seed}:00+00:00", perf=perf, seed=seed)


def baseline() -> RunResult:
    return make_run("m", {}, suite="perf", created_at=PINNED, perf=Performance(sweep=[point(20.0)]), seed=0)


def ttft_lines(notes: list[str]) -> list[str]:
    return [n for n in notes if "ttft_ms p50" in n and "against the baseline" in n]


def test_quiet_repeats_fail_a_slowdown_past_the_floor_naming_their_band(tmp_path: Path) -> None:
    base = write_results(baseline(), tmp_path / "base.json")
    files = [write_results(repeat(s, 22.4 + 0.05 * s), tmp_path / f"r{s}.json") for s in (1, 2, 3)]
    notes: list[str] = []
    found = api.gate(api.compare(files, baseline=base), notes=notes)
    assert "from 3 repeats" in notes[0]
    assert [f for f in found if f.regression.metric == "ttft_ms p50"]
    assert "noise band ±" in ttft_lines(notes)[0] and "from 3 repeats: REGRESSED" in ttft_lines(notes)[0]


def test_noisy_repeats_pass_the_same_slowdown(tmp_path: Path) -> None:
    base = write_results(baseline(), tmp_path / "base.json")
    files = [
        write_results(repeat(s, v), tmp_path / f"r{s}.json") for s, v in ((1, 20.0), (2, 24.8), (3, 22.4))
    ]
    notes: list[str] = []
    found = api.gate(api.compare(files, baseline=base), notes=notes)
    assert not [f for f in found if f.regression.metric == "ttft_ms p50"]
    assert ttft_lines(notes)[0].endswith("from 3 repeats: ok")


def test_a_mean_of_repeats_is_judged_with_the_narrower_spread_of_a_mean() -> None:
    runs = [repeat(s, 20.0 + s) for s in (1, 2, 3, 4)]
    band = repeat_bands([], runs)[("point throughput in=512 out=128 conc=4", "ttft_ms p50")]
    assert (band.n, band.dof, band.candidate_runs, band.baseline_runs) == (4, 3, 4, 1)
    assert band.spread_factor("pinned") ** 2 == pytest.approx(1 / 4 + 1)
    pooled = repeat_bands(runs[:2], runs[2:])[("point throughput in=512 out=128 conc=4", "ttft_ms p50")]
    assert (pooled.dof, pooled.candidate_runs, pooled.baseline_runs) == (2, 2, 2)


def test_nights_give_the_band_where_they_have_one_and_repeats_do_not_override_them() -> None:
    nights = [night(day, 20.0 + 0.05 * (day % 2)) for day in range(1, 8)]
    runs = [repeat(s, v) for s, v in ((1, 20.0), (2, 24.8), (3, 22.4))]
    report = gate_report(baseline(), merge(runs), GateThresholds(), nights, ((), runs))
    assert report.nights == 7 and report.repeats == 0
    assert all("nights" in c.band for c in report.checks if c.band)


def test_history_shows_each_gated_figure_with_its_band(tmp_path: Path) -> None:
    for day in range(1, 9):
        write_results(night(day, 20.0 + 0.1 * (day % 2) + (3.0 if day == 8 else 0)), tmp_path / f"{day}.json")
    h = api.history(tmp_path)
    ttft = next(g for g in h.gated if g.metric == "ttft_ms p50" and g.where.startswith("point"))
    assert ttft.band is not None and ttft.band.n == 7 and ttft.outside(0.05) is True
    console = Console(width=200, record=True)
    print_history(h, console)
    text = console.export_text()
    assert "gated figures" in text and "noise band" in text and "outside" in text


def same_seed_repeat(i: int, ttft_ms: float, group: str | None) -> RunResult:
    """Run i of one `--repeat`: the seed of every other (0), the group `--repeat` gave them all."""
    run = make_run(
        "m",
        {},
        suite="perf",
        run_id=f"rep-{i}",
        created_at=f"2026-11-21T02:0{i}:00+00:00",
        perf=Performance(sweep=[point(ttft_ms, seed=i)]),
        seed=0,
    )
    return run.model_copy(update={"settings": run.settings.model_copy(update={"repeat_of": group})})


def test_repeats_of_one_seed_from_one_repeat_give_the_noise_band(tmp_path: Path) -> None:
    base = write_results(baseline(), tmp_path / "base.json")
    files = [
        write_results(same_seed_repeat(i, 22.4 + 0.05 * i, "r-1"), tmp_path / f"r{i}.json") for i in (1, 2, 3)
    ]
    notes: list[str] = []
    compared = api.compare(files, baseline=base)
    assert [c.run_id for c in compared.candidates] == ["rep-1+rep-2+rep-3"]
    found = api.gate(compared, notes=notes)
    assert "from 3 repeats" in notes[0] and [f for f in found if f.regression.metric == "ttft_ms p50"]
    assert ttft_lines(notes)[0].endswith("from 3 repeats: REGRESSED")


def test_runs_of_one_seed_without_a_repeat_stay_apart(tmp_path: Path) -> None:
    base = write_results(baseline(), tmp_path / "base.json")
    files = [write_results(same_seed_repeat(i, 22.4, None), tmp_path / f"r{i}.json") for i in (1, 2, 3)]
    compared = api.compare(files, baseline=base)
    assert [c.run_id for c in compared.candidates] == ["rep-3"]  # three nights: the latest is gated


def test_llmbench_run_repeat_marks_its_runs_as_one_group_that_compare_merges(tmp_path: Path) -> None:
    reference = api.model("tiny-qwen2", backend="reference")
    groups = []
    for folder in ("a", "b"):
        opts = api.RunOptions(limit=2, results_dir=tmp_path / folder)
        groups.append(api.repeat("suites/math.yaml", reference, repeat=3, opts=opts).paths)
    runs = [read_results(p) for p in groups[0]]
    assert len({r.settings.seed for r in runs}) == 1 and len({r.run_id for r in runs}) == 3
    assert len({r.settings.repeat_of for r in runs}) == 1 and runs[0].settings.repeat_of
    assert read_results(groups[1][0]).settings.repeat_of != runs[0].settings.repeat_of
    merged = api.compare(groups[0])
    assert len(merged.candidates) == 1 and merged.candidates[0].settings.repeat_run_ids == [
        r.run_id for r in runs
    ]
    both = api.compare([*groups[0], *groups[1]])  # two invocations: two columns of three runs each
    assert [len(c.settings.repeat_run_ids or []) for c in both.candidates] == [3, 3]
    assert len({c.settings.repeat_of for c in both.candidates}) == 2
