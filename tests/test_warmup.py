"""An open-loop point's connections are opened before it, as many as Little's law says it will hold."""

from __future__ import annotations

from llmbench.run.warmup import MAX_WARM_CONNECTIONS, warm_connections
from llmbench.types import Completion


def done(latency_ms: float | None, error: str | None = None) -> Completion:
    return Completion("r", "", latency_ms=latency_ms, error=error)


def test_the_connections_warmed_are_twice_the_rate_times_the_warm_up_latency() -> None:
    # 100 req/s, each holding a connection 0.5 s on average: 50 in flight, 100 with the margin
    assert warm_connections([done(400), done(600), done(None, "x")], 100, None) == 100


def test_the_connections_warmed_stop_at_the_points_cap_and_the_bound() -> None:
    assert warm_connections([done(1000)], 100, 16) == 16
    assert warm_connections([done(10_000)], 1000, None) == MAX_WARM_CONNECTIONS


def test_a_warm_up_without_an_answer_warms_no_connection() -> None:
    assert warm_connections([done(None, "refused")], 100, None) == 0
