"""The one connection pool a loaded OpenAI backend streams through, from `load` to `close`.

One pool per run, so the warm-up opens the connections the measured requests then use and no point's
first requests pay a connection's set-up (or a TLS handshake) inside their TTFT. It speaks plain HTTP/1.1
keep-alive on asyncio streams, with the surface of httpx's client that the stream reader uses
(`build_request`, `send(stream=True)`, a response's `status_code`, `headers`, `aiter_bytes`, `aclose`) and
httpx's transport errors: httpx's own pool cost about 6 ms of CPU per streamed request here (its
connection bookkeeping is linear in the connections open, per request), which held one client process
below 100 requests/s on two cores; this one costs a fraction of that (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from llmbench.config.models import ApiSpec

DRAIN_BYTES = 1 << 16  # what a response closed early may still read to keep its connection
DRAIN_S = 0.25
HEAD_LIMIT = 1 << 16  # a response head (status line and headers) longer than this is a protocol error
READ_BYTES = 1 << 16  # the most one read of a body takes, so the most it passes on at once

_Key = tuple[str, str, int]  # scheme, host, port


def client_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for the client: uvloop's where it is installed (vLLM brings it), as `vllm bench serve`
    runs; it halves the loop's own cost per timer and task, which a client pays for every streamed line."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def open_pool(headers: dict[str, str], api: ApiSpec) -> Pool:
    """The run's one pool, opened on the loop that will use it (its connections belong there).

    No cap on connections: the pacer decides what is in flight, so the pool never queues a request out of
    its sight; idle ones are kept, so the warm-up's connections serve the points after it.
    """
    return Pool(headers, connect_timeout_s=api.first_token_timeout_s)


@dataclass
class Request:
    """One request as it goes on the wire."""

    key: _Key
    head: bytes
    body: bytes


class _Connection:
    def __init__(self, key: _Key, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.key, self.reader, self.writer = key, reader, writer
        self.used = False  # it carried a request before: the server may have closed it since

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class Pool:
    """Keep-alive HTTP/1.1 connections per host, idle ones reused last-in first-out."""

    def __init__(self, headers: dict[str, str], connect_timeout_s: float) -> None:
        self.headers = {"user-agent": "llmbench", "accept": "*/*"} | {
            k.lower(): v for k, v in headers.items()
        }
        self.connect_timeout_s = connect_timeout_s
        self.idle: defaultdict[_Key, list[_Connection]] = defaultdict(list)
        self.opened = 0  # connections opened, for tests and figures
        self._tls: ssl.SSLContext | None = None

    def build_request(
        self, method: str, url: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Request:
        parts = urlsplit(url)
        body = _json_bytes(json) if json is not None else b""
        fields = self.headers | {k.lower(): v for k, v in (headers or {}).items()}
        fields |= {"host": parts.netloc, "content-length": str(len(body))}
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (
            f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
        )
        return Request(_key(url), head.encode("latin-1"), body)

    async def send(self, request: Request, *, stream: bool = True) -> Response:
        """Send on an idle connection (once more on a new one if the server had closed it), read the head."""
        while True:
            conn = await self._connection(request.key)
            try:
                conn.writer.write(request.head + request.body)
                return await Response.read_head(self, conn)
            except _ClosedBeforeAnswer:
                conn.close()
                if not conn.used:
                    raise httpx.RemoteProtocolError(
                        "the server closed the connection without answering"
                    ) from None
            except BaseException:
                conn.close()
                raise

    async def _connection(self, key: _Key) -> _Connection:
        idle = self.idle[key]
        while idle:
            conn = idle.pop()
            if not (conn.reader.at_eof() or conn.writer.is_closing()):
                return conn
            conn.close()
        return await self._open(key)

    async def warm(self, url: str, n: int) -> int:
        """Open connections to `url`'s server, all at once, until `n` are idle; how many it opened. A
        connection that fails to open is left to the request that would have used it."""
        key = _key(url)
        idle = self.idle[key]
        for conn in [c for c in idle if c.reader.at_eof() or c.writer.is_closing()]:
            idle.remove(conn)
            conn.close()
        opened = await asyncio.gather(
            *(self._open(key) for _ in range(n - len(idle))), return_exceptions=True
        )
        conns = [c for c in opened if isinstance(c, _Connection)]
        for conn in conns:
            self.release(conn)  # as if used: one the server closes meanwhile is replaced, not an error
        return len(conns)

    async def _open(self, key: _Key) -> _Connection:
        scheme, host, port = key
        if scheme == "https" and self._tls is None:
            self._tls = ssl.create_default_context()
        tls = self._tls if scheme == "https" else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=tls, limit=HEAD_LIMIT), self.connect_timeout_s
            )
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(
                f"no connection to {host}:{port} within {self.connect_timeout_s:g} s"
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        self.opened += 1
        return _Connection(key, reader, writer)

    def release(self, conn: _Connection) -> None:
        conn.used = True
        self.idle[conn.key].append(conn)

    async def aclose(self) -> None:
        for conns in self.idle.values():
            for conn in conns:
                conn.close()
        self.idle.clear()


class _ClosedBeforeAnswer(Exception):
    """The connection ended before the first byte of an answer: a kept-alive one the server had closed."""


class Response:
    """One answer: its status and headers, then its body as it arrives."""

    def __init__(
        self, pool: Pool, conn: _Connection, status: int, headers: dict[str, str], http10: bool
    ) -> None:
        self.pool, self.conn = pool, conn
        self.status_code, self.headers = status, headers
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self.left = int(length) if length is not None and length.isdigit() and not self.chunked else None
        close = headers.get("connection", "").lower() == "close"
        self.reusable = not close and not http10 and (self.chunked or self.left is not None)
        self.ended = self.left == 0 and not self.chunked
        self.closed = False
        self.buf = bytearray()  # chunked: bytes read and not yet taken off
        self.chunk_left = 0  # chunked: bytes of the current chunk's payload still to come
        self.after_payload = False  # chunked: a payload ended, its line end is still to come

    @classmethod
    async def read_head(cls, pool: Pool, conn: _Connection) -> Response:
        try:
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if not exc.partial:
                raise _ClosedBeforeAnswer from None
            raise httpx.RemoteProtocolError(
                "the server closed the connection inside its answer's head"
            ) from None
        except asyncio.LimitOverrunError:
            raise httpx.RemoteProtocolError(f"an answer's head longer than {HEAD_LIMIT} bytes") from None
        except OSError as exc:
            if not conn.used:
                raise httpx.ReadError(str(exc)) from None
            raise _ClosedBeforeAnswer from None
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/") or not rest[:3].isdigit():
            raise httpx.RemoteProtocolError(f"not an HTTP answer: {lines[0][:80]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return cls(pool, conn, int(rest[:3]), headers, version == "HTTP/1.0")

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's bytes as they come (chunked, of a known length, or to the connection's end)."""
        try:
            if self.chunked:
                async for data in self._chunks():
                    yield data
            elif self.left is not None:
                while self.left > 0:
                    data = await self.conn.reader.read(min(self.left, READ_BYTES))
                    if not data:
                        raise httpx.RemoteProtocolError("the server closed the connection inside the body")
                    self.left -= len(data)
                    yield data
            else:
                while data := await self.conn.reader.read(READ_BYTES):
                    yield data
            self.ended = True
        except OSError as exc:
            raise httpx.ReadError(str(exc)) from None

    async def _chunks(self) -> AsyncIterator[bytes]:
        """The payloads of a chunked body as they come: what each read brought of them, joined, one await per
        read. A chunk is passed on in the parts its reads bring, never held whole: a chunk announced as
        larger than anything a stream should send is bounded by the reader above, not by this one's memory."""
        reader, buf = self.conn.reader, self.buf
        while True:
            payload, done = self._take_chunks()
            if payload:
                yield payload
            if done:
                return
            data = await reader.read(READ_BYTES)
            if not data:
                raise httpx.RemoteProtocolError("the server closed the connection inside a chunked body")
            buf += data

    def _take_chunks(self) -> tuple[bytes, bool]:
        """Take what the buffer holds of chunk payloads off it; True once the last (empty) chunk and its
        trailers came."""
        buf, payloads = self.buf, list[bytes]()
        while buf:
            if self.chunk_left:  # inside a chunk's payload: pass on what came of it
                n = min(self.chunk_left, len(buf))
                payloads.append(bytes(buf[:n]))
                del buf[:n]
                self.chunk_left -= n
            elif self.after_payload:  # the line end that closes a payload
                if len(buf) < 2:
                    break
                del buf[:2]
                self.after_payload = False
            elif (eol := buf.find(b"\r\n")) < 0:
                if len(buf) > HEAD_LIMIT:
                    raise httpx.RemoteProtocolError("a chunk size line without an end")
                break
            elif (size := _chunk_size(buf[:eol])) == 0:
                end = buf.find(b"\r\n\r\n", eol)  # trailers, if any, then a blank line
                if end < 0:
                    break
                del buf[: end + 4]
                self.ended = True
                return b"".join(payloads), True
            else:
                del buf[: eol + 2]
                self.chunk_left, self.after_payload = size, True
        return b"".join(payloads), False

    async def aclose(self) -> None:
        """Give the connection back where the body ended (reading its last bytes briefly if need be)."""
        if self.closed:
            return
        self.closed = True
        if not self.ended and self.reusable:
            with contextlib.suppress(Exception):  # not ended soon (or broken): the connection is closed
                await asyncio.wait_for(self._drain(), DRAIN_S)
        if self.ended and self.reusable:
            self.pool.release(self.conn)
        else:
            self.conn.close()

    async def _drain(self) -> None:
        left = DRAIN_BYTES
        async for data in self.aiter_bytes():
            left -= len(data)
            if left < 0:
                return


def _chunk_size(line: bytearray) -> int:
    try:
        size = int(bytes(line).split(b";", 1)[0], 16)
    except ValueError:
        raise httpx.RemoteProtocolError("a malformed chunk in the answer's body") from None
    if size < 0:
        raise httpx.RemoteProtocolError("a malformed chunk in the answer's body")
    return size


def _key(url: str) -> _Key:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    return scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80)


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
