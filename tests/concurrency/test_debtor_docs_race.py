"""The debtor-document builder (:func:`cartera.portfolio.documents.build_debtor_docs`) and
a change to the same debtor, in either order: the body is never older than the tables, and
the builder never waits for the change."""

from __future__ import annotations

import asyncio

from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cartera.portfolio import documents
from tests.concurrency import done_or_blocked
from tests.concurrency.conftest import BackendsFactory
from tests.conftest import TenantClient
from tests.portfolio.test_debtor_docs import build_all, docs

MOVE = text("UPDATE debtors SET zone = 'Cusco' WHERE id = :a")


async def _fresh_debtor(app: Litestar, tenant: TenantClient, ref: str) -> int:
    await build_all(app)  # only this test's debtor is missing below
    made: int = (await tenant.api.post("/v1/debtors", json={
        "external_ref": ref, "name": "Carrera", "country": "PE", "zone": "Lima"})).json()["id"]
    return made


async def _body_is_current(app: Litestar, tenant: TenantClient, made: int, ref: str) -> None:
    await build_all(app)
    body = (await docs(app, [made]))[made][1]
    assert body is not None and '"Cusco"' in body and '"Lima"' not in body
    listed = (await tenant.api.get("/v1/debtors", params={"external_ref": ref})).json()
    assert listed["data"][0]["zone"] == "Cusco"


async def test_the_builder_skips_a_debtor_a_change_holds(
        app: Litestar, tenant: TenantClient, backends: BackendsFactory,
        pg_engine: AsyncEngine) -> None:
    made = await _fresh_debtor(app, tenant, "DOC-RACE")
    async with backends(tenant.tenant_id, 2) as (writer, builder):
        await writer.session.execute(MOVE, {"a": made})  # held open: its trigger locks the row
        build = asyncio.create_task(documents.build_debtor_docs(builder.session))
        assert await done_or_blocked(build, pg_engine, builder.pid) == "done"
        await build
        await builder.commit()
        assert (await docs(app, [made]))[made] == (1, None)  # skipped, not built stale
        await writer.commit()
    assert (await docs(app, [made]))[made] == (2, None)
    await _body_is_current(app, tenant, made, "DOC-RACE")


async def test_a_change_while_the_builder_holds_the_debtor_clears_it_after(
        app: Litestar, tenant: TenantClient, backends: BackendsFactory,
        pg_engine: AsyncEngine) -> None:
    made = await _fresh_debtor(app, tenant, "DOC-RACE-2")
    async with backends(tenant.tenant_id, 2) as (writer, builder):
        assert await documents.lock_missing(builder.session, 10) == [made]
        change = asyncio.create_task(writer.session.execute(MOVE, {"a": made}))
        assert await done_or_blocked(change, pg_engine, writer.pid) == "blocked"
        await documents.build_locked(builder.session, [made])  # from before the change
        await builder.commit()
        await change
        await writer.commit()
    assert (await docs(app, [made]))[made] == (2, None)  # the change cleared it after
    await _body_is_current(app, tenant, made, "DOC-RACE-2")
