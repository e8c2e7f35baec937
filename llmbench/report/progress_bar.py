"""The run's progress: a bar with ETA per task on a terminal; elsewhere (CI logs) a line every few seconds."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBar

from llmbench.run.progress_events import Progress

LINE_EVERY_S = 10.0  # outside a terminal: how often a progress line is printed


class RichProgress(Progress):
    """On a terminal a bar; elsewhere periodic lines; disabled (`--quiet`), nothing at all."""

    def __init__(self, console: Console, *, enabled: bool = True, line_every_s: float = LINE_EVERY_S) -> None:
        self.console = console
        self.enabled = enabled and console.is_terminal
        self.lines = enabled and not console.is_terminal  # a log: plain lines, no bar
        self.quiet = not enabled
        self.line_every_s = line_every_s
        self._name, self._total, self._done, self._resumed = "", 0, 0, 0
        self._started = self._last_line = 0.0
        self._bar = RichBar(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            disable=not self.enabled,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._bar.__enter__()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(t, e, tb)

    def task_started(self, name: str, total: int, done: int) -> None:
        self._task = self._bar.add_task(name, total=total, completed=done)
        self._name, self._total, self._done, self._resumed = name, total, done, done
        self._started = self._last_line = time.monotonic()
        if self.lines:
            self.console.print(f"{name}: {total - done} requests to run ({done} already done)")

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)
        self._done += n
        now = time.monotonic()
        if self.lines and now - self._last_line >= self.line_every_s:
            self._last_line = now
            self.console.print(self.line(now), highlight=False)

    def line(self, now: float) -> str:
        """`gsm8k: 48/200 (24%), 31 s, eta 1m39s`: the ETA from this session's pace (resumed samples aside)."""
        elapsed = now - self._started
        ran = self._done - self._resumed
        left = self._total - self._done
        pct = 100 * self._done // self._total if self._total else 100
        eta = f", eta {_duration(elapsed / ran * left)}" if ran and left else ""
        return f"{self._name}: {self._done}/{self._total} ({pct}%), {_duration(elapsed)}{eta}"

    def task_finished(self, name: str) -> None:
        if self.lines and self._done > self._resumed:
            self.console.print(self.line(time.monotonic()) + ", done", highlight=False)
        self._task = None

    def message(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)


def _duration(seconds: float) -> str:
    s = round(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s} s"
