"""Every shipped suite runs end to end: on tiny-qwen2 (real generation) and with the reference backend (100%)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.config.models import resolve_model
from llmbench.config.suite import list_suites, load_suite
from llmbench.run.pipeline import RunOptions, run_suite

pytestmark = pytest.mark.e2e

QUALITY = [s for s in list_suites() if s not in ("perf", "serving")]  # perf suites: tests/backends


@pytest.mark.parametrize("suite", QUALITY)
def test_reference_backend_scores_full_marks(suite: str, tmp_path: Path) -> None:
    result, path = run_suite(
        load_suite(suite),
        resolve_model("tiny-qwen2", backend="reference"),
        RunOptions(limit=3, output=tmp_path / f"{suite}.json"),
    )
    assert path.exists()
    for task in result.tasks:
        primary = task.metrics[task.primary_metric]
        assert primary.value == 1.0, (suite, task.name, task.counts)
        assert task.counts["correct"] == sum(task.counts.values())


@pytest.mark.parametrize("suite", QUALITY)
def test_suite_runs_on_tiny_qwen2(suite: str, tmp_path: Path) -> None:
    result, _ = run_suite(
        load_suite(suite), resolve_model("tiny-qwen2"), RunOptions(limit=2, output=tmp_path / "r.json")
    )
    assert result.tasks and all(t.n_samples >= 1 for t in result.tasks)
    assert all(s.error is None for s in result.samples), [s.error for s in result.samples if s.error][:3]
    assert all(s.ttft_ms is not None and s.latency_ms is not None for s in result.samples)
    for task in result.tasks:
        assert sum(task.counts.values()) == len([s for s in result.samples if s.task == task.name])
