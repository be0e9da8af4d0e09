"""Personal data is sealed at rest on every path that writes it, opened on every path that
reads it, and still found by the equality lookups (search, import upserts) and across a
master key rotation."""

from __future__ import annotations

import base64
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.clock import today_in
from cartera.crypto import Keyring, PiiCipher, pii_cipher
from cartera.demo.generator import load_demo_portfolio
from cartera.portfolio import reads
from cartera.secrets_rotation import reseal_payloads, reseal_personal_data, sealed_columns
from tests.conftest import TenantClient
from tests.imports.test_imports import ndjson, run_import
from tests.messaging.test_sending import provider as provider
from tests.messaging.test_sending import setup as sms_setup

RunJobs = Callable[[], Awaitable[int]]

DEBTOR: dict[str, Any] = {
    "external_ref": "PII-1", "name": "Ana María Quispe", "country": "PE",
    "national_id": "45678912",
    "contact_points": [{"kind": "phone", "value": "987 654 321", "consent": "granted"},
                       {"kind": "email", "value": "ana.quispe@example.pe"}],
    "related_parties": [{"role": "guarantor", "name": "Rosa Quispe", "national_id": "12345678",
                         "phone": "912 345 678", "email": "rosa@example.pe"}]}
IMPORTED = {"type": "debtor", "external_ref": "PII-IMP", "name": "Luis Soto Ramírez",
            "country": "PE", "national_id": "40111222",
            "contact_points": [{"kind": "phone", "value": "+51 955 111 222"},
                               {"kind": "email", "value": "luis.soto@example.pe"}]}
CSV = (b"type,external_ref,name,country,national_id,phone,email\n"
       b"debtor,PII-CSV,Carmen Flores,PE,41222333,955333444,carmen@example.pe\n")
PLAINTEXTS = ["Ana María Quispe", "45678912", "+51987654321", "ana.quispe@example.pe",
              "Rosa Quispe", "12345678", "+51912345678", "rosa@example.pe",
              "Luis Soto Ramírez", "40111222", "+51955111222", "luis.soto@example.pe",
              "Carmen Flores", "41222333", "+51955333444", "carmen@example.pe", "Rosa Quispe",
              "+51987654321"]


async def _stored(app: Litestar, tenant_ids: list[int]) -> dict[tuple[str, str], list[str]]:
    """Every non-null stored value of every sealed column of ``tenant_ids``, read with plain
    SQL on the driver (no column type), staging tables included."""
    found: dict[tuple[str, str], list[str]] = {}
    marks = ", ".join(str(int(t)) for t in tenant_ids)
    async with app.state.ctx.engine.connect() as conn:
        for table, columns in sealed_columns().items():
            for column in columns:
                rows = await conn.exec_driver_sql(
                    f"SELECT {column} FROM {table} WHERE tenant_id IN ({marks}) "
                    f"AND {column} IS NOT NULL")
                found[(table, column)] = [r[0] for r in rows.all()]
        for table, column in (("import_stage_debtors", "name"),
                              ("import_stage_debtors", "national_id"),
                              ("import_stage_contacts", "value")):
            rows = await conn.exec_driver_sql(f"SELECT {column} FROM {table} "
                                              f"WHERE {column} IS NOT NULL")
            found[(table, column)] = [r[0] for r in rows.all()]
    return found


def _ids(page: Any) -> list[str]:
    return [d["external_ref"] for d in page.json()["data"]]


async def test_every_path_stores_personal_data_sealed_and_answers_it_opened(
        app: Litestar, tenant: TenantClient, make_tenant: Callable[..., Awaitable[TenantClient]],
        run_jobs: RunJobs, provider: Any) -> None:
    demo = await make_tenant()
    async with app.state.ctx.sessionmaker() as session:
        await load_demo_portfolio(session, demo.tenant_id, 30, 3, today_in("America/Lima"))
        await session.commit()
    created = await tenant.api.post("/v1/debtors", json=DEBTOR)
    assert created.status_code == 201, created.text
    added = await tenant.api.post(f"/v1/debtors/{created.json()['id']}/contact-points",
                                  json={"kind": "whatsapp", "value": "987654321"})
    assert added.status_code == 201, added.text
    done = await run_import(tenant, run_jobs, ndjson(IMPORTED))
    assert done["status"] == "succeeded", done
    done = await run_import(tenant, run_jobs, CSV, "text/csv")
    assert done["status"] == "succeeded", done
    debtor_id, integration, template = await sms_setup(tenant, provider)
    sent = await tenant.api.post("/v1/messages", json={
        "debtor_id": debtor_id, "integration_id": integration, "template_id": template},
        headers={"Idempotency-Key": "pii-send"})
    assert sent.status_code == 202, sent.text
    await run_jobs()
    assert (await tenant.api.get(f"/v1/interactions/{sent.json()['id']}")).json()[
        "address"] == "+51987654321"

    stored = await _stored(app, [tenant.tenant_id, demo.tenant_id])
    cipher = pii_cipher()
    for (table, column), values in stored.items():
        field = f"{table}.{column}".replace("import_stage_debtors", "debtors").replace(
            "import_stage_contacts", "contact_points")
        for value in values:
            assert value.startswith(PiiCipher.MARKER), (table, column, value)
            cipher.open(value, field)
    for table, column in (("debtors", "name"), ("debtors", "national_id"),
                          ("contact_points", "value"), ("related_parties", "name"),
                          ("related_parties", "phone"), ("interactions", "address")):
        assert stored[(table, column)], (table, column)  # the scan saw rows of each
    everything = "\n".join(v for values in stored.values() for v in values)
    for plain in PLAINTEXTS:
        assert plain not in everything, plain

    # The API answers plaintext on every read path: one debtor (on PostgreSQL the plain
    # ReadPool statement), the list (on PostgreSQL JSON rows), and the ORM path (expand).
    one = (await tenant.api.get(f"/v1/debtors/{created.json()['id']}")).json()
    assert one["name"] == DEBTOR["name"] and one["national_id"] == "45678912"
    assert [c["value"] for c in one["contact_points"]] == [
        "+51987654321", "ana.quispe@example.pe", "+51987654321"]
    [rp] = one["related_parties"]
    assert (rp["name"], rp["national_id"], rp["phone"], rp["email"]) == (
        "Rosa Quispe", "12345678", "+51912345678", "rosa@example.pe")
    expanded = (await tenant.api.get(f"/v1/debtors/{created.json()['id']}",
                                     params={"expand": "balance"})).json()
    assert {k: v for k, v in expanded.items() if k != "balance"} == one
    listed = (await tenant.api.get("/v1/debtors", params={"limit": 100})).json()["data"]
    assert [d for d in listed if d["id"] == one["id"]] == [one]
    assert {d["name"] for d in listed} >= {"Luis Soto Ramírez", "Carmen Flores",
                                           "Rosa Quispe"}
    demo_list = (await demo.api.get("/v1/debtors", params={"limit": 5})).json()["data"]
    assert all(not d["name"].startswith(PiiCipher.MARKER) for d in demo_list)


async def test_search_finds_by_national_id_email_phone_and_whole_name(
        tenant: TenantClient, run_jobs: RunJobs) -> None:
    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    await run_import(tenant, run_jobs, ndjson(IMPORTED))
    for q in ("45678912", "45.678.912", "ana.quispe@example.pe", "ANA.QUISPE@example.pe",
              "987 654 321", "Ana María Quispe"):
        found = await tenant.api.get("/v1/debtors", params={"q": q})
        assert [d["id"] for d in found.json()["data"]] == [created["id"]], q
    for q in ("40111222", "luis.soto@example.pe", "955111222", "Luis Soto Ramírez"):
        assert _ids(await tenant.api.get("/v1/debtors", params={"q": q})) == ["PII-IMP"], q
    assert _ids(await tenant.api.get("/v1/debtors", params={"q": "4567891"})) == []


async def test_an_import_upserts_by_sealed_values_as_before(
        app: Litestar, tenant: TenantClient, run_jobs: RunJobs) -> None:
    """Importing the same debtor again (the phone written another way) adds no contact point
    and changes no row; a changed name is written sealed and found by it."""
    first = await run_import(tenant, run_jobs, ndjson(IMPORTED))
    assert first["status"] == "succeeded"
    again = {**IMPORTED, "contact_points": [
        {"kind": "phone", "value": "955 111 222"}, {"kind": "email",
                                                    "value": "luis.soto@example.pe"}]}
    await run_import(tenant, run_jobs, ndjson(again))
    [debtor] = (await tenant.api.get("/v1/debtors", params={"q": "40111222"})).json()["data"]
    assert sorted(c["value"] for c in debtor["contact_points"]) == [
        "+51955111222", "luis.soto@example.pe"]
    async with app.state.ctx.engine.connect() as conn:
        count = (await conn.exec_driver_sql(
            f"SELECT count(*) FROM contact_points WHERE debtor_id = {int(debtor['id'])}"
        )).scalar_one()
    assert count == 2
    await run_import(tenant, run_jobs, ndjson({**again, "name": "Luis Soto R."}))
    assert _ids(await tenant.api.get("/v1/debtors", params={"q": "Luis Soto R."})) == [
        "PII-IMP"]
    assert _ids(await tenant.api.get("/v1/debtors", params={"q": "Luis Soto Ramírez"})) == []


async def _reseal_signing_keys(session: AsyncSession, keyring: Keyring) -> None:
    for key in (await session.scalars(select(SigningKey))).all():
        key.private_key_encrypted = keyring.reseal(key.private_key_encrypted,
                                                   context=SIGNING_KEY_CONTEXT)
    await session.flush()


async def test_rotation_reads_and_finds_old_rows_then_reseals_them(
        app: Litestar, tenant: TenantClient, run_jobs: RunJobs,
        monkeypatch: pytest.MonkeyPatch) -> None:
    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    old = base64.urlsafe_b64decode(os.environ["CARTERA_MASTER_KEY"])
    new = os.urandom(32)
    monkeypatch.setenv("CARTERA_MASTER_KEY", base64.urlsafe_b64encode(new).decode())
    monkeypatch.setenv("CARTERA_OLD_MASTER_KEYS", base64.urlsafe_b64encode(old).decode())
    rotating = pii_cipher()
    assert not rotating.single_key
    try:
        # Before `secrets rotate`: rows under the old key read and are found.
        one = (await tenant.api.get(f"/v1/debtors/{created['id']}")).json()
        assert one["name"] == DEBTOR["name"] and one["national_id"] == "45678912"
        for q in ("45678912", "ana.quispe@example.pe", "987654321", DEBTOR["name"]):
            found = (await tenant.api.get("/v1/debtors", params={"q": q})).json()["data"]
            assert [d["id"] for d in found] == [created["id"]], q
        # New writes go under the new key, next to the old rows.
        await tenant.api.post(f"/v1/debtors/{created['id']}/contact-points",
                              json={"kind": "email", "value": "ana2@example.pe"})
        async with app.state.ctx.sessionmaker() as session:
            moved = await reseal_personal_data(session, rotating, batch=7)
            # The token signing keys too (as `secrets rotate` does): they are re-read from
            # the database every minute, and must open once the old key is gone.
            await _reseal_signing_keys(session, Keyring(new, [old]))
            await session.commit()
        assert moved >= 4  # the debtor, its related party, two contact points at least
        stored = await _stored(app, [tenant.tenant_id])
        assert all(rotating.under_primary(v) for values in stored.values() for v in values)
        new_only = PiiCipher(new)
        assert new_only.open(stored[("debtors", "national_id")][0],
                             "debtors.national_id") == "45678912"
        monkeypatch.delenv("CARTERA_OLD_MASTER_KEYS")  # the old key can go now
        assert pii_cipher().single_key
        await app.state.ctx.tokens.refresh()  # as it does every minute: the keys open
        listed = await tenant.api.get("/v1/debtors", params={"q": "45678912"})
        assert listed.status_code == 200, listed.text
        assert [d["id"] for d in listed.json()["data"]] == [created["id"]]
        again = (await tenant.api.get(f"/v1/debtors/{created['id']}")).json()
        personal = ("name", "national_id", "related_parties")
        assert {k: again[k] for k in personal} == {k: one[k] for k in personal}
        assert [c["value"] for c in again["contact_points"]] == [
            *(c["value"] for c in one["contact_points"]), "ana2@example.pe"]
    finally:
        # Back under the session's key, for the other tests sharing the database (the
        # writes above also sealed payloads, e.g. their audit changes, under the new key).
        async with app.state.ctx.sessionmaker() as session:
            await reseal_personal_data(session, PiiCipher(old, [new]))
            await reseal_payloads(session, Keyring(old, [new]))
            await _reseal_signing_keys(session, Keyring(old, [new]))
            await session.commit()


async def test_the_read_paths_open_with_the_fields_of_the_columns() -> None:
    """:mod:`cartera.portfolio.reads` opens with field names of its own: they are those the
    column types seal with."""
    from cartera.portfolio.models import ContactPoint, Debtor, RelatedParty

    d, cp, rp = (Debtor.__table__.c, ContactPoint.__table__.c, RelatedParty.__table__.c)
    columns = [d.name, d.national_id, cp.value, rp.name, rp.national_id, rp.phone, rp.email]
    fields = [reads._NAME, reads._NATIONAL_ID, reads._CP_VALUE, reads._RP_NAME,
              reads._RP_NATIONAL_ID, reads._RP_PHONE, reads._RP_EMAIL]
    assert [c.type.field for c in columns] == fields


async def test_an_inbound_opt_out_matches_sealed_contact_points(
        app: Litestar, tenant: TenantClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Suppression matching (inbound STOP, bounces) finds points by their sealed value, and
    during a rotation those still sealed under the old key too."""
    from cartera.db.engine import tenant_session
    from cartera.messaging.suppression import matching_points

    created = (await tenant.api.post("/v1/debtors", json=DEBTOR)).json()
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        points = await matching_points(session, tenant.tenant_id, "51987654321")
    assert [p.debtor_id for p in points] == [created["id"]]
    assert points[0].value == "+51987654321"
    monkeypatch.setenv("CARTERA_OLD_MASTER_KEYS", os.environ["CARTERA_MASTER_KEY"])
    monkeypatch.setenv("CARTERA_MASTER_KEY", base64.urlsafe_b64encode(os.urandom(32)).decode())
    async with tenant_session(app.state.ctx.sessionmaker, tenant.tenant_id) as session:
        points = await matching_points(session, tenant.tenant_id, "+51987654321")
    assert [(p.debtor_id, p.value) for p in points] == [(created["id"], "+51987654321")]
