"""Plain-text cell formatting shared by the renderers, and the Markdown comparison."""

from __future__ import annotations

import math

from llmbench.analysis.compare import QUALITY_RUN_LATENCY_LABEL, Comparison, Row, SectionPart
from llmbench.analysis.perf_tables import CostRow, SweepTable
from llmbench.analysis.significance import Delta
from llmbench.report.mdtable import table_cell
from llmbench.report.saturation_table import markdown_lines
from llmbench.results.schema import MetricValue

SECTIONS = (
    ("quality", "Quality"),
    ("suite", "Suite scores (weighted)"),
    ("breakdown", "Breakdowns"),
    ("failures", "Failure counts"),
    ("setup", "How the runs were set up (not scores)"),
    ("performance", "Performance"),
)
NO_INTERVAL = ("failures", "setup")  # counts and set-up shares: facts of the run, not estimates
COST_HEADER = (
    "run",
    "suite",
    "suite score",
    "J / output token",
    "peak VRAM MiB",
    "TTFT p50 ms (quality run)",
    "J / correct answer",
)


def num(value: float | None) -> str:
    """A number at a precision that suits its size: 0.734, 12.35, 1,234."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.1f}"
    if a > 1:
        return f"{value:.2f}"
    if a >= 0.001 or a == 0:
        return f"{value:.3f}"
    return f"{value:.2e}"


def setting(value: float) -> str:
    """A sweep's setting (input tokens, concurrency, a request rate): whole numbers as such (512, not 512.0)."""
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def shown_cell(comparison: Comparison, row: Row, j: int) -> str:
    """A cell as every renderer writes it: value and interval, `n/a` where the backend measures no model."""
    if comparison.unmeasured(row, j):
        return "n/a"
    if row.withheld and row.withheld[j]:
        return f"— ({row.withheld[j]})"
    return cell_text(row.cells[j], with_ci=row.section not in NO_INTERVAL)


def cell_text(m: MetricValue | None, *, with_ci: bool = True) -> str:
    """Value and interval, e.g. `0.734 [0.690, 0.775]`; `-` for a missing cell."""
    if m is None:
        return "-"
    if not with_ci:
        return f"{int(m.value):,}" if float(m.value).is_integer() else num(m.value)
    if with_ci and m.ci_low is not None and m.ci_high is not None:
        return f"{num(m.value)} [{num(m.ci_low)}, {num(m.ci_high)}]"
    return num(m.value)


def delta_text(d: Delta | None) -> str:
    """Delta against the baseline with its test: `-0.050 (p=0.012, mcnemar)*`; `*` marks significance."""
    if d is None:
        return ""
    sign = "+" if d.value > 0 else ""
    body = f"{sign}{d.relative:.1%}" if d.relative is not None else f"{sign}{num(d.value)}"
    if d.p_value is not None:
        body += f" (p={d.p_value:.2g}, {d.test})"
    elif d.test == "ci-overlap":
        body += " (CIs disjoint)" if d.significant else " (CIs overlap)"
    return body + ("*" if d.significant else "")


def verdict(row: Row, d: Delta | None) -> str | None:
    """ "better" or "worse" for a significant delta, by the row's direction; None for noise or no direction."""
    if d is None or not d.significant:
        return None
    better = row.is_better(d)
    return None if better is None else ("better" if better else "worse")


def cost_cells(c: CostRow) -> list[str]:
    """One accuracy-per-cost line, in the order of COST_HEADER (shared by every renderer)."""
    return [
        c.label,
        c.suite,
        num(c.suite_score),
        num(c.energy_per_output_token_j),
        num(c.peak_vram_mib),
        num(c.ttft_p50_ms),
        num(c.joules_per_correct),
    ]


def row_name(row: Row) -> str:
    """ "math/gsm8k"; a performance row's suite, and what a run-level latency was measured on."""
    if row.section != "performance":
        return f"{row.suite}/{row.task}"
    return f"{row.suite} ({QUALITY_RUN_LATENCY_LABEL})" if row.quality_run_latency else row.suite


def footnotes(comparison: Comparison) -> dict[int, int]:
    """Row index -> footnote number for rows whose fingerprints differ; rows of one task share a number."""
    numbers: dict[tuple[str, str, str], int] = {}
    marks: dict[int, int] = {}
    for i, row in enumerate(comparison.rows):
        if row.fingerprint_diff:
            key = (row.suite, row.task, row.fingerprint_note)
            marks[i] = numbers.setdefault(key, len(numbers) + 1)
    return marks


def footnote_lines(comparison: Comparison) -> list[tuple[int, str]]:
    """(number, text) once per footnote: what differs and where."""
    seen: dict[int, str] = {}
    for i, n in footnotes(comparison).items():
        row = comparison.rows[i]
        where = row_name(row) if row.section != "performance" else f"{row.suite} performance"
        seen.setdefault(n, f"{where}: produced with different fingerprints ({row.fingerprint_note})")
    return sorted(seen.items())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(table_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(table_cell(c) for c in r) + " |" for r in rows]
    return lines


def sweep_lines(table: SweepTable, labels: list[str]) -> list[str]:
    rows = [[setting(x), *(num(v) for v in values)] for x, values in zip(table.xs, table.values, strict=True)]
    return _table([table.x_name, *table.labels(labels)], rows)


def _section_table(
    comparison: Comparison, part: SectionPart, marks: dict[int, int], index: dict[int, int]
) -> list[str]:
    body = []
    for row in part.rows:
        cells = []
        for j in part.columns:
            text = shown_cell(comparison, row, j)
            if row.marked_best(j):
                text = f"**{text}**"
            d = row.deltas[j] if row.deltas else None
            if d is not None:
                text += f" Δ {delta_text(d)}"
                if (word := verdict(row, d)) is not None:
                    text += f" {word}"
            cells.append(text)
        mark = marks.get(index[id(row)])
        metric = row.metric + (f" [^{mark}]" if mark else "")
        body.append([row_name(row), metric, *cells])
    return _table(["suite/task", "metric", *(comparison.labels[j] for j in part.columns)], body)


def render_markdown(comparison: Comparison) -> str:
    """The comparison as GitHub-flavoured Markdown: one table per section, best value in bold."""
    labels = comparison.labels
    lines = ["# llmbench comparison", ""]
    if comparison.baseline is not None:
        how, label = comparison.delta_basis()
        lines += [
            f"Deltas are against {how}"
            + (f": **{label}**. " if label else ". ")
            + "`*` marks a significant difference (p < 0.05), followed by whether it is better or worse.",
            "",
        ]
    marks = footnotes(comparison)
    index = {id(r): i for i, r in enumerate(comparison.rows)}
    for section, title in SECTIONS:
        parts = comparison.section_parts(section)
        if parts:
            lines += [f"## {title}", ""]
        for part in parts:
            lines += [f"### {part.suite}", ""] if part.suite else []
            lines += [*_section_table(comparison, part, marks, index), ""]
    if comparison.sweeps:
        lines += ["## Performance sweeps", ""]
        for table in comparison.sweeps:
            lines += [f"### {table.title}", "", *sweep_lines(table, labels), ""]
    lines += markdown_lines([(c.label, c.run.performance.saturation) for c in comparison.columns])
    if comparison.cost:
        body = [cost_cells(c) for c in comparison.cost]
        lines += ["## Accuracy per cost", "", *_table(list(COST_HEADER), body), ""]
    for n, text in footnote_lines(comparison):
        lines.append(f"[^{n}]: {text}; the columns are not strictly comparable.")
    return "\n".join(lines).rstrip() + "\n"
