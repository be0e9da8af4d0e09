"""Bulk imports: NDJSON and CSV upserts by external reference, row errors, idempotency."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from cartera.clock import today_in
from tests.conftest import TenantClient

RunJobs = Callable[[], Awaitable[int]]


def days_ago(n: int) -> str:
    # today at the call, not at import: a session that runs past midnight in Lima
    # would otherwise date every later obligation one day off
    return (today_in("America/Lima") - timedelta(days=n)).isoformat()


def ndjson(*rows: dict[str, Any]) -> bytes:
    return "".join(json.dumps({**r}) + "\n" for r in rows).encode()


DEBTOR = {"type": "debtor", "external_ref": "C-1", "name": "Ana Pérez", "country": "PE",
          "tags": ["vip"], "attributes": {"segment": "retail"},
          "contact_points": [{"kind": "phone", "value": "987 654 321", "consent": "granted"}]}
OLD = {"type": "obligation", "external_ref": "F-OLD", "debtor_external_ref": "C-1",
       "kind": "invoice", "currency": "PEN", "original_amount": "100.00",
       "due_date": days_ago(60)}
NEW = {**OLD, "external_ref": "F-NEW", "original_amount": "50.00", "due_date": days_ago(10)}
PAYMENT = {"type": "payment", "external_ref": "P-1", "debtor_external_ref": "C-1",
           "currency": "PEN", "amount": "120.00", "paid_on": days_ago(1)}
FILE = ndjson(DEBTOR, OLD, NEW, PAYMENT)


async def upload(t: TenantClient, body: bytes, content_type: str = "application/x-ndjson",
                 **params: Any) -> dict[str, Any]:
    r = await t.api.post("/v1/imports", content=body, headers={"Content-Type": content_type},
                         params=params)
    assert r.status_code == 202, r.text
    return dict(r.json())


async def run_import(t: TenantClient, run_jobs: RunJobs, body: bytes,
                     content_type: str = "application/x-ndjson") -> dict[str, Any]:
    created = await upload(t, body, content_type)
    assert created["status"] == "queued" and created["job_id"]
    await run_jobs()
    return dict((await t.api.get(f"/v1/imports/{created['id']}")).json())


async def errors_of(t: TenantClient, import_id: int) -> list[dict[str, Any]]:
    body = (await t.api.get(f"/v1/imports/{import_id}/errors", params={"limit": 100})).json()
    return [{k: e[k] for k in ("line", "field", "code")} for e in body["data"]]


async def debtor_by_ref(t: TenantClient, ref: str) -> dict[str, Any] | None:
    found = (await t.api.get("/v1/debtors", params={"external_ref": ref})).json()["data"]
    return found[0] if found else None


async def obligations(t: TenantClient) -> dict[str, dict[str, Any]]:
    body = (await t.api.get("/v1/obligations", params={"limit": 100})).json()
    return {o["external_ref"]: o for o in body["data"]}


async def balance(t: TenantClient, debtor_id: int) -> dict[str, Any]:
    return dict((await t.api.get(f"/v1/debtors/{debtor_id}/balance")).json())


async def snapshot(t: TenantClient) -> dict[str, Any]:
    debtor = await debtor_by_ref(t, "C-1")
    assert debtor is not None
    payments = (await t.api.get("/v1/payments")).json()["data"]
    return {"debtor": debtor, "obligations": await obligations(t), "payments": payments,
            "balance": await balance(t, debtor["id"])}


async def test_ndjson_import_upserts_and_allocates_oldest_due_first(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    done = await run_import(tenant, run_jobs, FILE)
    assert done["status"] == "succeeded", done
    assert (done["rows_total"], done["rows_applied"], done["rows_failed"]) == (4, 4, 0)
    debtor = await debtor_by_ref(tenant, "C-1")
    assert debtor is not None
    assert debtor["timezone"] == "America/Lima" and debtor["tags"] == ["vip"]
    assert debtor["attributes"] == {"segment": "retail"}
    assert [c["value"] for c in debtor["contact_points"]] == ["+51987654321"]
    found = await obligations(tenant)
    assert (found["F-OLD"]["status"], found["F-OLD"]["outstanding_amount"]) == ("paid", "0.00")
    assert (found["F-NEW"]["status"], found["F-NEW"]["outstanding_amount"]) == ("open", "30.00")
    pen = (await balance(tenant, debtor["id"]))["balances"][0]
    assert (pen["outstanding_amount"], pen["days_past_due"]) == ("30.00", 10)


async def test_importing_the_same_file_twice_changes_nothing(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    await run_import(tenant, run_jobs, FILE)
    before = await snapshot(tenant)
    again = await run_import(tenant, run_jobs, FILE)
    assert (again["status"], again["rows_applied"], again["rows_failed"]) == ("succeeded", 4, 0)
    assert await snapshot(tenant) == before


async def test_a_changed_row_is_updated_and_rebalanced(tenant: TenantClient,
                                                       run_jobs: RunJobs) -> None:
    await run_import(tenant, run_jobs, FILE)
    before = (await obligations(tenant))["F-OLD"]
    await run_import(tenant, run_jobs, ndjson({**OLD, "original_amount": "150.00"}))
    after = await obligations(tenant)
    assert after["F-OLD"]["updated_at"] > before["updated_at"]
    assert (after["F-OLD"]["status"], after["F-OLD"]["outstanding_amount"]) == ("open", "30.00")
    assert after["F-NEW"]["outstanding_amount"] == "50.00"


async def test_a_row_replaces_an_existing_debtors_tags(tenant: TenantClient,
                                                       run_jobs: RunJobs) -> None:
    await run_import(tenant, run_jobs, FILE)
    other = {**DEBTOR, "external_ref": "C-2", "tags": ["new"], "contact_points": []}
    done = await run_import(tenant, run_jobs, ndjson({**DEBTOR, "tags": ["late", "legal"]},
                                                     other))
    assert (done["status"], done["rows_applied"]) == ("succeeded", 2)
    first, second = await debtor_by_ref(tenant, "C-1"), await debtor_by_ref(tenant, "C-2")
    assert first is not None and sorted(first["tags"]) == ["late", "legal"]
    assert second is not None and second["tags"] == ["new"]


async def test_an_obligation_moved_to_another_debtor_rebalances_both(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    await run_import(tenant, run_jobs, FILE)
    other = {**DEBTOR, "external_ref": "C-2", "contact_points": []}
    done = await run_import(tenant, run_jobs,
                            ndjson(other, {**NEW, "debtor_external_ref": "C-2"}))
    assert (done["status"], done["rows_applied"]) == ("succeeded", 2)
    first, second = await debtor_by_ref(tenant, "C-1"), await debtor_by_ref(tenant, "C-2")
    assert first is not None and second is not None
    # C-1 keeps F-OLD (100.00) and P-1 (120.00): 20.00 of credit is left unapplied.
    first_pen = (await balance(tenant, first["id"]))["balances"][0]
    assert (first_pen["outstanding_amount"], first_pen["unapplied_credit"]) == ("0.00", "20.00")
    second_pen = (await balance(tenant, second["id"]))["balances"][0]
    assert second_pen["outstanding_amount"] == "50.00"


async def test_a_file_of_many_chunks_loads_like_one(
    tenant: TenantClient, run_jobs: RunJobs, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three rows a chunk: debtors, obligations and errors fall in different chunks, and on
    # PostgreSQL one chunk's debtors load while the chunk before it loads its money.
    monkeypatch.setattr("cartera.imports.rows.CHUNK_ROWS", 3)
    rows = [DEBTOR, OLD, NEW, {**DEBTOR, "external_ref": "C-2", "contact_points": []},
            {**OLD, "external_ref": "F-2A", "debtor_external_ref": "C-2"},
            {**OLD, "external_ref": "F-BAD", "debtor_external_ref": "C-404"},
            {**OLD, "external_ref": "F-2B", "debtor_external_ref": "C-2", "currency": "XXX"},
            PAYMENT, {**NEW, "external_ref": "F-1C", "original_amount": "5.00"},
            {**OLD, "external_ref": "F-2C", "debtor_external_ref": "C-2",
             "original_amount": "7.00"},
            {**NEW, "original_amount": "60.00"}]  # F-NEW again, in another chunk: it wins
    done = await run_import(tenant, run_jobs, ndjson(*rows))
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 9, 2)
    assert await errors_of(tenant, done["id"]) == [
        {"line": 6, "field": "debtor_external_ref", "code": "unknown_debtor"},
        {"line": 7, "field": "currency", "code": "unknown_currency"}]
    found = await obligations(tenant)
    assert sorted(found) == ["F-1C", "F-2A", "F-2C", "F-NEW", "F-OLD"]
    first = await debtor_by_ref(tenant, "C-1")
    assert first is not None
    # 165.00 owed, 120.00 paid oldest first: F-OLD paid, 45.00 left of F-NEW and F-1C.
    pen = (await balance(tenant, first["id"]))["balances"][0]
    assert pen["outstanding_amount"] == "45.00"
    assert found["F-NEW"]["original_amount"] == "60.00"
    again = await run_import(tenant, run_jobs, ndjson(*rows))
    assert (again["rows_applied"], again["rows_failed"]) == (9, 2)

    def amounts(found: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
        return {ref: (o["original_amount"], o["outstanding_amount"], o["status"])
                for ref, o in found.items()}

    assert amounts(await obligations(tenant)) == amounts(found)


async def test_csv_import(tenant: TenantClient, run_jobs: RunJobs) -> None:
    csv = (
        "type,external_ref,name,country,phone,email,tags,debtor_external_ref,kind,currency,"
        "original_amount,due_date,attributes.branch\n"
        "debtor,C-9,Luis Soto,PE,987654322,luis@example.pe,a;b,,,,,,Lima\n"
        f"obligation,F-9,,,,,,C-9,invoice,PEN,75.10,{days_ago(5)},\n"
    ).encode()
    done = await run_import(tenant, run_jobs, csv, "text/csv")
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 2, 0)
    debtor = await debtor_by_ref(tenant, "C-9")
    assert debtor is not None
    assert debtor["tags"] == ["a", "b"] and debtor["attributes"] == {"branch": "Lima"}
    assert sorted(c["kind"] for c in debtor["contact_points"]) == ["email", "phone"]
    assert (await obligations(tenant))["F-9"]["outstanding_amount"] == "75.10"


async def test_bad_rows_are_reported_and_not_applied(tenant: TenantClient,
                                                     run_jobs: RunJobs) -> None:
    body = ndjson(
        DEBTOR,                                                          # 1 ok
        {**DEBTOR, "external_ref": "C-2",
         "contact_points": [{"kind": "phone", "value": "12"}]},          # 2 phone dropped
        {**OLD, "external_ref": "F-1", "original_amount": 5},           # 3 wrong type
        {**OLD, "external_ref": "F-2", "currency": "XXX"},              # 4 unknown currency
        {**OLD, "external_ref": "F-3", "original_amount": "-5.00"},     # 5 negative
        {**OLD, "external_ref": "F-4", "due_date": "31/01/2025"},       # 6 not a date
        {**OLD, "external_ref": "F-5", "debtor_external_ref": "C-404"}, # 7 unknown debtor
        {**OLD, "external_ref": "F-6"},                                 # 8 ok
        {**OLD, "external_ref": "F-7", "portfolio_code": "nope"},       # 9 unknown portfolio
    ) + b"{not json\n"                                                   # 10 malformed
    done = await run_import(tenant, run_jobs, body)
    assert (done["status"], done["rows_applied"], done["rows_failed"]) == ("succeeded", 3, 7)
    assert await errors_of(tenant, done["id"]) == [
        {"line": 2, "field": "contact_points[0].value", "code": "invalid_phone"},
        {"line": 3, "field": "original_amount", "code": "wrong_type"},
        {"line": 4, "field": "currency", "code": "unknown_currency"},
        {"line": 5, "field": "original_amount", "code": "negative_amount"},
        {"line": 6, "field": "due_date", "code": "invalid_date"},
        {"line": 7, "field": "debtor_external_ref", "code": "unknown_debtor"},
        {"line": 9, "field": "portfolio_code", "code": "unknown_portfolio"},
        {"line": 10, "field": None, "code": "malformed_json"},
    ]
    second = await debtor_by_ref(tenant, "C-2")
    assert second is not None and second["contact_points"] == []
    assert sorted(await obligations(tenant)) == ["F-6"]


async def test_obligation_before_its_debtor_is_an_unknown_debtor(
    tenant: TenantClient, run_jobs: RunJobs,
) -> None:
    done = await run_import(tenant, run_jobs, ndjson(OLD, DEBTOR))
    assert await errors_of(tenant, done["id"]) == [
        {"line": 1, "field": "debtor_external_ref", "code": "unknown_debtor"}]
    assert await obligations(tenant) == {}
    assert await debtor_by_ref(tenant, "C-1") is not None


async def test_clp_allows_no_decimals(make_tenant: Any, run_jobs: RunJobs) -> None:
    chile = await make_tenant(country="CL", currency="CLP")
    body = ndjson({**DEBTOR, "country": "CL", "contact_points": []},
                  {**OLD, "currency": "CLP", "original_amount": "1500.5"},
                  {**NEW, "currency": "CLP", "original_amount": "1500.00"})
    done = await run_import(chile, run_jobs, body)
    errors = (await chile.api.get(f"/v1/imports/{done['id']}/errors")).json()["data"]
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [
        (2, "original_amount", "too_many_decimals")]
    assert "CLP allows 0 decimal places" in errors[0]["reason"]
    assert (await obligations(chile))["F-NEW"]["original_amount"] == "1500"


async def test_wrong_content_type_is_415(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/imports", content=b"{}", headers={
        "Content-Type": "application/json"})
    assert r.status_code == 415
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "unsupported_media_type"


async def test_csv_without_type_column_is_rejected_at_upload(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/imports", content=b"external_ref,name\nC-1,Ana\n",
                              headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["code"] == "invalid_csv_header"


async def test_progress_is_visible_on_the_job(tenant: TenantClient, run_jobs: RunJobs) -> None:
    done = await run_import(tenant, run_jobs, FILE)
    job = (await tenant.api.get(f"/v1/jobs/{done['job_id']}")).json()
    assert (job["kind"], job["status"]) == ("import", "succeeded")
    assert (job["progress_done"], job["progress_total"]) == (4, 4)
    assert job["result"]["rows_applied"] == 4
    assert done["rows_processed"] == 4


async def test_other_tenants_cannot_see_an_import(tenant: TenantClient, make_tenant: Any,
                                                   run_jobs: RunJobs) -> None:
    done = await run_import(tenant, run_jobs, FILE)
    other = await make_tenant()
    assert (await other.api.get(f"/v1/imports/{done['id']}")).status_code == 404
    assert (await other.api.get(f"/v1/imports/{done['id']}/errors")).status_code == 404
    assert (await other.api.get("/v1/imports")).json()["data"] == []
    assert await debtor_by_ref(other, "C-1") is None
    listed = (await tenant.api.get("/v1/imports")).json()["data"]
    assert [i["id"] for i in listed] == [done["id"]]
