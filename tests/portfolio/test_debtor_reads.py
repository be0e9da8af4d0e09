"""The lean debtor read path (:mod:`cartera.portfolio.reads`) answers exactly what the ORM
path (:func:`cartera.portfolio.service.debtor_out`) answers, for debtors with every kind of
field, and in a pinned number of statements."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import msgspec
import psycopg
import pytest
from litestar import Litestar
from sqlalchemy import event, insert, select, text, update
from sqlalchemy.exc import DBAPIError

from cartera.db.base import table_of
from cartera.db.engine import tenant_session
from cartera.portfolio import reads, service
from cartera.portfolio.models import ContactPoint, Debtor
from tests.conftest import TenantClient
from tests.segmentation.test_segments import RULES, debtor, run

RunJobs = Callable[[], Awaitable[int]]

FULL: dict[str, Any] = {
    "external_ref": "READ-FULL", "name": "Ána María O'Brien \"la 100%\"", "country": "PE",
    "kind": "company", "national_id": "20-123.456", "subdivision": "PE-LIM", "zone": "Lima",
    "risk_score": 0,
    "tags": ["zeta", "Alpha", "ámbar", "beta", "_x", "10"],
    "attributes": {"s": "texto ñ", "i": 42, "big": 2**53 + 1, "b": True, "f": False,
                   "n": None, "empty": ""},
    "contact_points": [
        {"kind": "phone", "value": "987 654 321", "consent": "granted", "label": "móvil",
         "preferred": True, "opted_out_channels": ["sms", "voice"]},
        {"kind": "email", "value": "ana@example.pe", "origin": "found", "consent": "revoked"},
        {"kind": "whatsapp", "value": "+51 912 345 678"},
        {"kind": "address", "value": "Av. Arequipa 123, Lima"},
    ],
    "related_parties": [
        {"role": "guarantor", "name": "Luis", "phone": "+51 912345678",
         "national_id": "X1", "email": "l@example.pe"},
        {"role": "reference", "name": "Sin datos"},
    ],
}


@contextmanager
def statements(app: Litestar) -> Iterator[list[str]]:
    """The SQL statements the app runs meanwhile, bar transaction control, the statement
    timeout, the bearer token's state (looked up again when its answer is a second old:
    on a loaded machine, now and then inside the window) and the signing keys (re-read
    every minute, so now and then inside it too)."""
    seen: list[str] = []
    ctx = app.state.ctx
    engines = [ctx.engine.sync_engine]
    if ctx.read_sessionmaker is not None:  # PostgreSQL: GETs have their own engine
        engines.append(ctx.read_sessionmaker.kw["bind"].sync_engine)

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("SET LOCAL", "BEGIN", "COMMIT",
                                                       "ROLLBACK")) \
                and "oauth_clients" not in statement \
                and "FROM signing_keys" not in statement:  # token state and keys, timed
            seen.append(statement)

    # PostgreSQL: the single-debtor GET runs on the plain connections of ctx.read_pool.
    plain_execute = psycopg.AsyncConnection.execute

    async def execute(conn: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(query))
        return await plain_execute(conn, query, *args, **kwargs)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    psycopg.AsyncConnection.execute = execute  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        psycopg.AsyncConnection.execute = plain_execute  # type: ignore[method-assign]
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)


async def old_path(app: Litestar, t: TenantClient, ids: list[int]) -> list[Any]:
    """What the ORM path gives for ``ids``, as JSON values."""
    async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
        debtors = list((await session.scalars(
            select(Debtor).where(Debtor.id.in_(ids)).order_by(Debtor.id))).all())
        out = await service.debtor_out(session, debtors)
    return [msgspec.json.decode(msgspec.json.encode(d)) for d in out]


async def full_tenant(app: Litestar, t: TenantClient, run_jobs: RunJobs) -> list[int]:
    full = (await t.api.post("/v1/debtors", json=FULL)).json()
    bare = (await t.api.post("/v1/debtors", json={
        "external_ref": "READ-BARE", "name": "Bare", "country": "MX"})).json()
    guarantor = (await t.api.post("/v1/debtors", json={
        "external_ref": "READ-REL", "name": "Rel", "country": "PE", "tags": ["vip"],
        "related_parties": [{"role": "co_debtor", "name": "Full",
                             "related_debtor_id": full["id"]}]})).json()
    late = await debtor(t, "READ-LATE", ("PEN", "2000.00", 45), ("USD", "10.00", 3))
    # A provider suppression on the e-mail (as messaging records it).
    async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
        await session.execute(update(ContactPoint).where(
            ContactPoint.id == full["contact_points"][1]["id"]).values(suppressions={
                "email": {"reason": "hard_bounce", "code": "5.1.1", "interaction_id": None,
                          "at": "2026-01-02T03:04:05.123456+00:00"}}))
    await t.api.put("/v1/segments", json=RULES)
    await run(t, run_jobs)
    return [full["id"], bare["id"], guarantor["id"], late]


async def test_lean_reads_answer_what_the_orm_path_answers(
        app: Litestar, tenant: TenantClient, run_jobs: RunJobs) -> None:
    ids = await full_tenant(app, tenant, run_jobs)
    expected = await old_path(app, tenant, ids)
    assert expected[0]["contact_points"][1]["suppressions"]["email"]["code"] == "5.1.1"
    assert expected[3]["segment"] is not None and expected[3]["stage"] is not None
    for want in expected:
        got = await tenant.api.get(f"/v1/debtors/{want['id']}")
        assert got.status_code == 200, got.text
        assert got.json() == want
        assert got.content == msgspec.json.encode(want)  # same keys, order and text
    listed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()
    assert listed["data"] == expected
    # expand, filters, sort, ranges and both cursors walk the same objects
    expanded = (await tenant.api.get("/v1/debtors", params={"expand": "balance"})).json()
    assert [{k: v for k, v in d.items() if k != "balance"} for d in expanded["data"]] \
        == expected
    assert expanded["data"][3]["balance"]["balances"][0]["currency"] == "PEN"
    one = (await tenant.api.get(f"/v1/debtors/{ids[3]}", params={"expand": "balance"})).json()
    assert one["balance"] == expanded["data"][3]["balance"]
    page = (await tenant.api.get("/v1/debtors", params={"sort": "-created", "limit": 2})).json()
    assert [d["id"] for d in page["data"]] == ids[:1:-1]
    rest = (await tenant.api.get("/v1/debtors", params={
        "sort": "-created", "limit": 2, "starting_after": page["next_cursor"]})).json()
    assert [d["id"] for d in rest["data"]] == ids[1::-1]
    back = (await tenant.api.get("/v1/debtors", params={
        "sort": "-created", "limit": 2, "ending_before": ids[1]})).json()
    assert [d["id"] for d in back["data"]] == ids[:1:-1]
    lima = (await tenant.api.get("/v1/debtors", params={"zone": "Lima", "tag": "zeta"})).json()
    assert lima["data"] == expected[:1]
    found = (await tenant.api.get("/v1/debtors", params={"q": "987654321"})).json()
    assert found["data"] == expected[:1]
    late = (await tenant.api.get("/v1/debtors", params={"dpd_min": 30})).json()
    assert late["data"] == expected[3:]


async def test_another_tenants_cursor_names_nothing(tenant: TenantClient,
                                                    make_tenant: Any) -> None:
    mine = [(await tenant.api.post("/v1/debtors", json={
        "external_ref": f"C-{i}", "name": "c", "country": "PE"})).json()["id"] for i in range(2)]
    other = await make_tenant()
    theirs = (await other.api.post("/v1/debtors", json={
        "external_ref": "O", "name": "o", "country": "PE"})).json()["id"]
    r = await tenant.api.get("/v1/debtors", params={"sort": "-created",
                                                    "starting_after": theirs})
    assert r.status_code == 200 and r.json()["data"] == []
    assert (await other.api.get(f"/v1/debtors/{mine[0]}")).status_code == 404


async def test_a_debtor_get_is_one_statement_and_a_list_one_once_its_tenant_is_known(
        app: Litestar, tenant: TenantClient) -> None:
    """A list reads its tenant's time zone and country the first time (two statements),
    then takes them as a hint its own statement checks (one; PostgreSQL's plain path)."""
    postgres = app.state.ctx.read_pool is not None
    reads._ZONE_COUNTRY.clear()
    ids = [(await tenant.api.post("/v1/debtors", json={
        **FULL, "external_ref": f"S-{i}"})).json()["id"] for i in range(3)]
    with statements(app) as seen:
        r = await tenant.api.get(f"/v1/debtors/{ids[0]}")
    assert r.status_code == 200 and r.headers["etag"]
    assert len(seen) == 1, seen
    with statements(app) as seen:
        r = await tenant.api.get("/v1/debtors", params={"zone": "Lima", "dpd_min": 30,
                                                        "limit": 50})
    assert r.status_code == 200
    assert len(seen) == 2, seen
    with statements(app) as seen:
        r = await tenant.api.get("/v1/debtors", params={"limit": 2, "q": FULL["name"]})
    assert [d["id"] for d in r.json()["data"]] == ids[:2]
    assert len(seen) == (1 if postgres else 2), seen


async def test_a_list_whose_tenant_hint_no_longer_holds_reads_the_tenant_again(
        app: Litestar, tenant: TenantClient) -> None:
    """A hint that no longer holds (here a wrong country, which would normalise the phone
    searched for as Mexican) is never used for the answer: the list reads the tenant and
    runs again, and keeps what it read."""
    if app.state.ctx.read_pool is None:
        pytest.skip("the hint is PostgreSQL's plain path")
    created = (await tenant.api.post("/v1/debtors", json=FULL)).json()
    reads._ZONE_COUNTRY[tenant.tenant_id] = ("America/Mexico_City", "MX")
    with statements(app) as seen:
        r = await tenant.api.get("/v1/debtors", params={"q": "987654321"})
    assert [d["id"] for d in r.json()["data"]] == [created["id"]]
    assert len(seen) == 3, seen  # the list, the tenant, the list again
    assert reads._ZONE_COUNTRY[tenant.tenant_id] == ("America/Lima", "PE")
    with statements(app) as seen:
        r = await tenant.api.get("/v1/debtors", params={"q": "987654321"})
    assert [d["id"] for d in r.json()["data"]] == [created["id"]]
    assert len(seen) == 1, seen


async def test_name_search_uses_the_name_index(app: Litestar, tenant: TenantClient) -> None:
    """PostgreSQL: ``q`` by name is an equality on the sealed name, served by
    ``ix_debtors_tenant_name`` (0043), not a scan of the tenant's debtors; only the whole
    name (spaces collapsed) matches, names being sealed at rest."""
    if app.state.ctx.engine.dialect.name != "postgresql":
        pytest.skip("a plan of PostgreSQL's")
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        await session.execute(insert(table_of(Debtor)), [{
            "tenant_id": tenant.tenant_id, "external_ref": f"N-{i}", "kind": "person",
            "name": f"Deudor {i:05d}", "country": "PE", "timezone": "America/Lima",
            "attributes": {}} for i in range(20000)])
        await session.execute(text("ANALYZE debtors"))
        stmt = select(Debtor.id).where(Debtor.tenant_id == tenant.tenant_id,
                                       service.debtor_search("Deudor 00042", "PE"))
        conn = await session.connection()
        compiled = stmt.compile(conn, compile_kwargs={"render_postcompile": True})
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in await conn.exec_driver_sql(
            f"EXPLAIN {compiled.string}", compiled.params))
    assert "ix_debtors_tenant_name" in plan, plan
    found = await tenant.api.get("/v1/debtors", params={"q": " Deudor   00042 "})
    assert [d["external_ref"] for d in found.json()["data"]] == ["N-42"]
    assert (await tenant.api.get("/v1/debtors", params={"q": "Deudor"})).json()["data"] == []


async def test_the_days_past_due_filter_probes_the_page_s_debtors(
        app: Litestar, tenant: TenantClient) -> None:
    """PostgreSQL: under the generic plan a prepared list runs, ``dpd_min`` is a subplan
    per debtor the page reaches (a probe of the summary's key), not a join that reads the
    tenant's summaries from its first debtor on."""
    if app.state.ctx.read_pool is None:
        pytest.skip("a plan of PostgreSQL's")
    filters = service.filter_values(as_of=date(2026, 12, 4), zone="Lima", dpd_min=30)
    compiled, params = reads._list_call(reads._pg_dialect(), tenant.tenant_id, filters, {},
                                        50, None, ("America/Lima", "PE"))
    names = list(params)
    sql = compiled.sql
    assert sql is not None
    for i, name in enumerate(names, 1):
        sql = sql.replace(f"%({name})s", f"${i}")
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        conn = await session.connection()
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE dpd_list AS {sql}")
        values = ", ".join(f"'{params[name]}'" for name in names)
        plan = "\n".join(r[0] for r in await conn.exec_driver_sql(
            f"EXPLAIN EXECUTE dpd_list({values})"))
        await conn.exec_driver_sql("DEALLOCATE dpd_list")
    balances = [line for line in plan.splitlines() if "debtor_balances" in line]
    assert balances and "Join" not in plan.split("SubPlan")[0], plan


async def test_a_get_cannot_write_on_postgresql(app: Litestar) -> None:
    """The read engine's connections are read-only for the database itself."""
    read = app.state.ctx.read_sessionmaker
    if read is None:
        pytest.skip("PostgreSQL's read engine")
    async with read() as session:
        with pytest.raises(DBAPIError, match="read-only"):
            await session.execute(text("CREATE TEMPORARY TABLE nope (x int)"))
        timeout = await session.scalar(text("SHOW statement_timeout"))
    assert timeout == f"{app.state.ctx.settings.statement_timeout_ms}ms" or timeout.endswith("s")


async def test_one_list_shape_answers_each_requests_values(app: Litestar,
                                                           tenant: TenantClient) -> None:
    """A list's statement is kept per shape (which filters, how many tags, which cursor),
    its values bound per request: requests of one shape get their own answers."""
    ids = {}
    for zone, tags in (("Norte", ["a", "b"]), ("Sur", ["a", "c"]), ("Norte", ["c", "b"])):
        r = await tenant.api.post("/v1/debtors", json={
            "external_ref": f"SH-{len(ids)}", "name": f"Shape {zone} 5%_x",
            "country": "PE", "zone": zone, "tags": tags})
        ids[len(ids)] = r.json()["id"]

    async def listed(**params: Any) -> list[int]:
        r = await tenant.api.get("/v1/debtors", params=params)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert await listed(zone="Norte") == [ids[0], ids[2]]
    assert await listed(zone="Sur") == [ids[1]]
    assert await listed(zone="Norte", starting_after=ids[0]) == [ids[2]]
    assert await listed(zone="Norte", starting_after=ids[2]) == []
    assert await listed(tag=["a", "b"]) == [ids[0]]
    assert await listed(tag=["b", "c"]) == [ids[2]]
    assert await listed(q="Shape Norte 5%_x") == [ids[0], ids[2]]
    assert await listed(q="Shape Sur 5%_x") == [ids[1]]  # the same shape, its own values
    assert await listed(q="5%_y") == []
    assert await listed(q="norte 5_") == []  # _ is a character, not a wildcard
    assert await listed(limit=1, ending_before=ids[2]) == [ids[1]]
    assert await listed(limit=2, ending_before=ids[2]) == [ids[0], ids[1]]


async def test_a_list_answers_stored_attributes_the_api_would_refuse(
        app: Litestar, tenant: TenantClient) -> None:
    """Attributes written outside the API (a float) are listed as they are, not a 500."""
    made = (await tenant.api.post("/v1/debtors", json={**FULL})).json()
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        await session.execute(update(Debtor).where(Debtor.id == made["id"])
                              .values(attributes={"ratio": 1.5, "s": "x"}))
        await session.commit()
    r = await tenant.api.get("/v1/debtors")
    assert r.status_code == 200, r.text
    (listed,) = r.json()["data"]
    assert listed["attributes"] == {"ratio": 1.5, "s": "x"}
    assert {**listed, "attributes": None} == {**made, "attributes": None,
                                              "updated_at": listed["updated_at"]}


async def test_the_plain_read_pool_cannot_write_and_drops_broken_connections(
        app: Litestar, tenant: TenantClient) -> None:
    """PostgreSQL: the plain connections of the single-debtor GET are read-only and bounded
    by the statement timeout like the read engine's, and one the server closed is dropped,
    not reused: the GETs after it succeed."""
    pool = app.state.ctx.read_pool
    if pool is None:
        pytest.skip("PostgreSQL's plain read pool")
    async with pool.connection() as conn:
        timeout = (await (await conn.execute("SHOW statement_timeout")).fetchone())[0]
        pid = conn.info.backend_pid
    assert timeout == f"{app.state.ctx.settings.statement_timeout_ms}ms" or timeout.endswith("s")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        async with pool.connection() as conn:
            await conn.execute("CREATE TEMPORARY TABLE nope (x int)")
    created = (await tenant.api.post("/v1/debtors", json={
        **FULL, "external_ref": "PLAIN-1"})).json()
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    statuses = [(await tenant.api.get(f"/v1/debtors/{created['id']}")).status_code
                for _ in range(10)]
    assert statuses[-5:] == [200] * 5 and statuses.count(500) <= 1, statuses


async def test_the_common_list_runs_on_the_plain_read_pool_on_postgresql(
        app: Litestar, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: ``GET /v1/debtors`` without ``expand``, ``segment`` or ``stage`` runs its
    two statements on a plain connection of ``ctx.read_pool`` (no SQLAlchemy session: none
    of them goes through an engine) and answers what the session's path answers (with
    ``expand``); the process's cipher is looked up once for the page, not once a debtor."""
    if app.state.ctx.read_pool is None:
        pytest.skip("PostgreSQL's plain read pool")
    for i in range(3):
        await tenant.api.post("/v1/debtors", json={**FULL, "external_ref": f"PL-{i}"})
    ctx = app.state.ctx
    through_engines: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "oauth_clients" not in statement:
            through_engines.append(statement)

    engines = [ctx.engine.sync_engine, ctx.read_sessionmaker.kw["bind"].sync_engine]
    for engine in engines:
        event.listen(engine, "before_cursor_execute", count)
    try:
        with statements(app) as seen:
            r = await tenant.api.get("/v1/debtors", params={"zone": "Lima", "limit": 50})
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", count)
    assert r.status_code == 200, r.text
    assert len(r.json()["data"]) == 3
    assert len(seen) == 2 and through_engines == [], (seen, through_engines)

    expanded = (await tenant.api.get("/v1/debtors", params={
        "zone": "Lima", "limit": 50, "expand": "balance"})).json()
    assert r.json() == {**expanded, "data": [{k: v for k, v in d.items() if k != "balance"}
                                             for d in expanded["data"]]}

    from cartera.portfolio import reads

    looked_up = []
    real = reads.pii_cipher

    def counted() -> Any:
        looked_up.append(1)
        return real()

    monkeypatch.setattr(reads, "pii_cipher", counted)
    r = await tenant.api.get("/v1/debtors", params={"zone": "Lima", "limit": 50})
    assert len(r.json()["data"]) == 3 and len(looked_up) == 1, looked_up


async def test_a_page_keeps_the_lists_order_with_a_debtor_the_api_would_refuse(
        app: Litestar, tenant: TenantClient) -> None:
    """The page comes back in the list's order (``sort``, backwards with ``ending_before``)
    also when one debtor's stored attributes (a float) are answered as they are."""
    ids = [(await tenant.api.post("/v1/debtors", json={
        **FULL, "external_ref": f"ORD-{i}"})).json()["id"] for i in range(5)]
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        await session.execute(update(Debtor).where(Debtor.id == ids[2])
                              .values(attributes={"ratio": 1.5}))
        await session.commit()

    async def listed(**params: Any) -> list[int]:
        r = await tenant.api.get("/v1/debtors", params=params)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert await listed() == ids
    assert await listed(sort="-id") == ids[::-1]
    assert await listed(sort="-created", limit=3) == ids[::-1][:3]
    assert await listed(limit=2, ending_before=ids[4]) == ids[2:4]
    assert await listed(sort="-id", limit=2, ending_before=ids[1]) == ids[3:1:-1]
    assert await listed(limit=2, starting_after=ids[1]) == ids[2:4]
