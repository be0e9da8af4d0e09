"""Strict local fakes of the Twilio Messages API and the Infobip SMS v3 API.

Both run on :class:`cartera_sdk.testkit.FakeHTTPServer` (real HTTP on 127.0.0.1) and
answer like the real services (``protocols.md`` section 2): status codes, error envelopes
and error codes. What the real service would silently tolerate but our plugin must never
do (an undocumented form field, a missing ``Accept``) is recorded in ``violations``; the
fixtures assert it stays empty.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from cartera_sdk import OutboundMessage, SmsContent, WebhookRequest, signatures
from cartera_sdk.testkit import (
    FakeHost,
    FakeHTTPServer,
    FakeResponse,
    RecordedRequest,
    json_response,
    run,
)

# ------------------------------------------------------------------------------ helpers


def sms_message(text: str, **fields: Any) -> OutboundMessage:
    """An outbound SMS as the host builds it (``fields``, ``to`` included, override any
    attribute)."""
    values: dict[str, Any] = {"message_id": "out_1", "idempotency_key": "idem_1",
                              "content": SmsContent(text=text), **fields}
    return OutboundMessage(**values)


def send_checked(provider: Any, config: Any, secrets: Any, message: OutboundMessage) -> Any:
    """``provider.send`` through a :class:`FakeHost`, checking no secret leaked."""
    host = FakeHost()
    ctx = host.context(provider, config=config, secrets=secrets)
    result = run(provider.send(message, ctx))
    assert host.leaked_secrets(secrets) == []
    return result

_GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXT = set("^{}\\[~]|€\f")


def sms_segments(text: str) -> int:
    """GSM-7 (160/153) or UCS-2 (70/67) segment count, as carriers bill it."""
    if all(c in _GSM7 or c in _GSM7_EXT for c in text):
        units = sum(2 if c in _GSM7_EXT else 1 for c in text)
        single, multi = 160, 153
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else -(-units // multi)


def basic_credentials(request: RecordedRequest) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def form_request(
    url: str, params: list[tuple[str, str]], auth_token: str, *, method: str = "POST"
) -> WebhookRequest:
    """A Twilio webhook as Twilio sends it: form body signed with ``X-Twilio-Signature``."""
    if method == "GET":
        full = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        return WebhookRequest(
            method="GET",
            url=full,
            headers={"X-Twilio-Signature": signatures.twilio_signature(auth_token, full)},
        )
    return WebhookRequest(
        method="POST",
        url=url,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signatures.twilio_signature(auth_token, url, params),
            "I-Twilio-Idempotency-Token": "b3c1d1e2-0000-4000-8000-000000000001",
        },
        body=urlencode(params).encode(),
    )


# ------------------------------------------------------------------------------ Twilio


class TwilioFake:
    """``/2010-04-01/Accounts/{sid}/Messages.json`` and ``/Accounts/{sid}.json``."""

    ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
    AUTH_TOKEN = "tw_auth_token_0123456789abcdef"
    API_KEY_SID = "SK" + "fedcba9876543210" * 2
    API_KEY_SECRET = "tw_api_key_secret_98765"
    #: Form fields documented for Messages create (protocols.md 2.1).
    FIELDS = frozenset({
        "To", "From", "MessagingServiceSid", "Body", "MediaUrl", "StatusCallback",
        "ApplicationSid", "ValidityPeriod", "SendAt", "ScheduleType", "ShortenUrls",
        "SmartEncoded", "ContentSid", "ContentVariables", "Attempt", "RiskCheck",
        "FallbackFrom", "SendAsMms", "PersistentAction", "ProvideFeedback", "MaxPrice",
    })  # fmt: skip
    #: Twilio's magic test numbers and the error each one triggers.
    MAGIC_TO: dict[str, tuple[int, str]] = {
        "+15005550001": (21211, "The 'To' number +15005550001 is not a valid phone number."),
        "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently "
                                "reachable using the 'From' phone number via SMS."),
        "+15005550003": (21408, "Permission to send an SMS has not been enabled for the "
                                "region indicated by the 'To' number: +15005550003."),
        "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
        "+15005550009": (21614, "'To' number +15005550009 is not a valid mobile number"),
    }  # fmt: skip

    def __init__(self, server: FakeHTTPServer) -> None:
        self.server = server
        self.violations: list[str] = []
        self.messages: list[dict[str, str]] = []
        self.account_status = "active"
        #: ``price``/``price_unit`` of the create answer (Twilio: null until priced).
        self.price: str | None = None
        self.price_unit: str | None = None
        self._ids = itertools.count(1)
        self.send_path = f"/2010-04-01/Accounts/{self.ACCOUNT_SID}/Messages.json"
        self.account_path = f"/2010-04-01/Accounts/{self.ACCOUNT_SID}.json"
        server.route("POST", self.send_path, self.create_message)
        server.route("GET", self.account_path, self.fetch_account)
        other = rf"/2010-04-01/Accounts/(?!{self.ACCOUNT_SID}[/.])[^/]+"
        server.route("POST", re.compile(other + r"/Messages\.json"), self.create_message)
        server.route("GET", re.compile(other + r"\.json"), self.fetch_account)

    @staticmethod
    def error(code: int, message: str, status: int = 400) -> FakeResponse:
        return json_response(
            {"code": code, "message": message,
             "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
            status,
        )  # fmt: skip

    def _authenticate(self, request: RecordedRequest) -> FakeResponse | None:
        creds = basic_credentials(request)
        valid = {(self.ACCOUNT_SID, self.AUTH_TOKEN), (self.API_KEY_SID, self.API_KEY_SECRET)}
        if creds not in valid:
            return self.error(20003, "Authenticate", 401)
        if not request.path.startswith(f"/2010-04-01/Accounts/{self.ACCOUNT_SID}"):
            return self.error(20404, f"The requested resource {request.path} was not found", 404)
        if "application/json" not in request.headers.get("accept", ""):
            self.violations.append("Accept: application/json missing")
        return None

    def create_message(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._authenticate(request)) is not None:
            return denied
        if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            form = {k: v[-1] for k, v in request.form().items()}
        else:  # Twilio does not read JSON bodies: every field is "missing"
            self.violations.append(f"content type {request.headers.get('content-type')!r}")
            form = {}
        if unknown := set(form) - self.FIELDS:
            self.violations.append(f"undocumented fields {sorted(unknown)}")
        if any(k.lower().startswith("idempotency") for k in request.headers):
            self.violations.append("Idempotency-Key header sent (Twilio has none)")
        to = form.get("To", "")
        if not to:
            return self.error(21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self.error(21603, "A 'From' phone number is required.")
        service = form.get("MessagingServiceSid")
        if service and not re.fullmatch(r"MG[0-9a-f]{32}", service):
            return self.error(21701, f"The Messaging Service Sid {service} is invalid.")
        body = form.get("Body", "")
        if not body and not form.get("MediaUrl"):
            return self.error(21602, "Message body is required.")
        if len(body) > 1600:
            return self.error(
                21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if to in self.MAGIC_TO:
            return self.error(*self.MAGIC_TO[to])
        if not re.fullmatch(r"\+[1-9]\d{6,14}", to):
            return self.error(21211, f"The 'To' number {to} is not a valid phone number.")
        callback = form.get("StatusCallback")
        if callback is not None:
            parts = urlsplit(callback)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or ("_" in parts.hostname)
            ):
                return self.error(21609, "Invalid StatusCallback URL")
        n = next(self._ids)
        sid = "SM" + hashlib.sha256(f"{self.ACCOUNT_SID}:{n}".encode()).hexdigest()[:32]
        self.messages.append({"sid": sid, **form})
        account_uri = f"/2010-04-01/Accounts/{self.ACCOUNT_SID}"
        date = "Thu, 24 Aug 2023 05:01:45 +0000"
        return json_response(
            {
                "account_sid": self.ACCOUNT_SID, "api_version": "2010-04-01", "body": body,
                "date_created": date, "date_sent": None, "date_updated": date,
                "direction": "outbound-api", "error_code": None, "error_message": None,
                "from": form.get("From"), "num_media": "0",
                "num_segments": str(sms_segments(body)), "price": self.price,
                "price_unit": self.price_unit,
                "messaging_service_sid": service, "sid": sid,
                "status": "accepted" if service else "queued",
                "subresource_uris": {"media": f"{account_uri}/Messages/{sid}/Media.json"},
                "tags": None, "to": to, "uri": f"{account_uri}/Messages/{sid}.json",
            },
            201,
        )  # fmt: skip

    def fetch_account(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._authenticate(request)) is not None:
            return denied
        return json_response(
            {"sid": self.ACCOUNT_SID, "friendly_name": "Cartera test", "status":
             self.account_status, "type": "Full",
             "uri": f"/2010-04-01/Accounts/{self.ACCOUNT_SID}.json"}
        )  # fmt: skip


# ------------------------------------------------------------------------------ Infobip


class InfobipFake:
    """``POST /sms/3/messages`` and ``GET /account/1/balance``."""

    API_KEY = "ib_api_key_0123456789abcdef"
    SEND_PATH = "/sms/3/messages"
    BALANCE_PATH = "/account/1/balance"
    _TOP = frozenset({"messages", "options"})
    _MESSAGE = frozenset({"sender", "destinations", "content", "options", "webhooks"})
    _DESTINATION = frozenset({"to", "messageId"})
    _CONTENT = frozenset({"text", "transliteration", "language"})
    _WEBHOOKS = frozenset({"delivery", "contentType", "callbackData"})
    _DELIVERY = frozenset({"url", "intermediateReport", "notify"})
    _OPTIONS = frozenset({"validityPeriod", "campaignReferenceId", "platform", "regional"})

    def __init__(self, server: FakeHTTPServer) -> None:
        self.server = server
        self.violations: list[str] = []
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        server.route("POST", self.SEND_PATH, self.send)
        server.route("GET", self.BALANCE_PATH, self.balance)
        # the deprecated endpoint is not served: a plugin calling it gets the 404 below
        server.route("POST", "/sms/2/text/advanced", self.error("NOT_FOUND", "Not found", 404))

    @staticmethod
    def error(message_id: str, text: str, status: int) -> FakeResponse:
        return json_response(
            {"requestError": {"serviceException": {"messageId": message_id, "text": text}}},
            status,
        )

    def _authenticate(self, request: RecordedRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"App {self.API_KEY}":
            return self.error("UNAUTHORIZED", "Invalid login details", 401)
        if "application/json" not in request.headers.get("accept", ""):
            self.violations.append("Accept: application/json missing")
        return None

    def _bad(self, why: str) -> FakeResponse:
        self.violations.append(why)
        return self.error("BAD_REQUEST", "Bad request", 400)

    def _check(self, body: Any) -> str | None:
        """Why the body is invalid, or None."""
        if not isinstance(body, dict) or set(body) - self._TOP:
            return "top-level fields"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages missing"
        for message in messages:
            if not isinstance(message, dict) or set(message) - self._MESSAGE:
                return f"message fields {sorted(message)}"
            destinations = message.get("destinations")
            if not isinstance(destinations, list) or not destinations:
                return "destinations missing"
            for dest in destinations:
                if not isinstance(dest, dict) or set(dest) - self._DESTINATION or "to" not in dest:
                    return f"destination fields {sorted(dest)}"
            content = message.get("content")
            if not isinstance(content, dict) or set(content) - self._CONTENT:
                return "content fields"
            if not isinstance(content.get("text"), str) or not content["text"]:
                return "content.text missing"
            webhooks = message.get("webhooks", {})
            if not isinstance(webhooks, dict) or set(webhooks) - self._WEBHOOKS:
                return "webhooks fields"
            delivery = webhooks.get("delivery", {})
            if not isinstance(delivery, dict) or set(delivery) - self._DELIVERY:
                return "webhooks.delivery fields"
            if set(message.get("options", {})) - self._OPTIONS:
                return "options fields"
        return None

    def send(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._authenticate(request)) is not None:
            return denied
        if not request.headers.get("content-type", "").startswith("application/json"):
            return self._bad(f"content type {request.headers.get('content-type')!r}")
        try:
            body = request.json()
        except ValueError:
            return self._bad("malformed json")
        if (why := self._check(body)) is not None:
            return self._bad(why)
        answers = []
        for message in body["messages"]:
            self.messages.append(message)
            segments = sms_segments(message["content"]["text"])
            for dest in message["destinations"]:
                message_id = dest.get("messageId") or f"ib-{next(self._ids):08d}"
                if re.fullmatch(r"\d{7,15}", str(dest["to"])):
                    status = {"groupId": 1, "groupName": "PENDING", "id": 26,
                              "name": "PENDING_ACCEPTED",
                              "description": "Message sent to next instance"}  # fmt: skip
                else:
                    status = {"groupId": 5, "groupName": "REJECTED", "id": 14,
                              "name": "REJECTED_DESTINATION",
                              "description": "Invalid destination address."}  # fmt: skip
                answers.append({"messageId": message_id, "status": status,
                                "destination": dest["to"],
                                "details": {"messageCount": segments}})  # fmt: skip
        return json_response({"bulkId": "2034072219640523072", "messages": answers})

    def balance(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._authenticate(request)) is not None:
            return denied
        return json_response({"balance": 47.79134, "currency": "EUR"})
