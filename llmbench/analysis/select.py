"""Which results files a comparison reads: folders expanded, the latest run of each (model, backend, suite).

A results folder grows by a file per run per night; a leaderboard wants the newest of each. Headers (all
but the per-sample records, which are most of a file) are read to choose; only the chosen runs are read
whole, and repeats of one run (another seed) are merged into one, unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.analysis.repeats import merge, repeat_key
from llmbench.errors import UserInputError
from llmbench.results import RunResult, read_results


@dataclass
class Selected:
    """One run to compare (a merged run for repeats) and the files it was read from."""

    run: RunResult
    paths: list[Path]


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for the `*.json` files under it (journals and hidden files left out)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*.json")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UserInputError(f"{path}: no results files (*.json) in this folder")
            files += found
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def run_key(run: RunResult) -> tuple[str, str, str, str]:
    """What makes a leaderboard row and column: model, backend, variant, suite."""
    return (run.model_name, str(run.backend.get("backend") or "?"), variant(run), run.suite_name)


def variant(run: RunResult) -> str:
    """The variant a study names in the run's settings (a quantisation, a template), or ''."""
    return str(run.settings.get("variant") or "")


def _repeat_groups(runs: Sequence[RunResult]) -> list[list[RunResult]]:
    """Runs in time order, each joining the newest group of its setting that lacks its seed: the nights of
    a nightly folder stay apart, and each night's seeds come together."""
    groups: list[tuple[str, list[RunResult]]] = []
    for run in runs:
        key, seed = repeat_key(run), run.settings.get("seed")
        home = next(
            (
                g
                for k, g in reversed(groups)
                if k == key and seed is not None and all(r.settings.get("seed") != seed for r in g)
            ),
            None,
        )
        if home is None:
            groups.append((key, [run]))
        else:
            home.append(run)
    return [g for _, g in groups]


def select_runs(
    paths: Sequence[Path], *, latest_only: bool = True, keep_repeats: bool = False
) -> list[Selected]:
    """The runs to compare, oldest first: every file's run, or the latest of each (model, backend, suite).

    "Latest" is the newest group of repeats: runs of one setting with distinct seeds, merged into one
    unless `keep_repeats`. Only the chosen files are read whole.
    """
    headers = [(path, read_results(path, with_samples=False)) for path in paths]
    headers.sort(key=lambda pr: pr[1].created_at)
    by_id = {id(run): path for path, run in headers}
    groups = _repeat_groups([run for _, run in headers])
    if latest_only:
        latest: dict[tuple[str, str, str, str], list[RunResult]] = {}
        for group in groups:  # oldest first, so the newest group of each key is the one that stays
            latest[run_key(group[0])] = group
        chosen = set(map(id, (run for group in latest.values() for run in group)))
        groups = [group for group in groups if id(group[0]) in chosen]
    if keep_repeats:
        groups = [[run] for group in groups for run in group]
    selected = []
    for group in groups:
        files = [by_id[id(run)] for run in group]
        runs = [read_results(path) for path in files]
        selected.append(Selected(merge(runs) if len(runs) > 1 else runs[0], files))
    return selected
