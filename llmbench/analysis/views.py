"""What `compare` shows: the runs chosen from the files given, and the view that reads for them.

Imported by `llmbench.api` at start-up, so what reads and tests runs is imported when first used.

Up to three runs of one suite (or any with a baseline) read best metric by metric; more, or runs of several
suites, read best as a leaderboard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from llmbench.errors import UserInputError

if TYPE_CHECKING:
    from llmbench.analysis.compare import Comparison
    from llmbench.analysis.leaderboard import Leaderboard
    from llmbench.results.schema import RunResult


@dataclass
class Compared:
    """A comparison and the runs behind it: the baseline (if named) first, then the candidates.

    `leaderboard` is set when that is the view to show (no baseline, and more than three runs or runs of
    several suites; or asked for); `notes` say what was left out (older runs of a folder), for the user,
    not for the output.
    """

    runs: list[RunResult]
    baseline: RunResult | None
    candidates: list[RunResult]
    leaderboard: Leaderboard | None = None
    notes: list[str] = field(default_factory=list)
    alpha: float = 0.05
    repeats: dict[str, list[RunResult]] = field(default_factory=dict)
    _comparison: Comparison | None = field(default=None, repr=False)

    @property
    def comparison(self) -> Comparison:
        """Every metric side by side, built when first asked for (a leaderboard alone does not need it)."""
        if self._comparison is None:
            from llmbench.analysis.compare import build_comparison

            self._comparison = build_comparison(self.runs, baseline=self.baseline, alpha=self.alpha)
        return self._comparison


VIEWS = ("auto", "leaderboard", "detail")
DETAIL_UP_TO = 3  # runs: more than this and the per-metric view no longer reads, a leaderboard does


def compare(
    files: Sequence[str | Path],
    *,
    baseline: str | Path | None = None,
    keep_repeats: bool = False,
    all_runs: bool = False,
    view: str = "auto",
    alpha: float | None = None,
) -> Compared:
    """Compare results files (folders stand for the files in them); `llmbench.api.compare`.

    The latest run of each (model, backend, suite) is compared unless `all_runs`, its repeats (another
    seed) merged unless `keep_repeats`; the baseline is never merged. `view` "auto" gives the leaderboard
    without a baseline for more than three runs or runs of several suites, the per-metric comparison
    otherwise. `alpha` is the significance level (the gate's, when it will run, so that the output marks what the gate counts).
    """
    from llmbench.analysis.leaderboard import build_leaderboard
    from llmbench.analysis.select import expand, select_runs
    from llmbench.analysis.significance import ALPHA
    from llmbench.results.io import read_results

    if view not in VIEWS:
        raise UserInputError(f"unknown view '{view}'", hint=f"use one of {', '.join(VIEWS)}")
    alpha = ALPHA if alpha is None else alpha
    base_path = Path(baseline).resolve() if baseline is not None else None
    named = [Path(f) for f in files]
    paths = [p for p in expand(named) if base_path is None or p.resolve() != base_path]
    selected = select_runs(paths, latest_only=not all_runs, keep_repeats=keep_repeats)
    notes = []
    if not all_runs and len(selected) == 1 and len(paths) > 1 and _files_of_one_setting(named, baseline):
        selected = select_runs(paths, latest_only=False, keep_repeats=keep_repeats)
    elif len(selected) < len(paths):
        merged = "" if keep_repeats else ", repeats merged"
        notes.append(
            f"{len(paths)} results files: the latest run of each model, backend and suite is shown "
            f"({len(selected)} runs{merged}); --all-runs shows every run"
        )
    runs = [s.run for s in selected]
    base = read_results(Path(baseline)) if baseline is not None else None
    shown = ([base] if base else []) + runs
    repeats = {s.run.run_id: s.repeats for s in selected if s.repeats}
    compared = Compared(shown, base, runs, notes=notes, alpha=alpha, repeats=repeats)
    if view == "leaderboard" or (view == "auto" and base is None and not _reads_metric_by_metric(runs)):
        sources = {
            rid: str(path)
            for s in selected
            for rid, path in zip(s.run.settings.repeat_run_ids or [s.run.run_id], s.paths, strict=False)
        }
        compared.leaderboard = build_leaderboard(shown, alpha=alpha, by_date=all_runs, sources=sources)
    return compared


def _reads_metric_by_metric(runs: Sequence[RunResult]) -> bool:
    """Up to three runs of one suite read best side by side, metric by metric; runs of several suites
    (a maths run beside a perf sweep) share no metric, and read as the leaderboard's columns."""
    return len(runs) <= DETAIL_UP_TO and len({run.suite_name for run in runs}) <= 1


def _files_of_one_setting(named: Sequence[Path], baseline: str | Path | None) -> bool:
    """`compare old.json new.json`: files named one by one, no baseline, so every one of them is wanted.

    A folder (a nightly one holds every night's run) or a baseline (the gate checks what is newest against
    it) keeps the latest run only, with its note.
    """
    return baseline is None and not any(path.is_dir() for path in named)
