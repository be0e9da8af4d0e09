"""Disputes (a chargeback or mediation the payer opens): the payment stays applied and is
marked disputed with an exception for a person; lost (charged back) it is reversed once;
won (approved again) the mark is cleared. A payment first seen in mediation is recorded."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from sqlalchemy import select

from cartera.audit.models import AuditEntry
from tests.conftest import TenantClient
from tests.payments.mp import mercadopago, notify
from tests.payments.test_reconciliation import (
    RunJobs,
    balance,
    exceptions,
    payments_of,
    setup,
)

__all__ = ["mercadopago"]


async def _audits(app: Litestar, tenant_id: int) -> list[str]:
    async with app.state.ctx.sessionmaker() as session:
        return list((await session.scalars(select(AuditEntry.action).where(
            AuditEntry.tenant_id == tenant_id, AuditEntry.resource_type == "payment")
            .order_by(AuditEntry.id))).all())


async def test_a_disputed_payment_stays_applied_until_lost_and_is_reversed_once(
        tenant: TenantClient, app: Litestar, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id, _, link = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9500", "100.00", external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9500", notification_id=50)
    await run_jobs()
    mercadopago.payments["9500"].update(status="in_mediation", status_detail="in_process")
    await notify(http, integ, "9500", notification_id=51)
    await notify(http, integ, "9500", notification_id=51)  # redelivered
    await run_jobs()
    [disputed] = await payments_of(tenant, debtor_id)
    assert (disputed["status"], disputed["amount"]) == ("applied", "100.00")
    assert disputed["disputed_at"] is not None
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "0.00"
    [exc] = [e for e in await exceptions(tenant) if e["kind"] == "disputed"]
    assert (exc["kind"], exc["payment_id"]) == ("disputed", disputed["id"])
    # lost: charged back, the payment is reversed (once, whatever is redelivered)
    mercadopago.payments["9500"].update(status="charged_back", status_detail="reimbursed")
    await notify(http, integ, "9500", notification_id=52)
    await notify(http, integ, "9500", notification_id=51)
    await run_jobs()
    [lost] = await payments_of(tenant, debtor_id)
    assert (lost["id"], lost["status"], lost["allocations"]) == (disputed["id"], "reversed", [])
    assert lost["disputed_at"] == disputed["disputed_at"]
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "100.00"
    assert await _audits(app, tenant.tenant_id) == [
        "payment.received", "payment.disputed", "payment.reversed"]


async def test_a_won_dispute_clears_the_mark_and_a_payment_first_seen_disputed_is_applied(
        tenant: TenantClient, app: Litestar, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id, _, link = await setup(tenant, mercadopago, "100.00")
    # the approval's notification was lost: the first view is the mediation
    mercadopago.add_payment("9600", "100.00", status="in_mediation",
                            status_detail="in_process", external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9600", notification_id=60)
    await run_jobs()
    [payment] = await payments_of(tenant, debtor_id)
    assert (payment["status"], payment["disputed_at"] is not None) == ("applied", True)
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "0.00"
    got = (await tenant.api.get(f"/v1/payment-links/{link['id']}")).json()
    assert (got["status"], got["payment_id"]) == ("paid", payment["id"])
    mercadopago.payments["9600"].update(status="approved", status_detail="accredited")
    await notify(http, integ, "9600", notification_id=61)
    await run_jobs()
    [won] = await payments_of(tenant, debtor_id)
    assert (won["id"], won["status"], won["disputed_at"]) == (payment["id"], "applied", None)
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "0.00"
    assert await _audits(app, tenant.tenant_id) == [
        "payment.received", "payment.disputed", "payment.dispute_won"]
