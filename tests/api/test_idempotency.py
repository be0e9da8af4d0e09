"""``Idempotency-Key``: replays, expiry, abandoned leases, the query string in the fingerprint,
the key's pattern, and the replay right after the first response (concurrent requests)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import select, update

from cartera.api.idempotency import purge_expired
from cartera.api.models import IdempotencyRecord
from cartera.db.base import utcnow
from tests.api.test_bad_input import DEBTOR, assert_problem
from tests.conftest import TenantClient

RULES = {"segments": [{"code": "all", "name": "All", "rule": {"all": []}}]}


async def _age(app: Litestar, tenant: TenantClient, key: str, by: timedelta) -> None:
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant.tenant_id, IdempotencyRecord.key == key,
        ).values(created_at=utcnow() - by))
        await session.commit()


async def test_a_key_expires_after_its_time_to_live(app: Litestar, tenant: TenantClient) -> None:
    headers = {"Idempotency-Key": "expiring"}
    first = await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
    assert first.status_code == 201
    await _age(app, tenant, "expiring", timedelta(hours=23))
    again = await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true"
    await _age(app, tenant, "expiring", timedelta(hours=25))
    fresh = await tenant.api.post("/v1/debtors", json={**DEBTOR, "external_ref": "D-2"},
                                  headers=headers)
    assert fresh.status_code == 201 and "idempotent-replayed" not in fresh.headers
    listed = (await tenant.api.get("/v1/debtors")).json()["data"]
    assert [d["external_ref"] for d in listed] == ["D-1", "D-2"]


async def _in_flight(app: Litestar, tenant: TenantClient, key: str, age: timedelta) -> None:
    """A key claimed by a request whose process died before it finished."""
    async with app.state.ctx.sessionmaker() as session:
        session.add(IdempotencyRecord(tenant_id=tenant.tenant_id, client_id=tenant.client_id,
                                      key=key, fingerprint="", created_at=utcnow() - age))
        await session.commit()


async def test_a_key_in_flight_answers_409(app: Litestar, tenant: TenantClient) -> None:
    await _in_flight(app, tenant, "busy", timedelta(seconds=5))
    r = await tenant.api.post("/v1/debtors", json=DEBTOR, headers={"Idempotency-Key": "busy"})
    assert_problem(r, 409, "idempotency_key_in_use", "Idempotency-Key")


async def test_an_abandoned_key_is_taken_over(app: Litestar, tenant: TenantClient) -> None:
    await _in_flight(app, tenant, "crashed", timedelta(minutes=10))
    r = await tenant.api.post("/v1/debtors", json=DEBTOR, headers={"Idempotency-Key": "crashed"})
    assert r.status_code == 201, r.text
    again = await tenant.api.post("/v1/debtors", json=DEBTOR,
                                  headers={"Idempotency-Key": "crashed"})
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == r.json()


async def test_the_query_string_is_part_of_the_request(tenant: TenantClient) -> None:
    headers = {"Idempotency-Key": "preview-1"}
    first = await tenant.api.post("/v1/segments/preview?as_of=2024-01-01", json=RULES,
                                  headers=headers)
    assert first.status_code == 200, first.text
    same = await tenant.api.post("/v1/segments/preview?as_of=2024-01-01", json=RULES,
                                 headers=headers)
    assert same.headers.get("idempotent-replayed") == "true"
    other = await tenant.api.post("/v1/segments/preview?as_of=2024-02-01", json=RULES,
                                  headers=headers)
    assert_problem(other, 422, "idempotency_key_reused", "Idempotency-Key")


@pytest.mark.parametrize("key", ["has space", "tab\tkey", "ñandú", ""])
async def test_keys_outside_the_documented_pattern_are_400(tenant: TenantClient,
                                                           key: str) -> None:
    r = await tenant.api.post("/v1/debtors", json=DEBTOR,
                              headers={"Idempotency-Key": key.encode()})  # type: ignore[dict-item]
    assert_problem(r, 400, "invalid_idempotency_key", "Idempotency-Key")
    assert (await tenant.api.get("/v1/debtors")).json()["data"] == []


def _scope(tenant: TenantClient, key: str, body: bytes) -> dict[str, Any]:
    token = tenant.api.headers["Authorization"].encode()
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/v1/debtors", "raw_path": b"/v1/debtors",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5000),
        "server": ("testserver.local", 80),
        "headers": [(b"host", b"testserver.local"), (b"authorization", token),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"idempotency-key", key.encode())],
    }


async def _call(app: Litestar, scope: dict[str, Any], body: bytes,
                on_complete: Any = None) -> tuple[int, bytes]:
    """Call the app as a server would; ``on_complete`` runs when the client has the whole
    response (the last body message), before the app returns."""
    sent = False
    status, chunks = 0, bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.extend(message.get("body", b""))
            if not message.get("more_body") and on_complete is not None:
                await on_complete()

    await app(scope, receive, send)  # type: ignore[arg-type]
    return status, bytes(chunks)


async def test_the_replay_right_after_the_response_is_a_replay(
    app: Litestar, tenant: TenantClient, http: Any,
) -> None:
    """The client retries the moment it has the first response (e.g. it timed out reading
    the rest): the replay must find the stored response, never "still processing"."""
    for attempt in range(30):
        body = msgspec.json.encode({**DEBTOR, "external_ref": f"R-{attempt}"})
        scope = _scope(tenant, f"race-{attempt}", body)
        replays: list[tuple[int, bytes]] = []

        async def replay(scope: dict[str, Any] = scope, body: bytes = body,
                         replays: list[tuple[int, bytes]] = replays) -> None:
            replays.append(await _call(app, dict(scope), body))

        status, first = await _call(app, dict(scope), body, on_complete=replay)
        assert status == 201, first
        assert replays and replays[0] == (201, first), (attempt, replays)


async def test_concurrent_requests_with_one_key_write_once(tenant: TenantClient) -> None:
    for attempt in range(10):
        headers = {"Idempotency-Key": f"storm-{attempt}"}
        body = {**DEBTOR, "external_ref": f"S-{attempt}"}
        answers = await asyncio.gather(*(tenant.api.post("/v1/debtors", json=body,
                                                         headers=headers)
                                         for _ in range(6)))
        assert all(r.status_code in (201, 409) for r in answers), [r.text for r in answers]
        created = [r for r in answers if r.status_code == 201]
        assert created and all(r.json() == created[0].json() for r in created)
        after = await tenant.api.post("/v1/debtors", json=body, headers=headers)
        assert after.status_code == 201 and after.json() == created[0].json()
    listed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert sorted(d["external_ref"] for d in listed) == sorted(f"S-{i}" for i in range(10))


async def test_stored_responses_are_sealed_and_still_replay(app: Litestar,
                                                            tenant: TenantClient) -> None:
    """A stored response may hold a one-time secret: it is sealed at rest, bound to its key."""
    created = await tenant.api.post("/v1/clients", json={"name": "reporting"},
                                    headers={"Idempotency-Key": "sealed-secret"})
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    async with app.state.ctx.sessionmaker() as session:
        stored = await session.scalar(select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant.tenant_id,
            IdempotencyRecord.key == "sealed-secret"))
    assert stored is not None and stored.body
    assert secret.encode() not in stored.body and b"client_secret" not in stored.body
    replay = await tenant.api.post("/v1/clients", json={"name": "reporting"},
                                   headers={"Idempotency-Key": "sealed-secret"})
    assert replay.headers.get("idempotent-replayed") == "true"
    assert replay.json()["client_secret"] == secret


async def test_expired_keys_are_purged_without_being_reused(app: Litestar,
                                                           tenant: TenantClient) -> None:
    for key in ("old-one", "new-one"):
        r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "external_ref": key},
                                  headers={"Idempotency-Key": key})
        assert r.status_code == 201
    await _age(app, tenant, "old-one", timedelta(hours=25))
    await purge_expired(app.state.ctx.sessionmaker, None)
    async with app.state.ctx.sessionmaker() as session:
        left = set(await session.scalars(select(IdempotencyRecord.key).where(
            IdempotencyRecord.tenant_id == tenant.tenant_id)))
    assert "old-one" not in left and "new-one" in left
