"""Shared set-up of the strategy tests: segments, templates, debtors and strategies, and
the fake SMS provider with its integration (tests that use the ``provider`` fixture import
it by name)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import TenantClient
from tests.segmentation.test_segments import debtor

ALWAYS = {"start_hour": 0, "end_hour": 24, "weekdays": [1, 2, 3, 4, 5, 6, 7]}
SEGMENTS = {"segments": [
    {"code": "late", "name": "Late", "rule": {"feature": "days_past_due", "op": "gte",
                                              "value": 1}},
    {"code": "rest", "name": "Rest", "rule": {"all": []}}]}


async def segments(t: TenantClient) -> dict[str, int]:
    r = await t.api.put("/v1/segments", json=SEGMENTS)
    assert r.status_code == 200, r.text
    return {s["code"]: int(s["id"]) for s in r.json()["segments"]}


async def template(t: TenantClient, channel: str = "sms", code: str = "remind") -> int:
    body: dict[str, Any] = {"code": code, "channel": channel, "locale": "es-PE", "name": code,
                            "body": "Hola {{ debtor.first_name }}, debes {{ balance.overdue }}."}
    if channel == "email":
        body |= {"subject": "Recordatorio", "html": "<p>Hola</p>"}
    r = await t.api.post("/v1/templates", json=body)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def late_debtor(t: TenantClient, ref: str, days_late: int = 10,
                      phone: bool = True) -> int:
    extra: dict[str, Any] = {}
    if phone:
        number = f"+519990{abs(hash(ref)) % 10**5:05d}"
        extra["contact_points"] = [{"kind": "phone", "value": number, "consent": "granted"}]
    return await debtor(t, ref, ("PEN", "100.00", days_late), **extra)


def message_step(key: str, template_id: int, *, anchor: str = "previous_step",
                 offset: int = 0, channel: str = "sms", **extra: Any) -> dict[str, Any]:
    return {"key": key, "kind": "message", "anchor": anchor, "offset_days": offset,
            "window": ALWAYS, "channels": [{"channel": channel, "template_id": template_id}],
            **extra}


async def strategy(t: TenantClient, code: str, segment_ids: list[int],
                   steps: list[dict[str, Any]], *, priority: int = 100, activate: bool = True,
                   **version: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/strategies", json={
        "code": code, "name": code, "priority": priority,
        "version": {"segment_ids": segment_ids, "steps": steps, **version}})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    if activate:
        a = await t.api.post(f"/v1/strategies/{body['id']}/versions/1/activate", json={})
        assert a.status_code == 200, a.text
    return body


async def plan(t: TenantClient, run_jobs: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/strategies/plan")
    assert r.status_code == 202, r.text
    await run_jobs()
    job = (await t.api.get(f"/v1/jobs/{r.json()['id']}")).json()
    assert job["status"] == "succeeded", job
    result: dict[str, Any] = job["result"]
    return result


async def actions(t: TenantClient, **params: Any) -> list[dict[str, Any]]:
    r = await t.api.get("/v1/actions", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


async def enrollments(t: TenantClient, **params: Any) -> list[dict[str, Any]]:
    r = await t.api.get("/v1/enrollments", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    found: list[dict[str, Any]] = r.json()["data"]
    return found


@pytest.fixture
def provider() -> Iterator[FakeHTTPServer]:
    """A fake SMS provider that accepts every message with a new id."""
    counter = iter(range(1, 10_000))

    def messages(req: RecordedRequest) -> FakeResponse:
        return FakeResponse(201, {"id": f"s-{next(counter)}"})

    with FakeHTTPServer() as server:
        server.route("POST", "/messages", messages)
        yield server


async def sms_integration(t: TenantClient, server: FakeHTTPServer) -> int:
    """The tenant's ``fixture_sms`` channel integration, sending through ``server``."""
    r = await t.api.post("/v1/integrations", json={
        "name": "SMS", "provider_kind": "channel", "provider_name": "fixture_sms",
        "config": {"base_url": server.base_url, "sender": "ACME"},
        "secrets": {"api_key": "key-123", "webhook_secret": "whsec"}})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def transaction_settings(session: AsyncSession) -> tuple[str, str]:
    """The session's ``jit`` and ``work_mem`` (PostgreSQL) as the server reports them."""
    row = (await session.execute(text(
        "SELECT current_setting('jit'), current_setting('work_mem')"))).one()
    return str(row[0]), str(row[1])
