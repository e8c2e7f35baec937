"""Arrival processes of rate points: mean gap 1/rate for each, gamma's spread set by its burstiness, seeded."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from pydantic import ValidationError

from llmbench.config.serving import ArrivalSpec
from llmbench.config.suite import PerfSweep
from llmbench.run.arrivals import arrival_offsets

N = 20_000


def gaps(process: str, rate: float, burstiness: float = 1.0, seed: int = 0) -> list[float]:
    offsets = arrival_offsets(
        N, rate, ArrivalSpec(process=process, burstiness=burstiness), random.Random(seed)
    )  # type: ignore[arg-type]
    return [b - a for a, b in itertools.pairwise(offsets)]


def cv(values: list[float]) -> float:
    return statistics.pstdev(values) / statistics.fmean(values)


@pytest.mark.parametrize(
    ("process", "burstiness"), [("poisson", 1.0), ("gamma", 0.25), ("gamma", 4.0), ("constant", 1.0)]
)
def test_every_process_keeps_the_mean_gap_at_one_over_the_rate(process: str, burstiness: float) -> None:
    assert statistics.fmean(gaps(process, 8.0, burstiness)) == pytest.approx(1 / 8, rel=0.05)


def test_poisson_gaps_spread_like_an_exponential() -> None:
    assert cv(gaps("poisson", 5.0)) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_gaps_have_a_cv_of_one_over_the_root_of_the_burstiness(burstiness: float) -> None:
    assert cv(gaps("gamma", 5.0, burstiness)) == pytest.approx(burstiness**-0.5, rel=0.08)


def test_constant_arrivals_are_evenly_spaced_from_zero() -> None:
    assert arrival_offsets(4, 2.0, ArrivalSpec(process="constant"), random.Random(0)) == [0.0, 0.5, 1.0, 1.5]


def test_the_same_seed_gives_the_same_arrivals_and_another_seed_others() -> None:
    assert gaps("gamma", 3.0, 0.5, seed=7) == gaps("gamma", 3.0, 0.5, seed=7)
    assert gaps("gamma", 3.0, 0.5, seed=7) != gaps("gamma", 3.0, 0.5, seed=8)
    assert arrival_offsets(3, 1.0, ArrivalSpec(), random.Random(1))[0] == 0.0


def test_burstiness_is_refused_for_a_process_it_does_not_shape() -> None:
    with pytest.raises(ValidationError, match="burstiness shapes gamma arrivals"):
        PerfSweep(request_rates=[1.0], arrival={"process": "poisson", "burstiness": 0.5})  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ArrivalSpec(process="gamma", burstiness=0)
    with pytest.raises(ValidationError):
        ArrivalSpec(process="uniform")  # type: ignore[arg-type]


def test_a_sweep_without_arrival_keeps_poisson() -> None:
    assert PerfSweep().arrival == ArrivalSpec(process="poisson", burstiness=1.0)
