"""Saturation searches as text: a terminal table for `llmbench run`, Markdown lines for `compare`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from llmbench.report.mdtable import table_cell
from llmbench.results.schema import SaturationProbe, SaturationResult

HEADER = ("in", "out", "SLOs (p99)", "rate/s", "goodput/s", "bound by", "max throughput/s", "probes", "note")
LEFT = ("SLOs (p99)", "bound by", "probes", "note")


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None else format(value, fmt)


def slo_text(result: SaturationResult) -> str:
    """The bounds searched against, e.g. "TTFT <= 2000 ms, TPOT <= 100 ms"."""
    parts = []
    if result.slo_ttft_p99_ms is not None:
        parts.append(f"TTFT <= {result.slo_ttft_p99_ms:g} ms")
    if result.slo_tpot_p99_ms is not None:
        parts.append(f"TPOT <= {result.slo_tpot_p99_ms:g} ms")
    return ", ".join(parts) or "-"


def probe_text(probe: SaturationProbe) -> str:
    """A probe in a few characters: "4/s ok", "8/s ttft_p99", "closed 9.1/s"."""
    if probe.kind == "closed_loop":
        return f"closed {_num(probe.point.request_throughput_per_s, '.3g')}/s"
    verdict = "ok" if probe.passed else "+".join(probe.violated)
    return f"{_num(probe.offered_rate_per_s, '.3g')}/s {verdict}"


def row_cells(result: SaturationResult) -> list[str]:
    """The row's cells; the note says when the search did not converge (max_probes) or could not run."""
    return [
        str(result.input_tokens),
        str(result.output_tokens),
        slo_text(result),
        _num(result.rate_per_s),
        _num(result.goodput_per_s),
        ", ".join(result.bound_by) or "-",
        _num(result.max_throughput_per_s),
        "; ".join(probe_text(p) for p in result.probes),
        result.note or "-",
    ]


def print_saturation(results: Sequence[SaturationResult], console: Console) -> None:
    table = Table(title="saturation search: the highest request rate that meets the SLOs")
    for col in HEADER:
        table.add_column(col, justify="left" if col in LEFT else "right")
    for result in results:
        table.add_row(*row_cells(result))
    console.print(table)


def markdown_lines(runs: Sequence[tuple[str, Sequence[SaturationResult]]]) -> list[str]:
    """A "Saturation search" section with one row per run and shape; no lines when no run searched."""
    rows = [[label, *row_cells(r)] for label, results in runs for r in results]
    if not rows:
        return []
    header = ["run", *HEADER]
    lines = ["## Saturation search", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(table_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]
