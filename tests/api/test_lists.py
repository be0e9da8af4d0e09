"""Every list takes created/updated ranges, sort and ending_before (cartera.api.listing);
debtors are found by name, national id, e-mail and phone (normalised)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar

from cartera.api.openapi import document
from tests.api.test_bad_input import assert_problem
from tests.conftest import TenantClient

FUTURE = "2999-01-01T00:00:00Z"


def _lists(app: Litestar) -> list[str]:
    doc = document(app)
    out = []
    for path, item in doc["paths"].items():
        op = item.get("get")
        if op is None:
            continue
        names = {p.get("name") for p in op.get("parameters", [])}
        if {"created[gte]", "ending_before", "sort"} <= names:
            out.append(re.sub(r"{\w+}", "1", path))
    return out


async def test_every_list_takes_the_list_parameters(app: Litestar, tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "L-1", "name": "Ana", "country": "PE"})).json()
    paths = _lists(app)
    assert "/v1/debtors" in paths and "/v1/segments/history" in paths and len(paths) >= 20
    walked, skipped = 0, []
    for path in paths:
        path = path.replace("/1/", f"/{debtor['id']}/") if "/debtors/" in path else path
        r = await tenant.api.get(path, params={"created[gte]": FUTURE, "sort": "-id"})
        if r.status_code in (403, 404):  # a platform list, or one under an absent object
            skipped.append(path)
            continue
        walked += 1
        assert r.status_code == 200, (path, r.text)
        assert r.json()["data"] == [], path  # nothing was created in the year 2999
        r = await tenant.api.get(path, params={"created[lt]": "yesterday"})
        assert_problem(r, 422, "validation_error", "created[lt]")
        r = await tenant.api.get(path, params={"sort": "name"})
        assert_problem(r, 422, "invalid_sort", "sort")
        r = await tenant.api.get(path, params={"ending_before": "5", "starting_after": "1"})
        assert_problem(r, 422, "conflicting_cursors", "ending_before")
    # Only lists under an object this tenant does not have (``/1/``) or for the platform
    # may be skipped; every other list is walked.
    assert [p for p in skipped if "/1/" not in p and p != "/v1/tenants"] == [], skipped
    assert walked >= 20, walked


async def test_ranges_sort_and_cursors_both_ways(tenant: TenantClient) -> None:
    ids = []
    for i in range(5):
        r = await tenant.api.post("/v1/debtors", json={
            "external_ref": f"S-{i}", "name": f"N{i}", "country": "PE"})
        ids.append(r.json()["id"])
    first = (await tenant.api.get(f"/v1/debtors/{ids[0]}")).json()
    r = await tenant.api.get("/v1/debtors", params={"created[gte]": first["created_at"]})
    assert [d["id"] for d in r.json()["data"]] == ids
    r = await tenant.api.get("/v1/debtors", params={"created[gt]": first["created_at"]})
    assert ids[0] not in [d["id"] for d in r.json()["data"]]
    # newest first, two at a time, forwards then back
    page = (await tenant.api.get("/v1/debtors", params={"sort": "-created", "limit": 2})).json()
    assert [d["id"] for d in page["data"]] == ids[:-3:-1] and page["has_more"]
    page2 = (await tenant.api.get("/v1/debtors", params={
        "sort": "-created", "limit": 2, "starting_after": page["next_cursor"]})).json()
    assert [d["id"] for d in page2["data"]] == [ids[2], ids[1]]
    back = (await tenant.api.get("/v1/debtors", params={
        "sort": "-created", "limit": 2, "ending_before": page2["data"][0]["id"]})).json()
    assert [d["id"] for d in back["data"]] == [ids[4], ids[3]] and not back["has_more"]
    back = (await tenant.api.get("/v1/debtors", params={
        "limit": 2, "ending_before": ids[4]})).json()
    assert [d["id"] for d in back["data"]] == [ids[2], ids[3]] and back["has_more"]
    assert back["next_cursor"] == ids[2]
    # updated: a PATCH moves a debtor into the recent range
    await tenant.api.patch(f"/v1/debtors/{ids[1]}", json={"name": "changed"})
    changed = (await tenant.api.get(f"/v1/debtors/{ids[1]}")).json()
    r = await tenant.api.get("/v1/debtors", params={"updated[gte]": changed["updated_at"]})
    assert [d["id"] for d in r.json()["data"]] == [ids[1]]
    r = await tenant.api.get("/v1/debtors", params={"sort": "-updated", "limit": 1})
    assert r.json()["data"][0]["id"] == ids[1]


@pytest.mark.parametrize("q", ["+51 987 654 321", "987654321", "987-654-321", "ANA@Example.pe",
                               "Ana Pérez Quispe", " Ana  Pérez Quispe ", "45.678.912",
                               "45678912"])
async def test_debtor_search(tenant: TenantClient, q: str) -> None:
    found: dict[str, Any] = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "Q-1", "name": "Ana Pérez Quispe", "country": "PE",
        "national_id": "45678912",
        "contact_points": [{"kind": "phone", "value": "987 654 321"},
                           {"kind": "email", "value": "ana@example.pe"}]})).json()
    await tenant.api.post("/v1/debtors", json={
        "external_ref": "Q-2", "name": "Luis", "country": "PE",
        "contact_points": [{"kind": "phone", "value": "912 345 678"}]})
    r = await tenant.api.get("/v1/debtors", params={"q": q})
    assert r.status_code == 200, r.text
    assert [d["id"] for d in r.json()["data"]] == [found["id"]], q


async def test_search_misses_and_other_tenants(tenant: TenantClient, make_tenant: Any) -> None:
    await tenant.api.post("/v1/debtors", json={
        "external_ref": "Q-1", "name": "Ana", "country": "PE",
        "contact_points": [{"kind": "phone", "value": "987 654 321"}]})
    assert (await tenant.api.get("/v1/debtors", params={"q": "987654322"})).json()["data"] == []
    assert (await tenant.api.get("/v1/debtors", params={"q": "100%"})).json()["data"] == []
    # Names are sealed at rest: the whole name matches, not a part of it.
    assert (await tenant.api.get("/v1/debtors", params={"q": "An"})).json()["data"] == []
    other = await make_tenant()
    assert (await other.api.get("/v1/debtors", params={"q": "987654321"})).json()["data"] == []


async def test_expand_balance_saves_the_round_trip(tenant: TenantClient) -> None:
    from tests.api.test_bad_input import OBLIGATION

    debtor = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "D-1", "name": "Ana", "country": "PE"})).json()
    other = (await tenant.api.post("/v1/debtors", json={
        "external_ref": "D-2", "name": "Luis", "country": "PE"})).json()
    await tenant.api.post("/v1/obligations", json=OBLIGATION)
    params = {"expand": "balance", "as_of": "2024-07-30"}
    alone = (await tenant.api.get(f"/v1/debtors/{debtor['id']}/balance",
                                  params={"as_of": "2024-07-30"})).json()
    one = (await tenant.api.get(f"/v1/debtors/{debtor['id']}", params=params)).json()
    assert one["balance"] == alone and alone["balances"][0]["days_past_due"] == 30
    listed = (await tenant.api.get("/v1/debtors", params=params)).json()["data"]
    assert [d["balance"] for d in listed] == [alone, {
        "debtor_id": other["id"], "as_of": "2024-07-30", "balances": []}]
    plain = (await tenant.api.get(f"/v1/debtors/{debtor['id']}")).json()
    assert "balance" not in plain
    r = await tenant.api.get("/v1/debtors", params={"expand": "everything"})
    assert_problem(r, 422, "validation_error", "expand")
