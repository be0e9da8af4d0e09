"""A strategy message step that carries a payment link: made (or reused) through the
tenant's payment integration after the dispatch transaction, rendered as
``{{ links.payment }}``; never sent without it; refused at activation without a payment
integration."""

from __future__ import annotations

import json
from typing import Any

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse
from litestar import Litestar
from sqlalchemy import select

from cartera.db.engine import tenant_session
from cartera.messaging.models import Interaction
from cartera.plugins.registry import current_host
from cartera.strategies.dispatch import dispatch_due
from tests.conftest import TenantClient
from tests.payments.mp import integration, mercadopago
from tests.strategies.helpers import (
    late_debtor,
    message_step,
    plan,
    provider,
    segments,
    sms_integration,
    strategy,
)

__all__ = ["mercadopago", "provider"]


async def _link_template(t: TenantClient) -> int:
    r = await t.api.post("/v1/templates", json={
        "code": "pay", "channel": "sms", "locale": "es-PE", "name": "pay",
        "body": "Hola {{ debtor.first_name }}, paga {{ balance.overdue }} en {{ links.payment }}"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _texts(server: FakeHTTPServer) -> list[str]:
    return [json.loads(r.body)["text"] if "text" in json.loads(r.body) else r.body.decode()
            for r in server.requests]


async def _dispatch(app: Litestar, t: TenantClient) -> dict[str, int]:
    async with tenant_session(app.state.ctx.sessionmaker, t.tenant_id) as session:
        return await dispatch_due(session, current_host(), app.state.ctx.jobs, t.tenant_id)


async def _interactions(app: Litestar, tenant_id: int) -> list[Interaction]:
    async with app.state.ctx.sessionmaker() as session:
        return list((await session.scalars(select(Interaction).where(
            Interaction.tenant_id == tenant_id).order_by(Interaction.id))).all())


async def test_a_step_sends_the_debtors_payment_link_made_outside_the_dispatch(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, mercadopago: Any,
        run_jobs: Any) -> None:
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    ana, ben = await late_debtor(tenant, "PL-A"), await late_debtor(tenant, "PL-B")
    await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, payment_link={"amount": "balance"})])
    await plan(tenant, run_jobs)
    assert (await _dispatch(app, tenant))["dispatched"] == 2
    # The dispatch transaction called no provider: the messages wait for their links.
    assert mercadopago.preferences == {}
    held = await _interactions(app, tenant.tenant_id)
    assert [(i.status, sorted(i.variables)) for i in held] == [
        ("queued", ["payment_link_pending"])] * 2
    assert all(i.not_before is not None for i in held)
    await run_jobs()
    assert len(mercadopago.preferences) == 2
    sent = await _interactions(app, tenant.tenant_id)
    assert [i.status for i in sent] == ["sent", "sent"]
    links = (await tenant.api.get("/v1/payment-links", params={"status": "open"})).json()["data"]
    urls = {x["debtor_id"]: x["url"] for x in links}
    assert set(urls) == {ana, ben} and all(x["purpose"] == "balance" for x in links)
    for i in sent:
        assert i.variables == {"payment_link": urls[i.debtor_id]}
        assert urls[i.debtor_id] in i.content["text"]
    assert sorted(urls[d] in " ".join(_texts(provider)) for d in (ana, ben)) == [True, True]


async def test_the_open_link_is_reused_and_no_link_means_no_message(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, mercadopago: Any,
        run_jobs: Any) -> None:
    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    ana = await late_debtor(tenant, "PL-C")
    ben = await late_debtor(tenant, "PL-D")
    r = await tenant.api.post("/v1/payment-links", json={"debtor_id": ana, "currency": "PEN"})
    assert r.status_code == 201, r.text
    existing = r.json()
    await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, payment_link={"amount": "balance"})])
    await plan(tenant, run_jobs)
    # Ben's link is refused for good by the provider: his message is not sent without it.
    mercadopago.fail("preference",
                     FakeResponse(400, {"message": "invalid", "error": "bad_request",
                                        "status": 400, "cause": []}))
    assert (await _dispatch(app, tenant))["dispatched"] == 2
    await run_jobs()
    got = {i.debtor_id: i for i in await _interactions(app, tenant.tenant_id)}
    assert got[ana].status == "sent"
    assert got[ana].variables == {"payment_link": existing["url"]}
    assert (got[ben].status, got[ben].failure_code) == ("failed", "payment_link_unavailable")
    assert len(provider.requests) == 1
    assert len(mercadopago.preferences) == 1


async def test_a_payment_link_step_needs_a_payment_integration_at_activation(
        tenant: TenantClient) -> None:
    seg = await segments(tenant)
    tpl = await _link_template(tenant)
    body = await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, offset=0),
        message_step("two", tpl, offset=1, payment_link={"amount": "installment"})],
        activate=False)
    r = await tenant.api.post(f"/v1/strategies/{body['id']}/versions/1/activate", json={})
    assert r.status_code == 422, r.text
    problem = r.json()
    assert (problem["code"], problem["param"]) == ("no_payment_integration",
                                                   "steps[1].payment_link")
    bad = await tenant.api.post("/v1/strategies", json={
        "code": "bad", "name": "bad", "version": {"segment_ids": [seg["late"]], "steps": [
            {"key": "w", "kind": "wait", "payment_link": {"amount": "balance"}}]}})
    assert bad.status_code == 422 and bad.json()["param"] == "steps[0].payment_link", bad.text


async def test_strategy_messages_carry_self_service_links_issued_for_the_batch_at_once(
        tenant: TenantClient, app: Litestar, http: Any, provider: FakeHTTPServer,
        run_jobs: Any, caplog: Any) -> None:
    from sqlalchemy import event

    from cartera.selfservice.models import SelfServiceLink
    from cartera.selfservice.service import token_hash
    from tests.selfservice.test_self_service import debtor_client

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    r = await tenant.api.post("/v1/templates", json={
        "code": "ss", "channel": "sms", "locale": "es-PE", "name": "ss",
        "body": "Hola {{ debtor.first_name }}, mira tu deuda: {{ links.self_service }}"})
    assert r.status_code == 201, r.text
    debtors = [await late_debtor(tenant, f"SS-{n}") for n in range(3)]
    await strategy(tenant, "ss", [seg["late"]], [message_step("one", int(r.json()["id"]))])
    await plan(tenant, run_jobs)
    inserts: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO SELF_SERVICE_LINKS"):
            inserts.append(statement)

    engine = app.state.ctx.sessionmaker.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        caplog.set_level("DEBUG", logger="cartera")
        assert (await _dispatch(app, tenant))["dispatched"] == 3
        await run_jobs()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(inserts) == 1  # one INSERT of the batch's token hashes
    texts = [req.json()["text"] for req in provider.requests_to("POST", "/messages")]
    tokens = [text.rsplit("token=", 1)[1] for text in texts]
    assert len(set(tokens)) == 3
    assert not any(token in record.getMessage() or token in str(record.__dict__)
                   for record in caplog.records for token in tokens)
    async with app.state.ctx.sessionmaker() as session:
        stored = {x.token_hash: x.debtor_id for x in (await session.scalars(
            select(SelfServiceLink).where(SelfServiceLink.tenant_id == tenant.tenant_id)))}
    assert sorted(stored[token_hash(t)] for t in tokens) == sorted(debtors)
    view = await debtor_client(http, tokens[0]).get("/self-service")
    assert view.status_code == 200, view.text


async def test_an_offer_link_and_a_hold_that_runs_out(
        tenant: TenantClient, app: Litestar, http: Any, provider: FakeHTTPServer,
        mercadopago: Any, run_jobs: Any) -> None:
    from tests.offers.helpers import client_with, offer

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    ana, ben = await late_debtor(tenant, "PL-E"), await late_debtor(tenant, "PL-F")
    collector, _ = await client_with(app, http, tenant, "collector")
    o = await offer(collector, debtor_id=ana, discount_percent="10")
    await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, payment_link={"amount": "offer"})])
    await plan(tenant, run_jobs)
    assert (await _dispatch(app, tenant))["dispatched"] == 2
    await run_jobs()
    got = {i.debtor_id: i for i in await _interactions(app, tenant.tenant_id)}
    [pref] = mercadopago.preferences.values()
    assert str(pref["items"][0]["unit_price"]) == o["amount"] == "90.00"
    assert got[ana].status == "sent"
    # Ben has no offer: no link, no message
    assert (got[ben].status, got[ben].failure_code) == ("failed", "payment_link_unavailable")


async def test_a_hold_that_runs_out_fails_the_message_unsent(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, mercadopago: Any,
        run_jobs: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import delete, update

    from cartera import clock
    from cartera.jobs.models import Job

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    await late_debtor(tenant, "PL-G")
    await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, payment_link={"amount": "balance"})])
    await plan(tenant, run_jobs)
    assert (await _dispatch(app, tenant))["dispatched"] == 1
    # the link job never runs (lost); the hold runs out
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(delete(Job).where(Job.kind == "strategies.payment_links"))
        await session.execute(update(Interaction).values(
            not_before=clock.now() - timedelta(seconds=1)))
        await session.commit()
    await run_jobs()
    [held] = await _interactions(app, tenant.tenant_id)
    assert (held.status, held.failure_code) == ("failed", "payment_link_unavailable")
    assert provider.requests == [] and mercadopago.preferences == {}


async def test_an_installment_link_asks_for_the_next_unpaid_installment(
        tenant: TenantClient, app: Litestar, provider: FakeHTTPServer, mercadopago: Any,
        run_jobs: Any) -> None:
    from datetime import timedelta

    from cartera import clock
    from tests.offers.helpers import offer

    seg = await segments(tenant)
    await sms_integration(tenant, provider)
    await integration(tenant, mercadopago)
    tpl = await _link_template(tenant)
    ana = await late_debtor(tenant, "PL-H")
    today = clock.now().date()
    proposal = await offer(tenant.api, debtor_id=ana, kind="installments", installments=[
        {"due_date": (today + timedelta(days=5)).isoformat(), "amount": "60.00"},
        {"due_date": (today + timedelta(days=35)).isoformat(), "amount": "40.00"}])
    r = await tenant.api.post(f"/v1/offers/{proposal['id']}/accept")
    assert r.status_code == 200, r.text
    await strategy(tenant, "pay", [seg["late"]], [
        message_step("one", tpl, payment_link={"amount": "installment"})])
    await plan(tenant, run_jobs)
    assert (await _dispatch(app, tenant))["dispatched"] == 1
    await run_jobs()
    [sent] = await _interactions(app, tenant.tenant_id)
    assert sent.status == "sent", (sent.status, sent.failure_code)
    [link] = (await tenant.api.get("/v1/payment-links", params={"status": "open"})).json()["data"]
    assert (link["amount"], link["amount_kind"], link["purpose"].split(":")[0]) == (
        "60.00", "installment", "installment")
    assert sent.variables == {"payment_link": link["url"]}
