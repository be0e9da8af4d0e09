"""Wire types of /v1/compliance."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cartera.messaging.schemas import Verdict, VerdictReason
from cartera.types import Channel, Instant

Role = Literal["debtor", "co_debtor", "guarantor", "reference", "family", "employer",
               "other_third_party"]
ContentKindName = Literal["reminder", "notice", "formal_letter"]
Text = Annotated[str, msgspec.Meta(max_length=20000)]
Short = Annotated[str, msgspec.Meta(max_length=300)]


class RuleOut(Struct):
    code: str
    title: str
    description: str
    legal_ref: str | None
    verification: str
    configurable: bool


class PackOut(Struct):
    name: str
    country: str
    plugin: str
    version: str | None
    calendar_version: str | None
    timezones: list[str]
    config_schema: dict[str, object]
    rules: list[RuleOut]


class PackList(Struct):
    data: list[PackOut]


class ContentIn(Struct, forbid_unknown_fields=True):
    text: Text
    kind: ContentKindName = "notice"
    subject: Short | None = None


class PriorContactIn(Struct, forbid_unknown_fields=True):
    channel: Channel
    at: Instant
    direct: bool = False
    outcome: Short | None = None


class ExplicitContact(Struct, forbid_unknown_fields=True):
    """A hypothetical debtor, described field by field."""

    country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")]
    timezone: Short
    subdivision: Short | None = None
    timezone_known: bool = True
    consumer: bool = True
    stage: Short | None = None
    days_past_due: int | None = None
    in_litigation: bool = False
    is_first_contact: bool = False
    authorized_channels: list[Channel] | None = None
    contact_origin: Literal["debtor_provided", "found"] | None = None
    recent_contacts: Annotated[list[PriorContactIn], msgspec.Meta(max_length=500)] = []
    #: The recipient's age in whole years (MX: no collection with minors, nor with older
    #: adults who are not the debtor); ``contact_point_use``: ``work`` for a work phone,
    #: e-mail or address (CABA forbids them).
    recipient_age: Annotated[int, msgspec.Meta(ge=0, le=150)] | None = None
    contact_point_use: Literal["personal", "work"] | None = None


class CheckIn(Struct, forbid_unknown_fields=True):
    """Judge a contact without making it: ``debtor_id`` (its facts, contact points and
    history are read) or ``contact`` (explicit fields), a channel, an aware instant
    (default now) and optionally the content. Nothing is written."""

    channel: Channel
    debtor_id: int | None = None
    contact: ExplicitContact | None = None
    planned_at: Instant | None = None
    recipient_role: Role = "debtor"
    content: ContentIn | None = None


class PackVersion(Struct):
    name: str
    version: str | None
    calendar_version: str | None


class CheckOut(Struct):
    verdict: Verdict
    packs: list[PackVersion]
    planned_at: datetime


class SettingsOut(Struct):
    unknown_country: Literal["allow", "deny"]
    creditor_name: str | None
    creditor_tax_id: str | None
    creditor_address: str | None
    agency_name: str | None


class SettingsUpdate(Struct, forbid_unknown_fields=True):
    unknown_country: Literal["allow", "deny"] | UnsetType = UNSET
    creditor_name: Short | UnsetType | None = UNSET
    creditor_tax_id: Annotated[str, msgspec.Meta(max_length=64)] | UnsetType | None = UNSET
    creditor_address: Annotated[str, msgspec.Meta(max_length=1000)] | UnsetType | None = UNSET
    agency_name: Short | UnsetType | None = UNSET


class RuleCount(Struct):
    source: str
    code: str
    allowed: int
    deferred: int
    denied: int
    median_deferral_seconds: int | None


class ReportOut(Struct):
    period_start: datetime
    period_end: datetime
    contacts: int
    rules: list[RuleCount]


class ChargeFindingOut(Struct):
    source: str
    kind: str
    allowed: bool
    code: str
    message: str
    rule_ref: str | None
    max_amount: str | None
    currency: str | None
    lawful_from: date | None


class PrescriptionOut(Struct):
    """When judicial collection is time-barred, per pack: ``time_barred_from`` is ``None``
    when the pack knows no limitation period for the country (it never guesses a date)."""

    source: str
    time_barred_from: date | None
    code: str
    message: str
    rule_ref: str | None
    verification: str


class ChargesCheckOut(Struct):
    debtor_id: int
    today: date
    days_past_due: int
    overdue: str | None
    currency: str | None
    findings: list[ChargeFindingOut]
    prescription: list[PrescriptionOut] = []


class TemplateCheckIn(Struct, forbid_unknown_fields=True):
    """``country`` defaults to the tenant's; ``first_contact`` checks the first-contact
    disclosures; ``kind`` is what the message is."""

    country: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}$")] | None = None
    first_contact: bool = False
    kind: ContentKindName = "notice"


class TemplateCheckOut(Struct):
    template_id: int
    country: str
    packs: list[str]
    findings: list[VerdictReason]
