from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import text

from cartera.clock import today_in
from cartera.segmentation import apply
from tests.conftest import TenantClient

RunJobs = Callable[[], Awaitable[int]]

RULES: dict[str, Any] = {"segments": [
    {"code": "late", "name": "Late",
     "rule": {"all": [{"feature": "days_past_due", "op": "gte", "value": 31}]}},
    {"code": "usd_big", "name": "Big USD",
     "rule": {"feature": "overdue_amount", "op": "gte", "value": "1500.00", "currency": "USD"}},
    {"code": "pen_big", "name": "Big PEN",
     "rule": {"any": [
         {"feature": "overdue_amount", "op": "gte", "value": "1500.00", "currency": "PEN"},
         {"feature": "tags", "op": "has_tag", "value": "vip"}]}},
    {"code": "rest", "name": "Everyone else", "rule": {"all": []}},
]}


def today() -> date:
    return today_in("America/Lima")


async def debtor(tenant: TenantClient, ref: str, *debts: tuple[str, str, int],
                 **extra: Any) -> int:
    r = await tenant.api.post("/v1/debtors", json={
        "external_ref": ref, "name": ref, "country": "PE", **extra})
    assert r.status_code == 201, r.text
    debtor_id: int = r.json()["id"]
    for i, (currency, amount, days_late) in enumerate(debts):
        o = await tenant.api.post("/v1/obligations", json={
            "external_ref": f"{ref}-{i}", "debtor_id": debtor_id, "kind": "invoice",
            "currency": currency, "original_amount": amount,
            "due_date": (today() - timedelta(days=days_late)).isoformat()})
        assert o.status_code == 201, o.text
    return debtor_id


async def run(tenant: TenantClient, run_jobs: RunJobs) -> dict[str, Any]:
    r = await tenant.api.post("/v1/segments/runs", json={})
    assert r.status_code == 202, r.text
    assert r.json()["job_id"]
    await run_jobs()
    got = await tenant.api.get(f"/v1/segments/runs/{r.json()['id']}")
    assert got.json()["status"] == "succeeded", got.json()
    body: dict[str, Any] = got.json()
    job = (await tenant.api.get(f"/v1/jobs/{body['job_id']}")).json()
    assert (job["status"], job["progress_done"], job["progress_total"]) == (
        "succeeded", body["debtors"], body["debtors"])
    return body


async def portfolio(tenant: TenantClient) -> dict[str, int]:
    return {
        "late": await debtor(tenant, "A", ("PEN", "1000.00", 45)),
        "usd_big": await debtor(tenant, "B", ("USD", "2000.00", 10), ("PEN", "100.00", 3)),
        "pen_big": await debtor(tenant, "C", ("PEN", "2000.00", 5)),
        "vip": await debtor(tenant, "D", tags=["vip"]),
        "rest": await debtor(tenant, "E", ("PEN", "1400.00", 10), ("USD", "900.00", 10)),
    }


async def segment_of(tenant: TenantClient, debtor_id: int) -> str | None:
    r = await tenant.api.get(f"/v1/segments/explain/{debtor_id}")
    assert r.status_code == 200, r.text
    current: str | None = r.json()["current_segment"]
    assert r.json()["segment"] == current  # Python explain agrees with the SQL evaluation
    return current


async def test_rule_validation_names_the_rule_path(tenant: TenantClient) -> None:
    cases = [
        ({"feature": "nope", "op": "eq", "value": 1}, "segments[0].rule.all[1].feature",
         "unknown_feature"),
        ({"feature": "days_past_due", "op": "gte", "value": "31"},
         "segments[0].rule.all[1].value", "invalid_value"),
        ({"feature": "days_past_due", "op": "between", "value": [90, 30]},
         "segments[0].rule.all[1].value", "impossible_range"),
        ({"feature": "overdue_amount", "op": "gte", "value": "10.00"},
         "segments[0].rule.all[1].currency", "missing_currency"),
        ({"feature": "overdue_amount", "op": "gte", "value": "10.001", "currency": "PEN"},
         "segments[0].rule.all[1].value", None),
        ({"feature": "zone", "op": "gt", "value": "Lima"}, "segments[0].rule.all[1].op",
         "invalid_operator"),
    ]
    for bad, param, code in cases:
        body = {"segments": [
            {"code": "a", "name": "A", "rule": {"all": [
                {"feature": "zone", "op": "eq", "value": "Lima"}, bad]}},
            {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
        r = await tenant.api.put("/v1/segments", json=body)
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["param"] == param, (bad, r.json())
        if code:
            assert r.json()["code"] == code
    no_catch_all = {"segments": [{"code": "a", "name": "A", "rule": {
        "feature": "zone", "op": "eq", "value": "Lima"}}]}
    r = await tenant.api.put("/v1/segments", json=no_catch_all)
    assert (r.status_code, r.json()["param"]) == (422, "segments[0].rule")
    third = {"segments": [*RULES["segments"][:2], {"code": "x", "name": "X", "rule": {
        "all": [{"feature": "risk_score", "op": "gte", "value": 1},
                {"feature": "risk_score", "op": "between", "value": [5, 1]}]}},
        RULES["segments"][3]]}
    r = await tenant.api.put("/v1/segments", json=third)
    assert r.json()["param"] == "segments[2].rule.all[1].value"
    assert (await tenant.api.get("/v1/segments")).json()["segments"] == []


@pytest.fixture(params=["whole", "ranges"])
def split(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the pass (or preview) whole, then (on PostgreSQL) as a UNION ALL over debtor id
    ranges, as for a large tenant (:func:`cartera.segmentation.apply.parallel_ranges`)."""
    if request.param == "ranges":
        monkeypatch.setattr(apply, "PARALLEL_FROM", 0)
    return str(request.param)


@pytest.mark.usefixtures("split")
async def test_first_match_and_currency_specific_amounts(tenant: TenantClient,
                                                         run_jobs: RunJobs) -> None:
    ids = await portfolio(tenant)
    saved = await tenant.api.put("/v1/segments", json=RULES)
    assert saved.status_code == 200, saved.text
    assert [s["code"] for s in saved.json()["segments"]] == ["late", "usd_big", "pen_big", "rest"]
    summary = await run(tenant, run_jobs)
    assert summary["debtors"] == 5 and summary["moves"] == 5
    assert summary["debtors_per_segment"] == {"late": 1, "usd_big": 1, "pen_big": 2, "rest": 1}
    assert summary["duration_ms"] is not None
    expected = {"late": "late", "usd_big": "usd_big", "pen_big": "pen_big", "vip": "pen_big",
                "rest": "rest"}
    for key, debtor_id in ids.items():
        assert await segment_of(tenant, debtor_id) == expected[key], key
    listed = (await tenant.api.get("/v1/segments")).json()["segments"]
    assert {s["code"]: s["debtors"] for s in listed}["pen_big"] == 2


@pytest.mark.usefixtures("split")
async def test_moves_are_recorded_in_history(tenant: TenantClient, run_jobs: RunJobs) -> None:
    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    await run(tenant, run_jobs)
    again = await run(tenant, run_jobs)
    assert again["moves"] == 0
    paid = await tenant.api.post("/v1/payments", json={
        "debtor_id": ids["late"], "currency": "PEN", "amount": "1000.00",
        "paid_on": today().isoformat()})
    assert paid.status_code == 201, paid.text
    # The payment re-segments its debtor at once, in its own transaction: no run needed.
    assert await segment_of(tenant, ids["late"]) == "rest"
    moves = (await tenant.api.get("/v1/segments/history",
                                  params={"debtor_id": ids["late"]})).json()["data"]
    assert [(m["from_segment"], m["to_segment"]) for m in moves] == [
        (None, "late"), ("late", "rest")]
    assert moves[1]["run_id"] is None
    assert (moves[0]["left_at"], moves[1]["left_at"]) == (moves[1]["at"], None)
    third = await run(tenant, run_jobs)
    assert third["moves"] == 0


async def test_explain_traces_why_earlier_segments_failed(tenant: TenantClient,
                                                          run_jobs: RunJobs) -> None:
    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    r = await tenant.api.get(f"/v1/segments/explain/{ids['vip']}")
    body = r.json()
    assert body["segment"] == "pen_big" and body["current_segment"] is None
    assert [(e["code"], e["matched"]) for e in body["evaluated"]] == [
        ("late", False), ("usd_big", False), ("pen_big", True)]
    late = body["evaluated"][0]["trace"]
    assert late["rules"][0] == {"path": "segments[0].rule.all[0]", "feature": "days_past_due",
                                "op": "gte", "value": 31, "actual": 0, "matched": False}
    pen = body["evaluated"][2]["trace"]["rules"]
    assert pen[0]["actual"] == "0.00" and pen[0]["currency"] == "PEN"
    assert pen[1]["matched"] is True and pen[1]["actual"] == ["vip"]
    other = await tenant.api.get("/v1/segments/explain/999999999")
    assert other.status_code == 404


@pytest.mark.usefixtures("split")
async def test_preview_counts_amounts_and_moves_without_saving(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    await run(tenant, run_jobs)
    draft = {"segments": [
        {"code": "early", "name": "Early", "rule": {
            "feature": "days_past_due", "op": "between", "value": [1, 30]}},
        {"code": "other", "name": "Other", "rule": {"all": []}}]}
    r = await tenant.api.post("/v1/segments/preview", json=draft)
    assert r.status_code == 200, r.text
    body = r.json()
    segs = {s["code"]: s for s in body["segments"]}
    assert segs["early"]["debtors"] == 3 and segs["other"]["debtors"] == 2
    early = {b["currency"]: b for b in segs["early"]["balances"]}
    assert early["PEN"]["outstanding_amount"] == "3500.00" and early["PEN"]["debtors"] == 3
    assert early["USD"]["overdue_amount"] == "2900.00"
    moves = {(m["from_segment"], m["to_segment"]): m["debtors"] for m in body["moves"]}
    assert moves == {("late", "other"): 1, ("usd_big", "early"): 1, ("pen_big", "early"): 1,
                     ("pen_big", "other"): 1, ("rest", "early"): 1}
    assert [s["code"] for s in (await tenant.api.get("/v1/segments")).json()["segments"]] == [
        "late", "usd_big", "pen_big", "rest"]
    assert await segment_of(tenant, ids["late"]) == "late"


async def test_features_zone_attributes_products(tenant: TenantClient,
                                                 run_jobs: RunJobs) -> None:
    a = await debtor(tenant, "Z1", ("PEN", "10.00", 2), zone="Lima",
                     attributes={"segment_hint": "corp", "score": 7})
    b = await debtor(tenant, "Z2", zone="Callao", attributes={"score": "7"})
    rules = {"segments": [
        {"code": "corp", "name": "Corp", "rule": {"all": [
            {"feature": "attributes.segment_hint", "op": "eq", "value": "corp"},
            {"feature": "attributes.score", "op": "gte", "value": 5},
            {"feature": "zone", "op": "in", "value": ["Lima", "Arequipa"]},
            {"feature": "open_obligations", "op": "eq", "value": 1},
            {"not": {"feature": "risk_score", "op": "gt", "value": 500}},
            {"feature": "aging_bucket", "op": "eq", "value": "1_30"},
            {"feature": "days_since_last_payment", "op": "ne", "value": 3}]}},
        {"code": "str_score", "name": "Score as text", "rule": {
            "feature": "attributes.score", "op": "eq", "value": "7"}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
    assert (await tenant.api.put("/v1/segments", json=rules)).status_code == 200
    await run(tenant, run_jobs)
    assert await segment_of(tenant, a) == "corp"
    assert await segment_of(tenant, b) == "str_score"


async def test_reevaluate_one_debtor_uses_the_same_rules(
    tenant: TenantClient, app: Any, run_jobs: RunJobs,
) -> None:
    from cartera.db.engine import tenant_session
    from cartera.segmentation.service import reevaluate_debtor

    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await reevaluate_debtor(session, tenant.tenant_id, ids["usd_big"], today()) == 1
        assert await reevaluate_debtor(session, tenant.tenant_id, ids["usd_big"], today()) == 0
    assert await segment_of(tenant, ids["usd_big"]) == "usd_big"
    late = (await tenant.api.get(f"/v1/segments/explain/{ids['late']}")).json()
    assert (late["segment"], late["current_segment"]) == ("late", None)  # not touched
    summary = await run(tenant, run_jobs)
    assert summary["moves"] == 4


async def test_one_debtors_pass_follows_a_changed_rule_set_at_once(
    tenant: TenantClient, app: Any,
) -> None:
    """The one-debtor pass is built once and kept (``apply.one_debtor_pass``); a new rule
    set, even one with the same segment ids and positions, is a new pass."""
    from cartera.db.engine import tenant_session
    from cartera.segmentation.service import reevaluate_debtor

    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await reevaluate_debtor(session, tenant.tenant_id, ids["usd_big"], today()) == 1
        await session.commit()
    assert await segment_of(tenant, ids["usd_big"]) == "usd_big"
    changed = {"segments": [dict(s) for s in RULES["segments"]]}
    changed["segments"][1] = {**changed["segments"][1], "rule": {
        "feature": "overdue_amount", "op": "gte", "value": "999999.00", "currency": "USD"}}
    assert (await tenant.api.put("/v1/segments", json=changed)).status_code == 200
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await reevaluate_debtor(session, tenant.tenant_id, ids["usd_big"], today()) == 1
        await session.commit()
    assert await segment_of(tenant, ids["usd_big"]) != "usd_big"


async def test_daily_run_is_queued_once_per_local_day(tenant: TenantClient, app: Any,
                                                      run_jobs: RunJobs) -> None:
    from cartera.segmentation.schedule import queue_daily_runs

    await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    ctx = app.state.ctx

    async def daily_runs() -> list[dict[str, Any]]:
        runs = (await tenant.api.get("/v1/segments/runs")).json()["data"]
        return [r for r in runs if r["as_of"] == today().isoformat()]

    with time_machine.travel(datetime.combine(today(), time(1, 30),
                                              ZoneInfo("America/Lima")), tick=True):
        await queue_daily_runs(ctx.sessionmaker, ctx.jobs)
    assert await daily_runs() == []  # before 02:00 local: not yet
    with time_machine.travel(datetime.combine(today(), time(2, 5),
                                              ZoneInfo("America/Lima")), tick=True):
        await queue_daily_runs(ctx.sessionmaker, ctx.jobs)
        await queue_daily_runs(ctx.sessionmaker, ctx.jobs)
    await run_jobs()
    runs = await daily_runs()
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"


async def test_a_large_tenant_pass_is_split_into_contiguous_debtor_ranges(
        app: Any, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from cartera.db.engine import tenant_session

    ids = [await debtor(tenant, f"R{i}") for i in range(5)]
    monkeypatch.setattr(apply, "PARALLEL_FROM", 0)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        ranges = await apply.parallel_ranges(session, tenant.tenant_id) if (
            session.get_bind().dialect.name == "postgresql") else None
        workers = 2 if ranges is None else int(await session.scalar(
            text("SELECT current_setting('max_parallel_workers_per_gather')")))
    if ranges is None:
        pytest.skip("PostgreSQL only: SQLite runs one pass")
    assert len(ranges) == min(workers + 1, max(ids) + 1 - min(ids))
    bounds = [r for r in ranges if isinstance(r, tuple)]
    assert bounds[0][0] == min(ids) and bounds[-1][1] == max(ids) + 1
    assert all(a[1] == b[0] for a, b in pairwise(bounds))


async def test_debtors_are_listed_by_segment_and_stage_and_show_both(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    ids = await portfolio(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    await run(tenant, run_jobs)

    async def listed(**params: str) -> list[int]:
        r = await tenant.api.get("/v1/debtors", params=params)
        assert r.status_code == 200, r.text
        return [d["id"] for d in r.json()["data"]]

    assert await listed(segment="pen_big") == sorted([ids["pen_big"], ids["vip"]])
    assert await listed(segment="late", stage="extrajudicial") == [ids["late"]]
    assert await listed(segment="late", stage="preventive") == []
    assert await listed(stage="administrative") == sorted(
        [ids["usd_big"], ids["pen_big"], ids["rest"]])
    one = (await tenant.api.get(f"/v1/debtors/{ids['late']}")).json()
    assert (one["segment"], one["stage"]) == ("late", "extrajudicial")
    for param in ("segment", "stage"):
        bad = await tenant.api.get("/v1/debtors", params={param: "nope"})
        assert bad.status_code == 422, bad.text
        assert (bad.json()["code"], bad.json()["param"]) == (f"unknown_{param}", param)
