"""HTTP routes: /v1/payment-links, /v1/reconciliation/exceptions, refunds of payments."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, Request, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, app_context
from cartera.api.pagination import Id, IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.payments import links, refunds, schemas, service
from cartera.payments.models import PaymentLink, ReconciliationException
from cartera.plugins.registry import current_host


class PaymentLinkController(Controller):
    path = "/v1/payment-links"
    tags = ["Payments"]

    @post("/", summary="Get or create a payment link", operation_id="CreatePaymentLink",
          **secured("portfolio:write"))
    async def create(self, request: Request[Any, Any, Any], data: schemas.PaymentLinkCreate,
                     actor: Actor) -> schemas.PaymentLinkOut:
        """A hosted checkout link through the tenant's payment integration for the
        debtor's balance, a chosen amount within it, or an installment. The debtor's open
        link for the same purpose and amount is returned (``reused``), never a second one;
        another amount replaces it. The provider is called outside any transaction with a
        stable idempotency key, so a retry never makes two links at the provider."""
        ctx = app_context(request)
        async with ctx.sessionmaker() as session:
            session.info["tenant_id"] = actor.tenant_id
            ask = await links.resolve_ask(session, data)
        link, reused = await links.get_or_create_link(ctx.sessionmaker, current_host(), actor,
                                                      ask)
        return links.link_out(link, reused)

    @get("/", summary="List payment links", operation_id="ListPaymentLinks",
         **secured("portfolio:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: IdFilter = None,
                    status: schemas.LinkStatus | None = None,
                    purpose: str | None = None) -> Page[schemas.PaymentLinkOut]:
        """Payment links in id order."""
        stmt = select(PaymentLink)
        if debtor_id is not None:
            stmt = stmt.where(PaymentLink.debtor_id == debtor_id)
        if status is not None:
            stmt = stmt.where(PaymentLink.status == status)
        if purpose is not None:
            stmt = stmt.where(PaymentLink.purpose == purpose)
        rows = (await session.scalars(paginate(stmt, PaymentLink.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, links.link_out)

    @get("/{link_id:int}", summary="Get a payment link", operation_id="GetPaymentLink",
         **secured("portfolio:read"))
    async def retrieve(self, link_id: Id, session: AsyncSession) -> schemas.PaymentLinkOut:
        """One payment link."""
        return links.link_out(await links.get_link(session, link_id))

    @post("/{link_id:int}/cancel", summary="Cancel a payment link",
          operation_id="CancelPaymentLink", status_code=200, **secured("portfolio:write"))
    async def cancel(self, link_id: Id, data: schemas.PaymentLinkCancel, session: AsyncSession,
                     actor: Actor) -> schemas.PaymentLinkOut:
        """Cancel an open link; a payment the provider still takes on it is reconciled
        like any other (money received is never dropped)."""
        return links.link_out(await links.cancel_link(session, actor, link_id, data.reason))


class ReconciliationController(Controller):
    path = "/v1/reconciliation/exceptions"
    tags = ["Payments"]

    @get("/", summary="List reconciliation exceptions",
         operation_id="ListReconciliationExceptions", **secured("portfolio:read"))
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None,
                    status: Literal["open", "resolved"] | None = None,
                    kind: schemas.ExceptionKind | None = None,
                    ) -> Page[schemas.ReconciliationExceptionOut]:
        """What providers reported that could not be applied as it stands: unknown
        payments or links, amounts or currencies a link did not ask for (kept as unapplied
        credit), disputes. Oldest first."""
        stmt = select(ReconciliationException)
        if status is not None:
            stmt = stmt.where(ReconciliationException.status == status)
        if kind is not None:
            stmt = stmt.where(ReconciliationException.kind == kind)
        rows = (await session.scalars(paginate(stmt, ReconciliationException.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, refunds.exception_out)

    @post("/{exception_id:int}/resolve", summary="Resolve a reconciliation exception",
          operation_id="ResolveReconciliationException", status_code=200,
          **secured("portfolio:write"))
    async def resolve(self, exception_id: Id, data: schemas.ReconciliationResolve,
                      session: AsyncSession, actor: Actor) -> schemas.ReconciliationExceptionOut:
        """``apply`` applies a held payment to the debtor's debt; ``dismiss`` closes the
        exception with a note. Audited."""
        return refunds.exception_out(
            await refunds.resolve_exception(session, actor, exception_id, data))


class PaymentRefundController(Controller):
    path = "/v1/payments"
    tags = ["Payments"]

    @post("/{payment_id:int}/refund", summary="Refund a provider payment",
          operation_id="RefundPayment", status_code=200, **secured("portfolio:write"))
    async def refund(self, request: Request[Any, Any, Any], payment_id: Id,
                     data: schemas.PaymentRefund, actor: Actor) -> schemas.PaymentOut:
        """Refund (part of) a payment received through a payment provider: the provider is
        asked (outside any transaction, with a stable idempotency key), then its new view
        is applied like a webhook's. More than what remains is refused and nothing is
        written."""
        ctx = app_context(request)
        await refunds.refund_payment(ctx.sessionmaker, current_host(), actor, payment_id, data)
        async with ctx.sessionmaker() as session:
            session.info["tenant_id"] = actor.tenant_id
            payment = await service.get_payment(session, payment_id)
            return (await service.payments_out(session, [payment]))[0]


ROUTES = [PaymentLinkController, ReconciliationController, PaymentRefundController]
