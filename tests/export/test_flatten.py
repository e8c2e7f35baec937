"""What every tracker receives: parameters that say what was run, metrics with their intervals, tags."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmbench.config.suite import load_suite
from llmbench.errors import ResultsFileError, UserInputError
from llmbench.export.flatten import metrics, params, tags, unique_keys
from llmbench.export.items import load_items, study_of
from llmbench.results.schema import Distribution, Performance, PerfPoint, SaturationResult
from llmbench.run.perf import sweep_points
from llmbench.run.workloads import workload_points
from tests.export.helpers import two_runs, write_runs, write_study


def test_params_name_the_model_backend_suite_settings_and_fingerprints() -> None:
    run = two_runs()[0]
    got = params(run)
    assert got["model_name"] == "tiny-a" and got["suite_name"] == "math" and got["backend.backend"] == "vllm"
    assert got["backend.dtype"] == "bfloat16"
    assert got["fingerprint.chat_template"] == "c-5e6f"
    assert got["task.gsm8k.fingerprint.prompt_template"] == "p-3c4d"
    assert got["environment.device"] == "NVIDIA H100 80GB HBM3"
    assert all(isinstance(v, str) for v in got.values())


def test_metrics_carry_each_task_metric_with_its_interval_and_the_performance_figures() -> None:
    run = two_runs()[0]
    got = metrics(run)
    acc = run.tasks[0].metrics["accuracy"]
    assert got["gsm8k/accuracy"] == acc.value
    assert got["gsm8k/accuracy_ci_low"] == acc.ci_low and got["gsm8k/accuracy_ci_high"] == acc.ci_high
    assert got["suite/score"] == pytest.approx(run.suite_score.value if run.suite_score else math.nan)
    assert got["perf/ttft_ms_p50"] == run.performance.ttft_ms.p50  # type: ignore[union-attr]
    assert got["perf/output_tokens_per_s"] == 2400.0
    assert got["sweep/in512_out128_c16/output_tokens_per_s"] > 0  # a file from before points knew their task
    assert got["gsm8k/count_wrong"] + got["gsm8k/count_correct"] + got["gsm8k/count_unparsed"] == 12


def test_metrics_leave_out_numbers_that_are_not_finite() -> None:
    run = two_runs()[0]
    run.performance.energy_j = math.inf
    assert "perf/energy_j" not in metrics(run)


def test_a_results_file_in_a_study_folder_is_tagged_with_its_study_and_cell(tmp_path: Path) -> None:
    paths = write_runs(tmp_path, two_runs())
    write_study(tmp_path, paths[0])
    assert study_of(paths[1]) is None
    items = load_items(
        [tmp_path], lambda p: "<html></html>"
    )  # the folder: its manifest is not a results file
    assert [i.path for i in items] == sorted(paths)
    tagged = {i.run.run_id: tags(i) for i in items}
    first = tagged[items[[i.path for i in items].index(paths[0])].run.run_id]
    assert first["llmbench.study"] == "quant-sweep" and first["llmbench.study_cell"] == "math-tiny-a-seed0"
    assert first["llmbench.run_id"] == "tiny-a-math-2026-11-20"
    assert len(first["llmbench.results_sha256"]) == 64


def test_a_broken_study_manifest_does_not_stop_the_export(tmp_path: Path) -> None:
    (path,) = write_runs(tmp_path, two_runs()[:1])
    (tmp_path / "study.json").write_text("{not json", encoding="utf-8")
    assert study_of(path) is None


def test_a_file_that_is_not_a_results_file_fails_before_anything_is_exported(tmp_path: Path) -> None:
    good = write_runs(tmp_path, two_runs()[:1])[0]
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(ResultsFileError, match="not an llmbench results file"):
        load_items([good, bad], lambda p: "")
    with pytest.raises(UserInputError, match="at least one"):
        load_items([], lambda p: "")


def _serving_points() -> list[PerfPoint]:
    """The points a run of suites/serving.yaml records, task by task: each workload point (caching on
    and off for the shared prefixes), each trace replay, each gamma-rate point, with the fields the runner sets."""
    points = []
    for task in load_suite("serving").config.tasks:
        sweep = task.perf
        assert sweep is not None
        w = sweep.workload
        common = {"task": task.name, "n_requests": 6, "output_tokens_per_s": 10.0, "ttft_ms": _dist(50.0)}
        if w is None:
            for spec in sweep_points(sweep):
                rated = spec.request_rate is not None
                arrival = {"arrival_process": sweep.arrival.process, "burstiness": sweep.arrival.burstiness}
                points.append(
                    PerfPoint(
                        input_tokens=spec.input_tokens, output_tokens=spec.output_tokens,
                        concurrency=spec.concurrency, request_rate=spec.request_rate,
                        **(arrival if rated else {}), **common,
                    )
                )  # fmt: skip
            continue
        for spec in workload_points(sweep):
            trace = None
            if w.kind == "trace":
                trace = f"{Path(w.path).name} (auto, 12 requests, time x{w.time_scale:g})"
            points.append(
                PerfPoint(
                    input_tokens=spec.input_tokens or 40, output_tokens=spec.output_tokens or 20,
                    concurrency=spec.concurrency, request_rate=spec.request_rate, workload=w.kind,
                    prefix_caching=True if spec.prefix_caching is None else spec.prefix_caching,
                    arrival_process="trace" if trace else None, trace=trace, **common,
                )
            )  # fmt: skip
    return points


def _dist(value: float) -> Distribution:
    return Distribution(mean=value, p50=value, p90=value, p99=value, min=value, max=value, n=6)


def test_every_point_of_the_serving_suite_gets_metrics_of_its_own() -> None:
    points = _serving_points()
    assert {p.task for p in points} == {t.name for t in load_suite("serving").config.tasks}
    caching = [p.prefix_caching for p in points if p.task == "shared_prefix"]
    assert sorted(caching) == [False, True]  # same shape, caching on and off: two points
    run = two_runs()[0]
    run.performance.sweep = points
    got = [k for k in metrics(run) if k.startswith("sweep/")]
    per_point = [
        metrics(two_runs()[0].model_copy(update={"performance": Performance(sweep=[p])})) for p in points
    ]
    assert len(got) == sum(
        len([k for k in m if k.startswith("sweep/")]) for m in per_point
    )  # none overwritten
    keys = {k.rsplit("/", 1)[0] for k in got}
    assert len(keys) == len(points)
    assert "sweep/shared_prefix/shared_prefix_in320_out8_c2_cache_on" in keys
    assert "sweep/shared_prefix/shared_prefix_in320_out8_c2_cache_off" in keys
    assert "sweep/trace_mooncake/trace_synthetic-mooncake.jsonl_cache_on" in keys
    assert "sweep/bursty_arrivals/in64_out8_r4_gamma0.5" in keys
    assert not any("None" in k for k in keys)


def test_points_that_nothing_tells_apart_still_keep_their_own_metrics() -> None:
    point = PerfPoint(input_tokens=8, output_tokens=4, concurrency=1, n_requests=2, output_tokens_per_s=3.0)
    run = two_runs()[0]
    run.performance.sweep = [
        point,
        point.model_copy(update={"output_tokens_per_s": 5.0}),
    ]  # older file: no task
    got = metrics(run)
    assert got["sweep/in8_out4_c1/output_tokens_per_s"] == 3.0
    assert got["sweep/in8_out4_c1_2/output_tokens_per_s"] == 5.0
    assert unique_keys(["a", "a_2", "a"]) == ["a", "a_2", "a_3"]


def test_the_saturation_searchs_findings_are_metrics() -> None:
    run = two_runs()[0]
    found = SaturationResult(
        task="capacity", input_tokens=512, output_tokens=128, rate_per_s=4.0, goodput_per_s=3.9,
        max_throughput_per_s=9.5, note="stopped after max_probes (6)",
    )  # fmt: skip
    run.performance.saturation = [found, found.model_copy(update={"input_tokens": 64, "rate_per_s": None})]
    got = metrics(run)
    assert got["saturation/capacity/in512_out128/rate_per_s"] == 4.0
    assert got["saturation/capacity/in512_out128/goodput_per_s"] == 3.9
    assert got["saturation/capacity/in512_out128/max_throughput_per_s"] == 9.5
    assert got["saturation/capacity/in512_out128/probes"] == 0.0
    assert "saturation/capacity/in64_out128/rate_per_s" not in got  # even the lowest rate missed
