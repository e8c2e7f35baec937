"""When each request of one `generate` call goes out: at its arrival offset, within an optional cap.

The one rule for every backend that streams requests from an event loop (vLLM in-process, OpenAI
servers), the rule `vllm bench serve` follows:
- Closed loop (no arrival offsets): at most `concurrency` requests in flight; each request's clock
  starts when it is submitted.
- Open loop (arrival offsets) without `concurrency`: every request is submitted at its arrival,
  however many are in flight; its clock starts at the scheduled arrival.
- Open loop with `concurrency`: a request that arrives while every slot is busy waits for one;
  its clock starts when it is submitted (the slot freed), and the wait is its `queue_ms`, kept
  apart from TTFT and E2E so the saturation search can still see a client queue grow.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from llmbench.telemetry.timing import now_ns


@dataclass(frozen=True)
class Submission:
    """One request at the moment it goes out: when its clock starts, and how long it queued for a slot."""

    start_ns: int | None  # None: closed loop, the backend stamps the submission itself
    queue_ms: float | None  # open loop only: scheduled arrival to submission (0 when a slot was free)


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
        await asyncio.sleep(max(0.0, (arrival - now_ns()) / 1e9))
        if self.limit is None:
            yield Submission(arrival, 0.0)
            return
        busy = self.limit.locked()  # every slot taken at the arrival: the request queues here
        async with self.limit:
            start = now_ns() if busy else arrival
            yield Submission(start, max(0, start - arrival) / 1e6)
