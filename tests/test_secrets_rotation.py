"""Rotating the master key: everything sealed under the old key is re-sealed under the new."""

from __future__ import annotations

import secrets

from cartera_sdk.testkit import FakeHTTPServer
from litestar import Litestar
from sqlalchemy import select, text

from cartera.api.idempotency import body_context
from cartera.api.models import IdempotencyRecord
from cartera.auth.keys import SIGNING_KEY_CONTEXT
from cartera.auth.models import SigningKey
from cartera.crypto import Keyring, PiiCipher
from cartera.events.endpoints import secret_context
from cartera.events.models import WebhookEndpoint
from cartera.integrations.models import Integration
from cartera.integrations.service import secrets_context
from cartera.secrets_rotation import reseal_all
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
