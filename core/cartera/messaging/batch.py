"""Sending queued messages in batches: the ``messages.send_batch`` job.

Each allowed send (``POST /v1/messages``) makes sure one batch job waits for its tenant and
integration (:func:`ensure_batch_job`, a keyed ``enqueue_once``); the job takes up to
:data:`BATCH_SIZE` queued, due interactions at a time, loading everything they need with a
few set-based queries, re-runs the contact gate for each right before sending, and sends
them concurrently through one connection pool, then records outcomes and events in one
commit. Deferred sends and retries keep their own ``messages.send`` job (single path).

Guarantees:

* The claim is ``SELECT ... FOR UPDATE SKIP LOCKED``, and the rows stay locked until the
  outcomes commit: batch jobs racing on PostgreSQL never take the same interaction, and the
  single-message job locks its interaction too (waiting, then finding it sent).
* At-least-once: a batch that dies before its commit leaves its interactions ``queued``;
  procrastinate retries the job (or the next batch takes them), and the provider sees the
  same ``cartera-interaction-{id}`` idempotency key again.
* A batch job is never missed: the waiting one is share-locked by the enqueuing transaction
  until it commits (see ``enqueue_once``), so a job that starts sees every interaction that
  asked for it; a job that took a full batch defers a successor (another worker joins in)
  and loops until the queue is empty or its time slice ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import msgspec
from cartera_sdk.channels import OutboundMessage, SendFailure, Sent
from cartera_sdk.compliance import PriorContact
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.compliance.service import GatePolicy, contact_content, load_policy
from cartera.errors import CarteraError
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.jobs.runner import RetryLater
from cartera.messaging import gate, rendering, schemas, templates
from cartera.messaging.models import Interaction, MessageTemplate
from cartera.plugins.host import PluginCallError, PluginHost
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from cartera.portfolio.service import tenant_today
from cartera.settings import get_settings
from cartera.tenants.models import Tenant

log = logging.getLogger("cartera.messaging")

KIND = "messages.send_batch"
BATCH_SIZE = 100
SEND_CONCURRENCY = 8
"""Provider calls in flight at once for one batch."""
TIME_SLICE_SECONDS = 20.0
"""A batch job hands over to a successor after this long, so one busy integration does not
hold a worker indefinitely."""


def batch_key(tenant_id: int, integration_id: int) -> str:
    return f"messages.send_batch:{tenant_id}:{integration_id}"


async def ensure_batch_job(session: AsyncSession, runner: Any, tenant_id: int,
                           integration_id: int) -> None:
    """Make sure a batch job waits for this integration, in the caller's transaction."""
    await runner.enqueue_once(session, tenant_id, KIND, {"integration_id": integration_id},
                              key=batch_key(tenant_id, integration_id))


async def claim(session: AsyncSession, tenant_id: int, integration_id: int,
                limit: int) -> list[Interaction]:
    """Lock up to ``limit`` queued, due outbound interactions (skipping locked ones).

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, held until the caller commits. SQLite has no
    row locks: the claim is a write first thing in the transaction, which takes the
    database's write lock until the commit, so a second runner waits and then sees the
    outcomes (batches are serialised there, which SQLite's single writer does anyway).
    """
    now = clock.now()
    due = select(Interaction.id).where(
        Interaction.tenant_id == tenant_id, Interaction.integration_id == integration_id,
        Interaction.direction == "outbound", Interaction.status == "queued",
        or_(Interaction.not_before.is_(None), Interaction.not_before <= now)
    ).order_by(Interaction.id).limit(limit)
    if _concurrent(session):
        return list((await session.scalars(
            due.with_only_columns(Interaction).with_for_update(skip_locked=True))).all())
    ids = (await session.scalars(update(Interaction).where(
        Interaction.id.in_(due.scalar_subquery()), Interaction.status == "queued")
        .values(updated_at=now).returning(Interaction.id))).all()
    if not ids:
        return []
    return list((await session.scalars(select(Interaction).where(
        Interaction.id.in_(ids)).order_by(Interaction.id))).all())


@job(KIND)
async def send_batch_job(job_ctx: JobContext) -> dict[str, Any]:
    """Send every queued message of one integration, a batch at a time."""
    from cartera.plugins.registry import current_host

    host = current_host()
    integration_id = int(job_ctx.payload["integration_id"])
    totals: dict[str, int] = defaultdict(int)
    started = time.monotonic()
    handed_over = False
    transport = integrations.SharedTransport(max_connections=SEND_CONCURRENCY)
    try:
        while True:
            async with job_ctx.sessionmaker() as session:
                session.info["tenant_id"] = job_ctx.tenant_id
                batch = await claim(session, job_ctx.tenant_id, integration_id, BATCH_SIZE)
                full = len(batch) == BATCH_SIZE
                if full and not handed_over and _concurrent(session):
                    # More is waiting: let another worker take the next batch meanwhile.
                    await _successor(job_ctx, integration_id)
                    handed_over = True
                if batch:
                    for status, n in (await deliver(session, host, batch, transport)).items():
                        totals[status] += n
                await session.commit()
            if not batch:
                # Stop only on an empty claim: a short batch can mean rows another runner
                # committed meanwhile were filtered out, with more queued behind them.
                break
            if time.monotonic() - started > TIME_SLICE_SECONDS:
                await _successor(job_ctx, integration_id)
                break
    finally:
        await transport.close()
    return dict(totals)


def _concurrent(session: AsyncSession) -> bool:
    """PostgreSQL runs jobs in many workers at once; SQLite in one loop."""
    return session.get_bind().dialect.name == "postgresql"


async def _successor(job_ctx: JobContext, integration_id: int) -> None:
    async with job_ctx.sessionmaker() as session:
        session.info["tenant_id"] = job_ctx.tenant_id
        await ensure_batch_job(session, current_runner(), job_ctx.tenant_id, integration_id)
        await session.commit()


@dataclass
class _Loaded:
    """What a batch needs, fetched with one query per table."""

    today: date
    tenant: Tenant | None
    debtors: dict[int, Debtor]
    templates: dict[int, MessageTemplate]
    contact_points: dict[int, ContactPoint]
    balances: dict[int, list[DebtorBalance]] = field(default_factory=dict)
    obligations: dict[int, list[Obligation]] = field(default_factory=dict)
    recent: dict[int, list[PriorContact]] = field(default_factory=dict)
    policy: GatePolicy | None = None


async def _load(session: AsyncSession, host: PluginHost, tenant_id: int,
                batch: list[Interaction], now: datetime) -> _Loaded:
    debtor_ids = {i.debtor_id for i in batch if i.debtor_id is not None}
    template_ids = {i.template_id for i in batch if i.template_id is not None}
    cp_ids = {i.contact_point_id for i in batch if i.contact_point_id is not None}
    loaded = _Loaded(
        today=await tenant_today(session, tenant_id),
        tenant=await session.get(Tenant, tenant_id),
        debtors={d.id: d for d in await session.scalars(
            select(Debtor).where(Debtor.id.in_(debtor_ids)))},
        templates={t.id: t for t in await session.scalars(
            select(MessageTemplate).where(MessageTemplate.id.in_(template_ids)))},
        contact_points={c.id: c for c in await session.scalars(
            select(ContactPoint).where(ContactPoint.id.in_(cp_ids)))} if cp_ids else {})
    for b in await session.scalars(select(DebtorBalance).where(
            DebtorBalance.debtor_id.in_(debtor_ids))):
        loaded.balances.setdefault(b.debtor_id, []).append(b)
    wanted = {o for i in batch for o in (i.obligation_ids or [])}
    open_ones = (Obligation.status == "open") & (Obligation.kind != "credit_note")
    for o in await session.scalars(select(Obligation).where(
            Obligation.debtor_id.in_(debtor_ids),
            or_(open_ones, Obligation.id.in_(wanted)) if wanted else open_ones)
            .order_by(Obligation.due_date, Obligation.id)):
        loaded.obligations.setdefault(o.debtor_id, []).append(o)
    countries = {d.country for d in loaded.debtors.values()}
    if any(gate._packs(host, c) for c in countries):
        since = now - timedelta(days=7)
        rows = await session.execute(select(
            Interaction.debtor_id, Interaction.channel, Interaction.created_at).where(
            Interaction.debtor_id.in_(debtor_ids), Interaction.direction == "outbound",
            Interaction.created_at >= since, Interaction.status.in_(gate.COUNTED_STATUSES)))
        for debtor_id, channel, at in rows:
            loaded.recent.setdefault(debtor_id or 0, []).append(
                PriorContact(channel=channel, at=at))  # type: ignore[arg-type]
        loaded.policy = await load_policy(session, host, tenant_id)
    return loaded


def _days_past_due(loaded: _Loaded, debtor_id: int) -> int:
    dates = [b.oldest_unpaid_due_date for b in loaded.balances.get(debtor_id, [])
             if b.oldest_unpaid_due_date is not None]
    return aging.days_past_due(min(dates) if dates else None, loaded.today)


def context(loaded: _Loaded, debtor: Debtor, locale: str, obligation_ids: list[int],
            variables: dict[str, Any]) -> dict[str, Any]:
    """:func:`cartera.messaging.rendering.debtor_context` from the prefetched rows."""
    assert loaded.tenant is not None
    return rendering.build_context(debtor, loaded.tenant, loaded.balances.get(debtor.id, []),
                                   loaded.obligations.get(debtor.id, []), locale,
                                   loaded.today, obligation_ids, variables)


async def deliver(session: AsyncSession, host: PluginHost, batch: list[Interaction],
                  transport: integrations.SharedTransport | None = None) -> dict[str, int]:
    """Gate, render, send and record a claimed batch (all of one tenant and integration);
    the caller commits. Returns how many ended in each status."""
    from cartera.messaging.sending import _record_outcome, add_event

    counts: dict[str, int] = defaultdict(int)
    tenant_id = batch[0].tenant_id
    integration = await session.get(Integration, batch[0].integration_id)
    now = clock.now()
    if integration is None or not integration.enabled:
        for interaction in batch:
            interaction.status, interaction.failure_code = "failed", "configuration_gone"
            add_event(session, interaction, "failed", "job", code="configuration_gone")
        return {"failed": len(batch)}
    provider = host.provider("channel", integration.provider_name)
    if provider is None:
        for interaction in batch:
            await _retry(session, interaction, RetryLater("channel provider not installed", 300))
        return {"retrying": len(batch)}
    loaded = await _load(session, host, tenant_id, batch, now)
    from_address = str(integration.config.get("from_address", ""))
    to_send: list[tuple[Interaction, OutboundMessage, Any]] = []
    for interaction in batch:
        debtor = loaded.debtors.get(interaction.debtor_id or 0)
        template = loaded.templates.get(interaction.template_id or 0)
        cp = loaded.contact_points.get(interaction.contact_point_id or 0)
        if debtor is None or template is None:
            interaction.status, interaction.failure_code = "failed", "configuration_gone"
            add_event(session, interaction, "failed", "job", code="configuration_gone")
            counts["failed"] += 1
            continue
        verdict = gate.decide(host, debtor, cp, interaction.channel, now,
                        _days_past_due(loaded, debtor.id), loaded.recent.get(debtor.id, []),
                        policy=loaded.policy, content=contact_content(interaction.content))
        if verdict.decision != "allow":
            counts[await _not_allowed(session, interaction, verdict)] += 1
            continue
        try:
            content = await templates.render_message(
                template, context(loaded, debtor, template.locale,
                                  list(interaction.obligation_ids),
                                  dict(interaction.variables)), from_address)
        except CarteraError as exc:
            # The template cannot render for this debtor: retrying would not help.
            interaction.status, interaction.failure_code = "failed", exc.code
            interaction.failure_reason = str(exc)
            add_event(session, interaction, "failed", "job", code=exc.code)
            counts["failed"] += 1
            continue
        message = OutboundMessage(message_id=f"int_{interaction.id}",
                                  idempotency_key=f"cartera-interaction-{interaction.id}",
                                  to=interaction.address or "", content=content,
                                  metadata={"tenant_id": str(interaction.tenant_id)})
        to_send.append((interaction, message, content))
    if not to_send:
        return dict(counts)
    pctx = integrations.context_for(integration, provider.provider, get_settings().public_base,
                                    host.timeout_seconds, transport)
    limit = asyncio.Semaphore(SEND_CONCURRENCY)

    async def one(message: OutboundMessage) -> Sent | SendFailure | PluginCallError:
        async with limit:
            try:
                return await host.call(provider.provider.send(message, pctx), what="send")
            except PluginCallError as exc:
                return exc

    outcomes = await asyncio.gather(*(one(message) for _, message, _ in to_send))
    for (interaction, _, content), outcome in zip(to_send, outcomes, strict=True):
        if isinstance(outcome, PluginCallError):
            add_event(session, interaction, "retrying", "job", code=outcome.code)
            result: str | RetryLater = RetryLater(outcome.detail, 30)
        else:
            interaction.content = msgspec.to_builtins(content)
            result = await _record_outcome(session, interaction, outcome)
        if isinstance(result, RetryLater):
            await _retry(session, interaction, result)
            counts["retrying"] += 1
        else:
            counts[result] += 1
    return dict(counts)


async def _not_allowed(session: AsyncSession, interaction: Interaction,
                       verdict: schemas.Verdict) -> str:
    """Consent or the law changed since it was queued: the latest verdict wins."""
    from cartera.messaging.sending import add_event

    interaction.verdict = gate.as_json(verdict)
    reasons = [r.code for r in verdict.reasons]
    if verdict.decision == "deny":
        interaction.status = "refused"
        add_event(session, interaction, "refused", "gate", reasons=reasons)
        return "refused"
    interaction.status, interaction.not_before = "deferred", verdict.until
    add_event(session, interaction, "deferred", "gate", reasons=reasons)
    await current_runner().enqueue(session, interaction.tenant_id, "messages.send",
                                   {"interaction_id": interaction.id}, run_after=verdict.until)
    return "deferred"


async def _retry(session: AsyncSession, interaction: Interaction, retry: RetryLater) -> None:
    """A transient failure: the interaction stays ``queued`` but not before the delay (so
    no batch takes it sooner), and its own ``messages.send`` job retries it then, with the
    job system's backoff and attempt limit."""
    at = clock.now() + timedelta(seconds=retry.delay_seconds)
    interaction.not_before = at
    await current_runner().enqueue(session, interaction.tenant_id, "messages.send",
                                   {"interaction_id": interaction.id}, run_after=at)
