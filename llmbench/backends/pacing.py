"""When each request of one `generate` call goes out: at its arrival offset, within an optional cap.

The one rule for every backend, the rule `vllm bench serve` follows:
- Closed loop (no arrival offsets): at most `concurrency` requests in flight; each request's clock
  starts when it is submitted.
- Open loop (arrival offsets) without `concurrency`: every request is submitted at its arrival,
  however many are in flight; its clock starts at the scheduled arrival.
- Open loop with `concurrency`: a request that arrives while every slot is busy waits for one;
  its clock starts when it is submitted (the slot freed), and the wait is its `queue_ms`, kept
  apart from TTFT and E2E so the saturation search can still see a client queue grow.

`Pacer` applies it to backends that stream requests from an event loop (vLLM in-process, OpenAI
servers); `BatchPacer` to one that runs a synchronous batch at a time (Transformers), where a request
that arrives while a batch runs holds a slot if one is free, and is submitted with the next batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llmbench.telemetry.timing import TokenClock, now_ns


@dataclass(frozen=True)
class Submission:
    """One request at the moment it goes out: when its clock starts, and how long it queued for a slot."""

    start_ns: int | None  # None: closed loop, the backend stamps the submission itself
    queue_ms: float | None  # open loop only: scheduled arrival to submission (0 when a slot was free)

    def clock(self) -> TokenClock:
        """The request's token clock, started where this rule puts its start (now, for a closed loop)."""
        return TokenClock(start_ns=self.start_ns if self.start_ns is not None else now_ns())


def open_loop_submission(arrival_ns: int, submitted_ns: int, slot_was_free: bool) -> Submission:
    """An open-loop request's start and queue: its arrival where a slot was free then, else its submission."""
    start = arrival_ns if slot_was_free else submitted_ns
    return Submission(start, max(0, start - arrival_ns) / 1e6)


class Pacer:
    """Paces the requests of one call; build it inside the event loop that runs them, at the call's start."""

    def __init__(self, concurrency: int | None, arrival_offsets_s: Sequence[float] | None) -> None:
        self.offsets = arrival_offsets_s
        self.limit = asyncio.Semaphore(concurrency) if concurrency else None
        self.t0 = now_ns()

    @asynccontextmanager
    async def slot(self, i: int) -> AsyncIterator[Submission]:
        """Wait for request `i`'s arrival, then for a free slot; holds the slot until the block ends."""
        if self.offsets is None:
            if self.limit is None:
                yield Submission(None, None)
                return
            async with self.limit:
                yield Submission(None, None)
            return
        arrival = self.t0 + int(self.offsets[i] * 1e9)
        # never before the arrival: a clock that starts there would read a request sent early as a
        # shorter TTFT, and uvloop's timers (millisecond ticks, a cached "now") may wake up to a tick early
        while (left := arrival - now_ns()) > 0:
            await asyncio.sleep(left / 1e9)
        if self.limit is None:
            yield open_loop_submission(arrival, arrival, True)
            return
        busy = self.limit.locked()  # every slot taken at the arrival: the request queues here
        async with self.limit:
            yield open_loop_submission(arrival, now_ns(), not busy)


class BatchPacer:
    """Paces the open-loop requests of one call through batches run one after another; build it at the call's start.

    A batch takes up to `concurrency` (else `batch_size`) arrived requests, in arrival order, when the
    one before it has ended. A request found a free slot at its arrival where fewer than `concurrency`
    requests were in flight then: the running batch's, and those that arrived before it and wait.
    """

    def __init__(self, concurrency: int | None, arrival_offsets_s: Sequence[float], batch_size: int) -> None:
        self.offsets = arrival_offsets_s
        self.cap = concurrency
        self.size = concurrency or batch_size
        self.waiting = sorted(range(len(arrival_offsets_s)), key=lambda i: arrival_offsets_s[i])
        self.slot_was_free: dict[int, bool] = {}  # each arrived request: whether a slot was free then
        self.t0 = now_ns()

    def arrival_ns(self, i: int) -> int:
        return self.t0 + int(self.offsets[i] * 1e9)

    def batches(self) -> Iterator[list[tuple[int, Submission]]]:
        """Each batch as it goes out (request index, submission); run it before asking for the next."""
        running = 0
        while self.waiting:
            self._note_arrivals(now_ns(), running)  # those that came while the last batch ran
            time.sleep(max(0.0, (self.arrival_ns(self.waiting[0]) - now_ns()) / 1e9))
            now = now_ns()
            self._note_arrivals(now, 0)  # those that came since it ended: its slots were free
            batch = [i for i in self.waiting[: self.size] if self.arrival_ns(i) <= now]
            del self.waiting[: len(batch)]
            yield [(i, open_loop_submission(self.arrival_ns(i), now, self.slot_was_free[i])) for i in batch]
            running = len(batch)

    def _note_arrivals(self, until_ns: int, running: int) -> None:
        """Whether each request that arrived by `until_ns` found a slot free, `running` being in the engine."""
        for ahead, i in enumerate(self.waiting):
            if self.arrival_ns(i) > until_ns:
                return
            self.slot_was_free.setdefault(i, self.cap is None or running + ahead < self.cap)
