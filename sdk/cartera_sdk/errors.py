"""Exceptions a plugin raises across the boundary, and the failure classification they carry."""

from __future__ import annotations

from typing import Literal

__all__ = [
    "CarteraSDKError",
    "ConfigError",
    "FailureKind",
    "PermanentError",
    "ProviderError",
    "RateLimitedError",
    "RetryableError",
    "WebhookVerificationError",
]

#: How the host should react to a failed provider call:
#: ``retryable`` (transient: retry with backoff), ``rate_limited`` (retry after
#: ``retry_after_seconds``) or ``permanent`` (do not retry; surface to a person).
FailureKind = Literal["retryable", "permanent", "rate_limited"]


class CarteraSDKError(Exception):
    """Base class of every exception defined by the SDK."""


class ConfigError(CarteraSDKError):
    """An integration's config or secrets are invalid or incomplete."""


class WebhookVerificationError(CarteraSDKError):
    """An inbound webhook failed authentication (bad/missing signature, stale timestamp).

    ``code`` is machine-readable (e.g. ``missing_signature``, ``bad_signature``,
    ``stale_timestamp``); the host answers 401 and logs it, never processes the body.
    """

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


class ProviderError(CarteraSDKError):
    """A provider call failed; ``kind`` tells the host whether and when to retry."""

    kind: FailureKind = "permanent"

    def __init__(
        self,
        code: str,
        reason: str = "",
        *,
        kind: FailureKind | None = None,
        retry_after_seconds: float | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(f"{code}: {reason}" if reason else code)
        self.code = code
        self.reason = reason
        if kind is not None:
            self.kind = kind
        self.retry_after_seconds = retry_after_seconds
        self.status_code = status_code


class RetryableError(ProviderError):
    """A transient failure (timeout, 5xx, connection reset)."""

    kind: FailureKind = "retryable"


class RateLimitedError(ProviderError):
    """The provider throttled us; honour ``retry_after_seconds`` when given."""

    kind: FailureKind = "rate_limited"


class PermanentError(ProviderError):
    """A failure that will not go away by retrying (bad request, auth, invalid recipient)."""

    kind: FailureKind = "permanent"
