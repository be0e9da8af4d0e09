"""The ``register`` callback types, ``await_me_maybe`` and helpers to call hooks in tests.

:func:`collect` calls one plugin's registration hook without a plugin manager, which is
what a partner needs in a unit test; :func:`make_plugin_manager` builds a real
``pluggy.PluginManager`` with the Cartera hook specs, as the host does.
"""

from __future__ import annotations

import inspect
import logging
import traceback
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, Protocol, TypeVar

import msgspec
import pluggy

from . import hookspecs
from .channels import ChannelProvider
from .compliance import CompliancePack
from .erp import ErpConnector
from .payments import PaymentProvider

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
    "PluginLoadFailure",
    "RegisterChannel",
    "RegisterCompliancePack",
    "RegisterErpConnector",
    "RegisterPaymentProvider",
    "await_me_maybe",
    "collect",
    "collect_channels",
    "collect_compliance_packs",
    "collect_erp_connectors",
    "collect_payment_providers",
    "load_entry_point_plugins",
    "make_plugin_manager",
]

PROJECT_NAME = "cartera"
#: Entry-point group plugins declare: ``[project.entry-points.cartera] myplugin = "pkg.mod"``.
ENTRY_POINT_GROUP = "cartera"

T = TypeVar("T")
log = logging.getLogger("cartera_sdk.registry")


class PluginLoadFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A plugin that could not be loaded: its entry-point ``plugin`` name, the ``stage``
    that failed (``import`` or ``register``) and the one-line ``error``.

    .. versionadded:: 1.0
    """

    plugin: str
    stage: str
    error: str


class RegisterChannel(Protocol):
    """``register(provider)`` passed to ``register_channels``."""

    def __call__(self, provider: ChannelProvider, /) -> None: ...


class RegisterPaymentProvider(Protocol):
    """``register(provider)`` passed to ``register_payment_providers``."""

    def __call__(self, provider: PaymentProvider, /) -> None: ...


class RegisterErpConnector(Protocol):
    """``register(connector)`` passed to ``register_erp_connectors``."""

    def __call__(self, connector: ErpConnector, /) -> None: ...


class RegisterCompliancePack(Protocol):
    """``register(pack)`` passed to ``register_compliance_packs``."""

    def __call__(self, pack: CompliancePack, /) -> None: ...


async def await_me_maybe(value: Any) -> Any:
    """Resolve a hook result: call it if callable, await it if awaitable (datasette style)."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def collect(plugin: object, hook_name: str) -> list[Any]:
    """Call ``plugin``'s registration hook ``hook_name`` and return what it registered.

    ``plugin`` is a module or object with the hook implementation as an attribute. Raises
    ``LookupError`` if it does not implement the hook and ``TypeError`` if the hook is not
    a ``register_*`` hook.
    """
    spec = getattr(hookspecs, hook_name, None)
    if spec is None or not hook_name.startswith("register_"):
        raise TypeError(f"{hook_name!r} is not a registration hook")
    impl = getattr(plugin, hook_name, None)
    if impl is None or not callable(impl):
        raise LookupError(f"{plugin!r} does not implement {hook_name}")
    found: list[Any] = []
    wanted = inspect.signature(impl).parameters
    kwargs: dict[str, Callable[[Any], None]] = {}
    if "register" in wanted:
        kwargs["register"] = found.append
    impl(**kwargs)
    return found


def _typed(plugin: object, hook: str, kind: type[T]) -> list[T]:
    items = collect(plugin, hook)
    for item in items:
        if not isinstance(item, kind):
            raise TypeError(f"{hook} registered {item!r}, which is not a {kind.__name__}")
    return items


def collect_channels(plugin: object) -> list[ChannelProvider]:
    """Channel providers ``plugin`` registers (each checked against the protocol)."""
    return _typed(plugin, "register_channels", ChannelProvider)  # type: ignore[type-abstract]


def collect_payment_providers(plugin: object) -> list[PaymentProvider]:
    """Payment providers ``plugin`` registers."""
    return _typed(plugin, "register_payment_providers", PaymentProvider)  # type: ignore[type-abstract]


def collect_erp_connectors(plugin: object) -> list[ErpConnector]:
    """ERP connectors ``plugin`` registers."""
    return _typed(plugin, "register_erp_connectors", ErpConnector)  # type: ignore[type-abstract]


def collect_compliance_packs(plugin: object) -> list[CompliancePack]:
    """Compliance packs ``plugin`` registers."""
    return _typed(plugin, "register_compliance_packs", CompliancePack)  # type: ignore[type-abstract]


def load_entry_point_plugins(
    pm: pluggy.PluginManager, group: str = ENTRY_POINT_GROUP
) -> list[PluginLoadFailure]:
    """Register every plugin of entry-point ``group`` that loads; return the others.

    Unlike ``pm.load_setuptools_entrypoints``, a plugin that fails to import (even with
    ``SystemExit``) or that misspells a hook is reported and skipped, and the next one still
    loads. Already registered names are left alone.

    .. versionadded:: 1.0
    """
    failures: list[PluginLoadFailure] = []
    for ep in entry_points(group=group):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        stage = "import"
        try:
            plugin = ep.load()
            stage = "register"
            pm.register(plugin, name=ep.name)
            pm.check_pending()
        except (Exception, SystemExit) as exc:
            if stage == "register" and pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
            error = "".join(traceback.format_exception_only(exc)).strip()
            log.warning("plugin %s failed at %s: %s", ep.name, stage, error)
            failures.append(PluginLoadFailure(plugin=ep.name, stage=stage, error=error))
    return failures


def make_plugin_manager(*plugins: object, load_entrypoints: bool = False) -> pluggy.PluginManager:
    """A ``PluginManager`` with Cartera's hook specs and ``plugins`` registered.

    ``check_pending()`` runs after registering ``plugins``, so a misspelt ``@hookimpl`` in
    one of them fails here instead of being silently ignored. With ``load_entrypoints``,
    installed plugins are added through :func:`load_entry_point_plugins`: broken ones are
    logged and skipped (use that function directly to get the failures).
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    pm.check_pending()
    if load_entrypoints:
        load_entry_point_plugins(pm)
    return pm
