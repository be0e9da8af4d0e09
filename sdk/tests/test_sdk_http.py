"""The retrying client against a real local HTTP server."""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from cartera_sdk.http import RetryPolicy, make_client, parse_retry_after
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, json_response, run


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _client(server: FakeHTTPServer, sleeps: Sleeps, **kwargs: object) -> httpx.AsyncClient:
    return make_client(server.base_url, sleep=sleeps, **kwargs)  # type: ignore[arg-type]


def test_429_with_retry_after_then_200(fake_http_server: FakeHTTPServer) -> None:
    throttled = json_response({"error": "slow down"}, 429, {"Retry-After": "2"})
    fake_http_server.route("GET", "/v1/payments/1", [throttled, json_response({"ok": 1})])
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps) as client:
            return await client.get("/v1/payments/1")

    response = run(go())
    assert response.status_code == 200
    assert response.json() == {"ok": 1}
    assert sleeps == [2.0]
    first, second = fake_http_server.requests
    assert first.headers["x-request-id"] == second.headers["x-request-id"]


def test_500_is_retried_with_bounded_backoff(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route(
        "GET", "/items", [FakeResponse(500), FakeResponse(503), json_response([1, 2])]
    )
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps, backoff=0.5, retries=3) as client:
            return await client.get("/items")

    assert run(go()).json() == [1, 2]
    assert len(fake_http_server.requests) == 3
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5
    assert 0 <= sleeps[1] <= 1.0


def test_retries_exhausted_returns_last_response(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("GET", "/down", FakeResponse(502))
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps, retries=2) as client:
            return await client.get("/down")

    assert run(go()).status_code == 502
    assert len(fake_http_server.requests) == 3


def test_post_without_idempotency_key_is_not_retried(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("POST", "/v1/charges", [FakeResponse(500), json_response({"id": 1})])
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps) as client:
            return await client.post("/v1/charges", json={"amount": "10.00"})

    assert run(go()).status_code == 500
    assert len(fake_http_server.requests) == 1
    assert sleeps == []


def test_post_with_idempotency_key_is_retried_with_same_body(
    fake_http_server: FakeHTTPServer,
) -> None:
    fake_http_server.route("POST", "/v1/charges", [FakeResponse(503), json_response({"id": 1})])
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps, idempotency_key="idem-1") as client:
            return await client.post("/v1/charges", json={"amount": "10.00"})

    assert run(go()).json() == {"id": 1}
    first, second = fake_http_server.requests
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "idem-1"
    assert first.body == second.body == b'{"amount":"10.00"}'


def test_custom_idempotency_header_counts(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("POST", "/v1/payments", [FakeResponse(500), json_response({"id": 7})])

    async def go() -> httpx.Response:
        async with _client(fake_http_server, Sleeps(), idempotency_header="X-Idempotency-Key") as c:
            return await c.post("/v1/payments", headers={"X-Idempotency-Key": "k"}, json={})

    assert run(go()).json() == {"id": 7}
    assert fake_http_server.requests[1].headers["x-idempotency-key"] == "k"


def test_retry_after_over_cap_is_returned_not_waited(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("GET", "/x", FakeResponse(429, headers={"Retry-After": "3600"}))
    sleeps = Sleeps()

    async def go() -> httpx.Response:
        async with _client(fake_http_server, sleeps, max_retry_after=30) as client:
            return await client.get("/x")

    response = run(go())
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3600"
    assert sleeps == []
    assert len(fake_http_server.requests) == 1


def test_400_is_not_retried(fake_http_server: FakeHTTPServer) -> None:
    fake_http_server.route("GET", "/bad", FakeResponse(400))

    async def go() -> int:
        async with _client(fake_http_server, Sleeps()) as client:
            return (await client.get("/bad")).status_code

    assert run(go()) == 400
    assert len(fake_http_server.requests) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_connection_errors_are_retried_then_raised() -> None:
    sleeps = Sleeps()

    async def go() -> None:
        async with make_client(
            f"http://127.0.0.1:{_closed_port()}", sleep=sleeps, retries=2
        ) as client:
            await client.post("/v1/messages", json={})  # not sent: safe even for POST

    with pytest.raises(httpx.ConnectError):
        run(go())
    assert len(sleeps) == 2


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now) == 30.0
    assert parse_retry_after(earlier, now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_delays_are_jittered_and_capped() -> None:
    policy = RetryPolicy(backoff=1.0, backoff_max=4.0, rng=random.Random(7))
    delays = [policy.delay(n) for n in range(1, 8)]
    assert all(0 <= d <= min(4.0, 2 ** (n - 1)) for n, d in enumerate(delays, start=1))
    assert len(set(delays)) > 1
