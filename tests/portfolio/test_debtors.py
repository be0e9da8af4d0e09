from __future__ import annotations

from tests.conftest import TenantClient

DEBTOR = {
    "external_ref": "CLI-1",
    "name": "Ana Pérez Quispe",
    "country": "PE",
    "zone": "Lima",
    "tags": ["vip", "retail"],
    "contact_points": [{"kind": "phone", "value": "987 654 321", "consent": "granted"},
                       {"kind": "email", "value": "ana@example.pe"}],
    "related_parties": [{"role": "guarantor", "name": "Luis Pérez", "phone": "+51 912345678"}],
}


async def test_create_and_get_debtor_normalises_phone_and_derives_timezone(
    tenant: TenantClient,
) -> None:
    created = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["timezone"] == "America/Lima"
    assert body["contact_points"][0]["value"] == "+51987654321"
    assert body["related_parties"][0]["phone"] == "+51912345678"
    assert body["tags"] == ["retail", "vip"]
    fetched = await tenant.api.get(f"/v1/debtors/{body['id']}")
    assert fetched.json() == body


async def test_mexican_subdivision_gets_its_own_zone(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={
        "external_ref": "MX-1", "name": "Jorge", "country": "MX", "subdivision": "MX-BCN"})
    assert r.json()["timezone"] == "America/Tijuana"


async def test_duplicate_external_ref_is_a_conflict(tenant: TenantClient) -> None:
    assert (await tenant.api.post("/v1/debtors", json=DEBTOR)).status_code == 201
    again = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert again.status_code == 409
    assert again.json()["code"] == "already_exists"
    assert again.json()["param"] == "external_ref"


async def test_bad_phone_is_rejected_and_nothing_is_written(tenant: TenantClient) -> None:
    bad = {**DEBTOR, "external_ref": "CLI-2",
           "contact_points": [{"kind": "phone", "value": "not-a-number"}]}
    r = await tenant.api.post("/v1/debtors", json=bad)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "invalid_phone"
    assert r.json()["param"] == "contact_points[0].value"
    listed = await tenant.api.get("/v1/debtors", params={"external_ref": "CLI-2"})
    assert listed.json()["data"] == []


async def test_tenants_cannot_see_each_other(tenant: TenantClient, make_tenant) -> None:  # type: ignore[no-untyped-def]
    other = await make_tenant()
    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    assert (await other.api.get(f"/v1/debtors/{created['id']}")).status_code == 404
    assert (await other.api.patch(f"/v1/debtors/{created['id']}",
                                  json={"name": "x"})).status_code == 404
    assert (await other.api.get("/v1/debtors")).json()["data"] == []


async def test_list_filters_and_cursor_pagination(tenant: TenantClient) -> None:
    for i in range(5):
        await tenant.api.post("/v1/debtors", json={
            "external_ref": f"P-{i}", "name": f"Debtor {i}", "country": "PE",
            "zone": "Lima" if i % 2 == 0 else "Arequipa", "tags": ["a"] if i < 2 else []})
    page1 = (await tenant.api.get("/v1/debtors", params={"limit": 2})).json()
    assert len(page1["data"]) == 2 and page1["has_more"] is True
    page2 = (await tenant.api.get("/v1/debtors", params={
        "limit": 2, "starting_after": page1["next_cursor"]})).json()
    assert [d["external_ref"] for d in page2["data"]] == ["P-2", "P-3"]
    lima = (await tenant.api.get("/v1/debtors", params={"zone": "Lima"})).json()["data"]
    assert {d["external_ref"] for d in lima} == {"P-0", "P-2", "P-4"}
    tagged = (await tenant.api.get("/v1/debtors", params={"tag": "a"})).json()["data"]
    assert {d["external_ref"] for d in tagged} == {"P-0", "P-1"}


async def test_update_replaces_tags_and_is_audited_in_timeline(tenant: TenantClient) -> None:
    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    r = await tenant.api.patch(f"/v1/debtors/{created['id']}", json={"tags": ["new"],
                                                                      "risk_score": 700})
    assert r.status_code == 200
    assert r.json()["tags"] == ["new"] and r.json()["risk_score"] == 700
    timeline = (await tenant.api.get(f"/v1/debtors/{created['id']}/timeline")).json()
    assert [e["kind"] for e in timeline][:2] == ["debtor.updated", "debtor.created"]


async def test_related_party_can_be_removed(tenant: TenantClient) -> None:
    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    party = created["related_parties"][0]["id"]
    url = f"/v1/debtors/{created['id']}/related-parties/{party}"
    assert (await tenant.api.delete(url)).status_code == 204
    assert (await tenant.api.delete(url)).status_code == 404
    assert (await tenant.api.get(f"/v1/debtors/{created['id']}")).json()["related_parties"] == []


async def test_blank_names_are_refused(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={
        "external_ref": "BLANK-1", "name": " \t ", "country": "PE"})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("blank_name", "name")
    r = await tenant.api.post("/v1/debtors", json={
        "external_ref": "BLANK-2", "name": "Ana", "country": "PE"})
    assert r.status_code == 201, r.text
    patched = await tenant.api.patch(f"/v1/debtors/{r.json()['id']}", json={"name": "  "})
    assert patched.status_code == 422, patched.text
    assert (patched.json()["code"], patched.json()["param"]) == ("blank_name", "name")
    assert (await tenant.api.get(f"/v1/debtors/{r.json()['id']}")).json()["name"] == "Ana"
