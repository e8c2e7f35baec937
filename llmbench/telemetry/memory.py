"""Peak GPU memory as torch's caching allocator saw it, beside NVML's device-wide figure.

NVML's "used" includes the CUDA context and the allocator's reserve (1.4-2.7 GB more on an H100);
torch's peaks are what tensors actually took. Only meaningful where the model runs in this process
(Transformers backend), and only when torch is already imported: this module never imports it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from llmbench.results.schema import TelemetrySummary

MIB = 1024 * 1024


@dataclass(frozen=True)
class TorchPeaks:
    """Peak bytes allocated by tensors and reserved by the allocator, summed over devices, in MiB."""

    allocated_mib: float
    reserved_mib: float


def _cuda_torch() -> Any | None:
    """torch when it is already imported and has initialised CUDA in this process, else None.

    A study's vLLM or managed-server cell imports torch without ever touching CUDA here (the engine
    runs in other processes): there the allocator's counters do not exist, resetting them raises and
    reading them gives 0, which is not a measurement.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        cuda = torch.cuda
        ready = cuda.is_available() and cuda.is_initialized() and cuda.device_count() > 0
    except Exception:  # a broken driver must not fail a run
        return None
    return torch if ready else None


def reset_torch_peaks() -> bool:
    """Reset the allocator's peak counters on every device; False where there is no CUDA in use here."""
    torch = _cuda_torch()
    if torch is None:
        return False
    try:
        for device in range(torch.cuda.device_count()):
            torch.cuda.reset_peak_memory_stats(device)
    except RuntimeError:  # a device this process never used: its counters do not exist
        return False
    return True


def torch_peaks() -> TorchPeaks | None:
    """Peaks since the last reset, summed over devices; None without CUDA or where tensors took nothing
    here (the model ran in another process): a 0 would read as a measurement."""
    torch = _cuda_torch()
    if torch is None:
        return None
    devices = range(torch.cuda.device_count())
    try:
        allocated = sum(torch.cuda.max_memory_allocated(d) for d in devices)
        reserved = sum(torch.cuda.max_memory_reserved(d) for d in devices)
    except RuntimeError:
        return None
    if allocated == 0 and reserved == 0:
        return None
    return TorchPeaks(allocated / MIB, reserved / MIB)


def with_torch_peaks(summary: TelemetrySummary, peaks: TorchPeaks | None) -> TelemetrySummary:
    """The summary with torch's peaks filled in (unchanged when there are none)."""
    if peaks is None:
        return summary
    return summary.model_copy(
        update={
            "torch_peak_allocated_mib": peaks.allocated_mib,
            "torch_peak_reserved_mib": peaks.reserved_mib,
        }
    )
