"""Sending queued messages in batches: the ``messages.send_batch`` job, the only sender.

Each allowed send (``POST /v1/messages``) makes sure one batch job waits for its tenant and
integration (:func:`ensure_batch_job`, a keyed ``enqueue_once``). The job repeats three
steps until nothing is left to take:

1. **Claim** (one short transaction, :func:`take`): up to :data:`BATCH_SIZE` due
   interactions of the integration (``queued`` with ``not_before`` passed, or ``sending``
   with an expired lease) are locked ``FOR UPDATE SKIP LOCKED``; their debtors' contact-gate
   locks are taken (:func:`lock_debtors`); everything they need is loaded set-based; the
   gate is re-run and the content rendered for each; allowed ones become ``sending`` with
   ``attempts + 1`` and a lease (``claimed_until``), the others ``refused``/``deferred``/
   ``failed``. Commit: the debtor locks are released with the claim visible.
2. **Send**: the provider calls, concurrently, with no transaction open.
3. **Record** (:func:`record`): each outcome in its own short transaction as soon as its
   call returns, only if the claim is still that attempt's (``status = 'sending'`` and the
   same ``attempts``): ``sent``, ``failed``, or back to ``queued`` with ``not_before`` at the
   retry time and a ``messages.send`` wake-up job then (a retry is a time on the
   interaction, never a second sender).

Guarantees:

* One pending attempt per interaction: a ``sending`` row is not claimable until its lease
  ends, and a ``queued`` row waiting for a retry is not due before ``not_before``.
* One failure is one message's: a message that cannot be gated or rendered (or whose
  outcome cannot be recorded) fails or waits alone, with a code; the rest of the batch goes on.
* A crash (the worker killed) leaves its claims ``sending``; once their lease expires
  (:func:`lease_for`: longer than the batch's provider calls can take) the next batch job
  takes them again, woken by :func:`recover_abandoned_claims` every minute. Only messages
  whose provider call was in flight or not yet recorded at the kill are sent again; see
  :mod:`cartera.messaging` for what each provider then does with the duplicate.
* Frequency caps hold under concurrency: the gate counts contacts made (``sending`` and
  later, or any attempted) other than the one being judged, and runs with the debtor's lock
  held until the claim commits, so two batches cannot both pass a cap of one.
* A batch job is never missed: the waiting one is share-locked by the enqueuing transaction
  until it commits (see ``enqueue_once``), so a job that starts sees every interaction that
  asked for it; a job that took a full batch defers a successor (another worker joins in)
  and loops until the queue is empty or its time slice ends.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from cartera_sdk.channels import Content, OutboundMessage, SendFailure, Sent
from cartera_sdk.compliance import PriorContact
from sqlalchemy import and_, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera import clock
from cartera.compliance import decisions
from cartera.compliance.service import (
    ContactFacts,
    GatePolicy,
    contact_content,
    contact_facts_many,
    load_policy,
)
from cartera.errors import CarteraError
from cartera.events import outbox
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, every_minute, job
from cartera.messaging import gate, rendering, schemas, suppression, templates
from cartera.messaging.models import Interaction, InteractionEvent, MessagePartId, MessageTemplate
from cartera.messaging.parts import sent_detail
from cartera.payments.links import open_urls
from cartera.plugins.host import EgressRefusedError, PluginCallError, PluginHost
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from cartera.settings import get_settings
from cartera.tenants.models import Tenant

log = logging.getLogger("cartera.messaging")

KIND = "messages.send_batch"
WAKE_KIND = "messages.send"
BATCH_SIZE = 100
SEND_CONCURRENCY = 8
"""Provider calls in flight at once for one batch."""
TIME_SLICE_SECONDS = 20.0
"""A batch job hands over to a successor after this long, so one busy integration does not
hold a worker indefinitely."""
MAX_ATTEMPTS = 5
"""Provider attempts before a transiently failing message is given up (``failed``)."""
RETRY_BASE_SECONDS = 30.0
"""First retry delay when the provider names none; doubled at each further attempt."""
LEASE_MARGIN_SECONDS = 15.0
RECORD_WINDOW = 0.05
"""Seconds an outcome may wait for others to share its transaction."""
RECORD_GROUP = BATCH_SIZE
PROVIDER_MISSING_RETRY_SECONDS = 300.0


def batch_key(tenant_id: int, integration_id: int) -> str:
    return f"messages.send_batch:{tenant_id}:{integration_id}"


async def ensure_batch_job(session: AsyncSession, runner: Any, tenant_id: int,
                           integration_id: int) -> None:
    """Make sure a batch job waits for this integration, in the caller's transaction."""
    await runner.enqueue_once(session, tenant_id, KIND, {"integration_id": integration_id},
                              key=batch_key(tenant_id, integration_id))


def lease_for(claimed: int, timeout_seconds: float) -> timedelta:
    """How long a claim of ``claimed`` messages is held: every provider call is bounded by
    the host's timeout and at most :data:`SEND_CONCURRENCY` run at once, so a live worker
    records every outcome before its lease ends."""
    rounds = math.ceil(claimed / SEND_CONCURRENCY)
    return timedelta(seconds=rounds * timeout_seconds + LEASE_MARGIN_SECONDS)


def _concurrent(session: AsyncSession) -> bool:
    """PostgreSQL runs jobs in many workers at once; SQLite in one loop."""
    return session.get_bind().dialect.name == "postgresql"


_LOCK_DEBTORS = text("""
    SELECT count(pg_advisory_xact_lock(k)) FROM (
        SELECT DISTINCT hashtextextended('cartera.contact_gate:' || d::text, 0) AS k
        FROM unnest(CAST(:ids AS bigint[])) AS d ORDER BY k) AS keys
""")


async def lock_debtors(session: AsyncSession, debtor_ids: Iterable[int]) -> None:
    """Serialise the contact gate per debtor until the caller's transaction ends.

    PostgreSQL: a transaction-scoped advisory lock per debtor (keyed on a hash of
    ``cartera.contact_gate:<debtor id>``; a collision only makes two debtors wait for each
    other), taken in key order so two batches cannot deadlock. Whoever holds it judges the
    debtor's messages and commits the claims before the next judge reads the contact
    history. SQLite serialises every writing transaction already.
    """
    ids = sorted(set(debtor_ids))
    if ids and _concurrent(session):
        await session.execute(_LOCK_DEBTORS, {"ids": ids})


def _due(tenant_id: int, integration_id: int, now: datetime) -> Any:
    """Claimable: queued and due, or a ``sending`` claim whose lease expired (a crash)."""
    return and_(
        Interaction.tenant_id == tenant_id, Interaction.integration_id == integration_id,
        Interaction.direction == "outbound",
        or_(and_(Interaction.status == "queued",
                 or_(Interaction.not_before.is_(None), Interaction.not_before <= now)),
            and_(Interaction.status == "sending", Interaction.claimed_until < now)))


async def _candidates(session: AsyncSession, tenant_id: int, integration_id: int,
                      limit: int, now: datetime) -> list[Interaction]:
    """Lock up to ``limit`` claimable interactions (skipping locked ones) until the commit.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``. SQLite has no row locks: the claim is a write
    first thing in the transaction, which takes the database's write lock until the commit.
    """
    due = select(Interaction.id).where(_due(tenant_id, integration_id, now)).order_by(
        Interaction.id).limit(limit)
    if _concurrent(session):
        return list((await session.scalars(
            due.with_only_columns(Interaction).with_for_update(skip_locked=True))).all())
    ids = (await session.scalars(update(Interaction).where(
        Interaction.id.in_(due.scalar_subquery())).values(updated_at=now)
        .returning(Interaction.id))).all()
    if not ids:
        return []
    return list((await session.scalars(select(Interaction).where(
        Interaction.id.in_(ids)).order_by(Interaction.id))).all())


@dataclass(frozen=True)
class Claimed:
    """One message claimed for sending: who holds it is ``attempt``."""

    tenant_id: int
    interaction_id: int
    attempt: int
    message: OutboundMessage


@dataclass
class Claim:
    """What one claim transaction took: the messages to send and the other outcomes."""

    taken: int = 0
    sends: list[Claimed] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@job(KIND)
async def send_batch_job(job_ctx: JobContext) -> dict[str, Any]:
    """Send every due message of one integration, a batch at a time."""
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
                claim = await take(session, host, job_ctx.tenant_id, integration_id,
                                   BATCH_SIZE)
                concurrent = _concurrent(session)
                await session.commit()
            if claim.taken == BATCH_SIZE and not handed_over and concurrent:
                # More is waiting: let another worker take the next batch meanwhile.
                await _successor(job_ctx, integration_id)
                handed_over = True
            for status, n in claim.counts.items():
                totals[status] += n
            if claim.sends:
                for status, n in (await send_claimed(job_ctx.sessionmaker, host,
                                                     integration_id, claim.sends,
                                                     transport)).items():
                    totals[status] += n
            if not claim.taken:
                # Stop only on an empty claim: a short batch can mean rows another runner
                # committed meanwhile were filtered out, with more queued behind them.
                break
            if time.monotonic() - started > TIME_SLICE_SECONDS:
                await _successor(job_ctx, integration_id)
                break
    finally:
        await transport.close()
    return dict(totals)


async def _successor(job_ctx: JobContext, integration_id: int) -> None:
    async with job_ctx.sessionmaker() as session:
        session.info["tenant_id"] = job_ctx.tenant_id
        await ensure_batch_job(session, current_runner(), job_ctx.tenant_id, integration_id)
        await session.commit()


@every_minute
async def recover_abandoned_claims(sessionmaker: async_sessionmaker[AsyncSession],
                                   runner: Any) -> None:
    """Wake the batch job of every integration holding a ``sending`` claim whose lease
    expired (its worker died), so those messages are sent (at least once)."""
    async with sessionmaker() as session:
        rows = (await session.execute(select(
            Interaction.tenant_id, Interaction.integration_id).where(
            Interaction.status == "sending", Interaction.claimed_until < clock.now(),
            Interaction.integration_id.is_not(None)).distinct())).all()
        for tenant_id, integration_id in rows:
            log.warning("recovering abandoned send claims",
                        extra={"tenant_id": tenant_id, "integration_id": integration_id})
            await ensure_batch_job(session, runner, tenant_id, integration_id or 0)
        await session.commit()


# --- step 1: claim ------------------------------------------------------------------------

async def take(session: AsyncSession, host: PluginHost, tenant_id: int, integration_id: int,
               limit: int) -> Claim:
    """Claim, gate and render up to ``limit`` due messages; the caller commits at once."""
    now = clock.now()
    batch = await _candidates(session, tenant_id, integration_id, limit, now)
    claim = Claim(taken=len(batch))
    if not batch:
        return claim
    await lock_debtors(session, (i.debtor_id for i in batch if i.debtor_id is not None))
    integration = await session.get(Integration, integration_id)
    if integration is None or not integration.enabled:
        for interaction in batch:
            claim.counts[_fail(session, interaction, "configuration_gone")] += 1
        return claim
    provider = host.provider("channel", integration.provider_name)
    if provider is None:
        for interaction in batch:
            claim.counts[await _wait(session, interaction, "provider_not_installed",
                                     PROVIDER_MISSING_RETRY_SECONDS)] += 1
        return claim
    loaded = await _load(session, host, batch, now)
    await _self_service_links(session, loaded, batch)
    from_address = str(integration.config.get("from_address", ""))
    lease_until = now + lease_for(len(batch), host.timeout_seconds)
    rendered = await rendering.in_worker_thread(_render_all, loaded, batch, from_address)
    for interaction in batch:
        try:
            outcome = await _prepare(session, host, loaded, interaction, now, from_address,
                                     rendered.get(interaction.id))
        except Exception as exc:  # this message only: the batch goes on
            log.exception("message could not be prepared",
                          extra={"interaction_id": interaction.id})
            outcome = _fail(session, interaction, "message_error",
                            f"could not prepare the message ({type(exc).__name__})")
        if isinstance(outcome, OutboundMessage):
            interaction.status, interaction.claimed_until = "sending", lease_until
            interaction.attempts += 1
            claim.sends.append(Claimed(tenant_id, interaction.id, interaction.attempts,
                                       outcome))
            if interaction.debtor_id is not None:  # the next one in this batch counts it
                loaded.recent.setdefault(interaction.debtor_id, []).append(
                    PriorContact(channel=interaction.channel, at=now))  # type: ignore[arg-type]
                facts = loaded.facts.get(interaction.debtor_id)
                if facts is not None and facts.is_first_contact:  # no longer the first
                    loaded.facts[interaction.debtor_id] = replace(facts, is_first_contact=False)
        else:
            claim.counts[outcome] += 1
    await decisions.record(session, loaded.decisions)  # one INSERT for the whole batch
    return claim


SELF_SERVICE = "links.self_service"


async def _self_service_links(session: AsyncSession, loaded: _Loaded,
                              batch: list[Interaction]) -> None:
    """A fresh self-service link for each message whose template says ``links.self_service``
    and that has none yet (a strategy's, queued without variables), as a single send gets
    one: issued for the whole batch at once, kept in the message's ``variables`` (a retry
    renders the same link)."""
    wanted = [i for i in batch if i.debtor_id in loaded.debtors
              and (t := loaded.templates.get(i.template_id or 0)) is not None
              and SELF_SERVICE in f"{t.body} {t.subject or ''} {t.html or ''}"
              and not (i.variables or {}).get("self_service_link")]
    if not wanted:
        return
    from cartera.api.context import Actor
    from cartera.selfservice import service as self_service
    from cartera.settings import get_settings

    settings = get_settings()
    base = settings.self_service_url or f"{settings.public_base}/self-service"
    actor = Actor(tenant_id=wanted[0].tenant_id, client_id=None, request_id=None)
    urls = await self_service.issue_many(session, actor,
                                         [int(i.debtor_id or 0) for i in wanted], base)
    for interaction in wanted:
        interaction.variables = {**(interaction.variables or {}),
                                 "self_service_link": urls[int(interaction.debtor_id or 0)]}


Rendered = Content | Exception
"""A message's content, or why it could not be rendered."""


def _render_all(loaded: _Loaded, batch: list[Interaction],
                from_address: str) -> dict[int, Rendered]:
    """Every message's content as of the send instant (each within its own render budget),
    by interaction id: one worker-thread hop for the whole batch, not one per message; a
    message that cannot be rendered gets its exception, the others are not affected."""
    done: dict[int, Rendered] = {}
    for interaction in batch:
        debtor = loaded.debtors.get(interaction.debtor_id or 0)
        template = loaded.templates.get(interaction.template_id or 0)
        if debtor is None or template is None:
            continue
        try:
            done[interaction.id] = templates.render_content(
                template, context(loaded, debtor, template.locale,
                                  list(interaction.obligation_ids),
                                  dict(interaction.variables)), from_address)
        except Exception as exc:  # this message only
            done[interaction.id] = exc
    return done


async def _prepare(session: AsyncSession, host: PluginHost, loaded: _Loaded,
                   interaction: Interaction, now: datetime, from_address: str,
                   rendered: Rendered | None = None) -> OutboundMessage | str:
    """Gate one message (rendered by :func:`_render_all`, or here when ``rendered`` is
    None): the message to send, or the status it ended in. The gate judges the content
    about to be sent (rendered as of now), so a message queued without content (a
    strategy's dispatch) is checked on its words too."""
    debtor = loaded.debtors.get(interaction.debtor_id or 0)
    template = loaded.templates.get(interaction.template_id or 0)
    cp = loaded.contact_points.get(interaction.contact_point_id or 0)
    if debtor is None or template is None:
        return _fail(session, interaction, "configuration_gone")
    if rendering.PENDING_PAYMENT_LINK in (interaction.variables or {}):
        # its payment link was never made (the hold ran out): never sent without it
        return _fail(session, interaction, "payment_link_unavailable",
                     "the payment link was not made in time")
    try:
        if rendered is None:
            rendered = await templates.render_message(
                template, context(loaded, debtor, template.locale,
                                  list(interaction.obligation_ids),
                                  dict(interaction.variables)), from_address)
        if isinstance(rendered, Exception):
            raise rendered
        content = rendered
    except CarteraError as exc:
        # The template cannot render for this debtor: retrying would not help.
        return _fail(session, interaction, exc.code, str(exc))
    verdict = gate.decide(host, debtor, cp, interaction.channel, now,
                          _days_past_due(loaded, debtor), loaded.recent.get(debtor.id, []),
                          policy=loaded.policy,
                          content=contact_content(content, template.body),
                          facts=loaded.facts.get(debtor.id))
    loaded.decisions += decisions.rows(interaction.tenant_id, "batch", now, verdict,
                                       interaction.channel, debtor.id, interaction.id)
    if verdict.decision != "allow":
        return await _not_allowed(session, interaction, verdict)
    interaction.content = msgspec.to_builtins(content)
    return OutboundMessage(message_id=f"int_{interaction.id}",
                           idempotency_key=f"cartera-interaction-{interaction.id}",
                           to=interaction.address or "", content=content,
                           metadata={"tenant_id": str(interaction.tenant_id)})


def _fail(session: AsyncSession, interaction: Interaction, code: str,
          reason: str | None = None) -> str:
    from cartera.messaging.sending import add_event

    interaction.status, interaction.claimed_until = "failed", None
    interaction.failure_code, interaction.failure_reason = code, reason
    add_event(session, interaction, "failed", "job", code=code)
    return "failed"


async def _wait(session: AsyncSession, interaction: Interaction, code: str,
                delay_seconds: float) -> str:
    """Back to ``queued`` until a retry time, with a wake-up job then."""
    from cartera.messaging.sending import add_event

    at = clock.now() + timedelta(seconds=delay_seconds)
    interaction.status, interaction.not_before, interaction.claimed_until = "queued", at, None
    add_event(session, interaction, "retrying", "job", code=code)
    await current_runner().enqueue(session, interaction.tenant_id, WAKE_KIND,
                                   {"interaction_id": interaction.id}, run_after=at)
    return "retrying"


async def _not_allowed(session: AsyncSession, interaction: Interaction,
                       verdict: schemas.Verdict) -> str:
    """Consent or the law changed since it was queued: the latest verdict wins."""
    from cartera.messaging.sending import add_event

    interaction.verdict = gate.as_json(verdict)
    interaction.claimed_until = None
    reasons = [r.code for r in verdict.reasons]
    if verdict.decision == "deny":
        interaction.status = "refused"
        add_event(session, interaction, "refused", "gate", reasons=reasons)
        return "refused"
    interaction.status, interaction.not_before = "deferred", verdict.until
    add_event(session, interaction, "deferred", "gate", reasons=reasons)
    await current_runner().enqueue(session, interaction.tenant_id, WAKE_KIND,
                                   {"interaction_id": interaction.id}, run_after=verdict.until)
    return "deferred"


@dataclass
class _Loaded:
    """What a batch needs, fetched with one query per table."""

    tenant: Tenant | None
    debtors: dict[int, Debtor]
    templates: dict[int, MessageTemplate]
    contact_points: dict[int, ContactPoint]
    balances: dict[int, list[DebtorBalance]] = field(default_factory=dict)
    obligations: dict[int, list[Obligation]] = field(default_factory=dict)
    recent: dict[int, list[PriorContact]] = field(default_factory=dict)
    today: dict[int, date] = field(default_factory=dict)
    """Each debtor's local date at the send instant."""
    policy: GatePolicy | None = None
    facts: dict[int, ContactFacts] = field(default_factory=dict)
    """Each debtor's stage, litigation, first contact and authorised channels."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    """The gate decisions of this batch, written with one INSERT."""
    payment_links: dict[int, str] = field(default_factory=dict)
    """Each debtor's open payment link URL (``links.payment``)."""


async def _load(session: AsyncSession, host: PluginHost, batch: list[Interaction],
                now: datetime) -> _Loaded:
    tenant_id = batch[0].tenant_id
    debtor_ids = {i.debtor_id for i in batch if i.debtor_id is not None}
    template_ids = {i.template_id for i in batch if i.template_id is not None}
    cp_ids = {i.contact_point_id for i in batch if i.contact_point_id is not None}
    loaded = _Loaded(
        tenant=await session.get(Tenant, tenant_id),
        debtors={d.id: d for d in await session.scalars(
            select(Debtor).where(Debtor.id.in_(debtor_ids)))},
        templates={t.id: t for t in await session.scalars(
            select(MessageTemplate).where(MessageTemplate.id.in_(template_ids)))},
        contact_points={c.id: c for c in await session.scalars(
            select(ContactPoint).where(ContactPoint.id.in_(cp_ids)))} if cp_ids else {})
    loaded.today = {d.id: now.astimezone(ZoneInfo(d.timezone)).date()
                    for d in loaded.debtors.values()}
    stored: dict[int, list[DebtorBalance]] = {}
    for b in await session.scalars(select(DebtorBalance).where(
            DebtorBalance.debtor_id.in_(debtor_ids))):
        stored.setdefault(b.debtor_id, []).append(b)
    wanted = {o for i in batch for o in (i.obligation_ids or [])}
    owed = Obligation.status.in_(("open", "disputed")) & (Obligation.kind != "credit_note")
    for o in await session.scalars(select(Obligation).where(
            Obligation.debtor_id.in_(debtor_ids),
            or_(owed, Obligation.id.in_(wanted)) if wanted else owed)
            .order_by(Obligation.due_date, Obligation.id)):
        loaded.obligations.setdefault(o.debtor_id, []).append(o)
    loaded.payment_links = await open_urls(session, tenant_id, sorted(debtor_ids))
    for debtor_id, today in loaded.today.items():
        loaded.balances[debtor_id] = balances_as_of(
            debtor_id, stored.get(debtor_id, []), loaded.obligations.get(debtor_id, []), today)
    countries = {d.country for d in loaded.debtors.values()}
    if any(gate._packs(host, c) for c in countries):
        rows = await session.execute(select(
            Interaction.debtor_id, Interaction.channel, Interaction.created_at,
            Interaction.status).where(
            Interaction.debtor_id.in_(debtor_ids),
            Interaction.id.not_in([i.id for i in batch]),  # never the ones being judged
            *gate.counted_contacts(now - timedelta(days=7))))
        for contacted, channel, at, status in rows:
            loaded.recent.setdefault(contacted or 0, []).append(
                PriorContact(channel=channel, at=at, outcome=status))  # type: ignore[arg-type]
        loaded.policy = await load_policy(session, host, tenant_id)
        loaded.facts = await contact_facts_many(session, list(loaded.debtors.values()),
                                                exclude=[i.id for i in batch])
    return loaded


def balances_as_of(debtor_id: int, stored: list[DebtorBalance], owed: list[Obligation],
                   as_of: date) -> list[DebtorBalance]:
    """The debtor's balance summary as of ``as_of``, computed from their owed obligations
    (open or disputed, not credit notes) the way ``refresh_balances`` computes the stored
    one, without writing: the stored summary's overdue amount is only as fresh as its
    ``as_of``. Payment-side figures (unapplied credit, last payment) come from the stored
    rows, which every payment write keeps current. Returns transient rows."""
    prior = {b.currency: b for b in stored}
    fresh = {cur: DebtorBalance(
        tenant_id=p.tenant_id if p else None, debtor_id=debtor_id, currency=cur,
        outstanding_minor=0, overdue_minor=0, open_count=0, oldest_unpaid_due_date=None,
        next_due_date=None, as_of=as_of,
        unapplied_credit_minor=p.unapplied_credit_minor if p else 0,
        last_payment_date=p.last_payment_date if p else None)
        for cur in sorted(prior.keys() | {o.currency for o in owed})
        for p in [prior.get(cur)]}
    for o in owed:
        if o.kind == "credit_note" or o.status not in ("open", "disputed"):
            continue
        b = fresh[o.currency]
        b.outstanding_minor += o.outstanding_minor
        if o.status != "open" or o.outstanding_minor <= 0:
            continue
        b.open_count += 1
        if b.oldest_unpaid_due_date is None or o.due_date < b.oldest_unpaid_due_date:
            b.oldest_unpaid_due_date = o.due_date
        if o.due_date < as_of:
            b.overdue_minor += o.outstanding_minor
        elif b.next_due_date is None or o.due_date < b.next_due_date:
            b.next_due_date = o.due_date
    return list(fresh.values())


def _days_past_due(loaded: _Loaded, debtor: Debtor) -> int:
    dates = [b.oldest_unpaid_due_date for b in loaded.balances.get(debtor.id, [])
             if b.oldest_unpaid_due_date is not None]
    return aging.days_past_due(min(dates) if dates else None, loaded.today[debtor.id])


def context(loaded: _Loaded, debtor: Debtor, locale: str, obligation_ids: list[int],
            variables: dict[str, Any]) -> dict[str, Any]:
    """:func:`cartera.messaging.rendering.debtor_context` from the prefetched rows, as of
    the debtor's local date at the send instant."""
    assert loaded.tenant is not None
    return rendering.build_context(debtor, loaded.tenant, loaded.balances.get(debtor.id, []),
                                   loaded.obligations.get(debtor.id, []), locale,
                                   loaded.today[debtor.id], obligation_ids, variables,
                                   payment_link=loaded.payment_links.get(debtor.id))


# --- steps 2 and 3: send, record ------------------------------------------------------------

Outcome = Sent | SendFailure | PluginCallError


async def send_claimed(sessionmaker: async_sessionmaker[AsyncSession], host: PluginHost,
                       integration_id: int, sends: list[Claimed],
                       transport: integrations.SharedTransport | None = None
                       ) -> dict[str, int]:
    """Call the provider for each claimed message (no transaction open) and record each
    outcome as soon as it returns. Returns how many ended in each status."""
    async with sessionmaker() as session:
        session.info["tenant_id"] = sends[0].tenant_id
        integration = await session.get(Integration, integration_id)
    provider = host.provider("channel", integration.provider_name) if integration else None
    if integration is None or provider is None:
        return {"abandoned": len(sends)}  # the lease expires and a later batch decides
    pctx = integrations.context_for(integration, provider.provider, get_settings().public_base,
                                    host.timeout_seconds, transport)
    limit = asyncio.Semaphore(SEND_CONCURRENCY)
    done: asyncio.Queue[tuple[Claimed, Outcome] | None] = asyncio.Queue()

    async def one(claimed: Claimed) -> None:
        async with limit:
            try:
                outcome: Outcome = await host.call(
                    provider.provider.send(claimed.message, pctx), what="send")
            except PluginCallError as exc:
                outcome = exc
        done.put_nowait((claimed, outcome))

    recorder = asyncio.create_task(_recorder(sessionmaker, done))
    try:
        await asyncio.gather(*(one(c) for c in sends))
    finally:
        done.put_nowait(None)
        counts = await recorder
    return counts


async def _recorder(sessionmaker: async_sessionmaker[AsyncSession],
                    done: asyncio.Queue[tuple[Claimed, Outcome] | None]) -> dict[str, int]:
    """Record outcomes as they arrive until ``None``, each at most about
    :data:`RECORD_WINDOW` seconds after its call returned: the ones that arrive within that
    window share one short transaction (a commit per message would cost a WAL flush each)."""
    counts: dict[str, int] = defaultdict(int)
    finished = False
    while not finished:
        first = await done.get()
        if first is None:
            break
        await asyncio.sleep(RECORD_WINDOW)  # let the calls in flight join this group
        group = [first]
        while not done.empty() and len(group) < RECORD_GROUP:
            item = done.get_nowait()
            if item is None:
                finished = True
                break
            group.append(item)
        for status, n in (await _record_group(sessionmaker, group)).items():
            counts[status] += n
    return dict(counts)


async def _record_group(sessionmaker: async_sessionmaker[AsyncSession],
                        group: list[tuple[Claimed, Outcome]]) -> dict[str, int]:
    """:func:`record` for several outcomes in one transaction; if that fails, each alone,
    so one outcome that cannot be written keeps only its own message waiting (its lease
    runs out and it is taken again)."""
    try:
        return await record(sessionmaker, group)
    except Exception:
        if len(group) == 1:
            log.exception("send outcome not recorded",
                          extra={"interaction_id": group[0][0].interaction_id})
            return {"unrecorded": 1}
    counts: dict[str, int] = defaultdict(int)
    for item in group:
        for status, n in (await _record_group(sessionmaker, [item])).items():
            counts[status] += n
    return dict(counts)


_OUTCOME_COLUMNS = {"provider_message_id": None, "failure_code": None, "failure_reason": None,
                   "not_before": None, "cost_minor": None, "cost_currency": None,
                   "claimed_until": None}
"""Every outcome sets all of these (one statement shape for the whole group)."""


async def record(sessionmaker: async_sessionmaker[AsyncSession],
                 outcomes: list[tuple[Claimed, Outcome]]) -> dict[str, int]:
    """Record provider outcomes in one short transaction, each only if its claim is still
    that attempt's (``stale`` when it had been lost). Returns how many ended in each
    status."""
    counts: dict[str, int] = defaultdict(int)
    now = clock.now()
    async with sessionmaker() as session:
        session.info["tenant_id"] = outcomes[0][0].tenant_id
        if _concurrent(session):
            # Not waiting for the WAL flush: a database crash may lose the last fraction
            # of a second of outcomes (those messages are then sent again, at least once);
            # a worker crash loses none.
            await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        else:
            # SQLite has no row locks: a write first takes the database's write lock, so
            # a concurrent recorder of the same claims reads them only after this commits.
            await session.execute(update(Interaction).where(
                Interaction.id.in_([c.interaction_id for c, _ in outcomes]),
                Interaction.status == "sending").values(updated_at=now))
        # Locked in id order: two recorders of overlapping groups wait for each other
        # instead of deadlocking.
        held = {r.id: r for r in (await session.execute(select(
            Interaction.id, Interaction.tenant_id, Interaction.attempts, Interaction.channel,
            Interaction.debtor_id, Interaction.integration_id).where(
            Interaction.id.in_([c.interaction_id for c, _ in outcomes]),
            Interaction.status == "sending").order_by(Interaction.id)
            .with_for_update())).all()}
        rows, events, moved, part_ids = [], [], [], []
        for claimed, outcome in outcomes:
            current = held.get(claimed.interaction_id)
            if current is None or current.attempts != claimed.attempt:
                counts["stale"] += 1
                continue
            await _suppress_if_told(session, claimed, current.channel, outcome, now)
            values, event = outcome_values(outcome, claimed.attempt)
            rows.append({**_OUTCOME_COLUMNS, **values, "id": claimed.interaction_id,
                         "updated_at": now})
            events.append({"tenant_id": claimed.tenant_id,
                           "interaction_id": claimed.interaction_id, "at": now, **event})
            part_ids.extend(part_id_rows(claimed, current.integration_id, outcome))
            if values["status"] == "queued":
                await current_runner().enqueue(session, claimed.tenant_id, WAKE_KIND,
                                               {"interaction_id": claimed.interaction_id},
                                               run_after=values["not_before"])
            counts["retrying" if values["status"] == "queued" else values["status"]] += 1
            if values["status"] != "queued":
                moved.append((current, current.debtor_id, values["status"]))
        if rows:
            await session.execute(update(Interaction), rows)
            await session.execute(insert(InteractionEvent), events)
            await outbox.emit_interactions(session, moved)
        if part_ids:
            await session.execute(insert(MessagePartId), part_ids)
        await session.commit()
    return dict(counts)


def part_id_rows(claimed: Claimed, integration_id: int | None,
                 outcome: Outcome) -> list[dict[str, Any]]:
    """The ``message_part_ids`` rows of a message the provider accepted in several parts
    (none for one part: its receipts carry the message's own provider id)."""
    if not isinstance(outcome, Sent) or len(outcome.parts) < 2 or integration_id is None:
        return []
    return [{"tenant_id": claimed.tenant_id, "integration_id": integration_id,
             "interaction_id": claimed.interaction_id,
             "provider_message_id": part.provider_message_id, "part_index": part.index,
             "part_count": part.count} for part in outcome.parts]


async def _suppress_if_told(session: AsyncSession, claimed: Claimed, channel: str,
                            outcome: Outcome, now: datetime) -> None:
    """A permanent failure that says the address cannot receive the channel any more
    (``SendFailure.suppress``: a hard bounce, a carrier opt-out) suppresses it there."""
    if (isinstance(outcome, SendFailure) and outcome.kind == "permanent"
            and outcome.suppress and claimed.message.to):
        await suppression.suppress(session, claimed.tenant_id, claimed.message.to, channel,
                                   outcome.suppress, code=outcome.code,
                                   interaction_id=claimed.interaction_id, at=now)


def outcome_values(outcome: Sent | SendFailure | PluginCallError,
                   attempt: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The interaction's new columns and its timeline event for one provider outcome."""
    if isinstance(outcome, Sent):
        values: dict[str, Any] = {"status": "sent",
                                  "provider_message_id": outcome.provider_message_id}
        if outcome.cost is not None:
            from cartera import money

            values["cost_minor"] = money.to_minor(outcome.cost.amount, outcome.cost.currency)
            values["cost_currency"] = outcome.cost.currency
        return values, {"status": "sent", "source": "provider", "detail": {
            "provider_message_id": outcome.provider_message_id, **sent_detail(outcome)}}
    if isinstance(outcome, EgressRefusedError):
        # The provider's address is one the egress rules refuse (a private address): no
        # retry can change that, only the operator's allow-list or the integration's
        # configuration, so the message fails now instead of after every retry.
        return ({"status": "failed", "failure_code": "egress_refused",
                 "failure_reason": outcome.detail},
                {"status": "failed", "source": "job",
                 "detail": {"code": "egress_refused", "reason": outcome.detail}})
    if isinstance(outcome, PluginCallError):
        code, reason, after, source = outcome.code, outcome.detail, None, "job"
        detail: dict[str, Any] = {"code": code}
    elif outcome.kind == "permanent":
        return ({"status": "failed", "failure_code": outcome.code,
                 "failure_reason": outcome.reason},
                {"status": "failed", "source": "provider",
                 "detail": {"code": outcome.code, "reason": outcome.reason}})
    else:
        code, reason, source = outcome.code, outcome.reason, "provider"
        after = outcome.retry_after_seconds
        detail = {"code": code, "kind": outcome.kind, "retry_after": after}
    if attempt >= MAX_ATTEMPTS:
        return ({"status": "failed", "failure_code": "retries_exhausted",
                 "failure_reason": f"gave up after {attempt} attempts; last: {code} {reason}"},
                {"status": "failed", "source": source,
                 "detail": {**detail, "gave_up": True}})
    delay = after or RETRY_BASE_SECONDS * 2 ** (attempt - 1)
    return ({"status": "queued", "not_before": clock.now() + timedelta(seconds=delay)},
            {"status": "retrying", "source": source, "detail": detail})
