"""From the parts of a finished run to the results file's model: metrics, performance, fingerprints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from llmbench import __version__
from llmbench.backends.base import BackendInfo
from llmbench.config.models import ModelConfig
from llmbench.config.suite import Suite
from llmbench.hashing import stable_hash
from llmbench.results.schema import (
    Environment,
    Performance,
    PerfPoint,
    RunResult,
    SampleRecord,
    SaturationResult,
    Settings,
    Summary,
    TaskResult,
    TelemetrySummary,
)
from llmbench.run.aggregate import performance, suite_score
from llmbench.run.scoring import is_failure
from llmbench.run.spending import price_result
from llmbench.types import Completion


@dataclass
class Generated:
    """What this session's quality generation produced and cost; resumed samples are not in it.

    Throughput and energy per token divide these figures by each other, so they describe the
    same requests: the ones generated now, inside the timed (and NVML-metered) windows.
    """

    wall_s: float = 0.0
    energy_j: float | None = None
    output_tokens: int = 0
    itl_ms: list[list[float]] = field(default_factory=list)  # per request: its gaps are not independent
    metered: bool = True  # every window had an energy figure

    def add(self, completion: Completion) -> None:
        if completion.error is None:
            self.output_tokens += completion.output_tokens or 0
            self.itl_ms.append(completion.itl_ms)

    def add_window(self, wall_s: float, energy_j: float | None) -> None:
        self.wall_s += wall_s
        if energy_j is None:
            self.metered = False
        else:
            self.energy_j = (self.energy_j or 0.0) + energy_j


@dataclass
class RunParts:
    """Everything the runner gathered, handed over in one piece."""

    suite: Suite
    model: ModelConfig
    run_id: str
    command: list[str]
    settings: dict[str, Any]
    info: BackendInfo
    environment: dict[str, Any]
    tasks: list[TaskResult]
    records: list[SampleRecord]
    sweep: list[PerfPoint]
    generated: Generated
    telemetry: TelemetrySummary
    saturation: list[SaturationResult] = field(default_factory=list)


def assemble(parts: RunParts) -> RunResult:
    """The results of a run, ready to be written."""
    info = parts.info
    result = RunResult(
        run_id=parts.run_id,
        llmbench_version=__version__,
        command=parts.command,
        model=parts.model.model_dump(mode="json"),
        model_name=parts.model.name,
        backend=info,
        suite=parts.suite.config.model_dump(mode="json"),
        suite_name=parts.suite.name,
        suite_hash=parts.suite.content_hash,
        settings=Settings.model_validate(parts.settings),
        environment=Environment.model_validate(parts.environment),
        fingerprint=run_fingerprint(parts.suite, info, parts.tasks, parts.records),
        tasks=parts.tasks,
        suite_score=suite_score(parts.tasks),
        performance=run_performance(parts),
        samples=parts.records,
        summary=Summary(
            samples=len(parts.records),
            errors=sum(1 for r in parts.records if is_failure(r)),
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        ),
    )
    price_result(result, parts.model.prices)
    return result


def run_performance(parts: RunParts) -> Performance:
    """Latency over every sample; throughput and energy over what this session generated."""
    gen, telemetry, info = parts.generated, parts.telemetry, parts.info
    perf = performance(parts.records, gen.itl_ms, gen.wall_s, gen.output_tokens)
    perf.load_time_s = info.load_time_s
    perf.weights_bytes = info.weights_bytes
    perf.telemetry = telemetry
    perf.sweep = parts.sweep
    perf.saturation = parts.saturation
    perf.peak_vram_mib = telemetry.peak_vram_mib
    perf.peak_vram_reason = (
        None if perf.peak_vram_mib is not None else telemetry.unavailable or "no telemetry"
    )
    perf.peak_vram_note = vram_note(info) if perf.peak_vram_mib is not None else None
    if gen.metered and gen.energy_j is not None:
        perf.energy_j = gen.energy_j
        if gen.output_tokens:
            perf.energy_per_output_token_j = gen.energy_j / gen.output_tokens
    return perf


def vram_note(info: BackendInfo) -> str | None:
    """How to read NVML's peak for this backend, where it is not simply what the model needed."""
    if info.preallocated_vram_share is not None:
        return (
            f"{info.backend} reserves {info.preallocated_vram_share:.0%} of each GPU's memory at start-up "
            f"(weights, activations and a KV cache for {info.kv_cache_tokens} tokens): the peak is that "
            "reservation, not what the requests needed; compare weights_bytes and backend.kv_cache_tokens instead"
        )
    if info.gpus is None:
        return f"measured on this host; the server at {info.server_url or 'its address'} may run elsewhere"
    return None


def run_fingerprint(
    suite: Suite, info: BackendInfo, tasks: Sequence[TaskResult], records: Sequence[SampleRecord]
) -> dict[str, str]:
    """What must match for two runs' numbers to be comparable, each as a short hash or a name."""
    return {
        "suite": suite.content_hash,
        "data": stable_hash([t.fingerprint.get("data") for t in tasks]),
        "chat_template": info.chat_template_hash or "none",
        "generation": stable_hash([t.fingerprint.get("generation") for t in tasks]),
        "prompt_template": stable_hash([t.fingerprint.get("prompt_template") for t in tasks]),
        "prompt_tokens": prompt_tokens_hash(records),
        "backend": info.backend,
        "dtype": info.dtype or "unknown",
        "batch_size": str(info.max_batch_size or "unknown"),
    }


def prompt_tokens_hash(records: Sequence[SampleRecord]) -> str:
    """One hash over every sample's exact prompt (token ids, or the request for remote APIs)."""
    return stable_hash(sorted(f"{r.task}/{r.id}/{r.sample_index}:{r.prompt_hash}" for r in records))
