"""A read never writes: every GET of the OpenAPI document, and every what-if with ``as_of``,
leaves every table of the database as it was (row counts and a checksum of the rows).

The operations are taken from the served document, so a new GET is covered the day it is
added: the test fails until its path parameters have a real id below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import inspect, text

from cartera.auth.scopes import SCOPES
from cartera.strategies.dispatch import queue_due_dispatches
from tests.conftest import TenantClient
from tests.segmentation.test_segments import RULES, debtor, run, today

RunJobs = Callable[[], Awaitable[int]]
PAST = date(2020, 1, 15)
FUTURE = date(2099, 1, 1)


async def snapshot(app: Litestar) -> dict[str, tuple[int, str]]:
    """Every table of the database: (row count, sha256 of its rows sorted)."""
    async with app.state.ctx.sessionmaker() as session:
        names = await session.run_sync(
            lambda s: inspect(s.connection()).get_table_names())
        found: dict[str, tuple[int, str]] = {}
        for name in sorted(names):
            rows = sorted(repr(tuple(r)) for r in await session.execute(
                text(f'SELECT * FROM "{name}"')))
            found[name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return found


def changed(before: dict[str, tuple[int, str]],
            after: dict[str, tuple[int, str]]) -> dict[str, Any]:
    return {t: (before.get(t), after.get(t)) for t in before.keys() | after.keys()
            if before.get(t) != after.get(t)}


async def created(t: TenantClient, path: str, body: dict[str, Any]) -> int:
    r = await t.api.post(path, json=body)
    assert r.status_code in (200, 201, 202), (path, r.text)
    return int(r.json()["id"])


async def a_full_tenant(t: TenantClient, run_jobs: RunJobs,
                        app: Litestar) -> dict[str, int | str]:
    """A tenant with one of everything the GETs read, as the path parameters name them."""
    due_later = await debtor(t, "READ-LATER", ("PEN", "900.00", -20))
    late = await debtor(t, "READ-LATE", ("PEN", "2000.00", 45), ("USD", "300.00", 5),
                        tags=["vip"],
                        contact_points=[{"kind": "phone", "value": "987654321",
                                         "consent": "granted"}])
    ids: dict[str, int | str] = {"debtor_id": late, "tenant_id": t.tenant_id,
                                 "client_id": t.client_id}
    ids["portfolio_id"] = await created(t, "/v1/portfolios", {"code": "RD", "name": "Reads"})
    ids["obligation_id"] = await created(t, "/v1/obligations", {
        "external_ref": "READ-O", "debtor_id": due_later, "portfolio_id": ids["portfolio_id"],
        "kind": "invoice", "currency": "PEN", "original_amount": "50.00",
        "due_date": (today() + timedelta(days=3)).isoformat()})
    ids["payment_id"] = await created(t, "/v1/payments", {
        "external_ref": "READ-P", "debtor_id": late, "currency": "PEN", "amount": "100.00",
        "paid_on": today().isoformat()})
    ids["promise_id"] = await created(t, "/v1/promises", {
        "debtor_id": late, "currency": "PEN", "amount": "300.00",
        "promised_date": (today() + timedelta(days=7)).isoformat()})
    ids["offer_id"] = await created(t, "/v1/offers", {
        "debtor_id": late, "currency": "PEN", "kind": "discount", "discount_percent": "10"})
    r = await t.api.post("/v1/self-service-links", json={"debtor_id": late})
    assert r.status_code == 201, r.text
    t.api.headers["X-Self-Service-Token"] = r.json()["token"]
    ids["arrangement_id"] = await created(t, "/v1/arrangements", {
        "debtor_id": due_later, "currency": "PEN", "installments": [
            {"due_date": (today() + timedelta(days=30)).isoformat(), "amount": "450.00"},
            {"due_date": (today() + timedelta(days=60)).isoformat(), "amount": "450.00"}]})
    ids["template_id"] = await created(t, "/v1/templates", {
        "code": "reads", "channel": "sms", "locale": "es-PE", "name": "Reads",
        "body": "Hola {{ debtor.first_name }}, debes {{ balance.overdue }}."})
    ids["integration_id"] = await created(t, "/v1/integrations", {
        "name": "SMS", "provider_kind": "channel", "provider_name": "fixture_sms",
        "config": {"base_url": "http://127.0.0.1:9"},
        "secrets": {"api_key": "key", "webhook_secret": "whsec", "verify_token": "tok"}})
    integration = (await t.api.get(f"/v1/integrations/{ids['integration_id']}")).json()
    ids["token"] = integration["webhook_url"].rsplit("/", 1)[1]
    ids["interaction_id"] = await created(t, "/v1/interactions", {
        "debtor_id": late, "channel": "voice", "outcome": "no_answer", "note": "rang"})
    r = await t.api.post("/v1/imports", content=(
        b'{"type": "debtor", "external_ref": "READ-I", "name": "Imported", "country": "PE"}\n'),
        headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code == 202, r.text
    ids["import_id"] = int(r.json()["id"])
    assert (await t.api.put("/v1/segments", json=RULES)).status_code == 200
    await run_jobs()
    ids["run_id"] = int((await run(t, run_jobs))["id"])
    ids["job_id"] = int((await t.api.get(f"/v1/segments/runs/{ids['run_id']}")).json()[
        "job_id"])
    pinned = await t.api.post(f"/v1/stages/debtors/{due_later}",
                              json={"stage_code": "extrajudicial", "reason": "asked for it"})
    assert pinned.status_code == 200, pinned.text
    segments = (await t.api.get("/v1/segments")).json()["segments"]
    ids["strategy_id"] = await created(t, "/v1/strategies", {
        "code": "reads", "name": "Reads", "version": {
            "segment_ids": [s["id"] for s in segments], "steps": [{
                "key": "one", "kind": "message", "window": {
                    "start_hour": 0, "end_hour": 24, "weekdays": [1, 2, 3, 4, 5, 6, 7]},
                "channels": [{"channel": "sms", "template_id": ids["template_id"]}]}]}})
    await created(t, f"/v1/strategies/{ids['strategy_id']}/versions/1/activate", {})
    # Ahead of the message strategy (one live journey per debtor), so the first pass
    # gives the debtor a task to read.
    calls_id = await created(t, "/v1/strategies", {
        "code": "calls", "name": "Calls", "priority": 1, "version": {
            "segment_ids": [s["id"] for s in segments], "steps": [{
                "key": "call", "kind": "task", "task": {"queue": "calls"}, "window": {
                    "start_hour": 0, "end_hour": 24, "weekdays": [1, 2, 3, 4, 5, 6, 7]}}]}})
    await created(t, f"/v1/strategies/{calls_id}/versions/1/activate", {})
    await created(t, "/v1/strategies/plan", {})
    await run_jobs()
    await queue_due_dispatches(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()
    ids["action_id"] = (await t.api.get("/v1/actions")).json()["data"][0]["id"]
    ids["task_id"] = (await t.api.get("/v1/tasks")).json()["data"][0]["id"]
    ids["simulation_id"] = await created(t, "/v1/strategies/simulate", {"days": 2})
    await run_jobs()
    ids["endpoint_id"] = int((await t.api.post("/v1/webhook-endpoints", json={
        "url": "https://isv.example.com/hook", "event_types": ["*"]})).json()["endpoint"]["id"])
    ids["event_id"] = str((await t.api.get("/v1/events")).json()["data"][0]["id"])
    return ids


def _required_query(op: dict[str, Any]) -> dict[str, str]:
    fixed = {"currency": "PEN"}
    wanted = [p["name"] for p in op.get("parameters", [])
              if p.get("in") == "query" and p.get("required")]
    missing = [n for n in wanted if n not in fixed]
    assert not missing, f"{op['operationId']}: give a value for {missing}"
    return {n: fixed[n] for n in wanted}


def calls(doc: dict[str, Any], ids: dict[str, int | str],
          need_ids: bool = True) -> list[tuple[str, str, dict[str, str]]]:
    """(operation id, URL, query) for every GET, once per ``as_of`` it accepts (with
    ``need_ids=False``, the path parameters without an id are left in the URL)."""
    found = []
    for path, ops in doc["paths"].items():
        op = ops.get("get")
        if op is None:
            continue
        url = path
        for p in op.get("parameters", []):
            if p.get("in") == "path":
                assert p["name"] in ids or not need_ids, f"{op['operationId']}: no id for " \
                                                         f"{p['name']}"
                if p["name"] in ids:
                    url = url.replace("{" + p["name"] + "}", str(ids[p["name"]]))
        query = _required_query(op)
        if op["operationId"] == "WebhookHandshake":
            query |= {"verify_token": "tok", "challenge": "abc"}
        names = {p["name"] for p in op.get("parameters", [])}
        days = [None, PAST, FUTURE] if "as_of" in names else [None]
        for day in days:
            found.append((op["operationId"], url,
                          query | ({"as_of": day.isoformat()} if day else {})))
    return found


async def gets_change_nothing(app: Litestar, t: TenantClient,
                              gets: list[tuple[str, str, dict[str, str]]]
                              ) -> dict[str, tuple[int, str]]:
    """Send each GET, checking that it answers 200 and that no table changed; returns the
    snapshot taken before."""
    before = await snapshot(app)
    for operation, url, query in gets:
        # the debtor-facing routes take a self-service link's token instead of OAuth
        headers = ({"X-Self-Service-Token": str(t.api.headers["X-Self-Service-Token"])}
                   if url.startswith("/self-service") else {})
        r = await t.api.get(url, params=query, headers=headers)
        assert r.status_code == 200, (operation, url, query, r.text)
        assert not changed(before, await snapshot(app)), (operation, url, query)
    return before


async def a_payment_link(app: Litestar, t: TenantClient, ids: dict[str, int | str]) -> int:
    """A payment link row (made without a payment provider: only its reads are walked)."""
    from datetime import UTC, datetime

    from cartera.payments.models import PaymentLink

    async with app.state.ctx.sessionmaker() as session:
        link = PaymentLink(
            tenant_id=t.tenant_id, debtor_id=int(ids["debtor_id"]),
            integration_id=int(ids["integration_id"]), provider="mercadopago",
            purpose="balance", amount_kind="balance", currency="PEN", amount_minor=100,
            obligation_ids=[], description="Reads", status="open",
            expires_at=datetime(2099, 1, 1, tzinfo=UTC), provider_idempotency_key="reads",
            url="https://pay.example/x", created_by="tests")
        session.add(link)
        await session.commit()
        return link.id


async def test_no_get_and_no_what_if_changes_a_row(
        make_tenant: Any, run_jobs: RunJobs, app: Litestar,
        http: AsyncTestClient[Litestar]) -> None:
    tenant = await make_tenant(scopes=list(SCOPES))  # platform:admin too (/v1/tenants)
    ids = await a_full_tenant(tenant, run_jobs, app)
    ids["link_id"] = await a_payment_link(app, tenant, ids)
    doc = (await http.get("/docs/openapi.json")).json()
    gets = calls(doc, ids)
    assert len(gets) > 40
    before = await gets_change_nothing(app, tenant, gets)
    rules = RULES | {"segments": RULES["segments"][1:]}
    for day in (None, PAST, FUTURE):
        query = {"as_of": day.isoformat()} if day else {}
        r = await tenant.api.post("/v1/segments/preview", json=rules, params=query)
        assert r.status_code == 200, r.text
        assert not changed(before, await snapshot(app)), ("PreviewSegments", day)
    r = await tenant.api.post(f"/v1/templates/{ids['template_id']}/preview",
                              json={"debtor_id": ids["debtor_id"]})
    assert r.status_code == 200, r.text
    assert not changed(before, await snapshot(app)), "PreviewTemplate"


async def test_a_new_tenants_first_reads_write_nothing(
        make_tenant: Any, app: Litestar, http: AsyncTestClient[Litestar]) -> None:
    """Before anything is written: no default created on first use (stages, say)."""
    tenant = await make_tenant(scopes=list(SCOPES))
    doc = (await http.get("/docs/openapi.json")).json()
    # (no debtor yet, so no self-service link to read /self-service with)
    lists = [c for c in calls(doc, {}, need_ids=False)
             if "{" not in c[1] and not c[1].startswith("/self-service")]
    assert len(lists) > 20
    await gets_change_nothing(app, tenant, lists)


async def test_a_future_explain_neither_restages_nor_poisons_the_next_run(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    """The story of the issue: ``segments:read`` moved a not-yet-due debtor to judicial with
    ``explain?as_of=2099-01-01``, and the summary it left behind was never seen as stale."""
    not_due = await debtor(tenant, "NOT-DUE", ("PEN", "2000.00", -10))
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    await run(tenant, run_jobs)
    stage_before = (await tenant.api.get(f"/v1/stages/debtors/{not_due}")).json()
    assert (stage_before["stage"], stage_before["days_past_due"]) == ("preventive", 0)
    seg = (await tenant.api.get(f"/v1/segments/explain/{not_due}")).json()
    assert seg["segment"] == seg["current_segment"] == "rest"

    future = await tenant.api.get(f"/v1/segments/explain/{not_due}",
                                  params={"as_of": FUTURE.isoformat()})
    assert future.status_code == 200, future.text
    assert future.json()["segment"] == "late"  # what it would be then
    assert future.json()["current_segment"] == "rest"  # ... and still is
    staged = (await tenant.api.get(f"/v1/stages/debtors/{not_due}",
                                   params={"as_of": FUTURE.isoformat()})).json()
    assert (staged["stage"], staged["manual"]) == ("judicial", False)
    now = (await tenant.api.get(f"/v1/stages/debtors/{not_due}")).json()
    assert (now["stage"], now["days_past_due"], now["set_at"]) == (
        "preventive", 0, stage_before["set_at"])
    balance = (await tenant.api.get(f"/v1/debtors/{not_due}/balance")).json()
    assert balance["balances"][0]["overdue_amount"] == "0.00"
    history = (await tenant.api.get("/v1/stages/history",
                                    params={"debtor_id": not_due})).json()["data"]
    assert [h["to_stage"] for h in history] == ["preventive"]

    await run(tenant, run_jobs)  # the next real run
    seg = (await tenant.api.get(f"/v1/segments/explain/{not_due}")).json()
    assert seg["segment"] == seg["current_segment"] == "rest"
    assert (await tenant.api.get(f"/v1/stages/debtors/{not_due}")).json()["stage"] == (
        "preventive")


async def test_a_summary_written_with_a_future_as_of_is_recomputed(
        tenant: TenantClient, run_jobs: RunJobs, app: Litestar) -> None:
    """A summary left behind as of a later day than the one asked (as the bug above did) is
    stale: the next run rebuilds it instead of reading its overdue amounts."""
    from cartera.payments.allocation import DebtorScope, refresh_balances

    not_due = await debtor(tenant, "POISONED", ("PEN", "2000.00", -10))
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant.tenant_id
        await refresh_balances(session, tenant.tenant_id,
                               DebtorScope.one(tenant.tenant_id, not_due), FUTURE)
        await session.commit()
    await run(tenant, run_jobs)
    seg = (await tenant.api.get(f"/v1/segments/explain/{not_due}")).json()
    assert seg["segment"] == seg["current_segment"] == "rest"
    assert (await tenant.api.get(f"/v1/stages/debtors/{not_due}")).json()["stage"] == (
        "preventive")
    async with app.state.ctx.sessionmaker() as session:
        as_of = (await session.execute(text(
            "SELECT as_of FROM debtor_balances WHERE debtor_id = :d"), {"d": not_due})).scalar()
    assert str(as_of)[:10] == today().isoformat()


async def test_a_run_as_of_a_day_not_begun_stores_no_summary(
        tenant: TenantClient, run_jobs: RunJobs, app: Litestar) -> None:
    """A run (``segments:write``) may place debtors as of a later day, but the summary it
    reads is computed, not stored: the next run as of today is not misled by it."""
    not_due = await debtor(tenant, "AHEAD", ("PEN", "2000.00", -10))
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    await run(tenant, run_jobs)

    async def summary_rows() -> list[Any]:
        async with app.state.ctx.sessionmaker() as session:
            return [tuple(r) for r in await session.execute(text(
                "SELECT overdue_minor, next_due_date, as_of FROM debtor_balances "
                "WHERE debtor_id = :d"), {"d": not_due})]

    stored = await summary_rows()
    r = await tenant.api.post("/v1/segments/runs", json={"as_of": FUTURE.isoformat()})
    assert r.status_code == 202, r.text
    await run_jobs()
    assert (await tenant.api.get(f"/v1/segments/runs/{r.json()['id']}")).json()[
        "status"] == "succeeded"
    assert await summary_rows() == stored
    assert (await tenant.api.get(f"/v1/segments/explain/{not_due}")).json()[
        "current_segment"] == "late"  # placed as of 2099, as asked
    await run(tenant, run_jobs)
    seg = (await tenant.api.get(f"/v1/segments/explain/{not_due}")).json()
    assert seg["segment"] == seg["current_segment"] == "rest"
