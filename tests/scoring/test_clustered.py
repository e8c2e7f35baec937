"""Intervals of clustered values (token gaps per request) resample whole requests."""

from __future__ import annotations

import numpy as np
import pytest

from llmbench.scoring.clustered import CLUSTER_METHOD, cluster_replicates, clustered_distribution
from llmbench.scoring.stats import PERCENTILES, distribution


def _requests_with_their_own_pace(n_requests: int, gaps: int, seed: int) -> list[np.ndarray]:
    """Each request's gaps scatter around its own level (its batch, its prompt), as on a real engine."""
    rng = np.random.default_rng(seed)
    levels = rng.normal(50.0, 10.0, size=n_requests)
    return [level + rng.normal(0.0, 2.0, size=gaps) for level in levels]


def test_interval_widens_when_gaps_within_a_request_are_correlated() -> None:
    requests = _requests_with_their_own_pace(40, 200, seed=3)
    clustered = clustered_distribution(requests)
    pooled = distribution(np.concatenate(requests))
    assert clustered is not None and pooled is not None
    # The mean's uncertainty comes from the 40 request levels (sd 10): about 1.96 * 10 / sqrt(40) = 3.1
    # each side. Resampling the 8000 gaps as if independent gives about 1.96 * 10 / sqrt(8000) = 0.2.
    between = np.std([r.mean() for r in requests], ddof=1) / np.sqrt(len(requests))
    low, high = clustered.ci["mean"]
    assert (high - low) / 2 > 0.8 * 1.96 * between
    pooled_low, pooled_high = pooled.ci["mean"]
    assert (pooled_high - pooled_low) / 2 < 0.2 * 1.96 * between
    assert clustered.ci_method == CLUSTER_METHOD and clustered.n_clusters == 40 and clustered.n == 8000


def test_independent_gaps_give_about_the_pooled_interval() -> None:
    rng = np.random.default_rng(5)
    requests = [rng.exponential(20.0, size=50) for _ in range(100)]
    clustered = clustered_distribution(requests)
    pooled = distribution(np.concatenate(requests))
    assert clustered is not None and pooled is not None
    width = clustered.ci["mean"][1] - clustered.ci["mean"][0]
    pooled_width = pooled.ci["mean"][1] - pooled.ci["mean"][0]
    assert 0.8 < width / pooled_width < 1.25


@pytest.mark.parametrize("seed", range(6))
def test_replicates_are_numpy_statistics_of_the_resampled_requests(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 40, size=int(rng.integers(2, 30)))
    pooled = np.round(rng.gamma(2.0, 5.0, size=int(sizes.sum())), 1)  # rounded: ties between requests
    reps = cluster_replicates(pooled, sizes, 40, seed=11)
    draws = np.random.default_rng(11).integers(0, sizes.size, size=(40, sizes.size))
    groups = np.split(pooled, np.cumsum(sizes)[:-1])
    for i, drawn in enumerate(draws):
        resampled = np.concatenate([groups[j] for j in drawn])
        assert reps["mean"][i] == pytest.approx(resampled.mean())
        for q in PERCENTILES:
            assert reps[f"p{q}"][i] == pytest.approx(np.percentile(resampled, q))


def test_point_figures_are_those_of_every_gap_pooled() -> None:
    requests = [[10.0, 12.0], [30.0], [], [20.0, 22.0, 24.0]]
    dist = clustered_distribution(requests)
    pooled = distribution([g for r in requests for g in r])
    assert dist is not None and pooled is not None
    assert (dist.mean, dist.p50, dist.p90, dist.p99, dist.min, dist.max, dist.n) == (
        pooled.mean,
        pooled.p50,
        pooled.p90,
        pooled.p99,
        pooled.min,
        pooled.max,
        pooled.n,
    )
    assert dist.n_clusters == 3  # the request without gaps carries no evidence


def test_one_request_has_no_interval_and_none_has_no_distribution() -> None:
    one = clustered_distribution([[1.0, 2.0, 3.0]])
    assert one is not None and one.ci == {} and one.n == 3
    assert clustered_distribution([[], []]) is None
