"""Stored payloads carrying personal data are sealed at rest (randomized AES-256-GCM bound
to their field): raw rows hold no phone, name or message text, the API still shows them,
``secrets rotate`` reseals them, and migration 0044 seals the rows stored before it."""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from litestar import Litestar
from sqlalchemy import text

from cartera.crypto import Keyring
from cartera.db.base import (
    SealedBytes,
    SealedJson,
    open_json,
    open_payload,
    payload_context,
    seal_json,
)
from cartera.secrets_rotation import reseal_payloads, sealed_payloads
from tests.conftest import TenantClient
from tests.db.scratch import scratch_database
from tests.messaging.test_templates import SMS, debtor_with_debt
from tests.messaging.test_twilio_end_to_end import ACCOUNT, TOKEN, callback, twilio

__all__ = ["twilio"]  # the fixture, imported to be used here

PHONE_DIGITS = b"987654321"
REPLY = "Pagare el viernes sin falta"
PERSONAL = (PHONE_DIGITS, b"98765", b"Rosa", b"Quispe", b"viernes", b"Pagare")


def test_sealed_values_are_randomized_and_open_only_for_their_field() -> None:
    value = {"text": "Hola Rosa", "to": "+51987654321"}
    first, second = seal_json(value, "interactions.content"), seal_json(value,
                                                                          "interactions.content")
    assert first != second  # randomized: equal values do not show as equal
    assert b"Rosa" not in first and b"987654321" not in first
    assert open_json(first, "interactions.content") == value
    with pytest.raises(InvalidTag):
        open_json(first, "audit_log.changes")  # moved into another column: does not open
    raw = SealedBytes("webhook_deliveries.body")
    stored = raw.process_bind_param(b"From=%2B51987654321", None)
    assert stored is not None and b"51987654321" not in stored
    assert raw.process_result_value(stored, None) == b"From=%2B51987654321"
    typed = SealedJson("interactions.content")
    assert typed.process_bind_param(None, None) is None
    assert typed.process_result_value(None, None) is None


async def _raw(app: Litestar, tenant_id: int) -> dict[str, list[bytes]]:
    """Every sealed payload column's stored bytes for ``tenant_id``, read with plain SQL."""
    found: dict[str, list[bytes]] = {}
    async with app.state.ctx.sessionmaker() as session:
        for sealed in sealed_payloads():
            for column in sealed.columns:
                rows = (await session.execute(text(
                    f'SELECT "{column}" FROM {sealed.name} WHERE tenant_id = :t'),
                    {"t": tenant_id})).scalars().all()
                found[f"{sealed.name}.{column}"] = [bytes(v) for v in rows if v is not None]
    return found


async def _send_and_reply(tenant: TenantClient, http: Any, twilio: Any,
                          run_jobs: Callable[[], Awaitable[int]]) -> tuple[int, int]:
    """An SMS sent through Twilio, delivered, and the debtor's reply: (debtor, message)."""
    integ = (await tenant.api.post("/v1/integrations", json={
        "name": "Twilio", "provider_kind": "channel", "provider_name": "twilio_sms",
        "config": {"base_url": twilio.base_url, "account_sid": ACCOUNT,
                   "from_number": "+15005550006"},
        "secrets": {"auth_token": TOKEN}})).json()
    template = (await tenant.api.post("/v1/templates", json=SMS)).json()
    debtor = await debtor_with_debt(tenant)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor, "integration_id": integ["id"], "template_id": template["id"]})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    [request] = twilio.requests_to("POST", f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json")
    await callback(http, request.form()["StatusCallback"][0], {
        "MessageSid": "SM0001", "MessageStatus": "delivered", "AccountSid": ACCOUNT,
        "To": "+51987654321", "ErrorMessage": "delivered to +51987654321"})
    await callback(http, integ["webhook_url"], {
        "MessageSid": "SM9999", "SmsStatus": "received", "From": "+51987654321",
        "To": "+15005550006", "Body": REPLY, "AccountSid": ACCOUNT, "NumMedia": "0"})
    await run_jobs()
    return debtor, int(sent.json()["id"])


async def test_send_reply_audit_and_events_store_no_plaintext_personal_data(
        tenant: TenantClient, http: Any, twilio: Any, app: Litestar,
        run_jobs: Callable[[], Awaitable[int]]) -> None:
    debtor, message = await _send_and_reply(tenant, http, twilio, run_jobs)

    raw = await _raw(app, tenant.tenant_id)
    for field in ("webhook_deliveries.body", "webhook_deliveries.url", "webhook_events.payload",
                  "interactions.content", "interaction_events.detail", "outbox_events.data_sealed",
                  "audit_log.changes"):
        assert raw[field], f"{field}: nothing stored, nothing checked"
    for field, values in raw.items():
        for value in values:
            for word in PERSONAL:
                assert word not in value, f"{field} stores {word!r} in the clear"
            open_payload(value, field)  # every value is sealed for its own field
    async with app.state.ctx.sessionmaker() as session:  # the events' plain data column
        plain = (await session.execute(text(
            "SELECT CAST(data AS TEXT) FROM outbox_events WHERE tenant_id = :t"),
            {"t": tenant.tenant_id})).scalars().all()
    assert plain and not [p for p in plain if "Rosa" in p or "987654321" in p]

    # The API shows what it showed before.
    row = (await tenant.api.get(f"/v1/interactions/{message}")).json()
    assert row["status"] == "delivered" and row["content"]["text"].startswith("Hola Rosa")
    inbound = (await tenant.api.get("/v1/interactions", params={
        "debtor_id": debtor, "direction": "inbound"})).json()["data"]
    assert [i["content"]["text"] for i in inbound] == [REPLY]
    audit = (await tenant.api.get("/v1/audit", params={
        "resource_type": "debtor", "resource_id": str(debtor)})).json()["data"]
    assert any(e["changes"].get("name") == "Rosa Quispe" for e in audit), audit
    events = (await tenant.api.get("/v1/events", params={"type": "debtor.created"})).json()
    assert any(e["data"].get("name") == "Rosa Quispe" for e in events["data"]), events
    deliveries = (await tenant.api.get(
        f"/v1/integrations/{row['integration_id']}/webhook-deliveries")).json()
    assert len(deliveries) == 2


async def test_rotation_reseals_every_payload_a_batch_at_a_time(
        tenant: TenantClient, http: Any, twilio: Any, app: Litestar,
        run_jobs: Callable[[], Awaitable[int]]) -> None:
    from cartera import crypto

    _, message = await _send_and_reply(tenant, http, twilio, run_jobs)
    current = crypto.keyring()
    new_key = secrets.token_bytes(32)
    rotated = Keyring(new_key, [current.primary_key])
    async with app.state.ctx.sessionmaker() as session:
        counts = await reseal_payloads(session, rotated, batch=3)  # several batches each
        await session.commit()
    assert counts["interactions"] >= 1 and counts["audit_log"] > 3
    only_new = Keyring(new_key)
    for field, values in (await _raw(app, tenant.tenant_id)).items():
        for value in values:
            assert only_new.sealed_by_primary(value), field
            only_new.open(value, context=payload_context(field))
    async with app.state.ctx.sessionmaker() as session:
        again = await reseal_payloads(session, rotated, batch=3)
        assert set(again.values()) == {0}  # nothing left under the old key
        # Put things back for the rest of the session's tests.
        await reseal_payloads(session, Keyring(current.primary_key, [new_key]))
        await session.commit()
    row = (await tenant.api.get(f"/v1/interactions/{message}")).json()
    assert row["content"]["text"].startswith("Hola Rosa")


async def test_an_import_row_error_quoting_a_phone_stores_it_sealed(
        tenant: TenantClient, app: Litestar, run_jobs: Callable[[], Awaitable[int]]) -> None:
    from tests.imports.test_imports import DEBTOR, ndjson, run_import

    body = ndjson({**DEBTOR, "external_ref": "C-2",
                   "contact_points": [{"kind": "phone", "value": "9876543"}]})
    done = await run_import(tenant, run_jobs, body)
    errors = (await tenant.api.get(f"/v1/imports/{done['id']}/errors")).json()["data"]
    assert [e["code"] for e in errors] == ["invalid_phone"] and "9876543" in errors[0]["reason"]
    [stored] = (await _raw(app, tenant.tenant_id))["import_row_errors.reason"]
    assert b"9876543" not in stored
    assert open_payload(stored, "import_row_errors.reason").decode() == errors[0]["reason"]


# --- migration 0044 ------------------------------------------------------------------------

_BEFORE = [
    "INSERT INTO tenants (id, slug, name, country, default_currency, timezone, created_at) "
    "VALUES (1, 'a', 'A', 'PE', 'PEN', 'America/Lima', '2026-01-01')",
    "INSERT INTO debtors (id, tenant_id, external_ref, kind, name, country, timezone, "
    "attributes, created_at, updated_at) VALUES (10, 1, 'C-1', 'person', 'Rosa Quispe', "
    "'PE', 'America/Lima', '{}', '2026-01-01', '2026-01-01')",
    "INSERT INTO integrations (id, tenant_id, name, provider_kind, provider_name, config, "
    "secret_names, enabled, created_at, updated_at) VALUES (5, 1, 'T', 'channel', 'twilio_sms', "
    "'{}', '[]', true, '2026-01-01', '2026-01-01')",
    "INSERT INTO webhook_deliveries (id, tenant_id, integration_id, received_at, method, url, "
    "headers, body, signature_valid, status, events_new, events_duplicate) VALUES (1, 1, 5, "
    "'2026-01-01', 'POST', 'https://x/hook?From=987654321', '{\"x-caller\": \"Rosa\"}', "
    ":body, true, 'processed', 1, 0)",
    "INSERT INTO webhook_events (id, tenant_id, integration_id, delivery_id, event_id, "
    "event_type, payload, status, received_at) VALUES (1, 1, 5, 1, 'SM1', 'InboundMessage', "
    "'{\"from_address\": \"+51987654321\", \"text\": \"Pagare el viernes\"}', 'processed', "
    "'2026-01-01')",
] + [
    "INSERT INTO interactions (id, tenant_id, debtor_id, direction, channel, status, "
    f"obligation_ids, variables, content, verdict, \"trigger\", attempts, created_at, "
    f"updated_at) VALUES ({i}, 1, 10, 'outbound', 'sms', 'sent', '[]', "
    f"'{{\"who\": \"Rosa\"}}', {content}, NULL, '{{}}', 0, '2026-01-01', '2026-01-01')"
    for i, content in ((1, "'{\"text\": \"Hola Rosa\"}'"), (2, "NULL"), (3, "'null'"))
] + [
    "INSERT INTO interaction_events (id, tenant_id, interaction_id, status, at, source, "
    "detail) VALUES (1, 1, 1, 'failed', '2026-01-01', 'provider', "
    "'{\"reason\": \"987654321 unreachable\"}')",
    "INSERT INTO outbox_events (seq, id, tenant_id, type, created_at, resource_type, "
    "resource_id, debtor_id, data, dispatched) VALUES (1, 'evt_1', 1, 'debtor.created', "
    "'2026-01-01', 'debtor', '10', 10, '{\"name\": \"Rosa Quispe\"}', false)",
    "INSERT INTO audit_log (id, tenant_id, at, actor, action, resource_type, resource_id, "
    "changes) VALUES (1, 1, '2026-01-01', 'ana', 'debtor.created', 'debtor', '10', "
    "'{\"name\": \"Rosa Quispe\"}')",
    "UPDATE interactions SET failure_reason = 'To 987654321 is not reachable' WHERE id = 1",
    "INSERT INTO imports (id, tenant_id, format, file_path, size_bytes, status, rows_total, "
    "rows_applied, rows_failed, created_at) VALUES (1, 1, 'ndjson', '/x', 0, 'succeeded', 1, "
    "0, 1, '2026-01-01')",
    "INSERT INTO import_row_errors (id, tenant_id, import_id, line, code, reason, severity) "
    "VALUES (1, 1, 1, 1, 'invalid_phone', '98765 is not a phone number', 'error')",
]
_BODY = b"From=%2B51987654321&Body=Pagare+el+viernes"
_SEALED = {"webhook_deliveries": ("url", "headers", "body"), "webhook_events": ("payload",),
           "interactions": ("variables", "content", "failure_reason"),
           "interaction_events": ("detail",),
           "outbox_events": ("data_sealed",), "audit_log": ("changes",),
           "import_row_errors": ("reason",)}


def _scan(conn: Any, tables: dict[str, tuple[str, ...]] = _SEALED) -> dict[str, list[Any]]:
    """Each column's stored values, in primary-key order."""
    return {f"{name}.{c}": [row[0] for row in conn.execute(text(
        f'SELECT "{c}" FROM {name} ORDER BY {"seq" if name == "outbox_events" else "id"}'))]
        for name, columns in tables.items() for c in columns}


def test_0044_seals_existing_rows_and_the_downgrade_opens_them(
        tmp_path: Any, database_url: str) -> None:
    from alembic import command
    from sqlalchemy import create_engine, inspect

    from cartera.db import migrate

    with scratch_database(database_url, tmp_path, "_m44") as (url, sync_url):
        migrate.upgrade(url, "0042")
        engine = create_engine(sync_url)
        with engine.begin() as conn:
            for sql in _BEFORE:
                conn.execute(text(sql), {"body": _BODY} if ":body" in sql else {})
        migrate.upgrade(url, "0044")
        with engine.connect() as conn:
            sealed = _scan(conn)
        assert sealed["interactions.content"].count(None) == 2  # NULL and JSON null
        for field, values in sealed.items():
            for value in values:
                if value is None:
                    continue
                for word in PERSONAL:
                    assert word not in bytes(value), f"{field} keeps {word!r} in the clear"
        opened = {f: [None if v is None else open_payload(v, f) for v in vs]
                  for f, vs in sealed.items()}
        assert opened["webhook_deliveries.body"] == [_BODY]
        assert opened["webhook_deliveries.url"] == [b"https://x/hook?From=987654321"]
        assert opened["import_row_errors.reason"] == [b"98765 is not a phone number"]
        assert opened["interactions.failure_reason"] == [
            b"To 987654321 is not reachable", None, None]
        assert [open_json(v, "audit_log.changes") for v in
                sealed["audit_log.changes"]] == [{"name": "Rosa Quispe"}]
        assert open_json(sealed["interactions.content"][0],
                         "interactions.content") == {"text": "Hola Rosa"}
        with engine.connect() as conn:
            assert [json.loads(r[0]) for r in conn.execute(text(
                "SELECT CAST(data AS TEXT) FROM outbox_events"))] == [{}]
        assert [open_json(v, "outbox_events.data_sealed") for v in
                sealed["outbox_events.data_sealed"]] == [{"name": "Rosa Quispe"}]
        command.downgrade(migrate.alembic_config(url), "0042")
        with engine.connect() as conn:
            plain = _scan(conn, {k: v for k, v in _SEALED.items() if k != "outbox_events"})
            assert [bytes(v) for v in plain["webhook_deliveries.body"]] == [_BODY]
            assert plain["webhook_deliveries.url"] == ["https://x/hook?From=987654321"]
            assert plain["import_row_errors.reason"] == ["98765 is not a phone number"]
            assert plain["interactions.failure_reason"] == [
                "To 987654321 is not reachable", None, None]

            def as_json(v: Any) -> Any:
                return v if isinstance(v, dict | list) or v is None else json.loads(v)

            assert [as_json(v) for v in plain["audit_log.changes"]] == [
                {"name": "Rosa Quispe"}]
            assert [as_json(v) for v in plain["interactions.content"]] == [
                {"text": "Hola Rosa"}, None, None]
            assert [as_json(r[0]) for r in conn.execute(text(
                "SELECT data FROM outbox_events"))] == [{"name": "Rosa Quispe"}]
            assert "data_sealed" not in {c["name"] for c in inspect(conn).get_columns(
                "outbox_events")}
            assert [as_json(v) for v in plain["webhook_events.payload"]] == [
                {"from_address": "+51987654321", "text": "Pagare el viernes"}]
        engine.dispose()
