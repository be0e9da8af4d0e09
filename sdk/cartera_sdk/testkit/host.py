"""``FakeHost``: a small stand-in for the Cartera host, for plugin tests.

It loads plugins through a real ``pluggy.PluginManager`` with the SDK hook specs, collects
what they register (rejecting duplicate names, as the host does), builds
:class:`~cartera_sdk.context.ProviderContext` objects with a frozen clock, a capturing
logger and the SDK's retrying HTTP client (sleeps are recorded, not slept), and emits
domain events to observer hooks, awaiting sync or async implementations alike.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import msgspec

from ..channels import ChannelProvider
from ..compliance import CompliancePack
from ..context import ProviderContext
from ..egress import EgressPolicy
from ..erp import ErpConnector
from ..events import (
    DebtorStageChanged,
    DomainEvent,
    InteractionRecorded,
    PaymentReceived,
    PromiseBroken,
    SegmentChanged,
)
from ..http import make_client
from ..integration import Configurable
from ..payments import PaymentProvider
from ..registry import await_me_maybe, make_plugin_manager
from ..webhooks import WebhookRequest

__all__ = ["RECEIVED_AT", "CapturingHandler", "FakeHost", "FrozenClock", "as_received", "run"]

T = TypeVar("T")
_counter = itertools.count(1)
LOOPBACK = "127.0.0.1,::1,localhost"
"""The test allow-list: plugin tests talk to fake servers on loopback over http."""

_EVENT_HOOKS: dict[type[DomainEvent], str] = {
    PaymentReceived: "on_payment_received",
    PromiseBroken: "on_promise_broken",
    SegmentChanged: "on_segment_changed",
    InteractionRecorded: "on_interaction_recorded",
    DebtorStageChanged: "on_debtor_stage_changed",
}


RECEIVED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""The instant :func:`as_received` stamps on a test request."""


def as_received(request: WebhookRequest, at: datetime = RECEIVED_AT) -> WebhookRequest:
    """``request`` as the host hands it to ``parse_webhook``: the host always sets
    ``received_at`` (when the delivery reached its webhook route); a request built in a test
    gets a fixed instant, so parsing stays deterministic."""
    if request.received_at is not None:
        return request
    return msgspec.structs.replace(request, received_at=at)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from a sync test (no pytest-asyncio needed)."""
    return asyncio.run(coro)


class FrozenClock:
    """A clock that only moves when told to. Always aware UTC."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")

    def now(self) -> datetime:
        return self._now

    def set(self, now: datetime) -> None:
        """Jump to ``now`` (aware)."""
        if now.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._now = now

    def advance(self, seconds: float) -> None:
        """Move forward by ``seconds``."""
        self._now += timedelta(seconds=seconds)


class CapturingHandler(logging.Handler):
    """Keeps formatted log lines in ``lines``."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class FakeHost:
    """Loads plugins and plays the host's role around providers."""

    def __init__(self, *plugins: object, clock: FrozenClock | None = None,
                 egress_allow: str = LOOPBACK) -> None:
        self.clock = clock or FrozenClock()
        self.egress = EgressPolicy.parse(egress_allow)
        self.sleeps: list[float] = []
        self.log = CapturingHandler()
        self.logger = logging.getLogger(f"cartera.testkit.host{next(_counter)}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(self.log)
        self.logger.propagate = False
        self.pm = make_plugin_manager()
        self.channels: dict[str, ChannelProvider] = {}
        self.payment_providers: dict[str, PaymentProvider] = {}
        self.erp_connectors: dict[str, ErpConnector] = {}
        self.compliance_packs: dict[str, CompliancePack] = {}
        self.emitted: list[DomainEvent] = []
        for plugin in plugins:
            self.load(plugin)

    # ------------------------------------------------------------------ plugins

    def load(self, plugin: object, name: str | None = None) -> None:
        """Register ``plugin`` and collect everything its registration hooks register."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self._collect()

    def _collect(self) -> None:
        found: dict[str, dict[str, Any]] = {
            "channels": {}, "payment_providers": {}, "erp_connectors": {}, "compliance_packs": {},
        }  # fmt: skip

        def registrar(kind: str, key: str) -> Any:
            def register(obj: Any) -> None:
                ident = getattr(obj, key)
                if ident in found[kind]:
                    raise ValueError(f"duplicate {kind} {key} {ident!r}")
                found[kind][ident] = obj

            return register

        self.pm.hook.register_channels(register=registrar("channels", "name"))
        self.pm.hook.register_payment_providers(register=registrar("payment_providers", "name"))
        self.pm.hook.register_erp_connectors(register=registrar("erp_connectors", "name"))
        self.pm.hook.register_compliance_packs(register=registrar("compliance_packs", "country"))
        self.channels = found["channels"]
        self.payment_providers = found["payment_providers"]
        self.erp_connectors = found["erp_connectors"]
        self.compliance_packs = found["compliance_packs"]

    async def emit(self, event: DomainEvent) -> list[Any]:
        """Deliver ``event`` to its ``on_*`` hook; await async implementations."""
        hook_name = _EVENT_HOOKS[type(event)]
        self.emitted.append(event)
        results = getattr(self.pm.hook, hook_name)(event=event)
        return [await await_me_maybe(r) for r in results]

    # ------------------------------------------------------------------ contexts

    async def _sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def http(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.AsyncClient:
        """The host's HTTP client factory: SDK retries, egress rules, no real sleeping."""
        return make_client(
            base_url, headers=headers, auth=auth, timeout=timeout or 5.0, retries=2,
            sleep=self._sleep, transport=self.egress.transport(),
        )  # fmt: skip

    def context(
        self,
        provider: Configurable | None = None,
        *,
        config: Any = None,
        secrets: Any = None,
        tenant_id: str = "tenant_test",
        integration_id: str = "int_test",
        webhook_url: str | None = "https://cartera.example/v1/hooks/int_test",
    ) -> ProviderContext[Any, Any]:
        """A context; ``config``/``secrets`` default to ``provider.Config()``/``Secrets()``."""
        if config is None and provider is not None:
            config = provider.Config()
        if secrets is None and provider is not None:
            secrets = provider.Secrets()
        for value, label in ((config, "config"), (secrets, "secrets")):
            if value is not None and not isinstance(value, msgspec.Struct):
                raise TypeError(f"{label} must be a msgspec Struct instance")
        return ProviderContext(
            tenant_id=tenant_id,
            integration_id=integration_id,
            config=config,
            secrets=secrets,
            http=self.http,
            logger=self.logger,
            clock=self.clock,
            webhook_url=webhook_url,
            egress=self.egress,
        )

    def leaked_secrets(self, secrets: msgspec.Struct) -> list[str]:
        """Names of secret fields whose values appear in captured log lines."""
        text = "\n".join(self.log.lines)
        return [
            name
            for name in secrets.__struct_fields__
            if isinstance(value := getattr(secrets, name), str) and value and value in text
        ]
