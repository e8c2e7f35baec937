"""The per-run journal: every finished sample and sweep point is appended (and flushed) as soon as it exists.

A run killed at any point, `kill -9` included, resumes from its journal: what is in it is not run
again, and the final results file equals that of an uninterrupted run. One process writes a journal
at a time (an exclusive `flock`, released by the kernel on any exit), so two runs given the same
`--output` cannot interleave their lines.

Lines, in order: one `header` (what the run is: suite, model, settings, start time); an `opened`
line each time a process takes the journal (its pid, for whoever finds it locked); a `task` line
pinning each task's fingerprints (data content included) before its first sample; then
`request_id` lines (samples) and `point` lines (performance sweep points).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from llmbench.data.readers import JsonLine, jsonl_lines
from llmbench.errors import DataError, ResultsFileError, UserInputError, validation_line
from llmbench.results.schema import PerfPoint, SampleRecord

PINNED = ("suite_hash", "model", "settings")  # header keys a resume must match
# A model config's time limits decide whether an answer arrives in time, not what it says: a resume may
# change them, and a journal written before they were renamed still resumes.
SYNC_EVERY_NS = 1_000_000_000  # the journal reaches the disk at least this often while samples finish
UNPINNED_API_KEYS = ("request_timeout_s", "first_token_timeout_s", "idle_timeout_s")


_Record = TypeVar("_Record", bound=BaseModel)


class JournalLockedError(UserInputError):
    """Another live process holds the journal."""


@dataclass
class JournalState:
    """What a journal holds: its header, finished samples and points, and the pinned task fingerprints."""

    header: dict[str, Any] | None = None
    samples: dict[str, SampleRecord] = field(default_factory=dict)
    points: dict[str, PerfPoint] = field(default_factory=dict)
    tasks: dict[str, dict[str, str]] = field(default_factory=dict)
    holder_pid: int | None = None
    last_at: str | None = None  # when the last sample or point was written
    keep_bytes: int | None = None  # where a line torn by a kill starts; None when the file ends cleanly

    @property
    def finished(self) -> int:
        return len(self.samples) + len(self.points)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_journal(path: Path) -> JournalState:
    """Parse a journal without taking it; a line cut off at the end by a kill is left out."""
    if not path.exists():
        raise FileNotFoundError(path)
    state = JournalState()
    for line in _lines(path):
        if line.torn:
            state.keep_bytes = line.offset  # a line cut off by a kill: that sample runs again
            break
        if line.value is not None:
            _absorb(state, line.value, path, line.lineno)
    return state


def _lines(path: Path) -> Iterator[JsonLine]:
    """The journal's lines; a corrupt line other than a torn last one fails in one line."""
    try:
        yield from jsonl_lines(path, tolerate_torn_last_line=True, any_line_length=True)
    except DataError as exc:
        raise UserInputError(f"corrupt journal: {exc.message}", hint=_CORRUPT_HINT) from None


_CORRUPT_HINT = "it was written by two runs at once or edited; start over with --fresh"
_POINT_KEY = re.compile(r".+/[0-9]+")  # `<task>/<point number>`


class _Corrupt(Exception):
    """What is wrong with one journal line; `_absorb` names the file and line."""


def _absorb(state: JournalState, entry: Any, path: Path, lineno: int) -> None:
    try:
        _absorb_entry(state, entry)
    except _Corrupt as exc:
        raise _corrupt(path, lineno, exc) from None


def _corrupt(path: Path, lineno: int, what: _Corrupt) -> UserInputError:
    return UserInputError(f"corrupt journal: {path}:{lineno}: {what}", hint=_CORRUPT_HINT)


def _absorb_entry(state: JournalState, entry: Any) -> None:
    if not isinstance(entry, dict):
        raise _Corrupt("a line that is not an object")
    if "header" in entry:
        header = _mapping(entry, "header")
        _check_settings(header.get("settings", {}))
        state.header = header
    elif "opened" in entry:
        pid = _mapping(entry, "opened").get("pid")
        state.holder_pid = pid if isinstance(pid, int) and not isinstance(pid, bool) else None
    elif "task" in entry:
        state.tasks[_text(entry, "task")] = _mapping(entry, "fingerprint")
    elif "request_id" in entry:
        request_id, record = _sample_line(entry)
        state.samples[request_id] = record
        state.last_at = _at(entry, state.last_at)
    elif "point" in entry:
        key = _text(entry, "point")
        if not _POINT_KEY.fullmatch(key):
            raise _Corrupt(f"a point named {key!r} (not <task>/<number>)")
        state.points[key] = _model(PerfPoint, entry, "perf")
        state.last_at = _at(entry, state.last_at)


_SETTING_TYPES: dict[str, tuple[type, ...]] = {  # what a resume takes from the header's settings
    "limit": (int, type(None)),
    "seed": (int,),
    "max_new_tokens": (int, type(None)),
    "tasks": (list,),
    "set": (dict,),
}


def _check_settings(settings: Any) -> None:
    if not isinstance(settings, dict):
        raise _Corrupt("the header's 'settings' is not an object")
    for key, types in _SETTING_TYPES.items():
        value = settings.get(key)
        if key in settings and (not isinstance(value, types) or isinstance(value, bool)):
            raise _Corrupt(f"the header's settings.{key} is {value!r}")
    if not all(isinstance(t, str) for t in settings.get("tasks", [])):
        raise _Corrupt("the header's settings.tasks are not all names")


def _sample_line(entry: dict[str, Any]) -> tuple[str, SampleRecord]:
    return _text(entry, "request_id"), _model(SampleRecord, entry, "sample")


def _mapping(entry: dict[str, Any], key: str) -> dict[str, Any]:
    value = entry.get(key)
    if not isinstance(value, dict):
        raise _Corrupt(f"'{key}' is {'missing' if value is None else 'not an object'}")
    return value


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str):
        raise _Corrupt(f"'{key}' is not a string")
    return value


def _at(entry: dict[str, Any], last: str | None) -> str | None:
    at = entry.get("at", last)
    if at is not None and not isinstance(at, str):
        raise _Corrupt("'at' is not a time")
    return at


def _model(cls: type[_Record], entry: dict[str, Any], key: str) -> _Record:
    try:
        return cls.model_validate(_mapping(entry, key))
    except ValidationError as exc:
        raise _Corrupt(validation_line(exc, prefix=f"{key}.")) from None


def is_held(path: Path) -> bool:
    """Whether a live process is writing the journal at `path` right now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class Journal:
    """The journal of one run, held exclusively from `open` to `close` (or the process's end)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._fh: Any = None
        self._broken = False  # a write failed (a full disk): closing must not fail again on the same bytes
        self._synced_ns = 0  # when the journal last reached the disk (see `_write_text`)

    @staticmethod
    def path_for(results_path: Path) -> Path:
        return results_path.with_name(results_path.name.removesuffix(".json") + ".journal.jsonl")

    @staticmethod
    def results_path_for(journal_path: Path) -> Path:
        return journal_path.with_name(journal_path.name.removesuffix(".journal.jsonl") + ".json")

    def open(self, *, resume: bool, explicit: bool = True, new: bool = False) -> JournalState:
        """Take the journal; start it afresh, or (resume) read back what is finished.

        `explicit` says the user asked for the resume (--resume) rather than llmbench finding an
        unfinished run under the same name; it only changes what a mismatch error suggests.
        `new` says the name was chosen because no run had it (an unnamed run): should another run
        have created it since, it is refused, never truncated.
        A journal without a header holds nothing and is started afresh either way.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | (os.O_EXCL if new else 0), 0o666)
        except FileExistsError:
            raise UserInputError(
                f"{self.path}: another run took this name while this one started",
                hint="run it again: it takes the next free name",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise self._locked() from None
        self._fh = os.fdopen(fd, "r+", encoding="utf-8")
        state = JournalState()
        try:
            if resume:
                state = read_journal(self.path)
                if state.header is None and state.finished:
                    raise UserInputError(
                        f"{self.path}: journal has samples but no header line",
                        hint="start over with --fresh",
                    )
            if state.header is None:
                self._fh.truncate(0)
                self._write({"header": self.header})
                state = JournalState(header=self.header)
            else:
                self._check_header(state.header, explicit)
                if state.keep_bytes is not None:
                    self._fh.truncate(state.keep_bytes)
                self._end_last_line()
            self._write({"opened": {"pid": os.getpid(), "at": now()}})
        except BaseException:
            self.close()
            raise
        return state

    def _end_last_line(self) -> None:
        """Move to the end; a last line that a kill cut just before its newline is whole, so end it there.

        Without that newline the next line would be appended to it, and the two read back as one torn line.
        """
        self._fh.seek(0, os.SEEK_END)
        end = os.fstat(self._fh.fileno()).st_size
        if end and os.pread(self._fh.fileno(), 1, end - 1) != b"\n":
            self._write_text("\n")

    def _locked(self) -> JournalLockedError:
        pid = None
        with contextlib.suppress(OSError, UserInputError):
            pid = read_journal(self.path).holder_pid
        who = f"llmbench process {pid}" if pid else "another llmbench process"
        return JournalLockedError(
            f"{self.path}: {who} is writing this run right now",
            hint="wait for it to finish, or give this run another --output",
        )

    def _check_header(self, old: dict[str, Any], explicit: bool) -> None:
        for key in PINNED:
            before, now_ = old.get(key), self.header.get(key)
            if key == "model":
                before, now_ = pinned_model(before), pinned_model(now_)
            if before != now_:
                what = key.replace("_", " ")
                detail = _difference(before, now_)
                if explicit:
                    raise UserInputError(
                        f"{self.path}: cannot resume: the run's {what} changed since it started{detail}",
                        hint="resume with `llmbench run --resume --output PATH` alone, or start over with --fresh",
                    )
                raise UserInputError(
                    f"{self.path}: an unfinished run of this name exists, started with another {what}{detail}",
                    hint="continue it with the same suite, model and flags, or start over with --fresh",
                )

    def pin_task(self, name: str, fingerprint: dict[str, str], pinned: dict[str, dict[str, str]]) -> None:
        """Record a task's fingerprints before its first sample, or refuse a resume whose inputs changed."""
        old = pinned.get(name)
        if old is None:
            self._write({"task": name, "fingerprint": fingerprint})
            pinned[name] = fingerprint
            return
        changed = sorted(k for k in old.keys() | fingerprint.keys() if old.get(k) != fingerprint.get(k))
        if changed:
            raise UserInputError(
                f"{self.path}: cannot resume: task '{name}' {', '.join(changed)} changed since the run started"
                " (its results would mix old and new samples)",
                hint="restore what changed, or start over with --fresh",
            )

    def append(self, request_id: str, record: SampleRecord) -> None:
        self._write({"request_id": request_id, "at": now(), "sample": record.model_dump(mode="json")})

    def append_point(self, key: str, point: PerfPoint) -> None:
        self._write({"point": key, "at": now(), "perf": point.model_dump(mode="json")})

    def _write(self, entry: dict[str, Any]) -> None:
        self._write_text(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def _write_text(self, text: str) -> None:
        """To the OS at once (a killed llmbench loses nothing); to the disk every `SYNC_EVERY_NS` and at close,
        as an fsync per sample cost long runs more than scoring (a power cut loses at most the last second)."""
        try:
            self._fh.write(text)
            self._fh.flush()
            at = time.monotonic_ns()
            if at - self._synced_ns >= SYNC_EVERY_NS:
                os.fsync(self._fh.fileno())
                self._synced_ns = at
        except OSError as exc:  # a cut last line is dropped on resume: the samples before it are kept
            self._broken = True
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise ResultsFileError(
                    f"{self.path}: no space left on the device holding {self.path.parent}",
                    hint="free some space and resume: the samples finished so far are in this journal",
                ) from None
            raise ResultsFileError(f"{self.path}: cannot be written ({exc.strerror or exc})") from None

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None  # closing the descriptor releases the lock
            if self._broken:  # its buffer cannot be written either: the error was already told
                with contextlib.suppress(OSError):
                    fh.close()
            else:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()


def _difference(old: Any, new: Any) -> str:
    """`: limit 12 -> 5` for settings that differ; empty where the values are not flat mappings."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return ""
    keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    flat = [k for k in keys if not isinstance(old.get(k), dict) and not isinstance(new.get(k), dict)]
    if not flat:
        return f" ({', '.join(keys)})" if keys else ""
    return ": " + ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in flat)


def read_journal_samples(path: Path) -> dict[str, SampleRecord]:
    """The finished samples of any journal, keyed by request id, without checking its header (shards)."""
    if not path.exists():
        return {}
    samples: dict[str, SampleRecord] = {}
    for line in _lines(path):
        if isinstance(line.value, dict) and "request_id" in line.value:
            try:
                request_id, record = _sample_line(line.value)
            except _Corrupt as exc:
                raise _corrupt(path, line.lineno, exc) from None
            samples[request_id] = record
    return samples


def pinned_model(model: Any) -> Any:
    """A journal header's model config as a resume compares it: read as today's config (older key names
    included), without the time limits."""
    from llmbench.config.models import ModelConfig

    try:
        canonical = ModelConfig.model_validate(model).model_dump(mode="json")
    except ValidationError:
        return model
    api = canonical.get("api")
    if isinstance(api, dict):
        for key in UNPINNED_API_KEYS:
            api.pop(key, None)
    return canonical
