"""ETag on single-object reads, If-Match on their updates: a stale write is 412 and changes
nothing, so two collectors editing one debtor don't overwrite each other."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar

from cartera.api.etag import _stamps, etag
from cartera.api.openapi import document
from tests.api.test_bad_input import DEBTOR, OBLIGATION, assert_problem
from tests.conftest import TenantClient


async def _conditional_update(tenant: TenantClient, path: str, change: dict[str, Any],
                              other: dict[str, Any], *, method: str = "PATCH",
                              tag: str | None = None) -> None:
    """Read (or take ``tag``), write with If-Match, then a write with the old tag is 412."""
    if tag is None:
        read = await tenant.api.get(path)
        assert read.status_code == 200, read.text
        tag = read.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    first = await tenant.api.request(method, path, json=change, headers={"If-Match": tag})
    assert first.status_code == 200, first.text
    new_tag = first.headers["etag"]
    assert new_tag != tag
    stale = await tenant.api.request(method, path, json=other, headers={"If-Match": tag})
    assert_problem(stale, 412, "precondition_failed", "If-Match")
    if method == "PATCH" and path.count("/") <= 3:
        after = await tenant.api.get(path)
        assert after.headers["etag"] == new_tag
        assert all(after.json()[k] == v for k, v in change.items())
    again = await tenant.api.request(method, path, json=other,
                                     headers={"If-Match": f'"nope", {new_tag}'})
    assert again.status_code == 200, again.text
    assert (await tenant.api.request(method, path, json=change,
                                     headers={"If-Match": "*"})).status_code == 200
    assert (await tenant.api.request(method, path, json=other)).status_code == 200


async def test_debtor_updates_are_conditional(tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    await _conditional_update(tenant, f"/v1/debtors/{debtor['id']}", {"name": "Ana B"},
                              {"name": "Ana C"})


async def test_a_garbage_or_foreign_tag_is_412_and_another_tenants_debtor_404(
        tenant: TenantClient, make_tenant: Any) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    path = f"/v1/debtors/{debtor['id']}"
    for garbage in ("abc", '"zz"', 'W/"1"', '""'):
        r = await tenant.api.patch(path, json={"name": "X"}, headers={"If-Match": garbage})
        assert_problem(r, 412, "precondition_failed", "If-Match")
    assert (await tenant.api.get(path)).json()["name"] == DEBTOR["name"]
    other = await make_tenant()
    tag = (await tenant.api.get(path)).headers["etag"]
    r = await other.api.patch(path, json={"name": "X"}, headers={"If-Match": tag})
    assert_problem(r, 404, "not_found")


async def test_other_resources_are_conditional(tenant: TenantClient) -> None:
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    portfolio = (await tenant.api.post("/v1/portfolios", json={"code": "P", "name": "P"})).json()
    await _conditional_update(tenant, f"/v1/portfolios/{portfolio['id']}", {"name": "Q"},
                              {"name": "R"})
    obligation = (await tenant.api.post("/v1/obligations", json=OBLIGATION)).json()
    await _conditional_update(tenant, f"/v1/obligations/{obligation['id']}",
                              {"product": "a"}, {"product": "b"})
    created = await tenant.api.post(f"/v1/debtors/{debtor['id']}/contact-points",
                                    json={"kind": "email", "value": "ana@example.pe"})
    assert created.status_code == 201, created.text
    await _conditional_update(
        tenant, f"/v1/debtors/{debtor['id']}/contact-points/{created.json()['id']}",
        {"label": "work"}, {"label": "home"}, tag=created.headers["etag"])
    template = await tenant.api.post("/v1/templates", json={
        "code": "t1", "name": "T", "channel": "sms", "locale": "es-PE",
        "body": "Hola {{ debtor.name }}"})
    assert template.status_code == 201, template.text
    await _conditional_update(tenant, f"/v1/templates/{template.json()['id']}",
                              {"name": "T2"}, {"name": "T3"})


async def test_concurrent_conditional_writes_one_wins(tenant: TenantClient) -> None:
    """Both collectors read the same version; exactly one write lands (on PostgreSQL the
    second waits on the row lock, then finds the tag moved)."""
    debtor = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    path = f"/v1/debtors/{debtor['id']}"
    tag = (await tenant.api.get(path)).headers["etag"]
    answers = await asyncio.gather(*(
        tenant.api.patch(path, json={"name": f"Collector {i}"}, headers={"If-Match": tag})
        for i in range(4)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200, 412, 412, 412], [r.text for r in answers]
    winner = next(r for r in answers if r.status_code == 200)
    final = await tenant.api.get(path)
    assert final.json()["name"] == winner.json()["name"]
    assert final.headers["etag"] == winner.headers["etag"]


def test_tags_round_trip() -> None:
    from datetime import UTC, datetime

    stamp = datetime(2026, 12, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert _stamps(etag(stamp)) == [stamp]
    assert _stamps("*") is None and _stamps('W/"zz", x') == []


def test_the_document_declares_tags(app: Litestar) -> None:
    doc = document(app)
    for path, item in doc["paths"].items():
        for method in ("patch", "put"):
            op = item.get(method)
            if op is None or not any(p.get("name") == "If-Match"
                                     for p in op.get("parameters", [])):
                continue
            assert "412" in op["responses"], path
            assert "ETag" in op["responses"]["200"]["headers"], path
    for path in ("/v1/debtors/{debtor_id}", "/v1/obligations/{obligation_id}",
                 "/v1/templates/{template_id}", "/v1/strategies/{strategy_id}",
                 "/v1/portfolios/{portfolio_id}"):
        assert "ETag" in doc["paths"][path]["get"]["responses"]["200"]["headers"], path
        assert any(p["name"] == "If-Match" for p in doc["paths"][path]["patch"]["parameters"])


async def test_integrations_and_webhook_endpoints_are_conditional(tenant: TenantClient) -> None:
    created = await tenant.api.post("/v1/webhook-endpoints", json={
        "url": "https://example.com/hook", "event_types": ["*"]})
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["endpoint"]["id"]
    assert created.headers["location"] == f"/v1/webhook-endpoints/{endpoint_id}"
    await _conditional_update(tenant, f"/v1/webhook-endpoints/{endpoint_id}",
                              {"description": "a"}, {"description": "b"})
    integration = await tenant.api.post("/v1/integrations", json={
        "name": "SMS", "provider_kind": "channel", "provider_name": "fixture_sms",
        "config": {"base_url": "https://sms.example.com", "sender": "ACME"},
        "secrets": {"api_key": "key-123", "webhook_secret": "whsec"}})
    assert integration.status_code == 201, integration.text
    await _conditional_update(tenant, f"/v1/integrations/{integration.json()['id']}",
                              {"name": "SMS 2"}, {"name": "SMS 3"})
