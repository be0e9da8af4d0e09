"""Domain errors. The API turns each into an RFC 9457 problem with a stable ``code``."""

from __future__ import annotations

import logging
import uuid
from typing import Any


class CarteraError(Exception):
    """Base class: ``status`` is the HTTP status, ``code`` a stable machine-readable name."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.param = param
        self.extra = extra or {}


class NotFound(CarteraError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(CarteraError):
    status = 409
    code = "conflict"
    title = "Conflict"


class Invalid(CarteraError):
    """Well-formed input that breaks a rule (a field's value, a reference that doesn't exist)."""

    status = 422
    code = "validation_error"
    title = "Validation failed"


class Unauthorized(CarteraError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class Forbidden(CarteraError):
    status = 403
    code = "insufficient_scope"
    title = "Forbidden"


def tenant_facing(exc: BaseException, log: logging.Logger, what: str,
                  **context: Any) -> str:
    """What a tenant may read about a failed job or run.

    A :class:`CarteraError` is ours: its ``code: detail``. Anything else (a database error
    quoting SQL, a library's message) becomes ``internal_error (error id …)``; the full
    error is logged with the same id for the operator (never bound parameters: engines
    hide them)."""
    if isinstance(exc, CarteraError):
        return f"{exc.code}: {exc.detail}"
    error_id = uuid.uuid4().hex[:16]
    log.error("%s failed (error id %s)", what, error_id, exc_info=exc,
              extra={"error_id": error_id, **context})
    return f"internal_error (error id {error_id})"
