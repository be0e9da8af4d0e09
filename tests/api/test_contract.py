"""Conventions a generated client relies on: Location on 201, problems that name their
request and field, 415 on a wrong media type, multipart uploads, and a document whose names
and enums generators can use."""

from __future__ import annotations

import re
from typing import Any

from litestar import Litestar

from cartera.api.openapi import document, literal_names, schema_name
from cartera.segmentation.rules import ALL_OPS
from tests.api.test_bad_input import DEBTOR, assert_problem
from tests.conftest import TenantClient

REF = "#/components/schemas/"


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items()
            for method, op in item.items() if method in {"get", "post", "put", "patch", "delete"}]


async def test_created_objects_are_located(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert r.status_code == 201, r.text
    debtor = r.json()
    assert r.headers["location"] == f"/v1/debtors/{debtor['id']}"
    assert (await tenant.api.get(r.headers["location"])).json()["id"] == debtor["id"]
    r = await tenant.api.post(f"/v1/debtors/{debtor['id']}/contact-points",
                              json={"kind": "email", "value": "ana@example.pe"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == (f"/v1/debtors/{debtor['id']}/contact-points/"
                                     f"{r.json()['id']}")
    # a replay of an idempotent create is located too
    for _ in range(2):
        r = await tenant.api.post("/v1/portfolios", json={"code": "P-1", "name": "P"},
                                  headers={"Idempotency-Key": "loc-1"})
        assert r.status_code == 201, r.text
        assert r.headers["location"] == f"/v1/portfolios/{r.json()['id']}"


def test_every_201_documents_location(app: Litestar) -> None:
    created = [(path, method, op) for path, method, op in _operations(document(app))
               if "201" in op["responses"]]
    assert created
    for path, method, op in created:
        assert "Location" in op["responses"]["201"].get("headers", {}), (method, path)


async def test_every_problem_names_its_request(tenant: TenantClient) -> None:
    answers = [
        await tenant.api.get("/v1/debtors/999999"),  # a handler's error
        await tenant.api.get("/v1/no-such-route"),  # the router's
        await tenant.api.get("/v1/debtors", headers={"Authorization": "Bearer nope"}),  # auth
        await tenant.api.post("/v1/debtors", json=DEBTOR,
                              headers={"Idempotency-Key": "has space"}),  # idempotency
        await tenant.api.post("/v1/debtors", json={"name": 1}),  # validation
        await tenant.api.get("/v1/debtors", params={"nope": "1"}),  # parameters
    ]
    for r in answers:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
        body = r.json()
        assert body["instance"] == r.request.url.path, body
        assert body["request_id"] == r.headers["x-request-id"], body
        assert int(r.headers["content-length"]) == len(r.content)


async def test_a_missing_field_is_named(tenant: TenantClient) -> None:
    r = await tenant.api.post("/v1/debtors", json={"external_ref": "D-9", "country": "PE"})
    assert_problem(r, 422, "validation_error", "name")
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "contact_points": [
        {"kind": "phone"}]})
    assert_problem(r, 422, "validation_error", "contact_points[0].value")
    assert r.json()["errors"][0]["param"] == "contact_points[0].value"
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "nickname": "A"})
    assert_problem(r, 422, "validation_error", "nickname")
    r = await tenant.api.post("/v1/debtors", json={**DEBTOR, "contact_points": [
        {"kind": "phone", "value": "987654321", "extra": 1}]})
    assert_problem(r, 422, "validation_error", "contact_points[0].extra")


async def test_a_wrong_media_type_is_415(tenant: TenantClient) -> None:
    import json

    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        r = await tenant.api.post("/v1/debtors", content=json.dumps(DEBTOR),
                                  headers={"Content-Type": content_type})
        assert_problem(r, 415, "unsupported_media_type", "Content-Type")
    r = await tenant.api.post("/v1/debtors", content=json.dumps(DEBTOR),
                              headers={"Content-Type": "application/merge-patch+json"})
    assert r.status_code == 201, r.text
    assert (await tenant.api.get("/v1/debtors")).json()["data"][0]["external_ref"] == "D-1"


async def test_imports_take_a_multipart_file(tenant: TenantClient) -> None:
    csv = b"type,external_ref,name,country\ndebtor,MP-1,Ana,PE\n"
    r = await tenant.api.post("/v1/imports", files={
        "file": ("debtors.csv", csv, "application/octet-stream")})
    assert r.status_code == 202, r.text
    assert r.json()["format"] == "csv" and r.json()["filename"] == "debtors.csv"
    r = await tenant.api.post("/v1/imports", files={"upload": ("x.csv", csv, "text/csv")})
    assert_problem(r, 422, "missing_file", "file")
    r = await tenant.api.post("/v1/imports", files={"file": ("x.txt", csv, "text/plain")})
    assert_problem(r, 415, "unsupported_media_type", "file")


def test_schema_names_are_generator_friendly(app: Litestar) -> None:
    doc = document(app)
    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", name), name
        assert schema.get("title") == name
    assert schema_name("Page_cartera.portfolio.schemas.DebtorOut_") == "DebtorPage"
    assert schema_name("messaging_schemas_PreviewOut") == "MessagingPreviewOut"
    preview = doc["paths"]["/v1/segments/preview"]["post"]["responses"]["200"]
    assert preview["content"]["application/json"]["schema"] == {
        "$ref": REF + "SegmentationPreviewOut"}
    body = doc["paths"]["/v1/imports"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/x-ndjson", "text/csv"}


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_enums_are_named_once(app: Litestar) -> None:
    doc = document(app)
    schemas = doc["components"]["schemas"]
    for name, schema in schemas.items():
        for prop in schema.get("properties", {}).values():
            assert "enum" not in prop, name  # a property refers to its enum
            assert None not in prop.get("enum", []), name
    for node in _walk(doc["paths"]):
        assert None not in node.get("enum", []), node
    assert schemas["ObligationStatus"]["enum"] == ["open", "paid", "disputed", "written_off",
                                                   "cancelled"]
    assert literal_names()[tuple(schemas["ObligationStatus"]["enum"])] == ["ObligationStatus"]
    assert schemas["JobOut"]["properties"]["status"] == {"$ref": REF + "JobStatus"}
    assert schemas["ImportOut"]["properties"]["status"] == {"$ref": REF + "ImportStatus"}
    channel = schemas["PromiseCreate"]["properties"]["channel"]
    assert channel == {"oneOf": [{"$ref": REF + "Channel"}, {"type": "null"}]}


def test_segment_rules_are_typed(app: Litestar) -> None:
    schemas = document(app)["components"]["schemas"]
    assert schemas["SegmentIn"]["properties"]["rule"]["$ref"] == REF + "SegmentRule"
    assert schemas["SegmentOut"]["properties"]["rule"]["$ref"] == REF + "SegmentRule"
    entry = schemas["VersionIn"]["properties"]["entry_rule"]
    assert entry["oneOf"] == [{"$ref": REF + "SegmentRule"}, {"type": "null"}]
    variants = {v["$ref"].removeprefix(REF) for v in schemas["SegmentRule"]["oneOf"]}
    assert variants == {"RuleAll", "RuleAny", "RuleNot", "RuleComparison"}
    assert schemas["RuleNot"]["properties"]["not"] == {"$ref": REF + "SegmentRule"}
    op = schemas["RuleComparison"]["properties"]["op"]
    assert schemas[op["$ref"].removeprefix(REF)]["enum"] == list(ALL_OPS)
