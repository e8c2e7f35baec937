"""One streamed answer from an OpenAI-compatible server: the POST, its server-sent events read as lines of
bounded length, the bound on the answer's length, and the time limits on its first token and on every
silence after it. Retries and what the answer means are the backend's."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from llmbench.backends.openai_wire import (
    MAX_LINE_BYTES,
    RAW_HEAD_CHARS,
    RETRY_STATUS,
    AnswerBound,
    Retryable,
    ServerFault,
    StreamTimeout,
    TokenIdsRefused,
    excerpt,
    on_event,
    parse_event,
)
from llmbench.config.models import ApiSpec
from llmbench.errors import BackendError
from llmbench.telemetry.timing import TokenClock

_EOL = re.compile(rb"\r\n|\r|\n")  # server-sent events end a line with any of the three


@dataclass
class Exchange:
    """One try at one request: what it sends where, its limits, and what arrives (`result`, `clock`).

        `ids_refusable`: a 4xx to a token-id prompt raises TokenIdsRefused (the caller sends text instead)
        rather than failing the request. Past `deadline` the try raises asyncio.TimeoutError (the request
    timeout), never StreamTimeout. `result["raw_head"]`, after a failure: the head of what the server
        sent (redacted), or of the part that was at fault.
    """

    route: str
    body: dict[str, Any]
    api: ApiSpec
    clock: TokenClock
    redact: Callable[[str], str]
    ids_refusable: bool
    result: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None  # loop time by which the whole request must end (every try shares it)
    # Given the answer's pieces so far, whether a stop string the server was not sent has come in the answer:
    # the answer then ends there (see `openai_answer.stop_watch`)
    watch: Callable[[list[str]], bool] | None = None


class LineTooLong(Retryable):
    """A line (so an event) longer than MAX_LINE_BYTES: a transport error, found before more is held."""


async def stream_answer(client: Any, url: str, exchange: Exchange) -> None:
    """POST the exchange's body to `url` with `stream: true` and read the server-sent events into its
    `result`, stamping each token on its clock."""
    try:
        await _stream(client, url, exchange)
    except BaseException:
        head = exchange.result.get("head")
        if head and "raw_head" not in exchange.result:  # what the server sent, for the sample's record
            keep_raw(exchange, head.decode(errors="replace"))
        raise


def keep_raw(exchange: Exchange, raw: str) -> str:
    """Keep the head of `raw` (redacted) on the exchange for the record; its short excerpt for the error."""
    redacted = exchange.redact(raw[: 2 * RAW_HEAD_CHARS])  # redacted whole, then cut: no key half-kept
    exchange.result["raw_head"] = redacted[:RAW_HEAD_CHARS]
    return excerpt(redacted)


class _Limits:
    """The one timer of a stream, rescheduled as it goes: the earlier of the request's deadline and the
    current phase's, which is the first token's until the answer begins, then the idle limit after each
    token. One timer, not a task per line (asyncio.wait_for's cost), and no task between the stream and
    its caller, so a cancellation from outside always reaches the read it interrupts."""

    def __init__(self, exchange: Exchange) -> None:
        self.loop = asyncio.get_running_loop()
        self.request_by = exchange.deadline
        self.phase_by = self.loop.time() + exchange.api.first_token_timeout_s
        self.began = False
        self.timer = asyncio.timeout_at(self.when())

    def when(self) -> float:
        return self.phase_by if self.request_by is None else min(self.phase_by, self.request_by)

    def token(self, idle_s: float) -> None:
        """A token arrived: the next must come within `idle_s`."""
        self.phase_by, self.began = self.loop.time() + idle_s, True
        self.timer.reschedule(self.when())

    def request_only(self) -> None:
        """From here (an error page, closing the stream) only the request's deadline applies."""
        if not self.timer.expired():
            self.timer.reschedule(self.request_by)

    def request_passed(self) -> bool:
        """Whether the timer that fired was the request's deadline rather than the phase's."""
        return self.request_by is not None and self.request_by <= self.phase_by


async def _stream(client: Any, url: str, exchange: Exchange) -> None:
    import httpx

    result = exchange.result
    result["pieces"] = []
    limits = _Limits(exchange)
    # identity: a compressed stream could expand past every bound below within one read
    request = client.build_request("POST", url, json=exchange.body, headers={"Accept-Encoding": "identity"})
    try:
        async with limits.timer:
            response = await client.send(request, stream=True)
            try:
                await _read_answer(response, exchange, limits)
            finally:
                limits.request_only()
                await response.aclose()
    except TimeoutError:
        if not limits.timer.expired() or limits.request_passed():
            raise  # the request's deadline (or a TimeoutError that is not ours)
        raise StreamTimeout(_silence(exchange, limits.began)) from None
    except httpx.TransportError as exc:
        raise Retryable(exchange.redact(f"{type(exc).__name__}: {exc}")) from exc
    except ServerFault as fault:
        shown = keep_raw(exchange, fault.raw) if fault.raw else ""
        raise ServerFault(f"{fault.what}: {shown}" if shown else fault.what) from None
    if not (result.get("done") or result.get("finish")):
        what = "an empty body" if not result.get("bytes") else "a stream that ended without a finish reason"
        raise Retryable(f"incomplete answer from {exchange.route}: the server sent {what}")


async def _read_answer(response: Any, exchange: Exchange, limits: _Limits) -> None:
    """Read the events of one answer within `limits`: the first token's limit, then at most `idle_timeout_s`
    between two tokens; keep-alives, comments and empty events never extend either."""
    if response.status_code != 200:
        limits.request_only()
        await _refused(response, exchange)
    api, result, clock = exchange.api, exchange.result, exchange.clock
    bound = AnswerBound.of(exchange.body)
    async for line in _lines(response.aiter_bytes(), exchange):
        if not line.startswith(b"data:"):
            continue  # a comment (`: ping`), a blank line, an `event:` or `id:` field
        data = line[5:].strip().decode(errors="replace")
        if data == "[DONE]":
            result["done"] = True
            break
        kept = len(result["pieces"])
        if on_event(parse_event(data), clock, result["pieces"], result):
            limits.token(api.idle_timeout_s)
        if bound is not None:
            _keep_within(bound, exchange, kept, data)
        if exchange.watch is not None and len(result["pieces"]) > kept and exchange.watch(result["pieces"]):
            result["finish"], result["stopped"] = "stop", True
            break


def _silence(exchange: Exchange, began: bool) -> str:
    """What a timeout says: which limit passed, and what the server sent meanwhile."""
    api, result = exchange.api, exchange.result
    if began:
        tokens = len(exchange.clock.token_ns)
        return f"the answer stalled for more than {api.idle_timeout_s:g} s after {tokens} tokens"
    limit = f"no answer began within {api.first_token_timeout_s:g} s"
    if not result.get("lines"):
        return limit
    return f"{limit} (the server sent {result['lines']} lines and no token: keep-alives, comments or empty events)"


def _keep_within(bound: AnswerBound, exchange: Exchange, kept: int, data: str) -> None:
    """A server fault where the answer just passed its bound; what is kept ends where it was passed."""
    result, pieces, clock = exchange.result, exchange.result["pieces"], exchange.clock
    new = "".join(pieces[kept:])
    chars = result.get("chars", 0) + len(new) + result.pop("call_chars", 0)  # tool calls' text counts too
    passed = bound.passed(len(clock.token_ns), chars)
    if passed is None:
        result["chars"] = chars
        return
    room = bound.chars - result.get("chars", 0)
    del pieces[kept:]
    if len(clock.token_ns) <= bound.tokens:  # the bound on characters was passed within this event
        pieces.append(new[:room])
    clock.keep(bound.tokens)
    del result.get("arrival_chars", [])[bound.tokens :]
    raise ServerFault(bound.fault(passed, sum(map(len, pieces))), data)


async def _lines(chunks: AsyncIterator[bytes], exchange: Exchange) -> AsyncIterator[bytes]:
    """The stream's lines, each at most MAX_LINE_BYTES: a longer one is a transport error, raised before more
    than that and one network read are held. Counts bytes and lines, and keeps the stream's head."""
    result, held = exchange.result, bytearray()
    result["head"] = b""
    async for chunk in chunks:
        result["bytes"] = result.get("bytes", 0) + len(chunk)
        if len(result["head"]) < 2 * RAW_HEAD_CHARS:
            result["head"] += chunk[: 2 * RAW_HEAD_CHARS]
        searched, start = len(held), 0  # what is held has no line end: look only in what came
        held += chunk
        while (end := _EOL.search(held, searched)) is not None:
            line = bytes(held[start : end.start()])
            _check_length(len(line), line, exchange)
            result["lines"] = result.get("lines", 0) + bool(line)
            yield line
            start = searched = end.end()
        del held[:start]
        _check_length(len(held), held, exchange)
    if held:
        yield bytes(held)


def _check_length(n: int, line: bytes | bytearray, exchange: Exchange) -> None:
    if n > MAX_LINE_BYTES:
        shown = keep_raw(exchange, bytes(line[: 2 * RAW_HEAD_CHARS]).decode(errors="replace"))
        raise LineTooLong(
            f"the server sent a line longer than {MAX_LINE_BYTES:,} bytes, the bound on one line or event "
            f"(transport error): {shown}"
        )


async def _refused(response: Any, exchange: Exchange) -> None:
    """An answer other than 200: retried where the status says it may pass, else a final error."""
    route, body = exchange.route, exchange.body
    raw = b""
    async for chunk in response.aiter_bytes():  # an error page can be large: its head will do
        raw += chunk
        if len(raw) >= 4096:
            break
    detail = exchange.redact(raw[:4096].decode(errors="replace"))[:300]
    keep_raw(exchange, raw[:4096].decode(errors="replace"))
    message = f"HTTP {response.status_code} from {route}: {detail}"
    exchange.result["status"] = response.status_code  # the backend slows down on a 429
    if response.status_code in RETRY_STATUS:
        exchange.result["retry_after"] = response.headers.get("retry-after")
        raise Retryable(message)
    if (
        "prompt" in body and isinstance(body["prompt"], list) and 400 <= response.status_code < 500
    ) and exchange.ids_refusable:
        raise TokenIdsRefused(message)
    raise BackendError(message)
