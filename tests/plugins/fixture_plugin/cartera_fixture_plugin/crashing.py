"""A plugin whose registration hook raises: the host must report it and carry on."""

from __future__ import annotations

from typing import Any

from cartera_sdk import hookimpl


@hookimpl
def register_channels(register: Any) -> None:
    raise RuntimeError("misconfigured plugin")
