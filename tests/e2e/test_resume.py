"""Interrupted runs continue where they stopped: Ctrl-C or SIGKILL, then the printed command, ends with
the results of a clean run; one process writes a run at a time; a resume never mixes changed inputs."""

from __future__ import annotations

import json
import re
import shlex
import signal
import time
from pathlib import Path

import pytest

from llmbench.run.journal import read_journal
from tests.e2e.helpers import llmbench, start_llmbench

pytestmark = pytest.mark.e2e

ARGS = [
    "run",
    "suites/math.yaml",
    "--model",
    "tiny-qwen2",
    "--limit",
    "12",
    "--max-new-tokens",
    "8",
    "--quiet",
]


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
    points = [
        (p["input_tokens"], p["output_tokens"], p["concurrency"], p["n_requests"], p["error"])
        for p in data["performance"]["sweep"]
    ]
    return {
        "samples": samples,
        "metrics": metrics,
        "points": points,
        "settings": data["settings"],
        "fingerprint": data["fingerprint"],
    }


def wait_for(journal: Path, kind: str, n: int, proc) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + 1800  # a hang guard only
    while time.time() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_bytes().count(f'"{kind}"'.encode()) >= n:
            return
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"


def interrupt(proc) -> str:  # type: ignore[no-untyped-def]
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=1800)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    return stderr


def paste(stderr: str, cwd: Path | None = None):  # type: ignore[no-untyped-def]
    """Run the command the interrupted run printed, exactly as a user pasting it would."""
    found = re.search(r"resume with: (llmbench run [^)\n]+)", stderr)
    assert found, stderr
    argv = shlex.split(found.group(1))
    assert argv[0] == "llmbench"
    return llmbench(*argv[1:], cwd=cwd)


def test_sigkill_then_resume_equals_clean_run(tmp_path: Path) -> None:
    clean = tmp_path / "clean.json"
    assert llmbench(*ARGS, "--output", str(clean)).returncode == 0

    killed = tmp_path / "killed.json"
    journal = tmp_path / "killed.journal.jsonl"
    proc = start_llmbench(*ARGS, "--output", str(killed))
    wait_for(journal, "request_id", 1, proc)
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


def test_ctrl_c_then_the_printed_command_equals_a_clean_run(tmp_path: Path) -> None:
    """Unnamed, with --limit, --task and --seed: the printed command alone brings them all back."""
    args = [*ARGS, "--task", "gsm8k", "--task", "math", "--seed", "3", "--results-dir", str(tmp_path / "r")]
    clean = tmp_path / "clean.json"
    assert llmbench(*args, "--output", str(clean)).returncode == 0, "clean run failed"
    proc = start_llmbench(*args)
    wait_for_glob(tmp_path / "r", proc)
    stderr = interrupt(proc)
    assert re.search(r"interrupted: \d+ finished samples saved in", stderr), stderr

    again = llmbench(*args)  # the same command again: it says what exists instead of starting anew
    assert again.returncode == 2 and "an unfinished run of math on tiny-qwen2 exists" in again.stderr
    assert "llmbench run --resume --output" in again.stderr and "--fresh" in again.stderr

    r = paste(stderr)
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stderr + r.stdout
    (resumed,) = (tmp_path / "r").glob("*.json")
    assert comparable(resumed) == comparable(clean)


def wait_for_glob(results_dir: Path, proc) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + 1800
    while time.time() < deadline and proc.poll() is None:
        journals = list(results_dir.glob("*.journal.jsonl"))
        if journals and journals[0].read_bytes().count(b'"request_id"') >= 1:
            return
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be interrupted"


PERF_SUITE = """\
name: quickperf
tasks:
  - name: sweep
    perf:
      input_tokens: [16, 32, 48, 64, 80, 96]
      output_tokens: [24]
      concurrency: [1, 2]
      requests_per_point: 6
      warmup_requests: 1
"""


def test_a_perf_sweep_resumes_its_points_and_honours_the_limit(tmp_path: Path) -> None:
    suite = tmp_path / "quickperf.yaml"
    suite.write_text(PERF_SUITE)
    args = ["run", str(suite), "--model", "tiny-qwen2", "--limit", "2", "--quiet"]
    clean = tmp_path / "clean.json"
    r = llmbench(*args, "--output", str(clean))
    assert r.returncode == 0, r.stderr
    assert {p[3] for p in comparable(clean)["points"]} == {2}  # type: ignore[attr-defined]

    out = tmp_path / "p.json"
    journal = tmp_path / "p.journal.jsonl"
    proc = start_llmbench(*args, "--output", str(out))
    wait_for(journal, "point", 3, proc)
    stderr = interrupt(proc)
    saved = len(read_journal(journal).points)
    assert saved >= 3 and f"{saved} sweep points saved" in stderr, stderr

    r = paste(stderr)
    assert r.returncode == 0, r.stderr
    assert f"({saved} points already done)" in r.stderr + r.stdout
    assert comparable(out) == comparable(clean)
    keys = [json.loads(line)["point"] for line in journal.read_text().splitlines() if '"point"' in line]
    assert len(keys) == len(set(keys)) == 12  # no point ran twice


DATA = '{"id": "1", "q": "1+1", "a": "2"}\n{"id": "2", "q": "2+2", "a": "4"}\n'
SUITE = (
    "name: s\ntasks:\n  - name: a\n    dataset: {local: d.jsonl, reference_field: a}\n"
    "    prompt: {template: '{{ q }}'}\n    scorer: {name: exact}\n"
)


def reference_run(tmp_path: Path, *extra: str, quiet: bool = True):  # type: ignore[no-untyped-def]
    return llmbench(
        "run", str(tmp_path / "s.yaml"), "-m", "tiny-qwen2", "-b", "reference", *(["-q"] if quiet else []),
        "-o", str(tmp_path / "out" / "r.json"), *extra,
    )  # fmt: skip


def test_a_run_whose_data_changed_is_not_resumed(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "d.jsonl").write_text(DATA)
    assert reference_run(tmp_path).returncode == 0
    (tmp_path / "out" / "r.json").unlink()  # as if killed before the results were written
    (tmp_path / "d.jsonl").write_text(DATA.replace("2+2", "3+3").replace('"4"', '"6"'))
    r = reference_run(tmp_path)
    assert r.returncode == 2, r.stderr
    assert "cannot resume: task 'a' data changed since the run started" in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "r.json").exists()


def test_a_finished_run_rebuilt_from_its_journal_says_so_and_keeps_its_times(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "d.jsonl").write_text(DATA)
    assert reference_run(tmp_path).returncode == 0
    first = json.loads((tmp_path / "out" / "r.json").read_text())
    (tmp_path / "out" / "r.json").unlink()  # killed after the last sample, before the results file
    (tmp_path / "out" / ".r.json.0badc0de.tmp").write_text('{"half": ')  # and mid-write at that
    time.sleep(1.1)  # so that a new timestamp would differ
    r = reference_run(tmp_path, quiet=False)  # --quiet would keep the notice to itself
    assert r.returncode == 0, r.stderr
    assert "already finished: results rebuilt from" in r.stderr + r.stdout
    rebuilt = json.loads((tmp_path / "out" / "r.json").read_text())
    assert rebuilt["created_at"] == first["created_at"]
    assert rebuilt["summary"]["finished_at"] <= first["summary"]["finished_at"]
    assert rebuilt["samples"] == first["samples"]
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_a_finished_named_run_is_not_overwritten_without_fresh(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "d.jsonl").write_text(DATA)
    assert reference_run(tmp_path).returncode == 0
    before = (tmp_path / "out" / "r.json").read_bytes()
    r = reference_run(tmp_path)
    assert r.returncode == 2 and "this run is finished" in r.stderr and "--fresh" in r.stderr
    assert (tmp_path / "out" / "r.json").read_bytes() == before
    assert reference_run(tmp_path, "--fresh").returncode == 0


def test_two_runs_with_one_output_the_second_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    journal = tmp_path / "r.journal.jsonl"
    first = start_llmbench(*ARGS, "--output", str(out))
    deadline = time.time() + 1800
    while time.time() < deadline and first.poll() is None:
        if journal.exists() and b'"opened"' in journal.read_bytes():
            break
        time.sleep(0.05)
    second = llmbench(*ARGS, "--output", str(out))
    assert second.returncode == 2, second.stderr
    assert f"llmbench process {first.pid} is writing this run" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    first.wait(timeout=1800)
    assert first.returncode == 0
    read_journal(journal)  # no torn line in the middle
    assert len(json.loads(out.read_text())["samples"]) == 24


def test_resuming_a_finished_run_says_so_in_one_line_and_reruns_nothing(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(SUITE)
    (tmp_path / "d.jsonl").write_text(DATA)
    assert reference_run(tmp_path).returncode == 0
    out, journal = tmp_path / "out" / "r.json", tmp_path / "out" / "r.journal.jsonl"
    before = (out.read_bytes(), journal.read_bytes(), out.stat().st_mtime_ns)
    for again in (llmbench("run", "--resume", "--output", str(out)), reference_run(tmp_path, "--resume")):
        assert again.returncode == 0, again.stderr  # a nightly that resumes a run that did finish passes
        lines = (again.stdout + again.stderr).strip().splitlines()
        assert lines == [f"this run has finished: its results are in {out} (nothing was rerun)"], lines
        assert (out.read_bytes(), journal.read_bytes(), out.stat().st_mtime_ns) == before
