"""Free text that can hold personal data is sealed at rest (randomized AES-256-GCM bound to
its field, migration 0049): promises' and arrangements' notes and cancel reasons, tasks',
offers' and reconciliation resolutions' notes, payment links' status reasons, payments'
reversal reasons, ERP postings' messages and webhook receivers' response excerpts. Raw rows
hold no plaintext, the API returns it as before, ``secrets rotate`` reseals it, and 0049
seals the rows stored before it (its downgrade opens them)."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse
from litestar import Litestar
from sqlalchemy import text

from cartera.crypto import Keyring
from cartera.db.base import open_payload, payload_context
from cartera.secrets_rotation import reseal_payloads
from tests.conftest import TenantClient
from tests.db.scratch import scratch_database
from tests.db.test_sealed_payloads import _scan
from tests.erpsync.conftest import fake
from tests.erpsync.fake_erp import FakeErpConnector
from tests.negotiation.test_arrangements import plan
from tests.negotiation.test_promises import debtor, promise
from tests.payments.mp import mercadopago

__all__ = ["fake", "mercadopago"]  # the fixtures, imported to be used here

RunJobs = Callable[[], Awaitable[int]]

NOTE = "Llamar a su hija Rosa Quispe al 987654321"
REASON = "Rosa Quispe pago en la agencia, DNI 45678912"
WORDS = (b"Rosa", b"Quispe", b"987654321", b"45678912")


async def stored(app: Litestar, name: str, column: str, key: int) -> bytes | None:
    """The stored bytes of ``name.column`` in row ``key``, read with plain SQL."""
    async with app.state.ctx.sessionmaker() as session:
        value = (await session.execute(text(f'SELECT "{column}" FROM {name} WHERE id = :k'),
                                       {"k": key})).scalar_one()
    return None if value is None else bytes(value)


async def assert_sealed(app: Litestar, name: str, column: str, key: int, plain: str) -> None:
    """Row ``key`` of ``name`` stores ``plain`` sealed for ``name.column``, nothing of it
    readable."""
    value = await stored(app, name, column, key)
    assert value is not None, f"{name}.{column}: nothing stored, nothing checked"
    for word in (w for w in WORDS if w in plain.encode()):
        assert word not in value, f"{name}.{column} stores {word!r} in the clear"
    assert plain.encode() not in value
    assert open_payload(value, f"{name}.{column}").decode() == plain


async def test_a_promise_note_and_cancel_reason_are_stored_sealed(
        tenant: TenantClient, app: Litestar) -> None:
    p = await promise(tenant, await debtor(tenant), "50.00", note=NOTE)
    assert p["note"] == NOTE
    r = await tenant.api.post(f"/v1/promises/{p['id']}/cancel", json={"reason": REASON})
    assert r.status_code == 200, r.text
    await assert_sealed(app, "promises", "note", p["id"], NOTE)
    await assert_sealed(app, "promises", "cancel_reason", p["id"], REASON)
    shown = (await tenant.api.get(f"/v1/promises/{p['id']}")).json()
    assert (shown["note"], shown["cancel_reason"]) == (NOTE, REASON)
    listed = (await tenant.api.get("/v1/promises")).json()["data"]
    assert [(x["note"], x["cancel_reason"]) for x in listed] == [(NOTE, REASON)]
    without = await promise(tenant, await debtor(tenant, "D-2"), "10.00")
    assert await stored(app, "promises", "note", without["id"]) is None
    assert without["note"] is None


async def test_an_arrangement_note_and_cancel_reason_are_stored_sealed(
        tenant: TenantClient, app: Litestar) -> None:
    a = await plan(tenant, await debtor(tenant), (1, "10.00"), note=NOTE)
    r = await tenant.api.post(f"/v1/arrangements/{a['id']}/cancel", json={"reason": REASON})
    assert r.status_code == 200, r.text
    await assert_sealed(app, "arrangements", "note", a["id"], NOTE)
    await assert_sealed(app, "arrangements", "cancel_reason", a["id"], REASON)
    shown = (await tenant.api.get(f"/v1/arrangements/{a['id']}")).json()
    assert (shown["note"], shown["cancel_reason"]) == (NOTE, REASON)


async def test_a_task_note_is_stored_sealed(tenant: TenantClient, app: Litestar,
                                            run_jobs: RunJobs) -> None:
    from tests.strategies.helpers import late_debtor, segments, strategy
    from tests.strategies.helpers import plan as plan_actions
    from tests.strategies.test_execute import dispatch, task_step

    seg = await segments(tenant)
    await late_debtor(tenant, "T")
    await strategy(tenant, "calls", [seg["late"]], [task_step()])
    await plan_actions(tenant, run_jobs)
    await dispatch(app, run_jobs)
    [task] = (await tenant.api.get("/v1/tasks")).json()["data"]
    assert task["note"] is None and await stored(app, "tasks", "note", task["id"]) is None
    r = await tenant.api.post(f"/v1/tasks/{task['id']}/complete", json={"note": NOTE})
    assert (r.status_code, r.json()["note"]) == (200, NOTE), r.text
    await assert_sealed(app, "tasks", "note", task["id"], NOTE)
    [shown] = (await tenant.api.get("/v1/tasks", params={"status": "done"})).json()["data"]
    assert shown["note"] == NOTE


async def test_a_payment_link_cancel_reason_is_stored_sealed(
        tenant: TenantClient, app: Litestar, mercadopago: Any) -> None:
    from tests.payments.mp import debt, integration
    from tests.payments.test_payment_links import link

    await integration(tenant, mercadopago)
    debtor_id, _ = await debt(tenant, "L-1", "80.00")
    made = await link(tenant, debtor_id=debtor_id)
    r = await tenant.api.post(f"/v1/payment-links/{made['id']}/cancel", json={"reason": REASON})
    assert (r.status_code, r.json()["status_reason"]) == (200, REASON), r.text
    await assert_sealed(app, "payment_links", "status_reason", made["id"], REASON)
    shown = (await tenant.api.get(f"/v1/payment-links/{made['id']}")).json()
    assert (shown["status"], shown["status_reason"]) == ("cancelled", REASON)


async def test_an_erp_rejection_message_is_stored_sealed(
        tenant: TenantClient, fake: FakeErpConnector, app: Litestar, run_jobs: RunJobs) -> None:
    from tests.erpsync.test_write_back import _housekeeping, _pay, _setup

    iid = await _setup(tenant, fake, run_jobs)
    fake.ledger(iid).post_fault = "reject"
    payment_id = await _pay(tenant, "10.00")
    await _housekeeping(app, run_jobs)
    [posting] = (await tenant.api.get(f"/v1/integrations/{iid}/postings", params={
        "payment_id": payment_id})).json()["data"]
    assert (posting["status"], posting["message"]) == (
        "rejected", "Invoice INV-1 is already closed")
    value = await stored(app, "erp_postings", "message", posting["id"])
    assert value is not None and b"INV-1" not in value and b"closed" not in value
    assert open_payload(value, "erp_postings.message") == b"Invoice INV-1 is already closed"
    shown = (await tenant.api.get(f"/v1/payments/{payment_id}")).json()
    assert shown["erp_posting"]["message"] == "Invoice INV-1 is already closed"


async def _delivered_with_excerpt(tenant: TenantClient, app: Litestar,
                                  body: str) -> tuple[int, dict[str, Any]]:
    """A debtor's event delivered to a receiver answering ``500`` with ``body``, then
    ``204``: (endpoint, the logged first attempt)."""
    from tests.events.test_delivery import deliver, endpoint
    from tests.events.test_events_api import new_debtor

    with FakeHTTPServer() as receiver:
        receiver.route("POST", "/hook", [FakeResponse(status=500, body=body)])
        endpoint_id, _ = await endpoint(tenant, f"{receiver.base_url}/hook")
        await new_debtor(tenant, "EV-1")
        await deliver(app)
    log = (await tenant.api.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")).json()
    [attempt] = log["data"]
    return endpoint_id, attempt


async def test_a_receivers_response_excerpt_is_stored_sealed(
        tenant: TenantClient, app: Litestar) -> None:
    body = f"rejected: customer {REASON}"
    _, attempt = await _delivered_with_excerpt(tenant, app, body)
    assert (attempt["status_code"], attempt["response_excerpt"]) == (500, body)
    await assert_sealed(app, "event_delivery_attempts", "response_excerpt", attempt["id"], body)


async def test_a_payment_reversal_reason_is_stored_sealed(
        tenant: TenantClient, app: Litestar) -> None:
    from tests.negotiation.test_promises import pay

    payment_id = await pay(tenant, await debtor(tenant), "20.00")
    r = await tenant.api.post(f"/v1/payments/{payment_id}/reverse", json={"reason": REASON})
    assert r.status_code == 201, r.text
    await assert_sealed(app, "payments", "reversal_reason", payment_id, REASON)
    shown = (await tenant.api.get(f"/v1/payments/{payment_id}")).json()
    assert (shown["status"], shown["reversal_reason"]) == ("reversed", REASON)


async def test_an_offer_note_is_stored_sealed(tenant: TenantClient, app: Litestar) -> None:
    from tests.offers.helpers import debt, offer

    debtor_id, _ = await debt(tenant.api, "O-1", "60.00")
    o = await offer(tenant.api, debtor_id=debtor_id, discount_percent="5", note=NOTE)
    assert o["note"] == NOTE
    await assert_sealed(app, "offers", "note", o["id"], NOTE)
    assert (await tenant.api.get(f"/v1/offers/{o['id']}")).json()["note"] == NOTE


async def test_a_reconciliation_resolution_note_is_stored_sealed(
        tenant: TenantClient, http: Any, app: Litestar, run_jobs: RunJobs,
        mercadopago: Any) -> None:
    from tests.payments.mp import notify
    from tests.payments.test_reconciliation import exceptions, setup

    integ, _, _, made = await setup(tenant, mercadopago, "100.00")
    mercadopago.add_payment("9400", "70.00", external_reference=f"plink_{made['id']}")
    await notify(http, integ, "9400", notification_id=40)
    await run_jobs()
    [exc] = await exceptions(tenant, status="open")
    r = await tenant.api.post(f"/v1/reconciliation/exceptions/{exc['id']}/resolve",
                              json={"resolution": "apply", "note": NOTE})
    assert (r.status_code, r.json()["note"]) == (200, NOTE), r.text
    await assert_sealed(app, "reconciliation_exceptions", "note", exc["id"], NOTE)
    [shown] = await exceptions(tenant, status="resolved")
    assert shown["note"] == NOTE


async def test_rotation_reseals_the_sealed_free_text(
        tenant: TenantClient, app: Litestar) -> None:
    from cartera import crypto

    p = await promise(tenant, await debtor(tenant), "50.00", note=NOTE)
    await tenant.api.post(f"/v1/promises/{p['id']}/cancel", json={"reason": REASON})
    a = await plan(tenant, await debtor(tenant, "D-2"), (1, "10.00"), note=NOTE)
    await tenant.api.post(f"/v1/arrangements/{a['id']}/cancel", json={"reason": REASON})
    _, attempt = await _delivered_with_excerpt(tenant, app, REASON)
    rows = [("promises", "note", p["id"]), ("promises", "cancel_reason", p["id"]),
            ("arrangements", "note", a["id"]), ("arrangements", "cancel_reason", a["id"]),
            ("event_delivery_attempts", "response_excerpt", attempt["id"])]
    current = crypto.keyring()
    new_key = secrets.token_bytes(32)
    rotated = Keyring(new_key, [current.primary_key])
    async with app.state.ctx.sessionmaker() as session:
        counts = await reseal_payloads(session, rotated, batch=3)
        await session.commit()
    assert counts["promises"] >= 1 and counts["arrangements"] >= 1
    assert counts["event_delivery_attempts"] >= 1
    only_new = Keyring(new_key)
    for name, column, key in rows:
        value = await stored(app, name, column, key)
        assert value is not None and only_new.sealed_by_primary(value), (name, column)
        assert only_new.open(value, context=payload_context(f"{name}.{column}")).decode() in (
            NOTE, REASON)
    async with app.state.ctx.sessionmaker() as session:
        # Put things back for the rest of the session's tests.
        await reseal_payloads(session, Keyring(current.primary_key, [new_key]))
        await session.commit()
    shown = (await tenant.api.get(f"/v1/promises/{p['id']}")).json()
    assert (shown["note"], shown["cancel_reason"]) == (NOTE, REASON)


# --- migration 0049 ------------------------------------------------------------------------

_T0 = "'2026-01-01'"
_BEFORE = [
    "INSERT INTO tenants (id, slug, name, country, default_currency, timezone, created_at) "
    f"VALUES (1, 'a', 'A', 'PE', 'PEN', 'America/Lima', {_T0})",
    "INSERT INTO debtors (id, tenant_id, external_ref, kind, name, country, timezone, "
    "attributes, created_at, updated_at) VALUES (10, 1, 'C-1', 'person', 'p1.x', 'PE', "
    f"'America/Lima', '{{}}', {_T0}, {_T0})",
    "INSERT INTO promises (id, tenant_id, debtor_id, currency, amount_minor, paid_minor, "
    "promised_date, created_on, status, created_by, created_at, updated_at, note, "
    f"cancel_reason) VALUES (1, 1, 10, 'PEN', 100, 0, {_T0}, {_T0}, 'cancelled', 'ana', {_T0}, "
    f"{_T0}, :note, :reason), (2, 1, 10, 'PEN', 100, 0, {_T0}, {_T0}, 'pending', 'ana', {_T0}, "
    f"{_T0}, NULL, NULL)",
    "INSERT INTO arrangements (id, tenant_id, debtor_id, currency, total_minor, paid_minor, "
    "created_on, grace_days, status, created_by, created_at, updated_at, note, cancel_reason) "
    f"VALUES (1, 1, 10, 'PEN', 100, 0, {_T0}, 5, 'cancelled', 'ana', {_T0}, {_T0}, :note, "
    ":reason)",
    "INSERT INTO tasks (id, tenant_id, debtor_id, queue, priority, due_at, status, created_at, "
    f"updated_at, note) VALUES (1, 1, 10, 'calls', 50, {_T0}, 'done', {_T0}, {_T0}, :note)",
    "INSERT INTO integrations (id, tenant_id, name, provider_kind, provider_name, config, "
    "secret_names, enabled, created_at, updated_at) VALUES (5, 1, 'MP', 'payment', "
    f"'mercadopago', '{{}}', '[]', true, {_T0}, {_T0})",
    "INSERT INTO payment_links (id, tenant_id, debtor_id, integration_id, provider, purpose, "
    "amount_kind, currency, amount_minor, obligation_ids, description, status, expires_at, "
    "provider_idempotency_key, created_by, created_at, updated_at, status_reason) VALUES "
    f"(1, 1, 10, 5, 'mercadopago', 'balance', 'balance', 'PEN', 100, '[]', 'd', 'cancelled', "
    f"{_T0}, 'k1', 'ana', {_T0}, {_T0}, :reason)",
    "INSERT INTO payments (id, tenant_id, debtor_id, currency, amount_minor, unapplied_minor, "
    f"paid_on, status, created_at, reversal_reason) VALUES (30, 1, 10, 'PEN', 100, 0, {_T0}, "
    f"'reversed', {_T0}, :reason)",
    "INSERT INTO offers (id, tenant_id, debtor_id, kind, currency, obligation_ids, "
    "covered_minor, lawful_minor, discount_minor, discount_bps, amount_minor, installments, "
    "days_past_due, status, expires_at, requested_by, requester_limit_bps, "
    "approval_limit_bps, paid_minor, created_on, created_at, updated_at, note) VALUES (1, 1, "
    f"10, 'discount', 'PEN', '[]', 100, 100, 5, 500, 95, '[]', 30, 'expired', {_T0}, 'ana', "
    f"1000, 2000, 0, {_T0}, {_T0}, {_T0}, :note)",
    "INSERT INTO reconciliation_exceptions (id, tenant_id, provider, provider_payment_id, "
    "kind, detail, status, created_at, provider_view, note) VALUES (1, 1, 'mercadopago', "
    f"'9400', 'amount_mismatch', 'd', 'resolved', {_T0}, :blob, :note)",
    "INSERT INTO erp_postings (id, tenant_id, integration_id, payment_id, status, attempts, "
    f"next_attempt_at, created_at, message) VALUES (1, 1, 5, 30, 'rejected', 1, {_T0}, {_T0}, "
    ":reason)",
    "INSERT INTO outbox_events (seq, id, tenant_id, type, created_at, resource_type, "
    f"resource_id, debtor_id, data, dispatched) VALUES (1, 'evt_1', 1, 'debtor.created', {_T0}, "
    "'debtor', '10', 10, '{}', false)",
    "INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, enabled, secret_sealed, "
    f"created_at, updated_at) VALUES (7, 1, 'https://h/x', '[]', true, :blob, {_T0}, {_T0})",
    "INSERT INTO event_deliveries (id, tenant_id, event_seq, endpoint_id, status, attempts, "
    f"next_attempt_at, created_at) VALUES (1, 1, 1, 7, 'succeeded', 1, {_T0}, {_T0})",
    "INSERT INTO event_delivery_attempts (id, tenant_id, delivery_id, endpoint_id, event_id, "
    "event_type, attempt, at, succeeded, latency_ms, response_excerpt) VALUES (1, 1, 1, 7, "
    f"'evt_1', 'debtor.created', 1, {_T0}, false, 3, :reason), (2, 1, 1, 7, 'evt_1', "
    f"'debtor.created', 2, {_T0}, true, 3, NULL)",
]
_COLUMNS = {"promises": ("note", "cancel_reason"), "arrangements": ("note", "cancel_reason"),
            "tasks": ("note",), "payment_links": ("status_reason",),
            "erp_postings": ("message",), "event_delivery_attempts": ("response_excerpt",),
            "payments": ("reversal_reason",), "offers": ("note",),
            "reconciliation_exceptions": ("note",)}
_PLAIN = {"promises.note": [NOTE, None], "promises.cancel_reason": [REASON, None],
          "arrangements.note": [NOTE], "arrangements.cancel_reason": [REASON],
          "tasks.note": [NOTE], "payment_links.status_reason": [REASON],
          "erp_postings.message": [REASON],
          "event_delivery_attempts.response_excerpt": [REASON, None],
          "payments.reversal_reason": [REASON], "offers.note": [NOTE],
          "reconciliation_exceptions.note": [NOTE]}


def test_0049_seals_existing_rows_and_the_downgrade_opens_them(
        tmp_path: Any, database_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine

    from cartera.db import migrate

    with scratch_database(database_url, tmp_path, "_m49") as (url, sync_url):
        migrate.upgrade(url, "0048")
        engine = create_engine(sync_url)
        with engine.begin() as conn:
            for sql in _BEFORE:
                conn.execute(text(sql), {"note": NOTE, "reason": REASON, "blob": b"x"})
        migrate.upgrade(url, "0049")
        with engine.connect() as conn:
            sealed = _scan(conn, _COLUMNS)
        for field, values in sealed.items():
            for value in values:
                if value is not None:
                    assert not [w for w in WORDS if w in bytes(value)], field
        assert {f: [None if v is None else open_payload(v, f).decode() for v in vs]
                for f, vs in sealed.items()} == _PLAIN
        command.downgrade(migrate.alembic_config(url), "0048")
        with engine.connect() as conn:
            assert _scan(conn, _COLUMNS) == _PLAIN
        engine.dispose()
