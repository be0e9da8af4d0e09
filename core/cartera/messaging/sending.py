"""Sending a message: gate, record, queue; then a job calls the plugin.

Allowed messages are sent by their integration's ``messages.send_batch`` job
(:mod:`cartera.messaging.batch`); deferred ones and retries by their own ``messages.send``.

Delivery is at-least-once (a job may run again after a crash), so every provider call
carries the interaction's idempotency key: a retry never sends twice to a provider that
honours it, and a job that finds its interaction already past ``queued`` does nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import msgspec
from cartera_sdk.channels import OutboundMessage, SendFailure, Sent
from cartera_sdk.events import InteractionRecorded
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, AppContext
from cartera.audit import service as audit
from cartera.errors import Conflict, Invalid
from cartera.integrations import service as integrations
from cartera.integrations.models import Integration
from cartera.jobs.registry import JobContext, current_runner, job
from cartera.jobs.runner import RetryLater
from cartera.messaging import batch, gate, rendering, schemas, suppression, templates
from cartera.messaging.models import Interaction, InteractionEvent, MessageTemplate
from cartera.messaging.parts import sent_detail
from cartera.plugins import events as plugin_events
from cartera.plugins.host import PluginCallError, PluginHost
from cartera.portfolio import aging
from cartera.portfolio.models import ContactPoint, Debtor, DebtorBalance
from cartera.portfolio.service import get_debtor, tenant_today
from cartera.settings import get_settings

log = logging.getLogger("cartera.messaging")


def add_event(session: AsyncSession, interaction: Interaction, status: str, source: str,
              at: datetime | None = None, occurred_at: datetime | None = None,
              **detail: Any) -> None:
    """One timeline step: ``at`` when recorded (now by default), ``occurred_at`` when the
    provider says it happened (provider events)."""
    session.add(InteractionEvent(tenant_id=interaction.tenant_id, interaction_id=interaction.id,
                                 status=status, at=at or clock.now(), occurred_at=occurred_at,
                                 source=source, detail=detail))


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
    cp = await _contact_point(session, debtor, template.channel, data.contact_point_id)
    today = await tenant_today(session, debtor.tenant_id)
    ctx = await rendering.debtor_context(session, debtor, template.locale, today,
                                         data.obligation_ids, dict(data.variables))
    content = await templates.render_message(template, ctx)  # fail fast on template errors
    verdict = await gate.judge(session, host, debtor, cp, template.channel, clock.now(),
                               await _days_past_due(session, debtor))
    status = {"allow": "queued", "defer": "deferred", "deny": "refused"}[verdict.decision]
    interaction = Interaction(
        tenant_id=actor.tenant_id, debtor_id=debtor.id, direction="outbound",
        channel=template.channel, status=status, integration_id=integration.id,
        template_id=template.id, contact_point_id=cp.id if cp else None,
        address=cp.value if cp else None, obligation_ids=list(data.obligation_ids),
        variables=dict(data.variables), content=msgspec.to_builtins(content),
        verdict=gate.as_json(verdict), not_before=verdict.until,
        trigger={"source": "api", "client_id": actor.client_id})
    session.add(interaction)
    await session.flush()
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


@job("messages.send")
async def send_job(job_ctx: JobContext) -> dict[str, Any]:
    """Deliver one queued interaction through its provider (idempotent, retried)."""
    from cartera.plugins.registry import current_host

    host = current_host()
    interaction_id = int(job_ctx.payload["interaction_id"])
    async with job_ctx.sessionmaker() as session:
        session.info["tenant_id"] = job_ctx.tenant_id
        # Locked until the outcome commits: a batch job skips it, and a batch that is
        # sending it makes this wait and then find it sent.
        interaction = await session.get(Interaction, interaction_id, with_for_update=True)
        if interaction is None or interaction.status not in ("queued", "deferred"):
            return {"skipped": interaction.status if interaction else "missing"}
        result = await _deliver(session, host, interaction)
        await session.commit()
    if isinstance(result, RetryLater):
        raise result
    return {"status": result}


async def _deliver(session: AsyncSession, host: PluginHost,
                   interaction: Interaction) -> str | RetryLater:
    debtor = await session.get(Debtor, interaction.debtor_id)
    template = await session.get(MessageTemplate, interaction.template_id)
    integration = await session.get(Integration, interaction.integration_id)
    cp = (await session.get(ContactPoint, interaction.contact_point_id)
          if interaction.contact_point_id else None)
    if debtor is None or template is None or integration is None or not integration.enabled:
        interaction.status, interaction.failure_code = "failed", "configuration_gone"
        add_event(session, interaction, "failed", "job", code="configuration_gone")
        return "failed"
    verdict = await gate.judge(session, host, debtor, cp, interaction.channel, clock.now(),
                               await _days_past_due(session, debtor))
    if verdict.decision != "allow":
        # Consent or the law changed since it was queued: the latest verdict wins.
        interaction.verdict = gate.as_json(verdict)
        if verdict.decision == "deny":
            interaction.status = "refused"
            add_event(session, interaction, "refused", "gate",
                      reasons=[r.code for r in verdict.reasons])
            return "refused"
        interaction.status, interaction.not_before = "deferred", verdict.until
        add_event(session, interaction, "deferred", "gate",
                  reasons=[r.code for r in verdict.reasons])
        await current_runner().enqueue(session, interaction.tenant_id, "messages.send",
                                       {"interaction_id": interaction.id},
                                       run_after=verdict.until)
        return "deferred"
    provider = host.provider("channel", integration.provider_name)
    if provider is None:
        return RetryLater("channel provider not installed", 300)
    today = await tenant_today(session, debtor.tenant_id)
    ctx = await rendering.debtor_context(session, debtor, template.locale, today,
                                         list(interaction.obligation_ids),
                                         dict(interaction.variables))
    from_address = str(integration.config.get("from_address", ""))
    content = await templates.render_message(template, ctx, from_address)
    message = OutboundMessage(message_id=f"int_{interaction.id}",
                              idempotency_key=f"cartera-interaction-{interaction.id}",
                              to=interaction.address or "", content=content,
                              metadata={"tenant_id": str(interaction.tenant_id)})
    pctx = integrations.context_for(integration, provider.provider, get_settings().public_base,
                                    host.timeout_seconds)
    try:
        outcome = await host.call(provider.provider.send(message, pctx), what="send")
    except PluginCallError as exc:
        add_event(session, interaction, "retrying", "job", code=exc.code)
        return RetryLater(exc.detail, 30)
    interaction.content = msgspec.to_builtins(content)
    return await _record_outcome(session, interaction, outcome)


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


async def _record_outcome(session: AsyncSession, interaction: Interaction,
                          outcome: Sent | SendFailure) -> str | RetryLater:
    """Store what the provider answered; a permanent failure that says the address cannot
    receive the channel any more (``SendFailure.suppress``) also suppresses it there."""
    if isinstance(outcome, Sent):
        interaction.status = "sent"
        interaction.provider_message_id = outcome.provider_message_id
        if outcome.cost is not None:
            from cartera import money

            interaction.cost_minor = money.to_minor(outcome.cost.amount, outcome.cost.currency)
            interaction.cost_currency = outcome.cost.currency
        add_event(session, interaction, "sent", "provider",
                  provider_message_id=outcome.provider_message_id, **sent_detail(outcome))
        return "sent"
    if outcome.kind == "permanent":
        interaction.status = "failed"
        interaction.failure_code, interaction.failure_reason = outcome.code, outcome.reason
        add_event(session, interaction, "failed", "provider", code=outcome.code,
                  reason=outcome.reason)
        if outcome.suppress and interaction.address:
            await suppression.suppress(
                session, interaction.tenant_id, interaction.address, interaction.channel,
                outcome.suppress, code=outcome.code, interaction_id=interaction.id,
                at=clock.now())
        return "failed"
    add_event(session, interaction, "retrying", "provider", code=outcome.code,
              kind=outcome.kind, retry_after=outcome.retry_after_seconds)
    return RetryLater(f"{outcome.kind}: {outcome.code}", outcome.retry_after_seconds or 30)
