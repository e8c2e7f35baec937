"""`--to wandb`: offline runs a user later uploads with `wandb sync`, read back with wandb's own reader
of the run log (`wandb leet inspect`); exporting again adds no second offline run."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from llmbench.export.base import ExportOptions
from llmbench.export.items import load_items
from llmbench.export.wandb import MARKER, WandbExporter
from tests.e2e.helpers import llmbench
from tests.export.helpers import needs, two_runs, write_runs, write_study

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _wandb_env(tmp_path: Path) -> dict[str, str]:
    """W&B's own folders (config, cache, artifact staging) inside the test's folder, not the user's home."""
    return {
        "WANDB_CONFIG_DIR": str(tmp_path / "wb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wb-data"),
        "WANDB_MODE": "offline",
    }


def _inspect(log: Path, *args: str) -> Any:
    r = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *args, str(log)],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    if "--summary" in args:
        return json.loads(r.stdout)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def test_each_results_file_becomes_an_offline_wandb_run_that_reads_back(tmp_path: Path) -> None:
    needs("wandb")
    runs = two_runs()
    math, code = write_runs(tmp_path / "results", runs)
    write_study(tmp_path / "results", math)
    out = tmp_path / "wb"
    env = _wandb_env(tmp_path)
    r = llmbench(
        "export", str(math), str(code), "--to", "wandb", "-o", str(out), "--experiment", "bench", env=env
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("exported: ") == 2
    logs = sorted(out.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2

    by_model = {}
    for log in logs:
        state = _inspect(log, "--summary")
        by_model[state["config"]["model_name"]] = (log, state)
    log, state = by_model["tiny-a"]
    assert state["project"] == "bench" and state["state"] == "finished"
    assert state["name"] == "tiny-a · vllm · math"
    assert "study:quant-sweep" in state["tags"] and "suite:math" in state["tags"]
    config = state["config"]
    assert config["llmbench.run_id"] == runs[0].run_id and config["fingerprint.chat_template"] == "c-5e6f"
    acc = runs[0].tasks[0].metrics["accuracy"]
    summary = state["summary"]
    assert summary["gsm8k/accuracy"] == pytest.approx(acc.value)
    assert summary["gsm8k/accuracy_ci_low"] == pytest.approx(acc.ci_low)
    assert summary["perf/ttft_ms_p50"] == pytest.approx(runs[0].performance.ttft_ms.p50)  # type: ignore[union-attr]

    artifacts = [rec["artifact"] for rec in _inspect(log) if rec.get("type") == "artifact"]
    (artifact,) = artifacts
    assert artifact["type"] == "llmbench-results"
    paths = sorted(c["path"] for c in artifact["manifest"]["contents"])
    assert paths == ["report/report.html", f"results/{math.name}"]
    staged = {c["path"]: Path(c["local_path"]) for c in artifact["manifest"]["contents"]}
    assert staged[f"results/{math.name}"].read_bytes() == math.read_bytes()  # what `wandb sync` will upload
    assert staged["report/report.html"].read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    again = llmbench("export", str(math), "--to", "wandb", "-o", str(out), env=env)
    assert again.returncode == 0 and "already exported: " in again.stdout, again.stderr
    assert len(sorted(out.glob("wandb/*run-*"))) == 2


def test_an_export_cut_off_before_it_finished_is_done_again_not_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs("wandb")
    for name, value in _wandb_env(tmp_path).items():
        monkeypatch.setenv(name, value)
    (path,) = write_runs(tmp_path / "results", two_runs()[:1])
    exporter = WandbExporter(ExportOptions(directory=tmp_path / "wb"))

    def report_fails() -> str:
        raise KeyboardInterrupt  # Ctrl-C after wandb.init made the run folder, before the artifact

    (item,) = load_items([path], lambda p: "<!DOCTYPE html>")
    with pytest.raises(KeyboardInterrupt):
        exporter.export([dataclasses.replace(item, report_html=report_fails)])
    (half,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")  # what a folder alone used to vouch for
    assert not (half / MARKER).exists()

    (done,) = exporter.export([item])
    assert done.created  # the half export was replaced, not skipped: one folder, now complete
    (folder,) = (tmp_path / "wb" / "wandb").glob("offline-run-*")  # the same name within one second
    assert json.loads((folder / MARKER).read_text())["llmbench_run_id"] == item.run.run_id
    state = _inspect(next(folder.glob("run-*.wandb")), "--summary")
    assert state["state"] == "finished" and "gsm8k/accuracy" in state["summary"]
    (again,) = exporter.export([item])
    assert not again.created and again.location == str(folder)
