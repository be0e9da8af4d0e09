"""API shapes of promises to pay and installment plans."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Struct

from cartera.types import Amount, Channel, Currency, Id, Text500

PromiseStatus = Literal["pending", "kept", "partly_kept", "broken", "cancelled"]
ArrangementStatus = Literal["active", "completed", "broken", "cancelled"]
MAX_INSTALLMENTS = 120


class PromiseCreate(Struct, forbid_unknown_fields=True):
    debtor_id: Id
    currency: Currency
    amount: Amount
    promised_date: date
    """The day by which the debtor will pay: today or later in the tenant's time zone."""
    channel: Channel | None = None
    """Where the promise was made (a call, a visit, a WhatsApp conversation...)."""
    note: Text500 | None = None


class Cancel(Struct, forbid_unknown_fields=True):
    reason: Text500 | None = None


class PromiseOut(Struct):
    id: int
    debtor_id: int
    currency: str
    amount: str
    paid_amount: str
    """What the debtor's payments dated from ``created_on`` through ``promised_date`` add
    up to (payments not reversed, in this currency)."""
    promised_date: date
    created_on: date
    """The tenant's business day the promise was made: payments count from it."""
    status: PromiseStatus
    channel: str | None
    note: str | None
    created_by: str
    kept_at: datetime | None
    broken_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime


class InstallmentIn(Struct, forbid_unknown_fields=True):
    due_date: date
    amount: Amount


class ArrangementCreate(Struct, forbid_unknown_fields=True):
    debtor_id: Id
    currency: Currency
    installments: Annotated[list[InstallmentIn], msgspec.Meta(
        max_length=MAX_INSTALLMENTS,
        description="At least one; due dates strictly increasing, the first today or later "
                    "(tenant's time zone); amounts positive.")]
    note: Text500 | None = None


class InstallmentOut(Struct):
    number: int
    due_date: date
    amount: str
    grace_until: date
    """The last day a payment counts toward this installment: after it, the plan is broken
    unless the payments dated up to it cover this and every earlier installment."""


class ArrangementOut(Struct):
    id: int
    debtor_id: int
    currency: str
    total: str
    paid_amount: str
    """What the debtor's payments dated from ``created_on`` add up to (not reversed, in
    this currency)."""
    status: ArrangementStatus
    grace_days: int
    installments: list[InstallmentOut]
    created_on: date
    note: str | None
    created_by: str
    completed_at: datetime | None
    broken_at: datetime | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
