"""Payment provider contract: payment links, payment lookups, webhooks and refunds.

Provider-side failures raise :class:`~cartera_sdk.errors.ProviderError` (or a subclass) with
the right ``kind``. Webhooks are hints: the host re-fetches the payment with
:meth:`PaymentProvider.fetch_payment` before trusting an amount or status (Mercado Pago's
notification body carries neither).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from .context import ProviderContext
from .integration import ConnectionCheck, NoConfig, NoSecrets
from .money import Money
from .webhooks import WebhookRequest

__all__ = [
    "BasePaymentProvider",
    "Payer",
    "PaymentEvent",
    "PaymentEventKind",
    "PaymentLink",
    "PaymentLinkRequest",
    "PaymentProvider",
    "PaymentStatus",
    "ProviderPayment",
    "Refund",
    "RefundRequest",
    "RefundStatus",
]

#: Normalised payment states (Mercado Pago's ``status`` maps 1:1 except ``in_mediation``).
PaymentStatus = Literal[
    "pending", "in_process", "authorized", "approved", "rejected",
    "cancelled", "refunded", "charged_back", "in_mediation",
]  # fmt: skip
RefundStatus = Literal["pending", "approved", "rejected", "cancelled"]
PaymentEventKind = Literal["payment", "refund", "chargeback", "order", "other"]


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
    """The provider's current view of one payment."""

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


class PaymentEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A webhook notification. ``event_id`` is the provider's notification id (dedupe key).

    ``resource_id`` is the payment/refund/order id to re-fetch; ``action`` the provider's
    verb (``payment.created``, ``payment.updated``...).
    """

    event_id: str
    kind: PaymentEventKind
    action: str
    resource_id: str | None
    occurred_at: datetime | None = None
    live_mode: bool | None = None


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

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """Default reports "not checked"."""
        return ConnectionCheck(ok=True, detail="no connection test implemented", code="unchecked")
