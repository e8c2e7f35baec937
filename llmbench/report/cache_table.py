"""`llmbench cache info` on the terminal: the store, its size, and its entries per model."""

from __future__ import annotations

from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table

from llmbench.run.gen_cache import CacheReport


def print_cache_info(report: CacheReport, console: Console) -> None:
    size_mib = report.size_bytes / 2**20
    console.print(
        f"generation cache: {report.path} ({report.entries} generation(s), {size_mib:.1f} MiB)",
        highlight=False,
        soft_wrap=True,
    )
    if not report.models:
        return
    table = Table()
    for col in ("model", "files", "entries", "MiB", "newest entry"):
        table.add_column(col, justify="right" if col in ("entries", "MiB") else "left")
    for m in report.models:
        newest = datetime.fromtimestamp(m.newest_s, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        table.add_row(m.model_name, m.model_source, str(m.entries), f"{m.bytes / 2**20:.2f}", newest)
    console.print(table)
