"""``GET /v1/debtors/{id}/next-action`` shows the contact policy's minimum gap and weekly
cap: which rule holds the next contact, the last contact, the week's count and the earliest
instant allowed."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.conftest import TenantClient
from tests.strategies.helpers import late_debtor, message_step, plan, segments, strategy, template
from tests.strategies.test_policy import _contact_made, _settings


async def _next_in_two_days(tenant: TenantClient, run_jobs: Any) -> int:
    """A debtor 10 days late, enrolled, whose first contact is due in two days."""
    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "H", days_late=10)
    await strategy(tenant, "s", [seg["late"]], [
        message_step("later", sms, anchor="oldest_unpaid_due_date", offset=12)])
    result = await plan(tenant, run_jobs)
    assert (result["enrolled"], result["planned"]) == (1, 0), result
    return d


async def _next(tenant: TenantClient, debtor_id: int) -> dict[str, Any]:
    r = await tenant.api.get(f"/v1/debtors/{debtor_id}/next-action")
    assert r.status_code == 200, r.text
    (found,) = r.json()["actions"]
    assert found["verdict"]["decision"] == "allow", found
    return dict(found)


async def test_the_minimum_gap_is_explained(tenant: TenantClient, run_jobs: Any) -> None:
    d = await _next_in_two_days(tenant, run_jobs)
    assert (await _next(tenant, d))["held_by_policy"] is None  # no policy set
    await _settings(tenant, min_gap_hours=72)
    made = await _contact_made(tenant, d)
    found = await _next(tenant, d)
    held = found["held_by_policy"]
    assert held is not None, found
    assert (held["rule"], held["rules"]) == ("min_contact_gap", ["min_contact_gap"])
    assert (held["min_gap_hours"], held["weekly_cap"]) == (72, None)
    assert datetime.fromisoformat(held["last_contact_at"]) == made
    assert held["contacts_this_week"] == 1
    assert datetime.fromisoformat(held["earliest_at"]) == made + timedelta(hours=72)
    assert datetime.fromisoformat(found["planned_at"]) < made + timedelta(hours=72)


async def test_the_weekly_cap_is_explained(tenant: TenantClient, run_jobs: Any) -> None:
    d = await _next_in_two_days(tenant, run_jobs)
    await _settings(tenant, weekly_cap=2)
    first = await _contact_made(tenant, d)
    assert (await _next(tenant, d))["held_by_policy"] is None  # one contact: under the cap
    last = await _contact_made(tenant, d)
    held = (await _next(tenant, d))["held_by_policy"]
    assert held is not None
    assert (held["rule"], held["weekly_cap"], held["contacts_this_week"]) == (
        "weekly_contact_cap", 2, 2)
    assert datetime.fromisoformat(held["last_contact_at"]) == last
    assert datetime.fromisoformat(held["earliest_at"]) == first + timedelta(days=7)
