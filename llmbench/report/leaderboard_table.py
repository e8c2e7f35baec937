"""The leaderboard in the terminal, Markdown, CSV and JSON: a row per model, a column per suite and cost.

Bold (green in the terminal) marks a best value that is significantly ahead of every other row; nothing
else is bold or green. Figures the reference backend cannot measure read `n/a`.
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmbench.analysis.costs import prices_read
from llmbench.analysis.leaderboard import Cell, Column, Leaderboard
from llmbench.report.markdown import num
from llmbench.report.mdtable import table_cell

NOT_MEASURED = "n/a"


def header(col: Column) -> str:
    return f"{col.title} {col.unit}".strip() if col.kind != "suite" else col.title


def value_text(cell: Cell | None, col: Column | None = None) -> str:
    """The cell's value; money to three significant digits (a cent's fraction tells two models apart)."""
    if cell is None or (cell.value is None and cell.measured):
        return "-"
    if cell.value is None:
        return NOT_MEASURED
    return f"{cell.value:.3g}" if col is not None and col.kind == "cost" else num(cell.value)


def interval_text(cell: Cell | None) -> str:
    if cell is None or cell.ci_low is None or cell.ci_high is None:
        return ""
    return f"[{num(cell.ci_low)}, {num(cell.ci_high)}]"


def legend(board: Leaderboard) -> list[str]:
    """What the marks mean, and what the table leaves out; one short sentence a line."""
    sources = {c.source for c in board.columns if c.kind == "performance"}
    lines = [
        "Suite scores with 95% intervals"
        + ("; VRAM and energy: median over the row's suites." if sources & {"runs"} else "."),
        *(
            ["TTFT and tok/s: the perf sweep point at the load in the title (c: requests in flight)."]
            if "sweep" in sources
            else []
        ),
        *(
            [
                "TTFT and tok/s were timed in quality runs, every request handed over at once: "
                "a queue position, not a serving figure (a perf suite measures those)."
            ]
            if "quality runs" in sources
            else []
        ),
        f"Bold: best of its column, significantly ahead of every other row (p < {board.alpha:g}; "
        "paired where both scored the same samples).",
    ]
    if any(c.kind == "cost" for c in board.columns):
        read = prices_read([run for row in board.rows for run in row.runs])
        lines.append(
            "API cost: each sample's tokens at its model's per-token prices, as read on "
            f"{', '.join(read) or 'an unknown day'} (prices change; the provider's page has today's); "
            "$/correct divides it by the answers scored correct. '-': a model without prices."
        )
    if board.unscored:
        names = ", ".join(board.unscored)
        lines.append(f"No score, so no column: {names} (every sweep point: compare --detail).")
    if any(not r.measures_model for r in board.rows):
        lines.append(
            f"{NOT_MEASURED}: the reference backend answers with the references; "
            "its row is each suite's ceiling and has no timings."
        )
    return lines


MODEL_WIDTH = 40  # the model column's most; a longer label folds onto a second line
PADDING = 2  # rich's padding between two columns of a SIMPLE_HEAD table
EDGES = 2  # and at its two edges


def print_leaderboard(board: Leaderboard, console: Console, *, title: str = "Leaderboard") -> None:
    """Value over interval in each cell; a board wider than the terminal is cut into tables of as many
    columns as fit, each with the model column, rather than folding every figure onto four lines."""
    groups = column_groups(board, console.width)
    for i, columns in enumerate(groups):
        part = f" ({i + 1}/{len(groups)})" if len(groups) > 1 else ""
        console.print(_table(board, columns, f"{title}{part}"))
    for line in legend(board):
        console.print(line, style="dim", highlight=False, markup=False, soft_wrap=False)


def _table(board: Leaderboard, columns: list[Column], title: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("model", overflow="fold", max_width=MODEL_WIDTH)
    for col in columns:
        table.add_column(header(col), justify="right", overflow="fold")
    for row in board.rows:
        cells = []
        for col in columns:
            cell = board.cell(row, col)
            text = Text(
                value_text(cell, col), style="bold green" if cell and cell.best and cell.significant else ""
            )
            if interval := interval_text(cell):
                text.append("\n" + interval, style="dim")
            cells.append(text)
        table.add_row(Text(row.label, style="" if row.measures_model else "dim"), *cells)
    return table


def column_groups(board: Leaderboard, width: int) -> list[list[Column]]:
    """The board's columns in order, cut into runs that fit `width` beside the model column (one column
    at least in each); a column is as wide as its widest figure, interval or title."""
    model = min(MODEL_WIDTH, max((len(r.label) for r in board.rows), default=5)) + PADDING + EDGES
    groups: list[list[Column]] = [[]]
    used = model
    for col in board.columns:
        need = _width(board, col) + PADDING
        if groups[-1] and used + need > width:
            groups.append([])
            used = model
        groups[-1].append(col)
        used += need
    return groups  # a board with no column is one table of its models


def _width(board: Leaderboard, col: Column) -> int:
    texts = [header(col)]  # whole: rich would rather squeeze the model column than wrap a title
    for row in board.rows:
        cell = board.cell(row, col)
        texts += [value_text(cell, col), interval_text(cell)]
    return max(len(t) for t in texts)


def render_markdown(board: Leaderboard, *, title: str = "Leaderboard") -> str:
    head = ["model", *(header(c) for c in board.columns)]
    lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * len(board.columns)]
    for row in board.rows:
        cells = []
        for col in board.columns:
            cell = board.cell(row, col)
            text = value_text(cell, col)
            if cell is not None and cell.best and cell.significant:
                text = f"**{text}**"
            if interval := interval_text(cell):
                text += f" {interval}"
            cells.append(text)
        lines.append("| " + " | ".join([table_cell(row.label), *cells]) + " |")
    lines += ["", *legend(board)]
    return "\n".join(lines) + "\n"


CSV_HEADER = (
    "model",
    "backend",
    "variant",
    "row",
    "column",
    "kind",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "measured",
    "best",
    "significant",
    "p_value",
    "test",
    "run_ids",
    "files",
)


def _blank(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def render_csv(board: Leaderboard) -> str:
    """One line per cell, with the run ids and files it was computed from."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_HEADER)
    for row in board.rows:
        for col in board.columns:
            cell = board.cell(row, col)
            if cell is None or (cell.value is None and cell.measured):
                continue
            out.writerow(
                _blank(v)
                for v in (
                    row.model,
                    row.backend,
                    row.variant,
                    row.label,
                    col.key,
                    col.kind,
                    cell.value,
                    cell.ci_low,
                    cell.ci_high,
                    cell.n,
                    cell.measured,
                    cell.best,
                    cell.significant,
                    cell.p_value,
                    cell.test,
                    ";".join(cell.run_ids),
                    ";".join(board.files(cell)),
                )
            )
    return buf.getvalue()


def leaderboard_dict(board: Leaderboard) -> dict[str, Any]:
    def cell_dict(cell: Cell) -> dict[str, Any]:
        d = {k: _finite(v) for k, v in vars(cell).items()}
        return d | {"files": board.files(cell)}

    return {
        "alpha": board.alpha,
        "columns": [vars(c) | {"higher_is_better": c.higher_is_better} for c in board.columns],
        "rows": [
            {
                "label": r.label,
                "model": r.model,
                "backend": r.backend,
                "variant": r.variant,
                "measures_model": r.measures_model,
                "created_at": r.created_at,
                "cells": {k: cell_dict(c) for k, c in r.cells.items()},
            }
            for r in board.rows
        ],
    }


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def render_json(board: Leaderboard) -> str:
    return json.dumps({"leaderboard": leaderboard_dict(board)}, indent=2, allow_nan=False)
