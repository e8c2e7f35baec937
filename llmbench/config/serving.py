"""What a suite's `perf:` block says about serving: workloads, arrivals and the saturation search.

A sweep without a `workload` sends unique random prompts (no two share a prefix). A workload
shapes the traffic instead: shared system prompts, growing conversations, or a recorded trace.
`arrival` says when the requests of a request-rate point arrive.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from llmbench.config.strict import MAX_COUNT, Count, PromptTokens, Strict


class ArrivalSpec(Strict):
    """When each request of a rate point arrives; the gaps are drawn from a generator seeded by the run's seed.

    poisson: exponential gaps (mean 1/rate); gamma: gaps with shape `burstiness` and the same mean
    (burstiness 1 is Poisson, below 1 burstier, above 1 more even); constant: exactly 1/rate apart.
    Concurrency points are closed loop: `concurrency` requests in flight, the next sent when one ends.
    """

    process: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=1000, description="gamma shape; 1 = Poisson")

    @model_validator(mode="after")
    def _burstiness_only_for_gamma(self) -> ArrivalSpec:
        if self.burstiness != 1.0 and self.process != "gamma":
            raise ValueError(f"burstiness shapes gamma arrivals; process '{self.process}' takes none")
        return self


class SharedPrefixWorkload(Strict):
    """`prefixes` distinct prefixes of `prefix_tokens` tokens, each shared by `requests_per_prefix` requests.

    Each prompt is its group's prefix followed by a suffix of its own, `input_tokens` long in all.
    Each setting in `prefix_caching` is its own point (on: the engine reuses the prefix; off: it may not).
    """

    kind: Literal["shared_prefix"]
    prefixes: Count = 2
    prefix_tokens: PromptTokens = 256
    requests_per_prefix: Count = 4
    prefix_caching: list[bool] = Field(default_factory=lambda: [True, False], min_length=1)


class MultiTurnWorkload(Strict):
    """`conversations` chats of `turns` turns; each turn's prompt is the whole chat so far plus a new message.

    The previous answers are the model's own; each new user message is `input_tokens` long and
    each answer `output_tokens`. Turns run in lockstep: turn k of every chat is sent together,
    once turn k-1 of all of them has finished. TTFT is reported per turn.
    """

    kind: Literal["multi_turn"]
    conversations: Count = 4
    turns: int = Field(default=3, ge=1, le=1000)
    prefix_caching: list[bool] | None = Field(
        default=None,
        min_length=1,
        description="settings to run, each its own point; none: as the engine has it",
    )


class TraceWorkload(Strict):
    """A trace of (arrival time, input tokens, output tokens[, block hash ids]) replayed with its timing.

    Formats: Mooncake-style JSONL and BurstGPT-style CSV (see docs/serving.md); `auto` decides by
    the file's extension. `path` is relative to the suite file. `time_scale` multiplies every
    arrival time (0.5 replays twice as fast).
    """

    kind: Literal["trace"]
    path: str = Field(min_length=1)
    format: Literal["auto", "mooncake", "burstgpt"] = "auto"
    time_scale: float = Field(default=1.0, gt=0, le=1e6)
    max_requests: int | None = Field(default=None, ge=1, le=MAX_COUNT)
    block_tokens: int = Field(default=512, ge=1, le=1 << 16, description="tokens per Mooncake hash id")


Workload = Annotated[SharedPrefixWorkload | MultiTurnWorkload | TraceWorkload, Field(discriminator="kind")]

# Sweep fields that a workload decides itself: giving them beside it would be silently ignored.
_DECIDED_BY = {
    "shared_prefix": ("requests_per_point",),
    "multi_turn": ("requests_per_point", "request_rates", "arrival"),
    "trace": (
        "input_tokens",
        "output_tokens",
        "concurrency",
        "request_rates",
        "requests_per_point",
        "arrival",
    ),
}


def check_workload_fields(workload: Any, given: set[str]) -> None:
    """Refuse sweep fields the workload decides itself (`given`: the fields the user wrote)."""
    if workload is None:
        return
    clash = [name for name in _DECIDED_BY[workload.kind] if name in given]
    if clash:
        raise ValueError(
            f"a {workload.kind} workload decides {', '.join(clash)} itself: leave "
            f"{'it' if len(clash) == 1 else 'them'} out (see docs/serving.md)"
        )


class SaturationSpec(Strict):
    """Search for the highest Poisson request rate that meets latency SLOs (p99 over each probe's requests)."""

    slo_ttft_p99_ms: float | None = Field(default=None, gt=0, description="TTFT p99 bound, ms")
    slo_tpot_p99_ms: float | None = Field(default=None, gt=0, description="TPOT p99 bound, ms")
    min_rate: float = Field(default=0.5, gt=0, le=MAX_COUNT, description="first rate probed, requests/s")
    max_rate: float = Field(default=64.0, gt=0, le=MAX_COUNT, description="no rate above this is probed")
    tolerance: float = Field(
        default=0.1, gt=0, lt=1, description="stop bisecting when (fail - pass) / fail is this small"
    )
    requests_per_point: int = Field(default=32, ge=4, le=MAX_COUNT)
    min_duration_s: float = Field(
        default=0.0, ge=0, le=86_400, description="more requests at high rates: at least rate x this many"
    )
    saturation_margin: float = Field(
        default=0.1,
        ge=0,
        lt=1,
        description="saturated when requests complete this much slower than they arrive",
    )
    closed_loop_concurrency: int | None = Field(
        default=16, ge=1, le=MAX_COUNT, description="measure closed-loop throughput first to cap the search"
    )
    max_concurrency: int | None = Field(
        default=None, ge=1, le=MAX_COUNT, description="client cap on requests in flight during a probe"
    )
    max_probes: int = Field(default=12, ge=1, le=1000)

    @model_validator(mode="after")
    def _coherent(self) -> SaturationSpec:
        if self.slo_ttft_p99_ms is None and self.slo_tpot_p99_ms is None:
            raise ValueError("a saturation search needs slo_ttft_p99_ms, slo_tpot_p99_ms or both")
        if self.min_rate > self.max_rate:
            raise ValueError(f"min_rate {self.min_rate} is above max_rate {self.max_rate}")
        return self
