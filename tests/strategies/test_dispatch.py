"""Dispatch: due allowed message actions become queued interactions in bulk, each action
once; the channel fallback skips channels without an integration or denied by the gate;
messaging's batch job then sends them."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar
from sqlalchemy import event, text

from cartera.db.base import open_json
from cartera.db.engine import tenant_session
from cartera.plugins.registry import current_host
from cartera.portfolio.models import ContactPoint, Debtor
from cartera.strategies.dispatch import dispatch_due, queue_due_dispatches
from tests.conftest import TenantClient
from tests.segmentation.test_segments import debtor
from tests.strategies.helpers import (
    ALWAYS,
    actions,
    late_debtor,
    plan,
    provider,
    segments,
    sms_integration,
    strategy,
    template,
)

__all__ = ["provider"]  # the fixture, used by name


async def test_due_actions_are_dispatched_once_with_fallback(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any) -> None:
    seg = await segments(tenant)
    integration = await sms_integration(tenant, provider)
    sms, mail = await template(tenant), await template(tenant, "email", "mail")
    ok = await late_debtor(tenant, "OK")
    revoked = await debtor(tenant, "REV", ("PEN", "50.00", 9), contact_points=[
        {"kind": "phone", "value": "+51999111222", "consent": "granted"}])
    await strategy(tenant, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [{"channel": "email", "template_id": mail},
                     {"channel": "sms", "template_id": sms}]}])
    await plan(tenant, run_jobs)
    # Consent revoked after planning: the gate at dispatch denies it.
    [cp] = (await tenant.api.get(f"/v1/debtors/{revoked}")).json()["contact_points"]
    r = await tenant.api.patch(f"/v1/debtors/{revoked}/contact-points/{cp['id']}",
                               json={"consent": "revoked"})
    assert r.status_code == 200, r.text
    await queue_due_dispatches(app.state.ctx.sessionmaker, app.state.ctx.jobs)
    await run_jobs()
    got = {a["debtor_id"]: a for a in await actions(tenant)}
    assert got[ok]["status"] == "dispatched"
    outcome = got[ok]["outcome"]
    assert (outcome["channel"], outcome["integration_id"]) == ("sms", integration)
    assert outcome["skipped"] == [{"channel": "email", "reasons": ["no_integration"]}]
    assert got[revoked]["status"] == "denied"
    assert "consent_revoked" in {c for t in got[revoked]["verdict"]["tried"]
                                 for c in t["reasons"]}
    interaction = (await tenant.api.get(f"/v1/interactions/{outcome['interaction_id']}")).json()
    assert (interaction["status"], interaction["trigger"]["action_id"]) == (
        "sent", got[ok]["id"])
    assert len(provider.requests) == 1
    # Every gate decision is in the compliance report: the planner's two, the dispatcher's
    # two (the allow, the revoked consent), the batch sender's one.
    report = (await tenant.api.get("/v1/compliance/report")).json()
    assert {p["path"]: (p["allowed"], p["denied"]) for p in report["paths"]} == {
        "planner": (2, 0), "dispatch": (1, 1), "batch": (1, 0)}
    # Nothing is dispatched twice.
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert await dispatch_due(session, current_host(), app.state.ctx.jobs,
                                  tenant.tenant_id) == {}
    assert len((await tenant.api.get("/v1/interactions")).json()["data"]) == 1


async def test_an_action_dispatched_again_gets_no_second_interaction(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any) -> None:
    """At most once per action, even when an action comes back due (a bug, a restore, an
    operator's hand): ``interactions.action_id`` is unique and the second dispatch points
    the action at the interaction it already has."""
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    await late_debtor(tenant, "ONCE")
    await strategy(tenant, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [{"channel": "sms", "template_id": sms}]}])
    await plan(tenant, run_jobs)
    host, jobs = current_host(), app.state.ctx.jobs
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert (await dispatch_due(session, host, jobs, tenant.tenant_id))["dispatched"] == 1
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        await session.execute(text("UPDATE actions SET status = 'planned' WHERE tenant_id = :t"),
                              {"t": tenant.tenant_id})
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        assert (await dispatch_due(session, host, jobs, tenant.tenant_id))["dispatched"] == 1
    [action] = await actions(tenant)
    listed = (await tenant.api.get("/v1/interactions")).json()["data"]
    assert len(listed) == 1
    assert (action["status"], action["outcome"]["interaction_id"]) == (
        "dispatched", listed[0]["id"])


async def test_the_gate_is_judged_once_per_key_and_each_debtor_gets_their_own_phone(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The batch is read as plain rows (no ORM object per debtor) and the gate judged
    once per distinct gate key, for its first debtor: debtors that differ only in their
    phone numbers share a verdict, a revoked consent or an opt-out is a key of its own,
    and each queued message goes to its own debtor's number."""
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    same = [await late_debtor(tenant, f"SAME{i}") for i in range(3)]
    revoked = await late_debtor(tenant, "REVOKED")
    out = await late_debtor(tenant, "OPTED")
    await strategy(tenant, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [{"channel": "sms", "template_id": sms}]}])
    await plan(tenant, run_jobs)
    for who, change in ((revoked, {"consent": "revoked"}), (out, {"opted_out_channels": ["sms"]})):
        [cp] = (await tenant.api.get(f"/v1/debtors/{who}")).json()["contact_points"]
        r = await tenant.api.patch(f"/v1/debtors/{who}/contact-points/{cp['id']}", json=change)
        assert r.status_code == 200, r.text
    from cartera.strategies import dispatch

    judged: list[int] = []
    real = dispatch._route

    def counted(host: Any, loaded: Any, row: Any, *args: Any) -> Any:
        judged.append(row.debtor_id)
        return real(host, loaded, row, *args)

    monkeypatch.setattr(dispatch, "_route", counted)
    loaded: list[Any] = []

    def built(target: Any, context: Any) -> None:
        loaded.append(target)

    for model in (Debtor, ContactPoint):
        event.listen(model, "load", built)
    try:
        async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
            done = await dispatch_due(session, current_host(), app.state.ctx.jobs,
                                      tenant.tenant_id)
    finally:
        for model in (Debtor, ContactPoint):
            event.remove(model, "load", built)
    assert done == {"dispatched": 3, "deferred": 0, "denied": 2}
    assert loaded == []  # plain rows, no ORM object per debtor
    assert len(judged) == 3 and revoked in judged and out in judged
    assert len(set(judged) & set(same)) == 1
    got = {a["debtor_id"]: a for a in await actions(tenant)}
    assert {got[d]["status"] for d in same} == {"dispatched"}
    assert "consent_revoked" in str(got[revoked]["verdict"])
    assert "opted_out" in str(got[out]["verdict"])
    for d in same:
        [cp] = (await tenant.api.get(f"/v1/debtors/{d}")).json()["contact_points"]
        interaction = (await tenant.api.get(
            f"/v1/interactions/{got[d]['outcome']['interaction_id']}")).json()
        assert (interaction["debtor_id"], interaction["address"]) == (d, cp["value"])


async def test_a_run_judges_each_gate_key_once_across_its_batches(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The dispatch job's batches share one run (:func:`dispatch_all`): debtors with the
    same gate key are judged once in the run, whichever batch they fall in; each action
    still gets its own gate decision rows, its own interaction (trigger, first event) and
    its outcome, built in SQL from the key's route."""
    from cartera.strategies import dispatch

    seg = await segments(tenant)
    integration = await sms_integration(tenant, provider)
    sms = await template(tenant)
    same = [await late_debtor(tenant, f"RUN{i}") for i in range(5)]
    await strategy(tenant, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [{"channel": "sms", "template_id": sms}]}])
    await plan(tenant, run_jobs)
    judged: list[int] = []
    real = dispatch._route

    def counted(host: Any, loaded: Any, row: Any, *args: Any) -> Any:
        judged.append(row.debtor_id)
        return real(host, loaded, row, *args)

    monkeypatch.setattr(dispatch, "_route", counted)
    done = await dispatch.dispatch_all(app.state.ctx.sessionmaker, current_host(),
                                       app.state.ctx.jobs, tenant.tenant_id, limit=2)
    assert done == {"dispatched": 5, "deferred": 0, "denied": 0}
    assert len(judged) == 1  # three batches (2, 2, 1), one gate key, one judgement
    got = {a["debtor_id"]: a for a in await actions(tenant)}
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        rows = (await session.execute(text(
            "SELECT i.action_id, i.trigger, e.detail, i.verdict FROM interactions i "
            "JOIN interaction_events e ON e.interaction_id = i.id "
            "WHERE i.tenant_id = :t"), {"t": tenant.tenant_id})).all()
        decided = (await session.execute(text(
            "SELECT subject_id, count(*) FROM compliance_decisions WHERE tenant_id = :t "
            "AND path = 'dispatch' AND counted GROUP BY subject_id"),
            {"t": tenant.tenant_id})).all()
    assert len(rows) == 5
    ids = {got[d]["id"]: d for d in same}
    for action_id, trigger, detail, verdict in rows:
        trigger, verdict = (x if isinstance(x, dict) else msgspec.json.decode(x)
                            for x in (trigger, verdict))
        detail = open_json(bytes(detail), "interaction_events.detail")  # sealed at rest
        assert trigger == {"source": "strategy", "action_id": action_id,
                           "strategy_id": got[ids[action_id]]["strategy_id"]}
        assert detail == {"action_id": action_id,
                          "reasons": [r["code"] for r in verdict["reasons"]]}
        outcome = got[ids[action_id]]["outcome"]
        assert (outcome["channel"], outcome["integration_id"], outcome["skipped"]) == (
            "sms", integration, [])
        assert got[ids[action_id]]["verdict"] == verdict
    assert sorted(subject for subject, n in decided if n == 1) == sorted(ids)


async def test_only_the_contact_point_a_message_goes_to_is_opened(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, run_jobs: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate never reads a contact point's value: the batch reads the values sealed as
    stored and opens only the one each message is sent to (once, to seal it again for
    ``interactions.address``), with the ciphers looked up once a batch, not per value."""
    from cartera import crypto
    from cartera.strategies import dispatch

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    sms = await template(tenant)
    ids = [await debtor(tenant, f"THREE{i}", ("PEN", "50.00", 9), contact_points=[
        {"kind": "phone", "value": f"+5199912{i}000", "consent": "granted"},
        {"kind": "phone", "value": f"+5199913{i}000", "consent": "revoked"},
        {"kind": "email", "value": f"d{i}@example.com", "consent": "granted"}])
        for i in range(4)]
    await strategy(tenant, "s", [seg["late"]], [{
        "key": "one", "kind": "message", "anchor": "previous_step", "window": ALWAYS,
        "channels": [{"channel": "sms", "template_id": sms}]}])
    await plan(tenant, run_jobs)
    opened: list[str] = []
    looked_up: list[str] = []
    real_open = crypto.PiiCipher.open

    def counted_open(self: crypto.PiiCipher, sealed: str, field: str) -> str:
        if field == "contact_points.value":
            opened.append(sealed)
        return real_open(self, sealed, field)

    for name in ("pii_cipher", "payload_keyring"):
        if hasattr(dispatch, name):
            real = getattr(dispatch, name)
            monkeypatch.setattr(dispatch, name, lambda _r=real, _n=name: (
                looked_up.append(_n), _r())[1])
    monkeypatch.setattr(crypto.PiiCipher, "open", counted_open)
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        done = await dispatch_due(session, current_host(), app.state.ctx.jobs,
                                  tenant.tenant_id)
    monkeypatch.undo()
    assert done == {"dispatched": 4, "deferred": 0, "denied": 0}
    assert len(opened) == 4  # one per message, not the batch's twelve contact points
    # One cipher of each kind for the whole batch (PostgreSQL's raw statement; SQLite's
    # Core insert seals through the column types).
    assert len(looked_up) <= 2
    got = {a["debtor_id"]: a for a in await actions(tenant)}
    for i, d in enumerate(ids):
        interaction = (await tenant.api.get(
            f"/v1/interactions/{got[d]['outcome']['interaction_id']}")).json()
        assert interaction["address"] == f"+5199912{i}000"
