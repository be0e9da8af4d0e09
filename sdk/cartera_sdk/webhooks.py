"""Inbound webhook request/response as the host hands them to a plugin.

The host keeps the raw body bytes exactly as received: signatures are verified over those
bytes, never over re-serialised JSON. ``url`` is the *public* URL the provider called
(scheme, host, path and query), which Twilio signs.

A provider declares how its webhooks arrive (``webhook_encodings``: ``"json"`` and
``"form"`` POST bodies, ``"query"`` for events carried by a GET's query string, as Vonage
sends receipts by default) and where their signature lives (``webhook_signature``, a
:class:`WebhookSignature`). The host routes a GET with a query string to the delivery path
when the provider declares ``"query"`` and its ``handshake`` does not claim the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec

__all__ = [
    "DEFAULT_WEBHOOK_ENCODINGS",
    "SignatureLocation",
    "WebhookEncoding",
    "WebhookRequest",
    "WebhookResponse",
    "WebhookSignature",
]

#: How a provider's webhook carries its events: a JSON body, a form-encoded body, or the
#: query string of a GET (or of a bodiless POST).
WebhookEncoding = Literal["json", "form", "query"]

#: What a provider that declares nothing receives: POSTed JSON or form bodies.
DEFAULT_WEBHOOK_ENCODINGS: tuple[WebhookEncoding, ...] = ("json", "form")

#: Where a webhook's signature lives: an HTTP ``header``, a ``query`` parameter, a ``form``
#: field of the body, or a field of the JSON ``body``.
SignatureLocation = Literal["header", "query", "form", "body"]


class WebhookSignature(msgspec.Struct, frozen=True, kw_only=True):
    """Where a provider's webhook signature lives, so tools can strip or tamper with it.

    ``name`` is the header name (``X-Hub-Signature-256``), the parameter name (Vonage's
    ``sig``) or the top-level JSON field; ``covers`` lists what the signature protects
    (``"body"``, ``"query"``, ``"form"``, ``"url"``), which the conformance suite tampers with.

    .. versionadded:: 1.0
    """

    location: SignatureLocation
    name: str
    covers: tuple[str, ...] = ("body",)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a WebhookSignature needs the name of its header or field")


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

    def params(self) -> dict[str, str]:
        """The flat parameters of a query-string or form webhook: the query string's, then
        (for a form-encoded body) the body's, first value of each name; the body wins.

        .. versionadded:: 1.0
        """
        merged = {k: v[0] for k, v in self.query().items() if v}
        content_type = (self.header("content-type") or "").lower()
        if self.body and content_type.startswith("application/x-www-form-urlencoded"):
            merged.update({k: v[0] for k, v in self.form().items() if v})
        return merged

    def without_query_param(self, name: str) -> WebhookRequest:
        """Copy with every query parameter ``name`` removed (used to strip a signature).

        .. versionadded:: 1.0
        """
        parts = urlsplit(self.url)
        kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != name]
        return msgspec.structs.replace(
            self, url=urlunsplit(parts._replace(query=urlencode(kept)))
        )

    def with_url(self, url: str) -> WebhookRequest:
        """Copy with another URL (used by the conformance suite to tamper with a query).

        .. versionadded:: 1.0
        """
        return msgspec.structs.replace(self, url=url)

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
