"""The WhatsApp Business Cloud API channel provider."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    ChannelKind,
    ConnectionCheck,
    DeliveryState,
    DeliveryStatusEvent,
    InboundMessage,
    OutboundMessage,
    PermanentError,
    ProviderContext,
    SendFailure,
    SendResult,
    Sent,
    WebhookRequest,
    WebhookResponse,
    WebhookVerificationError,
    WhatsAppTemplateContent,
    WhatsAppTextContent,
    delivery_state,
    signatures,
)
from cartera_sdk.http import parse_retry_after

from . import _wire

__all__ = [
    "CUSTOMER_SERVICE_WINDOW",
    "LAST_INBOUND_AT_KEY",
    "WINDOW_OPEN_KEY",
    "WhatsAppCloud",
    "WhatsAppConfig",
    "WhatsAppSecrets",
    "window_open",
]

#: The customer-service window opened (and refreshed) by each inbound message.
CUSTOMER_SERVICE_WINDOW = timedelta(hours=24)
#: ``OutboundMessage.metadata`` key: ISO 8601 instant (with offset) of the debtor's last
#: inbound WhatsApp message.
LAST_INBOUND_AT_KEY = "last_inbound_at"
#: ``OutboundMessage.metadata`` key: ``"true"``/``"false"`` when the host already knows.
WINDOW_OPEN_KEY = "conversation_window_open"

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})
_STATUS_MAP: dict[str, DeliveryState] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "played": "read",  # voice messages: played implies read
    "failed": "failed",
}

GraphVersion = Annotated[str, msgspec.Meta(pattern=r"^v\d+\.\d+$")]
NumericId = Annotated[str, msgspec.Meta(pattern=r"^\d+$")]
HttpUrl = Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]


class WhatsAppConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret settings of one WhatsApp Business phone number."""

    phone_number_id: NumericId
    graph_api_version: GraphVersion = "v25.0"
    waba_id: NumericId | None = None
    base_url: HttpUrl = "https://graph.facebook.com"


class WhatsAppSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Credentials: a (system-user) access token, the Meta app secret, the verify token."""

    access_token: str = ""
    app_secret: str = ""
    verify_token: str = ""


def window_open(message: OutboundMessage, now: datetime) -> bool | None:
    """Whether the 24 h customer-service window is open, from the message metadata.

    ``True``/``False`` when the metadata tells (``conversation_window_open`` and/or
    ``last_inbound_at``; if either says closed, it is closed), ``None`` when unknown.
    """
    states: list[bool] = []
    flag = message.metadata.get(WINDOW_OPEN_KEY)
    if flag is not None:
        value = flag.strip().lower()
        if value in _TRUE:
            states.append(True)
        elif value in _FALSE:
            states.append(False)
    raw = message.metadata.get(LAST_INBOUND_AT_KEY)
    if raw:
        try:
            at = datetime.fromisoformat(raw.strip())
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            states.append(now - at < CUSTOMER_SERVICE_WINDOW)
    if False in states:
        return False
    return True if states else None


def _timestamp(value: str | int) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)


def _e164(number: str | None) -> str:
    """WhatsApp ids are digits without ``+``; the host speaks E.164."""
    if number and number.isdigit():
        return "+" + number
    return number or ""


class WhatsAppCloud(BaseChannelProvider):
    """WhatsApp Business Cloud API (Meta Graph API) for one business phone number."""

    name: ClassVar[str] = "whatsapp"
    channel: ClassVar[ChannelKind] = "whatsapp"
    Config: ClassVar[type[msgspec.Struct]] = WhatsAppConfig
    Secrets: ClassVar[type[msgspec.Struct]] = WhatsAppSecrets

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _settings(ctx: ProviderContext[Any, Any]) -> tuple[WhatsAppConfig, WhatsAppSecrets]:
        config, secrets = ctx.config, ctx.secrets
        if not isinstance(config, WhatsAppConfig) or not isinstance(secrets, WhatsAppSecrets):
            raise TypeError("ctx.config/ctx.secrets must be WhatsAppConfig/WhatsAppSecrets")
        return config, secrets

    @staticmethod
    def _client(
        ctx: ProviderContext[Any, Any], config: WhatsAppConfig, secrets: WhatsAppSecrets
    ) -> httpx.AsyncClient:
        return ctx.http(
            config.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {secrets.access_token}"},
        )

    # ------------------------------------------------------------------ send

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        config, secrets = self._settings(ctx)
        content = message.content
        if not isinstance(content, WhatsAppTemplateContent | WhatsAppTextContent):
            return SendFailure(
                kind="permanent",
                code="unsupported_content",
                reason="WhatsApp sends templates or free-form text only",
            )
        if (
            isinstance(content, WhatsAppTextContent)
            and window_open(message, ctx.clock.now()) is False
        ):
            return SendFailure(
                kind="permanent",
                code="outside_customer_service_window",
                reason="free-form text needs an inbound message in the last 24 h; "
                "send an approved template instead",
            )
        if not message.to.strip():
            return SendFailure(kind="permanent", code="invalid_recipient", reason="empty to")
        if not secrets.access_token:
            return SendFailure(
                kind="permanent", code="not_configured", reason="access_token is not set"
            )
        body = msgspec.json.encode(
            _wire.send_body(message.to, content, callback_data=message.message_id)
        )
        path = f"/{config.graph_api_version}/{config.phone_number_id}/messages"
        try:
            async with self._client(ctx, config, secrets) as client:
                response = await client.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
        except httpx.TransportError as exc:
            ctx.logger.warning(
                "whatsapp send transport failure",
                extra={"message_id": message.message_id, "error": type(exc).__name__},
            )
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        if response.is_success:
            return self._accepted(response, message, ctx)
        return self._failed(response, message, ctx)

    @staticmethod
    def _accepted(
        response: httpx.Response, message: OutboundMessage, ctx: ProviderContext[Any, Any]
    ) -> SendResult:
        try:
            decoded = msgspec.json.decode(response.content, type=_wire.SendResponse)
        except (msgspec.DecodeError, msgspec.ValidationError):
            decoded = _wire.SendResponse()
        if not decoded.messages or not decoded.messages[0].id:
            # Accepted but unreadable: re-sending could duplicate, so do not retry.
            return SendFailure(
                kind="permanent",
                code="invalid_response",
                reason=f"HTTP {response.status_code} without messages[0].id",
            )
        wamid = decoded.messages[0].id
        ctx.logger.info(
            "whatsapp message accepted",
            extra={"message_id": message.message_id, "wamid": wamid},
        )
        return Sent(provider_message_id=wamid)

    @staticmethod
    def _failed(
        response: httpx.Response, message: OutboundMessage, ctx: ProviderContext[Any, Any]
    ) -> SendFailure:
        error = _wire.decode_error(response.content)
        kind, code, reason, default_wait = _wire.classify(response.status_code, error)
        retry_after: float | None = None
        if kind != "permanent":
            retry_after = parse_retry_after(
                response.headers.get("Retry-After"), now=ctx.clock.now()
            )
            if retry_after is None:
                retry_after = default_wait
        ctx.logger.warning(
            "whatsapp send failed",
            extra={
                "message_id": message.message_id,
                "http_status": response.status_code,
                "code": code,
                "kind": kind,
                "fbtrace_id": error.fbtrace_id if error else None,
            },
        )
        return SendFailure(kind=kind, code=code, reason=reason, retry_after_seconds=retry_after,
                           suppress=_wire.suppression(code) if kind == "permanent" else None)

    # ------------------------------------------------------------------ webhooks

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        _, secrets = self._settings(ctx)
        header = request.header("X-Hub-Signature-256")
        if not header:
            raise WebhookVerificationError("missing_signature", "no X-Hub-Signature-256 header")
        if not secrets.app_secret:
            raise WebhookVerificationError("not_configured", "app_secret is not set")
        if not signatures.verify_meta_signature(secrets.app_secret, request.body, header.strip()):
            raise WebhookVerificationError("bad_signature", "X-Hub-Signature-256 does not match")

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        config, _ = self._settings(ctx)
        try:
            envelope = msgspec.json.decode(request.body, type=_wire.WebhookEnvelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise PermanentError("malformed_webhook", "not a WhatsApp notification") from exc
        if envelope.object != "whatsapp_business_account":
            return []
        events: dict[str, ChannelEvent] = {}
        for entry in envelope.entry:
            for change in entry.changes:
                value = change.value
                if change.field != "messages" or value is None:
                    continue
                metadata = value.metadata or _wire.Metadata()
                if metadata.phone_number_id not in (None, config.phone_number_id):
                    continue  # another phone number of the same app/WABA
                for error in value.errors:
                    ctx.logger.warning(
                        "whatsapp system-level webhook error",
                        extra={"code": str(error.code), "title": error.title},
                    )
                for status in value.statuses:
                    try:
                        status_event = self._status_event(status)
                    except (ValueError, OverflowError, OSError):
                        self._skip(ctx, "status", status.id)
                        continue
                    if status_event is not None:
                        events.setdefault(status_event.event_id, status_event)
                for item in value.messages:
                    try:
                        inbound = self._inbound_event(item, metadata)
                    except (ValueError, OverflowError, OSError):
                        self._skip(ctx, "message", item.id)
                        continue
                    events.setdefault(inbound.event_id, inbound)
        return list(events.values())

    @staticmethod
    def _skip(ctx: ProviderContext[Any, Any], kind: str, wamid: str) -> None:
        ctx.logger.warning(
            "whatsapp webhook item skipped: bad timestamp", extra={"kind": kind, "wamid": wamid}
        )

    @staticmethod
    def _status_event(status: _wire.Status) -> DeliveryStatusEvent | None:
        state = delivery_state(status.status, _STATUS_MAP)  # "unknown" if Meta adds one
        error_code: str | None = None
        error_reason: str | None = None
        if status.errors:
            first = status.errors[0]
            error_code = None if first.code is None else str(first.code)
            text = first.title or first.message
            error_reason = _wire.redact(text) if text else None
        return DeliveryStatusEvent(
            event_id=f"{status.id}:{status.status}:{status.timestamp}",
            provider_message_id=status.id,
            status=state,
            provider_status=status.status,
            occurred_at=_timestamp(status.timestamp),
            message_id=status.biz_opaque_callback_data or None,
            error_code=error_code,
            error_reason=error_reason,
            suppress=_wire.suppression(error_code) if state == "failed" else None,
        )

    @staticmethod
    def _inbound_event(item: _wire.Message, metadata: _wire.Metadata) -> InboundMessage:
        text: str | None = None
        payload: str | None = None
        if item.text is not None:
            text = item.text.body
        elif item.button is not None:
            text, payload = item.button.text, item.button.payload
        elif item.interactive is not None:
            reply = item.interactive.button_reply or item.interactive.list_reply
            if reply is not None:
                text, payload = reply.title, reply.id
        else:
            media = item.image or item.video or item.document
            text = media.caption if media is not None else None
        return InboundMessage(
            event_id=item.id,
            provider_message_id=item.id,
            from_address=_e164(item.from_),
            to_address=_e164(metadata.display_phone_number) or (metadata.phone_number_id or ""),
            occurred_at=_timestamp(item.timestamp),
            text=text,
            button_payload=payload,
            in_reply_to=item.context.id if item.context is not None else None,
        )

    async def handshake(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> WebhookResponse | None:
        """Answer Meta's ``GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..``."""
        if request.method.upper() != "GET":
            return None
        mode = request.query_param("hub.mode")
        if mode is None:
            return None
        _, secrets = self._settings(ctx)
        token = request.query_param("hub.verify_token") or ""
        challenge = request.query_param("hub.challenge")
        if (
            mode != "subscribe"
            or challenge is None
            or not secrets.verify_token
            or not signatures.constant_time_equals(token, secrets.verify_token)
        ):
            ctx.logger.warning("whatsapp webhook handshake refused")
            return WebhookResponse(status=403, body=b"verification failed")
        return WebhookResponse(status=200, body=challenge.encode("utf-8"))

    # ------------------------------------------------------------------ connection

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """``GET /{version}/{phone_number_id}``: the phone number object, with the token."""
        config, secrets = self._settings(ctx)
        if not secrets.access_token:
            return ConnectionCheck(
                ok=False, detail="access_token is not set", code="not_configured"
            )
        try:
            async with self._client(ctx, config, secrets) as client:
                response = await client.get(f"/{config.graph_api_version}/{config.phone_number_id}")
        except httpx.TransportError as exc:
            return ConnectionCheck(ok=False, detail=type(exc).__name__, code="transport")
        if not response.is_success:
            error = _wire.decode_error(response.content)
            _, code, reason, _ = _wire.classify(response.status_code, error)
            return ConnectionCheck(ok=False, detail=reason, code=code)
        try:
            data = msgspec.json.decode(response.content)
        except msgspec.DecodeError:
            data = None
        if not isinstance(data, dict):
            return ConnectionCheck(ok=False, detail="unexpected response", code="invalid_response")
        parts = [str(data[k]) for k in ("verified_name", "display_phone_number") if data.get(k)]
        if data.get("quality_rating"):
            parts.append(f"quality {data['quality_rating']}")
        return ConnectionCheck(ok=True, detail=" ".join(parts) or "phone number reachable")
