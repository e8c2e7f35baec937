"""A study folder's front page: its leaderboard (composite, suites, cost columns, Pareto front) as JSON.

The leaderboard settings come from the study file the manifest names; when that file is gone (a folder
copied elsewhere) the defaults rank the same runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmbench.errors import LLMBenchError
from llmbench.results.schema import RunResult
from llmbench.study.manifest import read_manifest
from llmbench.study.spec import LeaderboardSpec, load_study
from llmbench.study.study_leaderboard import AXES, build_leaderboard
from llmbench.view.queries import metric


def _spec(folder: Path) -> tuple[str, LeaderboardSpec, dict[str, int]]:
    try:
        manifest = read_manifest(folder)
    except (ValueError, OSError):  # a manifest being rewritten or damaged: the folder's runs still rank
        manifest = None
    if manifest is None:
        return folder.name, LeaderboardSpec(), {}
    try:
        spec = load_study(manifest.study_file).config.leaderboard
    except (LLMBenchError, OSError):
        spec = LeaderboardSpec()
    return manifest.study, spec, manifest.counts()


def study_board(folder: Path, runs: list[RunResult], ids: dict[str, str]) -> dict[str, Any]:
    """The leaderboard of a study's finished runs; `ids` maps a run id to the viewer's id of its file."""
    name, spec, counts = _spec(folder)
    if not runs:
        return {"name": name, "cells": counts, "rows": [], "suites": [], "axes": []}
    board = build_leaderboard(runs, spec)
    axes = [a for a in board.axes if any(r.costs.get(a) is not None for r in board.rows)]  # none blank in all
    return {
        "name": name,
        "cells": counts,
        "suites": board.suites,
        "axes": [{"key": a, "title": AXES[a][0]} for a in axes],
        "best_fit": board.best_fit,
        "pareto_axis": AXES[board.pareto_axis][0],
        "rows": [
            {
                "label": r.model,
                "composite": metric(r.composite),
                "composite_kind": r.composite_kind,
                "suites": {
                    s: None if (c := r.score(s)) is None or c.value is None else _cell(c)
                    for s in board.suites
                },
                "costs": {a: r.costs.get(a) for a in axes},
                "pareto": r.model in board.pareto,
                "excluded": board.excluded.get(r.model),
                "measures_model": r.row.measures_model,
                "files": [ids[run.run_id] for run in r.row.runs if run.run_id in ids],
            }
            for r in board.rows
        ],
    }


def _cell(c: Any) -> dict[str, Any]:
    return {"value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high, "n": c.n, "best": c.best}
