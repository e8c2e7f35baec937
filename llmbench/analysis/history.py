"""History of results files in a directory: runs in time order and one metric's trend per model and suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.analysis.compare import perf_value
from llmbench.errors import ResultsFileError, UserInputError
from llmbench.results.io import read_results
from llmbench.results.schema import Distribution, MetricValue, Performance, RunResult

DISTRIBUTION_STATS = ("mean", "p50", "p90", "p99", "min", "max")


@dataclass
class TrendPoint:
    created_at: str
    run_id: str
    model_name: str
    suite_name: str
    value: MetricValue | None


def load_history(directory: Path, *, skipped: list[str] | None = None) -> list[RunResult]:
    """Every results file under `directory` (recursively), oldest first; unreadable files go to `skipped`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserInputError(f"{directory}: not a directory")
    runs = []
    for path in sorted(directory.rglob("*.json")):
        try:
            runs.append(read_results(path))
        except ResultsFileError as exc:
            if skipped is not None:
                skipped.append(str(exc))
    return sorted(runs, key=lambda r: (r.created_at, r.run_id))


def metric_value(run: RunResult, metric_path: str) -> MetricValue | None:
    """Look up a metric by path: `suite_score`, `TASK` (its primary metric), `TASK.METRIC` (also written
    `TASK/METRIC`), or `performance.FIELD[.STAT]` such as `performance.ttft_ms.p50`."""
    if metric_path == "suite_score":
        return run.suite_score
    if metric_path.startswith("performance."):
        _, attr, *stat = metric_path.split(".")
        raw = getattr(run.performance, attr, None) if attr in Performance.model_fields else None
        if isinstance(raw, Distribution) and len(stat) <= 1 and (not stat or stat[0] in DISTRIBUTION_STATS):
            return perf_value(run, attr, stat[0] if stat else None)
        if isinstance(raw, int | float) and not stat:
            return perf_value(run, attr)
        return None
    task = run.task(metric_path)
    if task is not None:
        return task.metrics.get(task.primary_metric)
    for sep in ("/", "."):  # the task name may hold dots; metric names never do
        task_name, found, metric = metric_path.rpartition(sep)
        task = run.task(task_name) if found else None
        if task is not None:
            return task.metrics.get(metric)
    return None


def available_metrics(runs: Sequence[RunResult]) -> list[str]:
    """Every path `metric_value` answers for at least one of `runs`, in the documented `TASK.METRIC` form."""
    names: dict[str, None] = {}
    for run in runs:
        if run.suite_score is not None:
            names["suite_score"] = None
        for t in run.tasks:
            names.update((f"{t.name}.{m}", None) for m in t.metrics)
    for run in runs:
        perf = run.performance
        for field in ("ttft_ms", "tpot_ms", "e2e_latency_ms"):
            if getattr(perf, field) is not None:
                names[f"performance.{field}.p50"] = None
        for field in ("output_tokens_per_s", "peak_vram_mib", "energy_per_output_token_j", "load_time_s"):
            if getattr(perf, field) is not None:
                names[f"performance.{field}"] = None
    return list(names)


def metric_trend(runs: Sequence[RunResult], metric_path: str) -> list[TrendPoint]:
    """The metric in every run, in time order (runs without it have value None)."""
    ordered = sorted(runs, key=lambda r: (r.created_at, r.run_id))
    return [
        TrendPoint(r.created_at, r.run_id, r.model_name, r.suite_name, metric_value(r, metric_path))
        for r in ordered
    ]


def trend_svg(points: Sequence[TrendPoint], metric_path: str) -> str:
    """A line per (model, suite) over time, with interval bands where known; inline-ready SVG."""
    from datetime import datetime

    from llmbench.report.plots import new_figure, to_svg

    fig, ax = new_figure(7.5, 3.6)
    series: dict[tuple[str, str], list[TrendPoint]] = {}
    for p in points:
        if p.value is not None:
            series.setdefault((p.model_name, p.suite_name), []).append(p)
    for (model, suite), pts in series.items():
        xs = [datetime.fromisoformat(p.created_at) for p in pts]
        ys = [p.value.value for p in pts if p.value is not None]
        ax.plot(xs, ys, marker="o", label=f"{model} / {suite}")
        if all(p.value is not None and p.value.ci_low is not None for p in pts):
            ax.fill_between(xs, [p.value.ci_low for p in pts], [p.value.ci_high for p in pts], alpha=0.15)  # type: ignore[union-attr]
    ax.set_ylabel(metric_path)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return to_svg(fig, "plot-history", f"{metric_path} over time per model and suite").svg


@dataclass
class History:
    """One metric's trend over a folder of runs, oldest first, and the files that could not be read."""

    directory: Path
    metric: str
    runs: list[RunResult]
    trend: list[TrendPoint]
    skipped: list[str]


def history(directory: Path, metric: str | None = None) -> History:
    """The runs in `directory` and `metric`'s trend (default: the suite score); a user error when there are
    no runs, or when no run has the metric (the hint names those that exist)."""
    skipped: list[str] = []
    runs = load_history(directory, skipped=skipped)
    if not runs:
        raise UserInputError(f"{directory}: no results files found", hint="; ".join(skipped[:3]) or None)
    metric = metric or "suite_score"
    trend = metric_trend(runs, metric)
    if all(p.value is None for p in trend):
        known = available_metrics(runs)
        shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        raise UserInputError(
            f"no run in {directory} has the metric '{metric}'", hint=f"available: {shown or 'none'}"
        )
    return History(Path(directory), metric, runs, trend, skipped)
