"""The host's GPUs for `llmbench doctor`: as NVML lists them (memory, who holds it, energy counter) and as
CUDA numbers them, and whether the two orders agree. Reads only; never allocates on a GPU."""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from llmbench.telemetry.gpus import GpuTarget, load_pynvml, visible_targets

MIB = 1024 * 1024


@dataclass
class Holder:
    """A process with memory on a GPU, as NVML reports it (pid in NVML's namespace)."""

    pid: int
    name: str
    used_mib: float | None  # None: the driver withholds the figure


@dataclass
class GpuFacts:
    index: str  # NVML's index (PCI bus order); "0/mig1" for a MIG instance
    uuid: str
    name: str
    total_mib: float
    free_mib: float
    holders: list[Holder] = field(default_factory=list)
    energy_counter: bool = False  # nvmlDeviceGetTotalEnergyConsumption works
    visible: bool = True  # within CUDA_VISIBLE_DEVICES


@dataclass
class GpuSurvey:
    driver: str | None = None
    cuda_driver: str | None = None  # the newest CUDA the driver supports
    gpus: list[GpuFacts] = field(default_factory=list)
    unavailable: str | None = None  # why no GPU is listed
    cuda_uuids: list[str] | None = None  # CUDA's devices in its own order; None when not asked or no torch
    cuda_problem: str | None = None
    same_order: bool | None = None  # CUDA's cuda:N is the Nth visible GPU in NVML's order


def survey_gpus(with_cuda: bool) -> GpuSurvey:
    """Every GPU NVML sees; with `with_cuda`, also CUDA's numbering through torch (initialises CUDA)."""
    nvml, reason = load_pynvml()
    if nvml is None:
        return GpuSurvey(unavailable=reason)
    try:
        report = _nvml_survey(nvml)
    except nvml.NVMLError as exc:
        report = GpuSurvey(unavailable=f"NVML could not list GPUs: {exc}")
    finally:
        with suppress(nvml.NVMLError):
            nvml.nvmlShutdown()
    if not report.gpus:
        report.unavailable = report.unavailable or "NVML lists no GPU"
    elif with_cuda:
        _add_cuda_view(report)
    return report


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_survey(nvml: ModuleType) -> GpuSurvey:
    cuda = nvml.nvmlSystemGetCudaDriverVersion()
    report = GpuSurvey(
        driver=_text(nvml.nvmlSystemGetDriverVersion()), cuda_driver=f"{cuda // 1000}.{cuda % 1000 // 10}"
    )
    visible = {t.uuid for t in visible_targets(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))}
    for target in visible_targets(nvml, None):
        report.gpus.append(_gpu_facts(nvml, target, target.uuid in visible))
    return report


def _gpu_facts(nvml: ModuleType, target: GpuTarget, visible: bool) -> GpuFacts:
    mem = nvml.nvmlDeviceGetMemoryInfo(target.handle)
    facts = GpuFacts(target.label, target.uuid, target.name, mem.total / MIB, mem.free / MIB, visible=visible)
    with suppress(nvml.NVMLError):
        for proc in nvml.nvmlDeviceGetComputeRunningProcesses(target.handle):
            used = None if proc.usedGpuMemory is None else proc.usedGpuMemory / MIB
            facts.holders.append(Holder(proc.pid, _process_name(nvml, proc.pid), used))
    with suppress(nvml.NVMLError):
        nvml.nvmlDeviceGetTotalEnergyConsumption(target.parent)
        facts.energy_counter = target.owns_power
    return facts


def _process_name(nvml: ModuleType, pid: int) -> str:
    """NVML's name for a GPU process, else this namespace's (psutil), else '?'."""
    with suppress(nvml.NVMLError):
        return os.path.basename(_text(nvml.nvmlSystemGetProcessName(pid)))
    try:
        import psutil

        return str(psutil.Process(pid).name())
    except Exception:  # not in this PID namespace, or gone
        return "?"


def _add_cuda_view(report: GpuSurvey) -> None:
    """CUDA's devices by UUID, in CUDA's order, and whether it is NVML's order of the visible GPUs."""
    try:
        import torch
    except ImportError:
        report.cuda_problem = "torch is not installed: CUDA's numbering cannot be read"
        return
    try:
        count = torch.cuda.device_count()
        report.cuda_uuids = [_cuda_uuid(torch.cuda.get_device_properties(i)) for i in range(count)]
    except Exception as exc:  # a driver/toolkit mismatch shows here first
        report.cuda_problem = (
            f"CUDA through torch: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        )
        return
    nvml_order = [g.uuid for g in report.gpus if g.visible]
    report.same_order = report.cuda_uuids == nvml_order


def _cuda_uuid(props: Any) -> str:
    uuid = str(getattr(props, "uuid", "?"))
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
