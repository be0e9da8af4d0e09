"""Completes the generated OpenAPI document in one place, and renders it for `openapi/`.

Litestar derives paths, parameters, bodies and success responses from the handlers. This
module adds what every operation shares, so no route has to repeat it:

* one ``Problem`` schema (RFC 9457 + our ``code``/``param``/``request_id``/``errors``) and
  reusable ``components.responses`` for each error status, referenced by every operation
  that can answer it: 400/413/422 where there is input, 401/403 where a scope is needed,
  404 where a path names an object, 409 on writes, 500 everywhere;
* 429 (with ``Retry-After`` and the RateLimit headers) on rate-limited operations, 401 on
  the signature-checked webhook route, 503 where a statement timeout can cancel the work;
* the ``Idempotency-Key`` header on every authenticated POST, ``Location`` on every 201;
* names generators can use (:func:`rename_schemas`, :func:`named_enums`), typed fields
  msgspec leaves open (:func:`register_schema`) and bodies handlers stream (``RAW_BODY``);
* what the handlers' signatures enforce and Litestar leaves out: ``additionalProperties:
  false`` on bodies that forbid unknown fields, exact integer bounds of parameters (``ge=0``
  included), ``maxItems`` on repeatable parameters and the accepted date range;
* request examples for the main create operations.

The committed copy (``openapi/openapi.json``) is :func:`render` of what the app serves;
``cartera openapi`` rewrites it and a test fails when the two differ.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.handlers import HTTPRouteHandler
from litestar.params import ParameterKwarg
from msgspec import inspect as mi

from cartera.api import listing
from cartera.api.idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from cartera.api.parameters import MAX_DATE, MAX_REPEATED, MIN_DATE, PUBLIC_WEBHOOK_PREFIX
from cartera.api.ratelimit import group_of

PROBLEM_JSON = "application/problem+json"
REF = "#/components/{}/{}"
# Operations that document their own error responses (RFC 6749 errors, not problems).
OWN_ERRORS = frozenset({"IssueToken", "RevokeToken", "IntrospectToken"})

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "An RFC 9457 problem. `code` is stable and machine-readable; `param` names "
                   "the field at fault when there is one.",
    "required": ["type", "title", "status", "detail", "code", "instance", "request_id"],
    "properties": {
        "type": {"type": "string", "format": "uri",
                 "description": "A URI naming the problem type.",
                 "examples": ["https://cartera.dev/problems/validation-error"]},
        "title": {"type": "string", "description": "Short summary of the problem type."},
        "status": {"type": "integer", "minimum": 400, "maximum": 599,
                   "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong in this occurrence."},
        "code": {"type": "string", "description": "Stable machine-readable error code.",
                 "examples": ["validation_error", "unknown_currency", "not_found"]},
        "param": {"type": "string", "description": "The field, parameter or header at fault, "
                                                   "as a path (`contact_points[0].value`)."},
        "instance": {"type": "string", "description": "The request path."},
        "request_id": {"type": "string",
                       "description": "Identifies the request in logs (also `X-Request-ID`)."},
        "errors": {
            "type": "array", "description": "Every field that failed validation.",
            "items": {"type": "object", "properties": {
                "param": {"type": ["string", "null"]},
                "source": {"type": ["string", "null"]},
                "reason": {"type": ["string", "null"]},
            }},
        },
    },
}


def _problem_example(status: int, code: str, title: str, detail: str,
                     param: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"https://cartera.dev/problems/{code.replace('_', '-')}",
                            "title": title, "status": status, "detail": detail, "code": code}
    if param:
        body["param"] = param
    body["instance"] = "/v1/debtors"
    body["request_id"] = "01J9Z6Q4W8V3K2M5N7P0R1S2T3"
    return body


# name -> (status, description, example problems {name: (code, title, detail, param)})
_ERRORS: dict[str, tuple[int, str, dict[str, tuple[str, str, str, str | None]]]] = {
    "BadRequest": (400, "The request could not be read: malformed JSON, a bad header or a "
                        "query parameter the operation does not take.", {
        "unknown_parameter": ("unknown_parameter", "Unknown parameter",
                              "unknown query parameter 'debtorid'; this operation takes "
                              "currency, debtor_id, limit, paid_from, paid_to, starting_after, "
                              "status", "debtorid"),
        "malformed_json": ("malformed_json", "Malformed JSON", "the request body is not "
                           "valid JSON", None),
        "invalid_idempotency_key": ("invalid_idempotency_key", "Invalid idempotency key",
                                    "Idempotency-Key must be 1 to 255 printable ASCII "
                                    "characters without spaces",
                                    "Idempotency-Key"),
    }),
    "Unauthorized": (401, "No access token, or one that is invalid or expired.", {
        "missing_token": ("missing_token", "Unauthorized", "a bearer access token is required",
                          None),
        "invalid_token": ("invalid_token", "Unauthorized",
                          "the access token is invalid, expired or not ours", None),
    }),
    "Forbidden": (403, "The access token lacks the scope this operation needs.", {
        "insufficient_scope": ("insufficient_scope", "Forbidden",
                               "this operation needs the 'portfolio:write' scope", None),
    }),
    "NotFound": (404, "No such object for the caller's tenant (another tenant's objects "
                      "answer 404 too).", {
        "not_found": ("not_found", "Not found", "debtor 42 not found", None),
    }),
    "Conflict": (409, "The change conflicts with the current state (a duplicate "
                      "`external_ref`, or the same Idempotency-Key still in flight).", {
        "already_exists": ("already_exists", "Conflict",
                           "a debtor with external_ref 'CLI-1' already exists", "external_ref"),
        "idempotency_key_in_use": ("idempotency_key_in_use", "Idempotency conflict",
                                   "a request with this Idempotency-Key is still being "
                                   "processed", "Idempotency-Key"),
    }),
    "PayloadTooLarge": (413, "The request body is larger than the server accepts.", {
        "body_too_large": ("body_too_large", "Request body too large",
                           "the request body exceeds 1048576 bytes", None),
    }),
    "PreconditionFailed": (412, "`If-Match` names a version the object no longer has: "
                                "someone changed it since you read it.", {
        "precondition_failed": ("precondition_failed", "Precondition failed",
                                "the object changed since you read it (its ETag is not "
                                "If-Match): read it again and reapply your change",
                                "If-Match"),
    }),
    "UnsupportedMediaType": (415, "The body is not in a media type the operation reads "
                                  "(JSON bodies: `application/json`).", {
        "unsupported_media_type": ("unsupported_media_type", "Unsupported media type",
                                   "send the body as application/json, not 'text/plain'",
                                   "Content-Type"),
    }),
    "UnprocessableContent": (422, "Well-formed input that breaks a rule: a wrong type, an "
                                  "unknown currency, too many decimals, an unknown reference.", {
        "validation_error": ("validation_error", "Validation failed",
                             "due_date: Expected `date`, got `str`", "due_date"),
        "unknown_currency": ("unknown_currency", "Validation failed",
                             "'XYZ' is not an ISO 4217 currency", "currency"),
        "too_many_decimals": ("too_many_decimals", "Validation failed",
                              "CLP allows 0 decimal places", "original_amount"),
        "too_many_values": ("too_many_values", "Validation failed",
                            "tag: at most 20 values", "tag"),
        "date_out_of_range": ("date_out_of_range", "Validation failed",
                              "as_of: dates must be between 1900-01-01 and 2999-12-31",
                              "as_of"),
        "nul_character": ("nul_character", "Validation failed",
                          "attributes.note: text must not contain NUL (U+0000) characters",
                          "attributes.note"),
        "idempotency_key_reused": ("idempotency_key_reused", "Idempotency conflict",
                                   "this Idempotency-Key was used with a different request",
                                   "Idempotency-Key"),
    }),
    "TooManyRequests": (429, "Over the rate limit: retry after `Retry-After` seconds.", {
        "rate_limited": ("rate_limited", "Too many requests", "Too Many Requests", None),
    }),
    "ServiceUnavailable": (503, "The request needed the database longer than the statement "
                                "timeout allows: narrow it or retry later.", {
        "statement_timeout": ("statement_timeout", "Service unavailable",
                              "the request needed the database for longer than allowed; "
                              "narrow it (filters, a smaller page) or retry later", None),
    }),
    "InternalError": (500, "Something failed on our side; `request_id` identifies it.", {
        "internal_error": ("internal_error", "Internal server error", "something went wrong "
                           "on our side; the request id identifies it in our logs", None),
    }),
}


RATE_LIMIT_HEADERS = (
    ("RateLimit-Limit", "integer", "Requests allowed in the window."),
    ("RateLimit-Remaining", "integer", "Requests left in the window."),
    ("RateLimit-Reset", "integer", "Seconds until the window resets."),
    ("RateLimit-Policy", "string", "The limit and its window, e.g. `30; w=60`."),
)


def _error_responses() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (status, description, examples) in _ERRORS.items():
        response: dict[str, Any] = {
            "description": description,
            "content": {PROBLEM_JSON: {
                "schema": {"$ref": REF.format("schemas", "Problem")},
                "examples": {key: {"summary": key, "value": _problem_example(status, *spec)}
                             for key, spec in examples.items()},
            }},
        }
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {
                "description": "The Bearer challenge (RFC 6750).",
                "schema": {"type": "string"}}}
        if status in (429, 503):
            response["headers"] = {"Retry-After": {
                "description": "Seconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 1}}}
        if status == 429:
            response["headers"].update({name: {"description": description,
                                               "schema": {"type": kind}}
                                        for name, kind, description in RATE_LIMIT_HEADERS})
        out[name] = response
    return out


IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: a replay with the same key and body returns the stored "
                   "response (with `Idempotent-Replayed: true`) for 24 hours; the same key with a "
                   "different body or query string answers 422 `idempotency_key_reused`, and "
                   "one outside the pattern 400 `invalid_idempotency_key`.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH,
               "pattern": KEY_PATTERN, "examples": ["a4c1e0f2-7b1d-4a59-9a53-5c2f"]},
}

LOCATION_HEADER: dict[str, Any] = {
    "description": "The path of the created object (`cartera.api.location`).",
    "schema": {"type": "string", "examples": ["/v1/debtors/42"]}}

# Request examples of the main create operations, by operationId.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "CreatePortfolio": {"code": "RETAIL-2024", "name": "Retail loans 2024",
                        "description": "Consumer loans originated in 2024"},
    "CreateDebtor": {
        "external_ref": "CLI-000123", "name": "Ana Pérez Quispe", "country": "PE",
        "kind": "person", "national_id": "45678912", "zone": "Lima", "tags": ["retail"],
        "attributes": {"segment": "A"},
        "contact_points": [{"kind": "phone", "value": "987 654 321", "consent": "granted"},
                           {"kind": "email", "value": "ana@example.pe"}],
        "related_parties": [{"role": "guarantor", "name": "Luis Pérez",
                             "phone": "+51 912345678"}],
    },
    "CreateObligation": {
        "external_ref": "INV-2024-0001", "kind": "invoice", "currency": "PEN",
        "original_amount": "1250.50", "due_date": "2024-06-30",
        "debtor_external_ref": "CLI-000123", "product": "consumer_loan",
        "issue_date": "2024-06-01",
    },
    "CreatePayment": {
        "currency": "PEN", "amount": "300.00", "paid_on": "2024-07-05",
        "debtor_external_ref": "CLI-000123", "external_ref": "PAY-0001", "method": "transfer",
        "reference": "BCP-88123",
    },
}


def complete(doc: dict[str, Any]) -> dict[str, Any]:
    """Return the generated document with shared errors, headers and examples added."""
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {})
    components.setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    components["responses"] = _error_responses()
    components["parameters"] = {"IdempotencyKey": IDEMPOTENCY_KEY}
    for path, path_item in doc.get("paths", {}).items():
        for method, op in path_item.items():
            if method in {"get", "put", "post", "patch", "delete"}:
                _complete_operation(path, method, op)
        _entity_tags(path_item)
    return doc


ETAG_HEADER: dict[str, Any] = {
    "description": "The object's version, for `If-Match` on its updates (`cartera.api.etag`).",
    "schema": {"type": "string", "examples": ['"63f2a1b4c5d6e"']}}


def _entity_tags(path_item: dict[str, Any]) -> None:
    """An operation taking ``If-Match`` answers 412 and tags its answer; so does the read of
    the same object (and the create whose answer carries a tag, by ``opt``)."""
    conditional = [op for op in path_item.values() if isinstance(op, dict) and any(
        p.get("name") == "If-Match" and p.get("in") == "header"
        for p in op.get("parameters", []))]
    if not conditional:
        return
    for op in conditional:
        responses = op["responses"]
        responses["412"] = {"$ref": REF.format("responses", "PreconditionFailed")}
        op["responses"] = dict(sorted(responses.items()))
    for tagged in [*conditional, path_item.get("get") or {}]:
        ok = tagged.get("responses", {}).get("200")
        if ok is not None and "$ref" not in ok:
            ok.setdefault("headers", {})["ETag"] = ETAG_HEADER


def _shared_errors(path: str, method: str, op: dict[str, Any]) -> list[str]:
    """Errors every operation of a kind can answer, whatever its own parameters."""
    wanted = []
    if not path.startswith(PUBLIC_WEBHOOK_PREFIX) and op.get("operationId") not in OWN_ERRORS:
        wanted.append("BadRequest")  # an unknown query parameter
    if group_of(method.upper(), path) is not None:
        wanted.append("TooManyRequests")
    if path.startswith(PUBLIC_WEBHOOK_PREFIX) and method == "post":
        wanted.append("Unauthorized")  # the provider's signature did not verify
    if any("oauth2" in requirement for requirement in op.get("security", [])):
        wanted.append("ServiceUnavailable")  # API sessions have a statement timeout
    return wanted


def _complete_operation(path: str, method: str, op: dict[str, Any]) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    # Litestar's default 400 ("ValidationException") is not what we answer: drop it.
    default_400 = responses.get("400", {}).get("content", {}).get("application/json", {})
    if default_400.get("schema", {}).get("description") == "Validation Exception":
        del responses["400"]
    wanted = ["InternalError", *_shared_errors(path, method, op)]
    if "requestBody" in op:
        wanted.append("PayloadTooLarge")
        if "application/json" in op["requestBody"].get("content", {}):
            wanted.append("UnsupportedMediaType")
        _optional_body(op["requestBody"])
    _bound_query_parameters(op.get("parameters", []))
    if op.get("operationId") not in OWN_ERRORS:
        params = op.get("parameters", [])
        has_body = "requestBody" in op
        secured = bool(op.get("security"))
        if has_body:
            wanted.append("BadRequest")
        if has_body or params:
            wanted.append("UnprocessableContent")
        if secured:
            wanted += ["Unauthorized", "Forbidden"]
        if any(p.get("in") == "path" for p in params):
            wanted.append("NotFound")
        if secured and method in {"post", "put", "patch", "delete"}:
            wanted.append("Conflict")
        # Idempotency keys are per OAuth client: the debtor-facing routes take none.
        if secured and method == "post" and not path.startswith("/self-service"):
            op["parameters"] = [*params, {"$ref": REF.format("parameters", "IdempotencyKey")}]
            if not has_body:
                wanted += ["BadRequest", "UnprocessableContent"]
    for name in wanted:
        responses.setdefault(str(_ERRORS[name][0]), {"$ref": REF.format("responses", name)})
    for status, response in responses.items():  # e.g. readiness's 503: a problem too
        if int(status) >= 400 and "$ref" not in response and not response.get("content"):
            response["content"] = {PROBLEM_JSON: {"schema": {"$ref": REF.format("schemas",
                                                                                 "Problem")}}}
    if "201" in responses and "$ref" not in responses["201"]:
        responses["201"].setdefault("headers", {})["Location"] = LOCATION_HEADER
    op["responses"] = dict(sorted(responses.items()))
    example = REQUEST_EXAMPLES.get(op.get("operationId", ""))
    if example is not None:
        media = op["requestBody"]["content"]["application/json"]
        media["examples"] = {"default": {"summary": "A typical request", "value": example}}


def _bound_query_parameters(params: list[dict[str, Any]]) -> None:
    """Declare what :mod:`cartera.api.parameters` enforces on every query parameter."""
    for param in params:
        if param.get("in") != "query":
            continue
        schema = param.get("schema", {})
        if None in schema.get("enum", ()):  # an optional parameter is left out, never null
            schema["enum"] = [v for v in schema["enum"] if v is not None]
            kinds = [k for k in schema.get("type", []) if k != "null"]
            schema["type"] = kinds[0] if len(kinds) == 1 else kinds
        for variant in [schema, *schema.get("oneOf", [])]:
            if variant.get("type") == "array":
                variant["maxItems"] = MAX_REPEATED
            if variant.get("format") == "date":
                variant["description"] = f"From {MIN_DATE} to {MAX_DATE}."


def _optional_body(body: dict[str, Any]) -> None:
    """A body the handler takes as ``data: X | None = None`` may be left out, but Litestar
    marks every request body required: not one whose schema admits null."""
    for media in body.get("content", {}).values():
        if {"type": "null"} in media.get("schema", {}).get("oneOf", []):
            body["required"] = False


def request_structs(app: Litestar) -> dict[type[msgspec.Struct], mi.StructType]:
    """Every msgspec struct a JSON request body of the app can hold, nested ones included."""
    found: dict[type[msgspec.Struct], mi.StructType] = {}

    def walk(t: mi.Type) -> None:
        if isinstance(t, mi.Metadata):
            walk(t.type)
        elif isinstance(t, mi.StructType) and t.cls not in found:
            found[t.cls] = t
            for f in t.fields:
                walk(f.type)
        elif isinstance(t, mi.UnionType):
            for member in t.types:
                walk(member)
        elif isinstance(t, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
            walk(t.item_type)
        elif isinstance(t, mi.DictType):
            walk(t.value_type)

    for _, _, handler in _operations(app):
        data = handler.parsed_fn_signature.parameters.get("data")
        if data is not None:
            walk(mi.type_info(data.annotation))
    return found


def _operations(app: Litestar) -> list[tuple[str, str, HTTPRouteHandler]]:
    """(document path, method, handler) of every documented operation."""
    out = []
    for route in app.routes:
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        for handler in getattr(route, "route_handlers", []):
            if isinstance(handler, HTTPRouteHandler) and handler.include_in_schema:
                out += [(path, method.lower(), handler) for method in handler.http_methods]
    return out


def _body_schemas(app: Litestar, doc: dict[str, Any]) -> None:
    """Close the bodies that forbid unknown fields, and give their integer fields the exact
    bounds of their msgspec type."""
    schemas = doc.get("components", {}).get("schemas", {})
    for cls, info in request_structs(app).items():
        schema = schemas.get(cls.__name__)
        if schema is None:
            continue
        if cls.__struct_config__.forbid_unknown_fields:
            schema["additionalProperties"] = False
        for f in info.fields:
            prop = schema.get("properties", {}).get(f.encode_name)
            members = f.type.types if isinstance(f.type, mi.UnionType) else (f.type,)
            for t in (m.type if isinstance(m, mi.Metadata) else m for m in members):
                if prop is not None and isinstance(t, mi.IntType):
                    _set_bounds(prop, t)


def _set_bounds(schema: dict[str, Any], bounded: Any) -> None:
    for attr, keyword in _BOUNDS:
        value = getattr(bounded, attr)
        if value is not None:
            schema[keyword] = _exact(value)


_BOUNDS = (("ge", "minimum"), ("le", "maximum"), ("gt", "exclusiveMinimum"),
           ("lt", "exclusiveMaximum"))


def _exact(value: float) -> int | float:
    return int(value) if isinstance(value, int) or float(value).is_integer() else value


def _parameter_bounds(app: Litestar, doc: dict[str, Any]) -> None:
    """Litestar drops a bound of 0 and turns the others into floats (2**63 - 1 loses its
    last digits): declare each as the handler's signature has it."""
    for path, method, handler in _operations(app):
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op is None:
            continue
        params = {(p.get("name"), p.get("in")): p for p in op.get("parameters", [])
                  if "name" in p}
        for field_name, definition in handler.parsed_fn_signature.parameters.items():
            kwarg = definition.kwarg_definition
            if not isinstance(kwarg, ParameterKwarg):
                continue
            name = kwarg.query or field_name
            param = params.get((name, "query")) or params.get((field_name, "path"))
            if param is None:
                continue
            _set_bounds(param.setdefault("schema", {}), kwarg)


def install(app: Litestar) -> None:
    """Complete the document the app serves at ``/docs/openapi.json`` (call once, at build)."""
    plugin = app.plugins.get(OpenAPIPlugin)
    doc = complete(plugin.provide_openapi().to_schema())
    _body_schemas(app, doc)
    _parameter_bounds(app, doc)
    _raw_bodies(app, doc)
    _list_parameters(app, doc)
    _typed_fields(doc)
    rename_schemas(doc)
    named_enums(doc)
    plugin._openapi_schema = doc


# --- Names generators can use -------------------------------------------------------------

RAW_BODY = "raw_body"
"""Handler ``opt`` key: the media types of a body the handler reads itself (an upload); the
document declares each as a binary body (``multipart/form-data``: a part named ``file``)."""

EXTRA_SCHEMAS: dict[str, dict[str, Any]] = {}
"""Named components a domain contributes (e.g. the recursive segment rule)."""
TYPED_FIELDS: dict[tuple[str, str], str] = {}
"""(struct qualified name, field) -> the component that types a field msgspec leaves open
(a ``dict[str, Any]`` the service validates)."""


def register_schema(name: str, schema: dict[str, Any],
                    fields: tuple[tuple[type, str], ...] = ()) -> None:
    """Add the component ``name`` and make each (struct, field) a reference to it."""
    EXTRA_SCHEMAS[name] = schema
    for cls, field_name in fields:
        TYPED_FIELDS[(f"{cls.__module__}.{cls.__qualname__}", field_name)] = name


def _schema_keys(qualified: str) -> list[str]:
    """The keys Litestar may have given a struct: its name, or its module path + name when
    two structs share a name (``messaging_schemas_PreviewOut``)."""
    module, _, name = qualified.rpartition(".")
    parts = module.split(".")
    return [name, *("_".join([*parts[i:], name]) for i in range(len(parts) - 1, 0, -1))]


def _typed_fields(doc: dict[str, Any]) -> None:
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in EXTRA_SCHEMAS.items():
        schemas[name] = copy.deepcopy(schema)
    for (qualified, field_name), name in TYPED_FIELDS.items():
        for key in _schema_keys(qualified):
            prop = schemas.get(key, {}).get("properties", {}).get(field_name)
            if prop is not None:
                kept = {k: v for k, v in prop.items() if k in {"description", "examples"}}
                nullable = {"type": "null"} in prop.get("oneOf", []) or "null" in prop.get(
                    "type", [])
                ref = {"$ref": REF.format("schemas", name)}
                prop.clear()
                prop.update({"oneOf": [ref, {"type": "null"}]} if nullable else ref, **kept)
                break


BINARY: dict[str, Any] = {"type": "string", "format": "binary"}
MULTIPART_FILE: dict[str, Any] = {
    "type": "object", "required": ["file"],
    "properties": {"file": {**BINARY, "description": "The file, as its own part."}}}


def _list_parameter(name: str) -> dict[str, Any]:
    if name == "sort":
        return {"name": "sort", "in": "query", "required": False,
                "description": "Comma-separated `id`, `created`, `updated`, each optionally "
                               "prefixed with `-` for descending; default `id` (oldest first). "
                               "Ties are broken by id.",
                "schema": {"type": "string", "pattern": r"^-?(id|created|updated)"
                                                        r"(,-?(id|created|updated)){0,2}$",
                           "examples": ["-created"]}}
    if name == "ending_before":
        return {"name": name, "in": "query", "required": False,
                "description": "Cursor backwards: the items just before the item with this id "
                               "(not with `starting_after`).",
                "schema": {"type": "integer", "minimum": 1, "maximum": listing.MAX_ID}}
    field_name, op = name[:-1].split("[")
    word = {"gte": "at or after", "gt": "after", "lte": "at or before", "lt": "before"}[op]
    return {"name": name, "in": "query", "required": False,
            "description": f"Only objects {field_name} {word} this instant (RFC 3339; a date "
                           "is midnight UTC).",
            "schema": {"type": "string", "format": "date-time"}}


def _list_parameters(app: Litestar, doc: dict[str, Any]) -> None:
    """Every list takes :mod:`cartera.api.listing`'s parameters."""
    for path, method, handler in _operations(app):
        op = doc.get("paths", {}).get(path, {}).get(method)
        if op is None or not listing.returns_page(handler):
            continue
        declared = {p.get("name") for p in op.get("parameters", [])}
        op["parameters"] = [*op.get("parameters", []),
                            *(_list_parameter(n) for n in sorted(listing.LIST_PARAMETERS)
                              if n not in declared)]


def _raw_bodies(app: Litestar, doc: dict[str, Any]) -> None:
    """Declare the bodies handlers read as a stream (``opt[RAW_BODY]``: media types)."""
    for path, method, handler in _operations(app):
        media_types = handler.opt.get(RAW_BODY)
        op = doc.get("paths", {}).get(path, {}).get(method)
        if not media_types or op is None:
            continue
        op["requestBody"] = {"required": True, "content": {
            media: {"schema": MULTIPART_FILE if media == "multipart/form-data" else BINARY}
            for media in media_types}}
        responses = op.setdefault("responses", {})
        responses.setdefault("413", {"$ref": REF.format("responses", "PayloadTooLarge")})
        op["responses"] = dict(sorted(responses.items()))


_GENERIC = re.compile(r"^([A-Za-z0-9]+)_(?:[A-Za-z0-9_]+\.)*([A-Za-z0-9]+)_$")
"""``Page_cartera.portfolio.schemas.DebtorOut_``: a generic struct and its argument."""
_MODULE_PREFIXED = re.compile(r"^((?:[a-z0-9]+_)+)([A-Z][A-Za-z0-9]*)$")
"""``messaging_schemas_PreviewOut``: Litestar's name for one of two structs sharing a name."""
_ROLE_SUFFIXES = ("Out", "In")
_MODULE_WORDS = frozenset({"cartera", "schemas", "schema", "api", "routes"})


def schema_name(key: str) -> str:
    """The component name generators see, from the key Litestar gave it. One rule for every
    schema: a generic keeps its argument's name without the role suffix followed by its own
    (``Page[DebtorOut]`` -> ``DebtorPage``), and a struct whose name another module also uses
    is prefixed with its domain (``messaging.schemas.PreviewOut`` -> ``MessagingPreviewOut``).
    Other names are kept."""
    generic = _GENERIC.match(key)
    if generic:
        outer, arg = generic.groups()
        for suffix in _ROLE_SUFFIXES:
            if arg.endswith(suffix) and arg != suffix:
                arg = arg.removesuffix(suffix)
                break
        return f"{arg}{outer}"
    prefixed = _MODULE_PREFIXED.match(key)
    if prefixed:
        words = [w for w in prefixed.group(1).split("_") if w and w not in _MODULE_WORDS]
        return "".join(w.capitalize() for w in words) + prefixed.group(2)
    return key


def _rewrite_refs(node: Any, renames: dict[str, str], kind: str = "schemas") -> None:
    prefix = REF.format(kind, "")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix):] in renames:
            node["$ref"] = prefix + renames[ref[len(prefix):]]
        for value in node.values():
            _rewrite_refs(value, renames, kind)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, renames, kind)


def rename_schemas(doc: dict[str, Any]) -> None:
    """Apply :func:`schema_name` to every component (and its ``title``, which generators use
    as the class name); two schemas landing on one name is a build error."""
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    renames = {key: schema_name(key) for key in schemas}
    seen: dict[str, str] = {}
    for key, name in renames.items():
        if name in seen:
            raise RuntimeError(f"OpenAPI schemas {seen[name]!r} and {key!r} would both be "
                               f"named {name!r}")
        seen[name] = key
    renamed = {renames[key]: schema for key, schema in schemas.items()}
    for name, schema in renamed.items():
        schema["title"] = name
    doc["components"]["schemas"] = dict(sorted(renamed.items()))
    _rewrite_refs(doc, {k: v for k, v in renames.items() if k != v})


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\W]+", name) if part)


def _enum_name(owner: str, field_name: str) -> str:
    """``ObligationOut.status`` -> ``ObligationStatus``; ``ChannelIn.channel`` -> ``Channel``."""
    base = owner
    for suffix in ("Create", "Update", *_ROLE_SUFFIXES):
        if base.endswith(suffix) and base != suffix:
            base = base.removesuffix(suffix)
            break
    word = _camel(field_name)
    return base if base.endswith(word) else base + word


def _split_enum(prop: dict[str, Any]) -> tuple[list[Any], bool, dict[str, Any]] | None:
    """(values, nullable, other keywords) of a string enum property, in either form Litestar
    writes it: ``{"enum": [..., null], "type": [...]}`` or ``{"oneOf": [{"enum": ...}, ...]}``."""
    if "enum" in prop and "$ref" not in prop:
        kinds = prop.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        if not set(kinds) <= {"string", "null"}:
            return None
        values = [v for v in prop["enum"] if v is not None]
        nullable = "null" in kinds or None in prop["enum"]
        rest = {k: v for k, v in prop.items() if k not in {"enum", "type"}}
        return (values, nullable, rest) if values else None
    variants = prop.get("oneOf") or prop.get("anyOf")
    if not variants:
        return None
    enums = [v for v in variants if "enum" in v and v.get("type") == "string"]
    others = [v for v in variants if v not in enums]
    if len(enums) != 1 or any(v != {"type": "null"} for v in others):
        return None
    rest = {k: v for k, v in prop.items() if k not in {"oneOf", "anyOf"}}
    return [v for v in enums[0]["enum"] if v is not None], bool(others), rest


def literal_names() -> dict[tuple[str, ...], list[str]]:
    """Named ``Literal`` aliases of Cartera's modules (``ObligationStatus = Literal[...]`` in
    :mod:`cartera.types`), by their values, in sorted order: an enum with exactly those
    values takes the alias's name (of several, the one its first use would give, else the
    first)."""
    found: dict[tuple[str, ...], list[str]] = {}
    for module_name, module in sorted(sys.modules.items()):
        if not (module_name == "cartera" or module_name.startswith("cartera.")) or module is None:
            continue
        for attr, value in sorted(vars(module).items()):
            if attr.startswith("_") or not attr[:1].isupper() or get_origin(value) is not Literal:
                continue
            args = get_args(value)
            if args and all(isinstance(a, str) for a in args):
                names = found.setdefault(tuple(args), [])
                if attr not in names:
                    names.append(attr)
    return {values: sorted(names) for values, names in found.items()}


def named_enums(doc: dict[str, Any]) -> None:
    """Give every string enum of a component's properties a component of its own, referenced
    once (``oneOf: [$ref, null]`` when nullable), so generators make one enum type per set
    of values instead of an inline copy per use (three for a nullable one). It is named after
    the ``Literal`` alias with those values (:func:`literal_names`), else after its first use
    (:func:`_enum_name`)."""
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    made: dict[str, dict[str, Any]] = {}
    aliases = literal_names()
    for owner, schema in list(schemas.items()):
        for field_name, field_schema in schema.get("properties", {}).items():
            prop = field_schema
            if field_schema.get("type") == "array" and isinstance(field_schema.get("items"), dict):
                prop = field_schema["items"]  # a list of enum values: its items
            found = _split_enum(prop)
            if found is None:
                continue
            values, nullable, rest = found
            name = _enum_name(owner, field_name)
            named = aliases.get(tuple(values), [])
            name = name if name in named else (named[0] if named else name)
            enum = {"title": name, "type": "string", "enum": values}
            if (name in schemas and name not in made) or made.get(name, enum) != enum:
                name = f"{owner}{_camel(field_name)}"
                enum = {**enum, "title": name}
                if (name in schemas and name not in made) or made.get(name, enum) != enum:
                    raise RuntimeError(f"OpenAPI enum {name!r} is defined twice")
            made[name] = enum
            ref = {"$ref": REF.format("schemas", name)}
            prop.clear()
            if nullable:
                prop.update({"oneOf": [ref, {"type": "null"}], **rest})
            elif rest:
                prop.update({"allOf": [ref], **rest})
            else:
                prop.update(ref)
    schemas.update(made)
    doc["components"]["schemas"] = dict(sorted(schemas.items()))


def document(app: Litestar) -> dict[str, Any]:
    """The OpenAPI document the app serves."""
    return app.plugins.get(OpenAPIPlugin).provide_openapi_schema()


def render(doc: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, UTF-8, trailing newline."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def default_output() -> Path:
    """``openapi/openapi.json`` in the source checkout (else under the working directory)."""
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").exists() and (root / "core" / "cartera").is_dir():
        return root / "openapi" / "openapi.json"
    return Path.cwd() / "openapi" / "openapi.json"


def build_document() -> dict[str, Any]:
    """Build the app (no database needed) and return the document it serves."""
    from cartera.api.app import create_app
    from cartera.settings import Settings

    app = create_app(Settings(database_url="sqlite+aiosqlite://"), check_migrations=False)
    return document(app)


def write(output: Path | None = None, *, check: bool = False) -> tuple[Path, bool]:
    """Write (or with ``check``, compare) the document; returns the path and whether the file
    was already up to date."""
    path = output or default_output()
    text = render(build_document())
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if not check and current != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path, current == text


REGENERATE = "cartera openapi  (or: .venv/bin/python -m cartera.cli openapi)"


def add_command(sub: Any) -> None:
    """``cartera openapi [--output PATH] [--check]`` (registered by :mod:`cartera.cli`)."""
    p = sub.add_parser("openapi", help="write the OpenAPI document (openapi/openapi.json)")
    p.add_argument("--output", type=Path, default=None,
                   help="where to write it (default: openapi/openapi.json in the checkout)")
    p.add_argument("--check", action="store_true",
                   help="only compare; exit 1 when the file differs from what the app serves")
    p.set_defaults(fn=_cmd_openapi)


def _cmd_openapi(args: Any) -> int:
    path, up_to_date = write(args.output, check=args.check)
    if args.check:
        print(f"{path}: {'up to date' if up_to_date else 'out of date; run `cartera openapi`'}")
        return 0 if up_to_date else 1
    print(f"{path}: {'unchanged' if up_to_date else 'written'}")
    return 0
