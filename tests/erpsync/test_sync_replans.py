"""An ERP sync run's end re-segments and replans the debtors it touched, in its
transaction (:func:`cartera.imports.pipeline.rebalance_touched`)."""

from __future__ import annotations

from datetime import timedelta

from cartera.clock import today_in
from tests.conftest import TenantClient
from tests.erpsync.fake_erp import FakeErpConnector, debtor, item
from tests.erpsync.test_sync import RunJobs, erp_integration, sync_now
from tests.imports.test_imports import debtor_by_ref
from tests.strategies.helpers import (
    actions,
    enrollments,
    message_step,
    segments,
    strategy,
    template,
)


async def test_an_erp_sync_run_replans_the_debtors_it_touched(
        tenant: TenantClient, run_jobs: RunJobs, fake: FakeErpConnector) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms)])
    iid = await erp_integration(tenant, page_size=5)
    ledger = fake.ledger(iid)
    ledger.put_debtor(debtor("C001"))
    late = today_in("America/Lima") - timedelta(days=20)
    ledger.put_item(item("INV-1", "C001", "100.00", due=late))
    run = await sync_now(tenant, iid, run_jobs)
    assert run["status"] == "succeeded", run
    found = await debtor_by_ref(tenant, "C001")
    assert found is not None
    assert [(e["debtor_id"], e["status"]) for e in await enrollments(tenant)] == [
        (found["id"], "completed")]  # enrolled, its one step planned
    assert [a["step_key"] for a in await actions(tenant, debtor_id=found["id"])] == ["one"]
