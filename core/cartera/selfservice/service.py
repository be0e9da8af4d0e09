"""Self-service: access links for one debtor, and what the debtor may do through one.

A link's token is 32 random bytes (URL-safe) with a ``ss_`` prefix; only its SHA-256 is
stored, like integrations' webhook tokens. A request carries it in the
``X-Self-Service-Token`` header; an unknown, expired or revoked token is a 401 with a
precise ``code`` and nothing is written. Every action is audited with the link as actor
(``self_service_link:<id>``) and reaches only the link's debtor in the link's tenant:
another debtor's offer or installment answers 404.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar import Request
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera import clock
from cartera.api.context import Actor, app_context
from cartera.api.ratelimit import SELF_SERVICE_HEADER
from cartera.audit import service as audit
from cartera.db import get_owned
from cartera.db.base import table_of
from cartera.db.engine import STATEMENT_TIMEOUT_MS
from cartera.errors import Conflict, Unauthorized
from cartera.portfolio.service import get_debtor
from cartera.selfservice import schemas
from cartera.selfservice.models import SelfServiceLink

TOKEN_PREFIX = "ss_"
DEFAULT_HOURS = 72
"""How long a link made for a message lives (the API's ``expires_in_hours`` default)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True)
class LinkActor(Actor):
    """The debtor acting through self-service link ``link_id``."""

    link_id: int = 0

    @property
    def name(self) -> str:
        return f"self_service_link:{self.link_id}"


@dataclass
class SelfService:
    """A verified link, its tenant-scoped session and the actor its actions are audited as."""

    session: AsyncSession
    link: SelfServiceLink
    actor: LinkActor


def url_for(base: str, token: str) -> str:
    return f"{base}?token={token}"


async def issue(session: AsyncSession, actor: Actor, data: schemas.SelfServiceLinkCreate,
                base_url: str) -> schemas.SelfServiceLinkOut:
    debtor = await get_debtor(session, data.debtor_id, param="debtor_id")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    link = SelfServiceLink(tenant_id=actor.tenant_id, debtor_id=debtor.id,
                           token_hash=token_hash(token),
                           expires_at=clock.now() + timedelta(hours=data.expires_in_hours),
                           created_by=actor.name)
    session.add(link)
    await session.flush()
    await session.refresh(link)
    audit.record(session, actor, "self_service_link.created", "self_service_link", link.id,
                 {"debtor_id": debtor.id, "expires_at": link.expires_at.isoformat()})
    out = link_out(link)
    out.token, out.url = token, url_for(base_url, token)
    return out


async def issue_many(session: AsyncSession, actor: Actor, debtor_ids: list[int],
                     base_url: str, expires_in_hours: int = DEFAULT_HOURS) -> dict[int, str]:
    """A fresh link for each of ``debtor_ids`` (the caller's, already checked to be the
    tenant's): one INSERT of their token hashes, an audit entry each; returns each debtor's
    URL. The tokens exist only in the returned URLs (never stored, never logged)."""
    if not debtor_ids:
        return {}
    tokens = {d: TOKEN_PREFIX + secrets.token_urlsafe(32) for d in dict.fromkeys(debtor_ids)}
    expires_at = clock.now() + timedelta(hours=expires_in_hours)
    t = table_of(SelfServiceLink)
    rows = (await session.execute(insert(t).returning(t.c.id, t.c.debtor_id), [
        {"tenant_id": actor.tenant_id, "debtor_id": d, "token_hash": token_hash(token),
         "expires_at": expires_at, "created_by": actor.name, "created_at": clock.now()}
        for d, token in tokens.items()])).all()
    for link_id, debtor_id in rows:
        audit.record(session, actor, "self_service_link.created", "self_service_link", link_id,
                     {"debtor_id": debtor_id, "expires_at": expires_at.isoformat()})
    return {d: url_for(base_url, token) for d, token in tokens.items()}


async def revoke(session: AsyncSession, actor: Actor, link_id: int) -> SelfServiceLink:

    link = await get_owned(session, SelfServiceLink, link_id, actor.tenant_id,
                           what="self-service link", with_for_update=True)
    if link.revoked_at is not None:
        raise Conflict(f"self-service link {link_id} is already revoked", code="already_revoked")
    link.revoked_at, link.revoked_by = clock.now(), actor.name
    await session.flush()
    audit.record(session, actor, "self_service_link.revoked", "self_service_link", link.id,
                 {"debtor_id": link.debtor_id})
    return link


def link_out(link: SelfServiceLink) -> schemas.SelfServiceLinkOut:
    return schemas.SelfServiceLinkOut(
        id=link.id, debtor_id=link.debtor_id, expires_at=link.expires_at,
        revoked_at=link.revoked_at, revoked_by=link.revoked_by, created_by=link.created_by,
        created_at=link.created_at)


async def verify(session: AsyncSession, token: str | None) -> SelfServiceLink:
    """The live link of ``token`` (401 with a precise code otherwise)."""
    if not token:
        raise Unauthorized("a self-service token (X-Self-Service-Token) is required",
                           code="missing_self_service_token")
    link = await session.scalar(select(SelfServiceLink).where(
        SelfServiceLink.token_hash == token_hash(token)))
    if link is None:
        raise Unauthorized("this self-service link is not valid",
                           code="invalid_self_service_token")
    if link.revoked_at is not None:
        raise Unauthorized("this self-service link was revoked",
                           code="self_service_token_revoked")
    if link.expires_at <= clock.now():
        raise Unauthorized("this self-service link has expired",
                           code="self_service_token_expired")
    return link


async def provide_self_service(request: Request[Any, Any, Any]) -> AsyncIterator[SelfService]:
    """The verified link of the request and a session scoped to its tenant, committed when
    the handler returns (rolled back on any error: a refused request writes nothing)."""
    ctx = app_context(request)
    async with ctx.sessionmaker() as session:
        session.info[STATEMENT_TIMEOUT_MS] = ctx.settings.statement_timeout_ms
        link = await verify(session, request.headers.get(SELF_SERVICE_HEADER))
        session.info["tenant_id"] = link.tenant_id
        actor = LinkActor(tenant_id=link.tenant_id, client_id=None,
                          request_id=request.scope.get("state", {}).get("request_id"),
                          link_id=link.id)
        try:
            yield SelfService(session, link, actor)
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
