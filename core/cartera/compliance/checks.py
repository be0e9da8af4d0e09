"""The read side of /v1/compliance: installed packs, hypothetical checks, the report.

Nothing here writes: a check runs the gate's own code on a debtor (or on explicit fields)
and returns its verdict. (The report is computed from the recorded decisions:
:mod:`cartera.compliance.decisions`.)
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cartera_sdk.compliance import (
    ChargeQuery,
    ContactContent,
    InvalidContact,
    PlannedContact,
    PriorContact,
)
from cartera_sdk.compliancekit import CALENDAR_VERSION, CONTENT_CODES, RulePack
from cartera_sdk.money import Money
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock, money
from cartera.compliance import schemas
from cartera.compliance.service import INVALID_CONFIG, GatePolicy, load_policy
from cartera.errors import Invalid
from cartera.messaging import gate, templates
from cartera.messaging.sending import _contact_point, _days_past_due
from cartera.plugins.host import PluginHost, RegisteredProvider
from cartera.portfolio.models import DebtorBalance
from cartera.portfolio.service import get_debtor, tenant_today
from cartera.tenants.models import Tenant

#: Years a check may plan in: holiday calendars and the 40-day search need real dates.
PLANNABLE_YEARS = (1990, 2200)
#: Where a field of the SDK's PlannedContact comes from in the request.
_FIELDS = {"debtor_timezone": "contact.timezone", "debtor_subdivision": "contact.subdivision",
           "debtor_country": "contact.country", "planned_at": "planned_at"}


def _version(host: PluginHost, registered: RegisteredProvider) -> str | None:
    own = getattr(registered.provider, "version", None)
    if isinstance(own, str):
        return own
    info = host.plugins.get(registered.plugin)
    return info.version if info else None


def _calendar_version(pack: Any) -> str | None:
    return CALENDAR_VERSION if isinstance(pack, RulePack) else None


def packs(host: PluginHost) -> schemas.PackList:
    """Every installed pack with its versions, config schema and rules."""
    out = []
    for registered in sorted(host.providers["compliance"].values(), key=lambda r: r.name):
        pack = registered.provider
        out.append(schemas.PackOut(
            name=pack.name, country=pack.country, plugin=registered.plugin,
            version=_version(host, registered), calendar_version=_calendar_version(pack),
            timezones=list(getattr(pack, "timezones", ()) or ()),
            config_schema=msgspec.json.schema(pack.Config),
            rules=[schemas.RuleOut(code=r.code, title=r.title, description=r.description,
                                   legal_ref=r.legal_ref, verification=r.verification,
                                   configurable=r.configurable) for r in pack.rules()]))
    return schemas.PackList(data=out)


def _content(data: schemas.CheckIn) -> ContactContent | None:
    if data.content is None:
        return None
    return ContactContent(text=data.content.text, kind=data.content.kind,
                          subject=data.content.subject)


def _planned_at(data: schemas.CheckIn) -> datetime:
    at = data.planned_at or clock.now()
    if at.tzinfo is None or at.utcoffset() is None:
        raise Invalid("planned_at must carry a UTC offset", code="naive_instant",
                      param="planned_at")
    if not PLANNABLE_YEARS[0] <= at.year <= PLANNABLE_YEARS[1]:
        raise Invalid(f"planned_at must fall in the years {PLANNABLE_YEARS[0]}-"
                      f"{PLANNABLE_YEARS[1]} (holiday calendars)", code="out_of_range",
                      param="planned_at")
    return at


async def check(session: AsyncSession, host: PluginHost, tenant_id: int,
                data: schemas.CheckIn) -> schemas.CheckOut:
    """The gate's verdict on a hypothetical contact; writes nothing."""
    if (data.debtor_id is None) == (data.contact is None):
        raise Invalid("give either debtor_id or contact", code="one_of_debtor_or_contact",
                      param="debtor_id")
    at = _planned_at(data)
    if data.debtor_id is not None:
        debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
        cp = await _contact_point(session, debtor, data.channel, None)
        verdict = await gate.judge(session, host, debtor, cp, data.channel, at,
                                   await _days_past_due(session, debtor),
                                   content=_content(data), recipient_role=data.recipient_role)
        country = debtor.country
    else:
        assert data.contact is not None
        country = data.contact.country
        policy = await load_policy(session, host, tenant_id)
        verdict = _judge_explicit(host, policy, data, at)
    versions = [schemas.PackVersion(name=r.name, version=_version(host, r),
                                    calendar_version=_calendar_version(r.provider))
                for r in host.providers["compliance"].values()
                if getattr(r.provider, "country", None) == country]
    return schemas.CheckOut(verdict=verdict, packs=versions, planned_at=at)


def _explicit_contact(data: schemas.CheckIn, at: datetime, policy: GatePolicy) -> PlannedContact:
    c = data.contact
    assert c is not None
    try:
        ZoneInfo(c.timezone)
    except (ValueError, ZoneInfoNotFoundError):
        raise Invalid(f"{c.timezone!r} is not an IANA time zone", code="unknown_timezone",
                      param="contact.timezone") from None
    return PlannedContact(
        channel=data.channel, planned_at=at, debtor_country=c.country,
        debtor_timezone=c.timezone, debtor_subdivision=c.subdivision,
        timezone_known=c.timezone_known, recipient_role=data.recipient_role,
        consumer=c.consumer, stage=c.stage, days_past_due=c.days_past_due,
        is_first_contact=c.is_first_contact, in_litigation=c.in_litigation,
        authorized_channels=c.authorized_channels, contact_origin=c.contact_origin,
        content=_content(data), creditor=policy.creditor, recipient_age=c.recipient_age,
        contact_point_use=c.contact_point_use,
        recent_contacts=[PriorContact(channel=p.channel, at=p.at, direct=p.direct,
                                      outcome=p.outcome) for p in c.recent_contacts])


def _judge_explicit(host: PluginHost, policy: GatePolicy, data: schemas.CheckIn,
                    at: datetime) -> Any:
    assert data.contact is not None
    try:
        planned = _explicit_contact(data, at, policy)
        found = gate._packs(host, data.contact.country)
        if not found:
            return gate._no_pack(data.contact.country, policy)
        verdicts = []
        for pack in found:
            config = policy.config_for(pack)
            verdicts.append((pack.name, gate._judge_one(pack, planned, config)
                             if config is INVALID_CONFIG else pack.judge(planned, config)))
    except InvalidContact as exc:
        param = _FIELDS.get(exc.field, f"contact.{exc.field}")
        raise Invalid(str(exc), code="invalid_contact", param=param) from None
    return gate.combine(verdicts)


async def charges(session: AsyncSession, host: PluginHost, debtor_id: int,
                  params: ChargeParams) -> schemas.ChargesCheckOut:
    """Which fees, interest and bureau reports the creditor may add or make today for the
    debtor, per installed pack of its country, and why. Reads only."""
    debtor = await get_debtor(session, debtor_id)
    today = await tenant_today(session, debtor.tenant_id)
    dpd = await _days_past_due(session, debtor)
    balance = await session.scalar(select(DebtorBalance).where(
        DebtorBalance.debtor_id == debtor.id).order_by(DebtorBalance.overdue_minor.desc()))
    overdue = (Money(amount=Decimal(money.from_minor(balance.overdue_minor, balance.currency)),
                     currency=balance.currency) if balance is not None else None)
    query = ChargeQuery(debtor_country=debtor.country, today=today, days_past_due=dpd,
                        overdue=overdue, creditor_kind=params.creditor_kind,
                        uf_value=params.uf_value, notices=params.notices,
                        written_notice=params.written_notice, small_debt=params.small_debt)
    policy = await load_policy(session, host, debtor.tenant_id)
    findings, prescriptions = [], []
    for pack in gate._packs(host, debtor.country):
        if hasattr(pack, "charges"):
            findings += [schemas.ChargeFindingOut(
                source=pack.name, kind=f.kind, allowed=f.allowed, code=f.reason.code,
                message=f.reason.message, rule_ref=f.reason.rule_ref,
                max_amount=str(f.max_amount.amount) if f.max_amount else None,
                currency=f.max_amount.currency if f.max_amount else None,
                lawful_from=f.lawful_from) for f in _pack_charges(pack, query, policy)]
        found = pack.prescription(query) if hasattr(pack, "prescription") else None
        if found is not None:
            prescriptions.append(schemas.PrescriptionOut(
                source=pack.name, time_barred_from=found.time_barred_from,
                code=found.reason.code, message=found.reason.message,
                rule_ref=found.reason.rule_ref, verification=found.verification))
    return schemas.ChargesCheckOut(
        debtor_id=debtor.id, today=today, days_past_due=dpd,
        overdue=str(overdue.amount) if overdue else None,
        currency=overdue.currency if overdue else None, findings=findings,
        prescription=prescriptions)


def _pack_charges(pack: Any, query: ChargeQuery, policy: GatePolicy) -> list[Any]:
    """``pack.charges`` with the tenant's config when the pack takes one (SDK 1.1); a
    stored config the pack no longer accepts falls back to the lawful ``Config()``."""
    try:
        takes_config = len(inspect.signature(pack.charges).parameters) >= 2
    except (TypeError, ValueError):
        takes_config = False
    if not takes_config:
        return list(pack.charges(query))
    config = policy.config_for(pack)
    return list(pack.charges(query, pack.Config() if config is INVALID_CONFIG else config))


@dataclass(frozen=True)
class ChargeParams:
    creditor_kind: Literal["supervised_lender", "other"] = "supervised_lender"
    uf_value: Decimal | None = None
    notices: list[date] = field(default_factory=list)
    written_notice: bool = False
    small_debt: bool = False


#: Content findings no rendering can cure (what the template says in so many words): a
#: template showing one is refused on save. The others (a missing creditor name, CNPJ,
#: first-contact disclosure) may be filled in by placeholders or the tenant's creditor
#: settings at render time, and the gate checks the rendered message before every send:
#: on save they are reported, not refused.
REFUSED_ON_SAVE = frozenset({"court_document_lookalike", "threat", "authority_impersonation",
                             "asks_reason_for_default", "bureau_threat"})
_PLACEHOLDERS = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)


def content_findings(host: PluginHost, policy: GatePolicy, country: str, channel: str,
                     text: str, subject: str | None, kind: Any = "notice",
                     first_contact: bool = False) -> tuple[list[str], list[Any]]:
    """The packs of ``country`` that judged the text, and their content findings (only
    content rules, whatever the hour or recipient)."""
    content = ContactContent(text=text, subject=subject, kind=kind)
    found, names = [], []
    for pack in gate._packs(host, country):
        zones = list(getattr(pack, "timezones", None) or ["UTC"])
        planned = PlannedContact(
            channel=channel, planned_at=clock.now(),  # type: ignore[arg-type]
            debtor_country=country, debtor_timezone=zones[0], content=content,
            is_first_contact=first_contact, creditor=policy.creditor,
            authorized_channels=[channel])  # type: ignore[list-item]
        config = policy.config_for(pack)
        verdict = gate._judge_one(pack, planned, pack.Config() if config is INVALID_CONFIG
                                  else config)
        names.append(pack.name)
        found += [gate._reason(r.code, r.message, pack.name, r.rule_ref)
                  for r in verdict.reasons if r.code in CONTENT_CODES]
    return names, found


async def check_on_save(session: AsyncSession, host: PluginHost, tenant_id: int,
                        channel: str, body: str, subject: str | None
                        ) -> tuple[str, list[str], list[Any]]:
    """The content check of a template being saved, with the tenant's country packs:
    raises :class:`Invalid` (``template_unlawful``, naming ``body`` or ``subject``) on a
    finding of :data:`REFUSED_ON_SAVE` in the template's own words (placeholders
    removed), else returns the country, the packs and every finding."""
    from cartera.tenants.models import Tenant

    country = await session.scalar(select(Tenant.country).where(Tenant.id == tenant_id)) or ""
    if not gate._packs(host, country):
        return country, [], []
    policy = await load_policy(session, host, tenant_id)
    for param, text in (("body", body), ("subject", subject)):
        if not text:
            continue
        _, found = content_findings(host, policy, country, channel,
                                    _PLACEHOLDERS.sub(" ", text), None)
        refused = [f for f in found if f.code in REFUSED_ON_SAVE]
        if refused:
            raise Invalid("; ".join(f"{f.source} {f.code} ({f.rule_ref}): {f.message}"
                                    for f in refused), code="template_unlawful", param=param,
                          extra={"findings": [msgspec.to_builtins(f) for f in refused]})
    names, found = content_findings(host, policy, country, channel, body, subject)
    return country, names, found


async def template_findings(session: AsyncSession, host: PluginHost, tenant_id: int,
                            template_id: int, data: schemas.TemplateCheckIn
                            ) -> schemas.TemplateCheckOut:
    """What the country's packs object to in a template's text (its body and subject as
    written, placeholders included): only content rules, whatever the hour or recipient."""
    template = await templates.get(session, template_id)
    country = data.country or await session.scalar(
        select(Tenant.country).where(Tenant.id == tenant_id)) or ""
    policy = await load_policy(session, host, tenant_id)
    names, found = content_findings(host, policy, country, template.channel, template.body,
                                    template.subject, data.kind, data.first_contact)
    return schemas.TemplateCheckOut(template_id=template.id, country=country, packs=names,
                                    findings=found)
