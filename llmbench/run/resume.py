"""Whether a run resumes, what it keeps from its journal, and what is said about what was finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.errors import LLMBenchError, UserInputError
from llmbench.results.schema import PerfPoint, RunResult
from llmbench.run.journal import Journal, JournalState, read_journal
from llmbench.run.options import RunOptions, named_path


def resumes(opts: RunOptions, path: Path, journal: Path) -> bool:
    """Resume when asked, or when a named run (--output/--run-id) left a journal and no results file.

    A named run whose results file exists is finished: it is not run again unless `--fresh` says so.
    """
    if opts.fresh:
        return False
    if path.exists() and (opts.resume or opts.named):
        raise UserInputError(
            f"{path}: this run is finished (its results file exists)",
            hint="run it again from the start with --fresh, or give another --output",
        )
    if opts.resume and not journal.exists() and opts.named:
        raise UserInputError(f"--resume: no unfinished run at {path} (no journal {journal.name})")
    return opts.resume or (opts.named and journal.exists())


def finished_run(opts: RunOptions) -> Path | None:
    """The results file of the run `--resume` names, where that run has finished: nothing is left to run, and
    a nightly that resumes after a crash must not fail because the run had in fact finished."""
    if not opts.resume or opts.fresh:
        return None
    path = named_path(opts)
    return path if path is not None and path.exists() else None


def journal_settings(journal: Path) -> dict[str, Any]:
    try:
        header = read_journal(journal).header
    except FileNotFoundError:
        return {}
    return dict((header or {}).get("settings") or {})


def finished_text(finished: int, points: int) -> str:
    samples = finished - points
    parts = [f"{samples} finished sample{'s' * (samples != 1)}"] if samples or not points else []
    if points:
        parts.append(f"{points} sweep point{'s' * (points != 1)}")
    return " and ".join(parts)


def discard_if_empty(journal: Journal) -> None:
    """Remove a journal that holds nothing finished (the run failed before its first sample)."""
    try:
        if not read_journal(journal.path).finished:
            journal.path.unlink(missing_ok=True)
    except (OSError, LLMBenchError):
        pass


def new_points(sweep: list[PerfPoint], state: JournalState) -> bool:
    return len(sweep) > len(state.points)


def keep_original_times(result: RunResult, state: JournalState, *, rebuilt: bool) -> None:
    """A resumed run keeps the time it started; one rebuilt with nothing left to run, its finish time too."""
    header = state.header or {}
    if header.get("started_at"):
        result.created_at = header["started_at"]
    if rebuilt and state.finished:
        result.summary.rebuilt_from_journal = True
        if state.last_at:
            result.summary.finished_at = state.last_at
