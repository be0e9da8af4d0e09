"""The balance summary computed for a day (what reads use) is the one a refresh would store,
and the stored one is only trusted for the days it is exact on."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from litestar import Litestar
from sqlalchemy import select

from cartera.db.engine import tenant_session
from cartera.payments.allocation import DebtorScope, refresh_balances
from cartera.portfolio import summary
from cartera.portfolio.models import DebtorBalance
from tests.conftest import TenantClient
from tests.segmentation.test_segments import debtor, today


async def a_mixed_portfolio(t: TenantClient) -> list[int]:
    ids = [await debtor(t, "S-A", ("PEN", "100.00", 40), ("PEN", "50.00", -5),
                        ("USD", "10.00", 2)),
           await debtor(t, "S-B", ("PEN", "70.00", -30)),
           await debtor(t, "S-C")]
    r = await t.api.post("/v1/payments", json={
        "debtor_id": ids[0], "currency": "PEN", "amount": "120.00",
        "paid_on": today().isoformat()})
    assert r.status_code == 201, r.text
    note = await t.api.post("/v1/obligations", json={
        "external_ref": "S-B-note", "debtor_id": ids[1], "kind": "credit_note",
        "currency": "PEN", "original_amount": "5.00", "due_date": today().isoformat()})
    assert note.status_code == 201, note.text
    return ids


def rows(result: Any, *, day_written: bool = True) -> list[tuple[Any, ...]]:
    keys = [c.key for c in DebtorBalance.__table__.c if day_written or c.key != "as_of"]
    return sorted(tuple(r._mapping[k] for k in keys) for r in result)


async def test_the_computed_summary_is_the_stored_one_on_any_day(
        tenant: TenantClient, app: Litestar) -> None:
    await a_mixed_portfolio(tenant)
    t = tenant.tenant_id
    bt = DebtorBalance.__table__
    for day in (today() - timedelta(days=400), today(), today() + timedelta(days=10),
                date(2099, 1, 1)):
        async with tenant_session(app.state.ctx.sessionmaker, t) as session:
            computed = rows(await session.execute(summary.computed(t, day)))
            hybrid = rows(await session.execute(select(summary.mixed(t, day))),
                          day_written=False)
            await refresh_balances(session, t, DebtorScope.tenant(t), day)
            found = await session.execute(select(bt).where(bt.c.tenant_id == t))
            stored = rows(found.all())
            await session.rollback()
        assert computed == stored, day
        # today's stored rows where they are exact for ``day`` (as of an earlier day, then)
        assert hybrid == [r[:-2] + r[-1:] for r in stored], day
        assert len(stored) == 3  # A in PEN and USD, B in PEN; C owes nothing


async def test_a_stored_summary_is_stale_for_a_day_before_it_or_past_a_due_date(
        tenant: TenantClient, app: Litestar) -> None:
    ids = await a_mixed_portfolio(tenant)
    t = tenant.tenant_id
    s = DebtorBalance.__table__
    async with tenant_session(app.state.ctx.sessionmaker, t) as session:
        def stale_on(day: date) -> Any:
            return session.scalars(select(s.c.debtor_id).where(
                s.c.tenant_id == t, summary.stale(s, day)).distinct())

        assert set(await stale_on(today())) == set()
        # Nothing stale: reads use the stored summary as it is; else the mixed one.
        assert await summary.as_of(session, t, today()) is s
        assert await summary.as_of(session, t, today() + timedelta(days=6)) is not s
        # A (next) due date 5 days ahead for A, 30 for B: stale once it has passed.
        assert set(await stale_on(today() + timedelta(days=6))) == {ids[0]}
        assert set(await stale_on(today() + timedelta(days=31))) == {ids[0], ids[1]}
        # Anything may have fallen due between an earlier day and today's summary.
        assert set(await stale_on(today() - timedelta(days=1))) == set(ids[:2])
