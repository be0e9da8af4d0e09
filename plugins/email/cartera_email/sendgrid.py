"""SendGrid (Twilio SendGrid) v3 Mail Send and the Signed Event Webhook.

Send: ``POST {base_url}/v3/mail/send`` with ``Authorization: Bearer <api key>``; 202 with
an ``X-Message-Id`` header. Our outbox id travels in ``custom_args.cartera_message_id``
and comes back in every event. Events: a JSON array, each with ``sg_event_id`` (the
de-duplication id) and ``sg_message_id`` (``<X-Message-Id>.filter...``). Signature:
ECDSA P-256/SHA-256 over ``timestamp + raw body`` (headers
``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    ConnectionCheck,
    DeliveryState,
    DeliveryStatusEvent,
    EmailContent,
    OutboundMessage,
    ProviderContext,
    SendFailure,
    SendResult,
    Sent,
    SuppressionReason,
    WebhookRequest,
    WebhookVerificationError,
    delivery_state,
    signatures,
)
from cartera_sdk.http import parse_retry_after

from ._common import email_content, extra_headers, redact

__all__ = [
    "CUSTOM_ARG",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SendGridConfig",
    "SendGridProvider",
    "SendGridSecrets",
    "build_payload",
    "provider_id_from_sg_message_id",
]

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
#: The ``custom_args`` key carrying ``OutboundMessage.message_id``.
CUSTOM_ARG = "cartera_message_id"
SEND_PATH = "/v3/mail/send"
SCOPES_PATH = "/v3/scopes"
_MAX_CATEGORIES = 10


class SendGridConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret SendGrid settings.

    ``base_url`` (EU subusers: ``https://api.eu.sendgrid.com``); ``from_address`` /
    ``from_name`` are defaults when the content has none; ``categories`` are added to every
    message; ``webhook_tolerance_seconds`` bounds the signed timestamp's age (0 disables the
    check, de-duplication on ``sg_event_id`` still applies); ``sandbox_mode`` validates
    without delivering.
    """

    base_url: str = "https://api.sendgrid.com"
    from_address: str = ""
    from_name: str | None = None
    categories: list[str] = msgspec.field(default_factory=list)
    webhook_tolerance_seconds: float = 300.0
    sandbox_mode: bool = False
    list_unsubscribe_one_click: bool = True
    timeout: float = 15.0


class SendGridSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``api_key`` (needs the ``mail.send`` scope) and the Event Webhook verification key.

    ``webhook_public_key`` is the base64 SubjectPublicKeyInfo from Mail Settings (or a
    PEM). It is not secret in itself, but it is the trust anchor for inbound events, so it
    is stored write-only with the credentials.
    """

    api_key: str = ""
    webhook_public_key: str = ""


def _address(email: str, name: str | None = None) -> dict[str, str]:
    return {"email": email, "name": name} if name else {"email": email}


def build_payload(
    message: OutboundMessage, content: EmailContent, config: SendGridConfig
) -> dict[str, Any]:
    """The v3 mail/send body: one personalization, text/plain before text/html."""
    from_address = content.from_address or config.from_address
    from_name = content.from_name if content.from_name is not None else config.from_name
    seen = {message.to.lower()}
    cc = []
    for address in content.cc:  # SendGrid rejects an address repeated within a request
        if address.lower() not in seen:
            seen.add(address.lower())
            cc.append({"email": address})
    personalization: dict[str, Any] = {"to": [{"email": message.to}]}
    if cc:
        personalization["cc"] = cc
    parts = []
    if content.text is not None:
        parts.append({"type": "text/plain", "value": content.text})
    if content.html is not None:
        parts.append({"type": "text/html", "value": content.html})
    payload: dict[str, Any] = {
        "personalizations": [personalization],
        "from": _address(from_address, from_name),
        "subject": content.subject,
        "content": parts,
        "custom_args": {CUSTOM_ARG: message.message_id},
    }
    if content.reply_to:
        payload["reply_to"] = {"email": content.reply_to}
    categories = list(config.categories)
    if message.metadata.get("category"):
        categories.append(message.metadata["category"])
    categories = list(dict.fromkeys(c for c in categories if c))[:_MAX_CATEGORIES]
    if categories:
        payload["categories"] = categories
    headers = extra_headers(message, content, one_click=config.list_unsubscribe_one_click)
    if headers:
        payload["headers"] = headers
    if config.sandbox_mode:
        payload["mail_settings"] = {"sandbox_mode": {"enable": True}}
    return payload


def _error_summary(response: httpx.Response) -> str:
    """First ``{"errors": [{"field", "message"}]}`` entry, redacted; tolerant of any body."""
    try:
        body = response.json()
    except ValueError:
        return f"http {response.status_code}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        field = first.get("field")
        text = str(first.get("message") or "error")
        return redact(f"{field}: {text}" if field else text)
    return f"http {response.status_code}"


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    seconds = parse_retry_after(response.headers.get("Retry-After"), now=now)
    if seconds is not None:
        return seconds
    reset = response.headers.get("X-RateLimit-Reset")  # epoch seconds, SendGrid's own header
    if reset and reset.isdigit():
        return max(0.0, int(reset) - now.timestamp())
    return None


def provider_id_from_sg_message_id(sg_message_id: str) -> str:
    """``X-Message-Id`` from an event's ``sg_message_id`` (``<x-message-id>.filter...``)."""
    head, sep, _ = sg_message_id.partition(".filter")
    return head if sep else sg_message_id


def _smtp_id_local(smtp_id: str) -> str:
    return smtp_id.strip().strip("<>").partition("@")[0]


_STATES: dict[str, DeliveryState] = {
    # delivery events
    "processed": "queued",
    "deferred": "deferred",
    "delivered": "delivered",
    "bounce": "bounced",
    "dropped": "failed",
    # engagement events
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "resubscribed",
}
"""Every documented Event Webhook type; any other becomes an ``unknown`` event (with the
raw type in ``provider_status``), never dropped."""


def _our_message_id(item: dict[str, Any]) -> str | None:
    value = item.get(CUSTOM_ARG)
    if value is None:  # placement in events is not pinned down: accept nested forms too
        for key in ("custom_args", "unique_args"):
            nested = item.get(key)
            if isinstance(nested, dict) and nested.get(CUSTOM_ARG) is not None:
                value = nested[CUSTOM_ARG]
                break
    return str(value) if value is not None else None


def _event(item: dict[str, Any]) -> DeliveryStatusEvent | None:
    raw_state = str(item.get("event", ""))
    state = delivery_state(raw_state, _STATES)
    timestamp = item.get("timestamp")
    if not raw_state or not isinstance(timestamp, int | float) or isinstance(timestamp, bool):
        return None
    sg_message_id = str(item.get("sg_message_id") or "")
    provider_id = provider_id_from_sg_message_id(sg_message_id) if sg_message_id else ""
    if not provider_id and item.get("smtp-id"):
        provider_id = _smtp_id_local(str(item["smtp-id"]))
    if not provider_id:
        return None
    event_id = item.get("sg_event_id")
    if not event_id:  # deterministic composite when SendGrid omits it
        raw = f"{sg_message_id}|{item.get('event')}|{timestamp}|{item.get('email', '')}"
        event_id = "sgx-" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    error_code = None
    error_reason = None
    suppress = _suppression(item, state)
    if state in ("bounced", "failed", "deferred"):
        error_code = str(item["status"]) if item.get("status") else None
        if state == "bounced" and item.get("type") == "blocked":
            error_code = error_code or "blocked"
        text = item.get("reason") or item.get("response")
        error_reason = str(text)[:500] if text else None
    return DeliveryStatusEvent(
        event_id=str(event_id),
        provider_message_id=provider_id,
        status=state,
        occurred_at=datetime.fromtimestamp(float(timestamp), UTC),
        message_id=_our_message_id(item),
        error_code=error_code,
        error_reason=error_reason,
        suppress=suppress,
        provider_status=raw_state,
    )


#: SendGrid's reasons for dropping a message to an address on its own suppression lists.
_DROP_SUPPRESSIONS: dict[str, SuppressionReason] = {
    "bounced address": "hard_bounce",
    "spam reporting address": "spam_complaint",
}


def _suppression(item: dict[str, Any], state: DeliveryState) -> SuppressionReason | None:
    """A hard bounce (``bounce`` of type bounce with a 5.x.x status), a spam report, or a
    drop because SendGrid already suppresses the address; a ``blocked`` bounce is not one
    (the receiving server refused the sender, not the address)."""
    if state == "complained":
        return "spam_complaint"
    if state == "bounced" and item.get("type", "bounce") == "bounce":
        return "hard_bounce" if str(item.get("status") or "").startswith("5.") else None
    if state == "failed":
        return _DROP_SUPPRESSIONS.get(str(item.get("reason") or "").strip().lower())
    return None


def _strict_public_key(value: str) -> bytes:
    """Decode the configured key strictly (base64 SPKI, optional PEM armour)."""
    text = "".join(
        line.strip() for line in value.strip().splitlines() if not line.startswith("-----")
    )
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("bad_public_key", "verification key is not base64") from exc


class SendGridProvider(BaseChannelProvider):
    """SendGrid v3 Mail Send with the Signed Event Webhook."""

    name = "sendgrid"
    channel = "email"
    Config = SendGridConfig
    Secrets = SendGridSecrets

    def _client(self, ctx: ProviderContext[Any, Any]) -> httpx.AsyncClient:
        config: SendGridConfig = ctx.config
        return ctx.http(
            config.base_url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {ctx.secrets.api_key}",
                "Accept": "application/json",
            },
            timeout=config.timeout,
        )

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        checked = email_content(message)
        if isinstance(checked, SendFailure):
            return checked
        config: SendGridConfig = ctx.config
        if not (checked.from_address or config.from_address):
            return SendFailure(kind="permanent", code="missing_from", reason="no from address")
        payload = build_payload(message, checked, config)
        try:
            async with self._client(ctx) as client:
                response = await client.post(SEND_PATH, json=payload)
        except httpx.TransportError as exc:
            ctx.logger.warning(
                "sendgrid transport error: message_id=%s error=%s",
                message.message_id, type(exc).__name__,
            )  # fmt: skip
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        status = response.status_code
        if 200 <= status < 300:
            provider_id = response.headers.get("X-Message-Id")
            if not provider_id:
                ctx.logger.warning("sendgrid 2xx without X-Message-Id: message_id=%s",
                                   message.message_id)  # fmt: skip
                provider_id = message.message_id  # events still map back via custom_args
            ctx.logger.info("sendgrid accepted: message_id=%s provider_id=%s",
                            message.message_id, provider_id)  # fmt: skip
            return Sent(provider_message_id=provider_id)
        reason = _error_summary(response)
        ctx.logger.warning("sendgrid rejected: message_id=%s status=%d", message.message_id,
                           status)  # fmt: skip
        if status == 429:
            return SendFailure(
                kind="rate_limited",
                code="429",
                reason=reason,
                retry_after_seconds=_retry_after(response, ctx.clock.now()),
            )
        if status >= 500 or status == 408:
            return SendFailure(kind="retryable", code=str(status), reason=reason)
        return SendFailure(kind="permanent", code=str(status), reason=reason)

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        signature = request.header(SIGNATURE_HEADER)
        timestamp = request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            raise WebhookVerificationError("missing_signature", "signature headers absent")
        key = ctx.secrets.webhook_public_key
        if not key:
            raise WebhookVerificationError("not_configured", "no webhook verification key")
        der = _strict_public_key(key)
        canonical = base64.b64encode(der).decode("ascii")
        if not signatures.sendgrid_verify(canonical, request.body, signature, timestamp):
            raise WebhookVerificationError("bad_signature", "event webhook signature mismatch")
        tolerance = ctx.config.webhook_tolerance_seconds
        if tolerance > 0:
            signatures.check_timestamp(timestamp, ctx.clock.now(), tolerance=tolerance)

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        """Known events in body order; duplicates within a batch (same ``sg_event_id``)
        are dropped, unknown event types and malformed items ignored."""
        items = msgspec.json.decode(request.body)
        if not isinstance(items, list):
            raise ValueError("a SendGrid event webhook body is a JSON array")
        events: list[ChannelEvent] = []
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                continue
            event = _event(item)
            if event is None or event.event_id in seen:
                continue
            seen.add(event.event_id)
            events.append(event)
        return events

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """``GET /v3/scopes``: the key authenticates and carries ``mail.send``."""
        try:
            async with self._client(ctx) as client:
                response = await client.get(SCOPES_PATH)
        except httpx.TransportError as exc:
            return ConnectionCheck(ok=False, detail=type(exc).__name__, code="unreachable")
        if response.status_code in (401, 403):
            return ConnectionCheck(ok=False, detail=_error_summary(response), code="auth_failed")
        if response.status_code != 200:
            return ConnectionCheck(
                ok=False, detail=_error_summary(response), code=str(response.status_code)
            )
        try:
            scopes = response.json().get("scopes", [])
        except (ValueError, AttributeError):
            scopes = []
        if "mail.send" not in scopes:
            return ConnectionCheck(
                ok=False, detail="the API key lacks the mail.send scope", code="missing_scope"
            )
        return ConnectionCheck(ok=True, detail="API key valid with mail.send", code="ok")
