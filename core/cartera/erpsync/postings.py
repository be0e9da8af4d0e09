"""Write-back: payments recorded in Cartera are posted to the ERP through an outbox.

* :func:`sweep` (every minute, and after each sync run) adds one ``pending`` posting per
  payment of an integration with write-back on: payments of any source (self-service,
  payment links, collectors, the API, imports) recorded since write-back was switched on,
  of debtors with open items from that ERP, not reversed, and not themselves brought in
  from the ERP (method ``erp``). Set-based; an existing posting is never added again.
* :func:`post_due` (the ``erp_post`` job) posts the due ``pending`` postings one at a
  time: each is claimed first (a compare-and-set with a lease, so two workers never post
  the same payment at once), then the connector is called **outside any transaction**.
  The posting carries ``cartera-payment-<id>`` as its idempotency key; the connector looks
  that reference up in the ERP before posting, so a retry after a crash or a lost answer
  finds the first post (at least once, never twice).
* Outcomes: ``posted`` (or the ERP's ``duplicate``) with the ERP document id; ``rejected``
  with the ERP's message (a retry would not help); a failed call (ERP down, 5xx, timeout,
  an unknown outcome) stays ``pending`` with the reason in ``message`` and is retried with
  backoff (:data:`BACKOFF_SECONDS`, doubled per attempt, at most :data:`MAX_BACKOFF_SECONDS`).
* A successful posting records its allocations in ``erp_item_payments``: when the ERP's
  paid-to-date of those items comes back in a sync, that part is Cartera's payment and is
  not counted again (see :mod:`cartera.erpsync.sync`). The posted allocations become
  explicit: the ERP applied the payment to those items, so Cartera keeps it there.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from cartera_sdk.erp import ErpAllocation, ErpPaymentPosting, ErpPostingResult
from cartera_sdk.errors import ProviderError
from cartera_sdk.money import Money
from sqlalchemy import and_, bindparam, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.db.base import UtcDateTime
from cartera.erpsync.models import ErpItemPayment, ErpPosting
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.payments.models import Allocation, Payment
from cartera.plugins.host import PluginCallError
from cartera.plugins.registry import current_host
from cartera.portfolio.models import Debtor, Obligation
from cartera.settings import get_settings

log = logging.getLogger("cartera.erpsync")

KIND = "erp_post"
BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0
LEASE_SECONDS = 300.0
"""How long a claimed posting is left to its worker before another may take it."""
BATCH = 100


def idempotency_key(payment_id: int) -> str:
    return f"cartera-payment-{payment_id}"


_SWEEP = """
INSERT INTO erp_postings (tenant_id, integration_id, payment_id, status, attempts,
                          next_attempt_at, created_at)
SELECT p.tenant_id, s.integration_id, p.id, 'pending', 0, :now, :now
FROM erp_sync_settings s
JOIN integrations i ON i.id = s.integration_id AND i.enabled
JOIN payments p ON p.tenant_id = s.tenant_id AND p.created_at >= s.write_back_since
WHERE s.write_back AND s.write_back_since IS NOT NULL {only}
  AND p.status <> 'reversed' AND (p.method IS NULL OR p.method <> 'erp')
  AND NOT EXISTS (SELECT 1 FROM erp_postings e
                  WHERE e.integration_id = s.integration_id AND e.payment_id = p.id)
  AND EXISTS (SELECT 1 FROM obligations o
              JOIN erp_sync_seen n ON n.integration_id = s.integration_id
                                   AND n.external_ref = o.external_ref
              WHERE o.tenant_id = p.tenant_id AND o.debtor_id = p.debtor_id)
ON CONFLICT (integration_id, payment_id) DO NOTHING
"""
"""Concurrent sweeps (two workers' housekeeping) may find the same payment: one adds it."""


async def sweep(sessionmaker: async_sessionmaker[AsyncSession], *,
                integration_id: int | None = None) -> int:
    """Add the postings still missing (see the module doc); returns how many."""
    only = "AND s.integration_id = :only" if integration_id is not None else ""
    params: dict[str, Any] = {"now": clock.now()}
    if integration_id is not None:
        params["only"] = integration_id
    async with sessionmaker() as session, session.begin():
        result = await session.execute(
            text(_SWEEP.format(only=only)).bindparams(bindparam("now", type_=UtcDateTime)),
            params)
    return int(getattr(result, "rowcount", 0) or 0)


async def _claim(sessionmaker: async_sessionmaker[AsyncSession],
                 integration_id: int) -> ErpPosting | None:
    now = clock.now()
    async with sessionmaker() as session, session.begin():
        candidate = await session.scalar(select(ErpPosting.id).where(
            ErpPosting.integration_id == integration_id, ErpPosting.status == "pending",
            ErpPosting.next_attempt_at <= now,
            or_(ErpPosting.claimed_until.is_(None), ErpPosting.claimed_until < now))
            .order_by(ErpPosting.next_attempt_at, ErpPosting.id).limit(1))
        if candidate is None:
            return None
        taken = await session.execute(update(ErpPosting).where(
            ErpPosting.id == candidate, ErpPosting.status == "pending",
            or_(ErpPosting.claimed_until.is_(None), ErpPosting.claimed_until < now))
            .values(claimed_until=now + timedelta(seconds=LEASE_SECONDS),
                    attempts=ErpPosting.attempts + 1, last_attempt_at=now)
            .returning(ErpPosting.id))
        if taken.first() is None:
            return None  # another worker claimed it first; the caller tries again
        posting = await session.get(ErpPosting, candidate)
        assert posting is not None
        session.expunge(posting)
        return posting


async def _posting_for(session: AsyncSession, posting: ErpPosting
                       ) -> tuple[ErpPaymentPosting, list[tuple[str, int]]] | None:
    """The posting to send and its allocations as (item ref, minor units); ``None`` when
    the payment is gone or reversed (nothing to post)."""
    payment = await session.get(Payment, posting.payment_id)
    if payment is None or payment.status == "reversed":
        return None
    debtor_ref = await session.scalar(select(Debtor.external_ref).where(
        Debtor.tenant_id == payment.tenant_id, Debtor.id == payment.debtor_id))
    lines = (await session.execute(
        select(Obligation.external_ref, Allocation.amount_minor)
        .join(Obligation, and_(Obligation.id == Allocation.obligation_id,
                               Obligation.tenant_id == Allocation.tenant_id))
        .where(Allocation.tenant_id == payment.tenant_id,
               Allocation.payment_id == payment.id, Allocation.amount_minor > 0,
               Obligation.external_ref.is_not(None))
        .order_by(Allocation.id))).all()
    allocations = [(str(ref), int(amount)) for ref, amount in lines]
    return ErpPaymentPosting(
        idempotency_key=idempotency_key(payment.id), debtor_external_id=str(debtor_ref),
        amount=Money.from_minor(payment.amount_minor, payment.currency),
        value_date=payment.paid_on,
        reference=(payment.reference or idempotency_key(payment.id))[:100],
        allocations=[ErpAllocation(open_item_external_id=ref,
                                   amount=Money.from_minor(amount, payment.currency))
                     for ref, amount in allocations],
        memo=f"Cartera payment {payment.id}"), allocations


def _backoff(attempts: int) -> float:
    return float(min(BACKOFF_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


async def _post_one(sessionmaker: async_sessionmaker[AsyncSession], integration: Integration,
                    connector: Any, ctx: Any, posting: ErpPosting) -> str:
    t = integration.tenant_id
    async with sessionmaker() as session:
        session.info["tenant_id"] = t
        built = await _posting_for(session, posting)
    if built is None:
        await _settle(sessionmaker, posting, "rejected", None,
                      "the payment was reversed or deleted before it was posted", [])
        return "rejected"
    to_post, allocations = built
    result: ErpPostingResult | None = None
    reason = ""
    try:
        result = await current_host().call(connector.post_payment(to_post, ctx),
                                           what="erp payment post")
        if not isinstance(result, ErpPostingResult):
            raise TypeError("post_payment did not return an ErpPostingResult")
    except PluginCallError as exc:
        cause = exc.__cause__
        reason = str(cause if isinstance(cause, ProviderError) else exc)[:900]
    except Exception as exc:
        reason = f"{type(exc).__name__}"
    if result is None:
        async with sessionmaker() as session, session.begin():
            await session.execute(update(ErpPosting).where(ErpPosting.id == posting.id).values(
                message=reason, claimed_until=None,
                next_attempt_at=clock.now() + timedelta(seconds=_backoff(posting.attempts + 1))))
        return "pending"
    if result.status == "rejected":
        await _settle(sessionmaker, posting, "rejected", None,
                      (result.message or "rejected by the ERP")[:1000], [])
        return "rejected"
    await _settle(sessionmaker, posting, "posted", result.erp_document_id, None, allocations)
    return "posted"


async def _settle(sessionmaker: async_sessionmaker[AsyncSession], posting: ErpPosting,
                  status: str, document: str | None, message: str | None,
                  allocations: list[tuple[str, int]]) -> None:
    async with sessionmaker() as session, session.begin():
        session.info["tenant_id"] = posting.tenant_id
        await session.execute(update(ErpPosting).where(ErpPosting.id == posting.id).values(
            status=status, erp_document_id=document, message=message, claimed_until=None,
            posted_at=clock.now() if status == "posted" else None))
        if allocations:
            # What the ERP booked is where the payment stays applied (see the module doc).
            await session.execute(update(Allocation).where(
                Allocation.tenant_id == posting.tenant_id,
                Allocation.payment_id == posting.payment_id).values(explicit=True))
            await session.execute(insert(ErpItemPayment), [
                {"integration_id": posting.integration_id, "source_key": f"posted:{posting.id}",
                 "external_ref": ref, "amount_minor": amount} for ref, amount in allocations])
        audit.record(session, Actor(posting.tenant_id, None, None), f"erp_posting.{status}",
                     "erp_posting", posting.id,
                     {"payment_id": posting.payment_id, "integration_id": posting.integration_id,
                      "erp_document_id": document, "message": message})


async def post_due(sessionmaker: async_sessionmaker[AsyncSession], integration_id: int,
                   tenant_id: int, *, limit: int = BATCH) -> dict[str, int]:
    """Post up to ``limit`` due postings of the integration; returns counts per outcome."""
    async with sessionmaker() as session:
        session.info["tenant_id"] = tenant_id
        integration = await session.get(Integration, integration_id)
    counts = {"posted": 0, "rejected": 0, "pending": 0}
    if integration is None or not integration.enabled:
        return counts
    registered = current_host().provider("erp", integration.provider_name)
    if registered is None or not getattr(registered.provider, "writes_payments", True):
        return counts
    settings = get_settings()
    ctx = integrations.context_for(integration, registered.provider, settings.public_base,
                                   settings.plugin_timeout_seconds)
    for _ in range(limit):
        posting = await _claim(sessionmaker, integration_id)
        if posting is None:
            break
        outcome = await _post_one(sessionmaker, integration, registered.provider, ctx, posting)
        counts[outcome] += 1
        if outcome == "pending":
            break  # the ERP is failing: the rest wait for their backoff
    return counts


async def due_integrations(sessionmaker: async_sessionmaker[AsyncSession]
                           ) -> list[tuple[int, int]]:
    """(tenant id, integration id) of the integrations with postings due now."""
    now = clock.now()
    async with sessionmaker() as session:
        rows = (await session.execute(select(ErpPosting.tenant_id, ErpPosting.integration_id)
                                      .where(ErpPosting.status == "pending",
                                             ErpPosting.next_attempt_at <= now)
                                      .distinct())).all()
    return [(int(t), int(i)) for t, i in rows]
