"""``/v1/tenants`` for platform operators (``platform:admin``, granted by the CLI only)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from cartera.auth.clients import create_client
from cartera.auth.scopes import DEFAULT_CLIENT_SCOPES
from cartera.cli import main
from cartera.settings import Settings
from tests.api.test_bad_input import assert_problem
from tests.auth.helpers import bearer, token_for
from tests.conftest import TenantClient

ACME = {"slug": "acme-pe", "name": "Acme Perú", "country": "PE", "default_currency": "PEN"}


@pytest.fixture
async def operator(app: Litestar, http: AsyncTestClient[Litestar],
                   tenant: TenantClient) -> AsyncIterator[httpx.AsyncClient]:
    async with app.state.ctx.sessionmaker() as session:
        client, secret = await create_client(session, tenant.tenant_id, "ops",
                                             ["platform:admin"])
        await session.commit()
    async with bearer(http, await token_for(http, client.client_id, secret)) as api:
        yield api


def _slug(prefix: str) -> str:
    import secrets

    return f"{prefix}-{secrets.token_hex(4)}"


async def test_operator_creates_lists_and_reads_tenants(operator: httpx.AsyncClient) -> None:
    slug = _slug("acme")
    r = await operator.post("/v1/tenants", json={**ACME, "slug": slug})
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/v1/tenants/{created['id']}"
    assert (created["slug"], created["timezone"]) == (slug, "America/Lima")
    assert (await operator.get(f"/v1/tenants/{created['id']}")).json() == created
    seen: list[int] = []
    cursor: int | None = None
    while True:
        page = (await operator.get("/v1/tenants", params={"limit": 100, **(
            {"starting_after": cursor} if cursor else {})})).json()
        seen += [t["id"] for t in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert created["id"] in seen
    again = await operator.post("/v1/tenants", json={**ACME, "slug": slug})
    assert_problem(again, 409, "already_exists", "slug")


@pytest.mark.parametrize(("change", "code", "param"), [
    ({"country": "XX"}, "validation_error", "country"),
    ({"default_currency": "XYZ"}, "validation_error", "default_currency"),
    ({"timezone": "Mars/Olympus"}, "validation_error", "timezone"),
    ({"slug": "Not A Slug"}, "validation_error", "slug"),
    ({"name": 5}, "validation_error", "name"),
    ({"colour": "red"}, "validation_error", None),
])
async def test_create_bad_input(operator: httpx.AsyncClient, change: dict[str, Any],
                                code: str, param: str | None) -> None:
    r = await operator.post("/v1/tenants", json={**ACME, "slug": _slug("bad"), **change})
    assert_problem(r, 422, code, param)


async def test_unknown_tenant_malformed_and_unknown_parameter(
        operator: httpx.AsyncClient) -> None:
    assert_problem(await operator.get("/v1/tenants/999999999"), 404, "not_found", "tenant_id")
    r = await operator.post("/v1/tenants", content=b"{", headers={
        "Content-Type": "application/json"})
    assert_problem(r, 400, "malformed_json")
    assert_problem(await operator.get("/v1/tenants", params={"x": "1"}), 400,
                   "unknown_parameter")


async def test_tenant_clients_cannot_manage_tenants(tenant: TenantClient) -> None:
    assert "platform:admin" not in DEFAULT_CLIENT_SCOPES
    for method, path in (("GET", "/v1/tenants"), ("POST", "/v1/tenants"),
                         ("GET", f"/v1/tenants/{tenant.tenant_id}")):
        r = await tenant.api.request(method, path, json=ACME if method == "POST" else None)
        assert_problem(r, 403, "insufficient_scope")


def test_cli_grants_the_platform_scope(settings: Settings, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTERA_DATABASE_URL", settings.database_url)
    from cartera.settings import clear_settings_cache, install_settings

    clear_settings_cache()
    slug = _slug("cli")
    try:
        assert main(["tenants", "create", slug, "--country", "PE", "--currency", "PEN"]) == 0
        assert main(["clients", "create", "--tenant", slug, "--name", "ops", "--platform"]) == 0
        assert main(["clients", "create", "--tenant", slug, "--name", "app"]) == 0
    finally:
        install_settings(settings)
    out = capsys.readouterr().out
    granted = re.findall(r"scopes:\s+(.*)", out)
    assert "platform:admin" in granted[0].split()
    assert "platform:admin" not in granted[1].split()
    assert "portfolio:write" in granted[1].split()
