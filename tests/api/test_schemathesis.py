"""Schemathesis over every operation of the live app, authenticated with an all-scope token:
no 5xx, and every status, content type and body matches the OpenAPI document.

The app runs in a synchronous test client (its own event loop, lifespan included) so that
schemathesis' synchronous hypothesis tests can call it; the data it generates lands in a
tenant of its own. Examples per operation are few and derandomised to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from litestar import Litestar
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cartera.api.app import create_app
from cartera.api.openapi import build_document
from cartera.auth.clients import create_client
from cartera.settings import Settings
from cartera.tenants.service import create_tenant

BASE_URL = "http://testserver.local"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]

pytestmark = pytest.mark.slow


async def _token(app: Litestar, client: TestClient[Litestar]) -> tuple[str, str]:
    async with app.state.ctx.sessionmaker() as session:
        tenant = await create_tenant(session, slug="schemathesis", name="Schemathesis",
                                     country="PE", currency="PEN")
        oauth, secret = await create_client(session, tenant.id, "schemathesis")
        await session.commit()
    return oauth.client_id, secret


@pytest.fixture(scope="module")
def live(settings: Settings) -> Iterator[tuple[TestClient[Litestar], str]]:
    app = create_app(settings)
    with TestClient(app, base_url=BASE_URL) as client:
        client_id, secret = client.blocking_portal.call(_token, app, client)
        r = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        auth=(client_id, secret))
        assert r.status_code == 200, r.text
        yield client, r.json()["access_token"]


# The document the app serves (building the app needs no database); one test per operation.
schema = schemathesis.openapi.from_dict(build_document())


def _send(client: TestClient[Litestar], kwargs: dict[str, Any]) -> Any:
    """Schemathesis prepares requests-style arguments; the test client is httpx."""
    data = kwargs.pop("data", None)
    if isinstance(data, (bytes, str)):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    if kwargs.get("files"):  # generated multipart parts may be any JSON value: send text
        kwargs["files"] = [(name, (part[0], part[1] if isinstance(part[1], (bytes, str))
                                   else str(part[1]).encode(), *part[2:]))
                           for name, part in kwargs["files"]]
    for unsupported in ("verify", "allow_redirects", "stream", "proxies", "cert"):
        kwargs.pop(unsupported, None)
    # No operation takes a cookie (bearer tokens only); httpx deprecates per-request cookies.
    assert not kwargs.pop("cookies", None), "an operation declares a cookie parameter"
    # Header values go on the wire as bytes; httpx only takes ASCII strings.
    kwargs["headers"] = {k: v.encode() if isinstance(v, str) and not v.isascii() else v
                         for k, v in kwargs.get("headers", {}).items()}
    response = client.request(**kwargs)
    # A multipart upload (POST /v1/imports) is streamed; the checks read the request back.
    response.request.read()
    return response


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case: Any, live: tuple[TestClient[Litestar], str]) -> None:
    client, token = live
    kwargs = case.as_transport_kwargs(base_url=BASE_URL,
                                      headers={"Authorization": f"Bearer {token}"})
    response = _send(client, kwargs)
    case.validate_response(response, checks=CHECKS)
