"""Pacing: when a request goes out and where its clock starts, with and without a cap on requests in flight."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from llmbench.backends import pacing
from llmbench.backends.pacing import BatchPacer, Pacer, Submission
from llmbench.telemetry.timing import now_ns

GUARD_S = 10.0  # only against a hang: a correct pacer never waits this long here


def test_a_closed_loop_request_has_no_arrival_and_no_queue() -> None:
    async def go() -> Submission:
        async with Pacer(2, None).slot(0) as sent:
            return sent

    assert asyncio.run(go()) == Submission(None, None)


def test_arrivals_without_a_cap_are_all_in_flight_at_once() -> None:
    n = 20

    async def go() -> list[Submission]:
        pacer = Pacer(None, [0.0] * n)
        inside, everyone = 0, asyncio.Event()

        async def one(i: int) -> Submission:
            nonlocal inside
            async with pacer.slot(i) as sent:
                inside += 1
                if inside == n:
                    everyone.set()
                await asyncio.wait_for(everyone.wait(), GUARD_S)  # a cap below n would never get here
                return sent

        return await asyncio.gather(*(one(i) for i in range(n)))

    sent = asyncio.run(go())
    assert all(s.queue_ms == 0.0 and s.start_ns is not None for s in sent)
    assert len({s.start_ns for s in sent}) == 1  # every clock starts at the (shared) scheduled arrival


def test_under_a_cap_a_request_that_waits_for_a_slot_starts_its_clock_when_the_slot_frees() -> None:
    async def go() -> tuple[Submission, Submission, int, int]:
        pacer = Pacer(1, [0.0, 0.0])
        release = asyncio.Event()
        freed_at = 0

        async def first() -> Submission:
            nonlocal freed_at
            async with pacer.slot(0) as sent:
                await asyncio.wait_for(release.wait(), GUARD_S)
                freed_at = now_ns()
            return sent

        async def second() -> Submission:
            async with pacer.slot(1) as sent:
                return sent

        task = asyncio.gather(first(), second())
        await asyncio.sleep(0.01)  # both have arrived; the second waits for the only slot
        release.set()
        a, b = await task
        return a, b, freed_at, pacer.t0

    a, b, freed_at, t0 = asyncio.run(go())
    assert a.start_ns == t0 and a.queue_ms == 0.0  # on time: the clock starts at the scheduled arrival
    assert b.start_ns is not None and b.start_ns >= freed_at  # not at its arrival t0
    assert b.queue_ms is not None and b.queue_ms == (b.start_ns - t0) / 1e6 > 0


class VirtualClock:
    """The batch pacer's clock and sleep, moved only by sleeping: what the tests below assert depends on
    when requests arrive against when batches end, never on how promptly this host schedules a thread."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def now_ns(self) -> int:
        return self.ns

    def sleep(self, seconds: float) -> None:
        self.ns += max(0, round(seconds * 1e9))


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    virtual = VirtualClock()
    monkeypatch.setattr(pacing, "now_ns", virtual.now_ns)
    monkeypatch.setattr(pacing, "time", SimpleNamespace(sleep=virtual.sleep))
    return virtual


def run_batches(pacer: BatchPacer, batch_s: float, clock: VirtualClock) -> list[list[tuple[int, Submission]]]:
    """Every batch the pacer sends, each taking `batch_s` to run (a synchronous backend's `generate`)."""
    sent = []
    for batch in pacer.batches():
        sent.append(batch)
        clock.sleep(batch_s)
    return sent


def test_batched_arrivals_without_a_cap_start_their_clocks_at_arrival_even_behind_a_running_batch(
    clock: VirtualClock,
) -> None:
    pacer = BatchPacer(None, [0.0, 0.01, 0.02], batch_size=1)
    batches = run_batches(pacer, 0.05, clock)
    assert [[i for i, _ in b] for b in batches] == [[0], [1], [2]]
    assert all(s == Submission(pacer.arrival_ns(i), 0.0) for b in batches for i, s in b)


def test_a_batched_arrival_that_finds_every_slot_taken_starts_its_clock_with_its_batch(
    clock: VirtualClock,
) -> None:
    pacer = BatchPacer(1, [0.0, 0.01], batch_size=8)  # the cap, not the batch size, bounds a batch
    (first,), (second,) = run_batches(pacer, 0.05, clock)
    assert first[1] == Submission(pacer.t0, 0.0)
    i, sent = second
    assert sent.start_ns is not None and sent.start_ns >= pacer.t0 + 50_000_000  # after the first batch ended
    assert sent.queue_ms == (sent.start_ns - pacer.arrival_ns(i)) / 1e6 > 0


def test_a_batched_arrival_takes_a_slot_the_running_batch_left_free_and_the_next_one_queues(
    clock: VirtualClock,
) -> None:
    pacer = BatchPacer(2, [0.0, 0.01, 0.02], batch_size=8)
    first, second = run_batches(pacer, 0.05, clock)
    assert [i for i, _ in first] == [0] and [i for i, _ in second] == [1, 2]
    (_, took_slot), (_, queued) = second
    assert took_slot == Submission(pacer.arrival_ns(1), 0.0)
    assert queued.start_ns is not None and queued.queue_ms is not None and queued.queue_ms > 0
