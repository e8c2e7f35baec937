"""One self-contained HTML report: inline CSS, tables and inline SVG plots; opens offline in any browser."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from html import escape

from llmbench import __version__
from llmbench.analysis.compare import Comparison, Row, SectionPart
from llmbench.analysis.costs import api_cost_per_correct
from llmbench.analysis.leaderboard import Leaderboard
from llmbench.errors import MissingDependencyError
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
from llmbench.results.schema import RunResult

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:1200px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.best{font-weight:700;color:#137333}.sig-good{color:#137333}.sig-bad{color:#b3261e}.ns{color:#777}
.delta{display:block;font-size:.85em}.note{background:#fff8e1;border-left:4px solid #f4b400;padding:.5rem 1rem}
figure{margin:1rem 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.9em}
.fp{color:#b06000;font-size:.8em;vertical-align:super}
.scroll{overflow-x:auto;max-width:100%}.ci{display:block;color:#777;font-size:.85em}.legend{color:#555}
details.note summary{cursor:pointer;font-weight:700}
"""


def _scroll(table: str) -> str:
    """A table that scrolls sideways inside the page, so that many runs never widen the page itself."""
    return f'<div class="scroll">{table}</div>'


def _leaderboard_html(board: Leaderboard) -> str:
    from llmbench.report.leaderboard_table import header, interval_text, legend, value_text

    head = "".join(f"<th>{escape(header(c))}</th>" for c in board.columns)
    body = []
    for row in board.rows:
        cells = []
        for col in board.columns:
            cell = board.cell(row, col)
            ci = interval_text(cell)
            text = escape(value_text(cell, col)) + (f'<span class="ci">{escape(ci)}</span>' if ci else "")
            cells.append(_td(text, "best" if cell is not None and cell.best and cell.significant else ""))
        body.append(f'<tr><td class="l">{escape(row.label)}</td>{"".join(cells)}</tr>')
    table = f'<table id="leaderboard"><thead><tr><th class="l">model</th>{head}</tr></thead><tbody>'
    table += "".join(body) + "</tbody></table>"
    notes = "".join(f"<li>{escape(line)}</li>" for line in legend(board))
    return _scroll(table) + f'<ul class="legend">{notes}</ul>'


def _td(text: str, cls: str = "") -> str:
    return f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>"


def _delta_html(row: Row, j: int) -> str:
    d = row.deltas[j] if row.deltas else None
    if d is None:
        return ""
    cls = {"better": "sig-good", "worse": "sig-bad"}.get(verdict(row, d) or "", "ns")
    return f'<span class="delta {cls}">Δ {escape(delta_text(d))}</span>'


def _rows_table(comparison: Comparison, part: SectionPart, marks: dict[int, int]) -> str:
    """A section's rows of one suite, in the columns it shows (a perf run has no quality metric: its column
    would be a row of dashes)."""
    index = {id(r): i for i, r in enumerate(comparison.rows)}
    rows, shown = part.rows, part.columns
    head = "".join(f"<th>{escape(comparison.labels[j])}</th>" for j in shown)
    out = [
        f'<table><thead><tr><th class="l">suite/task</th><th class="l">metric</th>{head}</tr></thead><tbody>'
    ]
    for row in rows:
        mark = marks.get(index[id(row)])
        fp = f'<span class="fp" title="{escape(row.fingerprint_note)}">[{mark}]</span>' if mark else ""
        cells = []
        for j in shown:
            text = escape(shown_cell(comparison, row, j))
            cells.append(_td(text + _delta_html(row, j), "best" if row.marked_best(j) else ""))
        out.append(
            f'<tr><td class="l">{escape(row_name(row))}</td><td class="l">{escape(row.metric)}{fp}</td>'
            + "".join(cells)
            + "</tr>"
        )
    out.append("</tbody></table>")
    return _scroll("".join(out))


def _simple_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(_td(escape(c), "l" if i == 0 else "") for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return _scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _runs_table(runs: Sequence[RunResult], labels: Sequence[str]) -> str:
    rows = []
    for label, run in zip(labels, runs, strict=False):
        gpu = run.environment.device() or run.backend.device or "-"
        rows.append(
            [
                label,
                str(run.model.get("model", run.model_name)),
                run.backend.backend,
                run.suite_name,
                run.created_at[:16].replace("T", " "),
                run.run_id,
                str(gpu)[:80],
                "yes" if run.finished else "no (partial)",
            ]
        )
    return _simple_table(
        ["column", "model", "backend", "suite", "created", "run id", "device", "finished"], rows
    )


API_COST_HEADER = (
    "column",
    "suite",
    "API cost $",
    "$ / correct answer",
    "priced samples",
    "prompt tokens (cached)",
    "output tokens",
    "$ / M in, cached, out",
    "prices read",
)


def _api_cost_html(runs: Sequence[RunResult], labels: Sequence[str]) -> str:
    """What the runs of priced models cost at their per-token prices, and the prices with the day they were
    read; nothing where no run was priced."""
    rows = []
    for label, run in zip(labels, runs, strict=False):
        cost = run.summary.cost
        if cost is None:
            continue
        per_correct = api_cost_per_correct([run])
        cached = _usd(cost.cached_input_per_mtok_usd)
        unpriced = f" (+{cost.unpriced_samples} unknown)" if cost.unpriced_samples else ""
        rows.append(
            [
                label,
                run.suite_name,
                _usd(cost.usd),
                _usd(per_correct),
                f"{cost.priced_samples}{unpriced}",
                f"{cost.input_tokens:,} ({cost.cached_input_tokens:,})",
                f"{cost.output_tokens:,}",
                f"{_usd(cost.input_per_mtok_usd)}, {cached}, {_usd(cost.output_per_mtok_usd)}",
                " ".join(x for x in (cost.prices_as_of, cost.prices_source) if x),
            ]
        )
    if not rows:
        return ""
    note = (
        "<p class=\"legend\">Each sample's tokens (as the server reported them) at the model's per-token "
        "prices of the day they were read: prices change, the provider's page has today's. Samples whose "
        "token counts are unknown (failed requests) are not priced.</p>"
    )
    return '<h2 id="section-api-cost">API cost</h2>' + _simple_table(API_COST_HEADER, rows) + note


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _plots_html(comparison: Comparison) -> str:
    from llmbench.report import plots

    try:
        figures = plots.all_plots(comparison)
    except MissingDependencyError as exc:
        return (
            f'<p class="note">Plots are not included: {escape(str(exc))}. The tables below are complete.</p>'
        )
    if not figures:
        return '<p class="note">No data to plot.</p>'
    return "".join(f"<figure>{p.svg}<figcaption>{escape(p.title)}</figcaption></figure>" for p in figures)


def render_html(runs: Sequence[RunResult], comparison: Comparison, board: Leaderboard | None = None) -> str:
    """The full report for `runs` (the comparison's columns): the leaderboard, plots, every table, and the
    fingerprint notes last, collapsed."""
    labels = comparison.labels
    marks = footnotes(comparison)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>llmbench report: {escape(', '.join(labels))}</title><style>{CSS}</style></head><body>",
        "<h1>llmbench report</h1>",
        f"<p>{len(comparison.columns)} run(s); generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"llmbench {escape(__version__)}.</p>",
    ]
    if board is not None and board.rows:
        parts += ['<h2 id="section-leaderboard">Leaderboard</h2>', _leaderboard_html(board)]
    parts += ["<h2>Runs</h2>", _runs_table([c.run for c in comparison.columns] or list(runs), labels)]
    if comparison.baseline is not None:
        how, label = comparison.delta_basis()
        who = f" <b>{escape(label)}</b>" if label else ""
        parts.append(
            f"<p>Deltas (Δ) are against {how}{who}; "
            "coloured deltas are significant at p &lt; 0.05 (green better, red worse).</p>"
        )
    parts += ["<h2>Plots</h2>", _plots_html(comparison)]
    for section, title in SECTIONS:
        tables = comparison.section_parts(section)
        if tables:
            parts.append(f'<h2 id="section-{section}">{escape(title)}</h2>')
        for part in tables:
            parts += [f"<h3>{escape(part.suite)}</h3>"] if part.suite else []
            parts.append(_rows_table(comparison, part, marks))
    if comparison.sweeps:
        parts.append('<h2 id="section-sweeps">Performance sweeps</h2>')
        for table in comparison.sweeps:
            points = [
                [setting(x), *(num(v) for v in values)]
                for x, values in zip(table.xs, table.values, strict=True)
            ]
            parts += [
                f"<h3>{escape(table.title)}</h3>",
                _simple_table([table.x_name, *table.labels(labels)], points),
            ]
    if comparison.cost:
        cost = [cost_cells(c) for c in comparison.cost]
        parts += ['<h2 id="section-cost">Accuracy per cost</h2>', _simple_table(COST_HEADER, cost)]
    parts.append(_api_cost_html([c.run for c in comparison.columns] or list(runs), labels))
    if marks:
        items = "".join(f"<li>[{n}] {escape(text)}</li>" for n, text in footnote_lines(comparison))
        parts.append(
            f'<details class="note" id="fingerprint-notes"><summary>Not strictly comparable: '
            f"{len(footnote_lines(comparison))} note(s) on runs with different fingerprints</summary><p>Prompts, templates or generation "
            f"settings differ between these runs.</p><ul>{items}</ul></details>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)
