"""``Idempotency-Key`` on POST: a replay returns the stored response; the same key with a
different body is refused; a key still in flight answers 409.

Like Stripe, responses to requests that failed validation or authentication (400, 401, 403,
422) and server errors are not stored, so a corrected retry may reuse the key. The body is
fingerprinted as it streams, so large uploads are never buffered here.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from cartera.api.asgi import ASGIApp, Message, Receive, Scope, Send
from cartera.api.models import IdempotencyRecord
from cartera.api.problems import PROBLEM_JSON

NOT_STORED = {400, 401, 403, 413, 415, 422}
MAX_KEY_LENGTH = 255


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
        "title": "Idempotency conflict" if status == 409 else "Invalid idempotency key",
        "status": status, "detail": detail, "code": code, "param": "Idempotency-Key",
    })
    await _send_json(send, status, body, PROBLEM_JSON)


class _Fingerprint:
    """Wraps ``receive`` and hashes the request body as it flows through."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self._hash = hashlib.sha256(f"{scope['method']} {scope['path']}\n".encode())
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
        return self.hexdigest()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


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
        if not key or len(key) > MAX_KEY_LENGTH:
            await _problem(send, 400, "invalid_idempotency_key",
                           f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
            return
        await _handle(app, scope, receive, send, principal, key)

    return middleware


async def _handle(app: ASGIApp, scope: Scope, receive: Receive, send: Send,
                  principal: Any, key: str) -> None:
    sessionmaker = scope["app"].state.ctx.sessionmaker
    fingerprint = _Fingerprint(scope, receive)
    where = (
        IdempotencyRecord.tenant_id == principal.tenant_id,
        IdempotencyRecord.client_id == principal.client_id,
        IdempotencyRecord.key == key,
    )
    async with sessionmaker() as session:
        existing = await session.scalar(select(IdempotencyRecord).where(*where))
        if existing is None:
            session.add(IdempotencyRecord(tenant_id=principal.tenant_id,
                                          client_id=principal.client_id, key=key,
                                          fingerprint=""))
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                existing = await session.scalar(select(IdempotencyRecord).where(*where))
    if existing is not None:
        digest = await fingerprint.drain()
        if existing.status_code is None:
            await _problem(send, 409, "idempotency_key_in_use",
                           "a request with this Idempotency-Key is still being processed")
        elif existing.fingerprint != digest:
            await _problem(send, 422, "idempotency_key_reused",
                           "this Idempotency-Key was used with a different request")
        else:
            await _send_json(send, existing.status_code, existing.body or b"",
                             existing.content_type or "application/json",
                             [(b"idempotent-replayed", b"true")])
        return

    captured: dict[str, Any] = {"body": bytearray()}

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured["status"] = message["status"]
            captured["content_type"] = next(
                (v.decode() for k, v in message.get("headers", []) if k.lower() == b"content-type"),
                "application/json",
            )
        elif message["type"] == "http.response.body":
            captured["body"].extend(message.get("body", b""))
        await send(message)

    status: int | None = None
    try:
        await app(scope, fingerprint.receive, capture)
        status = captured.get("status")
    finally:
        async with sessionmaker() as session:
            if status is None or status >= 500 or status in NOT_STORED:
                await session.execute(delete(IdempotencyRecord).where(*where))
            else:
                await session.execute(update(IdempotencyRecord).where(*where).values(
                    fingerprint=await fingerprint.drain(), status_code=status,
                    content_type=captured["content_type"], body=bytes(captured["body"]),
                ))
            await session.commit()
