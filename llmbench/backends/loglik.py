"""The one way every backend turns (context, continuation) into token ids and a scored span.

Tokenizers merge across the boundary between a context and its continuation ("Answer:" + " B"
may not be "Answer:" then " B"), so the continuation is never tokenized alone: context and
continuation are tokenized together, and the continuation's span starts where those ids stop
agreeing with the context's own ids. Transformers, vLLM and the OpenAI backend all call
`continuation_span`, so the same request scores the same tokens on each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmbench.errors import BackendError
from llmbench.hashing import token_ids_hash
from llmbench.types import Loglikelihood, LoglikelihoodRequest


@dataclass(frozen=True)
class Span:
    """The ids of context + continuation, and where the continuation's tokens start."""

    ids: tuple[int, ...]
    start: int

    @property
    def continuation_ids(self) -> tuple[int, ...]:
        return self.ids[self.start :]

    @property
    def inputs(self) -> tuple[int, ...]:
        """What the model must read: every token but the last, whose successor is never scored."""
        return self.ids[:-1]


def _encode(tokenizer: Any, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=True)["input_ids"]]


def continuation_span(tokenizer: Any, context: str, continuation: str) -> Span:
    """Tokenize context + continuation together; the span is what differs from the context alone.

    The first scored token always has at least one token before it: a context that tokenizes to
    nothing (and a tokenizer without BOS) leaves the first continuation token as the condition.
    """
    if tokenizer is None:
        raise BackendError("scoring log-likelihoods needs the model's tokenizer")
    if not continuation:
        raise BackendError("an empty continuation has no log-likelihood")
    whole = _encode(tokenizer, context + continuation)
    alone = _encode(tokenizer, context)
    start = 0
    for a, b in zip(alone, whole, strict=False):
        if a != b:
            break
        start += 1
    if start >= len(whole) or len(whole) < 2:
        raise BackendError("the continuation adds no token to the context")
    return Span(tuple(whole), max(start, 1))


def spans(tokenizer: Any, requests: Sequence[LoglikelihoodRequest]) -> list[Span | str]:
    """Each request's span, or the one-line reason it has none (it fails alone)."""
    out: list[Span | str] = []
    for r in requests:
        try:
            out.append(continuation_span(tokenizer, r.context, r.continuation))
        except BackendError as exc:
            out.append(str(exc))
        except Exception as exc:  # a tokenizer that cannot take the text costs this request only
            out.append(f"cannot tokenize: {type(exc).__name__}: {exc}")
    return out


def scored(
    request_id: str,
    span: Span,
    token_logprobs: list[float],
    greedy: bool,
    latency_ms: float | None,
    batch_size: int | None = None,
) -> Loglikelihood:
    """A continuation's log-likelihood from its tokens' log-probs, the same fields on every backend."""
    return Loglikelihood(
        request_id=request_id,
        logprob=sum(token_logprobs),
        greedy=greedy,
        continuation_tokens=len(token_logprobs),
        prompt_tokens=len(span.ids),
        token_logprobs=token_logprobs,
        latency_ms=latency_ms,
        prompt_hash=token_ids_hash(list(span.ids)),
        batch_size=batch_size,
    )
