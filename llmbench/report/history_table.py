"""A folder's history in the terminal: one row per run with the chosen metric, TTFT and throughput."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from llmbench.analysis.history import History


def print_history(h: History, console: Console) -> None:
    table = Table(title=f"history of {h.metric} in {h.directory}", title_justify="left")
    for col in ("created", "model", "suite", h.metric, "95% CI", "n", "TTFT p50 ms", "tok/s", "run id"):
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
    for line in h.skipped:
        console.print(f"[yellow]skipped[/] {line}", highlight=False)
