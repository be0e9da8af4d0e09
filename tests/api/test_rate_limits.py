"""Rate limits on the token endpoint, the public webhook route and expensive operations:
429 problem+json with ``Retry-After`` and the RateLimit headers, keyed by remote address
(token, webhooks) or OAuth client (expensive operations)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.api.app import create_app
from cartera.api.ratelimit import parse_limit
from cartera.jobs.runner import InProcessRunner
from cartera.settings import Settings, install_settings
from tests.api.test_bad_input import assert_problem
from tests.api.test_idempotency import RULES
from tests.conftest import TenantClient, _make_tenant

BASE = "http://testserver.local"


@pytest.fixture
async def strict(settings: Settings) -> AsyncIterator[tuple[Litestar, AsyncTestClient[Litestar]]]:
    tight = dataclasses.replace(settings, rate_limit_token="3/minute",
                                rate_limit_webhooks="2/minute", rate_limit_expensive="2/minute",
                                rate_limit_self_service="2/minute")
    app = create_app(tight, runner_factory=lambda s, sm: InProcessRunner(sm, background=False))
    try:
        async with AsyncTestClient(app, base_url=BASE) as client:
            yield app, client
    finally:
        install_settings(settings)


def _assert_limited(r: httpx.Response, limit: int) -> None:
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-limit"] == str(limit)
    assert r.headers["ratelimit-remaining"] == "0"
    assert int(r.headers["ratelimit-reset"]) <= 60
    assert r.headers["ratelimit-policy"] == f"{limit}; w=60"


async def _token(client: httpx.AsyncClient, tenant: TenantClient) -> httpx.Response:
    return await client.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(tenant.client_id, tenant.client_secret))


async def test_the_token_endpoint_is_limited_per_address(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = strict
    tenant = await _make_tenant(app, client)  # the first token request
    second = await _token(client, tenant)
    assert second.status_code == 200 and second.headers["ratelimit-remaining"] == "1"
    assert (await _token(client, tenant)).status_code == 200
    _assert_limited(await _token(client, tenant), 3)
    elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app, client=("10.0.0.7", 4000)),
                                  base_url=BASE)
    assert (await _token(elsewhere, tenant)).status_code == 200


async def test_revocation_and_introspection_count_with_the_token_endpoint(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = strict
    tenant = await _make_tenant(app, client)  # the first request of this address
    auth = (tenant.client_id, "a guess")
    assert (await client.post("/oauth/introspect", data={"token": "t"}, auth=auth)
            ).status_code == 401
    assert (await client.post("/oauth/revoke", data={"token": "t"}, auth=auth)
            ).status_code == 401
    _assert_limited(await client.post("/oauth/introspect", data={"token": "t"}, auth=auth), 3)


async def test_expensive_operations_are_limited_per_client(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = strict
    one = await _make_tenant(app, client)
    other = await _make_tenant(app, client)
    for _ in range(2):
        assert (await one.api.post("/v1/segments/preview", json=RULES)).status_code == 200
    _assert_limited(await one.api.post("/v1/segments/preview", json=RULES), 2)
    _assert_limited(await one.api.post("/v1/segments/runs", json={}), 2)
    assert (await one.api.get("/v1/debtors")).status_code == 200  # cheap reads are not
    assert (await other.api.post("/v1/segments/preview", json=RULES)).status_code == 200


async def test_a_limited_request_does_not_take_its_idempotency_key(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = strict
    tenant = await _make_tenant(app, client)
    for _ in range(2):
        await tenant.api.post("/v1/segments/preview", json=RULES)
    headers = {"Idempotency-Key": "later"}
    r = await tenant.api.post("/v1/segments/preview", json=RULES, headers=headers)
    assert r.status_code == 429 and "idempotent-replayed" not in r.headers


async def test_the_public_webhook_route_is_limited_per_address(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    _, client = strict
    for _ in range(2):
        r = await client.post("/v1/hooks/987654", content=b"{}")
        assert r.status_code != 429 and r.status_code < 500, r.text
    _assert_limited(await client.post("/v1/hooks/987654", content=b"{}"), 2)


@pytest.mark.parametrize(("text", "parsed"), [("30/minute", ("minute", 30)),
                                              ("5 / second", ("second", 5)),
                                              ("1000/day", ("day", 1000))])
def test_limits_are_read_from_settings(text: str, parsed: tuple[str, int]) -> None:
    assert parse_limit(text) == parsed


@pytest.mark.parametrize("text", ["30", "0/minute", "30/fortnight", "-1/second"])
def test_malformed_limits_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="rate limit"):
        parse_limit(text)


async def test_self_service_is_limited_per_link(
    strict: tuple[Litestar, AsyncTestClient[Litestar]],
) -> None:
    app, client = strict
    tenant = await _make_tenant(app, client)
    api = httpx.AsyncClient(transport=client._transport, base_url=BASE,
                            headers=dict(tenant.api.headers))
    r = await api.post("/v1/debtors", json={"external_ref": "RL-1", "name": "Ana",
                                            "country": "PE"})
    tokens = [(await api.post("/v1/self-service-links", json={
        "debtor_id": r.json()["id"]})).json()["token"] for _ in range(2)]
    first, second = ({"X-Self-Service-Token": t} for t in tokens)
    assert (await client.get("/self-service", headers=first)).status_code == 200
    assert (await client.get("/self-service", headers=first)).status_code == 200
    _assert_limited(await client.get("/self-service", headers=first), 2)
    assert (await client.get("/self-service", headers=second)).status_code == 200
