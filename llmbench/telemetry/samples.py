"""Figures from NVML samples: per-GPU peaks and means, summed peaks, energy, the downsampled timeseries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

MIB = 1024 * 1024
MAX_TIMESERIES_POINTS = 200


@dataclass
class Sample:
    """One reading of every sampled GPU, in the sampler's device order."""

    t_ns: int
    vram_mib: list[float | None]
    util_pct: list[float | None]
    power_w: list[float | None]
    own_mib: list[float | None]  # memory of this run's processes; None where NVML cannot tell

    def columns(self, keep: list[int]) -> Sample:
        """The same reading for the GPUs at positions `keep` only."""
        return Sample(
            self.t_ns,
            [self.vram_mib[i] for i in keep],
            [self.util_pct[i] for i in keep],
            [self.power_w[i] for i in keep],
            [self.own_mib[i] for i in keep],
        )


class Marked(Protocol):
    marks: dict[str, float]


def mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def peak(samples: list[Sample], i: int, series: str = "vram_mib") -> float | None:
    vals = [v for s in samples if (v := getattr(s, series)[i]) is not None]
    return max(vals) if vals else None


def summed_peak(samples: list[Sample], n: int, series: str = "vram_mib") -> float | None:
    """Sum over GPUs of each GPU's peak (a sharded model's peaks line up in time)."""
    peaks = [p for i in range(n) if (p := peak(samples, i, series)) is not None]
    return sum(peaks) if peaks else None


def summed_mark(states: Sequence[Marked], label: str) -> float | None:
    values = [v for s in states if (v := s.marks.get(label)) is not None]
    return sum(values) if values else None


def own_mib(procs: list[Any] | None, pids: frozenset[int]) -> float | None:
    """MiB that NVML attributes to `pids` on one GPU; None where none of them is listed (not using
    this GPU, or a container whose PID namespace NVML does not see) or NVML withholds the figure."""
    if not procs:
        return None
    ours = [p.usedGpuMemory for p in procs if p.pid in pids and p.usedGpuMemory is not None]
    return sum(ours) / MIB if ours else None


def gpu_energy(
    start_mj: float | None, end_mj: float | None, samples: list[Sample], i: int
) -> tuple[float | None, str | None]:
    """GPU i's energy in joules and where it came from: the counter difference, else integrated power."""
    if start_mj is not None and end_mj is not None and end_mj >= start_mj:
        return (end_mj - start_mj) / 1000.0, "counter"
    integral = integrate_power(samples, i)
    return (integral, "power_integral") if integral is not None else (None, None)


def integrate_power(samples: list[Sample], i: int) -> float | None:
    """Trapezoidal integral of GPU i's power over the samples, in joules."""
    points = [(s.t_ns, p) for s in samples if (p := s.power_w[i]) is not None]
    if len(points) < 2:
        return None
    return sum((t1 - t0) / 1e9 * (p0 + p1) / 2 for (t0, p0), (t1, p1) in pairwise(points))


def downsample(samples: list[Sample], start_ns: int) -> dict[str, list[float]]:
    """At most MAX_TIMESERIES_POINTS buckets: first time, summed peak memory, mean util, mean summed power."""
    if not samples:
        return {}
    size = -(-len(samples) // MAX_TIMESERIES_POINTS)
    series: dict[str, list[float]] = {"t_s": [], "vram_mib": [], "util_pct": [], "power_w": []}
    for k in range(0, len(samples), size):
        bucket = samples[k : k + size]
        series["t_s"].append(round((bucket[0].t_ns - start_ns) / 1e9, 3))
        vram = [sum(v for v in s.vram_mib if v is not None) for s in bucket]
        series["vram_mib"].append(round(max(vram), 1))
        series["util_pct"].append(round(mean(mean(s.util_pct) for s in bucket) or 0.0, 1))
        series["power_w"].append(
            round(mean(sum(p for p in s.power_w if p is not None) for s in bucket) or 0.0, 1)
        )
    return series
