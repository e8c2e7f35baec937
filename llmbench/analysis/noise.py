"""How much a gated figure moves between runs that should agree: noise bands from repeats or good nights.

A band is the spread of one figure over several runs of the same setting. Over the last N good nights of a
history folder it is the standard deviation from successive differences (von Neumann's mean square
successive difference), so that a slow drift in those nights does not widen its own band; their median is
the recent reference that a slow drift is judged against. Over the repeats of a run (runs of one setting
with other seeds, merged into one column by `compare`) it is the pooled within-run standard deviation of
the candidate's repeats and the baseline's, and a merged run, a mean of k repeats, varies by sd / sqrt(k).
Performance figures are spread on a log scale (timing noise multiplies: a contended night is 1.5 times
slower, not 10 ms slower, and a ratio to a fast baseline is not inflated by it), quality metrics in their
own units.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.analysis.figures import Figure, performance_figures, quality_figures
from llmbench.results.schema import RunResult

MIN_RUNS = 3  # fewer runs than this give no band: two values say nothing of a spread


@dataclass(frozen=True)
class NoiseBand:
    """One figure's spread over `n` runs: `sd` of log(value) (performance: relative) or absolute (quality)."""

    median: float
    sd: float
    n: int
    source: str  # "nights" or "repeats"
    relative: bool
    df: float | None = None  # degrees of freedom of `sd`; None: n - 1
    candidate_runs: int = 1  # repeats averaged into the candidate's figure
    baseline_runs: int = 1  # repeats averaged into the pinned baseline's figure

    @property
    def dof(self) -> float:
        return self.df if self.df is not None else self.n - 1

    def spread_factor(self, versus: str) -> float:
        """sqrt of the variance of (the candidate - the reference) in units of one run's variance: 1/k + 1/m
        for a mean of k repeats against one of m (2 for one run against one), 1/k + pi / (2n) against the
        median of n nights."""
        reference = 1 / self.baseline_runs if versus == "pinned" else math.pi / (2 * self.n)
        return math.sqrt(1 / self.candidate_runs + reference)

    def half_width(self, alpha: float, versus: str) -> float:
        """The one-sided band a worsening must leave to be called one at level `alpha` (before Holm)."""
        from scipy.stats import t  # lazily: its import takes half a second

        return float(t.ppf(1 - alpha, self.dof)) * self.sd * self.spread_factor(versus)

    def worsening(self, reference: float, candidate: float, higher_is_better: bool) -> float | None:
        """How much worse `candidate` is than `reference` on this band's scale: log ratio for a relative
        band (None unless both are positive), difference otherwise."""
        if self.relative:
            if reference <= 0 or candidate <= 0:
                return None
            change = math.log(candidate / reference)
        else:
            change = candidate - reference
        return -change if higher_is_better else change

    def p_value(self, worse: float, versus: str) -> float | None:
        """One-sided p-value of a worsening by `worse` (on this band's scale: `worsening`) under this noise;
        None when the runs did not move at all (no spread to judge by: the threshold alone decides)."""
        from scipy.stats import t

        if self.sd == 0:
            return None
        return float(t.sf(worse / (self.sd * self.spread_factor(versus)), self.dof))

    def describe(self, alpha: float, versus: str) -> str:
        """ "noise band ±4.1% from 9 nights": the one-sided band at `alpha`, in the figure's units."""
        width = self.half_width(alpha, versus)
        shown = f"{math.expm1(width):.1%}" if self.relative else f"{width:.3f}"
        return f"noise band ±{shown} from {self.n} {self.source}"


def successive_sd(values: Sequence[float]) -> float:
    """The standard deviation of independent noise from successive differences (immune to a linear trend)."""
    diffs = [b - a for a, b in itertools.pairwise(values)]
    return math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs)))


def successive_df(n: int) -> float:
    """The degrees of freedom of `successive_sd` over n values: its variance is (3n - 4) / (n - 1)^2 in
    units of sd^4 for normal noise, against 2 / (n - 1) for the ordinary estimate, so it is worth
    2 (n - 1)^2 / (3n - 4) degrees (4.2 of 7 nights, not 6): fewer, and a t quantile that holds its level."""
    return 2 * (n - 1) ** 2 / (3 * n - 4)


def figures_of(run: RunResult) -> list[Figure]:
    return quality_figures(run) + performance_figures(run)


def noise_bands(runs: Sequence[RunResult], source: str = "nights") -> dict[tuple[str, str], NoiseBand]:
    """Each figure's band over `runs` (in time order) that at least MIN_RUNS of them have."""
    bands = {}
    for key, figs in _series(sorted(runs, key=lambda r: (r.created_at, r.run_id))).items():
        if len(figs) < MIN_RUNS:
            continue
        values = [f.value for f in figs]
        median = statistics.median(values)
        relative = figs[0].section == "performance"
        if relative and min(values) <= 0:
            continue
        scaled = [math.log(v) for v in values] if relative else values
        n = len(values)
        bands[key] = NoiseBand(median, successive_sd(scaled), n, source, relative, successive_df(n))
    return bands


def repeat_bands(
    baseline: Sequence[RunResult], candidate: Sequence[RunResult]
) -> dict[tuple[str, str], NoiseBand]:
    """Each figure's band from the repeats merged into the baseline and into the candidate (either may be a
    single run, which adds nothing to the spread): the pooled within-run standard deviation, with as many
    degrees of freedom as repeats less one per merged run; none for a figure with fewer than two."""
    groups = [_series(runs) for runs in (baseline, candidate)]
    bands = {}
    for key in set(groups[0]) | set(groups[1]):
        sets = [g.get(key, []) for g in groups]
        every = [f for figs in sets for f in figs]
        median = statistics.median(f.value for f in every)
        relative = every[0].section == "performance"
        if relative and min(f.value for f in every) <= 0:
            continue
        scaled = [[math.log(f.value) if relative else f.value for f in figs] for figs in sets]
        squares, df = 0.0, 0
        for values in scaled:
            if len(values) > 1:
                mean = statistics.fmean(values)
                squares += sum((v - mean) ** 2 for v in values)
                df += len(values) - 1
        if df < MIN_RUNS - 1:
            continue
        sd = math.sqrt(squares / df)
        runs = [max(1, len(figs)) for figs in sets]
        bands[key] = NoiseBand(
            median, sd, sum(len(f) for f in sets), "repeats", relative, df, runs[1], runs[0]
        )
    return bands


def _series(runs: Sequence[RunResult]) -> dict[tuple[str, str], list[Figure]]:
    series: dict[tuple[str, str], list[Figure]] = {}
    for run in runs:
        for figure in figures_of(run):
            series.setdefault(figure.key, []).append(figure)
    return series
