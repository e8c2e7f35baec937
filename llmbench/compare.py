"""Side-by-side comparison of results files: rows of metrics, best column, deltas with significance.

The comparison is plain data that every renderer (terminal, Markdown, CSV, JSON, HTML) reads. Deltas are
taken against the baseline (or the first run when none is named): paired tests where the two runs share
sample ids (McNemar for 0/1 scores, paired bootstrap otherwise), unpaired tests from the summaries
otherwise, and interval overlap for performance figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmbench.results import (
    Distribution,
    MetricValue,
    PerfPoint,
    RunResult,
    SampleRecord,
    TaskResult,
    read_results,
)
from llmbench.scoring import stats

ALPHA = 0.05
FAILURE_STATUSES = ("wrong", "unparsed", "truncated", "timeout", "error")
# (row name, attribute path, statistic, higher is better); the unit is in the attribute's name.
PERF_ROWS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("ttft_ms p50", "ttft_ms", "p50", False),
    ("ttft_ms p90", "ttft_ms", "p90", False),
    ("ttft_ms p99", "ttft_ms", "p99", False),
    ("tpot_ms p50", "tpot_ms", "p50", False),
    ("e2e_latency_ms p50", "e2e_latency_ms", "p50", False),
    ("output_tokens_per_s", "output_tokens_per_s", None, True),
    ("peak_vram_mib", "peak_vram_mib", None, False),
    ("energy_per_output_token_j", "energy_per_output_token_j", None, False),
    ("load_time_s", "load_time_s", None, False),
)


@dataclass
class Column:
    """One run in the comparison, with the label shown in headers."""

    label: str
    run: RunResult


@dataclass
class Delta:
    """Column minus baseline for one row; `test` names how `p_value`/interval were obtained."""

    value: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    test: str
    significant: bool | None
    n_paired: int = 0
    relative: float | None = None  # value / |baseline value|, for performance rows


@dataclass
class Row:
    """One (suite, task, metric) line; `cells` and `deltas` are aligned with the comparison's columns."""

    section: str  # "quality", "suite", "breakdown", "failures", "performance"
    suite: str
    task: str
    metric: str
    cells: list[MetricValue | None]
    higher_is_better: bool | None
    best: int | None = None
    deltas: list[Delta | None] = field(default_factory=list)
    fingerprint_diff: list[str] = field(default_factory=list)

    @property
    def fingerprint_note(self) -> str:
        return ", ".join(f"{k} differs" for k in self.fingerprint_diff)


@dataclass
class SweepTable:
    """A performance sweep: one figure per x value (input length or concurrency) per column."""

    title: str
    metric: str
    x_name: str
    xs: list[float]
    values: list[list[float | None]]  # values[i][j]: x index i, column j
    higher_is_better: bool


@dataclass
class CostRow:
    """Quality against what it cost, for one column."""

    label: str
    suite_score: float | None
    energy_per_output_token_j: float | None
    peak_vram_mib: float | None
    ttft_p50_ms: float | None
    joules_per_correct: float | None


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

    def section(self, name: str) -> list[Row]:
        return [r for r in self.rows if r.section == name]

    @property
    def fingerprint_warnings(self) -> list[str]:
        """One line per row whose columns were produced with different fingerprints."""
        return [
            f"{r.suite}/{r.task} {r.metric}: {r.fingerprint_note}" for r in self.rows if r.fingerprint_diff
        ]


def load_runs(paths: Sequence[Path]) -> list[RunResult]:
    """Read results files; a bad file raises ResultsFileError naming it."""
    return [read_results(Path(p)) for p in paths]


def column_labels(runs: Sequence[RunResult]) -> list[str]:
    """Model names; runs that share one get the first of backend, date or run id that tells them apart."""
    labels = [r.model_name for r in runs]
    extras = (
        lambda r: str(r.backend.get("backend") or "?"),
        lambda r: r.created_at[:19].replace("T", " "),
        lambda r: r.run_id,
    )
    for name in {x for x in labels if labels.count(x) > 1}:
        group = [i for i, r in enumerate(runs) if r.model_name == name]
        for extra in extras:
            tags = [extra(runs[i]) for i in group]
            if len(set(tags)) == len(tags) or extra is extras[-1]:
                for i, tag in zip(group, tags, strict=True):
                    labels[i] = f"{name} ({tag})"
                break
    return labels


def build_comparison(runs: Sequence[RunResult], baseline: RunResult | None = None) -> Comparison:
    """Everything the renderers show, for any mix of runs and suites (missing cells are None)."""
    runs = list(runs)
    if baseline is not None and not any(r is baseline or r.run_id == baseline.run_id for r in runs):
        runs.insert(0, baseline)
    base = next((i for i, r in enumerate(runs) if baseline is not None and r.run_id == baseline.run_id), None)
    named = base is not None
    if base is None and len(runs) > 1:
        base = 0
    columns = [Column(label, run) for label, run in zip(column_labels(runs), runs, strict=True)]
    rows = _quality_rows(runs) + _performance_rows(runs)
    for row in rows:
        row.best = _best(row.cells, row.higher_is_better)
        row.deltas = [
            None if base is None or j == base else _delta(row, runs, base, j) for j in range(len(runs))
        ]
    return Comparison(columns, rows, base, named, sweeps=sweep_tables(runs), cost=cost_rows(columns))


def _quality_rows(runs: list[RunResult]) -> list[Row]:
    rows: dict[tuple[str, str, str, str], Row] = {}

    def cell(
        section: str,
        suite: str,
        task: str,
        metric: str,
        j: int,
        value: MetricValue | None,
        higher: bool | None,
    ) -> None:
        row = rows.setdefault(
            (section, suite, task, metric), Row(section, suite, task, metric, [None] * len(runs), higher)
        )
        row.cells[j] = value

    for j, run in enumerate(runs):
        for t in run.tasks:
            for name, mv in t.metrics.items():
                cell("quality", run.suite_name, t.name, name, j, mv, _higher_is_better(name))
            for label, metrics in t.breakdown.items():
                for name, mv in metrics.items():
                    cell(
                        "breakdown",
                        run.suite_name,
                        t.name,
                        f"{name} [{label}]",
                        j,
                        mv,
                        _higher_is_better(name),
                    )
            for status in FAILURE_STATUSES:
                if status in t.counts:
                    cell(
                        "failures",
                        run.suite_name,
                        t.name,
                        status,
                        j,
                        MetricValue(value=t.counts[status], n=t.n_samples),
                        None,
                    )
        if run.suite_score is not None:
            cell("suite", run.suite_name, "(suite)", "suite_score", j, run.suite_score, True)
    order = {"quality": 0, "breakdown": 1, "failures": 2, "suite": 3}
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
        for name, attr, stat, higher in PERF_ROWS:
            mv = perf_value(run, attr, stat)
            if mv is not None:
                key = (run.suite_name, name)
                row = rows.setdefault(
                    key, Row("performance", run.suite_name, "(performance)", name, [None] * len(runs), higher)
                )
                row.cells[j] = mv
    result = list(rows.values())
    for row in result:
        row.fingerprint_diff = _diff_keys([r.fingerprint for r, c in zip(runs, row.cells, strict=True) if c])
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


def _higher_is_better(metric: str) -> bool:
    lower = ("error", "latency", "_ms", "vram", "energy", "_time", "loss", "perplexity", "_j")
    return not any(word in metric.lower() for word in lower)


def _best(cells: list[MetricValue | None], higher: bool | None) -> int | None:
    present = [(c.value, j) for j, c in enumerate(cells) if c is not None and c.n > 0]
    if higher is None or len(present) < 2:
        return None
    values = {v for v, _ in present}
    if len(values) == 1:
        return None
    return (max if higher else min)(present)[1]


def _fingerprint_diff(runs: list[RunResult], row: Row) -> list[str]:
    present = [runs[j] for j, c in enumerate(row.cells) if c is not None]
    if row.section == "suite":
        return _diff_keys([r.fingerprint for r in present])
    tasks = [r.task(row.task) for r in present]
    return _diff_keys([t.fingerprint for t in tasks if t is not None])


def _diff_keys(prints: list[dict[str, str]]) -> list[str]:
    """Fingerprint keys whose values differ among the runs that record them."""
    if len(prints) < 2:
        return []
    keys = sorted({k for p in prints for k in p})
    return [k for k in keys if len({p[k] for p in prints if k in p}) > 1]


def per_sample_values(
    run: RunResult, task: TaskResult, metric: str, label: str | None = None
) -> dict[str, float]:
    """Each sample's value of `metric`, averaged over its outputs (sample_index); optionally one breakdown cell."""
    keys = [part.partition("=")[0] for part in label.split(",")] if label else []
    sums: dict[str, list[float]] = {}
    for rec in run.samples:
        if rec.task != task.name or (label and _label_of(rec, keys) != label):
            continue
        value = rec.score if metric == task.primary_metric else rec.metrics.get(metric)
        if value is not None:
            sums.setdefault(rec.id, []).append(float(value))
    return {sid: sum(v) / len(v) for sid, v in sums.items()}


def _label_of(rec: SampleRecord, keys: list[str]) -> str:
    return ",".join(f"{k}={rec.metadata.get(k)}" for k in keys)


def _delta(row: Row, runs: list[RunResult], base: int, j: int) -> Delta | None:
    a, b = row.cells[base], row.cells[j]
    if a is None or b is None or row.section == "failures":
        return None
    if row.section == "performance":
        return _perf_delta(a, b)
    if row.section in ("quality", "breakdown"):
        paired = paired_delta(runs[base], runs[j], row)
        if paired is not None:
            return paired
    if a.n == 0 or b.n == 0:
        return None
    binary = a.method == "wilson" and b.method == "wilson"
    delta, lo, hi, p = (stats.two_proportion_test if binary else stats.welch_test)(a, b)
    if a.stderr is None and not binary:
        return Delta(delta, None, None, None, "none", None)
    return Delta(delta, lo, hi, p, "two-proportion" if binary else "welch", p < ALPHA)


def paired_delta(base: RunResult, cand: RunResult, row: Row) -> Delta | None:
    """Paired test on the samples both runs scored for this row's task (and breakdown cell); None if none."""
    ta, tb = base.task(row.task), cand.task(row.task)
    if ta is None or tb is None:
        return None
    metric, label = row.metric, None
    if row.section == "breakdown":
        metric, _, rest = row.metric.partition(" [")
        label = rest.rstrip("]")
    va, vb = per_sample_values(base, ta, metric, label), per_sample_values(cand, tb, metric, label)
    ids = sorted(set(va) & set(vb))
    if len(ids) < 2:
        return None
    xa, xb = [va[i] for i in ids], [vb[i] for i in ids]
    if stats.is_binary(xa + xb):
        b01, b10, p = stats.mcnemar([x == 1.0 for x in xa], [x == 1.0 for x in xb])
        d = (b01 - b10) / len(ids)
        lo, hi = _paired_proportion_interval(b01, b10, len(ids))
        return Delta(d, lo, hi, p, "mcnemar", p < ALPHA, n_paired=len(ids))
    d, lo, hi, p = stats.paired_bootstrap(xa, xb)
    return Delta(d, lo, hi, p, "paired-bootstrap", p < ALPHA, n_paired=len(ids))


def _paired_proportion_interval(b01: int, b10: int, n: int) -> tuple[float, float]:
    """Normal interval of a paired difference of proportions (the interval that goes with McNemar)."""
    d = (b01 - b10) / n
    var = ((b01 + b10) / n - d * d) / n
    half = 1.96 * max(var, 0.0) ** 0.5
    return (d - half, d + half)


def _perf_delta(a: MetricValue, b: MetricValue) -> Delta:
    d = b.value - a.value
    rel = d / abs(a.value) if a.value else None
    have_ci = None not in (a.ci_low, a.ci_high, b.ci_low, b.ci_high)
    disjoint = have_ci and (b.ci_low > a.ci_high or b.ci_high < a.ci_low)  # type: ignore[operator]
    return Delta(
        d,
        None,
        None,
        None,
        "ci-overlap" if have_ci else "none",
        bool(disjoint) if have_ci else None,
        relative=rel,
    )


def sweep_tables(runs: Sequence[RunResult]) -> list[SweepTable]:
    """TTFT and tokens/s against input length, and throughput against concurrency, one table per fixed shape."""
    tables: list[SweepTable] = []
    specs = (
        ("ttft_ms p50", "input_tokens", ("output_tokens", "concurrency"), False),
        ("output_tokens_per_s", "input_tokens", ("output_tokens", "concurrency"), True),
        ("output_tokens_per_s", "concurrency", ("input_tokens", "output_tokens"), True),
    )
    for metric, x_name, fixed, higher in specs:
        groups: dict[tuple[object, ...], dict[float, list[float | None]]] = {}
        for j, run in enumerate(runs):
            for pt in run.performance.sweep:
                x, y = getattr(pt, x_name), _sweep_value(pt, metric)
                if pt.error or x is None or y is None:
                    continue
                shape = tuple(getattr(pt, f) for f in fixed)
                groups.setdefault(shape, {}).setdefault(float(x), [None] * len(runs))[j] = y
        swept = any(len(points) > 1 for points in groups.values())
        for shape, points in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if swept and len(points) < 2:  # a lone point of another shape is not a curve
                continue
            fixed_text = ", ".join(f"{f}={v}" for f, v in zip(fixed, shape, strict=True) if v is not None)
            xs = sorted(points)
            tables.append(
                SweepTable(
                    f"{metric} vs {x_name}" + (f" ({fixed_text})" if fixed_text else ""),
                    metric,
                    x_name,
                    xs,
                    [points[x] for x in xs],
                    higher,
                )
            )
    return tables


def _sweep_value(pt: PerfPoint, metric: str) -> float | None:
    if metric == "ttft_ms p50":
        return pt.ttft_ms.p50 if pt.ttft_ms else None
    return pt.output_tokens_per_s


def cost_rows(columns: Sequence[Column]) -> list[CostRow]:
    """Suite score next to energy per token, peak VRAM, TTFT and joules per correct answer."""
    rows = []
    for col in columns:
        run, perf = col.run, col.run.performance
        correct = sum(t.counts.get("correct", 0) for t in run.tasks)
        jpc = perf.energy_j / correct if perf.energy_j is not None and correct else None
        rows.append(
            CostRow(
                col.label,
                run.suite_score.value if run.suite_score else None,
                perf.energy_per_output_token_j,
                perf.peak_vram_mib,
                perf.ttft_ms.p50 if perf.ttft_ms else None,
                jpc,
            )
        )
    return rows
