"""Pieces shared by the Twilio and Infobip providers: content checks, redaction, URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cartera_sdk import OutboundMessage, ProviderContext, SendFailure, SmsContent, WebhookRequest

__all__ = [
    "MESSAGE_ID_PARAM",
    "received_at",
    "redact",
    "sms_content",
    "with_query",
]

#: Query parameter carrying ``OutboundMessage.message_id`` on Twilio's ``StatusCallback``.
MESSAGE_ID_PARAM = "cartera_message_id"

# Phone numbers and other long digit runs are PII in provider error texts.
_DIGITS = re.compile(r"\+?\d[\d\s().-]{4,}\d")


def redact(text: str, limit: int = 200) -> str:
    """A provider reply made safe for ``SendFailure.reason``: no phone numbers, short."""
    cleaned = _DIGITS.sub("<redacted>", " ".join(str(text).split()))
    return cleaned[:limit] or "no detail"


def sms_content(message: OutboundMessage) -> SmsContent | SendFailure:
    """The message's :class:`SmsContent`, or the permanent failure explaining why not.

    Segmenting and length policy are the host's business; an empty (or blank) text and a
    missing recipient are rejected here, before any network call.
    """
    content = message.content
    if not isinstance(content, SmsContent):
        return SendFailure(
            kind="permanent", code="unsupported_content", reason="only sms content is supported"
        )
    if not content.text or not content.text.strip():
        return SendFailure(kind="permanent", code="empty_text", reason="sms text is empty")
    if not message.to.strip():
        return SendFailure(kind="permanent", code="invalid_recipient", reason="no recipient")
    return content


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to its query (existing parameters kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def received_at(request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> datetime:
    """When the host received ``request`` (its stamp, else the context clock); always aware."""
    when = request.received_at or ctx.clock.now()
    if when.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return when
