"""Egress rules: resolve once, refuse non-public addresses, pin the checked address, TLS only.

Names are resolved by a fake ``getaddrinfo``; the network backend under the policy records
where it was asked to connect and never connects, so no traffic leaves loopback.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx
import pytest

from cartera_sdk.egress import AllowRule, EgressPolicy, EgressRefused
from cartera_sdk.http import make_client
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, run


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, backend: RecordingBackend) -> None:
        self._backend = backend

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        raise httpcore.ReadError("recording backend")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        raise httpcore.WriteError("recording backend")

    async def aclose(self) -> None:
        pass

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None,  # noqa: ASYNC109
                        ) -> httpcore.AsyncNetworkStream:
        self._backend.tls_names.append(server_hostname)
        raise httpcore.ConnectError("recording backend: no TLS")


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records connect targets; never opens a socket."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.tls_names: list[str | None] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Sequence[Any]] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return _Stream(self)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Sequence[Any]] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        raise AssertionError("no unix sockets")

    async def sleep(self, seconds: float) -> None:
        pass


class FakeDns:
    """``socket.getaddrinfo`` answering from a table; each name's answers in turn."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def __call__(self, host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        self.calls.append(host)
        answers = self.table[host]
        addresses = answers[min(len(self.calls_for(host)), len(answers)) - 1]
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port)) for a in addresses]

    def calls_for(self, host: str) -> list[str]:
        return [c for c in self.calls if c == host]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    fake = FakeDns({
        "api.provider.test": [["93.184.215.14"]],
        "internal.provider.test": [["10.0.0.7"]],
        "mixed.provider.test": [["93.184.215.14", "192.168.1.5"]],
        "rebind.provider.test": [["93.184.215.14"], ["127.0.0.1"]],
        "metadata.provider.test": [["::ffff:169.254.169.254"]],
    })
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def _get(policy: EgressPolicy, url: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with make_client(url, retries=0, transport=policy.transport()) as client:
            return await client.get("/ping")

    return run(go())


@pytest.mark.parametrize("url", [
    "https://127.0.0.1", "https://10.1.2.3", "https://172.16.0.1", "https://192.168.0.10",
    "https://169.254.169.254", "https://0.0.0.0", "https://224.0.0.1", "https://100.64.0.1",
    "https://[::1]", "https://[::ffff:127.0.0.1]", "https://[fd00::1]", "https://[::]",
    "https://[ff02::1]",
])
def test_non_public_literal_addresses_are_refused_before_connecting(url: str) -> None:
    backend = RecordingBackend()
    with pytest.raises(EgressRefused) as refused:
        _get(EgressPolicy().with_backend(backend), url)
    assert backend.connects == []
    assert "address" in refused.value.reason


@pytest.mark.parametrize("name", ["internal.provider.test", "mixed.provider.test",
                                  "metadata.provider.test"])
def test_names_resolving_to_private_space_are_refused(dns: FakeDns, name: str) -> None:
    backend = RecordingBackend()
    with pytest.raises(EgressRefused) as refused:
        _get(EgressPolicy().with_backend(backend), f"https://{name}")
    assert backend.connects == []
    assert refused.value.reason.startswith(f"{name} resolves to")


def test_the_connection_goes_to_the_checked_address_with_the_name_for_tls(dns: FakeDns) -> None:
    backend = RecordingBackend()
    with pytest.raises(httpx.ConnectError):
        _get(EgressPolicy().with_backend(backend), "https://api.provider.test")
    assert backend.connects == [("93.184.215.14", 443)]
    assert backend.tls_names == ["api.provider.test"]


def test_dns_rebinding_between_check_and_connect_cannot_redirect(dns: FakeDns) -> None:
    """The name answers a public address first and loopback afterwards: the connection
    is made to the address that was checked, from a single resolution."""
    backend = RecordingBackend()
    with pytest.raises(httpx.ConnectError):
        _get(EgressPolicy().with_backend(backend), "https://rebind.provider.test")
    assert dns.calls_for("rebind.provider.test") == ["rebind.provider.test"]
    assert backend.connects == [("93.184.215.14", 443)]


def test_plain_http_is_refused_unless_allow_listed(dns: FakeDns) -> None:
    backend = RecordingBackend()
    with pytest.raises(EgressRefused, match="not encrypted"):
        _get(EgressPolicy().with_backend(backend), "http://api.provider.test")
    assert dns.calls == []
    assert backend.connects == []


def test_the_allow_list_admits_loopback_over_http(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("GET", "/ping", FakeResponse(204))
    port = int(fake_http_server.base_url.rsplit(":", 1)[1])
    assert _get(EgressPolicy.parse(f"127.0.0.1:{port}"), fake_http_server.base_url
                ).status_code == 204
    with pytest.raises(EgressRefused):  # another port of the same address is not listed
        _get(EgressPolicy.parse(f"127.0.0.1:{port + 1}"), fake_http_server.base_url)
    assert len(fake_http_server.requests) == 1


def test_an_allowed_network_admits_names_resolving_into_it(dns: FakeDns) -> None:
    backend = RecordingBackend()
    with pytest.raises(httpx.ConnectError):
        _get(EgressPolicy.parse("10.0.0.0/8").with_backend(backend),
             "https://internal.provider.test")
    assert backend.connects == [("10.0.0.7", 443)]


def test_allow_rules_parse() -> None:
    assert AllowRule.parse("localhost") == AllowRule(name="localhost")
    assert AllowRule.parse("Relay.Example.:25") == AllowRule(name="relay.example", port=25)
    rule = AllowRule.parse("[::1]:8080")
    assert rule.port == 8080
    assert rule.matches_name("::1", 8080)
    assert AllowRule.parse("10.0.0.0/8").matches_name("10.2.3.4", 1)


def test_sockets_for_other_protocols_follow_the_same_rules(dns: FakeDns) -> None:
    policy = EgressPolicy()
    with pytest.raises(EgressRefused):
        run(policy.connect("internal.provider.test", 587))
    with pytest.raises(EgressRefused, match="not encrypted"):
        run(policy.connect("api.provider.test", 25, encrypted=False, what="smtp"))
