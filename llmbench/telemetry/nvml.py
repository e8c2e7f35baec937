"""NVML sampler: a background thread that reads GPU memory, utilisation, power and energy during a run.

Peak memory is the maximum of samples taken every 1/hz seconds (plus one at every mark, window edge
and stop), so any spike longer than the sample period is caught. Energy is the difference of the
driver's total-energy counter (mJ) where the GPU has one, else the integral of the sampled power.
Beside NVML's device-wide "used" memory (everything on the GPU, other users' processes included),
each sample sums the memory NVML attributes to this run's own processes, where NVML can see them.
Without pynvml or an NVIDIA GPU nothing runs and `stop()` returns a summary that says why.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from types import ModuleType, TracebackType
from typing import Any

from llmbench.results.schema import TelemetrySummary
from llmbench.telemetry.gpus import GpuTarget, load_pynvml, visible_targets
from llmbench.telemetry.processes import ProcessTree
from llmbench.telemetry.samples import (
    MIB,
    Sample,
    downsample,
    gpu_energy,
    mean,
    own_mib,
    peak,
    summed_mark,
    summed_peak,
)

log = logging.getLogger(__name__)


@dataclass
class TelemetryWindow:
    """Peak memory and energy over a sub-interval of a sampled run; filled when the window closes."""

    peak_vram_mib: float | None = None
    energy_j: float | None = None
    duration_s: float | None = None


@dataclass
class _GpuState:
    energy_start_mj: float | None = None
    energy_supported: bool = True
    util_supported: bool = True
    power_supported: bool = True
    processes_supported: bool = True
    errors: int = 0
    last_error: str | None = None
    marks: dict[str, float] = field(default_factory=dict)


class NvmlSampler:
    """Samples every visible GPU at `hz` in a background thread; see the module docstring.

    `device_indices` picks positions in the visible list (what torch calls cuda:N); None takes all.
    Once the model is loaded, `keep_run_devices` narrows sampling to the GPUs the run uses.
    """

    def __init__(self, hz: float = 20.0, device_indices: list[int] | None = None) -> None:
        self.hz = hz
        self.device_indices = device_indices
        self.unavailable: str | None = None
        self.targets: list[GpuTarget] = []
        self._nvml: ModuleType | None = None
        self._state: list[_GpuState] = []
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_ns = 0
        self._summary: TelemetrySummary | None = None
        self.run_gpu_uuids: list[str] | None = None  # None: not known, every visible GPU is sampled
        self._tree = ProcessTree()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> NvmlSampler:
        """Find the GPUs, read the energy counters and start the sampling thread (no-op without NVML)."""
        nvml, reason = load_pynvml()
        if nvml is None:
            self.unavailable = reason
            return self
        try:
            targets = visible_targets(nvml, os.environ.get("CUDA_VISIBLE_DEVICES"))
            if self.device_indices is not None:
                targets = [targets[i] for i in self.device_indices if 0 <= i < len(targets)]
        except nvml.NVMLError as exc:
            targets, self.unavailable = [], f"NVML could not list GPUs: {exc}"
        if not targets:
            self.unavailable = self.unavailable or "no NVIDIA GPU visible (check CUDA_VISIBLE_DEVICES)"
            with suppress(nvml.NVMLError):
                nvml.nvmlShutdown()
            return self
        self._nvml, self.targets = nvml, targets
        self._state = [_GpuState() for _ in targets]
        for i, state in enumerate(self._state):
            state.energy_start_mj = self._energy_mj(i)
        self._start_ns = time.perf_counter_ns()
        self._sample_once()
        self._thread = threading.Thread(target=self._loop, name="llmbench-nvml", daemon=True)
        self._thread.start()
        return self

    def mark(self, label: str) -> None:
        """Record each GPU's memory now under `label` ("loaded": weights in memory, before any request)."""
        if self._nvml is None:
            return
        sample = self._safe_sample()
        if sample is None:
            return
        for state, vram in zip(self._state, sample.vram_mib, strict=True):
            if vram is not None:
                state.marks[label] = vram

    def keep_run_devices(self, declared: list[int] | None) -> None:
        """Sample only the run's GPUs from now on: the positions the backend declares (cuda:N) and those
        where NVML lists the run's processes (an engine's or managed server's). With neither, every
        visible GPU stays. Samples so far keep those GPUs' columns: memory before load stays known."""
        if self._nvml is None:
            return
        latest = self._safe_sample()
        attributed = [i for i, mib in enumerate(latest.own_mib) if mib] if latest is not None else []
        keep = sorted({*(declared or []), *attributed} & set(range(len(self.targets))))
        if not keep:
            return
        with self._lock:
            self.targets = [self.targets[i] for i in keep]
            self._state = [self._state[i] for i in keep]
            self._samples = [s.columns(keep) for s in self._samples]
        self.run_gpu_uuids = [t.uuid for t in self.targets]

    @contextmanager
    def window(self) -> Iterator[TelemetryWindow]:
        """Peak memory and energy over the `with` block (a perf sweep point); None figures without NVML."""
        result = TelemetryWindow()
        first = self._safe_sample() if self._nvml is not None and self.running else None
        if first is None:
            yield result
            return
        energy_start = [self._energy_mj(i) for i in range(len(self.targets))]
        try:
            yield result
        finally:
            last = self._safe_sample() or first
            with self._lock:
                samples = [s for s in self._samples if first.t_ns <= s.t_ns <= last.t_ns]
            energy_end = [self._energy_mj(i) for i in range(len(self.targets))]
            result.duration_s = (last.t_ns - first.t_ns) / 1e9
            result.peak_vram_mib = summed_peak(samples, len(self.targets))
            result.energy_j = self._energy_j(energy_start, energy_end, samples)

    def stop(self) -> TelemetrySummary:
        """Stop sampling and summarise; calling it again returns the same summary."""
        if self._summary is not None:
            return self._summary
        if self._nvml is None:
            self._summary = TelemetrySummary(unavailable=self.unavailable or "sampler was never started")
            return self._summary
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 5 / self.hz))
        self._safe_sample()
        energy_end = [self._energy_mj(i) for i in range(len(self.targets))]
        self._summary = self._summarise(energy_end)
        with suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()
        return self._summary

    def __enter__(self) -> NvmlSampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def summary(self) -> TelemetrySummary | None:
        return self._summary

    # -- sampling ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        period = 1.0 / self.hz
        while not self._stop_event.wait(period):
            self._safe_sample()

    def _safe_sample(self) -> Sample | None:
        """A sample, or None after logging an unexpected error: telemetry never fails a run."""
        try:
            return self._sample_once()
        except Exception as exc:
            log.warning("NVML sampler: %s", exc)
            return None

    def _read(self, state: _GpuState, fn: str, *args: Any) -> Any:
        """One NVML call for the GPU whose state is `state`; errors are counted and give None."""
        nvml = self._nvml
        assert nvml is not None
        try:
            return getattr(nvml, fn)(*args)
        except nvml.NVMLError as exc:
            if isinstance(exc, nvml.NVMLError_NotSupported):
                if fn == "nvmlDeviceGetUtilizationRates":
                    state.util_supported = False
                elif fn == "nvmlDeviceGetPowerUsage":
                    state.power_supported = False
                elif fn == "nvmlDeviceGetTotalEnergyConsumption":
                    state.energy_supported = False
                elif fn == "nvmlDeviceGetComputeRunningProcesses":
                    state.processes_supported = False
            else:
                state.errors += 1
                state.last_error = f"{fn}: {exc}"
            return None

    def _sample_once(self) -> Sample:
        vram: list[float | None] = []
        util: list[float | None] = []
        power: list[float | None] = []
        own: list[float | None] = []
        pids = self._tree.pids()
        with self._lock:  # keep_run_devices may swap both meanwhile
            targets, states = self.targets, self._state
        for target, state in zip(targets, states, strict=True):
            mem = self._read(state, "nvmlDeviceGetMemoryInfo", target.handle)
            vram.append(mem.used / MIB if mem is not None else None)
            rates = (
                self._read(state, "nvmlDeviceGetUtilizationRates", target.parent)
                if state.util_supported and not target.is_mig
                else None
            )
            util.append(float(rates.gpu) if rates is not None else None)
            mw = (
                self._read(state, "nvmlDeviceGetPowerUsage", target.parent)
                if state.power_supported and target.owns_power
                else None
            )
            power.append(mw / 1000.0 if mw is not None else None)
            procs = (
                self._read(state, "nvmlDeviceGetComputeRunningProcesses", target.handle)
                if state.processes_supported
                else None
            )
            own.append(own_mib(procs, pids))
        sample = Sample(time.perf_counter_ns(), vram, util, power, own)
        with self._lock:
            if targets is self.targets:  # else a reading of GPUs no longer sampled
                self._samples.append(sample)
        return sample

    def _energy_mj(self, i: int) -> float | None:
        target, state = self.targets[i], self._state[i]
        if not (state.energy_supported and target.owns_power):
            return None
        value = self._read(state, "nvmlDeviceGetTotalEnergyConsumption", target.parent)
        return float(value) if value is not None else None

    def _energy_j(
        self, start: list[float | None], end: list[float | None], samples: list[Sample]
    ) -> float | None:
        """Summed energy: counter difference per GPU where both reads worked, else integrated power."""
        per_gpu = [
            gpu_energy(start[i], end[i], samples, i)[0] for i, t in enumerate(self.targets) if t.owns_power
        ]
        known = [e for e in per_gpu if e is not None]
        return sum(known) if known else None

    def _summarise(self, energy_end: list[float | None]) -> TelemetrySummary:
        with self._lock:
            samples = list(self._samples)
        n = len(self.targets)
        gpus: list[dict[str, Any]] = []
        for i, (target, state) in enumerate(zip(self.targets, self._state, strict=True)):
            peak_mib = peak(samples, i)
            own_peak = peak(samples, i, "own_mib")
            energy, energy_source = gpu_energy(state.energy_start_mj, energy_end[i], samples, i)
            gpus.append(
                {
                    "index": target.label,
                    "uuid": target.uuid,
                    "name": target.name,
                    "mig": target.is_mig,
                    "peak_vram_mib": peak_mib,
                    "peak_process_vram_mib": own_peak,
                    "vram_before_load_mib": state.marks.get("before_load"),
                    "vram_after_load_mib": state.marks.get("loaded"),
                    "marks_mib": dict(state.marks),
                    "mean_util_pct": mean(s.util_pct[i] for s in samples),
                    "mean_power_w": mean(s.power_w[i] for s in samples),
                    "energy_j": energy if target.owns_power else None,
                    "energy_source": energy_source if target.owns_power else None,
                    "errors": state.errors,
                    "last_error": state.last_error,
                }
            )
        powers = [g["mean_power_w"] for g in gpus if g["mean_power_w"] is not None]
        return TelemetrySummary(
            source="nvml",
            sample_hz=self.hz,
            gpus=gpus,
            peak_vram_mib=summed_peak(samples, n),
            peak_process_vram_mib=summed_peak(samples, n, "own_mib"),
            vram_before_load_mib=summed_mark(self._state, "before_load"),
            vram_after_load_mib=summed_mark(self._state, "loaded"),
            mean_gpu_util_pct=mean(g["mean_util_pct"] for g in gpus),
            mean_power_w=sum(powers) if powers else None,
            energy_j=self._energy_j([s.energy_start_mj for s in self._state], energy_end, samples),
            timeseries=downsample(samples, self._start_ns),
            run_gpu_uuids=self.run_gpu_uuids,
            sampled_gpu_uuids=[t.uuid for t in self.targets],
        )
