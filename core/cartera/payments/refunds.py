"""Refunds of provider payments and the resolution of reconciliation exceptions."""

from __future__ import annotations

from decimal import Decimal

from cartera_sdk.money import Money
from cartera_sdk.payments import RefundRequest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.errors import Conflict, Invalid
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.payments import schemas
from cartera.payments.locks import lock_debtors
from cartera.payments.models import Payment, ReconciliationException
from cartera.payments.reconcile import apply_view
from cartera.payments.service import get_payment
from cartera.plugins.host import PluginHost
from cartera.portfolio.service import parse_amount, refresh_debtor
from cartera.settings import get_settings


async def refund_payment(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                         actor: Actor, payment_id: int, data: schemas.PaymentRefund) -> None:
    """Check, ask the provider (no transaction open), then apply its new view of the
    payment. Every refusal (not a provider payment, reversed, more than what remains) is a
    422/409 with nothing written."""
    async with sessionmaker() as session:
        session.info["tenant_id"] = actor.tenant_id
        payment = await get_payment(session, payment_id)
        if payment.provider_payment_id is None or payment.integration_id is None:
            raise Invalid("only a payment received through a payment provider can be "
                          "refunded here; reverse it instead", code="not_a_provider_payment")
        if payment.status == "reversed":
            raise Conflict("this payment is already reversed", code="already_reversed")
        remaining = payment.amount_minor - payment.refunded_minor
        amount = remaining
        if data.amount is not None:
            amount = parse_amount(data.amount, payment.currency, "amount")
            if amount <= 0:
                raise Invalid("amount must be positive", code="non_positive_amount",
                              param="amount")
            if amount > remaining:
                raise Invalid(
                    f"the refund ({data.amount} {payment.currency}) is more than what remains "
                    f"of the payment ({money.from_minor(remaining, payment.currency)} "
                    f"{payment.currency})", code="refund_exceeds_payment", param="amount")
        integration = await session.get(Integration, payment.integration_id)
        ppid, currency, refunded = (payment.provider_payment_id, payment.currency,
                                    payment.refunded_minor)
    if integration is None or not integration.enabled:
        raise Conflict("the payment's integration is gone or disabled",
                       code="integration_unavailable")
    registered = host.provider("payment", integration.provider_name)
    if registered is None:
        raise Conflict("the payment's provider is not installed", code="provider_not_installed")
    pctx = integrations.context_for(integration, registered.provider, get_settings().public_base,
                                    host.timeout_seconds)
    # Stable across retries of this refund (same payment, same state, same amount).
    key = f"cartera-refund-{payment_id}-{refunded}-{amount}"
    await host.call(registered.provider.refund(RefundRequest(
        provider_payment_id=ppid, idempotency_key=key,
        amount=Money(Decimal(money.from_minor(amount, currency)), currency),
        reason=data.reason), pctx), what="refund")
    view = await host.call(registered.provider.fetch_payment(ppid, pctx), what="payment re-fetch")
    async with sessionmaker() as session:
        session.info["tenant_id"] = actor.tenant_id
        audit.record(session, actor, "payment.refund_requested", "payment", payment_id, {
            "amount": money.from_minor(amount, currency), "currency": currency,
            "reason": data.reason})
        await apply_view(session, integration, view)
        await session.commit()


async def get_exception(session: AsyncSession, exception_id: int) -> ReconciliationException:
    return await get_owned(session, ReconciliationException, exception_id,
                           session.info["tenant_id"], what="reconciliation exception")


async def resolve_exception(session: AsyncSession, actor: Actor, exception_id: int,
                            data: schemas.ReconciliationResolve) -> ReconciliationException:
    row = await get_exception(session, exception_id)
    if row.status != "open":
        raise Conflict("this exception is already resolved", code="already_resolved")
    if data.resolution == "apply":
        payment = await session.get(Payment, row.payment_id) if row.payment_id else None
        if payment is None:
            raise Invalid("only an exception with a held payment can be applied",
                          code="nothing_to_apply", param="resolution")
        await lock_debtors(session, actor.tenant_id, [payment.debtor_id])
        await session.refresh(payment)
        if payment.status != "held":
            raise Conflict(f"the payment is {payment.status}, not held", code="not_held")
        payment.status = "applied"
        await session.flush()
        await refresh_debtor(session, actor.tenant_id, payment.debtor_id)
        audit.record(session, actor, "payment.received", "payment", payment.id, {
            "debtor_id": payment.debtor_id, "status": "applied",
            "amount": money.from_minor(payment.amount_minor, payment.currency),
            "currency": payment.currency, "reconciliation_exception_id": row.id})
    row.status = "resolved"
    row.resolution = data.resolution
    row.note = data.note
    row.resolved_by = actor.name
    row.resolved_at = clock.now()
    await session.flush()
    audit.record(session, actor, "reconciliation_exception.resolved", "reconciliation_exception",
                 row.id, {"resolution": data.resolution, "note": data.note,
                          "debtor_id": row.debtor_id})
    return row


def exception_out(row: ReconciliationException) -> schemas.ReconciliationExceptionOut:
    return schemas.ReconciliationExceptionOut(
        id=row.id, kind=row.kind,  # type: ignore[arg-type]
        detail=row.detail, provider=row.provider, provider_payment_id=row.provider_payment_id,
        integration_id=row.integration_id, debtor_id=row.debtor_id,
        payment_link_id=row.payment_link_id, payment_id=row.payment_id,
        provider_view=dict(row.provider_view or {}),
        status=row.status,  # type: ignore[arg-type]
        resolution=row.resolution, note=row.note, resolved_by=row.resolved_by,
        resolved_at=row.resolved_at, created_at=row.created_at)

