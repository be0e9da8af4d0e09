"""Request ids, access logs and request metrics (raw ASGI, so it wraps everything)."""

from __future__ import annotations

import logging
import re
import time
import uuid

from prometheus_client import CollectorRegistry, Counter, Histogram

from cartera.api.asgi import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cartera.access")
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


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"),
                     "")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route(scope)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(elapsed)
            log.info("request", extra={"request_id": request_id, "method": scope["method"],
                                       "path": scope["path"], "status": status,
                                       "ms": round(elapsed * 1000, 2)})

    return middleware
