"""The OpenAI-compatible backend against a real vLLM server (tiny-qwen2), plus the managed server itself."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from llmbench.backends.common import load_tokenizer, render_chat
from llmbench.backends.managed_server import ManagedVLLMServer
from llmbench.backends.openai import OpenAIBackend, fetch_server_metrics, histogram_quantile
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.errors import BackendError, UserInputError
from llmbench.hashing import token_ids_hash
from llmbench.types import GenerationParams, GenerationRequest

if TYPE_CHECKING:
    from conftest import ServedModel


FIXED = GenerationParams(max_new_tokens=8, ignore_eos=True)
CHAT = ({"role": "user", "content": "Name a colour."},)


def client_for(served: ServedModel, base_url: str | None = None, **api: object) -> OpenAIBackend:
    """An OpenAI backend pointed at a running server (not managed), loaded."""
    spec = ApiSpec(base_url=base_url or served.base_url, **api)  # type: ignore[arg-type]
    backend = OpenAIBackend(served.config.model_copy(update={"api": spec}), served.config.model)
    backend.load()
    return backend


class Proxy:
    """A loopback HTTP proxy to the real server that counts requests in flight and can fail the first few."""

    def __init__(self, upstream: str, fail_first: int = 0) -> None:
        self.upstream = urlsplit(upstream)
        self.fail_remaining = fail_first
        self.posts = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when we close: simple streaming

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(b"", lambda: None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.posts += 1
                    fail = proxy.fail_remaining > 0
                    proxy.fail_remaining -= int(fail)
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                released = threading.Event()

                def release() -> None:  # once: when the client can consider the request done
                    with proxy.lock:
                        if not released.is_set():
                            released.set()
                            proxy.in_flight -= 1

                try:
                    if fail:
                        release()
                        self.send_response(503)
                        self.send_header("Content-Type", "application/json")
                        self.end_headers()
                        self.wfile.write(b'{"error": "overloaded"}')
                    else:
                        self._forward(body, release)
                finally:
                    release()

            def _forward(self, body: bytes, release: Callable[[], None]) -> None:
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=1800)
                conn.request(
                    self.command, self.path, body=body or None, headers={"Content-Type": "application/json"}
                )
                response = conn.getresponse()
                self.send_response(response.status)
                self.send_header("Content-Type", response.getheader("Content-Type", "application/json"))
                self.end_headers()
                while chunk := response.read1(65536):
                    if b"[DONE]" in chunk:  # the client is done once it reads this: count it out first
                        release()
                    self.wfile.write(chunk)
                    self.wfile.flush()
                conn.close()

        return Handler

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------ no server needed (these run first)


def test_missing_api_key_variable_is_a_user_input_error(tiny_model_path: Path) -> None:
    api = ApiSpec(base_url="http://127.0.0.1:9/v1", api_key_env="LLMBENCH_TEST_UNSET_KEY_VARIABLE")
    backend = OpenAIBackend(
        ModelConfig(name="remote", backend="openai", model="some-model", api=api), "some-model"
    )
    with pytest.raises(UserInputError, match="LLMBENCH_TEST_UNSET_KEY_VARIABLE"):
        backend.load()


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 2.0), (0.2, 6.0), (0.4, 8.0), (float("inf"), 8.0)]
    assert histogram_quantile(buckets, 0.5) == pytest.approx(0.15)
    assert histogram_quantile(buckets, 0.25) == pytest.approx(0.1)
    assert histogram_quantile([], 0.5) is None


@pytest.mark.vllm
def test_managed_server_that_dies_reports_its_last_log_lines(tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    server = ManagedVLLMServer(ModelConfig(name="broken", model="broken"), str(tmp_path), ready_timeout_s=300)
    with pytest.raises(BackendError, match="exited with code") as info:
        server.__enter__()
    assert "no-such-architecture" in str(info.value) or "Error" in str(info.value)
    assert server.process is not None and server.process.poll() is not None


def test_a_managed_server_records_the_dtype_it_runs_not_auto(tmp_path: Path) -> None:
    """With "auto" vLLM picks the precision itself; the results must carry what it picked."""
    given = ManagedVLLMServer(ModelConfig(name="m", model="m", dtype="float32"), str(tmp_path))
    assert given.served_dtype() == "float32"
    auto = ManagedVLLMServer(ModelConfig(name="m", model="m"), str(tmp_path))
    assert auto.served_dtype() is None  # nothing logged yet: unknown, never "auto"
    auto.log_path.write_text(
        "INFO 12-01 core.py:93] Initializing a V1 LLM engine with config: model='m', "
        "tokenizer='m', dtype=torch.bfloat16, max_seq_len=1024\n",
        encoding="utf-8",
    )
    assert auto.served_dtype() == "bfloat16"


# ------------------------------------------------------------ against the session's real vLLM server


@pytest.mark.vllm
def test_managed_mode_starts_a_loopback_server_for_a_local_model(served: ServedModel) -> None:
    assert served.info.extra["managed"] is True
    assert served.info.dtype == "float32"
    assert served.info.gpus is not None  # a server it started runs on this host
    state = served.info.load_state  # process start to ready, imports included; eager on a CPU
    assert state is not None and state.imports_included and state.compile_cache == "off"
    assert served.base_url.startswith("http://127.0.0.1:")
    assert served.config.model in served.info.extra["served_models"]
    (c,) = served.backend.generate([GenerationRequest("m", FIXED, messages=CHAT)])
    assert c.error is None and c.output_tokens == 8


@pytest.mark.vllm
def test_chat_endpoint_streams_with_usage_and_timings(served: ServedModel) -> None:
    backend = client_for(served)
    try:
        out = list(backend.generate([GenerationRequest(f"c{i}", FIXED, messages=CHAT) for i in range(3)]))
    finally:
        backend.close()
    _, ids = render_chat(load_tokenizer(served.config, served.config.model), CHAT)
    for c in out:
        assert c.error is None, c.error
        assert c.output_tokens == 8 and c.prompt_tokens == len(ids)  # the server applied the same template
        assert c.finish_reason == "length"
        assert c.ttft_ms is not None and c.latency_ms is not None and 0 < c.ttft_ms < c.latency_ms
        assert 1 <= len(c.itl_ms) <= c.output_tokens - 1  # one gap per content chunk after the first
        assert c.prompt_hash is not None


@pytest.mark.vllm
def test_completions_endpoint_takes_text_and_token_ids(served: ServedModel) -> None:
    backend = client_for(served)
    try:
        out = {
            c.request_id: c
            for c in backend.generate(
                [
                    GenerationRequest("text", FIXED, prompt="The quick brown fox"),
                    GenerationRequest("ids", FIXED, prompt_token_ids=(5, 17, 42, 99, 7)),
                    GenerationRequest(
                        "stop", GenerationParams(max_new_tokens=4), prompt="The quick brown fox"
                    ),
                ]
            )
        }
    finally:
        backend.close()
    assert (
        out["text"].error is None and out["text"].output_tokens == 8 and out["text"].finish_reason == "length"
    )
    assert out["ids"].error is None and out["ids"].prompt_tokens == 5
    assert out["ids"].prompt_hash == token_ids_hash([5, 17, 42, 99, 7])
    assert out["stop"].output_tokens is not None and out["stop"].output_tokens <= 4


@pytest.mark.vllm
def test_concurrency_cap_is_respected(served: ServedModel) -> None:
    # Long answers, so requests released together surely overlap at the proxy.
    params = GenerationParams(max_new_tokens=48, ignore_eos=True)
    requests = [GenerationRequest(f"r{i}", params, prompt_token_ids=(3, 4, 5, i)) for i in range(6)]
    with Proxy(served.base_url) as proxy:
        backend = client_for(served, base_url=proxy.base_url, concurrency=8)
        try:
            capped = list(backend.generate(requests, concurrency=2))
        finally:
            backend.close()
    assert all(c.error is None and c.output_tokens == 48 for c in capped)
    assert proxy.posts == 6
    assert proxy.max_in_flight == 2


@pytest.mark.vllm
def test_retries_on_server_errors_then_succeeds(served: ServedModel) -> None:
    request = GenerationRequest("retry", FIXED, prompt="The quick brown fox")
    with Proxy(served.base_url, fail_first=2) as proxy:
        backend = client_for(served, base_url=proxy.base_url, max_retries=3)
        try:
            (c,) = backend.generate([request])
        finally:
            backend.close()
    assert c.error is None and c.output_tokens == 8
    assert proxy.posts == 3


@pytest.mark.vllm
def test_gives_up_after_max_retries_with_the_server_error(served: ServedModel) -> None:
    request = GenerationRequest("retry", FIXED, prompt="The quick brown fox")
    with Proxy(served.base_url, fail_first=5) as proxy:
        backend = client_for(served, base_url=proxy.base_url, max_retries=1)
        try:
            (c,) = backend.generate([request])
        finally:
            backend.close()
    assert c.error is not None and "503" in c.error and c.finish_reason == "error"
    assert proxy.posts == 2


@pytest.mark.vllm
def test_harness_ttft_agrees_with_the_servers_own_histogram(served: ServedModel) -> None:
    name = "vllm:time_to_first_token_seconds"
    before = fetch_server_metrics(served.base_url)[name]
    backend = client_for(served)
    try:
        params = GenerationParams(max_new_tokens=32, ignore_eos=True)
        requests = [GenerationRequest(f"t{i}", params, prompt_token_ids=(9, 8, 7, i)) for i in range(10)]
        out = list(backend.generate(requests, concurrency=1))
    finally:
        backend.close()
    after = fetch_server_metrics(served.base_url)[name]
    assert after["count"] - before["count"] == len(requests)
    server_ttft = histogram_quantile(_delta(before, after), 0.5)
    assert server_ttft is not None
    harness_ttft = statistics.median(c.ttft_ms for c in out if c.ttft_ms is not None) / 1000
    harness_latency = statistics.median(c.latency_ms for c in out if c.latency_ms is not None) / 1000
    edges = [le for le, _ in after["buckets"]]
    lower = max([le for le in edges if le < server_ttft], default=0.0)
    # The harness never sees the first token before the engine made it (within the bucket resolution).
    # It sees it later by the HTTP round trip and the API server's own handling; on a busy 2-core
    # machine that lag reaches tens of ms, so no upper bound against the engine's clock is asserted.
    assert harness_ttft >= lower - 0.002
    assert harness_ttft < harness_latency  # stamped at the first token, not the last


def _delta(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[float, float]]:
    """The histogram of what happened between two scrapes."""
    old = dict(before["buckets"])
    return [(le, count - old.get(le, 0.0)) for le, count in after["buckets"]]


def test_serving_workloads_run_against_the_server_and_read_its_cache_counters(served: ServedModel) -> None:
    from tests.backends.serving_checks import check_common, run_serving_suite

    points = run_serving_suite(served.backend, served.info)
    check_common(points)
    on, off = points["shared_prefix"]
    assert on.prefix_cache_source and "/metrics" in on.prefix_cache_source
    assert (
        off.error and "cannot switch prefix caching off (its setting: on" in off.error and off.ttft_ms is None
    )
