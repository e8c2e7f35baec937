"""The OpenAI wire format: request fields, stream events, and which failures are worth another try."""

from __future__ import annotations

import random
from typing import Any

from llmbench.backends.base import FinishReason, GenerationParams
from llmbench.errors import BackendError
from llmbench.telemetry.timing import TokenClock, now_ns

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0


class Retryable(Exception):
    """A failure worth another try: rate limit, server error, dropped connection, an answer that never ended."""


class StreamTimeout(Exception):
    """No first byte, or no next chunk, in the time allowed: a hung server, not worth another wait."""


def on_event(event: dict[str, Any], clock: TokenClock, pieces: list[str], result: dict[str, Any]) -> None:
    """Take one stream event: stamp a token where it carries one, keep its text, usage and finish reason."""
    at = now_ns()
    if "error" in event and not event.get("choices"):
        raise BackendError(f"the server reported: {event['error']}")
    if event.get("usage"):
        result["usage"] = event["usage"]
    for choice in event.get("choices") or []:
        delta = choice.get("delta")
        if delta is None:  # /completions
            content = choice.get("text")
            produced = content is not None
        else:  # /chat/completions: skip the role announcement; reasoning tokens are tokens too
            content = delta.get("content")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            produced = bool(reasoning) or (content is not None and not ("role" in delta and not content))
        if produced:  # an empty text is still a token (a partial UTF-8 character); `{}` is not
            clock.token(at)
        if content:
            pieces.append(content)
        if choice.get("finish_reason"):
            result["finish"] = choice["finish_reason"]


class TokenIdsRefused(Exception):
    """The server does not take a list of token ids as a prompt: send decoded text instead."""


def sampling(params: GenerationParams) -> dict[str, Any]:
    """OpenAI request fields; non-standard ones (top_k, ignore_eos) only when set, since hosted APIs refuse them."""
    out: dict[str, Any] = {
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.top_k:
        out["top_k"] = params.top_k
    if params.stop:
        out["stop"] = list(params.stop)
    if params.seed is not None:
        out["seed"] = params.seed
    if params.ignore_eos:
        out["ignore_eos"] = True
    if params.json_schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
        }
    return out


def prompt_chars(prompt: Any) -> int | None:
    """Characters of a text prompt or of a chat's contents (None for token ids)."""
    if isinstance(prompt, str):
        return len(prompt)
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return sum(len(str(m.get("content") or "")) for m in prompt)
    return None


def finish_reason(reason: str | None) -> FinishReason:
    return "length" if reason == "length" else "stop"


def backoff_s(attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with full jitter, bounded; a server's Retry-After (in seconds) wins if shorter than the bound."""
    if retry_after:
        try:
            return min(float(retry_after), MAX_BACKOFF_S)
        except ValueError:
            pass
    return random.uniform(0, min(MAX_BACKOFF_S, 0.25 * 2**attempt))
