"""The comparison in the terminal: rich tables, best value bold green, significant deltas coloured."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmbench.analysis.compare import Comparison, Row
from llmbench.analysis.significance import Delta
from llmbench.report.markdown import (
    COST_HEADER,
    SECTIONS,
    cost_cells,
    delta_text,
    footnote_lines,
    footnotes,
    num,
    row_name,
    setting,
    shown_cell,
    verdict,
)


def _delta(row: Row, d: Delta) -> Text:
    text = delta_text(d)
    word = verdict(row, d)
    if word is None:
        return Text(text, style="dim")
    return Text(("▲ " if d.value > 0 else "▼ ") + text, style="green" if word == "better" else "red")


def _cell(comparison: Comparison, row: Row, j: int) -> Text:
    m = row.cells[j]
    text = Text(
        shown_cell(comparison, row, j),
        style="bold green" if row.marked_best(j) else ("dim" if m is None else ""),
    )
    d = row.deltas[j] if row.deltas else None
    if d is not None:
        text.append("\n")
        text.append_text(_delta(row, d))
    return text


def print_comparison(comparison: Comparison, console: Console) -> None:
    """Print every section; fingerprint mismatches as numbered footnotes under the tables."""
    labels = comparison.labels
    marks = footnotes(comparison)
    index = {id(r): i for i, r in enumerate(comparison.rows)}
    if comparison.baseline is not None:
        how, label = comparison.delta_basis()
        console.print(
            f"deltas against {how}"
            + (f": [bold]{escape(label)}[/]; " if label else "; ")
            + "bold green: best and significant; ▲/▼ coloured = significant (p < 0.05)",
            highlight=False,
        )
    for section, title in SECTIONS:
        for part in comparison.section_parts(section):
            name = f"{title} · {part.suite}" if part.suite else title
            table = Table(title=name, title_justify="left", show_lines=bool(comparison.baseline is not None))
            table.add_column("suite/task")
            table.add_column("metric")
            for j in part.columns:
                table.add_column(labels[j], justify="right")
            for row in part.rows:
                mark = marks.get(index[id(row)])
                metric = Text(row.metric)
                if mark:
                    metric.append(f" [{mark}]", style="yellow")
                table.add_row(row_name(row), metric, *(_cell(comparison, row, j) for j in part.columns))
            console.print(table)
    for sweep in comparison.sweeps:
        table = Table(title=sweep.title, title_justify="left")
        table.add_column(sweep.x_name, justify="right")
        for label in sweep.labels(labels):
            table.add_column(label, justify="right")
        for x, values in zip(sweep.xs, sweep.values, strict=True):
            table.add_row(setting(x), *(num(v) for v in values))
        console.print(table)
    if comparison.cost:
        table = Table(title="Accuracy per cost", title_justify="left")
        for col in COST_HEADER:
            table.add_column(col, justify="left" if col in ("run", "suite") else "right")
        for c in comparison.cost:
            table.add_row(*cost_cells(c))
        console.print(table)
    for n, text in footnote_lines(comparison):
        console.print(f"[yellow]\\[{n}][/] {text}; not strictly comparable", highlight=False)
