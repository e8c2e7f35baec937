"""Where jobs run on one host: disjoint GPU sets of the size each needs; performance jobs alone.

A pure function of (what waits, what runs, the host's GPUs), so the plan a dry run prints and the
scheduler that runs the study take the same decisions, and tests can state them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Demand:
    """A job as placement sees it: how many GPUs, and whether it needs the host to itself."""

    job: str
    gpus: int
    exclusive: bool = False


@dataclass(frozen=True)
class Placed:
    job: str
    gpus: tuple[int, ...]
    exclusive: bool = False


MAX_CPU_JOBS = 1  # jobs that need no GPU (API models, the reference backend) run one at a time


def choose_gpus(free: Sequence[int], host: Sequence[int], n: int) -> tuple[int, ...] | None:
    """`n` free GPUs, preferring an aligned block (0-1, 2-3: the pairs that share a switch), else the lowest."""
    free_set = set(free)
    if n == 0:
        return ()
    if len(free_set) < n:
        return None
    for start in range(0, len(host) - n + 1, n):
        block = tuple(host[start : start + n])
        if free_set.issuperset(block):
            return block
    return tuple(sorted(free_set, key=host.index)[:n])


def next_placement(
    waiting: Sequence[Demand], running: Sequence[Placed], host: Sequence[int]
) -> Placed | None:
    """The next job to start, in order with backfill, or None while nothing fits.

    An exclusive job starts only on an idle host and nothing starts beside it; a job waits for the
    exclusive job before it, so performance measurements are not starved by later quality work.
    """
    if any(p.exclusive for p in running):
        return None
    busy = {g for p in running for g in p.gpus}
    free = [g for g in host if g not in busy]
    cpu_jobs = sum(1 for p in running if not p.gpus)
    for demand in waiting:
        if demand.exclusive:
            if running:
                return None
            gpus = choose_gpus(free, host, demand.gpus)
            return Placed(demand.job, gpus, True) if gpus is not None else None
        if demand.gpus == 0:
            if cpu_jobs < MAX_CPU_JOBS:
                return Placed(demand.job, ())
            continue
        gpus = choose_gpus(free, host, demand.gpus)
        if gpus is not None:
            return Placed(demand.job, gpus)
    return None


def waves(demands: Sequence[Demand], host: Sequence[int]) -> list[list[Placed]]:
    """The plan as a dry run shows it: jobs that start together, assuming each wave ends together."""
    too_big = [d for d in demands if d.gpus > len(host)]
    if too_big:
        from llmbench.errors import UserInputError

        d = too_big[0]
        raise UserInputError(
            f"job {d.job} needs {d.gpus} GPU(s); the host has {len(host)}",
            hint="use a bigger host (--gpus N), or Ray across hosts (--ray ADDRESS)",
        )
    waiting = list(demands)
    out: list[list[Placed]] = []
    while waiting:
        wave: list[Placed] = []
        while (p := next_placement(waiting, wave, host)) is not None:
            wave.append(p)
            waiting = [d for d in waiting if d.job != p.job]
        out.append(wave)
    return out
