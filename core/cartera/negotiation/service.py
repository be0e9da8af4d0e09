"""Negotiation use cases: record and cancel promises to pay and installment plans.

Every function works inside the caller's tenant-scoped session, audits its writes there
and re-segments the debtor in the same transaction (segment rules read
``broken_promises`` and ``active_installment_plan``). Statuses are kept current by
:mod:`cartera.negotiation.status`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import changes, clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.errors import Conflict, Invalid
from cartera.negotiation import schemas
from cartera.negotiation.models import Arrangement, Installment, Promise
from cartera.negotiation.status import GRACE_DAYS, deadline
from cartera.portfolio.service import (
    check_currency,
    get_debtor,
    parse_amount,
    tenant_today,
)

_Row = TypeVar("_Row", Promise, Arrangement)


def _positive(value: str, currency: str, param: str) -> int:
    minor = parse_amount(value, currency, param)
    if minor <= 0:
        raise Invalid("amounts must be positive", code="non_positive_amount", param=param)
    return minor


# --- promises -----------------------------------------------------------------------------

async def create_promise(session: AsyncSession, actor: Actor,
                         data: schemas.PromiseCreate) -> Promise:
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    check_currency(data.currency)
    amount = _positive(data.amount, data.currency, "amount")
    today = await tenant_today(session, actor.tenant_id)
    if data.promised_date < today:
        raise Invalid(f"promised_date {data.promised_date.isoformat()} is before today "
                      f"({today.isoformat()} in the tenant's time zone)", code="date_in_past",
                      param="promised_date")
    promise = Promise(tenant_id=actor.tenant_id, debtor_id=debtor.id, currency=data.currency,
                      amount_minor=amount, paid_minor=0, promised_date=data.promised_date,
                      created_on=today, channel=data.channel, note=data.note,
                      status="pending", created_by=actor.name)
    session.add(promise)
    await session.flush()
    # A payment already recorded today counts: the promise may be kept at once.
    await changes.debtor_changed(session, actor.tenant_id, debtor.id, "promise_made")
    await session.refresh(promise)
    audit.record(session, actor, "promise.created", "promise", promise.id,
                 {"debtor_id": debtor.id, "amount": data.amount, "currency": data.currency,
                  "promised_date": data.promised_date.isoformat()})
    return promise


async def _get(session: AsyncSession, model: type[_Row], row_id: int, noun: str) -> _Row:
    """The tenant's row ``row_id`` of ``model`` (404 naming ``noun`` otherwise)."""
    return await get_owned(session, model, row_id, session.info["tenant_id"], what=noun)


def listing(model: type[_Row], debtor_id: int | None, status: str | None) -> Select[Any]:
    """The tenant's promises or plans, of one debtor and in one status when given."""
    stmt = select(model)
    if debtor_id is not None:
        stmt = stmt.where(model.debtor_id == debtor_id)
    if status is not None:
        stmt = stmt.where(model.status == status)
    return stmt


async def _cancel(session: AsyncSession, actor: Actor, row: _Row, *, open_status: str,
                  code: str, reason: str | None) -> _Row:
    """Cancel ``row`` (a promise or plan), which must be in ``open_status`` (409 ``code``
    otherwise: the other statuses are facts), re-segment its debtor and audit it."""
    await session.refresh(row, with_for_update=True)
    kind = row.__tablename__.removesuffix("s")
    if row.status != open_status:
        raise Conflict(f"only {open_status} {kind}s can be cancelled; this one is "
                       f"{row.status}", code=code)
    row.status, row.cancelled_at, row.cancel_reason = "cancelled", clock.now(), reason
    await session.flush()
    await changes.debtor_changed(session, actor.tenant_id, row.debtor_id, f"{kind}_cancelled")
    await session.refresh(row)
    audit.record(session, actor, f"{kind}.cancelled", kind, row.id,
                 {"debtor_id": row.debtor_id, "reason": reason})
    return row


async def get_promise(session: AsyncSession, promise_id: int) -> Promise:
    return await _get(session, Promise, promise_id, "promise")


async def cancel_promise(session: AsyncSession, actor: Actor, promise_id: int,
                         reason: str | None) -> Promise:
    """Cancel a pending promise (409 otherwise: kept and broken ones are facts)."""
    return await _cancel(session, actor, await get_promise(session, promise_id),
                         open_status="pending", code="promise_not_pending", reason=reason)


def promise_out(p: Promise) -> schemas.PromiseOut:
    return schemas.PromiseOut(
        id=p.id, debtor_id=p.debtor_id, currency=p.currency,
        amount=money.from_minor(p.amount_minor, p.currency),
        paid_amount=money.from_minor(p.paid_minor, p.currency), promised_date=p.promised_date,
        created_on=p.created_on, status=p.status,  # type: ignore[arg-type]
        channel=p.channel, note=p.note, created_by=p.created_by, kept_at=p.kept_at,
        broken_at=p.broken_at, cancelled_at=p.cancelled_at, cancel_reason=p.cancel_reason,
        created_at=p.created_at, updated_at=p.updated_at)


# --- installment plans --------------------------------------------------------------------

async def create_arrangement(session: AsyncSession, actor: Actor,
                             data: schemas.ArrangementCreate) -> Arrangement:
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    check_currency(data.currency)
    today = await tenant_today(session, actor.tenant_id)
    if not data.installments:
        raise Invalid("a plan has at least one installment", code="no_installments",
                      param="installments")
    amounts: list[int] = []
    for i, item in enumerate(data.installments):
        param = f"installments[{i}]"
        amounts.append(_positive(item.amount, data.currency, f"{param}.amount"))
        if i == 0 and item.due_date < today:
            raise Invalid(f"the first installment is due {item.due_date.isoformat()}, before "
                          f"today ({today.isoformat()} in the tenant's time zone)",
                          code="date_in_past", param=f"{param}.due_date")
        if i > 0 and item.due_date <= data.installments[i - 1].due_date:
            raise Invalid("installment due dates must be strictly increasing",
                          code="installments_out_of_order", param=f"{param}.due_date")
    plan = Arrangement(tenant_id=actor.tenant_id, debtor_id=debtor.id, currency=data.currency,
                       total_minor=sum(amounts), paid_minor=0, created_on=today,
                       grace_days=GRACE_DAYS, note=data.note, status="active",
                       created_by=actor.name)
    session.add(plan)
    await session.flush()
    cumulative = 0
    for number, (item, amount) in enumerate(zip(data.installments, amounts, strict=True), 1):
        cumulative += amount
        session.add(Installment(tenant_id=actor.tenant_id, arrangement_id=plan.id,
                                number=number, due_date=item.due_date, amount_minor=amount,
                                cumulative_minor=cumulative,
                                deadline=deadline(item.due_date, GRACE_DAYS)))
    await session.flush()
    await changes.debtor_changed(session, actor.tenant_id, debtor.id, "arrangement_made")
    await session.refresh(plan)
    audit.record(session, actor, "arrangement.created", "arrangement", plan.id,
                 {"debtor_id": debtor.id, "currency": data.currency,
                  "total": money.from_minor(plan.total_minor, plan.currency),
                  "installments": len(amounts)})
    return plan


async def get_arrangement(session: AsyncSession, arrangement_id: int) -> Arrangement:
    return await _get(session, Arrangement, arrangement_id, "arrangement")


async def cancel_arrangement(session: AsyncSession, actor: Actor, arrangement_id: int,
                             reason: str | None) -> Arrangement:
    """Cancel an active plan (409 otherwise)."""
    plan = await get_arrangement(session, arrangement_id)
    plan.next_deadline = None
    return await _cancel(session, actor, plan, open_status="active",
                         code="arrangement_not_active", reason=reason)


async def arrangements_out(session: AsyncSession,
                           plans: Sequence[Arrangement]) -> list[schemas.ArrangementOut]:
    """Plans with their installments, loaded in one query whatever the page size."""
    ids = [p.id for p in plans]
    items: dict[int, list[Installment]] = defaultdict(list)
    if ids:
        for row in await session.scalars(select(Installment).where(
                Installment.arrangement_id.in_(ids)).order_by(Installment.arrangement_id,
                                                              Installment.number)):
            items[row.arrangement_id].append(row)
    return [
        schemas.ArrangementOut(
            id=p.id, debtor_id=p.debtor_id, currency=p.currency,
            total=money.from_minor(p.total_minor, p.currency),
            paid_amount=money.from_minor(p.paid_minor, p.currency),
            status=p.status,  # type: ignore[arg-type]
            grace_days=p.grace_days,
            installments=[schemas.InstallmentOut(
                number=i.number, due_date=i.due_date,
                amount=money.from_minor(i.amount_minor, p.currency), grace_until=i.deadline)
                for i in items[p.id]],
            created_on=p.created_on, note=p.note, created_by=p.created_by,
            completed_at=p.completed_at, broken_at=p.broken_at, cancelled_at=p.cancelled_at,
            cancel_reason=p.cancel_reason, created_at=p.created_at, updated_at=p.updated_at)
        for p in plans
    ]
