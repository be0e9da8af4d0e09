"""Loading plugins and calling them safely.

Plugins are distributions with an entry point in the ``cartera`` group. ``CARTERA_PLUGINS``
(comma-separated entry-point names) restricts which load; set it empty to load none. A
plugin that fails to import, or whose registration hook raises, is recorded in
:attr:`PluginHost.errors` and skipped: it never takes the API down. Every call into a
provider goes through :meth:`PluginHost.call`, which bounds it with a timeout and turns any
failure into a :class:`PluginCallError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import traceback
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal, TypeVar

import pluggy
from cartera_sdk import hookspecs
from cartera_sdk.egress import EgressRefused
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
            dist = ep.dist
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not stop the host
                self._error(ep.name, "import", exc)
                continue
            self.add_plugin(module, ep.name, dist.name if dist else None,
                            dist.version if dist else None)

    def add_plugin(self, plugin: object, name: str, distribution: str | None = None,
                   version: str | None = None) -> None:
        """Register one plugin object/module and collect what it registers."""
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:
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
        found: list[Any] = []
        try:
            fn(register=found.append)
        except Exception as exc:
            self._error(info.name, hook, exc)
            return
        for provider in found:
            name = getattr(provider, "name", None)
            if not isinstance(name, str) or not name:
                self._error(info.name, hook, ValueError(f"{provider!r} has no name"))
            elif name in self.providers[kind]:
                self._error(info.name, hook,
                            ValueError(f"{kind} provider {name!r} is already registered"))
            else:
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


def load_host(timeout_seconds: float = 10.0) -> PluginHost:
    host = PluginHost(timeout_seconds=timeout_seconds)
    host.load_entry_points()
    return host
