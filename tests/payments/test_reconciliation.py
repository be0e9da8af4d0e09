"""Reconciliation end to end: a signed Mercado Pago notification to the webhook URL, the job,
the re-fetch from the plugin's strict fake, one payment allocated to the link's obligations
first, the balance and promises refreshed; duplicates, redeliveries and out-of-order
notifications never apply twice; refunds reverse; mismatches and unknown payments become
exceptions; a lost webhook is recovered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from litestar import Litestar
from sqlalchemy import select, update

from cartera import clock
from cartera.integrations.models import WebhookEvent
from cartera.payments.models import PaymentLink
from cartera.payments.reconcile import recover_open_links
from cartera.plugins.registry import current_host
from tests.conftest import TenantClient, hook_path
from tests.payments.mp import debt, integration, mercadopago, notification, notify

__all__ = ["mercadopago"]
RunJobs = Callable[[], Awaitable[int]]


async def payments_of(t: TenantClient, debtor_id: int) -> list[dict[str, Any]]:
    r = await t.api.get("/v1/payments", params={"debtor_id": debtor_id})
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def balance(t: TenantClient, debtor_id: int) -> dict[str, Any]:
    r = await t.api.get(f"/v1/debtors/{debtor_id}/balance")
    assert r.status_code == 200, r.text
    return {b["currency"]: b for b in r.json()["balances"]}["PEN"]


async def exceptions(t: TenantClient, **params: Any) -> list[dict[str, Any]]:
    r = await t.api.get("/v1/reconciliation/exceptions", params=params)
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


async def setup(t: TenantClient, mp: Any, *amounts: str,
                **link_body: Any) -> tuple[int, int, list[int], dict[str, Any]]:
    integ = await integration(t, mp)
    debtor_id, obligations = await debt(t, "R-1", *amounts)
    r = await t.api.post("/v1/payment-links", json={"currency": "PEN", "debtor_id": debtor_id,
                                                    **link_body})
    assert r.status_code == 201, r.text
    return integ["id"], debtor_id, obligations, r.json()


async def test_an_approved_payment_is_recorded_once_on_the_links_obligations_first(
        tenant: TenantClient, http: Any, run_jobs: RunJobs, mercadopago: Any) -> None:
    integ, debtor_id, (older, newer), _ = await setup(
        tenant, mercadopago, "100.00", "60.00", amount_kind="balance", purpose="balance")
    # a link for the newer invoice only: its payment goes there, not to the oldest debt
    r = await tenant.api.post("/v1/payment-links", json={
        "currency": "PEN", "debtor_id": debtor_id, "obligation_ids": [newer],
        "purpose": "newer"})
    link = r.json()
    mercadopago.add_payment("9001", "60.00", external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9001", notification_id=1)
    await run_jobs()
    [payment] = await payments_of(tenant, debtor_id)
    assert (payment["amount"], payment["status"], payment["provider"],
            payment["provider_payment_id"], payment["payment_link_id"]) == (
        "60.00", "applied", "mercadopago", "9001", link["id"])
    assert [(a["obligation_id"], a["amount"], a["explicit"]) for a in payment["allocations"]] \
        == [(newer, "60.00", True)]
    got = (await tenant.api.get(f"/v1/payment-links/{link['id']}")).json()
    assert (got["status"], got["payment_id"]) == ("paid", payment["id"])
    obligation = (await tenant.api.get(f"/v1/obligations/{newer}")).json()
    assert (obligation["status"], obligation["outstanding_amount"]) == ("paid", "0.00")
    # the same notification again, another notification of the same payment, a replay of
    # the stored delivery: one payment still
    await notify(http, integ, "9001", notification_id=1)
    await notify(http, integ, "9001", notification_id=2, request_id="req-2")
    await run_jobs()
    assert [p["id"] for p in await payments_of(tenant, debtor_id)] == [payment["id"]]
    assert (await tenant.api.get(f"/v1/obligations/{older}")).json()["outstanding_amount"] \
        == "100.00"


async def test_out_of_order_notifications_end_in_the_providers_state(
        tenant: TenantClient, app: Litestar, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id, _, link = await setup(tenant, mercadopago, "100.00")
    ref = f"plink_{link['id']}"
    mercadopago.add_payment("9100", "100.00", status="pending",
                            status_detail="pending_waiting_payment", external_reference=ref)
    await notify(http, integ, "9100", notification_id=10, action="payment.created")
    await run_jobs()
    assert await payments_of(tenant, debtor_id) == []
    async with app.state.ctx.sessionmaker() as session:
        row = await session.get(PaymentLink, link["id"])
        assert row is not None and (row.status, row.provider_payment_id) == ("open", "9100")
    # approved, then refunded at the provider; the "approved" notification arrives after the
    # refund happened: it re-fetches the current state, so nothing is ever applied
    mercadopago.payments["9100"].update(status="approved", status_detail="accredited")
    mercadopago.payments["9100"]["transaction_amount_refunded"] = \
        mercadopago.payments["9100"]["transaction_amount"]
    mercadopago.payments["9100"].update(status="refunded", status_detail="refunded")
    await notify(http, integ, "9100", notification_id=12)
    await notify(http, integ, "9100", notification_id=11)
    await run_jobs()
    assert await payments_of(tenant, debtor_id) == []
    # another payment: pending, approved, refunded in order, and the approval redelivered last
    mercadopago.add_payment("9200", "100.00", status="pending", external_reference=ref)
    await notify(http, integ, "9200", notification_id=20)
    await run_jobs()
    mercadopago.payments["9200"].update(status="approved", status_detail="accredited")
    await notify(http, integ, "9200", notification_id=21)
    await run_jobs()
    [applied] = await payments_of(tenant, debtor_id)
    assert applied["status"] == "applied"
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "0.00"
    mercadopago.payments["9200"]["transaction_amount_refunded"] = \
        mercadopago.payments["9200"]["transaction_amount"]
    mercadopago.payments["9200"].update(status="refunded", status_detail="refunded")
    await notify(http, integ, "9200", notification_id=22)
    await notify(http, integ, "9200", notification_id=21)  # the approval, redelivered
    await run_jobs()
    [reversed_] = await payments_of(tenant, debtor_id)
    assert (reversed_["id"], reversed_["status"], reversed_["allocations"]) == (
        applied["id"], "reversed", [])
    assert (await balance(tenant, debtor_id))["outstanding_amount"] == "100.00"


async def test_refunds_through_the_api(tenant: TenantClient, http: Any, run_jobs: RunJobs,
                                       mercadopago: Any) -> None:
    integ, debtor_id, [ob], link = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9300", "100.00", external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9300", notification_id=30)
    await run_jobs()
    [payment] = await payments_of(tenant, debtor_id)
    # more than the payment: a precise problem, nothing asked of the provider or written
    r = await tenant.api.post(f"/v1/payments/{payment['id']}/refund",
                              json={"amount": "100.01", "reason": "duplicate charge"})
    assert r.status_code == 422, r.text
    assert (r.json()["code"], r.json()["param"]) == ("refund_exceeds_payment", "amount")
    assert mercadopago.refunds == {}
    assert (await payments_of(tenant, debtor_id))[0]["refunded_amount"] == "0.00"
    r = await tenant.api.post(f"/v1/payments/{payment['id']}/refund",
                              json={"amount": "30.00", "reason": "partial"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["refunded_amount"]) == ("applied", "30.00")
    assert (await tenant.api.get(f"/v1/obligations/{ob}")).json()["outstanding_amount"] == \
        "30.00"
    await notify(http, integ, "9300", notification_id=31)  # the provider's own notice
    await run_jobs()
    assert (await payments_of(tenant, debtor_id))[0]["refunded_amount"] == "30.00"
    r = await tenant.api.post(f"/v1/payments/{payment['id']}/refund", json={"reason": "rest"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "reversed"
    assert (await tenant.api.get(f"/v1/obligations/{ob}")).json()["outstanding_amount"] == \
        "100.00"
    r = await tenant.api.post(f"/v1/payments/{payment['id']}/refund", json={"reason": "again"})
    assert (r.status_code, r.json()["code"]) == (409, "already_reversed")
    manual = await tenant.api.post("/v1/payments", json={
        "debtor_id": debtor_id, "currency": "PEN", "amount": "5.00", "paid_on": "2026-03-01"})
    r = await tenant.api.post(f"/v1/payments/{manual.json()['id']}/refund",
                              json={"reason": "x"})
    assert (r.status_code, r.json()["code"]) == (422, "not_a_provider_payment")


async def test_a_mismatched_amount_is_held_as_credit_with_an_exception(
        tenant: TenantClient, http: Any, run_jobs: RunJobs, mercadopago: Any) -> None:
    integ, debtor_id, [ob], link = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9400", "70.00", external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9400", notification_id=40)
    await notify(http, integ, "9400", notification_id=41)
    await run_jobs()
    [payment] = await payments_of(tenant, debtor_id)
    assert (payment["status"], payment["unapplied_amount"], payment["allocations"]) == (
        "held", "70.00", [])
    assert (await tenant.api.get(f"/v1/obligations/{ob}")).json()["outstanding_amount"] == \
        "100.00"
    [exc] = await exceptions(tenant, status="open")
    assert (exc["kind"], exc["payment_id"], exc["payment_link_id"], exc["debtor_id"]) == (
        "amount_mismatch", payment["id"], link["id"], debtor_id)
    assert (await tenant.api.get(f"/v1/payment-links/{link['id']}")).json()["status"] == "open"
    r = await tenant.api.post(f"/v1/reconciliation/exceptions/{exc['id']}/resolve",
                              json={"resolution": "apply", "note": "partial payment, fine"})
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["resolution"]) == ("resolved", "apply")
    assert (await payments_of(tenant, debtor_id))[0]["status"] == "applied"
    assert (await tenant.api.get(f"/v1/obligations/{ob}")).json()["outstanding_amount"] == \
        "30.00"
    r = await tenant.api.post(f"/v1/reconciliation/exceptions/{exc['id']}/resolve",
                              json={"resolution": "dismiss", "note": "again"})
    assert (r.status_code, r.json()["code"]) == (409, "already_resolved")


async def test_unknown_payments_and_links_are_exceptions_never_errors(
        tenant: TenantClient, make_tenant: Any, http: Any, app: Litestar, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id, _, _ = await setup(tenant, mercadopago, "100.00")
    await notify(http, integ, "9500", notification_id=50)  # the provider knows no 9500
    mercadopago.add_payment("9501", "10.00", external_reference="someone-elses-order")
    await notify(http, integ, "9501", notification_id=51)
    mercadopago.add_payment("9502", "10.00", external_reference="plink_999999999")
    await notify(http, integ, "9502", notification_id=52)
    await run_jobs()
    found = {(e["kind"], e["provider_payment_id"]) for e in await exceptions(tenant)}
    assert found == {("unknown_payment", "9500"), ("unknown_link", "9501"),
                     ("unknown_link", "9502")}
    assert await payments_of(tenant, debtor_id) == []
    async with app.state.ctx.sessionmaker() as session:
        statuses = set((await session.scalars(select(WebhookEvent.status).where(
            WebhookEvent.integration_id == integ))).all())
    assert statuses == {"processed"}
    other = await make_tenant()
    assert await exceptions(other) == []


async def test_forged_and_stale_signatures_are_refused_and_counted(
        tenant: TenantClient, http: Any, mercadopago: Any) -> None:
    integ, _, _, link = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9600", "100.00", external_reference=f"plink_{link['id']}")
    r = await notify(http, integ, "9600", notification_id=60, secret="not-the-secret",
                     expect=401)
    assert r.json()["code"] == "invalid_signature"
    await notify(http, integ, "9600", notification_id=61, ts="1704908010", expect=401)
    _, body, headers = notification("9600", notification_id=62)
    r = await http.post(await hook_path(http, integ) + "?data.id=9601&type=payment",
                        content=body, headers=headers)  # signed for another payment
    assert r.status_code == 401
    reasons = {x["reason"]: x["count"] for x in (await tenant.api.get(
        f"/v1/integrations/{integ}/webhook-rejections")).json()}
    assert reasons == {"bad_signature": 2, "stale_timestamp": 1}


async def test_the_daily_recovery_applies_a_payment_whose_webhook_was_lost(
        tenant: TenantClient, app: Litestar, http: Any, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    integ, debtor_id, _, link = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9700", "100.00", status="pending",
                            external_reference=f"plink_{link['id']}")
    await notify(http, integ, "9700", notification_id=70)
    await run_jobs()
    mercadopago.payments["9700"].update(status="approved", status_detail="accredited")
    # no notification: checked a moment ago, so not yet due again
    sessionmaker = app.state.ctx.sessionmaker
    assert "recorded" not in await recover_open_links(sessionmaker, current_host())
    async with sessionmaker() as session:
        await session.execute(update(PaymentLink).where(PaymentLink.id == link["id"]).values(
            checked_at=clock.now() - timedelta(days=1, minutes=1)))
        await session.commit()
    assert (await recover_open_links(sessionmaker, current_host())).get("recorded") == 1
    [payment] = await payments_of(tenant, debtor_id)
    assert (payment["status"], payment["provider_payment_id"]) == ("applied", "9700")
    assert (await tenant.api.get(f"/v1/payment-links/{link['id']}")).json()["status"] == "paid"
    assert await recover_open_links(sessionmaker, current_host()) == {}


async def test_a_payment_keeps_a_promise(tenant: TenantClient, http: Any, run_jobs: RunJobs,
                                         mercadopago: Any) -> None:
    integ, debtor_id, _, link = await setup(tenant, mercadopago, "100.00")
    today = clock.today_in("America/Lima")
    r = await tenant.api.post("/v1/promises", json={
        "debtor_id": debtor_id, "currency": "PEN", "amount": "100.00",
        "promised_date": (today + timedelta(days=3)).isoformat()})
    assert r.status_code == 201, r.text
    promise = r.json()
    mercadopago.add_payment("9800", "100.00", external_reference=f"plink_{link['id']}")
    # approved now (the fake's default date is in the past, before the promise was made)
    mercadopago.payments["9800"]["date_approved"] = clock.now().isoformat(timespec="milliseconds")
    await notify(http, integ, "9800", notification_id=80)
    await run_jobs()
    got = (await tenant.api.get(f"/v1/promises/{promise['id']}")).json()
    assert (got["status"], got["paid_amount"]) == ("kept", "100.00")


async def test_a_reconciled_payment_stops_the_strategy_at_once(
        tenant: TenantClient, http: Any, run_jobs: RunJobs, mercadopago: Any) -> None:
    """Replanned in the payment's transaction: the enrollment whose stop rule ("nothing
    owed") now matches stops and its planned message is cancelled, before any planner
    pass."""
    from tests.strategies.helpers import (
        actions,
        enrollments,
        late_debtor,
        message_step,
        plan,
        segments,
        strategy,
        template,
    )

    seg = await segments(tenant)
    sms = await template(tenant)
    d = await late_debtor(tenant, "S-PAY", days_late=40)
    await strategy(tenant, "paid-stops", [seg["late"]], [
        message_step("one", sms, anchor="oldest_unpaid_due_date", offset=3),
        message_step("two", sms, offset=2)],
                   stop_rule={"feature": "outstanding_amount", "op": "lte", "value": "0.00",
                              "currency": "PEN"})
    await plan(tenant, run_jobs)
    [e] = await enrollments(tenant, debtor_id=d)
    assert e["status"] == "active"
    assert [a["status"] for a in await actions(tenant, debtor_id=d)] == ["planned"]
    integ = await integration(tenant, mercadopago)
    link = (await tenant.api.post("/v1/payment-links", json={
        "debtor_id": d, "currency": "PEN"})).json()
    mercadopago.add_payment("9900", link["amount"], external_reference=f"plink_{link['id']}")
    await notify(http, integ["id"], "9900", notification_id=99)
    await run_jobs()
    [e] = await enrollments(tenant, debtor_id=d)
    assert (e["status"], e["reason"]) == ("stopped", "the stop rule matched")
    assert [a["status"] for a in await actions(tenant, debtor_id=d, status="cancelled")] == [
        "cancelled"]
