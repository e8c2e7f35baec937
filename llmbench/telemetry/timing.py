"""Clocks for per-request timings, read at the events themselves (first token, each chunk)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from itertools import pairwise

now_ns = time.perf_counter_ns


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
