"""Debtor documents (:mod:`cartera.portfolio.documents`): the list answers the same whether a
debtor's body is kept or computed, and every statement that changes what a body holds
clears it in the same transaction (the triggers of migration 0051). PostgreSQL only, bar
the first test."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select, text

from cartera.jobs.registry import PERIODIC
from cartera.portfolio import documents
from cartera.portfolio.documents import DOCS
from tests.conftest import TenantClient
from tests.portfolio.test_debtor_reads import RunJobs, full_tenant, old_path


async def build_all(app: Litestar) -> int:
    """Build every missing body of the test database; how many were written."""
    return await documents.build_missing(app.state.ctx.sessionmaker)


async def docs(app: Litestar, ids: list[int]) -> dict[int, tuple[int, str | None]]:
    """``{debtor_id: (stamp, body)}`` of the debtors ``ids`` that have a row."""
    async with app.state.ctx.sessionmaker() as session:
        rows = (await session.execute(select(DOCS.c.debtor_id, DOCS.c.stamp, DOCS.c.body)
                                      .where(DOCS.c.debtor_id.in_(ids)))).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def _postgresql(app: Litestar) -> None:
    if app.state.ctx.engine.dialect.name != "postgresql":
        pytest.skip("debtor documents are kept by PostgreSQL (set CARTERA_TEST_DATABASE_URL)")


async def test_the_housekeeping_builds_and_sqlite_keeps_none(
        app: Litestar, tenant: TenantClient) -> None:
    assert documents.debtor_doc_housekeeping in PERIODIC
    await build_all(app)  # what earlier tests left: a pass's budget need not cover it
    made = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "DOC-HK", "name": "Casa", "country": "PE"})).json()
    await documents.debtor_doc_housekeeping(app.state.ctx.sessionmaker, None)
    kept = await docs(app, [made["id"]])
    if app.state.ctx.engine.dialect.name == "postgresql":
        assert kept[made["id"]][1] is not None
    else:
        assert kept == {}
        async with app.state.ctx.sessionmaker() as session:
            assert await documents.build_debtor_docs(session) == (0, True)


async def test_kept_bodies_answer_what_the_tables_answer(
        app: Litestar, tenant: TenantClient, run_jobs: RunJobs) -> None:
    _postgresql(app)
    ids = await full_tenant(app, tenant, run_jobs)
    expected = await old_path(app, tenant, ids)
    assert all(body is None for _, body in (await docs(app, ids)).values())
    computed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert await build_all(app) >= len(ids)
    kept = await docs(app, ids)
    assert sorted(kept) == sorted(ids) and all(body for _, body in kept.values())
    listed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert listed == computed == expected
    # the session path (a segment filter) reads them too
    segment = expected[3]["segment"]
    placed = (await tenant.api.get("/v1/debtors", params={"segment": segment})).json()
    assert [d for d in placed["data"] if d["id"] == ids[3]] == [expected[3]]
    assert await build_all(app) == 0  # nothing left: a pass over a built portfolio is empty


async def test_each_change_through_the_api_is_seen_at_once(
        app: Litestar, tenant: TenantClient, run_jobs: RunJobs) -> None:
    _postgresql(app)
    ids = await full_tenant(app, tenant, run_jobs)
    await build_all(app)
    full = ids[0]
    await tenant.api.patch(f"/v1/debtors/{full}", json={"zone": "Cusco", "tags": ["nuevo"]})
    added = await tenant.api.post(f"/v1/debtors/{full}/contact-points", json={
        "kind": "email", "value": "nueva@example.pe"})
    assert added.status_code == 201, added.text
    listed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert listed == await old_path(app, tenant, ids)
    one = next(d for d in listed if d["id"] == full)
    assert one["zone"] == "Cusco" and one["tags"] == ["nuevo"]
    assert "nueva@example.pe" in [cp["value"] for cp in one["contact_points"]]


CHANGES: list[tuple[str, str]] = [
    ("debtors update", "UPDATE debtors SET zone = 'Piura' WHERE id = :a"),
    # (a copy of the debtor's phone: sealed values stay sealed for the rotation tests)
    ("contact point insert", "INSERT INTO contact_points (tenant_id, debtor_id, kind, value, "
     "consent, opted_out_channels, suppressions, origin, preferred, created_at, updated_at) "
     "SELECT tenant_id, debtor_id, 'address', value, 'unknown', '[]', '{}', 'found', false, "
     "now(), now() FROM contact_points WHERE debtor_id = :a"),
    ("contact point update", "UPDATE contact_points SET label = 'x' WHERE debtor_id = :a"),
    ("contact point delete", "DELETE FROM contact_points WHERE debtor_id = :a"),
    ("related party update", "UPDATE related_parties SET role = 'reference' "
     "WHERE debtor_id = :a"),
    ("related party delete", "DELETE FROM related_parties WHERE debtor_id = :a"),
    ("tag insert", "INSERT INTO debtor_tags (tenant_id, debtor_id, tag) "
     "SELECT tenant_id, id, 'otro' FROM debtors WHERE id = :a"),
    ("tag delete", "DELETE FROM debtor_tags WHERE debtor_id = :a"),
    ("related party insert", "INSERT INTO related_parties (tenant_id, debtor_id, role, name, "
     "created_at) SELECT tenant_id, debtor_id, 'reference', name, now() FROM related_parties "
     "WHERE debtor_id = :a"),
]


@pytest.mark.parametrize(("what", "sql"), CHANGES, ids=[what for what, _ in CHANGES])
async def test_a_statement_that_changes_a_debtor_clears_its_body_alone(
        app: Litestar, tenant: TenantClient, what: str, sql: str) -> None:
    _postgresql(app)
    made = [(await tenant.api.post("/v1/debtors", json={
        "external_ref": f"DOC-{what}-{i}", "name": "Doc", "country": "PE", "tags": ["t"],
        "contact_points": [{"kind": "phone", "value": "987654321"}],
        "related_parties": [{"role": "guarantor", "name": "G"}]})).json()["id"]
        for i in range(2)]
    await build_all(app)
    before = await docs(app, made)
    assert all(body is not None for _, body in before.values())
    async with app.state.ctx.sessionmaker() as session:
        result: Any = await session.execute(text(sql), {"a": made[0]})
        assert result.rowcount >= 1
        await session.commit()
    after = await docs(app, made)
    assert after[made[0]] == (before[made[0]][0] + 1, None)
    assert after[made[1]] == before[made[1]]  # the other debtor keeps its body


async def test_new_and_deleted_debtors_have_a_row_and_none(
        app: Litestar, tenant: TenantClient) -> None:
    _postgresql(app)
    made = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "DOC-NEW", "name": "Nuevo", "country": "PE"})).json()["id"]
    assert (await docs(app, [made]))[made][1] is None
    await build_all(app)
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(text("DELETE FROM debtors WHERE id = :a"), {"a": made})
        await session.commit()
    assert await docs(app, [made]) == {}


async def test_every_table_of_a_body_has_its_triggers(app: Litestar) -> None:
    _postgresql(app)
    async with app.state.ctx.sessionmaker() as session:
        found = set((await session.execute(text(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE 'debtor_docs_%' AND t.tgenabled <> 'D'"))).all())
    children = ("contact_points", "related_parties", "debtor_tags")
    assert found == {("debtors", "debtor_docs_insert"), ("debtors", "debtor_docs_update"),
                     *((table, f"debtor_docs_{event}") for table in children
                       for event in ("insert", "update", "delete"))}
