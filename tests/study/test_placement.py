"""Placement is a pure function of (waiting jobs, running jobs, the host's GPUs)."""

from __future__ import annotations

import pytest

from llmbench.errors import UserInputError
from llmbench.study.placement import Demand, Placed, choose_gpus, next_placement, waves

HOST4 = [0, 1, 2, 3]


def test_quality_jobs_share_a_host_on_disjoint_gpu_sets() -> None:
    plan = waves([Demand("a", 1), Demand("b", 2), Demand("c", 1)], HOST4)
    assert len(plan) == 1
    sets = [set(p.gpus) for p in plan[0]]
    assert sum(len(s) for s in sets) == 4 and set().union(*sets) == set(HOST4)
    assert [p.job for p in plan[0]] == ["a", "b", "c"]


def test_tensor_parallel_jobs_get_aligned_blocks() -> None:
    assert choose_gpus([1, 2, 3], HOST4, 2) == (2, 3)
    assert choose_gpus([0, 1, 2, 3], HOST4, 4) == (0, 1, 2, 3)
    assert choose_gpus([0, 3], HOST4, 2) == (0, 3)  # no aligned pair free: the lowest two
    assert choose_gpus([0], HOST4, 2) is None


def test_a_job_that_does_not_fit_waits_while_later_ones_backfill() -> None:
    running = [Placed("big", (0, 1, 2))]
    assert next_placement([Demand("tp2", 2), Demand("one", 1)], running, HOST4) == Placed("one", (3,))


def test_a_performance_job_waits_for_an_idle_host_and_runs_alone() -> None:
    waiting = [Demand("perf", 1, exclusive=True), Demand("later", 1)]
    assert next_placement(waiting, [Placed("q", (0,))], HOST4) is None
    alone = next_placement(waiting, [], HOST4)
    assert alone == Placed("perf", (0,), True)
    assert next_placement([Demand("later", 1)], [alone], HOST4) is None  # nothing beside it


def test_jobs_without_gpus_run_one_at_a_time_beside_gpu_jobs() -> None:
    plan = waves([Demand("api", 0), Demand("ref", 0), Demand("m", 1)], HOST4)
    assert [[p.job for p in w] for w in plan] == [["api", "m"], ["ref"]]


def test_eight_gpus_hold_eight_single_gpu_jobs_at_once() -> None:
    plan = waves([Demand(f"m{i}", 1) for i in range(10)], list(range(8)))
    assert [len(w) for w in plan] == [8, 2]


def test_a_job_bigger_than_the_host_is_refused_with_a_hint() -> None:
    with pytest.raises(UserInputError, match="needs 8 GPU"):
        waves([Demand("huge", 8)], HOST4)
