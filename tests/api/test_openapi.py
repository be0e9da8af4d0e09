"""The OpenAPI document: served at /docs, complete, and equal to the committed copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.api.openapi import REGENERATE, render
from cartera.clock import today_in

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


async def _served(http: AsyncTestClient[Litestar]) -> dict[str, Any]:
    r = await http.get("/docs/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


async def test_committed_document_equals_what_the_app_serves(
    http: AsyncTestClient[Litestar],
) -> None:
    served = render(await _served(http))
    assert COMMITTED.exists(), f"{COMMITTED} is missing: run `{REGENERATE}`"
    assert COMMITTED.read_text(encoding="utf-8") == served, (
        f"openapi/openapi.json differs from what the app serves: run `{REGENERATE}` "
        "and commit the result")


async def test_docs_page_and_openapi_31(http: AsyncTestClient[Litestar]) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "swagger-ui" in page.text.lower()
    doc = await _served(http)
    assert doc["openapi"].startswith("3.1")


async def test_every_operation_is_documented(http: AsyncTestClient[Litestar]) -> None:
    doc = await _served(http)
    schemes = doc["components"]["securitySchemes"]
    flow = schemes["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth/token" and "portfolio:write" in flow["scopes"]
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "param", "instance", "request_id",
            "errors"} <= set(problem["properties"])
    for path, item in doc["paths"].items():
        for method, op in item.items():
            where = f"{method.upper()} {path}"
            assert op.get("summary") and op.get("description"), where
            assert op.get("operationId"), where
            responses = op["responses"]
            assert any(s.startswith("2") for s in responses), where
            assert "500" in responses, where
            for status, response in responses.items():
                if int(status) >= 400 and not path.startswith("/oauth/"):
                    ref = response.get("$ref") or response["content"][
                        "application/problem+json"]["schema"]["$ref"]
                    assert ref.endswith(("Problem", *doc["components"]["responses"])), where
            if op.get("security"):
                if path.startswith("/oauth/"):
                    continue
                assert {"401", "403"} <= set(responses), where
                (scheme, scopes), = op["security"][0].items()
                if path.startswith("/self-service"):  # a debtor's link token, no OAuth
                    assert scheme == "self_service_token" and not scopes, where
                    continue
                assert scheme == "oauth2" and scopes, where
            if "{" in path:
                assert "404" in responses, where
            if method == "post" and op.get("security") and not path.startswith("/oauth/"):
                if op["operationId"].startswith("Create"):
                    assert {"201", "202"} & set(responses), where
                names = [p.get("$ref", "") for p in op["parameters"]]
                assert "#/components/parameters/IdempotencyKey" in names, where
            if method == "delete":
                assert "204" in responses, where


async def test_token_endpoint_is_form_encoded_with_rfc6749_errors(
    http: AsyncTestClient[Litestar],
) -> None:
    op = (await _served(http))["paths"]["/oauth/token"]["post"]
    assert list(op["requestBody"]["content"]) == ["application/x-www-form-urlencoded"]
    assert {"200", "400", "401"} <= set(op["responses"])
    assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "OAuthError")


async def test_create_operations_have_examples(http: AsyncTestClient[Litestar]) -> None:
    doc = await _served(http)
    for path in ("/v1/debtors", "/v1/obligations", "/v1/payments", "/v1/portfolios"):
        media = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert media["examples"]["default"]["value"], path


async def test_a_body_that_may_be_left_out_is_not_required(
        http: AsyncTestClient[Litestar], tenant: Any) -> None:
    paths = (await _served(http))["paths"]
    assert paths["/v1/promises/{promise_id}/cancel"]["post"]["requestBody"]["required"] is False
    assert paths["/v1/segments/runs"]["post"]["requestBody"]["required"] is False
    assert paths["/v1/promises"]["post"]["requestBody"]["required"] is True
    # and it may really be left out
    debtor = await tenant.api.post("/v1/debtors", json={"external_ref": "OB", "name": "OB",
                                                        "country": "PE"})
    promise = await tenant.api.post("/v1/promises", json={
        "debtor_id": debtor.json()["id"], "currency": "PEN", "amount": "10.00",
        "promised_date": today_in("America/Lima").isoformat()})
    cancelled = await tenant.api.post(f"/v1/promises/{promise.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
