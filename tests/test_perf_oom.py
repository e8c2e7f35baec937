"""Out-of-memory recovery in the perf sweep, with torch's own `torch.OutOfMemoryError` raised where a GPU would.

A point whose generation runs out of memory is recorded as failed, named as out of memory, the allocator's
cache is handed back before the next point, and the sweep goes on, whether the error escapes the backend
(vLLM, a server) or the Transformers backend turns it into failed requests after retrying one at a time.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llmbench.backends.transformers import TransformersBackend
from llmbench.config.suite import PerfSweep
from llmbench.results.schema import PerfPoint
from llmbench.run.perf import PerfTarget, run_sweep
from tests.test_perf import ScriptedBackend

OOM = "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.19 GiB"


@pytest.fixture(scope="module")
def transformers_backend(tiny_transformers: TransformersBackend) -> TransformersBackend:
    return tiny_transformers


def sweep(inputs: list[int]) -> PerfSweep:
    return PerfSweep(
        input_tokens=inputs, output_tokens=[4], concurrency=[2], requests_per_point=2, warmup_requests=0
    )


def run(backend: Any, inputs: list[int], tokenizer: Any = None, on_point: Any = None) -> list[PerfPoint]:
    tokenizer = tokenizer or backend.tokenizer
    target = PerfTarget(backend, None, tokenizer, max_model_len=512, seed=0, needs_text=False)
    return run_sweep(target, sweep(inputs), on_point=on_point)


def test_a_point_that_raises_out_of_memory_is_recorded_failed_and_the_sweep_goes_on(
    transformers_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend(fail_at_input=256, failure=torch.OutOfMemoryError(OOM))
    events: list[str] = []
    backend.on_generate = lambda: events.append(f"point {len(backend.calls)}")
    monkeypatch.setattr("llmbench.run.point_measure.free_device_memory", lambda: events.append("freed"))
    reported: list[int] = []
    tokenizer = transformers_backend.tokenizer
    points = run(backend, [64, 256, 128], tokenizer, on_point=lambda i, _: reported.append(i))
    assert [p.input_tokens for p in points] == [64, 256, 128] and reported == [0, 1, 2]
    assert points[1].error == f"out of memory: {OOM}"
    assert points[1].ttft_ms is None and points[1].n_requests == 2  # what was asked, no figures
    assert points[0].error is None and points[2].error is None and points[2].ttft_ms is not None
    assert events == ["point 1", "freed", "point 3"]  # memory handed back before the next point


def test_out_of_memory_in_the_transformers_backend_fails_only_its_point(
    transformers_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = transformers_backend._generate
    tried: list[tuple[int, int]] = []

    def generate(items: list[Any]) -> Any:
        width = max(len(ids) for _, ids, _ in items)
        tried.append((width, len(items)))
        if width >= 40:  # long prompts run out of memory, even alone
            raise torch.OutOfMemoryError(OOM)
        return real(items)

    monkeypatch.setattr(transformers_backend, "_generate", generate)
    points = run(transformers_backend, [16, 48, 24])
    assert [p.input_tokens for p in points] == [16, 48, 24]
    assert points[0].error is None and points[2].error is None
    assert points[1].error is not None
    assert points[1].error.startswith(
        "out of memory: 2 of 2 requests failed: OutOfMemoryError: CUDA out of memory"
    )
    assert (48, 2) in tried and tried.count((48, 1)) == 2  # the batch, then each request alone
    assert [p.ttft_ms.n if p.ttft_ms else 0 for p in points] == [2, 0, 2]


def test_a_batch_too_big_for_memory_completes_one_request_at_a_time(
    transformers_backend: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = transformers_backend._generate

    def generate(items: list[Any]) -> Any:
        if len(items) > 1:
            raise torch.OutOfMemoryError(OOM)
        return real(items)

    monkeypatch.setattr(transformers_backend, "_generate", generate)
    (point,) = run(transformers_backend, [32])
    assert point.error is None and point.ttft_ms is not None and point.ttft_ms.n == 2
