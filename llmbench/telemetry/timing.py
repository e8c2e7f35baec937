"""The one clock for per-request timings, read at the events themselves (first token, each chunk)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise

now_ns = time.perf_counter_ns


def ms_since(start_ns: int) -> float:
    """Milliseconds from `start_ns` to now, on the one clock (a load, a scored request)."""
    return (now_ns() - start_ns) / 1e6


@dataclass
class TokenClock:
    """Timestamps of one request: when it was submitted, and when each token (or chunk) arrived.

    Call `token()` in the callback that sees the token, not after generation: that is what makes
    `ttft_ms` a time-to-first-token and not a time-to-last.
    """

    start_ns: int = field(default_factory=now_ns)
    token_ns: list[int] = field(default_factory=list)
    end_ns: int | None = None

    def token(self, at_ns: int | None = None) -> None:
        self.token_ns.append(now_ns() if at_ns is None else at_ns)

    def finish(self, at_ns: int | None = None) -> None:
        if self.end_ns is None:
            self.end_ns = now_ns() if at_ns is None else at_ns

    def for_row(self, n: int, start_ns: int | None = None) -> TokenClock:
        """One row of a batch timed by this clock: its first `n` tokens (where the row stopped), counted from
        `start_ns` (the row's own start, e.g. its arrival) or else from this clock's start; with no token,
        the row ends where this clock does."""
        kept = self.token_ns[:n]
        start = self.start_ns if start_ns is None else start_ns
        return TokenClock(start, kept, kept[-1] if kept else self.end_ns)

    @property
    def ttft_ms(self) -> float | None:
        return (self.token_ns[0] - self.start_ns) / 1e6 if self.token_ns else None

    @property
    def latency_ms(self) -> float | None:
        end = self.end_ns if self.end_ns is not None else (self.token_ns[-1] if self.token_ns else None)
        return (end - self.start_ns) / 1e6 if end is not None else None

    @property
    def itl_ms(self) -> list[float]:
        t = self.token_ns
        return [(b - a) / 1e6 for a, b in pairwise(t)]
