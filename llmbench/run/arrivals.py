"""Arrival times of the requests of a rate point: Poisson, gamma (bursty) or constant, from a seeded generator.

Every process has the same mean gap, 1 / rate; they differ in how the gaps spread. For gamma
arrivals the shape is the burstiness factor: the gaps' coefficient of variation is
1 / sqrt(burstiness), so 1 is Poisson (CV 1), smaller values bunch requests into bursts and
larger ones space them more evenly. The first request arrives at 0 under every process.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from llmbench.config.serving import ArrivalSpec


def arrival_offsets(n: int, rate: float, arrival: ArrivalSpec, rng: random.Random) -> list[float]:
    """Arrival times (s, from the point's start) of `n` requests at `rate` per second."""
    if rate <= 0:
        raise ValueError(f"a request rate must be positive, not {rate}")
    if arrival.process == "constant":
        return [i / rate for i in range(n)]
    if arrival.process == "gamma":
        shape = arrival.burstiness
        return _accumulate(n, lambda: rng.gammavariate(shape, 1.0 / (shape * rate)))
    return _accumulate(n, lambda: rng.expovariate(rate))


def poisson_offsets(n: int, rate: float, rng: random.Random) -> list[float]:
    """Poisson arrivals: the first at 0, exponential gaps of mean 1 / rate after."""
    return arrival_offsets(n, rate, ArrivalSpec(), rng)


def _accumulate(n: int, gap: Callable[[], float]) -> list[float]:
    offsets, t = [], 0.0
    for _ in range(n):
        offsets.append(t)
        t += gap()
    return offsets


def repeat_offsets(
    n: int, rate: float | None, arrival: ArrivalSpec, seed: int, point_no: int, repeat: int
) -> list[float] | None:
    """The arrivals of one repeat of a point's `n` requests; None for a closed-loop point (no `rate`).

    The draw is seeded by the run, the point and the repeat: the same point draws the same times again.
    """
    if rate is None:
        return None
    return arrival_offsets(n, rate, arrival, random.Random(f"{seed}:{point_no}:{repeat}"))
