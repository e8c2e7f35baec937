"""One streamed answer from an OpenAI-compatible server: the POST, its server-sent events, and the time limits
on its first byte and on every silence after it. Retries and what the answer means are the backend's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmbench.backends.openai_wire import RETRY_STATUS, Retryable, StreamTimeout, TokenIdsRefused, on_event
from llmbench.config.models import ApiSpec
from llmbench.errors import BackendError
from llmbench.telemetry.timing import TokenClock


@dataclass
class Exchange:
    """One try at one request: what it sends where, its limits, and what arrives (`result`, `clock`).

    `ids_refusable`: a 4xx to a token-id prompt raises TokenIdsRefused (the caller sends text instead)
    rather than failing the request.
    """

    route: str
    body: dict[str, Any]
    api: ApiSpec
    clock: TokenClock
    redact: Callable[[str], str]
    ids_refusable: bool
    result: dict[str, Any] = field(default_factory=dict)


async def stream_answer(client: Any, url: str, exchange: Exchange) -> None:
    """POST the exchange's body to `url` with `stream: true` and read the server-sent events into its
    `result`, stamping each chunk with content on its clock."""
    import httpx

    api, result, redact = exchange.api, exchange.result, exchange.redact
    result["pieces"] = []
    request = client.build_request("POST", url, json=exchange.body)
    try:
        try:
            response = await asyncio.wait_for(client.send(request, stream=True), api.first_byte_timeout_s)
        except asyncio.TimeoutError:
            raise StreamTimeout(f"no answer began within {api.first_byte_timeout_s:g} s") from None
        try:
            await _read_answer(response, exchange)
        finally:
            await response.aclose()
    except httpx.TransportError as exc:
        raise Retryable(redact(f"{type(exc).__name__}: {exc}")) from exc
    if not (result.get("done") or result.get("finish")):
        what = "an empty body" if not result.get("bytes") else "a stream that ended without a finish reason"
        raise Retryable(f"incomplete answer from {exchange.route}: the server sent {what}")


async def _read_answer(response: Any, exchange: Exchange) -> None:
    """Read the events of one answer; the first line may take `first_byte_timeout_s`, each next `idle_timeout_s`."""
    route, body, api, result = exchange.route, exchange.body, exchange.api, exchange.result
    pieces = result["pieces"]
    if response.status_code != 200:
        raw = b""
        async for chunk in response.aiter_bytes():  # an error page can be large: its head will do
            raw += chunk
            if len(raw) >= 4096:
                break
        detail = exchange.redact(raw[:4096].decode(errors="replace"))[:300]
        message = f"HTTP {response.status_code} from {route}: {detail}"
        if response.status_code in RETRY_STATUS:
            result["retry_after"] = response.headers.get("retry-after")
            raise Retryable(message)
        if (
            "prompt" in body and isinstance(body["prompt"], list) and 400 <= response.status_code < 500
        ) and exchange.ids_refusable:
            raise TokenIdsRefused(message)
        raise BackendError(message)
    lines = response.aiter_lines()
    while True:
        wait = api.idle_timeout_s if result.get("bytes") else api.first_byte_timeout_s
        try:
            line = await asyncio.wait_for(lines.__anext__(), wait)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            if result.get("bytes"):
                raise StreamTimeout(f"the answer stalled for more than {wait:g} s") from None
            raise StreamTimeout(f"no answer began within {wait:g} s") from None
        result["bytes"] = True
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            result["done"] = True
            break
        event = json.loads(data)
        if not isinstance(event, dict):
            raise BackendError(f"a stream event is not a JSON object: {data[:80]}")
        on_event(event, exchange.clock, pieces, result)
