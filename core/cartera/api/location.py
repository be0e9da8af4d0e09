"""``Location`` on every 201: the URL of the object the request created.

By default the created object's ``id`` appended to the request path (``POST /v1/debtors`` ->
``/v1/debtors/42``). A handler whose object lives elsewhere names it with a template of the
response's fields (and ``{path}``, the request path) in ``opt[LOCATION]``
(``/v1/payments/{id}`` for a reversal, ``{path}/{endpoint[id]}`` for a nested object).
A handler that sets ``Location`` itself is left alone.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cartera.api.asgi import ASGIApp, Message, Receive, Scope, Send

LOCATION = "location"
"""Handler ``opt`` key: the template of the created object's path (``{field}`` of the body)."""


def location_of(scope: Scope, body: bytes) -> str | None:
    """The created object's path, or None when the body does not name it."""
    try:
        created = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if not isinstance(created, dict):
        return None
    handler = scope.get("route_handler")
    template = getattr(handler, "opt", {}).get(LOCATION) if handler is not None else None
    if template:
        try:
            return str(template).format(**{**created, "path": scope["path"].rstrip("/")})
        except (KeyError, IndexError, TypeError, ValueError):
            return None
    if created.get("id") is None:
        return None
    return f"{scope['path'].rstrip('/')}/{created['id']}"


def location_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in {"POST", "PUT"}:
            await app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def send_with_location(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = message.get("headers", [])
                if message["status"] == 201 and not any(k.lower() == b"location"
                                                        for k, _ in headers):
                    start = dict(message)
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                body = b"".join(chunks)
                location = location_of(scope, body)
                if location is not None:
                    start["headers"] = [*start.get("headers", []),
                                        (b"location", location.encode("latin-1"))]
                await send(start)
                await send({"type": "http.response.body", "body": body})
                return
            await send(message)

        await app(scope, receive, send_with_location)

    return middleware
