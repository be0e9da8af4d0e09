"""API shapes of the portfolio domain (msgspec)."""

from __future__ import annotations

from datetime import date, datetime

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cartera.portfolio.aging import BucketName
from cartera.types import (
    Amount,
    AttributeValue,
    Channel,
    Code,
    Consent,
    ContactKind,
    ContactOrigin,
    CountryCode,
    Currency,
    DebtorKind,
    ExternalRef,
    Id,
    Int32,
    Name,
    ObligationKind,
    ObligationStatus,
    RelatedRole,
    ShortName,
    Tag,
    Text16,
    Text32,
    Text64,
    Text128,
    Text320,
    Text500,
    Text2000,
)


class PortfolioCreate(Struct, forbid_unknown_fields=True):
    code: Code
    name: ShortName
    description: Text2000 | None = None


class PortfolioUpdate(Struct, forbid_unknown_fields=True):
    name: ShortName | UnsetType = UNSET
    description: Text2000 | UnsetType | None = UNSET


class PortfolioOut(Struct):
    id: int
    code: str
    name: str
    description: str | None
    created_at: datetime
    updated_at: datetime


class ContactPointIn(Struct, forbid_unknown_fields=True):
    kind: ContactKind
    value: Text500 = msgspec.field()
    label: Text64 | None = None
    consent: Consent = "unknown"
    opted_out_channels: list[Channel] = []
    origin: ContactOrigin = "debtor_provided"
    preferred: bool = False


class ContactPointUpdate(Struct, forbid_unknown_fields=True):
    label: Text64 | UnsetType | None = UNSET
    consent: Consent | UnsetType = UNSET
    opted_out_channels: list[Channel] | UnsetType = UNSET
    preferred: bool | UnsetType = UNSET


class Suppression(Struct):
    """Why a provider made a contact point unusable for one channel."""

    reason: str
    """``hard_bounce``, ``spam_complaint`` or ``carrier_opt_out``."""
    code: str | None
    """The provider's code (``5.1.1``, ``21610``), when it gave one."""
    interaction_id: int | None
    at: datetime


class ContactPointOut(Struct):
    id: int
    kind: ContactKind
    value: str
    label: str | None
    consent: Consent
    opted_out_channels: list[Channel]
    origin: str
    preferred: bool
    suppressions: dict[str, Suppression] = {}
    """Channels the contact gate refuses here because a provider said so, by channel."""


class RelatedPartyIn(Struct, forbid_unknown_fields=True):
    role: RelatedRole
    name: Name
    national_id: Text64 | None = None
    phone: Text32 | None = None
    email: Text320 | None = None
    related_debtor_id: Id | None = None


class RelatedPartyOut(Struct):
    id: int
    role: str
    name: str
    national_id: str | None
    phone: str | None
    email: str | None
    related_debtor_id: int | None


class DebtorCreate(Struct, forbid_unknown_fields=True):
    external_ref: ExternalRef
    name: Name
    country: CountryCode
    kind: DebtorKind = "person"
    national_id: Text64 | None = None
    subdivision: Text16 | None = None
    timezone: Text64 | None = None
    zone: Text128 | None = None
    risk_score: Int32 | None = None
    tags: list[Tag] = []
    attributes: dict[str, AttributeValue] = {}
    contact_points: list[ContactPointIn] = []
    related_parties: list[RelatedPartyIn] = []


class DebtorUpdate(Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    kind: DebtorKind | UnsetType = UNSET
    national_id: Text64 | UnsetType | None = UNSET
    country: CountryCode | UnsetType = UNSET
    subdivision: Text16 | UnsetType | None = UNSET
    timezone: Text64 | UnsetType = UNSET
    zone: Text128 | UnsetType | None = UNSET
    risk_score: Int32 | UnsetType | None = UNSET
    tags: list[Tag] | UnsetType = UNSET
    attributes: dict[str, AttributeValue] | UnsetType = UNSET


class DebtorOut(Struct):
    id: int
    external_ref: str
    kind: DebtorKind
    name: str
    national_id: str | None
    country: str
    subdivision: str | None
    timezone: str
    zone: str | None
    risk_score: int | None
    tags: list[str]
    attributes: dict[str, AttributeValue]
    contact_points: list[ContactPointOut]
    related_parties: list[RelatedPartyOut]
    segment: str | None
    """The segment code the last evaluation gave the debtor (null before any)."""
    stage: str | None
    """The debtor's collection stage code (null before their first evaluation)."""
    created_at: datetime
    updated_at: datetime
    balance: DebtorBalanceOut | UnsetType = UNSET
    """With ``expand=balance`` only: what ``GET /v1/debtors/{id}/balance`` answers."""


class ObligationCreate(Struct, forbid_unknown_fields=True):
    external_ref: ExternalRef
    kind: ObligationKind
    currency: Currency
    original_amount: Amount
    due_date: date
    debtor_id: Id | None = None
    debtor_external_ref: Text128 | None = None
    outstanding_amount: Amount | None = None
    portfolio_id: Id | None = None
    product: Text64 | None = None
    issue_date: date | None = None
    status: ObligationStatus = "open"


class ObligationUpdate(Struct, forbid_unknown_fields=True):
    due_date: date | UnsetType = UNSET
    product: Text64 | UnsetType | None = UNSET
    portfolio_id: Id | UnsetType | None = UNSET
    status: ObligationStatus | UnsetType = UNSET


class ObligationOut(Struct):
    id: int
    external_ref: str
    debtor_id: int
    portfolio_id: int | None
    kind: ObligationKind
    product: str | None
    currency: str
    original_amount: str
    outstanding_amount: str
    issue_date: date | None
    due_date: date
    status: ObligationStatus
    days_past_due: int
    created_at: datetime
    updated_at: datetime


class CurrencyBalance(Struct):
    currency: str
    outstanding_amount: str
    overdue_amount: str
    unapplied_credit: str
    open_obligations: int
    oldest_unpaid_due_date: date | None
    days_past_due: int
    aging_bucket: BucketName
    last_payment_date: date | None


class DebtorBalanceOut(Struct):
    debtor_id: int
    as_of: date
    balances: list[CurrencyBalance]


class TimelineEntry(Struct):
    at: datetime
    kind: str
    summary: str
    resource_type: str
    resource_id: str
    detail: dict[str, object] = {}
