"""`llmbench study`: the demo study end to end, killed midway and continued, and on fake GPUs with workers.

Cost: tiny-qwen2 on CPU; the demo is 4 cells of 2-3 samples per task (about a minute on a quiet 2-core
machine, a few under load); the worker test is 2 cells of 2 samples.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import llmbench, start_llmbench

pytestmark = pytest.mark.e2e


def requests_in(journal: Path) -> list[str]:
    if not journal.exists():
        return []
    lines = journal.read_text().splitlines()
    return [json.loads(line)["request_id"] for line in lines if line.startswith('{"request_id"')]


def test_demo_study_killed_midway_finishes_on_rerun_without_redoing_cells(tmp_path: Path) -> None:
    args = ["study", "studies/demo.yaml", "--results-dir", str(tmp_path), "--quiet"]
    first = tmp_path / "math-tiny-qwen2-seed0.json"
    second = tmp_path / "json-tiny-qwen2-seed0.journal.jsonl"
    proc = start_llmbench(*args)
    deadline = time.time() + 1800
    while time.time() < deadline and proc.poll() is None:
        if first.exists() and requests_in(second):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_at = first.stat().st_mtime_ns
    manifest = json.loads((tmp_path / "study.json").read_text())
    states = {c["id"]: c["state"] for c in manifest["cells"]}
    assert states["math-tiny-qwen2-seed0"] == "done" and states["json-tiny-qwen2-seed0"] == "running"

    plan = llmbench(*args[:-1], "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "done: 1 of 4 cells" in plan.stdout and "partial" in plan.stdout

    r = llmbench(*args)
    assert r.returncode == 0, r.stderr
    assert first.stat().st_mtime_ns == finished_at  # the finished cell was not run again
    assert "3 cells to run" in r.stderr
    ids = requests_in(second)
    assert (
        len(ids)
        == len(set(ids))
        == len(json.loads((tmp_path / "json-tiny-qwen2-seed0.json").read_text())["samples"])
    )
    assert "leaderboard" in r.stdout and "tiny-qwen2-reference" in r.stdout and "composite" in r.stdout
    manifest = json.loads((tmp_path / "study.json").read_text())
    assert {c["state"] for c in manifest["cells"]} == {"done"}
    shared = json.loads((tmp_path / "json-tiny-qwen2-reference-seed0.json").read_text())["summary"]
    assert shared["load_shared_with"] == "math-tiny-qwen2-reference-seed0"  # one load for both suites


def test_study_on_four_fake_gpus_places_workers_on_gpu_sets(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: fake-gpus\nmodels:\n  - tiny-qwen2\n  - {base: tiny-qwen2, backend: reference}\n"
        "suites:\n  - {suite: math, limit: 2, tasks: [gsm8k]}\n"
    )
    out = tmp_path / "out"
    r = llmbench(
        "study",
        str(study),
        "--gpus",
        "4",
        "--results-dir",
        str(out),
        "--quiet",
        "--markdown",
        str(tmp_path / "lb.md"),
        "--html",
        str(tmp_path / "report.html"),
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "study.json").read_text())
    placed = {c["model"]: c["placed_on"] for c in manifest["cells"]}
    assert placed == {"tiny-qwen2": [0], "tiny-qwen2-reference": []}
    summary = json.loads((out / "math-tiny-qwen2-seed0.json").read_text())["summary"]
    assert summary["placement"] == {"gpus": [0], "devices": ["0"], "host_gpus": 4, "exclusive": False}
    assert "| tiny-qwen2-reference" in (tmp_path / "lb.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert html.index("Leaderboard of study fake-gpus") < html.index("<h2>Runs</h2>")


def test_ctrl_c_stops_the_study_and_says_how_to_continue(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        # One request at a time, so the journal gains its first sample well before the cell is done.
        "name: ctrl-c\nmodels:\n  - {base: tiny-qwen2, name: tiny-qwen2, set: {batch_size: 1}}\n"
        "suites:\n  - {suite: math, limit: 12, tasks: [gsm8k]}\n"
    )
    out = tmp_path / "out"
    journal = out / "math-tiny-qwen2-seed0.journal.jsonl"
    proc = start_llmbench("study", str(study), "--results-dir", str(out), "--quiet")
    deadline = time.time() + 1800
    while time.time() < deadline and proc.poll() is None and not requests_in(journal):
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "continue with: llmbench study" in stderr and "Traceback" not in stderr
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["cells"][0]["state"] == "partial"


def test_study_outputs_never_replace_its_own_files_and_a_bad_path_is_one_line(tmp_path: Path) -> None:
    study = tmp_path / "s.yaml"
    study.write_text(
        "name: outputs\nmodels:\n  - {base: tiny-qwen2, backend: reference}\n"
        "suites:\n  - {suite: math, limit: 2, tasks: [gsm8k]}\n"
    )
    out = tmp_path / "out"
    args = ["study", str(study), "--results-dir", str(out), "--quiet"]
    assert llmbench(*args).returncode == 0
    cell = out / "math-tiny-qwen2-reference-seed0.json"
    before = cell.read_bytes()
    for option, target in (("--markdown", cell), ("--html", cell), ("--markdown", out / "study.json")):
        again = llmbench(*args, option, str(target))  # every cell done: the leaderboard, then the files
        assert again.returncode == 2, again.stderr
        assert "is one of the files read" in again.stderr and "internal error" not in again.stderr
    assert cell.read_bytes() == before
    (tmp_path / "a-file").write_text("")
    bad = llmbench(*args, "--markdown", str(tmp_path / "a-file" / "lb.md"))
    assert bad.returncode == 2 and "cannot be written" in bad.stderr and "internal error" not in bad.stderr
