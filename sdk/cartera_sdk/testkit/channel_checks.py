"""Channel conformance checks added in 1.0: what reached the fake, a fake that refuses bad
credentials, provider errors inside HTTP 200 bodies, and signatures wherever they live.

Mixed into :class:`~cartera_sdk.testkit.conformance.ChannelConformance`; not used alone.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import pytest

from ..channels import OutboundMessage, SendFailure, Sent
from ..errors import WebhookVerificationError
from ..webhooks import WebhookRequest, WebhookSignature
from .fakeserver import FakeHTTPServer, FakeResponse, RecordedRequest
from .host import FakeHost, run

__all__ = ["ChannelRequestChecks", "strip_signature", "tamper_query"]


def _texts(message: OutboundMessage) -> list[str]:
    text = getattr(message.content, "text", None) or getattr(message.content, "script", None)
    return [text] if isinstance(text, str) and text else []


def _seen(request: RecordedRequest) -> str:
    """Everything of a recorded request a value could hide in, URL-decoded and JSON-decoded
    (JSON escapes non-ASCII text, so the raw bytes would not match)."""
    parts = [request.path, json.dumps(request.query, ensure_ascii=False),
             json.dumps(request.headers, ensure_ascii=False),
             request.body.decode("utf-8", "replace")]
    try:
        parts.append(json.dumps(request.json(), ensure_ascii=False))
    except ValueError:
        parts.append(json.dumps(request.form(), ensure_ascii=False))
    return "\n".join(parts)


def strip_signature(request: WebhookRequest, where: WebhookSignature | None) -> WebhookRequest:
    """``request`` without its signature: the named header (every header when ``where`` is
    ``None``), query parameter, form field or top-level JSON field."""
    if where is None:
        return request.with_headers({})
    if where.location == "header":
        wanted = where.name.lower()
        return request.with_headers({k: v for k, v in request.headers.items()
                                     if k.lower() != wanted})
    if where.location == "query":
        return request.without_query_param(where.name)
    if where.location == "form":
        kept = [(k, v) for k, v in parse_qsl(request.body.decode(), keep_blank_values=True)
                if k != where.name]
        return request.with_body(urlencode(kept).encode())
    body = msgspec.json.decode(request.body)
    if isinstance(body, dict):
        body.pop(where.name, None)
    return request.with_body(msgspec.json.encode(body))


def tamper_query(request: WebhookRequest, keep: str | None) -> WebhookRequest:
    """``request`` with the last value of a query parameter other than ``keep`` changed."""
    parts = urlsplit(request.url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    for i in reversed(range(len(pairs))):
        name, value = pairs[i]
        if name != keep:
            pairs[i] = (name, value + "0")
            return request.with_url(urlunsplit(parts._replace(query=urlencode(pairs))))
    raise AssertionError("the signed webhook has no query parameter to tamper with")


class ChannelRequestChecks:
    """Send and signature checks every channel provider must pass (1.0)."""

    @pytest.fixture
    def error_in_ok_response(self) -> FakeResponse | None:
        """What your provider answers with a success status (200, 202, ...) when it refuses
        the message (Vonage ``{"messages": [{"status": "2", "error-text": "Missing to"}]}``);
        ``None`` skips."""
        return None

    def test_send_request_reached_the_fake(
        self, provider: Any, sample_message: OutboundMessage, ctx: Any, fake_server: Any
    ) -> None:
        if not isinstance(fake_server, FakeHTTPServer):
            pytest.skip("needs a FakeHTTPServer to inspect what was sent")
        result = run(provider.send(sample_message, ctx))
        assert isinstance(result, Sent), f"expected Sent from the fake, got {result!r}"
        assert fake_server.requests, "send() returned Sent without calling the provider"
        seen = "\n".join(_seen(r) for r in fake_server.requests)
        digits = "".join(ch for ch in sample_message.to if ch.isdigit() or ch == "@")
        assert sample_message.to in seen or digits in seen, "the recipient was not sent"
        for text in _texts(sample_message):
            assert text in seen, f"the message text {text!r} was not sent"
        assert sample_message.message_id in seen, (
            "OutboundMessage.message_id must travel in the provider's correlation field")

    def test_send_with_wrong_credentials_is_refused(
        self, provider: Any, sample_message: OutboundMessage, host: FakeHost,
        config: Any, secrets: Any, fake_server: Any,
    ) -> None:
        changed = {name: getattr(secrets, name) + "x" for name in secrets.__struct_fields__
                   if isinstance(getattr(secrets, name), str) and getattr(secrets, name)}
        if not changed:
            pytest.skip("no credentials to alter")
        wrong = host.context(provider, config=config,
                             secrets=msgspec.structs.replace(secrets, **changed))
        result = run(provider.send(sample_message, wrong))
        assert isinstance(result, SendFailure), (
            "the fake accepted wrong credentials: a fake must check what it receives "
            "(one that always answers 200 proves nothing)")
        assert result.kind == "permanent"

    def test_send_error_inside_http_200_is_a_failure(
        self, provider: Any, sample_message: OutboundMessage, ctx: Any,
        fake_server: FakeHTTPServer, send_route: tuple[str, str] | None,
        error_in_ok_response: FakeResponse | None,
    ) -> None:
        if send_route is None or error_in_ok_response is None:
            pytest.skip("define `send_route` and `error_in_ok_response`")
        assert 200 <= error_in_ok_response.status < 300, (
            "error_in_ok_response must be a success status (2xx) whose body refuses")
        fake_server.route(*send_route, error_in_ok_response)
        result = run(provider.send(sample_message, ctx))
        assert isinstance(result, SendFailure), "an error in a 200 body must give SendFailure"
        assert result.code

    def test_verify_rejects_missing_signature(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        where = getattr(provider, "webhook_signature", None)
        with pytest.raises(WebhookVerificationError):
            run(provider.verify_webhook(strip_signature(signed_webhook, where), ctx))

    def test_verify_rejects_missing_headers(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        where: WebhookSignature | None = getattr(provider, "webhook_signature", None)
        if where is not None and where.location != "header":
            pytest.skip(f"the signature lives in the {where.location}, not in headers")
        with pytest.raises(WebhookVerificationError):
            run(provider.verify_webhook(signed_webhook.with_headers({}), ctx))

    def test_verify_rejects_tampered_query(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        where: WebhookSignature | None = getattr(provider, "webhook_signature", None)
        if where is None or "query" not in where.covers:
            pytest.skip("this provider's signature does not cover the query string")
        keep = where.name if where.location == "query" else None
        with pytest.raises(WebhookVerificationError):
            run(provider.verify_webhook(tamper_query(signed_webhook, keep), ctx))

    def test_verify_rejects_tampered_body(
        self, provider: Any, signed_webhook: WebhookRequest, ctx: Any
    ) -> None:
        where: WebhookSignature | None = getattr(provider, "webhook_signature", None)
        if where is not None and "body" not in where.covers:
            pytest.skip(f"this provider's signature covers {', '.join(where.covers)}, not the body")
        super().test_verify_rejects_tampered_body(  # type: ignore[misc]
            provider, signed_webhook, ctx)
