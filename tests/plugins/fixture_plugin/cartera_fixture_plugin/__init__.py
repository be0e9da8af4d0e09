"""A real (if tiny) channel plugin used by Cartera's tests.

``fixture_sms`` speaks a small JSON API: ``GET /ping`` with ``Authorization: Bearer <key>``
answers 200 when the key is right. Webhooks are JSON ``{"events": [...]}`` signed with
``X-Fixture-Signature: sha256=<hmac of the raw body under webhook_secret>``; the GET
handshake echoes ``challenge`` when ``verify_token`` matches. ``fixture_slow`` never
answers its connection test, to prove the host's timeout. It imports only ``cartera_sdk``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    ConnectionCheck,
    DeliveryStatusEvent,
    OutboundMessage,
    ProviderContext,
    SendFailure,
    SendResult,
    WebhookRequest,
    WebhookResponse,
    WebhookVerificationError,
    hookimpl,
    signatures,
)


class FixtureConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: str
    sender: str = "CARTERA"


class FixtureSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: str
    webhook_secret: str
    verify_token: str = ""


class _Event(msgspec.Struct, frozen=True):
    id: str
    message_id: str
    status: str
    ts: int


class _Payload(msgspec.Struct, frozen=True):
    events: list[_Event]


class FixtureSms(BaseChannelProvider):
    name = "fixture_sms"
    channel = "sms"
    Config = FixtureConfig
    Secrets = FixtureSecrets

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        return SendFailure(kind="permanent", code="not_implemented", reason="test plugin")

    async def verify_webhook(self, request: WebhookRequest,
                             ctx: ProviderContext[Any, Any]) -> None:
        header = request.header("X-Fixture-Signature")
        if header is None:
            raise WebhookVerificationError("missing_signature")
        if not signatures.verify_meta_signature(ctx.secrets.webhook_secret, request.body,
                                                header):
            raise WebhookVerificationError("bad_signature")

    def parse_webhook(self, request: WebhookRequest,
                      ctx: ProviderContext[Any, Any]) -> list[ChannelEvent]:
        payload = msgspec.json.decode(request.body, type=_Payload)
        return [DeliveryStatusEvent(event_id=e.id, provider_message_id=e.message_id,
                                    status=e.status,  # type: ignore[arg-type]
                                    occurred_at=datetime.fromtimestamp(e.ts, UTC))
                for e in payload.events]

    async def handshake(self, request: WebhookRequest,
                        ctx: ProviderContext[Any, Any]) -> WebhookResponse | None:
        if request.query_param("verify_token") != ctx.secrets.verify_token:
            return None
        return WebhookResponse(body=(request.query_param("challenge") or "").encode())

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        headers = {"Authorization": f"Bearer {ctx.secrets.api_key}"}
        try:
            async with ctx.http(ctx.config.base_url, headers=headers) as client:
                response = await client.get("/ping")
        except httpx.TransportError as exc:
            return ConnectionCheck(ok=False, detail=type(exc).__name__, code="unreachable")
        if response.status_code == 200:
            return ConnectionCheck(ok=True, detail="authenticated")
        return ConnectionCheck(ok=False, detail=f"HTTP {response.status_code}",
                               code="rejected")


class FixtureSlow(FixtureSms):
    name = "fixture_slow"

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@hookimpl
def register_channels(register: Any) -> None:
    register(FixtureSms())
    register(FixtureSlow())
