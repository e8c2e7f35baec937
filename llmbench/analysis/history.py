"""History of results files in a directory: runs in time order, one metric's trend per model and suite, and
each figure the regression gate judges with the noise band of the last nights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmbench.analysis.compare import perf_value
from llmbench.analysis.direction import higher_is_better
from llmbench.analysis.figures import RUN_LEVEL, SUITE, Figure
from llmbench.analysis.gate_config import GateThresholds
from llmbench.analysis.noise import MIN_RUNS, NoiseBand, figures_of, noise_bands
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
        for name in ("ttft_ms", "tpot_ms", "e2e_latency_ms"):
            if getattr(perf, name) is not None:
                names[f"performance.{name}.p50"] = None
        for name in ("output_tokens_per_s", "peak_vram_mib", "energy_per_output_token_j", "load_time_s"):
            if getattr(perf, name) is not None:
                names[f"performance.{name}"] = None
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
class GatedTrend:
    """One gated figure over the runs of one model, suite and backend (None where a run lacks it), and its
    noise band over the last `window` of them before the newest, as the gate would draw it from that many
    good nights to judge the newest."""

    where: str  # a task, "(suite)", "(performance)" or a sweep point's label
    metric: str
    values: list[float | None]
    band: NoiseBand | None
    dates: list[str] = field(default_factory=list)  # each value's run's created_at

    @property
    def latest(self) -> float | None:
        return self.values[-1] if self.values else None

    @property
    def band_runs(self) -> list[int]:
        """The indices of the values the band was taken over (the last `band.n` before the newest)."""
        present = [i for i, v in enumerate(self.values[:-1]) if v is not None]
        return present[-self.band.n :] if self.band is not None else []

    def limit(self, alpha: float) -> float | None:
        """The value beyond which the latest counts as outside the band (one-sided, before Holm), in the
        figure's units; None without a band."""
        if self.band is None:
            return None
        width = self.band.half_width(alpha, "recent")
        higher = bool(higher_is_better(self.metric))
        if self.band.relative:
            return self.band.median * math.exp(-width if higher else width)
        return self.band.median - width if higher else self.band.median + width

    def outside(self, alpha: float) -> bool | None:
        """Whether the latest value is worse than the band's median by more than the band (one-sided at
        `alpha`, against the median of the nights); None without a band or a latest value."""
        if self.band is None or self.latest is None:
            return None
        figure = Figure("performance" if self.band.relative else "quality", self.where, self.metric, 0.0)
        scaled = self.band.worsening(self.band.median, self.latest, figure.higher_is_better)
        return scaled is not None and scaled > self.band.half_width(alpha, "recent")


def gated_trends(runs: Sequence[RunResult], t: GateThresholds) -> list[GatedTrend]:
    """The gated figures (primary metrics, suite score, performance rows and sweep points with a floor) of
    the newest run's model, suite and backend, over its runs in time order, with the band of the last
    `t.history.window` runs before the newest that have each figure."""
    if not runs:
        return []
    newest = max(runs, key=lambda r: (r.created_at, r.run_id))
    cell = [
        r
        for r in sorted(runs, key=lambda r: (r.created_at, r.run_id))
        if (r.model_name, r.suite_name, r.backend.backend)
        == (newest.model_name, newest.suite_name, newest.backend.backend)
    ]
    series: dict[tuple[str, str], list[float | None]] = {}
    for i, run in enumerate(cell):
        for figure in figures_of(run):
            if figure.section == "performance" and t.performance_threshold(figure.metric) is None:
                continue
            series.setdefault(figure.key, [None] * len(cell))[i] = figure.value
    trends = []
    for (where, metric), values in series.items():
        recent = [r for r, v in zip(cell[:-1], values[:-1], strict=True) if v is not None][
            -t.history.window :
        ]
        band = noise_bands(recent).get((where, metric)) if len(recent) >= MIN_RUNS else None
        trends.append(GatedTrend(where, metric, values, band, [r.created_at for r in cell]))
    order = {SUITE: 0, RUN_LEVEL: 2}
    return sorted(trends, key=lambda g: order.get(g.where, 1 if not g.where.startswith("point") else 3))


@dataclass
class History:
    """One metric's trend over a folder of runs, oldest first, the gated figures' trends with their noise
    bands, and the files that could not be read."""

    directory: Path
    metric: str
    runs: list[RunResult]
    trend: list[TrendPoint]
    skipped: list[str]
    gated: list[GatedTrend] = field(default_factory=list)
    alpha: float = 0.05


def history(directory: Path, metric: str | None = None, thresholds: GateThresholds | None = None) -> History:
    """The runs in `directory`, `metric`'s trend (default: the suite score) and the gated figures' trends; a
    user error when there are no runs, or when no run has the metric asked for (the hint names those that
    exist) or, none asked for, neither a suite score nor a gated figure."""
    skipped: list[str] = []
    runs = load_history(directory, skipped=skipped)
    if not runs:
        raise UserInputError(f"{directory}: no results files found", hint="; ".join(skipped[:3]) or None)
    t = thresholds or GateThresholds()
    gated = gated_trends(runs, t)
    asked, metric = metric, metric or "suite_score"
    trend = metric_trend(runs, metric)
    if all(p.value is None for p in trend) and (asked or not gated):  # a perf suite has no suite score
        known = available_metrics(runs)
        shown = ", ".join(known[:8]) + (f" and {len(known) - 8} more" if len(known) > 8 else "")
        raise UserInputError(
            f"no run in {directory} has the metric '{metric}'", hint=f"available: {shown or 'none'}"
        )
    return History(Path(directory), metric, runs, trend, skipped, gated, t.alpha)
