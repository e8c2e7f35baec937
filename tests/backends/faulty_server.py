"""A loopback OpenAI-compatible server that fails on purpose, for testing the OpenAI backend without a model.

It listens on 127.0.0.1 only, reads at most `MAX_BODY_BYTES` of a request, serves at most
`max_requests` requests (then 503), and never holds a thread longer than `HANG_S`. Each fault is a
way a real server, proxy or gateway has been seen to answer: a stream cut short, a 200 with no body,
a usage block that lies, an error page echoing the request's headers, a server that stops talking,
HTML where JSON belongs, a server that talks without answering (keep-alives only), never stops, never
ends a line, or sends what is not JSON.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 1 << 20
HANG_S = 20.0  # a hanging answer ends by then even if the test forgot to stop the server
GATHER_S = 5.0  # the longest an answer waits for `gather` requests to be open at once
FAULTS = (
    "ok",  # a correct stream: role, one chunk per word, finish reason, usage, [DONE]
    "early_end",  # two chunks, then the connection closes: no finish reason, no [DONE]
    "empty",  # 200 with an event-stream content type and no body at all
    "lying_usage",  # a correct stream whose usage claims absurd counts
    "string_usage",  # a correct stream whose usage counts are strings
    "echo_headers",  # HTTP 400 whose body repeats the request's headers, Authorization included
    "hang_before_body",  # headers sent, then silence
    "hang_mid_stream",  # two chunks, then silence
    "html_models",  # GET /v1/models answers an HTML page
    "comments_only",  # headers, then `: ping` comment lines, forever (until HANG_S)
    "empty_events",  # role-only deltas, empty deltas, choices without text and no choices, forever: no answer
    "empty_texts",  # empty texts (tokens that end mid-character), forever: an answer that never stops
    "never_stops",  # content, a word an event, past max_tokens and on, forever (until HANG_S)
    "endless_line",  # one line that never ends: `data: {"choices"...` and bytes, no newline, forever
    "huge_chunk",  # a chunked body whose one chunk is announced as 100 MiB: `data: {...` and bytes, no newline
    "not_json",  # the answer's chunks, then an event that is not JSON
    "busy",  # HTTP 503 with `Retry-After: 1`
    "rate_limited",  # HTTP 429 with `Retry-After: 1`, as a hosted API over its requests or tokens per minute
)
PING_S = 0.02  # between two keep-alives (or two words of an answer that never stops)
HUGE_CHUNK_BYTES = 100 << 20


class FaultyServer:
    """`with FaultyServer("early_end") as s:` then point a backend at `s.base_url`; `fail_first` faults, then ok."""

    def __init__(
        self,
        fault: str,
        *,
        words: tuple[str, ...] = ("The", " answer", " is", " 42", "."),
        fail_first: int | None = None,
        max_requests: int = 64,
        usage: dict[str, Any] | None = None,
        gather: int | None = None,
        ok_first: int = 0,
    ) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        self.fault = fault
        self.words = words
        self.fail_first = fail_first  # None: every request gets the fault
        self.max_requests = max_requests
        self.usage = usage
        self.gather = gather  # hold every answer until this many requests are open at once (or GATHER_S)
        self.ok_first = ok_first  # the first requests are answered well, the fault comes after them
        self.open = 0
        self.most_open = 0  # the most requests that were open at once
        self.opened = threading.Condition()
        self.posts = 0
        self.seen_headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for_posts(self, n: int, guard_s: float = 120.0) -> int:
        """The POSTs seen once `n` have come (or the guard against a real hang passed).

        On a busy host a client with a short timeout can give up before this server's thread was scheduled
        to read its request; the request is still in the socket and is read later. Tests that count what a
        client sent wait here instead of reading `posts` when the client exits."""
        with self.opened:
            self.opened.wait_for(lambda: self.posts >= n, guard_s)
            return self.posts

    def _fault_now(self) -> str:
        with self.lock:
            self.posts += 1
            n = self.posts
        if (self.fail_first is not None and n > self.fail_first) or n <= self.ok_first:
            return "ok"
        return self.fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                if server.fault == "html_models":
                    self._send(200, "text/html", b"<html><body>Welcome to nginx!</body></html>")
                    return
                self._send(200, "application/json", json.dumps({"data": [{"id": "faulty"}]}).encode())

            def do_POST(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY_BYTES)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.seen_headers.append(dict(self.headers.items()))
                    over = server.posts >= server.max_requests
                if over:
                    self._send(503, "application/json", b'{"error": "request budget spent"}')
                    return
                fault = server._fault_now()
                with server.opened:
                    server.open += 1  # `posts` was counted: wake wait_for_posts too
                    server.most_open = max(server.most_open, server.open)
                    server.opened.notify_all()
                    if server.gather is not None:
                        server.opened.wait_for(lambda: server.most_open >= (server.gather or 0), GATHER_S)
                self.counted = True
                try:
                    self._answer(fault, body)
                finally:
                    self._leave()

            def _leave(self) -> None:
                """This request no longer counts as open: called before its last bytes go out, since a client
                that read them may send its next request before this thread runs again."""
                if getattr(self, "counted", False):
                    self.counted = False
                    with server.opened:
                        server.open -= 1

            def _answer(self, fault: str, body: dict[str, Any]) -> None:
                if fault in ("busy", "rate_limited"):
                    self.send_response(503 if fault == "busy" else 429)
                    self.send_header("Retry-After", "1")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if fault == "huge_chunk":
                    self._huge_chunk()
                    return
                if fault == "echo_headers":
                    echoed = {"error": "bad request", "received_headers": dict(self.headers.items())}
                    self._send(400, "application/json", json.dumps(echoed).encode())
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                self.wfile.flush()
                if fault == "empty":
                    return
                if fault == "hang_before_body":
                    server.stop.wait(HANG_S)
                    return
                if fault in TALKERS:
                    self._talk(fault, "messages" in body)
                    return
                chat = "messages" in body
                cut = fault in ("early_end", "hang_mid_stream")
                for word in server.words[:2] if cut else server.words:
                    self._event(_chunk(word, chat))
                if fault == "hang_mid_stream":
                    server.stop.wait(HANG_S)
                    return
                if fault == "not_json":
                    self.wfile.write(b"data: {not json, but the server sent it anyway}\n\n")
                    return
                if cut:
                    return
                self._event(_chunk("", chat, finish="stop"))
                self._event({"choices": [], "usage": self._usage(fault)})
                self._leave()
                self.wfile.write(b"data: [DONE]\n\n")

            def _talk(self, fault: str, chat: bool) -> None:
                """Write what the fault writes until the client hangs up, the server stops, or HANG_S."""
                ends = time.monotonic() + HANG_S
                pieces = TALKERS[fault](chat)
                try:
                    while not server.stop.is_set() and time.monotonic() < ends:
                        self.wfile.write(next(pieces))
                        self.wfile.flush()
                        if fault != "endless_line":
                            server.stop.wait(PING_S)
                except OSError:  # the client hung up: what a bounded client does
                    pass

            def _huge_chunk(self) -> None:
                """One chunk of HUGE_CHUNK_BYTES, announced whole, written 64 KiB a time until the client hangs up."""
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                pieces, left = _endless_line(False), HUGE_CHUNK_BYTES
                try:
                    self.wfile.write(b"%x\r\n" % HUGE_CHUNK_BYTES)
                    while left > 0 and not server.stop.is_set():
                        piece = next(pieces)[:left]
                        self.wfile.write(piece)
                        left -= len(piece)
                    self.wfile.write(b"\r\n0\r\n\r\n")
                except OSError:  # the client hung up: what a bounded client does
                    pass

            def _usage(self, fault: str) -> dict[str, Any]:
                if server.usage is not None:
                    return server.usage
                n = len(server.words)
                if fault == "lying_usage":
                    return {"prompt_tokens": -5, "completion_tokens": 12_700_000_000, "total_tokens": 0}
                if fault == "string_usage":
                    return {"prompt_tokens": "7", "completion_tokens": str(n), "total_tokens": "x"}
                return {"prompt_tokens": 7, "completion_tokens": n, "total_tokens": 7 + n}

            def _event(self, event: dict[str, Any]) -> None:
                self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                self.wfile.flush()

            def _send(self, status: int, content_type: str, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _chunk(text: str, chat: bool, finish: str | None = None) -> dict[str, Any]:
    if chat:
        choice: dict[str, Any] = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    return {"id": "x", "object": "chunk", "choices": [choice]}


def _data(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _pings(chat: bool) -> Iterator[bytes]:
    return itertools.repeat(b": ping\n\n")


def _empty_events(chat: bool) -> Iterator[bytes]:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    none = {"id": "x", "object": "chunk", "choices": []}
    bare = {"choices": [{"index": 0, "delta": {}} if chat else {"index": 0, "finish_reason": None}]}
    return itertools.cycle([_data(role if chat else bare), _data(none), _data(bare)])


def _empty_texts(chat: bool) -> Iterator[bytes]:
    return itertools.repeat(_data(_chunk("", chat)))


def _never_stopping(chat: bool) -> Iterator[bytes]:
    return (_data(_chunk(f" word{i}", chat)) for i in itertools.count())


def _endless_line(chat: bool) -> Iterator[bytes]:
    head = b'data: {"id": "x", "object": "chunk", "choices": [{"index": 0, "delta": {"content": "'
    return itertools.chain([head], itertools.repeat(b"x" * 65536))


TALKERS: dict[str, Callable[[bool], Iterator[bytes]]] = {
    "comments_only": _pings,
    "empty_events": _empty_events,
    "empty_texts": _empty_texts,
    "never_stops": _never_stopping,
    "endless_line": _endless_line,
}


def sums_suite(folder: Path, answers: Sequence[str]) -> Path:
    """A one-task suite of `i+i?` questions with the given reference answers, scored by exact match: what the
    CLI tests send to a faulty server."""
    (folder / "data.jsonl").write_text(
        "".join(
            json.dumps({"id": str(i), "text": f"{i}+{i}?", "answer": a}) + "\n" for i, a in enumerate(answers)
        )
    )
    suite = folder / "s.yaml"
    suite.write_text(
        "name: s\ngeneration: {max_new_tokens: 8}\ntasks:\n  - name: sums\n"
        "    dataset: {local: data.jsonl, reference_field: answer}\n"
        "    prompt: {template: '{{ text }}'}\n    scorer: {name: exact}\n"
    )
    return suite
