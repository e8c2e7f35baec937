"""A run killed with SIGKILL midway resumes from its journal and ends with the results of a clean run."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import llmbench, start_llmbench

pytestmark = pytest.mark.e2e

ARGS = ["run", "suites/math.yaml", "--model", "tiny-qwen2", "--limit", "12", "--quiet"]


def comparable(path: Path) -> dict[str, object]:
    """What must be equal between a clean and a resumed run: outputs, verdicts, metrics (not timings)."""
    data = json.loads(path.read_text())
    samples = [
        (s["task"], s["id"], s["sample_index"], s["output"], s["score"], s["status"], s["prompt_hash"])
        for s in data["samples"]
    ]
    metrics = {
        t["name"]: {k: v["value"] for k, v in t["metrics"].items()} | {"counts": t["counts"]}
        for t in data["tasks"]
    }
    return {"samples": samples, "metrics": metrics}


def test_sigkill_then_resume_equals_clean_run(tmp_path: Path) -> None:
    clean = tmp_path / "clean.json"
    assert llmbench(*ARGS, "--output", str(clean)).returncode == 0

    killed = tmp_path / "killed.json"
    journal = tmp_path / "killed.journal.jsonl"
    proc = start_llmbench(*ARGS, "--output", str(killed))
    deadline = time.time() + 300
    while time.time() < deadline:
        lines = journal.read_bytes().count(b'"request_id"') if journal.exists() else 0
        if lines >= 1 or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists()
    done_before = journal.read_bytes().count(b'"request_id"')
    assert 1 <= done_before < 24

    r = llmbench(*ARGS, "--output", str(killed), "--resume")
    assert r.returncode == 0, r.stderr
    assert comparable(killed) == comparable(clean)
    # nothing ran twice: one journal line per request
    ids = [
        json.loads(line)["request_id"] for line in journal.read_text().splitlines() if '"request_id"' in line
    ]
    assert len(ids) == len(set(ids)) == 24


def test_resume_without_a_run_says_so(tmp_path: Path) -> None:
    r = llmbench(*ARGS, "--results-dir", str(tmp_path), "--resume")
    assert r.returncode == 2 and "no unfinished run" in r.stderr


def test_ctrl_c_saves_work_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    journal = tmp_path / "run.journal.jsonl"
    proc = start_llmbench(*ARGS, "--output", str(out))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(b'"request_id"') >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "--resume" in stderr and "Traceback" not in stderr
    saved = journal.read_bytes().count(b'"request_id"')
    assert saved >= 1
    r = llmbench(*ARGS, "--output", str(out))  # the same named run again: it continues, no --resume needed
    assert r.returncode == 0, r.stderr
    assert f"{saved} finished samples" in r.stderr + r.stdout
    assert len(json.loads(out.read_text())["samples"]) == 24
