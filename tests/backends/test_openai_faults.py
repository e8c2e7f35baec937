"""The OpenAI backend against a server that fails on purpose: a server's failure is never the model's answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from llmbench.backends.base import Completion, GenerationParams, GenerationRequest
from llmbench.backends.openai import OpenAIBackend
from llmbench.backends.openai_wire import RAW_HEAD_CHARS
from llmbench.backends.server_claims import Redactor
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.errors import UserInputError
from llmbench.run.journal import read_journal
from tests.backends.faulty_server import FaultyServer, sums_suite

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


def test_a_server_that_never_begins_its_answer_times_out_at_the_first_token_limit() -> None:
    with FaultyServer("hang_before_body") as server:
        c = one(server, first_token_timeout_s=0.5, max_retries=3)
        posts = server.wait_for_posts(1)  # on a busy host the request may still be in the socket, unread
    assert c.error is not None and c.error.startswith("timeout: no answer began within 0.5 s")
    assert posts == 1  # a hung server is not asked again


def test_a_stream_that_stalls_times_out_at_the_idle_limit() -> None:
    with FaultyServer("hang_mid_stream") as server:
        c = one(server, idle_timeout_s=0.5, first_token_timeout_s=30)
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
    suite = sums_suite(tmp_path, [str(2 * i) for i in range(3)])
    return suite


def _run_cli(server: FaultyServer, suite: Path, out: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "llmbench", "run", str(suite), "-m", "faulty", "--base-url", server.base_url,
         "-o", str(out), "-q", "--first-token-timeout", "600", *extra],
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
    suite = sums_suite(tmp_path, [str(2 * i) for i in range(3)])
    out = tmp_path / "r.json"
    with FaultyServer("empty") as server:
        proc = subprocess.run(
            [sys.executable, "-m", "llmbench", "run", str(suite), "-m", "faulty", "--base-url", server.base_url,
             "-o", str(out), "-q", "--first-token-timeout", "600"],
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
            "--first-byte-timeout",  # the flag's old name still works
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


# ---------------------------------------------------------------- every request ends, its fault named


def timed(server: FaultyServer, **api: object) -> tuple[Completion, float]:
    start = time.monotonic()
    c = one(server, **api)
    return c, time.monotonic() - start


@pytest.mark.parametrize("fault", ["comments_only", "empty_events"])
def test_keep_alives_comments_and_empty_events_do_not_begin_an_answer(fault: str) -> None:
    with FaultyServer(fault) as server:
        c, took = timed(server, first_token_timeout_s=2, max_retries=3)  # long enough for its first lines
        posts = server.wait_for_posts(1)
    assert c.error is not None and c.error.startswith("timeout: no answer began within 2 s"), c.error
    assert "keep-alives, comments or empty events" in c.error
    assert c.finish_reason == "error" and c.ttft_ms is None and c.text == ""
    assert c.raw_head and len(c.raw_head) <= RAW_HEAD_CHARS  # what it sent, for the viewer
    assert posts == 1 and c.attempts == 1  # a server that never answers is not asked again
    assert took < 10  # HANG_S is 20: the client ended it, not the server


def test_empty_texts_are_tokens_and_an_endless_run_of_them_is_cut_at_the_bound() -> None:
    with FaultyServer("empty_texts") as server:  # what vLLM streams for tokens that end mid-character
        c, took = timed(server, first_token_timeout_s=5, max_retries=3)
    assert c.ttft_ms is not None  # the first of them is the first token, as vllm bench serve counts it
    assert c.error is not None and c.error.startswith("the server sent a longer answer than asked for"), (
        c.error
    )
    assert took < 10


def test_an_answer_that_never_stops_is_cut_where_it_passed_its_bound() -> None:
    with FaultyServer("never_stops") as server:  # one word an event, forever
        c, took = timed(server, max_retries=3)
        posts = server.wait_for_posts(1)
    bound = PARAMS.max_new_tokens + 8  # the stated margin
    assert c.error is not None and c.error.startswith(
        f"the server sent a longer answer than asked for: more than {bound} tokens (max_tokens 16"
    ), c.error
    assert c.text == "".join(f" word{i}" for i in range(bound))  # kept up to the bound, not one word more
    assert c.raw_head is not None and f"word{bound}" in c.raw_head  # the event that went past it
    assert c.finish_reason == "error" and posts == 1 and took < 10


def test_an_answer_of_few_but_huge_events_is_cut_at_its_bound_on_characters() -> None:
    with FaultyServer("ok", words=("x" * 1000,) * 5) as server:  # 5 tokens of 1,000 characters each
        c = one(server)
    chars = (PARAMS.max_new_tokens + 8) * 64
    assert c.error is not None and f"more than {chars} characters in 2 tokens" in c.error, c.error
    assert len(c.text) == chars and c.finish_reason == "error"


def test_an_endless_line_is_a_transport_error_cut_at_the_bound() -> None:
    with FaultyServer("endless_line") as server:  # `data: {...` and 64 KiB blocks, no newline, forever
        c, took = timed(server, max_retries=1)
        posts = server.wait_for_posts(2)
    assert c.error is not None and "the server sent a line longer than 1,048,576 bytes" in c.error, c.error
    assert "the last of 2 tries" in c.error and posts == 2 and c.attempts == 2  # a transport error: retried
    assert c.text == "" and c.raw_head is not None and len(c.raw_head) <= RAW_HEAD_CHARS  # what was kept
    assert c.raw_head.startswith('data: {"id": "x"') and took < 10


def test_one_huge_chunk_is_read_in_bounded_memory_and_ends_as_a_transport_error() -> None:
    # One chunk announced as 100 MiB, holding one line that never ends: the pool passes the chunk on as it
    # comes, so the line's bound (1 MiB) ends it; a pool that held whole chunks would hold 100 MiB first.
    tracemalloc.start()
    try:
        with FaultyServer("huge_chunk") as server:
            c = one(server, max_retries=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert c.error is not None and "the server sent a line longer than 1,048,576 bytes" in c.error, c.error
    assert "transport error" in c.error and c.finish_reason == "error"
    assert peak < 32 << 20, f"{peak / 2**20:.0f} MiB held for one chunk"


def test_an_event_that_is_not_json_is_named_with_its_head() -> None:
    with FaultyServer("not_json") as server:
        c = one(server, max_retries=3)
        posts = server.wait_for_posts(1)
    assert c.error == "the server sent an event that is not JSON: {not json, but the server sent it anyway}"
    assert c.raw_head == "{not json, but the server sent it anyway}"
    assert c.finish_reason == "error" and posts == 1


def test_a_retried_request_is_timed_from_its_last_try_and_counts_its_tries() -> None:
    with FaultyServer("busy", fail_first=1) as server:  # 503 with Retry-After: 1, then the answer
        c, took = timed(server, max_retries=2)
    assert c.error is None and c.text == "The answer is 42." and c.attempts == 2
    assert took >= 1.0  # the client did wait out the Retry-After
    assert c.ttft_ms is not None and c.latency_ms is not None
    assert c.latency_ms <= (took - 1.0) * 1000  # neither the failed try nor the second of backoff


def test_retries_share_one_request_timeout() -> None:
    with FaultyServer("busy") as server:  # every try: 503, Retry-After: 1
        c, took = timed(server, max_retries=10, request_timeout_s=2.5)
        posts = server.posts
    assert c.error is not None and "HTTP 503" in c.error
    # a second of backoff after each try: 3 tries fit in 2.5 s, 2 where this host was slow to answer them
    assert c.attempts in (2, 3) and posts == c.attempts, c.error
    assert f"the last of {c.attempts} tries within the request timeout of 2.5 s" in c.error, c.error
    assert took < 10  # not 11 tries of a second each


def test_the_request_timeout_bounds_an_answer_the_other_limits_allow() -> None:
    with FaultyServer("comments_only") as server:
        c, took = timed(server, first_token_timeout_s=60, request_timeout_s=0.5)
    assert c.error == "timeout: no complete answer within the request timeout of 0.5 s", c.error
    assert took < 10


def test_a_config_with_the_old_timeout_keys_still_loads() -> None:
    api = ApiSpec.model_validate({"first_byte_timeout_s": 7, "timeout_s": 90})
    assert api.first_token_timeout_s == 7 and api.request_timeout_s == 90
    assert ApiSpec().request_timeout_s == 300  # minutes for a stream, not ten


@pytest.mark.parametrize(
    ("fault", "named"),
    [
        ("comments_only", "no answer began within 0.5 s"),
        ("never_stops", "the server sent a longer answer than asked for"),
        ("endless_line", "the server sent a line longer than"),
        ("not_json", "the server sent an event that is not JSON"),
    ],
)
def test_a_run_against_each_fault_ends_with_every_sample_under_error(
    tmp_path: Path, fault: str, named: str
) -> None:
    out = tmp_path / "r.json"
    with FaultyServer(fault) as server:
        start = time.monotonic()
        proc = _run_cli(server, _suite(tmp_path), out, "--first-token-timeout", "0.5", "--idle-timeout", "0.5",
                        "--request-timeout", "20", "--no-warmup")  # fmt: skip
        took = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "every sample failed" in proc.stderr and named in proc.stderr and "Traceback" not in proc.stderr
    samples = json.loads(out.read_text())["samples"]
    assert len(samples) == 3 and all(s["status"] == "error" and named in s["error"] for s in samples)
    assert all(s["raw_head"] and len(s["raw_head"]) <= RAW_HEAD_CHARS for s in samples)
    assert took < 120  # a run of three samples against a server that never ends (HANG_S: 20 s each)


def test_a_run_past_its_deadline_keeps_what_finished_and_says_how_to_resume(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    with FaultyServer("hang_before_body", ok_first=2) as server:  # two answers, then silence
        proc = _run_cli(
            server, _suite(tmp_path), out, "--deadline", "10", "--no-warmup"
        )  # the third hangs 20 s
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the run's deadline of 10 s passed: 2 finished samples saved in" in proc.stderr, proc.stderr
    assert f"llmbench run --resume --output {out}" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and len(read_journal(tmp_path / "r.journal.jsonl").samples) == 2
