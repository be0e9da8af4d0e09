"""A small but real channel provider used by the SDK's own tests.

"Acme SMS" speaks a JSON API: ``POST /v1/messages`` with a Bearer key, answering
``201 {"id": ...}``; errors are ``{"error": {"code", "message"}}``. Status webhooks are a
JSON list signed Meta-style (``X-Acme-Signature: sha256=<hex>`` over the raw body).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    DeliveryStatusEvent,
    OutboundMessage,
    ProviderContext,
    SendFailure,
    SendResult,
    Sent,
    SmsContent,
    WebhookRequest,
    WebhookVerificationError,
    hookimpl,
    signatures,
)
from cartera_sdk.http import parse_retry_after


class AcmeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    base_url: str = "https://api.acme-sms.example"
    sender: str = "CARTERA"


class AcmeSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: str
    webhook_secret: str


class _Status(msgspec.Struct):
    event_id: str
    message_id: str
    status: str
    ts: int
    error_code: str | None = None


_STATES = {"sent": "sent", "delivered": "delivered", "failed": "failed", "queued": "queued"}


class AcmeSms(BaseChannelProvider):
    name = "acme_sms"
    channel = "sms"
    Config = AcmeConfig
    Secrets = AcmeSecrets

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        if not isinstance(message.content, SmsContent):
            return SendFailure(kind="permanent", code="unsupported_content", reason="sms only")
        payload = {
            "to": message.to,
            "from": message.content.sender or ctx.config.sender,
            "text": message.content.text,
            "client_ref": message.message_id,
        }
        headers = {"Authorization": f"Bearer {ctx.secrets.api_key}"}
        ctx.logger.info("acme send %s", message.message_id)
        try:
            async with ctx.http(ctx.config.base_url, headers=headers) as client:
                response = await client.post("/v1/messages", json=payload)
        except httpx.TransportError as exc:
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        if response.status_code in (200, 201):
            return Sent(provider_message_id=str(response.json()["id"]))
        code = str(response.status_code)
        if response.status_code == 429:
            return SendFailure(
                kind="rate_limited", code=code, reason="throttled",
                retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
            )  # fmt: skip
        kind = "retryable" if response.status_code >= 500 else "permanent"
        return SendFailure(kind=kind, code=code, reason="acme rejected the message")

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        header = request.header("X-Acme-Signature")
        if header is None:
            raise WebhookVerificationError("missing_signature")
        if not signatures.verify_meta_signature(ctx.secrets.webhook_secret, request.body, header):
            raise WebhookVerificationError("bad_signature")

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        items = msgspec.json.decode(request.body, type=list[_Status])
        return [
            DeliveryStatusEvent(
                event_id=item.event_id,
                provider_message_id=item.message_id,
                status=_STATES.get(item.status, "failed"),  # type: ignore[arg-type]
                occurred_at=datetime.fromtimestamp(item.ts, UTC),
                error_code=item.error_code,
            )
            for item in items
        ]


@hookimpl
def register_channels(register: Any) -> None:
    register(AcmeSms())
