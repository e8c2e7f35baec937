"""Value types every layer shares: generation requests, their parameters and completions with timings.

They import nothing of llmbench but the hashing module, so config, data, prompts, scoring and backends can all use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmbench.hashing import stable_hash

Message = dict[str, str]
FinishReason = Literal["stop", "length", "error"]
ToolDefinition = dict[
    str, Any
]  # one function, in OpenAI's `tools` form: {"type": "function", "function": {...}}
ReasoningEffort = Literal["low", "medium", "high"]
THINK_MARKERS: tuple[tuple[str, str], ...] = (("<think>", "</think>"),)


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings for one request; temperature 0 means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False
    json_schema: dict[str, Any] | None = None  # guided decoding ("JSON mode") where the backend can
    # Where reasoning sits in an output: stop strings never fire inside it, and the answer's first token
    # after it times TTFOT. Backends hold stop strings back from the engine while these are set and apply
    # them to the answer themselves.
    reasoning_markers: tuple[tuple[str, str], ...] = THINK_MARKERS
    # Servers only (the backend says where it cannot): sent as `reasoning_effort` (OpenAI's field)
    reasoning_effort: ReasoningEffort | None = None
    # Chat templates that read `enable_thinking` (Qwen3 and others): rendered with it locally, sent to a
    # server as `chat_template_kwargs`
    enable_thinking: bool | None = None

    def fingerprint(self) -> str:
        return stable_hash(
            {k: v for k, v in self.__dict__.items() if k != "seed"} | {"seeded": self.seed is not None}
        )


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete: chat messages, plain text, or pre-tokenized ids (performance runs)."""

    request_id: str
    params: GenerationParams
    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    prompt_token_ids: tuple[int, ...] | None = None
    reference_output: str | None = None  # what the `reference` backend answers; others ignore it
    # Keeps this request out of the engine's prefix cache (no blocks shared with other requests), where the
    # backend says it can (PrefixCacheState.can_bypass); others never receive one.
    cache_salt: str | None = None
    # Functions the model may call (chat prompts only): sent as the API's `tools`, rendered by the chat template.
    tools: tuple[ToolDefinition, ...] | None = None

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.messages, self.prompt, self.prompt_token_ids))
        if given != 1:
            raise ValueError("a GenerationRequest takes exactly one of messages, prompt, prompt_token_ids")


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made, as an API server reports it: `arguments` is the JSON text it wrote,
    kept as it came (it may not parse)."""

    name: str
    arguments: str
    id: str | None = None


def tpot_ms(ttft_ms: float | None, e2e_ms: float | None, output_tokens: int | None) -> float | None:
    """Time per output token after the first: (E2E - TTFT) / (output tokens - 1), as `vllm bench serve`."""
    if ttft_ms is None or e2e_ms is None or not output_tokens or output_tokens < 2:
        return None
    return (e2e_ms - ttft_ms) / (output_tokens - 1)


@dataclass(frozen=True)
class TimingFigures:
    """What one request's timing record says, in the figures users know (see `RequestTiming.figures`)."""

    ttft_ms: float | None = None
    ttfot_ms: float | None = None
    tpot_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    e2e_ms: float | None = None


@dataclass
class RequestTiming:
    """One request's timing record, filled the same way by every backend.

    Times are milliseconds from the request's start: its scheduled send where it has one (an open-loop
    request, sent `schedule_lag_ms` later), else its actual send. An arrival is the moment tokens reached
    the client: a stream chunk, a vLLM stream output, a `generate` decoding step. The completion that
    carries the record holds the rest of it: when it went out (`sent_ns`), its `schedule_lag_ms`,
    `queue_ms` and `attempts`.

    With `engine_stamps`, the client saw only the finished output (vLLM in process, in a quality run, asks
    for final outputs only): its two arrivals are the engine's own stamps of the step that made the first
    token and of the one that made the last, and nothing between them was seen, so it has no ITL.
    """

    arrivals_ms: list[float] = field(default_factory=list)
    arrival_tokens: list[int] = field(default_factory=list)  # how many tokens each arrival carried
    reasoning_tokens: int = 0  # the first tokens that were reasoning (a marked block, or a reasoning channel)
    output_arrival: int | None = 0  # the arrival with the first answer token after any reasoning; None: none
    close_ms: float | None = None  # the stream's (engine's, batch's) end, at or after the last token
    tokens_estimated: bool = False  # the stream did not say a chunk's tokens: a total was spread over them
    engine_stamps: bool = False  # first and last token from the engine's step stamps; none seen between

    @property
    def output_tokens(self) -> int:
        return sum(self.arrival_tokens)

    def figures(self) -> TimingFigures:
        """The one definition of the per-request figures, those of `vllm bench serve`.

        TTFT: the first arrival. TTFOT: the arrival that carried the first answer token after any reasoning
        (TTFT where there was none). E2E: the last token's arrival, not the stream's close. TPOT: (E2E -
        TTFT) / (output tokens - 1). ITL: one gap per token after the first arrival; an arrival of k tokens
        spreads its gap from the arrival before evenly over them (k gaps of gap / k), never k - 1 zeros;
        none from `engine_stamps`, where the gaps between the first and last token were not seen.
        """
        at, counts = self.arrivals_ms, self.arrival_tokens
        if not at:
            return TimingFigures()
        itl: list[float] = []
        for i in range(1, 0 if self.engine_stamps else len(at)):
            k = max(1, counts[i])
            itl += [(at[i] - at[i - 1]) / k] * k
        first_output = self.output_arrival
        return TimingFigures(
            ttft_ms=at[0],
            ttfot_ms=at[first_output] if first_output is not None and first_output < len(at) else None,
            tpot_ms=tpot_ms(at[0], at[-1], self.output_tokens),
            itl_ms=itl,
            e2e_ms=at[-1],
        )


@dataclass
class Completion:
    """What came back for one request, with its timing record and the figures drawn from it.

    Backends set `timing` through `timed`, which fills `ttft_ms`, `ttfot_ms`, `latency_ms` (E2E: to the
    last token) and `itl_ms` from `RequestTiming.figures`. `queue_ms`, for requests sent at arrival times
    under a client cap on requests in flight, is how long the request waited after its arrival for a free
    slot: before submission, so in neither TTFT nor latency.
    """

    request_id: str
    text: str
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: FinishReason = "stop"
    ttft_ms: float | None = None
    latency_ms: float | None = None
    itl_ms: list[float] = field(default_factory=list)
    prompt_hash: str | None = None  # hash of the exact prompt token ids (or rendered text for APIs)
    output_hash: str | None = None  # hash of the generated token ids, where the backend has them
    rendered_prompt: str | None = None
    error: str | None = None
    batch_size: int | None = None  # how many requests shared the forward pass, where known
    warnings: list[str] = field(default_factory=list)  # where the server's claims and ours disagreed
    queue_ms: float | None = None  # arrival to submission, open-loop requests only (see the class doc)
    attempts: int | None = None  # tries it took, where a backend retries (timings are of the last one)
    raw_head: str | None = None  # after a server's fault: the head of what it sent (redacted), for the viewer
    # How late the client sent an open-loop request after its scheduled start (its arrival, or the slot
    # freeing): the client's own lag, inside TTFT; large values mean the client, not the server, was measured.
    schedule_lag_ms: float | None = None
    sent_ns: int | None = None  # when the request went out, on the one clock (to match a server's own log)
    tool_calls: list[ToolCall] = field(default_factory=list)  # function calls reported apart from the text
    cached_prompt_tokens: int | None = None  # prompt tokens the server says its cache served, where it says
    rate_wait_ms: float | None = None  # held back by the provider's rate limits: outside TTFT and latency
    timing: RequestTiming | None = None
    ttfot_ms: float | None = None  # time to the first answer token after any reasoning

    def timed(self, timing: RequestTiming) -> Completion:
        """This completion with `timing` as its record and its figures drawn from it."""
        figures = timing.figures()
        self.timing = timing
        self.ttft_ms, self.ttfot_ms = figures.ttft_ms, figures.ttfot_ms
        self.latency_ms, self.itl_ms = figures.e2e_ms, figures.itl_ms
        return self

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first (vLLM's TPOT definition)."""
        return tpot_ms(self.ttft_ms, self.latency_ms, self.output_tokens)

    @property
    def reasoning_tokens(self) -> int | None:
        """Output tokens that were reasoning, where the backend told them apart (its timing record)."""
        return self.timing.reasoning_tokens if self.timing is not None else None

    @property
    def answer_tokens(self) -> int | None:
        """Output tokens after the reasoning: the answer's."""
        if self.timing is None or self.output_tokens is None:
            return None
        return max(0, self.output_tokens - self.timing.reasoning_tokens)


@dataclass(frozen=True)
class LoglikelihoodRequest:
    """Score `continuation` after `context`: log P(continuation | context), summed over its tokens.

    Multiple-choice tasks send one per option; nothing is generated.
    """

    request_id: str
    context: str
    continuation: str
    reference: bool = False  # the right option: the `reference` backend gives it all the probability


@dataclass
class Loglikelihood:
    """The log-probability a model gave one continuation, and what it cost.

    `latency_ms` is this request's own time where the backend runs requests one by one or
    concurrently (vLLM, OpenAI), and its equal share of a batched forward pass (Transformers).
    """

    request_id: str
    logprob: float
    greedy: bool = False  # every continuation token was the model's most likely token
    continuation_tokens: int = 0
    prompt_tokens: int = 0  # context + continuation, as fed to the model
    token_logprobs: list[float] = field(default_factory=list)
    latency_ms: float | None = None
    prompt_hash: str | None = None
    batch_size: int | None = None
    error: str | None = None
