"""Which NVIDIA GPUs a run can see: NVML loaded once, the visible devices in CUDA's order, MIG instances."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any


@dataclass
class GpuTarget:
    """One visible GPU (or MIG instance): the handle for memory and the parent handle for power/energy."""

    label: str
    uuid: str
    name: str
    handle: Any
    parent: Any
    is_mig: bool = False
    owns_power: bool = True  # False for the 2nd+ MIG instance of a GPU: its power is counted once


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def load_pynvml() -> tuple[ModuleType | None, str | None]:
    """Import and initialise pynvml; returns (module, None) or (None, reason)."""
    try:
        import pynvml
    except ImportError:
        return None, "pynvml not installed (pip install nvidia-ml-py)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return None, f"NVML unavailable: {exc} (no NVIDIA driver or GPU)"
    return pynvml, None


def _mig_children(nvml: ModuleType, parent: Any, label: str, name: str) -> list[GpuTarget]:
    """MIG instances of a GPU with MIG enabled; [] when MIG is off or unsupported."""
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(parent)
    except nvml.NVMLError:
        return []
    if current != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
    children: list[GpuTarget] = []
    for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(parent)):
        try:
            handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, slot)
        except nvml.NVMLError:
            continue  # empty slot
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        children.append(
            GpuTarget(
                f"{label}/mig{slot}", uuid, f"{name} MIG", handle, parent, True, owns_power=not children
            )
        )
    return children


def _all_targets(nvml: ModuleType) -> list[GpuTarget]:
    """Every GPU in NVML order, MIG-enabled GPUs replaced by their instances."""
    targets: list[GpuTarget] = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _text(nvml.nvmlDeviceGetName(handle))
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        children = _mig_children(nvml, handle, str(index), name)
        targets.extend(children or [GpuTarget(str(index), uuid, name, handle, handle)])
    return targets


def visible_entries(cuda_visible_devices: str) -> list[str]:
    """CUDA_VISIBLE_DEVICES's entries as CUDA reads them: indices, `GPU-`/`MIG-` UUIDs (or prefixes of
    them); like CUDA, the first entry that is neither ("-1", "", a typo) ends the list."""
    entries: list[str] = []
    for entry in (e.strip() for e in cuda_visible_devices.split(",")):
        if not (entry.isdigit() or (entry.startswith(("GPU-", "MIG-")) and len(entry) > 4)):
            break
        entries.append(entry)
    return entries


def visible_targets(nvml: ModuleType, cuda_visible_devices: str | None) -> list[GpuTarget]:
    """The GPUs a CUDA process would see under CUDA_VISIBLE_DEVICES, in that order.

    Entries are NVML indices or (prefixes of) GPU-/MIG- UUIDs; like CUDA, an entry that matches
    nothing ends the list. Indices follow NVML's PCI order (CUDA_DEVICE_ORDER=PCI_BUS_ID).
    """
    targets = _all_targets(nvml)
    if cuda_visible_devices is None:
        return targets
    by_gpu_index: dict[str, list[GpuTarget]] = {}
    for t in targets:
        by_gpu_index.setdefault(t.label.split("/")[0], []).append(t)
    chosen: list[GpuTarget] = []
    for entry in visible_entries(cuda_visible_devices):
        if entry.isdigit() and str(int(entry)) in by_gpu_index:
            found = by_gpu_index[str(int(entry))]
        elif not entry.isdigit():
            found = [t for t in targets if t.uuid.startswith(entry)]
            if not found and entry.startswith("GPU-"):  # a MIG-enabled GPU named by its own UUID
                found = [
                    t
                    for t in targets
                    if t.is_mig and _text(nvml.nvmlDeviceGetUUID(t.parent)).startswith(entry)
                ]
        else:
            found = []
        if not found:
            break
        chosen.extend(t for t in found if t not in chosen)
    return chosen
