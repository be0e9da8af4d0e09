"""GET /v1/audit: the tenant's trail, cursor-paginated, filtered by object, actor and time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Litestar
from sqlalchemy import update

from cartera.audit.models import AuditEntry
from tests.conftest import TenantClient


async def trail(t: TenantClient, **params: Any) -> list[dict[str, Any]]:
    r = await t.api.get("/v1/audit", params=params)
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


async def a_few_changes(t: TenantClient) -> tuple[int, int]:
    one = await t.api.post("/v1/debtors", json={"external_ref": "AU-1", "name": "Ana",
                                                 "country": "PE"})
    two = await t.api.post("/v1/debtors", json={"external_ref": "AU-2", "name": "Bea",
                                                 "country": "PE"})
    assert one.status_code == two.status_code == 201
    r = await t.api.patch(f"/v1/debtors/{one.json()['id']}", json={"zone": "Lima"})
    assert r.status_code == 200, r.text
    return int(one.json()["id"]), int(two.json()["id"])


async def test_the_trail_is_paginated_and_filtered_by_object_and_actor(
        tenant: TenantClient) -> None:
    one, two = await a_few_changes(tenant)
    everything = await trail(tenant)
    assert [(e["action"], e["resource_id"]) for e in everything] == [
        ("debtor.created", str(one)), ("debtor.created", str(two)),
        ("debtor.updated", str(one))]
    assert everything[2]["changes"] == {"zone": "Lima"}
    assert everything[0]["actor"] == f"client:{tenant.client_id}"
    first = (await tenant.api.get("/v1/audit", params={"limit": 2})).json()
    assert first["has_more"] and [e["id"] for e in first["data"]] == [
        e["id"] for e in everything[:2]]
    rest = await trail(tenant, limit=2, starting_after=first["next_cursor"])
    assert [e["id"] for e in rest] == [everything[2]["id"]]
    mine = await trail(tenant, resource_type="debtor", resource_id=str(one))
    assert [e["action"] for e in mine] == ["debtor.created", "debtor.updated"]
    assert len(await trail(tenant, resource_type="debtor")) == 3
    assert await trail(tenant, resource_type="payment") == []
    assert len(await trail(tenant, actor=f"client:{tenant.client_id}")) == 3
    assert await trail(tenant, actor="client:someone-else") == []


async def test_the_time_range_is_from_inclusive_to_exclusive(
        tenant: TenantClient, app: Litestar) -> None:
    await a_few_changes(tenant)
    ids = [e["id"] for e in await trail(tenant)]
    base = datetime(2026, 3, 1, 12, tzinfo=UTC)
    async with app.state.ctx.sessionmaker() as session:
        for i, entry_id in enumerate(ids):
            await session.execute(update(AuditEntry).where(AuditEntry.id == entry_id)
                                  .values(at=base + timedelta(days=i)))
        await session.commit()
    window = await trail(tenant, at_from=(base + timedelta(days=1)).isoformat(),
                         at_to=(base + timedelta(days=2)).isoformat())
    assert [e["id"] for e in window] == [ids[1]]
    later = await trail(tenant, at_from="2026-03-02T07:00:00-05:00")  # the same instant
    assert [e["id"] for e in later] == ids[1:]
    assert [e["id"] for e in await trail(tenant, at_to=base.isoformat())] == []


async def test_another_tenants_entries_are_not_visible(
        tenant: TenantClient, make_tenant: Callable[..., Awaitable[TenantClient]]) -> None:
    one, _ = await a_few_changes(tenant)
    other = await make_tenant()
    assert await trail(other) == []
    assert await trail(other, resource_type="debtor", resource_id=str(one)) == []
    assert await trail(other, actor=f"client:{tenant.client_id}") == []


async def test_bad_filters_are_422_naming_the_parameter(tenant: TenantClient) -> None:
    cases = [({"resource_id": "5"}, "resource_id"),
             ({"at_from": "2026-03-01T00:00:00"}, "at_from"),
             ({"at_to": "yesterday"}, "at_to"),
             ({"at_from": "2026-03-02T00:00:00Z", "at_to": "2026-03-01T00:00:00Z"}, "at_to"),
             ({"resource_type": "x" * 65}, "resource_type"),
             ({"actor": ""}, "actor"),
             ({"limit": 0}, "limit"),
             ({"starting_after": "abc"}, "starting_after")]
    for params, param in cases:
        r = await tenant.api.get("/v1/audit", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["param"] == param, (params, r.json())


async def test_the_audit_read_scope_is_needed(
        make_tenant: Callable[..., Awaitable[TenantClient]]) -> None:
    reader = await make_tenant(scopes=["portfolio:read"])
    assert (await reader.api.get("/v1/audit")).status_code == 403
    auditor = await make_tenant(scopes=["audit:read"])
    assert (await auditor.api.get("/v1/audit")).status_code == 200
