"""Simulation: N days of planning reported per day, and no row of the database changed."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from tests.conftest import TenantClient
from tests.reads.test_reads_write_nothing import changed, snapshot
from tests.strategies.helpers import late_debtor, message_step, segments, strategy, template


async def test_simulation_advances_day_by_day_and_writes_nothing(
        tenant: TenantClient, app: Litestar, run_jobs: Any) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await late_debtor(tenant, "A")
    await late_debtor(tenant, "B", phone=False)
    s = await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                                   message_step("two", sms, offset=2)])
    await run_jobs()
    before = await snapshot(app)
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/simulate", json={"days": 5})
    assert r.status_code == 200, r.text
    days = r.json()["days"]
    assert len(days) == 5
    assert days[0]["actions_per_channel"] == {"sms": 1}
    assert days[0]["statuses"] == {"planned": 1, "denied": 1}
    assert days[0]["reasons"] == {"denied:no_contact_point": 1}
    assert days[1]["statuses"] == {}
    assert days[2]["actions_per_channel"] == {"sms": 1}
    assert changed(before, await snapshot(app)) == {}
    r = await tenant.api.post(f"/v1/strategies/{s['id']}/simulate", json={"days": 91})
    assert r.status_code == 422 and r.json()["param"] == "days", r.text
