"""OAuth2 clients and the token-signing keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from cartera.db.base import Base, BigId, JsonType, TenantScoped, UtcDateTime, utcnow


class OAuthClient(TenantScoped, Base):
    """A machine client bound to one tenant; its secret is stored only as a hash."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[str] = mapped_column(String(1000))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


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
