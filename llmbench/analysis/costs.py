"""What results files say answers cost, in the two kinds of price llmbench knows, kept apart by name:

- API cost (`api_`): a hosted model's tokens at its per-token prices (`prices:` in its model config),
  priced per sample when the run was assembled and kept in the results file with the day the prices
  were read (`summary.cost`). Prices change: the figure is the one of that day.
- Host cost (`host_`): the GPU time of a self-hosted run at a host's price per hour, which a study
  gives (`leaderboard.price_per_hour_usd`); its generation wall time x that price. A model served
  elsewhere uses none of the host's time.

Per correct answer, each divides by the answers scored correct in the same runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmbench.results.schema import RunResult


def priced(run: RunResult) -> bool:
    """Whether the run's samples were priced (its model config had per-token prices)."""
    return run.summary.cost is not None or any(s.cost_usd is not None for s in run.samples)


def api_cost_usd(runs: Sequence[RunResult]) -> float | None:
    """The priced runs' cost at their per-token prices; None where none was priced. Repeats merged into one
    run count every repeat's samples."""
    costs = [_run_cost(r) for r in runs if priced(r)]
    return sum(costs) if costs else None


def correct_answers(runs: Sequence[RunResult]) -> int:
    """Answers scored correct in `runs`: the samples' verdicts where the runs keep them (every repeat's, where
    repeats were merged into one run, as their costs are), else the tasks' counts."""
    return sum(
        sum(s.status == "correct" for s in r.samples)
        if r.samples
        else sum(t.counts.get("correct", 0) for t in r.tasks)
        for r in runs
    )


def api_cost_per_correct(runs: Sequence[RunResult]) -> float | None:
    """API cost per correct answer of the priced runs among `runs`; None without prices or correct answers."""
    scored = [r for r in runs if priced(r) and r.tasks]
    cost, correct = api_cost_usd(scored), correct_answers(scored)
    return cost / correct if cost is not None and correct else None


def host_cost_per_correct(runs: Sequence[RunResult], price_per_hour_usd: float | None) -> float | None:
    """The runs' generation wall time at a host's price per hour, per correct answer; None without a price.
    Runs of a model served elsewhere (a hosted API: no local GPUs) used no time of the host."""
    runs = [r for r in runs if r.backend.gpus is not None]
    if price_per_hour_usd is None:
        return None
    wall = sum(r.performance.generation_wall_s or 0.0 for r in runs)
    # the tasks' counts: repeats merged into one run keep their mean wall time and their mean counts
    correct = sum(t.counts.get("correct", 0) for r in runs for t in r.tasks)
    return price_per_hour_usd * wall / 3600 / correct if correct and wall else None


def prices_read(runs: Sequence[RunResult]) -> list[str]:
    """The days the priced runs' per-token prices were read, oldest first."""
    return sorted({r.summary.cost.prices_as_of for r in runs if r.summary.cost is not None})


def _run_cost(run: RunResult) -> float:
    from_samples = [s.cost_usd for s in run.samples if s.cost_usd is not None]
    if from_samples or run.summary.cost is None:
        return sum(from_samples)
    return run.summary.cost.usd
