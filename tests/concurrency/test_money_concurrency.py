"""Money writes for one debtor at once stay exact on PostgreSQL (issue 10 #1, #2)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.api.context import Actor
from cartera.audit.models import AuditEntry
from cartera.errors import Conflict, Invalid, NotFound
from cartera.payments import service as payments
from cartera.payments.allocation import DebtorScope, rebalance, refresh_balances
from cartera.payments.schemas import AllocationIn, PaymentCreate
from cartera.portfolio import service as portfolio
from cartera.portfolio.models import Debtor, DebtorBalance
from cartera.portfolio.schemas import ObligationCreate
from tests.concurrency import done_or_blocked, money_invariant_violations, run_workers
from tests.concurrency.conftest import BackendsFactory
from tests.conftest import TenantClient
from tests.payments.test_allocation import balance, days_ago, debtor, lima_today, obligation


def _actor(tenant: TenantClient) -> Actor:
    return Actor(tenant_id=tenant.tenant_id, client_id="tests", request_id=None)


async def test_two_interleaved_payments_do_not_double_allocate(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """The reported race: two payments of 300.00 for a debtor owing 310.00, the second
    running while the first has not committed. Between them they pay the debt and leave
    290.00 of credit; neither payment is allocated twice."""
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "310.00", days_ago(30))
    data = PaymentCreate(currency="PEN", amount="300.00", paid_on=lima_today(), debtor_id=d)
    async with backends(tenant.tenant_id, 2) as (a, b):
        await payments.create_payment(a.session, _actor(tenant), data)
        second = asyncio.create_task(payments.create_payment(b.session, _actor(tenant), data))
        await done_or_blocked(second, pg_engine, b.pid)
        await a.commit()
        await second
        await b.commit()
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
    pen = (await balance(tenant, d))["PEN"]
    assert (pen["outstanding_amount"], pen["unapplied_credit"]) == ("0.00", "290.00")


async def test_a_payment_waits_for_the_money_lock_before_reading(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """A second writer for the debtor waits for the first at the very start, before it reads
    the obligations its explicit allocations are checked against: it sees the first one's
    explicit allocation and refuses to give the same 100.00 again."""
    d = await debtor(tenant)
    debt = await obligation(tenant, d, "F-1", "100.00", days_ago(30))
    data = PaymentCreate(currency="PEN", amount="100.00", paid_on=lima_today(), debtor_id=d,
                         allocations=[AllocationIn(obligation_id=debt["id"], amount="100.00")])
    async with backends(tenant.tenant_id, 2) as (a, b):
        await payments.create_payment(a.session, _actor(tenant), data)
        second = asyncio.create_task(payments.create_payment(b.session, _actor(tenant), data))
        assert await done_or_blocked(second, pg_engine, b.pid) == "blocked"
        await a.commit()
        with pytest.raises(Invalid, match=r"has only 0\.00 left to pay"):
            await second
        await b.rollback()
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}


async def test_concurrent_reversals_reverse_a_payment_once(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "100.00", days_ago(30))
    paid = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "60.00", "paid_on": days_ago(1)})
    payment_id = paid.json()["id"]
    async with backends(tenant.tenant_id, 2) as (a, b):
        await payments.reverse_payment(a.session, _actor(tenant), payment_id, "bounced")
        second = asyncio.create_task(
            payments.reverse_payment(b.session, _actor(tenant), payment_id, "chargeback"))
        await done_or_blocked(second, pg_engine, b.pid)
        await a.commit()
        with pytest.raises(Conflict):
            await second
        await b.rollback()
    async with pg_engine.connect() as conn:
        reversals = await conn.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant.tenant_id, AuditEntry.action == "payment.reversed"))
    assert reversals == 1
    assert (await balance(tenant, d))["PEN"]["outstanding_amount"] == "100.00"


async def test_a_debtor_is_not_deleted_under_a_money_write(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """Deleting a debtor (which cascades to their money) waits for their first obligation
    being created and then refuses; a write that waited for a deletion answers 404."""
    d = await debtor(tenant)
    data = ObligationCreate(external_ref="F-1", kind="invoice", currency="PEN",
                            original_amount="50.00", due_date=lima_today(), debtor_id=d)
    async with backends(tenant.tenant_id, 2) as (a, b):
        await portfolio.create_obligation(a.session, _actor(tenant), data)
        deletion = asyncio.create_task(portfolio.delete_debtor(b.session, _actor(tenant), d))
        assert await done_or_blocked(deletion, pg_engine, b.pid) == "blocked"
        await a.commit()
        with pytest.raises(Conflict):
            await deletion
        await b.rollback()
        gone = await debtor(tenant, "D-2")
        await portfolio.delete_debtor(a.session, _actor(tenant), gone)
        late = dict(msgspec.structs.asdict(data), external_ref="F-2", debtor_id=gone)
        write = asyncio.create_task(portfolio.create_obligation(
            b.session, _actor(tenant), ObligationCreate(**late)))
        assert await done_or_blocked(write, pg_engine, b.pid) == "blocked"
        await a.commit()
        with pytest.raises(NotFound):
            await write
        await b.rollback()
    assert (await balance(tenant, d))["PEN"]["outstanding_amount"] == "50.00"


async def test_two_first_refreshes_of_a_summary_do_not_collide(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """Two refreshes of a debtor with no summary row yet both insert it (issue 10 #2): the
    second one, once the first commits, updates the row instead of failing on its key."""
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "80.00", days_ago(10))
    async with pg_engine.begin() as conn:
        await conn.execute(delete(DebtorBalance).where(DebtorBalance.debtor_id == d))
    scope = DebtorScope.one(tenant.tenant_id, d)
    async with backends(tenant.tenant_id, 2) as (a, b):
        await refresh_balances(a.session, tenant.tenant_id, scope, lima_today())
        second = asyncio.create_task(refresh_balances(b.session, tenant.tenant_id, scope,
                                                      lima_today()))
        assert await done_or_blocked(second, pg_engine, b.pid) == "blocked"
        await a.commit()
        try:
            await second
        except IntegrityError as exc:  # what today's plain INSERT does
            pytest.fail(f"the second refresh failed: {exc.orig}")
        await b.commit()
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}


async def test_a_runs_stale_refresh_and_a_money_write_do_not_collide(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """A segmentation run rebuilds the stale summaries without the money lock; when a money
    write of one of those debtors commits first, the run's refresh takes over the row the
    writer inserted instead of failing on its key (issue 10 #2)."""
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "80.00", days_ago(-5))
    t = tenant.tenant_id
    async with backends(t, 2) as (a, b):
        await refresh_balances(a.session, t, DebtorScope.one(t, d), lima_today())
        run = asyncio.create_task(refresh_balances(
            b.session, t, DebtorScope.stale(t), lima_today() + timedelta(days=10)))
        assert await done_or_blocked(run, pg_engine, b.pid) == "blocked"
        await a.commit()
        try:
            await run
        except IntegrityError as exc:  # what a plain INSERT does
            pytest.fail(f"the run's refresh failed: {exc.orig}")
        await b.commit()
    assert await money_invariant_violations(pg_engine, t) == {}
    async with pg_engine.connect() as conn:
        as_of = await conn.scalar(select(DebtorBalance.as_of).where(DebtorBalance.debtor_id == d))
    assert as_of == lima_today() + timedelta(days=10)


async def test_a_bulk_rebalance_and_one_debtors_writes_exclude_each_other(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """A rebalance over a scope given as SQL (an import's) holds the tenant's money lock
    exclusive: a payment waits for it, and it waits for a payment in flight, even of a
    debtor whose rows it does not touch."""
    await obligation(tenant, await debtor(tenant, "OLD"), "F-1", "100.00", days_ago(30))
    d = await debtor(tenant, "NEW")
    t = tenant.tenant_id
    data = PaymentCreate(currency="PEN", amount="40.00", paid_on=lima_today(), debtor_id=d)
    async with backends(t, 2) as (a, b):
        await rebalance(a.session, t, DebtorScope.tenant(t), lima_today())
        pay = asyncio.create_task(payments.create_payment(b.session, _actor(tenant), data))
        assert await done_or_blocked(pay, pg_engine, b.pid) == "blocked"
        await a.commit()
        await pay
        bulk = asyncio.create_task(rebalance(a.session, t, DebtorScope.tenant(t), lima_today()))
        assert await done_or_blocked(bulk, pg_engine, a.pid) == "blocked"
        await b.commit()
        await bulk
        await a.commit()
    assert await money_invariant_violations(pg_engine, t) == {}
    assert (await balance(tenant, d))["PEN"]["unapplied_credit"] == "40.00"


async def test_a_profile_change_a_payment_and_a_bulk_rebalance_do_not_deadlock(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: AsyncEngine) -> None:
    """A debtor's profile change holds their row, then refreshes their summary; meanwhile a
    payment for them waits for the row and a bulk rebalance for the payment. All three
    finish, one after the other, and the money is right."""
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "100.00", days_ago(30))
    t = tenant.tenant_id
    data = PaymentCreate(currency="PEN", amount="40.00", paid_on=lima_today(), debtor_id=d)
    async with backends(t, 3) as (profile, pay, bulk):
        await profile.session.execute(update(Debtor).where(Debtor.id == d).values(zone="Sur"))
        paying = asyncio.create_task(payments.create_payment(pay.session, _actor(tenant), data))
        assert await done_or_blocked(paying, pg_engine, pay.pid) == "blocked"
        rebalancing = asyncio.create_task(rebalance(bulk.session, t, DebtorScope.tenant(t),
                                                    lima_today()))
        assert await done_or_blocked(rebalancing, pg_engine, bulk.pid) == "blocked"
        await refresh_balances(profile.session, t, DebtorScope.one(t, d), lima_today())
        await profile.commit()
        await paying
        await pay.commit()
        await rebalancing
        await bulk.commit()
    assert await money_invariant_violations(pg_engine, t) == {}


async def test_concurrent_first_obligations_of_debtors_all_succeed(
        tenant: TenantClient, api_clients: Any, pg_engine: AsyncEngine) -> None:
    """Eight obligations for each of five new debtors, all at once over HTTP: every one is
    created (no 500 from two summaries of one debtor being inserted) and the sums agree."""
    debtors = [await debtor(tenant, f"N-{i}") for i in range(5)]
    clients: list[httpx.AsyncClient] = api_clients(tenant, 8)

    def create(client: httpx.AsyncClient, n: int) -> Any:
        async def go() -> list[int]:
            codes = []
            for i, d in enumerate(debtors):
                r = await client.post("/v1/obligations", json={
                    "external_ref": f"O-{n}-{i}", "debtor_id": d, "kind": "invoice",
                    "currency": "PEN" if n % 2 else "USD", "original_amount": "10.00",
                    "due_date": days_ago(n)})
                codes.append(r.status_code)
            return codes
        return go

    results = await run_workers([create(c, n) for n, c in enumerate(clients)])
    assert {code for codes in results for code in codes} == {201}
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
    assert (await balance(tenant, debtors[0]))["PEN"]["outstanding_amount"] == "40.00"


# --- the storm ------------------------------------------------------------------------------

CLIENTS = 8
WRITES_PER_CLIENT = 25
DEBTORS = 20


class Storm:
    """Random money writes over a tenant's debtors, from one client each; every answer's
    status is kept (4xx are expected: a reversal of a reversed payment, an allocation beyond
    what is left, ...)."""

    def __init__(self, debtors: list[int], obligations: dict[int, list[int]]) -> None:
        self.debtors = debtors
        self.obligations = obligations
        self.payments: list[int] = []
        self.statuses: list[tuple[str, int, str]] = []

    def worker(self, client: httpx.AsyncClient, seed: int) -> Any:
        rng = random.Random(seed)

        async def go() -> None:
            for n in range(WRITES_PER_CLIENT):
                kind, response = await self.write(client, rng, f"{seed}-{n}")
                self.statuses.append((kind, response.status_code, response.text[:300]))
                if kind == "payment" and response.status_code == 201:
                    self.payments.append(int(response.json()["id"]))
                if kind == "obligation" and response.status_code == 201:
                    body = response.json()
                    self.obligations[body["debtor_id"]].append(int(body["id"]))
        return go

    async def write(self, client: httpx.AsyncClient, rng: random.Random,
                    ref: str) -> tuple[str, httpx.Response]:
        d = rng.choice(self.debtors)
        amount = f"{rng.randint(1, 30000) / 100:.2f}"
        roll = rng.random()
        if roll < 0.4:
            body: dict[str, Any] = {"debtor_id": d, "currency": rng.choice(("PEN", "PEN", "USD")),
                                    "amount": amount, "paid_on": days_ago(rng.randint(0, 20))}
            if rng.random() < 0.25 and self.obligations[d]:
                body["allocations"] = [{"obligation_id": rng.choice(self.obligations[d]),
                                        "amount": f"{rng.randint(1, 5000) / 100:.2f}"}]
            return "payment", await client.post("/v1/payments", json=body)
        if roll < 0.55 and self.payments:
            return "reversal", await client.post(
                f"/v1/payments/{rng.choice(self.payments)}/reverse", json={"reason": "storm"})
        if roll < 0.75 or not self.obligations[d]:
            kind = "credit_note" if rng.random() < 0.1 else "invoice"
            return "obligation", await client.post("/v1/obligations", json={
                "external_ref": f"S-{ref}", "debtor_id": d, "kind": kind,
                "currency": rng.choice(("PEN", "PEN", "USD")), "original_amount": amount,
                "due_date": days_ago(rng.randint(-30, 120))})
        change: dict[str, Any] = rng.choice((
            {"due_date": days_ago(rng.randint(-30, 120))}, {"status": "disputed"},
            {"status": "open"}, {"status": "cancelled"}))  # cancelling deletes a debt
        return "update", await client.patch(
            f"/v1/obligations/{rng.choice(self.obligations[d])}", json=change)


async def test_money_storm_keeps_the_invariants(
        tenant: TenantClient, api_clients: Any, pg_engine: AsyncEngine) -> None:
    """8 clients at once, 25 random money writes each over 20 debtors (payments, explicit
    allocations, reversals, obligations and credit notes created, re-dated, disputed,
    reopened and cancelled): no 5xx, and afterwards no payment or debt allocated beyond its
    amount and every summary equal to obligations minus allocations per currency."""
    debtors = [await debtor(tenant, f"S-{i}") for i in range(DEBTORS)]
    obligations: dict[int, list[int]] = {d: [] for d in debtors}
    for i, d in enumerate(debtors):
        for j, (amount, due) in enumerate((("120.00", 40), ("80.00", 5))):
            obligations[d].append(int((await obligation(
                tenant, d, f"INIT-{i}-{j}", amount, days_ago(due)))["id"]))
    storm = Storm(debtors, obligations)
    await run_workers([storm.worker(c, seed)
                       for seed, c in enumerate(api_clients(tenant, CLIENTS))])
    failures = [s for s in storm.statuses if s[1] >= 500]
    assert failures == []
    ok = [kind for kind, status, _ in storm.statuses if status < 300]
    assert len(storm.statuses) == CLIENTS * WRITES_PER_CLIENT
    assert len(ok) >= len(storm.statuses) * 3 // 4, storm.statuses
    assert set(ok) == {"payment", "reversal", "obligation", "update"}
    assert await money_invariant_violations(pg_engine, tenant.tenant_id) == {}
    async with pg_engine.connect() as conn:  # the storm did move money around
        allocated = await conn.scalar(text(
            "SELECT COUNT(DISTINCT payment_id) FROM allocations WHERE tenant_id = :t"),
            {"t": tenant.tenant_id})
    assert allocated and allocated > 10
