"""HTTP routes: /v1/payments."""

from __future__ import annotations

from datetime import date

from litestar import Controller, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.api.location import LOCATION
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.payments import schemas, service
from cartera.payments.models import Payment


class PaymentController(Controller):
    path = "/v1/payments"
    tags = ["Payments"]

    @post("/", summary="Record a payment", operation_id="CreatePayment",
          **secured("portfolio:write"))
    async def create(self, data: schemas.PaymentCreate, session: AsyncSession,
                     actor: Actor) -> schemas.PaymentOut:
        """Record money received. Explicit ``allocations`` are applied first; the rest goes to
        the debtor's oldest due obligations in the same currency; any remainder stays as
        unapplied credit. Partial payments leave the obligation open with less outstanding."""
        payment = await service.create_payment(session, actor, data)
        return (await service.payments_out(session, [payment]))[0]

    @get("/", summary="List payments", operation_id="ListPayments", **secured("portfolio:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                   starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                   currency: str | None = None, status: str | None = None,
                   paid_from: date | None = None, paid_to: date | None = None,
                   ) -> Page[schemas.PaymentOut]:
        """Payments in id order."""
        stmt = select(Payment)
        if debtor_id is not None:
            stmt = stmt.where(Payment.debtor_id == debtor_id)
        if currency is not None:
            stmt = stmt.where(Payment.currency == currency)
        if status is not None:
            stmt = stmt.where(Payment.status == status)
        if paid_from is not None:
            stmt = stmt.where(Payment.paid_on >= paid_from)
        if paid_to is not None:
            stmt = stmt.where(Payment.paid_on <= paid_to)
        rows = (await session.scalars(paginate(stmt, Payment.id, limit, starting_after))).all()
        page = page_of(rows, limit, lambda p: p)
        page.data = await service.payments_out(session, page.data)
        return page

    @get("/{payment_id:int}", summary="Get a payment", operation_id="GetPayment",
         **secured("portfolio:read"))
    async def retrieve(self, payment_id: Id, session: AsyncSession) -> schemas.PaymentOut:
        """One payment with its allocations."""
        return (await service.payments_out(
            session, [await service.get_payment(session, payment_id)]))[0]

    @post("/{payment_id:int}/reverse", summary="Reverse a payment",
          operation_id="ReversePayment", opt={LOCATION: "/v1/payments/{id}"},
          **secured("portfolio:write"))
    async def reverse(self, payment_id: Id, data: schemas.PaymentReverse,
                      session: AsyncSession, actor: Actor) -> schemas.PaymentOut:
        """Reverse a bounced or charged-back payment: its allocations are released and the
        obligations it paid are owed again."""
        payment = await service.reverse_payment(session, actor, payment_id, data.reason)
        return (await service.payments_out(session, [payment]))[0]
