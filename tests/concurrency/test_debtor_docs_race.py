"""A change that commits while the debtor-document builder is building the same debtor is
never overwritten by the body the builder computed from before it (the stamp check of
:func:`cartera.portfolio.documents.build_debtor_docs`)."""

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


async def test_a_change_committed_during_a_build_is_not_overwritten(
        app: Litestar, tenant: TenantClient, backends: BackendsFactory,
        pg_engine: AsyncEngine) -> None:
    await build_all(app)  # only this test's debtor is missing below
    made = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "DOC-RACE", "name": "Carrera", "country": "PE",
        "zone": "Lima"})).json()["id"]
    async with backends(tenant.tenant_id, 2) as (writer, builder):
        # The writer changes the debtor and holds its transaction open.
        await writer.session.execute(text("UPDATE debtors SET zone = 'Cusco' WHERE id = :a"),
                                     {"a": made})
        # The builder's snapshot predates the change: it builds zone Lima, then waits for
        # the writer's lock on the row.
        build = asyncio.create_task(documents.build_debtor_docs(builder.session))
        assert await done_or_blocked(build, pg_engine, builder.pid) == "blocked"
        await writer.commit()
        written, _ = await build
        await builder.commit()
    assert written == 0
    stamp, body = (await docs(app, [made]))[made]
    assert stamp == 2 and body is None
    await build_all(app)
    body = (await docs(app, [made]))[made][1]
    assert body is not None and '"Cusco"' in body and '"Lima"' not in body
    listed = (await tenant.api.get("/v1/debtors", params={"external_ref": "DOC-RACE"})).json()
    assert listed["data"][0]["zone"] == "Cusco"

