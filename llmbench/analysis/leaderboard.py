"""The leaderboard: one row per model (and backend, variant), one column per suite score, then cost figures.

This is the table published comparisons end with, as plain data for every renderer and for the study
leaderboard built on it:

    board = build_leaderboard(runs)              # runs: one per (model, backend, variant, suite)
    for row in board.rows:
        cell = board.cell(row, board.columns[0])  # a Cell, or None where the row did not run that suite
        cell.value, cell.ci_low, cell.ci_high, cell.best, cell.significant

A suite cell is the run's weighted suite score with its 95% interval. In each column the best cell is
compared with every other: `significant` on the best cell says it beats each of them (a paired test where
the runs scored the same samples, an unpaired one otherwise, as `compare` does); on another cell it says
that cell is significantly behind the best. TTFT and tok/s come from performance measurements where any
row has them: the perf sweep point (closed loop, unique prompts) at the load most rows measured, the
lowest concurrency for TTFT and the highest for tok/s, named in the column's title; a row without that
point has no value there. Only where no row has a sweep are they the quality runs' own timings, and the
column's `source` says so: there every request was handed to the engine at once, so TTFT is a queue
position, not a serving figure. VRAM and energy are the median over the row's suites. A run whose backend
does not measure the model (the reference backend) has no performance cells (`measured=False`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmbench.analysis import costs
from llmbench.analysis.compare import measures_model
from llmbench.analysis.direction import higher_is_better
from llmbench.analysis.select import run_key
from llmbench.analysis.significance import ALPHA, paired_suite_delta
from llmbench.results.schema import PerfPoint, RunResult
from llmbench.scoring import stats

Load = tuple[int, int, int]  # input tokens, output tokens, concurrency of a closed-loop sweep point
SERVING = {"ttft_p50_ms": min, "output_tokens_per_s": max}  # which concurrency each one is read at


@dataclass(frozen=True)
class Column:
    """A suite score or a key performance figure; `key` is stable (`suite:math`, `ttft_p50_ms`)."""

    key: str
    title: str
    kind: str  # "suite" or "performance"
    unit: str = ""
    source: str = "runs"  # performance: "sweep" (a perf point at the load in `load`) or "quality runs"
    load: Load | None = None

    @property
    def higher_is_better(self) -> bool | None:
        return True if self.kind == "suite" else higher_is_better(self.key)


@dataclass
class Cell:
    """One value with its interval, where it came from, and how it stands against its column's best."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    run_ids: list[str] = field(default_factory=list)
    measured: bool = True  # False: the backend has no timings of the model (value is None)
    best: bool = False
    significant: bool | None = None  # best: beats every other cell; else: behind the best; None: untested
    p_value: float | None = None  # against the best (the largest over the others, on the best cell)
    test: str | None = None


@dataclass
class Row:
    """A model on a backend (and variant): the label says all three where they tell rows apart."""

    model: str
    backend: str
    variant: str
    label: str
    cells: dict[str, Cell] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)
    created_at: str = ""

    @property
    def measures_model(self) -> bool:
        """False for the reference backend's row: its scores are the suite's ceiling, not a model's."""
        return all(measures_model(r) for r in self.runs)


@dataclass
class Leaderboard:
    columns: list[Column]
    rows: list[Row]
    alpha: float = ALPHA
    sources: dict[str, str] = field(default_factory=dict)  # run id -> the file it was read from
    unscored: list[str] = field(default_factory=list)  # suites with no score (a perf sweep): no column

    def files(self, cell: Cell) -> list[str]:
        """The results files a cell was computed from (where the caller said which)."""
        return [self.sources[i] for i in cell.run_ids if i in self.sources]

    def cell(self, row: Row, column: Column) -> Cell | None:
        return row.cells.get(column.key)

    @property
    def suites(self) -> list[Column]:
        return [c for c in self.columns if c.kind == "suite"]


# (key, title, unit, figure of one run)
PERFORMANCE: tuple[tuple[str, str, str, Callable[[RunResult], float | None]], ...] = (
    ("ttft_p50_ms", "TTFT p50", "ms", lambda r: r.performance.ttft_ms.p50 if r.performance.ttft_ms else None),
    ("output_tokens_per_s", "tok/s", "", lambda r: r.performance.output_tokens_per_s),
    ("peak_vram_mib", "VRAM", "MiB", lambda r: r.performance.peak_vram_mib),
    ("energy_per_output_token_j", "energy", "J/tok", lambda r: r.performance.energy_per_output_token_j),
)


def build_leaderboard(
    runs: Sequence[RunResult],
    *,
    alpha: float = ALPHA,
    by_date: bool = False,
    sources: dict[str, str] | None = None,
) -> Leaderboard:
    """Rows in order of mean suite score (best first, the reference backend last); `by_date` keeps runs of
    other dates as rows of their own; `sources` maps run ids to the files they came from."""
    rows: dict[tuple[str, ...], Row] = {}
    for run in runs:
        model, backend, var, _ = run_key(run)
        key = (model, backend, var) + ((run.created_at[:10],) if by_date else ())
        row = rows.setdefault(key, Row(model, backend, var, ""))
        row.runs.append(run)
        row.created_at = max(row.created_at, run.created_at)
    suites = sorted({run.suite_name for run in runs if run.suite_score is not None})
    unscored = sorted({run.suite_name for run in runs} - set(suites))
    columns = [Column(f"suite:{s}", s, "suite") for s in suites]
    columns += performance_columns(list(rows.values()), runs)
    columns += cost_columns(runs)
    for row in rows.values():
        for col in columns:
            if col.kind == "suite":
                row.cells[col.key] = _suite_cell(row, col.title)
            elif col.kind == "cost":
                row.cells[col.key] = _cost_cell(row, col.key)
            elif col.load is not None:
                row.cells[col.key] = _serving_cell(row, col)
            else:
                row.cells[col.key] = _performance_cell(row, col.key)
    board = Leaderboard(columns, list(rows.values()), alpha, dict(sources or {}), unscored)
    _label(board.rows, by_date)
    for col in columns:
        _mark_best(board, col)
    board.rows.sort(key=lambda r: (not r.measures_model, -_mean_score(board, r), r.label))
    return board


def performance_columns(rows: list[Row], runs: Sequence[RunResult]) -> list[Column]:
    """The performance columns: TTFT and tok/s from sweep points where any row has them, else from the
    quality runs (titled so); VRAM and energy from every run."""
    columns = []
    for key, title, unit, get in PERFORMANCE:
        load = serving_load(rows, SERVING[key]) if key in SERVING else None
        if load is not None:
            where = f"{load[0]} in, c{load[2]}" if key == "ttft_p50_ms" else f"c{load[2]}"
            columns.append(Column(key, f"{title} ({where})", "performance", unit, "sweep", load))
        elif any(_timed(r, get) for r in runs):
            source = "quality runs" if key in SERVING else "runs"
            columns.append(Column(key, title, "performance", unit, source))
    return columns


def serving_points(runs: Sequence[RunResult]) -> list[PerfPoint]:
    """The runs' closed-loop sweep points of unique prompts that reached their concurrency and finished
    with the client keeping up."""
    return [
        p
        for r in runs
        if measures_model(r)
        for p in r.performance.sweep
        if p.concurrency
        and p.request_rate is None
        and p.workload is None
        and not p.error
        and not p.client_bound
        and p.most_in_flight is None
    ]


def serving_load(rows: list[Row], pick: Callable[[list[int]], int]) -> Load | None:
    """The load most rows measured at their lowest (`min`) or highest (`max`) concurrency; ties: the smallest."""
    counts: dict[Load, int] = {}
    for row in rows:
        points = serving_points(row.runs)
        if not points:
            continue
        level = pick([p.concurrency or 0 for p in points])
        for load in {
            (p.input_tokens, p.output_tokens, p.concurrency or 0) for p in points if p.concurrency == level
        }:
            counts[load] = counts.get(load, 0) + 1
    return min(counts, key=lambda k: (-counts[k], k)) if counts else None


def _serving_cell(row: Row, col: Column) -> Cell:
    timed = [r for r in row.runs if measures_model(r)]
    if not timed:
        return Cell(None, measured=False, run_ids=[i for r in row.runs for i in _ids(r)])
    matching = [
        (p, r)
        for r in timed
        for p in serving_points([r])
        if (p.input_tokens, p.output_tokens, p.concurrency) == col.load
    ]
    if not matching:
        return Cell(None)
    point, run = matching[-1]  # the latest run's
    if col.key == "ttft_p50_ms":
        ci = point.ttft_ms.ci.get("p50") if point.ttft_ms else None
        value = point.ttft_ms.p50 if point.ttft_ms else None
        n = point.ttft_ms.n if point.ttft_ms else 0
        low, high = ci or (None, None)
        return Cell(value, low, high, n=n, run_ids=_ids(run))
    return Cell(point.output_tokens_per_s, n=point.n_requests, run_ids=_ids(run))


# (key, title, figure of a row's runs): a hosted model's tokens at its per-token prices (see analysis.costs)
COSTS: tuple[tuple[str, str, Callable[[Sequence[RunResult]], float | None]], ...] = (
    ("api_cost_usd", "API cost", costs.api_cost_usd),
    ("api_cost_per_correct_usd", "API $/correct", costs.api_cost_per_correct),
)


def cost_columns(runs: Sequence[RunResult]) -> list[Column]:
    """The API cost columns, where some run's model had per-token prices."""
    if not any(costs.priced(r) for r in runs):
        return []
    return [
        Column(key, title, "cost", "$" if key == "api_cost_usd" else "", "prices") for key, title, _ in COSTS
    ]


def _cost_cell(row: Row, key: str) -> Cell:
    get = next(g for k, _, g in COSTS if k == key)
    runs = [r for r in row.runs if costs.priced(r)]
    return Cell(get(runs), run_ids=[i for r in runs for i in _ids(r)]) if runs else Cell(None)


def _timed(run: RunResult, get: Callable[[RunResult], float | None]) -> bool:
    return measures_model(run) and get(run) is not None


def _suite_cell(row: Row, suite: str) -> Cell:
    run = next((r for r in reversed(row.runs) if r.suite_name == suite), None)
    if run is None or run.suite_score is None:
        return Cell(None)
    s = run.suite_score
    return Cell(s.value, s.ci_low, s.ci_high, s.n, _ids(run))


def _performance_cell(row: Row, key: str) -> Cell:
    get = next(g for k, _, _, g in PERFORMANCE if k == key)
    timed = [r for r in row.runs if measures_model(r)]
    if not timed:
        return Cell(None, measured=False, run_ids=[i for r in row.runs for i in _ids(r)])
    values = [(v, r) for r in timed if (v := get(r)) is not None]
    if not values:
        return Cell(None)
    cell = Cell(statistics.median(v for v, _ in values), run_ids=[i for _, r in values for i in _ids(r)])
    if len(values) == 1 and key == "ttft_p50_ms":
        ttft = values[0][1].performance.ttft_ms
        ci = ttft.ci.get("p50") if ttft else None
        if ci:
            cell.ci_low, cell.ci_high = ci
    return cell


def _ids(run: RunResult) -> list[str]:
    return [str(i) for i in run.settings.repeat_run_ids or [run.run_id]]


def _label(rows: list[Row], by_date: bool) -> None:
    """The model name, with the backend and variant (and date) where other rows share the model."""
    models = [r.model for r in rows]
    for row in rows:
        parts = [row.model]
        if models.count(row.model) > 1 or len({r.backend for r in rows}) > 1:
            parts.append(row.backend)
        if row.variant:
            parts.append(row.variant)
        if by_date:
            parts.append(row.created_at[:10])
        row.label = " · ".join(parts)
    labels = [r.label for r in rows]
    for row in rows:  # still shared (same model, backend, variant on one day): the time tells them apart
        if labels.count(row.label) > 1:
            row.label += f" {row.created_at[11:16]}"


def _mark_best(board: Leaderboard, col: Column) -> None:
    higher = col.higher_is_better
    # A run of the reference backend is the ceiling a suite allows, not a contender.
    present = [
        (r, c)
        for r in board.rows
        if r.measures_model and (c := r.cells.get(col.key)) is not None and c.value is not None
    ]
    if higher is None or len(present) < 2 or len({c.value for _, c in present}) == 1:
        return
    best_row, best = (max if higher else min)(present, key=lambda rc: rc[1].value or 0.0)
    best.best = True
    p_values: list[float | None] = []
    for row, cell in present:
        if cell is not best:
            cell.significant, cell.p_value, cell.test = _test(col, best_row, best, row, cell, board.alpha)
            p_values.append(cell.p_value)
    best.p_value = None if None in p_values else max(p for p in p_values if p is not None)
    best.significant = all(c.significant for _, c in present if c is not best)


def _test(
    col: Column, best_row: Row, best: Cell, row: Row, cell: Cell, alpha: float
) -> tuple[bool | None, float | None, str | None]:
    """Whether `cell` is significantly behind the column's best, its p-value and the test (paired where
    the runs scored the same samples); performance figures: whether their intervals are disjoint."""
    if col.kind != "suite":
        if None in (best.ci_low, best.ci_high, cell.ci_low, cell.ci_high):
            return None, None, None
        disjoint = cell.ci_low > best.ci_high or cell.ci_high < best.ci_low  # type: ignore[operator]
        return disjoint, None, "ci-overlap"
    p, test = _suite_test(col.title, best_row, row)
    return (None if p is None else p < alpha), p, test


def _suite_test(suite: str, best_row: Row, row: Row) -> tuple[float | None, str | None]:
    a = next(r for r in reversed(best_row.runs) if r.suite_name == suite)
    b = next(r for r in reversed(row.runs) if r.suite_name == suite)
    paired = paired_suite_delta(a, b) if a.samples and b.samples else None
    if paired is not None:
        return paired.p_value, paired.test
    sa, sb = a.suite_score, b.suite_score
    if sa is None or sb is None or sa.n == 0 or sb.n == 0:
        return None, None
    if sa.method == "wilson" and sb.method == "wilson":
        return stats.two_proportion_test(sa, sb)[3], "two-proportion"
    if sa.stderr is None or sb.stderr is None:
        return None, None
    return stats.welch_test(sa, sb)[3], "welch"


def _mean_score(board: Leaderboard, row: Row) -> float:
    values = [c.value for col in board.suites if (c := row.cells.get(col.key)) and c.value is not None]
    return sum(values) / len(values) if values else -1.0
