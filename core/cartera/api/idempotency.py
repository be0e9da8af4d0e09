"""``Idempotency-Key`` on POST: a replay returns the stored response; the same key with a
different request (body or query string) is refused; a key still in flight answers 409.

Like Stripe, responses to requests that failed validation or authentication (400, 401, 403,
422), rate-limited ones (429) and server errors are not stored, so a corrected retry may
reuse the key. The body is fingerprinted as it streams, so large uploads are never buffered
here; the response (small JSON) is held back until it is stored and committed, so a client
that has seen the response always gets its replay.

Keys live for ``idempotency_ttl_seconds`` (24 h by default); a job removes expired ones
about once a minute. A request holds its key with a lease: one in flight for longer than
``idempotency_lease_seconds`` was abandoned (its process died) and the next request with that
key takes it over.

Stored responses are sealed under the master key (:mod:`cartera.crypto`), bound to the
tenant, client and key: a response may carry a one-time secret (a new client's secret, a
webhook endpoint's signing secret), which must not sit in plain text for a day.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cartera.api.asgi import ASGIApp, Message, Receive, Scope, Send
from cartera.api.models import IdempotencyRecord
from cartera.api.problems import PROBLEM_JSON
from cartera.crypto import keyring
from cartera.db.base import utcnow
from cartera.jobs.registry import every_minute
from cartera.settings import get_settings

NOT_STORED = {400, 401, 403, 413, 415, 422, 429}
MAX_KEY_LENGTH = 255
KEY_PATTERN = rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$"
"""Printable ASCII without spaces, 1 to 255 characters (e.g. a UUID)."""
_KEY = re.compile(KEY_PATTERN)
log = logging.getLogger("cartera.api.idempotency")


def body_context(record: IdempotencyRecord) -> bytes:
    """What a stored response is bound to: a sealed body moved to another key opens not."""
    return f"idempotency:{record.tenant_id}:{record.client_id}:{record.key}".encode()


async def _send_json(send: Send, status: int, body: bytes, content_type: str,
                     extra: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ],
    })
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, code: str, detail: str) -> None:
    body = msgspec.json.encode({
        "type": f"https://cartera.dev/problems/{code.replace('_', '-')}",
        "title": "Idempotency conflict" if status in {409, 422} else "Invalid idempotency key",
        "status": status, "detail": detail, "code": code, "param": "Idempotency-Key",
    })
    await _send_json(send, status, body, PROBLEM_JSON)


class _Fingerprint:
    """Wraps ``receive`` and hashes the request (method, path, query, body) as it flows."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        self._hash = hashlib.sha256(f"{scope['method']} {scope['path']}?{query}\n".encode())
        self._receive = receive
        self.done = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._hash.update(message.get("body", b""))
            if not message.get("more_body", False):
                self.done = True
        return message

    async def drain(self) -> str:
        while not self.done:
            message = await self.receive()
            if message["type"] != "http.request":
                break
        return self._hash.hexdigest()


@dataclass
class _HeldResponse:
    """The app's response messages, kept until the outcome is stored."""

    messages: list[Message] = field(default_factory=list)
    status: int | None = None
    content_type: str = "application/json"
    body: bytearray = field(default_factory=bytearray)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.content_type = next(
                (v.decode() for k, v in message.get("headers", []) if k.lower() == b"content-type"),
                "application/json",
            )
        elif message["type"] == "http.response.body":
            self.body.extend(message.get("body", b""))
        self.messages.append(message)

    @property
    def storable(self) -> bool:
        return self.status is not None and self.status < 500 and self.status not in NOT_STORED


def idempotency_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await app(scope, receive, send)
            return
        key_raw = next((v for k, v in scope["headers"] if k == b"idempotency-key"), None)
        principal = scope.get("state", {}).get("principal")
        if key_raw is None or principal is None:
            await app(scope, receive, send)
            return
        key = key_raw.decode("latin-1").strip()
        if not _KEY.match(key):
            await _problem(send, 400, "invalid_idempotency_key",
                           f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII "
                           "characters without spaces")
            return
        await _handle(app, scope, receive, send, principal, key)

    return middleware


class _Key:
    """One client's key: claiming it, and recording the outcome under the lease it holds."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], principal: Any,
                 key: str, settings: Any) -> None:
        self._sessionmaker = sessionmaker
        self._ids = {"tenant_id": principal.tenant_id, "client_id": principal.client_id,
                     "key": key}
        self._where = (IdempotencyRecord.tenant_id == principal.tenant_id,
                       IdempotencyRecord.client_id == principal.client_id,
                       IdempotencyRecord.key == key)
        self._ttl = timedelta(seconds=settings.idempotency_ttl_seconds)
        self._lease = timedelta(seconds=settings.idempotency_lease_seconds)
        self.leased_at: datetime | None = None

    async def claim(self) -> IdempotencyRecord | None:
        """Take the key (None) or return the live record that holds it. Expired records and
        abandoned leases are forgotten first, in the same transaction."""
        now = utcnow()
        async with self._sessionmaker() as session:
            await session.execute(delete(IdempotencyRecord).where(*self._where, or_(
                IdempotencyRecord.created_at < now - self._ttl,
                IdempotencyRecord.status_code.is_(None)
                & (IdempotencyRecord.created_at < now - self._lease))))
            session.add(IdempotencyRecord(**self._ids, fingerprint="", created_at=now))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return await session.scalar(select(IdempotencyRecord).where(*self._where))
        self.leased_at = now
        return None

    def _ours(self) -> tuple[ColumnElement[bool], ...]:
        return (*self._where, IdempotencyRecord.status_code.is_(None),
                IdempotencyRecord.created_at == self.leased_at)

    async def record(self, response: _HeldResponse, fingerprint: str) -> None:
        """Store a replayable outcome, or release the key; a no-op if the lease was lost."""
        async with self._sessionmaker() as session:
            if response.storable:
                sealed = keyring().seal(bytes(response.body), context=body_context(
                    IdempotencyRecord(**self._ids)))
                await session.execute(update(IdempotencyRecord).where(*self._ours()).values(
                    fingerprint=fingerprint, status_code=response.status,
                    content_type=response.content_type, body=sealed))
            else:
                await session.execute(delete(IdempotencyRecord).where(*self._ours()))
            await session.commit()

    async def release(self) -> None:
        async with self._sessionmaker() as session:
            await session.execute(delete(IdempotencyRecord).where(*self._ours()))
            await session.commit()


async def _answer_existing(send: Send, existing: IdempotencyRecord, digest: str) -> None:
    if existing.status_code is None:
        await _problem(send, 409, "idempotency_key_in_use",
                       "a request with this Idempotency-Key is still being processed")
    elif existing.fingerprint != digest:
        await _problem(send, 422, "idempotency_key_reused",
                       "this Idempotency-Key was used with a different request")
    else:
        body = keyring().open(existing.body, context=body_context(existing)) \
            if existing.body else b""
        await _send_json(send, existing.status_code, body,
                         existing.content_type or "application/json",
                         [(b"idempotent-replayed", b"true")])


@every_minute
async def purge_expired(sessionmaker: async_sessionmaker[AsyncSession], runner: Any) -> None:
    """Remove keys past their time to live (index on ``created_at``): a key nobody reuses
    is otherwise never deleted."""
    cutoff = utcnow() - timedelta(seconds=get_settings().idempotency_ttl_seconds)
    async with sessionmaker() as session:
        await session.execute(delete(IdempotencyRecord).where(
            IdempotencyRecord.created_at < cutoff))
        await session.commit()


async def _handle(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                  principal: Any, key: str) -> None:
    ctx = scope["app"].state.ctx
    fingerprint = _Fingerprint(scope, receive)
    claim = _Key(ctx.sessionmaker, principal, key, ctx.settings)
    existing = await claim.claim()
    if existing is not None:
        await _answer_existing(send, existing, await fingerprint.drain())
        return
    held = _HeldResponse()
    try:
        await app(scope, fingerprint.receive, held.send)
    except BaseException:
        await claim.release()
        raise
    try:
        await claim.record(held, await fingerprint.drain())
    except SQLAlchemyError:
        # The work is done and committed: answer it; the lease lapses and frees the key.
        log.exception("could not store the idempotent response")
    for message in held.messages:
        await send(message)
