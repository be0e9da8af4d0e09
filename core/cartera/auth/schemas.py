"""API shapes of OAuth clients. A secret goes out once (on creation and rotation), never in."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Struct

from cartera.types import ShortName

ScopeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                        pattern=r"^[a-z_]+:[a-z_]+$",
                                        examples=["portfolio:read"])]
AuthMethod = Literal["client_secret", "private_key_jwt"]


class ClientCreate(Struct, forbid_unknown_fields=True):
    """``scopes``: each must be held by the calling token (no escalation) and
    ``platform:admin`` is never granted here; omitted: every ``*:read`` scope the caller
    holds. ``auth_method`` ``private_key_jwt`` needs exactly one of ``jwks`` (public keys)
    and ``jwks_uri`` (https), and has no secret."""

    name: ShortName
    scopes: Annotated[list[ScopeName], msgspec.Meta(min_length=1, max_length=50)] | None = None
    auth_method: AuthMethod = "client_secret"
    jwks: dict[str, Any] | None = None
    jwks_uri: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | None = None


class ClientOut(Struct):
    id: int
    client_id: str
    name: str
    scopes: list[str]
    auth_method: AuthMethod
    disabled: bool
    created_at: datetime
    jwks: dict[str, Any] | None
    jwks_uri: str | None
    previous_secret_expires_at: datetime | None
    """After a rotation: until when the previous secret still works."""


class ClientWithSecret(ClientOut, kw_only=True):
    """A client with its new secret: shown this once, never again (null for
    ``private_key_jwt``)."""

    client_secret: str | None
