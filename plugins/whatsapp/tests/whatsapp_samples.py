"""Webhook payloads from protocols.md section 1 (verbatim where marked [P]) and builders."""

from __future__ import annotations

import json
from typing import Any

from cartera_sdk import WebhookRequest, signatures

#: §1.10 compact status body, exact bytes of the [V] signature vector in §1.8.
COMPACT_STATUS_BODY = (
    b'{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":'
    b'{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881",'
    b'"phone_number_id":"106540352242922"},"statuses":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQz'
    b'QUFERjg0NDEzNDdFODU3MUMxMAA=","status":"delivered","timestamp":"1750030073","recipient_id":'
    b'"16505551234"}]},"field":"messages"}]}]}'
)
COMPACT_STATUS_SIGNATURE = "sha256=0b4edbafb0637007e2cda8d19ce46355db884ef2d9137a2111330ac259100464"

METADATA = {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"}

#: §1.10 [P] "sent" status.
SENT_STATUS: dict[str, Any] = {
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=",
    "status": "sent",
    "timestamp": "1750030073",
    "recipient_id": "16505551234",
    "conversation": {
        "id": "72b14d6bd5407799e66f64d1b338e567",
        "expiration_timestamp": "1750116480",
        "origin": {"type": "marketing"},
    },
    "pricing": {
        "billable": True,
        "pricing_model": "PMP",
        "type": "regular",
        "category": "marketing",
    },
}

#: §1.10 [P] "failed" status with an error.
FAILED_STATUS: dict[str, Any] = {
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0QUQ2MjA4NEYyRkExNjMyREUA",
    "status": "failed",
    "timestamp": "1751142888",
    "recipient_id": "16505551234",
    "errors": [
        {
            "code": 131049,
            "title": "This message was not delivered to maintain healthy ecosystem engagement.",
            "message": "This message was not delivered to maintain healthy ecosystem engagement.",
            "error_data": {
                "details": "In order to maintain a healthy ecosystem engagement, the message "
                "failed to be delivered."
            },
            "href": "/documentation/business-messaging/whatsapp/support/error-codes",
        }
    ],
}

#: §1.11 [P] inbound text message (with its contacts block).
INBOUND_TEXT: dict[str, Any] = {
    "from": "16505551234",
    "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
    "timestamp": "1749416383",
    "type": "text",
    "text": {"body": "Does it come in another color?"},
}
CONTACTS = [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}]

#: §1.11 quick-reply tap on a template button ([C] from the SDK types).
INBOUND_BUTTON: dict[str, Any] = {
    "context": {"from": "15550783881", "id": "wamid.OUTBOUND-1"},
    "from": "5491155550000",
    "id": "wamid.INBOUND-BUTTON-1",
    "timestamp": "1750030100",
    "type": "button",
    "button": {"payload": "PROMISE_TOMORROW", "text": "Pago mañana"},
}

#: §1.11 interactive button reply ([C]).
INBOUND_INTERACTIVE: dict[str, Any] = {
    "from": "5491155550000",
    "id": "wamid.INBOUND-INTERACTIVE-1",
    "timestamp": "1750030200",
    "type": "interactive",
    "interactive": {"type": "button_reply", "button_reply": {"id": "PAY_NOW", "title": "Pagar"}},
}


def change(
    *,
    statuses: list[dict[str, Any]] | None = None,
    messages: list[dict[str, Any]] | None = None,
    errors: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
    field: str = "messages",
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": metadata or METADATA,
    }
    if messages is not None:
        value["contacts"] = CONTACTS
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    if errors is not None:
        value["errors"] = errors
    return {"value": value, "field": field}


def envelope(*entries: list[dict[str, Any]], waba_id: str = "102290129340398") -> dict[str, Any]:
    """``{"object": ..., "entry": [{"id": waba, "changes": changes} for each]}``."""
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": changes} for changes in entries],
    }


def signed(payload: dict[str, Any] | bytes, app_secret: str = "test_app_secret") -> WebhookRequest:
    """A POST as Meta sends it: raw body, ``X-Hub-Signature-256`` over those bytes."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return WebhookRequest(
        method="POST",
        url="https://cartera.example/v1/hooks/int_test",
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": signatures.meta_signature(app_secret, body),
        },
        body=body,
    )
