"""The Transformers backend on tiny-qwen2: real generation, timings taken at the token."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import resolve_model
from llmbench.hashing import token_ids_hash
from llmbench.testing.tinymodel import resolve_model_path
from llmbench.types import GenerationParams, GenerationRequest


@pytest.fixture(scope="module")
def backend() -> Iterator[TransformersBackend]:
    cfg = resolve_model("tiny-qwen2")
    b = TransformersBackend(cfg, resolve_model_path(cfg))
    info = b.load()
    assert info.load_time_s is not None and info.chat_template_hash and info.weights_bytes
    yield b
    b.close()


def chat(rid: str, text: str, **params: object) -> GenerationRequest:
    return GenerationRequest(rid, GenerationParams(**params), messages=({"role": "user", "content": text},))  # type: ignore[arg-type]


def test_generates_chat_prompt_and_token_ids(backend: TransformersBackend) -> None:
    reqs = [
        chat("a", "What is 2+2?", max_new_tokens=8),
        GenerationRequest("b", GenerationParams(max_new_tokens=8), prompt="The answer is"),
        GenerationRequest("c", GenerationParams(max_new_tokens=8), prompt_token_ids=(5, 6, 7, 8)),
    ]
    out = {c.request_id: c for c in backend.generate(reqs)}
    assert set(out) == {"a", "b", "c"}
    for c in out.values():
        assert c.error is None
        assert c.prompt_tokens and c.output_tokens is not None and 1 <= c.output_tokens <= 8
        assert c.ttft_ms is not None and c.latency_ms is not None and 0 < c.ttft_ms <= c.latency_ms
        assert len(c.itl_ms) == c.output_tokens - 1
    assert out["c"].prompt_hash == token_ids_hash([5, 6, 7, 8])
    assert "<|im_start|>assistant" in (out["a"].rendered_prompt or "")


def test_ignore_eos_runs_to_max_tokens_and_reports_length(backend: TransformersBackend) -> None:
    (c,) = backend.generate([chat("x", "hello", max_new_tokens=12, ignore_eos=True)])
    assert c.output_tokens == 12 and c.finish_reason == "length"


def test_batched_greedy_equals_one_at_a_time(backend: TransformersBackend) -> None:
    """Left padding must not change what a prompt generates."""
    prompts = [
        "a short one",
        "a much longer prompt with many more words in it than the first",
        "mid length prompt",
    ]
    reqs = [chat(str(i), p, max_new_tokens=10, ignore_eos=True) for i, p in enumerate(prompts)]
    batched = {c.request_id: c.text for c in backend.generate(reqs, concurrency=3)}
    single = {c.request_id: c.text for r in reqs for c in backend.generate([r], concurrency=1)}
    assert batched == single


def test_stop_sequence_cuts_output(backend: TransformersBackend) -> None:
    (free,) = backend.generate([chat("f", "tell me", max_new_tokens=16, ignore_eos=True)])
    assert len(free.text) > 4
    stop = free.text[2:5]
    (cut,) = backend.generate([chat("s", "tell me", max_new_tokens=16, stop=(stop,))])
    assert stop not in cut.text and free.text.startswith(cut.text)


def test_ttft_is_taken_at_the_first_token_not_at_the_end(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every forward pass is slowed by 40 ms: TTFT must cover one pass, latency all of them.

    Measured after generate (the classic mistake), TTFT would equal latency and this would fail.
    """
    model = backend._model
    real_forward = model.forward

    def slow_forward(*args: object, **kwargs: object) -> object:
        time.sleep(0.04)
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", slow_forward)
    (c,) = backend.generate([chat("t", "hi", max_new_tokens=10, ignore_eos=True)])
    assert c.output_tokens == 10 and c.ttft_ms is not None and c.latency_ms is not None
    assert c.ttft_ms >= 40  # at least the prefill pass
    assert c.latency_ms - c.ttft_ms >= 9 * 38  # nine more passes came after the first token
    assert all(gap >= 38 for gap in c.itl_ms)


def test_seeded_sampling_is_reproducible(backend: TransformersBackend) -> None:
    req = chat("r", "pick", max_new_tokens=10, temperature=1.0, seed=7, ignore_eos=True)
    (a,) = backend.generate([req])
    (b,) = backend.generate([req])
    assert a.text == b.text


def test_arrival_offsets_count_latency_from_arrival(backend: TransformersBackend) -> None:
    reqs = [chat(str(i), "hi", max_new_tokens=4, ignore_eos=True) for i in range(3)]
    offsets = {"0": 0.0, "1": 0.2, "2": 0.4}
    t0 = time.perf_counter()
    out = list(backend.generate(reqs, arrival_offsets_s=list(offsets.values())))
    elapsed_ms = (time.perf_counter() - t0) * 1000
    assert elapsed_ms >= 400
    assert len(out) == 3 and all(c.ttft_ms is not None and c.latency_ms is not None for c in out)
    # Counted from its arrival, a request's latency fits in what is left of the call after it arrived
    # (counted from the call, the last one's would not): a bound that holds however busy the host is.
    assert all(c.latency_ms <= elapsed_ms - offsets[c.request_id] * 1000 for c in out if c.latency_ms)


def test_json_mode_holds_each_row_to_its_own_schema(backend: TransformersBackend) -> None:
    """Guided decoding (xgrammar) on a random-weight model: every finished output is valid JSON of its schema."""
    jsonschema = pytest.importorskip("jsonschema")
    flags = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "color": {"enum": ["red", "blue"]}},
        "required": ["ok", "color"],
        "additionalProperties": False,
    }
    size = {
        "type": "object",
        "properties": {"size": {"enum": ["s", "m", "l"]}},
        "required": ["size"],
        "additionalProperties": False,
    }
    schemas = [flags, size, flags]
    reqs = [chat(str(i), "Answer in JSON.", max_new_tokens=40, json_schema=s) for i, s in enumerate(schemas)]
    out = {c.request_id: c for c in backend.generate(reqs)}
    for i, schema in enumerate(schemas):
        c = out[str(i)]
        assert c.error is None and c.finish_reason == "stop", c
        jsonschema.validate(json.loads(c.text), schema)
    assert {c.batch_size for c in out.values()} == {3}  # different schemas still share one batch
    (free,) = backend.generate([chat("free", "Answer in JSON.", max_new_tokens=40)])
    with pytest.raises(json.JSONDecodeError):  # unguided, the random model writes no JSON at all
        json.loads(free.text)


def test_a_request_that_breaks_its_batch_fails_alone(backend: TransformersBackend) -> None:
    fine = [
        GenerationRequest(str(i), GenerationParams(max_new_tokens=4), prompt_token_ids=(5, 6, 7))
        for i in range(3)
    ]
    bad = GenerationRequest("bad", GenerationParams(max_new_tokens=4), prompt_token_ids=(5, 10**7))
    out = {c.request_id: c for c in backend.generate([*fine, bad], concurrency=4)}
    assert out["bad"].finish_reason == "error" and out["bad"].error
    assert all(out[str(i)].error is None and out[str(i)].output_tokens == 4 for i in range(3))


def test_a_generated_pad_token_is_kept_and_eos_ends_the_sequence() -> None:
    from llmbench.backends.transformers_batch import generated_part

    assert generated_part([5, 0, 7, 0], {2}, ignore_eos=False) == ([5, 0, 7, 0], False)  # 0 is the pad id
    assert generated_part([5, 2, 0, 0], {2}, ignore_eos=False) == ([5, 2], True)
    assert generated_part([5, 2, 7], {2}, ignore_eos=True) == ([5, 2, 7], False)


def test_a_sequence_stopped_by_a_stop_string_counts_only_its_own_tokens(backend: TransformersBackend) -> None:
    """In a batch, a row that hit its stop string is padded while the others go on: that padding is not output."""
    (free,) = backend.generate([chat("f", "tell me", max_new_tokens=16, ignore_eos=True)])
    stop = (free.text[2:5],)
    reqs = [
        chat("early", "tell me", max_new_tokens=16, stop=stop),
        chat("other", "go on and on", max_new_tokens=16, stop=stop),
    ]
    batched = {c.request_id: c for c in backend.generate(reqs, concurrency=2)}
    single = {c.request_id: c for r in reqs for c in backend.generate([r], concurrency=1)}
    for rid in ("early", "other"):
        assert batched[rid].text == single[rid].text
        assert batched[rid].output_tokens == single[rid].output_tokens
    assert batched["early"].output_tokens is not None and batched["early"].output_tokens < 16
    assert len(batched["early"].itl_ms) == batched["early"].output_tokens - 1
