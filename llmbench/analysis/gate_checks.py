"""The gate's single decisions and how they are combined: every tested figure joins one family, Holm's
correction keeps the chance of any false alarm over that family at alpha, and each decision says its
noise band. Performance figures are judged here, at run level and at each sweep point both runs share:
against the noise band where one is known, else, for a sweep point's latency p50 whose requests both runs
kept, by the permutation test of the change of its median over those requests (one-sided), else by the
floor alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.analysis.figures import (
    RUN_LEVEL,
    Figure,
    performance_figures,
    point_label,
    point_requests,
    withheld_figures,
)
from llmbench.analysis.gate_config import GateThresholds
from llmbench.analysis.noise import NoiseBand
from llmbench.analysis.significance import holm_adjust, median_shift_test
from llmbench.results.schema import RunResult

Bands = dict[tuple[str, str], NoiseBand]
VERSUS = {"pinned": "the baseline", "recent": "the median of the good nights"}


@dataclass
class Regression:
    """One regressed figure; `str()` is the one-line reason."""

    kind: str  # "quality", "performance", "missing" or "suite"
    suite: str
    task: str  # a task, "(suite)", "(performance)" or a sweep point's label ("point in=512 out=128 conc=4")
    metric: str
    baseline: float | None
    candidate: float | None
    threshold: float | None
    p_value: float | None  # Holm-adjusted, one-sided
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass
class Check:
    """One comparison of a gated figure with a reference; `worse` is absolute (quality) or relative."""

    kind: str  # "quality" or "performance"
    suite: str
    where: str
    metric: str
    higher_is_better: bool
    reference: float
    candidate: float
    threshold: float
    worse: float
    p_value: float | None  # one-sided, before Holm; None: untested (the threshold alone decides)
    test: str  # "mcnemar", "sign-flip", "welch", "two-proportion", "noise", "median-permutation", "threshold"
    versus: str  # "pinned" (the baseline file) or "recent" (the median of the last good nights)
    band: str | None = None  # "noise band ±4.1% from 9 nights"
    adjusted: float | None = None
    requests: tuple[int, int] | None = None  # the requests of reference and candidate a median test took

    @property
    def shown(self) -> bool:
        """Whether the gate's lines show this check: it has a noise band or a test over requests."""
        return self.band is not None or self.requests is not None

    def regressed(self, alpha: float) -> bool:
        if self.worse <= self.threshold:
            return False
        if self.p_value is None:  # untested: a paired quality row needs its test, a figure with no noise
            return self.test == "threshold"  # model (or none seen) is judged by its threshold alone
        return self.adjusted is not None and self.adjusted < alpha

    def summary(self) -> str:
        """ "point in=512 ... ttft_ms p50 +7.9% against the baseline, noise band ±4.1% from 9 nights"."""
        change = f"{self.worse:+.1%}" if self.kind == "performance" else f"{-self.worse:+.3f}"
        where = "" if self.where == RUN_LEVEL else f" [{self.where}]"
        band = f", {self.band}" if self.band else ""
        if self.requests:
            band += f", medians of {self.requests[0]} and {self.requests[1]} requests"
        return f"{self.suite}{where} {self.metric} {change} against {VERSUS[self.versus]}{band}"


def decide(checks: list[Check], alpha: float) -> list[Regression]:
    """Holm over every check with a p-value, then each check's verdict."""
    tested = [c for c in checks if c.p_value is not None]
    for check, adjusted in zip(tested, holm_adjust([c.p_value or 0.0 for c in tested]), strict=True):
        check.adjusted = adjusted
    return [_regression(c, alpha, len(tested)) for c in checks if c.regressed(alpha)]


def _regression(c: Check, alpha: float, family: int) -> Regression:
    moved = "fell" if c.higher_is_better else "rose"
    where = c.suite if c.where == RUN_LEVEL else f"{c.suite}/{c.where}"
    if c.kind == "performance":
        amount = f"{c.worse:+.1%} worse, {c.threshold:.0%} allowed"
        values = f"{c.reference:.4g} -> {c.candidate:.4g}"
    else:
        amount = f"{c.worse:.3f} worse, {c.threshold:.3f} allowed"
        values = f"{c.reference:.3f} -> {c.candidate:.3f}"
    against = "" if c.versus == "pinned" else f" against {VERSUS[c.versus]}"
    band = f"; {c.band}" if c.band else ""
    test = (
        f", {c.test} one-sided p={c.p_value:.3g}, Holm-adjusted {c.adjusted:.3g} < {alpha} over {family} test{'s' if family != 1 else ''}"
        if c.p_value is not None and c.adjusted is not None
        else ""
    )
    reason = f"{where} {c.metric} {moved} {values}{against} ({amount}{band}){test}"
    return Regression(
        c.kind, c.suite, c.where, c.metric, c.reference, c.candidate, c.threshold, c.adjusted, reason
    )


def worsening(figure: Figure, reference: float, candidate: float) -> float:
    """How much worse `candidate` is: relative to |reference| for performance, absolute for quality."""
    diff = (reference - candidate) if figure.higher_is_better else (candidate - reference)
    if figure.section != "performance":
        return diff
    return diff / abs(reference) if reference else 0.0


def banded_check(
    figure: Figure,
    suite: str,
    reference: float,
    threshold: float,
    band: NoiseBand | None,
    versus: str,
    alpha: float,
    requests: tuple[list[float] | None, list[float] | None] = (None, None),
) -> Check:
    """A check of `figure` against `reference`, tested against its noise band where one is known, else by
    the one-sided permutation test of its median over the `requests` of reference and candidate."""
    worse = worsening(figure, reference, figure.value)
    scaled = band.worsening(reference, figure.value, figure.higher_is_better) if band is not None else None
    p = band.p_value(scaled, versus) if band is not None and scaled is not None else None
    ref, cand = requests
    if band is None and ref and cand:
        _, larger, smaller = median_shift_test(ref, cand)
        check = Check(
            figure.section, suite, figure.where, figure.metric, figure.higher_is_better, reference,
            figure.value, threshold, worse, smaller if figure.higher_is_better else larger,
            "median-permutation", versus, requests=(len(ref), len(cand)),
        )  # fmt: skip
        return check
    return Check(
        figure.section,
        suite,
        figure.where,
        figure.metric,
        figure.higher_is_better,
        reference,
        figure.value,
        threshold,
        worse,
        p,
        "noise" if p is not None else "threshold",
        versus,
        band.describe(alpha, versus) if band is not None else None,
    )


def performance_checks(
    baseline: RunResult, candidate: RunResult, t: GateThresholds, bands: Bands
) -> tuple[list[Check], list[Regression]]:
    """Run-level rows and every shared sweep point against the baseline, and what the candidate lost."""
    withheld = withheld_figures(baseline) | withheld_figures(candidate)
    base = {
        f.key: f
        for f in performance_figures(baseline)
        if t.performance_threshold(f.metric) is not None and f.key not in withheld
    }
    cand = {f.key: f for f in performance_figures(candidate)}
    checks, lost = [], lost_points(baseline, candidate, t)
    gone = {r.task for r in lost}
    for key, b in base.items():
        c = cand.get(key)
        if c is None:
            if key[0] not in gone and not t.allow_missing:
                lost.append(_missing(baseline.suite_name, b))
            continue
        floor = t.performance_threshold(b.metric) or 0.0
        requests = (point_requests(baseline, key), point_requests(candidate, key))
        checks.append(
            banded_check(c, candidate.suite_name, b.value, floor, bands.get(key), "pinned", t.alpha, requests)
        )
    return checks, lost


def lost_points(baseline: RunResult, candidate: RunResult, t: GateThresholds) -> list[Regression]:
    """Sweep points of the baseline that the candidate lacks, or ran with an error, named one by one."""
    have = {point_label(p): p for p in candidate.performance.sweep}
    lost = []
    for point in baseline.performance.sweep:
        label, got = point_label(point), have.get(point_label(point))
        if point.error or (got is None and t.allow_missing):
            continue
        if got is None:
            why = "is in the baseline but missing from the candidate"
        elif got.error:
            why = f"failed in the candidate: {got.error}"
        else:
            continue
        reason = f"{baseline.suite_name} sweep {label} {why}"
        lost.append(
            Regression("missing", baseline.suite_name, label, "(point)", None, None, None, None, reason)
        )
    return lost


def _missing(suite: str, figure: Figure) -> Regression:
    where = suite if figure.where == RUN_LEVEL else f"{suite}/{figure.where}"
    reason = (
        f"{where} {figure.metric} is in the baseline but missing from the candidate "
        "(set allow_missing: true in the gate config to accept that)"
    )
    return Regression("missing", suite, figure.where, figure.metric, figure.value, None, None, None, reason)


def recent_checks(
    candidate: RunResult,
    figures: Sequence[Figure],
    t: GateThresholds,
    bands: Bands,
    gated: set[tuple[str, str]],
) -> list[Check]:
    """Each gated figure against the median of the last good nights (a slow drift fails here too)."""
    checks = []
    for figure in figures:
        band = bands.get(figure.key)
        if band is None or figure.key not in gated:
            continue
        if figure.section == "quality" and band.sd == 0:
            continue  # nights that never moved give no noise model; the paired test against the pinned run does
        if figure.section == "performance":
            threshold = t.performance_threshold(figure.metric) or 0.0
        else:
            threshold = t.quality_threshold(candidate.suite_name, figure.where, figure.metric)
        checks.append(
            banded_check(figure, candidate.suite_name, band.median, threshold, band, "recent", t.alpha)
        )
    return checks
