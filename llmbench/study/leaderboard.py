"""The study's answer: one row per model with its suite scores, composite, costs, and the Pareto front.

Plain data that the terminal, Markdown and HTML renderers read. Suite scores keep their intervals;
the composite is a weighted mean of suite accuracies (and, with a judge, of its ratings) with an
interval from the suites' standard errors; a difference is called significant by the same tests
`llmbench compare` uses (paired where two runs share samples).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from llmbench.analysis.compare import build_comparison
from llmbench.analysis.repeats import merge_repeats
from llmbench.results import MetricValue, PerfPoint, RunResult
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
    "cost_per_correct_usd": ("$/correct", True),
}


@dataclass
class BoardRow:
    model: str
    backend: str
    variant: str  # dtype / quantization: what tells builds of one model apart
    scores: dict[str, MetricValue | None]
    composite: MetricValue | None
    composite_kind: str  # "accuracy" or "accuracy+judge"
    costs: dict[str, float | None]
    runs: dict[str, RunResult] = field(default_factory=dict, repr=False)


@dataclass
class Leaderboard:
    suites: list[str]
    axes: list[str]
    rows: list[BoardRow]  # best composite first
    significance: list[str]  # one line per significant (or not) difference from the leader
    pareto: list[str]  # models on the quality/cost front, cheapest first
    pareto_axis: str
    constraints: dict[str, float]
    best_fit: str | None  # the best composite among models that meet the constraints
    excluded: dict[str, str]  # model -> which constraint it breaks


def build_leaderboard(runs: Sequence[RunResult], spec: LeaderboardSpec) -> Leaderboard:
    """Rank models from their cells' results (repeats merged) under the study's leaderboard settings."""
    by_model: dict[str, list[RunResult]] = {}
    for run in merge_repeats(list(runs)):
        by_model.setdefault(run.model_name, []).append(run)
    quality_suites = sorted({r.suite_name for r in runs if r.tasks})
    rows = [_row(name, group, quality_suites, spec) for name, group in by_model.items()]
    rows.sort(key=lambda r: -(r.composite.value if r.composite else -1.0))
    constraints = {k: v for k, v in spec.constraints.model_dump().items() if v is not None}
    excluded = {r.model: why for r in rows if (why := _breaks(r, constraints))}
    fits = [r for r in rows if r.model not in excluded and r.composite is not None]
    return Leaderboard(
        suites=quality_suites,
        axes=list(spec.cost),
        rows=rows,
        significance=_significance(rows, quality_suites),
        pareto=pareto_front(rows, spec.pareto_cost),
        pareto_axis=spec.pareto_cost,
        constraints=constraints,
        best_fit=fits[0].model if fits else None,
        excluded=excluded,
    )


def _row(name: str, group: list[RunResult], suites: list[str], spec: LeaderboardSpec) -> BoardRow:
    first = group[0]
    quality = {r.suite_name: r for r in group if r.tasks}
    scores = {s: (quality[s].suite_score if s in quality else None) for s in suites}
    composite, kind = composite_score(list(quality.values()), spec)
    variant = first.model.get("quantization") or first.model.get("dtype") or ""
    return BoardRow(
        model=name,
        backend=str(first.backend.get("backend") or first.model.get("backend") or "?"),
        variant=str(variant),
        scores=scores,
        composite=composite,
        composite_kind=kind,
        costs=costs(group, spec.price_per_hour_usd),
        runs=quality,
    )


def composite_score(runs: Sequence[RunResult], spec: LeaderboardSpec) -> tuple[MetricValue | None, str]:
    """accuracy_weight x weighted suite accuracy + rating_weight x weighted judge rating (when judged)."""
    acc = _weighted([(r.suite_score, spec.weights.get(r.suite_name, 1.0)) for r in runs])
    ratings = [(_rating(r), spec.weights.get(r.suite_name, 1.0)) for r in runs]
    rating = _weighted(ratings) if all(x is not None for x, _ in ratings) and ratings else None
    c = spec.composite
    if acc is None:
        return None, "accuracy"
    if rating is None or c.rating_weight == 0:
        return acc, "accuracy"
    total = c.accuracy_weight + c.rating_weight
    parts = [(acc, c.accuracy_weight / total), (rating, c.rating_weight / total)]
    return _linear(parts), "accuracy+judge"


def _rating(run: RunResult) -> MetricValue | None:
    combined = run.summary.get("combined") or {}
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
    if all(m.stderr is not None for m, _ in parts):
        se = math.sqrt(sum((w * (m.stderr or 0.0)) ** 2 for m, w in parts))
        lo, hi = max(0.0, value - 1.96 * se), min(1.0, value + 1.96 * se)
    else:
        se, lo, hi = None, None, None
    return MetricValue(
        value=value, stderr=se, ci_low=lo, ci_high=hi, n=sum(m.n for m, _ in parts), method="weighted"
    )


def costs(group: Sequence[RunResult], price_per_hour_usd: float | None) -> dict[str, float | None]:
    sweep = [p for r in group for p in r.performance.sweep if p.error is None]
    vram = [r.performance.peak_vram_mib for r in group if r.performance.peak_vram_mib is not None]
    loads = [
        r.performance.load_time_s
        for r in group
        if r.performance.load_time_s is not None and "load_shared_with" not in r.summary
    ]
    perf_runs = [r for r in group if r.performance.sweep]
    energy = [
        r.performance.energy_per_output_token_j
        for r in (perf_runs or group)
        if r.performance.energy_per_output_token_j is not None
    ]
    return {
        "ttft_ms_p50_2k": _at(sweep, 2048, "ttft"),
        "ttft_ms_p50_32k": _at(sweep, 32768, "ttft"),
        "output_tokens_per_s_c1": _tps(sweep, 1),
        "output_tokens_per_s_c8": _tps(sweep, 8),
        "peak_vram_mib": max(vram) if vram else None,
        "load_time_s": loads[0] if loads else None,
        "energy_per_output_token_j": min(energy) if energy else None,
        "cost_per_correct_usd": _cost_per_correct([r for r in group if r.tasks], price_per_hour_usd),
    }


def _at(points: Sequence[PerfPoint], tokens: int, _what: str) -> float | None:
    """TTFT p50 at concurrency 1 at the input length closest to `tokens` (within a factor of two)."""
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
    values = [
        p.output_tokens_per_s
        for p in points
        if p.concurrency == concurrency and p.output_tokens_per_s is not None
    ]
    return max(values) if values else None


def _cost_per_correct(runs: Sequence[RunResult], price_per_hour_usd: float | None) -> float | None:
    if price_per_hour_usd is None:
        return None
    wall = sum(r.performance.generation_wall_s or 0.0 for r in runs)
    correct = sum(t.counts.get("correct", 0) for r in runs for t in r.tasks)
    return price_per_hour_usd * wall / 3600 / correct if correct and wall else None


def pareto_front(rows: Sequence[BoardRow], axis: str) -> list[str]:
    """Models no other model beats on both composite and the cost axis; cheapest first."""
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
    """Per suite: is the leader's score significantly above each other model's?"""
    lines: list[str] = []
    for suite in suites:
        ranked = sorted(
            (r for r in rows if r.scores.get(suite) is not None),
            key=lambda r: -(r.scores[suite].value),  # type: ignore[union-attr]
        )
        if len(ranked) < 2:
            continue
        lead = ranked[0]
        for other in ranked[1:]:
            comp = build_comparison([lead.runs[suite], other.runs[suite]], baseline=lead.runs[suite])
            row = next((r for r in comp.section("suite")), None)
            delta = row.deltas[1] if row and len(row.deltas) > 1 else None
            if delta is None or delta.significant is None:
                verdict = "not tested"
            elif delta.significant:
                verdict = (
                    f"significant (p={delta.p_value:.3g}, {delta.test})"
                    if delta.p_value is not None
                    else "significant"
                )
            else:
                verdict = (
                    f"not significant (p={delta.p_value:.3g})"
                    if delta.p_value is not None
                    else "not significant"
                )
            lines.append(f"{suite}: {lead.model} vs {other.model}: {verdict}")
    return lines
