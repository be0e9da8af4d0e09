"""Outbound HTTP for plugins: an ``httpx.AsyncClient`` with a retrying transport.

Retries (exponential backoff with full jitter, capped):

* on HTTP 429 and 500/502/503/504 for *retry-safe* requests;
* on connection failures (``ConnectError``/``ConnectTimeout``: nothing was sent) always;
* on read timeouts and broken connections for retry-safe requests only.

A request is retry-safe when its method is idempotent (GET, HEAD, OPTIONS, PUT, DELETE,
TRACE) or it carries an idempotency key header. A POST without a key is never re-sent
after it may have reached the server: a duplicate payment or message is worse than a
failure.

``Retry-After`` (delta-seconds or HTTP-date) is honoured; when it asks for more than
``max_retry_after`` seconds the response is returned as-is so the caller can report
``rate_limited`` with that delay instead of blocking a worker. Every request gets an
``X-Request-Id`` (kept across retries).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRY_STATUSES",
    "RetryPolicy",
    "RetryingTransport",
    "make_client",
    "parse_retry_after",
]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAYBE_SENT = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError, httpx.ReadError)

Sleep = Callable[[float], Awaitable[None]]


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How many times and how long to retry. ``retries`` counts re-sends (0 = none)."""

    retries: int = 3
    backoff: float = 0.5
    backoff_max: float = 20.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES
    idempotency_headers: tuple[str, ...] = ("Idempotency-Key", "X-Idempotency-Key")
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Full-jitter exponential delay before re-send number ``attempt`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff * (2 ** (attempt - 1)))
        return self.rng.uniform(0, ceiling)

    def retry_safe(self, request: httpx.Request) -> bool:
        """Idempotent method, or an idempotency key header is present."""
        if request.method.upper() in IDEMPOTENT_METHODS:
            return True
        return any(request.headers.get(name) for name in self.idempotency_headers)


class RetryingTransport(httpx.AsyncBaseTransport):
    """Wraps another async transport and retries per :class:`RetryPolicy`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        policy: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._inner = inner or httpx.AsyncHTTPTransport()
        self.policy = policy or RetryPolicy()
        self._sleep = sleep

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "x-request-id" not in request.headers:
            request.headers["X-Request-Id"] = uuid.uuid4().hex
        await request.aread()  # make the body replayable
        safe = self.policy.retry_safe(request)
        attempt = 0
        while True:
            try:
                response = await self._inner.handle_async_request(request)
            except _NOT_SENT:
                if attempt >= self.policy.retries:
                    raise
            except _MAYBE_SENT:
                if not safe or attempt >= self.policy.retries:
                    raise
            else:
                if (
                    not safe
                    or response.status_code not in self.policy.statuses
                    or attempt >= self.policy.retries
                ):
                    return response
                wait = self.policy.delay(attempt + 1)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                if retry_after is not None:
                    if retry_after > self.policy.max_retry_after:
                        return response
                    wait = retry_after
                await response.aclose()
                attempt += 1
                await self._sleep(wait)
                continue
            attempt += 1
            await self._sleep(self.policy.delay(attempt))

    async def aclose(self) -> None:
        await self._inner.aclose()


def make_client(
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    timeout: float | None = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    backoff_max: float = 20.0,
    max_retry_after: float = 60.0,
    idempotency_key: str | None = None,
    idempotency_header: str = "Idempotency-Key",
    user_agent: str = "cartera-sdk/0.1",
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> httpx.AsyncClient:
    """Build an ``httpx.AsyncClient`` for ``base_url`` with retries and request ids.

    ``idempotency_key`` sets ``idempotency_header`` on every request of this client (use a
    per-operation client, or pass the header per request). A request carrying
    ``idempotency_header``, ``Idempotency-Key`` or ``X-Idempotency-Key`` is retry-safe.
    ``transport`` replaces the network transport (tests); ``sleep`` replaces
    ``asyncio.sleep`` (tests).
    """
    policy = RetryPolicy(
        retries=retries,
        backoff=backoff,
        backoff_max=backoff_max,
        max_retry_after=max_retry_after,
        idempotency_headers=tuple(
            dict.fromkeys((idempotency_header, "Idempotency-Key", "X-Idempotency-Key"))
        ),
    )
    all_headers = {"User-Agent": user_agent, **(headers or {})}
    if idempotency_key:
        all_headers[idempotency_header] = idempotency_key
    return httpx.AsyncClient(
        base_url=base_url,
        headers=all_headers,
        auth=auth,
        timeout=timeout,
        transport=RetryingTransport(transport, policy=policy, sleep=sleep),
    )
