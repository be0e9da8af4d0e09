"""Audit trail responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from msgspec import Struct


class AuditEntryOut(Struct):
    id: int
    at: datetime
    actor: str
    """Who: ``client:<client id>`` or the user name."""
    client_id: str | None
    request_id: str | None
    """The request that made the change (``X-Request-Id``)."""
    action: str
    """What was done, e.g. ``debtor.updated``."""
    resource_type: str
    """The object changed: its type (``debtor``, ``obligation``...) and id."""
    resource_id: str
    changes: dict[str, Any]
