"""Payment provider contract: payment links, payment lookups, webhooks and refunds.

Provider-side failures raise :class:`~cartera_sdk.errors.ProviderError` (or a subclass) with
the right ``kind``. Webhooks are hints: the host re-fetches the payment before trusting an
amount or status (Mercado Pago's notification body carries neither). The host's order for
one inbound delivery is:

1. ``await provider.verify_webhook(request, ctx)`` (raises
   :class:`~cartera_sdk.errors.WebhookVerificationError`: answer 401, process nothing);
2. ``provider.parse_webhook(request, ctx)``: pure, no I/O, deterministic ``event_id`` s;
3. ``await confirm_payment_event(provider, event, ctx)`` per new event, outside any database
   transaction: the returned event's ``payment`` is the provider's *current* view
   (:class:`ProviderPayment`: status, amount and currency, ``reference``), fetched from the
   provider's API. Only that view is believed; ``settlement`` tells what it means for the
   debt.

Create and refund calls carry the host's ``idempotency_key`` (stable across retries) so a
retried call never charges or refunds twice.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from .context import ProviderContext
from .integration import ConnectionCheck, NoConfig, NoSecrets
from .money import Money
from .webhooks import WebhookRequest

__all__ = [
    "SETTLEMENT",
    "BasePaymentProvider",
    "Payer",
    "PaymentEvent",
    "PaymentEventKind",
    "PaymentLink",
    "PaymentLinkRequest",
    "PaymentProvider",
    "PaymentSettlement",
    "PaymentStatus",
    "ProviderPayment",
    "Refund",
    "RefundRequest",
    "RefundStatus",
    "confirm_payment_event",
]

#: Normalised payment states (Mercado Pago's ``status`` maps 1:1 except ``in_mediation``).
PaymentStatus = Literal[
    "pending", "in_process", "authorized", "approved", "rejected",
    "cancelled", "refunded", "charged_back", "in_mediation",
]  # fmt: skip
RefundStatus = Literal["pending", "approved", "rejected", "cancelled"]
PaymentEventKind = Literal["payment", "refund", "chargeback", "order", "other"]

#: What a payment status means for the debt (``ProviderPayment.settlement``):
#: ``open`` (nothing final yet: pending, in process, authorized but not captured),
#: ``paid`` (money received: apply it), ``failed`` (rejected or cancelled: nothing to apply),
#: ``reversed`` (refunded or charged back: undo what was applied), ``disputed`` (in
#: mediation: keep what was applied, flag it for a person).
PaymentSettlement = Literal["open", "paid", "failed", "reversed", "disputed"]

#: The settlement of every :data:`PaymentStatus`. ``authorized`` is ``open``: the funds are
#: reserved, not captured. A partial refund keeps ``approved`` (``paid``) and shows in
#: ``ProviderPayment.refunded_amount``.
SETTLEMENT: dict[PaymentStatus, PaymentSettlement] = {
    "pending": "open",
    "in_process": "open",
    "authorized": "open",
    "approved": "paid",
    "rejected": "failed",
    "cancelled": "failed",
    "refunded": "reversed",
    "charged_back": "reversed",
    "in_mediation": "disputed",
}


class Payer(msgspec.Struct, frozen=True, kw_only=True):
    """Who pays. ``document_type`` e.g. DNI, RUC, CURP, CPF, CC, RUT, CUIT."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    document_type: str | None = None
    document_number: str | None = None


class PaymentLinkRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask for a hosted checkout link for ``amount``.

    ``reference`` is our id; providers store it (Mercado Pago ``external_reference``) so
    payments can be matched back. ``idempotency_key`` is stable across retries.
    """

    reference: str
    idempotency_key: str
    amount: Money
    description: str
    payer: Payer | None = None
    expires_at: datetime | None = None
    success_url: str | None = None
    failure_url: str | None = None
    pending_url: str | None = None
    notification_url: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.amount.amount <= 0:
            raise ValueError("a payment link needs a positive amount")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")


class PaymentLink(msgspec.Struct, frozen=True, kw_only=True):
    """A created link (Mercado Pago preference: ``id`` + ``init_point``)."""

    provider_link_id: str
    url: str
    expires_at: datetime | None = None
    sandbox_url: str | None = None


class ProviderPayment(msgspec.Struct, frozen=True, kw_only=True):
    """The provider's current view of one payment, as its API reports it.

    ``reference`` is the ``PaymentLinkRequest.reference`` the payment was made against
    (Mercado Pago ``external_reference``), ``None`` when the payment was not made through
    one of our links. ``raw_status`` keeps the provider's own status word (a status the
    provider adds later maps to ``pending``, so nothing is applied on a word we do not know).
    """

    provider_payment_id: str
    status: PaymentStatus
    amount: Money
    status_detail: str | None = None
    reference: str | None = None
    refunded_amount: Money | None = None
    fee: Money | None = None
    net_amount: Money | None = None
    method: str | None = None
    payer_email: str | None = None
    created_at: datetime | None = None
    approved_at: datetime | None = None
    updated_at: datetime | None = None
    raw_status: str | None = None

    @property
    def settlement(self) -> PaymentSettlement:
        """What :attr:`status` means for the debt (see :data:`SETTLEMENT`)."""
        return SETTLEMENT[self.status]


class PaymentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook notification. ``event_id`` is the provider's notification id (dedupe key).

    ``resource_id`` is the payment/refund/order id to re-fetch; ``action`` the provider's
    verb (``payment.created``, ``payment.updated``...).

    ``payment`` is ``None`` as parsed (a notification is only a hint) and is filled by
    :func:`confirm_payment_event` with the payment re-fetched from the provider's API;
    :attr:`confirmed` tells which of the two an event is.
    """

    event_id: str
    kind: PaymentEventKind
    action: str
    resource_id: str | None
    occurred_at: datetime | None = None
    live_mode: bool | None = None
    payment: ProviderPayment | None = None

    @property
    def confirmed(self) -> bool:
        """True once the provider's API was asked about the payment (``payment`` is set)."""
        return self.payment is not None


class RefundRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Refund ``amount`` (``None`` = the full remaining amount) of a payment."""

    provider_payment_id: str
    idempotency_key: str
    amount: Money | None = None
    reason: str | None = None


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    """A refund as the provider reports it."""

    provider_refund_id: str
    provider_payment_id: str
    amount: Money
    status: RefundStatus
    created_at: datetime | None = None


@runtime_checkable
class PaymentProvider(Protocol):
    """What ``register_payment_providers`` registers. All I/O methods are ``async``.

    ``currencies`` lists the ISO 4217 codes the provider can charge; the host never asks
    for another and never converts currencies.
    """

    @property
    def name(self) -> str: ...

    @property
    def currencies(self) -> frozenset[str]: ...

    @property
    def Config(self) -> type[msgspec.Struct]: ...

    @property
    def Secrets(self) -> type[msgspec.Struct]: ...

    async def create_payment_link(
        self, request: PaymentLinkRequest, ctx: ProviderContext[Any, Any]
    ) -> PaymentLink: ...

    async def fetch_payment(
        self, provider_payment_id: str, ctx: ProviderContext[Any, Any]
    ) -> ProviderPayment: ...

    async def refund(self, request: RefundRequest, ctx: ProviderContext[Any, Any]) -> Refund: ...

    async def verify_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> None: ...

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[PaymentEvent]: ...

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck: ...


class BasePaymentProvider(ABC):
    """Convenience base with a default ``test_connection``."""

    name: ClassVar[str]
    currencies: ClassVar[frozenset[str]]
    Config: ClassVar[type[msgspec.Struct]] = NoConfig
    Secrets: ClassVar[type[msgspec.Struct]] = NoSecrets

    @abstractmethod
    async def create_payment_link(
        self, request: PaymentLinkRequest, ctx: ProviderContext[Any, Any]
    ) -> PaymentLink: ...

    @abstractmethod
    async def fetch_payment(
        self, provider_payment_id: str, ctx: ProviderContext[Any, Any]
    ) -> ProviderPayment: ...

    @abstractmethod
    async def refund(self, request: RefundRequest, ctx: ProviderContext[Any, Any]) -> Refund: ...

    @abstractmethod
    async def verify_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> None: ...

    @abstractmethod
    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[PaymentEvent]: ...

    async def confirm_event(
        self, event: PaymentEvent, ctx: ProviderContext[Any, Any]
    ) -> PaymentEvent:
        """Re-fetch the payment a parsed ``event`` is about; return the event with ``payment``.

        The default fetches ``resource_id`` with :meth:`fetch_payment` for ``payment``
        events and returns other kinds unchanged. Override when the provider's notification
        names another resource (an order, a chargeback) that leads to the payment.
        Provider failures propagate as :class:`~cartera_sdk.errors.ProviderError`.
        """
        return await _refetched(self.fetch_payment, event, ctx)

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Default reports "not checked"."""
        return ConnectionCheck(ok=True, detail="no connection test implemented", code="unchecked")


async def confirm_payment_event(
    provider: PaymentProvider, event: PaymentEvent, ctx: ProviderContext[Any, Any]
) -> PaymentEvent:
    """The host's re-fetch step: ``event`` with ``payment`` set from the provider's API.

    Calls the provider's ``confirm_event`` when it has one (every
    :class:`BasePaymentProvider` does), else re-fetches ``payment`` events with
    ``fetch_payment``. Events of other kinds come back unconfirmed (``payment`` is
    ``None``): the host records them and applies nothing.
    """
    confirm = getattr(provider, "confirm_event", None)
    if confirm is not None:
        confirmed: PaymentEvent = await confirm(event, ctx)
        return confirmed
    return await _refetched(provider.fetch_payment, event, ctx)


async def _refetched(
    fetch: Callable[[str, ProviderContext[Any, Any]], Awaitable[ProviderPayment]],
    event: PaymentEvent,
    ctx: ProviderContext[Any, Any],
) -> PaymentEvent:
    if event.kind != "payment" or not event.resource_id:
        return event
    return msgspec.structs.replace(event, payment=await fetch(event.resource_id, ctx))
