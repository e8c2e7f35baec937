"""History of results files in a directory: runs in time order and one metric's trend per model and suite."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from llmbench.compare import perf_value
from llmbench.errors import ResultsFileError, UserInputError
from llmbench.results import MetricValue, RunResult, read_results


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
    """Look up a metric by path: `suite_score`, `TASK` (its primary metric), `TASK/METRIC`, or
    `performance.FIELD[.STAT]` such as `performance.ttft_ms.p50` or `performance.output_tokens_per_s`."""
    if metric_path == "suite_score":
        return run.suite_score
    if metric_path.startswith("performance."):
        _, attr, *stat = metric_path.split(".")
        return perf_value(run, attr, stat[0] if stat else None)
    task_name, _, metric = metric_path.partition("/")
    task = run.task(task_name)
    if task is None:
        return None
    return task.metrics.get(metric or task.primary_metric)


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


def print_history(directory: Path, *, metric: str | None, plot: Path | None, console: Console) -> None:
    """The runs in `directory` as a table (or one metric's trend), optionally writing the trend as SVG."""
    skipped: list[str] = []
    runs = load_history(directory, skipped=skipped)
    metric = metric or "suite_score"
    table = Table(title=f"history of {metric} in {directory}", title_justify="left")
    for col in ("created", "model", "suite", metric, "95% CI", "n", "TTFT p50 ms", "tok/s", "run id"):
        table.add_column(col, justify="left" if col in ("created", "model", "suite", "run id") else "right")
    for point, run in zip(metric_trend(runs, metric), runs, strict=True):
        v, perf = point.value, run.performance
        ci = (
            f"[{v.ci_low:.3f}, {v.ci_high:.3f}]"
            if v and v.ci_low is not None and v.ci_high is not None
            else ""
        )
        table.add_row(
            run.created_at,
            run.model_name,
            run.suite_name,
            f"{v.value:.4g}" if v else "-",
            ci,
            str(v.n) if v else "",
            f"{perf.ttft_ms.p50:.1f}" if perf.ttft_ms else "-",
            f"{perf.output_tokens_per_s:.1f}" if perf.output_tokens_per_s else "-",
            run.run_id,
        )
    console.print(table)
    for line in skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(trend_svg(metric_trend(runs, metric), metric), encoding="utf-8")
        console.print(f"plot: {plot}")
