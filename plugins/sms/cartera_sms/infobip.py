"""Infobip SMS (API v3), as in ``protocols.md`` section 2.2.

Send: ``POST {base_url}/sms/3/messages`` with ``Authorization: App <api key>`` and a JSON
body ``{"messages": [{"sender", "destinations": [{"to", "messageId"}], "content":
{"text"}, "webhooks": {"delivery": {"url", "intermediateReport"}, "contentType",
"callbackData"}}]}``; the answer lists ``messages[].messageId`` with a status group
(``PENDING`` = accepted). We set ``destinations[].messageId`` to our outbox id (the
correlation key) and repeat it in ``callbackData``.

Webhooks: delivery reports and inbound SMS are both ``{"results": [...]}``; a report item
has ``status.groupName`` (``PENDING``/``DELIVERED``/``UNDELIVERABLE``/``EXPIRED``/
``REJECTED``) and ``error``; an inbound item has ``from``/``to``/``text``. Infobip signs
neither, so the webhook is authenticated with a shared secret (see ``webhook_auth``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import msgspec
from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    ConnectionCheck,
    DeliveryState,
    DeliveryStatusEvent,
    InboundMessage,
    OutboundMessage,
    Price,
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

from ._common import received_at, redact, sms_content, with_query

__all__ = [
    "BALANCE_PATH",
    "SEND_PATH",
    "TOKEN_PARAM",
    "InfobipSmsConfig",
    "InfobipSmsProvider",
    "InfobipSmsSecrets",
    "build_payload",
    "classify_error",
    "delivery_url",
]

SEND_PATH = "/sms/3/messages"
BALANCE_PATH = "/account/1/balance"
#: Query parameter carrying the shared secret in ``webhook_auth="url_token"`` mode.
TOKEN_PARAM = "cartera_token"

WebhookAuth = Literal["basic", "header", "url_token"]

_GROUPS: dict[str, DeliveryState] = {
    "PENDING": "queued",
    "DELIVERED": "delivered",
    "UNDELIVERABLE": "undeliverable",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}
#: ``PENDING`` statuses meaning the message already left Infobip for the operator.
_PENDING_SENT = frozenset({"PENDING_ENROUTE", "PENDING_WAITING_DELIVERY"})
_FINAL_FAILURE_GROUPS = frozenset({"REJECTED", "UNDELIVERABLE", "EXPIRED"})


class InfobipSmsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret Infobip settings.

    ``base_url``: your account's personal base URL (``https://xxxxx.api.infobip.com``).
    ``sender``: default sender id (``SmsContent.sender`` wins; empty = Infobip's default).
    ``delivery_reports``: ask for delivery reports at the integration's webhook URL;
    ``intermediate_reports`` adds ``PENDING`` updates. ``validity_period_hours`` is sent
    as ``options.validityPeriod`` when set.

    Webhook authentication (Infobip does not sign webhooks), with ``webhook_secret``:

    * ``basic`` (default): HTTP Basic ``webhook_username:webhook_secret``. The delivery URL
      we send carries the credentials in its userinfo (``https://user:secret@host/...``);
      for inbound SMS configure the same credentials on the number's forwarding URL.
    * ``header``: header ``webhook_header`` must equal the secret (custom header set in
      Infobip's webhook/subscription settings).
    * ``url_token``: query parameter ``cartera_token`` must equal the secret; the plugin
      adds it to the delivery URL, add it yourself to the inbound forwarding URL.
    """

    base_url: str = "https://api.infobip.com"
    sender: str = ""
    delivery_reports: bool = True
    intermediate_reports: bool = False
    validity_period_hours: int | None = None
    webhook_auth: WebhookAuth = "basic"
    webhook_username: str = "infobip"
    webhook_header: str = "X-Cartera-Webhook-Auth"
    timeout: float = 15.0


class InfobipSmsSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``api_key`` (sent as ``Authorization: App <key>``) and ``webhook_secret`` (the
    shared secret that authenticates Infobip's webhook calls)."""

    api_key: str = ""
    webhook_secret: str = ""


def _digits(number: str) -> str:
    """Infobip addresses are international numbers without ``+`` (``41793026727``)."""
    return number.strip().removeprefix("+").removeprefix("00") if number else number


def _e164(address: str) -> str:
    """An inbound MSISDN as E.164 (``+41793026727``); short codes are left alone."""
    return f"+{address}" if address.isdigit() and len(address) > 6 else address


def delivery_url(webhook_url: str, config: InfobipSmsConfig, secret: str) -> str:
    """The delivery-report URL to send, carrying the webhook credentials when needed."""
    if config.webhook_auth == "url_token" and secret:
        return with_query(webhook_url, {TOKEN_PARAM: secret})
    if config.webhook_auth == "basic" and secret:
        parts = urlsplit(webhook_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        userinfo = f"{quote(config.webhook_username, safe='')}:{quote(secret, safe='')}"
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))
    return webhook_url


def build_payload(
    message: OutboundMessage, text: str, sender: str | None, ctx: ProviderContext[Any, Any]
) -> dict[str, Any]:
    """The ``/sms/3/messages`` body for one message to one destination."""
    config: InfobipSmsConfig = ctx.config
    item: dict[str, Any] = {}
    if sender or config.sender:
        item["sender"] = sender or config.sender
    item["destinations"] = [{"to": _digits(message.to), "messageId": message.message_id}]
    item["content"] = {"text": text}
    if config.validity_period_hours is not None:
        item["options"] = {
            "validityPeriod": {"amount": config.validity_period_hours, "timeUnit": "HOURS"}
        }
    if config.delivery_reports and ctx.webhook_url:
        item["webhooks"] = {
            "delivery": {
                "url": delivery_url(ctx.webhook_url, config, ctx.secrets.webhook_secret),
                "intermediateReport": config.intermediate_reports,
            },
            "contentType": "application/json",
            "callbackData": message.message_id,
        }
    return {"messages": [item]}


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """Error id and text: ``requestError.serviceException`` or the newer
    ``{errorCode, description}`` envelope; tolerant of any body."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    exception = body.get("requestError", {})
    if isinstance(exception, dict):
        service = exception.get("serviceException") or exception.get("policyException")
        if isinstance(service, dict):
            return (str(service.get("messageId") or "") or None), str(service.get("text") or "")
    if body.get("errorCode"):
        return str(body["errorCode"]), str(body.get("description") or "")
    return None, ""


def classify_error(response: httpx.Response) -> SendFailure:
    """Map a non-2xx Infobip answer to a :class:`SendFailure`."""
    status = response.status_code
    error_id, text = _error_body(response)
    code = error_id or str(status)
    reason = redact(text) if text else f"infobip http {status}"
    if status == 429:
        return SendFailure(
            kind="rate_limited",
            code=code,
            reason=reason,
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500 or status == 408:
        return SendFailure(kind="retryable", code=code, reason=reason)
    return SendFailure(kind="permanent", code=code, reason=reason)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _price(item: dict[str, Any]) -> Price | None:
    """What Infobip charged for the message, at its precision: ``price.pricePerMessage``
    (per SMS part) times ``messageCount`` (the parts it was split into) when given."""
    price = item.get("price")
    if not isinstance(price, dict) or not price.get("currency"):
        return None
    amount = price.get("pricePerMessage")
    if not isinstance(amount, int | float | str) or isinstance(amount, bool):
        return None
    count = item.get("messageCount")
    parts = count if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1
    try:  # JSON numbers arrive as floats: their shortest repr is what Infobip wrote
        return Price.of(str(Decimal(str(amount)) * parts), str(price["currency"]).upper())
    except (ValueError, TypeError, ArithmeticError):
        return None


#: Handset errors (Infobip error group 1, ``permanent: true``) saying the number itself
#: cannot receive SMS: unknown, unidentified or illegal subscriber, no SMS service, barred.
#: A report carrying one suppresses the number for SMS (``hard_bounce``); transient handset
#: errors (absent subscriber, memory full) do not.
SUPPRESSING_ERRORS: dict[str, SuppressionReason] = {
    "EC_UNKNOWN_SUBSCRIBER": "hard_bounce",  # 1
    "EC_UNIDENTIFIED_SUBSCRIBER": "hard_bounce",  # 5
    "EC_ILLEGAL_SUBSCRIBER": "hard_bounce",  # 9
    "EC_TELESERVICE_NOT_PROVISIONED": "hard_bounce",  # 11
    "EC_CALL_BARRED": "hard_bounce",  # 13
}
_SUPPRESSING_IDS = {1: "EC_UNKNOWN_SUBSCRIBER", 5: "EC_UNIDENTIFIED_SUBSCRIBER",
                    9: "EC_ILLEGAL_SUBSCRIBER", 11: "EC_TELESERVICE_NOT_PROVISIONED",
                    13: "EC_CALL_BARRED"}
_HANDSET_ERRORS = 1


def _suppression(error: dict[str, Any]) -> SuppressionReason | None:
    """The suppression a report's ``error`` object means (by name, else by id within the
    handset-error group); ``None`` unless Infobip also marks it permanent (when it says)."""
    if not error or error.get("permanent") is False:
        return None
    name = str(error.get("name") or "")
    if name not in SUPPRESSING_ERRORS and error.get("groupId") == _HANDSET_ERRORS:
        name = _SUPPRESSING_IDS.get(error.get("id"), name)
    return SUPPRESSING_ERRORS.get(name)


def _report(item: dict[str, Any], when: datetime) -> DeliveryStatusEvent | None:
    status = item.get("status")
    message_id = item.get("messageId")
    if not isinstance(status, dict) or not message_id:
        return None
    group = str(status.get("groupName") or "").upper()
    name = str(status.get("name") or group)
    state = delivery_state(group, _GROUPS)  # "unknown" for a group Infobip adds later
    if group == "PENDING" and name in _PENDING_SENT:
        state = "sent"
    error = item.get("error") if isinstance(item.get("error"), dict) else {}
    error_code = error_reason = None
    if error and (error.get("id") not in (0, None) or str(error.get("groupName")) != "OK"):
        error_code = str(error.get("name") or error.get("id"))
        error_reason = str(error.get("description") or "")[:500] or None
    elif group in _FINAL_FAILURE_GROUPS:
        error_code = name
        error_reason = str(status.get("description") or "")[:500] or None
    occurred = _timestamp(item.get("doneAt")) or _timestamp(item.get("sentAt")) or when
    callback = item.get("callbackData")
    price = _price(item)
    return DeliveryStatusEvent(
        event_id=f"{message_id}:{name}",
        provider_message_id=str(message_id),
        status=state,
        provider_status=name,
        occurred_at=occurred,
        message_id=str(callback) if callback else None,
        error_code=error_code,
        error_reason=error_reason,
        cost=price.to_money() if price is not None else None,
        price=price,
        suppress=_suppression(error) if state in ("undeliverable", "rejected") else None,
    )


def _inbound(item: dict[str, Any], when: datetime) -> InboundMessage | None:
    message_id = item.get("messageId")
    sender = item.get("from")
    if not message_id or not sender:
        return None
    text = item.get("text")
    if text is None:
        text = item.get("cleanText")
    return InboundMessage(
        event_id=f"{message_id}:received",
        provider_message_id=str(message_id),
        from_address=_e164(str(sender)),
        to_address=str(item.get("to") or ""),
        occurred_at=_timestamp(item.get("receivedAt")) or when,
        text=str(text) if text is not None else None,
    )


class InfobipSmsProvider(BaseChannelProvider):
    """Infobip SMS API v3."""

    name = "infobip_sms"
    channel = "sms"
    Config = InfobipSmsConfig
    Secrets = InfobipSmsSecrets

    def _client(self, ctx: ProviderContext[Any, Any]) -> httpx.AsyncClient:
        config: InfobipSmsConfig = ctx.config
        return ctx.http(
            config.base_url.rstrip("/"),
            headers={"Authorization": f"App {ctx.secrets.api_key}", "Accept": "application/json"},
            timeout=config.timeout,
        )

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        checked = sms_content(message)
        if isinstance(checked, SendFailure):
            return checked
        payload = build_payload(message, checked.text, checked.sender, ctx)
        # No Idempotency-Key header: Infobip declares none, and the key would make the SDK
        # transport re-send this POST after a 5xx (a duplicate SMS).
        try:
            async with self._client(ctx) as client:
                response = await client.post(SEND_PATH, json=payload)
        except httpx.TransportError as exc:
            ctx.logger.warning("infobip transport error: message_id=%s error=%s",
                               message.message_id, type(exc).__name__)  # fmt: skip
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        if not 200 <= response.status_code < 300:
            failure = classify_error(response)
            ctx.logger.warning("infobip rejected: message_id=%s status=%d code=%s",
                               message.message_id, response.status_code, failure.code)  # fmt: skip
            return failure
        try:
            first = response.json()["messages"][0]
            provider_id = str(first["messageId"])
            status = first.get("status") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            ctx.logger.warning("infobip 2xx without messageId: message_id=%s", message.message_id)
            return SendFailure(
                kind="retryable", code="bad_response", reason="infobip answered without messageId"
            )
        group = str(status.get("groupName") or "").upper()
        if group in _FINAL_FAILURE_GROUPS:
            code = str(status.get("name") or group)
            ctx.logger.warning("infobip refused: message_id=%s status=%s",
                               message.message_id, code)  # fmt: skip
            reason = redact(str(status.get("description") or group.lower()))
            return SendFailure(kind="permanent", code=code, reason=reason)
        details = first.get("details") or {}
        count = details.get("messageCount") if isinstance(details, dict) else None
        ctx.logger.info("infobip accepted: message_id=%s provider_id=%s",
                        message.message_id, provider_id)  # fmt: skip
        return Sent(
            provider_message_id=provider_id,
            segments=count if isinstance(count, int) and not isinstance(count, bool) else None,
        )

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        config: InfobipSmsConfig = ctx.config
        secret = ctx.secrets.webhook_secret
        if config.webhook_auth == "url_token":
            presented = request.query_param(TOKEN_PARAM)
        elif config.webhook_auth == "header":
            presented = request.header(config.webhook_header)
        else:
            presented = _basic_password(request.header("Authorization"), config.webhook_username)
        if not presented:
            raise WebhookVerificationError("missing_credentials", "webhook credentials absent")
        if not secret:
            raise WebhookVerificationError("not_configured", "no webhook secret configured")
        if not signatures.constant_time_equals(presented, secret):
            raise WebhookVerificationError("bad_credentials", "webhook credentials mismatch")

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        """Delivery reports and inbound messages in body order; repeated items dropped,
        unknown or malformed items ignored."""
        body = msgspec.json.decode(request.body)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            return []
        when = received_at(request, ctx)
        events: list[ChannelEvent] = []
        seen: set[str] = set()
        for item in results:
            if not isinstance(item, dict):
                continue
            event: ChannelEvent | None
            event = _report(item, when) if "status" in item else _inbound(item, when)
            if event is None or event.event_id in seen:
                continue
            seen.add(event.event_id)
            events.append(event)
        return events

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """``GET /account/1/balance`` with the API key."""
        try:
            async with self._client(ctx) as client:
                response = await client.get(BALANCE_PATH)
        except httpx.TransportError as exc:
            return ConnectionCheck(ok=False, detail=type(exc).__name__, code="unreachable")
        if response.status_code in (401, 403):
            return ConnectionCheck(ok=False, detail="authentication failed", code="auth_failed")
        if response.status_code != 200:
            error_id, _ = _error_body(response)
            return ConnectionCheck(
                ok=False,
                detail=f"infobip http {response.status_code}",
                code=error_id or str(response.status_code),
            )
        try:
            body = response.json()
            detail = f"balance {body['balance']} {body['currency']}"
        except (ValueError, KeyError, TypeError):
            detail = "API key valid"
        return ConnectionCheck(ok=True, detail=detail, code="ok")


def _basic_password(header: str | None, username: str) -> str | None:
    """The password of an ``Authorization: Basic`` header whose user is ``username``."""
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    if not sep or not signatures.constant_time_equals(user, username):
        return None
    return password
