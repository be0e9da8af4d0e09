"""``/v1/clients``: a tenant's OAuth clients, managed by a client holding ``clients:write``.

No escalation: a client grants only scopes its token carries, and changes (disables,
rotates, deletes) only clients whose scopes its token carries all of. ``platform:admin``
is granted by the CLI only (``cartera clients create --platform``).
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor, app_context, principal_of
from cartera.api.pagination import Limit, Page, StartingAfter, page_of, paginate
from cartera.api.security import secured
from cartera.audit import service as audit
from cartera.auth import assertions, clients, schemas
from cartera.auth.models import OAuthClient
from cartera.auth.scopes import PLATFORM_SCOPES, read_only
from cartera.errors import Forbidden, Invalid

READ = secured("clients:read")
WRITE = secured("clients:write")


def out(client: OAuthClient) -> schemas.ClientOut:
    return schemas.ClientOut(
        id=client.id, client_id=client.client_id, name=client.name,
        scopes=client.scopes.split(), auth_method=client.auth_method,  # type: ignore[arg-type]
        disabled=client.disabled, created_at=client.created_at, jwks=client.jwks,
        jwks_uri=client.jwks_uri, previous_secret_expires_at=client.previous_secret_expires_at)


def with_secret(client: OAuthClient, secret: str | None) -> schemas.ClientWithSecret:
    return schemas.ClientWithSecret(**{f: getattr(out(client), f)
                                       for f in schemas.ClientOut.__struct_fields__},
                                    client_secret=secret)


def _grantable(held: frozenset[str], data: schemas.ClientCreate) -> list[str]:
    if data.scopes is None:
        return read_only(held)
    platform = sorted(set(data.scopes) & PLATFORM_SCOPES)
    if platform:
        raise Forbidden(f"{', '.join(platform)} is granted only by the CLI",
                        code="scope_not_grantable", param="scopes")
    clients.check_scopes(data.scopes)
    missing = sorted(set(data.scopes) - held)
    if missing:
        raise Forbidden(f"a client cannot grant scopes it does not hold: {', '.join(missing)}",
                        code="scope_escalation", param="scopes")
    return list(dict.fromkeys(data.scopes))


def _keys(data: schemas.ClientCreate) -> tuple[dict[str, Any] | None, str | None]:
    if data.auth_method == clients.CLIENT_SECRET:
        if data.jwks is not None or data.jwks_uri is not None:
            raise Invalid("jwks and jwks_uri are for private_key_jwt clients",
                          code="keys_not_allowed",
                          param="jwks" if data.jwks is not None else "jwks_uri")
        return None, None
    if (data.jwks is None) == (data.jwks_uri is None):
        raise Invalid("a private_key_jwt client needs exactly one of jwks and jwks_uri",
                      code="keys_required", param="jwks")
    if data.jwks is not None:
        return assertions.check_jwks(data.jwks), None
    return None, assertions.check_jwks_uri(data.jwks_uri or "")


def _manageable(request: Request[Any, Any, Any], client: OAuthClient) -> None:
    missing = sorted(set(client.scopes.split()) - principal_of(request).scopes)
    if missing:
        raise Forbidden("a client cannot change a client holding scopes it does not hold: "
                        + ", ".join(missing), code="scope_escalation", param="client_id")


async def _changeable(request: Request[Any, Any, Any], session: AsyncSession,
                      client_id: str) -> OAuthClient:
    client = await clients.get_client(session, client_id)
    _manageable(request, client)
    return client


class ClientController(Controller):
    path = "/v1/clients"
    tags = ["Clients"]

    @get("/", summary="List OAuth clients", operation_id="ListClients", **READ)
    async def index(self, session: AsyncSession, limit: Limit = 20,
                    starting_after: StartingAfter = None) -> Page[schemas.ClientOut]:
        """The tenant's clients in id order (secrets are never returned)."""
        rows = (await session.scalars(paginate(select(OAuthClient), OAuthClient.id, limit,
                                               starting_after))).all()
        return page_of(rows, limit, out)

    @post("/", summary="Create an OAuth client", operation_id="CreateClient", **WRITE)
    async def create(self, request: Request[Any, Any, Any], data: schemas.ClientCreate,
                     session: AsyncSession, actor: Actor
                     ) -> Response[schemas.ClientWithSecret]:
        """A new client of the caller's tenant. Its ``client_secret`` is in this answer only.
        Scopes: see the schema (403 ``scope_escalation`` for a scope the caller's token does
        not carry, 403 ``scope_not_grantable`` for ``platform:admin``)."""
        scopes = _grantable(principal_of(request).scopes, data)
        jwks, jwks_uri = _keys(data)
        secret: str | None = None
        if data.auth_method == clients.CLIENT_SECRET:
            client, secret = await clients.create_client(session, actor.tenant_id, data.name,
                                                         scopes)
        else:
            client = await clients.create_key_client(session, actor.tenant_id, data.name,
                                                     scopes, jwks=jwks, jwks_uri=jwks_uri)
        audit.record(session, actor, "client.created", "client", client.client_id,
                     {"scopes": scopes, "auth_method": data.auth_method})
        return Response(with_secret(client, secret), status_code=201,
                        headers={"Location": f"/v1/clients/{client.client_id}",
                                 "Cache-Control": "no-store"})

    @get("/{client_id:str}", summary="Get an OAuth client", operation_id="GetClient", **READ)
    async def retrieve(self, client_id: str, session: AsyncSession) -> schemas.ClientOut:
        """One client of the tenant (another tenant's: 404)."""
        return out(await clients.get_client(session, client_id))

    @post("/{client_id:str}/disable", summary="Disable an OAuth client",
          operation_id="DisableClient", status_code=200, **WRITE)
    async def disable(self, request: Request[Any, Any, Any], client_id: str,
                      session: AsyncSession, actor: Actor) -> schemas.ClientOut:
        """The client gets no new tokens and the tokens it holds stop working at once."""
        return await self._set_disabled(request, client_id, session, actor, disabled=True)

    @post("/{client_id:str}/enable", summary="Enable an OAuth client",
          operation_id="EnableClient", status_code=200, **WRITE)
    async def enable(self, request: Request[Any, Any, Any], client_id: str,
                     session: AsyncSession, actor: Actor) -> schemas.ClientOut:
        """Undo a disable: the client's unexpired tokens work again."""
        return await self._set_disabled(request, client_id, session, actor, disabled=False)

    async def _set_disabled(self, request: Request[Any, Any, Any], client_id: str,
                            session: AsyncSession, actor: Actor, *,
                            disabled: bool) -> schemas.ClientOut:
        client = await _changeable(request, session, client_id)
        client.disabled = disabled
        audit.record(session, actor, "client.disabled" if disabled else "client.enabled",
                     "client", client_id)
        await session.commit()
        app_context(request).tokens.forget_state()
        return out(client)

    @post("/{client_id:str}/rotate-secret", summary="Rotate an OAuth client's secret",
          operation_id="RotateClientSecret", status_code=200, **WRITE)
    async def rotate(self, request: Request[Any, Any, Any], client_id: str,
                     session: AsyncSession, actor: Actor) -> Response[schemas.ClientWithSecret]:
        """A new secret, in this answer only. The previous one keeps working for the
        deployment's grace period (``CARTERA_CLIENT_SECRET_GRACE``, 24 h by default; see
        ``previous_secret_expires_at``); an older one stops now."""
        client = await _changeable(request, session, client_id)
        grace = app_context(request).settings.client_secret_grace_seconds
        secret = clients.rotate_secret(client, grace)
        audit.record(session, actor, "client.secret_rotated", "client", client_id,
                     {"grace_seconds": grace})
        return Response(with_secret(client, secret), headers={"Cache-Control": "no-store"})

    @delete("/{client_id:str}", summary="Delete an OAuth client", operation_id="DeleteClient",
            **WRITE)
    async def remove(self, request: Request[Any, Any, Any], client_id: str,
                     session: AsyncSession, actor: Actor) -> None:
        """The client is gone and its tokens stop working at once."""
        client = await _changeable(request, session, client_id)
        await session.delete(client)
        audit.record(session, actor, "client.deleted", "client", client_id)
        await session.commit()
        app_context(request).tokens.forget_state()
