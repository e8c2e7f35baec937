"""The backend interface: a batch of generation requests in, completions with their timings out.

A backend never scores. It applies the chat template (or the server does), generates, and
reports per request what a user of `vllm bench` would expect: time to first token measured at
the token, end-to-end latency, inter-token latencies, and token counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

from llmbench.registry import Registry

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

    def __post_init__(self) -> None:
        given = sum(x is not None for x in (self.messages, self.prompt, self.prompt_token_ids))
        if given != 1:
            raise ValueError("a GenerationRequest takes exactly one of messages, prompt, prompt_token_ids")


@dataclass
class Completion:
    """What came back for one request, with timings taken at the events themselves.

    Times are milliseconds from the moment the request was handed to the engine (or sent):
    `ttft_ms` at the first generated token, `latency_ms` at the last. `itl_ms` holds the gaps
    between consecutive tokens (or stream chunks) as they arrived.
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
    rendered_prompt: str | None = None
    error: str | None = None
    batch_size: int | None = None  # how many requests shared the forward pass, where known

    @property
    def tpot_ms(self) -> float | None:
        """Time per output token after the first (vLLM's TPOT definition)."""
        if self.ttft_ms is None or self.latency_ms is None or not self.output_tokens:
            return None
        if self.output_tokens < 2:
            return None
        return (self.latency_ms - self.ttft_ms) / (self.output_tokens - 1)


@dataclass
class BackendInfo:
    """Facts about the loaded model that make results comparable; goes into the results file."""

    backend: str
    model: str
    load_time_s: float | None = None
    dtype: str | None = None
    device: str | None = None
    chat_template_hash: str | None = None
    max_batch_size: int | None = None
    attention_backend: str | None = None
    weights_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A loaded model that turns requests into completions."""

    name: ClassVar[str]

    def load(self) -> BackendInfo:
        """Load weights and tokenizer; returns what was loaded and how long it took."""
        ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        *,
        concurrency: int | None = None,
        arrival_offsets_s: Sequence[float] | None = None,
    ) -> Iterator[Completion]:
        """Generate every request, yielding completions as they finish (any order).

        `concurrency` caps the requests in flight (the batch size for in-process batching);
        None lets the backend batch as it likes (quality runs). `arrival_offsets_s`, one per
        request, submits each request that many seconds after the call (Poisson request-rate mode).
        """
        ...

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer, or None where the backend has none (a remote API)."""
        ...

    def close(self) -> None:
        """Release the model and its memory."""
        ...


backends: Registry[type[Backend]] = Registry("backend")


def stable_hash(obj: Any) -> str:
    """Short, stable content hash of any JSON-able object (sorted keys)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def token_ids_hash(ids: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def apply_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut `text` at the earliest stop sequence; returns the text and whether one was found."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)
