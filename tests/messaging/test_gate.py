"""The contact gate: consent, opt-outs, contact kinds, and the country's compliance packs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cartera_sdk.compliance import Allow, Deny, PlannedContact, Reason
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse
from litestar import Litestar

from cartera.db.engine import make_engine, make_sessionmaker
from cartera.jobs.registry import JobContext
from cartera.messaging import batch, gate
from cartera.plugins.registry import current_host
from cartera.portfolio.models import ContactPoint, Debtor
from cartera.settings import get_settings
from tests.conftest import TenantClient
from tests.messaging.test_batch import _debtors, _send, _setup
from tests.messaging.test_sending import RunJobs

pytestmark = pytest.mark.usefixtures("http")  # the app must be running (plugins loaded)


def debtor(country: str = "AR") -> Debtor:
    return Debtor(id=1, tenant_id=1, external_ref="x", kind="person", name="Ana",
                  country=country, subdivision=None,
                  timezone="America/Argentina/Buenos_Aires", attributes={})


def phone(**over: object) -> ContactPoint:
    values: dict[str, object] = {"id": 1, "debtor_id": 1, "kind": "phone",
                                 "value": "+5491112345678", "consent": "granted",
                                 "opted_out_channels": []}
    values.update(over)
    return ContactPoint(**values)


async def judge(app: Litestar, cp: ContactPoint | None, channel: str, at: datetime,
                country: str = "AR") -> gate.schemas.Verdict:
    async with app.state.ctx.sessionmaker() as session:
        return await gate.judge(session, current_host(), debtor(country), cp, channel, at)


async def test_pack_allows_defers_and_denies_with_reasons(app: Litestar) -> None:
    noon = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 12:00 in Buenos Aires
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)  # 20:30 in Buenos Aires
    allowed = await judge(app, phone(), "sms", noon)
    assert (allowed.decision, allowed.reasons[0].code) == ("allow", "within_hours")
    deferred = await judge(app, phone(), "sms", late)
    assert deferred.decision == "defer"
    assert deferred.until == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # 08:00 next day
    assert deferred.reasons[0].source == "fixture_ar"
    denied = await judge(app, phone(), "voice", noon)
    assert (denied.decision, denied.reasons[0].rule_ref) == ("deny", "fixture 1")


async def test_consent_opt_out_and_kind_come_first(app: Litestar) -> None:
    noon = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    cases = [(None, "no_contact_point"), (phone(kind="email"), "wrong_contact_kind"),
             (phone(consent="revoked"), "consent_revoked"),
             (phone(opted_out_channels=["sms"]), "opted_out")]
    for cp, code in cases:
        verdict = await judge(app, cp, "sms", noon)
        assert (verdict.decision, verdict.reasons[0].code) == ("deny", code)


async def test_countries_without_a_pack_are_allowed_and_say_so(app: Litestar) -> None:
    verdict = await judge(app, phone(), "sms", datetime(2026, 11, 24, 15, tzinfo=UTC), "PE")
    assert (verdict.decision, verdict.reasons[0].code) == ("allow", "no_compliance_pack")


def test_deny_beats_defer_beats_allow() -> None:
    from cartera_sdk.compliance import Allow, Defer, Deny, Reason

    r = [Reason(code="c", message="m")]
    until = datetime(2026, 1, 1, tzinfo=UTC)
    assert gate.combine([("a", Allow(reasons=r)), ("b", Defer(until=until, reasons=r))]
                        ).decision == "defer"
    assert gate.combine([("a", Deny(reasons=r)), ("b", Defer(until=until, reasons=r))]
                        ).decision == "deny"


@pytest.fixture
def provider() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        server.route("POST", "/messages", FakeResponse(201, {"id": "capped-1"}))
        yield server


def _cap_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every AR contact is capped at one per 7 days."""
    def judge(pack: Any, planned: PlannedContact, config: Any = None) -> Any:
        if planned.recent_contacts:
            return Deny(reasons=[Reason(code="frequency_cap", message="one a week")])
        return Allow(reasons=[Reason(code="ok", message="ok")])

    monkeypatch.setattr(gate, "_judge_one", judge)


async def test_a_cap_counts_contacts_made_not_the_message_judged(
        tenant: TenantClient, provider: FakeHTTPServer, run_jobs: RunJobs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _cap_of_one(monkeypatch)
    integration, template = await _setup(tenant, provider)
    [debtor] = await _debtors(tenant, 1, country="AR")
    [first] = await _send(tenant, [debtor], integration, template)
    await run_jobs()
    assert (await tenant.api.get(f"/v1/interactions/{first}")).json()["status"] == "sent"
    again = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integration, "template_id": template})
    assert again.status_code == 422, again.text
    assert [r["code"] for r in again.json()["reasons"]] == ["frequency_cap"]


@pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")
async def test_two_concurrent_sends_pass_a_cap_of_one_once(
        tenant: TenantClient, provider: FakeHTTPServer, monkeypatch: pytest.MonkeyPatch) -> None:
    _cap_of_one(monkeypatch)
    integration, template = await _setup(tenant, provider)
    [debtor] = await _debtors(tenant, 1, country="AR")
    ids = await _send(tenant, [debtor, debtor], integration, template)  # nothing sent yet
    load = batch._load

    async def slow_load(*args: Any) -> Any:
        loaded = await load(*args)
        await asyncio.sleep(0.3)  # both judges would read the history before either claims
        return loaded

    monkeypatch.setattr(batch, "_load", slow_load)
    monkeypatch.setattr(batch, "BATCH_SIZE", 1)  # one message each: two claims race
    engines = [make_engine(get_settings().database_url) for _ in range(2)]
    try:
        await asyncio.gather(*(batch.send_batch_job(JobContext(
            job_id=0, tenant_id=tenant.tenant_id, payload={"integration_id": integration},
            sessionmaker=make_sessionmaker(e))) for e in engines))
    finally:
        for e in engines:
            await e.dispose()
    statuses = sorted([(await tenant.api.get(f"/v1/interactions/{i}")).json()["status"]
                       for i in ids])
    assert statuses == ["refused", "sent"]
    assert len(provider.requests_to("POST", "/messages")) == 1
