"""A folder's history in the terminal: one row per run with the chosen metric, TTFT and throughput; then each
figure the gate judges, its last values and its noise band."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmbench.analysis.history import GatedTrend, History

SHOWN_NIGHTS = 8  # the last values of each gated figure shown


def print_history(h: History, console: Console) -> None:
    print_runs(h, console)
    if h.gated:
        print_gated(h.gated, h.alpha, console)
    for line in h.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)


def print_runs(h: History, console: Console) -> None:
    table = Table(title=f"history of {h.metric} in {h.directory}", title_justify="left")
    for col in (
        "created",
        "model",
        "suite",
        h.metric,
        "95% CI",
        "n",
        "quality-run TTFT p50 ms",
        "tok/s",
        "run id",
    ):
        table.add_column(col, justify="left" if col in ("created", "model", "suite", "run id") else "right")
    for point, run in zip(h.trend, h.runs, strict=True):
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


def print_gated(gated: list[GatedTrend], alpha: float, console: Console) -> None:
    """One row per gated figure: its last values (oldest first), the median and band of the last nights,
    and whether the latest is worse than that median by more than the band."""
    title = f"gated figures: last {SHOWN_NIGHTS} runs, noise band one-sided at alpha {alpha} (before Holm)"
    table = Table(title=title, title_justify="left")
    for col in ("where", "metric", "trend (oldest first)", "median", "noise band", "latest"):
        table.add_column(
            col, justify="left" if col in ("where", "metric", "trend (oldest first)") else "right"
        )
    for g in gated:
        trend = " ".join(f"{v:.4g}" if v is not None else "-" for v in g.values[-SHOWN_NIGHTS:])
        if g.band is None:
            table.add_row(g.where, g.metric, trend, "-", "fewer than 3 runs", "")
            continue
        width = g.band.half_width(alpha, "recent")
        shown = f"±{width:.1%}" if g.band.relative else f"±{width:.3f}"
        verdict = {True: "[red]outside[/]", False: "inside", None: ""}[g.outside(alpha)]
        table.add_row(g.where, g.metric, trend, f"{g.band.median:.4g}", f"{shown} from {g.band.n}", verdict)
    console.print(table)
