"""What one notification costs in statements: the debtor's money lock is asked for once in
the apply's transaction (the chain's balances, summary, placement and replan steps find it
held), and a duplicate notification is a lookup, not a second pass over the events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import event

from cartera.portfolio.locks import MONEY_LOCK_SPACE
from tests.conftest import TenantClient
from tests.payments.mp import debt, integration, mercadopago, notify

__all__ = ["mercadopago"]
RunJobs = Callable[[], Awaitable[int]]


@contextmanager
def statements(app: Litestar) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, sql: str, params: Any, *_: Any) -> None:
        seen.append((" ".join(sql.split()), params))

    engine = app.state.ctx.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def paid_link(tenant: TenantClient, mp: Any, ref: str, ppid: str) -> tuple[int, int]:
    integ = await integration(tenant, mp)
    debtor_id, _ = await debt(tenant, ref, "80.00")
    r = await tenant.api.post("/v1/payment-links", json={"currency": "PEN",
                                                         "debtor_id": debtor_id})
    assert r.status_code == 201, r.text
    mp.add_payment(ppid, r.json()["amount"], external_reference=f"plink_{r.json()['id']}")
    return int(integ["id"]), debtor_id


async def test_a_notification_asks_for_the_debtors_money_lock_once(
        app: Litestar, database_url: str, tenant: TenantClient, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the money lock is PostgreSQL's (SQLite has one writer)")
    integ, debtor_id = await paid_link(tenant, mercadopago, "ONCE-1", "9301")
    await run_jobs()
    with statements(app) as seen:
        await notify(http, integ, "9301", notification_id=9301)
        await run_jobs()
    rows = [s for s, _ in seen if s.startswith("SELECT debtors.id FROM debtors")
            and "FOR NO KEY UPDATE" in s]
    money = [p for s, p in seen if "pg_advisory_xact_lock_shared" in s
             and p.get("space") == MONEY_LOCK_SPACE]
    assert (len(rows), len(money)) == (1, 1)
    r = await tenant.api.get("/v1/payments", params={"debtor_id": debtor_id})
    assert [(p["provider_payment_id"], p["status"]) for p in r.json()["data"]] == [
        ("9301", "applied")]


async def test_a_duplicate_notification_is_one_lookup_of_its_events(
        app: Litestar, tenant: TenantClient, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id = await paid_link(tenant, mercadopago, "ONCE-2", "9302")
    await notify(http, integ, "9302", notification_id=9302)
    await run_jobs()
    with statements(app) as seen:
        await notify(http, integ, "9302", notification_id=9302)
        await run_jobs()
    events = [s for s, _ in seen if "webhook_events" in s]
    # the lookup, and the insert that keeps a concurrent first delivery exactly-once
    assert [s.split()[0] for s in events] == ["SELECT", "INSERT"]
    assert not [s for s, _ in seen if " payments" in s or "payment_links" in s]
    r = await tenant.api.get("/v1/payments", params={"debtor_id": debtor_id})
    assert [p["provider_payment_id"] for p in r.json()["data"]] == ["9302"]
