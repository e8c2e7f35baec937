"""Which results files a comparison reads: folders expanded, the latest run of each (model, backend, suite).

A results folder grows by a file per run per night; a leaderboard wants the newest of each. Headers (all
but the per-sample records, which are most of a file) are read to choose; only the chosen runs are read
whole, and repeats of one run (another seed) are merged into one, unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from llmbench.analysis.repeats import header_repeat_key, joins, merge
from llmbench.errors import UserInputError
from llmbench.results.io import read_header, read_results
from llmbench.results.schema import RunResult


@dataclass
class Selected:
    """One run to compare (a merged run for repeats), the files it was read from and the runs merged into
    it (empty for a run of one file): their spread is the gate's noise band."""

    run: RunResult
    paths: list[Path]
    repeats: list[RunResult] = field(default_factory=list)


@dataclass
class _Header:
    """What chooses a run: read from the head of its file, never validated further (the chosen are)."""

    path: Path
    created_at: str
    key: tuple[str, str, str, str]  # model, backend, variant, suite
    repeat_key: str
    seed: object
    repeat_of: object  # the `--repeat` that made the run, if one did


# What `llmbench study` writes beside its cells' results (llmbench.study.manifest, not imported: it brings
# the study planner and the backends with it): a folder's file of that name is no results file.
MANIFEST_NAME = "study.json"


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for the `*.json` files under it (journals, hidden files and study
    manifests left out)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*.json")
                if p.is_file()
                and p.name != MANIFEST_NAME
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise UserInputError(f"{path}: no results files (*.json) in this folder")
            files += found
        else:
            files.append(path)
    return list(dict.fromkeys(files))


def run_key(run: RunResult) -> tuple[str, str, str, str]:
    """What makes a leaderboard row and column: model, backend, variant, suite."""
    return _key(run.model_name, run.backend.model_dump(), run.settings.model_dump(), run.suite_name)


def _key(model: object, backend: object, settings: object, suite: object) -> tuple[str, str, str, str]:
    name = backend.get("backend") if isinstance(backend, dict) else None
    var = settings.get("variant") if isinstance(settings, dict) else None
    return (str(model), str(name or "?"), str(var or ""), str(suite))


def variant(run: RunResult) -> str:
    """The variant a study names in the run's settings (a quantisation, a template), or ''."""
    return run_key(run)[2]


def _header(path: Path) -> _Header:
    raw = read_header(path)
    settings = raw.get("settings")
    settings = settings if isinstance(settings, dict) else {}
    key = _key(raw.get("model_name"), raw.get("backend"), settings, raw.get("suite_name"))
    return _Header(
        path,
        str(raw.get("created_at", "")),
        key,
        header_repeat_key(raw),
        settings.get("seed"),
        settings.get("repeat_of"),
    )


def _repeat_groups(headers: Sequence[_Header]) -> list[list[_Header]]:
    """Runs in time order, each joining the newest group of its setting that lacks its seed (or, made by one
    `--repeat`, that group): the nights of a nightly folder stay apart, and each night's repeats come
    together."""
    groups: list[list[_Header]] = []
    by_key: dict[str, list[list[_Header]]] = {}
    for h in headers:
        same = by_key.setdefault(h.repeat_key, [])
        home = next(
            (g for g in reversed(same) if joins(h.seed, h.repeat_of, [o.seed for o in g])),
            None,
        )
        if home is None:
            home = []
            same.append(home)
            groups.append(home)
        home.append(h)
    return groups


def select_runs(
    paths: Sequence[Path], *, latest_only: bool = True, keep_repeats: bool = False
) -> list[Selected]:
    """The runs to compare, oldest first: every file's run, or the latest of each (model, backend, suite).

    "Latest" is the newest group of repeats: runs of one setting with distinct seeds, merged into one
    unless `keep_repeats`. Only the chosen files are read whole.
    """
    headers = sorted((_header(path) for path in paths), key=lambda h: h.created_at)
    groups = _repeat_groups(headers)
    if latest_only:
        latest: dict[tuple[str, str, str, str], list[_Header]] = {}
        for group in groups:  # oldest first, so the newest group of each key is the one that stays
            latest[group[0].key] = group
        chosen = {id(g) for g in latest.values()}
        groups = [g for g in groups if id(g) in chosen]
    if keep_repeats:
        groups = [[h] for group in groups for h in group]
    selected = []
    for group in groups:
        files = [h.path for h in group]
        runs = [read_results(path) for path in files]
        selected.append(Selected(merge(runs), files, runs) if len(runs) > 1 else Selected(runs[0], files))
    return selected
