"""The money lock is asked for once per transaction (:func:`cartera.portfolio.locks.held`),
and asked for again once a savepoint that took it has been rolled back (PostgreSQL released
it): remembering it past that would let a second writer in."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from cartera.portfolio.locks import lock_debtors
from cartera.portfolio.models import Debtor
from tests.concurrency import done_or_blocked
from tests.concurrency.conftest import BackendsFactory
from tests.conftest import TenantClient
from tests.payments.mp import debt


async def test_a_lock_taken_in_a_rolled_back_savepoint_is_taken_again(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: object) -> None:
    debtor_id, _ = await debt(tenant, "LOCK-1")
    async with backends(tenant.tenant_id, 2) as (a, b):
        await a.session.scalar(select(Debtor.id).where(Debtor.id == debtor_id))
        savepoint = await a.session.begin_nested()
        await lock_debtors(a.session, tenant.tenant_id, [debtor_id])
        await savepoint.rollback()
        # the rollback released the row: another writer takes it at once
        await lock_debtors(b.session, tenant.tenant_id, [debtor_id])
        await b.rollback()
        # asked again in the outer transaction, the lock is really taken again ...
        await lock_debtors(a.session, tenant.tenant_id, [debtor_id])
        waiting = asyncio.create_task(lock_debtors(b.session, tenant.tenant_id, [debtor_id]))
        assert await done_or_blocked(waiting, pg_engine, b.pid) == "blocked"  # type: ignore[arg-type]
        # ... and asked a third time it is not asked of the server again, yet still held
        await lock_debtors(a.session, tenant.tenant_id, [debtor_id])
        assert not waiting.done()
        await a.commit()
        await waiting
        await b.rollback()


async def test_a_lock_taken_before_a_savepoint_holds_inside_it(
        tenant: TenantClient, backends: BackendsFactory, pg_engine: object) -> None:
    debtor_id, _ = await debt(tenant, "LOCK-2")
    async with backends(tenant.tenant_id, 2) as (a, b):
        await lock_debtors(a.session, tenant.tenant_id, [debtor_id])
        async with a.session.begin_nested():
            await lock_debtors(a.session, tenant.tenant_id, [debtor_id])
        waiting = asyncio.create_task(lock_debtors(b.session, tenant.tenant_id, [debtor_id]))
        assert await done_or_blocked(waiting, pg_engine, b.pid) == "blocked"  # type: ignore[arg-type]
        await a.rollback()
        await waiting
        await b.rollback()
