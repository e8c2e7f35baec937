"""The NVML sampler, run against tests/telemetry/fake_pynvml.py (this machine has no NVIDIA GPU).

The fake has pynvml's names, errors and error behaviour; memory follows a curve indexed by the
number of reads, so "a spike N samples long" is exact and no test depends on wall-clock timing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest

from llmbench.telemetry.gpus import visible_targets
from llmbench.telemetry.nvml import NvmlSampler
from tests.telemetry import fake_pynvml
from tests.telemetry.fake_pynvml import FakeGpu


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 600.0) -> None:
    """Let the sampler thread run until `condition` holds (a liveness wait, not a timing check)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"sampler thread never got to: {what}")
        time.sleep(0.002)


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    yield fake_pynvml
    fake_pynvml.configure([])


def gpus(n: int) -> list[FakeGpu]:
    return fake_pynvml.configure(
        [FakeGpu(uuid=f"GPU-{i}aaaa-0000-1111-2222-33334444555{i}") for i in range(n)]
    )


def test_peak_is_the_maximum_of_a_spike_between_start_and_stop(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure(
        [FakeGpu(uuid="GPU-1", memory_used_mib=[1000.0] * 6 + [9000.0] * 4 + [1500.0])]
    )
    sampler = NvmlSampler(hz=200).start()
    wait_until(lambda: gpu.memory_reads >= 40, "40 memory reads")
    summary = sampler.stop()
    at_stop = gpu.memory_used_mib[-1]
    assert summary.peak_vram_mib == 9000.0
    assert summary.gpus[0]["peak_vram_mib"] == 9000.0
    assert at_stop < summary.peak_vram_mib  # a peak read only at stop would be 1500
    assert summary.source == "nvml" and summary.sample_hz == 200
    assert max(summary.timeseries["vram_mib"]) == 9000.0


def test_timeseries_is_downsampled_but_keeps_the_peak(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure(
        [FakeGpu(uuid="GPU-1", memory_used_mib=[100.0] * 300 + [7000.0] + [100.0])]
    )
    sampler = NvmlSampler(hz=2000).start()
    wait_until(lambda: gpu.memory_reads >= 600, "600 memory reads")
    summary = sampler.stop()
    assert 0 < len(summary.timeseries["t_s"]) <= 200
    assert len(summary.timeseries["vram_mib"]) == len(summary.timeseries["t_s"])
    assert max(summary.timeseries["vram_mib"]) == 7000.0
    assert summary.timeseries["t_s"] == sorted(summary.timeseries["t_s"])


def test_energy_is_the_difference_of_the_energy_counter(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", energy_mj=5_000_000, power_mw=300_000)])
    sampler = NvmlSampler(hz=100).start()
    gpu.energy_mj = 5_750_000
    summary = sampler.stop()
    assert summary.energy_j == 750.0
    assert summary.gpus[0]["energy_source"] == "counter"
    assert summary.mean_power_w == 300.0


def test_energy_falls_back_to_integrated_power_without_a_counter(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", energy_mj=None, power_mw=200_000)])
    sampler = NvmlSampler(hz=200).start()
    wait_until(lambda: gpu.memory_reads >= 20, "20 memory reads")
    summary = sampler.stop()
    t = summary.timeseries["t_s"]
    assert summary.gpus[0]["energy_source"] == "power_integral"
    assert summary.energy_j == pytest.approx(200.0 * (t[-1] - t[0]), abs=200.0 * 0.002)
    assert summary.energy_j is not None and summary.energy_j > 0


def test_loaded_mark_separates_weights_from_peak(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[600.0])])
    sampler = NvmlSampler(hz=200).start()
    gpu.memory_used_mib = [15_500.0]  # the weights are in
    sampler.mark("loaded")
    gpu.memory_used_mib = [24_000.0]  # KV cache and activations during generation
    reads = gpu.memory_reads
    wait_until(lambda: gpu.memory_reads >= reads + 5, "5 more memory reads")
    summary = sampler.stop()
    assert summary.vram_after_load_mib == 15_500.0
    assert summary.peak_vram_mib == 24_000.0
    assert summary.gpus[0]["marks_mib"] == {"loaded": 15_500.0}


def test_before_load_mark_shows_what_others_already_used(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[9_000.0])])  # another job
    sampler = NvmlSampler(hz=200).start()
    sampler.mark("before_load")
    gpu.memory_used_mib = [24_500.0]
    sampler.mark("loaded")
    summary = sampler.stop()
    assert summary.vram_before_load_mib == 9_000.0 and summary.vram_after_load_mib == 24_500.0


def test_process_memory_counts_this_run_and_its_children_only(nvml: ModuleType) -> None:
    """Device-wide "used" includes a neighbour's 30 GiB; the run's own figure holds its processes alone."""
    import os
    import subprocess

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # an engine worker, say
    try:
        neighbour = 1  # init: never one of ours
        (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[50_000.0])])
        gpu.processes = [(os.getpid(), 500.0), (child.pid, 15_000.0), (neighbour, 30_000.0)]
        sampler = NvmlSampler(hz=200).start()
        reads = gpu.memory_reads
        wait_until(lambda: gpu.memory_reads >= reads + 3, "3 more memory reads")
        gpu.processes = [(os.getpid(), 500.0), (child.pid, 19_000.0), (neighbour, 30_000.0)]
        reads = gpu.memory_reads
        wait_until(lambda: gpu.memory_reads >= reads + 3, "3 more memory reads")
        gpu.processes = [(os.getpid(), 500.0), (neighbour, 30_000.0)]  # the worker exited
        summary = sampler.stop()
    finally:
        child.kill()
        child.wait()
    assert summary.peak_vram_mib == 50_000.0
    assert summary.peak_process_vram_mib == 19_500.0
    assert summary.gpus[0]["peak_process_vram_mib"] == 19_500.0


@pytest.mark.parametrize(
    ("processes", "supported"),
    [([(1, 30_000.0)], True), ([], False), ([(0, None)], True)],
    ids=["none-of-ours-listed", "not-supported", "figure-withheld"],
)
def test_process_memory_is_unknown_where_nvml_cannot_attribute_it(
    nvml: ModuleType, processes: list[tuple[int, float | None]], supported: bool
) -> None:
    import os

    gpu = FakeGpu(uuid="GPU-1", processes_supported=supported)
    gpu.processes = [(os.getpid() if pid == 0 else pid, mib) for pid, mib in processes]
    fake_pynvml.configure([gpu])
    summary = NvmlSampler(hz=200).start().stop()
    assert summary.peak_vram_mib is not None
    assert summary.peak_process_vram_mib is None  # never 0: "unknown" is not "nothing"


def test_window_gives_peak_and_energy_of_its_interval_only(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[2000.0], energy_mj=1_000_000)])
    with NvmlSampler(hz=200) as sampler:
        with sampler.window() as window:
            gpu.memory_used_mib = [6000.0]
            gpu.energy_mj = 1_100_000
            reads = gpu.memory_reads
            wait_until(lambda: gpu.memory_reads >= reads + 5, "5 reads in the window")
            gpu.memory_used_mib = [3000.0]
        gpu.memory_used_mib = [7000.0]
        gpu.energy_mj = 1_500_000
        reads = gpu.memory_reads
        wait_until(lambda: gpu.memory_reads >= reads + 5, "5 reads after the window")
    assert window.peak_vram_mib == 6000.0
    assert window.energy_j == 100.0
    assert window.duration_s is not None and window.duration_s > 0
    assert sampler.summary is not None
    assert sampler.summary.peak_vram_mib == 7000.0
    assert sampler.summary.energy_j == 500.0


def test_peaks_and_energy_are_summed_over_gpus(nvml: ModuleType) -> None:
    a, b = fake_pynvml.configure(
        [
            FakeGpu(uuid="GPU-a", memory_used_mib=[1000.0, 5000.0, 1000.0], energy_mj=0),
            FakeGpu(uuid="GPU-b", memory_used_mib=[2000.0, 2000.0, 6000.0, 2000.0], energy_mj=0),
        ]
    )
    sampler = NvmlSampler(hz=200).start()
    wait_until(lambda: b.memory_reads >= 10, "10 reads")
    a.energy_mj, b.energy_mj = 40_000, 60_000
    summary = sampler.stop()
    assert [g["peak_vram_mib"] for g in summary.gpus] == [5000.0, 6000.0]
    assert summary.peak_vram_mib == 11_000.0
    assert summary.energy_j == 100.0
    assert summary.mean_power_w == 600.0  # 300 W each, summed


def test_cuda_visible_devices_picks_gpus_by_index_and_uuid(
    nvml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    all_gpus = gpus(4)
    fake_pynvml.nvmlInit()
    labels = lambda env: [t.label for t in visible_targets(fake_pynvml, env)]  # noqa: E731
    assert labels(None) == ["0", "1", "2", "3"]
    assert labels("2,0") == ["2", "0"]
    assert labels(f"3,{all_gpus[1].uuid[:9]}") == ["3", "1"]  # a unique UUID prefix, as CUDA accepts
    assert labels("1,7,0") == ["1"]  # an entry that matches nothing ends the list, as in CUDA
    assert labels("") == []
    assert labels("-1") == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    summary = NvmlSampler(hz=100).start().stop()
    assert [g["index"] for g in summary.gpus] == ["3", "1"]
    assert [g["uuid"] for g in summary.gpus] == [all_gpus[3].uuid, all_gpus[1].uuid]


def test_device_indices_are_positions_among_visible_gpus(
    nvml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    gpus(4)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    summary = NvmlSampler(hz=100, device_indices=[1]).start().stop()
    assert [g["index"] for g in summary.gpus] == ["3"]


def test_mig_instances_are_sampled_instead_of_their_gpu(
    nvml: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    mig0 = FakeGpu(uuid="MIG-aaaa", memory_total_mib=40_000.0, memory_used_mib=[3000.0])
    mig1 = FakeGpu(uuid="MIG-bbbb", memory_total_mib=40_000.0, memory_used_mib=[5000.0])
    fake_pynvml.configure(
        [
            FakeGpu(
                uuid="GPU-p", mig_capable=True, mig_enabled=True, mig_devices=[mig0, None, mig1], energy_mj=0
            )
        ]
    )
    fake_pynvml.nvmlInit()
    assert [(t.label, t.is_mig) for t in visible_targets(fake_pynvml, None)] == [
        ("0/mig0", True),
        ("0/mig2", True),
    ]
    assert [t.uuid for t in visible_targets(fake_pynvml, "MIG-bbbb")] == ["MIG-bbbb"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-bbbb")
    summary = NvmlSampler(hz=100).start().stop()
    assert summary.peak_vram_mib == 5000.0
    assert summary.gpus[0]["mig"] is True
    assert summary.gpus[0]["mean_util_pct"] is None  # MIG instances have no utilisation counter


def test_no_nvidia_library_gives_a_reason_and_no_thread(nvml: ModuleType) -> None:
    fake_pynvml.configure([FakeGpu(uuid="GPU-1")], library_present=False)
    sampler = NvmlSampler()
    sampler.start()
    sampler.mark("loaded")
    with sampler.window() as window:
        pass
    summary = sampler.stop()
    assert not sampler.running
    assert summary.unavailable is not None and "NVML Shared Library Not Found" in summary.unavailable
    assert summary.peak_vram_mib is None and summary.energy_j is None
    assert window.peak_vram_mib is None and window.energy_j is None


def test_no_visible_gpu_gives_a_reason(nvml: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    gpus(2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    summary = NvmlSampler().start().stop()
    assert summary.unavailable is not None and "CUDA_VISIBLE_DEVICES" in summary.unavailable
    assert fake_pynvml._state["init_count"] == 0  # NVML was shut down again


def test_missing_pynvml_gives_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    summary = NvmlSampler().start().stop()
    assert summary.unavailable is not None and "nvidia-ml-py" in summary.unavailable


def test_a_gpu_lost_mid_run_does_not_stop_the_run(nvml: ModuleType) -> None:
    (gpu,) = fake_pynvml.configure([FakeGpu(uuid="GPU-1", memory_used_mib=[4000.0], lost_after_reads=8)])
    sampler = NvmlSampler(hz=500).start()
    wait_until(lambda: gpu.memory_reads >= 8, "the GPU to fall off the bus")
    summary = sampler.stop()
    assert not sampler.running
    assert summary.peak_vram_mib == 4000.0  # what was seen before the failure is kept
    assert summary.gpus[0]["errors"] > 0
    assert "GPU is lost" in summary.gpus[0]["last_error"]


def test_stop_is_idempotent_and_usable_as_context_manager(nvml: ModuleType) -> None:
    gpus(1)
    with NvmlSampler(hz=100) as sampler:
        assert sampler.running
    first = sampler.stop()
    assert sampler.stop() is first
    assert not sampler.running
    assert fake_pynvml._state["init_count"] == 0


def test_torch_peaks_are_none_without_cuda_and_fill_the_summary_when_known() -> None:
    import torch

    from llmbench.results.schema import TelemetrySummary
    from llmbench.telemetry.memory import TorchPeaks, reset_torch_peaks, torch_peaks, with_torch_peaks

    if torch.cuda.is_available():  # pragma: no cover - GPU hosts
        assert reset_torch_peaks() and torch_peaks() is not None
        return
    assert reset_torch_peaks() is False
    assert torch_peaks() is None
    summary = TelemetrySummary(unavailable="no GPU")
    assert with_torch_peaks(summary, None) is summary
    filled = with_torch_peaks(summary, TorchPeaks(allocated_mib=15_410.0, reserved_mib=15_800.0))
    assert (filled.torch_peak_allocated_mib, filled.torch_peak_reserved_mib) == (15_410.0, 15_800.0)
