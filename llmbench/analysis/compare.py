"""Side-by-side comparison of results files: rows of metrics, best column, deltas with significance.

The comparison is plain data that every renderer (terminal, Markdown, CSV, JSON, HTML) reads. Deltas are
taken against the baseline (or the first run when none is named): paired tests where the two runs share
sample ids (McNemar for 0/1 scores, a sign-flip permutation test otherwise), unpaired tests from the
summaries otherwise; for a latency p50, a permutation test of the change of the median over the runs'
requests, interval overlap for the other performance figures (the tests: `llmbench.analysis.significance`).
A percentile of fewer requests than it needs is withheld, with the reason, not shown. Which way is better for each row comes
from `llmbench.analysis.direction`; the sweep and accuracy-per-cost tables are built in `llmbench.analysis.perf_tables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from llmbench.analysis.direction import NEUTRAL_PREFIXES, higher_is_better
from llmbench.analysis.fingerprints import differing_keys
from llmbench.analysis.perf_tables import CostRow, SweepTable, cost_rows, sweep_tables
from llmbench.analysis.significance import (
    ALPHA,
    LATENCY_FIELDS,
    Delta,
    median_delta,
    paired_delta,
    paired_suite_delta,
    percentile_shortfall,
    perf_delta,
    request_values,
)
from llmbench.results.io import read_results
from llmbench.results.schema import Distribution, MetricValue, Performance, RunResult
from llmbench.scoring import stats

FAILURE_STATUSES = ("wrong", "unparsed", "truncated", "timeout", "error")
# (row name, attribute of Performance, statistic); the unit is in the attribute's name.
PERF_ROWS: tuple[tuple[str, str, str | None], ...] = (
    ("ttft_ms p50", "ttft_ms", "p50"),
    ("ttft_ms p90", "ttft_ms", "p90"),
    ("ttft_ms p99", "ttft_ms", "p99"),
    ("tpot_ms p50", "tpot_ms", "p50"),
    ("e2e_latency_ms p50", "e2e_latency_ms", "p50"),
    ("output_tokens_per_s", "output_tokens_per_s", None),
    ("peak_vram_mib", "peak_vram_mib", None),
    ("energy_per_output_token_j", "energy_per_output_token_j", None),
    ("load_time_s", "load_time_s", None),
)
# The run's own latencies are measured on its quality samples (batched as the quality loop batches them,
# answers of any length): shown as "latency in quality run", never gated; latency is gated at sweep points.
QUALITY_RUN_LATENCY = frozenset(name for name, attr, _ in PERF_ROWS if attr in LATENCY_FIELDS)
QUALITY_RUN_LATENCY_LABEL = "latency in quality run"


@dataclass
class Column:
    """One run in the comparison, with the label shown in headers."""

    label: str
    run: RunResult


@dataclass
class Row:
    """One (suite, task, metric) line; `cells` and `deltas` are aligned with the comparison's columns."""

    section: str  # "quality", "suite", "breakdown", "failures", "setup", "performance"
    suite: str
    task: str
    metric: str
    cells: list[MetricValue | None]
    best: int | None = None
    base: int | None = None  # the column this row's deltas are against
    deltas: list[Delta | None] = field(default_factory=list)
    fingerprint_diff: list[str] = field(default_factory=list)
    withheld: list[str | None] = field(default_factory=list)  # per column: why a percentile is not shown

    @property
    def quality_run_latency(self) -> bool:
        """A latency of the run's quality samples (shown so named, never gated)."""
        return self.section == "performance" and self.metric in QUALITY_RUN_LATENCY

    @property
    def higher_is_better(self) -> bool | None:
        """Which way is better for this row's metric (failure counts: fewer; latencies: lower)."""
        return higher_is_better(self.metric)

    def is_better(self, delta: Delta) -> bool | None:
        """Whether a delta in this row is an improvement; None when the row has no better side or no change."""
        if self.higher_is_better is None or delta.value == 0:
            return None
        return (delta.value > 0) == self.higher_is_better

    def marked_best(self, j: int) -> bool:
        """Whether column j is shown as the best (bold, green): it is the best and significantly so against
        the row's base (the best base: significantly ahead of every other column)."""
        if self.best != j or self.base is None:
            return False
        if j != self.base:
            d = self.deltas[j] if self.deltas else None
            return d is not None and bool(d.significant)
        others = [d for k, d in enumerate(self.deltas) if k != j and self.cells[k] is not None]
        return bool(others) and all(d is not None and d.significant for d in others)

    @property
    def fingerprint_note(self) -> str:
        return ", ".join(f"{k} differs" for k in self.fingerprint_diff)


@dataclass
class SectionPart:
    """One table of a section: its suite (None where the section has one), its rows, the columns it shows."""

    suite: str | None
    rows: list[Row]
    columns: list[int]


@dataclass
class Comparison:
    columns: list[Column]
    rows: list[Row]
    baseline: int | None  # index of the column deltas are taken against
    baseline_named: bool  # True when the user named it, False when it is just the first run
    sweeps: list[SweepTable] = field(default_factory=list)
    cost: list[CostRow] = field(default_factory=list)

    @property
    def labels(self) -> list[str]:
        return [c.label for c in self.columns]

    def delta_basis(self) -> tuple[str, str | None]:
        """What deltas are against, in words, and the run's label where it is one run for every row."""
        if self.baseline is None:
            return ("", None)
        if self.baseline_named:
            return ("the baseline", self.labels[self.baseline])
        if all(r.base in (None, self.baseline) for r in self.rows):
            return ("the first run", self.labels[self.baseline])
        return ("the first run (in column order) with a value in each row", None)

    def unmeasured(self, row: Row, j: int) -> bool:
        """True for a performance cell of a run whose backend does not measure the model (shown n/a)."""
        return row.section == "performance" and not measures_model(self.columns[j].run)

    def section(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.section == name]

    def section_parts(self, name: str) -> list[SectionPart]:
        """A section's tables: one per suite where its rows are of several suites (twenty runs of eight suites
        would otherwise be one table of twenty columns, each row with two or three values), each with the
        columns that have a value in one of its rows, or a run of its suite whose figures are not measured."""
        rows = self.section(name)
        suites = list(dict.fromkeys(r.suite for r in rows))
        parts = []
        for suite in suites:
            mine = [r for r in rows if r.suite == suite]
            shown = [
                j
                for j, col in enumerate(self.columns)
                if any(r.cells[j] is not None for r in mine)
                or (col.run.suite_name == suite and any(self.unmeasured(r, j) for r in mine))
            ]
            parts.append(SectionPart(suite if len(suites) > 1 else None, mine, shown))
        return parts

    @property
    def fingerprint_warnings(self) -> list[str]:
        """One line per row whose columns were produced with different fingerprints."""
        return [
            f"{r.suite}/{r.task} {r.metric}: {r.fingerprint_note}" for r in self.rows if r.fingerprint_diff
        ]


def measures_model(run: RunResult) -> bool:
    """False for a run whose outputs and timings are not the model's (the reference backend echoes the
    references): its latency, throughput and energy are not measurements and its fingerprints not the model's."""
    return run.backend.measures_model


def load_runs(paths: Sequence[Path]) -> list[RunResult]:
    """Read results files; a bad file raises ResultsFileError naming it."""
    return [read_results(Path(p)) for p in paths]


def column_labels(runs: Sequence[RunResult]) -> list[str]:
    """Model names (with the number of runs a merged column averages), followed by what tells runs of one
    model apart: backend, suite, date, then time or run id where those are still not enough."""
    labels = [_base_label(r) for r in runs]
    extras = (
        lambda r: r.backend.backend,
        lambda r: r.settings.variant or "",
        lambda r: r.suite_name,
        lambda r: r.created_at[:10],
    )
    for name in {x for x in labels if labels.count(x) > 1}:
        group = [i for i, label in enumerate(labels) if label == name]
        for extra in extras:
            tags = [extra(runs[i]) for i in group]
            if len(set(tags)) > 1:
                for i, tag in zip(group, tags, strict=True):
                    labels[i] += f" · {tag}" if tag else ""
    for last in (lambda r: r.created_at[11:16], lambda r: r.run_id):
        for name in {x for x in labels if labels.count(x) > 1}:
            for i, label in enumerate(labels):
                if label == name:
                    labels[i] = f"{label} {last(runs[i])}"
    return labels


def _base_label(run: RunResult) -> str:
    merged = run.settings.repeat_run_ids or []
    return f"{run.model_name} (mean of {len(merged)} runs)" if len(merged) > 1 else run.model_name


def build_comparison(
    runs: Sequence[RunResult], baseline: RunResult | None = None, *, alpha: float = ALPHA
) -> Comparison:
    """Everything the renderers show, for any mix of runs and suites (missing cells are None).

    `alpha` decides which deltas are significant; the gate passes its own, so report and gate agree.
    """
    runs = list(runs)
    if baseline is not None and not any(r is baseline or r.run_id == baseline.run_id for r in runs):
        runs.insert(0, baseline)
    base = next((i for i, r in enumerate(runs) if baseline is not None and r.run_id == baseline.run_id), None)
    named = base is not None
    if base is None and len(runs) > 1:
        base = 0
    labels = column_labels(runs)
    columns = [Column(label, run) for label, run in zip(labels, runs, strict=True)]
    rows = _quality_rows(runs) + _performance_rows(runs)
    for row in rows:
        row.best = _best(row.cells, row.higher_is_better)
        # Unnamed, the first run is the base of its own rows; another suite's rows are taken against
        # their own first run, so that twenty runs of five suites still get deltas in every table.
        row.base = base if named else next((j for j, c in enumerate(row.cells) if c is not None), base)
        rb = row.base
        row.deltas = [
            None if rb is None or j == rb else _delta(row, runs, rb, j, alpha) for j in range(len(runs))
        ]
    measured = [r if measures_model(r) else _without_timings(r) for r in runs]
    return Comparison(
        columns, rows, base, named, sweeps=sweep_tables(measured), cost=cost_rows(labels, measured)
    )


def _without_timings(run: RunResult) -> RunResult:
    """The run with no performance figures: what the reference backend's trivially small timings are."""
    return run.model_copy(update={"performance": Performance()})


def _quality_rows(runs: list[RunResult]) -> list[Row]:
    rows: dict[tuple[str, str, str, str], Row] = {}

    def cell(section: str, suite: str, task: str, metric: str, j: int, value: MetricValue | None) -> None:
        row = rows.setdefault(
            (section, suite, task, metric), Row(section, suite, task, metric, [None] * len(runs))
        )
        row.cells[j] = value

    for j, run in enumerate(runs):
        for t in run.tasks:
            for name, mv in t.metrics.items():
                # Shares that say how a run was set up (the sandbox's isolation) are facts, not scores.
                section = "setup" if name.startswith(NEUTRAL_PREFIXES) else "quality"
                cell(section, run.suite_name, t.name, name, j, mv)
            for label, metrics in t.breakdown.items():
                for name, mv in metrics.items():
                    cell("breakdown", run.suite_name, t.name, f"{name} [{label}]", j, mv)
            for status in FAILURE_STATUSES:
                if status in t.counts:
                    count = MetricValue(value=t.counts[status], n=t.n_samples)
                    cell("failures", run.suite_name, t.name, status, j, count)
        if run.suite_score is not None:
            cell("suite", run.suite_name, "(suite)", "suite_score", j, run.suite_score)
    order = {"quality": 0, "breakdown": 1, "failures": 2, "setup": 3, "suite": 4}
    kept = [
        r for r in rows.values() if r.section != "failures" or any(c is not None and c.value for c in r.cells)
    ]
    ordered = sorted(kept, key=lambda r: order[r.section])
    for row in ordered:
        row.fingerprint_diff = _fingerprint_diff(runs, row)
    return ordered


def _performance_rows(runs: list[RunResult]) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    for j, run in enumerate(runs):
        if not measures_model(run):
            continue
        for name, attr, stat in PERF_ROWS:
            mv = perf_value(run, attr, stat)
            if mv is not None:
                key = (run.suite_name, name)
                row = rows.setdefault(
                    key, Row("performance", run.suite_name, "(performance)", name, [None] * len(runs))
                )
                row.withheld = row.withheld or [None] * len(runs)
                row.withheld[j] = percentile_shortfall(stat, mv.n)
                row.cells[j] = None if row.withheld[j] else mv
    result = list(rows.values())
    for row in result:
        row.fingerprint_diff = differing_keys(
            [(r, r.fingerprint) for r, c in zip(runs, row.cells, strict=True) if c and measures_model(r)]
        )
    return result


def perf_value(run: RunResult, attr: str, stat: str | None = None) -> MetricValue | None:
    """A performance figure as a MetricValue (with the bootstrap interval of a percentile when known)."""
    raw = getattr(run.performance, attr, None)
    if raw is None:
        return None
    if isinstance(raw, Distribution):
        key = stat or "p50"
        ci = raw.ci.get(key)
        return MetricValue(
            value=getattr(raw, key),
            ci_low=ci[0] if ci else None,
            ci_high=ci[1] if ci else None,
            stderr=raw.stderr if key == "mean" else None,
            n=raw.n,
            method="bootstrap" if ci else None,
        )
    n = run.performance.ttft_ms.n if run.performance.ttft_ms else 1
    return MetricValue(value=float(raw), n=n)


def _best(cells: list[MetricValue | None], higher: bool | None) -> int | None:
    present = [(c.value, j) for j, c in enumerate(cells) if c is not None and c.n > 0]
    if higher is None or len(present) < 2:
        return None
    values = {v for v, _ in present}
    if len(values) == 1:
        return None
    return (max if higher else min)(present)[1]


def _fingerprint_diff(runs: list[RunResult], row: Row) -> list[str]:
    present = [runs[j] for j, c in enumerate(row.cells) if c is not None and measures_model(runs[j])]
    if row.section == "suite":
        return differing_keys([(r, r.fingerprint) for r in present])
    pairs = [(r, t.fingerprint) for r in present if (t := r.task(row.task)) is not None]
    return differing_keys(pairs)


def _median_delta(row: Row, base: RunResult, run: RunResult, alpha: float) -> Delta | None:
    """A latency p50's change by the permutation test over each run's requests, where both runs keep the
    values their p50 was taken over (a merged or partly cached run does not); None otherwise."""
    attr = next((a for name, a, stat in PERF_ROWS if name == row.metric and stat == "p50"), None)
    if attr is None or attr not in LATENCY_FIELDS:
        return None
    values = [request_values(r, attr) for r in (base, run)]
    for r, v in zip((base, run), values, strict=True):
        p50 = perf_value(r, attr, "p50")
        if len(v) < 2 or p50 is None or abs(float(np.median(v)) - p50.value) > 1e-9 * max(1.0, p50.value):
            return None
    return median_delta(values[0], values[1], alpha)


def _metric_and_cell(row: Row) -> tuple[str, str | None]:
    """The metric of a row and, for a breakdown row ("accuracy [level=3]"), the breakdown cell it shows."""
    if row.section != "breakdown":
        return row.metric, None
    metric, _, rest = row.metric.partition(" [")
    return metric, rest.rstrip("]")


def _delta(row: Row, runs: list[RunResult], base: int, j: int, alpha: float = ALPHA) -> Delta | None:
    a, b = row.cells[base], row.cells[j]
    if a is None or b is None or row.section in ("failures", "setup"):
        return None
    if row.section == "performance":
        return _median_delta(row, runs[base], runs[j], alpha) or perf_delta(a, b)
    if row.section in ("quality", "breakdown"):
        paired = paired_delta(runs[base], runs[j], row.task, _metric_and_cell(row), alpha)
        if paired is not None:
            return paired
    if row.section == "suite":
        paired = paired_suite_delta(runs[base], runs[j], alpha)
        if paired is not None:
            return paired
    if a.n == 0 or b.n == 0:
        return None
    binary = a.method == "wilson" and b.method == "wilson"
    delta, lo, hi, p = (stats.two_proportion_test if binary else stats.welch_test)(a, b, confidence=1 - alpha)
    if a.stderr is None and not binary:
        return Delta(delta, None, None, None, "none", None)
    return Delta(delta, lo, hi, p, "two-proportion" if binary else "welch", p < alpha)
