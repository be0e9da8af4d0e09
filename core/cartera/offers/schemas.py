"""API shapes of offers and the tenant's offer policy."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Struct

from cartera.types import Amount, Currency, Id, Text500

OfferKind = Literal["discount", "settlement", "installments"]
OfferStatus = Literal["pending_approval", "open", "accepted", "applied", "expired", "cancelled"]
Role = Literal["collector", "supervisor", "manager"]
Percent = Annotated[str, msgspec.Meta(
    pattern=r"^(100(\.0{1,2})?|[0-9]{1,2}(\.[0-9]{1,2})?)$",
    description="A percentage from 0 to 100 with at most two decimals, as a string.",
    examples=["10", "27.5"])]
Days = Annotated[int, msgspec.Meta(ge=0, le=36500)]
MAX_RULES = 200
MAX_OFFER_INSTALLMENTS = 60


class PolicyRule(Struct, forbid_unknown_fields=True):
    """Up to ``max_discount_percent`` of the covered balance may be given without approval
    by a client holding ``role`` (the OAuth scope ``role:<role>``), for debtors in
    ``segment_id`` (any when absent) whose days past due are within
    [``min_days_past_due``, ``max_days_past_due``], for offers of ``kinds`` (any when
    absent)."""

    role: Role
    max_discount_percent: Percent
    segment_id: Id | None = None
    min_days_past_due: Days = 0
    max_days_past_due: Days | None = None
    kinds: list[OfferKind] | None = None


class OfferPolicyIn(Struct, forbid_unknown_fields=True):
    rules: Annotated[list[PolicyRule], msgspec.Meta(max_length=MAX_RULES)]
    max_validity_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    """The longest an offer may stay open before it expires."""
    max_promise_horizon_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 30
    """How far ahead a debtor may promise to pay through self-service."""


class OfferPolicyOut(Struct):
    rules: list[PolicyRule]
    max_validity_days: int
    max_promise_horizon_days: int
    default: bool
    """True while the tenant has not set its own policy (the built-in one applies)."""
    updated_by: str | None
    updated_at: datetime | None


class OfferInstallmentIn(Struct, forbid_unknown_fields=True):
    due_date: date
    amount: Amount


class OfferInstallmentOut(Struct):
    number: int
    due_date: date
    amount: str


class OfferCreate(Struct, forbid_unknown_fields=True):
    """Give either ``discount_percent`` or ``amount`` (what the debtor pays); an installment
    proposal gives ``installments`` instead (their sum is what the debtor pays)."""

    debtor_id: Id
    currency: Currency
    kind: OfferKind
    obligation_ids: Annotated[list[Id], msgspec.Meta(max_length=100)] = msgspec.field(
        default_factory=list)
    """The obligations covered; all the debtor's open ones in ``currency`` when empty."""
    discount_percent: Percent | None = None
    amount: Amount | None = None
    installments: Annotated[list[OfferInstallmentIn],
                            msgspec.Meta(max_length=MAX_OFFER_INSTALLMENTS)] | None = None
    expires_in_days: Annotated[int, msgspec.Meta(ge=1, le=365)] = 7
    """At most the policy's ``max_validity_days``."""
    note: Text500 | None = None


class OfferOut(Struct):
    id: int
    debtor_id: int
    kind: OfferKind
    currency: str
    obligation_ids: list[int]
    covered_amount: str
    """What the covered obligations owed when the offer was made."""
    lawful_amount: str
    """``covered_amount`` less charges the country's law does not allow to be collected
    (the base of the discount percentage)."""
    discount_amount: str
    """What becomes a credit note when the offer is paid in full."""
    discount_percent: str
    amount: str
    """What the debtor pays."""
    paid_amount: str
    installments: list[OfferInstallmentOut]
    days_past_due: int
    segment_id: int | None
    status: OfferStatus
    expires_at: datetime
    requested_by: str
    requester_limit_percent: str
    approval_limit_percent: str
    approved_by: str | None
    approved_at: datetime | None
    accepted_by: str | None
    accepted_at: datetime | None
    arrangement_id: int | None
    applied_at: datetime | None
    credit_note_id: int | None
    cancelled_at: datetime | None
    note: str | None
    created_at: datetime
