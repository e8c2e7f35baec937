"""A loopback OpenAI-compatible server whose timings are known: the measuring stick for client-side timing.

It streams /v1/completions and /v1/chat/completions over HTTP/1.1 keep-alive (chunked server-sent events):
the response headers at once, the first token `first_token_ms` after the request was read, then one chunk
every `token_gap_ms`, each of `tokens_per_chunk` tokens, the first `reasoning_tokens` of them as reasoning
(chat: as `reasoning_content`; completions: in the text, between `<think>` and `</think>`); `max_tokens`
tokens in all, as if EOS were ignored; then, `close_delay_ms` after the last token, the usage and the end. A gap is never shorter than asked: each write
waits for its deadline on the same clock as the client's (`time.perf_counter_ns`, system-wide on Linux).

It records per request when it had read the whole request and when it wrote each chunk (stamped just
before the write), and counts the TCP connections it accepted. Run it in a thread (`KnownTimingServer`,
for tests that read its records) or as its own process (`python -m llmbench.testing.known_timing_server`,
for load tests: it then competes with the client for CPU only through the OS), whose `GET /stats`
answers the counts and how late its first writes were.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

now_ns = time.perf_counter_ns


@dataclass(frozen=True)
class Timings:
    """What the server promises: the first token this long after the request is read, then a chunk a gap."""

    first_token_ms: float = 20.0
    token_gap_ms: float = 4.0
    tokens_per_chunk: int = 1
    reasoning_tokens: int = 0  # the first tokens are reasoning (see the module docstring)
    close_delay_ms: float = 0.0  # between the last token and the stream's end


@dataclass
class Served:
    """One request as the server saw it: its prompt, when it was read, when each chunk was written."""

    route: str
    prompt: Any
    read_ns: int
    tokens: int
    write_ns: list[int] = field(default_factory=list)
    connection: int = 0  # which accepted connection carried it (from 1)
    end_ns: int | None = None  # when the stream's end ([DONE]) was written

    @property
    def first_write_ns(self) -> int | None:
        return self.write_ns[0] if self.write_ns else None


class KnownTimingServer:
    """The server on its own event loop; `with KnownTimingServer(Timings()) as s:` then `s.base_url`."""

    def __init__(self, timings: Timings | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.timings = timings or Timings()
        self.host, self.port = host, port
        self.records: list[Served] = []
        self.connections = 0  # TCP connections accepted
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> None:
        """Listen on the running loop (port 0: a free one, then in `port`)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._connection, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> KnownTimingServer:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            loop.run_until_complete(self.start())
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="known-timing-server", daemon=True)
        self._thread.start()
        ready.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        loop, server = self._loop, self._server
        if loop is None or server is None or self._thread is None:
            return

        async def stop() -> None:
            server.close()
            tasks = asyncio.all_tasks() - {asyncio.current_task()}
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        self._thread.join(30)

    def stats(self, since: int = 0) -> dict[str, Any]:
        """Counts and the server's own lateness over the requests from number `since` on: first write minus
        read, less the promised delay (ms)."""
        late = sorted(
            (r.write_ns[0] - r.read_ns) / 1e6 - self.timings.first_token_ms
            for r in self.records[since:]
            if r.write_ns
        )
        pick = (lambda q: late[min(len(late) - 1, int(q * len(late)))]) if late else (lambda q: None)
        return {
            "requests": len(self.records),
            "connections": self.connections,
            "first_write_late_ms": {"p50": pick(0.5), "p99": pick(0.99), "max": late[-1] if late else None},
        }

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, headers = _parse_head(head)
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                read_ns = now_ns()
                if method == "GET":
                    self._answer_get(path, writer)
                elif path.endswith(("/completions", "/chat/completions")):
                    await self._stream(path, json.loads(body or b"{}"), read_ns, number, writer)
                else:
                    writer.write(_whole(404, b'{"error": "not found"}'))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    def _answer_get(self, target: str, writer: asyncio.StreamWriter) -> None:
        path, _, query = target.partition("?")
        if path.endswith("/models"):
            payload: Any = {"object": "list", "data": [{"id": "known-timing", "object": "model"}]}
        elif path.endswith("/stats"):
            since = query.removeprefix("since=")
            payload = self.stats(int(since) if since.isdigit() else 0)
        elif path.endswith("/records"):
            payload = [asdict(r) for r in self.records]
        else:
            writer.write(_whole(404, b'{"error": "not found"}'))
            return
        writer.write(_whole(200, json.dumps(payload).encode()))

    async def _stream(
        self, path: str, body: dict[str, Any], read_ns: int, number: int, writer: asyncio.StreamWriter
    ) -> None:
        """The answer's events, each chunk written at its deadline and stamped just before the write."""
        chat = path.endswith("/chat/completions")
        t = self.timings
        tokens = max(1, int(body.get("max_tokens") or 16))
        record = Served(path, body.get("messages") if chat else body.get("prompt"), read_ns, tokens)
        record.connection = number
        self.records.append(record)
        opened = isinstance(record.prompt, str) and record.prompt.rstrip().endswith("<think>")
        writer.write(_STREAM_HEAD)
        if chat:  # vLLM announces the role in a first event that carries no token
            writer.write(_event({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}))
        deadline = read_ns + int(t.first_token_ms * 1e6)
        sent = 0
        while sent < tokens:
            n = min(t.tokens_per_chunk, tokens - sent)
            event = _token_event(chat, sent, n, tokens, t.reasoning_tokens, opened)
            await _until(deadline)
            at = now_ns()
            record.write_ns.append(at)
            writer.write(event)
            sent += n
            deadline = at + int(t.token_gap_ms * 1e6)
            if writer.transport.get_write_buffer_size() > 1 << 16:
                await writer.drain()
        if t.close_delay_ms:
            await writer.drain()
            await _until(now_ns() + int(t.close_delay_ms * 1e6))
        if body.get("stream_options", {}).get("include_usage"):
            prompt_tokens = _prompt_tokens(record.prompt)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens}
            writer.write(_event({"choices": [], "usage": usage | {"total_tokens": prompt_tokens + tokens}}))
        record.end_ns = now_ns()
        writer.write(_chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")


async def _until(deadline_ns: int) -> None:
    """Sleep until the clock reads `deadline_ns`, never less (the loop's timers may wake a little early)."""
    while (left := deadline_ns - now_ns()) > 0:
        await asyncio.sleep(left / 1e9)


def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return method, path, headers


_STREAM_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _whole(status: int, payload: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n\r\n"
    return head.encode() + payload


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: dict[str, Any]) -> bytes:
    return _chunk(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


@functools.lru_cache(maxsize=4096)  # the same few events for every request: encode each once
def _token_event(chat: bool, first: int, n: int, total: int, reasoning: int, opened: bool = False) -> bytes:
    """One chunk of `n` tokens from token `first`: " r<i>" each while reasoning, " t<i>" after; the last carries
    finish_reason "length". `opened`: the prompt opened the reasoning block, so the text does not."""
    finish = "length" if first + n >= total else None
    think = "".join(f" r{i}" for i in range(first, min(first + n, reasoning)))
    answer = "".join(f" t{i}" for i in range(max(first, reasoning), first + n))
    if not chat:
        opening = "<think>" if first == 0 and reasoning and not opened else ""
        closed = "</think>" if first < reasoning <= first + n else ""
        text = opening + think + closed + answer
        return _event({"choices": [{"index": 0, "text": text, "finish_reason": finish}]})
    delta = ({"reasoning_content": think} if think else {}) | ({"content": answer} if answer else {})
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def _prompt_tokens(prompt: Any) -> int:
    if isinstance(prompt, list) and all(isinstance(p, int) for p in prompt):
        return len(prompt)
    if isinstance(prompt, list):  # chat messages
        return sum(len(str(m.get("content", "")).split()) for m in prompt if isinstance(m, dict))
    return len(str(prompt or "").split())


def main(argv: list[str] | None = None) -> None:
    """Serve until killed; print the base URL once listening (a parent process reads that line)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first-token-ms", type=float, default=20.0)
    parser.add_argument("--token-gap-ms", type=float, default=4.0)
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--reasoning-tokens", type=int, default=0)
    parser.add_argument("--close-delay-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    timings = Timings(
        args.first_token_ms,
        args.token_gap_ms,
        args.tokens_per_chunk,
        args.reasoning_tokens,
        args.close_delay_ms,
    )
    server = KnownTimingServer(timings, port=args.port)

    async def serve() -> None:
        await server.start()
        print(server.base_url, flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        try:  # as its own process it may use uvloop (vLLM brings it): the stick must outpace the clients
            import uvloop
        except ImportError:
            asyncio.run(serve())
        else:
            uvloop.run(serve())


if __name__ == "__main__":
    main()
