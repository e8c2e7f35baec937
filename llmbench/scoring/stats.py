"""Statistics for results: means with intervals, latency distributions and paired/unpaired significance tests.

Every interval is a two-sided `confidence` interval (95% by default). Bootstraps and Monte Carlo permutations
use a fixed seed so the same values always give the same interval, p-value and results file. Paired tests
are exact where the samples are small (sign flips, binomial), so a difference on a handful of samples is
not called significant more often than the test's level says.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np

from llmbench.results.schema import Distribution, MetricValue

N_RESAMPLES = 2000
N_PERMUTATIONS = 9999  # Monte Carlo sign flips when there are too many pairs to enumerate
EXACT_SIGN_FLIPS_UP_TO = 16  # non-zero paired differences up to which all 2^n sign flips are enumerated
MIN_NONZERO_PAIRS = 3  # fewer non-zero paired differences than this are never significant (p = 1)
T_INTERVAL_BELOW = 30  # pairs under which the paired interval is Student's t rather than a bootstrap
SEED = 20240611
_CHUNK_CELLS = 4_000_000  # resample in chunks of at most this many cells, so memory stays bounded
MCNEMAR_EXACT_UP_TO = 5000  # discordant pairs up to which McNemar's mid-p test is computed exactly
PERCENTILES = (50, 90, 99)


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(
        0.5 + confidence / 2
    )  # the standard library's: scipy.stats takes 0.5 s to import


def percentile_intervals(
    replicates: dict[str, np.ndarray], confidence: float
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of bootstrap replicates, per statistic."""
    alpha = (1 - confidence) / 2
    return {
        k: (float(np.quantile(v, alpha)), float(np.quantile(v, 1 - alpha))) for k, v in replicates.items()
    }


def standard_error(arr: np.ndarray) -> float | None:
    """The standard error of the mean of `arr` (sample standard deviation); None for fewer than two values."""
    return float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else None


def is_binary(values: Sequence[float] | np.ndarray) -> bool:
    """True when every value is 0 or 1 (accuracy-like metrics)."""
    arr = np.asarray(values, dtype=float)
    return bool(arr.size) and bool(np.all((arr == 0.0) | (arr == 1.0)))


def wilson_interval(successes: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion: well behaved at 0, 1 and small n, unlike the normal one."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At 0 or n successes the bound is exactly 0 or 1; the formula's rounding would leave 1e-17.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def _resampled_stats(
    arr: np.ndarray, stats: Sequence[str], n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of each statistic ("mean" or "pNN") of `arr`, vectorised in bounded chunks."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {s: [] for s in stats}
    rows = max(1, _CHUNK_CELLS // max(arr.size, 1))
    done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        sample = arr[rng.integers(0, arr.size, size=(k, arr.size))]
        for s in stats:
            if s == "mean":
                out[s].append(sample.mean(axis=1))
            else:
                out[s].append(np.percentile(sample, float(s[1:]), axis=1))
        done += k
    return {s: np.concatenate(parts) for s, parts in out.items()}


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    *,
    confidence: float = 0.95,
    n_resamples: int = N_RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean."""
    arr = np.asarray(values, dtype=float)
    reps = _resampled_stats(arr, ["mean"], n_resamples, seed)["mean"]
    alpha = (1 - confidence) / 2
    return (float(np.quantile(reps, alpha)), float(np.quantile(reps, 1 - alpha)))


def summarize(
    values: Sequence[float], *, binary: bool | None = None, confidence: float = 0.95
) -> MetricValue:
    """Mean, standard error and interval: Wilson for 0/1 values; otherwise Student's t below
    T_INTERVAL_BELOW values (`method` "t"), where a percentile bootstrap is too narrow, and a percentile
    bootstrap from there on (`method` "bootstrap").

    Empty input gives value 0.0 with n=0 and no interval: JSON has no NaN, and n=0 tells readers it is empty.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return MetricValue(value=0.0, n=0)
    n = int(arr.size)
    mean = float(arr.mean())
    if binary is None:
        binary = is_binary(arr)
    if binary:
        lo, hi = wilson_interval(float(arr.sum()), n, confidence)
        return MetricValue(
            value=mean, stderr=standard_error(arr), ci_low=lo, ci_high=hi, n=n, method="wilson"
        )
    if n == 1:
        return MetricValue(value=mean, n=1, method=None)
    if n < T_INTERVAL_BELOW:
        lo, hi = t_interval(arr, confidence)
        return MetricValue(value=mean, stderr=standard_error(arr), ci_low=lo, ci_high=hi, n=n, method="t")
    lo, hi = bootstrap_interval(arr, confidence=confidence)
    return MetricValue(value=mean, stderr=standard_error(arr), ci_low=lo, ci_high=hi, n=n, method="bootstrap")


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student's t interval of the mean of at least two values (zero width when they are all equal)."""
    from scipy.stats import t  # lazily: its import takes half a second

    arr = np.asarray(values, dtype=float)
    half = float(t.ppf(0.5 + confidence / 2, arr.size - 1)) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    mean = float(arr.mean())
    return (mean - half, mean + half)


def distribution(values: Sequence[float], *, confidence: float = 0.95) -> Distribution | None:
    """Mean, p50/p90/p99 (linear interpolation), min, max, stderr and bootstrap intervals; None when empty."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    p50, p90, p99 = (float(x) for x in np.percentile(arr, PERCENTILES))
    ci: dict[str, tuple[float, float]] = {}
    if arr.size > 1:
        names = ["mean", *(f"p{q}" for q in PERCENTILES)]
        reps = _resampled_stats(arr, names, N_RESAMPLES, SEED)
        ci = percentile_intervals(reps, confidence)
    return Distribution(
        mean=float(arr.mean()),
        p50=p50,
        p90=p90,
        p99=p99,
        min=float(arr.min()),
        max=float(arr.max()),
        n=int(arr.size),
        stderr=standard_error(arr),
        ci=ci,
    )


def sign_flip_test(
    differences: Sequence[float] | np.ndarray, *, n_resamples: int = N_PERMUTATIONS, seed: int = SEED
) -> float:
    """Two-sided p-value that paired differences are centred on zero: a sign-flip permutation test.

    Under the null each difference is as likely to have either sign, so the observed sum is compared
    with the sums under sign flips: all 2^n patterns (an exact test) up to EXACT_SIGN_FLIPS_UP_TO non-zero
    differences, a seeded Monte Carlo sample of them beyond (p = (extreme + 1) / (draws + 1), never 0).
    Zero differences carry no sign and are left out. Fewer than MIN_NONZERO_PAIRS non-zero differences
    give p = 1: no outcome of so few pairs is evidence of a difference.
    """
    # The same test as scipy.stats.permutation_test(permutation_type="samples") on one sample (the tests
    # check it against that), written with numpy because enumerating 2^16 patterns there is ~20x slower.
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if d.size < MIN_NONZERO_PAIRS:
        return 1.0
    observed = abs(float(d.sum()))
    tolerance = 1e-9 * max(1.0, float(np.abs(d).sum()))  # sums of the same values in another order
    if d.size <= EXACT_SIGN_FLIPS_UP_TO:
        patterns = (np.arange(2**d.size)[:, None] >> np.arange(d.size)) & 1
        sums = (1 - 2 * patterns) @ d
        return float(np.mean(np.abs(sums) >= observed - tolerance))
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // d.size)
    extreme, done = 0, 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        signs = rng.integers(0, 2, size=(k, d.size), dtype=np.int8) * 2 - 1
        extreme += int(np.sum(np.abs(signs @ d) >= observed - tolerance))
        done += k
    return min(1.0, (extreme + 1) / (n_resamples + 1))


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    *,
    confidence: float = 0.95,
    n_resamples: int = N_PERMUTATIONS,
    seed: int = SEED,
) -> tuple[float, float, float, float]:
    """Mean of b - a over paired samples, its interval and the sign-flip test's two-sided p-value.

    The interval is Student's t below T_INTERVAL_BELOW pairs, where a percentile bootstrap is too narrow,
    and a percentile bootstrap of the mean difference from there on; unknown (infinite) below 2 pairs.
    """
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.shape != xb.shape:
        raise ValueError(f"paired samples need equal lengths, got {xa.size} and {xb.size}")
    diff = xb - xa
    if diff.size < 2:
        return (float(diff.mean()) if diff.size else 0.0, -math.inf, math.inf, 1.0)
    delta = float(diff.mean())
    if diff.size < T_INTERVAL_BELOW:
        lo, hi = t_interval(diff, confidence)
    else:
        lo, hi = bootstrap_interval(diff, confidence=confidence, seed=seed)
    return (delta, lo, hi, sign_flip_test(diff, n_resamples=n_resamples, seed=seed))


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's test on paired verdicts: (b01 = a wrong & b right, b10 = a right & b wrong, p-value).

    The mid-p test: the exact binomial test at 1/2 on the discordant pairs with half the probability of
    the observed count taken out of its tail. The plain exact test is conservative (at 5 of 5 flips one
    way it says p = 0.0625 where its real level is far below 5%); the mid-p one holds its level in practice
    and agrees with the paired interval shown beside it (Fagerland, Lydersen and Laake, BMC Medical Research
    Methodology 13:91, 2013). Past MCNEMAR_EXACT_UP_TO discordant pairs, its normal approximation (the
    uncorrected chi-square), which it equals there to the digits shown.
    """
    if len(a) != len(b):
        raise ValueError(f"paired verdicts need equal lengths, got {len(a)} and {len(b)}")
    xa, xb = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    b01 = int(np.sum(~xa & xb))
    b10 = int(np.sum(xa & ~xb))
    n = b01 + b10
    if n == 0:
        return (b01, b10, 1.0)
    # In closed form, without scipy: its import alone outlasts a leaderboard over many files.
    k = min(b01, b10)
    if n <= MCNEMAR_EXACT_UP_TO:  # twice the smaller tail, less half the observed count's probability
        log_half = n * math.log(0.5)
        probs = [math.exp(_log_comb(n, i) + log_half) for i in range(k + 1)]
        return (b01, b10, min(1.0, 2 * (math.fsum(probs) - probs[-1] / 2)))
    stat = (b01 - b10) ** 2 / n
    return (b01, b10, math.erfc(math.sqrt(stat / 2)))  # chi-square survival function at 1 df


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def paired_proportion_interval(
    b01: int, b10: int, n: int, *, confidence: float = 0.95
) -> tuple[float, float]:
    """Interval of a paired difference of proportions, (b01 - b10) / n over n pairs: Bonett and Price's
    adjusted Wald interval (one added to each discordant count, two to n).

    The plain Wald interval collapses where it matters most, on few pairs all flipped one way (3 of 3
    gives [1, 1] beside McNemar's p = 0.125); this one never has zero width, is centred on 0 when the flips
    balance and holds the observed difference. With McNemar's mid-p test at the same level it agrees on
    all but a few tables with p next to the level, where the interval's end is within a few thousandths
    of 0 (tests/test_stats.py counts them).
    """
    if n <= 0:
        return (-1.0, 1.0)
    z = _z(confidence)
    p01, p10 = (b01 + 1) / (n + 2), (b10 + 1) / (n + 2)
    diff = p01 - p10
    half = z * math.sqrt((p01 + p10 - diff * diff) / (n + 2))
    return (max(-1.0, diff - half), min(1.0, diff + half))


def two_proportion_test(
    a: MetricValue, b: MetricValue, *, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Unpaired b - a for two proportions: delta, Newcombe's hybrid score interval and a two-sided p-value:
    the pooled z-test's where every cell of the 2x2 table expects at least 5 counts, else Fisher's exact
    test (the z-test's normal approximation gave p = 0.0003 for 12/12 against 0/1).

    The interval (Newcombe, Statistics in Medicine 17:873, 1998, method 10) combines each run's Wilson
    interval; the Wald interval it replaces collapsed at 0 and 1 (0/10 against 10/10 gave [1, 1]).
    """
    delta = b.value - a.value
    if a.n == 0 or b.n == 0:
        return (delta, -math.inf, math.inf, 1.0)
    la, ua = wilson_interval(a.value * a.n, a.n, confidence)
    lb, ub = wilson_interval(b.value * b.n, b.n, confidence)
    lo = delta - math.sqrt((b.value - lb) ** 2 + (ua - a.value) ** 2)
    hi = delta + math.sqrt((ub - b.value) ** 2 + (a.value - la) ** 2)
    pooled = (a.value * a.n + b.value * b.n) / (a.n + b.n)
    if min(pooled, 1 - pooled) * min(a.n, b.n) < 5:
        return (delta, max(-1.0, lo), min(1.0, hi), _fisher_p(a, b))
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / a.n + 1 / b.n))
    p = 1.0 if se0 == 0 else 2 * (1 - NormalDist().cdf(abs(delta) / se0))
    return (delta, max(-1.0, lo), min(1.0, hi), p)


def _fisher_p(a: MetricValue, b: MetricValue) -> float:
    """Fisher's exact two-sided p-value of the 2x2 table of successes and failures of `a` and `b`."""
    from scipy.stats import fisher_exact

    sa, sb = round(a.value * a.n), round(b.value * b.n)
    return float(fisher_exact([[sa, a.n - sa], [sb, b.n - sb]]).pvalue)


def welch_test(
    a: MetricValue, b: MetricValue, *, confidence: float = 0.95
) -> tuple[float, float, float, float]:
    """Unpaired b - a from two means' standard errors: delta, Welch t interval and two-sided p-value.

    Both standard errors 0 (every value of each run the same) leave the t statistic undefined. Equal means
    give p = 1. Different means give the exact two-sided rank (Mann-Whitney) test's p-value, which needs
    no variance: every value of one run lies beyond every value of the other, p = 2 / C(n_a + n_b, n_a)
    (1/3 for two values each, 1.1e-5 for ten each), never 0; the interval is the observed difference.
    """
    from scipy.stats import t

    delta = b.value - a.value
    if a.stderr is None or b.stderr is None or a.n < 2 or b.n < 2:
        return (delta, -math.inf, math.inf, 1.0)
    va, vb = a.stderr**2, b.stderr**2
    se = math.sqrt(va + vb)
    if se == 0:
        separated = min(1.0, 2 * math.exp(-_log_comb(a.n + b.n, a.n)))
        return (delta, delta, delta, 1.0 if delta == 0 else separated)
    df = se**4 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    q = float(t.ppf(0.5 + confidence / 2, df))
    return (delta, delta - q * se, delta + q * se, float(2 * t.sf(abs(delta) / se, df)))


def aggregate_repeats(per_repeat: Sequence[Mapping[str, float]], *, confidence: float = 0.95) -> MetricValue:
    """A metric over repeats (seeds) of the same samples: each sample's mean over repeats is one observation.

    Treating the sample, not the generation, as the unit keeps repeats from shrinking the interval as if
    they were new questions. One repeat is just `summarize` of its values.
    """
    repeats = [r for r in per_repeat if r]
    if not repeats:
        return MetricValue(value=0.0, n=0)
    if len(repeats) == 1:
        return summarize(list(repeats[0].values()), confidence=confidence)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for rep in repeats:
        for sid, v in rep.items():
            sums[sid] = sums.get(sid, 0.0) + v
            counts[sid] = counts.get(sid, 0) + 1
    means = [sums[k] / counts[k] for k in sorted(sums)]
    mv = summarize(means, binary=False, confidence=confidence)
    return mv.model_copy(update={"method": f"{mv.method or 'mean'}-over-{len(repeats)}-repeats"})


def mean_over_runs(values: Sequence[float], *, confidence: float = 0.95) -> MetricValue:
    """Between-run mean of one figure from k runs, with Student's t interval on k - 1 degrees of freedom.

    `n` is the number of runs. For figures without per-sample values; where those exist,
    `aggregate_repeats` gives the better interval because it also counts the spread over samples.
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return MetricValue(value=0.0, n=0)
    mean = float(arr.mean())
    if arr.size == 1:
        return MetricValue(value=mean, n=1)
    from scipy.stats import t

    se = float(arr.std(ddof=1)) / math.sqrt(arr.size)
    half = float(t.ppf(0.5 + confidence / 2, arr.size - 1)) * se
    return MetricValue(
        value=mean,
        stderr=se,
        ci_low=mean - half,
        ci_high=mean + half,
        n=int(arr.size),
        method=f"t-over-{arr.size}-runs",
    )
