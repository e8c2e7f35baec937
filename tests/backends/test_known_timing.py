"""The OpenAI backend's timings against a server whose timings are known, asserting only what causality fixes.

The client's send is stamped no later than the server read the request, its first token no earlier than the
server wrote it; no assertion bounds a time from above by the wall clock, so a loaded host cannot fail them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence

import pytest

from llmbench.backends.openai import OpenAIBackend
from llmbench.config.models import ApiSpec, ModelConfig
from llmbench.config.serving import ArrivalSpec
from llmbench.config.suite import PerfSweep
from llmbench.run.perf import PerfTarget, run_sweep
from llmbench.testing.known_timing_server import KnownTimingServer, Served, Timings
from llmbench.types import Completion, GenerationParams, GenerationRequest


@pytest.fixture
def backend_at() -> Iterator[list[OpenAIBackend]]:
    opened: list[OpenAIBackend] = []
    yield opened
    for backend in opened:
        backend.close()


def loaded(opened: list[OpenAIBackend], server: KnownTimingServer, **api: object) -> OpenAIBackend:
    spec = ApiSpec(base_url=server.base_url, **api)  # type: ignore[arg-type]
    config = ModelConfig(name="known", backend="openai", model="known-timing", api=spec)
    backend = OpenAIBackend(config, "known-timing")
    backend.load()
    opened.append(backend)
    return backend


def prompts(n: int, tokens: int, chat: bool = False, tag: str = "p") -> list[GenerationRequest]:
    params = GenerationParams(max_new_tokens=tokens, ignore_eos=True)
    if chat:
        return [
            GenerationRequest(f"{tag}{i}", params, messages=({"role": "user", "content": f"{tag}{i}"},))
            for i in range(n)
        ]
    return [GenerationRequest(f"{tag}{i}", params, prompt=f"{tag}{i}") for i in range(n)]


def served_for(server: KnownTimingServer, c: Completion) -> Served:
    """The server's record of the request behind `c` (each prompt is its request id)."""
    (record,) = [r for r in server.records if c.request_id in str(r.prompt)]
    return record


def first_token_ns(c: Completion) -> int:
    """When the client stamped the first token, on the one clock: its clock's start plus TTFT."""
    assert c.sent_ns is not None and c.ttft_ms is not None
    start = c.sent_ns - round((c.schedule_lag_ms or 0.0) * 1e6)
    return start + round(c.ttft_ms * 1e6)


def causal(server: KnownTimingServer, done: Sequence[Completion]) -> None:
    for c in done:
        record = served_for(server, c)
        assert c.error is None and c.sent_ns is not None and record.first_write_ns is not None
        assert c.sent_ns <= record.read_ns, "the request went out after the server had read it"
        assert first_token_ns(c) >= record.first_write_ns, "the first token was stamped before it was written"


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_send_precedes_the_servers_read_and_the_first_token_follows_its_first_write(
    backend_at: list[OpenAIBackend], endpoint: str
) -> None:
    with KnownTimingServer(Timings(first_token_ms=30, token_gap_ms=5)) as server:
        backend = loaded(backend_at, server, endpoint=endpoint, concurrency=3)
        done = list(backend.generate(prompts(6, 6, chat=endpoint == "chat")))
    causal(server, done)
    assert all(c.output_tokens == 6 and c.ttft_ms is not None and c.ttft_ms >= 30 for c in done)


def test_open_loop_requests_record_their_schedule_lag_and_stay_causal(
    backend_at: list[OpenAIBackend],
) -> None:
    with KnownTimingServer(Timings(first_token_ms=20, token_gap_ms=4)) as server:
        backend = loaded(backend_at, server)
        done = list(backend.generate(prompts(8, 4), arrival_offsets_s=[0.01 * i for i in range(8)]))
        closed = list(backend.generate(prompts(2, 4, tag="c")))
    causal(server, done)
    assert all(c.schedule_lag_ms is not None and c.schedule_lag_ms >= 0 for c in done)
    assert all(c.schedule_lag_ms is None for c in closed), "a closed loop has no schedule to lag behind"


@pytest.mark.alone  # it needs the client to read the first token before the server's last write, 570 ms on
def test_ttft_is_stamped_at_the_first_chunk_not_after_the_whole_answer(
    backend_at: list[OpenAIBackend],
) -> None:
    # 20 tokens 30 ms apart: the last write comes 570 ms after the first. A TTFT taken after parsing the
    # whole answer, or at the stream's close, could not come before that last write.
    with KnownTimingServer(Timings(first_token_ms=10, token_gap_ms=30)) as server:
        backend = loaded(backend_at, server)
        done = list(backend.generate(prompts(2, 20)))
    causal(server, done)
    for c in done:
        assert first_token_ns(c) < served_for(server, c).write_ns[-1]
        assert c.latency_ms is not None and c.ttft_ms is not None and c.latency_ms > c.ttft_ms


def test_itl_has_one_gap_per_single_token_chunk_and_never_a_zero(backend_at: list[OpenAIBackend]) -> None:
    gap_ms = 15.0
    with KnownTimingServer(Timings(first_token_ms=5, token_gap_ms=gap_ms)) as server:
        backend = loaded(backend_at, server)
        done = list(backend.generate(prompts(3, 10)))
    causal(server, done)
    for c in done:
        assert len(c.itl_ms) == 9 and all(g > 0 for g in c.itl_ms)
        assert statistics.median(c.itl_ms) >= gap_ms
        record = served_for(server, c)
        server_gaps = [(b - a) / 1e6 for a, b in zip(record.write_ns, record.write_ns[1:], strict=False)]
        assert min(server_gaps) >= gap_ms  # the stick itself: a gap is never shorter than promised


def test_reasoning_tokens_are_timed_as_tokens_and_kept_out_of_the_text(
    backend_at: list[OpenAIBackend],
) -> None:
    with KnownTimingServer(Timings(first_token_ms=5, token_gap_ms=2, reasoning_tokens=3)) as server:
        backend = loaded(backend_at, server, endpoint="chat")
        (c,) = backend.generate(prompts(1, 6, chat=True))
    causal(server, [c])
    assert c.text == " t3 t4 t5" and c.output_tokens == 6 and len(c.itl_ms) == 5


def test_two_generate_calls_reuse_the_runs_connections(backend_at: list[OpenAIBackend]) -> None:
    with KnownTimingServer(Timings(first_token_ms=20, token_gap_ms=2)) as server:
        backend = loaded(backend_at, server)
        after_load = server.connections  # GET /v1/models in load() has its own
        list(backend.generate(prompts(4, 4, tag="w"), concurrency=4))  # the warm-up
        warmed = server.connections
        list(backend.generate(prompts(8, 4, tag="m"), concurrency=4))
        list(backend.generate(prompts(4, 4, tag="o"), arrival_offsets_s=[0.02 * i for i in range(4)]))
        measured = server.connections
    assert 1 <= warmed - after_load <= 4
    assert measured == warmed, "a point opened new connections instead of reusing the warm-up's"


def test_a_rate_point_against_the_server_reports_its_schedule_lag(backend_at: list[OpenAIBackend]) -> None:
    sweep = PerfSweep(
        input_tokens=[8],
        output_tokens=[4],
        concurrency=[],
        request_rates=[50.0],
        requests_per_point=10,
        arrival=ArrivalSpec(process="constant"),
    )
    with KnownTimingServer(Timings(first_token_ms=10, token_gap_ms=2)) as server:
        backend = loaded(backend_at, server)
        target = PerfTarget(backend, None, None, 512, 0, False, vocab_size=1000, client_process=True)
        (point,) = run_sweep(target, sweep)
    assert point.error is None and point.schedule_lag_ms is not None and point.schedule_lag_ms.n == 10
    assert point.client_cpu_share is not None and point.client_bound is not None
    assert point.client_bound == ("client-bound" in (point.note or ""))


def at_ns(c: Completion, ms: float) -> int:
    """A time of `c`'s record (ms from its start) on the one clock."""
    assert c.sent_ns is not None
    return c.sent_ns - round((c.schedule_lag_ms or 0.0) * 1e6) + round(ms * 1e6)


@pytest.mark.parametrize("endpoint", ["chat", "completions"])
def test_ttft_and_ttfot_each_follow_the_servers_first_write_of_their_kind(
    backend_at: list[OpenAIBackend], endpoint: str
) -> None:
    # 4 reasoning tokens (a reasoning channel, or a <think> block in the text), then 3 of answer, one a chunk
    with KnownTimingServer(Timings(first_token_ms=10, token_gap_ms=8, reasoning_tokens=4)) as server:
        backend = loaded(backend_at, server, endpoint=endpoint)
        done = list(backend.generate(prompts(2, 7, chat=endpoint == "chat")))
    causal(server, done)
    for c in done:
        writes = served_for(server, c).write_ns
        assert c.ttfot_ms is not None and c.ttft_ms is not None and c.ttfot_ms > c.ttft_ms
        assert at_ns(c, c.ttfot_ms) >= writes[4], (
            "TTFOT was stamped before the first answer token was written"
        )
        assert (c.reasoning_tokens, c.answer_tokens) == (4, 3)
        assert c.text.endswith(" t4 t5 t6")


def test_several_tokens_a_chunk_spread_their_gap_evenly_and_never_as_zeros(
    backend_at: list[OpenAIBackend],
) -> None:
    gap_ms = 15.0
    with KnownTimingServer(Timings(first_token_ms=5, token_gap_ms=gap_ms, tokens_per_chunk=3)) as server:
        backend = loaded(backend_at, server)
        done = list(backend.generate(prompts(3, 12)))
    causal(server, done)
    for c in done:
        t = c.timing
        assert t is not None and t.arrival_tokens == [3, 3, 3, 3] and t.tokens_estimated
        assert c.output_tokens == 12 and len(c.itl_ms) == 9 and all(g > 0 for g in c.itl_ms)
        for j in range(3):  # each chunk's gap from the one before, a third to each of its tokens
            share = (t.arrivals_ms[j + 1] - t.arrivals_ms[j]) / 3
            assert c.itl_ms[3 * j : 3 * j + 3] == pytest.approx([share] * 3)
        assert statistics.median(c.itl_ms) >= gap_ms / 3


@pytest.mark.alone  # it needs the client to read the last token within the second the close is delayed
def test_e2e_is_the_last_tokens_arrival_not_the_close_the_server_delays(
    backend_at: list[OpenAIBackend],
) -> None:
    with KnownTimingServer(Timings(first_token_ms=5, token_gap_ms=5, close_delay_ms=1000)) as server:
        backend = loaded(backend_at, server)
        (c,) = backend.generate(prompts(1, 4))
    causal(server, [c])
    served = served_for(server, c)
    assert c.latency_ms is not None and c.timing is not None and c.timing.close_ms is not None
    assert at_ns(c, c.latency_ms) >= served.write_ns[-1], "E2E was stamped before the last token was written"
    assert served.end_ns is not None and at_ns(c, c.timing.close_ms) >= served.end_ns
    # the stream's end came a second after the last token: an E2E taken at the close could not precede it
    assert at_ns(c, c.latency_ms) < served.end_ns
    assert c.tpot_ms == pytest.approx((c.latency_ms - c.ttft_ms) / 3)  # type: ignore[operator]


def test_a_sweep_point_of_a_reasoning_model_reports_ttfot_and_its_tokens_apart(
    backend_at: list[OpenAIBackend],
) -> None:
    sweep = PerfSweep(input_tokens=[8], output_tokens=[6], concurrency=[2], requests_per_point=4)
    with KnownTimingServer(Timings(first_token_ms=5, token_gap_ms=5, reasoning_tokens=2)) as server:
        backend = loaded(backend_at, server)
        target = PerfTarget(backend, None, None, 512, 0, False, vocab_size=1000, client_process=True)
        (point,) = run_sweep(target, sweep)
    assert point.error is None and point.ttfot_ms is not None and point.ttft_ms is not None
    assert point.ttfot_ms.n == 4 and point.ttfot_ms.p50 > point.ttft_ms.p50
    assert (point.reasoning_tokens, point.answer_tokens) == (4 * 2, 4 * 4)
