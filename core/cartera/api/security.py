"""Bearer-token authentication (ASGI middleware) and per-route scope guards."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6750.errors import InvalidTokenError
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from cartera.api.asgi import ASGIApp, Receive, Scope, Send
from cartera.api.problems import PROBLEM_JSON
from cartera.auth.scopes import SCOPES
from cartera.errors import Forbidden, Unauthorized

OAUTH2_SCHEME = "oauth2"
CLIENT_BASIC_SCHEME = "client_secret_basic"


async def _send_problem(send: Send, status: int, code: str, detail: str) -> None:
    import msgspec

    body = msgspec.json.encode({
        "type": f"https://cartera.dev/problems/{code.replace('_', '-')}",
        "title": "Unauthorized", "status": status, "detail": detail, "code": code,
    })
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="cartera", error="invalid_token"'),
        ],
    })
    await send({"type": "http.response.body", "body": body})


def authentication_middleware(app: ASGIApp) -> ASGIApp:
    """Verify ``Authorization: Bearer`` when present and put the principal in scope state.

    Requests without a token pass through; routes that need one are closed by their guard.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is not None and header[:7].lower() == b"bearer ":
            tokens = scope["app"].state.ctx.tokens
            try:
                principal = await tokens.verify(header[7:].decode("latin-1").strip())
            except (InvalidTokenError, ValueError):
                await _send_problem(send, 401, "invalid_token",
                                    "the access token is invalid, expired or not ours")
                return
            scope.setdefault("state", {})["principal"] = principal
        await app(scope, receive, send)

    return middleware


def requires(scope_name: str) -> Any:
    """A guard that needs a token carrying ``scope_name``."""
    if scope_name not in SCOPES:
        raise ValueError(f"unknown scope {scope_name}")

    # Async on purpose: Litestar runs a sync guard in a worker thread (a hop per request).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.scope.get("state", {}).get("principal")
        if principal is None:
            raise Unauthorized("a bearer access token is required", code="missing_token")
        if scope_name not in principal.scopes:
            raise Forbidden(f"this operation needs the {scope_name!r} scope")

    return guard


def secured(scope_name: str) -> dict[str, Any]:
    """Route-decorator keyword arguments: the guard plus the OpenAPI security requirement."""
    return {"guards": [requires(scope_name)], "security": [{OAUTH2_SCHEME: [scope_name]}]}
