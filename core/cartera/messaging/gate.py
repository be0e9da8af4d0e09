"""The contact gate: the single place that decides whether a contact may happen now.

It checks, in order: a contact point of the right kind exists; consent is not revoked; the
debtor has not opted out of this channel on it; no provider suppressed the channel there
(hard bounce, spam complaint, carrier opt-out); then every compliance pack installed for
the debtor's country (their verdicts: allow, defer until an instant, or deny). The result
always carries machine-readable reasons, and is stored on the interaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import msgspec
from cartera_sdk.compliance import (
    Allow,
    ContactContent,
    Defer,
    Deny,
    InvalidContact,
    PlannedContact,
    PriorContact,
    Reason,
    RecipientRole,
)
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.compliance.service import (
    INVALID_CONFIG,
    ContactFacts,
    GatePolicy,
    contact_facts,
    load_policy,
)
from cartera.messaging import schemas
from cartera.messaging.models import Interaction
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import ContactPoint, Debtor

log = logging.getLogger("cartera.gate")

CONTACT_KINDS: dict[str, tuple[str, ...]] = {
    "sms": ("phone",), "whatsapp": ("whatsapp", "phone"), "email": ("email",),
    "voice": ("phone",), "letter": ("address",), "visit": ("address",),
}
COUNTED_STATUSES = ("sending", "sent", "delivered", "read", "completed", "no_answer")
"""Contacts made. A ``queued`` message is not one (it may be the very one being judged),
unless a provider attempt was already made for it (``attempts > 0``, a retry)."""


def _reason(code: str, message: str, source: str = "gate",
            rule_ref: str | None = None) -> schemas.VerdictReason:
    return schemas.VerdictReason(code=code, message=message, source=source, rule_ref=rule_ref)


def _deny(code: str, message: str) -> schemas.Verdict:
    return schemas.Verdict(decision="deny", reasons=[_reason(code, message)])


def check_contact_point(cp: ContactPoint | None, channel: str) -> schemas.Verdict | None:
    """A denial when the contact point cannot be used for ``channel``, else None."""
    if cp is None:
        return _deny("no_contact_point", f"the debtor has no contact point usable for {channel}")
    if cp.kind not in CONTACT_KINDS[channel]:
        return _deny("wrong_contact_kind", f"a {cp.kind} contact point cannot receive {channel}")
    if cp.consent == "revoked":
        return _deny("consent_revoked", "the debtor revoked consent on this contact point")
    if channel in (cp.opted_out_channels or []):
        return _deny("opted_out", f"the debtor opted out of {channel} on this contact point")
    suppressed = (cp.suppressions or {}).get(channel)
    if suppressed:
        return _deny("suppressed", f"the provider reported {suppressed.get('reason')} for "
                                   f"{channel} on this contact point")
    return None


def counted_contacts(since: datetime) -> list[ColumnElement[bool]]:
    """Conditions on :class:`Interaction` for the outbound contacts made (sent or
    attempted) since an instant: what frequency caps count."""
    return [Interaction.direction == "outbound", Interaction.created_at >= since,
            or_(Interaction.status.in_(COUNTED_STATUSES), Interaction.attempts > 0)]


async def _recent_contacts(session: AsyncSession, debtor_id: int,
                           since: datetime) -> list[PriorContact]:
    rows = (await session.execute(select(
        Interaction.channel, Interaction.created_at, Interaction.status).where(
        Interaction.debtor_id == debtor_id, *counted_contacts(since)))).all()
    return [PriorContact(channel=ch, at=at, outcome=status)  # type: ignore[arg-type]
            for ch, at, status in rows]


def _packs(host: PluginHost, country: str) -> list[Any]:
    return [r.provider for r in host.providers["compliance"].values()
            if getattr(r.provider, "country", None) == country]


async def judge(session: AsyncSession, host: PluginHost, debtor: Debtor,
                cp: ContactPoint | None, channel: str, planned_at: datetime,
                days_past_due: int | None = None, *, content: ContactContent | None = None,
                recipient_role: RecipientRole = "debtor") -> schemas.Verdict:
    """The gate's verdict for contacting ``debtor`` on ``cp`` through ``channel`` then,
    judged with the tenant's own pack configs and the debtor's facts (stage, litigation,
    first contact, authorised channels), on ``content`` when there is some."""
    needs_history = check_contact_point(cp, channel) is None and _packs(host, debtor.country)
    recent = (await _recent_contacts(session, debtor.id, planned_at - timedelta(days=7))
              if needs_history else [])
    policy = await load_policy(session, host, debtor.tenant_id)
    facts = await contact_facts(session, debtor) if needs_history else None
    return decide(host, debtor, cp, channel, planned_at, days_past_due, recent,
                  policy=policy, facts=facts, content=content, recipient_role=recipient_role)


def decide(host: PluginHost, debtor: Debtor, cp: ContactPoint | None, channel: str,
           planned_at: datetime, days_past_due: int | None,
           recent: list[PriorContact], *, policy: GatePolicy | None = None,
           facts: ContactFacts | None = None, content: ContactContent | None = None,
           recipient_role: RecipientRole = "debtor") -> schemas.Verdict:
    """:func:`judge` with the debtor's contacts of the last 7 days already loaded. Without
    ``facts`` the debtor's attributes are read and the contact is not taken as a first
    contact (that is decided, with the content, when the message is created by
    :func:`judge`); without ``policy``, each pack's ``Config()`` and the allow-with-reason
    default for countries with no pack."""
    denied = check_contact_point(cp, channel)
    if denied is not None:
        return denied
    policy = policy or GatePolicy()
    packs = _packs(host, debtor.country)
    if not packs:
        return _no_pack(debtor.country, policy)
    planned = planned_contact(debtor, cp, channel, planned_at, days_past_due, recent,
                              facts=facts, content=content, recipient_role=recipient_role,
                              policy=policy)
    if isinstance(planned, schemas.Verdict):
        return planned
    return combine([(pack.name, _judge_one(pack, planned, policy.config_for(pack)))
                    for pack in packs])


#: Contact-point labels read as a work phone, e-mail or address (CABA Ley 6171).
WORK_LABELS = frozenset({"work", "trabajo", "laboral", "oficina", "office", "empresa",
                         "business", "trabalho"})


def _no_pack(country: str, policy: GatePolicy) -> schemas.Verdict:
    if policy.unknown_country == "deny":
        return _deny("no_compliance_pack", f"no compliance pack is installed for {country}; "
                     "the tenant denies contacts to countries without one")
    return schemas.Verdict(decision="allow", reasons=[_reason(
        "no_compliance_pack", f"no compliance pack is installed for {country}")])


def planned_contact(debtor: Debtor, cp: ContactPoint | None, channel: str,
                    planned_at: datetime, days_past_due: int | None,
                    recent: list[PriorContact], *, facts: ContactFacts | None,
                    content: ContactContent | None, recipient_role: RecipientRole,
                    policy: GatePolicy) -> PlannedContact | schemas.Verdict:
    """Everything the packs judge, or a denial naming the bad field of the debtor's data
    (an unknown zone, a naive instant): never a silent allow."""
    attributes = debtor.attributes or {}
    if facts is None:
        declared = attributes.get("authorized_channels")
        facts = ContactFacts(
            in_litigation=attributes.get("in_litigation") is True, is_first_contact=False,
            authorized_channels=[str(c) for c in declared] if isinstance(declared, list)
            else None)
    try:
        return PlannedContact(
            channel=channel,  # type: ignore[arg-type]
            planned_at=planned_at, debtor_country=debtor.country,
            debtor_subdivision=debtor.subdivision, debtor_timezone=debtor.timezone,
            consumer=debtor.kind == "person", days_past_due=days_past_due,
            recent_contacts=list(recent), recipient_role=recipient_role, stage=facts.stage,
            in_litigation=facts.in_litigation, is_first_contact=facts.is_first_contact,
            authorized_channels=facts.authorized_channels,  # type: ignore[arg-type]
            contact_origin=cp.origin if cp is not None and cp.origin in (
                "debtor_provided", "found") else None,  # type: ignore[arg-type]
            content=content, creditor=policy.creditor,
            contact_point_use="work" if cp is not None and (cp.label or "").strip().lower()
            in WORK_LABELS else None)
    except InvalidContact as exc:
        return _deny("invalid_contact_data", f"the debtor's {exc}")


def _judge_one(pack: Any, planned: PlannedContact, config: Any) -> Allow | Defer | Deny:
    if config is INVALID_CONFIG:
        return Deny(reasons=[Reason(code="compliance_config_invalid", message=(
            f"the tenant's {pack.name} config is no longer valid; contact withheld"))])
    try:
        verdict = pack.judge(planned, config)
    except InvalidContact as exc:  # the debtor's data does not fit the country
        return Deny(reasons=[Reason(code="invalid_contact_data",
                                    message=f"{pack.name}: the debtor's {exc}")])
    except Exception as exc:  # fail closed: a broken pack must not let a contact through
        log.error("compliance pack failed", extra={"pack": pack.name,
                                                   "error": type(exc).__name__})
        return Deny(reasons=[Reason(code="compliance_pack_failed",
                                    message=f"pack {pack.name} failed; contact withheld")])
    return verdict  # type: ignore[no-any-return]


def combine(verdicts: list[tuple[str, Allow | Defer | Deny]]) -> schemas.Verdict:
    """Deny beats defer beats allow; a defer waits for the latest instant asked."""
    reasons = [_reason(r.code, r.message, source, r.rule_ref)
               for source, v in verdicts for r in v.reasons]
    if any(isinstance(v, Deny) for _, v in verdicts):
        return schemas.Verdict(decision="deny", reasons=reasons)
    defers = [v.until for _, v in verdicts if isinstance(v, Defer)]
    if defers:
        return schemas.Verdict(decision="defer", reasons=reasons, until=max(defers))
    return schemas.Verdict(decision="allow", reasons=reasons)


def as_json(verdict: schemas.Verdict) -> dict[str, Any]:
    return msgspec.to_builtins(verdict)  # type: ignore[no-any-return]
