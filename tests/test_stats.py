"""Statistics checked against known values and by simulation: Wilson, McNemar, sign flips, Welch, bootstrap."""

from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest
from scipy import stats as sps

from llmbench.analysis.significance import median_shift_test, percentile_requests
from llmbench.results.schema import MetricValue
from llmbench.scoring.stats import (
    aggregate_repeats,
    distribution,
    mcnemar,
    mean_over_runs,
    paired_proportion_interval,
    paired_test,
    sign_flip_test,
    summarize,
    two_proportion_test,
    welch_test,
    wilson_interval,
)


def test_wilson_interval_of_8_out_of_10_matches_the_textbook_value() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)


@pytest.mark.parametrize("n", [1, 5, 10, 17, 1319])
def test_wilson_bounds_at_none_and_all_right_are_exactly_zero_and_one(n: int) -> None:
    assert wilson_interval(0, n)[0] == 0.0  # not 2.78e-17, which a table prints as such
    assert wilson_interval(n, n)[1] == 1.0


def test_summarize_uses_wilson_for_zero_one_values() -> None:
    m = summarize([1.0] * 8 + [0.0] * 2)
    assert m.method == "wilson" and m.n == 10 and m.value == pytest.approx(0.8)
    assert (m.ci_low, m.ci_high) == pytest.approx(wilson_interval(8, 10))
    assert m.stderr == pytest.approx(np.std([1] * 8 + [0] * 2, ddof=1) / np.sqrt(10))


def test_summarize_uses_a_reproducible_bootstrap_for_continuous_values() -> None:
    values = np.random.default_rng(3).normal(10, 2, 400).tolist()
    first, second = summarize(values), summarize(values)
    assert first.method == "bootstrap"
    assert first.ci_low is not None and first.ci_high is not None and first.stderr is not None
    assert first.ci_low < first.value < first.ci_high
    assert (first.ci_low, first.ci_high) == (second.ci_low, second.ci_high)
    # The percentile interval of the mean is close to the normal one for 400 normal draws.
    assert first.ci_high - first.ci_low == pytest.approx(2 * 1.96 * first.stderr, rel=0.15)


def test_summarize_can_be_told_values_are_not_binary() -> None:
    assert summarize([0.0, 1.0, 1.0, 1.0], binary=False).method == "t"
    assert summarize([0.0, 1.0] * 20, binary=False).method == "bootstrap"


def test_summarize_below_thirty_values_uses_student_t_and_says_so() -> None:
    values = [3.1, 2.7, 3.9, 3.3, 2.2, 3.0, 4.1, 2.9]
    m = summarize(values)
    lo, hi = sps.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sps.sem(values))
    assert m.method == "t" and (m.ci_low, m.ci_high) == pytest.approx((lo, hi))
    assert summarize(np.random.default_rng(0).normal(0, 1, 30).tolist()).method == "bootstrap"


def test_summarize_t_interval_holds_its_level_on_five_values() -> None:
    """The percentile bootstrap covered about 83% at n = 5; Student's t holds 95% on normal draws."""
    rng = np.random.default_rng(11)
    covered = sum(
        (m := summarize(rng.normal(0, 1, 5).tolist())).ci_low <= 0 <= m.ci_high  # type: ignore[operator]
        for _ in range(400)
    )
    assert covered / 400 >= 0.92


def test_summarize_of_nothing_is_json_safe() -> None:
    m = summarize([])
    assert (m.value, m.n, m.ci_low, m.ci_high) == (0.0, 0, None, None)
    json.loads(m.model_dump_json())


def test_distribution_percentiles_use_linear_interpolation() -> None:
    d = distribution([float(x) for x in range(1, 101)])
    assert d is not None
    assert (d.p50, d.p90, d.p99) == pytest.approx((50.5, 90.1, 99.01))
    assert (d.min, d.max, d.n, d.mean) == (1.0, 100.0, 100, 50.5)
    assert set(d.ci) == {"mean", "p50", "p90", "p99"}
    lo, hi = d.ci["p90"]
    assert lo <= d.p90 <= hi


def test_distribution_of_nothing_is_none() -> None:
    assert distribution([]) is None


def test_mcnemar_mid_p_value_for_few_discordant_pairs() -> None:
    # a right & b wrong six times, the reverse once: p = 2 * (P(X <= 1) - P(X = 1) / 2) at n=7, 1/2 = 9/128
    # (the exact test's 16/128, less the observed count's own probability).
    a = [True] * 6 + [False] + [True] * 20
    b = [False] * 6 + [True] + [True] * 20
    b01, b10, p = mcnemar(a, b)
    assert (b01, b10) == (1, 6)
    assert p == pytest.approx(9 / 128)


@pytest.mark.parametrize(("b01", "b10"), [(10, 30), (0, 12), (300, 360), (2400, 2600)])
def test_mcnemar_mid_p_matches_scipys_binomial(b01: int, b10: int) -> None:
    a, b = _discordant(b01, b10)
    n, k = b01 + b10, min(b01, b10)
    assert mcnemar(a, b)[2] == pytest.approx(2 * (sps.binom.cdf(k, n, 0.5) - sps.binom.pmf(k, n, 0.5) / 2))


def test_mcnemar_beyond_the_exact_range_is_the_uncorrected_chi_square() -> None:
    a, b = _discordant(2900, 3100)
    assert mcnemar(a, b)[2] == pytest.approx(sps.chi2.sf(200**2 / 6000, 1))


def test_mcnemar_without_disagreement_is_not_significant() -> None:
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)


def test_paired_test_finds_a_consistent_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.random(300)
    b = a + 0.05 + rng.normal(0, 0.02, 300)
    delta, lo, hi, p = paired_test(a.tolist(), b.tolist())
    assert delta == pytest.approx(0.05, abs=0.01)
    assert lo < 0.05 < hi and lo > 0
    assert p < 0.01


def test_paired_test_finds_a_real_difference_on_ten_samples() -> None:
    a = np.random.default_rng(4).random(10)
    b = a + 0.3 + np.random.default_rng(5).normal(0, 0.05, 10)
    delta, lo, _, p = paired_test(a.tolist(), b.tolist())
    assert p == pytest.approx(2 / 2**10)  # every difference positive: 2 of 1024 sign patterns as extreme
    assert lo > 0 and delta == pytest.approx(0.3, abs=0.05)


def test_paired_test_of_identical_runs_has_p_one() -> None:
    values = [0.2, 0.4, 0.9, 0.1]
    assert paired_test(values, values) == (0.0, 0.0, 0.0, 1.0)


@pytest.mark.parametrize("n", [1, 2])
def test_fewer_than_three_nonzero_differences_are_never_significant(n: int) -> None:
    a, b = [0.0] * n + [0.5] * 20, [1.0] * n + [0.5] * 20  # identical differences on n samples
    assert paired_test(a, b)[3] == 1.0
    assert sign_flip_test([0.5] * n) == 1.0


def _null_pairs(rng: np.random.Generator, n: int, discrete: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two runs of one model on n samples: partial-credit scores (0, 0.25 ... 1) or continuous ones."""
    if discrete:
        return rng.integers(0, 5, n) / 4, rng.integers(0, 5, n) / 4
    return rng.random(n), rng.random(n)


@pytest.mark.parametrize("n", [3, 5, 8, 12, 20])
@pytest.mark.parametrize("discrete", [False, True], ids=["continuous", "partial-credit"])
def test_paired_test_on_noise_is_significant_at_most_five_percent_of_the_time(n: int, discrete: bool) -> None:
    rng = np.random.default_rng(1000 * n + discrete)
    trials = 600
    hits = 0
    for _ in range(trials):
        a, b = _null_pairs(rng, n, discrete)
        hits += paired_test(a.tolist(), b.tolist())[3] < 0.05
    assert hits / trials <= 0.06  # 0.05 and a standard error of 600 trials; the bootstrap gave 0.13 at n=5


def test_sign_flip_test_is_exact_up_to_sixteen_differences() -> None:
    d = np.random.default_rng(6).normal(0.4, 1, 12)
    exact = sps.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=2**12)
    assert sign_flip_test(d) == pytest.approx(exact.pvalue)


def test_sign_flip_test_beyond_sixteen_is_seeded_monte_carlo() -> None:
    d = np.random.default_rng(7).normal(0.3, 1, 40)
    p = sign_flip_test(d)
    assert p == sign_flip_test(d)  # the same values always give the same p-value
    reference = sps.permutation_test(
        (d,), np.mean, permutation_type="samples", n_resamples=20000, random_state=1
    )
    assert p == pytest.approx(reference.pvalue, abs=0.01)


def test_paired_test_refuses_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_test([1.0, 2.0], [1.0])


@pytest.mark.parametrize("n", [8, 15, 30, 60, 120])
def test_mcnemar_on_noise_is_significant_at_most_five_percent_of_the_time(n: int) -> None:
    rng = np.random.default_rng(n)
    trials = 1000
    hits = sum(mcnemar(rng.random(n) < 0.6, rng.random(n) < 0.6)[2] < 0.05 for _ in range(trials))
    assert hits / trials <= 0.05


def test_mcnemar_finds_a_real_difference() -> None:
    rng = np.random.default_rng(3)
    a = rng.random(200) < 0.5
    b = a | (rng.random(200) < 0.2)  # some wrong answers become right, none the other way
    b01, b10, p = mcnemar(a.tolist(), b.tolist())
    assert b10 == 0 and b01 > 10 and p < 0.001


def test_mean_over_runs_uses_student_t_over_the_runs() -> None:
    values = [0.71, 0.74, 0.69]
    m = mean_over_runs(values)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean(values), scale=sps.sem(values))
    assert (m.value, m.n, m.method) == (pytest.approx(np.mean(values)), 3, "t-over-3-runs")
    assert (m.ci_low, m.ci_high) == pytest.approx((lo, hi))


def test_welch_test_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, 80), rng.normal(0.4, 2, 50)
    delta, lo, hi, p = welch_test(summarize(x.tolist()), summarize(y.tolist()))
    expected = sps.ttest_ind(y, x, equal_var=False)
    assert p == pytest.approx(expected.pvalue, rel=1e-6)
    assert lo < delta < hi


def test_two_proportion_test_matches_the_pooled_z_test() -> None:
    a, b = summarize([1.0] * 60 + [0.0] * 40), summarize([1.0] * 75 + [0.0] * 25)
    delta, _, _, p = two_proportion_test(a, b)
    pooled = 135 / 200
    z = 0.15 / np.sqrt(pooled * (1 - pooled) * (2 / 100))
    assert delta == pytest.approx(0.15)
    assert p == pytest.approx(2 * sps.norm.sf(z))


def test_welch_test_of_two_equal_constant_samples_has_p_one() -> None:
    a = MetricValue(value=5.0, stderr=0.0, ci_low=5.0, ci_high=5.0, n=10, method="t")
    assert welch_test(a, a) == (0.0, 0.0, 0.0, 1.0)


def test_welch_test_of_two_different_constant_samples_is_the_exact_rank_test_not_p_zero() -> None:
    def constant(value: float, n: int) -> MetricValue:
        return MetricValue(value=value, stderr=0.0, n=n, method="t")

    assert welch_test(constant(5, 2), constant(6, 2))[3] == pytest.approx(1 / 3)  # was 0.0
    delta, lo, hi, p = welch_test(constant(5, 10), constant(6, 10))
    expected = sps.mannwhitneyu([6.0] * 10, [5.0] * 10, method="exact").pvalue
    assert (delta, lo, hi) == (1.0, 1.0, 1.0) and p == pytest.approx(2 / 184756) and p > 0
    assert p == pytest.approx(sps.mannwhitneyu(list(range(10, 20)), list(range(10)), method="exact").pvalue)
    assert expected >= p  # scipy's tie-corrected version is more conservative still


def test_two_proportion_test_of_small_counts_is_fishers_exact_test() -> None:
    # 12/12 against 0/1: the z-test's normal approximation said p = 0.0003; the exact test says 1/13
    delta, _, _, p = two_proportion_test(summarize([1.0] * 12), summarize([0.0]))
    assert delta == -1.0 and p == pytest.approx(sps.fisher_exact([[12, 0], [0, 1]]).pvalue) and p > 0.05
    a, b = summarize([1.0] * 3 + [0.0] * 7), summarize([1.0] * 9 + [0.0])
    assert two_proportion_test(a, b)[3] == pytest.approx(sps.fisher_exact([[3, 7], [9, 1]]).pvalue)


def test_two_proportion_interval_of_zero_of_ten_against_ten_of_ten_does_not_collapse() -> None:
    delta, lo, hi, _ = two_proportion_test(summarize([0.0] * 10), summarize([1.0] * 10))
    assert delta == 1.0 and hi == 1.0 and lo == pytest.approx(0.6075, abs=1e-3)  # Wald: [1, 1]


def test_two_proportion_interval_is_newcombes_hybrid_score_interval() -> None:
    # Newcombe (1998) table II, example (a): 56/70 - 48/80 = 0.2, method 10: 0.0524 to 0.3339.
    a, b = summarize([1.0] * 48 + [0.0] * 32), summarize([1.0] * 56 + [0.0] * 14)
    delta, lo, hi, _ = two_proportion_test(a, b)
    assert delta == pytest.approx(0.2)
    assert lo == pytest.approx(0.0524, abs=1e-4) and hi == pytest.approx(0.3339, abs=1e-4)


def test_aggregate_repeats_counts_samples_not_generations() -> None:
    repeats = [{"q1": 1.0, "q2": 0.0, "q3": 1.0}, {"q1": 1.0, "q2": 1.0, "q3": 0.0}]
    m = aggregate_repeats(repeats)
    assert m.n == 3
    assert m.value == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    assert m.method is not None and "2-repeats" in m.method


def test_aggregate_repeats_of_one_repeat_is_summarize() -> None:
    assert aggregate_repeats([{"a": 1.0, "b": 0.0}]) == summarize([1.0, 0.0])


def _discordant(b01: int, b10: int) -> tuple[list[bool], list[bool]]:
    """Verdicts of a and b with b01 pairs that only b got right and b10 that only a did."""
    return [False] * b01 + [True] * b10, [True] * b01 + [False] * b10


def test_three_pairs_all_flipped_give_an_interval_holding_zero_as_mcnemar_finds_nothing() -> None:
    assert mcnemar(*_discordant(3, 0))[2] == pytest.approx(0.125)
    lo, hi = paired_proportion_interval(3, 0, 3)
    assert lo < 0 < hi and hi == 1.0  # a Wald interval was [1, 1]


def test_five_of_ten_pairs_flipped_one_way_give_the_bonett_price_interval() -> None:
    # (5 + 1) / 12 - (0 + 1) / 12 = 5/12, variance (7/12 - (5/12)^2) / 12: 5/12 -/+ 1.96 * 0.18478
    lo, hi = paired_proportion_interval(5, 0, 10)
    assert lo == pytest.approx(0.0545, abs=1e-4) and hi == pytest.approx(0.7788, abs=1e-4)
    wider = paired_proportion_interval(5, 0, 10, confidence=0.99)
    assert wider[0] < 0 < wider[1]  # at the 1% level the interval finds nothing, nor does McNemar (p = 1/32)
    assert mcnemar(*_discordant(5, 0))[2] == pytest.approx(1 / 32)


def test_the_paired_interval_goes_with_mcnemar_over_every_small_table() -> None:
    """Discordant counts up to 12 each beside up to 24 concordant pairs, at three levels: never of zero width,
    always holding the observed difference, around 0 when the flips balance. Interval and mid-p test part
    only next to the level: 2.1%, 0.7% and 0.2% of these tables at 1%, 5% and 10%, and where the test is
    significant the interval's end is at most a few thousandths inside 0 (7 of 0 flips beside 22-24 ties,
    p = 0.0078 at 1%). The exact test disagreed on 5.4%, 6.6% and 7.3%."""
    for alpha, most in ((0.01, 0.025), (0.05, 0.01), (0.1, 0.005)):
        disagree = tables = 0
        for b01, b10 in product(range(13), repeat=2):
            p = mcnemar(*_discordant(b01, b10))[2]
            for n in range(max(2, b01 + b10), b01 + b10 + 25):
                lo, hi = paired_proportion_interval(b01, b10, n, confidence=1 - alpha)
                assert -1 <= lo <= (b01 - b10) / n <= hi <= 1 and hi - lo > 0.05
                if b01 == b10:
                    assert lo < 0 < hi
                clear_of_zero = lo > 0 or hi < 0
                if p < alpha:
                    assert clear_of_zero or min(abs(lo), abs(hi)) < 0.005, (b01, b10, n, alpha)
                disagree += clear_of_zero != (p < alpha)
                tables += 1
        assert disagree / tables < most, alpha


def test_a_percentile_needs_the_requests_that_make_one_lie_beyond_it_likely() -> None:
    assert [percentile_requests(q) for q in (0.5, 0.9, 0.99)] == [5, 29, 299]
    for q in (0.5, 0.9, 0.99):  # the fewest n at which no value beyond the quantile has chance <= 5%
        n = percentile_requests(q)
        assert q**n <= 0.05 < q ** (n - 1)


def test_the_median_shift_test_holds_its_level_on_requests_of_one_distribution() -> None:
    rng = np.random.default_rng(7)
    p = [
        median_shift_test(rng.lognormal(3, 0.4, 12), rng.lognormal(3, 0.4, 20), n_resamples=199, seed=i)[1]
        for i in range(400)
    ]
    assert sum(x < 0.05 for x in p) / len(p) <= 0.05 + 2 * (0.05 * 0.95 / 400) ** 0.5
    assert sum(x < 0.5 for x in p) / len(p) > 0.4  # not a test that never rejects


def test_the_median_shift_test_finds_a_first_token_6_ms_later_and_says_which_way() -> None:
    rng = np.random.default_rng(3)
    base, late = rng.normal(20, 1.0, 24), rng.normal(26, 1.0, 24)
    diff, larger, smaller = median_shift_test(base, late)
    assert diff == pytest.approx(float(np.median(late) - np.median(base)))
    assert larger < 0.001 and smaller > 0.99
    assert median_shift_test([20.0], late)[1:] == (1.0, 1.0)  # one request says nothing of a median
