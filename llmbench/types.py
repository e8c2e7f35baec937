"""Value types every layer shares: generation requests, their parameters and completions with timings.

They import nothing of llmbench but the hashing module, so config, data, prompts, scoring and backends can all use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from llmbench.hashing import stable_hash

Message = dict[str, str]
FinishReason = Literal["stop", "length", "error"]


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

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.messages, self.prompt, self.prompt_token_ids))
        if given != 1:
            raise ValueError("a GenerationRequest takes exactly one of messages, prompt, prompt_token_ids")


@dataclass
class Completion:
    """What came back for one request, with timings taken at the events themselves.

    Times are milliseconds from the moment the request was handed to the engine (or sent):
    `ttft_ms` at the first generated token, `latency_ms` at the last. `itl_ms` holds the gaps
    between consecutive tokens (or stream chunks) as they arrived. `queue_ms`, for requests sent at
    arrival times under a client cap on requests in flight, is how long the request waited after its
    arrival for a free slot: before submission, so in neither TTFT nor latency.
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

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first (vLLM's TPOT definition)."""
        if self.ttft_ms is None or self.latency_ms is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.latency_ms - self.ttft_ms) / (self.output_tokens - 1)


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
