"""A real HTTP server on 127.0.0.1 for testing a provider against a fake of its protocol.

Routes map ``(METHOD, path)`` (path without query; exact string or compiled regex) to a
handler. A handler is a :class:`FakeResponse`, a callable ``(RecordedRequest) ->
FakeResponse``, or a list of either consumed in order (the last one repeats), which makes
"429 then 200" scenarios one line. Every request is recorded. Unrouted requests get 404
with a JSON body naming the route, so a wrong path fails loudly. Loopback only.

It needs nothing of pytest: bind a chosen port with ``FakeHTTPServer(port=8099)`` and use
it as a context manager from any script, or run it from a shell (Ctrl-C stops it; each
request is printed as one JSON line)::

    python -m cartera_sdk.testkit.fakeserver --port 8099 --routes routes.json

where ``routes.json`` maps ``"METHOD /path"`` to a response ``{"status": 200, "body": ...,
"headers": {...}}`` or a list of them (consumed in order, the last repeats).
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeHTTPServer", "FakeResponse", "Handler", "RecordedRequest", "json_response"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake server saw it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        """The body decoded as ``application/x-www-form-urlencoded``."""
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)


@dataclass(frozen=True)
class FakeResponse:
    """A canned response. ``body`` may be bytes, str, or any JSON-serialisable value."""

    status: int = 200
    body: Any = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, bytes):
            return self.body, headers
        if isinstance(self.body, str):
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8"), headers
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(self.body).encode("utf-8"), headers


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> FakeResponse:
    """A JSON :class:`FakeResponse`."""
    return FakeResponse(status=status, body=body, headers=dict(headers or {}))


Handler = FakeResponse | Callable[[RecordedRequest], FakeResponse] | list[Any]


class FakeHTTPServer:
    """``ThreadingHTTPServer`` on a free loopback port, run in a daemon thread.

    Use as a context manager (or the ``fake_http_server`` fixture)::

        with FakeHTTPServer() as server:
            server.route("POST", "/v1/messages", json_response({"id": "m1"}))
            ... server.base_url ... server.requests
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Bind ``host`` (loopback only) on ``port`` (0: any free port; see ``base_url``)."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the fake server binds to loopback only")
        self._routes: list[tuple[str, str | re.Pattern[str], list[Any]]] = []
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, method: str, path: str | re.Pattern[str], handler: Handler) -> None:
        """Add (or replace) the handler for ``method`` + ``path``."""
        queue = list(handler) if isinstance(handler, list) else [handler]
        if not queue:
            raise ValueError("a route needs at least one response")
        with self._lock:
            self._routes = [r for r in self._routes if (r[0], r[1]) != (method.upper(), path)]
            self._routes.append((method.upper(), path, queue))

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """Recorded requests for one route."""
        return [r for r in self.requests if r.method == method.upper() and r.path == path]

    def _dispatch(self, request: RecordedRequest) -> FakeResponse:
        with self._lock:
            self.requests.append(request)
            for method, path, queue in self._routes:
                matches = (
                    path == request.path
                    if isinstance(path, str)
                    else path.fullmatch(request.path) is not None
                )
                if method == request.method and matches:
                    handler = queue.pop(0) if len(queue) > 1 else queue[0]
                    break
            else:
                return json_response(
                    {"error": "no_route", "method": request.method, "path": request.path}, 404
                )
        return handler if isinstance(handler, FakeResponse) else handler(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = RecordedRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                try:
                    response = server._dispatch(recorded)
                except Exception as exc:  # a broken handler must not hang the client
                    response = json_response({"error": "handler_failed", "detail": str(exc)}, 500)
                payload, headers = response.encoded()
                self.send_response(response.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return _Handler

    def start(self) -> Self:
        """Serve in a background daemon thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(list(self.requests))

    def route_all(self, routes: Mapping[str, Any]) -> None:
        """Add routes from a mapping ``{"POST /path": {"status": .., "body": .., "headers":
        {..}} or a list of them}`` (the ``--routes`` file of the command line)."""
        for key, spec in routes.items():
            method, _, path = key.partition(" ")
            if not path.startswith("/"):
                raise ValueError(f"route {key!r} must be 'METHOD /path'")
            specs = spec if isinstance(spec, list) else [spec]
            self.route(method, path, [_response_of(item) for item in specs])


def _response_of(spec: Mapping[str, Any]) -> FakeResponse:
    return FakeResponse(status=int(spec.get("status", 200)), body=spec.get("body", b""),
                        headers=dict(spec.get("headers", {})))


def main(argv: list[str] | None = None) -> int:
    """``python -m cartera_sdk.testkit.fakeserver``: serve routes on a chosen port until
    interrupted, printing every request as a JSON line."""
    parser = argparse.ArgumentParser(prog="python -m cartera_sdk.testkit.fakeserver",
                                     description=main.__doc__)
    parser.add_argument("--port", type=int, default=0, help="port to bind (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--routes", type=Path, help="JSON file of routes (see module doc)")
    args = parser.parse_args(argv)
    server = FakeHTTPServer(args.host, args.port)
    if args.routes:
        server.route_all(json.loads(args.routes.read_text(encoding="utf-8")))
    printed = 0
    with server:
        print(f"serving on {server.base_url}", flush=True)
        try:
            while True:
                time.sleep(0.1)
                for request in server.requests[printed:]:
                    print(json.dumps({"method": request.method, "path": request.path,
                                      "query": request.query,
                                      "body": request.body.decode("utf-8", "replace")}),
                          flush=True)
                    printed += 1
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    raise SystemExit(main())
