"""API shapes of templates, messages and interactions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cartera.types import Instant

MessageChannel = Literal["sms", "whatsapp", "email"]
Locale = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}(-[A-Z]{2})?$", examples=["es-PE"])]
TemplateName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
InteractionChannel = Literal["sms", "whatsapp", "email", "voice", "visit", "letter"]


class WhatsAppParameter(Struct, forbid_unknown_fields=True):
    """One ordered body parameter: ``value`` is a template expression such as
    ``{{ debtor.first_name }}``; ``currency`` and ``date_time`` carry typed values."""

    type: Literal["text", "currency", "date_time"]
    value: Annotated[str, msgspec.Meta(max_length=1024)]


class WhatsAppTemplateSpec(Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2}(_[A-Z]{2})?$",
                                          examples=["es_PE"])]
    parameters: list[WhatsAppParameter] = []
    url_button_suffix: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    """Template expression for the dynamic part of the first URL button, if any."""


class TemplateCreate(Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    channel: MessageChannel
    locale: Locale
    name: TemplateName
    body: str
    """SMS text; e-mail plain-text part; WhatsApp: a preview of the approved template."""
    subject: str | None = None
    html: str | None = None
    whatsapp: WhatsAppTemplateSpec | None = None


class TemplateUpdate(Struct, forbid_unknown_fields=True):
    name: TemplateName | UnsetType = UNSET
    body: str | UnsetType = UNSET
    subject: str | UnsetType | None = UNSET
    html: str | UnsetType | None = UNSET
    whatsapp: WhatsAppTemplateSpec | UnsetType | None = UNSET


class SmsInfo(Struct):
    encoding: str
    characters: int
    units: int
    segments: int
    non_gsm_characters: list[str]


class TemplateOut(Struct):
    id: int
    code: str
    channel: MessageChannel
    locale: str
    name: str
    body: str
    subject: str | None
    html: str | None
    whatsapp: dict[str, Any] | None
    version: int
    sms: SmsInfo | None
    created_at: datetime
    updated_at: datetime
    compliance: TemplateCompliance | None = None
    """On create and update: what the tenant's country packs found in the saved text
    (``null`` on reads; ``POST /v1/templates/{id}/compliance`` checks on demand)."""


class TemplateCompliance(Struct):
    """The content check of a saved template: ``packs`` that judged it and their
    ``findings`` (court-document lookalikes and threats refuse the save; a missing
    creditor name, CNPJ or first-contact disclosure is only reported, since placeholders
    and the creditor settings may supply it and the gate checks each rendered message)."""

    country: str
    packs: list[str]
    findings: list[VerdictReason]


class PreviewRequest(Struct, forbid_unknown_fields=True):
    debtor_id: int
    obligation_ids: list[int] = []
    variables: dict[str, str] = {}


class PreviewOut(Struct):
    channel: str
    content: dict[str, Any]
    sms: SmsInfo | None


class MessageCreate(Struct, forbid_unknown_fields=True):
    debtor_id: int
    integration_id: int
    template_id: int
    contact_point_id: int | None = None
    """Default: the debtor's preferred contact point of the right kind."""
    obligation_ids: list[int] = []
    variables: dict[str, str] = {}


class VerdictReason(Struct):
    code: str
    message: str
    source: str
    rule_ref: str | None = None


class Verdict(Struct):
    decision: Literal["allow", "defer", "deny"]
    reasons: list[VerdictReason]
    until: datetime | None = None


class InteractionEventOut(Struct):
    """One timeline step; a timeline is ordered by ``occurred_at`` (else ``at``)."""

    status: str
    at: datetime
    """When Cartera recorded it."""
    occurred_at: datetime | None
    """When the provider says it happened (provider events only)."""
    source: str
    detail: dict[str, Any]


class InteractionOut(Struct):
    id: int
    debtor_id: int | None
    direction: str
    channel: str
    status: str
    integration_id: int | None
    template_id: int | None
    contact_point_id: int | None
    address: str | None
    provider_message_id: str | None
    obligation_ids: list[int]
    content: dict[str, Any] | None
    verdict: dict[str, Any] | None
    trigger: dict[str, Any]
    not_before: datetime | None
    failure_code: str | None
    failure_reason: str | None
    cost: str | None
    cost_currency: str | None
    timeline: list[InteractionEventOut]
    created_at: datetime
    updated_at: datetime


class InteractionRecord(Struct, forbid_unknown_fields=True):
    """A contact made outside Cartera's channels: a call, a visit, a letter."""

    debtor_id: int
    channel: InteractionChannel
    outcome: Literal["completed", "no_answer", "wrong_number", "refused", "sent"]
    note: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    obligation_ids: list[int] = []
    occurred_at: Instant | None = None


class KeywordIn(Struct, forbid_unknown_fields=True):
    keyword: Annotated[str, msgspec.Meta(min_length=2, max_length=64)]


class KeywordOut(Struct):
    id: int
    keyword: str
