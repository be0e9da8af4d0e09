"""API shapes of payments."""

from __future__ import annotations

from datetime import date, datetime

from msgspec import Struct

from cartera.payments.models import PaymentStatus
from cartera.types import Amount, Currency, ExternalRef, Id, Text32, Text128, Text200, Text500


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
