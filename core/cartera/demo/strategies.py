"""The demo's collection set-up: segments by days past due, one SMS or e-mail template per
segment, a strategy per segment, and a first planner pass, so that a newcomer sees planned
actions, a debtor's next action explained and a simulation at once.

Idempotent: nothing is configured for a tenant that already has segments.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.clock import today_in
from cartera.messaging import schemas as messaging
from cartera.messaging import templates
from cartera.plugins.host import PluginHost
from cartera.segmentation import schemas as segmentation
from cartera.segmentation.models import Segment
from cartera.segmentation.service import evaluate, save_rule_set
from cartera.strategies import schemas, service
from cartera.strategies.planner import PlanResult, plan_tenant
from cartera.tenants.models import Tenant

BUSINESS_HOURS = schemas.WindowIn(start_hour=9, end_hour=19, weekdays=[1, 2, 3, 4, 5, 6])


def _dpd(low: int, high: int | None = None) -> dict[str, Any]:
    if high is None:
        return {"feature": "days_past_due", "op": "gte", "value": low}
    return {"feature": "days_past_due", "op": "between", "value": [low, high]}


SEGMENTS = [
    ("early", "Early delinquency (1-30 days)", _dpd(1, 30)),
    ("middle", "Middle delinquency (31-90 days)", _dpd(31, 90)),
    ("late", "Late delinquency (over 90 days)", _dpd(91)),
    ("current", "Current", {"all": []}),
]
TEXT = {
    "early": "Hola {{ debtor.first_name }}, tu pago de {{ balance.overdue }} está vencido. "
             "Paga hoy y evita recargos.",
    "middle": "{{ debtor.first_name }}, tienes {{ balance.overdue }} vencido. Llámanos para "
              "acordar un plan de pagos.",
    "late": "{{ debtor.first_name }}, tu deuda de {{ balance.overdue }} pasará a cobranza "
            "externa. Contáctanos.",
}


def _message(key: str, sms: int, mail: int, offset: int) -> schemas.StepIn:
    return schemas.StepIn(key=key, kind="message", anchor="previous_step", offset_days=offset,
                          window=BUSINESS_HOURS, channels=[
                              schemas.ChannelIn(channel="sms", template_id=sms),
                              schemas.ChannelIn(channel="email", template_id=mail)])


async def configure(session: AsyncSession, host: PluginHost,
                    tenant_id: int) -> PlanResult | None:
    """Configure the demo tenant's segments, templates and strategies and plan once; None
    when the tenant already had segments (nothing done)."""
    if await session.scalar(select(Segment.id).where(Segment.tenant_id == tenant_id).limit(1)):
        return None
    session.info["tenant_id"] = tenant_id
    actor = Actor(tenant_id=tenant_id, client_id=None, request_id=None)
    saved = await save_rule_set(session, actor, segmentation.RuleSetIn(segments=[
        segmentation.SegmentIn(code=code, name=name, rule=rule)
        for code, name, rule in SEGMENTS]))
    ids = {s.code: s.id for s in saved}
    for priority, code in enumerate(("late", "middle", "early"), 1):
        sms = await templates.create(session, actor, messaging.TemplateCreate(
            code=f"{code}_sms", channel="sms", locale="es-PE", name=f"{code} SMS",
            body=TEXT[code]))
        mail = await templates.create(session, actor, messaging.TemplateCreate(
            code=f"{code}_email", channel="email", locale="es-PE", name=f"{code} e-mail",
            subject="Tu deuda con nosotros", body=TEXT[code], html=f"<p>{TEXT[code]}</p>"))
        steps = [_message("first_notice", sms.id, mail.id, 0),
                 _message("reminder", sms.id, mail.id, 3)]
        if code != "early":
            steps.append(schemas.StepIn(key="collector_call", kind="task",
                                        offset_days=2, window=BUSINESS_HOURS,
                                        task=schemas.TaskIn(queue=f"{code}_calls")))
        strategy = await service.create(session, actor, schemas.StrategyCreate(
            code=code, name=f"{code.title()} delinquency", priority=priority,
            version=schemas.VersionIn(segment_ids=[ids[code]], steps=steps)))
        await service.activate(session, actor, strategy.id, 1, schemas.Activate(), host)
    zone = str(await session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)))
    await evaluate(session, tenant_id, today_in(zone), actor="demo")
    return await plan_tenant(session, host, tenant_id)
