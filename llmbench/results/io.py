"""Reading and writing results files: atomic writes, and reads that check the schema version, upgrade
version 1, and can skip the per-sample records or stop after a run's identity."""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import ValidationError

from llmbench.errors import ResultsFileError, validation_line
from llmbench.results.blocks import upgrade_v1
from llmbench.results.schema import SCHEMA_VERSION, RunResult

KNOWN_SCHEMA_VERSIONS = (1, 2, 3, SCHEMA_VERSION)  # read as the current one: 1 upgraded, 2 and 3 subsets of 4
MAX_RESULTS_BYTES = 4 << 30  # a results file of a million samples is well below this
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def write_results(result: RunResult, path: Path) -> Path:
    """Write atomically (temporary file + rename): a reader never sees half a file, a full disk none."""
    return write_atomic(path, result.model_dump_json(indent=2))


def write_atomic(path: Path, text: str) -> Path:
    """Write `text` to `path` through a temporary file and a rename; an OSError becomes one clear line.

    A full disk (or quota) leaves `path` as it was and no temporary file behind.
    """
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp"))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask decides, as for journals
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        if exc.errno in _FULL:
            raise ResultsFileError(
                f"{path}: no space left on the device holding {path.parent}; nothing was written",
                hint="free some space and run again (a run's finished samples are kept in its journal)",
            ) from None
        raise ResultsFileError(f"{path}: cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        _discard(tmp)
        raise
    return path


def _discard(tmp: str | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            Path(tmp).unlink(missing_ok=True)


def remove_partial_writes(path: Path) -> None:
    """Delete what a `write_results` killed midway left beside `path`; only its run's holder may call this."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        stale.unlink(missing_ok=True)


def _unfinished_hint(path: Path) -> str | None:
    """Results files are written whole, so only a journal or a left-over temporary file is an interrupted run's."""
    name = Path(path).name
    if name.endswith(".journal.jsonl"):
        results = Path(path).with_name(name.removesuffix(".journal.jsonl") + ".json")
        return f"this is an unfinished run's journal; finish the run with `llmbench run --resume --output {results}`"
    if name.startswith(".") and name.endswith(".tmp"):
        return "this is a write that was cut short; the run's next start removes it"
    return None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is not finite")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a results file may hold")


# How `write_results` lays out the per-sample records (most of a file): a top-level key at two spaces
# of indent, before the short summary. JSON strings escape newlines, so these markers cannot occur inside one.
_SAMPLES_KEY = b'\n  "samples": '
_SUMMARY_KEY = b'\n  "summary": '
_TASKS_KEY = b'\n  "tasks": '
_CHUNK = 1 << 16


def read_header(path: Path) -> dict[str, Any]:
    """A results file's identity (run id, date, model, backend, suite, settings, fingerprint) as raw JSON,
    checked as far as its schema version: for choosing among many files, the chosen ones then read whole.
    A file laid out as `write_results` writes it is read only up to its task results."""
    return _read_raw(path, with_samples=False, header_only=True)


def _read_raw(path: Path, *, with_samples: bool, header_only: bool = False) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size > MAX_RESULTS_BYTES:  # refused before a byte is read
                raise ResultsFileError(
                    f"{path}: larger than {MAX_RESULTS_BYTES >> 30} GiB; not a results file"
                )
            if header_only:
                data = _head(fh)
            else:
                data = fh.read(MAX_RESULTS_BYTES + 1) if with_samples else _without_samples(fh)
    except FileNotFoundError:
        raise ResultsFileError(f"{path}: no such results file") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise ResultsFileError(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    if len(data) > MAX_RESULTS_BYTES:
        raise ResultsFileError(f"{path}: larger than {MAX_RESULTS_BYTES >> 30} GiB; not a results file")
    try:
        raw = json.loads(data.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ResultsFileError(f"{path}: not a results file (JSON nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ResultsFileError(
            f"{path}: not a valid results file ({str(exc).splitlines()[0][:200]})",
            hint=_unfinished_hint(path),
        ) from None
    if not isinstance(raw, dict) or "schema_version" not in raw:
        raise ResultsFileError(f"{path}: not an llmbench results file (no schema_version)")
    if not with_samples:
        raw.pop("samples", None)
    version = raw["schema_version"]
    if type(version) is int and version > SCHEMA_VERSION:
        raise ResultsFileError(
            f"{path}: written by a newer llmbench (results schema version {version}; this one reads up to "
            f"{SCHEMA_VERSION})",
            hint="upgrade llmbench to read it",
        )
    if type(version) is not int or version not in KNOWN_SCHEMA_VERSIONS:
        raise ResultsFileError(
            f"{path}: results schema version {version!r}; this llmbench reads {list(KNOWN_SCHEMA_VERSIONS)}",
            hint="this version is no longer supported",
        )
    raw = upgrade_v1(raw) if version == 1 else raw
    return raw | {"schema_version": SCHEMA_VERSION}  # written again, it is a file of this version


def read_results(path: Path, *, with_samples: bool = True) -> RunResult:
    """Read a results file; a corrupt file or an unknown schema version is one clear error.

    `with_samples=False` leaves the per-sample records out (`samples` is empty).
    """
    raw = _read_raw(path, with_samples=with_samples)
    try:
        return RunResult.model_validate(raw)
    except RecursionError:
        raise ResultsFileError(f"{path}: not a results file (nested too deeply)") from None
    except ValidationError as exc:
        raise ResultsFileError(f"{path}: invalid results file at {validation_line(exc)}") from None


def _read_until(fh: BinaryIO, key: bytes) -> tuple[bytearray, int]:
    """Read chunks until `key` appears (or the size limit); returns what was read and where the key starts, or -1."""
    head = bytearray()
    cut = -1
    while cut < 0 and len(head) <= MAX_RESULTS_BYTES and (chunk := fh.read(_CHUNK)):
        start = max(0, len(head) - len(key))
        head += chunk
        cut = head.find(key, start)
    return head, cut


def _head(fh: BinaryIO) -> bytes:
    """The top-level fields before the task results (what identifies a run), as a JSON object."""
    head, cut = _read_until(fh, _TASKS_KEY)
    if cut < 0:
        return bytes(head) + fh.read(MAX_RESULTS_BYTES + 1 - len(head))
    return bytes(head[:cut]).rstrip().rstrip(b",") + b"\n}"


def _without_samples(fh: BinaryIO) -> bytes:
    """The file's JSON with the samples array cut out: only the head up to it and the tail after it are read."""
    head, cut = _read_until(fh, _SAMPLES_KEY)
    if cut < 0:  # not laid out by write_results: the whole text, its samples dropped after parsing
        return bytes(head)
    at = _last(fh, _SUMMARY_KEY, after=cut)
    if at is None:
        fh.seek(0)
        return fh.read(MAX_RESULTS_BYTES + 1)
    fh.seek(at)
    return bytes(head[:cut]) + fh.read(MAX_RESULTS_BYTES + 1 - cut)


def _last(fh: BinaryIO, key: bytes, *, after: int) -> int | None:
    """Where `key` last occurs past offset `after`, read backwards from the end a chunk at a time: the
    samples before it are passed over in bounded memory, never held whole."""
    end = fh.seek(0, os.SEEK_END)
    carried = b""  # the start of the chunk after this one: a key may straddle the two
    while end > after:
        start = max(after, end - _CHUNK)
        fh.seek(start)
        chunk = fh.read(end - start) + carried
        found = chunk.rfind(key)
        if found >= 0 and start + found > after:
            return start + found
        carried, end = chunk[: len(key) - 1], start
    return None
