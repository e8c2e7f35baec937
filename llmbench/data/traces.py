"""Request traces for replay: Mooncake-style JSONL and BurstGPT-style CSV, read into one record type.

Mooncake-style JSONL, one request a line: `timestamp` (ms from the trace's start), `input_length`,
`output_length` (tokens) and optionally `hash_ids` (ids of the prompt's blocks: two requests with
the same id at the same position share that block of the prompt). Other keys are ignored.

BurstGPT-style CSV with a header: `Timestamp` (s), `Request tokens`, `Response tokens`, and
`Model`, `Total tokens`, `Log Type`, which are read but not used. Rows with 0 response tokens
are failed requests in BurstGPT (the service returned nothing) and are skipped, as are rows
with 0 request tokens; how many is recorded.

Timestamps may be absolute (Unix time in s or ms): the first arrival becomes 0. Any line that
cannot be read is one error naming the file and line (exit code 2), and so is a trace whose
arrivals span more than MAX_SECONDS, or whose replay at its time scale would last over a day.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench.config.strict import MAX_PROMPT_TOKENS, MAX_TOKENS
from llmbench.errors import DataError

TraceFormat = Literal["mooncake", "burstgpt"]
MAX_TRACE_BYTES = 1 << 30  # public traces are tens of MB; a larger file is a mistake
MAX_LINE_CHARS = 1 << 20
MAX_HASH_IDS = 1 << 16
MAX_SECONDS = 1e9  # about 30 years: a trace spanning more is a unit mistake
MAX_EXACT = 2**53  # a timestamp beyond it (in the file's unit) loses whole units as a float
MAX_REPLAY_S = 86_400.0  # a replay longer than a day is a mis-scaled trace, not a benchmark
BURSTGPT_REQUIRED = ("Timestamp", "Request tokens", "Response tokens")


@dataclass(frozen=True)
class TraceRecord:
    """One request of a trace: when it arrives (s from the first request), its token counts, its blocks."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Trace:
    records: list[TraceRecord]
    format: TraceFormat
    skipped: int = 0  # rows left out (BurstGPT's failed requests)


def trace_format(path: Path, declared: str = "auto") -> TraceFormat:
    """The format `declared`, or the one the extension says (.jsonl/.json: mooncake, .csv: burstgpt)."""
    if declared in ("mooncake", "burstgpt"):
        return declared  # type: ignore[return-value]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        return "mooncake"
    if suffix == ".csv":
        return "burstgpt"
    raise DataError(
        f"{path}: cannot tell the trace format from the extension '{suffix}'",
        hint="name the file .jsonl (Mooncake) or .csv (BurstGPT), or set `format:`",
    )


def read_trace(
    path: Path, declared: str = "auto", max_requests: int | None = None, time_scale: float = 1.0
) -> Trace:
    """The trace's records sorted by arrival, the first arriving at 0; at most `max_requests` of them.

    `time_scale` is what the replay multiplies arrival times by: a replay that would last over
    MAX_REPLAY_S is refused here, before anything waits for it."""
    fmt = trace_format(path, declared)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read the trace ({exc.strerror or type(exc).__name__})") from None
    if size > MAX_TRACE_BYTES:
        raise DataError(f"{path}: larger than {MAX_TRACE_BYTES >> 30} GiB; not a trace this tool replays")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:  # -sig: a BOM (Excel) is dropped
            records, skipped = _read_mooncake(path, fh) if fmt == "mooncake" else _read_burstgpt(path, fh)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the trace ({exc.strerror or type(exc).__name__})") from None
    if not records:
        raise DataError(f"{path}: the trace holds no requests" + (f" ({skipped} skipped)" if skipped else ""))
    records.sort(key=lambda r: r.arrival_s)  # stable: ties keep the file's order
    records = records[:max_requests] if max_requests else records
    start = records[0].arrival_s
    shifted = [
        TraceRecord(r.arrival_s - start, r.input_tokens, r.output_tokens, r.hash_ids, r.line) for r in records
    ]
    _check_span(path, shifted, time_scale)
    return Trace(shifted, fmt, skipped)


def _check_span(path: Path, records: list[TraceRecord], time_scale: float) -> None:
    """Refuse a trace whose arrivals span a unit mistake, or whose scaled replay would last over a day."""
    last = records[-1]
    where = f"{path}:{last.line}"
    if last.arrival_s > MAX_SECONDS:
        raise DataError(
            f"{where}: the trace spans {last.arrival_s:.4g} s from its first request (line "
            f"{records[0].line}), over {MAX_SECONDS:g} s: a unit mistake"
        )
    replay_s = last.arrival_s * time_scale
    if replay_s > MAX_REPLAY_S:
        raise DataError(
            f"{where}: the trace spans {last.arrival_s:.4g} s, and at time_scale {time_scale:g} its replay "
            f"would last {replay_s:.4g} s, over a day",
            hint=f"set time_scale to at most {MAX_REPLAY_S / last.arrival_s:.3g}, or max_requests",
        )


def _read_mooncake(path: Path, fh: Any) -> tuple[list[TraceRecord], int]:
    records = []
    for number, raw in enumerate(fh, start=1):
        where = f"{path}:{number}"
        if len(raw) > MAX_LINE_CHARS:
            raise DataError(f"{where}: line longer than {MAX_LINE_CHARS} characters")
        if not raw.strip():
            continue
        try:
            row = json.loads(raw, parse_constant=_no_constant)
        except RecursionError:
            raise DataError(f"{where}: JSON nested too deeply") from None
        except ValueError as exc:
            raise DataError(f"{where}: not a JSON object ({str(exc).splitlines()[0][:120]})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: not a JSON object but {type(row).__name__}")
        for key in ("timestamp", "input_length", "output_length"):
            if key not in row:
                raise DataError(
                    f"{where}: no '{key}' (Mooncake-style lines need timestamp, input_length, output_length)"
                )
        records.append(
            TraceRecord(
                arrival_s=_seconds(row["timestamp"], 1000.0, where, "timestamp"),
                input_tokens=_count(row["input_length"], MAX_PROMPT_TOKENS, where, "input_length"),
                output_tokens=_count(row["output_length"], MAX_TOKENS, where, "output_length"),
                hash_ids=_hash_ids(row.get("hash_ids"), where),
                line=number,
            )
        )
    return records, 0


def _read_burstgpt(path: Path, fh: Any) -> tuple[list[TraceRecord], int]:
    csv.field_size_limit(MAX_LINE_CHARS)
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}:1: empty file; a BurstGPT-style CSV starts with its header") from None
    except csv.Error as exc:
        raise DataError(f"{path}:1: not CSV ({exc})") from None
    missing = [c for c in BURSTGPT_REQUIRED if c not in header]
    if missing:
        raise DataError(
            f"{path}:1: the header lacks {', '.join(missing)}",
            hint="BurstGPT columns: Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type",
        )
    at = {name: header.index(name) for name in BURSTGPT_REQUIRED}
    records, skipped = [], 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(f"{path}:{reader.line_num}: not CSV ({exc})") from None
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < len(header):
            raise DataError(f"{where}: {len(row)} columns where the header has {len(header)}")
        cells = {name: row[i].strip() for name, i in at.items()}
        request = _token_cell(cells, "Request tokens", MAX_PROMPT_TOKENS, where)
        response = _token_cell(cells, "Response tokens", MAX_TOKENS, where)
        if request == 0 or response == 0:  # a failed request in BurstGPT: nothing to replay
            skipped += 1
            continue
        arrival = _seconds(_number(cells["Timestamp"], where, "Timestamp"), 1.0, where, "Timestamp")
        records.append(TraceRecord(arrival, request, response, (), reader.line_num))
    return records, skipped


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def _token_cell(cells: dict[str, str], column: str, limit: int, where: str) -> int:
    """A CSV cell's token count, 0 allowed (BurstGPT marks a failed request so)."""
    return _count(_number(cells[column], where, column), limit, where, column, zero=True)


def _number(text: str, where: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{where}: {column} '{text[:40]}' is not a number") from None


def _shown(value: float) -> str:
    """A number for an error line: a huge integer (10**400) as its magnitude, not its 401 digits."""
    text = str(value)
    return text if len(text) <= 24 else f"{'-' if value < 0 else ''}~1e{len(text.lstrip('-')) - 1}"


def _seconds(value: Any, per_second: float, where: str, key: str) -> float:
    """An arrival time in seconds: absolute or relative, shifted to the first arrival by read_trace."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: {key} must be a number, not {type(value).__name__}")
    # compared, not converted: a float of an integer like 10**400 raises OverflowError; nan fails both
    if not 0 <= value <= MAX_EXACT:
        raise DataError(f"{where}: {key} {_shown(value)} is out of range (0 to 2**53)")
    return value / per_second


def _count(value: Any, limit: int, where: str, key: str, *, zero: bool = False) -> int:
    """A token count: a whole number from 1 (0 where `zero`) to `limit`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: {key} must be a whole number, not {type(value).__name__}")
    low = 0 if zero else 1
    # the range first, by comparison: int() and math.isfinite of 1e400 or 10**400 would raise
    if not (low <= value <= limit and value == int(value)):
        raise DataError(f"{where}: {key} {_shown(value)} is not a whole number from {low} to {limit}")
    return int(value)


def _hash_ids(value: Any, where: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_HASH_IDS:
        raise DataError(f"{where}: hash_ids must be a list of at most {MAX_HASH_IDS} whole numbers")
    if not all(isinstance(h, int) and not isinstance(h, bool) and 0 <= h < 1 << 63 for h in value):
        raise DataError(f"{where}: hash_ids must hold whole numbers from 0 to 2**63-1")
    return tuple(value)
