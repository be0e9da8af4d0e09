"""At activation: does each message step's window ever open lawfully where the tenant's
debtors are?

A window the step allows (weekdays, hours) can still never be lawful: only Sundays in a
country whose pack forbids contacts on Sundays, only evenings where the law stops at
20:00. The planner would then defer or deny every contact of the step, every day. So a
version is refused at activation (422 ``window_never_lawful`` naming
``steps[i].window``, with the country and the packs' reason codes) when, for a place
(country, subdivision, zone) of the tenant's debtors with a compliance pack installed,
no probe instant of the next :data:`PROBE_DAYS` days inside the window is allowed on any
channel of the step.

The probes are pure calls of the packs (:func:`cartera.messaging.gate.judge_planned`),
made per distinct place, never per debtor: a few hundred calls per step and place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cartera_sdk.compliance import InvalidContact, PlannedContact
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.compliance.service import GatePolicy, load_policy
from cartera.messaging import gate
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import Debtor
from cartera.strategies import schemas

PROBE_DAYS = 14
MAX_PLACES = 200
PROBE_MINUTES = (0, 30)


def _countries(host: PluginHost) -> set[str]:
    return {str(getattr(r.provider, "country", "")) for r in
            host.providers["compliance"].values()}


def opens(host: PluginHost, policy: GatePolicy, place: tuple[str, str | None, str],
          window: schemas.WindowIn, channels: Sequence[str], start: datetime
          ) -> tuple[bool, Counter[str]]:
    """Whether some probe instant inside ``window`` over the next :data:`PROBE_DAYS` days
    is allowed in ``place`` on one of ``channels``; else the reason codes met."""
    country, subdivision, zone = place
    tz = ZoneInfo(zone)
    first = start.astimezone(tz).date()
    codes: Counter[str] = Counter()
    for add in range(PROBE_DAYS):
        day = first + timedelta(days=add)
        if day.isoweekday() not in window.weekdays:
            continue
        for hour in range(window.start_hour, window.end_hour):
            for minute in PROBE_MINUTES:
                at = datetime.combine(day, time(hour, minute), tz).astimezone(UTC)
                for channel in channels:
                    try:
                        planned = PlannedContact(
                            channel=channel,  # type: ignore[arg-type]
                            planned_at=at, debtor_country=country,
                            debtor_subdivision=subdivision, debtor_timezone=zone,
                            days_past_due=30,
                            # the question is the window, not a debtor's consent: probe
                            # as a debtor who authorised the channel (CO requires it)
                            authorized_channels=[channel])  # type: ignore[list-item]
                    except InvalidContact:
                        return True, codes  # the gate explains a bad zone per debtor
                    verdict = gate.judge_planned(host, planned, policy)
                    if verdict.decision == "allow":
                        return True, codes
                    codes.update(r.code for r in verdict.reasons)
    return False, codes


async def never_lawful(session: AsyncSession, host: PluginHost, tenant_id: int,
                       steps: list[schemas.StepIn], now: datetime
                       ) -> tuple[int, str, list[str]] | None:
    """(step index, country, reason codes) of the first message step whose window never
    opens lawfully for a place of the tenant's debtors; None when every one opens."""
    countries = _countries(host)
    if not countries or not any(s.kind == "message" for s in steps):
        return None
    places: list[Any] = list((await session.execute(
        select(Debtor.country, Debtor.subdivision, Debtor.timezone).distinct().where(
            Debtor.tenant_id == tenant_id, Debtor.country.in_(sorted(countries)))
        .order_by(Debtor.country, Debtor.subdivision, Debtor.timezone)
        .limit(MAX_PLACES))).all())
    if not places:
        return None
    policy = await load_policy(session, host, tenant_id)
    for i, step in enumerate(steps):
        if step.kind != "message":
            continue
        channels = [c.channel for c in step.channels]
        for place in places:
            ok, codes = opens(host, policy, tuple(place), step.window, channels, now)
            if not ok:
                return i, str(place[0]), [c for c, _ in codes.most_common(5)]
    return None
