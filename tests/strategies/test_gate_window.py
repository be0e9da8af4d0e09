"""A contact the gate defers moves to the earliest lawful instant inside the step's window,
or is denied with the reasons when the window never becomes lawful."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from cartera_sdk.compliance import Allow, Defer, Reason

from cartera import clock
from cartera.messaging import gate
from cartera.strategies.planner import next_opening
from tests.conftest import TenantClient
from tests.segmentation.test_segments import debtor
from tests.strategies.helpers import actions, plan, segments, strategy, template

AR = ZoneInfo("America/Argentina/Buenos_Aires")


async def _ar_debtor(t: TenantClient) -> int:
    return await debtor(t, "AR-1", ("PEN", "100.00", 10), country="AR", contact_points=[
        {"kind": "phone", "value": "+5491155000001", "consent": "granted"}])


WINDOW = {"start_hour": 9, "end_hour": 19, "weekdays": [1, 2, 3, 4, 5, 6, 7]}


def _window_step(sms: int) -> dict[str, Any]:
    return {"key": "one", "kind": "message", "window": WINDOW,
            "channels": [{"channel": "sms", "template_id": sms}]}


async def test_a_deferral_lands_inside_the_window(tenant: TenantClient, run_jobs: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await _ar_debtor(tenant)
    # The pack asks to wait until 21:00 local of the day the window next opens (past its
    # end at 19:00): the earliest lawful instant inside the window is 09:00 the day after.
    day, _ = next_opening(clock.now(), str(AR), WINDOW)
    until = datetime.combine(day, time(21), AR)
    next_9 = datetime.combine(day + timedelta(days=1), time(9), AR)

    def fake(pack: Any, planned: Any, config: Any = None) -> Any:
        if planned.planned_at < until:
            return Defer(until=until, reasons=[Reason(code="quiet_hours", message="wait",
                                                      rule_ref="AR-1")])
        return Allow(reasons=[Reason(code="ok", message="ok")])

    monkeypatch.setattr(gate, "_judge_one", fake)
    await strategy(tenant, "s", [seg["late"]], [_window_step(sms)])
    await plan(tenant, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "deferred", a
    assert datetime.fromisoformat(a["planned_at"]) == next_9
    assert a["verdict"]["reasons"][0]["rule_ref"] == "AR-1"
    # The planner's decision is in the compliance report, deferred by the planned move.
    report = (await tenant.api.get("/v1/compliance/report", params={
        "period_end": (clock.now() + timedelta(days=1)).isoformat()})).json()
    assert {p["path"]: p["deferred"] for p in report["paths"]} == {"planner": 1}
    [rule] = [r for r in report["rules"] if r["code"] == "quiet_hours"]
    assert rule["deferred"] == 1 and rule["median_deferral_seconds"] > 0


async def test_a_window_that_never_becomes_lawful_is_denied(
        tenant: TenantClient, run_jobs: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await _ar_debtor(tenant)

    def fake(pack: Any, planned: Any, config: Any = None) -> Any:  # 22:00 local: outside
        night = datetime.combine(planned.planned_at.astimezone(AR).date(), time(22), AR)
        return Defer(until=night, reasons=[Reason(code="quiet_hours", message="wait")])

    # activation refuses such a window (test_lawful_windows); here the law changes after it
    await strategy(tenant, "s", [seg["late"]], [_window_step(sms)])
    monkeypatch.setattr(gate, "_judge_one", fake)
    await plan(tenant, run_jobs)
    [a] = await actions(tenant, debtor_id=d)
    assert a["status"] == "denied"
    assert a["verdict"]["reasons"][-1]["code"] == "no_lawful_instant_in_window"
