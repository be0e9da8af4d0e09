"""Which contact points an address reaches, and marking them unusable for a channel.

Providers write phone numbers their own way: WhatsApp sends digits without the ``+``, and
Mexican (and Argentine) mobiles keep a legacy mobile prefix after the country code
(``521...``, ``549...``) that E.164 as stored by Cartera may or may not have. An address
therefore matches every form it can take (:func:`address_forms`).

A suppression (:data:`~cartera_sdk.channels.SuppressionReason`: hard bounce, spam complaint,
carrier opt-out) is the provider telling us an address cannot receive a channel any more;
it is stored on every matching contact point of the tenant under that channel, with the
reason, and the contact gate refuses the channel there (``suppressed``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.audit.models import AuditEntry
from cartera.db.base import sealed_in
from cartera.portfolio.models import ContactPoint
from cartera.portfolio.service import resegment_debtor

LEGACY_MOBILE_PREFIX = {52: "1", 54: "9"}
"""Country code -> the digit some systems put between it and a 10-digit mobile number."""
_NATIONAL_DIGITS = 10


def address_forms(address: str) -> list[str]:
    """Every stored form of ``address``: itself, and for a phone number its ``+`` form and,
    where a legacy mobile prefix exists, the form with and without it."""
    raw = address.strip()
    digits = raw.removeprefix("+")
    if not digits.isdigit():
        return [raw]
    e164 = "+" + digits
    forms = {raw, e164}
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return sorted(forms)
    prefix = LEGACY_MOBILE_PREFIX.get(number.country_code or 0)
    country = str(number.country_code)
    national = digits[len(country):]
    if prefix and len(national) == _NATIONAL_DIGITS + 1 and national.startswith(prefix):
        forms.add(f"+{country}{national[1:]}")
    elif prefix and len(national) == _NATIONAL_DIGITS:
        forms.add(f"+{country}{prefix}{national}")
    return sorted(forms)


async def matching_points(session: AsyncSession, tenant_id: int,
                          address: str) -> list[ContactPoint]:
    """The tenant's contact points whose value is one of ``address``'s forms, by id
    (values sealed under any live master key: :func:`~cartera.db.base.sealed_in`)."""
    return list((await session.scalars(select(ContactPoint).where(
        ContactPoint.tenant_id == tenant_id,
        sealed_in(ContactPoint.value, address_forms(address))).order_by(ContactPoint.id))).all())


async def suppress(session: AsyncSession, tenant_id: int, address: str, channel: str,
                   reason: str, *, code: str | None, interaction_id: int | None,
                   at: datetime) -> list[ContactPoint]:
    """Mark every contact point ``address`` reaches as unusable for ``channel`` (the first
    suppression of a channel is kept: it says when and why it started). Returns the
    points newly suppressed (their debtors are re-segmented: reachability is a feature)."""
    changed = []
    for cp in await matching_points(session, tenant_id, address):
        current: dict[str, Any] = dict(cp.suppressions or {})
        if channel in current:
            continue
        current[channel] = {"reason": reason, "code": code, "interaction_id": interaction_id,
                            "at": at.isoformat()}
        cp.suppressions = current
        changed.append(cp)
        session.add(AuditEntry(tenant_id=tenant_id, actor="system", client_id=None,
                               request_id=None, action="contact_point.suppressed",
                               resource_type="debtor", resource_id=str(cp.debtor_id),
                               changes={"contact_point_id": cp.id, "channel": channel,
                                        "reason": reason, "code": code}))
    for debtor_id in sorted({cp.debtor_id for cp in changed}):
        await resegment_debtor(session, tenant_id, debtor_id, "delivery_failure")
    return changed
