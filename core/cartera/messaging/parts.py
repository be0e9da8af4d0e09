"""What a provider's acceptance says beyond its id: the parts of a long SMS and the price.

Kept in the ``sent`` timeline event's detail, so receipts for parts 2..n (which carry the
part's own provider id) are attributed to their part of the message."""

from __future__ import annotations

from typing import Any

import msgspec
from cartera_sdk.channels import Sent


def sent_detail(outcome: Sent) -> dict[str, Any]:
    """The ``sent`` event's detail beyond the provider's message id (nothing when the
    message went in one part at no reported price)."""
    detail: dict[str, Any] = {}
    if len(outcome.parts) > 1 or outcome.parts_rejected:
        detail["parts"] = [msgspec.to_builtins(p) for p in outcome.parts]
        detail["parts_rejected"] = outcome.parts_rejected
    if outcome.price is not None:
        detail["price"] = msgspec.to_builtins(outcome.price)
    return detail


def part_of(sent: dict[str, Any], provider_message_id: str) -> dict[str, Any] | None:
    """Which part of the message (as the ``sent`` event's ``detail`` lists them) the
    provider id names, as ``{"index", "count", "provider_message_id"}``; ``None`` for a
    message in one part or an id that is not one of its parts."""
    parts = sent.get("parts") or []
    count = len(parts) + int(sent.get("parts_rejected") or 0)
    for part in parts:
        if part["provider_message_id"] == provider_message_id and count > 1:
            return {**part, "count": max(count, int(part["count"]))}
    return None
