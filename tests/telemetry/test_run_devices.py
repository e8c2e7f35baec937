"""A run's telemetry covers the run's own GPUs only: a fake NVML of 8 GPUs, the run on 2, another
process's memory on a third, through the real runner (tests/telemetry/fake_pynvml.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from llmbench.backends import backends
from llmbench.backends.base import BackendInfo
from llmbench.backends.reference import ReferenceBackend
from llmbench.config.models import resolve_model
from llmbench.config.suite import load_suite
from llmbench.results.schema import TelemetrySummary
from llmbench.run.pipeline import RunOptions, run_suite
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu

OTHERS_PID = 2**22 + 17  # a process outside this run's tree
IDLE_MIB, CONTEXT_MIB = 500.0, 600.0


class TwoGpuBackend(ReferenceBackend):
    """Loads weights onto two GPUs of the eight: `physical` in NVML's numbering, `declared` as it reports."""

    name: ClassVar[str] = "two-gpus-test"
    physical: ClassVar[tuple[int, int]] = (2, 3)
    declared: ClassVar[list[int]] = []
    weights_mib: ClassVar[float] = 7000.0
    gpus: ClassVar[list[FakeGpu]] = []

    def load(self) -> BackendInfo:
        for i in self.physical:
            self.gpus[i].memory_used_mib = [IDLE_MIB + CONTEXT_MIB + self.weights_mib]
            self.gpus[i].processes = [(os.getpid(), CONTEXT_MIB + self.weights_mib)]
        return super().load().model_copy(update={"gpus": list(self.declared)})


if TwoGpuBackend.name not in backends:
    backends.add(TwoGpuBackend.name, TwoGpuBackend)


@pytest.fixture
def eight(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeGpu]]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpus = fake_pynvml.configure(
        [FakeGpu(uuid=f"GPU-{i}{i}{i}{i}aaaa-0000", memory_used_mib=[IDLE_MIB]) for i in range(8)]
    )
    gpus[6].memory_used_mib = [IDLE_MIB + 30_000.0]  # someone else's job on GPU 6
    gpus[6].processes = [(OTHERS_PID, 30_000.0)]
    TwoGpuBackend.gpus = gpus
    yield gpus
    fake_pynvml.configure([])
    TwoGpuBackend.physical, TwoGpuBackend.declared = (2, 3), []


def run(tmp_path: Path) -> TelemetrySummary:
    model = resolve_model("tiny-qwen2", backend=TwoGpuBackend.name)
    opts = RunOptions(limit=1, tasks=["gsm8k"], output=tmp_path / "run.json", telemetry_hz=200)
    result, _ = run_suite(load_suite("suites/math.yaml"), model, opts)
    assert result.performance.telemetry is not None
    return result.performance.telemetry


def test_the_runs_peak_vram_leaves_out_another_process_on_a_third_gpu(
    eight: list[FakeGpu], tmp_path: Path
) -> None:
    telemetry = run(tmp_path)  # the backend says nothing: NVML's process list tells the run's GPUs
    run_gpus = [eight[2].uuid, eight[3].uuid]
    assert telemetry.run_gpu_uuids == run_gpus
    assert telemetry.sampled_gpu_uuids == run_gpus
    assert [g["uuid"] for g in telemetry.gpus] == run_gpus
    assert telemetry.peak_vram_mib == 2 * (IDLE_MIB + CONTEXT_MIB + 7000.0)  # not GPU 6's 30 GB
    assert telemetry.peak_process_vram_mib == 2 * (CONTEXT_MIB + 7000.0)
    assert [g["vram_before_load_mib"] for g in telemetry.gpus] == [IDLE_MIB, IDLE_MIB]
    assert telemetry.vram_before_load_mib == 2 * IDLE_MIB


def test_devices_the_engine_declares_are_positions_in_cuda_visible_devices(
    eight: list[FakeGpu], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    TwoGpuBackend.physical, TwoGpuBackend.declared = (4, 5), [0, 1]  # cuda:0 and cuda:1 of this process
    for gpu in eight:
        gpu.processes_supported = False  # a container where NVML cannot attribute memory to processes
    telemetry = run(tmp_path)
    assert telemetry.run_gpu_uuids == [eight[4].uuid, eight[5].uuid]
    assert telemetry.peak_vram_mib == 2 * (IDLE_MIB + CONTEXT_MIB + 7000.0)
    assert telemetry.peak_process_vram_mib is None


def test_without_any_sign_of_the_runs_gpus_every_visible_gpu_is_sampled_and_said_so(
    eight: list[FakeGpu], tmp_path: Path
) -> None:
    TwoGpuBackend.physical = ()  # type: ignore[assignment]
    telemetry = run(tmp_path)
    assert telemetry.run_gpu_uuids is None
    assert telemetry.sampled_gpu_uuids == [g.uuid for g in eight]
