"""Every gate decision is recorded (single send, batch sender, strategies) and the report
counts all of them per pack and rule, with the median deferral; the batch sender feeds
the packs the same facts as the single send (first contact from the contacts made)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cartera_sdk.compliance import Allow, PlannedContact, Reason
from cartera_sdk.testkit import FakeHTTPServer, FakeResponse
from litestar import Litestar
from sqlalchemy import select

from cartera.compliance import decisions
from cartera.compliance.models import ComplianceDecision
from cartera.messaging import gate
from tests.conftest import TenantClient
from tests.messaging.test_batch import _debtors, _send, _setup
from tests.messaging.test_sending import RunJobs

pytestmark = pytest.mark.usefixtures("http")  # the app must be running (plugins loaded)


@pytest.fixture
def provider() -> Iterator[FakeHTTPServer]:
    with FakeHTTPServer() as server:
        server.route("POST", "/messages", FakeResponse(201, {"id": "dec-1"}))
        yield server


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[PlannedContact]:
    """Every AR contact allowed by a stand-in pack, recording what it was fed."""
    planned: list[PlannedContact] = []

    def judge(pack: Any, contact: PlannedContact, config: Any = None) -> Any:
        planned.append(contact)
        return Allow(reasons=[Reason(code="ok", message="ok", rule_ref="fixture 1")])

    monkeypatch.setattr(gate, "_judge_one", judge)
    return planned


async def _rows(app: Litestar, tenant_id: int) -> list[ComplianceDecision]:
    async with app.state.ctx.sessionmaker() as session:
        session.info["tenant_id"] = tenant_id
        return list((await session.scalars(select(ComplianceDecision).where(
            ComplianceDecision.tenant_id == tenant_id).order_by(ComplianceDecision.id))).all())


async def test_send_and_batch_decisions_are_recorded_and_reported(
        app: Litestar, tenant: TenantClient, provider: FakeHTTPServer, run_jobs: RunJobs,
        seen: list[PlannedContact], monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real = decisions.record

    async def spy(session: Any, found: list[dict[str, Any]]) -> None:
        writes.append(len(found))
        await real(session, found)

    monkeypatch.setattr(decisions, "record", spy)
    integration, template = await _setup(tenant, provider)
    debtors = await _debtors(tenant, 3, country="AR")
    sent = await _send(tenant, debtors, integration, template)
    await run_jobs()
    assert {(await tenant.api.get(f"/v1/interactions/{i}")).json()["status"]
            for i in sent} == {"sent"}
    assert writes == [1, 1, 1, 3]  # one per single send, then one INSERT for the batch
    rows = await _rows(app, tenant.tenant_id)
    assert sorted({r.path for r in rows}) == ["batch", "send"]
    assert {(r.source, r.code, r.decision, r.counted) for r in rows} == {
        ("fixture_ar", "ok", "allow", True)}
    r = await tenant.api.get("/v1/compliance/report")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contacts"] == 6
    assert {p["path"]: p["allowed"] for p in body["paths"]} == {"send": 3, "batch": 3}
    [rule] = [x for x in body["rules"] if x["code"] == "ok"]
    assert (rule["allowed"], rule["deferred"], rule["denied"]) == (6, 0, 0)


async def test_the_batch_feeds_first_contact_from_contacts_made(
        tenant: TenantClient, provider: FakeHTTPServer, run_jobs: RunJobs,
        seen: list[PlannedContact]) -> None:
    integration, template = await _setup(tenant, provider)
    [debtor] = await _debtors(tenant, 1, country="AR")
    await _send(tenant, [debtor], integration, template)
    await run_jobs()
    # The single send and then the batch sender judged a first contact.
    assert [c.is_first_contact for c in seen] == [True, True]
    assert seen[1].authorized_channels == seen[0].authorized_channels == [
        "sms", "voice", "whatsapp"]
    seen.clear()
    await _send(tenant, [debtor], integration, template)
    await run_jobs()
    assert [c.is_first_contact for c in seen] == [False, False]


async def test_two_messages_in_one_batch_only_the_first_is_a_first_contact(
        tenant: TenantClient, provider: FakeHTTPServer, run_jobs: RunJobs,
        seen: list[PlannedContact]) -> None:
    integration, template = await _setup(tenant, provider)
    [debtor] = await _debtors(tenant, 1, country="AR")
    await _send(tenant, [debtor, debtor], integration, template)
    seen.clear()
    await run_jobs()
    assert [c.is_first_contact for c in seen] == [True, False]


async def test_report_median_deferral_and_tenancy(app: Litestar, tenant: TenantClient,
                                                 make_tenant: Any) -> None:
    other = await make_tenant()
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    reason = {"source": "compliance_pe", "code": "outside_hours"}
    found: list[dict[str, Any]] = []
    for hours in (1, 3, 10, 20):
        found += decisions.rows(tenant.tenant_id, "batch", at, {
            "decision": "defer", "until": at + timedelta(hours=hours),
            "reasons": [reason, {"source": "compliance_pe", "code": "closed_day"}]},
            "sms", None)
    for hours in (1, 2, 9):
        found += decisions.rows(tenant.tenant_id, "planner", at, {
            "decision": "defer", "until": at + timedelta(hours=hours),
            "reasons": [{"source": "compliance_pe", "code": "public_holiday"}]}, "sms", None)
    found += decisions.rows(tenant.tenant_id, "send", at, {
        "decision": "allow", "reasons": [{"source": "compliance_pe", "code": "allowed"}]},
        "sms", None)
    found += decisions.rows(other.tenant_id, "send", at, {
        "decision": "deny", "reasons": [reason]}, "sms", None)
    async with app.state.ctx.sessionmaker() as session:
        await decisions.record(session, found)
        await session.commit()
    r = await tenant.api.get("/v1/compliance/report", params={
        "period_start": "2026-03-02T00:00:00Z", "period_end": "2026-03-03T00:00:00Z"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["contacts"] == 8  # seven deferrals (four with two reasons) and an allow
    by_code = {row["code"]: row for row in body["rules"]}
    assert by_code["outside_hours"] == {
        "source": "compliance_pe", "code": "outside_hours", "allowed": 0, "deferred": 4,
        "denied": 0, "median_deferral_seconds": int(6.5 * 3600)}
    assert by_code["allowed"]["allowed"] == 1
    assert by_code["public_holiday"]["median_deferral_seconds"] == 2 * 3600  # odd: middle
    assert body["paths"] == [{"path": "batch", "allowed": 0, "deferred": 4, "denied": 0},
                             {"path": "planner", "allowed": 0, "deferred": 3, "denied": 0},
                             {"path": "send", "allowed": 1, "deferred": 0, "denied": 0}]
    theirs = (await other.api.get("/v1/compliance/report", params={
        "period_start": "2026-03-02T00:00:00Z", "period_end": "2026-03-03T00:00:00Z"})).json()
    assert theirs["contacts"] == 1
    assert [(x["code"], x["denied"]) for x in theirs["rules"]] == [("outside_hours", 1)]
    bad = await tenant.api.get("/v1/compliance/report", params={
        "period_start": "2026-03-03T00:00:00Z", "period_end": "2026-03-02T00:00:00Z"})
    assert bad.status_code == 422


def test_rows_one_per_reason_the_first_counted() -> None:
    at = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    verdict = gate.schemas.Verdict(decision="defer", until=at + timedelta(minutes=90),
                                   reasons=[gate._reason("a", "m", "p"),
                                            gate._reason("b", "m", "p")])
    found = decisions.rows(1, "send", at, verdict, "sms", 7, 9)
    assert [(r["code"], r["counted"], r["deferral_seconds"]) for r in found] == [
        ("a", True, 5400), ("b", False, 5400)]
    planned = decisions.rows(1, "planner", at, {
        "decision": "defer", "until": (at + timedelta(hours=2)).isoformat(),
        "reasons": [{"source": "p", "code": "a"}]}, "sms", 7, 9,
        judged_at=at + timedelta(hours=1))
    assert planned[0]["deferral_seconds"] == 3600


async def test_the_batch_judges_the_words_it_is_about_to_send(
        app: Litestar, tenant: TenantClient, provider: FakeHTTPServer, run_jobs: RunJobs,
        seen: list[PlannedContact]) -> None:
    """A message queued without content (as a strategy's dispatch queues them) is judged
    on its rendered text, first contact included (MX disclosures, BR CNPJ...)."""
    from sqlalchemy import update

    from cartera.messaging.models import Interaction

    integration, template = await _setup(tenant, provider)
    [debtor] = await _debtors(tenant, 1, country="AR")
    [queued] = await _send(tenant, [debtor], integration, template)
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(update(Interaction).where(Interaction.id == queued).values(
            content=None))
        await session.commit()
    seen.clear()
    await run_jobs()
    [judged] = seen
    assert judged.is_first_contact
    assert judged.content is not None and judged.content.text.startswith("Hola Ana, debes")
    sent = (await tenant.api.get(f"/v1/interactions/{queued}")).json()
    assert sent["status"] == "sent" and sent["content"]["text"] == judged.content.text
