"""A results file as flat parameters, metrics and tags: the shape every experiment tracker takes.

Parameters say what was run (model, backend, suite, settings, fingerprints); metrics what came out
(each task metric with its interval, the performance figures); tags where it came from (run id, study).
Keys are `/`-separated for metrics (`gsm8k/accuracy_ci_low`) and `.`-separated for parameters
(`backend.dtype`); a tracker's own limits (key characters, value length) are its exporter's business.
Each sweep point and saturation search has a key of its own (task, workload, shape, load, arrivals,
cache setting): no two points of a run write the same metric.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from llmbench.export.base import ExportItem
from llmbench.results.schema import (
    Distribution,
    MetricValue,
    Performance,
    PerfPoint,
    RunResult,
    SaturationResult,
)

# The run-level performance figures that are single numbers (distributions are spread into their statistics).
_PERF_SCALARS = (
    "output_tokens_per_s",
    "total_output_tokens",
    "generation_wall_s",
    "load_time_s",
    "weights_bytes",
    "peak_vram_mib",
    "energy_j",
    "energy_per_output_token_j",
)
_SWEEP_SCALARS = (
    "output_tokens_per_s",
    "request_throughput_per_s",
    "goodput_per_s",
    "peak_vram_mib",
    "energy_per_output_token_j",
    "bandwidth_utilisation",
    "duration_s",
    "prefix_cache_hit_rate",
    "prompt_tokens_mean",
)
# A saturation search's findings for one shape (its probes are in the results file).
_SATURATION_SCALARS = ("rate_per_s", "goodput_per_s", "max_throughput_per_s")
_ENVIRONMENT = (
    "python",
    "platform",
    "machine",
    "hostname",
    "cpu_model",
    "driver",
    "cuda_driver",
    "git_commit",
)


def params(run: RunResult) -> dict[str, str]:
    """What was run: identity, model config, backend facts, settings, fingerprints, environment."""
    out: dict[str, str] = {
        "run_id": run.run_id,
        "model_name": run.model_name,
        "suite_name": run.suite_name,
        "suite_hash": run.suite_hash,
        "llmbench_version": run.llmbench_version,
        "created_at": run.created_at,
    }
    out |= _flat("model", run.model)
    out |= _flat("backend", run.backend.model_dump(exclude_none=True))
    out |= _flat("settings", run.settings.model_dump(exclude_none=True))
    out |= _flat("fingerprint", run.fingerprint)
    env = run.environment
    out |= {f"environment.{k}": str(v) for k in _ENVIRONMENT if (v := getattr(env, k)) is not None}
    if (device := env.device()) is not None:
        out["environment.device"] = device
    out |= _flat("environment.packages", {k: v for k, v in env.packages.items() if v is not None})
    for task in run.tasks:
        out[f"task.{task.name}.scorer"] = task.scorer
        out[f"task.{task.name}.primary_metric"] = task.primary_metric
        out |= _flat(f"task.{task.name}.fingerprint", task.fingerprint)
    return out


def metrics(run: RunResult) -> dict[str, float]:
    """What came out: the suite score, every task metric with its interval, counts, breakdowns, performance."""
    out: dict[str, float] = {}
    if run.suite_score is not None:
        out |= _metric("suite/score", run.suite_score)
    for task in run.tasks:
        for name, value in task.metrics.items():
            out |= _metric(f"{task.name}/{name}", value)
        out |= {f"{task.name}/count_{status}": float(n) for status, n in task.counts.items()}
        out[f"{task.name}/n_samples"] = float(task.n_samples)
        for group, values in task.breakdown.items():
            for name, value in values.items():
                out |= _metric(f"{task.name}/{group}/{name}", value)
    out |= _performance(run.performance)
    out["summary/samples"] = float(run.summary.samples)
    out["summary/errors"] = float(run.summary.errors)
    if run.summary.wall_s is not None:
        out["summary/wall_s"] = run.summary.wall_s
    if run.summary.cost is not None:  # at the per-token prices of the day in the results file
        out["summary/api_cost_usd"] = run.summary.cost.usd
    return {k: v for k, v in out.items() if math.isfinite(v)}


def tags(item: ExportItem) -> dict[str, str]:
    """Where the run came from: its run id and start (together what makes an export idempotent: a run id is
    a file name where the user chose it), file, study cell, variant."""
    run = item.run
    out = {
        "llmbench.run_id": run.run_id,
        "llmbench.created_at": run.created_at,  # with the run id, what tells this run from another of that name
        "llmbench.results_file": str(item.path),
        "llmbench.results_sha256": file_sha256(item.path),
        "llmbench.model": run.model_name,
        "llmbench.backend": run.backend.backend,
        "llmbench.suite": run.suite_name,
        "llmbench.finished": str(run.finished).lower(),
    }
    if run.settings.variant is not None:
        out["llmbench.variant"] = run.settings.variant
    if item.study is not None:
        out |= {
            "llmbench.study": item.study.name,
            "llmbench.study_cell": item.study.cell,
            "llmbench.study_hash": item.study.study_hash,
        }
    return out


def run_title(run: RunResult) -> str:
    """A run's name in a tracker's list: model, backend and suite (the run id is a tag)."""
    return f"{run.model_name} · {run.backend.backend} · {run.suite_name}"


def identity_hash(run: RunResult) -> str:
    """A short hash of what identifies a run (its id and start), for names that must be unique."""
    return hashlib.sha256(f"{run.run_id}\n{run.created_at}".encode()).hexdigest()[:8]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _flat(prefix: str, value: Any) -> dict[str, str]:
    """Nested mappings as dotted keys; lists and other values as text (JSON where it is not a string)."""
    return dict(_walk(prefix, value))


def _walk(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(f"{prefix}.{k}", v)
    elif value is not None:
        yield prefix, value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _metric(key: str, value: MetricValue) -> dict[str, float]:
    out = {key: value.value}
    for suffix, figure in (("ci_low", value.ci_low), ("ci_high", value.ci_high), ("stderr", value.stderr)):
        if figure is not None:
            out[f"{key}_{suffix}"] = figure
    return out


def _distribution(key: str, dist: Distribution) -> dict[str, float]:
    out = {
        f"{key}_{stat}": float(getattr(dist, stat)) for stat in ("mean", "p50", "p90", "p99", "min", "max")
    }
    for stat, (low, high) in dist.ci.items():
        out[f"{key}_{stat}_ci_low"] = low
        out[f"{key}_{stat}_ci_high"] = high
    return out


def _performance(perf: Performance) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_latency_ms", "per_request_output_tokens_per_s"):
        dist = getattr(perf, name)
        if dist is not None:
            out |= _distribution(f"perf/{name}", dist)
    out |= {f"perf/{k}": float(v) for k in _PERF_SCALARS if (v := getattr(perf, k)) is not None}
    for key, point in zip(unique_keys([sweep_key(p) for p in perf.sweep]), perf.sweep, strict=True):
        out |= _sweep_point(key, point)
    for key, result in zip(
        unique_keys([saturation_key(r) for r in perf.saturation]), perf.saturation, strict=True
    ):
        out |= _saturation(key, result)
    return out


def sweep_key(point: PerfPoint) -> str:
    """A sweep point's metric prefix: its task, then what sets it apart within the task, e.g.
    `sweep/shared_prefix/shared_prefix_in320_out8_c2_cache_off`, `sweep/bursty/in64_out8_r4_gamma0.5`,
    `sweep/replay/trace_synthetic-mooncake.jsonl` (older files have no task: `sweep/in512_out128_c16`)."""
    if point.workload == "trace":
        name = (point.trace or "").rsplit(" (", 1)[0]  # "NAME (FORMAT, N requests, time xS)"
        parts = ["trace" + (f"_{name}" if name else "")]
    else:
        parts = [
            *([point.workload] if point.workload else []),
            f"in{point.input_tokens}_out{point.output_tokens}",
        ]
        if point.concurrency is not None:
            parts.append(f"c{point.concurrency}")
        if point.request_rate is not None:
            parts.append(f"r{_short(point.request_rate)}")
            if point.arrival_process == "gamma" and point.burstiness is not None:
                parts.append(f"gamma{_short(point.burstiness)}")
            elif point.arrival_process is not None:
                parts.append(point.arrival_process)
    if point.workload is not None and point.prefix_caching is not None:
        parts.append("cache_on" if point.prefix_caching else "cache_off")
    return "/".join(["sweep", *([point.task] if point.task else []), "_".join(parts)])


def saturation_key(result: SaturationResult) -> str:
    """A saturation search's metric prefix: `saturation/TASK/in512_out128`."""
    shape = f"in{result.input_tokens}_out{result.output_tokens}"
    return "/".join(["saturation", *([result.task] if result.task else []), shape])


def unique_keys(keys: list[str]) -> list[str]:
    """`keys` with any repeat told apart by a count (`_2`, `_3`): no point overwrites another's
    metrics, even in a file whose points carry nothing that tells them apart (no task, same shape)."""
    taken = set(keys)
    out: list[str] = []
    for key in keys:
        if key in out:
            n = 2
            while f"{key}_{n}" in taken:
                n += 1
            key = f"{key}_{n}"
            taken.add(key)
        out.append(key)
    return out


def _short(value: float) -> str:
    """A number for a key: 4, 0.5, 1e6 (no `+`, which trackers' key characters leave out)."""
    return f"{value:g}".replace("e+", "e")


def _sweep_point(key: str, point: PerfPoint) -> dict[str, float]:
    out = {f"{key}/{k}": float(v) for k in _SWEEP_SCALARS if (v := getattr(point, k)) is not None}
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_latency_ms"):
        dist = getattr(point, name)
        if dist is not None:
            out[f"{key}/{name}_p50"] = dist.p50
            out[f"{key}/{name}_p99"] = dist.p99
    return out


def _saturation(key: str, result: SaturationResult) -> dict[str, float]:
    out = {f"{key}/{k}": float(v) for k in _SATURATION_SCALARS if (v := getattr(result, k)) is not None}
    out[f"{key}/probes"] = float(len(result.probes))
    return out
