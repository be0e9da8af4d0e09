"""Rate limits (Litestar's ``RateLimitMiddleware``), one fixed window per group of routes:

* ``token``: ``POST /oauth/token``, ``/oauth/revoke`` and ``/oauth/introspect`` (each
  authenticates a client), one counter per remote address (credential guessing);
* ``webhooks``: the public webhook route (``/v1/hooks/...``), per remote address;
* ``expensive``: imports, segmentation runs and previews, message sends, per OAuth client;
* ``self_service``: the debtor-facing ``/self-service`` routes, per access link (the hash of
  its ``X-Self-Service-Token``), else per remote address.

Over the limit the answer is 429 ``rate_limited`` (problem+json) with ``Retry-After``; every
limited response carries ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset``
and ``RateLimit-Policy``. Counters live in the process (a memory store): with several
processes each counts on its own. The remote address is the socket's peer: behind a proxy,
run the server with its proxy-headers option so it is the client's.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any, cast

from litestar import Request
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    DurationUnit,
    RateLimitConfig,
    get_remote_address,
)

from cartera.api.asgi import ASGIApp, Receive, Scope, Send
from cartera.api.parameters import PUBLIC_WEBHOOK_PREFIX
from cartera.settings import Settings

_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
EXPENSIVE = frozenset({("POST", "/v1/imports"), ("POST", "/v1/segments/runs"),
                       ("POST", "/v1/segments/preview"), ("POST", "/v1/messages")})


CLIENT_AUTHENTICATED = frozenset({"/oauth/token", "/oauth/revoke", "/oauth/introspect"})


def parse_limit(text: str) -> tuple[DurationUnit, int]:
    """``"30/minute"`` -> ``("minute", 30)``."""
    match = _LIMIT.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"a rate limit is N/{'|'.join(DURATION_VALUES)}, not {text!r}")
    return cast("DurationUnit", match.group(2)), int(match.group(1))


def client_or_address(request: Request[Any, Any, Any]) -> str:
    """The OAuth client making the request, else (no token yet) its remote address."""
    principal = request.scope.get("state", {}).get("principal")
    if principal is not None:
        return f"client:{principal.client_id}"
    return f"address:{get_remote_address(request)}"


SELF_SERVICE_PREFIX = "/self-service"
SELF_SERVICE_HEADER = "x-self-service-token"


def link_or_address(request: Request[Any, Any, Any]) -> str:
    """The self-service link a request carries (its token's hash), else its address."""
    import hashlib

    token = request.headers.get(SELF_SERVICE_HEADER)
    if token:
        return "link:" + hashlib.sha256(token.encode("ascii", "replace")).hexdigest()
    return f"address:{get_remote_address(request)}"


def group_of(method: str, path: str) -> str | None:
    """The rate-limit group of a request (or of a documented operation), if any."""
    if method == "POST" and path in CLIENT_AUTHENTICATED:
        return "token"
    if path.startswith(PUBLIC_WEBHOOK_PREFIX):
        return "webhooks"
    if path == SELF_SERVICE_PREFIX or path.startswith(SELF_SERVICE_PREFIX + "/"):
        return "self_service"
    if (method, path.rstrip("/")) in EXPENSIVE:
        return "expensive"
    return None


def _in_group(name: str) -> Callable[[Request[Any, Any, Any]], Awaitable[bool]]:
    # Async on purpose: Litestar runs a sync check in a worker thread, on every request.
    async def applies(request: Request[Any, Any, Any]) -> bool:
        return group_of(request.scope["method"], request.scope["path"]) == name

    return applies


_GROUPS: tuple[tuple[str, Callable[[Request[Any, Any, Any]], str]], ...] = (
    ("token", get_remote_address),
    ("webhooks", get_remote_address),
    ("expensive", client_or_address),
    ("self_service", link_or_address),
)


def rate_limit_middleware(settings: Settings) -> list[Any]:
    """One raw ASGI gate in front of one Litestar middleware per group, with its limit from
    ``settings``: a request outside every group (most reads) goes straight on, without
    building a request object per group. Place it after authentication (the client id keys
    the expensive group)."""
    limits = {"token": settings.rate_limit_token, "webhooks": settings.rate_limit_webhooks,
              "expensive": settings.rate_limit_expensive,
              "self_service": settings.rate_limit_self_service}
    defined: dict[str, DefineMiddleware] = {
        name: RateLimitConfig(rate_limit=parse_limit(limits[name]),
                              check_throttle_handler=_in_group(name),
                              identifier_for_request=identify,
                              store=f"rate_limit_{name}").middleware
        for name, identify in _GROUPS}

    def gate(app: ASGIApp) -> ASGIApp:
        limited: dict[str, ASGIApp] = {name: cast(ASGIApp, d(cast(Any, app)))
                                       for name, d in defined.items()}

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            name = (group_of(scope["method"], scope["path"]) if scope["type"] == "http"
                    else None)
            await (limited[name] if name is not None else app)(scope, receive, send)

        return middleware

    return [gate]
