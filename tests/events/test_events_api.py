"""The outbox and /v1/events: every audited change is an event, in its transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cartera.api.context import Actor
from cartera.db.engine import tenant_session
from cartera.events.models import OutboxEvent
from cartera.portfolio import schemas as portfolio_schemas
from cartera.portfolio import service as portfolio_service
from tests.conftest import TenantClient


async def new_debtor(t: TenantClient, ref: str = "D-1") -> int:
    r = await t.api.post("/v1/debtors", json={"external_ref": ref, "name": "Rosa",
                                              "country": "PE"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def pay(t: TenantClient, debtor_id: int, amount: str = "10.00") -> int:
    r = await t.api.post("/v1/payments", json={"debtor_id": debtor_id, "currency": "PEN",
                                               "amount": amount, "paid_on": "2026-11-30"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def events(t: TenantClient, **params: object) -> list[dict[str, object]]:
    r = await t.api.get("/v1/events", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def test_changes_are_events_with_their_debtor(tenant: TenantClient) -> None:
    d = await new_debtor(tenant)
    p = await pay(tenant, d)
    r = await tenant.api.post(f"/v1/payments/{p}/reverse", json={"reason": "bounced"})
    assert r.status_code == 201, r.text
    # (a payment may also move the debtor's stage: debtor.stage_changed, not listed here)
    found = await events(tenant, type=["debtor.created", "payment.*"])
    assert [e["type"] for e in found] == ["debtor.created", "payment.created",
                                          "payment.reversed"]
    created, paid, reversed_ = found
    assert created["resource"] == {"type": "debtor", "id": str(d)}
    assert created["debtor_id"] == d and created["data"]["name"] == "Rosa"
    assert paid["resource"] == {"type": "payment", "id": str(p)}
    assert paid["debtor_id"] == d and paid["data"]["amount"] == "10.00"
    assert reversed_["debtor_id"] == d and reversed_["data"]["reason"] == "bounced"
    assert str(created["id"]).startswith("evt_") and len(str(created["id"])) == 34
    one = await tenant.api.get(f"/v1/events/{created['id']}")
    assert one.status_code == 200 and one.json() == created


async def test_a_contact_point_event_names_the_contact_point(tenant: TenantClient) -> None:
    d = await new_debtor(tenant)
    r = await tenant.api.post(f"/v1/debtors/{d}/contact-points",
                              json={"kind": "phone", "value": "+51987654321"})
    assert r.status_code == 201, r.text
    (event,) = await events(tenant, type="contact_point.created")
    assert event["resource"] == {"type": "contact_point", "id": str(r.json()["id"])}
    assert event["debtor_id"] == d


async def test_a_write_rolled_back_leaves_no_event(app: object, tenant: TenantClient) -> None:
    sessionmaker = app.state.ctx.sessionmaker  # type: ignore[attr-defined]
    actor = Actor(tenant.tenant_id, None, None)
    async with tenant_session(sessionmaker, tenant.tenant_id) as session:
        await portfolio_service.create_debtor(session, actor, portfolio_schemas.DebtorCreate(
            external_ref="GONE", name="Nadie", country="PE"))
        await session.flush()
        assert await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.tenant_id == tenant.tenant_id)) == 1
        await session.rollback()
    assert await events(tenant) == []


async def test_a_refused_write_leaves_no_event(tenant: TenantClient) -> None:
    await new_debtor(tenant, "D-1")
    r = await tenant.api.post("/v1/debtors", json={"external_ref": "D-1", "name": "Twice",
                                                   "country": "PE"})
    assert r.status_code == 409, r.text
    assert [e["type"] for e in await events(tenant)] == ["debtor.created"]


async def test_filters_by_types_families_debtor_and_time(tenant: TenantClient) -> None:
    d1, d2 = await new_debtor(tenant, "A"), await new_debtor(tenant, "B")
    await pay(tenant, d1)
    await pay(tenant, d2)
    assert len(await events(tenant, type="payment.*")) == 2
    both = await events(tenant, type=["payment.created", "debtor.created"], debtor_id=d2)
    assert [(e["type"], e["debtor_id"]) for e in both] == [("debtor.created", d2),
                                                           ("payment.created", d2)]
    now = datetime.now(UTC)
    window = {"created_from": (now - timedelta(minutes=5)).isoformat(),
              "created_to": (now + timedelta(minutes=5)).isoformat()}
    assert len(await events(tenant, type=["debtor.created", "payment.*"], **window)) == 4
    assert await events(tenant, created_from=(now + timedelta(minutes=5)).isoformat()) == []


async def test_the_cursor_pages_through_in_order(tenant: TenantClient) -> None:
    for i in range(5):
        await new_debtor(tenant, f"D-{i}")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2}
        if cursor:
            params["starting_after"] = cursor
        body = (await tenant.api.get("/v1/events", params=params)).json()
        seen += [e["data"]["external_ref"] for e in body["data"]]
        cursor = body["next_cursor"]
        if not body["has_more"]:
            break
    assert seen == [f"D-{i}" for i in range(5)]


@pytest.mark.parametrize(("params", "param"), [
    ({"type": "payment"}, "type"),
    ({"type": "nothing.created"}, "type[0]"),
    ({"created_from": "2026-01-01T00:00:00"}, "created_from"),
    ({"created_from": "2026-02-01T00:00:00Z", "created_to": "2026-01-01T00:00:00Z"},
     "created_to"),
    ({"starting_after": "evt_0000"}, "starting_after"),
])
async def test_bad_filters_are_422_naming_the_parameter(tenant: TenantClient,
                                                        params: dict[str, str],
                                                        param: str) -> None:
    r = await tenant.api.get("/v1/events", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["param"] == param


async def test_other_tenants_events_are_404(tenant: TenantClient, make_tenant: object) -> None:
    other = await make_tenant()  # type: ignore[operator]
    await new_debtor(other)
    (theirs,) = await events(other)
    assert (await tenant.api.get(f"/v1/events/{theirs['id']}")).status_code == 404
    assert await events(tenant) == []
    r = await tenant.api.post(f"/v1/events/{theirs['id']}/redeliver")
    assert r.status_code == 404


async def test_events_need_their_scope(make_tenant: object) -> None:
    t = await make_tenant(scopes=["portfolio:read"])  # type: ignore[operator]
    assert (await t.api.get("/v1/events")).status_code == 403
    assert (await t.api.get("/v1/webhook-endpoints")).status_code == 403


async def test_old_events_are_purged(app: object, tenant: TenantClient) -> None:
    from cartera.events.delivery import purge

    await new_debtor(tenant)
    sessionmaker = app.state.ctx.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker() as session:
        assert await purge(session, timedelta(days=30)) >= 0
        await session.commit()
    assert len(await events(tenant)) == 1
    async with sessionmaker() as session:
        await purge(session, timedelta(seconds=-60))
        await session.commit()
    assert await events(tenant) == []
