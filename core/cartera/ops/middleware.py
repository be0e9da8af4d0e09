"""Request ids, access logs and request metrics (raw ASGI, so it wraps everything)."""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram

from cartera.api.asgi import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cartera.access")
PROBLEM_JSON = b"application/problem+json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

REGISTRY = CollectorRegistry()
REQUESTS = Counter("cartera_http_requests_total", "HTTP requests", ["method", "route", "status"],
                   registry=REGISTRY)
LATENCY = Histogram("cartera_http_request_seconds", "HTTP request latency", ["method", "route"],
                    registry=REGISTRY)


def _route(scope: Scope) -> str:
    handler = scope.get("route_handler")
    paths = getattr(handler, "paths", None)
    return sorted(paths)[0] if paths else "unmatched"


_SERIES: dict[tuple[str, int, int], tuple[Any, Any, Any]] = {}
"""The request counter and latency histogram children of a (method, handler, status), with
the handler (kept alive, so its id is not reused): a dict lookup per request instead of two
locked ``labels()`` calls and a sort of the handler's paths."""


def _series(scope: Scope, status: int) -> tuple[Any, Any, Any]:
    handler = scope.get("route_handler")
    key = (scope["method"], id(handler), status)
    found = _SERIES.get(key)
    if found is None:
        route = _route(scope)
        found = (REQUESTS.labels(scope["method"], route, str(status)),
                 LATENCY.labels(scope["method"], route), handler)
        if len(_SERIES) < 10_000:  # the app's handlers and a few methods: bounded anyway
            _SERIES[key] = found
    return found


def _is_problem(start: Message) -> bool:
    return any(k.lower() == b"content-type" and v.split(b";")[0].strip() == PROBLEM_JSON
               for k, v in start.get("headers", []))


def _identified(body: bytes, path: str, request_id: str) -> bytes:
    """A problem with its ``instance`` (the request path) and ``request_id``, whichever part
    of the app wrote it (a handler, a middleware, the router)."""
    try:
        problem = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body
    if not isinstance(problem, dict):
        return body
    problem.setdefault("instance", path)
    problem.setdefault("request_id", request_id)
    return msgspec.json.encode(problem)


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    """Gives every request an id (``X-Request-ID``, the caller's when it is safe) that every
    problem+json answer carries as ``request_id`` beside its ``instance``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
                     "")
        request_id = given if given and _SAFE_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        problem_start: Message | None = None
        chunks: list[bytes] = []

        async def send_with_id(message: Message) -> None:
            nonlocal status, problem_start
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
                if _is_problem(message):
                    problem_start = message
                    return
            elif message["type"] == "http.response.body" and problem_start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = _identified(b"".join(chunks), scope["path"], request_id)
                kept = [(k, v) for k, v in problem_start["headers"]
                        if k.lower() != b"content-length"]
                problem_start["headers"] = [*kept, (b"content-length", str(len(body)).encode())]
                await send(problem_start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            counter, latency, _ = _series(scope, status)
            counter.inc()
            latency.observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info("request", extra={"request_id": request_id, "method": scope["method"],
                                           "path": scope["path"], "status": status,
                                           "ms": round(elapsed * 1000, 2)})

    return middleware
