"""The OpenAI backend against a server that fails on purpose: a server's failure is never the model's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench.backends.base import Completion, GenerationParams, GenerationRequest
from llmbench.backends.openai import OpenAIBackend
from llmbench.backends.server_claims import Redactor
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.errors import UserInputError
from tests.backends.faulty_server import FaultyServer

PARAMS = GenerationParams(max_new_tokens=16)
CHAT = ({"role": "user", "content": "What is the answer?"},)
KEY = "sk-test-0123456789abcdef"


def backend_for(server: FaultyServer, **api: object) -> OpenAIBackend:
    spec = ApiSpec(base_url=server.base_url, **api)  # type: ignore[arg-type]
    backend = OpenAIBackend(ModelConfig(name="faulty", backend="openai", model="faulty", api=spec), "faulty")
    backend.load()
    return backend


def one(server: FaultyServer, request: GenerationRequest | None = None, **api: object) -> Completion:
    backend = backend_for(server, **api)
    try:
        (c,) = backend.generate([request or GenerationRequest("q", PARAMS, messages=CHAT)])
    finally:
        backend.close()
    return c


def test_a_well_behaved_server_gives_the_answer_and_its_usage() -> None:
    with FaultyServer("ok") as server:
        c = one(server)
    assert c.error is None and c.text == "The answer is 42."
    assert c.output_tokens == 5 and c.prompt_tokens == 7 and c.warnings == []


@pytest.mark.parametrize("fault", ["early_end", "empty"])
def test_an_answer_that_never_completed_is_a_transport_error_retried_then_counted(fault: str) -> None:
    with FaultyServer(fault) as server:
        c = one(server, max_retries=2)
    assert c.error is not None and "incomplete answer" in c.error
    assert c.finish_reason == "error"
    assert server.posts == 3  # one try and two retries


def test_a_stream_cut_short_once_succeeds_on_the_retry() -> None:
    with FaultyServer("early_end", fail_first=1) as server:
        c = one(server, max_retries=2)
    assert c.error is None and c.text == "The answer is 42." and c.finish_reason == "stop"
    assert server.posts == 2


def test_the_completions_route_treats_an_early_end_alike() -> None:
    with FaultyServer("early_end") as server:
        c = one(server, GenerationRequest("p", PARAMS, prompt="Say it"), max_retries=0)
    assert c.error is not None and "incomplete answer" in c.error


def test_absurd_usage_is_replaced_by_the_count_and_said() -> None:
    with FaultyServer("lying_usage") as server:
        c = one(server)
    assert c.error is None
    assert c.output_tokens is not None and 5 <= c.output_tokens <= PARAMS.max_new_tokens
    assert c.prompt_tokens is None  # nothing here to count a chat prompt with: unknown, not -5
    assert any("completion_tokens" in w and "12700000000" in w for w in c.warnings)
    assert any("prompt_tokens" in w for w in c.warnings)


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": "7", "completion_tokens": "5"},
        {"prompt_tokens": 7.5, "completion_tokens": True},
        {"prompt_tokens": 7, "completion_tokens": -3},
        {"prompt_tokens": 7, "completion_tokens": 10**30},
        "lots",
        [1, 2],
    ],
)
def test_usage_of_the_wrong_type_or_range_never_crashes_the_run(usage: object) -> None:
    with FaultyServer("ok", usage=usage) as server:  # type: ignore[arg-type]
        c = one(server)
    assert c.error is None and c.text == "The answer is 42."
    assert type(c.output_tokens) is int and 0 <= c.output_tokens <= PARAMS.max_new_tokens
    assert c.prompt_tokens is None or (type(c.prompt_tokens) is int and c.prompt_tokens >= 0)
    assert c.warnings
    assert c.tpot_ms is None or c.tpot_ms >= 0


def test_a_token_id_prompt_count_the_server_misreports_is_replaced_by_ours() -> None:
    with FaultyServer("ok", usage={"prompt_tokens": 99, "completion_tokens": 5}) as server:
        c = one(server, GenerationRequest("ids", PARAMS, prompt_token_ids=(1, 2, 3)))
    assert c.prompt_tokens == 3 and any("prompt_tokens" in w for w in c.warnings)


def test_an_api_key_echoed_by_the_server_is_never_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMBENCH_FAULTY_KEY", KEY)
    with FaultyServer("echo_headers") as server:
        c = one(server, api_key_env="LLMBENCH_FAULTY_KEY")
    assert server.seen_headers and KEY in json.dumps(server.seen_headers)  # the server did see it
    assert c.error is not None and "HTTP 400" in c.error
    assert KEY not in c.error and KEY[:12] not in c.error
    assert "***" in c.error


@pytest.mark.parametrize(
    "text",
    [
        f'{{"Authorization": "Bearer {KEY}"}}',
        f"authorization: Bearer {KEY}",
        "'authorization': 'Basic dXNlcjpwYXNz'",
        f"Proxy-Authorization=Bearer {KEY[:10]}",
        f"token {KEY} leaked",
        "cannot reach http://admin:hunter2-dXNlcjpwYXNz@10.0.0.1:8000/v1",
    ],
)
def test_the_redactor_masks_keys_and_authorization_values(text: str) -> None:
    masked = Redactor([KEY])(text)
    assert KEY[:10] not in masked and "dXNlcjpwYXNz" not in masked and "***" in masked


def test_a_server_that_never_begins_its_answer_times_out_at_the_first_byte_limit() -> None:
    with FaultyServer("hang_before_body") as server:
        c = one(server, first_byte_timeout_s=0.5, max_retries=3)
        posts = server.wait_for_posts(1)  # on a busy host the request may still be in the socket, unread
    assert c.error is not None and c.error.startswith("timeout: no answer began within 0.5 s")
    assert posts == 1  # a hung server is not asked again


def test_a_stream_that_stalls_times_out_at_the_idle_limit() -> None:
    with FaultyServer("hang_mid_stream") as server:
        c = one(server, idle_timeout_s=0.5, first_byte_timeout_s=30)
    assert c.error is not None and "stalled for more than 0.5 s" in c.error
    assert c.finish_reason == "error"


def test_a_models_route_answering_html_is_one_line_of_bad_input() -> None:
    with FaultyServer("html_models") as server:
        backend = OpenAIBackend(
            ModelConfig(name="f", backend="openai", model="f", api=ApiSpec(base_url=server.base_url)), "f"
        )
        with pytest.raises(UserInputError, match=r"text/html, not the JSON") as info:
            backend.load()
    assert "\n" not in str(info.value)


def _suite(tmp_path: Path) -> Path:
    (tmp_path / "data.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "text": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(3)
        )
    )
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ngeneration: {max_new_tokens: 8}\ntasks:\n  - name: sums\n"
        "    dataset: {local: data.jsonl, reference_field: answer}\n"
        "    prompt: {template: '{{ text }}'}\n    scorer: {name: exact}\n"
    )
    return suite


def _run_cli(server: FaultyServer, suite: Path, out: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "llmbench", "run", str(suite), "-m", "faulty", "--base-url", server.base_url,
         "-o", str(out), "-q", "--first-byte-timeout", "600", *extra],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=3600,
        env=dict(os.environ) | (env or {}),
    )  # fmt: skip


def test_an_echoed_key_reaches_neither_results_nor_journal_nor_stderr(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FaultyServer("echo_headers") as server:
        proc = _run_cli(server, _suite(tmp_path), out, "--api-key-env", "LLMBENCH_FAULTY_KEY",
                        env={"LLMBENCH_FAULTY_KEY": KEY})  # fmt: skip
    assert server.seen_headers and proc.returncode == 1, proc.stderr
    written = [
        p.read_text()
        for p in tmp_path.iterdir()
        if p.suffix in (".json", ".jsonl") and p.name != "data.jsonl"
    ]
    assert written and "HTTP 400" in written[0]
    for text in [*written, proc.stdout, proc.stderr]:
        assert KEY not in text and KEY[:12] not in text


def test_a_lying_usage_is_recorded_as_a_warning_and_not_as_the_count(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FaultyServer("lying_usage") as server:
        proc = _run_cli(server, _suite(tmp_path), out)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    for sample in data["samples"]:
        assert sample["error"] is None and 0 < sample["tokens_out"] <= 8
        assert any("completion_tokens" in w for w in sample["warnings"])
    tps = data["performance"].get("output_tokens_per_s")
    assert tps is None or tps < 1e6


def test_a_run_where_every_answer_failed_to_arrive_fails(tmp_path: Path) -> None:
    (tmp_path / "data.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "text": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(3)
        )
    )
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\ngeneration: {max_new_tokens: 8}\ntasks:\n  - name: sums\n"
        "    dataset: {local: data.jsonl, reference_field: answer}\n"
        "    prompt: {template: '{{ text }}'}\n    scorer: {name: exact}\n"
    )
    out = tmp_path / "r.json"
    with FaultyServer("empty") as server:
        proc = subprocess.run(
            [sys.executable, "-m", "llmbench", "run", str(suite), "-m", "faulty", "--base-url", server.base_url,
             "-o", str(out), "-q", "--first-byte-timeout", "600"],
            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "every sample failed" in proc.stderr and "incomplete answer" in proc.stderr
    assert "Traceback" not in proc.stderr
    samples = json.loads(out.read_text())["samples"]
    assert len(samples) == 3 and all(s["error"] and s["status"] == "error" for s in samples)


def test_the_timeout_flags_reach_the_backend(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FaultyServer("hang_before_body") as server:
        proc = _run_cli(
            server,
            _suite(tmp_path),
            out,
            "--first-byte-timeout",
            "0.3",
            "--idle-timeout",
            "0.3",
            "--no-warmup",
        )
        posts = server.wait_for_posts(3)  # on a busy host some may still be in the socket, unread
    assert proc.returncode == 1, proc.stderr
    assert "no answer began within 0.3 s" in proc.stderr
    assert posts == 3  # one try per sample: a hung server is not asked again


# ---------------------------------------------------------------- arrivals and the cap on requests in flight


def _asks(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(f"q{i}", PARAMS, messages=CHAT) for i in range(n)]


def test_arrivals_without_a_cap_all_go_out_at_once_beyond_api_concurrency() -> None:
    # api.concurrency is 8; an open-loop call with no cap given must not queue the other four behind it
    with FaultyServer("ok", gather=12) as server:
        backend = backend_for(server)
        try:
            got = list(backend.generate(_asks(12), arrival_offsets_s=[0.0] * 12))
        finally:
            backend.close()
    assert server.most_open == 12
    assert all(c.error is None and c.queue_ms == 0.0 for c in got)


def test_arrivals_under_a_cap_queue_for_a_slot_and_the_wait_is_kept_out_of_ttft() -> None:
    with FaultyServer("ok") as server:
        backend = backend_for(server)
        try:
            got = list(backend.generate(_asks(6), concurrency=2, arrival_offsets_s=[0.0] * 6))
        finally:
            backend.close()
    assert server.most_open <= 2 and all(c.error is None for c in got)
    queued = [c for c in got if c.queue_ms]
    assert len(queued) >= 4  # at most two found a free slot at their arrival


def test_a_closed_loop_call_without_a_cap_keeps_api_concurrency() -> None:
    with FaultyServer("ok", gather=3) as server:  # the first three are answered once all three are open
        backend = backend_for(server, concurrency=3)
        try:
            got = list(backend.generate(_asks(6)))
        finally:
            backend.close()
    assert server.most_open == 3 and all(c.error is None and c.queue_ms is None for c in got)
