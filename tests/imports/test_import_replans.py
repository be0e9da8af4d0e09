"""An import's end re-segments and replans the debtors it touched, in its transaction, in
one pass restricted to them (:func:`cartera.changes.debtors_changed`)."""

from __future__ import annotations

from typing import Any

from tests.conftest import TenantClient
from tests.imports.test_imports import RunJobs, days_ago, debtor_by_ref, ndjson, run_import
from tests.strategies.helpers import (
    actions,
    enrollments,
    late_debtor,
    message_step,
    segments,
    strategy,
    template,
)


def _late(ref: str, amount: str = "100.00") -> list[dict[str, Any]]:
    return [{"type": "debtor", "external_ref": ref, "name": ref, "country": "PE",
             "contact_points": [{"kind": "phone", "value": f"98765{ref[-4:]}",
                                 "consent": "granted"}]},
            {"type": "obligation", "external_ref": f"F-{ref}", "debtor_external_ref": ref,
             "kind": "invoice", "currency": "PEN", "original_amount": amount,
             "due_date": days_ago(20)}]


async def test_an_import_segments_enrolls_and_plans_the_debtors_it_touched(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    outside = await late_debtor(tenant, "OUT")  # late before any strategy: not enrolled
    await strategy(tenant, "s", [seg["late"]], [message_step("one", sms),
                                               message_step("two", sms, offset=3)])
    done = await run_import(tenant, run_jobs, ndjson(*_late("I-0001"), *_late("I-0002")))
    assert done["status"] == "succeeded", done
    ids = []
    for ref in ("I-0001", "I-0002"):
        found = await debtor_by_ref(tenant, ref)
        assert found is not None
        ids.append(found["id"])
    live = {e["debtor_id"]: e for e in await enrollments(tenant)}
    # The imported debtors are placed in "late", enrolled and their first step planned;
    # the debtor the import did not touch is left to the next pass.
    assert set(live) == set(ids), live
    assert {live[i]["step_index"] for i in ids} == {1}
    planned = {a["debtor_id"]: a["step_key"] for a in await actions(tenant)}
    assert planned == {i: "one" for i in ids}
    assert outside not in live

    # A second file pays one of them in full: no longer late, their journey exits at once.
    paid = ndjson({"type": "payment", "external_ref": "P-1", "debtor_external_ref": "I-0001",
                   "currency": "PEN", "amount": "100.00", "paid_on": days_ago(0)})
    done = await run_import(tenant, run_jobs, paid)
    assert done["status"] == "succeeded", done
    after = {e["debtor_id"]: e["status"] for e in await enrollments(tenant)}
    assert after == {ids[0]: "exited", ids[1]: "active"}, after
    statuses = {a["debtor_id"]: a["status"] for a in await actions(tenant)}
    assert statuses[ids[0]] == "cancelled"

