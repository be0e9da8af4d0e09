"""A real (if tiny) channel plugin used by Cartera's tests.

``fixture_sms`` speaks a small JSON API: ``GET /ping`` with ``Authorization: Bearer <key>``
answers 200 when the key is right. Webhooks are JSON ``{"events": [...]}`` signed with
``X-Fixture-Signature: sha256=<hmac of the raw body under webhook_secret>``; the GET
handshake echoes ``challenge`` when ``verify_token`` matches. ``fixture_slow`` never
answers its connection test, to prove the host's timeout. ``fixture_query_sms`` receives
Vonage-style webhooks: receipts and inbound SMS as GET query strings signed with ``sig``
(sorted-parameter HMAC-SHA256 under ``webhook_secret``). It imports only ``cartera_sdk``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
from cartera_sdk import (
    Allow,
    BaseChannelProvider,
    BaseCompliancePack,
    ChannelEvent,
    ConnectionCheck,
    ContactVerdict,
    Defer,
    DeliveryStatusEvent,
    Deny,
    Holiday,
    InboundFragment,
    InboundMessage,
    OutboundMessage,
    PlannedContact,
    Price,
    ProviderContext,
    Reason,
    RuleDescription,
    SendFailure,
    SendResult,
    Sent,
    SmsContent,
    WebhookRequest,
    WebhookResponse,
    WebhookSignature,
    WebhookVerificationError,
    delivery_state,
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


class _Inbound(msgspec.Struct, frozen=True):
    id: str
    from_: str = msgspec.field(name="from")
    to: str = ""
    text: str = ""
    ts: int = 0


class _Payload(msgspec.Struct, frozen=True):
    events: list[_Event] = []
    inbound: list[_Inbound] = []


class FixtureSms(BaseChannelProvider):
    name = "fixture_sms"
    channel = "sms"
    Config = FixtureConfig
    Secrets = FixtureSecrets

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        if not isinstance(message.content, SmsContent):
            return SendFailure(kind="permanent", code="unsupported_content", reason="sms only")
        headers = {"Authorization": f"Bearer {ctx.secrets.api_key}",
                   "Idempotency-Key": message.idempotency_key}
        body = {"to": message.to, "from": ctx.config.sender, "text": message.content.text,
                "ref": message.message_id}
        try:
            async with ctx.http(ctx.config.base_url, headers=headers) as client:
                response = await client.post("/messages", json=body)
        except httpx.TransportError as exc:
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        if response.status_code == 201:
            return Sent(provider_message_id=str(response.json()["id"]))
        if response.status_code == 429:
            return SendFailure(kind="rate_limited", code="429", reason="slow down",
                               retry_after_seconds=float(response.headers.get("Retry-After", 1)))
        kind = "retryable" if response.status_code >= 500 else "permanent"
        return SendFailure(kind=kind, code=str(response.status_code), reason=response.text[:200])

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
        events: list[ChannelEvent] = [
            DeliveryStatusEvent(event_id=e.id, provider_message_id=e.message_id,
                                status=e.status,  # type: ignore[arg-type]
                                occurred_at=datetime.fromtimestamp(e.ts, UTC))
            for e in payload.events]
        events += [InboundMessage(event_id=m.id, provider_message_id=m.id, from_address=m.from_,
                                  to_address=m.to, text=m.text,
                                  occurred_at=datetime.fromtimestamp(m.ts, UTC))
                   for m in payload.inbound]
        return events

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
        # Like real providers, the detail quotes the answer: the host must not echo it.
        return ConnectionCheck(ok=False, detail=f"HTTP {response.status_code}: {response.text}",
                               code="rejected")


class FixtureSlow(FixtureSms):
    name = "fixture_slow"

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


class FixtureQuerySms(FixtureSms):
    """Receipts ``?messageId=..&status=..&err-code=..&message-timestamp=..&sig=..`` and
    inbound SMS ``?msisdn=..&to=..&messageId=..&text=..&sig=..`` on GET."""

    name = "fixture_query_sms"
    webhook_encodings = ("query",)
    webhook_signature = WebhookSignature(location="query", name="sig", covers=("query",))
    STATES: Any = {"delivered": "delivered", "expired": "expired", "rejected": "rejected",
                   "buffered": "buffered", "accepted": "accepted", "failed": "failed"}

    async def verify_webhook(self, request: WebhookRequest,
                             ctx: ProviderContext[Any, Any]) -> None:
        params = request.params()
        if "sig" not in params:
            raise WebhookVerificationError("missing_signature")
        if not signatures.verify_sorted_params_signature(ctx.secrets.webhook_secret, params,
                                                         params["sig"]):
            raise WebhookVerificationError("bad_signature")

    def parse_webhook(self, request: WebhookRequest,
                      ctx: ProviderContext[Any, Any]) -> list[ChannelEvent]:
        params = request.params()
        at = datetime.fromisoformat(params.get("message-timestamp", "2026-01-01T00:00:00+00:00"))
        if "text" in params:
            fragment = None
            if "concat-ref" in params:
                fragment = InboundFragment(reference=params["concat-ref"],
                                           index=int(params["concat-part"]),
                                           count=int(params["concat-total"]))
            return [InboundMessage(event_id=f"in:{params['messageId']}",
                                   provider_message_id=params["messageId"],
                                   from_address=params.get("msisdn", ""),
                                   to_address=params.get("to", ""), text=params["text"],
                                   occurred_at=at, fragment=fragment)]
        raw = params.get("status", "")
        return [DeliveryStatusEvent(
            event_id=f"{params['messageId']}:{raw}", provider_message_id=params["messageId"],
            status=delivery_state(raw, self.STATES), provider_status=raw, occurred_at=at,
            error_code=params.get("err-code") or None, message_id=params.get("client-ref"),
            price=Price.of(params["price"], params["currency"]) if "price" in params else None)]


class FixtureArgentina(BaseCompliancePack):
    """A toy compliance pack for AR: calls denied, no contact outside 08:00-20:00 local."""

    name = "fixture_ar"
    country = "AR"

    def judge(self, contact: PlannedContact, config: Any) -> ContactVerdict:
        if contact.channel == "voice":
            return Deny(reasons=[Reason(code="calls_forbidden", message="no calls",
                                        rule_ref="fixture 1")])
        local = contact.local_planned_at
        if not 8 <= local.hour < 20:
            start = local.replace(hour=8, minute=0, second=0, microsecond=0)
            if local.hour >= 20:
                start += timedelta(days=1)
            return Defer(until=start, reasons=[Reason(code="outside_hours",
                                                      message="08:00-20:00 only",
                                                      rule_ref="fixture 2")])
        return Allow(reasons=[Reason(code="within_hours", message="inside allowed hours")])

    def calendar(self, year: int, subdivision: str | None = None) -> list[Holiday]:
        return []

    def rules(self) -> list[RuleDescription]:
        return [RuleDescription(code="calls_forbidden", title="No calls",
                                description="Calls are denied."),
                RuleDescription(code="outside_hours", title="Hours",
                                description="Contact only 08:00-20:00 local time.")]


@hookimpl
def register_channels(register: Any) -> None:
    register(FixtureSms())
    register(FixtureSlow())
    register(FixtureQuerySms())


@hookimpl
def register_compliance_packs(register: Any) -> None:
    register(FixtureArgentina())


#: Events this plugin observed (tests read it; a real plugin would queue its own work).
OBSERVED: list[Any] = []


@hookimpl
async def on_payment_received(event: Any) -> None:
    OBSERVED.append(event)


@hookimpl
def on_interaction_recorded(event: Any) -> None:
    OBSERVED.append(event)
