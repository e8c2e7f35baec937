"""Out-of-memory recovery in the Transformers backend, on tiny-qwen2 with a simulated CUDA OOM.

torch's own `torch.OutOfMemoryError` (what `torch.cuda.OutOfMemoryError` is) is raised where `generate`
would raise it on a GPU: a batch too big for memory falls back to one request at a time, the allocator's
cache is handed back, and only a request that runs out of memory alone fails, with the error named.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llmbench.backends import common
from llmbench.backends.transformers import TransformersBackend
from llmbench.types import GenerationParams, GenerationRequest


@pytest.fixture(scope="module")
def backend(tiny_transformers: TransformersBackend) -> TransformersBackend:
    return tiny_transformers


def requests(n: int) -> list[GenerationRequest]:
    params = GenerationParams(max_new_tokens=4, temperature=0.0)
    return [GenerationRequest(request_id=f"r{i}", prompt=f"{i} + {i} =", params=params) for i in range(n)]


def simulate_oom(backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch, above: int) -> list[int]:
    """`generate` runs out of memory on batches larger than `above`; returns the batch sizes tried."""
    real = backend._generate
    tried: list[int] = []

    def generate(items: list[Any]) -> Any:
        tried.append(len(items))
        if len(items) > above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(items)

    monkeypatch.setattr(backend, "_generate", generate)
    return tried


def test_a_batch_that_runs_out_of_memory_is_retried_one_request_at_a_time(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    freed: list[bool] = []
    monkeypatch.setattr("llmbench.backends.transformers.free_device_memory", lambda: freed.append(True))
    tried = simulate_oom(backend, monkeypatch, above=1)
    out = list(backend.generate(requests(3), concurrency=3))
    assert tried == [3, 1, 1, 1]
    assert freed == [True]
    assert sorted(c.request_id for c in out) == ["r0", "r1", "r2"]
    assert all(c.error is None and c.output_tokens for c in out)


def test_a_request_that_runs_out_of_memory_alone_fails_with_the_reason(
    backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate_oom(backend, monkeypatch, above=0)
    (only,) = backend.generate(requests(1))
    assert only.error is not None and "OutOfMemoryError" in only.error and "out of memory" in only.error
    assert common.is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
