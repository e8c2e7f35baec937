"""Distributions of values that come in clusters, such as the inter-token gaps of each request.

Gaps within one request share its batch, its prompt length and the host's state while it ran, so they
are not independent draws: a bootstrap over the pooled gaps treats 100k correlated gaps as 100k pieces
of evidence and gives an interval far too narrow. Here the request is the unit: each bootstrap
replicate draws requests with replacement and pools all of their gaps. The point figures (mean and
percentiles) are still those of every gap pooled, as vLLM's ITL reports them.

The cost stays small beside generation however many tokens a run has: a replicate is a vector of
per-request counts, so its mean is two dot products, and its percentiles are found by a search over
per-request cumulative counts at a coarse grid of sorted positions, then exactly within one grid cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llmbench.results.schema import Distribution
from llmbench.scoring.stats import (
    N_RESAMPLES,
    PERCENTILES,
    SEED,
    distribution,
    percentile_intervals,
    standard_error,
)

CLUSTER_METHOD = "cluster-bootstrap"  # Distribution.ci_method for intervals resampled by request
_COUNT_CELLS = 4_000_000  # replicate-by-cluster count cells per chunk, so memory stays bounded
_CELLS_PER_LEVEL = 64  # grid cells per narrowing step
_EXACT_WIDTH = 32  # windows this narrow are walked value by value
_WALK_FACTOR = 16  # walk a window when that costs under this many grids' worth of cluster counts


def clustered_distribution(
    clusters: Sequence[Sequence[float]], *, confidence: float = 0.95
) -> Distribution | None:
    """Mean, p50/p90/p99, min, max of every value pooled, with intervals from a bootstrap over clusters.

    Clusters without values (a request of one token has no gap) carry no evidence and are left out.
    With a single cluster there is nothing to resample, so there is no interval.
    """
    groups = [np.asarray(c, dtype=float) for c in clusters if len(c)]
    if not groups:
        return None
    pooled = np.concatenate(groups)
    if len(groups) == 1:
        dist = distribution(pooled, confidence=confidence)
        return dist.model_copy(update={"ci": {}, "ci_method": None}) if dist else None
    p50, p90, p99 = (float(x) for x in np.percentile(pooled, PERCENTILES))
    sizes = np.array([g.size for g in groups], dtype=np.int64)
    reps = cluster_replicates(pooled, sizes, N_RESAMPLES, SEED)
    ci = percentile_intervals(reps, confidence)
    means = np.array([g.mean() for g in groups])
    return Distribution(
        mean=float(pooled.mean()),
        p50=p50,
        p90=p90,
        p99=p99,
        min=float(pooled.min()),
        max=float(pooled.max()),
        n=int(pooled.size),
        n_clusters=len(groups),
        stderr=standard_error(
            means
        ),  # of the per-request means: requests, not gaps, are the independent units
        ci=ci,
        ci_method=CLUSTER_METHOD,
    )


def cluster_replicates(
    pooled: np.ndarray, sizes: np.ndarray, n_resamples: int, seed: int
) -> dict[str, np.ndarray]:
    """Bootstrap replicates of the pooled mean and percentiles, drawing whole clusters with replacement."""
    n_clusters = sizes.size
    cluster_of = np.repeat(np.arange(n_clusters), sizes)
    order = np.argsort(pooled)
    values, owner = pooled[order], cluster_of[order]
    sums = np.bincount(cluster_of, weights=pooled, minlength=n_clusters)
    percentiles = np.asarray(PERCENTILES, dtype=float)[:, None]
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"mean": [], **{f"p{q}": [] for q in PERCENTILES}}
    rows = max(1, _COUNT_CELLS // n_clusters)
    done = 0
    while done < n_resamples:
        k = min(rows, n_resamples - done)
        draws = rng.integers(0, n_clusters, size=(k, n_clusters))
        counts = np.empty((k, n_clusters))
        for row, drawn in enumerate(draws):  # a row at a time: faster than one bincount of offset ids
            counts[row] = np.bincount(drawn, minlength=n_clusters)
        totals = counts @ sizes
        out["mean"].append((counts @ sums) / totals)
        # numpy's linear percentile of each replicate's multiset, where sorted value i appears
        # counts[owner[i]] times: interpolate between the values at ranks floor(h) and floor(h) + 1.
        h = percentiles / 100 * (totals - 1)  # (percentiles, replicates)
        lower = np.floor(h)
        ranks = np.stack([lower, np.minimum(lower + 1, totals - 1)])  # (2, percentiles, replicates)
        replicate = np.broadcast_to(np.arange(k), ranks.shape)
        found = values[_locate(owner, counts, ranks.ravel(), replicate.ravel())].reshape(ranks.shape)
        for i, q in enumerate(PERCENTILES):
            out[f"p{q}"].append(found[0, i] + (h[i] - lower[i]) * (found[1, i] - found[0, i]))
        done += k
    return {name: np.concatenate(parts) for name, parts in out.items()}


def _locate(owner: np.ndarray, counts: np.ndarray, ranks: np.ndarray, replicate: np.ndarray) -> np.ndarray:
    """Sorted position of each 0-based rank in its replicate's multiset.

    Each replicate's count of values before a position is its cluster counts times the clusters'
    counts before that position, so a matrix product gives it at a grid of positions for all
    replicates at once. Ranks are sent to the grid cell they fall in, and each cell is narrowed the
    same way, until walking a cell value by value costs less than another grid.
    """
    n_clusters = counts.shape[1]
    found = np.empty(ranks.size, dtype=np.int64)
    pending = [(np.arange(ranks.size), 0, owner.size, np.zeros(n_clusters))]
    while pending:
        items, start, stop, before = pending.pop()
        width = stop - start
        if width <= _EXACT_WIDTH or items.size * width <= _WALK_FACTOR * _CELLS_PER_LEVEL * n_clusters:
            found[items] = start + _walk(owner[start:stop], counts, before, ranks[items], replicate[items])
            continue
        grid = np.linspace(start, stop, _CELLS_PER_LEVEL + 1).astype(np.int64)
        cum = _cumulative_counts(owner[start:stop], grid - start, n_clusters) + before
        rows, row_of_item = np.unique(replicate[items], return_inverse=True)
        at_grid = (counts[rows] @ cum.T)[
            row_of_item
        ]  # each item's replicate's count before each grid position
        cell = np.minimum(np.sum(at_grid <= ranks[items, None], axis=1) - 1, _CELLS_PER_LEVEL - 1)
        for c in np.unique(cell):
            if grid[c + 1] > grid[c]:
                pending.append((items[cell == c], int(grid[c]), int(grid[c + 1]), cum[c]))
    return found


def _walk(
    owner: np.ndarray, counts: np.ndarray, before: np.ndarray, ranks: np.ndarray, replicate: np.ndarray
) -> np.ndarray:
    """Offsets into `owner` (a window of sorted positions) of each rank, value by value."""
    rows, row_of_item = np.unique(replicate, return_inverse=True)
    reached = (counts[rows] @ before)[row_of_item, None] + np.cumsum(
        counts[replicate[:, None], owner], axis=1
    )
    return np.argmax(reached > ranks[:, None], axis=1)


def _cumulative_counts(owner: np.ndarray, grid: np.ndarray, n_clusters: int) -> np.ndarray:
    """cum[g, c] = how many of cluster c's values sit before position grid[g] (grid[0] = 0)."""
    cell = np.repeat(np.arange(1, grid.size), np.diff(grid))
    per_cell = np.bincount(cell * n_clusters + owner, minlength=grid.size * n_clusters)
    return np.cumsum(per_cell.reshape(grid.size, n_clusters), axis=0).astype(float)
