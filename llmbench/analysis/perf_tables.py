"""The comparison's performance tables: sweeps (TTFT and throughput against a swept setting) and accuracy per cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.analysis.direction import higher_is_better
from llmbench.results.schema import PerfPoint, RunResult

# (metric, swept setting, settings held fixed within one table)
SWEEPS: tuple[tuple[str, str, tuple[str, str]], ...] = (
    ("ttft_ms p50", "input_tokens", ("output_tokens", "concurrency")),
    ("output_tokens_per_s", "input_tokens", ("output_tokens", "concurrency")),
    ("ttft_ms p50", "concurrency", ("input_tokens", "output_tokens")),
    ("output_tokens_per_s", "concurrency", ("input_tokens", "output_tokens")),
)


@dataclass
class SweepTable:
    """A performance sweep: one figure per x value (input length or concurrency) per run that has one.

    `columns` are the indices of those runs among the comparison's (a quality run beside a perf run has
    no sweep, so no column here); `values[i][k]` is x index i, column `columns[k]`.
    """

    title: str
    metric: str
    x_name: str
    xs: list[float]
    values: list[list[float | None]]
    columns: list[int]

    @property
    def higher_is_better(self) -> bool | None:
        return higher_is_better(self.metric)

    def labels(self, labels: Sequence[str]) -> list[str]:
        """The comparison's column labels of this table's columns."""
        return [labels[j] for j in self.columns]


@dataclass
class CostRow:
    """Quality against what it cost, for one column."""

    label: str
    suite: str
    suite_score: float | None
    energy_per_output_token_j: float | None
    peak_vram_mib: float | None
    ttft_p50_ms: float | None
    joules_per_correct: float | None
    run_id: str = ""


def sweep_tables(runs: Sequence[RunResult]) -> list[SweepTable]:
    """TTFT and tokens/s against input length and against concurrency, one table per fixed shape.

    A table is a curve: two x values or more. A point that lies on no curve of its metric (a perf suite
    of single points) still gets one table, along input length, so that every measured point is shown
    once and no curve is repeated as a stack of one-row tables.
    """
    grouped = [(metric, x_name, _groups(runs, metric, x_name, fixed)) for metric, x_name, fixed in SWEEPS]
    on_a_curve = {
        (metric, j, id(pt))
        for metric, _, groups in grouped
        for group in groups.values()
        if len(group) > 1
        for points in group.values()
        for j, pt in enumerate(points)
        if pt is not None
    }
    tables: list[SweepTable] = []
    for metric, x_name, groups in grouped:
        for shape, group in sorted(groups.items(), key=lambda kv: str(kv[0])):
            lone = len(group) < 2
            if lone and (
                x_name != "input_tokens"
                or all(
                    pt is None or (metric, j, id(pt)) in on_a_curve
                    for points in group.values()
                    for j, pt in enumerate(points)
                )
            ):
                continue
            tables.append(_table(metric, x_name, shape, group, len(runs)))
    return tables


def _groups(
    runs: Sequence[RunResult], metric: str, x_name: str, fixed: tuple[str, str]
) -> dict[tuple[tuple[str, object], ...], dict[float, list[PerfPoint | None]]]:
    """Each run's points with a value of `metric`, by shape (the settings held fixed, and the traffic),
    then by x."""
    groups: dict[tuple[tuple[str, object], ...], dict[float, list[PerfPoint | None]]] = {}
    for j, run in enumerate(runs):
        for pt in run.performance.sweep:
            x = getattr(pt, x_name)
            if pt.error or x is None or _sweep_value(pt, metric) is None or pt.most_in_flight is not None:
                continue  # a point that never had its concurrency in flight is not a point of that load
            shape = tuple((f, getattr(pt, f)) for f in fixed) + _traffic(pt)
            groups.setdefault(shape, {}).setdefault(float(x), [None] * len(runs))[j] = pt
    return groups


def _table(
    metric: str,
    x_name: str,
    shape: tuple[tuple[str, object], ...],
    group: dict[float, list[PerfPoint | None]],
    n_runs: int,
) -> SweepTable:
    xs = sorted(group)
    columns = [j for j in range(n_runs) if any(group[x][j] is not None for x in xs)]
    values = [[_value(group[x][j], metric) for j in columns] for x in xs]
    fixed_text = ", ".join(f"{f}={v}" for f, v in shape if v is not None)
    title = f"{metric} vs {x_name}" + (f" ({fixed_text})" if fixed_text else "")
    return SweepTable(title, metric, x_name, xs, values, columns)


def _value(pt: PerfPoint | None, metric: str) -> float | None:
    return None if pt is None else _sweep_value(pt, metric)


def _traffic(pt: PerfPoint) -> tuple[tuple[str, object], ...]:
    """What else sets a point apart besides its lengths and concurrency: the rate and how requests
    arrive, the workload and its prefix caching (a shared prefix's caching-on and -off points have the
    same lengths). Not the task: files written before points knew it must line up with newer ones."""
    gamma = pt.arrival_process == "gamma"
    rated = pt.request_rate is not None
    return (
        ("request_rate", pt.request_rate),
        ("arrival", pt.arrival_process or ("poisson" if rated else None)),  # older files: Poisson
        ("burstiness", pt.burstiness if gamma else None),
        ("workload", pt.workload),
        ("prefix_caching", pt.prefix_caching if pt.workload is not None else None),
    )


def _sweep_value(pt: PerfPoint, metric: str) -> float | None:
    if metric == "ttft_ms p50":
        return pt.ttft_ms.p50 if pt.ttft_ms else None
    return pt.output_tokens_per_s


def cost_rows(labels: Sequence[str], runs: Sequence[RunResult]) -> list[CostRow]:
    """Suite score next to energy per token, peak VRAM, TTFT and joules per correct answer, per column that
    has one of them."""
    rows = []
    for label, run in zip(labels, runs, strict=True):
        perf = run.performance
        correct = sum(t.counts.get("correct", 0) for t in run.tasks)
        jpc = perf.energy_j / correct if perf.energy_j is not None and correct else None
        row = CostRow(
            label,
            run.suite_name,
            run.suite_score.value if run.suite_score else None,
            perf.energy_per_output_token_j,
            perf.peak_vram_mib,
            perf.ttft_ms.p50 if perf.ttft_ms else None,
            jpc,
            run.run_id,
        )
        figures = (row.suite_score, row.energy_per_output_token_j, row.peak_vram_mib, row.ttft_p50_ms, jpc)
        if any(f is not None for f in figures):  # a perf run on a CPU has none: no row of dashes
            rows.append(row)
    return rows
