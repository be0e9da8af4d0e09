"""What the host hands a provider on every call: tenant, config, secrets, HTTP, log, clock."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx

from .egress import EgressPolicy

__all__ = [
    "Clock",
    "HttpClientFactory",
    "ProviderContext",
    "SystemClock",
]

ConfigT = TypeVar("ConfigT")
SecretsT = TypeVar("SecretsT")


class Clock(Protocol):
    """Source of the current instant. ``now()`` returns an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class HttpClientFactory(Protocol):
    """Builds an ``httpx.AsyncClient`` (see :func:`cartera_sdk.http.make_client`).

    The host's factory adds its own policy (timeouts, retries, egress rules, tracing);
    plugins must use it for every outbound call and close the client (``async with``).
    """

    def __call__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.AsyncClient: ...


@dataclass(frozen=True, kw_only=True)
class ProviderContext(Generic[ConfigT, SecretsT]):
    """Per-call context supplied by the host.

    ``config`` and ``secrets`` are instances of the provider's ``Config`` and ``Secrets``
    structs, already validated. Secrets are decrypted only for the duration of the call and
    must never be logged, returned or put into exception messages.
    ``webhook_url`` is the public URL of this integration's inbound webhook route (use it as
    Twilio ``StatusCallback`` or Mercado Pago ``notification_url``).
    ``egress`` is the host's egress policy: ``http`` clients already enforce it; a provider
    opening any other connection (SMTP) must get its socket from ``egress.connect``.
    """

    tenant_id: str
    integration_id: str
    config: ConfigT
    secrets: SecretsT
    http: HttpClientFactory
    logger: logging.Logger | logging.LoggerAdapter[Any]
    clock: Clock = field(default_factory=SystemClock)
    webhook_url: str | None = None
    egress: EgressPolicy = field(default_factory=EgressPolicy)
