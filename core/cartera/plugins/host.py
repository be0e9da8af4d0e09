"""Loading plugins and calling them safely.

Plugins are distributions with an entry point in the ``cartera`` group. ``CARTERA_PLUGINS``
(comma-separated entry-point names) restricts which load; set it empty to load none. A
plugin that fails to import (even with ``SystemExit``), misspells a hook, or whose
registration hook raises, is async, or registers something that is not a provider of that
kind (no name, a duplicate name, missing methods, a ``Config``/``Secrets`` without a JSON
Schema) is recorded in :attr:`PluginHost.errors` and skipped: it never takes the API down
and never stops the next plugin, or the plugin's other hooks, from loading. Every call into a
provider goes through :meth:`PluginHost.call`, which bounds it with a timeout and turns any
failure into a :class:`PluginCallError`.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import traceback
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, TypeVar

import msgspec
import pluggy
from cartera_sdk import hookspecs
from cartera_sdk.channels import ChannelProvider
from cartera_sdk.compliance import CompliancePack
from cartera_sdk.egress import EgressRefused
from cartera_sdk.erp import ErpConnector
from cartera_sdk.integration import NoConfig, NoSecrets
from cartera_sdk.payments import PaymentProvider
from cartera_sdk.registry import ENTRY_POINT_GROUP, PROJECT_NAME, await_me_maybe

from cartera.errors import CarteraError

log = logging.getLogger("cartera.plugins")
T = TypeVar("T")

ProviderKind = Literal["channel", "payment", "erp", "compliance"]
REGISTRATION_HOOKS: dict[ProviderKind, str] = {
    "channel": "register_channels",
    "payment": "register_payment_providers",
    "erp": "register_erp_connectors",
    "compliance": "register_compliance_packs",
}
PROTOCOLS: dict[ProviderKind, type] = {
    "channel": ChannelProvider, "payment": PaymentProvider, "erp": ErpConnector,
    "compliance": CompliancePack,
}
#: What a plugin may raise while loading without stopping the host: ``SystemExit`` too
#: (a plugin calling ``sys.exit`` at import), but never ``KeyboardInterrupt``.
_LOAD_FAILURES = (Exception, SystemExit)


class PluginCallError(CarteraError):
    """A provider call that timed out or raised; the API answers 502/504, never 500."""

    status = 502
    code = "plugin_error"
    title = "Plugin failed"


class EgressRefusedError(PluginCallError):
    """The provider tried to reach a destination the egress rules refuse; nothing was sent."""

    code = "egress_refused"
    title = "Egress refused"


class PluginTimeout(PluginCallError):
    status = 504
    code = "plugin_timeout"
    title = "Plugin timed out"


@dataclass(frozen=True)
class LoadError:
    plugin: str
    stage: str
    error: str


@dataclass(frozen=True)
class RegisteredProvider:
    kind: ProviderKind
    name: str
    plugin: str
    provider: Any


@dataclass
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    providers: list[RegisteredProvider] = field(default_factory=list)


def _selected(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    wanted = os.environ.get("CARTERA_PLUGINS")
    if wanted is None:
        return list(eps)
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [ep for ep in eps if ep.name in names]


class PluginHost:
    """Loaded plugins and the providers they registered, keyed by kind and name."""

    def __init__(self, *, timeout_seconds: float = 10.0) -> None:
        self.timeout_seconds = timeout_seconds
        self.pm = pluggy.PluginManager(PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.errors: list[LoadError] = []
        self.providers: dict[ProviderKind, dict[str, RegisteredProvider]] = {
            kind: {} for kind in REGISTRATION_HOOKS
        }

    # --- loading --------------------------------------------------------------------------

    def load_entry_points(self) -> None:
        for ep in _selected(entry_points(group=ENTRY_POINT_GROUP)):
            try:
                module = ep.load()
                dist = ep.dist
                distribution, version = (dist.name, dist.version) if dist else (None, None)
            except _LOAD_FAILURES as exc:  # a broken plugin must not stop the host
                self._error(ep.name, "import", exc)
                continue
            self.add_plugin(module, ep.name, distribution, version)

    def add_plugin(self, plugin: object, name: str, distribution: str | None = None,
                   version: str | None = None) -> None:
        """Register one plugin object/module and collect what it registers.

        Never raises for the plugin's faults: they land in :attr:`errors`. Each
        registration hook is collected on its own, so a failing ``register_channels``
        does not lose the plugin's payment providers."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except _LOAD_FAILURES as exc:
            self._error(name, "register", exc)
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            return
        info = PluginInfo(name=name, distribution=distribution, version=version)
        self.plugins[name] = info
        for kind, hook in REGISTRATION_HOOKS.items():
            for impl in getattr(self.pm.hook, hook).get_hookimpls():
                if impl.plugin_name == name:
                    self._collect(info, kind, hook, impl.function)

    def _collect(self, info: PluginInfo, kind: ProviderKind, hook: str, fn: Any) -> None:
        """Call one registration hook; keep what it registered only if it returned
        cleanly (a hook that raises half-way registers nothing)."""
        found: list[Any] = []
        try:
            result = fn(register=found.append)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(f"{hook} must be a plain function, not async")
        except _LOAD_FAILURES as exc:
            self._error(info.name, hook, exc)
            return
        for provider in found:
            try:
                name = _checked_name(kind, provider)
                if name in self.providers[kind]:
                    raise ValueError(f"{kind} provider {name!r} is already registered")
            except _LOAD_FAILURES as exc:
                self._error(info.name, hook, exc)
                continue
            entry = RegisteredProvider(kind, name, info.name, provider)
            self.providers[kind][name] = entry
            info.providers.append(entry)

    def _error(self, plugin: str, stage: str, exc: BaseException) -> None:
        message = "".join(traceback.format_exception_only(exc)).strip()
        log.error("plugin failed to load", extra={"plugin": plugin, "stage": stage,
                                                   "error": message})
        self.errors.append(LoadError(plugin, stage, message))

    # --- using ----------------------------------------------------------------------------

    def provider(self, kind: ProviderKind, name: str) -> RegisteredProvider | None:
        return self.providers[kind].get(name)

    async def call(self, awaitable: Awaitable[T], *, what: str) -> T:
        """Await a provider call with the host's timeout; any failure becomes a
        PluginCallError (PluginTimeout when it ran out of time)."""
        try:
            return await asyncio.wait_for(awaitable, self.timeout_seconds)
        except TimeoutError:
            raise PluginTimeout(f"{what} did not answer within "
                                f"{self.timeout_seconds:g} s") from None
        except CarteraError:
            raise
        except EgressRefused as exc:
            raise EgressRefusedError(f"{what} refused: {exc.reason}") from exc
        except Exception as exc:
            log.warning("plugin call failed", extra={"what": what,
                                                     "error": type(exc).__name__})
            raise PluginCallError(f"{what} failed: {type(exc).__name__}") from exc

    async def emit(self, hook_name: str, event: object) -> None:
        """Call every implementation of an observer hook; failures are logged, not raised."""
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            try:
                await asyncio.wait_for(await_me_maybe(lambda f=impl.function: f(event=event)),
                                       self.timeout_seconds)
            except Exception as exc:
                log.warning("observer hook failed", extra={
                    "hook": hook_name, "plugin": impl.plugin_name, "error": type(exc).__name__})


def _checked_name(kind: ProviderKind, provider: Any) -> str:
    """The provider's name, once it is shown to be a usable provider of ``kind``."""
    name = getattr(provider, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{provider!r} has no name")
    if not isinstance(provider, PROTOCOLS[kind]):
        raise TypeError(f"{kind} provider {name!r} lacks methods of the "
                        f"{PROTOCOLS[kind].__name__} protocol")
    for attribute, default in (("Config", NoConfig), ("Secrets", NoSecrets)):
        declared = getattr(provider, attribute, default)
        if not (isinstance(declared, type) and issubclass(declared, msgspec.Struct)):
            raise TypeError(f"{kind} provider {name!r}: {attribute} is not a msgspec Struct")
        msgspec.json.schema(declared)  # raises when the API could not describe it
    return name


def load_host(timeout_seconds: float = 10.0) -> PluginHost:
    host = PluginHost(timeout_seconds=timeout_seconds)
    host.load_entry_points()
    return host
