"""The run's connection pool speaks HTTP/1.1 as servers write it: chunks split or joined anyhow across reads,
kept-alive connections the server closed meanwhile, bodies of a known length or ended by the close."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest

from llmbench.backends.openai_pool import READ_BYTES, Pool

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
    )
    return await reader.readexactly(length)


async def fetch(handler: Handler, n: int = 1) -> tuple[list[bytes], int]:
    """`n` POSTs one after another through one pool: each body, and the connections the pool opened."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool, bodies = Pool({"Content-Type": "application/json"}, connect_timeout_s=10), []
    try:
        for i in range(n):
            request = pool.build_request("POST", f"http://127.0.0.1:{port}/v1/completions", json={"i": i})
            response = await pool.send(request, stream=True)
            body = b""
            async for data in response.aiter_bytes():
                body += data
            await response.aclose()
            bodies.append(body)
    finally:
        await pool.aclose()
        server.close()
    return bodies, pool.opened


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
ChunkedServer = Callable[..., Handler]


@pytest.fixture
def chunked_server() -> ChunkedServer:
    """A kept-alive server that answers every request with the same chunked body of `parts`, written `piece`
    bytes at a time (None: at once)."""

    def serving(*parts: bytes, piece: int | None = None) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                wire = HEAD + chunked(*parts)
                step = piece or len(wire)
                for i in range(0, len(wire), step):
                    writer.write(wire[i : i + step])
                    await writer.drain()
                    if piece:
                        await asyncio.sleep(0.001)

        return handler

    return serving


def test_chunks_split_across_reads_and_joined_in_one_read_give_the_same_body(
    chunked_server: ChunkedServer,
) -> None:
    # a few bytes at a time: a chunk's size line, its payload and its line end each cut in two
    handler = chunked_server(b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n", piece=7)
    bodies, opened = asyncio.run(fetch(handler, n=3))
    assert bodies == [b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"] * 3
    assert opened == 1  # every answer ended, so its connection served the next request


def test_a_kept_alive_connection_the_server_closed_is_replaced_without_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + chunked(b"data: [DONE]\n\n"))
        await writer.drain()
        writer.close()  # keep-alive promised, then the connection closed (an idle timeout)

    bodies, opened = asyncio.run(fetch(handler, n=2))
    assert bodies == [b"data: [DONE]\n\n"] * 2 and opened == 2


def test_bodies_of_a_known_length_and_to_the_close_are_read_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        if b'"i":0' in body:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
            await writer.drain()
            await handler(reader, writer)
            return
        writer.write(b"HTTP/1.0 503 Busy\r\n\r\ngo away")
        writer.close()

    bodies, opened = asyncio.run(fetch(handler, n=2))
    assert bodies == [b"hello", b"go away"] and opened == 1


def test_a_connection_refused_or_cut_is_an_httpx_transport_error() -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(HEAD + b"20\r\ndata: par")
        await writer.drain()
        writer.close()

    with pytest.raises(httpx.TransportError):
        asyncio.run(fetch(cut))

    async def refused() -> None:
        pool = Pool({}, connect_timeout_s=5)
        await pool.send(pool.build_request("POST", "http://127.0.0.1:9/v1/completions", json={}))

    with pytest.raises(httpx.ConnectError):
        asyncio.run(refused())


def test_warming_opens_connections_up_to_the_count_and_requests_then_reuse_them(
    chunked_server: ChunkedServer,
) -> None:
    handler = chunked_server(b"data: [DONE]\n\n")

    async def run() -> tuple[int, int, int]:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/completions"
        pool = Pool({}, connect_timeout_s=10)
        try:
            first, again = await pool.warm(url, 8), await pool.warm(url, 8)

            async def one() -> None:
                response = await pool.send(pool.build_request("POST", url, json={}), stream=True)
                async for _ in response.aiter_bytes():
                    pass
                await response.aclose()

            await asyncio.gather(*(one() for _ in range(8)))
            return first, again, pool.opened
        finally:
            await pool.aclose()
            server.close()

    assert asyncio.run(run()) == (8, 0, 8)  # 8 requests at once found 8 open connections, opened none


def test_a_chunk_larger_than_a_read_comes_in_parts_and_whole(chunked_server: ChunkedServer) -> None:
    payload = bytes(range(256)) * 2048  # 512 KiB in one chunk, its size line announcing it all

    async def parts() -> list[int]:
        server = await asyncio.start_server(chunked_server(payload, b"end"), "127.0.0.1", 0)
        pool = Pool({}, connect_timeout_s=10)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/completions"
        try:
            response = await pool.send(pool.build_request("POST", url, json={}), stream=True)
            sizes, body = [], b""
            async for data in response.aiter_bytes():
                sizes.append(len(data))
                body += data
            await response.aclose()
            assert body == payload + b"end"
            return sizes
        finally:
            await pool.aclose()
            server.close()

    sizes = asyncio.run(parts())
    assert len(sizes) > 1 and max(sizes) <= READ_BYTES  # passed on read by read, never held whole
