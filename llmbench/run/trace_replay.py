"""Trace replay: a trace's requests with their own arrival times (scaled) and token counts."""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbench.config.serving import TraceWorkload
from llmbench.data.traces import Trace, TraceRecord, read_trace
from llmbench.data.workload_prompts import PromptBuilder, part_index, perf_request
from llmbench.errors import DataError
from llmbench.types import GenerationRequest


def trace_path(w: TraceWorkload, base_dir: Path | None) -> Path:
    """The trace file: an absolute path, else relative to the suite file, else to the working directory."""
    path = Path(w.path).expanduser()
    candidates = [path] if path.is_absolute() else [*([base_dir / path] if base_dir else []), path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise DataError(f"{w.path}: no such trace file", hint="a relative path starts at the suite file's folder")


def load_trace(w: TraceWorkload, base_dir: Path | None) -> Trace:
    """The trace, read once while the file is unchanged: run preparation reads (and so checks) it
    before the model loads, and the point that replays it gets the same records."""
    path = trace_path(w, base_dir).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the trace ({exc.strerror or type(exc).__name__})") from None
    return _read(path, stat.st_mtime_ns, stat.st_size, w.format, w.max_requests, w.time_scale)


@functools.lru_cache(maxsize=1)
def _read(
    path: Path, mtime_ns: int, size: int, declared: str, max_requests: int | None, time_scale: float
) -> Trace:
    return read_trace(path, declared, max_requests, time_scale)


@dataclass
class TraceBatch:
    """The requests of one replay, built on demand per repeat (each repeat its own prompt blocks)."""

    records: list[TraceRecord]
    w: TraceWorkload
    builder: PromptBuilder
    point_no: int
    offsets_s: list[float]
    input_tokens: int  # the mean over the trace, for the point's row
    output_tokens: int
    fields: dict[str, Any] = field(default_factory=dict)

    def requests(self, repeat: int) -> list[GenerationRequest]:
        out = []
        for i, rec in enumerate(self.records):
            index = part_index(self.builder.seed, self.point_no, repeat, i)
            if rec.hash_ids:
                prompt = self.builder.from_blocks(
                    rec.hash_ids, self.w.block_tokens, rec.input_tokens, index, self.replay(repeat)
                )
            else:
                prompt = self.builder.unique(rec.input_tokens, index)
            out.append(
                perf_request(f"perf-{self.point_no}-{repeat}-line{rec.line}", prompt, rec.output_tokens)
            )
        return out

    def replay(self, repeat: int) -> int:
        """This point's repeat as a replay number of its own (repeats stay below 2**32)."""
        return (self.point_no << 32) + repeat


def trace_batch(
    trace: Trace,
    w: TraceWorkload,
    builder: PromptBuilder,
    point_no: int,
    max_model_len: int | None,
    fit: bool,
) -> TraceBatch:
    """The replay's requests; with `fit`, prompts too long for the model are cut to its limit (counted in the note)."""
    records, cut = list(trace.records), 0
    if fit and max_model_len is not None:
        fitted = []
        for r in records:
            room = max_model_len - r.output_tokens
            if r.input_tokens > room >= 1:
                r, cut = TraceRecord(r.arrival_s, room, r.output_tokens, r.hash_ids, r.line), cut + 1
            fitted.append(r)
        records = fitted
    notes = []
    if trace.skipped:
        notes.append(f"{trace.skipped} row(s) with 0 request or response tokens skipped")
    if cut:
        notes.append(f"{cut} prompts cut to the model's limit")
    name = Path(w.path).name
    return TraceBatch(
        records=records,
        w=w,
        builder=builder,
        point_no=point_no,
        offsets_s=[r.arrival_s * w.time_scale for r in records],
        input_tokens=round(statistics.fmean(r.input_tokens for r in records)),
        output_tokens=round(statistics.fmean(r.output_tokens for r in records)),
        fields={
            "trace": f"{name} ({trace.format}, {len(records)} requests, time x{w.time_scale:g})",
            "arrival_process": "trace",
        }
        | ({"note": "; ".join(notes)} if notes else {}),
    )
