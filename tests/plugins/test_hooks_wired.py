"""Every observer hook the SDK documents is emitted by the core: an observer implementing all
of them (built from the SDK's hookspecs) is registered, and one scenario through the API
makes each one fire. A hook added to the SDK and never published fails here."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from cartera_sdk import hookimpl, hookspecs
from cartera_sdk.events import DebtorStageChanged, SegmentChanged
from litestar import Litestar

from cartera.plugins.events import EVENT_TYPES
from tests.conftest import TenantClient
from tests.negotiation.test_promises import backdate, promise, settle_due
from tests.plugins.observing import registered
from tests.segmentation.test_segments import RULES, debtor, run, today

RunJobs = Callable[[], Awaitable[int]]
OBSERVER_HOOKS = {name for name in hookspecs.__all__ if name.startswith("on_")}
HOOK_OF = {event_type: hook for hook, event_type in EVENT_TYPES.items()}


class Everything:
    """Observes every observer hook of the SDK (methods added below, one per hookspec)."""

    def __init__(self) -> None:
        self.events: list[Any] = []


def _observe(hook: str) -> Any:
    def observe(self: Everything, event: Any) -> None:
        self.events.append(event)

    observe.__name__ = hook
    return hookimpl(observe)


for _hook in OBSERVER_HOOKS:
    setattr(Everything, _hook, _observe(_hook))


@pytest.fixture
async def everything(app: Litestar) -> AsyncIterator[Everything]:
    with registered(Everything(), "every-hook-observer") as watcher:
        yield watcher


def observed(t: TenantClient, watcher: Everything, since: int) -> list[Any]:
    return [e for e in watcher.events[since:] if e.tenant_id == str(t.tenant_id)]


def placements(events: list[Any]) -> list[tuple[str, str, Any, Any]]:
    """(hook, debtor, from, to) of the stage and segment events, in a stable order."""
    found = []
    for e in events:
        if isinstance(e, DebtorStageChanged):
            found.append(("stage", e.debtor_id, e.previous_stage, e.stage))
        elif isinstance(e, SegmentChanged):
            found.append(("segment", e.debtor_id, e.previous_segment_id, e.segment_id))
    return sorted(found, key=repr)


async def test_every_documented_observer_hook_is_emitted(
        tenant: TenantClient, app: Litestar, run_jobs: RunJobs,
        everything: Everything) -> None:
    assert set(EVENT_TYPES) == OBSERVER_HOOKS
    since = len(everything.events)
    late = await debtor(tenant, "H-LATE", ("PEN", "2000.00", 45))
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    await run(tenant, run_jobs)
    r = await tenant.api.post("/v1/payments", json={
        "debtor_id": late, "currency": "PEN", "amount": "10.00",
        "paid_on": today().isoformat()})
    assert r.status_code == 201, r.text
    r = await tenant.api.post("/v1/interactions", json={
        "debtor_id": late, "channel": "voice", "outcome": "no_answer"})
    assert r.status_code == 201, r.text
    p = await promise(tenant, late, "500.00", 1)
    await backdate(app, p["id"], 3)
    await settle_due(app)
    await run_jobs()
    seen = {HOOK_OF[type(e)] for e in observed(tenant, everything, since)}
    assert seen == OBSERVER_HOOKS


async def test_a_run_tells_each_moved_debtor_once_and_a_quiet_run_nobody(
        tenant: TenantClient, run_jobs: RunJobs, everything: Everything) -> None:
    since = len(everything.events)
    late = await debtor(tenant, "R-LATE", ("PEN", "1000.00", 45))
    fresh = await debtor(tenant, "R-NEW")
    await run(tenant, run_jobs)  # stages only: no rule set yet
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    await run(tenant, run_jobs)
    await run_jobs()
    segments = {s["code"]: str(s["id"]) for s in (await tenant.api.get("/v1/segments")).json()[
        "segments"]}
    events = observed(tenant, everything, since)
    assert placements(events) == sorted([
        ("stage", str(late), None, "extrajudicial"), ("stage", str(fresh), None, "preventive"),
        ("segment", str(late), None, segments["late"]),
        ("segment", str(fresh), None, segments["rest"])], key=repr)
    assert len({e.event_id for e in events}) == len(events)
    quiet = len(everything.events)
    await run(tenant, run_jobs)
    await run_jobs()
    assert placements(observed(tenant, everything, quiet)) == []


async def test_one_debtor_passes_and_manual_stages_are_told(
        tenant: TenantClient, run_jobs: RunJobs, everything: Everything) -> None:
    d = await debtor(tenant, "O-1")
    assert (await tenant.api.put("/v1/segments", json=RULES)).status_code == 200
    await run(tenant, run_jobs)
    segments = {s["code"]: str(s["id"]) for s in (await tenant.api.get("/v1/segments")).json()[
        "segments"]}
    since = len(everything.events)
    r = await tenant.api.patch(f"/v1/debtors/{d}", json={"tags": ["vip"]})  # one-debtor pass
    assert r.status_code == 200, r.text
    r = await tenant.api.post(f"/v1/stages/debtors/{d}", json={
        "stage_code": "judicial", "reason": "lawsuit filed"})
    assert r.status_code == 200, r.text
    assert (await tenant.api.delete(f"/v1/stages/debtors/{d}")).status_code == 204
    await run_jobs()
    assert placements(observed(tenant, everything, since)) == sorted([
        ("segment", str(d), segments["rest"], segments["pen_big"]),
        ("stage", str(d), "preventive", "judicial"),
        ("stage", str(d), "judicial", "preventive")], key=repr)
    assert Counter(type(e).__name__ for e in observed(tenant, everything, since)) == {
        "SegmentChanged": 1, "DebtorStageChanged": 2}
