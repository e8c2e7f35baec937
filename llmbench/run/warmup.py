"""The one warm-up: requests sent before a timed measurement and dropped, so start-up costs (CUDA context,
kernel selection, a server's first connection, an empty batch) stay out of every figure."""

from __future__ import annotations

from collections.abc import Sequence

from llmbench.backends.base import Backend
from llmbench.types import GenerationRequest


def run_warmup(
    backend: Backend, requests: Sequence[GenerationRequest], concurrency: int | None = None
) -> bool:
    """Send `requests` at `concurrency` (that of the point they warm) and drop their output; False if none."""
    if not requests:
        return False
    list(backend.generate(requests, concurrency=concurrency))
    return True
