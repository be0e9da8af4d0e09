"""The ``register`` callback types, ``await_me_maybe`` and helpers to call hooks in tests.

:func:`collect` calls one plugin's registration hook without a plugin manager, which is
what a partner needs in a unit test; :func:`make_plugin_manager` builds a real
``pluggy.PluginManager`` with the Cartera hook specs, as the host does.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import pluggy

from . import hookspecs
from .channels import ChannelProvider
from .compliance import CompliancePack
from .erp import ErpConnector
from .payments import PaymentProvider

__all__ = [
    "ENTRY_POINT_GROUP",
    "PROJECT_NAME",
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
    "make_plugin_manager",
]

PROJECT_NAME = "cartera"
#: Entry-point group plugins declare: ``[project.entry-points.cartera] myplugin = "pkg.mod"``.
ENTRY_POINT_GROUP = "cartera"

T = TypeVar("T")


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


def make_plugin_manager(*plugins: object, load_entrypoints: bool = False) -> pluggy.PluginManager:
    """A ``PluginManager`` with Cartera's hook specs and ``plugins`` registered.

    ``check_pending()`` runs last, so a misspelt ``@hookimpl`` fails here instead of being
    silently ignored.
    """
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for plugin in plugins:
        pm.register(plugin)
    if load_entrypoints:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm
