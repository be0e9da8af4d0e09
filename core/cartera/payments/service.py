"""Recording and reversing payments; allocation itself is set-based (see ``allocation``)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Literal, cast

from cartera_sdk.events import PaymentReceived
from cartera_sdk.money import Money
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.erpsync.models import ErpPosting
from cartera.errors import Conflict, Invalid
from cartera.payments import schemas
from cartera.payments.models import Allocation, Payment, PaymentStatus
from cartera.plugins import events as plugin_events
from cartera.portfolio.locks import lock_debtors
from cartera.portfolio.models import Debtor, Obligation
from cartera.portfolio.service import (
    _flush_unique,
    check_currency,
    get_debtor,
    parse_amount,
    refresh_debtor,
)


async def _debtor_for(session: AsyncSession, data: schemas.PaymentCreate) -> Debtor:
    if data.debtor_id is not None:
        return await get_debtor(session, data.debtor_id, param="debtor_id")
    if data.debtor_external_ref is not None:
        debtor = await session.scalar(select(Debtor).where(
            Debtor.external_ref == data.debtor_external_ref))
        if debtor is None:
            raise Invalid(f"no debtor with external_ref {data.debtor_external_ref!r}",
                          code="unknown_debtor", param="debtor_external_ref")
        return debtor
    raise Invalid("give debtor_id or debtor_external_ref", code="missing_debtor", param="debtor_id")


async def _explicit_allocations(session: AsyncSession, debtor: Debtor,
                                data: schemas.PaymentCreate, amount: int) -> list[tuple[int, int]]:
    chosen: list[tuple[int, int]] = []
    for i, alloc in enumerate(data.allocations):
        param = f"allocations[{i}]"
        obligation = await session.get(Obligation, alloc.obligation_id)
        if obligation is None or obligation.debtor_id != debtor.id:
            raise Invalid(f"obligation {alloc.obligation_id} is not one of this debtor's",
                          code="unknown_obligation", param=f"{param}.obligation_id")
        if obligation.currency != data.currency:
            raise Invalid(f"obligation {obligation.id} is in {obligation.currency}, the payment "
                          f"in {data.currency}", code="currency_mismatch", param=param)
        if obligation.kind == "credit_note" or obligation.status not in ("open", "paid"):
            raise Invalid(f"obligation {obligation.id} cannot take payments "
                          f"({obligation.kind}, {obligation.status})",
                          code="obligation_not_payable", param=param)
        value = parse_amount(alloc.amount, data.currency, f"{param}.amount")
        if value <= 0:
            raise Invalid("allocation amounts must be positive", param=f"{param}.amount")
        chosen.append((obligation.id, value))
    if sum(v for _, v in chosen) > amount:
        raise Invalid("allocations add up to more than the payment", code="over_allocated",
                      param="allocations")
    await _check_room(session, debtor.id, chosen)
    return chosen


async def _check_room(session: AsyncSession, debtor_id: int, chosen: list[tuple[int, int]]) -> None:
    """Explicit allocations may not exceed what is left after other explicit allocations."""
    wanted: dict[int, int] = defaultdict(int)
    for obligation_id, value in chosen:
        wanted[obligation_id] += value
    for obligation_id, value in wanted.items():
        obligation = await session.get(Obligation, obligation_id)
        assert obligation is not None
        taken = sum((await session.scalars(select(Allocation.amount_minor).where(
            Allocation.obligation_id == obligation_id, Allocation.explicit.is_(True)))).all())
        room = obligation.original_minor - obligation.prior_paid_minor - taken
        if value > room:
            raise Invalid(f"obligation {obligation_id} has only "
                          f"{money.from_minor(room, obligation.currency)} left to pay",
                          code="allocation_exceeds_outstanding", param="allocations")


async def create_payment(session: AsyncSession, actor: Actor,
                         data: schemas.PaymentCreate) -> Payment:
    check_currency(data.currency)
    debtor = await _debtor_for(session, data)
    await lock_debtors(session, actor.tenant_id, [debtor.id])
    amount = parse_amount(data.amount, data.currency, "amount")
    if amount <= 0:
        raise Invalid("amount must be positive", code="non_positive_amount", param="amount")
    chosen = await _explicit_allocations(session, debtor, data, amount)
    payment = Payment(tenant_id=actor.tenant_id, external_ref=data.external_ref,
                      debtor_id=debtor.id, currency=data.currency, amount_minor=amount,
                      unapplied_minor=amount, paid_on=data.paid_on, method=data.method,
                      reference=data.reference)
    session.add(payment)
    await _flush_unique(session, f"a payment with external_ref {data.external_ref!r} exists",
                        "external_ref")
    for obligation_id, value in chosen:
        session.add(Allocation(tenant_id=actor.tenant_id, debtor_id=debtor.id,
                               currency=data.currency, obligation_id=obligation_id,
                               payment_id=payment.id, amount_minor=value, explicit=True))
    await session.flush()
    await refresh_debtor(session, actor.tenant_id, debtor.id, "payment")
    await session.refresh(payment)
    audit.record(session, actor, "payment.received", "payment", payment.id,
                 {"debtor_id": debtor.id, "amount": data.amount, "currency": data.currency})
    await plugin_events.publish(session, actor.tenant_id, "on_payment_received",
                                PaymentReceived(**plugin_events.base_fields(actor.tenant_id),
                                                payment_id=str(payment.id),
                                                debtor_id=str(debtor.id),
                                                amount=Money(Decimal(data.amount), data.currency),
                                                source="api", reference=data.reference))
    return payment


async def get_payment(session: AsyncSession, payment_id: int) -> Payment:
    return await get_owned(session, Payment, payment_id, session.info["tenant_id"],
                           what="payment")


async def reverse_payment(session: AsyncSession, actor: Actor, payment_id: int,
                          reason: str) -> Payment:
    """Mark a payment reversed (bounced, charged back); what it paid becomes owed again."""
    payment = await get_payment(session, payment_id)
    await lock_debtors(session, actor.tenant_id, [payment.debtor_id])
    await session.refresh(payment)  # as the writer before us left it
    if payment.status == "reversed":
        raise Conflict("this payment is already reversed", code="already_reversed")
    payment.status = "reversed"
    payment.reversed_at = clock.now()
    payment.reversal_reason = reason
    await session.execute(delete(Allocation).where(Allocation.payment_id == payment.id))
    await session.flush()
    await refresh_debtor(session, actor.tenant_id, payment.debtor_id, "reversal")
    await session.refresh(payment)
    audit.record(session, actor, "payment.reversed", "payment", payment.id,
                 {"debtor_id": payment.debtor_id, "reason": reason})
    return payment


async def payments_out(session: AsyncSession, payments: list[Payment]) -> list[schemas.PaymentOut]:
    ids = [p.id for p in payments]
    allocs: dict[int, list[schemas.AllocationOut]] = defaultdict(list)
    postings = await _erp_postings(session, payments[0].tenant_id, ids) if ids else {}
    if ids:
        for a in await session.scalars(select(Allocation).where(Allocation.payment_id.in_(ids))
                                       .order_by(Allocation.id)):
            assert a.payment_id is not None
            allocs[a.payment_id].append(schemas.AllocationOut(
                obligation_id=a.obligation_id, amount=money.from_minor(a.amount_minor, a.currency),
                explicit=a.explicit))
    return [
        schemas.PaymentOut(
            id=p.id, external_ref=p.external_ref, debtor_id=p.debtor_id, currency=p.currency,
            amount=money.from_minor(p.amount_minor, p.currency),
            unapplied_amount=money.from_minor(p.unapplied_minor, p.currency), paid_on=p.paid_on,
            method=p.method, reference=p.reference, status=cast(PaymentStatus, p.status),
            reversed_at=p.reversed_at, reversal_reason=p.reversal_reason,
            allocations=allocs[p.id], created_at=p.created_at,
            refunded_amount=money.from_minor(p.refunded_minor or 0, p.currency),
            provider=p.provider, provider_payment_id=p.provider_payment_id,
            payment_link_id=p.payment_link_id, disputed_at=p.disputed_at,
            erp_posting=postings.get(p.id))
        for p in payments
    ]


async def _erp_postings(session: AsyncSession, tenant_id: int, ids: list[int]
                        ) -> dict[int, schemas.PaymentErpPosting]:
    """The ERP write-back postings of payments ``ids`` (one indexed lookup; the latest per
    payment when several integrations post it)."""
    found: dict[int, schemas.PaymentErpPosting] = {}
    for e in await session.scalars(select(ErpPosting).where(
            ErpPosting.tenant_id == tenant_id,
            ErpPosting.payment_id.in_(ids)).order_by(ErpPosting.id)):
        found[e.payment_id] = schemas.PaymentErpPosting(
            integration_id=e.integration_id,
            status=cast(Literal["pending", "posted", "rejected"], e.status),
            erp_document_id=e.erp_document_id, message=e.message, attempts=e.attempts,
            last_attempt_at=e.last_attempt_at, posted_at=e.posted_at)
    return found
