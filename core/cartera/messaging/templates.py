"""Template use cases: channel rules checked on save, preview, and rendering to content."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import msgspec
from cartera_sdk.channels import (
    Content,
    CurrencyParameter,
    DateTimeParameter,
    EmailContent,
    SmsContent,
    TemplateParameter,
    TextParameter,
    UrlButton,
    WhatsAppTemplateContent,
)
from cartera_sdk.money import Money
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.errors import Invalid, NotFound
from cartera.messaging import rendering, sandbox, schemas, sms
from cartera.messaging.models import MessageTemplate
from cartera.messaging.schemas import MessageChannel
from cartera.plugins.host import PluginHost
from cartera.portfolio.models import Debtor
from cartera.portfolio.service import _flush_unique, get_debtor


def _check_rules(t: MessageTemplate) -> None:
    """Each channel's rules, naming the field at fault."""
    rendering.check_syntax(t.body, "body")
    if t.channel == "email":
        if not t.subject:
            raise Invalid("an e-mail template needs a subject", code="missing_subject",
                          param="subject")
        if not t.html:
            raise Invalid("an e-mail template needs an HTML part", code="missing_html",
                          param="html")
        rendering.check_syntax(t.subject, "subject")
        rendering.check_syntax(t.html, "html", html=True)
    if t.channel == "whatsapp":
        if not t.whatsapp:
            raise Invalid("a WhatsApp template maps to an approved provider template: give "
                          "whatsapp.name, whatsapp.language and its ordered parameters",
                          code="missing_whatsapp_template", param="whatsapp")
        for i, p in enumerate(t.whatsapp.get("parameters", [])):
            rendering.check_syntax(p["value"], f"whatsapp.parameters[{i}].value")
    elif t.whatsapp:
        raise Invalid("whatsapp is only for WhatsApp templates", param="whatsapp")
    if t.channel == "sms" and (t.subject or t.html):
        raise Invalid("an SMS has no subject or HTML", param="subject" if t.subject else "html")


def sms_info(text: str) -> schemas.SmsInfo:
    a = sms.analyse(text)
    return schemas.SmsInfo(a.encoding, a.characters, a.units, a.segments, a.non_gsm_characters)


def out(t: MessageTemplate, compliance: schemas.TemplateCompliance | None = None
        ) -> schemas.TemplateOut:
    return schemas.TemplateOut(
        id=t.id, code=t.code, channel=cast(MessageChannel, t.channel), locale=t.locale,
        name=t.name, body=t.body,
        subject=t.subject, html=t.html, whatsapp=t.whatsapp, version=t.version,
        sms=sms_info(t.body) if t.channel == "sms" else None, created_at=t.created_at,
        updated_at=t.updated_at, compliance=compliance)


async def check_compliance(session: AsyncSession, host: PluginHost, tenant_id: int,
                           channel: str, body: str, subject: str | None
                           ) -> schemas.TemplateCompliance:
    """The content check of a template about to be saved
    (:func:`cartera.compliance.checks.check_on_save`): refuses one whose own words break a
    content rule (``template_unlawful``), else lists what the packs found."""
    from cartera.compliance.checks import check_on_save

    country, packs, found = await check_on_save(session, host, tenant_id, channel, body,
                                                subject)
    return schemas.TemplateCompliance(country=country, packs=packs, findings=found)


async def create(session: AsyncSession, actor: Actor,
                 data: schemas.TemplateCreate) -> MessageTemplate:
    t = MessageTemplate(tenant_id=actor.tenant_id, code=data.code, channel=data.channel,
                        locale=data.locale, name=data.name, body=data.body,
                        subject=data.subject, html=data.html,
                        whatsapp=msgspec.to_builtins(data.whatsapp) if data.whatsapp else None)
    _check_rules(t)
    session.add(t)
    await _flush_unique(session, f"template {data.code!r} exists for {data.channel} "
                                 f"in {data.locale}", "code")
    audit.record(session, actor, "template.created", "template", t.id,
                 {"code": t.code, "channel": t.channel, "locale": t.locale})
    return t


async def get(session: AsyncSession, template_id: int, *, param: str | None = None
              ) -> MessageTemplate:
    t = await session.get(MessageTemplate, template_id)
    if t is None or t.tenant_id != session.info.get("tenant_id"):
        if param:
            raise Invalid(f"template {template_id} does not exist", code="unknown_template",
                          param=param)
        raise NotFound(f"template {template_id} not found")
    return t


async def update(session: AsyncSession, actor: Actor, template_id: int,
                 data: schemas.TemplateUpdate) -> MessageTemplate:
    t = await get(session, template_id)
    changes = {k: v for k, v in msgspec.structs.asdict(data).items()
               if v is not msgspec.UNSET}
    for key, value in changes.items():
        setattr(t, key, msgspec.to_builtins(value) if key == "whatsapp" and value else value)
    _check_rules(t)
    t.version += 1
    await session.flush()
    audit.record(session, actor, "template.updated", "template", t.id,
                 {"version": t.version, "fields": sorted(changes)})
    return t


def _decimal(text: str, param: str) -> Decimal:
    cleaned = text.strip()
    try:
        return Decimal(cleaned)
    except InvalidOperation:
        raise Invalid(f"{cleaned!r} is not an amount", code="template_parameter_type",
                      param=param) from None


def _whatsapp_parameter(p: dict[str, Any], ctx: dict[str, Any], i: int) -> TemplateParameter:
    param = f"whatsapp.parameters[{i}].value"
    if p["type"] == "currency":
        # The expression must yield a money value (e.g. {{ balance.overdue }}): we need
        # the exact amount and currency, and the localised text as WhatsApp's fallback.
        value = rendering.evaluate(
            p["value"].strip().removeprefix("{{").removesuffix("}}").strip(), ctx, param)
        if not isinstance(value, rendering.LocalMoney):
            raise Invalid("a currency parameter must be a money value such as "
                          "{{ balance.overdue }}", code="template_parameter_type", param=param)
        return CurrencyParameter(amount=Money(value.amount, value.currency),
                                 fallback_value=str(value))
    text = rendering.render(p["value"], ctx, param)
    if p["type"] == "date_time":
        return DateTimeParameter(fallback_value=text)
    return TextParameter(text=text)


def render_content(t: MessageTemplate, ctx: dict[str, Any], from_address: str = ""
                   ) -> Content:
    """The SDK content for this template and context (raises Invalid naming the field).

    CPU-bound and synchronous, within one time budget for all the fields: async code
    uses :func:`render_message`."""
    with sandbox.budget():
        return _content(t, ctx, from_address)


async def render_message(t: MessageTemplate, ctx: dict[str, Any], from_address: str = ""
                         ) -> Content:
    """:func:`render_content` in a worker thread, off the event loop."""
    return await rendering.in_worker_thread(render_content, t, ctx, from_address)


def _content(t: MessageTemplate, ctx: dict[str, Any], from_address: str) -> Content:
    if t.channel == "sms":
        return SmsContent(text=sms.plain_spaces(rendering.render(t.body, ctx, "body")))
    if t.channel == "email":
        return EmailContent(subject=rendering.render(t.subject or "", ctx, "subject"),
                            text=rendering.render(t.body, ctx, "body"),
                            html=rendering.render(t.html or "", ctx, "html", html=True),
                            from_address=from_address or "no-reply@localhost")
    spec = t.whatsapp or {}
    suffix = spec.get("url_button_suffix")
    return WhatsAppTemplateContent(
        name=spec["name"], language=spec["language"],
        body_parameters=[_whatsapp_parameter(p, ctx, i)
                         for i, p in enumerate(spec.get("parameters", []))],
        buttons=[UrlButton(index=0, text=rendering.render(suffix, ctx,
                                                          "whatsapp.url_button_suffix"))]
        if suffix else [])


async def preview(session: AsyncSession, template_id: int, data: schemas.PreviewRequest,
                  as_of: date) -> schemas.PreviewOut:
    t = await get(session, template_id)
    debtor: Debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    from cartera.messaging.sending import check_obligation_ids

    await check_obligation_ids(session, debtor, data.obligation_ids)
    ctx = await rendering.debtor_context(session, debtor, t.locale, as_of, data.obligation_ids,
                                         dict(data.variables))
    content = await render_message(t, ctx)
    text = content.text if isinstance(content, SmsContent) else None
    return schemas.PreviewOut(channel=t.channel, content=msgspec.to_builtins(content),
                              sms=sms_info(text) if text is not None else None)
