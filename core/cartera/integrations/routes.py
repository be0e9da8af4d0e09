"""HTTP routes: /v1/integrations and the public inbound webhook route /v1/hooks/{id}."""

from __future__ import annotations

from typing import Any

import msgspec
from cartera_sdk.integration import ConnectionCheck
from cartera_sdk.webhooks import WebhookRequest
from litestar import Controller, Request, Response, get, patch, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, app_context
from cartera.api.etag import IfMatch, claim, tagged, with_etag
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.errors import Conflict
from cartera.integrations import schemas, service, webhooks
from cartera.integrations.models import Integration
from cartera.plugins.host import EgressRefusedError
from cartera.plugins.registry import current_host

READ = secured("integrations:read")
WRITE = secured("integrations:write")


def _out(request: Request[Any, Any, Any], integration: Integration) -> schemas.IntegrationOut:
    return service.out(integration, app_context(request).settings.public_base)


class IntegrationController(Controller):
    path = "/v1/integrations"
    tags = ["Integrations"]

    @post("/", summary="Create an integration", operation_id="CreateIntegration", **WRITE)
    async def create(self, request: Request[Any, Any, Any], data: schemas.IntegrationCreate,
                     session: AsyncSession, actor: Actor) -> schemas.IntegrationOut:
        """Configure a provider from an installed plugin. ``config`` and ``secrets`` are
        validated against the provider's schemas (see ``GET /v1/plugins``); secrets are
        encrypted at rest and never returned — only their names, in ``secrets_set``."""
        return _out(request, await service.create(session, current_host(), actor, data))

    @get("/", summary="List integrations", operation_id="ListIntegrations", **READ)
    async def index(self, request: Request[Any, Any, Any], session: AsyncSession,
                    limit: Limit = 20, starting_after: StartingAfter = None
                    ) -> Page[schemas.IntegrationOut]:
        """The tenant's integrations in id order."""
        rows = (await session.scalars(paginate(select(Integration), Integration.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, lambda i: _out(request, i))

    @get("/{integration_id:int}", summary="Get an integration", operation_id="GetIntegration",
         **READ)
    async def retrieve(self, request: Request[Any, Any, Any], integration_id: int,
                       session: AsyncSession) -> Response[schemas.IntegrationOut]:
        """One integration (secrets are never returned), with its `ETag`."""
        integration = await service.get(session, integration_id)
        return with_etag(_out(request, integration), integration.updated_at)

    @patch("/{integration_id:int}", summary="Update an integration",
           operation_id="UpdateIntegration", **WRITE)
    async def update(self, request: Request[Any, Any, Any], integration_id: int,
                     data: schemas.IntegrationUpdate, session: AsyncSession,
                     actor: Actor,
                     if_match: IfMatch = None) -> Response[schemas.IntegrationOut]:
        """Rename, replace the config, merge new secrets, or enable/disable (`If-Match`:
        only if unchanged since read, else 412)."""
        this = Integration.id == integration_id
        await claim(session, Integration, if_match, this)
        out = _out(request, await service.update(session, current_host(), actor,
                                                 integration_id, data))
        return await tagged(session, Integration, out, this)

    @post("/{integration_id:int}/test", summary="Test an integration's connection",
          operation_id="TestIntegration", status_code=200, **WRITE)
    async def test(self, integration_id: int, session: AsyncSession,
                   request: Request[Any, Any, Any]) -> schemas.ConnectionTestOut:
        """Ask the provider to make a cheap authenticated call with the stored config.

        The answer is ``ok`` and a ``code`` only: nothing the provider (or whatever the
        configured address reaches) sent back is echoed. A destination the egress rules
        refuse answers ``code: egress_refused`` with the reason, and nothing is sent."""
        integration = await service.get(session, integration_id)
        if not integration.enabled:
            raise Conflict("the integration is disabled", code="integration_disabled")
        host = current_host()
        provider = service.provider_for(host, integration.provider_kind,
                                        integration.provider_name).provider
        pctx = service.context_for(integration, provider, app_context(request).settings.public_base,
                                   host.timeout_seconds)
        try:
            check = await host.call(provider.test_connection(pctx), what="test connection")
        except EgressRefusedError as exc:
            return schemas.ConnectionTestOut(ok=False, detail=exc.detail, code=exc.code)
        return schemas.ConnectionTestOut(ok=check.ok, detail=_test_detail(check),
                                         code=check.code)

    @get("/{integration_id:int}/webhook-deliveries", summary="List webhook deliveries",
         operation_id="ListWebhookDeliveries", **READ)
    async def deliveries(self, integration_id: int, session: AsyncSession,
                         limit: Limit = 20) -> list[schemas.WebhookDeliveryOut]:
        """Newest first: every accepted inbound request and what became of it (credentials
        in headers and query redacted). Refused requests are counted in
        ``webhook-rejections``."""
        return [schemas.WebhookDeliveryOut(
            id=d.id, received_at=d.received_at, method=d.method,
            signature_valid=d.signature_valid, rejection=d.rejection, status=d.status,
            events_new=d.events_new, events_duplicate=d.events_duplicate, error=d.error)
            for d in await webhooks.deliveries(session, integration_id, limit)]

    @get("/{integration_id:int}/webhook-rejections", summary="List refused webhook requests",
         operation_id="ListWebhookRejections", **READ)
    async def rejections(self, integration_id: int, session: AsyncSession
                         ) -> list[schemas.WebhookRejectionOut]:
        """Refused requests to the webhook URL (bad signature, missing credentials...), one
        counter per reason with when it was first and last seen; bodies are not kept."""
        return [schemas.WebhookRejectionOut(reason=r.reason, count=r.count,
                                            first_seen_at=r.first_seen_at,
                                            last_seen_at=r.last_seen_at)
                for r in await webhooks.rejections(session, integration_id)]


def _test_detail(check: ConnectionCheck) -> str:
    if check.ok:
        return "connection test passed"
    return f"connection test failed: {check.code or 'failed'}"


async def _webhook_request(request: Request[Any, Any, Any]) -> WebhookRequest:
    public = webhooks.public_url(app_context(request).settings.public_base, str(request.url))
    return WebhookRequest(method=request.method, url=public,
                          headers=dict(request.headers.items()), body=await request.body(),
                          received_at=clock.now())


@get("/v1/hooks/{token:str}", summary="Webhook handshake or query-string webhook",
     operation_id="WebhookHandshake", tags=["Webhooks"])
async def hook_handshake(request: Request[Any, Any, Any], token: str) -> Response[bytes]:
    """Public. Answers the provider's verification request (WhatsApp ``hub.challenge``).
    For a provider whose webhooks arrive as GET query strings (Vonage's delivery receipts
    and inbound SMS), a GET the handshake does not claim is a delivery: signature-checked
    and stored like a POST, answering ``{"received": true, "delivery_id": ...}``.
    ``token`` is the integration's webhook token (its ``webhook_url``)."""
    answer = await webhooks.on_get(app_context(request), current_host(), token,
                                   await _webhook_request(request))
    if isinstance(answer, int):
        return Response(msgspec.json.encode({"received": True, "delivery_id": answer}),
                        media_type="application/json")
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type,
                    headers=answer.headers)


@post("/v1/hooks/{token:str}", summary="Receive a provider webhook",
      operation_id="ReceiveWebhook", tags=["Webhooks"], status_code=200)
async def hook_receive(request: Request[Any, Any, Any], token: str) -> dict[str, Any]:
    """Public, at the integration's unguessable ``webhook_url`` (404 for any other path),
    and signature-checked by the provider's own scheme: 401 (counted in
    ``webhook-rejections``, body not kept) when the signature fails. The raw body is stored
    first; events are processed asynchronously and de-duplicated on the provider's event
    id, so redeliveries are safe."""
    delivery_id = await webhooks.receive(app_context(request), current_host(), token,
                                         await _webhook_request(request))
    return {"received": True, "delivery_id": delivery_id}


ROUTES = [IntegrationController, hook_handshake, hook_receive]
