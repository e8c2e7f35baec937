"""The viewer's HTTP server: the static page and the JSON API, on the loopback interface only.

Standard library only (no web framework to install for a local page). Model outputs are data: the API
sends them as JSON, the page puts them in the document as text, and the Content-Security-Policy allows
no script but the page's own, so an output that is HTML or JavaScript is shown, never run.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from llmbench.errors import LLMBenchError, UserInputError
from llmbench.view.routes import BadRequest, ViewApi
from llmbench.view.run_index import Catalog, UnknownRun

HOST = "127.0.0.1"
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_files() -> dict[str, bytes]:
    """The page's files as shipped in the package (read once: they never change while serving)."""
    folder = resources.files("llmbench.view") / "static"
    return {
        f.name: f.read_bytes()
        for f in folder.iterdir()
        if f.is_file() and Path(f.name).suffix in STATIC_TYPES
    }


class ViewServer(ThreadingHTTPServer):
    """A threading HTTP server bound to 127.0.0.1 that answers the viewer's page and API."""

    daemon_threads = True

    def __init__(self, api: ViewApi, port: int = 0, *, debug: bool = False) -> None:
        self.api = api
        self.static = static_files()
        self.debug = debug  # --debug: an internal error's traceback goes to stderr too
        super().__init__((HOST, port), _Handler)

    def internal_error(self, route: str, exc: Exception) -> str:
        """Say on stderr, in one line (and with the traceback under --debug), that answering `route` failed;
        returns the line for the page."""
        text = (str(exc).splitlines() or [""])[0]
        line = f"internal error answering /api/{route}: {type(exc).__name__}" + (f": {text}" if text else "")
        print(f"llmbench view: {line}", file=sys.stderr, flush=True)
        if self.debug:
            traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        return line

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def serve_until_interrupted(self) -> None:
        """Serve until Ctrl-C (or SIGTERM), then close the socket and return normally."""
        if threading.current_thread() is not threading.main_thread():
            self.serve_forever()
            return
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        worker = threading.Thread(target=self.serve_forever, name="llmbench-view", daemon=True)
        worker.start()
        try:
            while not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.shutdown()
            worker.join()
            self.server_close()


def make_server(paths: Sequence[Path], port: int = 0, *, debug: bool = False) -> ViewServer:
    """A server over the results files (or folders) given; port 0 picks a free port."""
    if not 0 <= port <= 65535:
        raise UserInputError(f"--port {port}: a port is a number from 0 to 65535")
    api = ViewApi(Catalog(paths))
    try:
        return ViewServer(api, port, debug=debug)
    except OSError as exc:
        raise UserInputError(f"cannot listen on {HOST}:{port} ({exc.strerror or exc})") from None


def _finite(value: Any) -> Any:
    """NaN and infinities (a test with nothing to test) as null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the terminal shows the URL and nothing else; a page's requests are not news

    def do_GET(self) -> None:
        if not self._host_is_loopback():
            self._send(HTTPStatus.FORBIDDEN, b"forbidden", "text/plain; charset=utf-8")
            return
        parts = urlsplit(self.path)
        path = parts.path
        if path in ("/", "/index.html"):
            self._static("index.html")
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path.startswith("/api/"):
            self._api(path.removeprefix("/api/"), dict(parse_qsl(parts.query)))
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")

    def _host_is_loopback(self) -> bool:
        """Refuse requests addressed to another name (a DNS-rebinding page pointing its name here)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in (HOST, "localhost")

    def _static(self, name: str) -> None:
        body = self.server.static.get(name)  # only the shipped names: '..' and '/' never match one
        if body is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")
            return
        self._send(HTTPStatus.OK, body, STATIC_TYPES[Path(name).suffix])

    def _api(self, route: str, query: dict[str, str]) -> None:
        try:
            status, payload = HTTPStatus.OK, self.server.api.answer(route, query)
        except UnknownRun as exc:
            status, payload = HTTPStatus.NOT_FOUND, {"error": str(exc)}
        except BadRequest as exc:
            status, payload = HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        except LLMBenchError as exc:  # a results file that cannot be read: the page says which and why
            status, payload = HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)}
        except Exception as exc:  # a file or a bug nothing foresaw: this answer fails, the viewer goes on
            status, payload = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": self.server.internal_error(route, exc)},
            )
        body = json.dumps(_finite(payload), ensure_ascii=False, allow_nan=False, default=str).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
