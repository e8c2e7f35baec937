"""A stand-in for `pynvml` (nvidia-ml-py) on machines without an NVIDIA GPU, for the telemetry tests.

Same function names, constants, error classes and error behaviour as the real module (calls before
`nvmlInit` raise NVMLError_Uninitialized, a missing library raises NVMLError_LibraryNotFound,
unsupported queries raise NVMLError_NotSupported), over scripted GPUs: memory follows a curve
indexed by the number of memory reads, and the energy counter is whatever the test sets.
Install it with `sys.modules["pynvml"] = fake_pynvml` after `configure(...)`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999

NVML_DEVICE_MIG_DISABLE = 0
NVML_DEVICE_MIG_ENABLE = 1
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_TEMPERATURE_GPU = 0

_MESSAGES = {
    NVML_ERROR_UNINITIALIZED: "Uninitialized",
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
    NVML_ERROR_UNKNOWN: "Unknown Error",
}


class NVMLError(Exception):
    """Like pynvml's: `NVMLError(code)` builds the subclass for that code, which carries `.value`."""

    _valClassMapping: dict[int, type[NVMLError]] = {}  # noqa: RUF012 - same name as in pynvml
    value: int

    def __new__(cls, value: int) -> NVMLError:
        if cls is NVMLError:
            cls = NVMLError._valClassMapping.get(value, cls)
        obj = Exception.__new__(cls)
        obj.value = value  # type: ignore[attr-defined]
        return obj

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NVMLError) and self.value == other.value

    __hash__ = Exception.__hash__


def _error_class(name: str, code: int) -> type[NVMLError]:
    """A subclass per code that can also be raised bare, `NVMLError_NotSupported()`, as in pynvml."""

    def new(cls: type[NVMLError], value: int = code) -> NVMLError:
        obj = Exception.__new__(cls)
        obj.value = value  # type: ignore[attr-defined]
        return obj

    cls = type(name, (NVMLError,), {"__new__": new})
    NVMLError._valClassMapping[code] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", NVML_ERROR_UNINITIALIZED)
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", NVML_ERROR_INVALID_ARGUMENT)
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", NVML_ERROR_NOT_SUPPORTED)
NVMLError_NoPermission = _error_class("NVMLError_NoPermission", NVML_ERROR_NO_PERMISSION)
NVMLError_NotFound = _error_class("NVMLError_NotFound", NVML_ERROR_NOT_FOUND)
NVMLError_DriverNotLoaded = _error_class("NVMLError_DriverNotLoaded", NVML_ERROR_DRIVER_NOT_LOADED)
NVMLError_LibraryNotFound = _error_class("NVMLError_LibraryNotFound", NVML_ERROR_LIBRARY_NOT_FOUND)
NVMLError_GpuIsLost = _error_class("NVMLError_GpuIsLost", NVML_ERROR_GPU_IS_LOST)
NVMLError_Unknown = _error_class("NVMLError_Unknown", NVML_ERROR_UNKNOWN)

MIB = 1024 * 1024


@dataclass(eq=False)
class FakeGpu:
    """One scripted GPU (or MIG instance); the object itself serves as its NVML handle."""

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    memory_total_mib: float = 81559.0
    memory_used_mib: Sequence[float] = (1024.0,)  # value at the k-th memory read; the last one holds
    util_pct: int = 40
    power_mw: int | None = 300_000  # None: NOT_SUPPORTED, like GPUs without a power sensor
    energy_mj: int | None = 0  # the total-energy counter; None: NOT_SUPPORTED (pre-Volta)
    max_mem_clock_mhz: int = 2619
    bus_width_bits: int = 5120
    mig_capable: bool = False
    mig_enabled: bool = False
    mig_devices: list[FakeGpu | None] = field(default_factory=list)  # None: an empty MIG slot
    lost_after_reads: int | None = None  # memory reads after which the GPU "falls off the bus"
    processes: list[tuple[int, float | None]] = field(default_factory=list)  # (pid, MiB or None: withheld)
    processes_supported: bool = True
    memory_reads: int = 0
    parent: FakeGpu | None = None


_lock = threading.Lock()
_state: dict[str, Any] = {
    "gpus": [],
    "init_count": 0,
    "library": True,
    "driver": True,
    "driver_version": "580.159.04",
    "cuda": 13000,
    "process_names": {},
}


def configure(
    gpus: Sequence[FakeGpu] = (),
    *,
    library_present: bool = True,
    driver_loaded: bool = True,
    process_names: dict[int, str] | None = None,
) -> list[FakeGpu]:
    """Reset the fake to these GPUs (and whether the library and driver are there, and the names of
    the processes `nvmlSystemGetProcessName` knows)."""
    for gpu in gpus:
        for child in gpu.mig_devices:
            if child is not None:
                child.parent = gpu
    _state.update(
        gpus=list(gpus),
        init_count=0,
        library=library_present,
        driver=driver_loaded,
        process_names=dict(process_names or {}),
    )
    return list(gpus)


def _raise(code: int) -> None:
    raise NVMLError(code)


def _check(handle: Any = None) -> None:
    if _state["init_count"] == 0:
        _raise(NVML_ERROR_UNINITIALIZED)
    if handle is not None and not isinstance(handle, FakeGpu):
        _raise(NVML_ERROR_INVALID_ARGUMENT)
    if isinstance(handle, FakeGpu):
        gpu = handle.parent or handle
        if gpu.lost_after_reads is not None and gpu.memory_reads >= gpu.lost_after_reads:
            _raise(NVML_ERROR_GPU_IS_LOST)


def nvmlInit() -> None:
    if not _state["library"]:
        _raise(NVML_ERROR_LIBRARY_NOT_FOUND)
    if not _state["driver"]:
        _raise(NVML_ERROR_DRIVER_NOT_LOADED)
    _state["init_count"] += 1


def nvmlShutdown() -> None:
    _check()
    _state["init_count"] -= 1


def nvmlSystemGetDriverVersion() -> str:
    _check()
    return str(_state["driver_version"])


def nvmlSystemGetCudaDriverVersion() -> int:
    _check()
    return int(_state["cuda"])


def nvmlSystemGetProcessName(pid: int) -> str:
    """The process's executable path as the driver knows it; NOT_FOUND for a pid it does not know."""
    _check()
    if pid not in _state["process_names"]:
        _raise(NVML_ERROR_NOT_FOUND)
    return str(_state["process_names"][pid])


def nvmlDeviceGetCount() -> int:
    _check()
    return len(_state["gpus"])


def nvmlDeviceGetHandleByIndex(index: int) -> FakeGpu:
    _check()
    if not 0 <= index < len(_state["gpus"]):
        _raise(NVML_ERROR_INVALID_ARGUMENT)
    return _state["gpus"][index]


def nvmlDeviceGetHandleByUUID(uuid: str | bytes) -> FakeGpu:
    _check()
    wanted = uuid.decode() if isinstance(uuid, bytes) else uuid
    for gpu in _state["gpus"]:
        for candidate in [gpu, *gpu.mig_devices]:
            if candidate is not None and candidate.uuid == wanted:
                return candidate
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetIndex(handle: FakeGpu) -> int:
    _check(handle)
    return list(_state["gpus"]).index(handle.parent or handle)


def nvmlDeviceGetName(handle: FakeGpu) -> str:
    _check(handle)
    return handle.name


def nvmlDeviceGetUUID(handle: FakeGpu) -> str:
    _check(handle)
    return handle.uuid


def nvmlDeviceGetMemoryInfo(handle: FakeGpu, version: int | None = None) -> SimpleNamespace:
    """Like c_nvmlMemory_t: total, free, used in bytes; `used` follows the scripted curve."""
    _check(handle)
    gpu = handle.parent or handle
    with _lock:
        k = handle.memory_reads
        handle.memory_reads += 1
        if gpu is not handle:
            gpu.memory_reads += 1
    curve = handle.memory_used_mib
    used = int(curve[min(k, len(curve) - 1)] * MIB)
    total = int(handle.memory_total_mib * MIB)
    return SimpleNamespace(total=total, free=total - used, used=used)


def nvmlDeviceGetComputeRunningProcesses(handle: FakeGpu) -> list[SimpleNamespace]:
    """Like c_nvmlProcessInfo_t: pid and usedGpuMemory in bytes (None when the driver withholds it)."""
    _check(handle)
    if not handle.processes_supported:
        _raise(NVML_ERROR_NOT_SUPPORTED)
    return [
        SimpleNamespace(pid=pid, usedGpuMemory=None if mib is None else int(mib * MIB))
        for pid, mib in handle.processes
    ]


def nvmlDeviceGetUtilizationRates(handle: FakeGpu) -> SimpleNamespace:
    _check(handle)
    if handle.parent is not None:  # MIG instances have no utilisation counters
        _raise(NVML_ERROR_NOT_SUPPORTED)
    return SimpleNamespace(gpu=handle.util_pct, memory=handle.util_pct // 2)


def nvmlDeviceGetPowerUsage(handle: FakeGpu) -> int:
    _check(handle)
    if handle.parent is not None or handle.power_mw is None:
        _raise(NVML_ERROR_NOT_SUPPORTED)
    return int(handle.power_mw)  # type: ignore[arg-type]


def nvmlDeviceGetTotalEnergyConsumption(handle: FakeGpu) -> int:
    _check(handle)
    if handle.parent is not None or handle.energy_mj is None:
        _raise(NVML_ERROR_NOT_SUPPORTED)
    return int(handle.energy_mj)  # type: ignore[arg-type]


def nvmlDeviceGetMaxClockInfo(handle: FakeGpu, clock_type: int) -> int:
    _check(handle)
    if clock_type != NVML_CLOCK_MEM:
        return 1980
    return handle.max_mem_clock_mhz


def nvmlDeviceGetMemoryBusWidth(handle: FakeGpu) -> int:
    _check(handle)
    return handle.bus_width_bits


def nvmlDeviceGetMigMode(handle: FakeGpu) -> list[int]:
    _check(handle)
    if not handle.mig_capable:
        _raise(NVML_ERROR_NOT_SUPPORTED)
    mode = NVML_DEVICE_MIG_ENABLE if handle.mig_enabled else NVML_DEVICE_MIG_DISABLE
    return [mode, mode]


def nvmlDeviceGetMaxMigDeviceCount(handle: FakeGpu) -> int:
    _check(handle)
    return len(handle.mig_devices) if handle.mig_capable else 0


def nvmlDeviceGetMigDeviceHandleByIndex(handle: FakeGpu, index: int) -> FakeGpu:
    _check(handle)
    if not 0 <= index < len(handle.mig_devices):
        _raise(NVML_ERROR_INVALID_ARGUMENT)
    child = handle.mig_devices[index]
    if child is None:
        _raise(NVML_ERROR_NOT_FOUND)
    return child  # type: ignore[return-value]


def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle: FakeGpu) -> FakeGpu:
    _check(handle)
    if handle.parent is None:
        _raise(NVML_ERROR_INVALID_ARGUMENT)
    return handle.parent  # type: ignore[return-value]
