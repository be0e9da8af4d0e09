"""Pieces shared by every configurable provider: config/secrets types and their schemas.

A provider declares two msgspec Struct types:

* ``Config``: non-secret settings (base URL, sender id, phone-number id...). Stored in
  clear, returned by the API, validated against ``msgspec.json.schema(Config)``.
* ``Secrets``: credentials (API keys, app secrets, auth tokens). Write-only: the host
  encrypts them at rest, never returns or logs them, and passes them decrypted in
  :class:`~cartera_sdk.context.ProviderContext.secrets`.

Every field of ``Secrets`` is a secret; :func:`secret_fields` lists them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

import msgspec

__all__ = [
    "Configurable",
    "ConnectionCheck",
    "NoConfig",
    "NoSecrets",
    "integration_schema",
    "load_config",
    "secret_fields",
]

StructT = TypeVar("StructT", bound=msgspec.Struct)


class NoConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Config type for providers that need no settings."""


class NoSecrets(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Secrets type for providers that need no credentials."""


class ConnectionCheck(msgspec.Struct, frozen=True, kw_only=True):
    """Result of ``test_connection``: ``ok`` plus a human-readable ``detail``."""

    ok: bool
    detail: str = ""
    code: str | None = None


class Configurable(Protocol):
    """Anything that declares ``name``, ``Config`` and ``Secrets`` (every provider kind)."""

    @property
    def name(self) -> str: ...

    @property
    def Config(self) -> type[msgspec.Struct]: ...

    @property
    def Secrets(self) -> type[msgspec.Struct]: ...


def secret_fields(provider: Configurable) -> frozenset[str]:
    """Names of the provider's secret fields (all fields of its ``Secrets`` struct)."""
    return frozenset(provider.Secrets.__struct_fields__)


def integration_schema(provider: Configurable) -> dict[str, Any]:
    """JSON Schema for configuring an integration of ``provider``.

    ``{"config": <schema>, "secrets": <schema, every property writeOnly>}``.
    """
    config = msgspec.json.schema(provider.Config)
    secrets = msgspec.json.schema(provider.Secrets)
    for definition in secrets.get("$defs", {}).values():
        for prop in definition.get("properties", {}).values():
            prop["writeOnly"] = True
    return {"config": config, "secrets": secrets}


def load_config(struct_type: type[StructT], raw: Mapping[str, Any]) -> StructT:
    """Validate a JSON-like mapping into ``struct_type`` (raises ``msgspec.ValidationError``)."""
    return msgspec.convert(dict(raw), struct_type)
