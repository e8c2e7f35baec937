"""Serving workloads: their config, their prompts (shared prefixes share ids, chats grow), and a run on Transformers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from pydantic import ValidationError

from llmbench.backends.transformers import TransformersBackend
from llmbench.config.models import ModelConfig
from llmbench.config.serving import MultiTurnWorkload, TraceWorkload
from llmbench.config.suite import PerfSweep, load_suite
from llmbench.data.traces import TraceRecord
from llmbench.data.workload_prompts import PromptBuilder
from llmbench.run.multiturn import chat_questions, run_conversations
from llmbench.run.perf import PerfTarget
from llmbench.run.trace_replay import TraceBatch
from llmbench.run.workloads import run_perf
from llmbench.testing.tinymodel import ensure_tiny_model
from llmbench.types import Completion, GenerationRequest


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


class Recording:
    """The real Transformers backend on tiny-qwen2, keeping every request it was given."""

    def __init__(self) -> None:
        path = ensure_tiny_model()
        self.backend = TransformersBackend(
            ModelConfig(name="tiny", model=str(path), dtype="float32"), str(path)
        )
        self.info = self.backend.load()
        self.requests: list[GenerationRequest] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def generate(self, requests: Sequence[GenerationRequest], **kwargs: Any) -> Iterator[Completion]:
        self.requests += requests
        return self.backend.generate(requests, **kwargs)


@pytest.fixture(scope="module")
def recording() -> Iterator[Recording]:
    rec = Recording()
    yield rec
    rec.backend.close()


# ---------------------------------------------------------------- config


def test_a_workload_refuses_the_sweep_fields_it_decides_itself() -> None:
    with pytest.raises(ValidationError, match="a trace workload decides input_tokens, request_rates itself"):
        PerfSweep(input_tokens=[64], request_rates=[2.0], workload={"kind": "trace", "path": "t.jsonl"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="shared_prefix workload decides requests_per_point"):
        PerfSweep(requests_per_point=4, workload={"kind": "shared_prefix"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="multi_turn workload decides request_rates"):
        PerfSweep(request_rates=[1.0], workload={"kind": "multi_turn"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="prefixs"):
        PerfSweep(workload={"kind": "shared_prefix", "prefixs": 2})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="'shared_prefix', 'multi_turn', 'trace'"):
        PerfSweep(workload={"kind": "replay"})  # type: ignore[arg-type]


def test_the_serving_suite_loads_with_a_point_per_workload_and_arrival() -> None:
    tasks = {t.name: t.perf for t in load_suite("serving").config.tasks}
    assert tasks["shared_prefix"] and tasks["shared_prefix"].workload.kind == "shared_prefix"  # type: ignore[union-attr]
    assert tasks["bursty_arrivals"] and tasks["bursty_arrivals"].arrival.process == "gamma"
    assert {t.workload.kind for t in tasks.values() if t and t.workload} == {
        "shared_prefix",
        "multi_turn",
        "trace",
    }


# ---------------------------------------------------------------- prompts


def test_requests_of_one_prefix_share_its_token_ids_and_no_more(tokenizer: Any) -> None:
    b = PromptBuilder(tokenizer, "random", seed=3, needs_text=False)
    a1, a2 = b.with_prefix(1, 40, 64, index=10), b.with_prefix(1, 40, 64, index=11)
    other = b.with_prefix(2, 40, 64, index=12)
    assert isinstance(a1, tuple) and isinstance(a2, tuple) and isinstance(other, tuple)
    assert len(a1) == len(a2) == len(other) == 64
    assert a1[:40] == a2[:40] and a1[40:42] != a2[40:42]  # the suffixes start apart
    assert a1[:2] != other[:2]


def test_text_prompts_of_one_prefix_share_its_tokens_when_the_server_tokenizes_them(tokenizer: Any) -> None:
    b = PromptBuilder(tokenizer, "random", seed=3, needs_text=True)
    texts = [b.with_prefix(7, 48, 80, index=i) for i in (1, 2)]
    ids = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    shared = next(i for i, (x, y) in enumerate(zip(*ids, strict=False)) if x != y)
    assert 47 <= shared <= 50 and all(abs(len(i) - 80) <= 1 for i in ids)


def test_trace_blocks_with_the_same_hash_id_are_the_same_tokens(tokenizer: Any) -> None:
    b = PromptBuilder(tokenizer, "random", seed=0, needs_text=False)
    p1 = b.from_blocks((5, 6, 7), block_tokens=16, n_tokens=40, index=1)
    p2 = b.from_blocks((5, 6, 9), block_tokens=16, n_tokens=56, index=2)
    p3 = b.from_blocks((5,), block_tokens=16, n_tokens=24, index=3)  # blocks run out: the rest is its own
    assert isinstance(p1, tuple) and isinstance(p2, tuple) and isinstance(p3, tuple)
    assert (len(p1), len(p2), len(p3)) == (40, 56, 24)
    assert p1[:32] == p2[:32] and p1[32:40] != p2[32:40] and p3[:16] == p1[:16]
    assert b.from_blocks((5,), 16, 16, 1, 1) != p1[:16]  # another replay, other blocks


def test_no_two_replays_share_a_block_whatever_their_hash_ids() -> None:
    b = PromptBuilder(None, "random", seed=0, needs_text=False, vocab_size=50_000)
    # replay 1's block 0 and replay 0's block 2**20 once had the same index
    assert b.from_blocks((1 << 20,), 16, 16, 1, 0) != b.from_blocks((0,), 16, 16, 1, 1)
    assert b.from_blocks(((1 << 63) - 1,), 16, 16, 1, 0) != b.from_blocks((0,), 16, 16, 1, 1)


def test_every_repeat_of_a_trace_replay_has_blocks_of_its_own() -> None:
    b = PromptBuilder(None, "random", seed=0, needs_text=False, vocab_size=50_000)
    records = [TraceRecord(0.0, 32, 4, (0, 1), line=1), TraceRecord(0.5, 32, 4, (0, 2), line=2)]
    w = TraceWorkload(kind="trace", path="t.jsonl", block_tokens=16)
    batch = TraceBatch(records, w, b, point_no=0, offsets_s=[0.0, 0.5], input_tokens=32, output_tokens=4)
    first_blocks = []
    for repeat in range(40):  # repeats 6 and 29 once drew the same salt
        a, c = (r.prompt_token_ids or () for r in batch.requests(repeat))
        assert a[:16] == c[:16]  # within a repeat, hash id 0 is one block
        first_blocks.append(a[:16])
    assert len(set(first_blocks)) == 40
    assert len(b._blocks) == 3  # only the last repeat's blocks are kept: 0, 1 and 2


def test_each_turn_sends_the_whole_chat_so_far_with_the_models_own_answers(recording: Recording) -> None:
    builder = PromptBuilder(recording.tokenizer, "random", seed=0, needs_text=False)
    recording.requests.clear()
    w = MultiTurnWorkload(kind="multi_turn", conversations=2, turns=3)
    questions = chat_questions(builder, (0, 0), 1, w, 12)
    chats = run_conversations(recording, questions, lambda *parts: None, 0, w, 4, 2)  # type: ignore[arg-type]
    first_chat = [
        r.messages for r in recording.requests if r.request_id.endswith(("c0-t1", "c0-t2", "c0-t3"))
    ]
    assert [len(m or ()) for m in first_chat] == [1, 3, 5]
    answers = {c.request_id: c.text for c in chats.completions}
    assert first_chat[1] and first_chat[1][1] == {"role": "assistant", "content": answers["perf-0-0-c0-t1"]}
    assert first_chat[2] and first_chat[2][:3] == first_chat[1]
    assert [t.turn for t in chats.turns] == [1, 2, 3]
    grown = [t.prompt_tokens_mean or 0 for t in chats.turns]
    assert grown[0] < grown[1] < grown[2]
    assert all(t.ttft_ms is not None and t.ttft_ms.n == 2 for t in chats.turns)


# ---------------------------------------------------------------- a run


def test_on_transformers_only_the_prefix_caching_off_point_runs(recording: Recording) -> None:
    suite = load_suite("serving")
    sweep = next(t.perf for t in suite.config.tasks if t.name == "shared_prefix")
    assert sweep is not None
    target = PerfTarget(recording, None, recording.tokenizer, 1024, seed=0, needs_text=False)  # type: ignore[arg-type]
    on, off = run_perf(target, sweep, base_dir=suite.directory)
    assert on.error and "prefix caching is off" in on.error and on.ttft_ms is None
    assert off.error is None and off.prefix_caching is False and off.n_requests == 6
    assert off.ttft_ms and off.tpot_ms and off.e2e_latency_ms and off.output_tokens_per_s
    assert (
        off.prompt_tokens_mean == 320
        and off.prefix_cache_hit_rate is None
        and off.workload == "shared_prefix"
    )
