"""API shapes of tenants (platform operators only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Struct

from cartera.types import CountryCode, Currency, ShortName

Slug = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9\-]*$",
                                   examples=["acme-pe"])]
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64,
                                       examples=["America/Lima"])]


class TenantCreate(Struct, forbid_unknown_fields=True):
    """``timezone`` defaults to the country's main IANA zone."""

    slug: Slug
    name: ShortName
    country: CountryCode
    default_currency: Currency
    timezone: TimeZone | None = None


class TenantOut(Struct):
    id: int
    slug: str
    name: str
    country: str
    default_currency: str
    timezone: str
    created_at: datetime
