"""Energy per output token is metered over generation only: model load and the warm-up stay out of it.

A backend that spends scripted energy (on the fake NVML's counter) while loading and per request
runs a real suite through the real runner; measured over the whole run instead, the figure would
include the 50 J of the load and fail here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest

from llmbench.backends import backends
from llmbench.backends.base import BackendInfo
from llmbench.backends.reference import ReferenceBackend
from llmbench.config.models import resolve_model
from llmbench.config.suite import load_suite
from llmbench.run.pipeline import RunOptions, run_suite
from llmbench.types import Completion, GenerationRequest
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu

LOAD_MJ = 50_000
PER_REQUEST_MJ = 2_000
TOKENS_PER_REQUEST = 10


class MeteredBackend(ReferenceBackend):
    """The reference answers, with energy spent on a fake GPU as a real model would spend it."""

    name: ClassVar[str] = "metered-test"
    gpu: ClassVar[FakeGpu]

    def load(self) -> BackendInfo:
        self.gpu.energy_mj = (self.gpu.energy_mj or 0) + LOAD_MJ
        return super().load()

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        for completion in super().generate(requests):
            self.gpu.energy_mj = (self.gpu.energy_mj or 0) + PER_REQUEST_MJ
            completion.output_tokens = TOKENS_PER_REQUEST
            yield completion


if MeteredBackend.name not in backends:
    backends.add(MeteredBackend.name, MeteredBackend)


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGpu]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    (device,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", energy_mj=0, power_mw=None)])
    MeteredBackend.gpu = device
    yield device
    fake_pynvml.configure([])


def test_energy_per_token_leaves_out_load_and_warmup(gpu: FakeGpu, tmp_path: Path) -> None:
    model = resolve_model("tiny-qwen2", backend=MeteredBackend.name)
    opts = RunOptions(limit=3, tasks=["gsm8k"], output=tmp_path / "run.json")
    result, _ = run_suite(load_suite("suites/math.yaml"), model, opts)
    perf = result.performance
    n = len(result.samples)
    assert n == 3
    assert perf.energy_j == pytest.approx(n * PER_REQUEST_MJ / 1000)
    assert perf.energy_per_output_token_j == pytest.approx(PER_REQUEST_MJ / 1000 / TOKENS_PER_REQUEST)
    # the whole run, as the telemetry block reports it: load + warm-up request + the measured ones
    assert perf.telemetry is not None
    assert perf.telemetry.energy_j == pytest.approx((LOAD_MJ + (n + 1) * PER_REQUEST_MJ) / 1000)


def test_without_warmup_the_first_request_is_the_first_timed_one(gpu: FakeGpu, tmp_path: Path) -> None:
    model = resolve_model("tiny-qwen2", backend=MeteredBackend.name)
    opts = RunOptions(limit=2, tasks=["gsm8k"], output=tmp_path / "run.json", warmup=False)
    result, _ = run_suite(load_suite("suites/math.yaml"), model, opts)
    assert result.performance.telemetry is not None
    assert result.performance.telemetry.energy_j == pytest.approx((LOAD_MJ + 2 * PER_REQUEST_MJ) / 1000)
