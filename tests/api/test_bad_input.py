"""Bad input gets a precise 4xx problem (status, code, param) and writes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TenantClient

DEBTOR = {"external_ref": "D-1", "name": "Ana Pérez", "country": "PE"}
OBLIGATION = {"external_ref": "O-1", "kind": "invoice", "currency": "PEN",
              "original_amount": "100.00", "due_date": "2024-06-30",
              "debtor_external_ref": "D-1"}


def assert_problem(r: httpx.Response, status: int, code: str, param: str | None = None) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body = r.json()
    assert body["status"] == status and body["code"] == code, body
    assert body["type"].startswith("https://") and body["title"] and body["detail"], body
    if param is not None:
        assert body.get("param") == param, body
    assert "Traceback" not in r.text


async def _nothing_written(tenant: TenantClient, path: str) -> None:
    assert (await tenant.api.get(path)).json()["data"] == []


async def _with_debtor(tenant: TenantClient) -> dict[str, Any]:
    r = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_malformed_json_is_400(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", content=b'{"external_ref": "D-1",',
                              headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed_json")
    await _nothing_written(tenant, "/v1/debtors")


@pytest.mark.parametrize(("field", "value"), [
    ("name", 42), ("country", ["PE"]), ("external_ref", None), ("tags", "vip"),
    ("risk_score", "high"),
])
async def test_wrong_types_are_422_with_the_field(tenant: TenantClient, field: str,
                                                  value: Any) -> None:
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, field: value})
    assert_problem(r, 422, "validation_error", field)
    await _nothing_written(tenant, "/v1/debtors")


async def test_unknown_field_is_422(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "colour": "red"})
    assert_problem(r, 422, "validation_error")
    await _nothing_written(tenant, "/v1/debtors")


async def test_phone_that_is_not_a_number(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={
        **DEBTOR, "contact_points": [{"kind": "phone", "value": "call me maybe"}]})
    assert_problem(r, 422, "invalid_phone", "contact_points[0].value")
    await _nothing_written(tenant, "/v1/debtors")


@pytest.mark.parametrize(("change", "status", "code", "param"), [
    ({"currency": "XYZ"}, 422, "unknown_currency", "currency"),
    ({"currency": "pen"}, 422, "validation_error", "currency"),
    ({"original_amount": "10.123"}, 422, "too_many_decimals", "original_amount"),
    ({"currency": "CLP", "original_amount": "10.5"}, 422, "too_many_decimals",
     "original_amount"),
    ({"original_amount": "-10.00"}, 422, "validation_error", "original_amount"),
    ({"original_amount": 10.5}, 422, "validation_error", "original_amount"),
    ({"original_amount": "ten"}, 422, "validation_error", "original_amount"),
    ({"due_date": "next friday"}, 422, "validation_error", "due_date"),
    ({"due_date": "2024-02-30"}, 422, "validation_error", "due_date"),
    ({"due_date": 20240630}, 422, "validation_error", "due_date"),
    ({"debtor_external_ref": "NOBODY"}, 422, "unknown_debtor", "debtor_external_ref"),
    ({"debtor_external_ref": None, "debtor_id": 987654321}, 422, "unknown_debtor",
     "debtor_id"),
    ({"debtor_external_ref": None, "debtor_id": 2**70}, 422, "validation_error", "debtor_id"),
    ({"outstanding_amount": "200.00"}, 422, "outstanding_exceeds_original",
     "outstanding_amount"),
])
async def test_bad_obligations_are_refused_and_not_written(
    tenant: TenantClient, change: dict[str, Any], status: int, code: str, param: str,
) -> None:
    await _with_debtor(tenant)
    r = await tenant.api.post("/v1/obligations", json={**OBLIGATION, **change})
    assert_problem(r, status, code, param)
    await _nothing_written(tenant, "/v1/obligations")


@pytest.mark.parametrize(("change", "code", "param"), [
    ({"currency": "ABC"}, "unknown_currency", "currency"),
    ({"amount": "5.555"}, "too_many_decimals", "amount"),
    ({"amount": "-5.00"}, "validation_error", "amount"),
    ({"amount": "0"}, "non_positive_amount", "amount"),
    ({"paid_on": "yesterday"}, "validation_error", "paid_on"),
    ({"debtor_external_ref": "NOBODY"}, "unknown_debtor", "debtor_external_ref"),
])
async def test_bad_payments_are_refused_and_not_written(
    tenant: TenantClient, change: dict[str, Any], code: str, param: str,
) -> None:
    await _with_debtor(tenant)
    r = await tenant.api.post("/v1/payments", json={
        "currency": "PEN", "amount": "50.00", "paid_on": "2024-07-01",
        "debtor_external_ref": "D-1", **change})
    assert_problem(r, 422, code, param)
    await _nothing_written(tenant, "/v1/payments")


async def test_clp_has_no_decimals_but_whole_amounts_pass(make_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant = await make_tenant(country="CL", currency="CLP")
    await tenant.api.post("/v1/debtors", json={**DEBTOR, "country": "CL"})
    ok = await tenant.api.post("/v1/obligations", json={
        **OBLIGATION, "currency": "CLP", "original_amount": "150000"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["original_amount"] == "150000"


async def test_bad_query_parameters_are_422(tenant: TenantClient) -> None:
    r = await tenant.api.get("/v1/debtors", params={"limit": "lots"})
    assert_problem(r, 422, "validation_error", "limit")
    r = await tenant.api.get("/v1/debtors", params={"limit": 1000})
    assert_problem(r, 422, "validation_error", "limit")
    r = await tenant.api.get(f"/v1/debtors/{2**64}")
    assert r.status_code == 422


async def test_oversized_body_is_413(tenant: TenantClient) -> None:
    big = {**DEBTOR, "attributes": {"blob": "x" * 1_100_000}}
    r = await tenant.api.post("/v1/debtors", json=big)
    assert_problem(r, 413, "body_too_large")
    await _nothing_written(tenant, "/v1/debtors")


async def test_another_tenants_object_is_404(tenant: TenantClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    debtor = await _with_debtor(tenant)
    other = await make_tenant()
    r = await other.api.get(f"/v1/debtors/{debtor['id']}")
    assert_problem(r, 404, "not_found")
    r = await other.api.post("/v1/obligations", json={**OBLIGATION, "debtor_external_ref": None,
                                                      "debtor_id": debtor["id"]})
    assert_problem(r, 422, "unknown_debtor", "debtor_id")


async def test_idempotency_key_replays_and_writes_once(tenant: TenantClient) -> None:
    headers = {"Idempotency-Key": "create-d-1"}
    first = await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
    assert first.status_code == 201
    again = await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    listed = (await tenant.api.get("/v1/debtors")).json()["data"]
    assert [d["id"] for d in listed] == [first.json()["id"]]


async def test_idempotency_key_with_a_different_body_is_422(tenant: TenantClient) -> None:
    headers = {"Idempotency-Key": "k-1"}
    assert (await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
            ).status_code == 201
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "external_ref": "D-2"},
                              headers=headers)
    assert_problem(r, 422, "idempotency_key_reused", "Idempotency-Key")
    listed = (await tenant.api.get("/v1/debtors")).json()["data"]
    assert [d["external_ref"] for d in listed] == ["D-1"]


async def test_idempotency_key_too_long_is_400(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json=DEBTOR,
                              headers={"Idempotency-Key": "k" * 300})
    assert_problem(r, 400, "invalid_idempotency_key", "Idempotency-Key")
    await _nothing_written(tenant, "/v1/debtors")


async def test_failed_validation_frees_the_key_for_a_corrected_retry(
    tenant: TenantClient,
) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    bad = await tenant.api.post("/v1/debtors", json={**DEBTOR, "name": 1}, headers=headers)
    assert bad.status_code == 422
    good = await tenant.api.post("/v1/debtors", json=DEBTOR, headers=headers)
    assert good.status_code == 201 and "idempotent-replayed" not in good.headers


@pytest.mark.parametrize("body", [b'{"external_ref": "D-1",', b"{'a': 1}", b"not json",
                                  b'{"a": 1} trailing'])
async def test_every_kind_of_malformed_json_is_400(tenant: TenantClient, body: bytes) -> None:
    r = await tenant.api.post("/v1/debtors", content=body,
                              headers={"Content-Type": "application/json"})
    assert_problem(r, 400, "malformed_json")


async def test_nul_characters_never_cause_a_server_error(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "name": "Ana\u0000"})
    assert r.status_code in (201, 422), r.text  # PostgreSQL cannot store NUL: 422
    if r.status_code == 422:
        assert_problem(r, 422, "nul_character")
