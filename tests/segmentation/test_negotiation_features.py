"""The ``broken_promises`` and ``active_installment_plan`` features: validation, set-based
evaluation (runs and preview) agreeing with explain (Python), and the debtor re-segmented
at once when a promise or plan is made, cancelled or changes status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Litestar

from tests.conftest import TenantClient
from tests.negotiation.test_arrangements import plan
from tests.negotiation.test_promises import backdate, debtor, pay, promise, settle_due

RunJobs = Callable[[], Awaitable[int]]


def _broken(op: str = "gte", value: Any = 1, days: Any = None) -> dict[str, Any]:
    rule = {"feature": "broken_promises", "op": op, "value": value}
    return rule if days is None else {**rule, "days": days}


def _plan(value: Any = True, op: str = "eq") -> dict[str, Any]:
    return {"feature": "active_installment_plan", "op": op, "value": value}


RULES: dict[str, Any] = {"segments": [
    {"code": "serial", "name": "Broke two promises", "rule": _broken("gte", 2)},
    {"code": "recent", "name": "Broke one in 30 days", "rule": _broken("gte", 1, 30)},
    {"code": "on_plan", "name": "Paying a plan", "rule": _plan()},
    {"code": "ever", "name": "Broke one, long ago", "rule": _broken()},
    {"code": "rest", "name": "Everyone else", "rule": {"all": []}},
]}


async def explain(t: TenantClient, debtor_id: int) -> dict[str, Any]:
    r = await t.api.get(f"/v1/segments/explain/{debtor_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def segment_of(t: TenantClient, debtor_id: int) -> str | None:
    """The stored segment, checked against explain's Python evaluation."""
    body = await explain(t, debtor_id)
    assert body["segment"] == body["current_segment"], body
    current: str | None = body["current_segment"]
    return current


async def run(t: TenantClient, run_jobs: RunJobs) -> dict[str, Any]:
    r = await t.api.post("/v1/segments/runs", json={})
    assert r.status_code == 202, r.text
    await run_jobs()
    body: dict[str, Any] = (await t.api.get(f"/v1/segments/runs/{r.json()['id']}")).json()
    assert body["status"] == "succeeded", body
    return body


async def broken_promise(t: TenantClient, app: Litestar, debtor_id: int, days_ago: int,
                         amount: str = "10.00") -> int:
    """A promise that fell due ``days_ago`` days ago unpaid (pending until the job runs)."""
    p = await promise(t, debtor_id, amount, 0)
    await backdate(app, p["id"], days_ago)
    return int(p["id"])


async def test_parameters_are_validated_with_their_path(tenant: TenantClient) -> None:
    cases = [
        (_broken(days=0), "days", "invalid_days"),
        (_broken(days=3651), "days", "invalid_days"),
        (_broken(days="30"), "days", "invalid_days"),
        (_broken(days=True), "days", "invalid_days"),
        (_broken(value="1"), "value", "invalid_value"),
        (_broken(value=True), "value", "invalid_value"),
        (_broken(op="has_tag"), "op", "invalid_operator"),
        ({**_broken(), "currency": "PEN"}, "currency", "unexpected_currency"),
        ({**_broken(), "channel": "sms"}, "channel", "unexpected_channel"),
        ({**_plan(), "days": 30}, "days", "unexpected_days"),
        (_plan(op="gte"), "op", "invalid_operator"),
        (_plan(value="yes"), "value", "invalid_value"),
        ({"feature": "active_installment_plan", "op": "eq"}, "value", "invalid_value"),
    ]
    for bad, key, code in cases:
        body = {"segments": [
            {"code": "a", "name": "A", "rule": {"all": [_plan(), {"not": bad}]}},
            {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
        r = await tenant.api.put("/v1/segments", json=body)
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["param"] == f"segments[0].rule.all[1].not.{key}", (bad, r.json())
        assert r.json()["code"] == code, (bad, r.json())
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200


async def test_runs_preview_and_explain_agree(tenant: TenantClient, app: Litestar,
                                             run_jobs: RunJobs) -> None:
    ids = {key: await debtor(tenant, key) for key in (
        "serial", "recent", "edge_30", "on_plan", "ever", "edge_31", "cancelled", "due_today",
        "kept", "rest")}
    # serial: one broken by the job, one still pending although its date has passed
    await broken_promise(tenant, app, ids["serial"], 40)
    await settle_due(app)
    await broken_promise(tenant, app, ids["serial"], 2)
    await broken_promise(tenant, app, ids["recent"], 12)
    await broken_promise(tenant, app, ids["edge_30"], 30)  # in [as_of - 30, as_of)
    await broken_promise(tenant, app, ids["edge_31"], 31)
    await broken_promise(tenant, app, ids["ever"], 200)
    await plan(tenant, ids["on_plan"], (10, "100.00"))
    await promise(tenant, ids["on_plan"], "5.00", 3)  # pending, not due: not broken
    cancelled = await plan(tenant, ids["cancelled"], (10, "100.00"))
    await tenant.api.post(f"/v1/arrangements/{cancelled['id']}/cancel", json={})
    gone = await promise(tenant, ids["cancelled"], "5.00", 0)
    await tenant.api.post(f"/v1/promises/{gone['id']}/cancel", json={})
    await backdate(app, gone["id"], 5)  # cancelled: never broken, whatever its date
    await promise(tenant, ids["due_today"], "5.00", 0)
    kept = await broken_promise(tenant, app, ids["kept"], 3, "20.00")
    await pay(tenant, ids["kept"], "20.00", -3)  # on the promised date
    assert (await tenant.api.get(f"/v1/promises/{kept}")).json()["status"] == "kept"

    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    preview = (await tenant.api.post("/v1/segments/preview", json=RULES)).json()
    expected = {"serial": 1, "recent": 2, "on_plan": 1, "ever": 2, "rest": 4}
    assert {s["code"]: s["debtors"] for s in preview["segments"]} == expected
    summary = await run(tenant, run_jobs)
    assert summary["debtors_per_segment"] == expected
    segment = {**{k: k for k in ids}, "edge_30": "recent", "edge_31": "ever",
               "cancelled": "rest", "due_today": "rest", "kept": "rest"}
    for key, debtor_id in ids.items():
        assert await segment_of(tenant, debtor_id) == segment[key], key


async def test_explain_shows_the_counts_and_the_plan(tenant: TenantClient,
                                                    app: Litestar) -> None:
    d = await debtor(tenant)
    await broken_promise(tenant, app, d, 3)
    await broken_promise(tenant, app, d, 45)
    await plan(tenant, d, (5, "80.00"))
    await tenant.api.put("/v1/segments", json=RULES)
    body = await explain(tenant, d)
    assert body["segment"] == "serial"
    assert body["evaluated"][0]["trace"] == {
        "path": "segments[0].rule", "feature": "broken_promises", "op": "gte", "value": 2,
        "actual": 2, "matched": True}
    draft = {"segments": [
        {"code": "a", "name": "A", "rule": {"all": [_broken("eq", 1, 30), _plan(False)]}},
        {"code": "b", "name": "B", "rule": {"any": [_broken("gt", 5, 60), _plan(True, "ne"),
                                                    _broken("between", [1, 1], 7)]}},
        {"code": "rest", "name": "Rest", "rule": {"all": []}}]}
    assert (await tenant.api.put("/v1/segments", json=draft)).status_code == 200
    body = await explain(tenant, d)
    assert body["segment"] == "b"
    a = body["evaluated"][0]["trace"]["rules"]
    assert a == [
        {"path": "segments[0].rule.all[0]", "feature": "broken_promises", "op": "eq",
         "value": 1, "days": 30, "actual": 1, "matched": True},
        {"path": "segments[0].rule.all[1]", "feature": "active_installment_plan", "op": "eq",
         "value": False, "actual": True, "matched": False}]
    b = body["evaluated"][1]["trace"]["rules"]
    assert [(t["days"], t["actual"], t["matched"]) for t in (b[0], b[2])] == [
        (60, 2, False), (7, 1, True)]
    assert (b[1]["actual"], b[1]["matched"]) == (True, False)


async def test_the_debtor_is_resegmented_at_once(tenant: TenantClient, app: Litestar,
                                                 run_jobs: RunJobs) -> None:
    d = await debtor(tenant)
    await tenant.api.put("/v1/segments", json=RULES)
    await run(tenant, run_jobs)
    assert await segment_of(tenant, d) == "rest"
    p = await plan(tenant, d, (3, "30.00"), (33, "30.00"))
    assert await segment_of(tenant, d) == "on_plan"  # creating a plan re-segments
    r = await tenant.api.post(f"/v1/arrangements/{p['id']}/cancel", json={})
    assert r.status_code == 200
    assert await segment_of(tenant, d) == "rest"  # so does cancelling it
    again = await plan(tenant, d, (0, "30.00"))
    assert await segment_of(tenant, d) == "on_plan"
    await pay(tenant, d, "30.00")  # completes the plan: re-segmented with the payment
    assert (await tenant.api.get(f"/v1/arrangements/{again['id']}")).json()["status"] == (
        "completed")
    assert await segment_of(tenant, d) == "rest"
    late = await broken_promise(tenant, app, d, 2, "100.00")
    body = await explain(tenant, d)  # due and unpaid: the rules count it at once...
    assert (body["segment"], body["current_segment"]) == ("recent", "rest")
    await settle_due(app)  # ...and the job, breaking it, re-segments the debtor
    assert (await tenant.api.get(f"/v1/promises/{late}")).json()["status"] == "broken"
    assert await segment_of(tenant, d) == "recent"
    await pay(tenant, d, "100.00", -2)  # paid in time after all: kept, re-segmented
    assert (await tenant.api.get(f"/v1/promises/{late}")).json()["status"] == "kept"
    assert await segment_of(tenant, d) == "rest"
    pending = await promise(tenant, d, "500.00", 1)
    assert await segment_of(tenant, d) == "rest"
    r = await tenant.api.post(f"/v1/promises/{pending['id']}/cancel", json={})
    assert r.status_code == 200
    assert await segment_of(tenant, d) == "rest"


async def test_kept_and_partly_kept_promises_reach_the_rules(
        tenant: TenantClient, app: Litestar, run_jobs: RunJobs) -> None:
    """A promise paid in part by its date is partly kept (not broken); one paid in full is
    kept; both are features a segment (and so a strategy's entry or stop rule) reads, in SQL
    and in explain alike."""
    await tenant.api.put("/v1/segments", json={"segments": [
        {"code": "kept", "name": "Kept one", "rule": {
            "feature": "kept_promises", "op": "gte", "value": 1, "days": 30}},
        {"code": "partly", "name": "Paid part", "rule": {
            "feature": "partly_kept_promises", "op": "gte", "value": 1}},
        {"code": "broke", "name": "Broke one", "rule": _broken()},
        {"code": "rest", "name": "Everyone else", "rule": {"all": []}},
    ]})
    d = await debtor(tenant)
    late = await broken_promise(tenant, app, d, 2, "100.00")
    await pay(tenant, d, "40.00", -2)  # some of it, in its window
    await settle_due(app)
    got = (await tenant.api.get(f"/v1/promises/{late}")).json()
    assert (got["status"], got["paid_amount"]) == ("partly_kept", "40.00")
    assert got["broken_at"] is not None
    assert await segment_of(tenant, d) == "partly"
    await pay(tenant, d, "60.00", -2)  # the rest, dated in time (recorded late): kept
    assert (await tenant.api.get(f"/v1/promises/{late}")).json()["status"] == "kept"
    assert await segment_of(tenant, d) == "kept"
    await run(tenant, run_jobs)  # the set-based run agrees
    assert await segment_of(tenant, d) == "kept"
    events = (await tenant.api.get("/v1/events", params={"type": "promise.partly_kept"})
              ).json()["data"]
    assert [e["resource"]["id"] for e in events] == [str(late)]
