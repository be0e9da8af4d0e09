"""Twilio Programmable Messaging (SMS), as in ``protocols.md`` section 2.1.

Send: ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded
(``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``), HTTP Basic
auth (Account SID + auth token, or API key SID + secret), 201 with the message ``sid``.
Errors are JSON ``{code, message, more_info, status}``.

Webhooks: status callbacks (``MessageSid``, ``MessageStatus``, ``ErrorCode``) and inbound
messages (``MessageSid``, ``From``, ``To``, ``Body``), both form-encoded and signed with
``X-Twilio-Signature`` = base64 HMAC-SHA1(account auth token, public URL + sorted params).
Our outbox id travels in the ``StatusCallback`` query (``cartera_message_id``), which is
part of the signed URL.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

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
    WebhookRequest,
    WebhookVerificationError,
    delivery_state,
    signatures,
)
from cartera_sdk.http import parse_retry_after

from ._common import MESSAGE_ID_PARAM, received_at, redact, sms_content, with_query

__all__ = [
    "API_VERSION",
    "SIGNATURE_HEADER",
    "TwilioSmsConfig",
    "TwilioSmsProvider",
    "TwilioSmsSecrets",
    "build_form",
    "classify_error",
]

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"

#: Twilio error codes that retrying cannot fix, with a PII-free reason.
PERMANENT_CODES: dict[int, str] = {
    20003: "authentication failed",
    20404: "resource not found (check the account SID)",
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled",
    21602: "message body is required",
    21603: "a 'From' number or messaging service is required",
    21604: "a 'To' number is required",
    21606: "the 'From' number cannot send SMS",
    21608: "unverified 'To' number (trial account)",
    21610: "recipient unsubscribed (replied STOP)",
    21612: "the 'To' number is not reachable from this sender",
    21614: "the 'To' number is not a mobile number",
    21617: "message body exceeds 1600 characters",
}
#: Codes meaning the recipient opted out (STOP): the number must not get SMS from us again.
OPT_OUT_CODES = frozenset({21610})
RATE_LIMIT_CODES = frozenset({20429, 14107})
RETRYABLE_CODES = frozenset({20500, 20503})

#: Delivery-side ``ErrorCode`` values seen in status callbacks.
DELIVERY_ERRORS: dict[str, str] = {
    "30001": "queue overflow",
    "30002": "account suspended",
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "message filtered by the carrier",
    "30008": "unknown error",
}

_STATES: dict[str, DeliveryState] = {
    "accepted": "queued",
    "scheduled": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "partially_delivered": "delivered",
    "read": "read",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
_INBOUND_STATES = frozenset({"received", "receiving"})


class TwilioSmsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret Twilio settings.

    ``account_sid`` (``AC...``) is in the API path. Sender: ``SmsContent.sender`` wins,
    then ``messaging_service_sid`` (``MG...``), then ``from_number`` (E.164 or alphanumeric
    id). ``status_callback``: send ``StatusCallback`` (the integration's webhook URL).
    ``public_base_url`` (``https://api.example.com``): scheme and host Twilio called, when
    they differ from the host's ``request.url`` (the signature covers the full URL). The
    Cartera host already hands providers the public URL (``CARTERA_PUBLIC_BASE_URL``), so
    this per-integration override is only for hosts that do not.
    ``validity_period`` (1-36000 s) is sent as ``ValidityPeriod`` when set.
    """

    base_url: str = "https://api.twilio.com"
    account_sid: str = ""
    from_number: str | None = None
    messaging_service_sid: str | None = None
    status_callback: bool = True
    public_base_url: str | None = None
    validity_period: int | None = None
    timeout: float = 15.0


class TwilioSmsSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``auth_token``: the account's auth token. It verifies ``X-Twilio-Signature`` (Twilio
    signs with the account token even when the API is called with an API key) and is the
    Basic-auth password unless an API key pair is given: ``api_key_sid`` (``SK...``) and
    ``api_key_secret``."""

    auth_token: str = ""
    api_key_sid: str = ""
    api_key_secret: str = ""


def _auth(config: TwilioSmsConfig, secrets: TwilioSmsSecrets) -> tuple[str, str]:
    if secrets.api_key_sid and secrets.api_key_secret:
        return (secrets.api_key_sid, secrets.api_key_secret)
    return (config.account_sid, secrets.auth_token)


def build_form(
    message: OutboundMessage, text: str, sender: str | None, ctx: ProviderContext[Any, Any]
) -> dict[str, str]:
    """The form fields of the Messages create call (exact Twilio names)."""
    config: TwilioSmsConfig = ctx.config
    form = {"To": message.to}
    if sender:
        form["From"] = sender
    elif config.messaging_service_sid:
        form["MessagingServiceSid"] = config.messaging_service_sid
    elif config.from_number:
        form["From"] = config.from_number
    form["Body"] = text
    if config.status_callback and ctx.webhook_url:
        form["StatusCallback"] = with_query(ctx.webhook_url, {MESSAGE_ID_PARAM: message.message_id})
    if config.validity_period is not None:
        form["ValidityPeriod"] = str(config.validity_period)
    return form


def _error_body(response: httpx.Response) -> tuple[int | None, str]:
    """Twilio ``code`` and ``message`` from an error response, tolerant of any body."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    message = body.get("message") or body.get("detail") or ""
    return (code if isinstance(code, int) and not isinstance(code, bool) else None), str(message)


def twilio_price(amount: Any, unit: Any) -> Price | None:
    """Twilio's ``price``/``price_unit`` (``"-0.00750"``, ``"USD"``: a charge, written
    negative; ``null`` until Twilio has priced the message) as a :class:`Price`."""
    if amount in (None, "") or not isinstance(unit, str) or not unit:
        return None
    try:
        return Price.of(str(abs(Decimal(str(amount)))), unit.upper())
    except (ValueError, TypeError, ArithmeticError):
        return None


def classify_error(response: httpx.Response) -> SendFailure:
    """Map a non-2xx Twilio answer to a :class:`SendFailure`."""
    status = response.status_code
    code, text = _error_body(response)
    code_str = str(code) if code is not None else str(status)
    if status == 429 or code in RATE_LIMIT_CODES:
        return SendFailure(
            kind="rate_limited",
            code=code_str,
            reason="twilio throttled the request",
            retry_after_seconds=parse_retry_after(response.headers.get("Retry-After")),
        )
    if code in PERMANENT_CODES:
        return SendFailure(kind="permanent", code=code_str, reason=PERMANENT_CODES[code],
                           suppress="carrier_opt_out" if code in OPT_OUT_CODES else None)
    if status >= 500 or status == 408 or code in RETRYABLE_CODES:
        return SendFailure(kind="retryable", code=code_str, reason=f"twilio http {status}")
    reason = redact(text) if text else f"twilio http {status}"
    return SendFailure(kind="permanent", code=code_str, reason=reason)


def public_url(request: WebhookRequest, config: TwilioSmsConfig) -> str:
    """The URL Twilio signed: ``request.url`` with ``public_base_url``'s scheme and host."""
    if not config.public_base_url:
        return request.url
    public = urlsplit(config.public_base_url)
    parts = urlsplit(request.url)
    return urlunsplit(parts._replace(scheme=public.scheme, netloc=public.netloc))


def _params(request: WebhookRequest) -> dict[str, list[str]]:
    if request.method.upper() == "GET":
        return request.query()
    content_type = (request.header("Content-Type") or "").lower()
    if content_type.startswith("application/json"):
        return {}
    return request.form()


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


class TwilioSmsProvider(BaseChannelProvider):
    """Twilio Programmable Messaging for SMS."""

    name = "twilio_sms"
    channel = "sms"
    Config = TwilioSmsConfig
    Secrets = TwilioSmsSecrets

    def _client(self, ctx: ProviderContext[Any, Any]) -> httpx.AsyncClient:
        config: TwilioSmsConfig = ctx.config
        return ctx.http(
            config.base_url.rstrip("/"),
            headers={"Accept": "application/json"},
            auth=_auth(config, ctx.secrets),
            timeout=config.timeout,
        )

    def _account_path(self, config: TwilioSmsConfig, suffix: str) -> str:
        return f"/{API_VERSION}/Accounts/{config.account_sid}{suffix}"

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        checked = sms_content(message)
        if isinstance(checked, SendFailure):
            return checked
        config: TwilioSmsConfig = ctx.config
        if not config.account_sid:
            return SendFailure(kind="permanent", code="not_configured", reason="no account SID")
        if not (checked.sender or config.messaging_service_sid or config.from_number):
            return SendFailure(kind="permanent", code="missing_sender", reason="no sender")
        form = build_form(message, checked.text, checked.sender, ctx)
        # No Idempotency-Key header: Twilio has no send idempotency, and the key would make
        # the SDK transport re-send this POST after a 5xx (a duplicate SMS).
        try:
            async with self._client(ctx) as client:
                response = await client.post(
                    self._account_path(config, "/Messages.json"), data=form
                )
        except httpx.TransportError as exc:
            ctx.logger.warning("twilio transport error: message_id=%s error=%s",
                               message.message_id, type(exc).__name__)  # fmt: skip
            return SendFailure(kind="retryable", code="transport", reason=type(exc).__name__)
        if response.status_code in (200, 201):
            try:
                body = response.json()
                sid = str(body["sid"])
            except (ValueError, KeyError, TypeError):
                ctx.logger.warning("twilio 2xx without sid: message_id=%s", message.message_id)
                return SendFailure(
                    kind="retryable", code="bad_response", reason="twilio answered without sid"
                )
            segments = body.get("num_segments")
            ctx.logger.info("twilio accepted: message_id=%s sid=%s", message.message_id, sid)
            price = twilio_price(body.get("price"), body.get("price_unit"))
            return Sent(
                provider_message_id=sid,
                segments=int(segments) if str(segments or "").isdigit() else None,
                price=price,
                cost=price.to_money() if price is not None else None,
            )
        failure = classify_error(response)
        ctx.logger.warning("twilio rejected: message_id=%s status=%d code=%s",
                           message.message_id, response.status_code, failure.code)  # fmt: skip
        return failure

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            raise WebhookVerificationError("missing_signature", "X-Twilio-Signature absent")
        token = ctx.secrets.auth_token
        if not token:
            raise WebhookVerificationError("not_configured", "no auth token to verify with")
        url = public_url(request, ctx.config)
        content_type = (request.header("Content-Type") or "").lower()
        if request.method.upper() != "GET" and content_type.startswith("application/json"):
            ok = signatures.twilio_verify_json(token, url, request.body, signature)
        else:
            params = None if request.method.upper() == "GET" else request.form()
            ok = signatures.twilio_verify(token, url, params, signature)
        if not ok:
            raise WebhookVerificationError("bad_signature", "X-Twilio-Signature mismatch")

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        """One status event or one inbound message per request; unknown shapes give []."""
        params = _params(request)
        sid = _first(params, "MessageSid") or _first(params, "SmsSid")
        if not sid:
            return []
        status = (_first(params, "MessageStatus") or _first(params, "SmsStatus") or "").lower()
        when = received_at(request, ctx)
        if status in _INBOUND_STATES or (not status and "Body" in params):
            count = _first(params, "NumMedia") or "0"
            media = [
                url
                for i in range(int(count) if count.isdigit() else 0)
                if (url := _first(params, f"MediaUrl{i}"))
            ]
            return [
                InboundMessage(
                    event_id=f"{sid}:received",
                    provider_message_id=sid,
                    from_address=_first(params, "From") or "",
                    to_address=_first(params, "To") or "",
                    occurred_at=when,
                    text=_first(params, "Body"),
                    button_payload=_first(params, "ButtonPayload"),
                    in_reply_to=_first(params, "OriginalRepliedMessageSid"),
                    media_urls=media,
                )
            ]
        state = delivery_state(status, _STATES)  # "unknown" for a status Twilio adds later
        error_code = _first(params, "ErrorCode") or None
        if status == "canceled":
            error_code = error_code or "canceled"
        return [
            DeliveryStatusEvent(
                event_id=f"{sid}:{status}",
                provider_message_id=sid,
                status=state,
                provider_status=status,
                occurred_at=when,
                message_id=request.query_param(MESSAGE_ID_PARAM),
                error_code=error_code,
                error_reason=DELIVERY_ERRORS.get(error_code or ""),
                suppress="carrier_opt_out"
                if error_code and error_code.isdigit() and int(error_code) in OPT_OUT_CODES
                else None,
            )
        ]

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """``GET /2010-04-01/Accounts/{AccountSid}.json``: credentials valid, account active."""
        config: TwilioSmsConfig = ctx.config
        if not config.account_sid:
            return ConnectionCheck(ok=False, detail="no account SID", code="not_configured")
        try:
            async with self._client(ctx) as client:
                response = await client.get(self._account_path(config, ".json"))
        except httpx.TransportError as exc:
            return ConnectionCheck(ok=False, detail=type(exc).__name__, code="unreachable")
        if response.status_code in (401, 403):
            return ConnectionCheck(ok=False, detail="authentication failed", code="auth_failed")
        if response.status_code != 200:
            code, _ = _error_body(response)
            return ConnectionCheck(
                ok=False,
                detail=f"twilio http {response.status_code}",
                code=str(code or response.status_code),
            )
        try:
            account_status = str(response.json().get("status", ""))
        except (ValueError, AttributeError):
            account_status = ""
        if account_status and account_status != "active":
            return ConnectionCheck(
                ok=False, detail=f"account is {account_status}", code="account_inactive"
            )
        return ConnectionCheck(ok=True, detail="credentials valid, account active", code="ok")
