"""A stand-in for `torch` with a `torch.cuda` whose only missing piece is the GPU itself.

Same function names and behaviour as torch 2.x's: `is_available()` and `device_count()` answer from the
driver without initialising CUDA; until something initialises it (`init()`, or a tensor put on a
device) `reset_peak_memory_stats` raises torch's RuntimeError and the `max_memory_*` readers give 0,
as `memory_stats` is empty then. `OutOfMemoryError` is a RuntimeError, as in torch.
Install it with `monkeypatch.setitem(sys.modules, "torch", fake_torch(devices=2))`.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace


class OutOfMemoryError(RuntimeError):
    """torch.cuda.OutOfMemoryError (torch.OutOfMemoryError): a RuntimeError subclass."""


class FakeCuda:
    """`torch.cuda` on a host with `devices` GPUs and an allocator that counts what tests allocate."""

    OutOfMemoryError = OutOfMemoryError

    def __init__(self, devices: int, uuids: list[str] | None = None) -> None:
        self.devices = devices
        self.uuids = uuids or [f"{i:08x}-0000-0000-0000-000000000000" for i in range(devices)]
        self.initialized = False
        self.allocated = [0] * devices
        self.peak_allocated = [0] * devices
        self.peak_reserved = [0] * devices
        self.empty_cache_calls = 0

    def is_available(self) -> bool:
        return self.devices > 0

    def device_count(self) -> int:
        return self.devices

    def is_initialized(self) -> bool:
        return self.initialized

    def get_device_properties(self, device: int) -> SimpleNamespace:
        """Like _CudaDeviceProperties: name, total_memory, and a uuid printed without "GPU-" (initialises CUDA)."""
        self.init()
        self._check(device)
        return SimpleNamespace(
            name="NVIDIA H100 80GB HBM3", total_memory=80 * 1024**3, uuid=self.uuids[device]
        )

    def init(self) -> None:
        if not self.devices:
            raise RuntimeError("Found no NVIDIA driver on your system.")
        self.initialized = True

    def _check(self, device: int) -> None:
        if not self.initialized:
            raise RuntimeError("Invalid device argument : did you call init?")
        if not 0 <= device < self.devices:
            raise RuntimeError(f"Invalid device argument {device}")

    def allocate(self, device: int, nbytes: int) -> None:
        """What putting a tensor of `nbytes` on cuda:`device` does to the counters (initialises CUDA)."""
        self.init()
        self._check(device)
        self.allocated[device] += nbytes
        self.peak_allocated[device] = max(self.peak_allocated[device], self.allocated[device])
        self.peak_reserved[device] = max(self.peak_reserved[device], self.allocated[device] + 2 * 1024**2)

    def free(self, device: int, nbytes: int) -> None:
        self.allocated[device] -= nbytes

    def reset_peak_memory_stats(self, device: int | None = None) -> None:
        d = device or 0
        self._check(d)
        self.peak_allocated[d] = self.allocated[d]
        self.peak_reserved[d] = self.allocated[d]

    def max_memory_allocated(self, device: int | None = None) -> int:
        return self.peak_allocated[device or 0] if self.initialized else 0

    def max_memory_reserved(self, device: int | None = None) -> int:
        return self.peak_reserved[device or 0] if self.initialized else 0

    def synchronize(self, device: int | None = None) -> None:
        if self.initialized:
            self._check(device or 0)

    def empty_cache(self) -> None:
        self.empty_cache_calls += 1


def fake_torch(devices: int = 1, uuids: list[str] | None = None) -> ModuleType:
    """A module named torch whose `cuda` is a FakeCuda (CUDA's devices in its order: `uuids`, no "GPU-")."""
    torch = ModuleType("torch")
    torch.__version__ = "2.11.0+cu130"  # type: ignore[attr-defined]
    torch.cuda = FakeCuda(devices, uuids)  # type: ignore[attr-defined]
    torch.OutOfMemoryError = OutOfMemoryError  # type: ignore[attr-defined]
    return torch
