"""SSRF: a tenant's provider address cannot make the host reach private space, and the
connection test never reflects what the far end answered."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse

from cartera.integrations.service import egress_policy
from tests.conftest import TEST_EGRESS_ALLOW, TenantClient
from tests.integrations.test_integrations import create


def _fake_dns(monkeypatch: pytest.MonkeyPatch, answers: dict[str, str]) -> None:
    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("base_url", ["https://169.254.169.254/latest/meta-data",
                                      "https://10.0.0.5", "https://[::ffff:192.168.1.1]",
                                      "http://0.0.0.0:8080"])
async def test_private_destinations_are_refused(tenant: TenantClient, base_url: str) -> None:
    integ = await create(tenant, config={"base_url": base_url})
    r = await tenant.api.post(f"/v1/integrations/{integ['id']}/test")
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is False and body["code"] == "egress_refused"
    assert "key-123" not in r.text


async def test_a_name_resolving_to_private_space_is_refused(
        tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, {"sms.partner.test": "172.20.0.9"})
    integ = await create(tenant, config={"base_url": "https://sms.partner.test"})
    r = await tenant.api.post(f"/v1/integrations/{integ['id']}/test")
    assert r.json()["code"] == "egress_refused"
    assert "sms.partner.test resolves to 172.20.0.9" in r.json()["detail"]


async def test_the_connection_test_does_not_echo_the_provider_body(tenant: TenantClient) -> None:
    with FakeHTTPServer() as server:
        server.route("GET", "/ping", FakeResponse(401, "internal-admin-panel secret=hunter2"))
        integ = await create(tenant, config={"base_url": server.base_url})
        r = await tenant.api.post(f"/v1/integrations/{integ['id']}/test")
    assert r.json() == {"ok": False, "detail": "connection test failed: rejected",
                        "code": "rejected"}


def test_the_allow_list_comes_from_the_settings() -> None:
    assert [rule.name or str(rule.network) for rule in egress_policy().allow] == [
        "127.0.0.1/32", "::1/128", "localhost"]
    assert TEST_EGRESS_ALLOW == "127.0.0.1,::1,localhost"
