"""HTTP routes: /v1/events and /v1/webhook-endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.api.etag import IfMatch, claim, tagged, with_etag
from cartera.api.location import LOCATION
from cartera.api.pagination import IdFilter, Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.events import endpoints, queries, schemas
from cartera.events.models import DeliveryAttempt, WebhookEndpoint

EVENTS_READ = secured("events:read")
READ = secured("webhook-endpoints:read")
WRITE = secured("webhook-endpoints:write")

EventCursor = Annotated[str | None, Parameter(
    min_length=5, max_length=40, pattern=r"^evt_[0-9a-f]+$",
    description="Cursor: return events after the event with this id.")]
TypeFilter = Annotated[list[str] | None, Parameter(
    query="type", description="Only these types; repeat for several. ``payment.*`` names a "
                              "family.")]
CreatedFrom = Annotated[datetime | None, Parameter(
    description="Only events created at or after this instant (with a time zone).")]
CreatedTo = Annotated[datetime | None, Parameter(
    description="Only events created before this instant (with a time zone).")]
EventIdPath = Annotated[str, Parameter(min_length=5, max_length=40)]


class EventController(Controller):
    path = "/v1/events"
    tags = ["Events"]

    @get("/", summary="List events", operation_id="ListEvents", **EVENTS_READ)
    async def index(self, session: AsyncSession, actor: Actor, limit: Limit = 50,
                    starting_after: EventCursor = None, types: TypeFilter = None,
                    created_from: CreatedFrom = None, created_to: CreatedTo = None,
                    debtor_id: IdFilter = None) -> schemas.EventPage:
        """The tenant's events of the last 30 days, oldest first: every change ISVs see
        (the same bodies webhook endpoints receive). A filter that is malformed or can
        match nothing by construction is a 422 naming it."""
        found = queries.EventFilter(types or [], created_from, created_to, debtor_id)
        return await queries.list_events(session, actor.tenant_id, found, limit,
                                         starting_after)

    @get("/{event_id:str}", summary="Get an event", operation_id="GetEvent", **EVENTS_READ)
    async def retrieve(self, event_id: EventIdPath, session: AsyncSession,
                       actor: Actor) -> schemas.EventOut:
        """One event of the last 30 days, as its webhook deliveries carry it."""
        return queries.event_out(await queries.get_event(session, actor.tenant_id, event_id))

    @post("/{event_id:str}/redeliver", summary="Redeliver an event",
          operation_id="RedeliverEvent", status_code=202, **WRITE)
    async def redeliver(self, event_id: EventIdPath, session: AsyncSession, actor: Actor,
                        data: schemas.RedeliverIn | None = None) -> schemas.RedeliverOut:
        """Queue the event again to every enabled endpoint whose filters match it (or to
        ``endpoint_id`` only): a new delivery each, sent with the same ``webhook-id``, after
        the debtor's earlier open deliveries to that endpoint."""
        event = await queries.get_event(session, actor.tenant_id, event_id)
        target = data.endpoint_id if data else None
        rows = await queries.redeliver(session, actor.tenant_id, event, target)
        return schemas.RedeliverOut(data=[queries.delivery_out(r, event.id) for r in rows])


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    tags = ["Webhook endpoints"]

    @post("/", summary="Create a webhook endpoint", operation_id="CreateWebhookEndpoint",
          opt={LOCATION: "{path}/{endpoint[id]}"}, **WRITE)
    async def create(self, data: schemas.EndpointCreate, session: AsyncSession,
                     actor: Actor) -> schemas.EndpointWithSecret:
        """Register a URL for the event types matching ``event_types``. The URL must be
        https and reach a destination the host's egress rules allow (a private address is a
        422 unless the operator allows it). The signing ``secret`` is returned only here."""
        endpoint, secret = await endpoints.create(session, actor.tenant_id, data)
        return schemas.EndpointWithSecret(endpoint=endpoints.out(endpoint), secret=secret)

    @get("/", summary="List webhook endpoints", operation_id="ListWebhookEndpoints", **READ)
    async def index(self, session: AsyncSession, actor: Actor, limit: Limit = 20,
                    starting_after: StartingAfter = None) -> Page[schemas.EndpointOut]:
        """The tenant's webhook endpoints in id order (secrets are never listed)."""
        rows = (await session.scalars(paginate(
            queries.endpoints_of(actor.tenant_id), queries.endpoint_id_column(), limit,
            starting_after))).all()
        return page_of(rows, limit, endpoints.out)

    @get("/{endpoint_id:int}", summary="Get a webhook endpoint",
         operation_id="GetWebhookEndpoint", **READ)
    async def retrieve(self, endpoint_id: int, session: AsyncSession,
                       actor: Actor) -> Response[schemas.EndpointOut]:
        """One webhook endpoint, with ``failing_since`` when its deliveries fail (and its
        `ETag`)."""
        endpoint = await endpoints.get(session, actor.tenant_id, endpoint_id)
        return with_etag(endpoints.out(endpoint), endpoint.updated_at)

    @patch("/{endpoint_id:int}", summary="Update a webhook endpoint",
           operation_id="UpdateWebhookEndpoint", **WRITE)
    async def update(self, endpoint_id: int, data: schemas.EndpointUpdate,
                     session: AsyncSession, actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.EndpointOut]:
        """Change the URL, filters or description, or disable/enable the endpoint
        (`If-Match`: only if unchanged since read, else 412)."""
        this = WebhookEndpoint.id == endpoint_id
        await claim(session, WebhookEndpoint, if_match, this)
        out = endpoints.out(await endpoints.update(session, actor.tenant_id, endpoint_id, data))
        return await tagged(session, WebhookEndpoint, out, this)

    @delete("/{endpoint_id:int}", summary="Delete a webhook endpoint",
            operation_id="DeleteWebhookEndpoint", **WRITE)
    async def remove(self, endpoint_id: int, session: AsyncSession, actor: Actor) -> None:
        """Delete the endpoint with its pending deliveries and its delivery log."""
        await endpoints.delete(session, actor.tenant_id, endpoint_id)

    @post("/{endpoint_id:int}/rotate-secret", summary="Rotate a webhook endpoint's secret",
          operation_id="RotateWebhookEndpointSecret", status_code=200, **WRITE)
    async def rotate(self, endpoint_id: int, session: AsyncSession, actor: Actor,
                     data: schemas.RotateSecret | None = None) -> schemas.EndpointWithSecret:
        """A new secret, returned only here. For ``grace_seconds`` (default a day)
        deliveries carry a signature under the old secret as well."""
        grace = (data or schemas.RotateSecret()).grace_seconds
        endpoint, secret = await endpoints.rotate(session, actor.tenant_id, endpoint_id, grace)
        return schemas.EndpointWithSecret(endpoint=endpoints.out(endpoint), secret=secret)

    @get("/{endpoint_id:int}/deliveries", summary="List a webhook endpoint's delivery log",
         operation_id="ListWebhookEndpointDeliveries", **READ)
    async def deliveries(self, endpoint_id: int, session: AsyncSession, actor: Actor,
                         limit: Limit = 50, starting_after: StartingAfter = None
                         ) -> Page[schemas.AttemptOut]:
        """Every attempt to deliver to the endpoint, newest last: status code (none when
        the connection failed), latency, and at most 200 characters of the response."""
        await endpoints.get(session, actor.tenant_id, endpoint_id)
        stmt = select(DeliveryAttempt).where(DeliveryAttempt.endpoint_id == endpoint_id,
                                             DeliveryAttempt.tenant_id == actor.tenant_id)
        rows = (await session.scalars(paginate(stmt, DeliveryAttempt.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, queries.attempt_out)


ROUTES = [EventController, WebhookEndpointController]
