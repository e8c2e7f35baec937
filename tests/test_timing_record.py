"""One timing record per request, and one function from it to the figures (`vllm bench serve`'s definitions)."""

from __future__ import annotations

import pytest

from llmbench.telemetry.timing import TokenClock
from llmbench.types import Completion, RequestTiming


def test_an_arrival_of_several_tokens_spreads_its_gap_over_them() -> None:
    figures = RequestTiming(arrivals_ms=[10.0, 14.0, 26.0], arrival_tokens=[1, 1, 3]).figures()
    assert figures.itl_ms == pytest.approx([4.0, 4.0, 4.0, 4.0])  # never 12, 0, 0
    assert (figures.ttft_ms, figures.e2e_ms, figures.tpot_ms) == (10.0, 26.0, 4.0)


def test_tokens_that_came_with_the_first_have_no_gap_but_count_in_tpot() -> None:
    figures = RequestTiming(arrivals_ms=[10.0, 20.0], arrival_tokens=[2, 1]).figures()
    assert figures.itl_ms == [10.0] and figures.tpot_ms == 5.0  # (20 - 10) / (3 - 1)


def test_e2e_is_the_last_token_and_ttfot_the_first_answer_arrival() -> None:
    timing = RequestTiming([5.0, 9.0, 13.0], [1, 1, 1], reasoning_tokens=2, output_arrival=2, close_ms=900.0)
    c = Completion("r", "x", output_tokens=3).timed(timing)
    assert (c.ttft_ms, c.ttfot_ms, c.latency_ms, c.tpot_ms) == (5.0, 13.0, 13.0, 4.0)
    assert (c.reasoning_tokens, c.answer_tokens) == (2, 1)
    still_thinking = RequestTiming([5.0, 9.0], [1, 1], reasoning_tokens=2, output_arrival=None).figures()
    assert still_thinking.ttfot_ms is None


def test_the_clock_finds_the_answers_first_arrival_from_the_reasoning_tokens() -> None:
    clock = TokenClock(start_ns=0)
    for at_ns, n in ((1_000_000, 1), (2_000_000, 3), (3_000_000, 2)):
        clock.token(at_ns, n)
    clock.finish(9_000_000)
    record = clock.record(reasoning_tokens=3)  # tokens 0-2 reasoning: the answer's first came in arrival 1
    assert record.output_arrival == 1 and record.arrivals_ms == [1.0, 2.0, 3.0] and record.close_ms == 9.0
    assert clock.record(reasoning_tokens=6).output_arrival is None  # all of it reasoning


def test_a_total_the_stream_did_not_break_down_is_spread_over_its_chunks() -> None:
    clock = TokenClock(start_ns=0)
    for at_ns in (1, 2, 3, 4):
        clock.token(at_ns)
    assert not clock.spread(4) and clock.token_counts == [1, 1, 1, 1]  # one a chunk: nothing to spread
    assert clock.spread(10) and clock.token_counts == [2, 2, 3, 3]
    assert not clock.spread(12)  # counts the stream gave (or spread once) are kept


def test_engine_stamps_give_first_and_last_token_and_no_gaps_between() -> None:
    clock = TokenClock(start_ns=1_000_000)
    assert clock.engine_span(first_ns=5_000_000, last_ns=12_000_000, tokens=8, seen_ns=13_000_000)
    clock.finish(13_000_000)
    record = clock.record()
    assert record.engine_stamps and record.arrival_tokens == [1, 7] and record.output_arrival == 0
    figures = record.figures()
    assert (figures.ttft_ms, figures.e2e_ms, figures.tpot_ms) == (4.0, 11.0, 1.0)
    assert figures.itl_ms == []  # the gaps between were not seen: none made up
    assert clock.record(reasoning_tokens=3).output_arrival is None  # the answer's first token is unknown


@pytest.mark.parametrize(
    ("first_ns", "last_ns", "seen_ns"),
    [
        (500_000, 12_000_000, 13_000_000),  # before the request's start: another clock's stamp
        (5_000_000, 14_000_000, 13_000_000),  # after the client saw the output
        (9_000_000, 5_000_000, 13_000_000),  # last before first
    ],
)
def test_engine_stamps_outside_the_requests_span_are_not_used(
    first_ns: int, last_ns: int, seen_ns: int
) -> None:
    clock = TokenClock(start_ns=1_000_000)
    assert not clock.engine_span(first_ns, last_ns, tokens=8, seen_ns=seen_ns)
    record = clock.record()
    assert record.arrivals_ms == [] and not record.engine_stamps
    assert record.figures().ttft_ms is None  # no TTFT rather than one taken at the finished output
