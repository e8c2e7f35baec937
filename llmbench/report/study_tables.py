"""A study in the terminal, Markdown and HTML: its plan (cells, GPUs, placement, state) and its leaderboard."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llmbench.analysis.costs import prices_read
from llmbench.analysis.leaderboard import Cell
from llmbench.report.mdtable import table_cell
from llmbench.results.schema import MetricValue
from llmbench.study.study_leaderboard import AXES, BoardRow, Leaderboard

if TYPE_CHECKING:
    from llmbench.study.runner import StudyOutcome


def cost_text(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _build(r: BoardRow) -> str:
    """What tells builds of one model apart where the study names no variant: quantization, else dtype."""
    model = r.row.runs[0].model if r.row.runs else {}
    return str(model.get("quantization") or model.get("dtype") or "")


def _columns(lb: Leaderboard) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each column's header and, per row, its value and interval; columns blank in every row are left out,
    and so is the build when every row has the same one (the row's label already names model and backend)."""
    builds = [r.row.variant or _build(r) for r in lb.rows]
    cols: list[tuple[str, list[tuple[str, str]]]] = []
    if len(set(builds)) > 1:
        cols.append(("build", [(b, "") for b in builds]))
    for suite in lb.suites:
        cols.append((suite, [_split(r.score(suite)) for r in lb.rows]))
    cols.append(("composite", [_split(r.composite) for r in lb.rows]))
    for axis in lb.axes:
        cols.append((AXES[axis][0], [(cost_text(r.costs.get(axis)), "") for r in lb.rows]))
    return [(name, cells) for name, cells in cols if any(value for value, _ in cells)]


def _split(m: MetricValue | Cell | None) -> tuple[str, str]:
    """A score as its value and its interval, shown one above the other in the terminal."""
    if m is None or m.value is None:
        return "", ""
    interval = f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None and m.ci_high is not None else ""
    return f"{m.value:.3f}", interval


def _label(lb: Leaderboard, r: BoardRow) -> str:
    return r.model + (" *" if r.model in lb.pareto else "")


def header(lb: Leaderboard) -> list[str]:
    return ["model", *(name for name, _ in _columns(lb))]


def row_cells(lb: Leaderboard) -> list[list[str]]:
    cols = _columns(lb)
    return [
        [_label(lb, r), *(f"{cells[i][0]} {cells[i][1]}".strip() for _, cells in cols)]
        for i, r in enumerate(lb.rows)
    ]


def notes(lb: Leaderboard) -> list[str]:
    kinds = {r.composite_kind for r in lb.rows}
    lines = [
        "composite: "
        + (
            "weighted suite accuracy with the judge's rating"
            if "accuracy+judge" in kinds
            else "weighted suite accuracy (no judge in this study)"
        ),
        f"* on the Pareto front of composite against {AXES[lb.pareto_axis][0]}: {', '.join(lb.pareto) or 'not measured'}",
    ]
    shown = {name for name, _ in _columns(lb)}
    if AXES["cost_per_correct_usd"][0] in shown:
        lines.append(
            "host $/correct: generation time at the study's price per hour of the host, per correct answer"
        )
    if AXES["api_cost_per_correct_usd"][0] in shown:
        read = ", ".join(prices_read([run for r in lb.rows for run in r.row.runs])) or "an unknown day"
        lines.append(
            f"API $/correct: tokens at each model's per-token prices as read on {read} (prices change)"
        )
    if lb.constraints:
        wanted = ", ".join(f"{k} {v:g}" for k, v in lb.constraints.items())
        lines.append(f"best within {wanted}: {lb.best_fit or 'no model fits'}")
        lines += [f"  excluded {m}: {why}" for m, why in lb.excluded.items()]
    elif lb.best_fit:
        lines.append(f"best composite: {lb.best_fit}")
    lines += lb.significance
    return lines


def print_leaderboard(lb: Leaderboard, console: Console) -> None:
    """Compact, like compare's leaderboard: each score over its interval, so that it fits 100 columns."""
    cols = _columns(lb)
    table = Table(
        title="leaderboard", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False
    )
    table.add_column("model", overflow="fold")
    for name, _ in cols:
        table.add_column(name, justify="right", overflow="fold")
    for i, r in enumerate(lb.rows):
        cells = []
        for _, column in cols:
            value, interval = column[i]
            text = Text(value)
            if interval:
                text.append("\n" + interval, style="dim")
            cells.append(text)
        table.add_row(Text(_label(lb, r), style="" if r.row.measures_model else "dim"), *cells)
    console.print(table)
    for line in notes(lb):
        console.print(line, highlight=False, markup=False)


def render_leaderboard_markdown(lb: Leaderboard) -> str:
    cols = header(lb)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(table_cell(c) for c in cells) + " |" for cells in row_cells(lb)]
    out += ["", *(f"- {line.strip()}" for line in notes(lb))]
    return "\n".join(out) + "\n"


def leaderboard_html(lb: Leaderboard) -> str:
    """The leaderboard as an HTML fragment: its table and its notes."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in header(lb))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in row_cells(lb)
    )
    items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in notes(lb))
    return f"<table><tr>{head}</tr>{body}</table><ul>{items}</ul>"


def with_leaderboard(report: str, lb: Leaderboard, study: str) -> str:
    """The comparison report of a study's cells with the leaderboard as its first section."""
    section = (
        f'<h2 id="section-leaderboard">Leaderboard of study {html.escape(study)}</h2>{leaderboard_html(lb)}'
    )
    marker = "<h2>Runs</h2>"  # the report's first section: the leaderboard goes before it
    return report.replace(marker, section + "\n" + marker, 1) if marker in report else report + section


def print_plan(outcome: StudyOutcome, console: Console) -> None:
    plan = outcome.plan
    table = Table(title=f"study {plan.study.name}: {len(plan.cells)} cells in {plan.results_dir}")
    for col in ("cell", "model", "suite", "seed", "kind", "GPUs", "state"):
        table.add_column(col)
    for c in plan.cells:
        state = c.state + (f" ({c.samples_done} samples)" if c.state in ("partial", "done") else "")
        table.add_row(c.id, c.model.name, c.suite.name, str(c.seed), c.kind, str(c.gpus), state)
    console.print(table)
    names = outcome.devices or [str(g) for g in outcome.host]  # host GPU i is physical GPU names[i]
    host = f"{len(outcome.host)} GPU(s) [{','.join(names)}]" if outcome.host else "no GPUs"
    where = (
        f"Ray cluster {outcome.manifest.executor}" if outcome.manifest.executor == "ray" else f"host: {host}"
    )
    console.print(where, highlight=False)
    jobs = {j.id: j for j in plan.jobs}
    for i, wave in enumerate(outcome.waves, 1):
        parts = []
        for p in wave:
            gpus = ",".join(names[g] for g in p.gpus) or "none"
            parts.append(
                f"{p.job} ({len(jobs[p.job].todo)} cells) on GPU {gpus}" + (" alone" if p.exclusive else "")
            )
        console.print(f"  wave {i}: " + "; ".join(parts), highlight=False)
    if not outcome.host and outcome.manifest.executor != "ray":
        todo = [j for j in plan.jobs if j.todo]
        console.print(f"  {len(todo)} job(s), one after another in this process", highlight=False)
    done = sum(1 for c in plan.cells if c.state == "done")
    console.print(f"done: {done} of {len(plan.cells)} cells", highlight=False)
