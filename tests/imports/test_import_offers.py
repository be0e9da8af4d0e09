"""Bulk-imported payments apply the offers they pay in full at the import's end, set-based,
as a single payment does (before: only on the debtor's next refresh)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select

from cartera.audit.models import AuditEntry
from tests.conftest import TenantClient
from tests.imports.test_imports import days_ago, debtor_by_ref, ndjson, run_import
from tests.offers.helpers import client_with, offer


def _debtor(ref: str) -> dict[str, Any]:
    return {"type": "debtor", "external_ref": ref, "name": f"Ana {ref}", "country": "PE"}


def _invoice(ref: str, debtor: str, amount: str) -> dict[str, Any]:
    return {"type": "obligation", "external_ref": ref, "debtor_external_ref": debtor,
            "kind": "invoice", "currency": "PEN", "original_amount": amount,
            "due_date": days_ago(60)}


def _payment(ref: str, debtor: str, amount: str) -> dict[str, Any]:
    return {"type": "payment", "external_ref": ref, "debtor_external_ref": debtor,
            "currency": "PEN", "amount": amount, "paid_on": days_ago(0)}


async def test_imported_payments_apply_the_offers_they_pay_in_full(
        tenant: TenantClient, app: Litestar, http: AsyncTestClient[Litestar],
        run_jobs: Any) -> None:
    done = await run_import(tenant, run_jobs, ndjson(
        _debtor("IO-1"), _invoice("IO-1-F", "IO-1", "100.00"),
        _debtor("IO-2"), _invoice("IO-2-F", "IO-2", "200.00")))
    assert done["status"] == "succeeded", done
    collector, _ = await client_with(app, http, tenant, "collector")
    one, two = await debtor_by_ref(tenant, "IO-1"), await debtor_by_ref(tenant, "IO-2")
    assert one is not None and two is not None
    full = await offer(collector, debtor_id=one["id"], discount_percent="10")
    part = await offer(collector, debtor_id=two["id"], discount_percent="10")
    payments = ndjson(_payment("IO-P1", "IO-1", "90.00"), _payment("IO-P2", "IO-2", "50.00"))
    assert (await run_import(tenant, run_jobs, payments))["status"] == "succeeded"
    applied = (await collector.get(f"/v1/offers/{full['id']}")).json()
    assert (applied["status"], applied["paid_amount"]) == ("applied", "90.00")
    note = (await collector.get(f"/v1/obligations/{applied['credit_note_id']}")).json()
    assert (note["kind"], note["original_amount"]) == ("credit_note", "10.00")
    pen = (await tenant.api.get(f"/v1/debtors/{one['id']}/balance")).json()["balances"][0]
    assert pen["outstanding_amount"] == "0.00"
    waiting = (await collector.get(f"/v1/offers/{part['id']}")).json()
    assert (waiting["status"], waiting["paid_amount"], waiting["credit_note_id"]) == (
        "open", "50.00", None)
    # The same file again changes nothing: no second credit note, no second audit entry.
    assert (await run_import(tenant, run_jobs, payments))["status"] == "succeeded"
    async with app.state.ctx.sessionmaker() as session:
        audits = await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.tenant_id == tenant.tenant_id, AuditEntry.action == "offer.applied"))
    assert audits == 1
    again = (await collector.get(f"/v1/offers/{full['id']}")).json()
    assert (again["status"], again["credit_note_id"]) == ("applied", applied["credit_note_id"])
