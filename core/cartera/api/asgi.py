"""Loose ASGI types for the raw middlewares: messages are plain dicts, and Litestar's strict
TypedDict unions (HTTP and WebSocket together) add casts without catching real bugs here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
