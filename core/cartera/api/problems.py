"""RFC 9457 problem details for every error, with a stable ``code`` and, where one field is
at fault, ``param``. Stack traces never leave the process."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from sqlalchemy.exc import DBAPIError

from cartera.errors import CarteraError

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("cartera.api")

_CODES_BY_STATUS = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    409: ("conflict", "Conflict"),
    413: ("body_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Validation failed"),
    429: ("rate_limited", "Too many requests"),
}


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    param: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"https://cartera.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if param is not None:
        body["param"] = param
    if instance is not None:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_UNSENT = "request_id_unsent"


def _request_id(request: Request[Any, Any, Any]) -> str:
    """The request's id; one made here for an error answered before the request-context
    middleware ran (an unknown route), which :func:`_with_request_id` then sends."""
    state = request.scope.setdefault("state", {})
    if state.get("request_id") is None:
        state["request_id"] = uuid.uuid4().hex
        state[_UNSENT] = True
    return str(state["request_id"])


def _with_request_id(handler: Any) -> Any:
    def identified(request: Request[Any, Any, Any], exc: Any) -> Response[Any]:
        response: Response[Any] = handler(request, exc)
        if request.scope.get("state", {}).pop(_UNSENT, False):
            response.headers["X-Request-ID"] = request.scope["state"]["request_id"]
        return response

    return identified


def cartera_error_handler(request: Request[Any, Any, Any], exc: CarteraError) -> Response[Any]:
    headers = None
    if exc.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="cartera"'}
    elif exc.code == "insufficient_scope":
        headers = {"WWW-Authenticate": 'Bearer realm="cartera", error="insufficient_scope"'}
    return problem(
        exc.status, exc.code, exc.title, exc.detail, param=exc.param, instance=request.url.path,
        headers=headers, request_id=_request_id(request), **exc.extra,
    )


_NAMED_FIELD = re.compile(r"(?:missing required|contains unknown) field `([^`]+)`")


def _param_of(key: Any, message: Any) -> str | None:
    """The field at fault as a path: a missing or unknown field is named itself (msgspec
    reports the object that lacks or has it, the body being ``data``), and the body as a
    whole is no field."""
    path = None if key in (None, "", "data") else str(key).removeprefix("data.")
    missing = _NAMED_FIELD.search(str(message or ""))
    if missing:
        return f"{path}.{missing.group(1)}" if path else missing.group(1)
    return path


def _validation_problem(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    raw = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"param": _param_of(e.get("key"), e.get("message")), "source": e.get("source"),
         "reason": e.get("message")}
        for e in raw
        if isinstance(e, dict)
    ]
    detail = str(exc.detail)
    if ("JSON" in detail and ("malformed" in detail.lower() or "invalid" in detail.lower())
            and not errors):
        return problem(400, "malformed_json", "Malformed JSON", "the request body is not "
                       "valid JSON", instance=request.url.path, request_id=_request_id(request))
    first = errors[0] if errors else {}
    reason = first.get("reason") or detail
    param = first.get("param")
    return problem(
        422, "validation_error", "Validation failed",
        f"{param}: {reason}" if param else str(reason), param=param,
        instance=request.url.path, errors=errors or None, request_id=_request_id(request),
    )


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if isinstance(exc, ValidationException):
        return _validation_problem(request, exc)
    if isinstance(exc.__cause__, SerializationException):  # the body did not decode
        return problem(400, "malformed_json", "Malformed JSON",
                       f"the request body is not valid JSON: {exc.__cause__}",
                       instance=request.url.path, request_id=_request_id(request))
    status = exc.status_code
    code, title = _CODES_BY_STATUS.get(status, ("error", "Error"))
    if isinstance(exc, NotAuthorizedException):
        code, title = "unauthorized", "Unauthorized"
    if isinstance(exc, PermissionDeniedException):
        code, title = "forbidden", "Forbidden"
    headers = dict(exc.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="cartera"')
    if status == 429:  # the rate limiter's window resets in RateLimit-Reset seconds
        headers.setdefault("Retry-After", str(max(1, int(headers.get("RateLimit-Reset", 1)))))
    return problem(
        status, code, title, str(exc.detail), instance=request.url.path, headers=headers or None,
        request_id=_request_id(request),
    )


# Input no column can hold, found only by the database: the caller's fault (422), not ours.
_UNSTORABLE = (
    (("too large to convert to sqlite", "out of int64 range", "out of range for",
      "numericvalueoutofrange"),
     "number_out_of_range", "a number in the request is out of range (ids are 64-bit)"),
    (("cannot contain nul",), "nul_character", "text must not contain NUL (U+0000) characters"),
)


QUERY_CANCELED = "57014"
"""PostgreSQL's SQLSTATE for a statement cancelled, here by ``statement_timeout``."""


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    # Through SQLAlchemy (DBAPIError) or straight from psycopg (the plain read pool's reads).
    if getattr(exc.orig if isinstance(exc, DBAPIError) else exc, "sqlstate",
               None) == QUERY_CANCELED:
        log.warning("statement timeout", extra={"request_id": _request_id(request)})
        return problem(503, "statement_timeout", "Service unavailable",
                       "the request needed the database for longer than allowed; narrow it "
                       "(filters, a smaller page) or retry later", instance=request.url.path,
                       headers={"Retry-After": "5"}, request_id=_request_id(request))
    # A safety net: routes bound ids with ``cartera.api.pagination.Id`` and text by column.
    if isinstance(exc, OverflowError | ValueError | DBAPIError):
        message = str(exc).lower()
        for needles, code, detail in _UNSTORABLE:
            if any(n in message for n in needles):
                return problem(422, code, "Validation failed", detail,
                               instance=request.url.path, request_id=_request_id(request))
    log.exception("unhandled error", extra={"request_id": _request_id(request)})
    return problem(
        HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Internal server error",
        "something went wrong on our side; the request id identifies it in our logs",
        instance=request.url.path, request_id=_request_id(request),
    )


EXCEPTION_HANDLERS: dict[Any, Any] = {
    CarteraError: _with_request_id(cartera_error_handler),
    HTTPException: _with_request_id(http_exception_handler),
    Exception: _with_request_id(internal_error_handler),
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem"]
