"""The SMTP provider against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cartera_sdk import (
    EmailContent,
    OutboundMessage,
    SendFailure,
    Sent,
    SmsContent,
    WebhookRequest,
    WebhookVerificationError,
)
from cartera_sdk.egress import EgressRefused
from cartera_sdk.testkit import ChannelConformance, FakeHost, run
from email_testing_smtpd import PASSWORD, USERNAME, Pki, SmtpServer, make_pki, smtp_server

import cartera_email
from cartera_email.smtp import SmtpConfig, SmtpProvider, SmtpSecrets

SUBJECT = "Recordatorio: su cuota vence mañana — acción requerida ñÑáéíóú"
TEXT = "Estimado señor Núñez:\nSu cuota de S/ 150.00 vence mañana.\n"
HTML = "<p>Estimado señor <b>Núñez</b>: su cuota de S/ 150.00 vence <i>mañana</i>.</p>"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(Path(tmp_path_factory.mktemp("pki")))


def _config(server: SmtpServer, pki: Pki, **changes: Any) -> SmtpConfig:
    base = SmtpConfig(
        host="127.0.0.1",
        port=server.port,
        security="starttls",
        from_address="cobranzas@cartera.test",
        from_name="Cobranzas Perú",
        message_id_domain="mail.cartera.test",
        local_hostname="client.cartera.test",
        timeout=5.0,
        ca_pem=pki.ca_pem,
    )
    return msgspec.structs.replace(base, **changes)


SECRETS = SmtpSecrets(username=USERNAME, password=PASSWORD)


def _message(**content: Any) -> OutboundMessage:
    fields: dict[str, Any] = {
        "subject": SUBJECT, "from_address": "cobranzas@cartera.test", "text": TEXT, "html": HTML,
    }  # fmt: skip
    fields.update(content)
    return OutboundMessage(
        message_id="out_01J9ZK",
        idempotency_key="idem_01J9ZK",
        to="deudor@example.net",
        content=EmailContent(**fields),
    )


def _lf(text: str) -> str:
    """Bodies arrive with CRLF line ends (SMTP canonical form)."""
    return text.replace("\r\n", "\n")


def _send(message: OutboundMessage, config: SmtpConfig, secrets: SmtpSecrets = SECRETS) -> Any:
    host = FakeHost()
    ctx = host.context(SmtpProvider(), config=config, secrets=secrets)
    return run(SmtpProvider().send(message, ctx)), host


# --------------------------------------------------------------------------- conformance


class TestSmtpConformance(ChannelConformance):
    """The SDK suite. SMTP receives no webhooks, so ``signed_webhook`` skips (like the ERP
    suite does): that also skips the webhook checks *and* ``test_secrets_never_logged``,
    which the tests below cover for SMTP. The suite's HTTP-only checks (status
    classification, unreachable ``FakeHTTPServer``) skip themselves; the SMTP equivalents
    are below."""

    @pytest.fixture
    def fake_server(self, pki: Pki) -> Iterator[SmtpServer]:
        with smtp_server(pki) as server:
            yield server

    @pytest.fixture
    def provider(self) -> SmtpProvider:
        return SmtpProvider()

    @pytest.fixture
    def config(self, fake_server: SmtpServer, pki: Pki) -> SmtpConfig:
        return _config(fake_server, pki)

    @pytest.fixture
    def secrets(self) -> SmtpSecrets:
        return SECRETS

    @pytest.fixture
    def plugin(self) -> object:
        return cartera_email

    @pytest.fixture
    def sample_message(self) -> OutboundMessage:
        return _message()

    @pytest.fixture
    def signed_webhook(self) -> WebhookRequest:
        pytest.skip("SMTP has no webhooks (bounces arrive as DSNs by mail)")


# --------------------------------------------------------------------------- MIME on the wire


def test_sends_multipart_alternative_with_utf8_headers(pki: Pki) -> None:
    message = OutboundMessage(
        message_id="out_01J9ZK",
        idempotency_key="idem_01J9ZK",
        to="deudor@example.net",
        content=EmailContent(
            subject=SUBJECT,
            from_address="cobranzas@cartera.test",
            from_name="Área de Cobranzas",
            text=TEXT,
            html=HTML,
            reply_to="respuestas@cartera.test",
            cc=["aval@example.org"],
            headers={"X-Campaign": "mora-30", "Subject": "must not override"},
        ),
        metadata={"unsubscribe_url": "https://cartera.test/u/abc123",
                  "unsubscribe_mailto": "baja@cartera.test"},
    )  # fmt: skip
    with smtp_server(pki) as server:
        result, host = _send(message, _config(server, pki))
        assert isinstance(result, Sent), result
        assert len(server.received) == 1
        got = server.received[0]
    # envelope, session
    assert got.mail_from == "cobranzas@cartera.test"
    assert got.rcpt_tos == ["deudor@example.net", "aval@example.org"]
    assert got.authenticated and got.tls
    mime = got.message()
    # headers
    assert str(mime["Subject"]) == SUBJECT
    assert b"=?utf-8?" in got.data  # RFC 2047 encoded on the wire, not raw UTF-8
    sender = mime["From"].addresses[0]
    assert sender.display_name == "Área de Cobranzas"
    assert sender.addr_spec == "cobranzas@cartera.test"
    assert str(mime["To"]) == "deudor@example.net"
    assert str(mime["Cc"]) == "aval@example.org"
    assert str(mime["Reply-To"]) == "respuestas@cartera.test"
    assert mime["Date"] is not None and mime["Date"].datetime.tzinfo is not None
    assert mime["Message-ID"] == result.provider_message_id
    assert result.provider_message_id.startswith("<cartera.out_01J9ZK.")
    assert result.provider_message_id.endswith("@mail.cartera.test>")
    assert mime["X-Cartera-Message-Id"] == "out_01J9ZK"
    assert mime["X-Campaign"] == "mora-30"
    assert mime.get_all("Subject") == [SUBJECT]
    assert mime["List-Unsubscribe"] == (
        "<https://cartera.test/u/abc123>, <mailto:baja@cartera.test>"
    )
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # body: multipart/alternative, text first, html second, both UTF-8
    assert mime.get_content_type() == "multipart/alternative"
    parts = list(mime.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert _lf(parts[0].get_content()) == TEXT
    assert _lf(parts[1].get_content()).strip() == HTML
    assert _lf(mime.get_body(("html",)).get_content()).strip() == HTML
    assert host.leaked_secrets(SECRETS) == []


def test_text_only_and_html_only(pki: Pki) -> None:
    with smtp_server(pki) as server:
        config = _config(server, pki)
        assert isinstance(_send(_message(html=None), config)[0], Sent)
        assert isinstance(_send(_message(text=None), config)[0], Sent)
        text_only, html_only = (r.message() for r in server.received)
    assert text_only.get_content_type() == "text/plain"
    assert _lf(text_only.get_content()) == TEXT
    assert html_only.get_content_type() == "text/html"
    assert "List-Unsubscribe" not in text_only


def test_config_defaults_fill_sender_and_no_one_click_for_http(pki: Pki) -> None:
    message = msgspec.structs.replace(
        _message(from_address="", from_name=None),
        metadata={"unsubscribe_url": "http://cartera.test/u/1"},
    )
    with smtp_server(pki) as server:
        result, _ = _send(message, _config(server, pki, message_id_domain=None))
        mime = server.received[0].message()
        assert server.received[0].mail_from == "cobranzas@cartera.test"
    assert isinstance(result, Sent)
    expected = Address("Cobranzas Perú", addr_spec="cobranzas@cartera.test")
    assert mime["From"].addresses[0] == expected
    assert result.provider_message_id.endswith("@cartera.test>")
    assert mime["List-Unsubscribe"] == "<http://cartera.test/u/1>"
    assert "List-Unsubscribe-Post" not in mime


def test_message_id_is_stable_for_the_same_outbox_message(pki: Pki) -> None:
    with smtp_server(pki) as server:
        first, _ = _send(_message(), _config(server, pki))
        second, _ = _send(_message(), _config(server, pki))
    assert first.provider_message_id == second.provider_message_id


# aiosmtpd's auth_require_tls only recognises STARTTLS, so the implicit-TLS server cannot set
# it and aiosmtpd warns, although the whole session is encrypted.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_implicit_tls(pki: Pki) -> None:
    with smtp_server(pki, mode="tls") as server:
        result, _ = _send(_message(), _config(server, pki, security="tls"))
        assert isinstance(result, Sent), result
        assert server.received[0].tls and server.received[0].authenticated


def test_plain_relay_without_auth(pki: Pki) -> None:
    with smtp_server(mode="none", auth=False) as server:
        result, _ = _send(_message(), _config(server, pki, security="none"), SmtpSecrets())
        assert isinstance(result, Sent), result
        assert not server.received[0].tls


def test_verify_tls_false_accepts_an_untrusted_certificate(pki: Pki) -> None:
    with smtp_server(pki) as server:
        result, _ = _send(_message(), _config(server, pki, ca_pem=None, verify_tls=False))
        assert isinstance(result, Sent), result


# --------------------------------------------------------------------------- failures


def _failure(result: Any) -> SendFailure:
    assert isinstance(result, SendFailure), result
    return result


def test_untrusted_certificate_is_permanent(pki: Pki) -> None:
    with smtp_server(pki) as server:
        failure = _failure(_send(_message(), _config(server, pki, ca_pem=None))[0])
        assert server.received == []
    assert (failure.kind, failure.code) == ("permanent", "tls_verify_failed")


def test_missing_starttls_is_permanent(pki: Pki) -> None:
    with smtp_server(mode="none", auth=False) as server:
        failure = _failure(_send(_message(), _config(server, pki))[0])
        assert server.received == []
    assert (failure.kind, failure.code) == ("permanent", "starttls_unsupported")


def test_wrong_password_is_permanent_auth_failed(pki: Pki) -> None:
    wrong = SmtpSecrets(username=USERNAME, password="nope-" + PASSWORD)
    with smtp_server(pki) as server:
        result, host = _send(_message(), _config(server, pki), wrong)
        assert server.received == []
    failure = _failure(result)
    assert (failure.kind, failure.code) == ("permanent", "auth_failed")
    assert host.leaked_secrets(wrong) == []
    assert wrong.password not in failure.reason


def test_mailbox_unavailable_550_is_permanent_and_redacted(pki: Pki) -> None:
    with smtp_server(pki) as server:
        server.handler.reject["deudor@example.net"] = (
            "550 5.1.1 <deudor@example.net>: Recipient address rejected: User unknown"
        )
        failure = _failure(_send(_message(), _config(server, pki))[0])
    assert (failure.kind, failure.code) == ("permanent", "550")
    assert "deudor@example.net" not in failure.reason
    assert "User unknown" in failure.reason
    assert failure.suppress == "hard_bounce"  # 5.1.1: the mailbox does not exist


def test_a_policy_refusal_does_not_suppress_the_address(pki: Pki) -> None:
    with smtp_server(pki) as server:
        server.handler.reject["deudor@example.net"] = "550 5.7.1 Message rejected as spam"
        failure = _failure(_send(_message(), _config(server, pki))[0])
    assert (failure.kind, failure.code, failure.suppress) == ("permanent", "550", None)


def test_transient_4xx_is_retryable(pki: Pki) -> None:
    with smtp_server(pki) as server:
        server.handler.reject["deudor@example.net"] = "451 4.7.1 Greylisted, try again later"
        failure = _failure(_send(_message(), _config(server, pki))[0])
    assert (failure.kind, failure.code) == ("retryable", "451")


@pytest.mark.parametrize(
    ("reply", "kind", "code"),
    [("554 5.7.1 Message rejected as spam", "permanent", "554"),
     ("452 4.3.1 Insufficient system storage", "retryable", "452")],
)  # fmt: skip
def test_data_replies_are_classified(pki: Pki, reply: str, kind: str, code: str) -> None:
    with smtp_server(pki) as server:
        server.handler.reject_data = reply
        failure = _failure(_send(_message(), _config(server, pki))[0])
    assert (failure.kind, failure.code) == (kind, code)


def test_refused_primary_with_accepted_cc_is_permanent(pki: Pki) -> None:
    with smtp_server(pki) as server:
        server.handler.reject["deudor@example.net"] = "550 5.1.1 User unknown"
        failure = _failure(_send(_message(cc=["aval@example.org"]), _config(server, pki))[0])
        assert server.received[0].rcpt_tos == ["aval@example.org"]
    assert (failure.kind, failure.code) == ("permanent", "550")


def test_refused_cc_still_counts_as_sent(pki: Pki) -> None:
    with smtp_server(pki) as server:
        server.handler.reject["aval@example.org"] = "550 5.1.1 User unknown"
        result, _ = _send(_message(cc=["aval@example.org"]), _config(server, pki))
    assert isinstance(result, Sent)


def test_server_down_is_retryable(pki: Pki) -> None:
    with smtp_server(pki) as server:
        config = _config(server, pki)
        server.stop()
        failure = _failure(_send(_message(), config)[0])
    assert (failure.kind, failure.code) == ("retryable", "connection")


@pytest.mark.parametrize(
    ("message", "code"),
    [(OutboundMessage(message_id="m", idempotency_key="i", to="+51987654321",
                      content=SmsContent(text="hola")), "unsupported_content"),
     (msgspec.structs.replace(_message(), to="not-an-address"), "invalid_recipient"),
     (msgspec.structs.replace(_message(), to="a@b.pe\r\nBcc: x@y.pe"), "invalid_recipient"),
     (_message(from_address=""), "missing_from")],
)  # fmt: skip
def test_invalid_messages_fail_permanently_without_connecting(
    pki: Pki, message: OutboundMessage, code: str
) -> None:
    config = SmtpConfig(host="127.0.0.1", port=1, security="none")  # nothing listens there
    failure = _failure(_send(message, config)[0])
    assert (failure.kind, failure.code) == ("permanent", code)


def test_secrets_never_logged_on_success_and_failure(pki: Pki) -> None:
    with smtp_server(pki) as server:
        _, ok_host = _send(_message(), _config(server, pki))
        server.handler.reject["deudor@example.net"] = "550 5.1.1 User unknown"
        _, failed_host = _send(_message(), _config(server, pki))
    assert ok_host.log.lines and failed_host.log.lines
    assert ok_host.leaked_secrets(SECRETS) == []
    assert failed_host.leaked_secrets(SECRETS) == []


# --------------------------------------------------------------------------- connection test


def _check(config: SmtpConfig, secrets: SmtpSecrets = SECRETS) -> Any:
    ctx = FakeHost().context(SmtpProvider(), config=config, secrets=secrets)
    return run(SmtpProvider().test_connection(ctx))


def test_connection_check(pki: Pki) -> None:
    with smtp_server(pki) as server:
        check = _check(_config(server, pki))
        bad = _check(_config(server, pki), SmtpSecrets(username=USERNAME, password="x"))
        assert server.received == []
    assert check.ok and check.code == "ok" and "authenticated" in check.detail
    assert not bad.ok and bad.code == "auth_failed"
    with smtp_server(pki) as server:
        config = _config(server, pki)
    down = _check(config)
    assert not down.ok and down.code == "connection"


# --------------------------------------------------------------------------- no webhooks


def test_smtp_rejects_every_webhook_and_parses_nothing() -> None:
    provider = SmtpProvider()
    ctx = FakeHost().context(provider, config=SmtpConfig(), secrets=SECRETS)
    request = WebhookRequest(
        method="POST", url="https://cartera.example/v1/hooks/int_test", body=b"[]",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with pytest.raises(WebhookVerificationError) as info:
        run(provider.verify_webhook(request, ctx))
    assert info.value.code == "not_supported"
    assert provider.parse_webhook(request, ctx) == []
    assert run(provider.handshake(request, ctx)) is None


# --------------------------------------------------------------------------- egress


def test_relays_in_private_space_are_refused_by_the_host(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SMTP host is tenant config: it goes through the host's egress rules (SSRF)."""
    with smtp_server(pki) as server:  # loopback is only allowed because the test host lists it
        ctx = FakeHost(egress_allow="").context(
            SmtpProvider(), config=_config(server, pki), secrets=SECRETS)
        with pytest.raises(EgressRefused):
            run(SmtpProvider().test_connection(ctx))
        assert server.received == []
    def private_dns(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", port))]

    monkeypatch.setattr(socket, "getaddrinfo", private_dns)
    for host in ("169.254.169.254", "smtp.partner.test"):
        with pytest.raises(EgressRefused):
            _check(SmtpConfig(host=host, port=587, timeout=1.0))
