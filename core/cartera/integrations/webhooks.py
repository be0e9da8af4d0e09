"""Inbound provider webhooks: verify, store raw, then process asynchronously and once.

The route is ``/v1/hooks/{token}``: an unguessable per-integration token (see
:func:`cartera.integrations.service.give_webhook_token`), found by its hash. The request is
verified by the provider's own signature check over the raw bytes. A valid one is stored
(credentials redacted: ``Authorization``, signature headers, token parameters) and queues
``webhooks.process``, which parses it into events and keeps only events whose
``(integration, event_id)`` is new, so provider redeliveries and replays are harmless. A
refused one only counts in :class:`WebhookRejection` (per reason, no body).

A payment integration's events are reconciled after the delivery's transaction, one by
one: each is re-fetched from the provider outside any transaction and applied in its own
(:mod:`cartera.payments.reconcile`), which also marks it processed; one a crash left
``received`` is reconciled when the job runs again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from cartera_sdk.errors import WebhookVerificationError
from cartera_sdk.webhooks import DEFAULT_WEBHOOK_ENCODINGS, WebhookRequest, WebhookResponse
from sqlalchemy import and_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import AppContext
from cartera.db.base import table_of
from cartera.errors import NotFound, Unauthorized
from cartera.integrations import service
from cartera.integrations.models import (
    Integration,
    WebhookDelivery,
    WebhookEvent,
    WebhookRejection,
)
from cartera.jobs.registry import JobContext, job
from cartera.plugins.host import PluginCallError, PluginHost
from cartera.settings import get_settings

log = logging.getLogger("cartera.webhooks")
_KEPT_HEADERS_MAX = 64
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
_SECRET_NAME = re.compile(r"auth|signature|sig$|token|secret|key|password|cookie", re.I)
REDACTED = "[redacted]"


def public_url(public_base: str, request_url: str) -> str:
    """The URL the provider called: ``request_url``'s path and query under the public base
    URL (a proxy in front may have changed scheme, host, port or stripped a path prefix).
    Signatures that cover the URL (Twilio's) are checked against this, so it is also what
    a stored delivery keeps."""
    parts = urlsplit(request_url)
    return public_base + parts.path + (f"?{parts.query}" if parts.query else "")


async def _integration(session: AsyncSession, token: str) -> Integration:
    integration = None
    if _TOKEN.fullmatch(token):
        integration = await session.scalar(select(Integration).where(
            Integration.webhook_token_hash == service.webhook_token_hash(token)))
    if integration is None or not integration.enabled:
        raise NotFound("no active integration has this webhook URL")
    return integration


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers to keep: credentials and signatures replaced by ``[redacted]``."""
    kept = list(headers.items())[:_KEPT_HEADERS_MAX]
    return {k: REDACTED if _SECRET_NAME.search(k) else v for k, v in kept}


def redacted_url(url: str) -> str:
    """``url`` without a password and with token-like query parameters ``[redacted]``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:{REDACTED}@{host}"
    query = urlencode([(k, REDACTED if _SECRET_NAME.search(k) else v)
                       for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="[]")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


async def _count_rejection(session: AsyncSession, integration: Integration,
                           reason: str) -> None:
    now = clock.now()
    module = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    table = table_of(WebhookRejection)
    insert = module.insert(WebhookRejection).values(
        tenant_id=integration.tenant_id, integration_id=integration.id, reason=reason[:64],
        count=1, first_seen_at=now, last_seen_at=now)
    await session.execute(insert.on_conflict_do_update(
        index_elements=["integration_id", "reason"],
        set_={"count": table.c.count + 1, "last_seen_at": now}))


def _provider(host: PluginHost, integration: Integration) -> Any:
    registered = host.provider(integration.provider_kind,  # type: ignore[arg-type]
                               integration.provider_name)
    if registered is None:
        raise NotFound(f"integration {integration.id} has no installed provider")
    return registered.provider


def webhook_encodings(provider: Any) -> tuple[str, ...]:
    """How the provider's webhooks arrive (the SDK's default when it declares nothing)."""
    return tuple(getattr(provider, "webhook_encodings", DEFAULT_WEBHOOK_ENCODINGS))


async def on_get(ctx: AppContext, host: PluginHost, token: str,
                 request: WebhookRequest) -> WebhookResponse | int:
    """A GET to the webhook URL: the provider's handshake answer (WhatsApp's
    ``hub.challenge``) when it claims the request, else, for a provider that declares
    ``"query"`` webhooks (Vonage's receipts), a delivery verified and stored like a POST
    (returns its id). Anything else is a refused handshake (401 ``handshake_refused``)."""
    async with ctx.sessionmaker() as session:
        integration = await _integration(session, token)
    provider = _provider(host, integration)
    if hasattr(provider, "handshake"):
        pctx = service.context_for(integration, provider, ctx.settings.public_base,
                                   host.timeout_seconds)
        answer = await host.call(provider.handshake(request, pctx), what="webhook handshake")
        if answer is not None:
            return answer  # type: ignore[no-any-return]
    if "query" in webhook_encodings(provider) and urlsplit(request.url).query:
        return await receive(ctx, host, token, request)
    if not hasattr(provider, "handshake"):
        raise NotFound("this provider has no webhook handshake")
    raise Unauthorized("handshake refused", code="handshake_refused")


async def receive(ctx: AppContext, host: PluginHost, token: str,
                  request: WebhookRequest) -> int:
    """Verify and store a POSTed webhook; queue its processing. Returns the delivery id.

    Raises :class:`Unauthorized` (after counting the rejection) when the signature fails.
    """
    async with ctx.sessionmaker() as session:
        integration = await _integration(session, token)
        provider = _provider(host, integration)
        pctx = service.context_for(integration, provider, ctx.settings.public_base,
                                   host.timeout_seconds)
        rejection: str | None = None
        try:
            await host.call(provider.verify_webhook(request, pctx), what="webhook verification")
        except WebhookVerificationError as exc:
            rejection = exc.code
        except PluginCallError as exc:
            if not isinstance(exc.__cause__, WebhookVerificationError):
                raise
            rejection = exc.__cause__.code
        if rejection is not None:
            await _count_rejection(session, integration, rejection)
            await session.commit()
            log.warning("webhook rejected", extra={"integration_id": integration.id,
                                                   "reason": rejection})
            raise Unauthorized(f"webhook signature check failed: {rejection}",
                               code="invalid_signature")
        delivery = WebhookDelivery(
            tenant_id=integration.tenant_id, integration_id=integration.id,
            method=request.method, url=redacted_url(request.url),
            headers=redacted_headers(request.headers), body=request.body,
            signature_valid=True, status="received")
        session.add(delivery)
        await session.flush()
        await ctx.jobs.enqueue(session, integration.tenant_id, "webhooks.process",
                               {"delivery_id": delivery.id,
                                "lock": f"integration:{integration.id}"})
        await session.commit()
    return delivery.id


EventHandler = Callable[[AsyncSession, Integration, Any, dict[str, Any]], Awaitable[None]]
EVENT_HANDLERS: dict[str, EventHandler] = {}


def on_event(event_type: str) -> Callable[[EventHandler], EventHandler]:
    """Register the domain handler for one parsed event type (``DeliveryStatusEvent``...)."""
    def register(fn: EventHandler) -> EventHandler:
        EVENT_HANDLERS[event_type] = fn
        return fn

    return register


IGNORED: dict[str, str] = {
    "PaymentEvent": "not_a_payment_integration: payment events are applied only from a "
                    "payment provider's integration; the event is kept as received",
}
"""Why an event type without a domain handler is ignored (others: ``no_handler``)."""

RECONCILED = "PaymentEvent"
"""Events of a payment integration: left ``received`` by :func:`dispatch` and reconciled
one by one after the delivery's transaction (:func:`reconcile_pending`), since each needs a
provider call that must not run inside a transaction."""


async def dispatch(session: AsyncSession, integration: Integration, provider: Any,
                   rows: list[dict[str, Any]]) -> None:
    """Hand each new event to its domain handler, in the order the provider sent them, and
    mark it ``processed``; an event no handler takes is marked ``ignored`` with the reason
    (never ``processed`` with no effect)."""
    handled: list[str] = []
    if integration.provider_kind == "payment":
        rows = [r for r in rows if r["event_type"] != RECONCILED]
    for row in rows:
        handler = EVENT_HANDLERS.get(row["event_type"])
        if handler is not None:
            await handler(session, integration, provider, row["payload"])
            handled.append(row["event_id"])
    ignored: dict[str, list[str]] = {}
    for row in rows:
        if row["event_id"] not in handled:
            why = IGNORED.get(row["event_type"], f"no_handler: nothing handles "
                                                 f"{row['event_type']} events")
            ignored.setdefault(why, []).append(row["event_id"])
    now = clock.now()
    marks: list[tuple[str, str | None, list[str]]] = [
        ("processed", None, handled), *[("ignored", r, ids) for r, ids in ignored.items()]]
    for status, reason, ids in marks:
        if ids:  # a handler may have set a processed event's reason (inbound fragments)
            keep = {"reason": reason} if status == "ignored" else {}
            await session.execute(update(WebhookEvent).where(
                WebhookEvent.integration_id == integration.id, WebhookEvent.event_id.in_(ids))
                .values(status=status, processed_at=now, **keep))


def _insert_ignore(dialect: str) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(WebhookEvent)


@job("webhooks.process")
async def process_delivery(job_ctx: JobContext) -> dict[str, Any]:
    """Parse a stored delivery and record its new events (idempotent: re-running adds none)."""
    from cartera.plugins.registry import current_host

    host = current_host()
    delivery_id = int(job_ctx.payload["delivery_id"])
    async with job_ctx.sessionmaker() as session:
        found = (await session.execute(select(WebhookDelivery, Integration).join(
            Integration, Integration.id == WebhookDelivery.integration_id).where(
            WebhookDelivery.id == delivery_id))).first()
        if found is None:
            return {"skipped": "delivery gone"}
        delivery, integration = found
        session.info["tenant_id"] = delivery.tenant_id
        provider = _provider(host, integration)
        pctx = service.context_for(integration, provider, get_settings().public_base,
                                   host.timeout_seconds)
        request = WebhookRequest(method=delivery.method, url=delivery.url,
                                 headers=dict(delivery.headers), body=delivery.body,
                                 received_at=delivery.received_at)
        events = provider.parse_webhook(request, pctx)
        rows = [{"tenant_id": delivery.tenant_id, "integration_id": integration.id,
                 "delivery_id": delivery.id, "event_id": e.event_id,
                 "event_type": type(e).__name__, "payload": msgspec.to_builtins(e),
                 "status": "received", "received_at": clock.now()} for e in events]
        new = 0
        pending: set[str] = set()
        if rows:
            stored = dict((await session.execute(select(
                WebhookEvent.event_id, and_(WebhookEvent.event_type == RECONCILED,
                                            WebhookEvent.status == "received")).where(
                WebhookEvent.integration_id == integration.id,
                WebhookEvent.event_id.in_([r["event_id"] for r in rows])))).all())
            seen = set(stored)
            new = len({r["event_id"] for r in rows} - seen)
            # A payment event to reconcile: new, or stored still ``received`` (a crashed run).
            pending = {r["event_id"] for r in rows if r["event_type"] == RECONCILED
                       and stored.get(r["event_id"], True)}
            dialect = session.get_bind().dialect.name
            await session.execute(_insert_ignore(dialect).values(rows).on_conflict_do_nothing(
                index_elements=["integration_id", "event_id"]))
            fresh = list({r["event_id"]: r for r in rows if r["event_id"] not in seen}.values())
            await dispatch(session, integration, provider, fresh)
        await session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery.id)
                              .values(status="processed", events_new=new,
                                      events_duplicate=len(rows) - new))
        await session.commit()
        payment_integration = integration.provider_kind == "payment"
    outcomes: dict[str, int] = {}
    if payment_integration and pending:
        outcomes = await reconcile_pending(job_ctx.sessionmaker, host, integration, events,
                                           pending)
    return {"events_new": new, "events_duplicate": len(rows) - new, **outcomes}


async def reconcile_pending(sessionmaker: Any, host: PluginHost, integration: Integration,
                            events: list[Any], pending: set[str]) -> dict[str, int]:
    """Reconcile this delivery's payment events in ``pending``: those the delivery's
    transaction found new or still ``received`` (a crashed run left them, whichever delivery
    stored them), each re-fetched outside any transaction and applied in its own
    (:func:`cartera.payments.reconcile.reconcile_event`, which applies an event only while
    it is ``received``, under the debtor's money lock). A duplicate of an event already
    processed costs nothing here: it is not pending."""
    from cartera.payments.reconcile import reconcile_event

    pending = set(pending)
    outcomes: dict[str, int] = {}
    for event in events:
        if type(event).__name__ != RECONCILED or event.event_id not in pending:
            continue
        pending.discard(event.event_id)
        outcome = await reconcile_event(sessionmaker, host, integration.id, event,
                                        event.event_id, integration=integration)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


async def rejections(session: AsyncSession, integration_id: int) -> list[WebhookRejection]:
    await service.get(session, integration_id)
    return list((await session.scalars(
        select(WebhookRejection).where(WebhookRejection.integration_id == integration_id)
        .order_by(WebhookRejection.last_seen_at.desc()))).all())


async def deliveries(session: AsyncSession, integration_id: int,
                     limit: int) -> list[WebhookDelivery]:
    await service.get(session, integration_id)
    return list((await session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.integration_id == integration_id)
        .order_by(WebhookDelivery.id.desc()).limit(limit))).all())
