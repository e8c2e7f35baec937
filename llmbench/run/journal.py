"""The per-sample journal: every finished sample is appended (and flushed) as soon as it is scored.

A run killed at any point, `kill -9` included, resumes from its journal: what is in it is not run
again, and the final results file equals that of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import Any

from llmbench.errors import ResultsFileError, UserInputError
from llmbench.results import SampleRecord


class Journal:
    """One JSON line per finished sample, after a header line that pins what the run is."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self._fh: Any = None
        self._broken = False  # a write failed (a full disk): closing must not fail again on the same bytes

    @staticmethod
    def path_for(results_path: Path) -> Path:
        return results_path.with_name(results_path.name.removesuffix(".json") + ".journal.jsonl")

    def open(self, *, resume: bool, explicit: bool = True) -> dict[str, SampleRecord]:
        """Start a fresh journal, or (resume) read back the finished samples keyed by request id.

        `explicit` says the user asked for the resume (--resume) rather than llmbench finding an
        unfinished run under the same name; it only changes what a mismatch error suggests.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        done: dict[str, SampleRecord] = {}
        if resume and self.path.exists():
            done = self._read(explicit)
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run
        else:
            self._fh = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
            self._write({"header": self.header})
        return done

    def _read(self, explicit: bool) -> dict[str, SampleRecord]:
        done: dict[str, SampleRecord] = {}
        with open(self.path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if lineno == len(lines) or all(not rest.strip() for rest in lines[lineno:]):
                    self._truncate_partial_tail()  # a line cut off by a kill: that sample runs again
                    break
                raise UserInputError(f"{self.path}:{lineno}: corrupt journal line") from None
            if "header" in entry:
                self._check_header(entry["header"], explicit)
                continue
            record = SampleRecord.model_validate(entry["sample"])
            done[entry["request_id"]] = record
        return done

    def _truncate_partial_tail(self) -> None:
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        with open(self.path, "r+b") as fh:
            fh.truncate(keep)

    def _check_header(self, old: dict[str, Any], explicit: bool) -> None:
        for key in ("suite_hash", "model", "settings"):
            if old.get(key) != self.header.get(key):
                what = key.replace("_", " ")
                if explicit:
                    raise UserInputError(
                        f"{self.path}: cannot resume: the run's {what} changed since it started",
                        hint="resume with the same suite, model and flags, or start over with --fresh",
                    )
                raise UserInputError(
                    f"{self.path}: an unfinished run of this name exists, started with another {what}",
                    hint="continue it with the same suite, model and flags, or start over with --fresh",
                )

    def append(self, request_id: str, record: SampleRecord) -> None:
        self._write({"request_id": request_id, "sample": record.model_dump(mode="json")})

    def _write(self, entry: dict[str, Any]) -> None:
        try:
            self._fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
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
            fh, self._fh = self._fh, None
            if self._broken:  # its buffer cannot be written either: the error was already told
                with contextlib.suppress(OSError):
                    fh.close()
            else:
                fh.close()


def read_journal_samples(path: Path) -> dict[str, SampleRecord]:
    """The finished samples of any journal, keyed by request id, without checking its header (shards)."""
    done: dict[str, SampleRecord] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return done
    for line in text.split("\n"):
        try:
            entry = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            continue  # a line cut off by a kill: that sample was never finished
        if "request_id" in entry:
            done[entry["request_id"]] = SampleRecord.model_validate(entry["sample"])
    return done
