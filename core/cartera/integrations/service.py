"""Integrations: validated config, write-only sealed secrets, provider contexts, tests."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets as random_secrets
import ssl
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import certifi
import httpx
import msgspec
from cartera_sdk.context import ProviderContext
from cartera_sdk.egress import EgressPolicy
from cartera_sdk.http import make_client
from cartera_sdk.integration import NoConfig, NoSecrets
from sqlalchemy.ext.asyncio import AsyncSession

from cartera.api.context import Actor
from cartera.audit import service as audit
from cartera.crypto import Keyring, keyring
from cartera.db import get_owned
from cartera.errors import Invalid
from cartera.integrations import schemas
from cartera.integrations.models import Integration
from cartera.plugins.host import PluginHost, RegisteredProvider
from cartera.settings import get_settings

log = logging.getLogger("cartera.integrations")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_LOOSER = re.compile(r"^looser_than_law:(\w+): (.*)$")


def secrets_context(tenant_id: int) -> bytes:
    return f"integration-secrets:{tenant_id}".encode()


def seal_secrets(tenant_id: int, secrets: Mapping[str, Any]) -> bytes:
    return keyring().seal(msgspec.json.encode(dict(secrets)), context=secrets_context(tenant_id))


def open_secrets(integration: Integration) -> dict[str, Any]:
    if not integration.secrets_sealed:
        return {}
    raw = keyring().open(integration.secrets_sealed, context=secrets_context(integration.tenant_id))
    decoded: dict[str, Any] = msgspec.json.decode(raw)
    return decoded


def _validated(struct_type: type[msgspec.Struct], raw: Mapping[str, Any], param: str,
               *, reveal_values: bool) -> msgspec.Struct:
    try:
        return msgspec.convert(dict(raw), struct_type)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH.search(message)
        field = f"{param}.{match.group(1)}" if match and match.group(1) else param
        reason = _PATH.sub("", message)
        looser = _LOOSER.match(message)
        if looser:  # a compliance pack refusing a config looser than the law
            field = f"{param}.{looser.group(1)}"
            raise Invalid(f"{field}: {looser.group(2)}", code="looser_than_law",
                          param=field) from None
        if not reveal_values:  # never echo a secret back, even a wrong one
            reason = re.sub(r"got `[^`]*`", "got a value of the wrong type", reason)
        raise Invalid(f"{field}: {reason}", code="invalid_config", param=field) from None


def provider_for(host: PluginHost, kind: str, name: str) -> RegisteredProvider:
    registered = host.provider(kind, name)  # type: ignore[arg-type]
    if registered is None:
        raise Invalid(f"no {kind} provider named {name!r} is installed", code="unknown_provider",
                      param="provider_name")
    return registered


def config_type(provider: Any) -> type[msgspec.Struct]:
    return getattr(provider, "Config", NoConfig)


def secrets_type(provider: Any) -> type[msgspec.Struct]:
    """Compliance packs, for one, declare no secrets."""
    return getattr(provider, "Secrets", NoSecrets)


def _check(provider: Any, config: Mapping[str, Any], secrets: Mapping[str, Any]) -> None:
    _validated(config_type(provider), config, "config", reveal_values=True)
    _validated(secrets_type(provider), secrets, "secrets", reveal_values=False)


async def create(session: AsyncSession, host: PluginHost, actor: Actor,
                 data: schemas.IntegrationCreate) -> Integration:
    provider = provider_for(host, data.provider_kind, data.provider_name).provider
    _check(provider, data.config, data.secrets)
    integration = Integration(
        tenant_id=actor.tenant_id, name=data.name, provider_kind=data.provider_kind,
        provider_name=data.provider_name, config=dict(data.config),
        secrets_sealed=seal_secrets(actor.tenant_id, data.secrets),
        secret_names=sorted(data.secrets))
    give_webhook_token(integration)
    session.add(integration)
    await session.flush()
    audit.record(session, actor, "integration.created", "integration", integration.id,
                 {"provider": f"{data.provider_kind}/{data.provider_name}",
                  "config": data.config, "secrets_set": sorted(data.secrets)})
    return integration


async def get(session: AsyncSession, integration_id: int) -> Integration:
    return await get_owned(session, Integration, integration_id, session.info.get("tenant_id"),
                           what="integration")


async def update(session: AsyncSession, host: PluginHost, actor: Actor, integration_id: int,
                 data: schemas.IntegrationUpdate) -> Integration:
    integration = await get(session, integration_id)
    changes: dict[str, Any] = {}
    config = integration.config if data.config is msgspec.UNSET else dict(data.config)
    secrets = open_secrets(integration)
    if data.secrets is not msgspec.UNSET:
        secrets.update(data.secrets)
        changes["secrets_set"] = sorted(data.secrets)
    if data.config is not msgspec.UNSET or data.secrets is not msgspec.UNSET:
        registered = host.provider(integration.provider_kind, integration.provider_name)  # type: ignore[arg-type]
        if registered is None:
            raise Invalid("the provider of this integration is not installed any more",
                          code="unknown_provider", param="provider_name")
        _check(registered.provider, config, secrets)
    if data.config is not msgspec.UNSET:
        integration.config = config
        changes["config"] = config
    if data.secrets is not msgspec.UNSET:
        integration.secrets_sealed = seal_secrets(integration.tenant_id, secrets)
        integration.secret_names = sorted(secrets)
    if data.name is not msgspec.UNSET:
        integration.name = changes["name"] = data.name
    if data.enabled is not msgspec.UNSET:
        integration.enabled = changes["enabled"] = data.enabled
    await session.flush()
    audit.record(session, actor, "integration.updated", "integration", integration.id, changes)
    return integration


def out(integration: Integration, public_base: str) -> schemas.IntegrationOut:
    return schemas.IntegrationOut(
        id=integration.id, name=integration.name, provider_kind=integration.provider_kind,
        provider_name=integration.provider_name, config=dict(integration.config),
        secrets_set=list(integration.secret_names), enabled=integration.enabled,
        webhook_url=webhook_url(public_base, integration), created_at=integration.created_at,
        updated_at=integration.updated_at)


def _token_context(tenant_id: int) -> bytes:
    return f"webhook-token:{tenant_id}".encode()


def webhook_token_hash(token: str) -> str:
    """How a webhook path token is looked up (the token itself is never queried for)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def give_webhook_token(integration: Integration) -> None:
    """A new unguessable path token (32 random bytes, base64url): stored as its hash (to
    find the integration) and sealed under the master key (to show the URL)."""
    token = base64.urlsafe_b64encode(random_secrets.token_bytes(32)).rstrip(b"=")
    integration.webhook_token_hash = hashlib.sha256(token).hexdigest()
    integration.webhook_token_sealed = keyring().seal(
        token, context=_token_context(integration.tenant_id))


def reseal_webhook_token(integration: Integration, sealer: Keyring) -> None:
    """Re-seal the token under the current master key (``cartera secrets rotate``)."""
    if integration.webhook_token_sealed is not None:
        integration.webhook_token_sealed = sealer.reseal(
            integration.webhook_token_sealed, context=_token_context(integration.tenant_id))


def webhook_url(public_base: str, integration: Integration) -> str:
    """The integration's public webhook URL, ``{public_base}/v1/hooks/{token}``
    (``public_base``: ``Settings.public_base``)."""
    assert integration.webhook_token_sealed is not None
    token = keyring().open(integration.webhook_token_sealed,
                           context=_token_context(integration.tenant_id)).decode("ascii")
    return f"{public_base}/v1/hooks/{token}"


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    # Building a TLS context loads the CA bundle: tens of milliseconds of CPU. Plugins make a
    # client per call, so they share one context instead of paying that on every send.
    return ssl.create_default_context(cafile=certifi.where())


@lru_cache(maxsize=8)
def _egress(allow: str) -> EgressPolicy:
    return EgressPolicy.parse(allow)


def egress_policy() -> EgressPolicy:
    """The operator's egress rules (``CARTERA_EGRESS_ALLOW``) for every provider call."""
    return _egress(get_settings().egress_allow)


class SharedTransport(httpx.AsyncBaseTransport):
    """One connection pool (keep-alive) for many short-lived clients: closing a client
    leaves it open; :meth:`close` closes it. For sending a batch through one integration."""

    def __init__(self, max_connections: int = 64) -> None:
        self._inner = egress_policy().transport(
            verify=_tls(), limits=httpx.Limits(max_connections=max_connections,
                                               max_keepalive_connections=max_connections))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Called when a client built on it closes: the pool stays open."""

    async def close(self) -> None:
        await self._inner.aclose()


def _http_factory(timeout: float, transport: SharedTransport | None = None) -> Any:
    def factory(base_url: str, *, headers: Mapping[str, str] | None = None,
                auth: httpx.Auth | tuple[str, str] | None = None,
                timeout: float | None = timeout) -> httpx.AsyncClient:
        return make_client(base_url, headers=headers, auth=auth, timeout=timeout,
                           user_agent="cartera/0.1",
                           transport=transport or egress_policy().transport(verify=_tls()))

    return factory


def egress_client(base_url: str, timeout: float) -> httpx.AsyncClient:
    """An HTTP client through the host's egress rules, as providers get, for the host's own
    outbound calls (e.g. fetching an OAuth client's ``jwks_uri``)."""
    client: httpx.AsyncClient = _http_factory(timeout)(base_url)
    return client


def context_for(integration: Integration, provider: Any, public_base: str,
                timeout: float, transport: SharedTransport | None = None
                ) -> ProviderContext[Any, Any]:
    """The per-call context: validated config and secrets, HTTP factory, logger, clock.

    ``transport``: clients made through the context share its connection pool (a batch
    of sends reuses one context and one pool); by default each client has its own."""
    return ProviderContext(
        tenant_id=str(integration.tenant_id), integration_id=str(integration.id),
        config=msgspec.convert(dict(integration.config), config_type(provider)),
        secrets=msgspec.convert(open_secrets(integration), secrets_type(provider)),
        http=_http_factory(timeout, transport),
        logger=logging.LoggerAdapter(log, {"integration_id": integration.id}),
        webhook_url=webhook_url(public_base, integration), egress=egress_policy())


def declared_secrets(provider: Any) -> list[str]:
    return sorted(secrets_type(provider).__struct_fields__)


