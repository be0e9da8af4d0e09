"""A strict local fake of the WhatsApp Cloud API (Graph API) on ``FakeHTTPServer``.

It checks requests the way the real API would fail them (protocols.md section 1):

* ``POST /{version}/{phone_number_id}/messages`` only for the configured version and id
  (any other ``/v../<id>/messages`` answers Graph's "object does not exist" error);
* ``Authorization: Bearer <token>`` (else 401, code 190) and ``Content-Type: application/json``;
* the body: ``messaging_product`` = ``whatsapp``, ``recipient_type``, ``to``, ``type``
  (``template``/``text``) and the matching object; template ``name``, ``language.code``,
  ``components`` (header/body parameters of type text/currency/date_time with their exact
  nested shapes, url/quick_reply buttons with a string ``index`` and one parameter); any
  unknown or misspelt key answers 400 with the Graph error envelope (code 100);
* known templates and their body parameter counts (132001 / 132000);
* free-form text only to recipients whose 24 h window is open (else 131047);
* ``GET /{version}/{phone_number_id}``: the phone number object.

Successful sends answer the section 1.4 body with a fresh ``wamid``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from cartera_sdk.testkit import FakeHTTPServer, FakeResponse, RecordedRequest, json_response

VERSION = "v25.0"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"
ACCESS_TOKEN = "EAAJB-test-token"
APP_SECRET = "test_app_secret"
VERIFY_TOKEN = "vibecoding"

TOP_LEVEL = {
    "messaging_product", "recipient_type", "to", "type", "text", "template",
    "biz_opaque_callback_data", "context",
}  # fmt: skip
_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class GraphReject(Exception):
    """A validation failure, turned into a Graph error response."""

    def __init__(self, code: int, message: str, details: str, status: int = 400) -> None:
        super().__init__(details)
        self.code, self.message, self.details, self.status = code, message, details, status


def graph_error(
    code: int,
    message: str,
    details: str,
    status: int = 400,
    *,
    error_type: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> FakeResponse:
    """The Graph error envelope (protocols.md 1.5)."""
    return json_response(
        {
            "error": {
                "message": f"(#{code}) {message}",
                "type": error_type,
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": details},
                "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
            }
        },
        status,
        headers,
    )


def _invalid(details: str) -> GraphReject:
    return GraphReject(100, "Invalid parameter", details)


def _keys(obj: Any, where: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _invalid(f'Param "{where}" must be a JSON object.')
    for key in obj:
        if key not in allowed:
            raise _invalid(f'Unexpected key "{key}" on param "{where}".')
    for key in sorted(required):
        if key not in obj:
            raise _invalid(f'The parameter {where}["{key}"] is required.')
    return obj


def _string(value: Any, where: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        raise _invalid(f'Param "{where}" must be a non-empty string.')
    return value


def _parameter(param: Any, where: str) -> None:
    if not isinstance(param, dict) or param.get("type") not in ("text", "currency", "date_time"):
        raise _invalid(f'Param "{where}[type]" must be one of text, currency, date_time.')
    kind = param["type"]
    if kind == "text":
        _keys(param, where, {"type", "text", "parameter_name"}, {"type", "text"})
        _string(param["text"], f"{where}[text]")
    elif kind == "currency":
        _keys(param, where, {"type", "currency", "parameter_name"}, {"type", "currency"})
        currency = _keys(
            param["currency"],
            f"{where}[currency]",
            {"fallback_value", "code", "amount_1000"},
            {"fallback_value", "code", "amount_1000"},
        )
        _string(currency["fallback_value"], f"{where}[currency][fallback_value]")
        if not _CURRENCY.match(str(currency["code"])):
            raise _invalid(f'Param "{where}[currency][code]" must be an ISO 4217 code.')
        amount = currency["amount_1000"]
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise _invalid(f'Param "{where}[currency][amount_1000]" must be an integer.')
    else:
        _keys(param, where, {"type", "date_time", "parameter_name"}, {"type", "date_time"})
        date_time = _keys(
            param["date_time"], f"{where}[date_time]", {"fallback_value"}, {"fallback_value"}
        )
        _string(date_time["fallback_value"], f"{where}[date_time][fallback_value]")


def _button(component: dict[str, Any], where: str) -> None:
    _keys(
        component,
        where,
        {"type", "sub_type", "index", "parameters"},
        {"type", "sub_type", "index", "parameters"},
    )
    sub_type = component["sub_type"]
    if sub_type not in ("url", "quick_reply"):
        raise _invalid(f'Param "{where}[sub_type]" must be url or quick_reply.')
    index = component["index"]
    if not isinstance(index, str) or not index.isdigit():
        raise _invalid(f'Param "{where}[index]" must be a numeric string.')
    params = component["parameters"]
    if not isinstance(params, list) or len(params) != 1:
        raise _invalid(f'Param "{where}[parameters]" must hold exactly one parameter.')
    pwhere = f"{where}[parameters][0]"
    if sub_type == "url":
        param = _keys(params[0], pwhere, {"type", "text"}, {"type", "text"})
        if param["type"] != "text":
            raise _invalid(f'Param "{pwhere}[type]" must be text for a url button.')
        _string(param["text"], f"{pwhere}[text]")
    else:
        param = _keys(params[0], pwhere, {"type", "payload"}, {"type", "payload"})
        if param["type"] != "payload":
            raise _invalid(f'Param "{pwhere}[type]" must be payload for a quick_reply button.')
        _string(param["payload"], f"{pwhere}[payload]")


class FakeGraph:
    """The fake API's state: known templates, open windows, accepted messages."""

    def __init__(
        self,
        server: FakeHTTPServer,
        *,
        version: str = VERSION,
        phone_number_id: str = PHONE_NUMBER_ID,
        access_token: str = ACCESS_TOKEN,
    ) -> None:
        self.server = server
        self.version = version
        self.phone_number_id = phone_number_id
        self.access_token = access_token
        #: template name -> (languages, number of body parameters)
        self.templates: dict[str, tuple[set[str], int]] = {
            "payment_reminder": ({"es_AR", "es", "es_PE", "en_US"}, 3),
            "promise_confirmation": ({"es", "es_PE"}, 1),
        }
        #: recipients (digits only) with an open customer-service window
        self.open_windows: set[str] = set()
        #: accepted send bodies
        self.accepted: list[dict[str, Any]] = []
        self._counter = 0

    @property
    def messages_path(self) -> str:
        return f"/{self.version}/{self.phone_number_id}/messages"

    @property
    def phone_path(self) -> str:
        return f"/{self.version}/{self.phone_number_id}"

    def install(self) -> FakeGraph:
        self.server.route("POST", self.messages_path, self.handle_messages)
        other = re.compile(rf"/(?!{re.escape(self.version)}/{self.phone_number_id}/messages$)"
                           r"[^/]+/[^/]+/messages")  # fmt: skip
        self.server.route("POST", other, self.handle_unknown_object)
        self.server.route("GET", self.phone_path, self.handle_phone_number)
        return self

    # ------------------------------------------------------------------ handlers

    def _authorize(self, request: RecordedRequest) -> None:
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            raise GraphReject(
                190,
                "Invalid OAuth access token - Cannot parse access token",
                "Invalid OAuth access token",
                401,
            )

    def handle_unknown_object(self, request: RecordedRequest) -> FakeResponse:
        return graph_error(
            100,
            "Unsupported post request",
            "Object with the requested ID does not exist, cannot be loaded due to missing "
            "permissions, or does not support this operation.",
            400,
            error_type="GraphMethodException",
        )

    def handle_phone_number(self, request: RecordedRequest) -> FakeResponse:
        try:
            self._authorize(request)
        except GraphReject as exc:
            return graph_error(exc.code, exc.message, exc.details, exc.status)
        return json_response(
            {
                "verified_name": "Cartera Cobranzas",
                "code_verification_status": "VERIFIED",
                "display_phone_number": "+1 555-078-3881",
                "quality_rating": "GREEN",
                "id": self.phone_number_id,
            }
        )

    def handle_messages(self, request: RecordedRequest) -> FakeResponse:
        try:
            self._authorize(request)
            body = self.validate(request)
        except GraphReject as exc:
            return graph_error(exc.code, exc.message, exc.details, exc.status)
        self.accepted.append(body)
        self._counter += 1
        wamid = f"wamid.HBgLNTE5ODc2NTQzMjEVAgARGBI{self._counter:08d}QUFBQkI="
        to = body["to"]
        return json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": re.sub(r"\D", "", to)}],
                "messages": [{"id": wamid}],
            }
        )

    # ------------------------------------------------------------------ validation

    def validate(self, request: RecordedRequest) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip() != "application/json":
            raise _invalid("Content-Type must be application/json.")
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            raise _invalid("Request body is not valid JSON.") from exc
        body = _keys(
            body,
            "message",
            TOP_LEVEL,
            {"messaging_product", "recipient_type", "to", "type"},
        )
        if body["messaging_product"] != "whatsapp":
            raise _invalid('Param "messaging_product" must be "whatsapp".')
        if body["recipient_type"] not in ("individual", "group"):
            raise _invalid('Param "recipient_type" must be individual or group.')
        to = _string(body["to"], "to")
        if not re.fullmatch(r"\+?[\d\s()-]{6,20}", to):
            raise _invalid('Param "to" is not a valid phone number.')
        if "biz_opaque_callback_data" in body:
            data = _string(body["biz_opaque_callback_data"], "biz_opaque_callback_data")
            if len(data) > 512:
                raise _invalid('Param "biz_opaque_callback_data" is too long.')
        kind = body["type"]
        if kind not in ("template", "text"):
            raise _invalid(f'Param "type" has an unsupported value "{kind}".')
        if kind not in body:
            raise _invalid(f'The parameter "{kind}" is required.')
        other = "text" if kind == "template" else "template"
        if other in body:
            raise _invalid(f'Unexpected key "{other}" on param "message".')
        if kind == "template":
            self._template(body["template"])
        else:
            self._text(body["text"], to)
        return body

    def _template(self, template: Any) -> None:
        template = _keys(template, "template", {"name", "language", "components"}, {"name"})
        name = _string(template["name"], "template[name]")
        language = _keys(
            template.get("language"), "template[language]", {"code", "policy"}, {"code"}
        )
        code = _string(language["code"], "template[language][code]")
        if not _LANGUAGE.match(code):
            raise _invalid('Param "template[language][code]" is not a language code.')
        components = template.get("components", [])
        if not isinstance(components, list):
            raise _invalid('Param "template[components]" must be an array.')
        body_params = 0
        for i, component in enumerate(components):
            where = f"template[components][{i}]"
            if not isinstance(component, dict) or component.get("type") not in (
                "header", "body", "button",
            ):  # fmt: skip
                raise _invalid(f'Param "{where}[type]" must be header, body or button.')
            if component["type"] == "button":
                _button(component, where)
                continue
            _keys(component, where, {"type", "parameters"}, {"type", "parameters"})
            params = component["parameters"]
            if not isinstance(params, list) or not params:
                raise _invalid(f'Param "{where}[parameters]" must be a non-empty array.')
            for j, param in enumerate(params):
                _parameter(param, f"{where}[parameters][{j}]")
            if component["type"] == "body":
                body_params += len(params)
        known = self.templates.get(name)
        if known is None or code not in known[0]:
            raise GraphReject(
                132001,
                "Template name does not exist in the translation",
                f"template name ({name}) does not exist in {code}",
            )
        if body_params != known[1]:
            raise GraphReject(
                132000,
                "Number of parameters does not match the expected number of params",
                f"body: number of localizable_params ({body_params}) does not match the "
                f"expected number of params ({known[1]})",
            )

    def _text(self, text: Any, to: str) -> None:
        text = _keys(text, "text", {"body", "preview_url"}, {"body"})
        body = _string(text["body"], "text[body]")
        if len(body) > 4096:
            raise _invalid('Param "text[body]" is too long.')
        if "preview_url" in text and not isinstance(text["preview_url"], bool):
            raise _invalid('Param "text[preview_url]" must be a boolean.')
        if re.sub(r"\D", "", to) not in self.open_windows:
            raise GraphReject(
                131047,
                "Re-engagement message",
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )
