"""The OpenAI wire format: request fields, stream events, the bounds on an answer, and which failures are
worth another try."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from llmbench.backends.base import FinishReason, GenerationParams, engine_stop
from llmbench.errors import BackendError
from llmbench.telemetry.timing import TokenClock, now_ns
from llmbench.types import ToolCall, ToolDefinition

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
MAX_BACKOFF_S = 30.0
MAX_LINE_BYTES = 1 << 20  # one line (so one event) of a stream; a longer one is a transport error
TOKEN_MARGIN = 8  # tokens past max_tokens allowed (or a tenth of it, if more): servers count differently
CHARS_PER_TOKEN = 64  # on average, at most: bounds servers that send several tokens an event
RAW_HEAD_CHARS = 512  # of what a faulty server sent, kept (redacted) on the sample for the viewer
EXCERPT_CHARS = 80  # of it, quoted in the sample's error
MAX_STREAM_CALLS = 128  # tool calls in one answer (OpenAI offers at most 128 tools)


class Retryable(Exception):
    """A failure worth another try: rate limit, server error, dropped connection, an answer that never ended."""


class StreamTimeout(Exception):
    """No first token, or no next one, in the time allowed: a hung server, not worth another wait."""


class ServerFault(Exception):
    """The server broke the protocol (an event that is not JSON or not of the stream's shape, an answer longer
    than asked for, an error event): not worth another try. `raw` is what it sent there, unredacted."""

    def __init__(self, what: str, raw: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.raw = raw


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The head of `text` on one line, with an ellipsis where it was cut."""
    flat = text.replace("\r", " ").replace("\n", " ")
    return flat if len(flat) <= limit else flat[:limit] + "\u2026"


@dataclass(frozen=True)
class AnswerBound:
    """How long an answer to `max_tokens` may be before it is a server fault: in token events, and in
    characters for servers that send several tokens an event."""

    max_tokens: int
    tokens: int
    chars: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> AnswerBound | None:
        asked = body.get("max_tokens")
        if isinstance(asked, bool) or not isinstance(asked, int) or asked < 1:
            return None
        tokens = asked + max(TOKEN_MARGIN, asked // 10)
        return cls(asked, tokens, tokens * CHARS_PER_TOKEN)

    def passed(self, tokens: int, chars: int) -> str | None:
        """What was passed, in words, or None while the answer is within the bound."""
        if tokens > self.tokens:
            return f"more than {self.tokens} tokens"
        if chars > self.chars:
            return f"more than {self.chars} characters in {tokens} tokens"
        return None

    def fault(self, passed: str, kept_chars: int) -> str:
        return (
            f"the server sent a longer answer than asked for: {passed} (max_tokens {self.max_tokens}, "
            f"{self.tokens - self.max_tokens} tokens of margin); cut there, after {kept_chars} characters"
        )


def parse_event(data: str) -> dict[str, Any]:
    """One `data:` payload as a JSON object; anything else is a server fault named in words."""
    try:
        event = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than Python parses
        raise ServerFault("the server sent an event that is not JSON", data) from None
    if not isinstance(event, dict):
        raise ServerFault(
            f"the server sent an event that is a JSON {type(event).__name__}, not an object", data
        )
    return event


def on_event(event: dict[str, Any], clock: TokenClock, pieces: list[str], result: dict[str, Any]) -> bool:
    """Take one stream event: stamp an arrival where it carries a token, keep its text, usage and finish reason,
    and, per arrival, how many characters of reasoning and of answer it carried (`result["arrival_chars"]`).

    True where it moved the answer on (a token, or its first finish reason or usage): comments, keep-alives,
    role-only deltas, empty deltas and events without choices do not. An empty text is a token (a partial
    UTF-8 character, as vLLM streams one), as `vllm bench serve` counts it; a server that streams empty
    texts without end is cut by the answer's length bound."""
    at = now_ns()
    if "error" in event and not event.get("choices"):
        raise ServerFault("the server reported an error", json.dumps(event["error"])[:4096])
    moved = False
    if event.get("usage"):
        moved = "usage" not in result
        result["usage"] = event["usage"]
    choices = event.get("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ServerFault("the server sent an event whose choices are not a list of objects", _raw(event))
    for choice in choices:
        content, reasoning, produced = _output(choice, event=event)
        take_tool_calls(choice, result, event)
        if produced:
            clock.token(at)
            result.setdefault("arrival_chars", []).append((len(reasoning), len(content or "")))
            if content is not None and (content or not reasoning):
                clock.output()
            moved = True
        if content:
            pieces.append(content)
        finish = choice.get("finish_reason")
        if finish:
            if not isinstance(finish, str):
                raise ServerFault("the server sent a finish reason that is not text", _raw(event))
            moved = moved or "finish" not in result
            result["finish"] = finish
    return moved


def _output(choice: dict[str, Any], *, event: dict[str, Any]) -> tuple[str | None, str, bool]:
    """A choice's answer text, its reasoning text, and whether it carries a token: a text (even empty), content
    that is not a role's announcement, a reasoning token or a tool call."""
    delta = choice.get("delta")
    if delta is None:  # /completions
        text = _text(choice, "text", event)
        return text, "", text is not None
    if not isinstance(delta, dict):
        raise ServerFault("the server sent an event whose delta is not an object", _raw(event))
    content = _text(delta, "content", event)
    reasoning = _text(delta, "reasoning_content", event) or _text(delta, "reasoning", event) or ""
    calls = delta.get("tool_calls") or delta.get("function_call")
    if content or reasoning or calls:
        return content if content or not calls else "", reasoning, True
    return content, "", content is not None and "role" not in delta


def take_tool_calls(choice: dict[str, Any], result: dict[str, Any], event: dict[str, Any]) -> None:
    """Add a delta's `tool_calls` fragments to the calls under way (`result["tool_calls"]`, by index).

    A call's id and name come whole in its first fragment and its arguments in pieces after; a name sent
    again is the same name. A fragment without an index continues the last call, unless it brings another
    id (then it starts the next). The legacy `function_call` is call 0. Their characters count toward the
    answer's length bound: `result["call_chars"]` holds those not yet counted."""
    delta = choice.get("delta")
    if not isinstance(delta, dict) or not (delta.get("tool_calls") or delta.get("function_call")):
        return
    parts = delta.get("tool_calls") or [{"index": 0, "function": delta["function_call"]}]
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise ServerFault("the server sent tool_calls that are not a list of objects", _raw(event))
    calls: dict[int, dict[str, str]] = result.setdefault("tool_calls", {})
    for part in parts:
        function = part.get("function") or {}
        if not isinstance(function, dict):
            raise ServerFault("the server sent a tool call whose function is not an object", _raw(event))
        name, arguments, call_id = function.get("name"), function.get("arguments"), part.get("id")
        index = part.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            last = max(calls, default=None)
            fresh = last is not None and call_id and calls[last]["id"] not in ("", call_id)
            index = 0 if last is None else last + 1 if fresh else last
        if isinstance(arguments, dict):  # some servers send the object itself
            arguments = json.dumps(arguments)
        if not all(v is None or isinstance(v, str) for v in (name, arguments, call_id)):
            raise ServerFault(
                "the server sent a tool call whose id, name or arguments are not text", _raw(event)
            )
        if index not in calls and len(calls) >= MAX_STREAM_CALLS:
            raise ServerFault(
                f"the server sent more than {MAX_STREAM_CALLS} tool calls in one answer", _raw(event)
            )
        call = calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        call["id"] = call["id"] or call_id or ""
        if name and name != call["name"]:
            call["name"] += name
        call["arguments"] += arguments or ""
        result["call_chars"] = result.get("call_chars", 0) + len(name or "") + len(arguments or "")


def assembled_calls(result: dict[str, Any]) -> list[ToolCall]:
    """The tool calls a stream delivered, in index order."""
    calls = result.get("tool_calls") or {}
    return [
        ToolCall(name=c["name"], arguments=c["arguments"], id=c["id"] or None)
        for _, c in sorted(calls.items())
    ]


def tool_fields(tools: Sequence[ToolDefinition] | None) -> dict[str, Any]:
    """The request fields that offer `tools` (none: no fields), the model choosing whether to call one."""
    if not tools:
        return {}
    return {"tools": [dict(t) for t in tools], "tool_choice": "auto"}


def with_tools_chars(chars: int | None, body: dict[str, Any]) -> int | None:
    """A prompt's characters and those of the tools it offers, which the server's chat template renders in."""
    tools = body.get("tools")
    return chars + len(json.dumps(tools)) if chars is not None and tools else chars


def _text(holder: dict[str, Any], key: str, event: dict[str, Any]) -> str | None:
    value = holder.get(key)
    if value is not None and not isinstance(value, str):
        raise ServerFault(f"the server sent an event whose {key} is not text", _raw(event))
    return value


def _raw(event: dict[str, Any]) -> str:
    return json.dumps(event)[:4096]


class TokenIdsRefused(Exception):
    """The server does not take a list of token ids as a prompt: send decoded text instead."""


def sampling(params: GenerationParams, chat: bool, reasons: bool) -> dict[str, Any]:
    """OpenAI request fields; non-standard ones (top_k, ignore_eos, chat_template_kwargs) only when set, since
    hosted APIs refuse them. Stop strings are held back where the model may reason: the backend applies them
    to the answer itself (see `engine_stop`)."""
    out: dict[str, Any] = {
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.top_k:
        out["top_k"] = params.top_k
    if stop := engine_stop(params, can_watch=True, reasons=reasons):
        out["stop"] = stop
    if params.seed is not None:
        out["seed"] = params.seed
    if params.ignore_eos:
        out["ignore_eos"] = True
    if params.json_schema is not None:
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
        }
    if params.reasoning_effort is not None:
        out["reasoning_effort"] = params.reasoning_effort
    if params.enable_thinking is not None and chat:  # the completions route renders it locally
        out["chat_template_kwargs"] = {"enable_thinking": params.enable_thinking}
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


def final_error(exc: Exception, attempt: int, request_timeout_s: float) -> str:
    """The sample's error for a failure not worth another try: a timeout, a server fault, anything else."""
    if isinstance(exc, asyncio.TimeoutError):  # the request timeout, which every try shares
        tries = f" ({attempt + 1} tries)" if attempt else ""
        return f"timeout: no complete answer within the request timeout of {request_timeout_s:g} s{tries}"
    if isinstance(exc, StreamTimeout):
        return f"timeout: {exc}"
    if isinstance(exc, (ServerFault, BackendError)):  # already named in words
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def last_try(error: str, attempt: int, request_timeout_s: float) -> str:
    """The error of a request's last try, saying how many there were."""
    if attempt == 0:
        return error
    return f"{error} (the last of {attempt + 1} tries within the request timeout of {request_timeout_s:g} s)"


def backoff_s(attempt: int, retry_after: str | None) -> float:
    """Exponential backoff with full jitter, bounded; a server's Retry-After (in seconds) wins if shorter than the bound."""
    if retry_after:
        try:
            return min(float(retry_after), MAX_BACKOFF_S)
        except ValueError:
            pass
    return random.uniform(0, min(MAX_BACKOFF_S, 0.25 * 2**attempt))
