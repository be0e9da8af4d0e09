"""Signing keys: algorithm pinning, rotation with a verification window and reload, one
first key for instances racing on an empty database; the master key file."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from litestar import Litestar
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from cartera.auth import keys
from cartera.auth.models import SigningKey
from cartera.auth.tokens import AUDIENCE
from cartera.cli import main
from cartera.crypto import keyring
from cartera.db.engine import make_engine, make_sessionmaker
from cartera.settings import MasterKeyMissing, Settings
from tests.conftest import TenantClient


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(tenant: TenantClient) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "http://testserver.local", "aud": AUDIENCE, "sub": tenant.client_id,
            "client_id": tenant.client_id, "tenant_id": tenant.tenant_id, "iat": now,
            "exp": now + 300, "jti": "j-1", "scope": "portfolio:read"}


async def _status(tenant: TenantClient, token: str) -> int:
    r = await tenant.api.get("/v1/debtors", headers={"Authorization": f"Bearer {token}"})
    return r.status_code


async def test_only_the_keys_algorithm_is_accepted(app: Litestar, tenant: TenantClient) -> None:
    current = app.state.ctx.tokens.keys
    kid = current.private.kid
    header = {"typ": "at+jwt", "kid": kid}
    unsigned = f"{_b64({**header, 'alg': 'none'})}.{_b64(_claims(tenant))}."
    public_pem = RSAKey.import_key(current.public_jwks["keys"][-1]).as_pem(private=False)
    signing_input = f"{_b64({**header, 'alg': 'HS256'})}.{_b64(_claims(tenant))}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    unpinned = {k: v for k, v in current.private.as_dict(private=True).items() if k != "alg"}
    other_alg = jwt.encode({**header, "alg": "RS512"}, _claims(tenant),
                           RSAKey.import_key(unpinned), algorithms=["RS512"])
    right = jwt.encode({**header, "alg": "RS256"}, _claims(tenant), current.private)
    assert await _status(tenant, right) == 200
    for token in (unsigned, confused, other_alg):
        assert await _status(tenant, token) == 401


async def _rotate(app: Litestar, ttl_seconds: int) -> keys.Rotation:
    async with app.state.ctx.sessionmaker() as session:
        done = await keys.rotate(session, keyring(), ttl_seconds=ttl_seconds)
        await session.commit()
    return done


async def _jwks_kids(http: Any) -> set[str]:
    return {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}


async def test_rotation_keeps_the_old_key_for_a_token_lifetime_and_the_app_reloads(
    app: Litestar, http: Any, tenant: TenantClient,
) -> None:
    tokens = app.state.ctx.tokens
    old_token = tenant.api.headers["authorization"][7:]
    old_kid = tokens.keys.private.kid
    done = await _rotate(app, ttl_seconds=tokens.ttl_seconds)
    assert done.retired == [old_kid] and done.new_kid
    # a token signed with the new key (another instance's) makes this app reload at once
    async with app.state.ctx.sessionmaker() as session:
        newest = await keys.load(session, keyring(), ttl_seconds=tokens.ttl_seconds)
    tokens._loaded_at -= 10  # past the unknown-kid back-off, not the periodic refresh
    fresh = keys.SigningKeys(newest.private, newest.public_jwks["keys"])
    signed_elsewhere = jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": done.new_kid},
                                  _claims(tenant), fresh.private)
    assert await _status(tenant, signed_elsewhere) == 200
    assert tokens.keys.private.kid == done.new_kid  # it signs with the new key now
    assert await _jwks_kids(http) == {old_kid, done.new_kid}
    assert await _status(tenant, old_token) == 200  # still inside its lifetime
    issued = await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(tenant.client_id, tenant.client_secret))
    assert jwt.decode(issued.json()["access_token"], fresh.public_set).header["kid"] == \
        done.new_kid

    # a lifetime later the next rotation drops the old key; running apps stop trusting it
    async with app.state.ctx.sessionmaker() as session:
        await session.execute(text("UPDATE signing_keys SET retired_at = :t WHERE kid = :k"),
                              {"t": "2000-01-01 00:00:00+00:00", "k": old_kid})
        await session.commit()
    again = await _rotate(app, ttl_seconds=tokens.ttl_seconds)
    assert old_kid in again.dropped
    await tokens.refresh()
    assert old_kid not in await _jwks_kids(http)
    assert await _status(tenant, old_token) == 401
    assert await _status(tenant, signed_elsewhere) == 200  # the key retired just now


def test_keys_rotate_command(settings: Settings, capsys: pytest.CaptureFixture[str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTERA_DATABASE_URL", settings.database_url)
    from cartera.settings import clear_settings_cache, install_settings

    clear_settings_cache()
    try:
        assert main(["keys", "rotate"]) == 0
    finally:
        install_settings(settings)
    assert "signing with the new key" in capsys.readouterr().out


@pytest.mark.skipif(
    not os.environ.get("CARTERA_TEST_DATABASE_URL", "").startswith(("postgres", "postgresql")),
    reason="needs CARTERA_TEST_DATABASE_URL on PostgreSQL")
async def test_two_instances_on_an_empty_database_create_one_key(
        database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    both_looked = asyncio.Barrier(2)
    insert = keys._insert_active

    async def insert_after_both_looked(*args: Any) -> str | None:
        await both_looked.wait()  # each instance has seen an empty table
        return await insert(*args)

    monkeypatch.setattr(keys, "_insert_active", insert_after_both_looked)
    url = make_url(database_url)
    name = f"{url.database}_keys"
    admin = make_engine(database_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    fresh_url = url.set(database=name).render_as_string(hide_password=False)
    engines = [make_engine(fresh_url) for _ in range(2)]
    try:
        async with engines[0].begin() as conn:
            await conn.run_sync(lambda c: SigningKey.__table__.create(c))  # type: ignore[attr-defined]

        async def start(engine: Any) -> str:
            async with make_sessionmaker(engine)() as session:
                loaded = await keys.load_or_create(session, keyring())
                await session.commit()
            return str(loaded.private.kid)

        kids = await asyncio.gather(*(start(engine) for engine in engines))
        async with make_sessionmaker(engines[0])() as session:
            assert await session.scalar(select(func.count()).select_from(SigningKey)) == 1
        assert kids[0] == kids[1]
    finally:
        for engine in engines:
            await engine.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await admin.dispose()


def test_no_master_key_file_for_postgresql(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTERA_MASTER_KEY")
    monkeypatch.setenv("CARTERA_HOME", str(tmp_path))
    with pytest.raises(MasterKeyMissing, match="CARTERA_MASTER_KEY"):
        Settings(database_url="postgresql+psycopg://db.example/cartera").master_key()
    assert list(tmp_path.iterdir()) == []


def test_the_embedded_master_key_file_is_private_from_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARTERA_MASTER_KEY")
    monkeypatch.setenv("CARTERA_HOME", str(tmp_path / "home"))

    def no_chmod(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the file must be created 0600, not opened up then narrowed")

    monkeypatch.setattr(os, "chmod", no_chmod)
    monkeypatch.setattr(Path, "chmod", no_chmod)
    previous = os.umask(0)
    try:
        key = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}").master_key()
    finally:
        os.umask(previous)
    path = tmp_path / "home" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32
    assert Settings(database_url="sqlite+aiosqlite://").master_key() == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]
