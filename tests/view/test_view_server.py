"""`llmbench view`'s JSON API and HTTP server, spoken to over real HTTP on the loopback interface."""

from __future__ import annotations

import ast
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from fnmatch import fnmatch
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from llmbench.errors import UserInputError
from llmbench.results.io import write_results
from llmbench.view import diffing
from llmbench.view.run_index import UnknownRun
from llmbench.view.server import ViewServer, make_server
from tests.view.sample_runs import HOSTILE, hostile_key, two_backends

ROOT = Path(__file__).resolve().parents[2]


def get(server: ViewServer, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host or f"127.0.0.1:{server.port}")
        conn.endheaders()
        res = conn.getresponse()
        return res.status, dict(res.getheaders()), res.read()
    finally:
        conn.close()


def api(server: ViewServer, route: str, **params: Any) -> Any:
    status, _, body = get(server, f"/api/{route}?{urlencode(params)}")
    assert status == 200, body
    return json.loads(body)


def ids(pair_dir: Path) -> tuple[str, str]:
    return (pair_dir / "transformers.json").as_posix(), (pair_dir / "vllm.json").as_posix()


def test_the_server_listens_on_loopback_only(viewer: ViewServer) -> None:
    assert viewer.server_address[0] == "127.0.0.1"
    assert viewer.url == f"http://127.0.0.1:{viewer.port}/"


def test_the_run_list_shows_scores_and_performance_newest_first(viewer: ViewServer, pair_dir: Path) -> None:
    runs = api(viewer, "runs")
    assert runs["total"] == 2 and not runs["study"]
    first, second = runs["rows"]
    assert (first["backend"], second["backend"]) == ("vllm", "transformers")
    assert first["id"] == ids(pair_dir)[1]
    assert 0 < first["score"]["ci_low"] < first["score"]["value"] < first["score"]["ci_high"] < 1
    assert first["perf"]["output_tokens_per_s"] == 2400.0 and first["samples"] == 64
    assert api(viewer, "runs", q="transformers")["total"] == 1


def test_samples_filter_by_task_verdict_category_language_and_text(
    viewer: ViewServer, pair_dir: Path
) -> None:
    a, _ = ids(pair_dir)
    everything = api(viewer, "samples", id=a)
    assert everything["total"] == 64 and len(everything["rows"]) == 50 and everything["pages"] == 2
    mgsm = api(viewer, "samples", id=a, task="mgsm", language="de")
    assert mgsm["total"] == 6 and {r["language"] for r in mgsm["rows"]} == {"de"}
    wrong = api(viewer, "samples", id=a, verdict="incorrect")["rows"]
    assert wrong and all(r["status"] != "correct" for r in wrong)
    unparsed = api(viewer, "samples", id=a, status="unparsed")["rows"]
    assert unparsed and all(r["status"] == "unparsed" for r in unparsed)
    found = api(viewer, "samples", id=a, text="ONERROR")["rows"]
    assert [r["preview"] for r in found] == [HOSTILE]


def test_a_sample_keeps_its_prompt_and_shows_its_reasoning_apart(viewer: ViewServer, pair_dir: Path) -> None:
    a, _ = ids(pair_dir)
    sample = api(viewer, "sample", id=a, key=5)
    record = sample["record"]
    assert record["prompt"].startswith("<|im_start|>system") and record["reference"]
    assert sample["reasoning"].startswith("Count the bags") and "<think>" not in sample["answer"]
    assert len(record["itl_ms"]) == record["tokens_out"] - 1 and record["ttft_ms"] > 0


def test_hostile_output_is_sent_as_json_data(viewer: ViewServer, pair_dir: Path) -> None:
    a, _ = ids(pair_dir)
    status, headers, body = get(
        viewer, f"/api/sample?{urlencode({'id': a, 'key': hostile_key(pair_dir / 'transformers.json')})}"
    )
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert json.loads(body)["record"]["output"] == HOSTILE


def test_the_diff_puts_flipped_verdicts_first_then_changed_outputs(
    viewer: ViewServer, pair_dir: Path
) -> None:
    a, b = ids(pair_dir)
    top = api(viewer, "diff", a=a, b=b)
    assert top["n_common"] == 64 and top["flipped"] > 0 and top["changed"] > 0
    assert top["suite_test"]["p_value"] is not None and top["suite_test"]["n"] == 64
    assert {"scope": "run", "key": "chat_template", "a": "c-5e6f", "b": "c-9f10"} in top["fingerprint"]
    gsm = next(t for t in top["tasks"] if t["task"] == "gsm8k")
    assert gsm["a_only_correct"] + gsm["b_only_correct"] == top["flipped"]
    rows = api(viewer, "diff_rows", a=a, b=b, size=100)["rows"]
    kinds = [r["kind"] for r in rows]
    assert (
        kinds == sorted(kinds, key=["flipped", "changed"].index)
        and len(rows) == top["flipped"] + top["changed"]
    )
    flipped = api(viewer, "diff_rows", a=a, b=b, kind="flipped")["rows"]
    assert all((r["a_status"] == "correct") != (r["b_status"] == "correct") for r in flipped)


def test_changed_words_are_marked_on_both_sides() -> None:
    left, right = diffing.marked("40 + 49 = 89.\n#### 89", "40 + 49 = 90.\n#### 90")
    assert [t for t, changed in left if changed] == ["89", "89"]
    assert [t for t, changed in right if changed] == ["90", "90"]
    assert "".join(t for t, _ in left) == "40 + 49 = 89.\n#### 89"


def test_runs_made_alike_show_no_fingerprint_difference() -> None:
    a, _ = two_backends()
    assert diffing.fingerprint_differences(a, a) == [] and diffing.settings_differences(a, a) == []


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../pyproject.toml",
        "/static/%2e%2e/%2e%2e/pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static//etc/passwd",
        "/api/run?id=../../etc/passwd",
        "/api/run?id=/etc/passwd",
        "/api/sample?id=%2Fetc%2Fpasswd&key=0",
        "/api/diff?a=/etc/passwd&b=/etc/hostname",
        "/../../etc/passwd",
    ],
)
def test_no_path_outside_the_given_files_is_served(viewer: ViewServer, path: str) -> None:
    status, _, body = get(viewer, path)
    assert status == 404
    assert b"root:" not in body and b"[project]" not in body


def test_a_request_for_another_host_name_is_refused(viewer: ViewServer) -> None:
    status, _, _ = get(viewer, "/api/runs", host="attacker.example:80")
    assert status == 403


def test_bad_parameters_are_one_line_errors(viewer: ViewServer, pair_dir: Path) -> None:
    a, _ = ids(pair_dir)
    for path, code in (
        ("/api/run", 400),
        (f"/api/sample?{urlencode({'id': a, 'key': 'x'})}", 400),
        (f"/api/sample?{urlencode({'id': a, 'key': 999})}", 404),
        ("/api/nope", 404),
    ):
        status, _, body = get(viewer, path)
        assert status == code and "\n" not in json.loads(body)["error"]


def test_a_study_folder_opens_on_its_leaderboard(study_viewer: ViewServer) -> None:
    assert api(study_viewer, "runs")["study"] is True
    board = api(study_viewer, "study")
    assert board["name"] == "demo" and board["suites"] == ["coding", "math"]
    assert board["rows"][0]["label"].startswith("qwen2.5-7b")
    assert all(r["files"] for r in board["rows"])
    axes = [a["key"] for a in board["axes"]]
    assert "peak_vram_mib" in axes and "ttft_ms_p50_2k" not in axes  # no sweep in these cells: left out


def test_files_added_to_a_viewed_folder_are_listed(tmp_path: Path) -> None:
    a, b = two_backends()
    write_results(a, tmp_path / "a.json")
    server = make_server([tmp_path])
    try:
        assert server.api.runs({})["total"] == 1
        write_results(b, tmp_path / "later" / "b.json")  # a study's next cell, a nightly run
        assert server.api.runs({})["total"] == 2
    finally:
        server.server_close()


def test_a_port_in_use_is_an_input_error(viewer: ViewServer, pair_dir: Path) -> None:
    with pytest.raises(UserInputError, match=f"cannot listen on 127.0.0.1:{viewer.port}"):
        make_server([pair_dir], viewer.port)


def test_the_python_api_serves_the_same_app(pair_dir: Path) -> None:
    from llmbench import api as llmbench_api

    server = llmbench_api.view([pair_dir])
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.api.runs({})["total"] == 2
    finally:
        server.server_close()


def test_a_folder_without_results_files_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="no results files"):
        make_server([tmp_path])
    with pytest.raises(UserInputError, match="no such file"):
        make_server([tmp_path / "missing"])


def test_the_static_files_ship_as_package_data() -> None:
    data = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]", 1)[1]
    patterns = ast.literal_eval(data.split("llmbench = ", 1)[1].splitlines()[0])
    static = ROOT / "llmbench" / "view" / "static"
    for f in static.iterdir():
        name = f.relative_to(ROOT / "llmbench").as_posix()
        assert any(fnmatch(name, p) for p in patterns), f"{name} is not package data"


def test_the_view_command_prints_its_url_and_stops_cleanly_on_ctrl_c(pair_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmbench", "view", str(pair_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("llmbench view: http://127.0.0.1:"), (
            line + proc.stderr.read() if proc.stderr else ""
        )
        port = int(line.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        conn.request("GET", "/api/runs")
        assert json.loads(conn.getresponse().read())["total"] == 2
        conn.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


@pytest.mark.parametrize(
    "tasks",
    [
        [{"name": "gsm8k", "reasoning_markers": [5]}],
        [{"name": "gsm8k", "reasoning_markers": "<think>"}],
        [{"name": "gsm8k", "reasoning_markers": [["<think>"]]}],
        [{"name": "gsm8k", "reasoning_markers": [[1, 2]]}],
        [{"name": "gsm8k", "reasoning_markers": [["", "</think>"]]}],
        [{"name": "gsm8k", "reasoning_markers": {"open": "<think>"}}],
        7,
    ],
    ids=["number", "string", "single", "numbers", "empty", "mapping", "tasks-not-a-list"],
)
def test_a_results_files_malformed_reasoning_markers_fall_back_to_the_default(
    tmp_path: Path, tasks: object
) -> None:
    run, _ = two_backends()
    run.suite = {"name": "math", "tasks": tasks}
    path = write_results(run, tmp_path / "hostile.json")
    server = make_server([path])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sample = api(server, "sample", id=path.as_posix(), key=5)
        assert sample["reasoning"].startswith("Count the bags") and "<think>" not in sample["answer"]
    finally:
        server.shutdown()
        thread.join(timeout=60)
        server.server_close()


def test_a_file_removed_while_viewed_is_an_unknown_run(tmp_path: Path) -> None:
    a, _ = two_backends()
    path = write_results(a, tmp_path / "a.json")
    server = make_server([tmp_path])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert api(server, "runs")["total"] == 1  # listed, then removed before it is opened
        path.unlink()
        for route in ("run", "samples", "sample"):
            status, _, body = get(server, f"/api/{route}?{urlencode({'id': path.as_posix(), 'key': 0})}")
            assert (
                status == 404
                and json.loads(body)["error"] == f"no run {path.as_posix()!r}: its file was removed"
            )
        with pytest.raises(UnknownRun):
            server.api.catalog.summary(path.as_posix())
    finally:
        server.shutdown()
        thread.join(timeout=60)
        server.server_close()


@pytest.mark.parametrize("debug", [False, True])
def test_an_unforeseen_error_is_a_500_with_one_line_and_the_viewer_goes_on(
    pair_dir: Path, capfd: pytest.CaptureFixture[str], debug: bool
) -> None:
    server = make_server([pair_dir], debug=debug)
    server.api.routes["ratio"] = lambda query: {
        "ratio": int(query["n"]) / int(query["d"])
    }  # a route with a bug
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, headers, body = get(server, "/api/ratio?n=1&d=0")
        assert status == 500 and headers["Content-Type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error == "internal error answering /api/ratio: ZeroDivisionError: division by zero"
        assert api(server, "ratio", n=1, d=2) == {"ratio": 0.5}  # the same handler answers the next request
        assert api(server, "runs")["total"] == 2
    finally:
        server.shutdown()
        thread.join(timeout=60)
        server.server_close()
    err = capfd.readouterr().err
    assert err.count("llmbench view: internal error answering /api/ratio") == 1
    assert ("Traceback" in err) is debug
