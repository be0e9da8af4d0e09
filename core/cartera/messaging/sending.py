"""Sending a message: gate, record, queue; then a job calls the plugin.

Every message is sent by its integration's ``messages.send_batch`` job
(:mod:`cartera.messaging.batch`), which claims it before the provider call; a deferred one
or a retry waits for its ``not_before``, when a ``messages.send`` job wakes the batch job.
What a crash can duplicate, per provider: see :mod:`cartera.messaging`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec
from cartera_sdk.events import InteractionRecorded
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, AppContext
from cartera.audit import service as audit
from cartera.compliance import decisions
from cartera.compliance.service import contact_content
from cartera.errors import Conflict, Invalid, NotFound
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.messaging import batch, gate, rendering, schemas, templates
from cartera.messaging.models import Interaction, InteractionEvent
from cartera.plugins import events as plugin_events
from cartera.plugins.host import PluginHost
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance, Obligation
from cartera.portfolio.service import get_debtor, tenant_today

log = logging.getLogger("cartera.messaging")


def add_event(session: AsyncSession, interaction: Interaction, status: str, source: str,
              at: datetime | None = None, occurred_at: datetime | None = None,
              **detail: Any) -> None:
    """One timeline step: ``at`` when recorded (now by default), ``occurred_at`` when the
    provider says it happened (provider events)."""
    session.add(InteractionEvent(tenant_id=interaction.tenant_id, interaction_id=interaction.id,
                                 status=status, at=at or clock.now(), occurred_at=occurred_at,
                                 source=source, detail=detail))


MAX_ID = 2**63 - 1


async def check_obligation_ids(session: AsyncSession, debtor: Debtor, obligation_ids: list[int],
                               param: str = "obligation_ids") -> list[int]:
    """``obligation_ids`` unchanged if each is one of ``debtor``'s obligations; else a 404
    problem ``unknown_obligation`` naming the first one that is not (``obligation_ids[i]``),
    alike for a missing id, another tenant's and another debtor's (nothing leaks)."""
    wanted = {o for o in obligation_ids if 1 <= o <= MAX_ID}
    found = set((await session.scalars(select(Obligation.id).where(
        Obligation.id.in_(wanted), Obligation.tenant_id == debtor.tenant_id,
        Obligation.debtor_id == debtor.id))).all()) if wanted else set()
    for i, obligation_id in enumerate(obligation_ids):
        if obligation_id not in found:
            raise NotFound(f"obligation {obligation_id} is not one of debtor {debtor.id}'s",
                           code="unknown_obligation", param=f"{param}[{i}]")
    return obligation_ids


async def _channel_integration(session: AsyncSession, host: PluginHost, integration_id: int,
                               channel: str) -> tuple[Integration, Any]:
    integration = await session.get(Integration, integration_id)
    if integration is None or integration.tenant_id != session.info.get("tenant_id"):
        raise Invalid(f"integration {integration_id} does not exist", code="unknown_integration",
                      param="integration_id")
    if not integration.enabled:
        raise Conflict("the integration is disabled", code="integration_disabled")
    registered = host.provider("channel", integration.provider_name)
    if integration.provider_kind != "channel" or registered is None:
        raise Invalid("the integration is not an installed channel provider",
                      code="not_a_channel", param="integration_id")
    if registered.provider.channel != channel:
        raise Invalid(f"the template is for {channel}, the integration sends "
                      f"{registered.provider.channel}", code="channel_mismatch",
                      param="template_id")
    return integration, registered.provider


async def _contact_point(session: AsyncSession, debtor: Debtor, channel: str,
                         contact_point_id: int | None) -> ContactPoint | None:
    if contact_point_id is not None:
        cp = await session.get(ContactPoint, contact_point_id)
        if cp is None or cp.debtor_id != debtor.id:
            raise Invalid(f"contact point {contact_point_id} is not this debtor's",
                          code="unknown_contact_point", param="contact_point_id")
        return cp
    kinds = gate.CONTACT_KINDS[channel]
    candidates = (await session.scalars(select(ContactPoint).where(
        ContactPoint.debtor_id == debtor.id, ContactPoint.kind.in_(kinds))
        .order_by(ContactPoint.preferred.desc(), ContactPoint.id))).all()
    usable = [cp for cp in candidates if gate.check_contact_point(cp, channel) is None]
    ranked = usable or list(candidates)
    return ranked[0] if ranked else None


async def _days_past_due(session: AsyncSession, debtor: Debtor) -> int:
    today = await tenant_today(session, debtor.tenant_id)
    oldest = await session.scalar(select(DebtorBalance.oldest_unpaid_due_date).where(
        DebtorBalance.debtor_id == debtor.id).order_by(DebtorBalance.oldest_unpaid_due_date))
    return aging.days_past_due(oldest, today)


async def send(session: AsyncSession, app: AppContext, host: PluginHost, actor: Actor,
               data: schemas.MessageCreate) -> Interaction:
    """Gate the contact and record it; queue the send when allowed (or deferred)."""
    template = await templates.get(session, data.template_id, param="template_id")
    integration, _provider = await _channel_integration(session, host, data.integration_id,
                                                        template.channel)
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    await check_obligation_ids(session, debtor, data.obligation_ids)
    cp = await _contact_point(session, debtor, template.channel, data.contact_point_id)
    today = await tenant_today(session, debtor.tenant_id)
    variables = dict(data.variables)
    if "links.self_service" in f"{template.body} {template.subject or ''}" and \
            not variables.get("self_service_link"):
        # A fresh self-service link for this debtor. The links table keeps only its hash;
        # the message (its variables and content, re-rendered by the batch sender) carries
        # the URL to the debtor like any other message text.
        from cartera.selfservice import schemas as ss_schemas
        from cartera.selfservice import service as self_service

        base = app.settings.self_service_url or f"{app.settings.public_base}/self-service"
        issued = await self_service.issue(session, actor, ss_schemas.SelfServiceLinkCreate(
            debtor_id=debtor.id), base)
        variables["self_service_link"] = issued.url or ""
    ctx = await rendering.debtor_context(session, debtor, template.locale, today,
                                         data.obligation_ids, variables)
    content = await templates.render_message(template, ctx)  # fail fast on template errors
    judged_at = clock.now()
    verdict = await gate.judge(session, host, debtor, cp, template.channel, judged_at,
                               await _days_past_due(session, debtor),
                               content=contact_content(content, template.body))
    status = {"allow": "queued", "defer": "deferred", "deny": "refused"}[verdict.decision]
    interaction = Interaction(
        tenant_id=actor.tenant_id, debtor_id=debtor.id, direction="outbound",
        channel=template.channel, status=status, integration_id=integration.id,
        template_id=template.id, contact_point_id=cp.id if cp else None,
        address=cp.value if cp else None, obligation_ids=list(data.obligation_ids),
        variables=variables, content=msgspec.to_builtins(content),
        verdict=gate.as_json(verdict), not_before=verdict.until,
        trigger={"source": "api", "client_id": actor.client_id})
    session.add(interaction)
    await session.flush()
    await decisions.record(session, decisions.rows(
        actor.tenant_id, "send", judged_at, verdict, template.channel, debtor.id,
        interaction.id))
    add_event(session, interaction, status, "gate", reasons=[r.code for r in verdict.reasons])
    if status == "queued":  # sent by the integration's batch job, with its neighbours
        await batch.ensure_batch_job(session, app.jobs, actor.tenant_id, integration.id)
    elif status == "deferred":  # its own job, when the gate allows it
        await app.jobs.enqueue(session, actor.tenant_id, "messages.send",
                               {"interaction_id": interaction.id}, run_after=verdict.until)
    audit.record(session, actor, f"message.{status}", "debtor", debtor.id,
                 {"interaction_id": interaction.id, "template_id": template.id,
                  "integration_id": integration.id, "decision": verdict.decision})
    return interaction


@job(batch.WAKE_KIND)
async def send_job(job_ctx: JobContext) -> dict[str, Any]:
    """An interaction's ``not_before`` has come (a deferral or a retry): wake its
    integration's batch job, which gates and sends it. Never sends itself, so a message has
    one sender; a deferred one goes back to ``queued`` for the gate to judge again."""
    interaction_id = int(job_ctx.payload["interaction_id"])
    async with job_ctx.sessionmaker() as session:
        session.info["tenant_id"] = job_ctx.tenant_id
        interaction = await session.get(Interaction, interaction_id, with_for_update=True)
        if interaction is None or interaction.status not in ("queued", "deferred"):
            return {"skipped": interaction.status if interaction else "missing"}
        if interaction.integration_id is None:
            interaction.status, interaction.failure_code = "failed", "configuration_gone"
            add_event(session, interaction, "failed", "job", code="configuration_gone")
        else:
            if interaction.status == "deferred":
                interaction.status = "queued"
            await batch.ensure_batch_job(session, current_runner(), job_ctx.tenant_id,
                                         interaction.integration_id)
        await session.commit()
    return {"woke": interaction.status}


async def publish_interaction(session: AsyncSession, interaction: Interaction) -> None:
    """Tell observer plugins (``on_interaction_recorded``) once the change commits.

    Called for replies and manually recorded contacts; provider outcomes of sends are not
    published yet (one job per message would halve send throughput: they need batching)."""
    if interaction.debtor_id is None:
        return
    await plugin_events.publish(session, interaction.tenant_id, "on_interaction_recorded",
                                InteractionRecorded(
        **plugin_events.base_fields(interaction.tenant_id),
        interaction_id=str(interaction.id), debtor_id=str(interaction.debtor_id),
        channel=interaction.channel,
        direction="inbound" if interaction.direction == "inbound" else "outbound",
        outcome=interaction.status,
        integration_id=str(interaction.integration_id) if interaction.integration_id else None))
