"""`--to mlflow` against a real MLflow tracking server on loopback (SQLite store, proxied artifacts):
what the CLI logged is read back with MlflowClient, and exporting again adds nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from llmbench import api
from tests.e2e.helpers import llmbench
from tests.export.helpers import needs, two_runs, write_runs, write_study

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STARTUP_GUARD_S = 300  # a hang guard on a busy host, not a timing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    needs("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(root / "server.log", "wb")  # noqa: SIM115 -- open while the server runs
    server = subprocess.Popen(
        [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination", str(root / "artifacts"), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_GUARD_S
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"mlflow server exited: {(root / 'server.log').read_text(errors='replace')[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{uri}/health", timeout=5).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health (hang guard)")
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, experiment: str) -> list[Any]:
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else list(client.search_runs([found.experiment_id]))


def test_each_results_file_becomes_one_mlflow_run_with_params_metrics_tags_and_artifacts(
    tracking_uri: str, tmp_path: Path
) -> None:
    runs = two_runs()
    runs[0].model["system_prompt"] = "x" * 7000  # past MLflow's 6000-character limit for a parameter
    runs[0].summary.wall_s = 12.5
    math, code = write_runs(tmp_path / "results", runs)
    write_study(tmp_path / "results", math)
    r = llmbench(
        "export", str(math), str(code), "--to", "mlflow", "--tracking-uri", tracking_uri, "--experiment", "e1"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("exported: ") == 2 and "View run" not in r.stdout

    logged = {run.data.tags["llmbench.run_id"]: run for run in _runs(tracking_uri, "e1")}
    assert set(logged) == {runs[0].run_id, runs[1].run_id}
    got = logged[runs[0].run_id]
    assert got.info.status == "FINISHED"
    start = round(datetime.fromisoformat(runs[0].created_at).timestamp() * 1000)
    assert got.info.start_time == start and got.info.end_time == start + 12_500
    assert got.info.run_name == "tiny-a · vllm · math"

    params = got.data.params
    assert params["model_name"] == "tiny-a" and params["backend.backend"] == "vllm"
    assert params["suite_name"] == "math" and params["fingerprint.chat_template"] == "c-5e6f"
    assert params["task.gsm8k.fingerprint.generation"] == "g-7a8b"
    long = params["model.system_prompt"]
    assert len(long) <= 6000 and long.endswith("[truncated]")

    metrics = got.data.metrics
    acc = runs[0].tasks[0].metrics["accuracy"]
    assert metrics["gsm8k/accuracy"] == pytest.approx(acc.value)
    assert metrics["gsm8k/accuracy_ci_low"] == pytest.approx(acc.ci_low)
    assert metrics["gsm8k/accuracy_ci_high"] == pytest.approx(acc.ci_high)
    assert metrics["perf/ttft_ms_p50"] == pytest.approx(runs[0].performance.ttft_ms.p50)  # type: ignore[union-attr]
    assert metrics["perf/output_tokens_per_s"] == pytest.approx(2400.0)

    tags = got.data.tags
    assert tags["llmbench.study"] == "quant-sweep" and tags["llmbench.study_cell"] == "math-tiny-a-seed0"
    assert "llmbench.study" not in logged[runs[1].run_id].data.tags

    client = _client(tracking_uri)
    run_id = got.info.run_id
    assert [a.path for a in client.list_artifacts(run_id, "results")] == [f"results/{math.name}"]
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/report.html"]
    back = Path(client.download_artifacts(run_id, "results", str(tmp_path / "back")))
    assert json.loads((back / math.name).read_text()) == json.loads(math.read_text())
    report = Path(client.download_artifacts(run_id, "report/report.html", str(tmp_path / "back")))
    html = report.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "tiny-a" in html


def test_exporting_the_same_file_again_adds_no_run(tracking_uri: str, tmp_path: Path) -> None:
    (math,) = write_runs(tmp_path, two_runs()[:1])
    first = api.export([math], "mlflow", tracking_uri=tracking_uri, experiment="e2")
    again = api.export([math], "mlflow", tracking_uri=tracking_uri, experiment="e2")
    assert [first[0].created, again[0].created] == [True, False]
    assert again[0].location == first[0].location
    assert len(_runs(tracking_uri, "e2")) == 1
    later = two_runs()[0].model_copy(update={"created_at": "2026-11-21T10:00:00+00:00"})  # the same run id
    (other,) = write_runs(tmp_path / "later", [later])
    assert api.export([other], "mlflow", tracking_uri=tracking_uri, experiment="e2")[0].created
    assert len(_runs(tracking_uri, "e2")) == 2


def test_an_export_cut_short_is_replaced_not_kept_beside_the_new_one(
    tracking_uri: str, tmp_path: Path
) -> None:
    (math,) = write_runs(tmp_path, two_runs()[:1])
    client = _client(tracking_uri)
    experiment = client.create_experiment("e3")
    mark = {"llmbench.run_id": "tiny-a-math-2026-11-20", "llmbench.created_at": "2026-11-20T10:00:00+00:00"}
    half = client.create_run(experiment, tags=mark)  # left RUNNING, as by an export that was killed
    (done,) = api.export([math], "mlflow", tracking_uri=tracking_uri, experiment="e3")
    assert done.created
    (kept,) = _runs(tracking_uri, "e3")
    assert kept.info.run_id != half.info.run_id and kept.info.status == "FINISHED"
