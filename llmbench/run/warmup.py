"""The one warm-up: requests sent before a timed measurement and dropped, so start-up costs (CUDA context,
kernel selection, a server's first connection, an empty batch) stay out of every figure."""

from __future__ import annotations

import math
from collections.abc import Sequence

from llmbench.backends.base import Backend, OpensConnections
from llmbench.types import Completion, GenerationRequest

# Connections an open-loop point may have opened ahead of it: each is a file descriptor here and a socket
# on the server, and a rate this far past what the warm-up saw is client-bound before it is connection-bound.
MAX_WARM_CONNECTIONS = 512


def run_warmup(
    backend: Backend,
    requests: Sequence[GenerationRequest],
    concurrency: int | None = None,
    request_rate: float | None = None,
) -> bool:
    """Send `requests` at `concurrency` (that of the point they warm) and drop their output; False if none.

    With `request_rate` (an open-loop point), then open the connections that point will have in flight,
    where the backend has connections to open (see `warm_connections`)."""
    if not requests:
        return False
    completions = list(backend.generate(requests, concurrency=concurrency))
    if request_rate is not None and isinstance(backend, OpensConnections):
        backend.open_connections(warm_connections(completions, request_rate, concurrency))
    return True


def warm_connections(completions: Sequence[Completion], request_rate: float, cap: int | None) -> int:
    """How many connections an open-loop point at `request_rate` will hold at once, by Little's law: the rate
    times how long a request holds one, its E2E latency (which includes its TTFT), taken as the warm-up's
    mean E2E, doubled for Poisson bursts and for latency that grows under the point's load; at most the
    point's cap on requests in flight and MAX_WARM_CONNECTIONS. The warm-up's own connections count."""
    e2e_ms = [c.latency_ms for c in completions if c.error is None and c.latency_ms is not None]
    if not e2e_ms:
        return 0
    n = math.ceil(2 * request_rate * (sum(e2e_ms) / len(e2e_ms)) / 1000)
    return min(n, cap or MAX_WARM_CONNECTIONS, MAX_WARM_CONNECTIONS)
