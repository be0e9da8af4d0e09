"""HTTP routes: /v1/templates, /v1/messages, /v1/interactions, /v1/opt-out-keywords."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock, money
from cartera.api.context import Actor, app_context
from cartera.api.etag import IfMatch, claim, tagged, with_etag
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.errors import Invalid
from cartera.messaging import inbound, schemas, sending, templates  # inbound: event handlers
from cartera.messaging.models import (
    Interaction,
    InteractionEvent,
    MessageTemplate,
    OptOutKeyword,
)
from cartera.plugins.registry import current_host
from cartera.portfolio.service import _flush_unique, get_debtor, tenant_today

READ = secured("messaging:read")
WRITE = secured("messaging:write")


class TemplateController(Controller):
    path = "/v1/templates"
    tags = ["Messaging"]

    @post("/", summary="Create a template", operation_id="CreateTemplate", **WRITE)
    async def create(self, data: schemas.TemplateCreate, session: AsyncSession,
                     actor: Actor) -> schemas.TemplateOut:
        """A message template for one channel and locale, checked against the channel's
        rules when saved: SMS encoding and segments are reported; a WhatsApp template names
        an approved provider template, its language and ordered parameters; an e-mail has a
        subject, a text and an HTML part. Sandboxed Jinja2; money and dates are formatted
        for the locale. The tenant's country packs check the content on save
        (``compliance``): wording no rendering can make lawful (a court-document lookalike,
        a threat, posing as an authority, asking why the debtor did not pay, a bureau
        threat) refuses the save (``template_unlawful``, 422, naming ``body`` or
        ``subject``); a missing creditor name, CNPJ or disclosure is listed but saved,
        since placeholders may supply it and the gate checks every rendered message."""
        compliance = await templates.check_compliance(
            session, current_host(), actor.tenant_id, data.channel, data.body, data.subject)
        return templates.out(await templates.create(session, actor, data), compliance)

    @get("/", summary="List templates", operation_id="ListTemplates", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, channel: str | None = None,
                    code: str | None = None) -> Page[schemas.TemplateOut]:
        """Templates in id order."""
        from cartera.messaging.models import MessageTemplate

        stmt = select(MessageTemplate)
        if channel is not None:
            stmt = stmt.where(MessageTemplate.channel == channel)
        if code is not None:
            stmt = stmt.where(MessageTemplate.code == code)
        rows = (await session.scalars(paginate(stmt, MessageTemplate.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, templates.out)

    @get("/{template_id:int}", summary="Get a template", operation_id="GetTemplate", **READ)
    async def retrieve(self, template_id: int,
                       session: AsyncSession) -> Response[schemas.TemplateOut]:
        """One template (with its `ETag`)."""
        template = await templates.get(session, template_id)
        return with_etag(templates.out(template), template.updated_at)

    @patch("/{template_id:int}", summary="Update a template", operation_id="UpdateTemplate",
           **WRITE)
    async def update(self, template_id: int, data: schemas.TemplateUpdate,
                     session: AsyncSession, actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.TemplateOut]:
        """Change a template (its version increases); rules and content are checked again,
        as on create. `If-Match`: only if unchanged since read, else 412."""
        this = MessageTemplate.id == template_id
        await claim(session, MessageTemplate, if_match, this)
        saved = await templates.get(session, template_id)
        compliance = await templates.check_compliance(
            session, current_host(), actor.tenant_id, saved.channel,
            saved.body if data.body is msgspec.UNSET else data.body,
            saved.subject if data.subject is msgspec.UNSET else data.subject)
        out = templates.out(await templates.update(session, actor, template_id, data),
                            compliance)
        return await tagged(session, MessageTemplate, out, this)

    @post("/{template_id:int}/preview", summary="Preview a template for a debtor",
          operation_id="PreviewTemplate", status_code=200, **READ)
    async def preview(self, template_id: int, data: schemas.PreviewRequest,
                      session: AsyncSession, actor: Actor) -> schemas.PreviewOut:
        """Render the template for one debtor, exactly as it would be sent now."""
        return await templates.preview(session, template_id, data,
                                       await tenant_today(session, actor.tenant_id))


def _interactions_out(rows: list[Interaction],
                      events: dict[int, list[schemas.InteractionEventOut]]
                      ) -> list[schemas.InteractionOut]:
    return [schemas.InteractionOut(
        id=i.id, debtor_id=i.debtor_id, direction=i.direction, channel=i.channel,
        status=i.status, integration_id=i.integration_id, template_id=i.template_id,
        contact_point_id=i.contact_point_id, address=i.address,
        provider_message_id=i.provider_message_id, obligation_ids=list(i.obligation_ids),
        content=i.content, verdict=i.verdict, trigger=dict(i.trigger),
        not_before=i.not_before, failure_code=i.failure_code,
        failure_reason=i.failure_reason,
        cost=money.from_minor(i.cost_minor, i.cost_currency)
        if i.cost_minor is not None and i.cost_currency else None,
        cost_currency=i.cost_currency, timeline=events[i.id], created_at=i.created_at,
        updated_at=i.updated_at) for i in rows]


async def interactions_out(session: AsyncSession,
                           rows: list[Interaction]) -> list[schemas.InteractionOut]:
    events: dict[int, list[schemas.InteractionEventOut]] = defaultdict(list)
    if rows:
        recorded = (await session.scalars(select(InteractionEvent).where(
            InteractionEvent.interaction_id.in_([i.id for i in rows]))
            .order_by(InteractionEvent.id))).all()
        for e in inbound.story_order(list(recorded)):
            events[e.interaction_id].append(schemas.InteractionEventOut(
                status=e.status, at=e.at, occurred_at=e.occurred_at, source=e.source,
                detail=dict(e.detail)))
    return _interactions_out(rows, events)


@post("/v1/messages", summary="Send a message", operation_id="SendMessage", tags=["Messaging"],
      status_code=202, **WRITE)
async def send_message(request: Request[Any, Any, Any], data: schemas.MessageCreate,
                       session: AsyncSession, actor: Actor) -> schemas.InteractionOut:
    """Send a template to a debtor through a channel integration. The contact gate decides
    first (consent, opt-outs, contact point kind, the country's compliance packs); its
    verdict and reasons are on the returned interaction: ``queued`` (sent by a job),
    ``deferred`` (queued for the earliest lawful instant, ``not_before``) or ``refused``.
    Send with an ``Idempotency-Key`` so a retried request never sends twice. A refusal
    answers 422 ``contact_refused`` with the reasons; the refused attempt is still logged."""
    interaction = await sending.send(session, app_context(request), current_host(), actor, data)
    if interaction.status == "refused":
        await session.commit()  # the refusal itself is part of the record
        reasons = (interaction.verdict or {}).get("reasons", [])
        raise Invalid("; ".join(r["message"] for r in reasons) or "contact refused",
                      code="contact_refused", param="contact_point_id",
                      extra={"interaction_id": interaction.id, "reasons": reasons})
    return (await interactions_out(session, [interaction]))[0]


class InteractionController(Controller):
    path = "/v1/interactions"
    tags = ["Messaging"]

    @get("/", summary="List interactions", operation_id="ListInteractions", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None, debtor_id: int | None = None,
                    channel: str | None = None, status: str | None = None,
                    direction: str | None = None) -> Page[schemas.InteractionOut]:
        """Every contact and reply, with its status timeline, in id order."""
        stmt = select(Interaction)
        for column, value in ((Interaction.debtor_id, debtor_id),
                              (Interaction.channel, channel), (Interaction.status, status),
                              (Interaction.direction, direction)):
            if value is not None:
                stmt = stmt.where(column == value)
        rows = (await session.scalars(paginate(stmt, Interaction.id, limit,
                                               starting_after))).all()
        page = page_of(rows, limit, lambda i: i)
        page.data = await interactions_out(session, page.data)
        return page

    @get("/{interaction_id:int}", summary="Get an interaction",
         operation_id="GetInteraction", **READ)
    async def retrieve(self, interaction_id: int,
                       session: AsyncSession) -> schemas.InteractionOut:
        """One interaction with the gate's verdict and its status timeline."""
        row = await get_owned(session, Interaction, interaction_id, session.info["tenant_id"],
                              what="interaction")
        return (await interactions_out(session, [row]))[0]

    @post("/", summary="Record an interaction", operation_id="RecordInteraction", **WRITE)
    async def record(self, data: schemas.InteractionRecord, session: AsyncSession,
                     actor: Actor) -> schemas.InteractionOut:
        """Log a contact made outside Cartera's channels: a collector's call, a visit, a
        letter, with its outcome."""
        debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
        await sending.check_obligation_ids(session, debtor, data.obligation_ids)
        at: datetime = data.occurred_at or clock.now()
        row = Interaction(tenant_id=actor.tenant_id, debtor_id=debtor.id, direction="outbound",
                          channel=data.channel, status=data.outcome,
                          obligation_ids=list(data.obligation_ids),
                          content={"note": data.note} if data.note else None,
                          trigger={"source": "manual", "client_id": actor.client_id})
        session.add(row)
        await session.flush()
        sending.add_event(session, row, data.outcome, "manual", at=at)
        await sending.publish_interaction(session, row)
        audit.record(session, actor, "interaction.recorded", "debtor", debtor.id,
                     {"interaction_id": row.id, "channel": data.channel})
        return (await interactions_out(session, [row]))[0]


class OptOutKeywordController(Controller):
    path = "/v1/opt-out-keywords"
    tags = ["Messaging"]

    @get("/", summary="List opt-out keywords", operation_id="ListOptOutKeywords", **READ)
    async def index(self, session: AsyncSession) -> list[schemas.KeywordOut]:
        """The tenant's keywords, added to BAJA, STOP, NO MAS and CANCELAR."""
        rows = await session.scalars(select(OptOutKeyword).order_by(OptOutKeyword.keyword))
        return [schemas.KeywordOut(id=k.id, keyword=k.keyword) for k in rows]

    @post("/", summary="Add an opt-out keyword", operation_id="CreateOptOutKeyword", **WRITE)
    async def create(self, data: schemas.KeywordIn, session: AsyncSession,
                     actor: Actor) -> schemas.KeywordOut:
        """A reply equal to this keyword (ignoring case, accents and punctuation) revokes
        consent for that channel on that contact point."""
        from cartera.messaging.inbound import normalise

        row = OptOutKeyword(tenant_id=actor.tenant_id, keyword=normalise(data.keyword))
        session.add(row)
        await _flush_unique(session, "that keyword exists", "keyword")
        audit.record(session, actor, "opt_out_keyword.created", "tenant", actor.tenant_id,
                     {"keyword": row.keyword})
        return schemas.KeywordOut(id=row.id, keyword=row.keyword)

    @delete("/{keyword_id:int}", summary="Remove an opt-out keyword",
            operation_id="DeleteOptOutKeyword", **WRITE)
    async def remove(self, keyword_id: int, session: AsyncSession, actor: Actor) -> None:
        """Remove one of the tenant's keywords (the defaults always apply)."""
        row = await get_owned(session, OptOutKeyword, keyword_id, actor.tenant_id,
                              what="keyword")
        await session.delete(row)
        audit.record(session, actor, "opt_out_keyword.deleted", "tenant", actor.tenant_id,
                     {"keyword": row.keyword})


ROUTES = [TemplateController, send_message, InteractionController, OptOutKeywordController]
