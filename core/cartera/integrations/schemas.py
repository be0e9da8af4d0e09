"""API shapes of plugins and integrations. Secrets go in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType

from cartera.types import ShortName

ProviderName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]

ProviderKindName = Literal["channel", "payment", "erp", "compliance"]


class ProviderInfo(Struct):
    kind: str
    name: str
    config_schema: dict[str, Any]
    secrets_schema: dict[str, Any]
    secret_fields: list[str]
    supports_test_connection: bool


class PluginOut(Struct):
    name: str
    distribution: str | None
    version: str | None
    providers: list[ProviderInfo]


class PluginList(Struct):
    data: list[PluginOut]


class IntegrationCreate(Struct, forbid_unknown_fields=True):
    name: ShortName
    provider_kind: ProviderKindName
    provider_name: ProviderName
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}


class IntegrationUpdate(Struct, forbid_unknown_fields=True):
    name: ShortName | UnsetType = UNSET
    config: dict[str, Any] | UnsetType = UNSET
    secrets: dict[str, Any] | UnsetType = UNSET
    """Merged into the stored secrets: keys given replace, keys omitted are kept."""
    enabled: bool | UnsetType = UNSET


class IntegrationOut(Struct):
    id: int
    name: str
    provider_kind: str
    provider_name: str
    config: dict[str, Any]
    secrets_set: list[str]
    enabled: bool
    webhook_url: str
    created_at: datetime
    updated_at: datetime


class ConnectionTestOut(Struct):
    ok: bool
    detail: str
    code: str | None


class WebhookDeliveryOut(Struct):
    id: int
    received_at: datetime
    method: str
    signature_valid: bool
    rejection: str | None
    status: str
    events_new: int
    events_duplicate: int
    error: str | None


class WebhookRejectionOut(Struct):
    reason: str
    count: int
    first_seen_at: datetime
    last_seen_at: datetime
