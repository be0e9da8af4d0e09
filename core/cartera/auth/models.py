"""OAuth2 clients and the token-signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, LargeBinary, PrimaryKeyConstraint, String, text
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, JsonType, TenantScoped, UtcDateTime, utcnow


class OAuthClient(TenantScoped, Base):
    """A machine client bound to one tenant; its secret is stored only as a hash.

    ``auth_method`` is ``client_secret`` (HTTP Basic or form post; ``secret_hash`` set) or
    ``private_key_jwt`` (RFC 7523 assertions verified with ``jwks`` or the keys at
    ``jwks_uri``; no secret). After a rotation the previous secret keeps working until
    ``previous_secret_expires_at``."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(1000))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    auth_method: Mapped[str] = mapped_column(String(32), default="client_secret",
                                             server_default="client_secret")
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JsonType)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000))


class RevokedToken(Base):
    """An access token revoked before its expiry (RFC 7009), kept until ``expires_at``."""

    __tablename__ = "oauth_revoked_tokens"

    jti: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class UsedAssertion(Base):
    """A client assertion's ``jti`` (RFC 7523), kept until the assertion expires so that it
    cannot be replayed."""

    __tablename__ = "oauth_used_assertions"
    __table_args__ = (PrimaryKeyConstraint("client_id", "jti"),)

    client_id: Mapped[str] = mapped_column(String(64))
    jti: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class SigningKey(Base):
    """An RSA key pair that signs access tokens; the private half is encrypted at rest.

    At most one is ``active`` (it signs); a retired one verifies until ``retired_at`` plus
    a token lifetime."""

    __tablename__ = "signing_keys"
    __table_args__ = (Index("uq_signing_keys_one_active", "active", unique=True,
                            postgresql_where=text("active"), sqlite_where=text("active")),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JsonType)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
