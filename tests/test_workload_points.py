"""Serving-workload points on a backend without a model: what is built when, what is checked up front.

The backend answers at once with made-up timings; the tests are about the runner around it: prompts
are built before a point's measurement window, the engine's prefix-cache state is read once per point,
a chat whose last turn cannot fit is refused before it runs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from llmbench.backends.prefix_cache import PrefixCacheCounters, PrefixCacheState
from llmbench.config.models import ModelConfig
from llmbench.config.suite import PerfSweep, load_suite
from llmbench.data.workload_prompts import PromptBuilder
from llmbench.errors import DataError
from llmbench.run.catalogue import validate
from llmbench.run.options import RunOptions
from llmbench.run.perf import PerfTarget
from llmbench.run.pipeline import run_suite
from llmbench.run.trace_replay import TraceBatch
from llmbench.run.workloads import run_perf
from llmbench.telemetry.nvml import TelemetryWindow
from llmbench.testing.tinymodel import ensure_tiny_model
from llmbench.types import Completion, GenerationRequest
from tests.model_free_backend import ModelFreeBackend


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_tiny_model())


@dataclass
class Engine(ModelFreeBackend):
    """Answers every request with `n_out` tokens at once; its prefix cache is on and can be bypassed."""

    name: ClassVar[str] = "engine"
    events: list[str] = field(default_factory=list)
    state_reads: int = 0

    def answer(
        self, requests: list[GenerationRequest], concurrency: int | None, offsets: list[float] | None
    ) -> Iterator[Completion]:
        self.events.append("generate")
        for r in requests:
            n = r.params.max_new_tokens
            yield Completion(r.request_id, "x" * n, output_tokens=n, ttft_ms=1.0, latency_ms=1.0 + n)

    def prefix_cache_state(self) -> PrefixCacheState:
        self.state_reads += 1
        return PrefixCacheState(enabled=True, can_bypass=True, source="test engine")

    def prefix_cache_counters(self) -> PrefixCacheCounters:
        return PrefixCacheCounters(0, 0, "test engine")


class Sampler:
    """Marks where each measurement window opens and closes in the engine's event list."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    @contextlib.contextmanager
    def window(self) -> Iterator[TelemetryWindow]:
        self.events.append("open")
        yield TelemetryWindow()
        self.events.append("close")


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    """The engine, with every prompt the one prompt builder builds (sweep and workloads) logged as 'build'."""
    eng = Engine()

    def logged(method: Any) -> Any:
        def build(*args: Any, **kwargs: Any) -> Any:
            eng.events.append("build")
            return method(*args, **kwargs)

        return build

    for name in ("unique", "with_prefix", "from_blocks", "user_message"):
        monkeypatch.setattr(PromptBuilder, name, logged(getattr(PromptBuilder, name)))
    return eng


def target(engine: Engine, tokenizer: Any = None, max_model_len: int | None = 4096) -> PerfTarget:
    return PerfTarget(
        engine,  # type: ignore[arg-type]
        Sampler(engine.events),  # type: ignore[arg-type]
        tokenizer,
        max_model_len,
        seed=0,
        needs_text=False,
        vocab_size=None if tokenizer is not None else 1000,
    )


def builds_inside_a_window(events: list[str]) -> int:
    inside, built = False, 0
    for e in events:
        inside = {"open": True, "close": False}.get(e, inside)
        built += inside and e == "build"
    return built


def write_trace(path: Path, n: int) -> Path:
    rows = [
        {"timestamp": 100 * i, "input_length": 40, "output_length": 4, "hash_ids": [0, i]} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- prompts before the window


def test_a_sweep_point_builds_its_prompts_before_its_measurement_window(engine: Engine) -> None:
    sweep = PerfSweep(input_tokens=[16], output_tokens=[4], concurrency=[2], repeats=3)
    [point] = run_perf(target(engine), sweep)
    assert point.error is None and engine.events.count("open") == 1
    assert builds_inside_a_window(engine.events) == 0


def test_shared_prefix_points_build_their_prompts_before_their_measurement_window(engine: Engine) -> None:
    sweep = PerfSweep(
        input_tokens=[48],
        output_tokens=[4],
        concurrency=[2],
        request_rates=[50.0],
        repeats=2,
        workload={"kind": "shared_prefix", "prefix_tokens": 16, "prefix_caching": [False]},  # type: ignore[arg-type]
    )
    points = run_perf(target(engine), sweep)
    assert [p.error for p in points] == [None, None] and engine.events.count("open") == 2
    assert builds_inside_a_window(engine.events) == 0


def test_a_trace_replay_builds_each_repeat_once_and_before_its_window(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []
    requests = TraceBatch.requests
    monkeypatch.setattr(
        TraceBatch, "requests", lambda self, repeat: built.append(repeat) or requests(self, repeat)
    )
    write_trace(tmp_path / "t.jsonl", 5)
    sweep = PerfSweep(repeats=3, workload={"kind": "trace", "path": "t.jsonl", "time_scale": 0.001})  # type: ignore[arg-type]
    [point] = run_perf(target(engine), sweep, base_dir=tmp_path)
    assert point.error is None and point.n_requests == 15
    assert built == [0, 1, 2]  # not one more only to count the requests
    assert builds_inside_a_window(engine.events) == 0


def test_a_chat_builds_its_user_messages_before_its_window(engine: Engine, tokenizer: Any) -> None:
    sweep = PerfSweep(
        input_tokens=[8],
        output_tokens=[2],
        concurrency=[2],
        workload={"kind": "multi_turn", "conversations": 2, "turns": 3},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine, tokenizer), sweep)
    assert point.error is None and point.n_requests == 6 and engine.events.count("generate") >= 3
    assert builds_inside_a_window(engine.events) == 0


# ---------------------------------------------------------------- the engine's state, once per point


def test_the_prefix_cache_state_is_read_once_per_point_not_per_request(engine: Engine) -> None:
    sweep = PerfSweep(
        input_tokens=[48],
        output_tokens=[4],
        concurrency=[2],
        repeats=2,
        workload={"kind": "shared_prefix", "prefix_tokens": 16, "prefixes": 3, "prefix_caching": [False]},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine), sweep)
    assert point.error is None and point.n_requests == 24 and point.prefix_caching is False
    assert engine.state_reads == 1


# ---------------------------------------------------------------- chats too long for the model


def test_a_chat_whose_last_turn_exceeds_the_model_fails_up_front_with_the_reason(
    engine: Engine, tokenizer: Any
) -> None:
    sweep = PerfSweep(
        input_tokens=[100],
        output_tokens=[50],
        concurrency=[1],
        workload={"kind": "multi_turn", "conversations": 1, "turns": 4},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine, tokenizer, max_model_len=500), sweep)
    assert point.error is not None and "turn 4's prompt is about 550 tokens" in point.error
    assert "exceeds max_model_len 500" in point.error and point.ttft_ms is None
    assert "generate" not in engine.events


def test_fit_to_model_cuts_a_chats_messages_so_that_its_last_turn_fits(
    engine: Engine, tokenizer: Any
) -> None:
    sweep = PerfSweep(
        input_tokens=[100],
        output_tokens=[50],
        concurrency=[1],
        fit_to_model=True,
        workload={"kind": "multi_turn", "conversations": 1, "turns": 4},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine, tokenizer, max_model_len=500), sweep)
    assert point.error is None and point.input_tokens == (500 - 4 * 50) // 4


# ---------------------------------------------------------------- --limit


def test_limit_caps_a_shared_prefix_points_requests_and_says_so(engine: Engine) -> None:
    sweep = PerfSweep(
        input_tokens=[48],
        output_tokens=[4],
        concurrency=[2],
        repeats=2,
        workload={"kind": "shared_prefix", "prefix_tokens": 16, "prefix_caching": [False]},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine), sweep, limit=3)
    assert point.error is None and point.n_requests == 2 * 2  # 2 prefixes x 1 request, 2 repeats
    assert point.note == "--limit 3: 2 prefix(es) x 1 request(s), not 2 x 4"


def test_limit_caps_a_chat_points_conversations_and_keeps_its_turns(engine: Engine, tokenizer: Any) -> None:
    sweep = PerfSweep(
        input_tokens=[8],
        output_tokens=[2],
        concurrency=[2],
        workload={"kind": "multi_turn", "conversations": 4, "turns": 3},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine, tokenizer), sweep, limit=7)
    assert point.error is None and point.n_requests == 2 * 3 and len(point.turns) == 3
    assert point.note == "--limit 7: 2 conversation(s) of 3 turns, not 4"


def test_limit_caps_a_trace_replays_records_beside_the_traces_own_note(
    engine: Engine, tmp_path: Path
) -> None:
    write_trace(tmp_path / "t.jsonl", 5)
    sweep = PerfSweep(workload={"kind": "trace", "path": "t.jsonl", "time_scale": 0.001})  # type: ignore[arg-type]
    [point] = run_perf(target(engine, max_model_len=30), sweep, base_dir=tmp_path, limit=2)
    assert point.n_requests == 2 and point.trace and "2 requests" in point.trace
    assert point.note == "--limit 2: at most the first 2 of the trace's requests"
    sweep = sweep.model_copy(update={"fit_to_model": True})
    [point] = run_perf(target(engine, max_model_len=30), sweep, base_dir=tmp_path, limit=2)
    assert (
        point.note
        == "--limit 2: at most the first 2 of the trace's requests; 2 prompts cut to the model's limit"
    )


def test_limit_leaves_a_point_it_does_not_cut_without_a_note(engine: Engine) -> None:
    sweep = PerfSweep(
        input_tokens=[48],
        output_tokens=[4],
        workload={"kind": "shared_prefix", "prefix_tokens": 16, "prefix_caching": [False]},  # type: ignore[arg-type]
    )
    [point] = run_perf(target(engine), sweep, limit=8)
    assert point.n_requests == 8 and point.note is None


# ---------------------------------------------------------------- traces checked before the model loads


def replay_suite(tmp_path: Path, trace: str) -> Path:
    suite = tmp_path / "replay.yaml"
    suite.write_text(
        "name: replay\ntasks:\n  - name: replay\n    perf:\n"
        f"      warmup_requests: 0\n      workload: {{kind: trace, path: {trace}}}\n"
    )
    return suite


def run_without_a_model(tmp_path: Path, suite: Path) -> None:
    """A run whose model is nowhere: what fails first was checked before any load was tried."""
    missing = ModelConfig(name="absent", model=str(tmp_path / "no-such-model"), backend="transformers")
    run_suite(load_suite(suite), missing, RunOptions(results_dir=tmp_path / "results"))


def test_a_malformed_trace_line_fails_the_run_before_the_model_loads(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text(
        '{"timestamp": 0, "input_length": 8, "output_length": 2}\n{"timestamp": 1,\n'
    )
    suite = replay_suite(tmp_path, "t.jsonl")
    with pytest.raises(DataError) as caught:
        run_without_a_model(tmp_path, suite)
    message = str(caught.value)
    assert message.startswith(f"{suite}:6: task 'replay': {tmp_path / 't.jsonl'}:2: not a JSON object")
    assert "\n" not in message and not (tmp_path / "results").exists()


def test_a_trace_path_with_a_typo_fails_the_run_before_the_model_loads(tmp_path: Path) -> None:
    suite = replay_suite(tmp_path, "trace.jsnol")
    with pytest.raises(DataError, match=r"replay.yaml:6: task 'replay': trace.jsnol: no such trace file"):
        run_without_a_model(tmp_path, suite)


def test_llmbench_validate_reads_the_traces_a_suite_replays(tmp_path: Path) -> None:
    (tmp_path / "t.jsonl").write_text('{"timestamp": 0, "input_length": 0, "output_length": 2}\n')
    with pytest.raises(DataError, match=r"t\.jsonl:1: input_length 0 is not a whole number"):
        validate([replay_suite(tmp_path, "t.jsonl")])
