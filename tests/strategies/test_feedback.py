"""Outcome feedback: a failed message, or one not delivered in time, is followed by an
action for the next channel of its step's fallback, once, and gated like any contact."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest
from litestar import Litestar

from cartera import clock
from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.strategies.dispatch import queue_due_dispatches
from cartera.strategies.feedback import fall_back
from tests.conftest import TenantClient
from tests.segmentation.test_segments import debtor
from tests.strategies.helpers import ALWAYS, actions, segments, sms_integration, strategy, template


def _server(status: int) -> Iterator[FakeHTTPServer]:
    counter = iter(range(1, 10_000))

    def messages(req: RecordedRequest) -> FakeResponse:
        if status >= 400:
            return FakeResponse(status, {"error": "invalid number"})
        return FakeResponse(201, {"id": f"s-{next(counter)}"})

    with FakeHTTPServer() as server:
        server.route("POST", "/messages", messages)
        yield server


@pytest.fixture
def refusing() -> Iterator[FakeHTTPServer]:
    yield from _server(400)


@pytest.fixture
def accepting() -> Iterator[FakeHTTPServer]:
    yield from _server(201)


async def _setup(t: TenantClient, server: FakeHTTPServer, after: int | None) -> int:
    seg = await segments(t)
    await sms_integration(t, server)
    sms, mail = await template(t), await template(t, "email", "mail")
    sms_channel: dict[str, Any] = {"channel": "sms", "template_id": sms}
    if after is not None:
        sms_channel["fallback_after_hours"] = after
    await strategy(t, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [sms_channel, {"channel": "email", "template_id": mail}]},
        {"key": "two", "kind": "message", "anchor": "previous_step", "offset_days": 5,
         "window": ALWAYS, "channels": [{"channel": "sms", "template_id": sms}]}])
    return await debtor(t, "FB", ("PEN", "80.00", 9), contact_points=[
        {"kind": "phone", "value": "+51999333444", "consent": "granted"},
        {"kind": "email", "value": "fb@example.com", "consent": "granted"}])


async def _dispatch(app: Litestar, run_jobs: Any) -> None:
    await queue_due_dispatches(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()


async def _fall_back(app: Litestar, t: TenantClient, hours: float = 0) -> dict[str, int]:
    async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
        return await fall_back(session, current_host(), t.tenant_id,
                               clock.now() + timedelta(hours=hours))


async def test_a_failed_message_falls_back_to_the_next_channel_once(
        tenant: TenantClient, app: Litestar, refusing: FakeHTTPServer, run_jobs: Any) -> None:
    d = await _setup(tenant, refusing, None)
    await _dispatch(app, run_jobs)
    [first] = await actions(tenant, debtor_id=d)
    interaction = (await tenant.api.get(
        f"/v1/interactions/{first['outcome']['interaction_id']}")).json()
    assert interaction["status"] == "failed", interaction
    assert await _fall_back(app, tenant) == {"failed": 1}
    assert await _fall_back(app, tenant) == {}  # once
    got = {(x["attempt"]): x for x in await actions(tenant, debtor_id=d)}
    assert got[0]["status"] == "done"
    assert got[0]["outcome"]["result"] == "failed"
    assert got[0]["outcome"]["fallback"] == {"channel": "email", "attempt": 1}
    fb = got[1]
    assert (fb["channel"], fb["step_key"], fb["due_on"], fb["fallback_of"]) == (
        "email", "one", first["due_on"], first["id"])
    assert fb["status"] == "planned" and fb["verdict"]["decision"] == "allow", fb
    assert fb["verdict"]["channel"] == "email"


async def test_no_delivery_in_time_falls_back(tenant: TenantClient, app: Litestar,
                                              accepting: FakeHTTPServer,
                                              run_jobs: Any) -> None:
    d = await _setup(tenant, accepting, 2)
    await _dispatch(app, run_jobs)
    [first] = await actions(tenant, debtor_id=d)
    assert first["status"] == "dispatched"
    assert await _fall_back(app, tenant, hours=1) == {}  # not yet
    assert await _fall_back(app, tenant, hours=3) == {"not_delivered": 1}
    got = {x["attempt"]: x for x in await actions(tenant, debtor_id=d)}
    assert got[0]["outcome"]["result"] == "not_delivered"
    assert got[0]["outcome"]["status"] == "sent"
    assert got[1]["channel"] == "email" and got[1]["fallback_of"] == first["id"]


async def test_fallback_after_hours_needs_a_next_channel(tenant: TenantClient) -> None:
    seg = await segments(tenant)
    sms = await template(tenant)
    r = await tenant.api.post("/v1/strategies", json={
        "code": "bad", "name": "bad", "version": {"segment_ids": [seg["late"]], "steps": [{
            "key": "one", "kind": "message", "channels": [
                {"channel": "sms", "template_id": sms, "fallback_after_hours": 4}]}]}})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == (
        "no_fallback_channel", "steps[0].channels[0].fallback_after_hours")
