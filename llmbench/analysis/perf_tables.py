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
    ("output_tokens_per_s", "concurrency", ("input_tokens", "output_tokens")),
)


@dataclass
class SweepTable:
    """A performance sweep: one figure per x value (input length or concurrency) per column."""

    title: str
    metric: str
    x_name: str
    xs: list[float]
    values: list[list[float | None]]  # values[i][j]: x index i, column j

    @property
    def higher_is_better(self) -> bool | None:
        return higher_is_better(self.metric)


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


def sweep_tables(runs: Sequence[RunResult]) -> list[SweepTable]:
    """TTFT and tokens/s against input length, and throughput against concurrency, one table per fixed shape."""
    tables: list[SweepTable] = []
    for metric, x_name, fixed in SWEEPS:
        groups: dict[tuple[tuple[str, object], ...], dict[float, list[float | None]]] = {}
        for j, run in enumerate(runs):
            for pt in run.performance.sweep:
                x, y = getattr(pt, x_name), _sweep_value(pt, metric)
                if pt.error or x is None or y is None:
                    continue
                shape = tuple((f, getattr(pt, f)) for f in fixed) + _traffic(pt)
                groups.setdefault(shape, {}).setdefault(float(x), [None] * len(runs))[j] = y
        swept = any(len(points) > 1 for points in groups.values())
        for group, points in sorted(groups.items(), key=lambda kv: str(kv[0])):
            if swept and len(points) < 2:  # a lone point of another shape is not a curve
                continue
            fixed_text = ", ".join(f"{f}={v}" for f, v in group if v is not None)
            xs = sorted(points)
            title = f"{metric} vs {x_name}" + (f" ({fixed_text})" if fixed_text else "")
            tables.append(SweepTable(title, metric, x_name, xs, [points[x] for x in xs]))
    return tables


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
    """Suite score next to energy per token, peak VRAM, TTFT and joules per correct answer, per column."""
    rows = []
    for label, run in zip(labels, runs, strict=True):
        perf = run.performance
        correct = sum(t.counts.get("correct", 0) for t in run.tasks)
        jpc = perf.energy_j / correct if perf.energy_j is not None and correct else None
        rows.append(
            CostRow(
                label,
                run.suite_name,
                run.suite_score.value if run.suite_score else None,
                perf.energy_per_output_token_j,
                perf.peak_vram_mib,
                perf.ttft_ms.p50 if perf.ttft_ms else None,
                jpc,
            )
        )
    return rows
