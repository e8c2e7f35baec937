"""Results files for the exporter tests, written as the runner writes them, and the optional packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest

from llmbench.results.io import write_results
from llmbench.results.schema import RunResult
from tests.factories import make_run, performance, verdicts


def needs(module: str) -> ModuleType:
    """The optional package, or a skip on a developer's machine and a failure in CI (which installs it)."""
    if importlib.util.find_spec(module) is None:
        message = f"the package '{module}' is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so this test must run")
        pytest.skip(message)
    return importlib.import_module(module)


def two_runs() -> list[RunResult]:
    """Two suites, one with a performance sweep, one with a chat prompt and per-length breakdowns."""
    math = make_run(
        "tiny-a", {"gsm8k": verdicts(12, 0.5, 1), "mathx": verdicts(8, 0.7, 2)}, perf=performance(sweep=True)
    )
    code = make_run("tiny-b", {"humaneval": verdicts(6, 0.5, 3)}, suite="code", backend="transformers")
    code.samples[0].prompt = [{"role": "user", "content": "write add(a, b)"}]
    code.samples[0].reference = {"tests": ["assert add(1, 2) == 3"]}
    code.samples[0].warnings = ["usage disagreed with the stream"]
    return [math, code]


def write_runs(folder: Path, runs: list[RunResult]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [write_results(run, folder / f"{run.run_id}.json") for run in runs]


def write_study(
    folder: Path, results: Path, *, study: str = "quant-sweep", cell: str = "math-tiny-a-seed0"
) -> None:
    """A study manifest beside `results` that names it as one of its cells (as `llmbench study` writes)."""
    from llmbench.study.manifest import CellEntry, StudyManifest, write_manifest

    entry = CellEntry(
        id=cell, model="tiny-a", backend="vllm", suite="math", seed=0, kind="quality", gpus_needed=0,
        results=str(results), journal=str(results.with_suffix(".journal.jsonl")), state="done",
    )  # fmt: skip
    write_manifest(
        StudyManifest(study=study, study_file="studies/q.yaml", study_hash="st-9f", cells=[entry]), folder
    )
