"""The OpenAPI document says what the server does: closed bodies, exact integer bounds that
are enforced, the Idempotency-Key pattern, webhook 401s, rate-limit 429s, every method in
OPTIONS, and one vocabulary of aging buckets."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar

from cartera.api.idempotency import KEY_PATTERN
from cartera.api.openapi import document, request_structs
from cartera.api.pagination import MAX_ID
from cartera.portfolio.aging import BUCKET_NAMES
from tests.api.test_bad_input import DEBTOR, OBLIGATION, assert_problem
from tests.conftest import TenantClient

METHODS = ("get", "post", "put", "patch", "delete")


def _walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _param(app: Litestar, path: str, method: str, name: str) -> dict[str, Any]:
    params = document(app)["paths"][path][method]["parameters"]
    return next(p for p in params if p.get("name") == name)


def test_bodies_that_forbid_extra_fields_say_so(app: Litestar) -> None:
    schemas = document(app)["components"]["schemas"]
    closed = [cls.__name__ for cls in request_structs(app)
              if cls.__struct_config__.forbid_unknown_fields]
    assert len(closed) > 20
    assert [n for n in closed if schemas[n].get("additionalProperties") is not False] == []


def test_numeric_bounds_are_exact_integers(app: Litestar) -> None:
    floats = [(k, node[k]) for node in _walk(document(app)) for k in
              ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
              if isinstance(node.get(k), float)]
    assert floats == []
    assert _param(app, "/v1/debtors", "get", "dpd_min")["schema"]["minimum"] == 0
    limit = _param(app, "/v1/debtors", "get", "limit")["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, 100)
    ident = _param(app, "/v1/debtors/{debtor_id}", "get", "debtor_id")["schema"]
    assert (ident["minimum"], ident["maximum"]) == (1, MAX_ID)


@pytest.mark.parametrize("query", [{"dpd_min": -1}, {"limit": 0}, {"limit": 101},
                                   {"starting_after": MAX_ID + 1}, {"dpd_max": 36_501}])
async def test_declared_bounds_are_enforced(tenant: TenantClient, query: dict[str, int]) -> None:
    r = await tenant.api.get("/v1/debtors", params=query)
    assert_problem(r, 422, "validation_error", next(iter(query)))


def test_the_idempotency_key_pattern_is_the_enforced_one(app: Litestar) -> None:
    header = document(app)["components"]["parameters"]["IdempotencyKey"]
    assert header["schema"]["pattern"] == KEY_PATTERN


def test_webhook_and_rate_limit_answers_are_documented(app: Litestar) -> None:
    paths = document(app)["paths"]
    hooks = [item["post"] for path, item in paths.items()
             if path.startswith("/v1/hooks/") and "post" in item]
    assert hooks and all("401" in op["responses"] and "429" in op["responses"] for op in hooks)
    for path, method in (("/oauth/token", "post"), ("/v1/imports", "post"),
                         ("/v1/segments/runs", "post"), ("/v1/segments/preview", "post"),
                         ("/v1/messages", "post")):
        assert "429" in paths[path][method]["responses"], path
    limited = document(app)["components"]["responses"]["TooManyRequests"]
    assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
            "RateLimit-Reset"} <= set(limited["headers"])


async def test_options_lists_every_method_of_the_path(app: Litestar,
                                                      tenant: TenantClient) -> None:
    import re

    for path, item in document(app)["paths"].items():
        documented = {m.upper() for m in item if m in METHODS} | {"OPTIONS"}
        r = await tenant.api.options(re.sub(r"{\w+}", "1", path))
        assert r.status_code == 204, (path, r.text)
        assert set(r.headers["allow"].split(", ")) == documented, path


async def test_aging_buckets_are_one_vocabulary(app: Litestar, tenant: TenantClient) -> None:
    schemas = document(app)["components"]["schemas"]
    # one named enum, referenced by both uses
    assert schemas["BucketRow"]["properties"]["bucket"] == {
        "$ref": "#/components/schemas/BucketName"}
    balance = schemas["CurrencyBalance"]["properties"]["aging_bucket"]
    assert {"$ref": "#/components/schemas/BucketName"} in balance.get("oneOf", [balance])
    assert schemas["BucketName"]["enum"] == list(BUCKET_NAMES)
    description = document(app)["paths"]["/v1/aging"]["get"]["description"]
    assert all(f"`{name}`" in description for name in BUCKET_NAMES)
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    await tenant.api.post("/v1/obligations", json={**OBLIGATION, "due_date": "2024-01-01"})
    report = (await tenant.api.get("/v1/aging", params={"as_of": "2024-03-01"})).json()
    labels = {b["bucket"] for c in report["currencies"] for b in c["buckets"]}
    assert labels and labels <= set(BUCKET_NAMES)
    r = await tenant.api.get(f"/v1/debtors/{debtor['id']}/balance",
                             params={"as_of": "2024-03-01"})
    assert r.json()["balances"][0]["aging_bucket"] == "31_60"
