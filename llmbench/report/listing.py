"""`llmbench list` and `llmbench validate` in the terminal, and a scorer's verdicts one line each."""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

from llmbench.run.catalogue import Catalogue
from llmbench.scoring.base import Score


def print_catalogue(cat: Catalogue, console: Console) -> None:
    suites = Table(title="suites")
    suites.add_column("suite")
    suites.add_column("tasks")
    for name, tasks, problem in cat.suites:
        suites.add_row(name, f"[red]invalid: {problem}" if problem else ", ".join(tasks))
    console.print(suites)
    models = Table(title="models (configs/models)")
    for col in ("alias", "model", "backend"):
        models.add_column(col)
    for row in cat.models:
        models.add_row(*row)
    console.print(models)
    console.print(f"backends: {', '.join(cat.backends)}")
    console.print(f"scorers: {', '.join(cat.scorers)}")
    console.print(f"built-in datasets: {', '.join(cat.datasets)}")


def _brief(value: object, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_verdicts(verdicts: Iterable[tuple[str, Score]], console: Console) -> None:
    """One line per verdict: id, status, value, its metrics and its details, each shortened."""
    for sid, score in verdicts:
        metrics = " ".join(f"{k}={v:g}" for k, v in score.metrics.items())
        details = "; ".join(
            f"{k}={_brief(v)}" for k, v in score.details.items() if v not in (None, "", [], {})
        )
        line = "\t".join(part for part in (sid, score.status, f"{score.value:.3f}", metrics, details) if part)
        console.print(line, highlight=False, markup=False, soft_wrap=True)
