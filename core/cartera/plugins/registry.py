"""The process's plugin host, for code that runs outside a request (jobs, CLI)."""

from __future__ import annotations

from cartera.plugins.host import PluginHost, load_host

_host: PluginHost | None = None


def install(host: PluginHost) -> None:
    global _host
    _host = host


def current_host() -> PluginHost:
    """The host installed by the app (or a freshly loaded one in a worker process)."""
    global _host
    if _host is None:
        from cartera.settings import get_settings

        _host = load_host(get_settings().plugin_timeout_seconds)
    return _host
