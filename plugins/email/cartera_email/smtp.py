"""SMTP submission provider (RFC 5321/6409, STARTTLS RFC 3207, implicit TLS RFC 8314, AUTH).

One connection per send: connect, EHLO, STARTTLS (or implicit TLS), EHLO again, AUTH,
MAIL FROM / RCPT TO / DATA, QUIT. A 250 after DATA means "accepted by the relay", not
delivered: bounces come back asynchronously as DSNs to the envelope sender, so this
provider has **no webhooks** (``verify_webhook`` rejects everything).

Reply classes: 2xx accepted; 4xx transient (``retryable``); 5xx permanent (550 mailbox
unavailable...); 535/534/530 on AUTH ``permanent`` with code ``auth_failed``; connection
failures and timeouts ``retryable``.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Any, Literal

import aiosmtplib
import msgspec
from cartera_sdk import (
    BaseChannelProvider,
    ChannelEvent,
    ConnectionCheck,
    EgressPolicy,
    EmailContent,
    OutboundMessage,
    ProviderContext,
    SendFailure,
    SendResult,
    Sent,
    SuppressionReason,
    WebhookRequest,
    WebhookVerificationError,
)

from ._common import email_content, extra_headers, redact

__all__ = ["SmtpConfig", "SmtpProvider", "SmtpSecrets", "build_message", "message_id_for"]

Security = Literal["starttls", "tls", "none"]


class SmtpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Non-secret SMTP settings.

    ``from_address``/``from_name`` are the defaults when the rendered content has none.
    ``message_id_domain`` is the right-hand side of generated ``Message-ID`` headers
    (defaults to the sender's domain). ``ca_pem`` adds a trusted CA (PEM text) for a
    private relay; ``verify_tls: false`` disables certificate checks (tests only).
    """

    host: str = "localhost"
    port: int = 587
    security: Security = "starttls"
    from_address: str = ""
    from_name: str | None = None
    message_id_domain: str | None = None
    local_hostname: str | None = None
    timeout: float = 30.0
    verify_tls: bool = True
    ca_pem: str | None = None
    list_unsubscribe_one_click: bool = True


class SmtpSecrets(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """AUTH credentials. An empty ``username`` skips AUTH (relay by IP)."""

    username: str = ""
    password: str = ""


_MSGID_SAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def message_id_for(message: OutboundMessage, domain: str, tenant_id: str = "") -> str:
    """A deterministic ``Message-ID`` (``<...@domain>``) for the outbox message.

    The same outbox message always gets the same id, so a retried send that the relay had
    in fact accepted can be recognised (and is de-duplicated by some mailbox providers).
    """
    digest = hashlib.sha256(f"{tenant_id}\0{message.message_id}".encode()).hexdigest()[:12]
    local = _MSGID_SAFE.sub("-", message.message_id).strip(".")[:64] or "msg"
    return f"<cartera.{local}.{digest}@{domain}>"


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def build_message(
    message: OutboundMessage,
    content: EmailContent,
    config: SmtpConfig,
    ctx: ProviderContext[Any, Any],
) -> EmailMessage:
    """The RFC 5322 message: multipart/alternative (text then HTML) when both exist."""
    from_address = content.from_address or config.from_address
    from_name = content.from_name if content.from_name is not None else config.from_name
    domain = config.message_id_domain or _domain_of(from_address)
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = Address(display_name=from_name or "", addr_spec=from_address)
    msg["To"] = message.to
    if content.cc:
        msg["Cc"] = ", ".join(content.cc)
    if content.reply_to:
        msg["Reply-To"] = content.reply_to
    msg["Subject"] = content.subject
    msg["Date"] = format_datetime(ctx.clock.now())
    msg["Message-ID"] = message_id_for(message, domain, ctx.tenant_id)
    msg["X-Cartera-Message-Id"] = message.message_id
    for name, value in extra_headers(
        message, content, one_click=config.list_unsubscribe_one_click
    ).items():
        msg[name] = value
    if content.text is not None:
        msg.set_content(content.text, subtype="plain", charset="utf-8", cte="quoted-printable")
        if content.html is not None:
            msg.add_alternative(
                content.html, subtype="html", charset="utf-8", cte="quoted-printable"
            )
    else:
        msg.set_content(content.html or "", subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def _tls_context(config: SmtpConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if not config.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif config.ca_pem:
        context.load_verify_locations(cadata=config.ca_pem)
    return context


def _client(config: SmtpConfig) -> aiosmtplib.SMTP:
    use_tls = config.security == "tls"
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        local_hostname=config.local_hostname,
        timeout=config.timeout,
        use_tls=use_tls,
        start_tls=False,  # STARTTLS is issued explicitly, so "starttls" can be mandatory
        validate_certs=config.verify_tls,
        tls_context=_tls_context(config) if config.security != "none" else None,
    )


async def _open(client: aiosmtplib.SMTP, config: SmtpConfig, secrets: SmtpSecrets,
                egress: EgressPolicy) -> None:
    """connect + EHLO (+ STARTTLS + EHLO) + AUTH.

    The TCP connection comes from the host's egress policy (checked, pinned address; no
    TLS only where allowed); TLS still verifies the certificate for ``config.host``.
    An :class:`EgressRefused` propagates: the host reports it."""
    sock = await egress.connect(config.host, config.port, connect_timeout=config.timeout,
                                encrypted=config.security != "none", what="smtp")
    await client.connect(sock=sock, port=None)
    await client.ehlo()
    if config.security == "starttls":
        if not client.supports_extension("starttls"):
            raise _Failure("permanent", "starttls_unsupported", "server does not offer STARTTLS")
        await client.starttls()  # all EHLO knowledge is discarded (RFC 3207)
        await client.ehlo()
    if secrets.username:
        await client.login(secrets.username, secrets.password)


async def _close(client: aiosmtplib.SMTP) -> None:
    """QUIT politely; a failing QUIT never changes the outcome."""
    try:
        if client.is_connected:
            await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        pass
    finally:
        client.close()


class _Failure(Exception):
    def __init__(self, kind: Any, code: str, reason: str) -> None:
        super().__init__(code)
        self.failure = SendFailure(kind=kind, code=code, reason=reason)


def _by_reply_code(code: int) -> Literal["retryable", "permanent"]:
    return "retryable" if 400 <= code < 500 else "permanent"


_BAD_ADDRESS = re.compile(r"\b5\.1\.\d{1,3}\b")


def _hard_bounce(code: int, message: str) -> SuppressionReason | None:
    """A permanent refusal of the address itself (enhanced status 5.1.x: bad mailbox,
    bad domain...), not of this message (policy, size, spam filtering)."""
    return "hard_bounce" if code >= 500 and _BAD_ADDRESS.search(message) else None


def classify(exc: BaseException) -> SendFailure:
    """Map an aiosmtplib/OS/TLS exception to a :class:`SendFailure`."""
    if isinstance(exc, _Failure):
        return exc.failure
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return SendFailure(kind="permanent", code="auth_failed", reason=redact(exc.message))
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients
        kind = (
            "retryable" if any(400 <= r.code < 500 for r in refused) else "permanent"
        )  # a transient refusal of any recipient is worth a retry
        first = refused[0] if refused else None
        return SendFailure(
            kind=kind,
            code=str(first.code) if first else "rcpt_refused",
            reason=redact(first.message) if first else "all recipients refused",
            suppress=_hard_bounce(first.code, first.message) if first else None,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException) and not isinstance(
        exc, aiosmtplib.SMTPConnectResponseError
    ):
        return SendFailure(
            kind=_by_reply_code(exc.code), code=str(exc.code), reason=redact(exc.message)
        )
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        # A 4xx/5xx greeting (421 "service not available") is a server-side condition.
        return SendFailure(kind="retryable", code=str(exc.code), reason=redact(exc.message))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return SendFailure(
            kind="permanent", code="tls_verify_failed", reason="certificate rejected"
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return SendFailure(kind="retryable", code="timeout", reason="smtp timeout")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return SendFailure(kind="permanent", code="not_supported", reason=redact(str(exc)))
    if isinstance(exc, ConnectionError | OSError | aiosmtplib.SMTPServerDisconnected):
        return SendFailure(kind="retryable", code="connection", reason=type(exc).__name__)
    if isinstance(exc, aiosmtplib.SMTPException):
        text = str(exc)
        if "AUTH" in text or "authentication" in text:
            return SendFailure(kind="permanent", code="auth_unsupported", reason=redact(text))
        return SendFailure(kind="retryable", code="smtp_error", reason=redact(text))
    raise exc


class SmtpProvider(BaseChannelProvider):
    """Plain SMTP submission through any relay (Postfix, Exchange, Gmail, SES SMTP...)."""

    name = "smtp"
    channel = "email"
    Config = SmtpConfig
    Secrets = SmtpSecrets

    async def send(self, message: OutboundMessage, ctx: ProviderContext[Any, Any]) -> SendResult:
        checked = email_content(message)
        if isinstance(checked, SendFailure):
            return checked
        config: SmtpConfig = ctx.config
        from_address = checked.from_address or config.from_address
        if not from_address:
            return SendFailure(kind="permanent", code="missing_from", reason="no from address")
        try:
            mime = build_message(message, checked, config, ctx)
        except (ValueError, TypeError) as exc:
            return SendFailure(kind="permanent", code="invalid_message", reason=redact(str(exc)))
        recipients = list(dict.fromkeys([message.to, *checked.cc]))
        client = _client(config)
        try:
            await _open(client, config, ctx.secrets, ctx.egress)
            refused, _ = await client.send_message(mime, sender=from_address, recipients=recipients)
        except (aiosmtplib.SMTPException, OSError, _Failure) as exc:
            failure = classify(exc)
            ctx.logger.warning(
                "smtp send failed: message_id=%s kind=%s code=%s",
                message.message_id, failure.kind, failure.code,
            )  # fmt: skip
            return failure
        finally:
            await _close(client)
        if message.to in refused:  # some cc accepted, the debtor's address refused
            reply = refused[message.to]
            ctx.logger.warning(
                "smtp primary recipient refused: message_id=%s code=%s",
                message.message_id, reply.code,
            )  # fmt: skip
            # Other recipients already got it: a retry would duplicate, so never retry.
            return SendFailure(kind="permanent", code=str(reply.code), reason=redact(reply.message),
                               suppress=_hard_bounce(reply.code, reply.message))
        if refused:
            ctx.logger.warning(
                "smtp cc recipients refused: message_id=%s count=%d",
                message.message_id, len(refused),
            )  # fmt: skip
        message_id = str(mime["Message-ID"])
        ctx.logger.info("smtp accepted: message_id=%s provider_id=%s", message.message_id,
                        message_id)  # fmt: skip
        return Sent(provider_message_id=message_id)

    async def verify_webhook(self, request: WebhookRequest, ctx: ProviderContext[Any, Any]) -> None:
        """SMTP has no webhooks: every request is rejected."""
        raise WebhookVerificationError(
            "not_supported", "the smtp provider receives no webhooks (bounces arrive as DSNs)"
        )

    def parse_webhook(
        self, request: WebhookRequest, ctx: ProviderContext[Any, Any]
    ) -> list[ChannelEvent]:
        """SMTP has no webhooks: nothing to parse."""
        return []

    async def test_connection(self, ctx: ProviderContext[Any, Any]) -> ConnectionCheck:
        """connect + EHLO + (STARTTLS) + AUTH + QUIT."""
        config: SmtpConfig = ctx.config
        client = _client(config)
        try:
            await _open(client, config, ctx.secrets, ctx.egress)
        except (aiosmtplib.SMTPException, OSError, _Failure) as exc:
            failure = classify(exc)
            return ConnectionCheck(ok=False, detail=failure.reason, code=failure.code)
        finally:
            await _close(client)
        detail = f"connected to {config.host}:{config.port} ({config.security})"
        if ctx.secrets.username:
            detail += ", authenticated"
        return ConnectionCheck(ok=True, detail=detail, code="ok")
