"""The regression gate: fails on a real regression, passes on noise, reads its thresholds from YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench import api
from llmbench.analysis.compare import build_comparison
from llmbench.analysis.gate import (
    DEFAULT_GATES,
    GateThresholds,
    check_regressions,
    gate_report,
    load_thresholds,
)
from llmbench.errors import ConfigError, UserInputError
from llmbench.report.markdown import row_name
from llmbench.results.io import write_results
from tests.factories import make_run, performance, verdicts, with_flips


def _break(values: list[float], k: int) -> list[float]:
    """The same verdicts with the first k right answers made wrong."""
    out, broken = list(values), 0
    for i, v in enumerate(out):
        if v == 1.0 and broken < k:
            out[i], broken = 0.0, broken + 1
    return out


BASE = verdicts(400, 0.7, seed=7)
OTHER = verdicts(200, 0.5, seed=8)


def test_gate_fails_on_a_crafted_regression() -> None:
    baseline = make_run("m", {"gsm8k": BASE, "math": OTHER}, perf=performance(ttft_ms=40, tokens_per_s=2400))
    candidate = make_run(
        "m",
        {"gsm8k": _break(BASE, 40), "math": OTHER},
        perf=performance(ttft_ms=52, tokens_per_s=2300, seed=1),
    )
    found = check_regressions(baseline, candidate, GateThresholds())
    by_metric = {(r.task, r.metric): r for r in found}
    quality = by_metric[("gsm8k", "accuracy")]
    assert quality.kind == "quality" and quality.p_value is not None and quality.p_value < 0.05
    assert quality.baseline - quality.candidate == pytest.approx(0.1)
    assert "gsm8k accuracy fell" in str(quality) and "mcnemar" in str(quality) and "\n" not in str(quality)
    assert ("math", "accuracy") not in by_metric
    assert ("(performance)", "output_tokens_per_s") not in by_metric  # -4% is inside the 10% allowed


def test_latency_of_a_quality_run_is_shown_so_named_and_never_gated() -> None:
    """A quality run's TTFT is its quality samples' (batched, answers of any length): 40 -> 80 ms fails no
    gate; latency is gated at perf sweep points only, and the comparison names what it was measured on."""
    baseline = make_run("m", {"gsm8k": BASE}, perf=performance(ttft_ms=40, tokens_per_s=2400))
    candidate = make_run("m", {"gsm8k": BASE}, perf=performance(ttft_ms=80, tokens_per_s=2400, seed=1))
    report = gate_report(baseline, candidate, GateThresholds())
    assert report.regressions == []
    assert not [c for c in report.checks if c.metric.startswith(("ttft", "tpot", "e2e"))]
    assert any(
        "latency in quality run (TTFT, TPOT, E2E) is shown, not gated" in x for x in report.lines(0.05)
    )
    rows = build_comparison([baseline, candidate]).section("performance")
    ttft = next(r for r in rows if r.metric == "ttft_ms p50")
    assert row_name(ttft) == "math (latency in quality run)"
    assert row_name(next(r for r in rows if r.metric == "output_tokens_per_s")) == "math"


def test_gate_passes_on_noise_between_seeds() -> None:
    baseline = make_run("m", {"gsm8k": with_flips(BASE, 0.08, seed=1)}, perf=performance(seed=1))
    candidate = make_run("m", {"gsm8k": with_flips(BASE, 0.08, seed=2)}, perf=performance(seed=2))
    assert check_regressions(baseline, candidate, GateThresholds()) == []


def test_a_significant_drop_within_tolerance_passes() -> None:
    big = verdicts(3000, 0.7, seed=3)
    baseline = make_run("m", {"gsm8k": big})
    candidate = make_run("m", {"gsm8k": _break(big, 45)})  # -1.5 points, every flip one way: p tiny
    assert check_regressions(baseline, candidate, GateThresholds()) == []
    strict = GateThresholds.model_validate({"quality": {"default": 0.01}})
    # A one-task suite's score is that task's accuracy: one regression, not two.
    assert [r.metric for r in check_regressions(baseline, candidate, strict)] == ["accuracy"]


def test_a_large_but_insignificant_drop_passes() -> None:
    small = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    baseline, candidate = make_run("m", {"t": small}), make_run("m", {"t": _break(small, 2)})
    assert check_regressions(baseline, candidate, GateThresholds()) == []


def test_per_metric_glob_overrides_the_default() -> None:
    baseline = make_run("m", {"gsm8k": BASE, "math": BASE})
    candidate = make_run("m", {"gsm8k": _break(BASE, 40), "math": BASE})
    lenient = GateThresholds.model_validate({"quality": {"metrics": {"gsm8k/*": 0.2}}})
    assert lenient.quality_threshold("math", "gsm8k", "accuracy") == 0.2
    assert lenient.quality_threshold("math", "math", "accuracy") == 0.02
    assert [r.metric for r in check_regressions(baseline, candidate, lenient)] == ["suite_score"]
    lenient.quality.suite_score = False
    assert check_regressions(baseline, candidate, lenient) == []


def test_performance_defaults_merge_and_null_switches_one_off() -> None:
    t = GateThresholds.model_validate(
        {"performance": {"ttft_ms p50": None, "ttft_ms p90": None, "load_time_s": 0.5}}
    )
    assert t.performance_threshold("ttft_ms p50") is None
    assert t.performance_threshold("peak_vram_mib") == 0.05
    assert t.performance_threshold("load_time_s") == 0.5
    baseline = make_run("m", {"t": BASE}, perf=performance(ttft_ms=40))
    candidate = make_run("m", {"t": BASE}, perf=performance(ttft_ms=60, peak_vram_mib=19000))
    names = {r.metric for r in check_regressions(baseline, candidate, t)}
    assert names == {"peak_vram_mib"}


def test_the_shipped_gates_yaml_loads_with_the_documented_defaults() -> None:
    t = load_thresholds(DEFAULT_GATES)
    assert t.alpha == 0.05 and t.quality.default == 0.02
    assert t.performance_threshold("ttft_ms p50") == 0.10
    assert t.performance_threshold("output_tokens_per_s") == 0.10
    assert t.performance_threshold("peak_vram_mib") == 0.05
    assert t.performance_threshold("energy_per_output_token_j") == 0.10
    assert load_thresholds(None) == t


def test_an_unknown_key_in_gates_yaml_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("alpha: 0.05\nquality:\n  default: 0.02\n  primary_olny: true\n")
    with pytest.raises(ConfigError, match=r"gates.yaml:4: unknown key 'primary_olny'.*primary_only"):
        load_thresholds(path)


def test_an_out_of_range_alpha_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gates.yaml"
    path.write_text("alpha: 1.5\n")
    with pytest.raises(ConfigError, match=r"gates.yaml:1: alpha"):
        load_thresholds(path)


def test_a_task_missing_from_the_candidate_fails_the_gate() -> None:
    baseline = make_run("m", {"gsm8k": BASE, "math": OTHER})
    candidate = make_run("m", {"gsm8k": BASE})
    found = check_regressions(baseline, candidate, GateThresholds())
    missing = [r for r in found if r.kind == "missing"]
    assert [(r.task, r.metric) for r in missing] == [("math", "accuracy")]
    assert "math/math accuracy is in the baseline but missing from the candidate" in str(missing[0])


def test_a_candidate_of_another_suite_fails_the_gate_with_one_reason() -> None:
    baseline = make_run("m", {"gsm8k": BASE}, suite="math")
    candidate = make_run("m", {"humaneval": BASE}, suite="coding")
    found = check_regressions(baseline, candidate, GateThresholds())
    assert [r.kind for r in found] == ["suite"]
    assert "suite 'coding' but the baseline ran 'math'" in str(found[0])


def test_a_performance_figure_missing_from_the_candidate_fails_the_gate() -> None:
    baseline = make_run("m", {"t": BASE}, perf=performance(peak_vram_mib=17000))
    candidate = make_run("m", {"t": BASE}, perf=performance(peak_vram_mib=None))
    found = check_regressions(baseline, candidate, GateThresholds())
    assert [(r.kind, r.metric) for r in found] == [("missing", "peak_vram_mib")]


def test_missing_rows_can_be_allowed_explicitly() -> None:
    baseline = make_run("m", {"gsm8k": BASE, "math": OTHER})
    candidate = make_run("m", {"gsm8k": BASE})
    lenient = GateThresholds.model_validate({"allow_missing": True})
    assert [r.kind for r in check_regressions(baseline, candidate, lenient)] == []


def test_over_many_candidates_the_gate_checks_the_baseline_suite_and_timings_on_its_backend_only(
    tmp_path: Path,
) -> None:
    base = write_results(
        make_run("m", {"gsm8k": BASE}, backend="transformers", run_id="base", perf=performance(ttft_ms=40)),
        tmp_path / "base.json",
    )
    tonight = make_run(
        "m", {"gsm8k": BASE}, backend="transformers", run_id="t", perf=performance(ttft_ms=41, seed=1)
    )
    other_engine = make_run(  # twice the TTFT on another engine: a comparison, not a regression
        "m", {"gsm8k": _break(BASE, 40)}, backend="vllm", run_id="v", perf=performance(ttft_ms=80, seed=2)
    )
    other_suite = make_run("m", {"schema": BASE}, suite="json", backend="transformers", run_id="j")
    for run in (tonight, other_engine, other_suite):
        write_results(run, tmp_path / "runs" / f"{run.run_id}.json")
    compared = api.compare([tmp_path / "runs"], baseline=base)
    found = api.gate(compared)
    assert [(f.regression.kind, f.regression.task) for f in found] == [("quality", "gsm8k")]
    scope = api.gate_scope(compared)
    assert len(scope) == 2
    assert any(
        "m · vllm · math ran on vllm, the baseline on transformers: quality gated, timings not" in s
        for s in scope
    )
    assert any("suite 'json', the baseline 'math': not gated" in s for s in scope)


def test_a_gate_whose_candidates_all_ran_another_suite_is_bad_input(tmp_path: Path) -> None:
    base = write_results(make_run("m", {"gsm8k": BASE}), tmp_path / "base.json")
    other = write_results(make_run("m", {"schema": BASE}, suite="json"), tmp_path / "json.json")
    with pytest.raises(UserInputError, match="no candidate ran the baseline's suite 'math'"):
        api.gate(api.compare([other], baseline=base))


def _nights(folder: Path, scores: dict[str, list[float]]) -> list[Path]:
    """One run of a single setting per night, written into `folder` under its date."""
    return [
        write_results(
            make_run(
                "m", {"gsm8k": values}, created_at=f"2026-01-{day}T02:00:00+00:00", run_id=f"night-{day}"
            ),
            folder / f"math-m-2026-01-{day}.json",
        )
        for day, values in scores.items()
    ]


def test_a_nightly_folder_is_gated_on_its_latest_run_only(tmp_path: Path) -> None:
    base = write_results(make_run("m", {"gsm8k": BASE}, run_id="base"), tmp_path / "base.json")
    _nights(tmp_path / "nightly", {"01": _break(BASE, 40), "02": _break(BASE, 40), "03": BASE})
    compared = api.compare([tmp_path / "nightly"], baseline=base)
    assert [c.run_id for c in compared.candidates] == ["night-03"]
    assert compared.notes and "3 results files: the latest run" in compared.notes[0]
    assert api.gate(compared) == []  # the old nights' regressions are history, not tonight's verdict


def test_with_a_baseline_files_of_one_setting_are_gated_on_the_latest_too(tmp_path: Path) -> None:
    base = write_results(make_run("m", {"gsm8k": BASE}, run_id="base"), tmp_path / "base.json")
    files = _nights(tmp_path, {"01": _break(BASE, 40), "03": BASE})
    compared = api.compare(files, baseline=base)
    assert [c.run_id for c in compared.candidates] == ["night-03"] and compared.notes


def test_two_files_of_one_setting_without_a_baseline_are_both_compared(tmp_path: Path) -> None:
    files = _nights(tmp_path, {"01": BASE, "02": BASE})
    compared = api.compare(files)
    assert [c.run_id for c in compared.candidates] == ["night-01", "night-02"] and compared.notes == []
    folder = api.compare([tmp_path])  # the same two as a folder: a nightly folder, its latest run
    assert [c.run_id for c in folder.candidates] == ["night-02"] and folder.notes


def _flipped(n: int, worse: int, better: int, seed: int) -> tuple[list[float], list[float]]:
    """Baseline and candidate verdicts on n samples that differ on `worse` samples the candidate lost and
    `better` samples it won."""
    rest = verdicts(n - worse - better, 0.7, seed=seed)
    return [1.0] * worse + [0.0] * better + rest, [0.0] * worse + [1.0] * better + rest


def test_worse_is_a_one_sided_question() -> None:
    base, cand = _flipped(400, 13, 5, seed=4)  # McNemar mid-p: two-sided 0.064, one-sided 0.032
    strict = GateThresholds.model_validate({"quality": {"default": 0.01}})
    found = check_regressions(make_run("m", {"t": base}), make_run("m", {"t": cand}), strict)
    assert [r.metric for r in found] == ["accuracy"]  # the two-sided test let it pass
    assert "mcnemar one-sided p=0.0318, Holm-adjusted 0.0318 < 0.05 over 1 test" in str(found[0])
    assert check_regressions(make_run("m", {"t": cand}), make_run("m", {"t": base}), strict) == []


def test_holm_corrects_over_the_gated_family_and_says_its_size() -> None:
    pairs = {f"t{i}": _flipped(400, 13, 5, seed=10 + i) for i in range(4)}
    baseline = make_run("m", {name: b for name, (b, _) in pairs.items()})
    candidate = make_run("m", {name: c for name, (_, c) in pairs.items()})
    strict = GateThresholds.model_validate({"quality": {"default": 0.01}})
    report = gate_report(baseline, candidate, strict)
    assert report.family == 5  # four tasks and the suite score
    # Each task alone (one-sided p = 0.032) is not enough over five tests; the suite's pooled drop is.
    assert [r.metric for r in report.regressions] == ["suite_score"]
    assert "over 5 tests" in str(report.regressions[0])
    assert report.lines(strict.alpha)[0].startswith("gate: 5 tests, Holm-corrected to alpha 0.05")
