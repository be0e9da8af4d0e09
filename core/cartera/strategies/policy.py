"""The tenant's contact policy beyond one contact a day: a minimum gap between two contacts
of a debtor and a cap on contacts in any 7 days (``PUT /v1/strategies/settings``).

The rule is a pure function of a debtor's contact instants (:func:`check`). Those instants
are the contacts made, counted as the contact gate counts them
(:func:`cartera.messaging.gate.counted_contacts`: outbound interactions sent or attempted),
plus the debtor's other contacts already planned (message actions planned or deferred, not
yet dispatched). The planner and dispatch load them set-wise (a few ``IN`` queries per
thousand debtors, :func:`planned_instants`) and call :func:`check` per planned contact; a
contact the policy holds back is ``deferred`` to the earliest instant it allows inside the
step's window, with the reason (``min_contact_gap`` or ``weekly_contact_cap``) in its
verdict, never dropped.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.db.base import UtcDateTime, table_of
from cartera.messaging import gate
from cartera.messaging.models import Interaction
from cartera.portfolio.models import Debtor
from cartera.strategies.models import Action, PlannerSettings, StrategyVersion

WEEK = timedelta(days=7)
MAX_MOVES = 8
"""Instants tried (policy, then window) before a contact is denied."""


@dataclass(frozen=True)
class ContactPolicy:
    min_gap_hours: int | None = None
    weekly_cap: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.min_gap_hours) or self.weekly_cap is not None


async def load_policy(session: AsyncSession, tenant_id: int) -> ContactPolicy:
    row = await session.get(PlannerSettings, tenant_id)
    return ContactPolicy(row.min_gap_hours, row.weekly_cap) if row else ContactPolicy()


@dataclass(frozen=True)
class Held:
    code: str  # min_contact_gap | weekly_contact_cap
    until: datetime
    message: str


def check(policy: ContactPolicy, contacts: Sequence[datetime], at: datetime) -> Held | None:
    """Why a contact at ``at`` breaks the policy, and the earliest instant it would not, or
    None. ``contacts``: the debtor's other contacts (sorted), made or planned."""
    before = list(contacts[:bisect_right(contacts, at)])
    if policy.min_gap_hours and before:
        gap = timedelta(hours=policy.min_gap_hours)
        last = before[-1]
        if at - last < gap:
            return Held("min_contact_gap", last + gap,
                        f"the previous contact was less than {policy.min_gap_hours} hours "
                        "before")
    if policy.weekly_cap is not None:
        window = [c for c in before if c > at - WEEK]
        if len(window) >= policy.weekly_cap:
            oldest = window[len(window) - policy.weekly_cap]
            return Held("weekly_contact_cap", oldest + WEEK,
                        f"{len(window)} contacts in the last 7 days reach the cap of "
                        f"{policy.weekly_cap}")
    return None


def place(policy: ContactPolicy, contacts: Sequence[datetime], at: datetime,
          fit: Callable[[datetime], datetime]) -> tuple[datetime, list[Held]]:
    """The first instant at or after ``at`` that the policy allows and ``fit`` (the step's
    window) keeps, and what held the contact back on the way (empty: allowed at ``at``)."""
    held: list[Held] = []
    for _ in range(MAX_MOVES):
        found = check(policy, contacts, at)
        if found is None:
            return at, held
        held.append(found)
        at = fit(found.until)
    return at, held


def reason(h: Held) -> dict[str, Any]:
    return {"code": h.code, "source": "contact_policy", "rule_ref": None,
            "message": h.message}


async def planned_instants(session: AsyncSession, debtor_ids: Iterable[int],
                           exclude: set[int]) -> dict[int, list[datetime]]:
    """The instants of the debtors' message actions planned or deferred (gated, not yet
    dispatched), and those dispatched without an interaction (a simulation takes contacts
    as sent without one), but those in ``exclude``, by debtor."""
    a = table_of(Action)
    found: dict[int, list[datetime]] = defaultdict(list)
    ids = sorted(set(debtor_ids))
    for i in range(0, len(ids), 1000):
        for action_id, debtor_id, at in (await session.execute(select(
                a.c.id, a.c.debtor_id, a.c.planned_at).where(
                a.c.debtor_id.in_(ids[i:i + 1000]), a.c.kind == "message",
                a.c.verdict.is_not(None),
                or_(a.c.status.in_(("planned", "deferred")),
                    and_(a.c.status == "dispatched", a.c.outcome.is_(None)))))).all():
            if action_id not in exclude:
                found[int(debtor_id)].append(at)
    return found


async def steps_of(session: AsyncSession,
                   version_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = sorted(set(version_ids))
    return {v.id: v.steps for v in (await session.scalars(select(StrategyVersion).where(
        StrategyVersion.id.in_(ids)))).all()} if ids else {}


async def contacts_made(session: AsyncSession, debtor_ids: Iterable[int],
                        since: datetime) -> dict[int, list[datetime]]:
    """The instants of the debtors' contacts made since ``since``, counted as the gate
    counts them, by debtor."""
    found: dict[int, list[datetime]] = defaultdict(list)
    ids = sorted(set(debtor_ids))
    for i in range(0, len(ids), 1000):
        for debtor_id, at in (await session.execute(select(
                Interaction.debtor_id, Interaction.created_at).where(
                Interaction.debtor_id.in_(ids[i:i + 1000]),
                *gate.counted_contacts(since)))).all():
            if debtor_id is not None:
                found[debtor_id].append(at)
    return found


def held_verdict(verdict: dict[str, Any] | None, held: list[Held], at: datetime,
                 denied: bool) -> dict[str, Any]:
    """The gate's verdict with what the policy held back (a deferral to ``at``, or a denial
    when no instant was found)."""
    body = dict(verdict or {})
    body["reasons"] = [*body.get("reasons", []), *[reason(h) for h in held]]
    body["decision"] = "deny" if denied else "defer"
    body["until"] = None if denied else at.isoformat()
    return body


Fit = Callable[[datetime, str, dict[str, Any]], datetime]
"""The first instant at or after an instant inside a step's window in a zone."""


async def hold_planned(session: AsyncSession, tenant_id: int, policy: ContactPolicy,
                       fit: Fit, now: datetime) -> dict[str, int]:
    """Apply the policy to the tenant's planned (gated, allowed) messages not yet
    dispatched: in each debtor's planned order (then strategy priority), a contact the
    policy holds back is deferred to the first instant it allows inside the step's window
    (denied after :data:`MAX_MOVES` tries), with the reason in its verdict. One select of
    the candidates, a few ``IN`` queries for the other contacts, one executemany UPDATE."""
    if not policy.active:
        return {}
    a, d = table_of(Action), table_of(Debtor)
    rows = (await session.execute(select(
        a.c.id, a.c.debtor_id, a.c.version_id, a.c.step_index, a.c.planned_at, a.c.verdict,
        d.c.timezone).join(d, d.c.id == a.c.debtor_id).where(
        a.c.tenant_id == tenant_id, a.c.kind == "message", a.c.status == "planned",
        a.c.verdict.is_not(None)).order_by(a.c.debtor_id, a.c.planned_at, a.c.priority,
                                           a.c.id))).all()
    if not rows:
        return {}
    steps = await steps_of(session, {r.version_id for r in rows})
    debtors = {r.debtor_id for r in rows}
    gap = timedelta(hours=policy.min_gap_hours or 0)
    contacts = await contacts_made(session, debtors, now - WEEK - gap)
    for debtor_id, found in (await planned_instants(session, debtors,
                                                    {r.id for r in rows})).items():
        contacts[debtor_id].extend(found)
    for found in contacts.values():
        found.sort()
    changes = []
    counts = {"held_by_policy": 0, "denied_by_policy": 0}
    for r in rows:
        window = steps[r.version_id][r.step_index]["window"]
        mine = contacts[r.debtor_id]
        zone: str = r.timezone

        def fit_step(t: datetime, z: str = zone, w: dict[str, Any] = window) -> datetime:
            return fit(t, z, w)

        at, held = place(policy, mine, r.planned_at, fit_step)
        denied = bool(held) and check(policy, mine, at) is not None
        if held:
            counts["denied_by_policy" if denied else "held_by_policy"] += 1
            changes.append({"b_id": r.id, "b_status": "denied" if denied else "deferred",
                            "b_verdict": held_verdict(r.verdict, held, at, denied),
                            "b_at": at})
        if not denied:
            mine.insert(bisect_right(mine, at), at)
    if changes:
        await session.execute(update(a).where(a.c.id == bindparam("b_id")).values(
            status=bindparam("b_status"), verdict=bindparam("b_verdict", type_=a.c.verdict.type),
            planned_at=bindparam("b_at", type_=UtcDateTime()), updated_at=now), changes)
    return {k: v for k, v in counts.items() if v}
