"""The WhatsApp Cloud API wire format: request bodies, responses, errors, webhooks.

Everything here is pure (no I/O) so it can be tested byte for byte. Shapes follow the
protocol reference (``protocols.md`` section 1): send body syntax (1.1), text (1.2),
template object (1.3), send response (1.4), error envelope (1.5), webhook envelopes
(1.10, 1.11).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from cartera_sdk import (
    CurrencyParameter,
    DateTimeParameter,
    FailureKind,
    QuickReplyButton,
    SuppressionReason,
    TemplateButton,
    TemplateParameter,
    TextParameter,
    UrlButton,
    WhatsAppTemplateContent,
    WhatsAppTextContent,
)

__all__ = [
    "GraphError",
    "WebhookEnvelope",
    "classify",
    "decode_error",
    "redact",
    "send_body",
    "template_object",
    "text_object",
]

# ------------------------------------------------------------------------------ send body


def _parameter(parameter: TemplateParameter) -> dict[str, Any]:
    if isinstance(parameter, TextParameter):
        out: dict[str, Any] = {"type": "text", "text": parameter.text}
    elif isinstance(parameter, CurrencyParameter):
        out = {
            "type": "currency",
            "currency": {
                "fallback_value": parameter.fallback_value,
                "code": parameter.amount.currency,
                "amount_1000": parameter.amount_1000,
            },
        }
    elif isinstance(parameter, DateTimeParameter):
        out = {"type": "date_time", "date_time": {"fallback_value": parameter.fallback_value}}
    else:  # pragma: no cover - exhaustive over TemplateParameter
        raise TypeError(f"unsupported template parameter {type(parameter).__name__}")
    if parameter.name is not None:
        # Named-parameter templates: Meta's ``parameter_name`` (not in protocols.md 1.3).
        out["parameter_name"] = parameter.name
    return out


def _button(button: TemplateButton) -> dict[str, Any]:
    if isinstance(button, UrlButton):
        parameter: dict[str, Any] = {"type": "text", "text": button.text}
        sub_type = "url"
    elif isinstance(button, QuickReplyButton):
        parameter = {"type": "payload", "payload": button.payload}
        sub_type = "quick_reply"
    else:  # pragma: no cover - exhaustive over TemplateButton
        raise TypeError(f"unsupported template button {type(button).__name__}")
    # ``index`` is a string on the wire ("0", "1"...).
    return {
        "type": "button",
        "sub_type": sub_type,
        "index": str(button.index),
        "parameters": [parameter],
    }


def template_object(content: WhatsAppTemplateContent) -> dict[str, Any]:
    """The ``template`` object of a template send (protocols.md 1.3)."""
    components: list[dict[str, Any]] = []
    if content.header_parameters:
        components.append(
            {"type": "header", "parameters": [_parameter(p) for p in content.header_parameters]}
        )
    if content.body_parameters:
        components.append(
            {"type": "body", "parameters": [_parameter(p) for p in content.body_parameters]}
        )
    components.extend(_button(b) for b in sorted(content.buttons, key=lambda b: b.index))
    template: dict[str, Any] = {"name": content.name, "language": {"code": content.language}}
    if components:
        template["components"] = components
    return template


def text_object(content: WhatsAppTextContent) -> dict[str, Any]:
    """The ``text`` object of a free-form send (protocols.md 1.2)."""
    return {"preview_url": content.preview_url, "body": content.text}


def send_body(
    to: str,
    content: WhatsAppTemplateContent | WhatsAppTextContent,
    *,
    callback_data: str | None,
) -> dict[str, Any]:
    """The JSON body for ``POST /{version}/{phone_number_id}/messages``.

    ``callback_data`` goes into ``biz_opaque_callback_data``, which Meta echoes in status
    webhooks: we put the host's outbox ``message_id`` there.
    """
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
    }
    if isinstance(content, WhatsAppTemplateContent):
        body["type"] = "template"
        body["template"] = template_object(content)
    else:
        body["type"] = "text"
        body["text"] = text_object(content)
    if callback_data:
        body["biz_opaque_callback_data"] = callback_data
    return body


class SentMessage(msgspec.Struct, kw_only=True):
    id: str
    message_status: str | None = None


class SendResponse(msgspec.Struct, kw_only=True):
    """The 200 answer of a send (protocols.md 1.4); unknown fields ignored."""

    messages: list[SentMessage] = msgspec.field(default_factory=list)


# ------------------------------------------------------------------------------ errors


class ErrorData(msgspec.Struct, kw_only=True):
    details: str | None = None


class GraphError(msgspec.Struct, kw_only=True):
    """``error`` of the Graph error envelope (protocols.md 1.5)."""

    code: int | str | None = None
    message: str | None = None
    type: str | None = None
    error_subcode: int | None = None
    error_data: ErrorData | None = None
    fbtrace_id: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: GraphError


def decode_error(body: bytes) -> GraphError | None:
    """The ``error`` object of a Graph error response, or ``None`` if it is not one."""
    try:
        return msgspec.json.decode(body, type=_ErrorEnvelope).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


#: Throttling codes: back off and retry later (protocols.md 1.5/1.6, Meta error codes).
RATE_LIMITED_CODES: dict[int, str] = {
    4: "application request limit reached",
    80007: "WhatsApp Business Account rate limit reached",
    130429: "Cloud API throughput reached",
    131048: "spam rate limit hit",
    131056: "pair rate limit: too many messages to this recipient",
}
#: Default wait when the response carries no ``Retry-After`` (heuristics, see README).
DEFAULT_RETRY_AFTER: dict[int, float] = {
    130429: 1.0,  # per-second throughput (80 mps default)
    131056: 6.0,  # pair rate ~1 message / 6 s per recipient [S]
}
#: Transient server-side codes: retry with backoff.
RETRYABLE_CODES: dict[int, str] = {
    1: "API unknown error",
    2: "API service temporarily unavailable",
    131000: "something went wrong",
    131016: "service unavailable",
    131057: "account in maintenance mode",
    133004: "server temporarily unavailable",
}
#: Codes that will not go away by retrying the same request.
PERMANENT_CODES: dict[int, str] = {
    0: "authentication exception",
    3: "capability or permission issue",
    10: "permission denied",
    100: "invalid parameter",
    190: "access token expired or invalid",
    200: "permission denied",
    368: "temporarily blocked for policy violations",
    470: "re-engagement message (outside the 24 h window)",
    131005: "access denied",
    131008: "required parameter missing",
    131009: "parameter value is not valid",
    131021: "recipient cannot be the sender",
    131026: "message undeliverable",
    131031: "business account locked",
    131042: "business eligibility payment issue",
    131047: "re-engagement message: the 24 h customer-service window is closed",
    131049: "not delivered to maintain healthy ecosystem engagement",
    131050: "user stopped marketing messages",
    131051: "unsupported message type",
    131052: "media download error",
    131053: "media upload error",
    132000: "template parameter count mismatch",
    132001: "template does not exist",
    132005: "translated template text too long",
    132007: "template format character policy violated",
    132012: "template parameter format mismatch",
    132015: "template is paused",
    132016: "template is disabled",
    133010: "phone number not registered",
}

#: Failures meaning the recipient's number cannot receive WhatsApp messages at all:
#: 131026 "message undeliverable" (not a WhatsApp number, or the user has not accepted
#: WhatsApp's terms). A send or status failing with one suppresses the number for
#: WhatsApp (``hard_bounce``). 131050 (the user stopped *marketing* messages) and 131049
#: (ecosystem engagement) are not suppressions: the number still takes other templates.
SUPPRESSING_CODES: dict[int, SuppressionReason] = {
    131026: "hard_bounce",
}


def suppression(code: int | str | None) -> SuppressionReason | None:
    """The suppression a Graph error code means, if any (:data:`SUPPRESSING_CODES`)."""
    number = _int_code(code)
    return SUPPRESSING_CODES.get(number) if number is not None else None


_TABLES: tuple[tuple[dict[int, str], FailureKind], ...] = (
    (RATE_LIMITED_CODES, "rate_limited"),
    (RETRYABLE_CODES, "retryable"),
    (PERMANENT_CODES, "permanent"),
)

_PHONE_LIKE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def redact(text: str, limit: int = 200) -> str:
    """Provider text made safe for ``SendFailure.reason``: no phone numbers, one line, short."""
    cleaned = _PHONE_LIKE.sub("<redacted>", " ".join(text.split()))
    return cleaned[:limit] or "no detail"


def _int_code(code: int | str | None) -> int | None:
    if isinstance(code, int):
        return code
    if isinstance(code, str) and code.strip().isdigit():
        return int(code.strip())
    return None


def classify(
    http_status: int, error: GraphError | None
) -> tuple[FailureKind, str, str, float | None]:
    """``(kind, code, reason, default_retry_after)`` for a non-2xx Graph response.

    The Graph ``error.code`` decides when it is known (Meta: "build error handling on
    ``code``", and HTTP statuses are not uniform per code); otherwise the HTTP status
    does: 429 is rate-limited, 5xx and 408 retryable, any other 4xx permanent.
    """
    code = _int_code(error.code) if error is not None else None
    details = ""
    if error is not None:
        details = (error.error_data.details if error.error_data else None) or error.message or ""
    if code is not None:
        for table, table_kind in _TABLES:
            if code in table:
                reason = redact(f"{table[code]}: {details}" if details else table[code])
                return table_kind, str(code), reason, DEFAULT_RETRY_AFTER.get(code)
    if http_status == 429:
        kind: FailureKind = "rate_limited"
    elif http_status >= 500 or http_status == 408:
        kind = "retryable"
    else:
        kind = "permanent"
    text = redact(details) if details else f"HTTP {http_status}"
    return kind, str(code if code is not None else http_status), text, None


# ------------------------------------------------------------------------------ webhooks


class WebhookErrorData(msgspec.Struct, kw_only=True):
    details: str | None = None


class WebhookError(msgspec.Struct, kw_only=True):
    code: int | str | None = None
    title: str | None = None
    message: str | None = None
    error_data: WebhookErrorData | None = None


class Status(msgspec.Struct, kw_only=True):
    """One ``value.statuses[]`` item (protocols.md 1.10)."""

    id: str
    status: str
    timestamp: str | int
    recipient_id: str | None = None
    biz_opaque_callback_data: str | None = None
    errors: list[WebhookError] = msgspec.field(default_factory=list)


class TextBody(msgspec.Struct, kw_only=True):
    body: str = ""


class ButtonBody(msgspec.Struct, kw_only=True):
    payload: str | None = None
    text: str | None = None


class Reply(msgspec.Struct, kw_only=True):
    id: str | None = None
    title: str | None = None


class Interactive(msgspec.Struct, kw_only=True):
    type: str | None = None
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Media(msgspec.Struct, kw_only=True):
    id: str | None = None
    caption: str | None = None


class Context(msgspec.Struct, kw_only=True):
    id: str | None = None


class Message(msgspec.Struct, kw_only=True):
    """One ``value.messages[]`` item (protocols.md 1.11)."""

    id: str
    timestamp: str | int
    type: str = "unknown"
    # ``from`` is a Python keyword: renamed on the wire.
    from_: str = msgspec.field(default="", name="from")
    text: TextBody | None = None
    button: ButtonBody | None = None
    interactive: Interactive | None = None
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None
    context: Context | None = None


class Metadata(msgspec.Struct, kw_only=True):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class Value(msgspec.Struct, kw_only=True):
    messaging_product: str | None = None
    metadata: Metadata | None = None
    statuses: list[Status] = msgspec.field(default_factory=list)
    messages: list[Message] = msgspec.field(default_factory=list)
    errors: list[WebhookError] = msgspec.field(default_factory=list)


class Change(msgspec.Struct, kw_only=True):
    field: str = ""
    value: Value | None = None


class Entry(msgspec.Struct, kw_only=True):
    id: str | None = None
    changes: list[Change] = msgspec.field(default_factory=list)


class WebhookEnvelope(msgspec.Struct, kw_only=True):
    """A notification POST body: ``{"object": ..., "entry": [...]}``."""

    object: str = ""
    entry: list[Entry] = msgspec.field(default_factory=list)
