"""Which physical GPUs a study's host GPUs are, and what a worker placed on some of them is given.

Placement works on positions 0..N-1 of the host's GPUs; those positions name entries of the parent's
CUDA_VISIBLE_DEVICES (indices, `GPU-` UUIDs, `MIG-` ids), so under `CUDA_VISIBLE_DEVICES=4,5,6,7` host
GPU 0 is physical GPU 4. Workers get the entries themselves, and `CUDA_DEVICE_ORDER=PCI_BUS_ID` so that
an index means the same GPU to CUDA as to NVML (CUDA's default order is fastest first). Pure functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from llmbench.errors import UserInputError
from llmbench.telemetry.gpus import visible_entries

PCI_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def host_devices(
    cuda_visible_devices: str | None, gpus: int | None, detected: Callable[[], int]
) -> list[str]:
    """The host's GPUs as CUDA_VISIBLE_DEVICES entries, position i being host GPU i.

    `gpus` (`--gpus N`) takes the first N of the parent's visible GPUs, or 0..N-1 where it sets none (fake
    ids on a CPU host); without it, the parent's visible GPUs, else the `detected()` count (NVML).
    """
    if cuda_visible_devices is None:
        count = gpus if gpus is not None else detected()
        return [str(i) for i in range(count)]
    entries = visible_entries(cuda_visible_devices)
    if gpus is None:
        return entries
    if gpus > len(entries):
        raise UserInputError(
            f"--gpus {gpus}, but CUDA_VISIBLE_DEVICES={cuda_visible_devices} names {len(entries)} GPU(s)",
            hint="ask for at most that many, or widen CUDA_VISIBLE_DEVICES",
        )
    return entries[:gpus]


def worker_devices(devices: Sequence[str], positions: Sequence[int]) -> list[str]:
    """The physical GPUs (parent entries) at a worker's host positions, in placement order."""
    return [devices[p] for p in positions]


def worker_environment(
    base: Mapping[str, str], devices: Sequence[str], positions: Sequence[int]
) -> dict[str, str]:
    """A worker's environment: the parent's, with only its GPUs visible (none for an empty set), in PCI order."""
    visible = ",".join(worker_devices(devices, positions))
    return dict(base) | PCI_ORDER | {"CUDA_VISIBLE_DEVICES": visible}
