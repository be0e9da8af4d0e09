"""Reconciliation: what a payment provider reports becomes, once, a Cartera payment.

A notification is only a hint. For each new payment event of a delivery the webhook job
(:mod:`cartera.integrations.webhooks`) calls :func:`reconcile_event`:

1. **re-fetch** the payment from the provider's API (``confirm_payment_event``), with no
   transaction open;
2. **apply** the provider's *current* view in one transaction that takes the debtor's money
   lock (:func:`cartera.payments.locks.lock_debtors`) before reading their money, and marks
   the webhook event processed in the same commit:

   * ``paid``: the first time, one payment (unique on tenant, provider and provider payment
     id), allocated to the link's obligations first (explicit allocations, oldest due
     first) and the rest by the usual rule; the link becomes ``paid``. An amount or
     currency the link did not ask for is recorded ``held`` (unapplied credit) with a
     reconciliation exception. Later views only update what was refunded (a partial
     refund);
   * ``reversed`` (refunded, charged back): the payment is reversed (its allocations are
     released), once;
   * ``open`` / ``failed``: nothing is applied; the link remembers the provider payment so
     the daily recovery (:func:`recover_open_links`) re-fetches it if its webhook is lost;
   * ``disputed`` (in mediation, a chargeback open): the payment stays applied and is
     marked ``disputed_at`` (recorded and applied the first time when the approval was
     never seen: the money was received), with an exception for a person. Lost, the
     provider reports it charged back: ``reversed`` as above. Won, it reports it approved
     again: the mark is cleared (``payment.dispute_won``).

   Then the debtor goes through the chain every payment write does
   (:func:`cartera.portfolio.service.refresh_debtor`, :mod:`cartera.changes`: allocation,
   summary, promises and plans settled, re-segmentation, and the strategy replanned in
   the same transaction: an enrollment whose stop rule now matches stops, a debtor who
   left the bound segment exits, and their planned actions are cancelled).

Because every view is the provider's current one and the payment row is unique, duplicates,
redeliveries and out-of-order notifications (pending, approved, refunded in any order) end
in the same state and never apply twice. A payment or link we do not know is recorded as an
exception (never an error for the provider).
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from cartera_sdk.errors import ProviderError
from cartera_sdk.events import PaymentReceived
from cartera_sdk.money import Money
from cartera_sdk.payments import PaymentEvent, ProviderPayment, confirm_payment_event
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import changes, clock, money
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration, WebhookEvent
from cartera.payments.links import link_id_of
from cartera.payments.locks import lock_debtors
from cartera.payments.models import Allocation, Payment, PaymentLink, ReconciliationException
from cartera.plugins import events as plugin_events
from cartera.plugins.host import PluginCallError, PluginHost
from cartera.portfolio.models import Obligation
from cartera.portfolio.service import refresh_debtor
from cartera.settings import get_settings

log = logging.getLogger("cartera.reconcile")
RECHECK_AFTER = timedelta(days=1)
"""How long a link with a provider-side payment still open waits before it is re-fetched."""
RECOVER_BATCH = 200


def _actor(integration: Integration) -> Actor:
    return Actor(tenant_id=integration.tenant_id, client_id=None, request_id=None)


async def _exception(session: AsyncSession, integration: Integration, ppid: str, kind: str,
                     detail: str, view: ProviderPayment | None = None, *,
                     debtor_id: int | None = None, link_id: int | None = None,
                     payment_id: int | None = None) -> None:
    """Record an exception once per (provider, payment, kind): a redelivery finds it."""
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(module.insert(ReconciliationException).values(
        tenant_id=integration.tenant_id, integration_id=integration.id,
        provider=integration.provider_name, provider_payment_id=ppid[:64], kind=kind,
        detail=detail[:500], debtor_id=debtor_id, payment_link_id=link_id,
        payment_id=payment_id, status="open", created_at=clock.now(),
        provider_view=msgspec.to_builtins(view) if view is not None else {},
    ).on_conflict_do_nothing(
        index_elements=["tenant_id", "provider", "provider_payment_id", "kind"]))


async def _paid_on(session: AsyncSession, tenant_id: int, view: ProviderPayment) -> date:
    tz = await changes.tenant_timezone(session, tenant_id)
    when = view.approved_at or view.created_at
    if when is None:
        return clock.today_in(tz)
    return when.astimezone(ZoneInfo(tz)).date()


async def _link_first(session: AsyncSession, link: PaymentLink, payment: Payment,
                      amount: int) -> None:
    """Explicit allocations of ``amount`` to the link's obligations, oldest due first, up
    to what is left on each (after other explicit allocations)."""
    if not link.obligation_ids:
        return
    rows = (await session.scalars(select(Obligation).where(
        Obligation.id.in_(link.obligation_ids), Obligation.debtor_id == link.debtor_id,
        Obligation.currency == payment.currency, Obligation.kind != "credit_note",
        Obligation.status.in_(("open", "paid"))).order_by(Obligation.due_date,
                                                          Obligation.id))).all()
    taken = dict((await session.execute(
        select(Allocation.obligation_id, Allocation.amount_minor).where(
            Allocation.obligation_id.in_([o.id for o in rows]),
            Allocation.explicit.is_(True)))).all()) if rows else {}
    left = amount
    for o in rows:
        room = o.original_minor - o.prior_paid_minor - int(taken.get(o.id, 0))
        part = min(room, left)
        if part > 0:
            session.add(Allocation(tenant_id=payment.tenant_id, debtor_id=payment.debtor_id,
                                   currency=payment.currency, obligation_id=o.id,
                                   payment_id=payment.id, amount_minor=part, explicit=True))
            left -= part
        if left <= 0:
            break
    await session.flush()


def _minor(value: Money | None, currency: str) -> int:
    if value is None or value.currency != currency:
        return 0
    return money.to_minor(value.amount, currency)


async def _record(session: AsyncSession, integration: Integration, link: PaymentLink,
                  view: ProviderPayment) -> Payment:
    """The payment for a first ``paid`` view: applied when it matches the link, else held
    with an exception."""
    currency = view.amount.currency
    amount = money.to_minor(view.amount.amount, currency)
    refunded = min(_minor(view.refunded_amount, currency), amount)
    mismatch: tuple[str, str] | None = None
    if currency != link.currency:
        mismatch = ("currency_mismatch", f"the link asked for {link.currency}, the payment "
                                         f"is in {currency}")
    elif amount != link.amount_minor:
        mismatch = ("amount_mismatch", f"the link asked for "
                    f"{money.from_minor(link.amount_minor, currency)} {currency}, "
                    f"{money.from_minor(amount, currency)} was paid")
    payment = Payment(
        tenant_id=link.tenant_id, debtor_id=link.debtor_id, currency=currency,
        amount_minor=amount, refunded_minor=refunded, unapplied_minor=amount - refunded,
        paid_on=await _paid_on(session, link.tenant_id, view), method=view.method,
        reference=f"{integration.provider_name}:{view.provider_payment_id}"[:200],
        status="held" if mismatch else "applied", provider=integration.provider_name,
        provider_payment_id=view.provider_payment_id, integration_id=integration.id,
        payment_link_id=link.id)
    session.add(payment)
    await session.flush()
    # The link's check is stamped with its outcome, after the reads above flushed: one
    # UPDATE of the link (apply_view leaves it alone for a payment recorded here).
    if mismatch is None:
        await _link_first(session, link, payment, amount - refunded)
        link.checked_at = clock.now()
        if link.status != "paid":
            link.status = "paid"
            link.payment_id = payment.id
            link.paid_at = clock.now()
            link.status_reason = None
            link.ended_at = link.ended_at or clock.now()
    else:
        link.checked_at = clock.now()
        if link.status == "open":
            link.provider_payment_id = None  # final: nothing left to recover
        await _exception(session, integration, view.provider_payment_id, mismatch[0],
                         mismatch[1], view, debtor_id=link.debtor_id, link_id=link.id,
                         payment_id=payment.id)
    actor = _actor(integration)
    audit.record(session, actor, "payment.received", "payment", payment.id, {
        "debtor_id": link.debtor_id, "amount": money.from_minor(amount, currency),
        "currency": currency, "provider": integration.provider_name,
        "provider_payment_id": view.provider_payment_id, "payment_link_id": link.id,
        "status": payment.status})
    await plugin_events.publish(session, link.tenant_id, "on_payment_received", PaymentReceived(
        **plugin_events.base_fields(link.tenant_id), payment_id=str(payment.id),
        debtor_id=str(link.debtor_id),
        amount=Money(Decimal(money.from_minor(amount, currency)), currency),
        source=f"provider:{integration.provider_name}", integration_id=str(integration.id),
        reference=view.provider_payment_id))
    return payment


async def _reverse(session: AsyncSession, integration: Integration, payment: Payment,
                   why: str) -> None:
    payment.status = "reversed"
    payment.reversed_at = clock.now()
    payment.reversal_reason = why[:500]
    await session.execute(delete(Allocation).where(Allocation.payment_id == payment.id))
    await session.flush()
    audit.record(session, _actor(integration), "payment.reversed", "payment", payment.id,
                 {"debtor_id": payment.debtor_id, "reason": why})


async def apply_view(session: AsyncSession, integration: Integration,
                     view: ProviderPayment) -> str:
    """Apply the provider's current view of one payment, in the caller's transaction (which
    must not have read the debtor's money yet). Returns what happened (for logs and
    tests): ``recorded``, ``held``, ``refunded``, ``reversed``, ``unchanged``, ``pending``,
    ``failed``, ``disputed``, ``dispute_won``, ``unknown_link``."""
    tenant_id, ppid = integration.tenant_id, view.provider_payment_id
    link_id = link_id_of(view.reference)
    link = await session.get(PaymentLink, link_id) if link_id is not None else None
    if link is None or link.tenant_id != tenant_id:
        existing = await session.scalar(select(Payment.id).where(
            Payment.tenant_id == tenant_id, Payment.provider == integration.provider_name,
            Payment.provider_payment_id == ppid))
        if existing is None:
            kind = "unknown_link" if view.reference else "unknown_payment"
            await _exception(session, integration, ppid, kind,
                             f"a {view.status} payment whose reference "
                             f"{view.reference!r} is not one of our payment links", view)
            return "unknown_link"
        payment_row = await session.get(Payment, existing)
        assert payment_row is not None
        debtor_id = payment_row.debtor_id
    else:
        debtor_id = link.debtor_id
    await lock_debtors(session, tenant_id, [debtor_id])
    payment = await session.scalar(select(Payment).where(
        Payment.tenant_id == tenant_id, Payment.provider == integration.provider_name,
        Payment.provider_payment_id == ppid).execution_options(populate_existing=True))
    if link is not None:
        link = await session.get(PaymentLink, link.id, populate_existing=True)
    outcome = "unchanged"
    settlement = view.settlement
    recorded = False
    if settlement == "paid":
        if payment is None:
            assert link is not None
            payment = await _record(session, integration, link, view)
            recorded = True
            outcome = "held" if payment.status == "held" else "recorded"
        elif payment.status != "reversed":
            if payment.disputed_at is not None:
                payment.disputed_at = None
                outcome = "dispute_won"
                audit.record(session, _actor(integration), "payment.dispute_won", "payment",
                             payment.id, {"debtor_id": payment.debtor_id,
                                          "status": view.status})
            refunded = min(_minor(view.refunded_amount, payment.currency), payment.amount_minor)
            if refunded > payment.refunded_minor:
                payment.refunded_minor = refunded
                if refunded >= payment.amount_minor:
                    await _reverse(session, integration, payment, f"refunded at "
                                   f"{integration.provider_name}")
                    outcome = "reversed"
                else:
                    outcome = "refunded"
    elif settlement == "reversed":
        if payment is not None and payment.status != "reversed":
            payment.refunded_minor = max(payment.refunded_minor, min(
                _minor(view.refunded_amount, payment.currency), payment.amount_minor))
            await _reverse(session, integration, payment,
                           f"{view.status} at {integration.provider_name}")
            outcome = "reversed"
    elif settlement == "disputed":
        outcome = "disputed"
        if payment is None and link is not None:
            # First seen in mediation: the money was received (a dispute follows an
            # approval); applied like a paid one until the dispute is lost.
            payment = await _record(session, integration, link, view)
            recorded = True
        if payment is not None and payment.status != "reversed" and payment.disputed_at is None:
            payment.disputed_at = clock.now()
            audit.record(session, _actor(integration), "payment.disputed", "payment",
                         payment.id, {"debtor_id": payment.debtor_id, "status": view.status,
                                      "detail": view.status_detail})
        await _exception(session, integration, ppid, "disputed",
                         f"the payer disputes the payment ({view.status_detail or 'in mediation'})",
                         view, debtor_id=debtor_id, link_id=link.id if link else None,
                         payment_id=payment.id if payment else None)
    else:
        outcome = "pending" if settlement == "open" else "failed"
    if link is not None and not recorded:  # else _record stamped it
        link.checked_at = clock.now()
        if link.status == "open":
            # Remembered while nothing final happened, so a lost webhook is recovered.
            link.provider_payment_id = ppid if settlement == "open" else None
    if recorded or outcome in ("recorded", "held", "refunded", "reversed"):
        await session.flush()
        await refresh_debtor(session, tenant_id, debtor_id,
                             "reversal" if outcome in ("refunded", "reversed") else "payment")
    return outcome


async def _mark(session: AsyncSession, integration_id: int, event_id: str | None,
                status: str, reason: str | None) -> None:
    if event_id is None:
        return
    await session.execute(update(WebhookEvent).where(
        WebhookEvent.integration_id == integration_id, WebhookEvent.event_id == event_id,
        WebhookEvent.status == "received")
        .values(status=status, reason=reason[:200] if reason else None,
                processed_at=clock.now()))


async def _load(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                integration_id: int, integration: Integration | None = None
                ) -> tuple[Integration, Any, Any]:
    if integration is None:
        async with sessionmaker() as session:
            integration = await session.get(Integration, integration_id)
    assert integration is not None
    registered = host.provider("payment", integration.provider_name)
    if registered is None:
        raise LookupError(f"integration {integration_id} has no installed payment provider")
    pctx = integrations.context_for(integration, registered.provider,
                                    get_settings().public_base, host.timeout_seconds)
    return integration, registered.provider, pctx


def _not_found(exc: PluginCallError) -> bool:
    cause = exc.__cause__
    return (isinstance(cause, ProviderError) and cause.kind == "permanent"
            and cause.code in ("payment_not_found", "not_found"))


async def reconcile_event(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                          integration_id: int, event: PaymentEvent,
                          webhook_event_id: str | None = None, *,
                          integration: Integration | None = None) -> str:
    """Re-fetch, then apply, one parsed payment event (see the module docstring); marks the
    stored webhook event ``processed`` in the same transaction. A retryable provider
    failure propagates (the event stays ``received`` and the job is retried).
    ``integration``: the row ``integration_id`` names, when the caller has just read it."""
    integration, provider, pctx = await _load(sessionmaker, host, integration_id, integration)
    try:
        confirmed = await host.call(confirm_payment_event(provider, event, pctx),
                                    what="payment re-fetch")
    except PluginCallError as exc:
        if not _not_found(exc):
            raise
        async with sessionmaker() as session:
            session.info["tenant_id"] = integration.tenant_id
            await _exception(session, integration, event.resource_id or event.event_id,
                             "unknown_payment", f"the provider knows no payment "
                             f"{event.resource_id!r} (notification {event.event_id})")
            await _mark(session, integration_id, webhook_event_id, "processed",
                        "unknown_payment")
            await session.commit()
        return "unknown_payment"
    async with sessionmaker() as session:
        session.info["tenant_id"] = integration.tenant_id
        if confirmed.payment is None:
            await _mark(session, integration_id, webhook_event_id, "ignored",
                        f"not_a_payment: {event.kind} notifications carry no payment to "
                        f"re-fetch; the payment's own notification is applied")
            await session.commit()
            return "ignored"
        outcome = await apply_view(session, integration, confirmed.payment)
        await _mark(session, integration_id, webhook_event_id, "processed", None)
        await session.commit()
    log.info("payment reconciled", extra={"integration_id": integration_id,
                                          "outcome": outcome})
    return outcome


async def recover_open_links(sessionmaker: async_sessionmaker[AsyncSession],
                             host: PluginHost) -> dict[str, int]:
    """Re-fetch the provider payments of open links not checked for :data:`RECHECK_AFTER`
    (a pending payment whose approval webhook may have been lost) and apply what the
    provider says now. Each fetch runs outside any transaction."""
    cutoff = clock.now() - RECHECK_AFTER
    async with sessionmaker() as session:
        rows = (await session.execute(select(
            PaymentLink.id, PaymentLink.integration_id, PaymentLink.provider_payment_id,
            PaymentLink.tenant_id).where(
            PaymentLink.status == "open", PaymentLink.provider_payment_id.is_not(None),
            (PaymentLink.checked_at.is_(None)) | (PaymentLink.checked_at < cutoff))
            .order_by(PaymentLink.checked_at, PaymentLink.id).limit(RECOVER_BATCH))).all()
    counts: dict[str, int] = {}
    for link_id, integration_id, ppid, tenant_id in rows:
        try:
            integration, provider, pctx = await _load(sessionmaker, host, integration_id)
            view = await host.call(provider.fetch_payment(ppid, pctx), what="payment re-fetch")
        except (PluginCallError, LookupError) as exc:
            log.warning("open link recovery failed", extra={"link_id": link_id,
                                                            "error": str(exc)})
            async with sessionmaker() as session:
                await session.execute(update(PaymentLink).where(PaymentLink.id == link_id)
                                      .values(checked_at=clock.now()))
                await session.commit()
            counts["failed_fetch"] = counts.get("failed_fetch", 0) + 1
            continue
        async with sessionmaker() as session:
            session.info["tenant_id"] = tenant_id
            outcome = await apply_view(session, integration, view)
            await session.commit()
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
