"""End to end: `llmbench run` on tiny-qwen2 writes a full results file; `compare` shows both runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmbench.results.schema import SCHEMA_VERSION
from tests.e2e.helpers import llmbench

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("runs")
    a, b = out / "tiny.json", out / "reference.json"
    r = llmbench("run", "suites/math.yaml", "--model", "tiny-qwen2", "--limit", "3", "--output", str(a))
    assert r.returncode == 0, r.stderr
    assert "gsm8k" in r.stdout and "results:" in r.stdout
    r = llmbench(
        "run",
        "suites/math.yaml",
        "--model",
        "tiny-qwen2",
        "--backend",
        "reference",
        "--limit",
        "3",
        "--output",
        str(b),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"results: {b}" and "requests to run" not in r.stderr  # --quiet
    return a, b


def test_results_file_has_every_documented_field(two_runs: tuple[Path, Path]) -> None:
    data = json.loads(two_runs[0].read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["model"]["name"] == "tiny-qwen2" and data["suite_name"] == "math" and data["suite_hash"]
    env = data["environment"]
    assert env["python"] and "torch" in json.dumps(env)
    assert env["torch_threads"] >= 1 and env["usable_cpus"] >= 1 and len(env["load_avg"]) == 3
    task = {t["name"]: t for t in data["tasks"]}["gsm8k"]
    acc = task["metrics"]["accuracy"]
    assert {"value", "stderr", "n"} <= set(acc) and acc["n"] == 3
    assert set(task["counts"]) >= {"correct", "wrong", "unparsed", "truncated", "timeout", "error"}
    sample = data["samples"][0]
    for key in (
        "task",
        "id",
        "prompt",
        "output",
        "reference",
        "score",
        "tokens_in",
        "tokens_out",
        "ttft_ms",
        "latency_ms",
        "error",
        "prompt_hash",
        "output_hash",
    ):
        assert key in sample
    assert sample["ttft_ms"] > 0 and sample["latency_ms"] >= sample["ttft_ms"] and sample["tokens_in"] > 0
    perf = data["performance"]
    for key in ("mean", "p50", "p90", "p99"):
        assert key in perf["ttft_ms"] and key in perf["e2e_latency_ms"]
    assert perf["output_tokens_per_s"] > 0 and perf["load_time_s"] > 0
    assert perf["peak_vram_mib"] is None and perf["peak_vram_reason"]
    assert data["fingerprint"]["chat_template"] not in ("", "none")


def test_reference_backend_scores_full_marks(two_runs: tuple[Path, Path]) -> None:
    data = json.loads(two_runs[1].read_text())
    for task in data["tasks"]:
        assert task["metrics"][task["primary_metric"]]["value"] == 1.0, task["name"]


def test_compare_prints_both_models(two_runs: tuple[Path, Path]) -> None:
    r = llmbench("compare", str(two_runs[0]), str(two_runs[1]))
    assert r.returncode == 0, r.stderr
    assert "tiny-qwen2" in r.stdout and "gsm8k" in r.stdout
    for fmt in ("markdown", "csv", "json"):
        r = llmbench("compare", str(two_runs[0]), str(two_runs[1]), "--format", fmt)
        assert r.returncode == 0, r.stderr
        assert "gsm8k" in r.stdout


def test_html_report_is_written(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    r = llmbench("report", str(two_runs[0]), str(two_runs[1]), "-o", str(out))
    assert r.returncode == 0, r.stderr
    html = out.read_text()
    assert "<svg" in html and "tiny-qwen2" in html


def test_view_shows_the_runs_rendered_prompts_token_gaps_and_their_diff(two_runs: tuple[Path, Path]) -> None:
    import http.client
    import signal
    from urllib.parse import urlencode

    from tests.e2e.helpers import start_llmbench

    tiny, ref = (p.as_posix() for p in two_runs)

    def get(port: int, route: str, **params: object) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        conn.request("GET", f"/api/{route}?{urlencode(params)}")
        res = conn.getresponse()
        body = res.read()
        conn.close()
        assert res.status == 200, body
        return json.loads(body)

    proc = start_llmbench("view", str(two_runs[0].parent))
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        assert {r["backend"] for r in get(port, "runs")["rows"]} == {"transformers", "reference"}
        sample = get(port, "sample", id=tiny, key=0)["record"]
        assert isinstance(sample["prompt"], str) and sample["prompt"]  # the text the model was given
        if (sample["tokens_out"] or 0) > 1:
            assert len(sample["itl_ms"]) == sample["tokens_out"] - 1
        diff = get(port, "diff", a=tiny, b=ref)
        assert diff["n_common"] == sum(t["n"] for t in diff["tasks"]) > 0
        assert get(port, "diff_rows", a=tiny, b=ref)["total"] == diff["flipped"] + diff["changed"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
