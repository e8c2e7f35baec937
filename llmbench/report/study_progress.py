"""One progress bar for a whole study (every cell, every worker), with an ETA."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from llmbench.study.execute import StudyProgress


class RichStudyProgress(StudyProgress):
    """The bar counts tasks of cells: a task advances by its share of samples as they finish."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.console = console
        self.enabled = enabled and console.is_terminal
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.1f}/{task.total:.0f} tasks"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
        )
        self._id = self._bar.add_task("study", total=1)
        self._task_size: dict[str, float] = {}  # cell -> share of one task per sample

    def __enter__(self) -> RichStudyProgress:
        self._bar.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(t, e, tb)

    def started(self, tasks_per_cell: dict[str, int]) -> None:
        self._tasks = dict(tasks_per_cell)
        self._done: dict[str, float] = dict.fromkeys(tasks_per_cell, 0.0)
        total = sum(self._tasks.values())
        self._bar.update(self._id, total=max(total, 1), description=f"study: {len(self._tasks)} cells")
        self.console.print(f"{len(self._tasks)} cells to run ({total} tasks)", highlight=False)

    def _add(self, cell: str, amount: float) -> None:
        amount = min(amount, self._tasks.get(cell, 0) - self._done.get(cell, 0.0))
        if amount > 0:
            self._done[cell] = self._done.get(cell, 0.0) + amount
            self._bar.advance(self._id, amount)

    def event(self, event: dict[str, Any]) -> None:
        kind, cell = event.get("event"), str(event.get("cell"))
        if kind == "task_started":
            total = int(event.get("total") or 0)
            done = int(event.get("done") or 0)
            self._task_size[cell] = 1.0 / total if total else 0.0
            self._add(cell, 1.0 if total == 0 else done / total)
        elif kind == "advance":
            self._add(cell, self._task_size.get(cell, 0.0) * int(event.get("n", 1)))
        elif kind == "cell_done":
            self._add(cell, float(self._tasks.get(cell, 0)))
            self.console.print(f"done  {cell}: {event.get('results')}", highlight=False)
        elif kind == "cell_failed":
            self.console.print(f"[red]failed[/] {cell}: {event.get('error')}", highlight=False)
        elif kind == "message" and not self.enabled:
            self.console.print(f"{cell}: {event.get('text')}", highlight=False)

    def message(self, text: str) -> None:
        self.console.print(text, highlight=False)
