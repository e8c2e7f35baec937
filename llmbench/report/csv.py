"""The comparison as one long CSV table: a line per (row, column), easy to load into pandas or a sheet."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator

from llmbench.analysis.compare import Comparison

HEADER = (
    "section",
    "suite",
    "task",
    "metric",
    "column",
    "run_id",
    "value",
    "stderr",
    "ci_low",
    "ci_high",
    "n",
    "method",
    "best",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "p_value",
    "test",
    "significant",
    "fingerprint_diff",
)


def _cell(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def render_csv(comparison: Comparison) -> str:
    """Rows, sweep points and the accuracy-per-cost figures, one value per line."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(HEADER)
    out.writerows(_metric_lines(comparison))
    out.writerows(_sweep_lines(comparison))
    out.writerows(_cost_lines(comparison))
    return buf.getvalue()


def _metric_lines(comparison: Comparison) -> Iterator[list[object]]:
    """A line per (row, column) that has a value: the value, its interval and its delta to the baseline."""
    for row in comparison.rows:
        for j, m in enumerate(row.cells):
            if m is None:
                continue
            d = row.deltas[j] if row.deltas else None
            yield [
                _cell(v)
                for v in (
                    row.section,
                    row.suite,
                    row.task,
                    row.metric,
                    comparison.labels[j],
                    comparison.columns[j].run.run_id,
                    m.value,
                    m.stderr,
                    m.ci_low,
                    m.ci_high,
                    m.n,
                    m.method,
                    row.best == j,
                    d.value if d else None,
                    d.ci_low if d else None,
                    d.ci_high if d else None,
                    d.p_value if d else None,
                    d.test if d else None,
                    d.significant if d else None,
                    ";".join(row.fingerprint_diff),
                )
            ]


def _sweep_lines(comparison: Comparison) -> Iterator[list[object]]:
    """A line per sweep point and column that has a value."""
    for table in comparison.sweeps:
        for x, values in zip(table.xs, table.values, strict=True):
            for j, v in zip(table.columns, values, strict=True):
                if v is not None:
                    yield [
                        "sweep",
                        "",
                        f"{table.x_name}={x:g}",
                        table.title,
                        comparison.labels[j],
                        comparison.columns[j].run.run_id,
                        v,
                        *[""] * (len(HEADER) - 7),
                    ]


_COST_FIGURES = (
    "suite_score",
    "energy_per_output_token_j",
    "peak_vram_mib",
    "ttft_p50_ms",
    "joules_per_correct",
)


def _cost_lines(comparison: Comparison) -> Iterator[list[object]]:
    """A line per accuracy-per-cost figure of each column that has it."""
    for c in comparison.cost:
        for name in _COST_FIGURES:
            value = getattr(c, name)
            if value is not None:
                yield ["cost", c.suite, "", name, c.label, c.run_id, value, *[""] * (len(HEADER) - 7)]
