"""Registering a test's own plugin object on the app's plugin host for one test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def registered(plugin: T, name: str) -> Iterator[T]:
    """``plugin`` receives hook calls until the block ends."""
    from cartera.plugins.registry import current_host

    pm = current_host().pm
    pm.register(plugin, name=name)
    try:
        yield plugin
    finally:
        pm.unregister(plugin)
