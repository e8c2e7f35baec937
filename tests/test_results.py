"""The results file: round-trips exactly, is written atomically, and bad files are one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.errors import ResultsFileError
from llmbench.results.io import read_header, read_results, write_results
from llmbench.results.schema import SCHEMA_VERSION, MetricValue, RunResult, SampleRecord, TaskResult


def make_result() -> RunResult:
    return RunResult(
        run_id="r1",
        llmbench_version="0",
        model={"name": "m"},
        model_name="m",
        backend={"backend": "x", "model": "m"},
        suite={"name": "s"},
        suite_name="s",
        suite_hash="abc",
        tasks=[
            TaskResult(
                name="t",
                scorer="exact",
                primary_metric="accuracy",
                metrics={"accuracy": MetricValue(value=0.5, stderr=0.1, ci_low=0.3, ci_high=0.7, n=10)},
            )
        ],
        samples=[SampleRecord(task="t", id="1", output="x", score=1.0, status="correct", ttft_ms=1.5)],
    )


def test_round_trip_is_exact(tmp_path: Path) -> None:
    result = make_result()
    path = write_results(result, tmp_path / "r.json")
    assert read_results(path) == result
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    write_results(make_result(), tmp_path / "r.json")
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = write_results(make_result(), tmp_path / "r.json")
    path.write_text(path.read_text()[:100])
    with pytest.raises(ResultsFileError, match="not a valid results file") as err:
        read_results(path)
    assert err.value.exit_code == 2


def test_newer_schema_version_says_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(make_result().model_dump() | {"schema_version": SCHEMA_VERSION + 1}))
    for read in (read_results, read_header):
        with pytest.raises(
            ResultsFileError, match=f"newer llmbench.*schema version {SCHEMA_VERSION + 1}"
        ) as err:
            read(path)
        assert "upgrade llmbench" in str(err.value) and err.value.exit_code == 2


def test_a_file_with_the_fields_of_version_3_is_written_as_version_3(tmp_path: Path) -> None:
    run = make_result()
    run.samples[0].itl_ms = [12.5, 13.0]
    path = write_results(run, tmp_path / "r.json")
    assert SCHEMA_VERSION == 4 and json.loads(path.read_text())["schema_version"] == 4
    assert read_results(path).samples[0].itl_ms == [12.5, 13.0]


def test_not_a_results_file(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(ResultsFileError, match="no schema_version"):
        read_results(path)


def test_invalid_field_names_its_path(tmp_path: Path) -> None:
    data = make_result().model_dump()
    data["tasks"][0]["metrics"]["accuracy"]["n"] = "many"
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFileError, match=r"tasks\.0\.metrics\.accuracy\.n"):
        read_results(path)


def test_a_code_task_records_the_weakest_sandbox_its_outputs_ran_in() -> None:
    from llmbench.run.aggregate import task_result
    from llmbench.scoring.code import CodeScorer

    def rec(i: int, level: str) -> SampleRecord:
        return SampleRecord(
            task="t", id=str(i), score=1.0, status="correct", metrics={f"isolation_{level}": 1.0}
        )

    mixed = task_result("t", CodeScorer(), 1.0, [rec(0, "namespaces"), rec(1, "uid")], [], {"data": "d"})
    assert mixed.fingerprint == {"data": "d", "sandbox_isolation": "uid"}
    strong = task_result("t", CodeScorer(), 1.0, [rec(0, "namespaces")], [], {"data": "d"})
    assert strong.fingerprint["sandbox_isolation"] == "namespaces"


def test_a_one_task_suite_scores_with_the_tasks_own_interval() -> None:
    from llmbench.results.schema import MetricValue, TaskResult
    from llmbench.run.aggregate import suite_score

    wilson = MetricValue(value=1.0, stderr=0.0, ci_low=0.977, ci_high=1.0, n=164, method="wilson")
    task = TaskResult(name="humaneval", scorer="code", primary_metric="pass@1", metrics={"pass@1": wilson})
    score = suite_score([task])
    assert score is not None and (score.value, score.ci_low, score.ci_high) == (1.0, 0.977, 1.0)
    two = suite_score([task, task.model_copy(update={"name": "again"})])
    assert two is not None and two.method == "weighted-wilson"


def test_pass_fail_tasks_give_a_suite_interval_as_wide_as_their_pooled_samples() -> None:
    """Two tasks of 3 samples, all wrong: the suite has 6 samples, and its interval is Wilson's for 0 of
    6 ([0, 0.39]); a normal interval from the tasks' standard errors would claim [0, 0.20], excluding
    a true rate of 0.3 that gives 0 of 6 about one time in eight."""
    from llmbench.results.schema import MetricValue, TaskResult
    from llmbench.run.aggregate import suite_score
    from llmbench.scoring.stats import wilson_interval

    lo, hi = wilson_interval(0, 3)
    none_right = MetricValue(value=0.0, stderr=0.0, ci_low=lo, ci_high=hi, n=3, method="wilson")
    tasks = [
        TaskResult(name=name, scorer="math", primary_metric="accuracy", metrics={"accuracy": none_right})
        for name in ("gsm8k", "math")
    ]
    score = suite_score(tasks)
    assert score is not None and score.n == 6 and score.method == "weighted-wilson"
    assert (score.ci_low, score.ci_high) == pytest.approx(wilson_interval(0, 6))
    assert score.ci_high > 0.35
    continuous = MetricValue(value=0.5, stderr=0.1, ci_low=0.3, ci_high=0.7, n=10, method="bootstrap")
    mixed = suite_score([tasks[0], tasks[1].model_copy(update={"metrics": {"accuracy": continuous}})])
    assert mixed is not None and mixed.method == "weighted-normal"
