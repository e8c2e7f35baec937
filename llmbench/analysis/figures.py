"""The figures a gate judges in one run, keyed so that runs can be matched: each task's primary metric, the
suite score, the run's throughput, VRAM, energy and load time, and each sweep point's TTFT, TPOT,
throughput, goodput and VRAM. Latency is judged at sweep points only: the run's own latencies are those of
its quality samples (batched as the quality loop batches them, answers of any length), shown, not gated.
A percentile of fewer requests than it needs (`significance.percentile_shortfall`) is withheld, not judged.

A sweep point is matched by its traffic (task, workload, lengths, concurrency or rate, arrivals, prefix
caching, trace): only points that send the same requests the same way are compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmbench.analysis.compare import PERF_ROWS, QUALITY_RUN_LATENCY, perf_value
from llmbench.analysis.direction import higher_is_better
from llmbench.analysis.significance import percentile_shortfall
from llmbench.results.schema import Distribution, PerfPoint, RunResult

RUN_LEVEL = "(performance)"  # the `where` of a run's own performance rows
SUITE = "(suite)"
# What tells one sweep point from another of the same run: its task, workload and traffic, not only its
# shape (a shared prefix's points with prefix caching on and off have the same lengths and concurrency).
POINT_IDENTITY = (
    "task",
    "workload",
    "input_tokens",
    "output_tokens",
    "concurrency",
    "request_rate",
    "arrival_process",
    "burstiness",
    "prefix_caching",
    "trace",
)
# (row name, attribute of PerfPoint, statistic) gated at each sweep point; goodput exists only with an SLO.
POINT_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("ttft_ms p50", "ttft_ms", "p50"),
    ("ttft_ms p90", "ttft_ms", "p90"),
    ("tpot_ms p50", "tpot_ms", "p50"),
    ("output_tokens_per_s", "output_tokens_per_s", None),
    ("goodput_per_s", "goodput_per_s", None),
    ("peak_vram_mib", "peak_vram_mib", None),
)


@dataclass(frozen=True)
class Figure:
    """One gated figure: `where` is a task, "(suite)", "(performance)" or a sweep point's label."""

    section: str  # "quality" or "performance"
    where: str
    metric: str
    value: float

    @property
    def key(self) -> tuple[str, str]:
        return (self.where, self.metric)

    @property
    def higher_is_better(self) -> bool:
        return bool(higher_is_better(self.metric))


def point_key(point: PerfPoint) -> tuple[Any, ...]:
    """The traffic that identifies a sweep point across runs and repeats."""
    return tuple(getattr(point, name) for name in POINT_IDENTITY)


def point_label(point: PerfPoint) -> str:
    """A sweep point in words: "point chat in=512 out=128 conc=4" or "... rate=2/s poisson"."""
    parts = ["point"] + ([point.task] if point.task else []) + ([point.workload] if point.workload else [])
    parts += [f"in={point.input_tokens}", f"out={point.output_tokens}"]
    if point.concurrency is not None:
        parts.append(f"conc={point.concurrency}")
    if point.request_rate is not None:
        parts.append(f"rate={point.request_rate:g}/s")
    if point.arrival_process:
        shape = f"({point.burstiness:g})" if point.burstiness is not None else ""
        parts.append(f"{point.arrival_process}{shape}")
    if point.prefix_caching is not None:
        parts.append("cache=on" if point.prefix_caching else "cache=off")
    if point.trace:
        parts.append(f"trace={point.trace}")
    return " ".join(parts)


def sweep_points(run: RunResult) -> dict[str, PerfPoint]:
    """The run's sweep points by label; of two points with the same traffic, the first."""
    points: dict[str, PerfPoint] = {}
    for point in run.performance.sweep:
        points.setdefault(point_label(point), point)
    return points


def point_figures(point: PerfPoint) -> list[Figure]:
    """A sweep point's gated figures (none for a point that failed, no percentile it has too few requests for)."""
    if point.error:
        return []
    label, found = point_label(point), []
    for name, attr, stat in POINT_ROWS:
        raw = getattr(point, attr)
        if isinstance(raw, Distribution) and percentile_shortfall(stat, raw.n):
            continue
        value = getattr(raw, stat or "p50") if isinstance(raw, Distribution) else raw
        if value is not None:
            found.append(Figure("performance", label, name, float(value)))
    return found


def withheld_figures(run: RunResult) -> dict[tuple[str, str], str]:
    """The sweep points' percentiles that too few requests withhold from the gate, with the reason."""
    withheld = {}
    for label, point in sweep_points(run).items():
        for name, attr, stat in POINT_ROWS:
            raw = getattr(point, attr)
            reason = percentile_shortfall(stat, raw.n) if isinstance(raw, Distribution) else None
            if reason is not None and not point.error:
                withheld[(label, name)] = reason
    return withheld


def point_requests(run: RunResult, key: tuple[str, str]) -> list[float] | None:
    """The per-request values behind a sweep point's p50 figure (`key`: label, row name); None if unknown."""
    point = sweep_points(run).get(key[0])
    attr = next((a for name, a, stat in POINT_ROWS if name == key[1] and stat == "p50"), None)
    if point is None or point.requests is None or attr is None:
        return None
    values = getattr(point.requests, attr, None)
    return list(values) if values else None


def performance_figures(run: RunResult) -> list[Figure]:
    """The run's own performance rows but its quality samples' latencies, then every sweep point's figures."""
    found = []
    for name, attr, stat in PERF_ROWS:
        if name in QUALITY_RUN_LATENCY:
            continue
        mv = perf_value(run, attr, stat)
        if mv is not None and mv.n > 0:
            found.append(Figure("performance", RUN_LEVEL, name, mv.value))
    for point in sweep_points(run).values():
        found += point_figures(point)
    return found


def quality_figures(run: RunResult) -> list[Figure]:
    """Each task's primary metric and the suite score."""
    found = [
        Figure("quality", t.name, t.primary_metric, mv.value)
        for t in run.tasks
        if (mv := t.metrics.get(t.primary_metric)) is not None and mv.n > 0
    ]
    if run.suite_score is not None and run.suite_score.n > 0:
        found.append(Figure("quality", SUITE, "suite_score", run.suite_score.value))
    return found
