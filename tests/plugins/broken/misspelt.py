"""A plugin whose hook name is misspelt (pluggy's ``check_pending`` refuses it)."""

from __future__ import annotations

from typing import Any

from cartera_sdk import hookimpl


@hookimpl
def register_channel(register: Any) -> None:
    raise AssertionError("never called")
