"""The three dataset sources a suite can name: a local file, a Hugging Face dataset, a built-in set; and the
JSON Lines reader every part of llmbench reads such files with (data, completions to score, journals)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from llmbench.config.suite import DatasetSpec
from llmbench.data.base import DataContext, Sample, generators
from llmbench.errors import DataError, MissingDependencyError

_ID_FIELDS = ("id", "task_id", "key", "idx", "question_id")
MAX_LINE_BYTES = 16 << 20  # one JSONL record; a million-token prompt is a few MiB
MAX_JSON_BYTES = 256 << 20  # a whole .json data file, read and parsed at once


def records_to_samples(records: Iterable[dict[str, Any]], spec: DatasetSpec, origin: str) -> list[Sample]:
    """Wrap raw records as samples, taking ids and references from the configured fields."""
    samples: list[Sample] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(f"{origin}: record {i + 1} is not an object")
        id_field = spec.id_field or next((f for f in _ID_FIELDS if f in rec), None)
        if spec.id_field and spec.id_field not in rec:
            raise DataError(f"{origin}: record {i + 1} has no id field '{spec.id_field}'")
        sid = str(rec[id_field]) if id_field else str(i)
        if sid in seen:
            raise DataError(
                f"{origin}: duplicate sample id '{sid}'", hint="set dataset.id_field to a unique field"
            )
        seen.add(sid)
        if spec.reference_field and spec.reference_field not in rec:
            raise DataError(f"{origin}: record '{sid}' has no reference field '{spec.reference_field}'")
        reference = rec.get(spec.reference_field) if spec.reference_field else rec.get("reference")
        samples.append(Sample(id=sid, fields=dict(rec), reference=reference))
        if spec.limit and len(samples) >= spec.limit:
            break
    return samples


class LocalSource:
    """JSONL, JSON (a list of objects), Parquet or CSV, relative to the suite file."""

    name: ClassVar[str] = "local"

    def load(self, spec: DatasetSpec, ctx: DataContext) -> list[Sample]:
        assert spec.local is not None
        path = Path(spec.local)
        if not path.is_absolute():
            path = ctx.suite_dir / path
        if not path.exists():
            raise DataError(
                f"{path}: data file not found", hint="paths in a suite are relative to the suite file"
            )
        if not path.is_file():
            raise DataError(f"{path}: not a file (a data file is .jsonl, .json, .parquet or .csv)")
        suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
        if suffix in (".jsonl", ".jsonl.gz"):
            records = [r for r in read_jsonl(path) if r is not None]
        elif suffix == ".json":
            records = _read_json(path)
        elif suffix in (".parquet", ".csv"):
            records = _read_tabular(path, suffix)
        else:
            raise DataError(
                f"{path}: unsupported data file type '{suffix}'", hint="use .jsonl, .json, .parquet or .csv"
            )
        return records_to_samples(records, spec, str(path))


@dataclass(frozen=True)
class JsonLine:
    """One line of a JSON Lines file: its number, the byte offset it starts at, and its value (None: blank).

    `torn` marks a last line cut off by a kill (see `jsonl_lines`); its value is None.
    """

    lineno: int
    offset: int
    value: Any
    torn: bool = False


def read_jsonl(path: Path) -> Iterable[Any]:
    """Records of a JSON Lines file (gzipped or not), each line read within MAX_LINE_BYTES; None for blank lines."""
    return (line.value for line in jsonl_lines(path))


def jsonl_lines(
    path: Path, *, tolerate_torn_last_line: bool = False, any_line_length: bool = False
) -> Iterator[JsonLine]:
    """The one JSON Lines reader: every line with its number and offset; a bad line is a DataError naming it.

    With `tolerate_torn_last_line` (journals, appended to as work finishes) a last line that does not parse,
    with nothing but blank lines after it, is what a kill left half-written: it ends the file as a line
    marked `torn` instead of failing. Lines are read within MAX_LINE_BYTES unless `any_line_length`.
    """
    import gzip
    import zlib

    lineno = offset = 0
    max_line_bytes = None if any_line_length else MAX_LINE_BYTES
    limit = -1 if max_line_bytes is None else max_line_bytes + 1
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as fh:
            while raw := fh.readline(limit):
                lineno += 1
                start, offset = offset, offset + len(raw)
                if max_line_bytes is not None and len(raw) > max_line_bytes:
                    raise DataError(
                        f"{path}:{lineno}: a line longer than {max_line_bytes >> 20} MiB; "
                        "one record per line, each of a sane size"
                    )
                try:
                    yield JsonLine(lineno, start, _parse(raw, path, lineno))
                except DataError:
                    if not tolerate_torn_last_line or fh.read().strip():
                        raise
                    yield JsonLine(lineno, start, None, torn=True)
                    return
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        where = f"{path}:{lineno + 1}" if lineno else str(path)
        raise DataError(f"{where}: cannot be read ({type(exc).__name__}: {exc})") from None


def _parse(raw: bytes, path: Path, lineno: int) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}:{lineno}: not valid UTF-8 (byte {exc.start + 1} of the line)") from None
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{lineno}: invalid JSON line ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}:{lineno}: JSON nested too deeply") from None


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_JSON_BYTES + 1)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if len(raw) > MAX_JSON_BYTES:
        raise DataError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB", hint="use JSON Lines (.jsonl)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 (at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: a JSON data file must hold a list of objects")
    return data


def _read_tabular(path: Path, suffix: str) -> list[dict[str, Any]]:
    try:
        from datasets import Dataset
    except ImportError:
        raise MissingDependencyError("datasets", purpose=f"reading {suffix} files") from None
    try:
        ds = Dataset.from_parquet(str(path)) if suffix == ".parquet" else Dataset.from_csv(str(path))
    except Exception as exc:
        raise DataError(f"{path}: cannot read {suffix} file ({type(exc).__name__}: {exc})") from None
    return [dict(r) for r in ds]  # type: ignore[union-attr]


class HFSource:
    """A Hugging Face dataset through `datasets`; needs network or a local datasets cache."""

    name: ClassVar[str] = "hf"

    def load(self, spec: DatasetSpec, ctx: DataContext) -> list[Sample]:
        try:
            import datasets
        except ImportError:
            raise MissingDependencyError("datasets", purpose="Hugging Face datasets") from None
        label = f"{spec.hf}" + (f" ({spec.config})" if spec.config else "") + f" split {spec.split}"
        try:
            ds = datasets.load_dataset(spec.hf, spec.config, split=spec.split, revision=spec.revision)
        except Exception as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"dataset {label} could not be loaded: {msg}",
                hint="it needs network (or a datasets cache); the suite's built-in set runs offline",
            ) from None
        return records_to_samples((dict(r) for r in ds), spec, f"dataset {label}")


class BuiltinSource:
    """A generator shipped with llmbench, named in YAML as `builtin: NAME`."""

    name: ClassVar[str] = "builtin"

    def load(self, spec: DatasetSpec, ctx: DataContext) -> list[Sample]:
        assert spec.builtin is not None
        generate = generators.get(spec.builtin)
        samples = generate(dict(spec.options), ctx)
        return samples[: spec.limit] if spec.limit else samples


def load_samples(spec: DatasetSpec, ctx: DataContext) -> list[Sample]:
    from llmbench.data.base import sources

    return sources.get(spec.source)().load(spec, ctx)
