"""HTTP routes: /v1/plugins (what is installed, what failed to load)."""

from __future__ import annotations

from typing import Any

from cartera_sdk.integration import integration_schema
from litestar import Request, get

from cartera.api.security import secured
from cartera.integrations import schemas
from cartera.integrations.service import config_type, declared_secrets, secrets_type
from cartera.plugins.registry import current_host


class _Declared:
    """A provider's name, Config and Secrets, with the SDK's empty defaults filled in."""

    def __init__(self, provider: Any) -> None:
        self.name = provider.name
        self.Config = config_type(provider)
        self.Secrets = secrets_type(provider)


def _provider_info(kind: str, provider: Any) -> schemas.ProviderInfo:
    declared = _Declared(provider)
    schema = integration_schema(declared)
    base_test = getattr(type(provider), "test_connection", None)
    overridden = base_test is not None and "Base" not in base_test.__qualname__
    return schemas.ProviderInfo(kind=kind, name=provider.name, config_schema=schema["config"],
                                secrets_schema=schema["secrets"],
                                secret_fields=declared_secrets(declared),
                                supports_test_connection=overridden)


@get("/v1/plugins", summary="List plugins", operation_id="ListPlugins", tags=["Plugins"],
     **secured("plugins:read"))
async def list_plugins(request: Request[Any, Any, Any]) -> schemas.PluginList:
    """Installed plugins with their version and the providers each registers (kind, name,
    config and secrets JSON Schemas). Plugins that failed to load are the operator's
    business: they are logged, and ``cartera plugins`` lists them with why."""
    host = current_host()
    return schemas.PluginList(
        data=[schemas.PluginOut(name=p.name, distribution=p.distribution, version=p.version,
                                providers=[_provider_info(r.kind, r.provider)
                                           for r in p.providers])
              for p in sorted(host.plugins.values(), key=lambda p: p.name)])
