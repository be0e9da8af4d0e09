"""Webhook signature helpers. Every comparison is constant-time (``hmac.compare_digest``).

Verify over the raw body bytes, never over re-serialised JSON. Provider schemes covered:

* Meta / WhatsApp Cloud API: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, body)>``.
* Twilio: ``X-Twilio-Signature`` = base64 HMAC-SHA1(auth token, URL + sorted form params);
  JSON bodies are bound through the ``bodySHA256`` query parameter.
* Mercado Pago: ``x-signature: ts=..,v1=..`` over the manifest
  ``id:<data.id>;request-id:<x-request-id>;ts:<ts>;`` (Stripe-style header parser included).
* SendGrid Signed Event Webhook: ECDSA P-256/SHA-256 over ``timestamp + body``, verified
  with ``cryptography``.
* Sorted-parameter schemes (Vonage signed webhooks and requests): ``sig`` over the
  parameters sorted by name, as an HMAC (MD5, SHA-1, SHA-256, SHA-512) or as the legacy
  ``md5hash`` (MD5 of the string followed by the secret).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import WebhookVerificationError

__all__ = [
    "check_timestamp",
    "constant_time_equals",
    "ecdsa_p256_verify",
    "hmac_digest",
    "mercadopago_manifest",
    "meta_signature",
    "parse_signature_header",
    "sendgrid_verify",
    "sorted_params_signature",
    "sorted_params_string",
    "twilio_signature",
    "twilio_verify",
    "twilio_verify_json",
    "verify_hmac",
    "verify_mercadopago_signature",
    "verify_meta_signature",
    "verify_sorted_params_signature",
]

Algorithm = Literal["sha256", "sha1", "sha512"]
Encoding = Literal["hex", "base64"]


def _b(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def hmac_digest(
    key: str | bytes,
    message: str | bytes,
    *,
    algorithm: Algorithm = "sha256",
    encoding: Encoding = "hex",
) -> str:
    """HMAC of ``message`` under ``key``, as lowercase hex or standard base64."""
    mac = hmac.new(_b(key), _b(message), algorithm).digest()
    return mac.hex() if encoding == "hex" else base64.b64encode(mac).decode("ascii")


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two strings/bytes."""
    return hmac.compare_digest(_b(a), _b(b))


def verify_hmac(
    key: str | bytes,
    message: str | bytes,
    signature: str | None,
    *,
    algorithm: Algorithm = "sha256",
    encoding: Encoding = "hex",
) -> bool:
    """True if ``signature`` is the HMAC of ``message`` (hex compared case-insensitively)."""
    if not signature:
        return False
    expected = hmac_digest(key, message, algorithm=algorithm, encoding=encoding)
    if encoding == "hex":
        signature = signature.lower()
    return constant_time_equals(expected, signature.strip())


def check_timestamp(
    timestamp: str | int | float,
    now: datetime,
    *,
    tolerance: float = 300.0,
    future_tolerance: float = 60.0,
) -> None:
    """Reject a signed timestamp older than ``tolerance`` or more than ``future_tolerance``
    seconds ahead of ``now``. 13-digit values are read as milliseconds.

    :raises WebhookVerificationError: ``bad_timestamp`` or ``stale_timestamp``.
    """
    try:
        value = float(timestamp)
    except (TypeError, ValueError) as exc:
        raise WebhookVerificationError("bad_timestamp", "timestamp is not a number") from exc
    if value > 1e12:
        value /= 1000.0
    age = now.timestamp() - value
    if age > tolerance or -age > future_tolerance:
        raise WebhookVerificationError("stale_timestamp", f"timestamp off by {age:.0f}s")


# ------------------------------------------------------------------------------ Meta


def meta_signature(app_secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends: ``sha256=<hex>``."""
    return "sha256=" + hmac_digest(app_secret, body)


def verify_meta_signature(app_secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256`` against the raw body (key: the *app secret*)."""
    if not header or not header.startswith("sha256="):
        return False
    return verify_hmac(app_secret, body, header.removeprefix("sha256="))


# ------------------------------------------------------------------------------ Twilio

Params = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]


def _param_pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((key, v) for v in values)
        return pairs
    return list(params)


def twilio_signature(auth_token: str, url: str, params: Params | None = None) -> str:
    """``X-Twilio-Signature`` for ``url`` and form ``params``.

    Names sorted; each name's distinct values sorted; ``name + value`` appended to the URL.
    """
    by_name: dict[str, set[str]] = {}
    for key, value in _param_pairs(params):
        by_name.setdefault(key, set()).add(value)
    payload = url + "".join(
        key + value for key in sorted(by_name) for value in sorted(by_name[key])
    )
    return hmac_digest(auth_token, payload, algorithm="sha1", encoding="base64")


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    host = parts.hostname or ""
    variants = [url]
    if parts.port is None and default is not None:
        netloc = f"{parts.netloc}:{default}"
        variants.append(urlunsplit(parts._replace(netloc=netloc)))
    elif parts.port is not None and parts.port == default:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        variants.append(urlunsplit(parts._replace(netloc=userinfo + host)))
    return variants


def twilio_verify(auth_token: str, url: str, params: Params | None, signature: str | None) -> bool:
    """Check a form-encoded Twilio callback; accepts the URL with or without default port."""
    if not signature:
        return False
    return any(
        constant_time_equals(twilio_signature(auth_token, u, params), signature)
        for u in _port_variants(url)
    )


def twilio_verify_json(auth_token: str, url: str, body: bytes, signature: str | None) -> bool:
    """Check a JSON-bodied Twilio request: URL signature plus its ``bodySHA256`` query."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    expected_hash = query.get("bodySHA256")
    if not expected_hash or not constant_time_equals(
        hashlib.sha256(body).hexdigest(), expected_hash.lower()
    ):
        return False
    return twilio_verify(auth_token, url, None, signature)


# ------------------------------------------------------------------------------ sorted params

#: ``md5hash`` is MD5(parameter string + secret); the others are HMACs under the secret.
ParamsAlgorithm = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]


def sorted_params_string(params: Mapping[str, str], *, exclude: Iterable[str] = ("sig",)) -> str:
    """``&name=value`` for every parameter but ``exclude``, sorted by name, with ``&`` and
    ``=`` inside values replaced by ``_`` (Vonage's canonical form)."""
    skipped = set(exclude)
    return "".join(
        f"&{name}={str(params[name]).replace('&', '_').replace('=', '_')}"
        for name in sorted(params)
        if name not in skipped
    )


def sorted_params_signature(
    secret: str,
    params: Mapping[str, str],
    *,
    algorithm: ParamsAlgorithm = "sha256",
    exclude: Iterable[str] = ("sig",),
) -> str:
    """The lowercase hex signature of ``params`` (a flat name -> value mapping, e.g.
    :meth:`WebhookRequest.params`) under ``secret``: HMAC-``algorithm`` of
    :func:`sorted_params_string`, or for ``md5hash`` the MD5 of that string followed by the
    secret. ``exclude`` names parameters left out (the signature itself)."""
    payload = sorted_params_string(params, exclude=exclude)
    if algorithm == "md5hash":
        return hashlib.md5(_b(payload + secret), usedforsecurity=False).hexdigest()
    return hmac.new(_b(secret), _b(payload), algorithm).hexdigest()


def verify_sorted_params_signature(
    secret: str,
    params: Mapping[str, str],
    signature: str | None,
    *,
    algorithm: ParamsAlgorithm = "sha256",
    exclude: Iterable[str] = ("sig",),
) -> bool:
    """True if ``signature`` (hex, any case) is :func:`sorted_params_signature` of
    ``params``. Check the signed ``timestamp`` parameter with :func:`check_timestamp`."""
    if not signature:
        return False
    expected = sorted_params_signature(secret, params, algorithm=algorithm, exclude=exclude)
    return constant_time_equals(expected, signature.strip().lower())


# ------------------------------------------------------------------------------ ts=,v1=


def parse_signature_header(header: str | None) -> dict[str, list[str]]:
    """Parse ``ts=1716651000,v1=abc,v1=def`` into ``{"ts": [...], "v1": [...]}``.

    Parts are split on ``,`` and each on its first ``=``; whitespace is trimmed.
    """
    result: dict[str, list[str]] = {}
    if not header:
        return result
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if sep and key:
            result.setdefault(key.strip(), []).append(value.strip())
    return result


def mercadopago_manifest(data_id: str | None, request_id: str | None, ts: str) -> str:
    """``id:<data.id>;request-id:<x-request-id>;ts:<ts>;`` omitting absent pairs.

    Alphanumeric ``data.id`` values are lower-cased, as Mercado Pago's docs require.
    """
    manifest = ""
    if data_id:
        manifest += f"id:{data_id.lower()};"
    if request_id:
        manifest += f"request-id:{request_id};"
    return manifest + f"ts:{ts};"


def verify_mercadopago_signature(
    secret: str,
    x_signature: str | None,
    *,
    request_id: str | None,
    data_id: str | None,
    now: datetime | None = None,
    tolerance: float | None = None,
) -> None:
    """Verify Mercado Pago's ``x-signature``; with ``now`` and ``tolerance`` also the age.

    :raises WebhookVerificationError: ``missing_signature``, ``bad_signature`` or
        ``stale_timestamp``.
    """
    parts = parse_signature_header(x_signature)
    ts = parts.get("ts", [None])[0]
    candidates = [v for key, values in parts.items() if key.startswith("v") for v in values]
    if not ts or not candidates:
        raise WebhookVerificationError("missing_signature", "x-signature lacks ts or v1")
    expected = hmac_digest(secret, mercadopago_manifest(data_id, request_id, ts))
    if not any(constant_time_equals(expected, c.lower()) for c in candidates):
        raise WebhookVerificationError("bad_signature", "x-signature does not match")
    if now is not None and tolerance is not None:
        check_timestamp(ts, now, tolerance=tolerance)


# ------------------------------------------------------------------------------ ECDSA P-256


def _p256_public_key(public_key: str | bytes) -> ec.EllipticCurvePublicKey:
    if isinstance(public_key, str):
        text = "".join(
            line for line in public_key.strip().splitlines() if not line.startswith("-----")
        )
        # Strict: lenient decoding ignores whatever follows the padding, so a tampered
        # key would still verify.
        public_key = base64.b64decode(text, validate=True)
    key = serialization.load_der_public_key(public_key)
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not a P-256 SubjectPublicKeyInfo")
    return key


def ecdsa_p256_verify(public_key: str | bytes, message: bytes, signature_der: bytes) -> bool:
    """Verify an ECDSA P-256/SHA-256 DER signature with a DER or base64/PEM SPKI key
    (``public_key``: the SubjectPublicKeyInfo as DER bytes, or its base64, with or without
    PEM armour). Any malformed key or signature is ``False``, never an exception."""
    try:
        key = _p256_public_key(public_key)
        key.verify(signature_der, message, ec.ECDSA(hashes.SHA256()))
    except (ValueError, TypeError, UnsupportedAlgorithm, InvalidSignature):
        return False
    return True


def sendgrid_verify(
    public_key: str, body: bytes, signature_b64: str | None, timestamp: str | None
) -> bool:
    """Check SendGrid's ``X-Twilio-Email-Event-Webhook-Signature``/``-Timestamp`` headers."""
    if not signature_b64 or not timestamp:
        return False
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except ValueError:
        return False
    return ecdsa_p256_verify(public_key, timestamp.encode("utf-8") + body, signature)
