"""The results files a viewer serves, read no further than a page needs.

The run list reads only each file's head (identity, date); the runs on the page shown are read without
their samples (scores, performance); a run's samples are read when it is opened, and the last few opened
stay in memory. A file is known by the path it was found at: nothing outside that list is ever opened.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.analysis.select import expand
from llmbench.errors import LLMBenchError, ResultsFileError, UserInputError
from llmbench.results.io import read_header, read_results
from llmbench.results.schema import RunResult

MANIFEST_NAME = "study.json"  # what `llmbench study` writes beside its cells (llmbench.study.manifest)
OPEN_RUNS_KEPT = 6  # runs held whole in memory: two compared and a few visited


class UnknownRun(LLMBenchError):
    """A run id that is not one of the files the viewer was given."""


@dataclass
class Header:
    """A file's identity as its head says, or why it could not be read."""

    id: str
    path: Path
    raw: dict[str, Any]
    error: str | None = None

    @property
    def created_at(self) -> str:
        return str(self.raw.get("created_at") or "")


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _stamp_of(run_id: str, path: Path) -> tuple[int, int]:
    """The file's stamp; a file removed since the folder was scanned is an unknown run, not a crash."""
    try:
        return _stamp(path)
    except FileNotFoundError:
        raise UnknownRun(f"no run {run_id!r}: its file was removed") from None
    except OSError as exc:
        raise ResultsFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


class Catalog:
    """The files given to `llmbench view` and what has been read of them (thread-safe)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        given = [Path(p) for p in paths]
        for p in given:
            if not p.exists():
                raise UserInputError(f"{p}: no such file or folder")
        self._given = given
        self.files: dict[str, Path] = self._found()
        if not self.files:
            raise UserInputError("no results files to view")
        self.study_dirs = [p for p in given if p.is_dir() and (p / MANIFEST_NAME).is_file()]
        self._lock = threading.Lock()
        self._headers: dict[str, tuple[tuple[int, int], Header]] = {}
        self._light: dict[str, tuple[tuple[int, int], RunResult]] = {}
        self._open: OrderedDict[str, tuple[tuple[int, int], RunResult]] = OrderedDict()

    def _found(self) -> dict[str, Path]:
        return {p.as_posix(): p for p in expand(self._given) if p.name != MANIFEST_NAME}

    def rescan(self) -> None:
        """Look again for files under the folders given: a study or a nightly job may have added some."""
        try:
            found = self._found()
        except (UserInputError, OSError):  # a folder emptied or removed meanwhile: keep what was listed
            return
        with self._lock:
            self.files = found

    def path(self, run_id: str) -> Path:
        """The file behind a run id; only ids of the files found are known (no path is built from input)."""
        try:
            return self.files[run_id]
        except KeyError:
            raise UnknownRun(f"no run {run_id!r} among the files being viewed") from None

    def headers(self) -> list[Header]:
        """Every file's head, newest run first; unreadable files are listed with their error."""
        out = []
        for run_id in list(self.files):
            try:
                out.append(self.header(run_id))
            except UnknownRun:  # gone since the folder was scanned
                continue
        return sorted(out, key=lambda h: (h.created_at, h.id), reverse=True)

    def header(self, run_id: str) -> Header:
        path = self.path(run_id)
        try:
            stamp = _stamp(path)
        except OSError as exc:
            return Header(run_id, path, {}, f"cannot be read ({exc.strerror or exc})")
        with self._lock:
            cached = self._headers.get(run_id)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            header = Header(run_id, path, read_header(path))
        except LLMBenchError as exc:
            header = Header(run_id, path, {}, str(exc))
        with self._lock:
            self._headers[run_id] = (stamp, header)
        return header

    def summary(self, run_id: str) -> RunResult:
        """The run without its samples: scores, intervals, performance (what the run list shows)."""
        path = self.path(run_id)
        stamp = _stamp_of(run_id, path)
        with self._lock:
            hit = self._open.get(run_id) or self._light.get(run_id)
        if hit and hit[0] == stamp:
            return hit[1]
        run = read_results(path, with_samples=False)
        with self._lock:
            self._light[run_id] = (stamp, run)
        return run

    def run(self, run_id: str) -> RunResult:
        """The whole run, samples included; the last few opened are kept."""
        path = self.path(run_id)
        stamp = _stamp_of(run_id, path)
        with self._lock:
            hit = self._open.get(run_id)
            if hit and hit[0] == stamp:
                self._open.move_to_end(run_id)
                return hit[1]
        run = read_results(path)
        with self._lock:
            self._open[run_id] = (stamp, run)
            self._open.move_to_end(run_id)
            while len(self._open) > OPEN_RUNS_KEPT:
                self._open.popitem(last=False)
        return run

    def study_runs(self) -> tuple[Path, dict[str, RunResult]] | None:
        """The study folder given (the first, if several) and its runs without samples, by id."""
        if not self.study_dirs:
            return None
        folder = self.study_dirs[0]
        runs: dict[str, RunResult] = {}
        for run_id, path in self.files.items():
            if folder in path.parents and self.header(run_id).error is None:
                try:
                    runs[run_id] = self.summary(run_id)
                except LLMBenchError:
                    continue  # listed with its error in the run list; the leaderboard goes on without it
        return folder, runs
