"""Repeats of one run (another seed) become one column: between-run means, their intervals, the run count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmbench import api
from llmbench.analysis.compare import build_comparison
from llmbench.analysis.repeats import group_repeats, merge_repeats
from llmbench.results.io import write_results
from llmbench.results.schema import MetricValue, PerfPoint, RunResult
from tests.factories import make_run, performance, verdicts, with_flips

TRUTH = verdicts(200, 0.7, seed=5)


def _seeds(model: str = "m", seeds: tuple[int, ...] = (0, 1, 2), **kwargs: object) -> list[RunResult]:
    return [
        make_run(
            model,
            {"gsm8k": with_flips(TRUTH, 0.1, seed=100 + s)},
            seed=s,
            perf=performance(ttft_ms=40 + 5 * s, seed=s),
            **kwargs,  # type: ignore[arg-type]
        )
        for s in seeds
    ]


def _accuracy(run: RunResult) -> MetricValue:
    return run.tasks[0].metrics["accuracy"]


def test_three_seeds_become_one_column_with_the_between_run_mean() -> None:
    seeds = _seeds()
    other = make_run("other", {"gsm8k": verdicts(200, 0.5, seed=9)}, seed=0)
    merged = merge_repeats([*seeds, other])
    assert len(merged) == 2 and merged[1] is other
    m = _accuracy(merged[0])
    assert m.value == pytest.approx(np.mean([_accuracy(r).value for r in seeds]))
    assert m.n == 200 and m.method is not None and "3-repeats" in m.method
    assert m.ci_low is not None and m.ci_high is not None and m.ci_low < m.value < m.ci_high
    assert merged[0].settings.seeds == [0, 1, 2]
    c = build_comparison(merged)
    assert c.labels == ["m (mean of 3 runs)", "other"]


def test_merged_performance_is_the_between_run_mean_with_an_interval() -> None:
    seeds = _seeds()
    perf = merge_repeats(seeds)[0].performance
    assert perf.ttft_ms is not None
    p50s = [r.performance.ttft_ms.p50 for r in seeds if r.performance.ttft_ms]
    assert perf.ttft_ms.p50 == pytest.approx(np.mean(p50s))
    lo, hi = perf.ttft_ms.ci["p50"]
    assert lo < min(p50s) and hi > max(p50s)  # Student's t on 2 degrees of freedom is wide
    assert perf.output_tokens_per_s == pytest.approx(
        np.mean([r.performance.output_tokens_per_s for r in seeds])
    )


def test_repeats_average_each_sweep_point_with_its_own_not_another_of_the_same_shape() -> None:
    seeds = _seeds()
    for s, run in enumerate(seeds):
        base = PerfPoint(
            task="shared_prefix", workload="shared_prefix", input_tokens=320, output_tokens=8, concurrency=2,
            n_requests=6, prefix_caching=True, output_tokens_per_s=100.0 + s,
        )  # fmt: skip
        off = base.model_copy(update={"prefix_caching": False, "output_tokens_per_s": 10.0 + s})
        run.performance.sweep = [base, off]
    merged = merge_repeats(seeds)[0].performance.sweep
    assert [(p.prefix_caching, p.output_tokens_per_s) for p in merged] == [(True, 101.0), (False, 11.0)]


def test_a_metric_that_is_not_a_mean_over_samples_uses_the_spread_over_runs() -> None:
    seeds = _seeds()
    for i, run in enumerate(seeds):  # e.g. a per-instruction share: not the mean of the per-sample values
        run.tasks[0].metrics["instruction_strict"] = MetricValue(value=0.6 + 0.01 * i, n=500)
    m = merge_repeats(seeds)[0].tasks[0].metrics["instruction_strict"]
    assert m.value == pytest.approx(0.61) and m.method == "t-over-3-runs" and m.n == 3


def test_runs_with_the_same_seed_are_not_repeats() -> None:
    nights = [
        make_run("m", {"gsm8k": TRUTH}, seed=0, created_at=f"2026-11-0{d}T02:00:00+00:00") for d in (1, 2)
    ]
    assert [len(g) for g in group_repeats(nights)] == [1, 1]
    unseeded = [make_run("m", {"gsm8k": TRUTH}, run_id=f"r{i}") for i in range(2)]  # no seed recorded
    assert [len(g) for g in group_repeats(unseeded)] == [1, 1]


def test_runs_of_another_model_or_settings_are_not_repeats() -> None:
    a = _seeds(seeds=(0,))[0]
    other_model = _seeds("m2", seeds=(1,))[0]
    other_backend = _seeds(seeds=(2,), backend="transformers")[0]
    assert [len(g) for g in group_repeats([a, other_model, other_backend])] == [1, 1, 1]


def test_a_merged_column_is_tested_against_the_baseline_sample_by_sample() -> None:
    baseline = make_run("base", {"gsm8k": TRUTH}, seed=0)
    c = build_comparison([baseline, *merge_repeats(_seeds())], baseline=baseline)
    d = next(r for r in c.rows if r.metric == "accuracy").deltas[1]
    assert d is not None and d.test == "sign-flip" and d.n_paired == 200


def _compare_json(tmp_path: Path, keep_repeats: bool) -> dict[str, object]:
    paths = [write_results(r, tmp_path / f"{r.run_id}.json") for r in _seeds()]
    out = tmp_path / f"compare-{keep_repeats}.json"
    out.write_text(api.render("json", api.compare(paths, keep_repeats=keep_repeats)))
    return json.loads(out.read_text())  # type: ignore[no-any-return]


def test_compare_merges_repeats_unless_asked_to_keep_them_apart(tmp_path: Path) -> None:
    merged = _compare_json(tmp_path, keep_repeats=False)
    assert [c["label"] for c in merged["columns"]] == ["m (mean of 3 runs)"]  # type: ignore[index]
    apart = _compare_json(tmp_path, keep_repeats=True)
    assert len(apart["columns"]) == 3  # type: ignore[arg-type]
