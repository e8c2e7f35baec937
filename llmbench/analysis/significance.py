"""Whether two runs differ: paired tests on the samples both scored; for performance, a permutation test
of the change of a median over requests where both runs keep their requests' values, interval overlap
otherwise; and how many requests a percentile needs to be reported at all.

Paired where the runs share sample ids (McNemar for 0/1 scores, a sign-flip permutation test otherwise),
also for the weighted suite score; `compare` falls back to unpaired tests from the summaries otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmbench.results.schema import MetricValue, RunResult, SampleRecord, TaskResult
from llmbench.scoring import stats

ALPHA = 0.05


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


def paired_delta(
    base: RunResult, cand: RunResult, task: str, metric: tuple[str, str | None], alpha: float = ALPHA
) -> Delta | None:
    """Paired test on the samples both runs scored for a task's metric (and breakdown cell, the second
    item of `metric`); None when they share fewer than two."""
    ta, tb = base.task(task), cand.task(task)
    if ta is None or tb is None:
        return None
    metric_name, label = metric
    va, vb = per_sample_values(base, ta, metric_name, label), per_sample_values(cand, tb, metric_name, label)
    ids = sorted(set(va) & set(vb))
    if len(ids) < 2:
        return None
    return _paired([va[i] for i in ids], [vb[i] for i in ids], alpha)


def _paired(xa: list[float], xb: list[float], alpha: float) -> Delta:
    """McNemar for 0/1 values, the sign-flip permutation test otherwise."""
    confidence = 1 - alpha  # the interval shown goes with the test at the level that marks significance
    if stats.is_binary(xa + xb):
        b01, b10, p = stats.mcnemar([x == 1.0 for x in xa], [x == 1.0 for x in xb])
        d = (b01 - b10) / len(xa)
        lo, hi = stats.paired_proportion_interval(b01, b10, len(xa), confidence=confidence)
        return Delta(d, lo, hi, p, "mcnemar", p < alpha, n_paired=len(xa))
    d, lo, hi, p = stats.paired_test(xa, xb, confidence=confidence)
    return Delta(d, lo, hi, p, "sign-flip", p < alpha, n_paired=len(xa))


def paired_suite_delta(base: RunResult, cand: RunResult, alpha: float = ALPHA) -> Delta | None:
    """Paired test of the weighted suite score on the samples both runs scored; None if they share none.

    Each shared sample counts with its task's share of the suite (weight / total weight / samples of the
    task), scaled so that the mean over samples is the suite-score difference: the samples of the same
    questions are paired at suite level as they are within a task.
    """
    tasks = [
        (ta, tb)
        for ta in base.tasks
        if ta.weight > 0 and (tb := cand.task(ta.name)) is not None and tb.primary_metric == ta.primary_metric
    ]
    shared = []
    for ta, tb in tasks:
        va = per_sample_values(base, ta, ta.primary_metric)
        vb = per_sample_values(cand, tb, tb.primary_metric)
        ids = sorted(set(va) & set(vb))
        if ids:
            shared.append((ta.weight, [va[i] for i in ids], [vb[i] for i in ids]))
    n = sum(len(xa) for _, xa, _ in shared)
    if n < 2:
        return None
    total = sum(w for w, _, _ in shared)
    xa_all: list[float] = []
    xb_all: list[float] = []
    for weight, xa, xb in shared:
        scale = n * weight / (total * len(xa))
        xa_all += [scale * x for x in xa]
        xb_all += [scale * x for x in xb]
    return _paired(xa_all, xb_all, alpha)


def perf_delta(a: MetricValue, b: MetricValue) -> Delta:
    """Performance figures: significant when their bootstrap intervals do not overlap."""
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


# The requests a percentile is reported from at the least: `percentile_requests` (5, 29 and 299).
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
CHUNK_CELLS = 4_000_000  # shuffles drawn in chunks of at most this many values, so memory stays bounded
# A run-level latency's field of Performance -> its field of SampleRecord.
LATENCY_FIELDS = {"ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms", "e2e_latency_ms": "latency_ms"}


def percentile_shortfall(stat: str | None, n: int) -> str | None:
    """Why a percentile of `n` requests is withheld ("12 requests; a p90 needs 29"); None when it is shown."""
    q = PERCENTILES.get(stat or "")
    if q is None or n >= (need := percentile_requests(q)):
        return None
    return f"{n} requests; a {stat} needs {need}"


def request_values(run: RunResult, attr: str) -> list[float]:
    """Each timed sample's value of a run-level latency (`ttft_ms`, `tpot_ms`, `e2e_latency_ms`)."""
    field = LATENCY_FIELDS.get(attr)
    if field is None:
        return []
    values = [getattr(r, field) for r in run.samples if r.error is None and r.latency_ms is not None]
    return [float(v) for v in values if v is not None]


def median_delta(a: list[float], b: list[float], alpha: float = ALPHA) -> Delta:
    """The change of a median over requests (b against a), two-sided, by the permutation test of
    `median_shift_test`; relative to a's median."""
    diff, larger, smaller = median_shift_test(a, b)
    p = min(1.0, 2 * min(larger, smaller))
    base = float(np.median(a))
    return Delta(
        diff, None, None, p, "median-permutation", p < alpha, relative=diff / abs(base) if base else None
    )


def percentile_requests(q: float, confidence: float = 0.95) -> int:
    """The fewest values from which the `q` quantile (0.9 for p90) is reported: with fewer, the chance that
    no value lies beyond the true quantile, q^n, exceeds 1 - `confidence`, and the figure is more likely
    than that to be the largest value seen, below the quantile it names. 5 for p50, 29 for p90, 299 for p99."""
    return math.ceil(math.log(1 - confidence) / math.log(q) - 1e-9)


def median_shift_test(
    a: Sequence[float], b: Sequence[float], *, n_resamples: int = stats.N_PERMUTATIONS, seed: int = stats.SEED
) -> tuple[float, float, float]:
    """Median of b - median of a over unpaired values (the requests of two runs), and the one-sided
    p-values that b's median is larger and that it is smaller: a permutation test.

    Under the null both sets of values come from one distribution, so the values are shuffled between
    the two sets (a seeded Monte Carlo sample of shuffles, p = (as extreme + 1) / (draws + 1), never 0)
    and the observed difference of medians is compared with the shuffled ones. The test holds its level
    at any number of values; fewer than two on either side give p = 1 both ways.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.size < 2 or xb.size < 2:
        diff = float(np.median(xb) - np.median(xa)) if xa.size and xb.size else 0.0
        return (diff, 1.0, 1.0)
    observed = float(np.median(xb) - np.median(xa))
    pooled = np.concatenate([xa, xb])
    tolerance = 1e-9 * max(1.0, float(np.abs(pooled).max()))
    rng = np.random.default_rng(seed)
    rows = max(1, CHUNK_CELLS // pooled.size)
    larger = smaller = done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        shuffled = rng.permuted(np.broadcast_to(pooled, (k, pooled.size)), axis=1)
        diffs = np.median(shuffled[:, xa.size :], axis=1) - np.median(shuffled[:, : xa.size], axis=1)
        larger += int(np.sum(diffs >= observed - tolerance))
        smaller += int(np.sum(diffs <= observed + tolerance))
        done += k
    return (observed, (larger + 1) / (n_resamples + 1), (smaller + 1) / (n_resamples + 1))


def one_sided_worse(p_two_sided: float, worse: bool) -> float:
    """The one-sided p-value that a change is a worsening, from a two-sided one.

    Every test here (McNemar's mid-p, sign flips, Welch's t, the pooled z) has a null distribution symmetric
    about no change, so the tail in the observed direction holds half the two-sided p-value, and the
    other tail all but that half.
    """
    return p_two_sided / 2 if worse else 1 - p_two_sided / 2


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: each below alpha is a rejection that keeps
    the chance of any false alarm over the whole family at alpha."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda k: p_values[k])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
