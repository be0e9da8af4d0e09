"""Inbound webhook request/response as the host hands them to a plugin.

The host keeps the raw body bytes exactly as received: signatures are verified over those
bytes, never over re-serialised JSON. ``url`` is the *public* URL the provider called
(scheme, host, path and query), which Twilio signs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

__all__ = ["WebhookRequest", "WebhookResponse"]


class WebhookRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An inbound HTTP request addressed to one integration's webhook route."""

    method: str
    url: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    body: bytes = b""
    received_at: datetime | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    def query(self) -> dict[str, list[str]]:
        """Query-string parameters of ``url`` (every value kept, blank values included)."""
        return parse_qs(urlsplit(self.url).query, keep_blank_values=True)

    def query_param(self, name: str, default: str | None = None) -> str | None:
        """First value of query parameter ``name``."""
        values = self.query().get(name)
        return values[0] if values else default

    def form(self) -> dict[str, list[str]]:
        """Decode an ``application/x-www-form-urlencoded`` body (Twilio callbacks)."""
        return parse_qs(self.body.decode("utf-8"), keep_blank_values=True)

    def json(self) -> Any:
        """Decode a JSON body (raises ``msgspec.DecodeError`` on malformed JSON)."""
        return msgspec.json.decode(self.body)

    def with_body(self, body: bytes) -> WebhookRequest:
        """Copy with another body (used by the conformance suite to tamper)."""
        return msgspec.structs.replace(self, body=body)

    def with_headers(self, headers: Mapping[str, str]) -> WebhookRequest:
        """Copy with other headers."""
        return msgspec.structs.replace(self, headers=dict(headers))


class WebhookResponse(msgspec.Struct, frozen=True, kw_only=True):
    """What the host must answer to the provider (e.g. the WhatsApp ``hub.challenge``)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = msgspec.field(default_factory=dict)
