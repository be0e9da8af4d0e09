from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TenantClient
from tests.segmentation.test_segments import RunJobs, debtor, run, segment_of, today

DEFAULTS = [("preventive", 0, 0), ("administrative", 1, 30), ("extrajudicial", 31, 180),
            ("judicial", 181, None)]


async def stage_of(tenant: TenantClient, debtor_id: int) -> dict[str, Any]:
    r = await tenant.api.get(f"/v1/stages/debtors/{debtor_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_default_stages_follow_days_past_due(tenant: TenantClient,
                                                   run_jobs: RunJobs) -> None:
    r = await tenant.api.get("/v1/stages")
    assert r.status_code == 200, r.text
    assert [(s["code"], s["min_dpd"], s["max_dpd"]) for s in r.json()["stages"]] == DEFAULTS
    ids = {
        "preventive": await debtor(tenant, "P", ("PEN", "100.00", -5)),
        "none": await debtor(tenant, "N"),
        "administrative": await debtor(tenant, "A", ("PEN", "100.00", 30)),
        "extrajudicial": await debtor(tenant, "E", ("PEN", "100.00", 31), ("USD", "5.00", 2)),
        "judicial": await debtor(tenant, "J", ("PEN", "100.00", 181)),
    }
    await run(tenant, run_jobs)
    for key, debtor_id in ids.items():
        body = await stage_of(tenant, debtor_id)
        assert body["stage"] == ("preventive" if key == "none" else key), (key, body)
        assert body["manual"] is False
    judicial = await stage_of(tenant, ids["judicial"])
    assert judicial["days_past_due"] == 181 and "181 days past due" in judicial["why"]
    counts = {s["code"]: s["debtors"] for s in (await tenant.api.get("/v1/stages")).json()[
        "stages"]}
    assert counts == {"preventive": 2, "administrative": 1, "extrajudicial": 1, "judicial": 1}
    assert (await tenant.api.get("/v1/stages/debtors/999999999")).status_code == 404


async def test_manual_stage_sticks_until_released(tenant: TenantClient,
                                                  run_jobs: RunJobs) -> None:
    d = await debtor(tenant, "M", ("PEN", "800.00", 10))
    await run(tenant, run_jobs)
    bad = await tenant.api.post(f"/v1/stages/debtors/{d}",
                                json={"stage_code": "nope", "reason": "x"})
    assert (bad.status_code, bad.json()["param"]) == (422, "stage_code")
    r = await tenant.api.post(f"/v1/stages/debtors/{d}", json={
        "stage_code": "judicial", "reason": "refused three payment offers"})
    assert r.status_code == 200, r.text
    assert (r.json()["stage"], r.json()["manual"], r.json()["dpd_stage"]) == (
        "judicial", True, "administrative")
    assert r.json()["set_by"].startswith("client:")
    await run(tenant, run_jobs)  # a run leaves a manual stage alone
    body = await stage_of(tenant, d)
    assert (body["stage"], body["manual"]) == ("judicial", True)
    assert "refused three payment offers" in body["why"]
    released = await tenant.api.delete(f"/v1/stages/debtors/{d}")
    assert released.status_code == 204, released.text
    body = await stage_of(tenant, d)
    assert (body["stage"], body["manual"]) == ("administrative", False)
    assert (await tenant.api.delete(f"/v1/stages/debtors/{d}")).status_code == 409
    moves = (await tenant.api.get("/v1/stages/history", params={"debtor_id": d})).json()["data"]
    assert [(m["from_stage"], m["to_stage"], m["manual"]) for m in moves] == [
        (None, "administrative", False), ("administrative", "judicial", True),
        ("judicial", "administrative", False)]
    assert moves[1]["reason"] == "refused three payment offers"
    assert moves[1]["actor"].startswith("client:")


async def test_replace_stages_validates_ranges(tenant: TenantClient, run_jobs: RunJobs) -> None:
    def body(*stages: tuple[str, int, int | None]) -> dict[str, Any]:
        return {"stages": [{"code": c, "name": c.title(), "min_dpd": lo, "max_dpd": hi}
                           for c, lo, hi in stages]}

    cases = [
        (body(("a", 1, 10), ("b", 11, None)), "stages[0].min_dpd", "range_gap"),
        (body(("a", 0, 10), ("b", 12, None)), "stages[1].min_dpd", "range_gap"),
        (body(("a", 0, 10), ("b", 10, None)), "stages[1].min_dpd", "range_overlap"),
        (body(("a", 0, None), ("b", 1, None)), "stages[0].max_dpd", "range_overlap"),
        (body(("a", 0, 10), ("b", 11, 20)), "stages[1].max_dpd", "range_not_covered"),
        (body(("a", 0, 10), ("b", 11, 5), ("c", 6, None)), "stages[1].max_dpd",
         "impossible_range"),
        (body(("a", 0, 10), ("a", 11, None)), "stages[1].code", "duplicate_code"),
    ]
    for bad, param, code in cases:
        r = await tenant.api.put("/v1/stages", json=bad)
        assert r.status_code == 422, (bad, r.text)
        assert (r.json()["param"], r.json()["code"]) == (param, code), r.json()
    d = await debtor(tenant, "S", ("PEN", "50.00", 45))
    pinned = await debtor(tenant, "T", ("PEN", "50.00", 1))
    await tenant.api.post(f"/v1/stages/debtors/{pinned}",
                          json={"stage_code": "judicial", "reason": "fraud"})
    custom = body(("preventive", 0, 0), ("administrative", 1, 90), ("late", 91, None))
    r = await tenant.api.put("/v1/stages", json=custom)
    assert (r.status_code, r.json()["code"]) == (422, "stage_in_use")
    await tenant.api.delete(f"/v1/stages/debtors/{pinned}")
    r = await tenant.api.put("/v1/stages", json=custom)
    assert r.status_code == 200, r.text
    assert [s["code"] for s in r.json()["stages"]] == ["preventive", "administrative", "late"]
    await run(tenant, run_jobs)
    assert (await stage_of(tenant, d))["stage"] == "administrative"  # stretched to 90 days


async def test_stage_is_a_segmentation_feature(tenant: TenantClient, run_jobs: RunJobs) -> None:
    legal = await debtor(tenant, "L", ("PEN", "100.00", 5))
    late = await debtor(tenant, "X", ("PEN", "100.00", 40))
    other = await debtor(tenant, "O", ("PEN", "100.00", 5))
    await tenant.api.post(f"/v1/stages/debtors/{legal}",
                          json={"stage_code": "judicial", "reason": "lawsuit filed"})
    rules = {"segments": [
        {"code": "legal", "name": "Legal", "rule": {
            "feature": "stage", "op": "eq", "value": "judicial"}},
        {"code": "extra", "name": "Extrajudicial", "rule": {
            "feature": "stage", "op": "in", "value": ["extrajudicial"]}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
    assert (await tenant.api.put("/v1/segments", json=rules)).status_code == 200
    summary = await run(tenant, run_jobs)
    assert summary["debtors_per_segment"] == {"legal": 1, "extra": 1, "rest": 1}
    assert await segment_of(tenant, legal) == "legal"
    assert await segment_of(tenant, late) == "extra"
    assert await segment_of(tenant, other) == "rest"
    explained = (await tenant.api.get(f"/v1/segments/explain/{legal}")).json()
    assert explained["evaluated"][0]["trace"]["actual"] == "judicial"


async def test_stage_rules_name_the_tenants_stages(tenant: TenantClient) -> None:
    def rules(value: Any) -> dict[str, Any]:
        return {"segments": [
            {"code": "legal", "name": "Legal", "rule": {"all": [
                {"feature": "days_past_due", "op": "gte", "value": 1},
                {"not": {"feature": "stage", "op": "in", "value": value}}]}},
            {"code": "rest", "name": "Rest", "rule": {"all": []}}]}

    for path in ("/v1/segments", "/v1/segments/preview"):
        send = tenant.api.put if path == "/v1/segments" else tenant.api.post
        r = await send(path, json=rules(["judicial", "juridico"]))
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["param"]) == (
            "unknown_stage", "segments[0].rule.all[1].not.value")
    assert (await tenant.api.put("/v1/segments", json=rules(["extrajudicial"]))).status_code == 200
    # ...and a stage the rules compare with cannot be removed from under them.
    r = await tenant.api.put("/v1/stages", json={"stages": [
        {"code": "preventive", "name": "Preventive", "min_dpd": 0, "max_dpd": 0},
        {"code": "late", "name": "Late", "min_dpd": 1, "max_dpd": None}]})
    assert (r.status_code, r.json()["code"]) == (422, "stage_in_use"), r.text
    assert "'legal'" in r.json()["detail"] and "rule.all[1].not" in r.json()["detail"]


def test_nice_figures() -> None:
    from cartera.segmentation.service import nice_figure

    cases = {"600": "500", "1100": "1000", "1600": "2000", "2300": "2500", "7400": "5000",
             "14": "10", "0": "0", "42000": "50000", "0.3": "0.25"}
    for raw, nice in cases.items():
        assert nice_figure(Decimal(raw)) == Decimal(nice), raw


async def test_brackets_split_debtors_into_representative_shares(tenant: TenantClient) -> None:
    for i in range(1, 21):  # overdue 100, 200, ... 2000 PEN
        await debtor(tenant, f"K{i}", ("PEN", f"{i * 100}.00", 10))
    await debtor(tenant, "K0", ("PEN", "999.00", -3))  # nothing overdue yet
    r = await tenant.api.get("/v1/segments/brackets",
                             params={"currency": "PEN", "brackets": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    # quartiles start at 600, 1100 and 1600: rounded to 500, 1000 and 2000
    assert body["boundaries"] == ["500.00", "1000.00", "2000.00"]
    assert [(b["low"], b["high"], b["debtors"], b["share"]) for b in body["brackets"]] == [
        ("0.00", "500.00", 4, 0.2), ("500.00", "1000.00", 5, 0.25),
        ("1000.00", "2000.00", 10, 0.5), ("2000.00", None, 1, 0.05)]
    assert (body["debtors"], body["without_amount"]) == (20, 1)
    out = await tenant.api.get("/v1/segments/brackets", params={
        "currency": "PEN", "brackets": 2, "feature": "outstanding_amount"})
    assert out.json()["boundaries"] == ["1000.00"]  # median 1000 (K0's 999 counts here)
    assert sum(b["debtors"] for b in out.json()["brackets"]) == 21
    merged = await tenant.api.get("/v1/segments/brackets",
                                  params={"currency": "PEN", "brackets": 10})
    assert len(merged.json()["boundaries"]) < 9  # rounding merged some
    for bad in ({"currency": "PEN", "brackets": 11}, {"currency": "PEN", "brackets": 1},
                {"currency": "PEN", "feature": "risk_score"}):
        assert (await tenant.api.get("/v1/segments/brackets", params=bad)).status_code in (
            400, 422), bad
    empty = await tenant.api.get("/v1/segments/brackets", params={"currency": "USD"})
    assert empty.json()["boundaries"] == [] and empty.json()["debtors"] == 0


async def test_a_run_segments_with_the_stage_it_gives_in_the_same_pass(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    d = await debtor(tenant, "V", ("PEN", "100.00", 40))
    rules = {"segments": [
        {"code": "extra", "name": "Extrajudicial", "rule": {
            "feature": "stage", "op": "eq", "value": "extrajudicial"}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
    assert (await tenant.api.put("/v1/segments", json=rules)).status_code == 200
    first = await run(tenant, run_jobs)
    assert (first["moves"], first["debtors_per_segment"]) == (1, {"extra": 1, "rest": 0})
    stretched = {"stages": [{"code": c, "name": c.title(), "min_dpd": lo, "max_dpd": hi}
                            for c, lo, hi in [("preventive", 0, 0), ("administrative", 1, 90),
                                              ("extrajudicial", 91, None)]]}
    assert (await tenant.api.put("/v1/stages", json=stretched)).status_code == 200
    second = await run(tenant, run_jobs)  # the stage changes and the segment follows at once
    assert (second["moves"], second["debtors_per_segment"]) == (1, {"extra": 0, "rest": 1})
    assert (await stage_of(tenant, d))["stage"] == "administrative"
    assert await segment_of(tenant, d) == "rest"
    stage_moves = (await tenant.api.get("/v1/stages/history",
                                        params={"debtor_id": d})).json()["data"]
    assert [(m["from_stage"], m["to_stage"]) for m in stage_moves] == [
        (None, "extrajudicial"), ("extrajudicial", "administrative")]
    assert (await run(tenant, run_jobs))["moves"] == 0


async def test_deleting_a_debtor_deletes_its_placement_and_history(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    # Placements and their history have no foreign keys (migration 0011): nothing cascades,
    # so deleting the debtor deletes them explicitly.
    await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]})
    gone, kept = await debtor(tenant, "GONE"), await debtor(tenant, "KEPT")
    await run(tenant, run_jobs)
    for path in ("/v1/stages/history", "/v1/segments/history"):
        for d in (gone, kept):
            r = await tenant.api.get(path, params={"debtor_id": d})
            assert len(r.json()["data"]) == 1, r.text
    assert (await tenant.api.delete(f"/v1/debtors/{gone}")).status_code == 204
    for path in ("/v1/stages/history", "/v1/segments/history"):
        assert (await tenant.api.get(path, params={"debtor_id": gone})).json()["data"] == []
        assert len((await tenant.api.get(path, params={"debtor_id": kept})).json()["data"]) == 1
    segments = (await tenant.api.get("/v1/segments")).json()["segments"]
    assert [s["debtors"] for s in segments] == [1]
    stages = (await tenant.api.get("/v1/stages")).json()["stages"]
    assert sum(s["debtors"] for s in stages) == 1


@pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL (SQLite has one writer)")
async def test_a_debtor_deletion_waits_for_the_running_segmentation(
        app: Any, tenant: TenantClient) -> None:
    # A run could otherwise place a debtor deleted under it (placements have no foreign
    # key): the run's exclusive advisory lock holds the deletion back until it commits.
    from cartera.db.engine import tenant_session
    from cartera.segmentation.apply import lock_tenant_placements
    from cartera.segmentation.service import delete_debtor_placement

    d = await debtor(tenant, "LOCKED")
    sessionmaker = app.state.ctx.sessionmaker

    async def delete() -> None:
        async with tenant_session(sessionmaker, tenant.tenant_id) as session:
            await delete_debtor_placement(session, tenant.tenant_id, d)

    async with tenant_session(sessionmaker, tenant.tenant_id) as run:
        await lock_tenant_placements(run, tenant.tenant_id, shared=False)
        deletion = asyncio.create_task(delete())
        await asyncio.sleep(0.5)
        assert not deletion.done()
    await asyncio.wait_for(deletion, 5)


async def test_a_new_tenant_has_the_default_stages(app: Any) -> None:
    """Created with the tenant, so no read has to create them (a GET never writes; see
    tests/reads/test_reads_write_nothing.py)."""
    from sqlalchemy import select

    from cartera.segmentation.models import Stage
    from cartera.tenants.service import create_tenant

    async with app.state.ctx.sessionmaker() as session:
        tenant = await create_tenant(session, slug=f"stages-{os.getpid()}-{id(session)}",
                                     name="stages", country="PE", currency="PEN")
        await session.commit()
        rows = (await session.execute(
            select(Stage.code, Stage.min_dpd, Stage.max_dpd).where(Stage.tenant_id == tenant.id)
            .order_by(Stage.position))).all()
    assert [tuple(r) for r in rows] == DEFAULTS


@pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL (SQLite has one writer)")
async def test_a_run_and_a_payment_placing_the_same_new_debtor_both_succeed(
        app: Any, tenant: TenantClient) -> None:
    # A debtor loaded by a bulk import has no placement until evaluated. A payment places
    # them (not committed yet) while a run that also found them unplaced inserts: the run
    # waits for the payment's transaction, then leaves its placement as it is.
    from sqlalchemy import delete, select

    from cartera.db.engine import tenant_session
    from cartera.segmentation.models import Placement
    from cartera.segmentation.service import evaluate, reevaluate_debtor

    await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]})
    d = await debtor(tenant, "UNPLACED")
    sessionmaker, t = app.state.ctx.sessionmaker, tenant.tenant_id
    async with tenant_session(sessionmaker, t) as session:
        await session.execute(delete(Placement).where(Placement.debtor_id == d))
    day = today()

    async def full_run() -> int:
        async with tenant_session(sessionmaker, t) as session:
            return await evaluate(session, t, day)

    async with tenant_session(sessionmaker, t) as payment:
        assert await reevaluate_debtor(payment, t, d, day) == 1
        run = asyncio.create_task(full_run())
        await asyncio.sleep(0.5)
        assert not run.done()  # waiting on the payment's placement of the debtor
    assert await asyncio.wait_for(run, 5) == 1  # it found the debtor unplaced
    async with tenant_session(sessionmaker, t) as session:
        placed = (await session.scalars(select(Placement).where(Placement.debtor_id == d)))
        assert [p.segment_id is not None for p in placed] == [True]
