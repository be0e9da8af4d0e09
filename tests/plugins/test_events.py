"""Observer hooks get domain events after the change commits, through the job system."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import cartera_fixture_plugin
from cartera_sdk.events import PaymentReceived

from tests.conftest import TenantClient
from tests.payments.test_allocation import days_ago, debtor, obligation


async def test_payment_received_reaches_observers(tenant: TenantClient,
                                                  run_jobs: Callable[[], Awaitable[int]]
                                                  ) -> None:
    d = await debtor(tenant)
    await obligation(tenant, d, "F-1", "80.00", days_ago(10))
    paid = await tenant.api.post("/v1/payments", json={
        "debtor_id": d, "currency": "PEN", "amount": "80.00", "paid_on": days_ago(0),
        "reference": "OP-1"})
    assert paid.status_code == 201
    await run_jobs()
    mine = [e for e in cartera_fixture_plugin.OBSERVED
            if isinstance(e, PaymentReceived) and e.payment_id == str(paid.json()["id"])
            and e.tenant_id == str(tenant.tenant_id)]
    assert len(mine) == 1
    assert (str(mine[0].amount.amount), mine[0].amount.currency) == ("80.00", "PEN")
    assert mine[0].reference == "OP-1"


async def test_a_failed_request_publishes_nothing(tenant: TenantClient,
                                                  run_jobs: Callable[[], Awaitable[int]]
                                                  ) -> None:
    before = len(cartera_fixture_plugin.OBSERVED)
    r = await tenant.api.post("/v1/payments", json={
        "debtor_id": 999999, "currency": "PEN", "amount": "1.00", "paid_on": days_ago(0)})
    assert r.status_code == 422
    await run_jobs()
    assert len(cartera_fixture_plugin.OBSERVED) == before


async def test_recorded_interactions_reach_observers(tenant: TenantClient,
                                                     run_jobs: Callable[[], Awaitable[int]]
                                                     ) -> None:
    from cartera_sdk.events import InteractionRecorded

    d = await debtor(tenant)
    r = await tenant.api.post("/v1/interactions", json={
        "debtor_id": d, "channel": "voice", "outcome": "no_answer", "note": "buzón"})
    assert r.status_code == 201, r.text
    await run_jobs()
    mine = [e for e in cartera_fixture_plugin.OBSERVED if isinstance(e, InteractionRecorded)
            and e.interaction_id == str(r.json()["id"])]
    assert [(e.channel, e.direction, e.outcome) for e in mine] == [
        ("voice", "outbound", "no_answer")]
