"""API shapes of payments."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from cartera.payments.models import PaymentStatus
from cartera.types import Amount, Currency, ExternalRef, Id, Text32, Text128, Text200, Text500

Purpose = Annotated[str, Meta(pattern=r"^[a-z0-9_:.-]{1,64}$",
                              description="What a payment link is for: one open link per "
                                          "debtor and purpose.", examples=["balance"])]


class AllocationIn(Struct, forbid_unknown_fields=True):
    """Part of the payment the payer wants applied to one obligation."""

    obligation_id: Id
    amount: Amount


class PaymentCreate(Struct, forbid_unknown_fields=True):
    currency: Currency
    amount: Amount
    paid_on: date
    debtor_id: Id | None = None
    debtor_external_ref: Text128 | None = None
    external_ref: ExternalRef | None = None
    method: Text32 | None = None
    reference: Text200 | None = None
    allocations: list[AllocationIn] = []
    """Explicit allocations; whatever they leave goes to the oldest due obligations."""


class PaymentReverse(Struct, forbid_unknown_fields=True):
    reason: Text500


class AllocationOut(Struct):
    obligation_id: int
    amount: str
    explicit: bool


class PaymentErpPosting(Struct):
    """Where posting the payment back to the creditor's ERP stands (the write-back outbox)."""

    integration_id: int
    """The ERP integration it is posted to."""
    status: Literal["pending", "posted", "rejected"]
    """``pending``: not posted yet (being tried, or waiting to retry); ``posted``: the ERP
    booked it (``erp_document_id``); ``rejected``: the ERP refused it (``message``)."""
    erp_document_id: str | None
    """The ERP's document of the posted payment."""
    message: str | None
    """``rejected``: the ERP's message; ``pending``: why the last attempt failed, if any."""
    attempts: int
    last_attempt_at: datetime | None
    """When the outbox last tried to post it (``None``: not tried yet)."""
    posted_at: datetime | None


class PaymentOut(Struct):
    id: int
    external_ref: str | None
    debtor_id: int
    currency: str
    amount: str
    unapplied_amount: str
    paid_on: date
    method: str | None
    reference: str | None
    status: PaymentStatus
    reversed_at: datetime | None
    reversal_reason: str | None
    allocations: list[AllocationOut]
    created_at: datetime
    refunded_amount: str = "0"
    provider: str | None = None
    provider_payment_id: str | None = None
    payment_link_id: int | None = None
    disputed_at: datetime | None = None
    """Set while the payer disputes the payment at the provider (it stays applied until the
    dispute is lost, when it is reversed)."""
    erp_posting: PaymentErpPosting | None = None
    """The payment's posting to the ERP, when write-back posts it (the most recent one if
    more than one ERP integration posts it); ``None`` otherwise."""


class PaymentRefund(Struct, forbid_unknown_fields=True):
    """Refund a payment received through a payment provider (all of what remains when
    ``amount`` is omitted)."""

    reason: Text500
    amount: Amount | None = None


AmountKind = Literal["balance", "chosen", "installment"]
LinkStatus = Literal["open", "paid", "expired", "cancelled"]


class PaymentLinkCreate(Struct, forbid_unknown_fields=True):
    """A hosted checkout link for one debtor.

    ``amount_kind``: ``balance`` (what is outstanding on ``obligation_ids``, or on every open
    obligation in ``currency``), ``chosen`` (``amount``, more than zero and at most that
    balance) or ``installment`` (what an installment of a plan asks, ``installment_id``).
    One open link per debtor and ``purpose`` (default ``balance``, or
    ``installment:<id>``): asking again while it is open returns it; asking with another
    amount replaces it (the old one is cancelled)."""

    debtor_id: Id
    currency: Currency
    amount_kind: AmountKind = "balance"
    amount: Amount | None = None
    obligation_ids: list[Id] = []
    installment_id: Id | None = None
    purpose: Purpose | None = None
    description: Text200 | None = None
    """What the debtor reads on the checkout page (default: the tenant's name and "deuda")."""
    expires_in_hours: Annotated[int, Meta(ge=1, le=24 * 90)] = 72
    integration_id: Id | None = None
    """The payment integration to use (default: the tenant's only enabled one)."""


class PaymentLinkCancel(Struct, forbid_unknown_fields=True):
    reason: Text200
    """Kept as the link's ``status_reason``."""


class PaymentLinkOut(Struct):
    id: int
    debtor_id: int
    integration_id: int
    provider: str
    purpose: str
    amount_kind: str
    currency: str
    amount: str
    obligation_ids: list[int]
    description: str
    status: LinkStatus
    url: str | None
    """``null`` only while the provider call of a just-reserved link has not succeeded."""
    expires_at: datetime
    payment_id: int | None
    status_reason: str | None
    reused: bool
    """True when this request found the debtor's open link for the purpose."""
    created_at: datetime
    paid_at: datetime | None


ExceptionKind = Literal["unknown_payment", "unknown_link", "amount_mismatch",
                        "currency_mismatch", "disputed", "reversed_unapplied"]


class ReconciliationExceptionOut(Struct):
    id: int
    kind: ExceptionKind
    detail: str
    provider: str
    provider_payment_id: str
    integration_id: int | None
    debtor_id: int | None
    payment_link_id: int | None
    payment_id: int | None
    provider_view: dict[str, Any]
    status: Literal["open", "resolved"]
    resolution: str | None
    note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class ReconciliationResolve(Struct, forbid_unknown_fields=True):
    """``apply``: a held payment is applied to the debtor's debt after all; ``dismiss``: the
    exception needs nothing more from Cartera (refunded outside, a test payment...)."""

    resolution: Literal["apply", "dismiss"]
    note: Text500
