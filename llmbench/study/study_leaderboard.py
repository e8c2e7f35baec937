"""The study's answer, on top of the compare leaderboard: a composite, study cost columns, the Pareto front.

`llmbench.analysis.leaderboard` gives the rows (model, backend, variant), the suite scores with their
intervals and which differences from each column's best are significant. A study adds what it alone
knows: the composite (suite accuracies weighted as the study says, with the judge's rating when it has
one) with an interval from the suites' standard errors; cost columns read from its performance cells
(TTFT at 2K and 32K, tokens/s at concurrency 1 and 8, load time paid once, and the cost per correct answer
in both kinds `analysis.costs` keeps apart: the host's price per hour for self-hosted runs, the per-token API
prices for hosted ones);
the Pareto front of composite against one cost; and the best model within the constraints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.analysis import costs as money
from llmbench.analysis import leaderboard as base
from llmbench.analysis.compare import measures_model
from llmbench.analysis.repeats import merge_repeats
from llmbench.results.schema import MetricValue, PerfPoint, RunResult
from llmbench.study.spec import LeaderboardSpec

# cost axis -> (label, True when lower is better)
AXES: dict[str, tuple[str, bool]] = {
    "ttft_ms_p50_2k": ("TTFT p50 @2K (ms)", True),
    "ttft_ms_p50_32k": ("TTFT p50 @32K (ms)", True),
    "output_tokens_per_s_c1": ("out tok/s c=1", False),
    "output_tokens_per_s_c8": ("out tok/s c=8", False),
    "peak_vram_mib": ("peak VRAM (MiB)", True),
    "load_time_s": ("load (s)", True),
    "energy_per_output_token_j": ("J/token", True),
    "cost_per_correct_usd": ("host $/correct", True),  # GPU time at the study's price per hour
    "api_cost_per_correct_usd": ("API $/correct", True),  # tokens at the model's per-token prices
}


@dataclass
class BoardRow:
    row: base.Row  # the compare leaderboard's row: label, suite cells with intervals and significance
    composite: MetricValue | None
    composite_kind: str  # "accuracy" or "accuracy+judge"
    costs: dict[str, float | None]

    @property
    def model(self) -> str:
        return self.row.label

    def score(self, suite: str) -> base.Cell | None:
        return self.row.cells.get(f"suite:{suite}")


@dataclass
class Leaderboard:
    board: base.Leaderboard
    suites: list[str]  # quality suites (performance-only suites have no score)
    axes: list[str]
    rows: list[BoardRow]  # best composite first; rows that measure no model (the reference) last
    significance: list[str]  # per suite: the leader against each other row
    pareto: list[str]  # rows on the quality/cost front, cheapest first
    pareto_axis: str
    constraints: dict[str, float]
    best_fit: str | None  # the best composite among rows that meet the constraints
    excluded: dict[str, str]  # row -> the constraint it breaks


def build_leaderboard(runs: Sequence[RunResult], spec: LeaderboardSpec) -> Leaderboard:
    """Rank the study's rows from its cells' results (repeats merged) under its leaderboard settings."""
    merged = merge_repeats(list(runs))
    board = base.build_leaderboard(merged)
    suites = sorted({r.suite_name for r in merged if r.tasks})
    rows = []
    for row in board.rows:
        quality = [r for r in row.runs if r.tasks]
        composite, kind = composite_score(quality, spec)
        rows.append(BoardRow(row, composite, kind, costs(row.runs, spec.price_per_hour_usd)))
    rows.sort(key=lambda r: (not r.row.measures_model, -(r.composite.value if r.composite else -1.0)))
    constraints = {k: v for k, v in spec.constraints.model_dump().items() if v is not None}
    contenders = [r for r in rows if r.row.measures_model]
    excluded = {r.model: why for r in contenders if (why := _breaks(r, constraints))}
    fits = [r for r in contenders if r.model not in excluded and r.composite is not None]
    return Leaderboard(
        board=board,
        suites=suites,
        axes=list(spec.cost),
        rows=rows,
        significance=_significance(rows, suites),
        pareto=pareto_front(contenders, spec.pareto_cost),
        pareto_axis=spec.pareto_cost,
        constraints=constraints,
        best_fit=fits[0].model if fits else None,
        excluded=excluded,
    )


def composite_score(runs: Sequence[RunResult], spec: LeaderboardSpec) -> tuple[MetricValue | None, str]:
    """accuracy_weight x weighted suite accuracy + rating_weight x weighted judge rating (when judged)."""
    acc = _weighted([(r.suite_score, spec.weights.get(r.suite_name, 1.0)) for r in runs])
    ratings = [(_rating(r), spec.weights.get(r.suite_name, 1.0)) for r in runs]
    rating = _weighted(ratings) if ratings and all(x is not None for x, _ in ratings) else None
    c = spec.composite
    if acc is None:
        return None, "accuracy"
    if rating is None or c.rating_weight == 0:
        return acc, "accuracy"
    total = c.accuracy_weight + c.rating_weight
    return _linear([(acc, c.accuracy_weight / total), (rating, c.rating_weight / total)]), "accuracy+judge"


def _rating(run: RunResult) -> MetricValue | None:
    combined = run.summary.combined or {}
    rating = combined.get("rating") if isinstance(combined, dict) else None
    return MetricValue.model_validate(rating) if isinstance(rating, dict) else None


def _weighted(items: Sequence[tuple[MetricValue | None, float]]) -> MetricValue | None:
    present = [(m, w) for m, w in items if m is not None and w > 0]
    if not present or len(present) < len([1 for _, w in items if w > 0]):
        return None  # a missing suite would flatter the model: no composite until every suite is in
    total = sum(w for _, w in present)
    return _linear([(m, w / total) for m, w in present])


def _linear(parts: Sequence[tuple[MetricValue, float]]) -> MetricValue:
    """A weighted sum of independent estimates, its standard error and a normal 95% interval."""
    value = sum(m.value * w for m, w in parts)
    se = lo = hi = None
    if all(m.stderr is not None for m, _ in parts):
        se = math.sqrt(sum((w * (m.stderr or 0.0)) ** 2 for m, w in parts))
        lo, hi = max(0.0, value - 1.96 * se), min(1.0, value + 1.96 * se)
    n = sum(m.n for m, _ in parts)
    return MetricValue(value=value, stderr=se, ci_low=lo, ci_high=hi, n=n, method="weighted")


def costs(group: Sequence[RunResult], price_per_hour_usd: float | None) -> dict[str, float | None]:
    """The study's cost columns for one row; None where its cells did not measure the figure."""
    timed = [r for r in group if measures_model(r)]
    sweep = [p for r in timed for p in r.performance.sweep if p.error is None]
    vram = [r.performance.peak_vram_mib for r in timed if r.performance.peak_vram_mib is not None]
    # the run that loaded the model measured the load; the others borrowed it (load_shared_with)
    loads = [
        r.performance.load_time_s
        for r in group
        if r.performance.load_time_s is not None and r.summary.load_shared_with is None
    ]
    perf_runs = [r for r in timed if r.performance.sweep] or timed
    energy = [
        r.performance.energy_per_output_token_j
        for r in perf_runs
        if r.performance.energy_per_output_token_j is not None
    ]
    return {
        "ttft_ms_p50_2k": _ttft_at(sweep, 2048),
        "ttft_ms_p50_32k": _ttft_at(sweep, 32768),
        "output_tokens_per_s_c1": _tps(sweep, 1),
        "output_tokens_per_s_c8": _tps(sweep, 8),
        "peak_vram_mib": max(vram) if vram else None,
        "load_time_s": min(loads) if loads else None,
        "energy_per_output_token_j": min(energy) if energy else None,
        "cost_per_correct_usd": money.host_cost_per_correct(
            [r for r in timed if r.tasks], price_per_hour_usd
        ),
        "api_cost_per_correct_usd": money.api_cost_per_correct(group),
    }


def _ttft_at(points: Sequence[PerfPoint], tokens: int) -> float | None:
    """TTFT p50 at concurrency 1 at the input length nearest `tokens` (within a factor of two)."""
    near = [
        p
        for p in points
        if p.ttft_ms is not None and p.concurrency in (1, None) and tokens / 2 <= p.input_tokens <= tokens * 2
    ]
    if not near:
        return None
    best = min(near, key=lambda p: abs(math.log(p.input_tokens / tokens)))
    return best.ttft_ms.p50 if best.ttft_ms else None


def _tps(points: Sequence[PerfPoint], concurrency: int) -> float | None:
    """Output tokens/s at a concurrency, from the concurrency sweep (the input length swept most)."""
    at = [p for p in points if p.concurrency == concurrency and p.output_tokens_per_s is not None]
    if not at:
        return None
    lengths = [p.input_tokens for p in points if p.concurrency is not None]
    common = max(set(lengths), key=lengths.count)
    chosen = [p for p in at if p.input_tokens == common] or at
    return chosen[0].output_tokens_per_s


def pareto_front(rows: Sequence[BoardRow], axis: str) -> list[str]:
    """Rows no other row beats on both composite and the cost axis; cheapest first."""
    sign = 1.0 if AXES[axis][1] else -1.0  # costs compared as "lower is better"
    pts: list[tuple[str, float, float]] = []
    for r in rows:
        cost = r.costs.get(axis)
        if r.composite is not None and cost is not None:
            pts.append((r.model, r.composite.value, sign * cost))

    def dominated(q: float, c: float) -> bool:
        return any(q2 >= q and c2 <= c and (q2 > q or c2 < c) for _, q2, c2 in pts)

    front = sorted((p for p in pts if not dominated(p[1], p[2])), key=lambda p: p[2])
    return [m for m, _, _ in front]


def _breaks(row: BoardRow, constraints: dict[str, float]) -> str | None:
    checks = (
        ("max_vram_mib", "peak_vram_mib", lambda v, lim: v <= lim, "peak VRAM"),
        ("max_ttft_ms", "ttft_ms_p50_2k", lambda v, lim: v <= lim, "TTFT p50 @2K"),
        ("min_tokens_per_s", "output_tokens_per_s_c1", lambda v, lim: v >= lim, "tokens/s c=1"),
    )
    for key, axis, ok, label in checks:
        if key not in constraints:
            continue
        value = row.costs.get(axis)
        if value is None:
            return f"{label} not measured"
        if not ok(value, constraints[key]):
            return f"{label} {value:.6g} vs limit {constraints[key]:.6g}"
    return None


def _significance(rows: Sequence[BoardRow], suites: Sequence[str]) -> list[str]:
    """Per suite, from the compare leaderboard's tests: is the best row significantly ahead of each other?"""
    lines: list[str] = []
    for suite in suites:
        scored = [(r, c) for r in rows if (c := r.score(suite)) is not None and c.value is not None]
        leader = next((r for r, c in scored if c.best), None)
        if leader is None:
            continue
        for r, c in scored:
            if r is leader or not r.row.measures_model:
                continue
            p = f" (p={c.p_value:.3g}, {c.test})" if c.p_value is not None else ""
            verdict = {True: "significant", False: "not significant", None: "not tested"}[c.significant]
            lines.append(f"{suite}: {leader.model} vs {r.model}: {verdict}{p}")
    return lines
