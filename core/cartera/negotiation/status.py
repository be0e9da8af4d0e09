"""Keeping promises and installment plans current, set-based.

A status is a function of the debtor's payments and the calendar, so it is *settled* (re-
derived) in SQL over a set of rows, never in a Python loop over them:

* a **promise** is ``kept`` when the debtor's applied payments (net of refunds), in its
  currency, dated from its ``created_on`` through its ``promised_date``, add up to its
  amount; else, once the tenant's business day is past the promised date, ``partly_kept``
  when they paid some of it and ``broken`` when nothing; else ``pending``.
  A payment recorded late but dated in the window keeps a promise the job had marked
  broken; a reversal makes a kept promise pending again (broken if its date has passed).
* a **plan** is ``completed`` when the payments dated from its ``created_on`` reach its
  total; else ``broken`` when some installment is more than :data:`GRACE_DAYS` past due
  (its ``deadline`` has passed) and the payments dated up to that deadline do not cover the
  installments due through it (``cumulative_minor``); else ``active``.
* ``cancelled`` is set by hand and final: settling never touches a cancelled row.

Each promise or plan is judged on its own against the debtor's payments: two promises
whose windows overlap can both be kept by the same payment (payments are allocated to
obligations, not to promises).

Settling runs for one debtor when one of their payments is recorded or reversed (and when
a promise or plan is created), and for every tenant at once from the periodic job
(:mod:`cartera.negotiation.jobs`), which only looks at rows the calendar can change:
pending promises whose promised date has passed and active plans whose next grace deadline
has (indexes ``(status, promised_date)`` and ``(status, next_deadline)``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cartera_sdk.events import PromiseBroken
from cartera_sdk.money import Money
from sqlalchemy import (
    ColumnElement,
    Date,
    and_,
    case,
    exists,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes, money
from cartera.db.base import UtcDateTime, table_of
from cartera.events.outbox import emit_settled
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.payments.models import Payment
from cartera.plugins import events as plugin_events
from cartera.tenants.models import Tenant

GRACE_DAYS = 5
"""Days an installment may stay unpaid after its due date before the plan is broken: with
5, an installment due on the 1st breaks the plan on the 7th (6 days past due) unless the
payments dated up to the 6th cover it and every earlier installment. Fixed on each plan
when it is made (``arrangements.grace_days``, the installments' ``deadline``)."""

_PROMISE_COLUMNS = ("id", "tenant_id", "debtor_id", "status", "currency", "amount_minor",
                    "paid_minor", "promised_date")


@dataclass
class Settled:
    """The rows whose status a settlement changed, with their new status."""

    promises: list[Mapping[str, Any]] = field(default_factory=list)
    arrangements: list[Mapping[str, Any]] = field(default_factory=list)

    @property
    def debtors(self) -> set[tuple[int, int]]:
        """``(tenant_id, debtor_id)`` of every changed row."""
        return {(int(r["tenant_id"]), int(r["debtor_id"]))
                for r in (*self.promises, *self.arrangements)}

    @property
    def broken_promises(self) -> list[Mapping[str, Any]]:
        """Promises that fell due unkept: broken, or partly kept (``paid_amount`` tells)."""
        return [r for r in self.promises if r["status"] in ("broken", "partly_kept")]


def _paid(owner: Any, *, through: Any = None) -> Any:
    """The debtor's payments not reversed in ``owner``'s currency, dated from its
    ``created_on`` (through ``through`` when given), summed: a scalar subquery correlated to
    the ``owner`` row (a promise or a plan)."""
    p = table_of(Payment)
    cond = [p.c.tenant_id == owner.c.tenant_id, p.c.debtor_id == owner.c.debtor_id,
            p.c.currency == owner.c.currency, p.c.status == "applied",
            p.c.paid_on >= owner.c.created_on]
    if through is not None:
        cond.append(p.c.paid_on <= through)
    # correlate_except: ``owner`` may be two levels up (the plan, inside an EXISTS over its
    # installments), where auto-correlation would add it to this FROM instead.
    return (select(func.coalesce(func.sum(p.c.amount_minor - p.c.refunded_minor), 0))
            .where(*cond)
            .correlate_except(p).scalar_subquery())


def _when(flag: ColumnElement[bool], now: datetime) -> Any:
    return case((flag, literal(now, UtcDateTime())), else_=None)


async def settle_promises(session: AsyncSession, where: Sequence[ColumnElement[bool]],
                          today: Any, now: datetime) -> list[Mapping[str, Any]]:
    """Re-derive the promises matching ``where`` (never cancelled ones) as of ``today`` (a
    date, or an expression over the promise row); returns the changed rows."""
    pr = table_of(Promise)
    scope = [*where, pr.c.status != "cancelled"]
    paid = await session.execute(update(pr).where(*scope).values(
        paid_minor=_paid(pr, through=pr.c.promised_date)))
    if not paid.rowcount:  # type: ignore[attr-defined]  # no promise in scope: none changes
        return []
    derived = case((pr.c.paid_minor >= pr.c.amount_minor, "kept"),
                   (and_(pr.c.promised_date < today, pr.c.paid_minor > 0), "partly_kept"),
                   (pr.c.promised_date < today, "broken"), else_="pending")
    changed = await session.execute(
        update(pr).where(*scope, pr.c.status != derived)
        .values(status=derived, kept_at=_when(derived == "kept", now),
                broken_at=_when(derived.in_(("broken", "partly_kept")), now),
                updated_at=literal(now, UtcDateTime()))
        .returning(*[pr.c[c] for c in _PROMISE_COLUMNS]))
    rows: list[Mapping[str, Any]] = [dict(r) for r in changed.mappings()]
    await emit_settled(session, "promise", rows)
    return rows


async def settle_arrangements(session: AsyncSession, where: Sequence[ColumnElement[bool]],
                              today: Any, now: datetime) -> list[Mapping[str, Any]]:
    """Re-derive the plans matching ``where`` (never cancelled ones) as of ``today``;
    returns the changed rows. Active plans get their ``next_deadline`` again."""
    a, i = table_of(Arrangement), table_of(Installment)
    scope = [*where, a.c.status != "cancelled"]
    paid = await session.execute(update(a).where(*scope).values(paid_minor=_paid(a)))
    if not paid.rowcount:  # type: ignore[attr-defined]  # no plan in scope: none changes
        return []
    missed = exists().where(i.c.arrangement_id == a.c.id, i.c.deadline < today,
                            _paid(a, through=i.c.deadline) < i.c.cumulative_minor)
    derived = case((a.c.paid_minor >= a.c.total_minor, "completed"), (missed, "broken"),
                   else_="active")
    changed = await session.execute(
        update(a).where(*scope, a.c.status != derived)
        .values(status=derived, completed_at=_when(derived == "completed", now),
                broken_at=_when(derived == "broken", now), next_deadline=None,
                updated_at=literal(now, UtcDateTime()))
        .returning(a.c.id, a.c.tenant_id, a.c.debtor_id, a.c.status))
    rows: list[Mapping[str, Any]] = [dict(r) for r in changed.mappings()]
    await emit_settled(session, "arrangement", rows)
    upcoming = (select(func.min(i.c.deadline))
                .where(i.c.arrangement_id == a.c.id, i.c.deadline >= today).scalar_subquery())
    await session.execute(update(a).where(*scope, a.c.status == "active")
                          .values(next_deadline=upcoming))
    return rows


async def settle_debtor(session: AsyncSession, tenant_id: int, debtor_id: int, today: date,
                        now: datetime) -> Settled:
    """Re-derive every promise and plan of one debtor (after one of their payments was
    recorded or reversed, or a promise or plan was made), in the caller's transaction, and
    publish ``on_promise_broken`` for the promises it breaks. The caller re-segments."""
    await session.flush()
    return await settle_debtors(session, tenant_id, lambda col: col == debtor_id, today, now)


@changes.step("promises")
async def rederive_promises(session: AsyncSession, change: changes.Change) -> None:
    """The chain's second step: after a money change or a promise or plan made, settle the
    debtor's promises and plans (the segment rules read them)."""
    if change.settle and change.debtor_id is not None:
        await settle_debtor(session, change.tenant_id, change.debtor_id, change.today,
                            change.now)


async def settle_debtors(session: AsyncSession, tenant_id: int,
                         debtors: Callable[[Any], ColumnElement[bool]], today: date,
                         now: datetime) -> Settled:
    """:func:`settle_debtor` for the debtors whose id column satisfies ``debtors`` (e.g.
    those a bulk import touched), set-based; ``on_promise_broken`` is published too."""
    pr, a = table_of(Promise), table_of(Arrangement)
    settled = Settled(
        promises=await settle_promises(
            session, [pr.c.tenant_id == tenant_id, debtors(pr.c.debtor_id)], today, now),
        arrangements=await settle_arrangements(
            session, [a.c.tenant_id == tenant_id, debtors(a.c.debtor_id)], today, now))
    await publish_broken(session, settled.broken_promises)
    return settled


# --- every tenant at once (the periodic job) ----------------------------------------------

async def local_days(session: AsyncSession, now: datetime) -> dict[str, date]:
    """Each tenant time zone in use and its business day at ``now``."""
    zones = (await session.scalars(select(Tenant.timezone).distinct())).all()
    return {tz: now.astimezone(ZoneInfo(tz)).date() for tz in zones}


def local_today(tenant_id: Any, days: Mapping[str, date]) -> Any:
    """The business day of the tenant ``tenant_id`` (a column) as a scalar subquery: a CASE
    over its time zone with the days computed in Python (at most three distinct dates exist
    at any instant), so no dialect-specific time zone arithmetic runs in SQL."""
    t = table_of(Tenant)
    by_day: dict[date, list[str]] = {}
    for tz, day in days.items():
        by_day.setdefault(day, []).append(tz)
    whens = [(t.c.timezone.in_(sorted(zones)), literal(day, Date()))
             for day, zones in sorted(by_day.items())]
    return (select(case(*whens, else_=None)).where(t.c.id == tenant_id)
            .correlate_except(t).scalar_subquery())


async def settle_due(session: AsyncSession, now: datetime,
                     days: Mapping[str, date]) -> Settled:
    """Settle, over every tenant in one statement each, the rows the calendar has changed:
    pending promises whose promised date is before their tenant's business day, and active
    plans whose next grace deadline is; publish ``on_promise_broken`` for those broken."""
    if not days:
        return Settled()
    latest = max(days.values())
    pr, a = table_of(Promise), table_of(Arrangement)
    p_today = local_today(pr.c.tenant_id, days)
    a_today = local_today(a.c.tenant_id, days)
    settled = Settled(
        promises=await settle_promises(session, [
            pr.c.status == "pending", pr.c.promised_date < latest,
            pr.c.promised_date < p_today], p_today, now),
        arrangements=await settle_arrangements(session, [
            a.c.status == "active", a.c.next_deadline < latest,
            a.c.next_deadline < a_today], a_today, now))
    await publish_broken(session, settled.broken_promises)
    return settled


async def publish_broken(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """``on_promise_broken`` for each row (queued in the caller's transaction; nothing is
    queued when no plugin observes the hook)."""
    if not rows or not plugin_events.observed("on_promise_broken"):
        return
    for r in rows:
        currency = str(r["currency"])

        def amount(minor: int, currency: str = currency) -> Money:
            return Money(Decimal(money.from_minor(int(minor), currency)), currency)

        tenant_id = int(r["tenant_id"])
        await plugin_events.publish(session, tenant_id, "on_promise_broken", PromiseBroken(
            **plugin_events.base_fields(tenant_id), promise_id=str(r["id"]),
            debtor_id=str(r["debtor_id"]), promised_amount=amount(r["amount_minor"]),
            paid_amount=amount(r["paid_minor"]), due_date=_as_date(r["promised_date"])))


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def deadline(due: date, grace_days: int = GRACE_DAYS) -> date:
    """The last day a payment counts toward an installment due on ``due``."""
    return due + timedelta(days=grace_days)
