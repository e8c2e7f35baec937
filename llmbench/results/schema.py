"""The results file: one JSON document per (model, suite) run, read by `compare` and `report`.

Every figure names its unit; every metric carries its n, standard error and 95% interval; every
sample keeps its prompt hash, output, verdict and timings, so any number can be recomputed.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmbench.results.blocks import ApiCost as ApiCost
from llmbench.results.blocks import BackendFacts as BackendFacts
from llmbench.results.blocks import Environment as Environment
from llmbench.results.blocks import Settings as Settings
from llmbench.results.blocks import Summary as Summary

# 3: optional fields of serving workloads, saturation searches and token gaps (samples' itl_ms, perf points'
# workload and turns, performance.saturation, the environment's niceness, ...). A version-2 file has none
# of them and reads as it is; an llmbench that knows only 2 says to upgrade rather than failing on a field.
# 4: optional fields of timing records (arrivals, close, TTFOT), reasoning and answer tokens, tool calls,
# costs, the generation cache (`cached_from`), each perf point's per-request values and its `most_in_flight`;
# 2 and 3 read as they are.
SCHEMA_VERSION = 4


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
    answer_tokens: int | None = None  # of tokens_out, those after the reasoning
    finish_reason: str | None = None
    ttft_ms: float | None = None
    ttfot_ms: float | None = None  # to the first answer token after reasoning (where there was reasoning)
    latency_ms: float | None = None  # E2E: to the last token
    tpot_ms: float | None = None
    itl_ms: list[float] | None = None  # a gap per token after the first arrival (several a chunk: spread)
    schedule_lag_ms: float | None = None  # how late an open-loop request went out after its schedule
    # The timing record (types.RequestTiming), ms from the request's start: each arrival of tokens, the tokens
    # each carried (left out where every arrival carried one), the stream's close, the wait for a slot
    arrivals_ms: list[float] | None = None
    arrival_tokens: list[int] | None = None
    close_ms: float | None = None
    queue_ms: float | None = None
    tokens_estimated: bool | None = None  # True: the stream did not say a chunk's tokens (a total was spread)
    # True: the first and last arrival are the engine's step stamps, nothing between them seen (no ITL)
    engine_stamps: bool | None = None
    prompt_hash: str | None = None
    output_hash: str | None = None  # hash of the generated token ids: parity compares tokens before text
    batch_size: int | None = None  # requests that shared the forward pass, where the backend knows
    error: str | None = None  # generation failed (a scorer's own failure is status "error", details.error)
    warnings: list[str] = Field(default_factory=list)  # e.g. a server's usage that disagreed with the stream
    attempts: int | None = None  # tries it took where the backend retries; its timings are of the last one
    raw_head: str | None = None  # after a server's fault: the head of what it sent (redacted)
    # Calls the backend reported apart from `output` (name, arguments as the JSON text sent, id)
    tool_calls: list[dict[str, Any]] | None = None
    cached_tokens_in: int | None = None  # of tokens_in, those the server says it served from its cache
    cost_usd: float | None = None  # its tokens at the model's per-token prices (summary.cost says which)
    rate_wait_ms: float | None = None  # held back by the provider's rate limits: outside TTFT and latency
    cached_from: str | None = (
        None  # answered from the generation cache: the run that generated it (no timings)
    )


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
    cost_usd: float | None = None  # its samples' cost at the model's per-token prices, where it has them


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
    # The physical GPUs (NVML UUIDs) the run used, None where unknown, and those the figures above cover
    # (the run's, once known after the load; every visible GPU otherwise).
    run_gpu_uuids: list[str] | None = None
    sampled_gpu_uuids: list[str] = Field(default_factory=list)


class TurnFigures(_Model):
    """One turn index of a multi-turn workload, over every conversation: its TTFT and prompt length."""

    turn: int  # from 1
    ttft_ms: Distribution | None = None
    prompt_tokens_mean: float | None = None  # the whole history so far: it grows turn by turn


class PointRequests(_Model):
    """Each measured request's TTFT and TPOT of one point, in completion order: the values its distributions
    summarise, kept for the test of a change in their medians (`llmbench.analysis.significance`)."""

    ttft_ms: list[float] = Field(default_factory=list)
    tpot_ms: list[float] = Field(default_factory=list)


class PerfPoint(_Model):
    """One point of a performance sweep (input length x output length x concurrency or rate).

    Points of a serving workload (`workload` set) add what shapes the traffic: the arrival process,
    the prefix cache's setting and hit rate, and per-turn figures; older files have none of them.
    """

    task: str | None = None  # the suite task whose perf block ran the point; None in older files
    input_tokens: int
    output_tokens: int
    concurrency: int | None = None
    most_in_flight: int | None = None  # set where fewer requests than `concurrency` ran at once (`--limit`)
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
    schedule_lag_ms: Distribution | None = None  # actual minus scheduled send, per open-loop request
    # Reasoning models: TTFOT over the requests that reasoned, and the point's output tokens told apart
    ttfot_ms: Distribution | None = None
    reasoning_tokens: int | None = None
    answer_tokens: int | None = None
    client_cpu_share: float | None = None  # the client process's CPU s per wall s (server-backed points)
    client_bound: bool | None = None  # the client could not keep up: the figures are partly the client's
    requests: PointRequests | None = None  # the per-request values; None in older files


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

    task: str | None = None  # the suite task whose perf block searched; None in older files
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
    ttfot_ms: Distribution | None = None  # over the samples that reasoned
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
