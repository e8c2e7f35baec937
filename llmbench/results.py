"""The results file: one JSON document per (model, suite) run, read by `compare` and `report`.

Every figure names its unit; every metric carries its n, standard error and 95% interval; every
sample keeps its prompt hash, output, verdict and timings, so any number can be recomputed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llmbench.errors import ResultsFileError, validation_line
from llmbench.results_blocks import BackendFacts as BackendFacts
from llmbench.results_blocks import Environment as Environment
from llmbench.results_blocks import Settings as Settings
from llmbench.results_blocks import Summary as Summary
from llmbench.results_blocks import upgrade_v1

SCHEMA_VERSION = 2
KNOWN_SCHEMA_VERSIONS = (1, 2)  # version 1 is upgraded as it is read
MAX_RESULTS_BYTES = 4 << 30  # a results file of a million samples is well below this
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricValue(_Model):
    """A task metric: its value over `n` samples, standard error and a 95% confidence interval."""

    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int
    method: str | None = None  # how the interval was computed: "wilson", "bootstrap", "t"


class Distribution(_Model):
    """Summary of a latency-like quantity, in the unit its field name says."""

    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float
    n: int
    stderr: float | None = None
    ci: dict[str, tuple[float, float]] = Field(default_factory=dict)  # 95% bootstrap intervals, e.g. "p50"
    ci_method: str | None = None  # "cluster-bootstrap": whole requests resampled (their values correlate)
    n_clusters: int | None = None  # the independent units (requests) behind `n` clustered values


class SampleRecord(_Model):
    """One output for one sample, with its verdict and timings."""

    task: str
    id: str
    sample_index: int = 0
    prompt: str | list[dict[str, str]] | None = None
    output: str | None = None
    reference: Any = None
    score: float | None = None
    status: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    tokens_in: int | None = None
    tokens_out: int | None = None
    reasoning_tokens: int | None = None
    finish_reason: str | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: list[float] | None = None  # gaps between consecutive tokens (or stream chunks), as they arrived
    prompt_hash: str | None = None
    output_hash: str | None = None  # hash of the generated token ids: parity compares tokens before text
    batch_size: int | None = None  # requests that shared the forward pass, where the backend knows
    error: str | None = None  # generation failed (a scorer's own failure is status "error", details.error)
    warnings: list[str] = Field(default_factory=list)  # e.g. a server's usage that disagreed with the stream


class TaskResult(_Model):
    """Aggregated metrics of one task, its failure counts and breakdowns (per length, language, ...)."""

    name: str
    scorer: str
    primary_metric: str
    weight: float = 1.0
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    counts: dict[str, int] = Field(
        default_factory=dict
    )  # correct / wrong / unparsed / truncated / timeout / error
    breakdown: dict[str, dict[str, MetricValue]] = Field(default_factory=dict)  # "length=4096" -> metrics
    fingerprint: dict[str, str] = Field(default_factory=dict)
    n_samples: int = 0
    n_errors: int = 0


class TelemetrySummary(_Model):
    """What the NVML sampler and the allocator saw; null figures carry the reason in `unavailable`."""

    source: str | None = None
    sample_hz: float | None = None
    gpus: list[dict[str, Any]] = Field(default_factory=list)
    peak_vram_mib: float | None = None  # device-wide NVML "used": other processes on the GPU included
    peak_process_vram_mib: float | None = None  # what NVML attributes to this run's own processes
    vram_before_load_mib: float | None = None  # what was in use before the model loaded
    vram_after_load_mib: float | None = None
    torch_peak_allocated_mib: float | None = None
    torch_peak_reserved_mib: float | None = None
    mean_gpu_util_pct: float | None = None
    mean_power_w: float | None = None
    energy_j: float | None = None
    timeseries: dict[str, list[float]] = Field(default_factory=dict)
    unavailable: str | None = None


class TurnFigures(_Model):
    """One turn index of a multi-turn workload, over every conversation: its TTFT and prompt length."""

    turn: int  # from 1
    ttft_ms: Distribution | None = None
    prompt_tokens_mean: float | None = None  # the whole history so far: it grows turn by turn


class PerfPoint(_Model):
    """One point of a performance sweep (input length x output length x concurrency or rate).

    Points of a serving workload (`workload` set) add what shapes the traffic: the arrival process,
    the prefix cache's setting and hit rate, and per-turn figures; older files have none of them.
    """

    input_tokens: int
    output_tokens: int
    concurrency: int | None = None
    request_rate: float | None = None
    n_requests: int
    ttft_ms: Distribution | None = None
    tpot_ms: Distribution | None = None
    itl_ms: Distribution | None = None
    e2e_latency_ms: Distribution | None = None
    output_tokens_per_s: float | None = None  # aggregate over the point's wall time
    per_request_output_tokens_per_s: Distribution | None = None
    request_throughput_per_s: float | None = None
    goodput_per_s: float | None = None
    peak_vram_mib: float | None = None
    energy_per_output_token_j: float | None = None
    bandwidth_utilisation: float | None = None
    duration_s: float | None = None
    error: str | None = None
    workload: str | None = None  # shared_prefix, multi_turn, trace; None: unique random prompts
    arrival_process: str | None = None  # poisson, gamma, constant (rate points); trace: the trace's own times
    burstiness: float | None = None  # gamma's shape (1 = Poisson)
    prefix_caching: bool | None = None  # the engine's prefix caching for this point; None: not known
    prefix_cache_hit_rate: float | None = (
        None  # prompt tokens found in the cache / looked up, this point only
    )
    prefix_cache_source: str | None = None  # who reported the setting and the hit rate, or why not
    prompt_tokens_mean: float | None = None  # the prompts' actual mean length (traces vary; chats grow)
    turns: list[TurnFigures] = Field(default_factory=list)  # multi-turn: figures per turn index
    trace: str | None = None  # the replayed trace's file name, format and time scale
    note: str | None = None  # how the point was run where it differs from what was asked


class SaturationProbe(_Model):
    """One point of a saturation search: closed-loop (the throughput ceiling) or Poisson at an offered rate."""

    kind: Literal["closed_loop", "rate"]
    offered_rate_per_s: float | None = None  # the rate asked for; None for the closed-loop point
    arrival_rate_per_s: float | None = None  # the rate the Poisson draw realised: (n - 1) / arrival span
    completion_rate_per_s: float | None = None  # (n - 1) / completion span: below arrivals = queue growing
    passed: bool | None = None  # met every SLO without saturating; None for the closed-loop point
    violated: list[str] = Field(default_factory=list)  # "ttft_p99", "tpot_p99", "saturated", "errors"
    point: PerfPoint


class SaturationResult(_Model):
    """The highest request rate found to meet the SLOs for one input x output shape, and how it was found."""

    input_tokens: int
    output_tokens: int
    slo_ttft_p99_ms: float | None = None
    slo_tpot_p99_ms: float | None = None
    rate_per_s: float | None = None  # the highest offered rate that passed; None when even min_rate failed
    goodput_per_s: float | None = None  # requests/s meeting every SLO at that rate
    bound_by: list[str] = Field(default_factory=list)  # what failed at the lowest failing rate, or the cap
    max_throughput_per_s: float | None = None  # closed-loop request throughput
    probes: list[SaturationProbe] = Field(default_factory=list)  # in the order they ran
    note: str | None = None  # why the search stopped early or could not run


class Performance(_Model):
    """Run-level performance figures, measured on the run's own requests."""

    ttft_ms: Distribution | None = None
    tpot_ms: Distribution | None = None
    itl_ms: Distribution | None = None
    e2e_latency_ms: Distribution | None = None
    output_tokens_per_s: float | None = None  # aggregate: output tokens / generation wall time
    per_request_output_tokens_per_s: Distribution | None = None
    total_output_tokens: int | None = None
    generation_wall_s: float | None = None
    load_time_s: float | None = None
    weights_bytes: int | None = None
    peak_vram_mib: float | None = None
    peak_vram_reason: str | None = None  # why there is no figure
    peak_vram_note: str | None = None  # how to read the figure (e.g. memory the engine reserves up front)
    energy_j: float | None = None  # GPU energy while this session generated (load and scoring left out)
    energy_per_output_token_j: float | None = None  # energy_j / the output tokens generated meanwhile
    telemetry: TelemetrySummary | None = None
    sweep: list[PerfPoint] = Field(default_factory=list)
    saturation: list[SaturationResult] = Field(default_factory=list)


class RunResult(_Model):
    """The whole results file."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    finished: bool = True
    llmbench_version: str
    command: list[str] = Field(default_factory=list)
    model: dict[str, Any]
    model_name: str
    backend: BackendFacts
    suite: dict[str, Any]
    suite_name: str
    suite_hash: str
    settings: Settings = Field(default_factory=Settings)
    environment: Environment = Field(default_factory=Environment)
    fingerprint: dict[str, str] = Field(default_factory=dict)
    tasks: list[TaskResult] = Field(default_factory=list)
    suite_score: MetricValue | None = None
    performance: Performance = Field(default_factory=Performance)
    samples: list[SampleRecord] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)

    def task(self, name: str) -> TaskResult | None:
        return next((t for t in self.tasks if t.name == name), None)


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
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
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
    if type(version) is not int or version not in KNOWN_SCHEMA_VERSIONS:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        hint = "upgrade llmbench to read it" if newer else "this version is no longer supported"
        raise ResultsFileError(
            f"{path}: results schema version {version!r}; this llmbench reads {list(KNOWN_SCHEMA_VERSIONS)}",
            hint=hint,
        )
    return upgrade_v1(raw) if version == 1 else raw


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
    size = fh.seek(0, os.SEEK_END)
    for span in (_CHUNK, size):
        fh.seek(max(0, size - span))
        tail = fh.read()
        at = tail.rfind(_SUMMARY_KEY)
        if at >= 0 and size - len(tail) + at > cut:
            return bytes(head[:cut]) + tail[at:]
    fh.seek(0)
    return fh.read(MAX_RESULTS_BYTES + 1)
