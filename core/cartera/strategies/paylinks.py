"""Payment links of strategy message steps (a step's ``payment_link`` option).

A message step with ``payment_link: {amount: balance|offer|installment}`` sends the debtor a
link to pay (``{{ links.payment }}``), got or made through the tenant's payment integration.
The provider is never called inside the dispatch transaction:

1. **Hold** (in the dispatch transaction, :func:`hold` and :func:`enqueue`): the queued
   interaction carries the step's option under :data:`PENDING` in its ``variables`` and a
   ``not_before`` :data:`HOLD` ahead, so the batch sender does not take it yet; one
   ``strategies.payment_links`` job for the batch's interactions commits with them.
2. **Make** (the job, :func:`payment_links_job`): per debtor and option, concurrently (at
   most :data:`CONCURRENCY` calls), the amount is resolved in a short read, then
   :func:`cartera.payments.links.get_or_create_link` reuses the debtor's open link for
   that purpose or makes one (its own short transactions around the provider call, the
   link's stable idempotency key on a retry).
3. **Release** (one short transaction for the job's interactions, executemany UPDATEs):
   the URL goes into each interaction's ``payment_link`` variable, the marker is dropped,
   ``not_before`` cleared and the integrations' batch jobs made to wait: they render and
   gate the messages as any other.

A link that cannot be made for good (nothing to pay, no live offer or plan, the provider
refuses) fails the interaction ``payment_link_unavailable``: a message that promises a link
is never sent without one. A retryable provider failure leaves the interaction held and
fails the job, which is retried; should the hold run out first, the batch sender fails the
interaction the same way (see :mod:`cartera.messaging.batch`).

At activation (:func:`check_activation`) a version with such a step needs the tenant's
payment integration: 422 naming ``steps[i].payment_link`` otherwise.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cartera_sdk.errors import ProviderError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock, money
from cartera.api.context import Actor
from cartera.db.base import table_of
from cartera.db.engine import tenant_session
from cartera.errors import CarteraError, Invalid
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.messaging import batch
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.messaging.rendering import PENDING_PAYMENT_LINK as PENDING
from cartera.negotiation.models import Arrangement, Installment
from cartera.offers.models import Offer
from cartera.payments import links
from cartera.payments import schemas as payments
from cartera.plugins.host import PluginCallError
from cartera.plugins.registry import current_host
from cartera.portfolio.models import DebtorBalance
from cartera.strategies import schemas
from cartera.tenants.models import Tenant

KIND = "strategies.payment_links"
HOLD = timedelta(minutes=15)
"""How long a held interaction waits for its link before the batch sender gives up on it."""
UNAVAILABLE = "payment_link_unavailable"
CONCURRENCY = 8
"""Provider calls one job makes at a time."""

__all__ = ["HOLD", "KIND", "PENDING", "check_activation", "enqueue", "hold"]


@dataclass(frozen=True)
class StrategyActor(Actor):
    """The strategy that made a link, for the audit trail (``strategy:<id>``)."""

    strategy_id: int = 0

    @property
    def name(self) -> str:
        return f"strategy:{self.strategy_id}"


async def check_activation(session: AsyncSession, steps: Sequence[schemas.StepIn]) -> None:
    """422 naming ``steps[i].payment_link`` when a step asks for a payment link and the
    tenant has no enabled payment integration (or several, none named)."""
    for i, step in enumerate(steps):
        if step.payment_link is not None:
            await links.payment_integration(session, None, param=f"steps[{i}].payment_link")


def hold(values: list[dict[str, Any]], options: Sequence[dict[str, Any] | None],
         now: datetime) -> None:
    """Mark the interaction rows (about to be inserted) whose step asks for a link: the
    option under :data:`PENDING` and a ``not_before`` the batch sender waits for."""
    for value, option in zip(values, options, strict=True):
        if option:
            value["variables"] = {**value.get("variables", {}), PENDING: dict(option)}
            value["not_before"] = now + HOLD


async def enqueue(session: AsyncSession, runner: Any, tenant_id: int,
                  rows: Sequence[tuple[int, int]], options: Sequence[dict[str, Any] | None],
                  now: datetime) -> None:
    """In the dispatch transaction: one job making the links of the held interactions
    (``rows``: interaction id and integration id, in ``options`` order), and a wake-up of
    each integration's batch sender when the hold ends (a job that never finishes does not
    leave them waiting for ever)."""
    held = [row for row, option in zip(rows, options, strict=True) if option]
    if not held:
        return
    await runner.enqueue(session, tenant_id, KIND, {"interaction_ids": [i for i, _ in held]})
    first: dict[int, int] = {}
    for interaction_id, integration_id in held:
        first.setdefault(integration_id, interaction_id)
    for interaction_id in first.values():
        await runner.enqueue(session, tenant_id, batch.WAKE_KIND,
                             {"interaction_id": interaction_id}, run_after=now + HOLD)


async def _currency(session: AsyncSession, tenant: Tenant, debtor_id: int) -> str:
    owed = dict((await session.execute(select(
        DebtorBalance.currency, DebtorBalance.outstanding_minor).where(
        DebtorBalance.debtor_id == debtor_id, DebtorBalance.outstanding_minor > 0))).all())
    if not owed or tenant.default_currency in owed:
        return tenant.default_currency
    return max(sorted(owed), key=lambda c: owed[c])


async def ask_for(session: AsyncSession, tenant: Tenant, debtor_id: int,
                  option: dict[str, Any]) -> links.LinkAsk:
    """What the step's link is for this debtor now (:class:`~cartera.errors.Invalid` when
    there is nothing of that kind to pay)."""
    kind = option.get("amount", "balance")
    hours = int(option.get("expires_in_hours", 72))
    if kind == "offer":
        now = clock.now()
        offer = await session.scalar(select(Offer).where(
            Offer.tenant_id == tenant.id, Offer.debtor_id == debtor_id,
            Offer.status.in_(("open", "accepted")), Offer.kind != "installments",
            Offer.expires_at > now).order_by(Offer.id.desc()).limit(1))
        if offer is None:
            raise Invalid("the debtor has no open offer", code="no_open_offer")
        data = payments.PaymentLinkCreate(
            debtor_id=debtor_id, currency=offer.currency, amount_kind="chosen",
            amount=money.from_minor(offer.amount_minor, offer.currency),
            obligation_ids=list(offer.obligation_ids or []), purpose=f"offer:{offer.id}",
            expires_in_hours=hours)
    elif kind == "installment":
        found = (await session.execute(select(Installment.id, Arrangement.currency)
                 .join(Arrangement, Arrangement.id == Installment.arrangement_id).where(
            Arrangement.tenant_id == tenant.id, Arrangement.debtor_id == debtor_id,
            Arrangement.status == "active",
            Installment.cumulative_minor > Arrangement.paid_minor)
            .order_by(Installment.due_date, Installment.id).limit(1))).first()
        if found is None:
            raise Invalid("the debtor has no unpaid installment", code="no_installment")
        data = payments.PaymentLinkCreate(
            debtor_id=debtor_id, currency=found.currency, amount_kind="installment",
            installment_id=found.id, expires_in_hours=hours)
    else:
        data = payments.PaymentLinkCreate(
            debtor_id=debtor_id, currency=await _currency(session, tenant, debtor_id),
            expires_in_hours=hours)
    return await links.resolve_ask(session, data)


async def _make(ctx: JobContext, host: Any, tenant: Tenant, debtor_id: int,
                option: dict[str, Any], strategy_id: int) -> tuple[str, str | None]:
    """``("linked", url)``, ``("failed", code)`` (for good) or ``("retry", code)``."""
    try:
        async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
            ask = await ask_for(session, tenant, debtor_id, option)
        actor = StrategyActor(tenant_id=ctx.tenant_id, client_id=None, request_id=None,
                              strategy_id=strategy_id)
        link, _ = await links.get_or_create_link(ctx.sessionmaker, host, actor, ask)
    except PluginCallError as exc:
        cause = exc.__cause__
        if isinstance(cause, ProviderError) and cause.kind == "permanent":
            return "failed", f"provider_refused: {cause.code}"
        return "retry", exc.code
    except CarteraError as exc:
        if exc.status >= 500 or exc.code in ("link_in_progress", "link_contention"):
            return "retry", exc.code
        return "failed", exc.code
    if link.url is None:
        return "failed", link.status_reason or f"link_{link.status}"
    return "linked", link.url


async def _release(ctx: JobContext, rows: list[Any],
                   outcomes: dict[int, tuple[str, str | None]]) -> None:
    """One transaction: the held interactions still queued get their link (and their
    integration's batch job waits) or fail ``payment_link_unavailable``."""
    it, ev = table_of(Interaction), table_of(InteractionEvent)
    now = clock.now()
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        still = set((await session.scalars(select(it.c.id).where(
            it.c.id.in_([r.id for r in rows]), it.c.status == "queued")
            .with_for_update())).all())
        linked, failed = [], []
        for row in rows:
            state, value = outcomes[row.id]
            if row.id not in still or state == "retry":
                continue
            rest = {k: v for k, v in (row.variables or {}).items() if k != PENDING}
            if state == "linked":
                linked.append({"b_id": row.id, "b_vars": {**rest, "payment_link": value}})
            else:
                failed.append({"b_id": row.id, "b_vars": rest,
                               "b_reason": f"no payment link: {value}"[:200]})
        if linked:
            await session.execute(update(it).where(it.c.id == bindparam("b_id")).values(
                variables=bindparam("b_vars", type_=it.c.variables.type), not_before=None,
                updated_at=now), linked)
        if failed:
            await session.execute(update(it).where(it.c.id == bindparam("b_id")).values(
                variables=bindparam("b_vars", type_=it.c.variables.type), status="failed",
                failure_code=UNAVAILABLE, failure_reason=bindparam("b_reason"),
                not_before=None, updated_at=now), failed)
            await session.execute(insert(ev), [
                {"tenant_id": ctx.tenant_id, "interaction_id": f["b_id"], "status": "failed",
                 "at": now, "occurred_at": None, "source": "job",
                 "detail": {"code": UNAVAILABLE, "reason": f["b_reason"]}} for f in failed])
        released = {f["b_id"] for f in linked}
        for integration_id in sorted({int(r.integration_id) for r in rows
                                      if r.id in released and r.integration_id is not None}):
            await batch.ensure_batch_job(session, current_runner(), ctx.tenant_id,
                                         integration_id)


@job(KIND)
async def payment_links_job(ctx: JobContext) -> dict[str, Any]:
    """Get or make the payment link of each held interaction and release them (see the
    module): one link per debtor and option, at most :data:`CONCURRENCY` provider calls at
    a time, one release transaction. Raises after the others are released when a call
    failed retryably, so the job is retried for those alone (the released ones are no
    longer held)."""
    host = current_host()
    ids = [int(i) for i in ctx.payload.get("interaction_ids", [])]
    it = table_of(Interaction)
    async with tenant_session(ctx.sessionmaker, ctx.tenant_id) as session:
        tenant = await session.get(Tenant, ctx.tenant_id)
        rows = [r for r in (await session.execute(select(
            it.c.id, it.c.debtor_id, it.c.integration_id, it.c.variables, it.c.trigger)
            .where(it.c.id.in_(ids), it.c.tenant_id == ctx.tenant_id,
                   it.c.status == "queued").order_by(it.c.id))).all()
            if r.debtor_id is not None and (r.variables or {}).get(PENDING)] if ids else []
    assert tenant is not None
    if not rows:
        return {"linked": 0, "failed": 0, "retry": 0}
    groups: dict[tuple[int, str], list[Any]] = defaultdict(list)
    for row in rows:
        option = row.variables[PENDING]
        groups[(int(row.debtor_id), repr(sorted(option.items())))].append(row)
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(members: list[Any]) -> tuple[str, str | None]:
        first = members[0]
        async with gate:
            return await _make(ctx, host, tenant, int(first.debtor_id),
                               first.variables[PENDING],
                               int((first.trigger or {}).get("strategy_id") or 0))

    made = await asyncio.gather(*(one(members) for members in groups.values()))
    outcomes = {row.id: result for members, result in zip(groups.values(), made, strict=True)
                for row in members}
    await _release(ctx, rows, outcomes)
    counts = {"linked": 0, "failed": 0, "retry": 0}
    for state, _ in outcomes.values():
        counts[state] += 1
    if counts["retry"]:
        raise RuntimeError(f"{counts['retry']} payment links to retry (provider unavailable)")
    return counts
