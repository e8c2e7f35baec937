"""How fast requests may go to a hosted API, and how many at once.

- Pacing: a provider's requests and tokens per minute (`rate_limits: {rpm, tpm}`) as token buckets that
  refill evenly and hold a second's worth, the granularity providers enforce their limits at. A request
  counts its prompt (estimated from its characters where it is text) and its max_tokens, as providers
  count it against a tokens-per-minute limit.
- Adaptive concurrency: a 429 halves the requests allowed in flight (once per round: the answers to
  requests sent before the cut do not cut again) and pauses every new send for its Retry-After; after as
  many answers in a row as the limit allows, the limit grows by one, until it no longer binds.

What a request waits here is its `rate_wait_ms`, outside its TTFT and latency: its clock starts when
it finally goes out. A backend that never hears a 429 and has no limits pays one comparison a request.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from llmbench.config.models import RateLimits
from llmbench.telemetry.timing import now_ns

CHARS_PER_TOKEN = 4  # the providers' own estimate for a prompt they have not tokenised yet
MESSAGE_TOKENS = 4  # a chat message's role and separators


def tokens_asked(body: dict[str, Any]) -> int:
    """What a request counts against a tokens-per-minute limit: its prompt's tokens (known for token ids,
    estimated from characters for text) and its max_tokens."""
    prompt = body.get("prompt", body.get("messages"))
    if isinstance(prompt, str):
        n = math.ceil(len(prompt) / CHARS_PER_TOKEN)
    elif isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        n = sum(
            math.ceil(len(str(m.get("content") or "")) / CHARS_PER_TOKEN) + MESSAGE_TOKENS for m in prompt
        )
    else:
        n = len(prompt) if isinstance(prompt, list) else 0
    asked = body.get("max_tokens")
    return n + (asked if isinstance(asked, int) else 0)


@dataclass
class Bucket:
    """`per_s` units a second, refilled evenly; holds at most `burst`. A request larger than the burst waits
    for a full bucket and leaves it in debt, so the rate holds over time."""

    per_s: float
    burst: float
    level: float
    at: float  # loop time of the last refill

    @classmethod
    def per_minute(cls, n: float, now: float) -> Bucket:
        burst = max(1.0, n / 60)
        return cls(n / 60, burst, burst, now)

    def wait_s(self, n: float, now: float) -> float:
        self._refill(now)
        return max(0.0, (min(n, self.burst) - self.level) / self.per_s)

    def take(self, n: float, now: float) -> None:
        self._refill(now)
        self.level -= n

    def _refill(self, now: float) -> None:
        self.level = min(self.burst, self.level + (now - self.at) * self.per_s)
        self.at = now


@dataclass(frozen=True)
class Ticket:
    """One try let through: how long it waited for the pacing (ns), and the round of the limit it went in."""

    waited_ns: int
    round: int


@dataclass
class RateControl:
    """The pacing and the adaptive limit on requests in flight of one backend, for all its calls.

    Build it anywhere; use it from one event loop."""

    limits: RateLimits | None = None
    limit: int | None = None  # requests allowed in flight; None: only the caller's cap
    in_flight: int = 0
    peak: int = 0  # the most requests in flight seen: past it, the limit no longer binds
    streak: int = 0  # answers in a row since the limit last changed
    round: int = 0  # bumped at every cut
    paused_until: float = 0.0  # loop time before which nothing is sent (a 429's Retry-After)
    _buckets: list[tuple[Bucket, bool]] | None = None  # (bucket, counts tokens)
    _waiters: list[asyncio.Future[None]] = field(default_factory=list)
    _turn: asyncio.Lock | None = None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one of the requests allowed in flight while the block runs; yields the ns waited for it."""
        start, waited = now_ns(), False
        while self.limit is not None and self.in_flight >= self.limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter
            waited = True
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            yield now_ns() - start if waited else 0
        finally:
            self.in_flight -= 1
            self._wake()

    async def go(self, tokens: int) -> Ticket:
        """Wait out any pause and the pacing, then count one request of `tokens` against the limits."""
        loop = asyncio.get_running_loop()
        if self.limits is None and self.paused_until <= loop.time():
            return Ticket(0, self.round)
        start = now_ns()
        if self._turn is None:
            self._turn = asyncio.Lock()
        async with self._turn:  # in turn: a large request is not overtaken for ever by small ones
            while (wait := self._wait_s(tokens, loop.time())) > 0:
                await asyncio.sleep(wait)
            for bucket, counts_tokens in self._paced(loop.time()):
                bucket.take(tokens if counts_tokens else 1, loop.time())
        return Ticket(now_ns() - start, self.round)

    def answered(self) -> None:
        """An answer: after `limit` of them in a row the limit grows by one (additive increase)."""
        if self.limit is None:
            return
        self.streak += 1
        if self.streak >= self.limit:
            self.streak = 0
            self.limit = None if self.limit + 1 > self.peak else self.limit + 1
            self._wake()

    def refused(self, ticket: Ticket, pause_s: float) -> None:
        """A 429 to a try: pause every send for `pause_s`; halve the limit once for the round it went in."""
        self.streak = 0
        loop = asyncio.get_running_loop()
        self.paused_until = max(self.paused_until, loop.time() + pause_s)
        if ticket.round == self.round:
            self.round += 1
            self.limit = max(1, (self.limit if self.limit is not None else max(self.in_flight, 1)) // 2)

    def _wait_s(self, tokens: int, now: float) -> float:
        waits = [self.paused_until - now]
        waits += [b.wait_s(tokens if counts_tokens else 1, now) for b, counts_tokens in self._paced(now)]
        return max(waits)

    def _paced(self, now: float) -> list[tuple[Bucket, bool]]:
        if self._buckets is None:
            limits = self.limits or RateLimits()
            self._buckets = [
                (Bucket.per_minute(n, now), counts_tokens)
                for n, counts_tokens in ((limits.rpm, False), (limits.tpm, True))
                if n is not None
            ]
        return self._buckets

    def _wake(self) -> None:
        """Let every waiter look again whether there is room (few wait: no need to pick one)."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
