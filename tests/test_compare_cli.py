"""`llmbench compare --fail-on-regression` and `llmbench history` run as a user runs them, in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.results.io import write_results
from tests.e2e.helpers import llmbench
from tests.factories import make_run, performance, verdicts, with_flips

BASE = verdicts(400, 0.7, seed=7)


def _break(values: list[float], k: int) -> list[float]:
    """The same verdicts with the first k right answers made wrong."""
    out, broken = list(values), 0
    for i, v in enumerate(out):
        if v == 1.0 and broken < k:
            out[i], broken = 0.0, broken + 1
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("results")
    runs = {
        "base": make_run("m", {"gsm8k": with_flips(BASE, 0.08, seed=1)}, perf=performance(seed=1)),
        "noise": make_run("m", {"gsm8k": with_flips(BASE, 0.08, seed=2)}, perf=performance(seed=2)),
        "regressed": make_run("m", {"gsm8k": _break(BASE, 60)}, perf=performance(seed=3)),
    }
    return {name: write_results(run, folder / f"{name}.json") for name, run in runs.items()}


def test_the_gate_exits_1_on_a_crafted_regression_and_says_why_on_stderr(files: dict[str, Path]) -> None:
    done = llmbench(
        "compare", "--baseline", str(files["base"]), str(files["regressed"]), "--fail-on-regression"
    )
    assert done.returncode == 1, done.stderr
    assert "REGRESSION m: math/gsm8k accuracy fell" in done.stderr
    assert "REGRESSION" not in done.stdout


def test_the_gate_exits_0_on_noise_between_seeds(files: dict[str, Path]) -> None:
    done = llmbench("compare", "--baseline", str(files["base"]), str(files["noise"]), "--fail-on-regression")
    assert done.returncode == 0, done.stderr
    assert "no significant regression" in done.stderr


def test_json_output_stays_valid_when_the_gate_fails(files: dict[str, Path]) -> None:
    done = llmbench(
        "compare",
        "--baseline",
        str(files["base"]),
        str(files["regressed"]),
        "--fail-on-regression",
        "--format",
        "json",
    )
    assert done.returncode == 1
    data = json.loads(done.stdout)  # nothing but the comparison on stdout
    assert len(data["columns"]) == 2 and data["baseline_named"] is True
    assert "REGRESSION" in done.stderr


def test_history_takes_the_documented_task_dot_metric(tmp_path: Path) -> None:
    runs = [
        make_run("m", {"gsm8k": verdicts(50, 0.5, seed=day)}, created_at=f"2026-11-0{day}T02:00:00+00:00")
        for day in (1, 2, 3)
    ]
    for run in runs:
        write_results(run, tmp_path / f"{run.created_at[:10]}.json")
    done = llmbench("history", str(tmp_path), "--metric", "gsm8k.accuracy")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "2026-11-0" in line]
    assert len(rows) == 3
    expected = [f"{r.tasks[0].metrics['accuracy'].value:.4g}" for r in runs]
    assert all(f" {value} " in row for value, row in zip(expected, rows, strict=True)), rows
    assert len(set(expected)) > 1  # the nights differ, so each row shows its own value


def test_history_of_an_unknown_metric_exits_2_listing_what_there_is(tmp_path: Path) -> None:
    write_results(make_run("m", {"gsm8k": verdicts(20, 0.5, seed=1)}), tmp_path / "night.json")
    done = llmbench("history", str(tmp_path), "--metric", "gsm8k.acuracy")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "no run in" in lines[0] and "'gsm8k.acuracy'" in lines[0]
    assert "gsm8k.accuracy" in lines[0] and "performance.ttft_ms.p50" in lines[0]


def test_the_gate_over_a_nightly_folder_judges_tonight_not_every_night(tmp_path: Path) -> None:
    base = write_results(make_run("m", {"gsm8k": BASE}, run_id="base"), tmp_path / "base.json")
    for day, values in (("01", _break(BASE, 60)), ("02", _break(BASE, 60)), ("03", BASE)):
        run = make_run("m", {"gsm8k": values}, created_at=f"2026-01-{day}T02:00:00+00:00", run_id=f"n{day}")
        write_results(run, tmp_path / "nightly" / f"math-m-2026-01-{day}.json")
    done = llmbench(
        "compare",
        "--baseline",
        str(base),
        str(tmp_path / "nightly"),
        "--fail-on-regression",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    assert "3 results files: the latest run" in done.stderr and "no significant regression" in done.stderr
    assert [c["run_id"] for c in json.loads(done.stdout)["columns"]] == ["base", "n03"]


def test_compare_over_a_study_folder_reads_its_cells_and_leaves_the_manifest_out(tmp_path: Path) -> None:
    from llmbench.study.manifest import StudyManifest, write_manifest

    for backend in ("vllm", "transformers"):
        write_results(make_run("m", {"gsm8k": BASE}, backend=backend), tmp_path / f"math-m-{backend}.json")
    write_manifest(StudyManifest(study="s", study_file="s.yaml", study_hash="h"), tmp_path)
    done = llmbench("compare", str(tmp_path), "--format", "json")
    assert done.returncode == 0, done.stderr
    assert sorted(c["backend"] for c in json.loads(done.stdout)["columns"]) == ["transformers", "vllm"]


def test_an_output_that_is_one_of_the_inputs_is_refused_and_left_as_it_was(files: dict[str, Path]) -> None:
    before = files["noise"].read_bytes()
    for args in (
        ("compare", str(files["base"]), str(files["noise"]), "-o", str(files["noise"])),
        ("compare", "--baseline", str(files["noise"]), str(files["base"]), "-o", str(files["noise"])),
        ("compare", str(files["base"].parent), "--format", "json", "-o", str(files["noise"])),
        ("report", str(files["base"]), str(files["noise"]), "-o", str(files["noise"])),
    ):
        done = llmbench(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "is one of the files read" in done.stderr and "internal error" not in done.stderr
        assert files["noise"].read_bytes() == before


def test_an_output_that_cannot_be_written_is_one_line_and_exit_2(
    files: dict[str, Path], tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("")
    done = llmbench(
        "compare", str(files["base"]), str(files["noise"]), "-o", str(tmp_path / "a-file" / "x.md")
    )
    assert done.returncode == 2, done.stderr
    assert "cannot be written" in done.stderr and "internal error" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # the error and, at most, its hint
