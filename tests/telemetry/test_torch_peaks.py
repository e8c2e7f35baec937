"""torch's allocator peaks, read through tests/telemetry/fake_torch_cuda.py: CUDA is the only missing piece."""

from __future__ import annotations

import sys

import pytest

from llmbench.results.schema import TelemetrySummary
from llmbench.telemetry.memory import reset_torch_peaks, torch_peaks, with_torch_peaks
from tests.telemetry.fake_torch_cuda import FakeCuda, fake_torch

MIB = 1024 * 1024


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    torch = fake_torch(devices=2)
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch.cuda  # type: ignore[no-any-return]


def test_torch_imported_but_cuda_never_initialised_neither_raises_nor_reports_zero(cuda: FakeCuda) -> None:
    assert reset_torch_peaks() is False  # a study's vLLM cell: the engine's CUDA is in other processes
    assert torch_peaks() is None
    summary = with_torch_peaks(TelemetrySummary(source="nvml"), torch_peaks())
    assert summary.torch_peak_allocated_mib is None and summary.torch_peak_reserved_mib is None


def test_peaks_are_measured_since_the_reset_once_cuda_is_in_use(cuda: FakeCuda) -> None:
    cuda.allocate(0, 900 * MIB)
    cuda.free(0, 900 * MIB)
    cuda.allocate(1, 100 * MIB)
    assert reset_torch_peaks() is True  # the 900 MiB of an earlier cell are forgotten
    cuda.allocate(0, 300 * MIB)
    peaks = torch_peaks()
    assert peaks is not None
    assert peaks.allocated_mib == 400.0  # 300 on cuda:0 + 100 still held on cuda:1


def test_a_process_whose_tensors_took_nothing_records_no_torch_peak(cuda: FakeCuda) -> None:
    cuda.init()  # CUDA initialised here, the model in a managed server: nothing allocated by this process
    assert reset_torch_peaks() is True
    assert torch_peaks() is None
