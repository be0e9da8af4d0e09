"""Segment and stage moves are events, written set-based by the pass that moved them."""

from __future__ import annotations

from tests.conftest import TenantClient
from tests.events.test_events_api import events
from tests.segmentation.test_segments import RULES, RunJobs, debtor, run


async def test_a_run_and_a_manual_stage_write_move_events(tenant: TenantClient,
                                                          run_jobs: RunJobs) -> None:
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    late = await debtor(tenant, "L", ("PEN", "100.00", 40))
    calm = await debtor(tenant, "C", ("PEN", "100.00", 5))
    await run(tenant, run_jobs)
    stages = await events(tenant, type="debtor.stage_changed")
    assert sorted((e["debtor_id"], e["data"]["previous_stage"], e["data"]["stage"],
                   e["data"]["manual"]) for e in stages) == sorted([
        (late, None, "extrajudicial", False), (calm, None, "administrative", False)])
    assert all(e["resource"] == {"type": "debtor", "id": str(e["debtor_id"])}
               for e in stages)
    segments = await events(tenant, type="debtor.segment_changed")
    assert {e["debtor_id"] for e in segments} == {late, calm}
    assert all(e["data"]["previous_segment_id"] is None and e["data"]["segment_id"]
               for e in segments)
    await run(tenant, run_jobs)  # nothing moved: no new event
    assert len(await events(tenant, type=["debtor.stage_changed",
                                          "debtor.segment_changed"])) == 4
    r = await tenant.api.post(f"/v1/stages/debtors/{calm}", json={
        "stage_code": "judicial", "reason": "refused three offers"})
    assert r.status_code == 200, r.text
    last = (await events(tenant, type="debtor.stage_changed", debtor_id=calm))[-1]
    assert (last["data"]["previous_stage"], last["data"]["stage"], last["data"]["manual"],
            last["data"]["reason"]) == ("administrative", "judicial", True,
                                        "refused three offers")


async def test_settled_promises_are_events(tenant: TenantClient) -> None:
    from tests.negotiation.test_promises import debtor as promise_debtor
    from tests.negotiation.test_promises import pay, promise, reverse

    d = await promise_debtor(tenant)
    p = (await promise(tenant, d, "50.00"))["id"]
    payment = await pay(tenant, d, "50.00")
    await reverse(tenant, payment)
    found = await events(tenant, type="promise.*")
    assert [(e["type"], e["resource"]["id"], e["debtor_id"]) for e in found] == [
        ("promise.created", str(p), d), ("promise.kept", str(p), d),
        ("promise.reopened", str(p), d)]
