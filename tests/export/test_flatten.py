"""What every tracker receives: parameters that say what was run, metrics with their intervals, tags."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from llmbench.errors import ResultsFileError, UserInputError
from llmbench.export.flatten import metrics, params, tags
from llmbench.export.items import load_items, study_of
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
    assert got["sweep/in512_out128_c16/output_tokens_per_s"] > 0
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
