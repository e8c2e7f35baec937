"""The regression gate: does a candidate run fall behind a baseline by more than noise and tolerance?

Quality metrics regress when they drop by more than their threshold AND a one-sided test says the drop is
significant; performance figures (the run's throughput, VRAM and energy, and every figure of each sweep
point both runs share) regress when they worsen by more than their floor AND, where a noise band is known
(`--history`: the last good nights; else the repeats merged into the candidate or the baseline), by more
than that noise, or, without one, where a permutation test over the point's requests says a latency p50
rose. Latency is gated at sweep points only: a run's own latencies are its quality samples', shown and
not gated; a percentile of too few requests is withheld. With a history, every figure is also judged against the median of those
nights, so a slow drift fails even when each night is close to the one before. Every tested decision
joins one family corrected by Holm's method at the gate's alpha. "Drop" and "worsen" follow
`llmbench.analysis.direction`. A gated figure or sweep point that the baseline has and the candidate lacks
fails too, as does a candidate of another suite: a gate that compared nothing must not pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from llmbench.analysis.compare import (
    QUALITY_RUN_LATENCY_LABEL,
    Row,
    build_comparison,
    measures_model,
)
from llmbench.analysis.figures import (
    RUN_LEVEL,
    SUITE,
    Figure,
    performance_figures,
    quality_figures,
    withheld_figures,
)
from llmbench.analysis.gate_checks import (
    Bands,
    Check,
    Regression,
    decide,
    performance_checks,
    recent_checks,
)
from llmbench.analysis.gate_config import DEFAULT_GATES as DEFAULT_GATES
from llmbench.analysis.gate_config import DEFAULT_PERFORMANCE as DEFAULT_PERFORMANCE
from llmbench.analysis.gate_config import GateThresholds as GateThresholds
from llmbench.analysis.gate_config import QualityThresholds as QualityThresholds
from llmbench.analysis.gate_config import load_thresholds as load_thresholds
from llmbench.analysis.noise import MIN_RUNS, noise_bands, repeat_bands
from llmbench.analysis.significance import one_sided_worse
from llmbench.results.schema import MetricValue, RunResult

__all__ = ["DEFAULT_GATES", "GateReport", "GateThresholds", "Regression", "check_regressions", "gate_report"]


@dataclass
class GateReport:
    """The gate's verdict on one candidate: its regressions, every check it made and the family size."""

    regressions: list[Regression]
    checks: list[Check] = field(default_factory=list)
    nights: int = 0  # good nights behind the noise bands and the recent median; 0: none given
    repeats: int = 0  # repeats behind the noise bands of figures the nights give none for; 0: none used
    ungated: list[str] = field(default_factory=list)  # figures shown but not judged, and why

    @property
    def family(self) -> int:
        """How many tests Holm's correction is taken over."""
        return sum(1 for c in self.checks if c.p_value is not None)

    def lines(self, alpha: float) -> list[str]:
        """The family in words, then each check that has a noise band, with its decision."""
        head = f"gate: {self.family} tests, Holm-corrected to alpha {alpha} over the family"
        if self.nights:
            head += f"; noise bands and the recent median from {self.nights} good nights"
        if self.repeats:
            head += f"; noise bands {'of the rest ' if self.nights else ''}from {self.repeats} repeats"
        verdicts = [
            f"gate: {c.summary()}: {'REGRESSED' if c.regressed(alpha) else 'ok'}"
            for c in self.checks
            if c.shown
        ]
        return [head, *verdicts, *(f"gate: {line}" for line in self.ungated)]


def gate_report(
    baseline: RunResult,
    candidate: RunResult,
    thresholds: GateThresholds,
    history: Sequence[RunResult] = (),
    repeats: tuple[Sequence[RunResult], Sequence[RunResult]] = ((), ()),
) -> GateReport:
    """Every check of `candidate` against the pinned `baseline` and, given the good nights before it in
    `history`, against their median, with the noise bands they give. `repeats` are the runs merged into
    the baseline and into the candidate: their spread is the band of each figure the nights give none for."""
    if candidate.suite_name != baseline.suite_name:
        reason = (
            f"the candidate ran suite '{candidate.suite_name}' but the baseline ran '{baseline.suite_name}': "
            "nothing to compare"
        )
        return GateReport(
            [Regression("suite", candidate.suite_name, "(suite)", "suite", None, None, None, None, reason)]
        )
    nights = [r for r in history if r.suite_name == candidate.suite_name][-thresholds.history.window :]
    bands: Bands = noise_bands(nights) if len(nights) >= MIN_RUNS else {}
    spread = {k: b for k, b in repeat_bands(*repeats).items() if k not in bands}
    checks, lost = quality_checks(baseline, candidate, thresholds)
    # Timings gate only against the same backend: another engine's latency is a comparison, not a regression.
    timed = measures_model(baseline) and measures_model(candidate) and same_backend(baseline, candidate)
    if timed:
        perf, gone = performance_checks(baseline, candidate, thresholds, bands | spread)
        checks, lost = checks + perf, lost + gone
    if bands and thresholds.history.against_median:
        figures = quality_figures(candidate) + (performance_figures(candidate) if timed else [])
        checks += recent_checks(
            candidate, figures, thresholds, bands, _gated_keys(baseline, figures, thresholds)
        )
    used = timed and spread and any(c.band and "repeats" in c.band for c in checks)
    return GateReport(
        lost + decide(checks, thresholds.alpha),
        checks,
        len(nights) if bands else 0,
        len(repeats[0]) + len(repeats[1]) if used else 0,
        not_judged(baseline, candidate) if timed else [],
    )


def not_judged(baseline: RunResult, candidate: RunResult) -> list[str]:
    """What the gate shows but does not judge: the quality samples' latencies, and sweep percentiles of too
    few requests ("perf [point ... conc=4] ttft_ms p90: — (12 requests; a p90 needs 29), not gated")."""
    lines = []
    if baseline.performance.ttft_ms is not None or candidate.performance.ttft_ms is not None:
        lines.append(
            f"{candidate.suite_name} {QUALITY_RUN_LATENCY_LABEL} (TTFT, TPOT, E2E) is shown, not gated: "
            "latency is gated at perf sweep points"
        )
    withheld = withheld_figures(baseline) | withheld_figures(candidate)
    for (where, metric), reason in withheld.items():
        at = "" if where == RUN_LEVEL else f" [{where}]"
        lines.append(f"{candidate.suite_name}{at} {metric}: — ({reason}), not gated")
    return lines


def check_regressions(
    baseline: RunResult,
    candidate: RunResult,
    thresholds: GateThresholds,
    history: Sequence[RunResult] = (),
    repeats: tuple[Sequence[RunResult], Sequence[RunResult]] = ((), ()),
) -> list[Regression]:
    """Every regression of `candidate` against `baseline` (and the good nights in `history`)."""
    return gate_report(baseline, candidate, thresholds, history, repeats).regressions


def same_backend(baseline: RunResult, candidate: RunResult) -> bool:
    return baseline.backend.backend == candidate.backend.backend


def ungated(baseline: RunResult, candidate: RunResult) -> str | None:
    """Why the gate checks `candidate` only in part, or not at all; None when it checks everything."""
    if candidate.suite_name != baseline.suite_name:
        return f"ran suite '{candidate.suite_name}', the baseline '{baseline.suite_name}': not gated"
    if not same_backend(baseline, candidate):
        return (
            f"ran on {candidate.backend.backend}, the baseline on {baseline.backend.backend}: "
            "quality gated, timings not"
        )
    return None


def quality_checks(
    baseline: RunResult, candidate: RunResult, t: GateThresholds
) -> tuple[list[Check], list[Regression]]:
    """Each gated quality row against the baseline with its paired (or unpaired) test, one-sided; and the
    rows the candidate lacks."""
    comparison = build_comparison([baseline, candidate], baseline=baseline, alpha=t.alpha)
    base = comparison.baseline if comparison.baseline is not None else 0
    cand = 1 - base
    checks, lost = [], []
    for row in comparison.rows:
        if row.section not in ("quality", "breakdown", "suite") or not _gated(row, baseline, t):
            continue
        a, b, delta = row.cells[base], row.cells[cand], row.deltas[cand]
        if _present(a) and not _present(b):
            if not t.allow_missing:
                lost.append(_missing_row(row, a))
            continue
        if a is None or b is None or delta is None:
            continue
        drop = (a.value - b.value) if row.higher_is_better else (b.value - a.value)
        p = one_sided_worse(delta.p_value, drop > 0) if delta.p_value is not None else None
        threshold = t.quality_threshold(row.suite, row.task, row.metric)
        higher = bool(row.higher_is_better)
        checks.append(
            Check(
                "quality",
                row.suite,
                row.task,
                row.metric,
                higher,
                a.value,
                b.value,
                threshold,
                drop,
                p,
                delta.test,
                "pinned",
            )
        )
    return checks, lost


def _present(cell: MetricValue | None) -> bool:
    return cell is not None and cell.n > 0


def _missing_row(row: Row, a: MetricValue | None) -> Regression:
    reason = (
        f"{row.suite}/{row.task} {row.metric} is in the baseline but missing from the candidate "
        "(set allow_missing: true in the gate config to accept that)"
    )
    return Regression(
        "missing", row.suite, row.task, row.metric, a.value if a else None, None, None, None, reason
    )


def _gated(row: Row, baseline: RunResult, t: GateThresholds) -> bool:
    if row.higher_is_better is None:
        return False
    if row.section == "quality":
        task = baseline.task(row.task)
        return not t.quality.primary_only or (task is not None and task.primary_metric == row.metric)
    if row.section == "breakdown":
        return t.quality.breakdowns
    # a one-task suite's score is that task's metric: gated once, there
    return t.quality.suite_score and sum(1 for task in baseline.tasks if task.weight > 0) > 1


def _gated_keys(baseline: RunResult, figures: Sequence[Figure], t: GateThresholds) -> set[tuple[str, str]]:
    """The figures the recent median judges: those the pinned comparison gates."""
    one_task = sum(1 for task in baseline.tasks if task.weight > 0) <= 1
    keys = set()
    for f in figures:
        if f.section == "performance" and t.performance_threshold(f.metric) is None:
            continue
        if f.where == SUITE and (one_task or not t.quality.suite_score):
            continue
        keys.add(f.key)
    return keys


def nights_before(history: Sequence[RunResult], candidate: RunResult) -> list[RunResult]:
    """The runs of `history` of the candidate's model, suite and backend made before it, oldest first."""
    return [
        r
        for r in sorted(history, key=lambda r: (r.created_at, r.run_id))
        if r.run_id != candidate.run_id
        and r.created_at < candidate.created_at
        and (r.model_name, r.suite_name, r.backend.backend)
        == (candidate.model_name, candidate.suite_name, candidate.backend.backend)
    ]


def gate_candidates(
    baseline: RunResult | None,
    candidates: Sequence[RunResult],
    thresholds: GateThresholds,
    history: Sequence[RunResult] = (),
    repeats: Mapping[str, Sequence[RunResult]] | None = None,
) -> list[tuple[RunResult, GateReport]]:
    """The gate's report on each candidate of the baseline's suite; a user error when there is no baseline
    or no candidate of its suite. `repeats` maps a merged run's id to the runs merged into it."""
    from llmbench.errors import UserInputError

    if baseline is None:
        raise UserInputError("--fail-on-regression needs --baseline BASE.json")
    same_suite = [c for c in candidates if c.suite_name == baseline.suite_name]
    if not same_suite:
        raise UserInputError(
            f"no candidate ran the baseline's suite '{baseline.suite_name}': nothing to gate",
            hint="pass runs of that suite, or a baseline of the suite the candidates ran",
        )
    merged = repeats or {}
    return [
        (
            c,
            gate_report(
                baseline,
                c,
                thresholds,
                nights_before(history, c),
                (merged.get(baseline.run_id, ()), merged.get(c.run_id, ())),
            ),
        )
        for c in same_suite
    ]
