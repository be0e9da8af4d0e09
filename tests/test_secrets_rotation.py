"""Rotating the master key: everything sealed under the old key is re-sealed under the new."""

from __future__ import annotations

import secrets

import pytest
from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, insert, select, text

from cartera.api.idempotency import body_context
from cartera.api.models import IdempotencyRecord
from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring, PiiCipher
from cartera.db.base import Base, SealedJson, SealedString, SealedText, payload_context
from cartera.events.endpoints import secret_context
from cartera.events.models import WebhookEndpoint
from cartera.integrations.models import Integration
from cartera.integrations.service import secrets_context
from cartera.secrets_rotation import (
    reseal_all,
    reseal_payloads,
    reseal_personal_data,
    sealed_payloads,
    sealed_tables,
)
from tests.conftest import TenantClient
from tests.integrations.test_integrations import create


def test_keyring_opens_old_and_seals_new() -> None:
    old, new = secrets.token_bytes(32), secrets.token_bytes(32)
    sealed = Keyring(old).seal(b"s3cret", context=b"c")
    rotated = Keyring(new, [old]).reseal(sealed, context=b"c")
    assert Keyring(new).open(rotated, context=b"c") == b"s3cret"
    assert rotated[:8] != sealed[:8]  # the fingerprint names the new key


async def test_reseal_all_moves_every_secret_to_the_new_key(tenant: TenantClient,
                                                            app: Litestar,
                                                            monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from cartera import crypto

    await create(tenant)
    debtor = await tenant.api.post("/v1/debtors", json={
        "external_ref": "ROT-1", "name": "Ana Rotada", "country": "PE",
        "national_id": "45678912"})
    assert debtor.status_code == 201, debtor.text
    with FakeHTTPServer() as receiver:
        endpoint = await tenant.api.post("/v1/webhook-endpoints", json={
            "url": f"{receiver.base_url}/hook", "event_types": ["*"]},
            headers={"Idempotency-Key": "rotation-endpoint"})
    assert endpoint.status_code == 201, endpoint.text
    current = crypto.keyring()
    new_key = secrets.token_bytes(32)
    rotated = Keyring(new_key, [current._primary])
    async with app.state.ctx.sessionmaker() as session:
        counts = await reseal_all(session, rotated)
        await session.commit()
        assert counts["signing_keys"] >= 1 and counts["integrations"] >= 1
        assert counts["webhook_endpoints"] >= 1 and counts["idempotent_responses"] >= 1
        assert counts["personal_data_rows"] >= 1
        stored = (await session.execute(text(
            "SELECT name, national_id FROM debtors WHERE id = :id"),
            {"id": debtor.json()["id"]})).one()
        only_new_pii = PiiCipher(new_key)
        assert (only_new_pii.open(stored[0], "debtors.name"),
                only_new_pii.open(stored[1], "debtors.national_id")) == ("Ana Rotada",
                                                                          "45678912")
        only_new = Keyring(new_key)
        for key in await session.scalars(select(SigningKey)):
            only_new.open(key.private_key_encrypted, context=SIGNING_KEY_CONTEXT)
        for integ in await session.scalars(select(Integration)):
            assert integ.secrets_sealed is not None
            only_new.open(integ.secrets_sealed, context=secrets_context(integ.tenant_id))
            assert integ.webhook_token_sealed is not None
            only_new.open(integ.webhook_token_sealed,
                          context=f"webhook-token:{integ.tenant_id}".encode())
        for hook in await session.scalars(select(WebhookEndpoint)):
            only_new.open(hook.secret_sealed, context=secret_context(hook.tenant_id))
        for stored in await session.scalars(select(IdempotencyRecord).where(
                IdempotencyRecord.body.is_not(None))):
            assert stored.body is not None
            only_new.open(stored.body, context=body_context(stored))
        # Put things back for the rest of the session's tests.
        await reseal_all(session, Keyring(current._primary, [new_key]))
        await session.commit()


def test_rotation_covers_every_sealed_column_of_every_model() -> None:
    """Every column of every mapped table whose type seals (any ``Sealed*`` type of
    :mod:`cartera.db.base`, a new one included) is one a rotation reseals, once, under the
    field its type seals with, by its table's primary key."""
    import cartera.db.base as base
    import cartera.db.models  # noqa: F401  (every domain's tables registered)

    sealing = tuple(v for k, v in vars(base).items()
                    if k.startswith("Sealed") and isinstance(v, type))
    assert len(sealing) >= 4
    every = {(name, c.name): c for name, tbl in Base.metadata.tables.items()
             for c in tbl.columns if isinstance(c.type, sealing)}
    assert ("promises", "note") in every and ("outbox_events", "data_sealed") in every
    planned = [(t, column, field) for t in sealed_payloads() + sealed_tables((SealedText,))
               for column, field in zip(t.columns, t.fields, strict=True)]
    assert sorted((t.name, column) for t, column, _ in planned) == sorted(every)
    for t, column, field in planned:
        assert field == f"{t.name}.{column}" == every[(t.name, column)].type.field
        [key] = Base.metadata.tables[t.name].primary_key.columns
        assert t.key == key.name
    assert {t.name: t.key for t in sealed_payloads()}["outbox_events"] == "seq"


def test_a_sealed_column_in_a_table_without_a_single_key_is_refused() -> None:
    metadata = MetaData()
    Table("pairs", metadata, Column("a", Integer, primary_key=True),
          Column("b", Integer, primary_key=True), Column("v", SealedString("pairs.v")))
    with pytest.raises(RuntimeError, match="pairs"):
        sealed_payloads(metadata)


async def test_rotation_reseals_a_table_keyed_by_another_column(app: Litestar) -> None:
    """Found from the column types of any table, keyed by whatever its primary key is
    (here ``seq``, as ``outbox_events``): payloads and personal data, a batch at a time."""
    from cartera import crypto

    metadata = MetaData()
    probe = Table("rotation_probe", metadata,
                  Column("seq", BigInteger().with_variant(Integer(), "sqlite"),
                         primary_key=True, autoincrement=False),
                  Column("blob", SealedJson("rotation_probe.blob")),
                  Column("name", SealedText("rotation_probe.name")))
    current = crypto.keyring()
    new_key = secrets.token_bytes(32)
    rotated = Keyring(new_key, [current.primary_key])
    engine = app.state.ctx.engine
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(probe), [
                {"seq": i, "blob": {"n": i}, "name": f"Ana {i}" if i % 2 else None}
                for i in range(1, 8)])
        async with app.state.ctx.sessionmaker() as session:
            counts = await reseal_payloads(session, rotated, batch=3, metadata=metadata)
            people = await reseal_personal_data(session, PiiCipher(new_key,
                                                                   [current.primary_key]),
                                                batch=3, metadata=metadata)
            await session.commit()
        assert (counts, people) == ({"rotation_probe": 7}, 4)
        async with engine.connect() as conn:
            rows = (await conn.exec_driver_sql(
                "SELECT seq, blob, name FROM rotation_probe ORDER BY seq")).all()
        only_new, only_new_pii = Keyring(new_key), PiiCipher(new_key)
        assert [(seq, only_new.open(bytes(blob), context=payload_context(
            "rotation_probe.blob")), None if name is None else only_new_pii.open(
            name, "rotation_probe.name")) for seq, blob, name in rows] == [
            (i, b'{"n":%d}' % i, f"Ana {i}" if i % 2 else None) for i in range(1, 8)]
        async with app.state.ctx.sessionmaker() as session:  # a second run rewrites nothing
            again = await reseal_payloads(session, rotated, batch=3, metadata=metadata)
        assert again == {"rotation_probe": 0}
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.drop_all)
