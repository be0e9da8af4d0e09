"""Channel provider contract: send rendered messages, classify failures, parse webhooks.

A channel provider talks to one provider's wire protocol (WhatsApp Cloud API, Twilio,
Infobip, SMTP, SendGrid...). The host renders templates, enforces compliance and
persists an outbox record *before* calling :meth:`ChannelProvider.send`; the provider
puts ``OutboundMessage.message_id`` into the provider's correlation field
(``biz_opaque_callback_data``, ``StatusCallback`` query, ``callbackData``, ``custom_args``)
so delivery webhooks can be matched even when the provider never returned an id.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, get_args, runtime_checkable

import msgspec

from .context import ProviderContext
from .errors import FailureKind
from .integration import ConnectionCheck, NoConfig, NoSecrets
from .money import Money, Price
from .webhooks import (
    DEFAULT_WEBHOOK_ENCODINGS,
    WebhookEncoding,
    WebhookRequest,
    WebhookResponse,
    WebhookSignature,
)

__all__ = [
    "DELIVERY_STATES",
    "BaseChannelProvider",
    "ChannelEvent",
    "ChannelKind",
    "ChannelProvider",
    "Content",
    "CurrencyParameter",
    "DateTimeParameter",
    "DeliveryState",
    "DeliveryStatusEvent",
    "EmailContent",
    "InboundFragment",
    "InboundMessage",
    "LetterContent",
    "MessagePart",
    "OutboundMessage",
    "QuickReplyButton",
    "SendFailure",
    "SendResult",
    "Sent",
    "SmsContent",
    "SuppressionReason",
    "TemplateButton",
    "TemplateParameter",
    "TextParameter",
    "UrlButton",
    "VoiceContent",
    "WhatsAppTemplateContent",
    "WhatsAppTextContent",
    "delivery_state",
]

#: The kinds of channel a provider can implement.
ChannelKind = Literal["whatsapp", "sms", "email", "voice", "letter"]

# ---------------------------------------------------------------------------- content


class SmsContent(msgspec.Struct, frozen=True, kw_only=True, tag="sms", tag_field="type"):
    """A plain-text SMS. ``sender`` overrides the integration's default sender id."""

    text: str
    sender: str | None = None


class EmailContent(msgspec.Struct, frozen=True, kw_only=True, tag="email", tag_field="type"):
    """A rendered e-mail. At least one of ``text``/``html``; ``from_address`` is bare."""

    subject: str
    from_address: str
    text: str | None = None
    html: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    cc: list[str] = msgspec.field(default_factory=list)
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.text is None and self.html is None:
            raise ValueError("an email needs text or html")


class TextParameter(msgspec.Struct, frozen=True, kw_only=True, tag="text", tag_field="type"):
    """A text template parameter; ``name`` is set for named-parameter templates."""

    text: str
    name: str | None = None


class CurrencyParameter(
    msgspec.Struct, frozen=True, kw_only=True, tag="currency", tag_field="type"
):
    """A localisable amount. WhatsApp wants ``amount_1000`` = amount x 1000 and a fallback."""

    amount: Money
    fallback_value: str
    name: str | None = None

    @property
    def amount_1000(self) -> int:
        """The amount multiplied by 1000, as WhatsApp's ``currency.amount_1000`` expects."""
        return int(self.amount.amount * 1000)


class DateTimeParameter(
    msgspec.Struct, frozen=True, kw_only=True, tag="date_time", tag_field="type"
):
    """A date/time parameter, rendered by the provider from ``fallback_value``."""

    fallback_value: str
    name: str | None = None


TemplateParameter = TextParameter | CurrencyParameter | DateTimeParameter


class UrlButton(msgspec.Struct, frozen=True, kw_only=True, tag="url", tag_field="type"):
    """Dynamic suffix of the URL button at position ``index`` (0-based)."""

    index: int
    text: str


class QuickReplyButton(
    msgspec.Struct, frozen=True, kw_only=True, tag="quick_reply", tag_field="type"
):
    """Payload returned when the quick-reply button at ``index`` is pressed."""

    index: int
    payload: str


TemplateButton = UrlButton | QuickReplyButton


class WhatsAppTemplateContent(
    msgspec.Struct, frozen=True, kw_only=True, tag="whatsapp_template", tag_field="type"
):
    """An approved WhatsApp template with ordered parameters (required outside 24 h window)."""

    name: str
    language: str
    header_parameters: list[TemplateParameter] = msgspec.field(default_factory=list)
    body_parameters: list[TemplateParameter] = msgspec.field(default_factory=list)
    buttons: list[TemplateButton] = msgspec.field(default_factory=list)


class WhatsAppTextContent(
    msgspec.Struct, frozen=True, kw_only=True, tag="whatsapp_text", tag_field="type"
):
    """Free text, only valid inside the 24 h customer-service window."""

    text: str
    preview_url: bool = False


class VoiceContent(msgspec.Struct, frozen=True, kw_only=True, tag="voice", tag_field="type"):
    """A call: text to speak (``script``) in ``language``, or a recording URL."""

    script: str | None = None
    language: str = "es"
    audio_url: str | None = None


class LetterContent(msgspec.Struct, frozen=True, kw_only=True, tag="letter", tag_field="type"):
    """A postal letter: rendered HTML or a PDF URL, plus the postal address lines."""

    address_lines: list[str]
    country: str
    html: str | None = None
    pdf_url: str | None = None


Content = (
    SmsContent
    | EmailContent
    | WhatsAppTemplateContent
    | WhatsAppTextContent
    | VoiceContent
    | LetterContent
)


class OutboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A fully rendered message, ready for one provider.

    ``to`` is an E.164 number (sms, whatsapp, voice) or an e-mail address.
    ``message_id`` is the host's outbox id (correlate with it); ``idempotency_key`` is
    stable across retries of the same send.
    """

    message_id: str
    idempotency_key: str
    to: str
    content: Content
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


# ---------------------------------------------------------------------------- results

#: Why an address can no longer receive a channel, as a provider reports it:
#: ``hard_bounce`` (the mailbox or number does not exist: SMTP/SendGrid 5.x.x),
#: ``spam_complaint`` (the recipient reported the message as spam), ``carrier_opt_out``
#: (the recipient opted out at the carrier or provider, e.g. Twilio 21610 after STOP).
#: The host marks the contact point unusable for that channel; the gate then refuses it.
SuppressionReason = Literal["hard_bounce", "spam_complaint", "carrier_opt_out"]


class MessagePart(msgspec.Struct, frozen=True, kw_only=True):
    """One part of a long SMS the provider split (concatenated SMS).

    ``index`` is 1-based, ``count`` the number of parts, ``provider_message_id`` the id
    the provider gave this part (Vonage gives each part its own ``message-id``).

    .. versionadded:: 1.0
    """

    index: int
    count: int
    provider_message_id: str

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"part {self.index} of {self.count} is out of range")


class Sent(msgspec.Struct, frozen=True, kw_only=True, tag="sent", tag_field="result"):
    """The provider accepted the message. ``cost`` only when the provider reports it.

    For a long SMS split into several parts, ``parts`` lists each part the provider
    accepted with its own id (``provider_message_id`` is the first part's), and
    ``parts_rejected`` counts parts it refused: a partial acceptance is still ``Sent``
    (something reached the provider) but says so. ``price`` is the provider's charge at
    its own precision (1.0); ``cost`` keeps only whole minor units.
    """

    provider_message_id: str
    cost: Money | None = None
    segments: int | None = None
    price: Price | None = None
    parts: list[MessagePart] = msgspec.field(default_factory=list)
    parts_rejected: int = 0

    @property
    def partially_accepted(self) -> bool:
        """True when some parts of a long SMS were refused (``parts_rejected > 0``)."""
        return self.parts_rejected > 0

    def part_ids(self) -> list[str]:
        """The provider's id of every accepted part (just ``provider_message_id`` when the
        message went in one part)."""
        return [p.provider_message_id for p in self.parts] or [self.provider_message_id]


class SendFailure(msgspec.Struct, frozen=True, kw_only=True, tag="failed", tag_field="result"):
    """The provider did not accept the message, classified for the retry policy.

    ``code`` is the provider's error code as a string (e.g. WhatsApp ``131049``, Twilio
    ``21211``, HTTP ``429``); ``reason`` a short human text without secrets or PII.
    """

    kind: FailureKind
    code: str
    reason: str
    retry_after_seconds: float | None = None
    suppress: SuppressionReason | None = None
    """Set when the failure means the address must not be used for this channel again."""

    def __post_init__(self) -> None:
        if self.kind not in ("retryable", "permanent", "rate_limited"):
            raise ValueError(f"unknown failure kind {self.kind!r}")
        if not self.code:
            raise ValueError("a SendFailure needs a code")


SendResult = Sent | SendFailure

# ---------------------------------------------------------------------------- webhook events

#: Normalised delivery states. A late ``sent`` must never overwrite ``delivered``/``read``.
#: Since 1.0 also: ``accepted`` (the provider took it, not yet handed to a carrier),
#: ``buffered`` (the carrier holds it until the handset is reachable), ``expired`` (its
#: validity period ran out undelivered), ``rejected`` (the provider or carrier refused it:
#: blocked, invalid sender, filtered), ``undeliverable`` (the address cannot be reached:
#: unknown or barred number) and ``unknown`` (the provider said something the plugin does
#: not map; still an event, with the raw value in ``provider_status``).
#: Since 1.1 also: ``resubscribed`` (the recipient subscribed again to a list or group they
#: had left, SendGrid ``group_resubscribe``; recorded, it restores no consent by itself).
DeliveryState = Literal[
    "queued", "sent", "delivered", "read", "failed", "undelivered",
    "bounced", "deferred", "opened", "clicked", "complained", "unsubscribed",
    "accepted", "buffered", "expired", "rejected", "undeliverable", "unknown",
    "resubscribed",
]  # fmt: skip
DELIVERY_STATES: tuple[str, ...] = get_args(DeliveryState)


def delivery_state(raw: str, mapping: Mapping[str, DeliveryState]) -> DeliveryState:
    """``mapping[raw]`` (looked up as given, then lower-cased), else ``"unknown"``: a status
    the plugin does not know still produces an event (keep ``raw`` in ``provider_status``).

    .. versionadded:: 1.0
    """
    return mapping.get(raw) or mapping.get(raw.lower()) or "unknown"


class DeliveryStatusEvent(
    msgspec.Struct, frozen=True, kw_only=True, tag="delivery_status", tag_field="type"
):
    """A status update for a message we sent.

    ``event_id`` is stable across redeliveries of the same provider event (the host
    de-duplicates on it): use the provider's event id when it has one (``sg_event_id``),
    else a deterministic composite such as ``f"{wamid}:{status}:{timestamp}"``.
    ``occurred_at`` is the provider's own event time when it reports one (the host orders
    the interaction's timeline by it), else when the request was received.
    """

    event_id: str
    provider_message_id: str
    status: DeliveryState
    occurred_at: datetime
    message_id: str | None = None
    error_code: str | None = None
    error_reason: str | None = None
    cost: Money | None = None
    suppress: SuppressionReason | None = None
    """Set when the event means the address must not be used for this channel again
    (a hard bounce, a spam complaint, a carrier opt-out)."""
    provider_status: str | None = None
    """The provider's own status value exactly as received (``"DELIVRD"``, ``"expired"``),
    kept by the host next to the normalised ``status``. (1.0)"""
    price: Price | None = None
    """What the provider charged, at the provider's precision (``0.0333 EUR``); use it
    rather than ``cost``, which only holds amounts in whole minor units. (1.0)"""
    part: MessagePart | None = None
    """Which part of a long (concatenated) SMS this receipt is for; ``None`` for a
    message sent in one part. (1.0)"""


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True, tag="inbound", tag_field="type"):
    """A message from a debtor (reply, button press, e-mail reply)."""

    event_id: str
    provider_message_id: str
    from_address: str
    to_address: str
    occurred_at: datetime
    text: str | None = None
    button_payload: str | None = None
    in_reply_to: str | None = None
    media_urls: list[str] = msgspec.field(default_factory=list)
    fragment: InboundFragment | None = None
    """Set when this is one part of a long SMS the handset split: the host joins the
    parts sharing ``fragment.reference`` (and sender) in ``index`` order. (1.0)"""


class InboundFragment(msgspec.Struct, frozen=True, kw_only=True):
    """Which part of a concatenated inbound SMS a message is (Vonage ``concat-ref``,
    ``concat-part``, ``concat-total``). ``index`` is 1-based.

    .. versionadded:: 1.0
    """

    reference: str
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise ValueError(f"fragment {self.index} of {self.count} is out of range")


ChannelEvent = DeliveryStatusEvent | InboundMessage

# ---------------------------------------------------------------------------- provider


@runtime_checkable
class ChannelProvider(Protocol):
    """What ``register_channels`` registers. All I/O methods are ``async``.

    Contract:

    * ``send`` never raises for provider-side failures: it returns :class:`SendFailure`
      with the right ``kind``. It may raise only for programming errors.
    * ``verify_webhook`` raises :class:`~cartera_sdk.errors.WebhookVerificationError` unless
      the raw request is authentic; it is called before ``parse_webhook``.
    * ``parse_webhook`` is pure and deterministic: the same request yields the same events
      with the same ``event_id`` values; unknown fields are ignored.
    * ``handshake`` answers a provider's subscription check (WhatsApp ``GET hub.challenge``)
      or returns ``None`` when the request is not a handshake.
    """

    @property
    def name(self) -> str: ...

    @property
    def channel(self) -> ChannelKind: ...

    @property
    def Config(self) -> type[msgspec.Struct]: ...

    @property
    def Secrets(self) -> type[msgspec.Struct]: ...

    async def send(
        self, message: OutboundMessage, ctx: ProviderContext[Any, Any]
    ) -> SendResult: ...

    async def verify_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> None: ...

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]: ...

    async def handshake(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> WebhookResponse | None: ...

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck: ...


class BaseChannelProvider(ABC):
    """Convenience base: declare ``name``/``channel``/``Config``/``Secrets``, implement
    ``send``, ``verify_webhook`` and ``parse_webhook``; ``handshake`` and
    ``test_connection`` have safe defaults."""

    name: ClassVar[str]
    channel: ClassVar[ChannelKind]
    Config: ClassVar[type[msgspec.Struct]] = NoConfig
    Secrets: ClassVar[type[msgspec.Struct]] = NoSecrets
    #: How webhooks arrive; add ``"query"`` when the provider sends events on GET.
    webhook_encodings: ClassVar[tuple[WebhookEncoding, ...]] = DEFAULT_WEBHOOK_ENCODINGS
    #: Where the webhook signature lives; ``None``: somewhere in the headers.
    webhook_signature: ClassVar[WebhookSignature | None] = None

    @abstractmethod
    async def send(
        self, message: OutboundMessage, ctx: ProviderContext[Any, Any]
    ) -> SendResult: ...

    @abstractmethod
    async def verify_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> None: ...

    @abstractmethod
    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]: ...

    async def handshake(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> WebhookResponse | None:
        """No handshake by default."""
        return None

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Override to make a cheap authenticated call; default reports "not checked"."""
        return ConnectionCheck(ok=True, detail="no connection test implemented", code="unchecked")
