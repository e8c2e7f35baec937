"""The one clock for per-request timings, read at the events themselves (first token, each chunk), and the
timing record it fills (`llmbench.types.RequestTiming`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

from llmbench.types import RequestTiming

now_ns = time.perf_counter_ns


def ms_since(start_ns: int) -> float:
    """Milliseconds from `start_ns` to now, on the one clock (a load, a scored request)."""
    return (now_ns() - start_ns) / 1e6


@dataclass
class TokenClock:
    """Timestamps of one request: when it started, when each arrival of tokens came, when it closed.

    Call `token()` in the callback that sees the tokens, not after generation: that is what makes TTFT a
    time-to-first-token and not a time-to-last. `output()` marks the arrival that carries the first answer
    token, where the backend sees reasoning and answer apart as they arrive (a server's reasoning channel).
    """

    start_ns: int = field(default_factory=now_ns)
    token_ns: list[int] = field(default_factory=list)  # each arrival
    token_counts: list[int] = field(default_factory=list)  # the tokens each arrival carried
    end_ns: int | None = None  # the close: the stream's, the engine's or the batch's end
    output_at: int | None = None  # the arrival of the first answer token, where marked
    engine_stamps: bool = False  # the arrivals are the engine's first- and last-token stamps (`engine_span`)

    def token(self, at_ns: int | None = None, n: int = 1) -> None:
        self.token_ns.append(now_ns() if at_ns is None else at_ns)
        self.token_counts.append(n)

    def output(self) -> None:
        """The arrival just stamped carried the first answer token (later calls keep the first)."""
        if self.output_at is None and self.token_ns:
            self.output_at = len(self.token_ns) - 1

    def clear(self) -> None:
        """Forget every arrival (a retry's timings are its own)."""
        self.token_ns.clear()
        self.token_counts.clear()
        self.output_at = None

    def keep(self, n: int) -> None:
        """Keep the first `n` arrivals only."""
        del self.token_ns[n:], self.token_counts[n:]
        if self.output_at is not None and self.output_at >= n:
            self.output_at = None

    def engine_span(self, first_ns: int, last_ns: int, tokens: int, seen_ns: int) -> bool:
        """A finished output seen only whole: its first token at the engine's stamp `first_ns` and the rest
        at `last_ns`, where the stamps lie between this clock's start and `seen_ns` (when the client got it;
        same host, same monotonic clock). False, stamping nothing, where they do not."""
        if tokens < 1 or not self.start_ns <= first_ns <= last_ns <= seen_ns:
            return False
        self.token(first_ns, 1)
        if tokens > 1:
            self.token(last_ns, tokens - 1)
        self.engine_stamps = True
        return True

    def finish(self, at_ns: int | None = None) -> None:
        if self.end_ns is None:
            self.end_ns = now_ns() if at_ns is None else at_ns

    def for_row(self, n: int, start_ns: int | None = None) -> TokenClock:
        """One row of a batch whose every arrival is one token for each row: the row's first `n` arrivals
        (where it stopped), counted from `start_ns` (the row's own start, e.g. its arrival) or else from this
        clock's start; its close is the batch's."""
        start = self.start_ns if start_ns is None else start_ns
        return TokenClock(start, self.token_ns[:n], [1] * len(self.token_ns[:n]), self.end_ns)

    def arrival_of(self, token: int) -> int | None:
        """The arrival that carried output token number `token` (from 0); None past the last."""
        seen = 0
        for i, n in enumerate(self.token_counts):
            seen += n
            if token < seen:
                return i
        return None

    def spread(self, total: int | None) -> bool:
        """Where each arrival was counted as one token (a stream that does not say) and `total` (the server's
        count) is larger, spread it evenly over the arrivals, any remainder on the latest; True where it did."""
        k = len(self.token_counts)
        if total is None or k == 0 or total <= k or any(n != 1 for n in self.token_counts):
            return False
        each, extra = divmod(total, k)
        self.token_counts[:] = [each + (i >= k - extra) for i in range(k)]
        return True

    def record(
        self, reasoning_tokens: int = 0, output_arrival: int | Literal["derived"] | None = "derived"
    ) -> RequestTiming:
        """The timing record. Its first answer arrival is `output_arrival` where given; else the one marked
        (`output()`), else the arrival of the first token after `reasoning_tokens` (None where there is none, or
        where only the engine's first and last stamps were seen and the first token was reasoning)."""
        if output_arrival == "derived" and self.engine_stamps:
            output_arrival = 0 if reasoning_tokens == 0 else None
        if output_arrival == "derived":
            marked = self.output_at if reasoning_tokens == 0 or self.output_at is not None else None
            output_arrival = marked if marked is not None else self.arrival_of(reasoning_tokens)
        return RequestTiming(
            arrivals_ms=[(t - self.start_ns) / 1e6 for t in self.token_ns],
            arrival_tokens=list(self.token_counts),
            reasoning_tokens=reasoning_tokens,
            output_arrival=output_arrival,
            close_ms=(self.end_ns - self.start_ns) / 1e6 if self.end_ns is not None else None,
            engine_stamps=self.engine_stamps,
        )
